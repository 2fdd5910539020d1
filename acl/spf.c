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
 * until a run needs nothing new (docs/dns.md).
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
	size_t outstanding;      /* lookups not yet answered (+1 while starting) */
	bool running;
	SPF_result_t result;
	char *received;
	struct runtime_stats *stats; /* the verdict's time is counted there */
	uint64_t t0;
};

static SPF_server_t *spf_server;
static struct spf_call *spf_current;     /* the call libspf2 is running for */

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

/* libspf2's lookup: an answer this call has, or TRY_AGAIN after noting the
 * name. Never NULL (libspf2 treats NULL as a fatal error). */
static SPF_dns_rr_t *layer_lookup(SPF_dns_server_t *server, const char *domain, ns_type t,
				  int should_cache)
{
	(void)should_cache;
	struct spf_call *c = spf_current;
	bool known;
	enum dns_type type = dns_type_of(t, &known);
	if (!known || !c)
		return SPF_dns_rr_new_init(server, domain, t, 0, NO_DATA);
	const struct spf_slot *s = slot_find(c, domain, type);
	if (!s) {
		bool noted = false;
		for (size_t i = 0; i < c->nmiss && !noted; i++)
			noted = c->miss[i].type == type && !strcasecmp(c->miss[i].name, domain);
		/* A full miss list is no overflow: a later pass notes the name
		 * once these are in (%{p} asks for the A records of up to 10
		 * PTR names in one run). */
		if (!noted && c->nslots + c->nmiss >= SPF_MAX_LOOKUPS) {
			c->overflow = true;
		} else if (!noted && c->nmiss < SPF_MAX_MISSES) {
			c->miss[c->nmiss].name = xstrdup(domain);
			c->miss[c->nmiss++].type = type;
		}
		return SPF_dns_rr_new_init(server, domain, t, 0, TRY_AGAIN);
	}
	SPF_dns_rr_t *rr = SPF_dns_rr_new_init(server, domain, t, (int)s->ttl, s->herrno);
	if (!rr)
		fatal_abort("libspf2: out of memory");
	for (size_t i = 0; i < s->n; i++) {
		size_t len = type == DNS_T_A ? sizeof(struct in_addr)
			     : type == DNS_T_AAAA ? sizeof(struct in6_addr)
						 : strlen(s->str[i]) + 1;
		if (SPF_dns_rr_buf_realloc(rr, (int)i, len) != SPF_E_SUCCESS)
			fatal_abort("libspf2: out of memory");
		if (type == DNS_T_A || type == DNS_T_AAAA)
			memcpy(rr->rr[i], s->addr[i], len);
		else
			memcpy(rr->rr[i], s->str[i], len);   /* txt, mx and ptr share it */
	}
	rr->num_rr = (int)s->n;
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

/* ${spf_received}: libspf2's header value, or ours when it has none. */
static void set_received(struct spf_call *c, const char *rec)
{
	free(c->received);
	if (rec)
		c->received = xstrdup(rec);
	else
		c->received = xasprintf("%s client-ip=%s; envelope-from=%s%s; helo=%s;",
					result_names[c->result], c->ip, c->sender[0] ? "" : "postmaster@",
					c->sender[0] ? c->sender : c->helo, c->helo);
}

/* One run of libspf2 over the answers so far; notes what it missed. */
static void spf_pass(struct spf_call *c)
{
	c->nmiss = 0;
	c->overflow = false;
	SPF_request_t *req = SPF_request_new(server_get());
	SPF_response_t *resp = NULL;
	if (!req)
		fatal_abort("libspf2: out of memory");
	SPF_errcode_t e = strchr(c->ip, ':') ? SPF_request_set_ipv6_str(req, c->ip)
					      : SPF_request_set_ipv4_str(req, c->ip);
	if (e != SPF_E_SUCCESS) {        /* not an address: nothing to check */
		c->result = SPF_RESULT_NONE;
		SPF_request_free(req);
		return;
	}
	/* HELO first: with the null sender libspf2 then checks postmaster@HELO */
	if (c->helo[0])
		SPF_request_set_helo_dom(req, c->helo);
	SPF_request_set_env_from(req, c->sender);
	spf_current = c;
	SPF_errcode_t err = SPF_request_query_mailfrom(req, &resp);
	spf_current = NULL;
	c->result = resp ? SPF_response_result(resp) : SPF_RESULT_TEMPERROR;
	/* No result, only an error code: a record that does not compile, or a
	 * lookup of the domain's own TXT that failed (TRY_AGAIN), which
	 * SPF_server_get_record reports as SPF_E_DNS_ERROR without a result. */
	if (c->result <= SPF_RESULT_INVALID || c->result >= NRESULTS)
		c->result = err == SPF_E_DNS_ERROR ? SPF_RESULT_TEMPERROR : SPF_RESULT_PERMERROR;
	set_received(c, resp ? SPF_response_get_received_spf_value(resp) : NULL);
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
			set_received(c, NULL);  /* the discarded run's said otherwise */
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
				s->str[i] = xstrdup(s->type == DNS_T_TXT ? r->rr[i].txt : r->rr[i].host);
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
