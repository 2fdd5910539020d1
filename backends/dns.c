/*
 * dns - lookups over libunbound in event mode (see dns.h). Each lookup is a
 * struct dns_query on a list, with a timer for the deadline its caller gave
 * (the request's, shared by all its lookups). libunbound calls
 * back once per query unless it is ub_cancel()ed, so we answer each query
 * exactly once from one of three places: libunbound's callback, the
 * deadline (after ub_cancel), or dns_free (after ub_cancel).
 */
#include "backends/dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <inttypes.h>
#include <event2/event.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <time.h>
#include <unbound-event.h>
#include <unbound.h>

#include "backends/dnscache.h"
#include "backends/runtime.h"
#include "util/hostport.h"
#include "util/log.h"
#include "util/util.h"

struct dns_query {
	struct dns *d;
	TAILQ_ENTRY(dns_query) link;    /* in flight; not linked while starting */
	bool linked;            /* on d->inflight */
	struct event *timer;
	char *name;
	enum dns_type type;
	int id;                 /* libunbound's async id */
	bool starting;          /* inside ub_resolve_event */
	bool answered;          /* cb has been called */
	dns_cb cb;
	void *arg;
	uint64_t t0;            /* runtime_mono_ns() when it started */
};

struct dns {
	struct event_base *base;
	struct ub_ctx *ctx;
	unsigned timeout_ms;
	TAILQ_HEAD(, dns_query) inflight;
	size_t npending;
	bool closing;
	bool offline;
	struct dnscache *cache;
	uint32_t max_ttl, max_neg_ttl;
	/* failed lookups, logged at most once a minute (STYLE: a slow DNS
	 * server gets a clear line in the log, not one per request) */
	uint64_t failed;            /* since the last warning */
	uint64_t last_warning;      /* mono_now() of it; 0: none */
	struct runtime_stats *stats; /* counted there (dns_set_stats); NULL: nowhere */
};

#define DNS_WARN_INTERVAL 60     /* s between warnings about failed lookups */

/* Seconds of a clock that never steps back, for cache expiry. */
static uint64_t mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec;
}

/* Milliseconds of the monotonic clock, for deadlines. */
static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- configuration --------------------------------------------------------- */

static bool set_option(struct ub_ctx *ctx, const char *name, unsigned value, char **err)
{
	char v[24];
	snprintf(v, sizeof v, "%u", value);
	int e = ub_ctx_set_option(ctx, name, v);
	if (e) {
		*err = xasprintf("libunbound: %s %s: %s", name, v, ub_strerror(e));
		return false;
	}
	return true;
}

/* One fd per query on the wire: stay well below the process's fd limit. */
static unsigned outgoing_range(unsigned want)
{
	struct rlimit rl;
	if (want == 0)
		want = 1024;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    want > rl.rlim_cur / 2)
		want = (unsigned)(rl.rlim_cur / 2);
	return want < 16 ? 16 : want;
}

/*
 * Zones libunbound answers itself unless told otherwise (RFC 6303, 6761,
 * 7686, 8375: test., invalid., onion., home.arpa., the loopback reverse
 * zones; services/localzone.c), and some that later versions add. Each
 * becomes a "transparent" local zone holding no data, which passes every
 * query on to the forwarders: the resolver the operator configured
 * decides, so an rbldnsd zone under test. or a PTR under 10.in-addr.arpa
 * served by the site's resolver is found. ("NAME nodefault" through
 * ub_ctx_set_option had no effect in libunbound 1.17.1; "transparent"
 * does.) The AS112 zones (RFC 1918 and documentation reverse zones) go
 * with unblock-lan-zones. Only localhost. stays libunbound's.
 */
static const char *const builtin_zones[] = {
	"test.", "invalid.", "onion.", "home.arpa.", "resolver.arpa.", "service.arpa.",
	"127.in-addr.arpa.",
	"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
};

/* String options, each "NAME:" VALUE; false with *err on the first refused. */
static bool set_options(struct ub_ctx *ctx, char **err)
{
	static const char *const opts[][2] = {
		/* no validation: there is no trust anchor; say so rather than rely on it */
		{ "module-config:", "iterator" },
		/* answers in the order served: libspf2 checks the first ten MX hosts
		 * of a rotated list, so SPF results would change between lookups */
		{ "rrset-roundrobin:", "no" },
		/* the AS112 reverse zones: asked, not answered NXDOMAIN (above) */
		{ "unblock-lan-zones:", "yes" },
	};
	for (size_t i = 0; i < ARRAY_LEN(opts); i++) {
		int e = ub_ctx_set_option(ctx, opts[i][0], opts[i][1]);
		if (e) {
			*err = xasprintf("libunbound: %s %s: %s", opts[i][0], opts[i][1], ub_strerror(e));
			return false;
		}
	}
	for (size_t i = 0; i < ARRAY_LEN(builtin_zones); i++) {
		char v[128];
		snprintf(v, sizeof v, "%s transparent", builtin_zones[i]);
		int e = ub_ctx_set_option(ctx, "local-zone:", v);
		if (e) {
			*err = xasprintf("libunbound: local-zone: %s: %s", v, ub_strerror(e));
			return false;
		}
	}
	return true;
}

