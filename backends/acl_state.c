/*
 * acl_state - greylist and rate acls (see acl_state.h). They build a key
 * from the request, ask the runtime's store, and give the action text what
 * they learnt (${greylist_remaining}, ${greylist_age}, ${rate_count}). The
 * memory store answers at once; Redis answers later and the request waits.
 */
#include "backends/acl_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/runtime.h"
#include "backends/store.h"
#include "engine/cidr.h"

/* ---- parameters -------------------------------------------------------- */

/* The parts a greylist key can be made of. */
enum grey_part { GP_CLIENT_NET, GP_CLIENT_ADDRESS, GP_SENDER, GP_SENDER_DOMAIN, GP_RECIPIENT,
		 GP_RECIPIENT_DOMAIN, GP_HELO_NAME, GP_CLIENT_NAME };
static const char *const grey_part_names[] = { "client_net", "client_address", "sender",
					       "sender_domain", "recipient", "recipient_domain",
					       "helo_name", "client_name" };
#define GREY_MAX_PARTS 8

struct grey_acl {
	struct grey_params p;
	enum grey_part part[GREY_MAX_PARTS];
	int nparts;
	int net4, net6;
	bool normalize;
};

/* "name=value": split a word; false when there is no '='. */
static bool param(const struct ast_word *w, char *name, size_t size, const char **value)
{
	const char *eq = strchr(w->s, '=');
	if (!eq || (size_t)(eq - w->s) >= size)
		return false;
	memcpy(name, w->s, (size_t)(eq - w->s));
	name[eq - w->s] = 0;
	*value = eq + 1;
	return true;
}

static bool parse_key(struct acl_compile *c, const struct ast_word *w, const char *v,
		      struct grey_acl *g)
{
	g->nparts = 0;
	while (*v) {
		const char *plus = strchr(v, '+');
		size_t n = plus ? (size_t)(plus - v) : strlen(v);
		int found = -1;
		for (size_t i = 0; i < ARRAY_LEN(grey_part_names); i++)
			if (strlen(grey_part_names[i]) == n && !strncmp(v, grey_part_names[i], n))
				found = (int)i;
		if (found < 0 || g->nparts == GREY_MAX_PARTS) {
			diag_error(c->diags, w->loc,
				   "bad greylist key part '%.*s'; use client_net, client_address, "
				   "sender, sender_domain, recipient, recipient_domain, helo_name "
				   "or client_name joined by '+'",
				   (int)n, v);
			return false;
		}
		g->part[g->nparts++] = (enum grey_part)found;
		v += n + (plus ? 1 : 0);
	}
	return g->nparts > 0;
}

static struct grey_acl *grey_defaults(struct acl_compile *c)
{
	struct grey_acl *g = arena_zalloc(c->arena, sizeof *g);
	/* postgrey's defaults: 300 s delay, 35 days, 2 days to retry, AWL after 5 */
	g->p = (struct grey_params){ .delay = 300, .expire = 35 * 86400,
				     .retry_window = 2 * 86400, .awl = 5 };
	g->part[0] = GP_CLIENT_NET;
	g->part[1] = GP_SENDER;
	g->part[2] = GP_RECIPIENT;
	g->nparts = 3;
	g->net4 = 24;
	g->net6 = 64;
	g->normalize = true;
	c->data = g;
	c->stateful = true;
	return g;
}

