/*
 * dnsfact - DNS facts about a name a request carries, asked through the
 * runtime's resolver (backends/dns.h):
 *
 *   acl NAME mx ATTR none [tempfail=...]
 *        the domain in ATTR has no usable mail exchanger: NXDOMAIN, a null
 *        MX (RFC 7505), or no MX and no A/AAAA (RFC 5321 5.1's implicit MX)
 *   acl NAME mx ATTR NETWORK|${client_address}|${server_address}... [tempfail=...]
 *        an address of one of the domain's MX hosts (of the domain itself
 *        for the implicit MX) lies in the networks or is that address
 *   acl NAME a ATTR NETWORK|${client_address}|${server_address}... [tempfail=...]
 *        an A/AAAA address of the name in ATTR lies in the networks or is
 *        that address (HELO resolves to the client)
 *   acl NAME a ATTR none [tempfail=...]
 *        the name has no A and no AAAA record
 *
 * ATTR is any text attribute (attr_lookup); a value with '@' gives its
 * part after the last '@', so "sender" means the sender's domain. A value
 * that is not a host name (empty, the null sender, an address, "unknown"
 * as client_name) never matches and sends nothing.
 *
 * Both types share everything but their first lookup, hence one file: a
 * mx acl asks for the MX records, then (second round trip) the addresses
 * of the hosts, or of the domain itself when it has no MX; an a acl starts
 * at that second step with the name itself. Limits (as SPF's): the 10
 * most preferred MX hosts (ties in served order) are looked at, the rest
 * ignored; of each name, its first 10 A and first 10 AAAA records as
 * served are compared, the rest ignored. An MX host written as an
 * address ("MX 10 127.0.0.1.") is that address, with no lookup.
 *
 * Answers: an address that matches → match; otherwise a lookup that
 * failed or timed out → temporary failure; otherwise no match. Every
 * lookup of one evaluation is waited for, so which match ${dns_name} and
 * ${dns_address} report does not depend on timing (the most preferred
 * host first, A before AAAA). Lookups started ahead (prefetch) take the
 * same two steps: the hosts' addresses are asked as soon as the MX answer
 * arrives, not when the acl is reached.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl/value.h"
#include "backends/dns.h"
#include "backends/runtime.h"
#include "engine/acl.h"
#include "engine/attrs.h"
#include "engine/cidr.h"
#include "engine/vm.h"

#define FACT_MAX_HOSTS 10       /* MX hosts looked at (RFC 7208 4.6.4's number) */
#define FACT_MAX_ADDRS 10       /* A records, and AAAA records, compared per name */
#define FACT_MAX_REFS 2         /* ${client_address}, ${server_address} */
#define FACT_NAME_MAX 254       /* a host name (253) and its NUL */

enum fact_kind { FACT_MX, FACT_A };

struct fact_acl {
	enum fact_kind kind;
	int attr;                  /* the attribute holding the name */
	bool none;                 /* "none": no usable MX / no address */
	struct loc none_loc;
	struct netset *nets;       /* the networks; frozen */
	size_t nnets;              /* networks written */
	int refs[FACT_MAX_REFS];   /* attributes whose address is compared */
	size_t nrefs;
};

/* ---- names ------------------------------------------------------------------ */

/* A host name: 1..253 bytes of lower-case labels of 1..63 letters, digits,
 * '-' and '_' (names in the wild have them), and not an address. */
static bool host_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > 253)
		return false;
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (ch == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_') ||
		    ++label > 63)
			return false;
	}
	struct ipaddr ip;
	return label > 0 && !ip_parse(s, len, &ip);
}

/*
 * The request's value of attribute id, lower-cased. The one place this
 * file reads a request value: derived attributes (sender_domain, ...) read
 * through the same accessor as the attribute types do.
 */
static const char *fact_attr_value(struct request *r, int id, size_t *len)
{
	const char *s = req_lower(r, (enum attr_id)id);
	*len = s ? strlen(s) : 0;
	return s ? s : "";
}

/* The name to look up: the value's part after its last '@' (an address
 * gives its domain), without trailing dots; false when it is no host name. */
