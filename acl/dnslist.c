/*
 * dnslist - DNS list acls, asked through the runtime's resolver
 * (backends/dns.h):
 *
 *   acl NAME rbl ZONE[SPEC]... [tempfail=match|nomatch|default]
 *        client_address listed: its octets (IPv4) or nibbles (IPv6)
 *        reversed, under ZONE, have an A record
 *   acl NAME dnswl ZONE[SPEC]...           the same lookup, as an allowlist
 *   acl NAME rhsbl ZONE[SPEC]...           the sender's domain under ZONE
 *   acl NAME rhsbl_helo ZONE[SPEC]...      helo_name under ZONE
 *   acl NAME rhsbl_client ZONE[SPEC]...    client_name under ZONE
 *
 * Several zones are alternatives: the acl matches when any zone lists the
 * key. Every zone's query starts when the acl is evaluated; the acl waits
 * for all of them (so ${rbl_zone} is always the first listing zone in the
 * order written, whatever answered first).
 *
 * SPEC filters the A answers, as Exim's dnslists do (answers outside
 * 127.0.0.0/8 are ignored first, as Exim does: a hijacked list cannot list
 * everyone):
 *   =A,B...   some answer is one of these       ==A,B...  every answer is
 *   &M        some answer has all bits of M      =&M       every answer has
 *   !=, !==, !&, !=&   the same, negated: listed, but the filter fails
 *
 * Answers: any zone lists → match (a timeout elsewhere does not matter);
 * otherwise a timeout or failure of any zone → temporary failure; otherwise
 * no match. On a match the TXT record of the listing is fetched too, and
 * ${rbl_zone}, ${rbl_answer} (the A answers, ascending, comma-separated)
 * and ${rbl_txt} are set. A request without the key (no client address, the
 * null sender, client_name "unknown", an address literal) does not match
 * and sends no query.
 *
 * An evaluation starts one A query per zone, collects the answers in a
 * struct dnsl_call, then, when a zone lists the key, fetches that
 * listing's TXT. Answers may come
 * inside dns_lookup (libunbound's cache) or later from the loop; either
 * way the call ends in vm_wait_done (the VM tells the two apart).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/dns.h"
#include "backends/runtime.h"
#include "engine/acl.h"
#include "engine/vm.h"

enum dnsl_key { KEY_CLIENT_ADDRESS, KEY_SENDER_DOMAIN, KEY_HELO_NAME, KEY_CLIENT_NAME };

struct dnsl_zone {
	const char *zone;        /* lower case, no trailing dot */
	const char *word;        /* as written, for describe */
	bool spec, all, neg, bits;
	uint32_t *vals;          /* =A,B: host order */
	size_t nvals;
	uint32_t mask;           /* &M */
};

struct dnsl_acl {
	enum dnsl_key key;
	struct dnsl_zone *z;
	size_t nz;
};

#define DNSL_MAX_ZONES 32
#define DNSL_MAX_VALS 32

/* ---- compiling ------------------------------------------------------------- */

static bool ipv4_parse(const char *s, size_t len, uint32_t *out)
{
	char buf[16];
	unsigned a, b, c, d;
	char extra;
	if (len == 0 || len >= sizeof buf)
		return false;
	memcpy(buf, s, len);
	buf[len] = 0;
	if (sscanf(buf, "%3u.%3u.%3u.%3u%c", &a, &b, &c, &d, &extra) != 4 || a > 255 || b > 255 ||
	    c > 255 || d > 255)
		return false;
	*out = a << 24 | b << 16 | c << 8 | d;
	return true;
}

static bool zone_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > 200 || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0, label = 0; i < len; i++) {
		char ch = s[i];
		if (ch == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '-' || ch == '_') || ++label > 63)
			return false;
	}
	return true;
}