struct dns *dns_new(struct event_base *base, const struct dns_opts *o, char **err)
{
	static const struct dns_opts none;
	if (!o)
		o = &none;
	*err = NULL;
	struct ub_ctx *ctx = ub_ctx_create_event(base);
	if (!ctx) {
		*err = xasprintf("libunbound: cannot create a context");
		return NULL;
	}
	bool ok = set_option(ctx, "outgoing-range:", outgoing_range(o->outgoing_range), err) &&
		  set_option(ctx, "cache-max-ttl:", o->max_ttl ? o->max_ttl : DNS_DEFAULT_MAX_TTL, err) &&
		  set_option(ctx, "cache-max-negative-ttl:",
			     o->max_negative_ttl ? o->max_negative_ttl : DNS_DEFAULT_MAX_NEG_TTL, err) &&
		  set_option(ctx, "msg-cache-size:", DNS_UNBOUND_MSG_CACHE, err) &&
		  set_option(ctx, "rrset-cache-size:", DNS_UNBOUND_RRSET_CACHE, err);
	ok = ok && set_options(ctx, err);
	for (size_t i = 0; ok && i < o->nservers; i++) {
		char fwd[80], msg[160];
		if (!hostport_dns_server(o->servers[i], fwd, sizeof fwd, msg, sizeof msg)) {
			*err = xstrdup(msg);
			ok = false;
		} else {
			int e = ub_ctx_set_fwd(ctx, fwd);
			if (e) {
				*err = xasprintf("libunbound: forwarder %s: %s", fwd, ub_strerror(e));
				ok = false;
			}
		}
	}
	if (ok && o->nservers == 0) {
		int e = ub_ctx_resolvconf(ctx, NULL);
		if (e) {
			log_warning("dns: cannot read /etc/resolv.conf (%s); asking 127.0.0.1",
				    ub_strerror(e));
			ub_ctx_set_fwd(ctx, "127.0.0.1");
		}
	}
	if (!ok) {
		ub_ctx_delete(ctx);
		return NULL;
	}
	struct dns *d = xcalloc(1, sizeof *d);
	TAILQ_INIT(&d->inflight);
	d->base = base;
	d->offline = o->offline;
	d->cache = dnscache_new(o->cache_entries ? o->cache_entries : DNS_DEFAULT_CACHE);
	d->max_ttl = o->max_ttl ? o->max_ttl : DNS_DEFAULT_MAX_TTL;
	d->max_neg_ttl = o->max_negative_ttl ? o->max_negative_ttl : DNS_DEFAULT_MAX_NEG_TTL;
	d->ctx = ctx;
	d->timeout_ms = o->timeout_ms ? o->timeout_ms : DNS_DEFAULT_TIMEOUT_MS;
	return d;
}

void dns_set_stats(struct dns *d, struct runtime_stats *st)
{
	d->stats = st;
}

size_t dns_cache_entries(const struct dns *d)
{
	return dnscache_count(d->cache);
}

size_t dns_pending(const struct dns *d)
{
	return d->npending;
}

/* ---- answers --------------------------------------------------------------- */

/* Take q off the in-flight list, if it is on it. */
static void unlink_query(struct dns_query *q)
{
	if (q->linked)
		TAILQ_REMOVE(&q->d->inflight, q, link);
	q->linked = false;
}

static void query_free(struct dns_query *q)
{
	if (q->timer)
		event_free(q->timer);
	free(q->name);
	free(q);
}

static const char *type_name(enum dns_type t)
{
	switch (t) {
	case DNS_T_A:
		return "A";
	case DNS_T_AAAA:
		return "AAAA";
	case DNS_T_TXT:
		return "TXT";
	case DNS_T_MX:
		return "MX";
	case DNS_T_PTR:
		return "PTR";
	}
	return "?";
}

/* Keep the log told of failed lookups: the first of a minute is a warning,
 * with the count since the last one. (No "answers again" line: one dead
 * list among working ones would make it flap.) */