static bool fact_name(const struct fact_acl *d, struct request *r, char *out)
{
	size_t len;
	const char *s = fact_attr_value(r, d->attr, &len);
	const char *at = memrchr(s, '@', len);
	if (at) {
		len -= (size_t)(at + 1 - s);
		s = at + 1;
	}
	while (len > 0 && s[len - 1] == '.')
		len--;
	if (!host_name_ok(s, len))
		return false;
	if ((d->attr == ATTR_client_name || d->attr == ATTR_reverse_client_name) && len == 7 &&
	    !memcmp(s, "unknown", 7))
		return false;                  /* Postfix's "no verified name" */
	memcpy(out, s, len);
	out[len] = 0;
	return true;
}

/* What one request compares addresses with, and which families it asks. */
struct fact_targets {
	struct ipaddr ref[FACT_MAX_REFS];
	size_t nref;
	bool v4, v6;
};

/*
 * The request's ${client_address}-like addresses, and the families worth
 * asking: both for networks and "none"; only the references' own when the
 * acl compares with them alone. False when nothing can match (only
 * references, and the request has none of them).
 */
static bool fact_targets(const struct fact_acl *d, struct request *r, struct fact_targets *t)
{
	memset(t, 0, sizeof *t);
	for (size_t i = 0; i < d->nrefs; i++) {
		const struct req_value *v = &r->v[d->refs[i]];
		if (v->len && ip_parse(v->s, v->len, &t->ref[t->nref])) {
			if (ip_is_v4(&t->ref[t->nref]))
				t->v4 = true;
			else
				t->v6 = true;
			t->nref++;
		}
	}
	if (d->none || d->nnets)
		t->v4 = t->v6 = true;
	return t->v4 || t->v6;
}

/* ---- compiling ------------------------------------------------------------- */

static const char *attr_candidate(size_t i, void *ctx)
{
	(void)ctx;
	return i < ATTR_COUNT && i != ATTR_policy_test_time ? attr_name((enum attr_id)i) : NULL;
}

/* Attributes whose values are addresses or numbers, not names. */
static bool attr_is_name(int id)
{
	switch (id) {
	case ATTR_client_address:
	case ATTR_server_address:
	case ATTR_size:
	case ATTR_recipient_count:
	case ATTR_client_port:
	case ATTR_encryption_keysize:
	case ATTR_server_port:
	case ATTR_policy_test_time:
		return false;
	default:
		return true;
	}
}

static const char *usage(enum fact_kind kind)
{
	return kind == FACT_MX ? "mx ATTR none, or mx ATTR NETWORK|${client_address}..."
			       : "a ATTR NETWORK|${client_address}..., or a ATTR none";
}

/* The first word: the attribute that holds the name. */
static bool attr_word(struct acl_compile *c, struct fact_acl *d, const struct ast_word *w)
{
	const char *type = c->acl->type->s;
	int id = attr_lookup(w->s, w->len);
	if (id >= 0 && attr_is_name(id)) {
		d->attr = id;
		return true;
	}
	if (id >= 0) {
		diag_error(c->diags, w->loc, "%s holds %s, not a name: %s looks up the name in a "
			   "text attribute such as sender, helo_name or client_name",
			   w->s, id == ATTR_client_address || id == ATTR_server_address
			   ? "an address" : "a number", type);
		return false;
	}
	if (w->len > 3 && !memcmp(w->s, "${", 2) && w->s[w->len - 1] == '}' &&
	    attr_lookup(w->s + 2, w->len - 3) >= 0) {
		diag_error(c->diags, w->loc, "write the attribute's name without ${}: %s %.*s ...",
			   type, (int)w->len - 3, w->s + 2);
		return false;
	}
	const char *hint = suggest_word(w->s, w->len, attr_candidate, NULL);
	if (hint)
		diag_error(c->diags, w->loc, "unknown attribute '%s'; did you mean '%s'? (%s)",
			   w->s, hint, usage(d->kind));
	else
		diag_error(c->diags, w->loc, "'%s' is not a request attribute: write %s, where "
			   "ATTR holds the name (sender, helo_name, client_name, ...)", w->s,
			   usage(d->kind));
	return false;
}

