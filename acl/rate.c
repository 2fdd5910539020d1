/*
 * rate - the rate acl type, whose counters are in the store:
 *
 *   acl NAME rate ATTR[+ATTR...] LIMIT/DUR [tempfail=match|nomatch|default]
 *
 * It matches when this request makes more than LIMIT events for its key
 * (the attributes' values, sent or derived: "sender_domain" is the
 * sender's domain, engine/attrs.h) in DUR, and gives ${rate_count} to the action
 * text. The count is one atomic check-and-update in the store (memory, or
 * Redis shared by several gateways).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/runtime.h"
#include "backends/store.h"
#include "engine/acl.h"
#include "engine/vm.h"

#define RATE_MAX_PARTS 8
#define RATE_MAX_LIMIT 100000

struct rate_acl {
	int attr[RATE_MAX_PARTS];
	int nattr;
	uint32_t limit, window;
	const char *spec;        /* "sasl_username|100/3600": the key's namespace */
};

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
	const char *slash = strchr(lw->s, '/');
	char *end;
	unsigned long limit = strtoul(lw->s, &end, 10);
	if (!slash || end != slash || slash == lw->s || limit == 0 || limit > RATE_MAX_LIMIT ||
	    !duration_parse(slash + 1, strlen(slash + 1), &r->window) || r->window == 0) {
		diag_error(c->diags, lw->loc,
			   "bad rate '%s': write LIMIT/DUR, such as 100/1h (limit 1..%d)", lw->s,
			   RATE_MAX_LIMIT);
		return false;
	}
	r->limit = (uint32_t)limit;
	for (size_t i = 2; i < a->nvals; i++) {
		const struct ast_word *w = a->vals[i];
		if (strncmp(w->s, "tempfail=", 9) || !acl_tempfail_parse(w->s + 9, &c->tempfail)) {
			diag_error(c->diags, w->loc, "rate takes tempfail=match|nomatch|default here");
			return false;
		}
	}
	r->spec = arena_printf(c->arena, "%s|%u/%u", kw->s, r->limit, r->window);
	return true;
}

static void rate_answered(void *arg, enum store_status st, const struct rate_answer *a)
{
	struct vm_wait *w = arg;
	if (st != STORE_OK) {
		vm_wait_done(w, TRI_TEMPFAIL);
		return;
	}
	vm_wait_set_uint(w, VAR_rate_count, a->count);
	vm_wait_done(w, a->over ? TRI_TRUE : TRI_FALSE);
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
				.window = ra->window, .now = e->req->now };
	runtime_count(e->rt, RC_rate_checks, 1);
	store_rate(runtime_store(e->rt), &q, rate_answered, vm_wait_begin(e));
	sb_free(&key);
	return TRI_PENDING;
}

static void rate_describe(const struct acl_rt *acl, struct strbuf *out)
{
	const struct rate_acl *r = acl_data(acl);
	sb_printf(out, "rate of ");
	for (int i = 0; i < r->nattr; i++)
		sb_printf(out, "%s%s", i ? "+" : "", attr_name((enum attr_id)r->attr[i]));
	sb_printf(out, " over %u in %us", r->limit, r->window);
}

const struct acl_type acl_rate_type = {
	.name = "rate", .attr = -1, .compile = rate_compile, .eval = rate_eval,
	.describe = rate_describe,
};