/* "zone[SPEC]" into z; false with a diagnostic. */
static bool zone_parse(struct acl_compile *c, const struct ast_word *w, struct dnsl_zone *z)
{
	const char *s = w->s;
	size_t zlen = strcspn(s, "=!&");
	while (zlen > 0 && s[zlen - 1] == '.')
		zlen--;
	if (zlen == 0 && s[0] && strchr("=!&", s[0])) {
		diag_error(c->diags, w->loc, "'%s' has no zone before its filter (no blank "
			   "between zone and filter)", s);
		return false;
	}
	if (!zone_name_ok(s, zlen)) {
		diag_error(c->diags, w->loc, "bad DNS list zone '%.*s': write a domain such as zen.example.org",
			   (int)strcspn(s, "=!&"), s);
		return false;
	}
	char *zone = arena_printf(c->arena, "%.*s", (int)zlen, s);
	for (char *p = zone; *p; p++)
		*p = ascii_lower(*p);
	z->zone = zone;
	z->word = w->s;
	const char *p = s + strcspn(s, "=!&");
	if (!*p)
		return true;
	z->spec = true;
	if (*p == '!') {
		z->neg = true;
		p++;
	}
	if (p[0] == '=' && p[1] == '=') {
		z->all = true;
		p += 2;
	} else if (p[0] == '=' && p[1] == '&') {
		z->all = z->bits = true;
		p += 2;
	} else if (p[0] == '=') {
		p++;
	} else if (p[0] == '&') {
		z->bits = true;
		p++;
	} else {
		diag_error(c->diags, w->loc,
			   "bad filter in '%s': write =ADDR[,ADDR...], ==ADDR..., &MASK or =&MASK, "
			   "each optionally after '!'", s);
		return false;
	}
	if (z->bits) {
		if (!ipv4_parse(p, strlen(p), &z->mask) || z->mask == 0) {
			diag_error(c->diags, w->loc, "bad bitmask '%s' in '%s': write a non-zero "
				   "IPv4 address such as 0.0.0.4", p, s);
			return false;
		}
		return true;
	}
	z->vals = arena_zalloc(c->arena, DNSL_MAX_VALS * sizeof *z->vals);
	while (*p) {
		size_t n = strcspn(p, ",");
		if (z->nvals == DNSL_MAX_VALS || !ipv4_parse(p, n, &z->vals[z->nvals])) {
			diag_error(c->diags, w->loc, "bad answer '%.*s' in '%s': write IPv4 addresses "
				   "such as 127.0.0.2 separated by ','%s", (int)n, p, s,
				   z->nvals == DNSL_MAX_VALS ? " (at most 32)" : "");
			return false;
		}
		z->nvals++;
		p += n;
		if (*p == ',' && *++p == 0) {
			diag_error(c->diags, w->loc, "'%s' ends with ','", s);
			return false;
		}
	}
	if (z->nvals == 0) {
		diag_error(c->diags, w->loc, "'%s': no answer after '='", s);
		return false;
	}
	return true;
}

static bool dnsl_compile(struct acl_compile *c, enum dnsl_key key)
{
	const struct pol_acl *a = c->acl;
	struct dnsl_acl *d = arena_zalloc(c->arena, sizeof *d);
	c->data = d;
	c->stateful = false;
	d->key = key;
	d->z = arena_zalloc(c->arena, DNSL_MAX_ZONES * sizeof *d->z);
	bool ok = true;
	for (size_t i = 0; i < a->nvals; i++) {
		const struct ast_word *w = a->vals[i];
		if (acl_tempfail_option(c, w, &ok))
			continue;
		if (d->nz == DNSL_MAX_ZONES) {
			diag_error(c->diags, w->loc, "at most %d zones per acl", DNSL_MAX_ZONES);
			return false;
		}
		if (zone_parse(c, w, &d->z[d->nz]))
			d->nz++;
		else
			ok = false;
	}
	if (ok && d->nz == 0) {
		diag_error(c->diags, a->loc, "%s needs at least one zone: %s ZONE[SPEC]...",
			   a->type->s, a->type->s);
		ok = false;
	}
	return ok;
}

static bool rbl_compile(struct acl_compile *c) { return dnsl_compile(c, KEY_CLIENT_ADDRESS); }
static bool rhsbl_compile(struct acl_compile *c) { return dnsl_compile(c, KEY_SENDER_DOMAIN); }
static bool rhsbl_helo_compile(struct acl_compile *c) { return dnsl_compile(c, KEY_HELO_NAME); }
static bool rhsbl_client_compile(struct acl_compile *c) { return dnsl_compile(c, KEY_CLIENT_NAME); }

/* ---- matching -------------------------------------------------------------- */

/* Does the zone's filter accept these answers (127/8 only, n >= 1)? */
static bool zone_accepts(const struct dnsl_zone *z, const uint32_t *a, size_t n)
{
	if (n == 0)
		return false;
	if (!z->spec)
		return true;
	size_t hits = 0;
	for (size_t i = 0; i < n; i++) {
		bool hit = false;
		if (z->bits)
			hit = (a[i] & z->mask) == z->mask;
		else
			for (size_t j = 0; j < z->nvals && !hit; j++)
				hit = a[i] == z->vals[j];
		hits += hit;
	}
	bool res = z->all ? hits == n : hits > 0;
	return z->neg ? !res : res;
}