/* One value: none, ${client_address}, ${server_address}, or a network. */
static bool fact_value(struct acl_compile *c, void *m, const struct value *v)
{
	struct fact_acl *d = m;
	if (!v->quoted && v->len == 4 && !memcmp(v->s, "none", 4)) {
		if (!d->none)
			d->none_loc = v->loc;
		d->none = true;
		return true;
	}
	if (v->len >= 3 && !memcmp(v->s, "${", 2) && v->s[v->len - 1] == '}') {
		int id = attr_lookup(v->s + 2, v->len - 3);
		if (id != ATTR_client_address && id != ATTR_server_address) {
			diag_error(c->diags, v->loc, "'%.*s': only ${client_address} or "
				   "${server_address} can be compared with an address",
				   (int)v->len, v->s);
			return false;
		}
		for (size_t i = 0; i < d->nrefs; i++)
			if (d->refs[i] == id)
				return true;
		d->refs[d->nrefs++] = id;
		return true;
	}
	const char *err;
	struct net_note note;
	if (!netset_add(d->nets, v->s, v->len, &err, &note)) {
		if (note.meant[0])
			diag_error(c->diags, v->loc, "bad network '%.*s': %s; did you mean %s?",
				   (int)v->len, v->s, err, note.meant);
		else
			diag_error(c->diags, v->loc, "bad network '%.*s': %s (%s)", (int)v->len, v->s,
				   err, usage(d->kind));
		return false;
	}
	d->nnets++;
	return true;
}

static bool fact_compile(struct acl_compile *c, enum fact_kind kind)
{
	const struct pol_acl *a = c->acl;
	struct fact_acl *d = arena_zalloc(c->arena, sizeof *d);
	c->data = d;
	c->stateful = false;
	d->kind = kind;
	d->attr = -1;
	d->nets = netset_new();
	if (a->nvals == 0) {
		diag_error(c->diags, a->loc, "%s needs an attribute and what to match: %s",
			   a->type->s, usage(kind));
		netset_freeze(d->nets);
		return false;
	}
	bool ok = attr_word(c, d, a->vals[0]);
	/* the rest, tempfail= taken out, through value_each (value files) */
	struct pol_acl rest = *a;
	const struct ast_word **vals = arena_zalloc(c->arena, a->nvals * sizeof *vals);
	rest.vals = vals;
	rest.nvals = 0;
	for (size_t i = 1; i < a->nvals; i++)
		if (!acl_tempfail_option(c, a->vals[i], &ok))
			vals[rest.nvals++] = a->vals[i];
	c->acl = &rest;
	ok &= value_each(c, d, fact_value);
	c->acl = a;
	netset_freeze(d->nets);
	if (!ok)
		return false;
	if (d->none && (d->nnets || d->nrefs)) {
		diag_error(c->diags, d->none_loc, "'none' cannot be mixed with networks or "
			   "addresses: write two acls (%s)", usage(kind));
		return false;
	}
	if (!d->none && !d->nnets && !d->nrefs) {
		diag_error(c->diags, a->loc, "%s %s needs what to match: %s", a->type->s,
			   a->vals[0]->s, usage(kind));
		return false;
	}
	return true;
}

static bool mx_compile(struct acl_compile *c) { return fact_compile(c, FACT_MX); }
static bool a_compile(struct acl_compile *c) { return fact_compile(c, FACT_A); }

/* ---- matching -------------------------------------------------------------- */

/* An MX answer's hosts to look at, most preferred first (ties as served),
 * distinct, at most FACT_MAX_HOSTS; copied, since starting a lookup ends
 * the answer's life. */
struct mx_hosts {
	char name[FACT_MAX_HOSTS][FACT_NAME_MAX];
	size_t n;
};

static void pick_hosts(const struct dns_result *r, struct mx_hosts *h)
{
	bool taken[DNS_MAX_RR] = { false };
	h->n = 0;
	while (h->n < FACT_MAX_HOSTS) {
		int best = -1;
		for (size_t i = 0; i < r->n; i++)
			if (!taken[i] && (best < 0 || r->rr[i].pref < r->rr[best].pref))
				best = (int)i;
		if (best < 0)
			return;
		taken[best] = true;
		const char *host = r->rr[best].host;
		size_t len = strlen(host);
		if (len >= FACT_NAME_MAX)
			continue;                       /* cannot exist */
		char low[FACT_NAME_MAX];
		ascii_lower_copy(low, host, len);
		low[len] = 0;
		bool dup = false;
		for (size_t k = 0; k < h->n && !dup; k++)
			dup = !strcmp(h->name[k], low);
		if (!dup)
			memcpy(h->name[h->n++], low, len + 1);
	}
}

struct fact_call;

/* One A or AAAA lookup of one name. */
struct fact_lookup {
	struct fact_call *call;
	size_t name;              /* index in call->names */
	bool v6;
	enum dns_status st;
	bool hit;                 /* one of its first FACT_MAX_ADDRS matched */
	struct ipaddr addr;       /* the first that did */
};

