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
 * SPEC filters the A answers, as Exim's dnslists do. Answers outside
 * 127.0.0.0/8 are dropped first, whatever the filter (a lapsed or hijacked
 * list that answers everything cannot list everyone). Exim drops them only
 * when there is no filter or a bitmask: its =A compares them, and its
 * !=, !== count them as "not A". A filter value outside 127/8 is warned
 * about, since it can never be an answer here:
 *   =A,B...   some answer is one of these       ==A,B...  every answer is
 *   &M        some answer has all bits of M      =&M       every answer has
 *   !=, !==, !&, !=&   the same, negated: listed, but the filter fails
 *
 * Answers: any zone lists → match (a timeout elsewhere does not matter);
 * otherwise a timeout or failure of any zone → temporary failure; otherwise
 * no match. On a match ${rbl_zone}, ${rbl_answer} (the A answers,
 * ascending, comma-separated) and ${rbl_txt} are set. A request without the
 * key (no client address, the null sender, client_name "unknown", an
 * address literal) does not match and sends no query.
 *
 * An evaluation starts one A query per zone and collects the answers in a
 * struct dnsl_call. The TXT records behind ${rbl_txt} are asked only when
 * some action's text reads it (vm_var_used), and then beside each zone's A
 * query, not after the listing answer: a listed client costs one round
 * trip either way. A listing then waits for its zone's TXT answer; an
 * unlisted key does not wait for the TXT answers (the call lives on until
 * they come, and they fill the cache). Lookups started ahead (prefetch)
 * follow the same rule. Answers may come inside dns_lookup (a cache hit)
 * or later from the loop; either way the VM's answer is one vm_wait_done
 * (the VM tells the two apart).
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
	size_t zlen;             /* its length */
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
#define DNSL_NAME_SIZE 254       /* a name under a zone: 253 bytes and the NUL */

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
	z->zlen = zlen;
	z->word = arena_strdup(c->arena, w->s);   /* the parse tree is freed */
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
	for (size_t i = 0; i < z->nvals; i++)
		if (z->vals[i] >> 24 != 127) {
			uint32_t v = z->vals[i];
			diag_warning(c->diags, w->loc, "'%s' names %u.%u.%u.%u, outside 127.0.0.0/8: "
				     "such answers are ignored, so no answer can be it (Exim "
				     "would compare it)", s, v >> 24, v >> 16 & 255, v >> 8 & 255,
				     v & 255);
			break;
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

/* The key's name for the lookup ("2.0.0.127" or "example.com") and its
 * length, or 0 when the request has none. */
static size_t key_name(const struct dnsl_acl *d, struct request *r, char *out, size_t size)
{
	if (d->key == KEY_CLIENT_ADDRESS) {
		const struct req_value *v = &r->v[ATTR_client_address];
		return dns_reverse_name(v->s, v->len, out, size) ? strlen(out) : 0;
	}
	enum attr_id id = d->key == KEY_SENDER_DOMAIN ? ATTR_sender
			  : d->key == KEY_HELO_NAME   ? ATTR_helo_name
						      : ATTR_client_name;
	const char *s = req_lower(r, id);
	size_t len = r->v[id].len;
	if (d->key == KEY_SENDER_DOMAIN) {
		const char *at = memrchr(s, '@', len);
		if (!at)
			return 0;
		len -= (size_t)(at + 1 - s);
		s = at + 1;
	}
	while (len > 0 && s[len - 1] == '.')
		len--;
	if (len >= size || !zone_name_ok(s, len) ||
	    (d->key == KEY_CLIENT_NAME && len == 7 && !memcmp(s, "unknown", 7)))
		return 0;
	memcpy(out, s, len);
	out[len] = 0;
	return len;
}

struct dnsl_call;

/* One zone's lookups: its A answer, and its TXT when ${rbl_txt} is used. */
struct dnsl_answer {
	struct dnsl_call *call;
	enum dns_status st;
	uint32_t a[DNS_MAX_RR];   /* 127/8 answers, host order, ascending */
	size_t n;
	bool txt_done;            /* the TXT lookup answered */
	char *txt;                /* its text for ${rbl_txt}, malloc'd; NULL: none */
};

/*
 * One evaluation. It lives until every lookup it started has answered
 * (refs), which may be after the VM got its answer: an unlisted key does
 * not wait for the TXT lookups started beside its A lookups.
 */
struct dnsl_call {
	const struct dnsl_acl *d; /* in the program's arena: not to be touched
				     once the VM has its answer (that may drop
				     the last reference to the program) */
	size_t nz;                /* zones, i.e. entries of ans */
	struct vm_wait *w;        /* NULL once answered */
	size_t refs;              /* lookups not yet answered (+1 while starting) */
	size_t a_pending;         /* A answers still to come (+1 while starting) */
	bool want_txt;            /* some action reads ${rbl_txt} */
	int listed;               /* first listing zone, or -1 */
	struct dnsl_answer ans[];
};

static void call_unref(struct dnsl_call *call)
{
	if (--call->refs > 0)
		return;
	for (size_t i = 0; i < call->nz; i++)
		free(call->ans[i].txt);
	free(call);
}

/* Hand the answer to the VM (at once or from the loop), with the listing's
 * ${vars} when it matched. */
static void call_answer(struct dnsl_call *call, enum tri result)
{
	if (result == TRI_TRUE) {
		const struct dnsl_answer *a = &call->ans[call->listed];
		struct strbuf b;
		sb_init(&b);
		for (size_t i = 0; i < a->n; i++)
			sb_printf(&b, "%s%u.%u.%u.%u", i ? "," : "", a->a[i] >> 24,
				  a->a[i] >> 16 & 255, a->a[i] >> 8 & 255, a->a[i] & 255);
		vm_wait_set_var(call->w, VAR_rbl_zone, call->d->z[call->listed].zone);
		vm_wait_set_var(call->w, VAR_rbl_answer, b.s);
		sb_free(&b);
		if (a->txt)             /* no TXT is no text, not a failure */
			vm_wait_set_var(call->w, VAR_rbl_txt, a->txt);
	}
	struct vm_wait *w = call->w;
	call->w = NULL;
	vm_wait_done(w, result);
}

/* The A answers are all in: decide. A listing whose text is wanted waits
 * for its zone's TXT answer (already asked, beside the A). */
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
	if (call->listed < 0)
		call_answer(call, tempfail ? TRI_TEMPFAIL : TRI_FALSE);
	else if (!call->want_txt || call->ans[call->listed].txt_done)
		call_answer(call, TRI_TRUE);
}

