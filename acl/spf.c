/*
 * spf - the SPF verdict of a request, from libspf2:
 *
 *   acl NAME spf RESULT... [tempfail=match|nomatch|default]
 *
 * RESULT is pass, fail, softfail, neutral, none, permerror or temperror
 * (RFC 7208). The identity checked is the MAIL FROM address's domain for
 * client_address; for the null sender it is helo_name (RFC 7208 section
 * 2.4: postmaster@HELO). The acl matches when the verdict is one of its
 * results. A temperror (a lookup timed out or failed) matches an acl that
 * lists temperror; for any other acl it is a temporary failure, so the
 * acl's tempfail= setting decides, as for every lookup. A request without
 * a client address, or without both sender and helo_name, does not match
 * and sends no query.
 *
 * ${spf_result} holds the verdict's name and ${spf_received} the value of
 * a Received-SPF: header (RFC 7208 section 9.1), for
 * "PREPEND Received-SPF: ${spf_received}". The verdict is computed once
 * per request, whatever the number of spf acls.
 *
 * libspf2 resolves synchronously; here it never waits. It runs with a DNS
 * layer that answers only from the answers this evaluation has collected,
 * and reports every other name as a temporary failure (TRY_AGAIN) after
 * noting it. Such a run is thrown away: the noted names are looked up
 * through the runtime's resolver (backends/dns.h) and libspf2 runs again,
 * until a run needs nothing new (docs/dev/dns.md).
 *
 * One struct spf_call per request that needs the verdict: it keeps the
 * answers collected so far and runs libspf2 again each time the missing
 * ones are in. libspf2 is driven from
 * the loop's thread only, so one SPF server with one DNS layer serves every
 * call; the layer finds the running call in a static pointer.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spf2/spf.h>
#include <spf2/spf_dns.h>

#include "acl/spf_record.h"
#include "backends/dns.h"
#include "backends/runtime.h"
#include "engine/acl.h"
#include "engine/vm.h"
#include "util/log.h"

/* Bounds on one evaluation. RFC 7208 4.6.4 allows 10 terms that look up,
 * each mx or ptr then up to 10 addresses: with the record itself, exp= and
 * %{p} (a PTR and 10 A), at most 123 lookups. libspf2 counts terms per
 * record, not across include:, so it does not enforce that: more than
 * SPF_MAX_LOOKUPS is beyond the RFC's limits, a permerror. Each run that
 * goes on notes at least one new name, so runs are bounded too. */
#define SPF_MAX_LOOKUPS 128
#define SPF_MAX_MISSES 8        /* names noted in one pass */

/* RFC 7208 4.6.4, enforced here (libspf2 counts terms per record and not
 * void lookups, and checks the first 10 MX hosts before their number):
 * terms that look up DNS, lookups that find nothing, MX hosts per mx. */
#define SPF_MAX_TERMS 10
#define SPF_MAX_VOIDS 2
#define SPF_MAX_MX 10
#define SPF_MAX_PTR 10          /* PTR names checked; the rest ignored */

/* libspf2's default explanation, set to a text no exp= gives, so an
 * explanation that is not this came from the record's exp= (RFC 7208 6.2). */
#define SPF_NO_EXP "mxacl-no-exp"

/* The results an acl may name, indexed by SPF_result_t. */
static const char *const result_names[] = {
	[SPF_RESULT_INVALID] = NULL,           [SPF_RESULT_NEUTRAL] = "neutral",
	[SPF_RESULT_PASS] = "pass",            [SPF_RESULT_FAIL] = "fail",
	[SPF_RESULT_SOFTFAIL] = "softfail",    [SPF_RESULT_NONE] = "none",
	[SPF_RESULT_TEMPERROR] = "temperror",  [SPF_RESULT_PERMERROR] = "permerror",
};
#define NRESULTS ((int)ARRAY_LEN(result_names))

struct spf_acl {
	bool want[NRESULTS];
};

/* ---- compiling ------------------------------------------------------------- */