/* One evaluation; it lives until every lookup it started has answered. */
struct fact_call {
	const struct fact_acl *d; /* the program's: alive while w waits */
	struct vm_wait *w;
	struct dns *dns;
	uint64_t deadline;
	struct fact_targets t;
	size_t pending;           /* lookups not yet answered (+1 while starting) */
	enum dns_status mx_st;    /* mx: the MX answer */
	const char *none_why;     /* mx none: why there is no usable MX, or NULL */
	bool implicit;            /* mx: no MX records, the domain is its own */
	size_t nlookups;
	/* from here on filled as used, not zeroed (fact_eval) */
	char domain[FACT_NAME_MAX];
	struct mx_hosts names;    /* the names whose addresses are asked */
	struct fact_lookup lk[2 * FACT_MAX_HOSTS];
};

static bool addr_matches(const struct fact_call *call, const struct ipaddr *a)
{
	if (call->d->nnets && netset_contains(call->d->nets, a))
		return true;
	for (size_t i = 0; i < call->t.nref; i++)
		if (call->t.ref[i].hi == a->hi && call->t.ref[i].lo == a->lo)
			return true;
	return false;
}

/* An address from DNS bytes (4 or 16) as cidr.h stores it: the 16 bytes
 * of the IPv6 form (IPv4 as ::ffff:a.b.c.d) as two big-endian halves.
 * Built from the bytes: going through inet_ntop and ip_parse cost a
 * sprintf per answer (performance.md, "Scores"). */
static void addr_from(const uint8_t *p, bool v6, struct ipaddr *out)
{
	uint8_t b[16] = { [10] = 0xff, [11] = 0xff };
	memcpy(v6 ? b : b + 12, p, v6 ? 16 : 4);
	out->hi = out->lo = 0;
	for (int i = 0; i < 8; i++) {
		out->hi = out->hi << 8 | b[i];
		out->lo = out->lo << 8 | b[8 + i];
	}
}

/* Everything answered: decide, set the ${vars}, hand the answer over. */
static void fact_finish(struct fact_call *call)
{
	const struct fact_acl *d = call->d;
	enum tri res = TRI_FALSE;
	const struct fact_lookup *hit = NULL;
	bool found = false, tempfail = false;
	if (d->kind == FACT_MX && call->mx_st == DNS_TEMPFAIL)
		tempfail = true;
	for (size_t i = 0; i < call->nlookups; i++) {
		const struct fact_lookup *l = &call->lk[i];
		found |= l->st == DNS_FOUND;
		tempfail |= l->st == DNS_TEMPFAIL;
		if (l->hit && !hit)     /* in name order, A before AAAA */
			hit = l;
	}
	if (d->none) {
		if (call->none_why)
			res = TRI_TRUE;        /* NXDOMAIN or null MX, from the MX answer */
		else if (d->kind == FACT_MX && call->mx_st == DNS_FOUND)
			res = TRI_FALSE;       /* a host: usable, as far as "none" goes */
		else
			res = found ? TRI_FALSE : tempfail ? TRI_TEMPFAIL : TRI_TRUE;
		if (res == TRI_TRUE && !call->none_why)
			call->none_why = d->kind == FACT_MX ? "no MX, no address" : "no address";
	} else {
		res = hit ? TRI_TRUE : tempfail ? TRI_TEMPFAIL : TRI_FALSE;
	}
	if (res == TRI_TRUE) {
		if (d->kind == FACT_MX && call->none_why)
			vm_wait_set_var(call->w, VAR_mx_none, call->none_why);
		if (d->kind == FACT_MX && call->names.n) {
			struct strbuf b;
			sb_init(&b);
			for (size_t i = 0; i < call->names.n; i++)
				sb_printf(&b, "%s%s", i ? "," : "", call->names.name[i]);
			vm_wait_set_var(call->w, VAR_mx_hosts, b.s);
			sb_free(&b);
		}
		if (hit) {
			char buf[64];
			ip_format(&hit->addr, buf, sizeof buf);
			vm_wait_set_var(call->w, VAR_dns_name, call->names.name[hit->name]);
			vm_wait_set_var(call->w, VAR_dns_address, buf);
		}
	}
	struct vm_wait *w = call->w;
	free(call);
	vm_wait_done(w, res);
}

static void call_release(struct fact_call *call)
{
	if (--call->pending == 0)
		fact_finish(call);
}