static bool grey_compile(struct acl_compile *c)
{
	struct grey_acl *g = grey_defaults(c);
	bool ok = true;
	for (size_t i = 0; i < c->acl->nvals; i++) {
		const struct ast_word *w = c->acl->vals[i];
		char name[32];
		const char *v;
		if (!param(w, name, sizeof name, &v)) {
			diag_error(c->diags, w->loc, "greylist takes NAME=VALUE parameters, not '%s'", w->s);
			ok = false;
		} else if (!strcmp(name, "delay") || !strcmp(name, "expire") ||
			   !strcmp(name, "retry_window")) {
			uint32_t *dst = name[0] == 'd' ? &g->p.delay
					: name[0] == 'e' ? &g->p.expire : &g->p.retry_window;
			if (!duration_parse(v, strlen(v), dst)) {
				diag_error(c->diags, w->loc,
					   "bad duration '%s': write a number with s, m, h or d", v);
				ok = false;
			}
		} else if (!strcmp(name, "awl")) {
			char *end;
			unsigned long a = strtoul(v, &end, 10);
			if (!*v || *end || a > 1000000) {
				diag_error(c->diags, w->loc, "awl takes a count (0 turns it off)");
				ok = false;
			}
			g->p.awl = (uint32_t)a;
		} else if (!strcmp(name, "key")) {
			ok &= parse_key(c, w, v, g);
		} else if (!strcmp(name, "net4") || !strcmp(name, "net6")) {
			char *end;
			long len = strtol(v, &end, 10);
			long max = name[3] == '4' ? 32 : 128;
			if (!*v || *end || len < 0 || len > max) {
				diag_error(c->diags, w->loc, "%s takes a prefix length 0..%ld", name, max);
				ok = false;
			}
			*(name[3] == '4' ? &g->net4 : &g->net6) = (int)len;
		} else if (!strcmp(name, "normalize")) {
			if (strcmp(v, "yes") && strcmp(v, "no")) {
				diag_error(c->diags, w->loc, "normalize takes yes or no");
				ok = false;
			}
			g->normalize = !strcmp(v, "yes");
		} else if (!strcmp(name, "tempfail")) {
			if (!tempfail_parse(v, &c->tempfail)) {
				diag_error(c->diags, w->loc, "tempfail takes match, nomatch or default");
				ok = false;
			}
		} else {
			diag_error(c->diags, w->loc,
				   "unknown greylist parameter '%s'; use delay, expire, retry_window, "
				   "awl, key, net4, net6, normalize or tempfail",
				   name);
			ok = false;
		}
	}
	if (ok && g->p.delay >= g->p.retry_window) {
		diag_error(c->diags, c->acl->loc,
			   "greylist delay (%u s) must be shorter than retry_window (%u s)", g->p.delay,
			   g->p.retry_window);
		ok = false;
	}
	return ok;
}

/* apolicy: "acl NAME greylisting time=MIN,lifetime=MIN,backend=...,root=..." */
static bool greylisting_compile(struct acl_compile *c)
{
	struct grey_acl *g = grey_defaults(c);
	bool ok = true;
	for (size_t i = 0; i < c->acl->nvals; i++) {
		const struct ast_word *w = c->acl->vals[i];
		char *copy = xstrdup(w->s), *save = NULL;
		for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(tok, '=');
			char *end;
			unsigned long v = eq ? strtoul(eq + 1, &end, 10) : 0;
			if (!eq) {
				diag_error(c->diags, w->loc, "greylisting takes name=value parameters");
				ok = false;
			} else if (!strncmp(tok, "time=", 5) || !strncmp(tok, "lifetime=", 9)) {
				if (!eq[1] || *end || v > UINT32_MAX / 60) {
					diag_error(c->diags, w->loc, "'%s': minutes expected", tok);
					ok = false;
				} else if (tok[0] == 't') {
					g->p.delay = (uint32_t)v * 60;
				} else {
					g->p.expire = (uint32_t)v * 60;
				}
			} else if (!strncmp(tok, "backend=", 8) || !strncmp(tok, "root=", 5)) {
				diag_warning(c->diags, w->loc,
					     "'%.*s' is ignored: greylisting uses mxacl's store (--store)",
					     (int)(eq - tok), tok);
			} else {
				diag_error(c->diags, w->loc,
					   "unknown greylisting parameter '%.*s'; use time or lifetime",
					   (int)(eq - tok), tok);
				ok = false;
			}
		}
		free(copy);
	}
	if (ok && g->p.delay >= g->p.retry_window)
		g->p.retry_window = g->p.delay + 2 * 86400;
	return ok;
}

/* ---- keys ---------------------------------------------------------------- */

static bool word_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
	       (ch >= 'A' && ch <= 'Z');
}

static bool starts_ci(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	return len >= n && ascii_nieq(s, prefix, n);
}

