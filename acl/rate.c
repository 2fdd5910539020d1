/*
 * rate - the rate acl type, whose counters are in the store:
 *
 *   acl NAME rate ATTR[+ATTR...] LIMIT/DUR [count=requests|recipients|bytes]
 *                                          [tempfail=match|nomatch|default]
 *
 * It matches when this request would take its key's count within DUR over
 * LIMIT (the key: the attributes' values, sent or derived: "sender_domain"
 * is the sender's domain, engine/attrs.h), and gives ${rate_count} to the
 * action text. What a request counts is its count= kind, one row of
 * rate_counts[]: 1 (requests), its recipient_count or its size. A request
 * that matches is not counted (a refused message does not use up the
 * quota), and one that another line refuses is refunded (rate_refund:
 * the VM calls it when the final answer refuses, engine/vm.h). The check
 * and the update are one atomic step in the store
 * (memory, or Redis shared by several gateways); requests use the exact
 * log, recipients and bytes the slotted one (backends/store.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/runtime.h"
#include "backends/store.h"
#include "engine/acl.h"
#include "engine/vm.h"

#define RATE_MAX_PARTS 8

/*
 * What a rate counts: one row each. attr: the attribute whose value is a
 * request's amount (-1: each request is 1). max: the largest LIMIT (the
 * exact log holds up to LIMIT event times; the slotted one is bounded
 * whatever the limit, and 2^40 bytes (1 TiB) keeps every sum exact in
 * Redis's Lua doubles). suffixes: LIMIT may end in K, M, G or T (powers
 * of 1024).
 */
struct rate_count {
	const char *name;
	int attr;
	bool slotted;
	uint64_t max;
	bool suffixes;
};
static const struct rate_count rate_counts[] = {
	{ "requests", -1, false, 100000, false },
	{ "recipients", ATTR_recipient_count, true, 1ull << 40, false },
	{ "bytes", ATTR_size, true, 1ull << 40, true },
};

struct rate_acl {
	int attr[RATE_MAX_PARTS];
	int nattr;
	const struct rate_count *count;
	uint64_t limit;
	uint32_t window;
	const char *spec;        /* "sasl_username|100/3600": the key's namespace;
				    "recipients|..." and "bytes|..." for those */
};

/* "LIMIT" of a count kind into *out: digits, and for bytes an optional
 * K, M, G or T; false when it is not one, 0, or over the kind's max. */
static bool rate_limit_parse(const char *s, size_t n, const struct rate_count *k, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > k->max)
			return false;
	}
	if (i == 0)
		return false;
	if (i + 1 == n && k->suffixes) {
		const char *units = "KMGT";
		char c = (char)(s[i] & ~0x20);          /* k is K */
		const char *u = c ? strchr(units, c) : NULL;
		if (!u)
			return false;
		for (long p = u - units; p >= 0; p--)
			if ((v *= 1024) > k->max)
				return false;
		i++;
	}
	*out = v;
	return i == n && v > 0;
}