static void addr_answered(void *arg, const struct dns_result *r)
{
	struct fact_lookup *l = arg;
	struct fact_call *call = l->call;
	l->st = r->status;
	size_t n = r->status == DNS_FOUND ? r->n : 0;
	for (size_t i = 0; i < n && i < FACT_MAX_ADDRS && !l->hit; i++) {
		struct ipaddr a;
		addr_from(r->rr[i].addr, l->v6, &a);
		if (addr_matches(call, &a)) {
			l->hit = true;
			l->addr = a;
		}
	}
	call_release(call);
}

/* The second step: the addresses of call->names, in the families wanted.
 * A name written as an address is that address, with no lookup. */
static void start_addresses(struct fact_call *call)
{
	for (size_t i = 0; i < call->names.n; i++) {
		const char *name = call->names.name[i];
		struct ipaddr lit;
		if (ip_parse(name, strlen(name), &lit)) {
			struct fact_lookup *l = &call->lk[call->nlookups++];
			*l = (struct fact_lookup){ .call = call, .name = i, .v6 = !ip_is_v4(&lit),
						   .st = DNS_FOUND };
			if (addr_matches(call, &lit)) {
				l->hit = true;
				l->addr = lit;
			}
			continue;
		}
		for (int v6 = 0; v6 < 2; v6++) {
			if (!(v6 ? call->t.v6 : call->t.v4))
				continue;
			struct fact_lookup *l = &call->lk[call->nlookups++];
			*l = (struct fact_lookup){ .call = call, .name = i, .v6 = v6,
						   .st = DNS_TEMPFAIL };
			call->pending++;
			dns_lookup_until(call->dns, name, v6 ? DNS_T_AAAA : DNS_T_A, call->deadline,
					 addr_answered, l);
		}
	}
}

/* What an MX answer means for the next step, shared with the lookups
 * started ahead: the names whose addresses are needed (none when the MX
 * answer decides), and for "none" why the domain has no usable MX. */
static void mx_next(const struct dns_result *r, const char *domain, bool none,
		    struct mx_hosts *h, const char **none_why, bool *implicit)
{
	h->n = 0;
	*none_why = NULL;
	*implicit = false;
	if (r->status == DNS_TEMPFAIL)
		return;
	if (r->status == DNS_NOTFOUND && r->nxdomain) {
		*none_why = "NXDOMAIN";
		return;
	}
	if (r->status == DNS_NOTFOUND && r->null_mx) {
		*none_why = "null MX";          /* RFC 7505: no mail, no address to try */
		return;
	}
	if (r->status == DNS_FOUND) {
		if (!none)
			pick_hosts(r, h);
		return;
	}
	*implicit = true;                       /* RFC 5321 5.1: the domain itself */
	snprintf(h->name[0], sizeof h->name[0], "%s", domain);
	h->n = 1;
}

static void mx_answered(void *arg, const struct dns_result *r)
{
	struct fact_call *call = arg;
	call->mx_st = r->status;
	mx_next(r, call->domain, call->d->none, &call->names, &call->none_why, &call->implicit);
	start_addresses(call);          /* r is not to be read after this */
	call_release(call);
}

static enum tri fact_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct fact_acl *d = acl_data(acl);
	char name[FACT_NAME_MAX];
	struct fact_targets t;
	if (!fact_name(d, e->req, name) || !fact_targets(d, e->req, &t))
		return TRI_FALSE;
	/* 3.8 KB, mostly names that are written before they are read: only the
	 * fixed part is zeroed (calloc's memset and its way round glibc's
	 * per-thread cache showed in bench/run score's profile) */
	struct fact_call *call = xmalloc(sizeof *call);
	memset(call, 0, offsetof(struct fact_call, domain));
	call->names.n = 0;
	call->d = d;
	call->t = t;
	call->dns = runtime_dns(e->rt);
	call->deadline = runtime_dns_deadline(e->rt, vm_deadline(e));
	memcpy(call->domain, name, strlen(name) + 1);
	call->w = vm_wait_begin(e);
	call->pending = 1;                      /* no decision while still starting */
	if (d->kind == FACT_MX) {
		call->pending++;
		dns_lookup_until(call->dns, name, DNS_T_MX, call->deadline, mx_answered, call);
	} else {
		memcpy(call->names.name[0], name, strlen(name) + 1);
		call->names.n = 1;
		start_addresses(call);
	}
	call_release(call);                     /* may answer the VM and free call */
	return TRI_PENDING;
}

/* ---- lookups ahead ------------------------------------------------------- */