void grey_normalize_sender(const char *s, size_t len, char *out, size_t size)
{
	if (len == 0) {
		snprintf(out, size, "<>");
		return;
	}
	const char *at = memrchr(s, '@', len);
	const char *user = s, *dom = at ? at + 1 : s + len;
	size_t ulen = at ? (size_t)(at - s) : len, dlen = at ? len - (size_t)(dom - s) : 0;
	/* BATV: prvs=TAG=user */
	if (starts_ci(user, ulen, "prvs=")) {
		const char *eq = memchr(user + 5, '=', ulen - 5);
		if (eq) {
			ulen -= (size_t)(eq + 1 - user);
			user = eq + 1;
		}
	}
	/* SRS: SRS0=HASH=TT=domain=user, SRS1=HASH=fwd==HASH=TT=domain=user */
	if (starts_ci(user, ulen, "srs0=") || starts_ci(user, ulen, "srs1=")) {
		const char *body = user + 5, *end = user + ulen;
		if (ascii_lower(user[3]) == '1') {
			const char *dd = NULL;
			for (const char *q = body; q + 1 < end; q++)
				if (q[0] == '=' && q[1] == '=') {
					dd = q + 2;
					break;
				}
			body = dd ? dd : end;
		}
		/* skip HASH= and TT=, then domain=user */
		const char *q = body;
		for (int skip = 0; skip < 2 && q < end; skip++) {
			const char *eq = memchr(q, '=', (size_t)(end - q));
			q = eq ? eq + 1 : end;
		}
		const char *eq = q < end ? memchr(q, '=', (size_t)(end - q)) : NULL;
		if (eq) {
			dom = q;
			dlen = (size_t)(eq - q);
			user = eq + 1;
			ulen = (size_t)(end - user);
		}
	}
	const char *plus = memchr(user, '+', ulen);
	if (plus && plus != user)
		ulen = (size_t)(plus - user);
	size_t k = 0;
	for (size_t i = 0; i < ulen && k + 1 < size;) {
		/* a run of digits standing alone (\b\d+\b) becomes '#' */
		if (user[i] >= '0' && user[i] <= '9' && (i == 0 || !word_char(user[i - 1]))) {
			size_t j = i;
			while (j < ulen && user[j] >= '0' && user[j] <= '9')
				j++;
			if (j == ulen || !word_char(user[j])) {
				out[k++] = '#';
				i = j;
				continue;
			}
		}
		out[k++] = ascii_lower(user[i++]);
	}
	if (at && k + 1 < size)
		out[k++] = '@';
	for (size_t i = 0; i < dlen && k + 1 < size; i++)
		out[k++] = ascii_lower(dom[i]);
	out[k] = 0;
}

/* The client network of addr with the acl's prefix lengths ("192.0.2.0/24"). */
static void client_net(const struct grey_acl *g, const struct req_value *v, char *out, size_t size)
{
	struct ipaddr a;
	if (!v->len || !ip_parse(v->s, v->len, &a)) {
		snprintf(out, size, "%.*s", (int)v->len, v->s);
		return;
	}
	ip_mask(&a, (unsigned)(ip_is_v4(&a) ? g->net4 : g->net6));
	char buf[64];
	ip_format(&a, buf, sizeof buf);
	snprintf(out, size, "%s/%d", buf, ip_is_v4(&a) ? g->net4 : g->net6);
}

static const char *domain_of(const struct req_value *v, size_t *len)
{
	const char *at = memrchr(v->s, '@', v->len);
	*len = at ? v->len - (size_t)(at + 1 - v->s) : 0;
	return at ? at + 1 : "";
}

