/*
 * acl - the acl-type interface: what an acl type is (how its values compile
 * and how a request is matched against them), and how the compiler finds
 * one by name. The engine knows the types only through this: they live in
 * acl/, one file each, listed in one table (acl/types.c), and a type that
 * waits for something (DNS, the state store) suspends the request with the
 * VM's wait calls (engine/vm.h).
 *
 * Every evaluation answers TRI_TRUE, TRI_FALSE or TRI_TEMPFAIL at once, or
 * TRI_PENDING after vm_wait_begin: the answer then arrives later through
 * vm_wait_done (exactly once, also when the lookup fails or times out).
 * A temporary failure is never turned into "no match" by the type; the
 * acl's tempfail setting decides (see program.h).
 */
#ifndef MXACL_ACL_H
#define MXACL_ACL_H

#include <stdbool.h>
#include <time.h>

#include "engine/request.h"
#include "grammar/diag.h"
#include "grammar/policy.h"
#include "util/util.h"

enum tri { TRI_FALSE = 0, TRI_TRUE = 1, TRI_TEMPFAIL = 2, TRI_PENDING = 3 };

/* What a temporary failure of an acl means (its tempfail= or the global
 * "set tempfail"). */
enum tempfail_mode {
	TEMPFAIL_NOMATCH,   /* the acl does not match (fail open: default) */
	TEMPFAIL_MATCH,     /* the acl matches */
	TEMPFAIL_DEFAULT,   /* the request gets the default action at once */
};

struct acl_compile;
struct acl_rt;
struct geoip;
struct runtime;
struct strmap;
struct vm;

/*
 * Another acl of the program, as a type whose values name acls (score)
 * sees it at compile time: what acl_compile.ref gives.
 */
struct acl_ref {
	int index;                  /* its index: vm_acl_answer(e, index) */
	const char *name;           /* lives as long as the program */
	const struct acl_type *type;
	bool stateful;              /* its type counts or records when evaluated */
	enum tempfail_mode tempfail; /* what its temporary failure means (its
				       tempfail=, else "set tempfail") */
};

struct multire_pattern;
struct recache;

/* What a type's compile function gets. */
struct acl_compile {
	struct arena *arena;        /* lives as long as the program */
	struct diags *diags;
	const struct pol_acl *acl;  /* name, type word, value words */
	int attr;                   /* the type's attribute, or -1 */
	void *data;                 /* out: the compiled matcher */
	bool indexable;             /* out: literal strings only (see compile.c) */
	bool stateful;              /* out: counts or records when evaluated, so
				       the compiler tests it last on its line */
	int tempfail;               /* out: a "tempfail=" value (enum
				       tempfail_mode), or -1 for the global one */
	bool *used_attr;            /* out: set [id] for each attribute (ATTR
				       ids) the acl reads besides its type's,
				       such as a ${name} value, so the decision
				       log shows it (vm_log_line) */
	int stage_attr;             /* out: the attribute whose value this acl
				       needs meaningful (the type's by default;
				       rate count=recipients: recipient_count),
				       or -1: the compiler warns when the line
				       is reached only at protocol states where
				       Postfix sends it empty, 0 or an estimate
				       (engine/stage.h) */
	const struct geoip *geoip;  /* the program's GeoIP database, or NULL */
	bool geoip_failed;          /* it was named but did not open (reported) */
	bool notes;                 /* the caller wants a note at each value
				       that compiled into a slower form, with
				       why (mxacl check --why-pcre) */
	struct recache *recache;    /* where regex databases are kept between
				       compiles (engine/recache.h), or NULL */
	bool regex_classify_only;   /* decide regex paths, build no database
				       (load_opts.regex_classify_only) */
	/*
	 * For a type whose values name other acls (score): the acl called
	 * name (loc: the word that names it, for diagnostics), compiled first
	 * if it is not yet, so that its stateful and tempfail are final, and
	 * marked used. Acls may name acls defined later in the files. Returns
	 * false after reporting a name that is not an acl ("did you mean") or
	 * a cycle of acls naming each other (the error names the cycle), and
	 * false without a new report when that acl had errors of its own.
	 * Called only from inside compile; never NULL.
	 */
	bool (*ref)(struct acl_compile *c, const char *name, struct loc loc, struct acl_ref *out);
	void *ref_ctx;              /* the compiler's, for ref */
};

/*
 * Values that lookups give to action text: ${greylist_remaining}, ... Ids
 * follow the request attributes' (ATTR_COUNT + n).
 */
#define VAR_LIST(X)            \
	X(greylist_remaining)  \
	X(greylist_age)        \
	X(greylist_reason)     \
	X(rate_count)          \
	X(rbl_zone)            \
	X(rbl_answer)          \
	X(rbl_txt)             \
	X(spf_result)          \
	X(spf_received)        \
	X(score)               \
	X(score_hits)          \
	X(score_missing)       \
	X(mx_hosts)            \
	X(mx_none)             \
	X(dns_name)            \
	X(dns_address)         \
	X(distinct_count)

enum var_id {
	VAR_BASE = ATTR_COUNT - 1,
#define X(n) VAR_##n,
	VAR_LIST(X)
#undef X
	VAR_END
};

