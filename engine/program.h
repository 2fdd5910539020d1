/*
 * program - a compiled policy: what the compiler (compile.h) builds, the
 * verifier checks, the disassembler prints and the VM runs. Immutable once
 * built, and reference-counted: a reload compiles a new one and swaps it
 * in, while VMs started on the old one keep their reference until they
 * finish (STYLE rule 6). References may be taken and dropped on any thread.
 */
#ifndef MXACL_PROGRAM_H
#define MXACL_PROGRAM_H

#include <stdint.h>

#include "actions/action.h"
#include "engine/acl.h"
#include "engine/opcodes.h"
#include "engine/settings.h"
#include "engine/strkey.h"
#include "engine/strmap.h"

struct vm;

struct acl_rt {
	const char *name;
	const struct acl_type *type;
	void *data;
	struct loc loc;
	int run;                    /* run that indexes it (memo shortcut), or -1 */
	uint32_t last_use;          /* pc of the last TEST of it (0: none) */
	int16_t stage_attr;         /* what it reads that depends on the
				       protocol state, or -1 (engine/stage.h) */
	enum tempfail_mode tempfail : 8;   /* narrow fields: 64 bytes, one per
					      line of a big policy */
	bool indexable;
	bool stateful;
};

struct action_rt {
	const char *name;
	struct loc loc;
	struct action act;
};

struct rule_rt {
	struct loc loc;
	const char *name;           /* "access NAME: ...", or NULL */
	uint32_t action;
	uint32_t nterms;
	bool explicit_action;
	bool dryrun;                /* "dryrun access ...": never decides */
};

/*
 * A run: consecutive access lines whose first acl is a positive literal
 * string acl on the same attribute, dispatched by one hash lookup
 * (SWITCH) instead of one test per line.
 */
struct multire;

struct run {
	int attr;
	struct strmap *index[FORM_COUNT];  /* key -> list number */
	uint32_t *list_off;                /* list k: lines[list_off[k]..list_off[k+1]) */
	uint32_t *lines;                   /* run-local line numbers, ascending */
	uint32_t nlists;
	uint32_t first_rule, nrules;
	uint32_t *entry;                   /* pc of each line's code */
	uint32_t end;                      /* pc after the run */
	uint32_t *first_acl;               /* per line: its first acl */
	struct multire *re;                /* a run of regex acls (acl.h,
					      regexes): every line's patterns
					      as one set, scanned instead of
					      index; NULL for a literal run */
	uint32_t *re_line;                 /* with re: pattern -> run-local line */
};

struct program {
	int refs;
	struct arena *arena;
	struct diags sources;             /* keeps the source text for dump */
	char *path;
	uint64_t *code;
	uint32_t *code_rule;              /* rule of each instruction, NO_RULE */
	uint32_t ncode;
	struct acl_rt *acls;
	uint32_t nacls;
	struct action_rt *actions;        /* actions[0]: default */
	uint32_t nactions;
	struct rule_rt *rules;
	uint32_t nrules;
	struct run *runs;
	uint32_t nruns;
	struct settings settings;
	bool used_attr[ATTR_COUNT];       /* attributes any acl or action reads */
	bool used_var[VAR_END - VAR_BASE - 1]; /* lookup ${vars} some action's text
					     reads (vm_var_used) */
	struct vm *pool;                  /* free VMs sized for this program, */
	void (*pool_free)(struct vm *);   /*   and how to free them (vm.c) */
	struct geoip *geoip;              /* for country acls; NULL: none */
	uint32_t max_cand;                /* most lines one SWITCH can select */
	uint32_t *prefetch;               /* acls whose type can prefetch, */
	uint32_t nprefetch;               /*   ascending */
	struct ahead_site *ahead;         /* tests of counters that can be */
	uint32_t nahead;                  /*   counted ahead, by pc */
	uint32_t *ahead_guard;            /* their guards (ahead_site) */
};

/*
 * A TEST of an acl whose type can count ahead (acl.h, ahead), with its
 * guards: the terms its line tests before it, each
 * acl << 2 | negated << 1 | pure (pure: its type never waits, so it can be
 * evaluated to decide: not stateful, no prefetch hook), in
 * ahead_guard[guard .. guard + nguard). The counter is evaluated on that
 * line exactly when the line is reached and every guard holds (true, or
 * false when negated): vm_prefetch counts ahead only then.
 */
struct ahead_site {
	uint32_t pc, acl;
	uint32_t guard, nguard;
};

/*
 * A program (or a parse tree) at least this big gives its memory back to
 * the system when it is freed (util.h, heap_trim): access lines, acls and
 * actions together, or bytes of its arena.
 */
#define PROGRAM_TRIM_ITEMS 1000
#define PROGRAM_TRIM_BYTES ((size_t)1 << 20)

/* Take and drop a reference (atomically); the thread that drops the last
 * one frees the program, and gives a big one's memory back to the system
 * (heap_trim: a pause of milliseconds, which is why a reload drops the
 * program it replaced off the serving loop). program_unref(NULL) is a
 * no-op. */
void program_ref(struct program *p);
void program_unref(struct program *p);
/* The program's "set" values (flags override them: daemon/main.c). */
const struct settings *program_settings(const struct program *p);
/* The main config file the program came from. */
const char *program_path(const struct program *p);
/* The program's access lines: how many, and where line i is. */
size_t program_nrules(const struct program *p);
struct loc program_rule_loc(const struct program *p, size_t i);
/*
 * Line i's label, what logs, metrics, --explain and replay call it: its
 * name ("access NAME: ..."), owned by the program, else "FILE:LINE"
 * written into buf (PROGRAM_LABEL_SIZE bytes). Made when asked: kept, the
 * labels were about 30 bytes a line of a big policy.
 */
#define PROGRAM_LABEL_SIZE (4096 + 16)
const char *program_rule_label(const struct program *p, size_t i, char *buf);


#endif