static void note_failure(struct dns *d, const struct dns_query *q, const struct dns_result *r)
{
	if (r->status != DNS_TEMPFAIL || d->closing || d->offline)
		return;
	d->failed++;
	uint64_t now = mono_now();
	if (d->last_warning && now - d->last_warning < DNS_WARN_INTERVAL)
		return;
	log_warning("dns: lookup of %s %s failed: %s (%" PRIu64 " failed lookup%s since %s); "
		    "acls answer as their tempfail= says", q->name, type_name(q->type), r->why,
		    d->failed, d->failed == 1 ? "" : "s",
		    d->last_warning ? "the last warning" : "start");
	d->failed = 0;
	d->last_warning = now;
}

/* Call back once; the query is freed here unless ub_resolve_event is still
 * on the stack (dns_lookup frees it then). */
static void answer(struct dns_query *q, struct dns_result *r)
{
	struct dns *d = q->d;
	unlink_query(q);
	if (q->timer)
		event_del(q->timer);
	q->answered = true;
	d->npending--;
	r->name = q->name;
	r->type = q->type;
	note_failure(d, q, r);
	if (d->stats) {
		runtime_observe(d->stats, RH_lookup_dns, runtime_mono_ns() - q->t0);
		if (r->status == DNS_TEMPFAIL)
			(*runtime_family_slot(d->stats, RF_dns_failures, r->why, strlen(r->why)))++;
	}
	if (r->status != DNS_TEMPFAIL) {
		uint32_t cap = r->status == DNS_FOUND ? d->max_ttl : d->max_neg_ttl;
		dnscache_put(d->cache, r, r->ttl < cap ? r->ttl : cap, mono_now());
	}
	q->cb(q->arg, r);
	if (!q->starting)
		query_free(q);
}

static void fail(struct dns_query *q, const char *why)
{
	struct dns_result r = { .status = DNS_TEMPFAIL, .why = why };
	answer(q, &r);
}

/* TXT: the record's character-strings joined, every byte as it came (a
 * NUL too: *len says where the text ends), at most DNS_MAX_TXT bytes. */
static char *txt_string(const unsigned char *p, size_t n, size_t *len)
{
	char *out = xmalloc(n + 1);
	size_t k = 0;
	while (n > 0) {
		size_t l = *p++;
		n--;
		if (l > n)
			l = n;
		size_t take = l < DNS_MAX_TXT - k ? l : DNS_MAX_TXT - k;
		memcpy(out + k, p, take);
		k += take;
		p += l;
		n -= l;
	}
	out[k] = 0;
	*len = k;
	return out;
}

/* A domain name in the packet (MX, PTR), malloc'd, no trailing dot; NULL if
 * malformed or not a plain host name. */
static char *dname(ns_msg *m, const unsigned char *p)
{
	char buf[NS_MAXDNAME];
	if (ns_name_uncompress(ns_msg_base(*m), ns_msg_end(*m), p, buf, sizeof buf) < 0)
		return NULL;
	size_t n = strlen(buf);
	while (n > 0 && buf[n - 1] == '.')
		buf[--n] = 0;
	if (n == 0)
		return NULL;                /* the root: a null MX (RFC 7505) */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] <= 0x20 || buf[i] == '\\' || buf[i] == 0x7f)
			return NULL;        /* escaped bytes: not a name SPF can use */
	return xstrdup(buf);
}