/* The key's name for the lookup ("2.0.0.127" or "example.com"), or false. */
static bool key_name(const struct dnsl_acl *d, struct request *r, char *out, size_t size)
{
	if (d->key == KEY_CLIENT_ADDRESS) {
		const struct req_value *v = &r->v[ATTR_client_address];
		return dns_reverse_name(v->s, v->len, out, size);
	}
	enum attr_id id = d->key == KEY_SENDER_DOMAIN ? ATTR_sender
			  : d->key == KEY_HELO_NAME   ? ATTR_helo_name
						      : ATTR_client_name;
	const char *s = req_lower(r, id);
	size_t len = r->v[id].len;
	if (d->key == KEY_SENDER_DOMAIN) {
		const char *at = memrchr(s, '@', len);
		if (!at)
			return false;
		len -= (size_t)(at + 1 - s);
		s = at + 1;
	}
	while (len > 0 && s[len - 1] == '.')
		len--;
	if (len >= size || !zone_name_ok(s, len) ||
	    (d->key == KEY_CLIENT_NAME && len == 7 && !memcmp(s, "unknown", 7)))
		return false;
	memcpy(out, s, len);
	out[len] = 0;
	return true;
}

struct dnsl_call;

struct dnsl_answer {
	struct dnsl_call *call;
	enum dns_status st;
	uint32_t a[DNS_MAX_RR];   /* 127/8 answers, host order, ascending */
	size_t n;
};

struct dnsl_call {
	const struct dnsl_acl *d;
	struct dns *dns;
	uint64_t deadline;        /* the request's (eval_dns_deadline), also for the TXT */
	struct vm_wait *w;
	size_t pending;           /* A answers still to come (+1 while starting) */
	enum tri result;
	int listed;               /* first listing zone, or -1 */
	char *vars[3];            /* zone, answer, txt: malloc'd */
	char key[256];
	struct dnsl_answer ans[];
};

/* The answer is complete: hand it to the VM (at once or from the loop). */
static void call_finish(struct dnsl_call *call)
{
	static const enum var_id ids[3] = { VAR_rbl_zone, VAR_rbl_answer, VAR_rbl_txt };
	for (int i = 0; i < 3; i++)
		if (call->vars[i])
			vm_wait_set_var(call->w, ids[i], call->vars[i]);
	vm_wait_done(call->w, call->result);
	for (int i = 0; i < 3; i++)
		free(call->vars[i]);
	free(call);
}

static void txt_answered(void *arg, const struct dns_result *r)
{
	struct dnsl_call *call = arg;
	if (r->status == DNS_FOUND) {
		struct strbuf b;
		sb_init(&b);
		for (size_t i = 0; i < r->n; i++) {
			if (i)
				sb_adds(&b, "; ");
			sb_adds(&b, r->rr[i].txt);
		}
		call->vars[2] = xstrdup(b.s ? b.s : "");
		sb_free(&b);
	}
	call_finish(call);               /* no TXT is no text, not a failure */
}

/* All A answers are in: decide, and fetch the listing's text. */
static void all_answered(struct dnsl_call *call)
{
	const struct dnsl_acl *d = call->d;
	bool tempfail = false;
	call->listed = -1;
	for (size_t i = 0; i < d->nz && call->listed < 0; i++) {
		const struct dnsl_answer *a = &call->ans[i];
		if (a->st == DNS_TEMPFAIL)
			tempfail = true;
		else if (a->st == DNS_FOUND && zone_accepts(&d->z[i], a->a, a->n))
			call->listed = (int)i;
	}
	if (call->listed < 0) {
		call->result = tempfail ? TRI_TEMPFAIL : TRI_FALSE;
		call_finish(call);
		return;
	}
	call->result = TRI_TRUE;
	const struct dnsl_answer *a = &call->ans[call->listed];
	struct strbuf b;
	sb_init(&b);
	for (size_t i = 0; i < a->n; i++)
		sb_printf(&b, "%s%u.%u.%u.%u", i ? "," : "", a->a[i] >> 24, a->a[i] >> 16 & 255,
			  a->a[i] >> 8 & 255, a->a[i] & 255);
	call->vars[0] = xstrdup(d->z[call->listed].zone);
	call->vars[1] = xstrdup(b.s);
	sb_free(&b);
	char name[512];
	snprintf(name, sizeof name, "%s.%s", call->key, d->z[call->listed].zone);
	dns_lookup_until(call->dns, name, DNS_T_TXT, call->deadline, txt_answered, call);
}