/* ${rbl_txt}: the records joined by "; ", control bytes (NUL too) as '?'. */
static void txt_answered(void *arg, const struct dns_result *r)
{
	struct dnsl_answer *a = arg;
	struct dnsl_call *call = a->call;
	a->txt_done = true;
	if (r->status == DNS_FOUND) {
		struct strbuf b;
		sb_init(&b);
		for (size_t i = 0; i < r->n; i++) {
			if (i)
				sb_adds(&b, "; ");
			for (size_t k = 0; k < r->rr[i].txtlen; k++) {
				unsigned char ch = (unsigned char)r->rr[i].txt[k];
				sb_addc(&b, ch < 0x20 || ch == 0x7f ? '?' : (char)ch);
			}
		}
		a->txt = xstrdup(b.s ? b.s : "");
		sb_free(&b);
	}
	if (call->w && call->a_pending == 0 && call->listed == a - call->ans)
		call_answer(call, TRI_TRUE);
	call_unref(call);
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
	if (a->n > 1)
		qsort(a->a, a->n, sizeof a->a[0], cmp_u32);
	if (--call->a_pending == 0)
		all_answered(call);
	call_unref(call);
}

/* The name of key (klen bytes) under zone i, or false when it is too long
 * to exist. Built by hand, not with snprintf: it runs for every zone of
 * every request, and printf was 6 % of bench/run score's profile. */
static bool zone_name(const struct dnsl_acl *d, size_t i, const char *key, size_t klen,
		      char out[DNSL_NAME_SIZE])
{
	const struct dnsl_zone *z = &d->z[i];
	if (klen + 1 + z->zlen > 253)
		return false;
	memcpy(out, key, klen);
	out[klen] = '.';
	memcpy(out + klen + 1, z->zone, z->zlen + 1);
	return true;
}

static enum tri dnsl_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct dnsl_acl *d = acl_data(acl);
	char key[256];
	size_t klen = key_name(d, e->req, key, sizeof key);
	if (!klen)
		return TRI_FALSE;
	/* not calloc: glibc's calloc bypasses its per-thread cache, and this
	 * runs for every DNS list of every request (bench/run score's profile) */
	struct dnsl_call *call = xmalloc(sizeof *call + d->nz * sizeof call->ans[0]);
	memset(call, 0, sizeof *call);
	struct dns *dns = runtime_dns(e->rt);
	uint64_t deadline = runtime_dns_deadline(e->rt, vm_deadline(e));
	call->d = d;
	call->nz = d->nz;
	call->want_txt = vm_var_used(e, VAR_rbl_txt);
	call->listed = -1;
	runtime_count(e->rt, RC_dnslist_checks, 1);
	call->w = vm_wait_begin(e);
	call->refs = call->a_pending = 1;       /* no decision while still starting */
	for (size_t i = 0; i < d->nz; i++) {
		char name[DNSL_NAME_SIZE];
		struct dnsl_answer *a = &call->ans[i];
		a->call = call;          /* a->a[] is written before it is read */
		a->st = DNS_TEMPFAIL;
		a->n = 0;
		a->txt_done = false;
		a->txt = NULL;
		if (!zone_name(d, i, key, klen, name)) {
			a->st = DNS_NOTFOUND;    /* too long to be listed */
			a->txt_done = true;
			continue;
		}
		call->refs++;
		call->a_pending++;
		dns_lookup_until(dns, name, DNS_T_A, deadline, a_answered, a);
		if (call->want_txt) {    /* beside the A, not after it: one round trip */
			call->refs++;
			dns_lookup_until(dns, name, DNS_T_TXT, deadline, txt_answered, a);
		}
	}
	if (--call->a_pending == 0)
		all_answered(call);      /* may answer the VM */
	call_unref(call);                /* may free call */
	return TRI_PENDING;
}

/* Start every zone's A query before the acl is reached. */
static void dnsl_prefetch(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct dnsl_acl *d = acl_data(acl);
	char key[256], name[DNSL_NAME_SIZE];
	size_t klen = key_name(d, e->req, key, sizeof key);
	if (!klen)
		return;
	bool want_txt = vm_var_used(e, VAR_rbl_txt);
	uint64_t deadline = runtime_dns_deadline(e->rt, vm_deadline(e));
	for (size_t i = 0; i < d->nz; i++) {
		if (!zone_name(d, i, key, klen, name))
			continue;
		dns_prefetch(runtime_dns(e->rt), name, DNS_T_A, deadline);
		if (want_txt)            /* as eval would: TXT beside A */
			dns_prefetch(runtime_dns(e->rt), name, DNS_T_TXT, deadline);
	}
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