static bool rate_compile(struct acl_compile *c)
{
	const struct pol_acl *a = c->acl;
	struct rate_acl *r = arena_zalloc(c->arena, sizeof *r);
	c->data = r;
	c->stateful = true;
	if (a->nvals < 2) {
		diag_error(c->diags, a->loc, "rate needs a key and a limit: rate ATTR[+ATTR] LIMIT/DUR");
		return false;
	}
	const struct ast_word *kw = a->vals[0], *lw = a->vals[1];
	for (const char *v = kw->s; *v;) {
		const char *plus = strchr(v, '+');
		size_t n = plus ? (size_t)(plus - v) : strlen(v);
		int id = attr_lookup(v, n);
		if (id < 0 || r->nattr == RATE_MAX_PARTS) {
			const char *hint = id < 0 && n ? suggest_word(v, n, attr_name_at, NULL) : NULL;
			if (hint)
				diag_error(c->diags, kw->loc,
					   "'%.*s' is not a request attribute; did you mean '%s'?", (int)n,
					   v, hint);
			else
				diag_error(c->diags, kw->loc, "'%.*s' is not a request attribute", (int)n,
					   v);
			return false;
		}
		r->attr[r->nattr++] = id;
		v += n + (plus ? 1 : 0);
	}
	r->count = &rate_counts[0];
	for (size_t i = 2; i < a->nvals; i++) {
		const struct ast_word *w = a->vals[i];
		if (!strncmp(w->s, "count=", 6)) {
			size_t k = 0;
			while (k < ARRAY_LEN(rate_counts) && strcmp(w->s + 6, rate_counts[k].name))
				k++;
			if (k == ARRAY_LEN(rate_counts)) {
				diag_error(c->diags, w->loc,
					   "bad count '%s': rate counts requests, recipients or bytes",
					   w->s + 6);
				return false;
			}
			r->count = &rate_counts[k];
		} else if (strncmp(w->s, "tempfail=", 9) ||
			   !acl_tempfail_parse(w->s + 9, &c->tempfail)) {
			diag_error(c->diags, w->loc,
				   "rate takes count=requests|recipients|bytes and "
				   "tempfail=match|nomatch|default here");
			return false;
		}
	}
	const char *slash = strchr(lw->s, '/');
	if (!slash || !rate_limit_parse(lw->s, (size_t)(slash - lw->s), r->count, &r->limit) ||
	    !duration_parse(slash + 1, strlen(slash + 1), &r->window) || r->window == 0) {
		if (r->count->suffixes)
			diag_error(c->diags, lw->loc,
				   "bad rate '%s': write LIMIT/DUR, such as 50M/1d (limit 1..%llu, "
				   "or with K, M, G or T)", lw->s, (unsigned long long)r->count->max);
		else
			diag_error(c->diags, lw->loc,
				   "bad rate '%s': write LIMIT/DUR, such as 100/1h (limit 1..%llu)",
				   lw->s, (unsigned long long)r->count->max);
		return false;
	}
	if (r->count->attr >= 0) {
		c->used_attr[r->count->attr] = true;   /* the decision log shows the amount */
		c->stage_attr = r->count->attr;
	}
	/* a key of size or recipient_count counts per distinct value: almost
	 * always meant as count= */
	for (int i = 0; i < r->nattr; i++)
		if (r->attr[i] == ATTR_size || r->attr[i] == ATTR_recipient_count)
			diag_warning(c->diags, kw->loc,
				     "rate keyed by '%s' counts each distinct %s value apart; to add "
				     "up %s, write count=%s",
				     attr_name((enum attr_id)r->attr[i]),
				     attr_name((enum attr_id)r->attr[i]),
				     r->attr[i] == ATTR_size ? "message sizes" : "recipients",
				     r->attr[i] == ATTR_size ? "bytes" : "recipients");
	if (r->count == &rate_counts[0])     /* today's keys: existing state stays */
		r->spec = arena_printf(c->arena, "%s|%llu/%u", kw->s,
				       (unsigned long long)r->limit, r->window);
	else
		r->spec = arena_printf(c->arena, "%s|%s|%llu/%u", r->count->name, kw->s,
				       (unsigned long long)r->limit, r->window);
	return true;
}

/* What a request recorded, for its refund: the query as it was sent
 * (its key in key[], so the record holds no pointer into the request:
 * acl.h, ahead) and the answer's event id. */
struct rate_kept {
	struct rate_query q;
	uint64_t id;
	bool recorded;
	char key[];
};

static void rate_answered(void *arg, enum store_status st, const struct rate_answer *a)
{
	struct vm_wait *w = arg;
	if (st != STORE_OK) {
		vm_wait_done(w, TRI_TEMPFAIL);
		return;
	}
	struct rate_kept *k = vm_wait_kept(w);
	if (k && !a->over && k->q.amount) {
		k->recorded = true;
		k->id = a->id;
	}
	vm_wait_set_uint(w, VAR_rate_count, a->count);
	vm_wait_done(w, a->over ? TRI_TRUE : TRI_FALSE);
}

/* A request's amount: its attribute as a decimal number; empty, not a
 * number, or past 2^40 (no limit can be that high) count as 0 (nothing). */
