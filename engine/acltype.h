/*
 * acltype - what an acl type is: how its values compile and how a request
 * is matched against them. The built-in types (one per request attribute,
 * addresses, numbers, day, time) live in matchers.c; types that wait for
 * something (DNS, the state store) register themselves the same way and
 * use the vm_wait calls below to suspend the request.
 *
 * Every evaluation answers TRI_TRUE, TRI_FALSE or TRI_TEMPFAIL at once, or
 * TRI_PENDING after vm_wait_begin: the answer then arrives later through
 * vm_wait_done (exactly once, also when the lookup fails or times out).
 * A temporary failure is never turned into "no match" by the type; the
 * acl's tempfail setting decides (see program.h).
 */
#ifndef MXACL_ACLTYPE_H
#define MXACL_ACLTYPE_H

#include <stdbool.h>
#include <time.h>

#include "engine/engine.h"
#include "engine/request.h"
#include "grammar/diag.h"
#include "grammar/policy.h"
#include "util/util.h"

enum tri { TRI_FALSE = 0, TRI_TRUE = 1, TRI_TEMPFAIL = 2, TRI_PENDING = 3 };

struct acl_rt;
struct runtime;
struct vm;

/* What a type's compile function gets. */
struct acl_compile {
	struct arena *arena;        /* lives as long as the program */
	struct diags *diags;
	const struct pol_acl *acl;  /* name, type word, value words */
	void *data;                 /* out: the compiled matcher */
	bool indexable;             /* out: literal strings only (see compile.c) */
	bool stateful;              /* out: counts or records when evaluated, so
				       the compiler tests it last on its line */
	int tempfail;               /* out: a "tempfail=" value (enum
				       tempfail_mode), or -1 for the global one */
	const struct geoip *geoip;  /* the program's GeoIP database, or NULL */
	bool geoip_failed;          /* it was named but did not open (reported) */
};

/*
 * Values that lookups give to action text: ${greylist_remaining}, ... Ids
 * follow the request attributes' (ATTR_COUNT + n).
 */
#define VAR_LIST(X)            \
	X(greylist_remaining)  \
	X(greylist_age)        \
	X(rate_count)          \
	X(rbl_zone)            \
	X(rbl_answer)          \
	X(rbl_txt)             \
	X(spf_result)          \
	X(spf_received)

enum var_id {
	VAR_BASE = ATTR_COUNT - 1,
#define X(n) VAR_##n,
	VAR_LIST(X)
#undef X
	VAR_END
};

/* Parse "tempfail=match|nomatch|default" into *mode; false if not one. */
bool tempfail_parse(const char *value, int *mode);

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
	 * May be NULL. Start, without waiting and without side effects, the
	 * lookups a later eval will need (DNS queries), so that they run in
	 * parallel with the lookups the request waits for. Called at most once
	 * per request, when the request first suspends, for each acl a line
	 * still ahead may test.
	 */
	void (*prefetch)(const struct acl_rt *acl, struct eval_ctx *e);
	void (*free)(void *data);   /* may be NULL: data in the arena */
};

/* The type called name (case-insensitive), or NULL. */
const struct acl_type *acl_type_find(const char *name);
/* The known type closest to an unknown name, or NULL (for hints). */
const char *acl_type_suggest(const char *name);
/* Append the names of the built-in types that are not request attributes
 * ("day, time, country, ..."), for the hint of an unknown type. */
void acl_type_list_named(struct strbuf *out);
/* Add a type (not copied; must outlive every program). Tests and backends. */
void acl_type_register(const struct acl_type *t);

/* The compiled data of an acl (its type's compile output). */
void *acl_data(const struct acl_rt *acl);
const char *acl_name(const struct acl_rt *acl);

/*
 * Suspend the current request on this acl: call it first, then start the
 * lookup, keep the returned wait, and return TRI_PENDING from eval. The
 * answer goes to vm_wait_done(w, answer), with its ${vars} set before
 * through vm_wait_set_var, the same way whenever it comes: before eval
 * returns (a store or cache that answers at once: the VM takes it from
 * there and goes on at once) or later from the loop (the request resumes
 * from the loop). w is invalid after vm_wait_done. If the request was
 * abandoned meanwhile, vm_wait_done only counts it. Beginning a wait
 * allocates nothing.
 */
struct vm_wait;
struct vm_wait *vm_wait_begin(struct eval_ctx *e);
void vm_wait_done(struct vm_wait *w, enum tri answer);
/* Give ${var} a value for this request (copied into the request's arena). */
void eval_set_var(struct eval_ctx *e, enum var_id var, const char *value);
/* The value of ${var} set so far in this request, or NULL. */
const char *eval_get_var(struct eval_ctx *e, enum var_id var);
/* The same from an asynchronous answer, before vm_wait_done; a no-op when
 * the request was abandoned. */
void vm_wait_set_var(struct vm_wait *w, enum var_id var, const char *value);

/*
 * The request's deadline slot (0 until a lookup sets it), so that every
 * lookup of one request ends by the same instant: see
 * runtime_dns_deadline (backends/runtime.h).
 */
uint64_t *eval_deadline(struct eval_ctx *e);

/* Local time of the request's clock, computed once per request. */
const struct tm *eval_localtime(struct eval_ctx *e);

#endif