/* Parse "match|nomatch|default" (a tempfail= value) into *mode (enum
 * tempfail_mode); false if it is none of them. */
bool acl_tempfail_parse(const char *value, int *mode);

/*
 * For types whose values are words: when w is "tempfail=VALUE", record it
 * in c->tempfail (a diagnostic and *ok = false when VALUE is bad) and
 * return true; otherwise return false.
 */
bool acl_tempfail_option(struct acl_compile *c, const struct ast_word *w, bool *ok);

/* What a type's eval function gets. */
struct eval_ctx {
	struct request *req;
	struct runtime *rt;
	struct vm *vm;
	int acl;                    /* index of the acl being evaluated */
	bool ahead;                 /* eval: its count is started ahead of its
				       line (acl_type.ahead); refund: such a
				       count given back because its line was
				       not reached (req may then be NULL) */
};

struct acl_type {
	const char *name;           /* as written in "acl NAME TYPE" */
	int attr;                   /* attribute examined, or -1 */
	bool values_optional;       /* "acl NAME TYPE" without values is fine */
	bool (*compile)(struct acl_compile *c);
	enum tri (*eval)(const struct acl_rt *acl, struct eval_ctx *e);
	/* One line for the disassembler ("3 literals, 1 regex"). */
	void (*describe)(const struct acl_rt *acl, struct strbuf *out);
	/*
	 * May be NULL. The values as compiled, for "mxacl dump --values": one
	 * per line, each line prefix, the value, '\n', written as the policy
	 * would write it, so "1 literal" shows which literal it is.
	 */
	void (*values)(const struct acl_rt *acl, const char *prefix, struct strbuf *out);
	/*
	 * May be NULL. Start, without waiting and without side effects, the
	 * lookups a later eval will need (DNS queries), so that they run in
	 * parallel with the lookups the request waits for. Called at most once
	 * per request, when the request first suspends, for each acl a line
	 * still ahead may test.
	 */
	void (*prefetch)(const struct acl_rt *acl, struct eval_ctx *e);
	/*
	 * May be NULL. Undo what eval recorded for a request whose answer
	 * refuses it (vm_refund): kept is the record eval kept (vm_keep).
	 * Starts the undoing (a store call) without waiting for it; returns
	 * whether it started one (false: nothing was recorded).
	 */
	bool (*refund)(const struct acl_rt *acl, struct eval_ctx *e, void *kept);
	/*
	 * May be NULL. For a stateful type whose refund hook undoes all that
	 * its eval records (rate, distinct; not greylist): may its count be
	 * started for this request before the VM reaches a line that tests
	 * it (engine/vm.h, "Counting ahead"), so that its store call leaves
	 * with the request's first one? False when that gains nothing (a
	 * store that answers at once). When it answers true the VM calls
	 * eval with e->ahead set; eval's record (vm_keep) must then hold no
	 * pointer into the request (it may outlive it), and refund must not
	 * read e->req (NULL when it gives back for a request that is gone).
	 *
	 * To decide, the VM evaluates the acls tested before the counter on
	 * its lines; it evaluates only those that cannot wait: a type whose
	 * eval may begin a wait (vm_wait_begin, vm_acl_answer) must be
	 * stateful or have a prefetch hook.
	 */
	bool (*ahead)(const struct acl_rt *acl, struct eval_ctx *e);
	void (*free)(void *data);   /* may be NULL: data in the arena */
	/*
	 * May be NULL. For a type whose compile set indexable: its literal
	 * sets by form (engine/strkey.h) and whether it matches the empty
	 * value, so the compiler can fold consecutive lines into one SWITCH;
	 * false when this acl cannot be indexed after all.
	 */
	bool (*literals)(const struct acl_rt *acl, struct strmap *const **sets, bool *match_empty);
	/*
	 * May be NULL. For an acl of regexes only (no literal, no ${name}, no
	 * ""), which is true exactly when one of its patterns matches the
	 * attribute's value as multire_scan matches it: the number of its
	 * patterns, and when out is not NULL each of them (the codes
	 * borrowed: they live as long as the acl) and in *options the PCRE2
	 * options they were compiled with; 0 for any other acl. The compiler
	 * folds consecutive such lines into one multi-pattern SWITCH.
	 */
	size_t (*regexes)(const struct acl_rt *acl, struct multire_pattern *out, uint32_t *options);
};

/*
 * The i-th type of the table (acl/types.c: every request attribute but
 * policy_test_time, then the named types), or NULL past the end.
 */
const struct acl_type *acl_types_at(size_t i);

/* The type called name (case-insensitive), or NULL: the table's, then
 * those registered (the last registered wins). */
const struct acl_type *acl_type_find(const char *name);
/* The known type closest to an unknown name, or NULL (for hints). */
const char *acl_type_suggest(const char *name);
/* Append the names of the types that are not request attributes
 * ("day, time, country, ..."), for the hint of an unknown type. */
void acl_type_list_named(struct strbuf *out);
/* Add a type outside the table (not copied; must outlive every program).
 * For tests: production types are rows of the table. */
void acl_type_register(const struct acl_type *t);

/* The compiled data of an acl (its type's compile output). */
void *acl_data(const struct acl_rt *acl);
const char *acl_name(const struct acl_rt *acl);

#endif