/* Append one key part for request r to b. */
static void grey_part(const struct grey_acl *g, enum grey_part part, struct request *r,
		      struct strbuf *b)
{
	char buf[1100];
	size_t n;
	const char *s;
	switch (part) {
	case GP_CLIENT_NET:
		client_net(g, &r->v[ATTR_client_address], buf, sizeof buf);
		sb_adds(b, buf);
		break;
	case GP_CLIENT_ADDRESS:
		sb_add(b, r->v[ATTR_client_address].s, r->v[ATTR_client_address].len);
		break;
	case GP_SENDER:
		if (g->normalize) {
			grey_normalize_sender(r->v[ATTR_sender].s, r->v[ATTR_sender].len, buf, sizeof buf);
			sb_adds(b, buf);
		} else {
			sb_adds(b, r->v[ATTR_sender].len ? req_lower(r, ATTR_sender) : "<>");
		}
		break;
	case GP_SENDER_DOMAIN:
	case GP_RECIPIENT_DOMAIN: {
		enum attr_id id = part == GP_SENDER_DOMAIN ? ATTR_sender : ATTR_recipient;
		s = domain_of(&r->v[id], &n);
		for (size_t i = 0; i < n; i++)
			sb_addc(b, ascii_lower(s[i]));
		if (!n)
			sb_adds(b, "<>");
		break;
	}
	case GP_RECIPIENT:
		sb_adds(b, req_lower(r, ATTR_recipient));
		break;
	case GP_HELO_NAME:
		sb_adds(b, req_lower(r, ATTR_helo_name));
		break;
	case GP_CLIENT_NAME:
		sb_adds(b, req_lower(r, ATTR_client_name));
		break;
	}
}

/* ---- asking the store ------------------------------------------------------ */

/* ${var} = v, for the request waiting on w. */
static void u32_var(struct vm_wait *w, enum var_id var, uint32_t v)
{
	char buf[16];
	snprintf(buf, sizeof buf, "%u", v);
	vm_wait_set_var(w, var, buf);
}

/* The store's answer, at once (memory) or later (Redis): arg is the wait. */
static void grey_answered(void *arg, enum store_status st, const struct grey_answer *a)
{
	struct vm_wait *w = arg;
	if (st != STORE_OK) {
		vm_wait_done(w, TRI_TEMPFAIL);
		return;
	}
	u32_var(w, VAR_greylist_age, a->age);
	if (a->greylisted)
		u32_var(w, VAR_greylist_remaining, a->remaining);
	vm_wait_done(w, a->greylisted ? TRI_TRUE : TRI_FALSE);
}

static enum tri grey_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct grey_acl *g = acl_data(acl);
	struct request *r = e->req;
	struct strbuf key;
	sb_init(&key);
	for (int i = 0; i < g->nparts; i++) {
		if (i)
			sb_addc(&key, '/');
		grey_part(g, g->part[i], r, &key);
	}
	char net[80];
	client_net(g, &r->v[ATTR_client_address], net, sizeof net);
	struct grey_query q = { .triplet = key.s, .triplet_len = key.len, .net = net,
				.net_len = strlen(net), .now = r->now, .p = g->p };
	store_grey(runtime_store(e->rt), &q, grey_answered, vm_wait_begin(e));
	sb_free(&key);
	return TRI_PENDING;
}

static void grey_describe(const struct acl_rt *acl, struct strbuf *out)
{
	const struct grey_acl *g = acl_data(acl);
	sb_printf(out, "greylist delay %us, expire %us, retry_window %us, awl %u, key ", g->p.delay,
		  g->p.expire, g->p.retry_window, g->p.awl);
	for (int i = 0; i < g->nparts; i++)
		sb_printf(out, "%s%s", i ? "+" : "", grey_part_names[g->part[i]]);
}

const struct acl_type acl_greylist_type = {
	.name = "greylist", .attr = -1, .values_optional = true, .compile = grey_compile,
	.eval = grey_eval, .describe = grey_describe,
};

const struct acl_type acl_greylisting_type = {
	.name = "greylisting", .attr = -1, .values_optional = true,
	.compile = greylisting_compile, .eval = grey_eval, .describe = grey_describe,
};

/* ---- rate ------------------------------------------------------------------ */

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
			diag_error(c->diags, kw->loc, "'%.*s' is not a request attribute", (int)n, v);
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
		if (strncmp(w->s, "tempfail=", 9) || !tempfail_parse(w->s + 9, &c->tempfail)) {
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
	u32_var(w, VAR_rate_count, a->count);
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