static bool spf_compile(struct acl_compile *c)
{
	const struct pol_acl *a = c->acl;
	struct spf_acl *s = arena_zalloc(c->arena, sizeof *s);
	c->data = s;
	bool ok = true, any = false;
	for (size_t i = 0; i < a->nvals; i++) {
		const struct ast_word *w = a->vals[i];
		if (acl_tempfail_option(c, w, &ok))
			continue;
		int k = 0;
		while (k < NRESULTS && !(result_names[k] && !strcasecmp(w->s, result_names[k])))
			k++;
		if (k == NRESULTS) {
			const char *alias = !strcasecmp(w->s, "error") || !strcasecmp(w->s, "unknown")
						    ? " (RFC 4408's names: write temperror or permerror)"
						    : "";
			diag_error(c->diags, w->loc, "unknown SPF result '%s': write pass, fail, softfail, "
				   "neutral, none, permerror or temperror%s", w->s, alias);
			ok = false;
			continue;
		}
		s->want[k] = any = true;
	}
	if (ok && !any) {
		diag_error(c->diags, a->loc, "spf needs at least one result: spf pass|fail|softfail|"
			   "neutral|none|permerror|temperror...");
		ok = false;
	}
	return ok;
}

/* ---- the identity ---------------------------------------------------------- */

/* The domain whose record decides: the sender's, else helo_name's; NULL when
 * there is none (or no client address to check). */
static const char *spf_domain(struct request *r)
{
	if (r->v[ATTR_client_address].len == 0)
		return NULL;
	const struct req_value *from = &r->v[ATTR_sender];
	if (from->len) {
		const char *at = strrchr(from->s, '@');
		return at && at[1] ? at + 1 : NULL;
	}
	return r->v[ATTR_helo_name].len ? r->v[ATTR_helo_name].s : NULL;
}

/* ---- collected answers ----------------------------------------------------- */

struct spf_call;

struct spf_slot {
	struct spf_call *call;
	char *name;
	enum dns_type type;
	int herrno;              /* NETDB_SUCCESS, HOST_NOT_FOUND, NO_DATA, TRY_AGAIN */
	uint32_t ttl;
	size_t n;
	uint8_t (*addr)[16];     /* A, AAAA */
	char **str;              /* TXT, MX, PTR */
};

struct spf_call {
	const struct spf_acl *a;
	struct dns *dns;
	uint64_t deadline;       /* the request's: every pass's lookups end by it */
	struct vm_wait *w;
	char *ip, *sender, *helo;
	struct spf_slot *slot[SPF_MAX_LOOKUPS];
	size_t nslots;
	struct {                 /* names the current pass missed */
		const char *name;
		enum dns_type type;
	} miss[SPF_MAX_MISSES];
	size_t nmiss;
	bool overflow;           /* a pass needed more than the bounds allow */
	/* the layer around libspf2 (acl/spf_record.h), per pass */
	bool ipv6;               /* the client as libspf2 sees it (IPv4-mapped: IPv4) */
	uint8_t addr[16];        /* its address: the answer to an "any" lookup */
	const char *perm;        /* why the pass is a permerror, or NULL */
	int terms, voids;        /* RFC 7208 4.6.4's counts */
	int expect;              /* the kind of term whose lookup comes next, or -1 */
	SPF_request_t *req;      /* the pass's request, for compiling records */
	char permbuf[96];
	size_t outstanding;      /* lookups not yet answered (+1 while starting) */
	bool running;
	SPF_result_t result;
	char *received;
	struct runtime_stats *stats; /* the verdict's time is counted there */
	uint64_t t0;
};

static SPF_server_t *spf_server;
static struct spf_call *spf_current;     /* the call libspf2 is running for */

static SPF_server_t *server_get(void);

static enum dns_type dns_type_of(ns_type t, bool *ok)
{
	*ok = true;
	switch (t) {
	case ns_t_a:
		return DNS_T_A;
	case ns_t_aaaa:
		return DNS_T_AAAA;
	case ns_t_txt:
		return DNS_T_TXT;
	case ns_t_mx:
		return DNS_T_MX;
	case ns_t_ptr:
		return DNS_T_PTR;
	default:
		*ok = false;     /* type 99 (SPF) is obsolete (RFC 7208 3.1) */
		return DNS_T_A;
	}
}

static struct spf_slot *slot_find(struct spf_call *c, const char *name, enum dns_type type)
{
	for (size_t i = 0; i < c->nslots; i++)
		if (c->slot[i]->type == type && !strcasecmp(c->slot[i]->name, name))
			return c->slot[i];
	return NULL;
}