static int cmp_u32(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
	return a < b ? -1 : a > b;
}

static void a_answered(void *arg, const struct dns_result *r)
{
	struct dnsl_answer *a = arg;
	struct dnsl_call *call = a->call;
	a->st = r->status;
	a->n = 0;
	for (size_t i = 0; r->status == DNS_FOUND && i < r->n; i++) {
		const uint8_t *p = r->rr[i].addr;
		if (p[0] == 127)
			a->a[a->n++] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	}
	qsort(a->a, a->n, sizeof a->a[0], cmp_u32);
	if (--call->pending == 0)
		all_answered(call);
}

static enum tri dnsl_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct dnsl_acl *d = acl_data(acl);
	char key[256];
	if (!key_name(d, e->req, key, sizeof key))
		return TRI_FALSE;
	struct dnsl_call *call = xcalloc(1, sizeof *call + d->nz * sizeof call->ans[0]);
	call->d = d;
	call->dns = runtime_dns(e->rt);
	call->deadline = runtime_dns_deadline(e->rt, vm_deadline(e));
	snprintf(call->key, sizeof call->key, "%s", key);
	runtime_count(e->rt, RC_dnslist_checks, 1);
	call->w = vm_wait_begin(e);
	call->pending = d->nz + 1;       /* +1: no decision while still starting */
	for (size_t i = 0; i < d->nz; i++) {
		char name[512];
		call->ans[i].call = call;
		call->ans[i].st = DNS_TEMPFAIL;
		if ((size_t)snprintf(name, sizeof name, "%s.%s", key, d->z[i].zone) > 253) {
			call->ans[i].st = DNS_NOTFOUND;  /* too long to be listed */
			call->pending--;
			continue;
		}
		dns_lookup_until(call->dns, name, DNS_T_A, call->deadline, a_answered, &call->ans[i]);
	}
	if (--call->pending == 0)
		all_answered(call);      /* may finish, and free call */
	return TRI_PENDING;
}

/* Start every zone's A query before the acl is reached. */
static void dnsl_prefetch(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct dnsl_acl *d = acl_data(acl);
	char key[256], name[512];
	if (!key_name(d, e->req, key, sizeof key))
		return;
	for (size_t i = 0; i < d->nz; i++)
		if ((size_t)snprintf(name, sizeof name, "%s.%s", key, d->z[i].zone) <= 253)
			dns_prefetch(runtime_dns(e->rt), name, DNS_T_A,
				     runtime_dns_deadline(e->rt, vm_deadline(e)));
}

static void dnsl_describe(const struct acl_rt *acl, struct strbuf *out)
{
	static const char *const keys[] = { "client_address", "sender domain", "helo_name",
					    "client_name" };
	const struct dnsl_acl *d = acl_data(acl);
	sb_printf(out, "DNS list of %s, %zu zone%s:", keys[d->key], d->nz, d->nz == 1 ? "" : "s");
	for (size_t i = 0; i < d->nz; i++)
		sb_printf(out, " %s", d->z[i].word);
}

const struct acl_type acl_rbl_type = {
	.name = "rbl", .attr = -1, .compile = rbl_compile, .eval = dnsl_eval,
	.prefetch = dnsl_prefetch, .describe = dnsl_describe,
};

const struct acl_type acl_dnswl_type = {
	.name = "dnswl", .attr = -1, .compile = rbl_compile, .eval = dnsl_eval,
	.prefetch = dnsl_prefetch, .describe = dnsl_describe,
};

const struct acl_type acl_rhsbl_type = {
	.name = "rhsbl", .attr = -1, .compile = rhsbl_compile, .eval = dnsl_eval,
	.prefetch = dnsl_prefetch, .describe = dnsl_describe,
};

const struct acl_type acl_rhsbl_helo_type = {
	.name = "rhsbl_helo", .attr = -1, .compile = rhsbl_helo_compile, .eval = dnsl_eval,
	.prefetch = dnsl_prefetch, .describe = dnsl_describe,
};

const struct acl_type acl_rhsbl_client_type = {
	.name = "rhsbl_client", .attr = -1, .compile = rhsbl_client_compile, .eval = dnsl_eval,
	.prefetch = dnsl_prefetch, .describe = dnsl_describe,
};