/* Read the answer packet: records of q->type, TTLs, the SOA's minimum. */
static void parse_packet(struct dns_query *q, const unsigned char *pkt, int len)
{
	ns_msg m;
	if (ns_initparse(pkt, len, &m) != 0) {
		fail(q, "malformed answer");
		return;
	}
	int rcode = ns_msg_getflag(m, ns_f_rcode);
	if (rcode != ns_r_noerror && rcode != ns_r_nxdomain) {
		fail(q, rcode == ns_r_servfail ? "SERVFAIL" : rcode == ns_r_refused ? "REFUSED"
										      : "DNS error");
		return;
	}
	struct dns_rr rr[DNS_MAX_RR];
	struct dns_result r = { .status = DNS_NOTFOUND, .rr = rr, .nxdomain = rcode == ns_r_nxdomain };
	uint32_t ttl = UINT32_MAX, nullttl = UINT32_MAX;
	if (rcode == ns_r_noerror) {
		for (int i = 0; i < ns_msg_count(m, ns_s_an) && r.n < DNS_MAX_RR; i++) {
			ns_rr x;
			if (ns_parserr(&m, ns_s_an, i, &x) != 0 || (int)ns_rr_type(x) != (int)q->type ||
			    ns_rr_class(x) != ns_c_in)
				continue;           /* CNAMEs before the records, for instance */
			const unsigned char *rd = ns_rr_rdata(x);
			size_t rdlen = ns_rr_rdlen(x);
			struct dns_rr *o = &rr[r.n];
			memset(o, 0, sizeof *o);
			if (q->type == DNS_T_A && rdlen == 4)
				memcpy(o->addr, rd, 4);
			else if (q->type == DNS_T_AAAA && rdlen == 16)
				memcpy(o->addr, rd, 16);
			else if (q->type == DNS_T_TXT)
				o->txt = txt_string(rd, rdlen, &o->txtlen);
			else if (q->type == DNS_T_MX && rdlen > 2) {
				o->pref = (uint16_t)ns_get16(rd);
				if (rdlen == 3 && rd[2] == 0) {
					/* the root: a null MX (RFC 7505), said but not
					   a host (SPF never sees it) */
					r.null_mx = true;
					if (ns_rr_ttl(x) < nullttl)
						nullttl = ns_rr_ttl(x);
					continue;
				}
				if (!(o->host = dname(&m, rd + 2)))
					continue;
			} else if (q->type == DNS_T_PTR) {
				if (!(o->host = dname(&m, rd)))
					continue;
			} else
				continue;
			if (ns_rr_ttl(x) < ttl)
				ttl = ns_rr_ttl(x);
			r.n++;
		}
	}
	if (r.n > 0) {
		r.status = DNS_FOUND;
		r.ttl = ttl < nullttl ? ttl : nullttl;
		r.nxdomain = false;
	} else if (r.null_mx) {
		r.ttl = nullttl;            /* no SOA: the null MX's own TTL */
	} else {
		for (int i = 0; i < ns_msg_count(m, ns_s_ns); i++) {
			ns_rr x;
			if (ns_parserr(&m, ns_s_ns, i, &x) == 0 && ns_rr_type(x) == ns_t_soa &&
			    ns_rr_rdlen(x) >= 20) {
				uint32_t min = ns_get32(ns_rr_rdata(x) + ns_rr_rdlen(x) - 4);
				r.ttl = min < ns_rr_ttl(x) ? min : ns_rr_ttl(x);
				break;
			}
		}
	}
	size_t n = r.n;
	answer(q, &r);
	for (size_t i = 0; i < n; i++) {
		free((char *)rr[i].txt);
		free((char *)rr[i].host);
	}
}

static void ub_answered(void *arg, int rcode, void *pkt, int len, int sec, char *why_bogus,
			int was_ratelimited)
{
	struct dns_query *q = arg;
	(void)sec;
	(void)why_bogus;
	(void)was_ratelimited;
	if (rcode != 0 || !pkt)
		fail(q, "SERVFAIL");
	else
		parse_packet(q, pkt, len);
}

static void expired(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;
	(void)fd;
	(void)what;
	ub_cancel(q->d->ctx, q->id);    /* libunbound will not call back now */
	fail(q, "timeout");
}

/* ---- lookups --------------------------------------------------------------- */

/* Can name exist in the DNS: at most 253 bytes (a trailing dot not counted),
 * labels of 1 to 63? libunbound refuses others (UB_SYNTAX). */
static bool name_possible(const char *name)
{
	size_t n = strlen(name);
	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0, label = 0; i <= n; i++) {
		if (i == n || name[i] == '.') {
			if (label == 0 || label > 63)
				return false;
			label = 0;
		} else {
			label++;
		}
	}
	return true;
}

uint64_t dns_deadline(const struct dns *d)
{
	return mono_ms() + d->timeout_ms;
}