/* Whether name is one of the names a PTR answer of this call gave. */
static bool ptr_target(const struct spf_call *c, const char *name)
{
	size_t len = strlen(name);
	if (len && name[len - 1] == '.')
		len--;
	for (size_t i = 0; i < c->nslots; i++) {
		const struct spf_slot *s = c->slot[i];
		for (size_t k = 0; s->type == DNS_T_PTR && k < s->n; k++) {
			size_t tl = strlen(s->str[k]);
			if (tl && s->str[k][tl - 1] == '.')
				tl--;
			if (tl == len && !strncasecmp(s->str[k], name, len))
				return true;
		}
	}
	return false;
}

/* The layer has found the evaluation a permerror (a syntax error, a limit
 * of RFC 7208 4.6.4): TRY_AGAIN stops libspf2 at this lookup, and the pass
 * takes c->perm as its verdict. */
static SPF_dns_rr_t *layer_stop(struct spf_call *c, SPF_dns_server_t *server, const char *domain,
				ns_type t, const char *why)
{
	if (!c->perm)
		c->perm = why;
	return SPF_dns_rr_new_init(server, domain, t, 0, TRY_AGAIN);
}

/* Whether a lookup of type is the one a term of kind makes itself. */
static bool term_lookup(int kind, enum dns_type type)
{
	switch (kind) {
	case SPF_RECORD_A:
		return type == DNS_T_A || type == DNS_T_AAAA;
	case SPF_RECORD_EXISTS:
		return type == DNS_T_A;
	case SPF_RECORD_MX:
		return type == DNS_T_MX;
	case SPF_RECORD_PTR:
		return type == DNS_T_PTR;
	default:
		return type == DNS_T_TXT;         /* include, redirect */
	}
}

/* Whether libspf2 keeps every term of text (a record of nmech mechanisms
 * and nmod modifiers): its compiled form has a fixed buffer, and terms
 * past it are dropped without a word. A record libspf2 cannot compile at
 * all is its own permerror: true. */
static bool libspf2_keeps_all(struct spf_call *c, const char *text, size_t nmech, size_t nmod)
{
	SPF_response_t *resp = SPF_response_new(c->req);
	SPF_record_t *rec = NULL;
	if (!resp)
		fatal_abort("libspf2: out of memory");
	bool ok = SPF_record_compile(server_get(), resp, &rec, text) != SPF_E_SUCCESS || !rec ||
		  (size_t)rec->num_mech + rec->num_mod == nmech + nmod;  /* redirect= is a
										  * mechanism in libspf2 */
	SPF_record_free(rec);
	SPF_response_free(resp);
	return ok;
}

/* One answer string as libspf2 gets it: an SPF record rewritten by
 * spf_record_rewrite(), a name of an "any" lookup with its suffix back,
 * anything else as it came. NULL after layer_stop's reason is set. */
static char *layer_string(struct spf_call *c, enum dns_type type, const char *str, bool any)
{
	if (type == DNS_T_MX && any)
		return xasprintf("%s%s", str, SPF_RECORD_ANY);
	if (type == DNS_T_TXT && !spf_record_is_spf(str)) {
		/* an exp= text: libspf2 1.2.10 expands it term by term and
		 * garbles it at each space ('%', macros after it left as they
		 * are); "%_" is RFC 7208's macro for a space */
		struct strbuf sb;
		sb_init(&sb);
		sb_adds(&sb, "");
		for (const char *p = str; *p; p++)
			if (*p == ' ')
				sb_adds(&sb, "%_");
			else
				sb_addc(&sb, *p);
		return sb.s;
	}
	if (type != DNS_T_TXT)
		return xstrdup(str);
	size_t nmech, nmod;
	const char *why;
	char *rec = spf_record_rewrite(str, c->ipv6, &nmech, &nmod, &why);
	if (!rec) {
		snprintf(c->permbuf, sizeof c->permbuf, "syntax error in SPF record: %s", why);
		c->perm = c->permbuf;
	} else if (!libspf2_keeps_all(c, rec, nmech, nmod)) {
		c->perm = "SPF record too large for libspf2";
		free(rec);
		rec = NULL;
	}
	return rec;
}

/* libspf2's lookup: an answer this call has, or TRY_AGAIN after noting the
 * name. Never NULL (libspf2 treats NULL as a fatal error). The layer of
 * acl/spf_record.h lives here: probes are counted and answered "no such
 * name", "any" names are answered from the real name's answer, SPF records
 * are checked and rewritten. */