static uint64_t rate_amount(const struct req_value *v)
{
	uint64_t n = 0;
	for (size_t i = 0; i < v->len; i++) {
		if (v->s[i] < '0' || v->s[i] > '9' || (n = n * 10 + (uint64_t)(v->s[i] - '0')) >> 40)
			return 0;
	}
	return n;
}

static enum tri rate_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct rate_acl *ra = acl_data(acl);
	struct strbuf key;
	sb_init(&key);
	sb_adds(&key, ra->spec);
	for (int i = 0; i < ra->nattr; i++) {
		sb_addc(&key, '|');
		sb_adds(&key, req_lower(e->req, (enum attr_id)ra->attr[i]));
	}
	struct rate_query q = { .key = key.s, .key_len = key.len, .limit = ra->limit,
				.window = ra->window, .now = e->req->now, .amount = 1,
				.slotted = ra->count->slotted };
	if (ra->count->attr >= 0)
		q.amount = rate_amount(req_get(e->req, (enum attr_id)ra->count->attr));
	if (vm_tracing(e))
		vm_tracef(e, "    rate key %s, count=%s: adds %llu, limit %llu in %us\n",
			  key.s + strlen(ra->spec) + 1, ra->count->name,
			  (unsigned long long)q.amount, (unsigned long long)ra->limit, ra->window);
	runtime_count(e->rt, RC_rate_checks, 1);
	if (e->ahead)
		runtime_count(e->rt, RC_counted_ahead, 1);
	if (q.amount) {
		struct rate_kept *k = vm_keep(e, sizeof *k + key.len + 1);
		k->q = q;
		k->q.key = memcpy(k->key, key.s, key.len + 1);
	}
	store_rate(runtime_store(e->rt), &q, rate_answered, vm_wait_begin(e));
	sb_free(&key);
	return TRI_PENDING;
}

/* A refund's answer: nobody waits for it; a failure is only counted by
 * the store (the amount then stays until it leaves the window). */
static void rate_refunded(void *arg, enum store_status st, unsigned long changed)
{
	(void)arg;
	(void)st;
	(void)changed;
}

/* acl_type.refund: take back what this request added (refused, or
 * counted ahead for a line never reached). */
static bool rate_refund(const struct acl_rt *acl, struct eval_ctx *e, void *kept)
{
	(void)acl;
	const struct rate_kept *k = kept;
	if (!k->recorded)
		return false;
	struct store_refund r = { .kind = REFUND_RATE, .key = k->q.key, .key_len = k->q.key_len,
				  .window = k->q.window, .now = k->q.now, .slotted = k->q.slotted,
				  .amount = k->q.amount, .id = k->id };
	runtime_count(e->rt, e->ahead ? RC_ahead_given_back : RC_refunds, 1);
	store_refund(runtime_store(e->rt), &r, rate_refunded, NULL);
	return true;
}

/* acl_type.ahead: worth it where the store answers later (Redis); the
 * memory store answers at once, so nothing would be gained. */
static bool rate_ahead(const struct acl_rt *acl, struct eval_ctx *e)
{
	(void)acl;
	return !store_is_memory(runtime_store(e->rt));
}

static void rate_describe(const struct acl_rt *acl, struct strbuf *out)
{
	const struct rate_acl *r = acl_data(acl);
	sb_printf(out, "rate of ");
	for (int i = 0; i < r->nattr; i++)
		sb_printf(out, "%s%s", i ? "+" : "", attr_name((enum attr_id)r->attr[i]));
	if (r->count == &rate_counts[0])
		sb_printf(out, " over %llu in %us", (unsigned long long)r->limit, r->window);
	else
		sb_printf(out, " over %llu %s in %us", (unsigned long long)r->limit,
			  r->count->name, r->window);
}

const struct acl_type acl_rate_type = {
	.name = "rate", .attr = -1, .compile = rate_compile, .eval = rate_eval,
	.describe = rate_describe, .refund = rate_refund, .ahead = rate_ahead,
};
