/*
 * distinct - the distinct-value counter acl type, whose sets are in the
 * store:
 *
 *   acl NAME distinct KEY VALUE LIMIT/DUR [tempfail=match|nomatch|default]
 *
 * KEY is an attribute or several joined with + (sent or derived, as a
 * rate's key: engine/attrs.h); VALUE is one attribute or "country", the
 * client's country as the country acl finds it (engine/geoip.h). It
 * matches when this request's VALUE would make more than LIMIT distinct
 * values for its KEY within DUR ("acl roaming distinct sasl_username
 * country 3/1h": an account used from a fourth country within an hour),
 * and gives ${distinct_count} to the action text. The check is one atomic
 * check-and-update in the store (store.h: a value seen again refreshes its
 * time; the request that would pass the limit is not recorded), and a
 * value this request added to the set leaves it again when the request's
 * final answer refuses it (distinct_refund, engine/vm.h's vm_refund).
 *
 * A request whose KEY (any part of it) or VALUE is empty (no SASL login, a
 * client the database has no country for) is not counted and does not
 * match: it asks nothing of the store. Values are compared folded to lower
 * case, as a rate's key is (countries are upper case codes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/runtime.h"
#include "backends/store.h"
#include "engine/acl.h"
#include "engine/geoip.h"
#include "engine/vm.h"

#define DISTINCT_MAX_PARTS 8
/* The set of a key holds at most LIMIT whole values, and the memory store
 * walks it on every check: a limit keeps both small. */
#define DISTINCT_MAX_LIMIT 1000
#define DISTINCT_COUNTRY (-1)     /* value: the client's country */

struct distinct_acl {
	int attr[DISTINCT_MAX_PARTS];
	int nattr;
	int value;               /* an attribute id, or DISTINCT_COUNTRY */
	const struct geoip *g;   /* for the country */
	uint32_t limit, window;
	const char *spec;        /* "sasl_username|country|3/3600": the key's namespace */
};

static const char *const distinct_form =
	"distinct KEY VALUE LIMIT/DUR, such as: distinct sasl_username country 3/1h";

/* Report an unknown attribute name (of n bytes at v) with a hint. */
static void bad_attr(struct acl_compile *c, struct loc loc, const char *v, size_t n,
		     const char *extra)
{
	const char *hint = n ? suggest_word(v, n, attr_name_at, NULL) : NULL;
	if (hint)
		diag_error(c->diags, loc, "'%.*s' is not a request attribute%s; did you mean '%s'?",
			   (int)n, v, extra, hint);
	else
		diag_error(c->diags, loc, "'%.*s' is not a request attribute%s", (int)n, v, extra);
}

/* Mark an attribute read, so the decision log shows it (and its source,
 * from which a replay rebuilds it). */
static void mark_used(struct acl_compile *c, int id)
{
	if (c->used_attr)
		c->used_attr[attr_root((enum attr_id)id)] = true;
}