static SPF_dns_rr_t *layer_lookup(SPF_dns_server_t *server, const char *domain, ns_type t,
				  int should_cache)
{
	(void)should_cache;
	struct spf_call *c = spf_current;
	bool known;
	enum dns_type type = dns_type_of(t, &known);
	if (!known || !c)
		return SPF_dns_rr_new_init(server, domain, t, 0, NO_DATA);
	if (c->perm)
		return layer_stop(c, server, domain, t, c->perm);
	enum spf_record_kind kind;
	if (type == DNS_T_A && spf_record_probe(domain, &kind)) {
		if (++c->terms > SPF_MAX_TERMS)
			return layer_stop(c, server, domain, t,
					  "more than 10 DNS-querying terms (RFC 7208 4.6.4)");
		c->expect = (int)kind;
		return SPF_dns_rr_new_init(server, domain, t, 0, HOST_NOT_FOUND);
	}
	size_t anylen = spf_record_any(domain);
	bool any = anylen && (type == DNS_T_A || type == DNS_T_AAAA || type == DNS_T_MX);
	char *real = any ? xstrndup(domain, anylen) : NULL;
	const char *name = any ? real : domain;
	const struct spf_slot *s = slot_find(c, name, type);
	if (!s) {
		bool noted = false;
		for (size_t i = 0; i < c->nmiss && !noted; i++)
			noted = c->miss[i].type == type && !strcasecmp(c->miss[i].name, name);
		/* A full miss list is no overflow: a later pass notes the name
		 * once these are in (%{p} asks for the A records of up to 10
		 * PTR names in one run). */
		if (!noted && c->nslots + c->nmiss >= SPF_MAX_LOOKUPS) {
			c->overflow = true;
		} else if (!noted && c->nmiss < SPF_MAX_MISSES) {
			c->miss[c->nmiss].name = xstrdup(name);
			c->miss[c->nmiss++].type = type;
		}
		free(real);
		return SPF_dns_rr_new_init(server, domain, t, 0, TRY_AGAIN);
	}
	bool ptr_addr = (type == DNS_T_A || type == DNS_T_AAAA) && ptr_target(c, name);
	free(real);
	if (c->expect >= 0 && term_lookup(c->expect, type)) {
		c->expect = -1;
		if ((s->herrno == HOST_NOT_FOUND || s->herrno == NO_DATA) && ++c->voids > SPF_MAX_VOIDS)
			return layer_stop(c, server, domain, t,
					  "more than 2 void lookups (RFC 7208 4.6.4)");
		if (type == DNS_T_MX && s->n > SPF_MAX_MX)
			return layer_stop(c, server, domain, t,
					  "more than 10 MX hosts (RFC 7208 4.6.4)");
	}
	/*
	 * RFC 7208 5.5: a DNS error on the address lookup of a name a PTR
	 * gave skips that name (libspf2 would make it a temperror), and
	 * 4.6.4: past the first 10 PTR names, the rest are ignored (libspf2
	 * would make it a permerror).
	 */
	int herrno = s->herrno == TRY_AGAIN && ptr_addr ? HOST_NOT_FOUND : s->herrno;
	SPF_dns_rr_t *rr = SPF_dns_rr_new_init(server, domain, t, (int)s->ttl, herrno);
	if (!rr)
		fatal_abort("libspf2: out of memory");
	/* "any": the client's own address when the real name has one */
	size_t n = any && (type == DNS_T_A || type == DNS_T_AAAA) && s->n ? 1 : s->n;
	if (type == DNS_T_PTR && n > SPF_MAX_PTR)
		n = SPF_MAX_PTR;
	for (size_t i = 0; i < n; i++) {
		char *str = NULL;
		size_t len = type == DNS_T_A      ? sizeof(struct in_addr)
			     : type == DNS_T_AAAA ? sizeof(struct in6_addr)
						 : 0;
		if (!len) {
			str = layer_string(c, type, s->str[i], any);
			if (!str) {
				SPF_dns_rr_free(rr);
				return layer_stop(c, server, domain, t, c->perm);
			}
			len = strlen(str) + 1;
		}
		if (SPF_dns_rr_buf_realloc(rr, (int)i, len) != SPF_E_SUCCESS)
			fatal_abort("libspf2: out of memory");
		if (str)
			memcpy(rr->rr[i], str, len);   /* txt, mx and ptr share it */
		else
			memcpy(rr->rr[i], any ? c->addr : s->addr[i], len);
		free(str);
	}
	rr->num_rr = (int)n;
	return rr;
}

