/*
 * program - a compiled policy: the engine's private view, shared by the
 * compiler, the verifier, the disassembler and the VM. Immutable once
 * built; reference-counted (engine.h).
 */
#ifndef MXACL_PROGRAM_H
#define MXACL_PROGRAM_H

#include <stdint.h>

#include "actions/action.h"
#include "engine/acltype.h"
#include "engine/engine.h"
#include "engine/opcodes.h"
#include "engine/strmap.h"

/* What a temporary failure of an acl means. */
enum tempfail_mode {
	TEMPFAIL_NOMATCH,   /* the acl does not match (fail open: default) */
	TEMPFAIL_MATCH,     /* the acl matches */
	TEMPFAIL_DEFAULT,   /* the request gets the default action at once */
};

struct acl_rt {
	const char *name;
	const struct acl_type *type;
	void *data;
	struct loc loc;
	int run;                    /* run that indexes it (memo shortcut), or -1 */
	enum tempfail_mode tempfail;
	bool indexable;
	bool stateful;
	uint32_t last_use;          /* pc of the last TEST of it (0: none) */
};

struct action_rt {
	const char *name;
	struct loc loc;
	struct action act;
};

struct rule_rt {
	struct loc loc;
	uint32_t action;
	uint32_t nterms;
	bool explicit_action;
};

/*
 * Literal string keys of a value, by form: whole value, domain (@dom),
 * parent domains (@.dom), local part (user@), empty ("").
 */
enum str_form { FORM_WHOLE, FORM_DOMAIN, FORM_SUBDOMAIN, FORM_LOCAL, FORM_EMPTY, FORM_COUNT };

/* Keys of one request value, as str_keys computes them. */
#define STR_MAX_KEYS 40
struct str_key {
	enum str_form form;
	const char *s;
	size_t len;
};
/* The keys under which value (lower-cased) may be found, for attribute attr. */
size_t str_keys(int attr, const char *value, size_t len, struct str_key *out);

/*
 * A run: consecutive access lines whose first acl is a positive literal
 * string acl on the same attribute, dispatched by one hash lookup
 * (SWITCH) instead of one test per line.
 */
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
	struct vm *pool;                  /* free VMs sized for this program */
	struct geoip *geoip;              /* for country acls; NULL: none */
	uint32_t max_cand;                /* most lines one SWITCH can select */
	uint32_t *prefetch;               /* acls whose type can prefetch, */
	uint32_t nprefetch;               /*   ascending */
};

/* Check the program's invariants (bc_verify in verify.c): NULL if sound. */
const char *program_verify(const struct program *p);

/* Free a program's pool of idle VMs (vm.c; program_unref calls it). */
void vm_pool_free(struct vm *pool);

/* Template variables: ids 0..ATTR_COUNT-1 are request attributes, then
 * the lookup values of VAR_LIST. */
int program_var_resolve(void *ctx, const char *name, size_t len);



/* Literal sets of a string acl, for the run index (matchers.c): false when
 * the acl also has regexes and so cannot be indexed. */
bool str_acl_literals(const struct acl_rt *acl, struct strmap *const **sets, bool *match_empty);
#endif