static bool distinct_compile(struct acl_compile *c)
{
	const struct pol_acl *a = c->acl;
	struct distinct_acl *d = arena_zalloc(c->arena, sizeof *d);
	c->data = d;
	c->stateful = true;
	if (a->nvals < 3) {
		diag_error(c->diags, a->loc, "distinct needs a key, a value and a limit: %s",
			   distinct_form);
		return false;
	}
	const struct ast_word *kw = a->vals[0], *vw = a->vals[1], *lw = a->vals[2];
	struct strbuf spec;
	sb_init(&spec);
	for (const char *v = kw->s; *v;) {
		const char *plus = strchr(v, '+');
		size_t n = plus ? (size_t)(plus - v) : strlen(v);
		int id = n ? attr_lookup(v, n) : -1;
		if (id < 0 || d->nattr == DISTINCT_MAX_PARTS || (plus && !plus[1])) {
			if (!n || (plus && !plus[1]))
				diag_error(c->diags, kw->loc,
					   "an empty attribute name in the key '%s': join names "
					   "with one +, such as sasl_username+client_address",
					   kw->s);
			else if (id < 0)
				bad_attr(c, kw->loc, v, n, "");
			else
				diag_error(c->diags, kw->loc, "a distinct key joins at most %d attributes",
					   DISTINCT_MAX_PARTS);
			sb_free(&spec);
			return false;
		}
		d->attr[d->nattr++] = id;
		mark_used(c, id);
		sb_printf(&spec, "%s%s", d->nattr > 1 ? "+" : "", attr_name((enum attr_id)id));
		v += n + (plus ? 1 : 0);
	}
	if (strlen(vw->s) == 7 && ascii_nieq(vw->s, "country", 7)) {
		d->value = DISTINCT_COUNTRY;
		d->g = c->geoip;
		mark_used(c, ATTR_client_address);
		if (!d->g && !c->geoip_failed) {
			diag_error(c->diags, vw->loc,
				   "distinct by country needs a GeoIP database: set geoip FILE, or "
				   "mxacld --geoip FILE");
			sb_free(&spec);
			return false;
		}
	} else {
		d->value = attr_lookup(vw->s, strlen(vw->s));
		if (d->value < 0) {
			bad_attr(c, vw->loc, vw->s, strlen(vw->s), " or 'country'");
			sb_free(&spec);
			return false;
		}
		mark_used(c, d->value);
	}
	const char *slash = strchr(lw->s, '/');
	char *end;
	unsigned long limit = strtoul(lw->s, &end, 10);
	if (!slash || end != slash || slash == lw->s || limit == 0 || limit > DISTINCT_MAX_LIMIT ||
	    !duration_parse(slash + 1, strlen(slash + 1), &d->window) || d->window == 0) {
		diag_error(c->diags, lw->loc,
			   "bad distinct limit '%s': write LIMIT/DUR, such as 3/1h (limit 1..%d)",
			   lw->s, DISTINCT_MAX_LIMIT);
		sb_free(&spec);
		return false;
	}
	d->limit = (uint32_t)limit;
	for (size_t i = 3; i < a->nvals; i++) {
		const struct ast_word *w = a->vals[i];
		if (strncmp(w->s, "tempfail=", 9) || !acl_tempfail_parse(w->s + 9, &c->tempfail)) {
			diag_error(c->diags, w->loc,
				   "distinct takes tempfail=match|nomatch|default here");
			sb_free(&spec);
			return false;
		}
	}
	d->spec = arena_printf(c->arena, "%s|%s|%u/%u", spec.s,
			       d->value == DISTINCT_COUNTRY ? "country"
							    : attr_name((enum attr_id)d->value),
			       d->limit, d->window);
	sb_free(&spec);
	return true;
}

/* What a request recorded, for its refund: the query as it was sent (key
 * and value in buf[], so the record holds no pointer into the request:
 * acl.h, ahead), and whether the value joined the set. */
struct distinct_kept {
	struct distinct_query q;
	bool added;
	char buf[];
};

static void distinct_answered(void *arg, enum store_status st, const struct distinct_answer *a)
{
	struct vm_wait *w = arg;
	if (st != STORE_OK) {
		vm_wait_done(w, TRI_TEMPFAIL);
		return;
	}
	struct distinct_kept *k = vm_wait_kept(w);
	if (k && a->added && !a->over)
		k->added = true;
	vm_wait_set_uint(w, VAR_distinct_count, a->count);
	vm_wait_done(w, a->over ? TRI_TRUE : TRI_FALSE);
}

/* The request's value: an attribute's (folded), or the client's country
 * ("" when unknown). */
static const char *distinct_value(const struct distinct_acl *d, struct request *r, char cc[3])
{
	if (d->value != DISTINCT_COUNTRY)
		return req_lower(r, (enum attr_id)d->value);
	const struct req_value *v = &r->v[ATTR_client_address];
	char continent[3];
	cc[0] = 0;
	if (!d->g || !v->len || geoip_lookup(d->g, v->s, v->len, cc, continent) != GEOIP_FOUND)
		cc[0] = 0;
	return cc;
}