static void __attribute__((noreturn)) layer_error(const char *file, int line, const char *msg)
{
	log_error("libspf2: %s:%d: %s", file, line, msg);
	abort();                 /* a broken invariant inside libspf2 */
}

static void layer_warning(const char *file, int line, const char *msg)
{
	(void)file;
	(void)line;
	log_warning("spf: %s", msg);
}

/* libspf2's remarks on each record it reads: not for the log. */
static void layer_quiet(const char *file, int line, const char *msg)
{
	(void)file;
	(void)line;
	(void)msg;
}

/* The one SPF server, its log pointed at ours (the defaults print to
 * stderr, and the error handler exits). */
static SPF_server_t *server_get(void)
{
	static SPF_dns_server_t layer = { .lookup = layer_lookup, .name = "mxacl" };
	if (!spf_server) {
		SPF_error_handler = layer_error;
		SPF_warning_handler = layer_warning;
		SPF_info_handler = layer_quiet;
		SPF_debug_handler = layer_quiet;
		spf_server = SPF_server_new_dns(&layer, 0);
		if (!spf_server)
			fatal_abort("libspf2: cannot make an SPF server");
		/* the layer counts terms across include: (SPF_MAX_TERMS); the
		 * probes it inserts must not trip libspf2's per-record count */
		SPF_server_set_max_dns_mech(spf_server, 1000);
		SPF_response_t *resp = NULL;
		if (SPF_server_set_explanation(spf_server, SPF_NO_EXP, &resp) != SPF_E_SUCCESS)
			fatal_abort("libspf2: cannot set the default explanation");
		SPF_response_free(resp);
	}
	return spf_server;
}

/* ---- running --------------------------------------------------------------- */

static void slot_free(struct spf_slot *s)
{
	for (size_t i = 0; s->str && i < s->n; i++)
		free(s->str[i]);
	free(s->str);
	free(s->addr);
	free(s->name);
	free(s);
}

static void call_free(struct spf_call *c)
{
	for (size_t i = 0; i < c->nslots; i++)
		slot_free(c->slot[i]);
	free(c->ip);
	free(c->sender);
	free(c->helo);
	free(c->received);
	free(c);
}

/* ${spf_received}: libspf2's header value, or ours when it has none or
 * there is a comment to give: the reason of the layer's permerror, or a
 * fail's explanation from exp= (RFC 7208 6.2, 9.1), as a header comment:
 * parentheses and backslashes quoted, bytes outside printable ASCII '?'
 * (the text is the sender domain's). */
static void set_received(struct spf_call *c, const char *rec, const char *comment)
{
	free(c->received);
	if (rec && !comment) {
		c->received = xstrdup(rec);
		return;
	}
	struct strbuf sb;
	sb_init(&sb);
	sb_adds(&sb, result_names[c->result]);
	if (comment) {
		sb_adds(&sb, " (");
		for (const char *p = comment; *p; p++) {
			if (*p == '(' || *p == ')' || *p == '\\')
				sb_addc(&sb, '\\');
			sb_addc(&sb, *p >= 0x20 && *p < 0x7f ? *p : '?');
		}
		sb_addc(&sb, ')');
	}
	sb_printf(&sb, " client-ip=%s; envelope-from=%s%s; helo=%s;", c->ip,
		  c->sender[0] ? "" : "postmaster@", c->sender[0] ? c->sender : c->helo, c->helo);
	c->received = sb.s;
}

