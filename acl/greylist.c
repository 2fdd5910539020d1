/*
 * greylist - the greylist and greylisting acls (see greylist.h). They build
 * a triplet key from the request, ask the runtime's store, and give the
 * action text what they learnt (${greylist_remaining}, ${greylist_age},
 * ${greylist_reason}: what the check did, also on the decision line).
 * The memory store answers at once, Redis later: both through the VM's
 * wait (engine/vm.h).
 */
#include "acl/greylist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/runtime.h"
#include "backends/store.h"
#include "engine/acl.h"
#include "engine/cidr.h"
#include "engine/vm.h"

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

/* A key with the recipient needs it sent: the compiler warns about a
 * greylist reached only where it is empty (END-OF-MESSAGE with several
 * recipients: engine/stage.h). */
static bool grey_stage(struct acl_compile *c, const struct grey_acl *g, bool ok)
{
	c->stage_attr = -1;
	for (int i = 0; i < g->nparts; i++)
		if (g->part[i] == GP_RECIPIENT || g->part[i] == GP_RECIPIENT_DOMAIN)
			c->stage_attr = ATTR_recipient;
	return ok;
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
			if (!acl_tempfail_parse(v, &c->tempfail)) {
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
	return grey_stage(c, g, ok);
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
	return grey_stage(c, g, ok);
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

/* What the check did, as postgrey says it: ${greylist_reason} and the
 * decision line's greylist=<...>. */
static void grey_reason(const struct grey_answer *a, char *buf, size_t size)
{
	switch (a->state) {
	case GREY_NEW:
		snprintf(buf, size, "new");
		break;
	case GREY_EARLY:
		snprintf(buf, size, "early retry, %u s missing", a->remaining);
		break;
	case GREY_FIRST_PASS:
		snprintf(buf, size, "passed after %u s", a->age);
		break;
	case GREY_PASSED:
		snprintf(buf, size, "passed");
		break;
	case GREY_AWL:
		snprintf(buf, size, "awl");
		break;
	}
}

/* The store's answer, at once (memory) or later (Redis): arg is the wait. */
static void grey_answered(void *arg, enum store_status st, const struct grey_answer *a)
{
	struct vm_wait *w = arg;
	if (st != STORE_OK) {
		vm_wait_done(w, TRI_TEMPFAIL);
		return;
	}
	vm_wait_set_uint(w, VAR_greylist_age, a->age);
	if (a->greylisted)
		vm_wait_set_uint(w, VAR_greylist_remaining, a->remaining);
	char why[64];
	grey_reason(a, why, sizeof why);
	vm_wait_set_var(w, VAR_greylist_reason, why);
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
	runtime_count(e->rt, RC_greylist_checks, 1);
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