static enum tri distinct_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct distinct_acl *d = acl_data(acl);
	char cc[3];
	const char *value = distinct_value(d, e->req, cc);
	if (!*value) {
		vm_tracef(e, "    distinct %s: no %s: not counted\n", acl_name(acl),
			  d->value == DISTINCT_COUNTRY ? "country"
						       : attr_name((enum attr_id)d->value));
		return TRI_FALSE;
	}
	struct strbuf key;
	sb_init(&key);
	sb_adds(&key, d->spec);
	for (int i = 0; i < d->nattr; i++) {
		const char *part = req_lower(e->req, (enum attr_id)d->attr[i]);
		if (!*part) {
			vm_tracef(e, "    distinct %s: no %s: not counted\n", acl_name(acl),
				  attr_name((enum attr_id)d->attr[i]));
			sb_free(&key);
			return TRI_FALSE;
		}
		sb_addc(&key, '|');
		sb_adds(&key, part);
	}
	struct distinct_query q = { .key = key.s, .key_len = key.len, .value = value,
				    .value_len = strlen(value), .limit = d->limit,
				    .window = d->window, .now = e->req->now };
	runtime_count(e->rt, RC_distinct_checks, 1);
	if (e->ahead)
		runtime_count(e->rt, RC_counted_ahead, 1);
	struct distinct_kept *k = vm_keep(e, sizeof *k + key.len + 1 + q.value_len + 1);
	k->q = q;
	k->q.key = memcpy(k->buf, key.s, key.len + 1);
	k->q.value = memcpy(k->buf + key.len + 1, value, q.value_len + 1);
	store_distinct(runtime_store(e->rt), &q, distinct_answered, vm_wait_begin(e));
	sb_free(&key);
	return TRI_PENDING;
}

/* A refund's answer: nobody waits for it (a failure leaves the value to
 * leave the window). */
static void distinct_refunded(void *arg, enum store_status st, unsigned long changed)
{
	(void)arg;
	(void)st;
	(void)changed;
}

/* acl_type.refund: take out the value this request added. */
static bool distinct_refund(const struct acl_rt *acl, struct eval_ctx *e, void *kept)
{
	(void)acl;
	const struct distinct_kept *k = kept;
	if (!k->added)
		return false;
	struct store_refund r = { .kind = REFUND_DISTINCT, .key = k->q.key,
				  .key_len = k->q.key_len, .window = k->q.window, .now = k->q.now,
				  .value = k->q.value, .value_len = k->q.value_len };
	runtime_count(e->rt, e->ahead ? RC_ahead_given_back : RC_refunds, 1);
	store_refund(runtime_store(e->rt), &r, distinct_refunded, NULL);
	return true;
}

/* acl_type.ahead: as rate's, worth it where the store answers later. */
static bool distinct_ahead(const struct acl_rt *acl, struct eval_ctx *e)
{
	(void)acl;
	return !store_is_memory(runtime_store(e->rt));
}

static void distinct_describe(const struct acl_rt *acl, struct strbuf *out)
{
	const struct distinct_acl *d = acl_data(acl);
	sb_printf(out, "distinct ");
	sb_adds(out, d->value == DISTINCT_COUNTRY ? "country" : attr_name((enum attr_id)d->value));
	sb_adds(out, " of ");
	for (int i = 0; i < d->nattr; i++)
		sb_printf(out, "%s%s", i ? "+" : "", attr_name((enum attr_id)d->attr[i]));
	sb_printf(out, " over %u in %us", d->limit, d->window);
}

const struct acl_type acl_distinct_type = {
	.name = "distinct", .attr = -1, .compile = distinct_compile, .eval = distinct_eval,
	.describe = distinct_describe, .refund = distinct_refund, .ahead = distinct_ahead,
};