/* One run of libspf2 over the answers so far; notes what it missed. */
static void spf_pass(struct spf_call *c)
{
	c->nmiss = 0;
	c->overflow = false;
	c->perm = NULL;
	c->terms = c->voids = 0;
	c->expect = -1;
	SPF_request_t *req = SPF_request_new(server_get());
	SPF_response_t *resp = NULL;
	if (!req)
		fatal_abort("libspf2: out of memory");
	/* An IPv4-mapped IPv6 address is the IPv4 client it maps (RFC 7208
	 * 5: "ip4" and "a" match it), which libspf2 would check as IPv6. */
	struct in6_addr a6;
	struct in_addr a4;
	SPF_errcode_t e = SPF_E_INVALID_IP4;
	if (inet_pton(AF_INET6, c->ip, &a6) == 1) {
		c->ipv6 = !IN6_IS_ADDR_V4MAPPED(&a6);
		if (c->ipv6) {
			memcpy(c->addr, &a6, 16);
			e = SPF_request_set_ipv6(req, a6);
		} else {
			memcpy(&a4, &a6.s6_addr[12], 4);
			memcpy(c->addr, &a4, 4);
			e = SPF_request_set_ipv4(req, a4);
		}
	} else if (inet_pton(AF_INET, c->ip, &a4) == 1) {
		c->ipv6 = false;
		memcpy(c->addr, &a4, 4);
		e = SPF_request_set_ipv4(req, a4);
	}
	if (e != SPF_E_SUCCESS) {        /* not an address: nothing to check */
		c->result = SPF_RESULT_NONE;
		SPF_request_free(req);
		return;
	}
	c->req = req;
	/* HELO first: with the null sender libspf2 then checks postmaster@HELO */
	if (c->helo[0])
		SPF_request_set_helo_dom(req, c->helo);
	SPF_request_set_env_from(req, c->sender);
	spf_current = c;
	SPF_errcode_t err = SPF_request_query_mailfrom(req, &resp);
	spf_current = NULL;
	c->req = NULL;
	c->result = resp ? SPF_response_result(resp) : SPF_RESULT_TEMPERROR;
	/* No result, only an error code: a record that does not compile, or a
	 * lookup of the domain's own TXT that failed (TRY_AGAIN), which
	 * SPF_server_get_record reports as SPF_E_DNS_ERROR without a result. */
	if (c->result <= SPF_RESULT_INVALID || c->result >= NRESULTS)
		c->result = err == SPF_E_DNS_ERROR ? SPF_RESULT_TEMPERROR : SPF_RESULT_PERMERROR;
	const char *comment = NULL;
	if (c->perm) {           /* final: whatever else this pass missed */
		for (size_t i = 0; i < c->nmiss; i++)
			free((char *)c->miss[i].name);
		c->nmiss = 0;
		c->overflow = false;
		c->result = SPF_RESULT_PERMERROR;
		comment = c->perm;
	} else if (c->result == SPF_RESULT_FAIL && resp) {
		const char *exp = SPF_response_get_explanation(resp);
		if (exp && exp[0] && strcmp(exp, SPF_NO_EXP) != 0)
			comment = exp;
	}
	set_received(c, resp ? SPF_response_get_received_spf_value(resp) : NULL, comment);
	SPF_response_free(resp);
	SPF_request_free(req);
}

/* What verdict result means for acl a: temperror is a temporary failure
 * unless the acl names it. */
static enum tri verdict_answer(const struct spf_acl *a, int result)
{
	if (a->want[result])
		return TRI_TRUE;
	return result == SPF_RESULT_TEMPERROR ? TRI_TEMPFAIL : TRI_FALSE;
}

/* The verdict is in: hand it to the VM (at once or from the loop). */
static void call_finish(struct spf_call *c)
{
	runtime_observe(c->stats, RH_lookup_spf, runtime_mono_ns() - c->t0);
	vm_wait_set_var(c->w, VAR_spf_result, result_names[c->result]);
	if (c->received)
		vm_wait_set_var(c->w, VAR_spf_received, c->received);
	vm_wait_done(c->w, verdict_answer(c->a, c->result));
	call_free(c);
}

static void slot_answered(void *arg, const struct dns_result *r);

/* Run libspf2 until it needs a name not yet answered, or is done. Answers
 * that arrive inside dns_lookup only count down; this loop goes on. */
static void spf_run(struct spf_call *c)
{
	if (c->running)
		return;
	c->running = true;
	while (c->outstanding == 0) {
		spf_pass(c);
		if (c->nmiss == 0 && !c->overflow) {
			c->running = false;
			call_finish(c);
			return;
		}
		if (c->overflow) {
			log_warning("spf: %s for client %s: more than %d DNS lookups; permerror",
				    c->sender[0] ? c->sender : c->helo, c->ip, SPF_MAX_LOOKUPS);
			for (size_t i = 0; i < c->nmiss; i++)
				free((char *)c->miss[i].name);
			c->result = SPF_RESULT_PERMERROR;
			set_received(c, NULL, NULL);  /* the discarded run's said otherwise */
			c->running = false;
			call_finish(c);
			return;
		}
		c->outstanding = c->nmiss + 1;   /* +1: no new pass while starting */
		size_t first = c->nslots;
		for (size_t i = 0; i < c->nmiss; i++) {
			struct spf_slot *s = xcalloc(1, sizeof *s);
			s->call = c;
			s->name = (char *)c->miss[i].name;   /* taken over */
			s->type = c->miss[i].type;
			c->slot[c->nslots++] = s;
		}
		for (size_t i = first; i < c->nslots; i++)
			dns_lookup_until(c->dns, c->slot[i]->name, c->slot[i]->type, c->deadline,
					 slot_answered, c->slot[i]);
		c->outstanding--;
	}
	c->running = false;
}