/* A mx acl's lookups ahead: nobody waits, but the MX answer starts the
 * second step at once, so the hosts' addresses are on their way too. */
struct fact_ahead {
	struct dns *dns;
	uint64_t deadline;
	bool none, v4, v6;
	char domain[FACT_NAME_MAX];
};

static void ahead_names(struct dns *dns, const struct mx_hosts *h, bool v4, bool v6,
			uint64_t deadline)
{
	for (size_t i = 0; i < h->n; i++) {
		struct ipaddr lit;
		if (ip_parse(h->name[i], strlen(h->name[i]), &lit))
			continue;
		if (v4)
			dns_prefetch(dns, h->name[i], DNS_T_A, deadline);
		if (v6)
			dns_prefetch(dns, h->name[i], DNS_T_AAAA, deadline);
	}
}

static void ahead_mx_answered(void *arg, const struct dns_result *r)
{
	struct fact_ahead *p = arg;
	struct mx_hosts *h = xmalloc(sizeof *h);
	const char *why;
	bool implicit;
	mx_next(r, p->domain, p->none, h, &why, &implicit);
	ahead_names(p->dns, h, p->v4, p->v6, p->deadline);
	free(h);
	free(p);
}

static void fact_prefetch(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct fact_acl *d = acl_data(acl);
	char name[FACT_NAME_MAX];
	struct fact_targets t;
	if (!fact_name(d, e->req, name) || !fact_targets(d, e->req, &t))
		return;
	struct dns *dns = runtime_dns(e->rt);
	uint64_t deadline = runtime_dns_deadline(e->rt, vm_deadline(e));
	if (d->kind == FACT_A) {
		struct mx_hosts *h = xmalloc(sizeof *h);
		memcpy(h->name[0], name, strlen(name) + 1);
		h->n = 1;
		ahead_names(dns, h, t.v4, t.v6, deadline);
		free(h);
		return;
	}
	struct fact_ahead *p = xcalloc(1, sizeof *p);
	*p = (struct fact_ahead){ .dns = dns, .deadline = deadline, .none = d->none, .v4 = t.v4,
				  .v6 = t.v6 };
	memcpy(p->domain, name, strlen(name) + 1);
	dns_lookup_until(dns, name, DNS_T_MX, deadline, ahead_mx_answered, p);
}

/* ---- describing ------------------------------------------------------------ */

static void fact_describe(const struct acl_rt *acl, struct strbuf *out)
{
	const struct fact_acl *d = acl_data(acl);
	if (d->none) {
		sb_printf(out, "%s of %s: none", d->kind == FACT_MX ? "usable MX" : "addresses",
			  attr_name((enum attr_id)d->attr));
		return;
	}
	sb_printf(out, "%s of %s:", d->kind == FACT_MX ? "MX hosts' addresses" : "addresses",
		  attr_name((enum attr_id)d->attr));
	size_t n = netset_intervals(d->nets);
	if (n)
		sb_printf(out, " %zu address range%s", n, n == 1 ? "" : "s");
	for (size_t i = 0; i < d->nrefs; i++)
		sb_printf(out, "%s ${%s}", n || i ? "," : "", attr_name((enum attr_id)d->refs[i]));
}

/* dump --values: none, the merged networks, the ${addresses}. */
static void fact_values(const struct acl_rt *acl, const char *prefix, struct strbuf *out)
{
	const struct fact_acl *d = acl_data(acl);
	char buf[NET_TEXT_MAX];
	if (d->none)
		sb_printf(out, "%snone\n", prefix);
	for (size_t i = 0; i < netset_intervals(d->nets); i++) {
		netset_interval_format(d->nets, i, buf, sizeof buf);
		sb_printf(out, "%s%s\n", prefix, buf);
	}
	for (size_t i = 0; i < d->nrefs; i++)
		sb_printf(out, "%s${%s}\n", prefix, attr_name((enum attr_id)d->refs[i]));
}

static void fact_free(void *data)
{
	netset_free(((struct fact_acl *)data)->nets);
}

const struct acl_type acl_mx_type = {
	.name = "mx", .attr = -1, .compile = mx_compile, .eval = fact_eval,
	.prefetch = fact_prefetch, .describe = fact_describe, .values = fact_values,
	.free = fact_free,
};

const struct acl_type acl_a_type = {
	.name = "a", .attr = -1, .compile = a_compile, .eval = fact_eval,
	.prefetch = fact_prefetch, .describe = fact_describe, .values = fact_values,
	.free = fact_free,
};