void dns_lookup_until(struct dns *d, const char *name, enum dns_type type, uint64_t deadline,
		      dns_cb cb, void *arg)
{
	struct dns_result hit;
	runtime_stats_add(d->stats, RC_dns_queries, 1);
	/* the cache first: only possible names are asked, so only they are
	 * stored, and a hit need not scan the name (bench/run score's warm
	 * path makes seven lookups a request) */
	if (!d->closing && dnscache_get(d->cache, name, type, mono_now(), &hit)) {
		hit.name = name;
		hit.type = type;
		hit.why = NULL;
		runtime_stats_add(d->stats, RC_dns_cache_hits, 1);
		cb(arg, &hit);
		return;
	}
	if (!name_possible(name)) {
		/* no such name, for good: not a temporary failure (for SPF, RFC 7208
		 * 4.3 makes a malformed domain "none"); nothing to cache or send */
		struct dns_result r = { .status = DNS_NOTFOUND, .type = type, .name = name,
					.nxdomain = true };
		cb(arg, &r);
		return;
	}
	struct dns_query *q = xcalloc(1, sizeof *q);
	q->d = d;
	q->name = xstrdup(name);
	q->type = type;
	q->cb = cb;
	q->arg = arg;
	q->t0 = d->stats ? runtime_mono_ns() : 0;
	runtime_stats_add(d->stats, RC_dns_cache_misses, 1);
	d->npending++;
	if (d->closing || d->offline) {
		fail(q, d->closing ? "shutdown" : "offline");
		return;
	}
	uint64_t now = mono_ms();
	if (now >= deadline) {
		/* the request's time for DNS is used up (an earlier acl waited it
		 * out): no query that nobody would wait for */
		fail(q, "timeout");
		return;
	}
	q->starting = true;
	int e = ub_resolve_event(d->ctx, name, (int)type, ns_c_in, q, ub_answered, &q->id);
	q->starting = false;
	if (q->answered) {              /* a cache hit answered inside the call */
		query_free(q);
		return;
	}
	if (e) {
		fail(q, ub_strerror(e));
		return;
	}
	TAILQ_INSERT_HEAD(&d->inflight, q, link);
	q->linked = true;
	/* libevent adds a relative timeout to its cached clock, which lags
	 * by the time this loop pass has taken: refresh it, or the timer
	 * fires that much early */
	event_base_update_cache_time(d->base);
	now = mono_ms();
	uint64_t left = deadline > now ? deadline - now : 0;
	struct timeval tv = { .tv_sec = (time_t)(left / 1000), .tv_usec = (suseconds_t)(left % 1000) * 1000 };
	q->timer = evtimer_new(d->base, expired, q);
	evtimer_add(q->timer, &tv);
}

void dns_lookup(struct dns *d, const char *name, enum dns_type type, dns_cb cb, void *arg)
{
	dns_lookup_until(d, name, type, dns_deadline(d), cb, arg);
}

static void prefetched(void *arg, const struct dns_result *r)
{
	(void)arg;
	(void)r;
}

void dns_prefetch(struct dns *d, const char *name, enum dns_type type, uint64_t deadline)
{
	dns_lookup_until(d, name, type, deadline, prefetched, NULL);
}

void dns_free(struct dns *d)
{
	if (!d)
		return;
	d->closing = true;
	while (!TAILQ_EMPTY(&d->inflight)) {
		struct dns_query *q = TAILQ_FIRST(&d->inflight);
		ub_cancel(d->ctx, q->id);
		fail(q, "shutdown");
	}
	ub_ctx_delete(d->ctx);
	dnscache_free(d->cache);
	free(d);
}

/* ---- names ----------------------------------------------------------------- */

/* Octets p[3], p[2], p[1], p[0] as "D.D.D.D" (at most 16 bytes with the
 * NUL), written by hand: every rbl acl of every request makes one, and
 * snprintf was most of what that cost (performance.md, "Scores"). */
static bool reverse_v4(const unsigned char *p, char *out, size_t size)
{
	char buf[16], *q = buf;
	for (int i = 3; i >= 0; i--) {
		unsigned v = p[i];
		if (v >= 100)
			*q++ = (char)('0' + v / 100);
		if (v >= 10)
			*q++ = (char)('0' + v / 10 % 10);
		*q++ = (char)('0' + v % 10);
		*q++ = i ? '.' : 0;
	}
	if ((size_t)(q - buf) > size)
		return false;
	memcpy(out, buf, (size_t)(q - buf));
	return true;
}

bool dns_reverse_name(const char *s, size_t len, char *out, size_t size)
{
	char buf[64];
	unsigned char a[16];
	if (len == 0 || len >= sizeof buf)
		return false;
	memcpy(buf, s, len);
	buf[len] = 0;
	if (inet_pton(AF_INET, buf, a) == 1)
		return reverse_v4(a, out, size);
	if (inet_pton(AF_INET6, buf, a) != 1 || size < 64)
		return false;
	/* an IPv4-mapped address is looked up as IPv4 */
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (!memcmp(a, mapped, 12))
		return reverse_v4(a + 12, out, size);
	static const char hex[] = "0123456789abcdef";
	size_t k = 0;
	for (int i = 15; i >= 0; i--) {
		out[k++] = hex[a[i] & 15];
		out[k++] = '.';
		out[k++] = hex[a[i] >> 4];
		out[k++] = i ? '.' : 0;
	}
	return true;
}