/*
 * A TXT string for libspf2, which takes C strings: a NUL byte inside it
 * (served as such: backends/dns.h, txtlen) becomes 0x01, so the record
 * stays whole and, since RFC 7208 section 12 allows no control byte in a
 * record, the strict check (spf_record.h) makes it a permerror, as the
 * RFC 7208 suite's a-bad-domain wants, instead of libspf2 reading it cut
 * at the NUL.
 */
static char *txt_for_libspf2(const struct dns_rr *rr)
{
	char *s = xmalloc(rr->txtlen + 1);
	for (size_t i = 0; i < rr->txtlen; i++)
		s[i] = rr->txt[i] ? rr->txt[i] : '\x01';
	s[rr->txtlen] = 0;
	return s;
}

static void slot_answered(void *arg, const struct dns_result *r)
{
	struct spf_slot *s = arg;
	struct spf_call *c = s->call;
	s->ttl = r->ttl;
	s->herrno = r->status == DNS_FOUND      ? NETDB_SUCCESS
		    : r->status == DNS_TEMPFAIL ? TRY_AGAIN
		    : r->nxdomain               ? HOST_NOT_FOUND
						: NO_DATA;
	if (r->status == DNS_FOUND) {
		s->n = r->n;
		if (s->type == DNS_T_A || s->type == DNS_T_AAAA) {
			s->addr = xmalloc(r->n * sizeof *s->addr);
			for (size_t i = 0; i < r->n; i++)
				memcpy(s->addr[i], r->rr[i].addr, sizeof s->addr[i]);
		} else {
			s->str = xmalloc(r->n * sizeof *s->str);
			for (size_t i = 0; i < r->n; i++)
				s->str[i] = s->type == DNS_T_TXT ? txt_for_libspf2(&r->rr[i])
								 : xstrdup(r->rr[i].host);
		}
	}
	if (--c->outstanding == 0)
		spf_run(c);
}

static enum tri spf_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct spf_acl *a = acl_data(acl);
	/* an earlier spf acl of this request already has the verdict */
	const char *known = vm_get_var(e, VAR_spf_result);
	if (known) {
		for (int k = 0; k < NRESULTS; k++)
			if (result_names[k] && !strcmp(known, result_names[k]))
				return verdict_answer(a, k);
	}
	struct request *r = e->req;
	if (!spf_domain(r))
		return TRI_FALSE;
	struct spf_call *c = xcalloc(1, sizeof *c);
	c->a = a;
	c->dns = runtime_dns(e->rt);
	c->deadline = runtime_dns_deadline(e->rt, vm_deadline(e));
	c->ip = xstrdup(r->v[ATTR_client_address].s);
	c->sender = xstrdup(r->v[ATTR_sender].s);
	c->helo = xstrdup(r->v[ATTR_helo_name].s);
	runtime_count(e->rt, RC_spf_checks, 1);
	c->stats = runtime_stats(e->rt);
	c->t0 = runtime_mono_ns();
	c->w = vm_wait_begin(e);
	spf_run(c);                      /* may finish, and free c */
	return TRI_PENDING;
}

/* Start the first lookup (the domain's TXT) before the acl is reached. */
static void spf_prefetch(const struct acl_rt *acl, struct eval_ctx *e)
{
	(void)acl;
	const char *dom = spf_domain(e->req);
	if (dom)
		dns_prefetch(runtime_dns(e->rt), dom, DNS_T_TXT,
			     runtime_dns_deadline(e->rt, vm_deadline(e)));
}

static void spf_describe(const struct acl_rt *acl, struct strbuf *out)
{
	const struct spf_acl *a = acl_data(acl);
	sb_adds(out, "SPF verdict of sender (or helo_name) for client_address:");
	for (int k = 0; k < NRESULTS; k++)
		if (a->want[k])
			sb_printf(out, " %s", result_names[k]);
}

const struct acl_type acl_spf_type = {
	.name = "spf", .attr = -1, .compile = spf_compile, .eval = spf_eval,
	.prefetch = spf_prefetch, .describe = spf_describe,
};
