/*
 * dns - asynchronous DNS lookups on the event loop, for the rbl, dnswl,
 * rhsbl and spf acls. A thin layer over libunbound in event mode
 * (ub_ctx_create_event on our event_base: no thread, no pipe); the
 * resolving, negative caching and merging of identical queries in flight
 * are libunbound's. In front of its cache sits a first-level cache of
 * answers (backends/dnscache.h) that makes a hit cheap; both honour TTLs
 * with the same caps (docs/dev/dns.md has the decisions and the numbers).
 *
 * Upstream: the --dns servers (forwarders, a set: libunbound picks among
 * them by measured RTT), or the nameservers of /etc/resolv.conf; when that
 * file cannot be read, 127.0.0.1 (as glibc does). Every name but those
 * under localhost. is asked there: libunbound's built-in answers for
 * test., invalid., onion., home.arpa. and the private and documentation
 * reverse zones are turned off, so the resolver the operator configured
 * decides. Records come in the order served (no round-robin rotation).
 *
 * A lookup answers through its callback exactly once, with one of:
 *   DNS_FOUND     records of the type asked for (addresses or TXT strings)
 *   DNS_NOTFOUND  NXDOMAIN, or NOERROR without records of that type; also,
 *                 at once and with nothing sent, a name that cannot exist
 *                 (over 253 bytes, an empty label or one over 63: nxdomain)
 *   DNS_TEMPFAIL  SERVFAIL, REFUSED or any other RCODE, a libunbound
 *                 error, the lookup's deadline (the query is then
 *                 ub_cancel()ed; a lookup started after its deadline is
 *                 answered from our cache or fails at once, nothing sent),
 *                 or dns_free while it was in flight
 * The callback may run INSIDE dns_lookup, before it returns (a cache hit,
 * or an immediate failure); otherwise it runs from the event loop. It may
 * start new lookups. The result and its strings are valid only during the
 * callback, and only until it starts another lookup: a cache hit hands
 * out the cached records themselves, and a lookup answered inside its
 * call stores its answer, which may evict or replace them. Copy first.
 *
 * One struct dns per process, used only from the loop's thread. Its
 * configuration is fixed once made (a ub_ctx cannot be reconfigured after
 * its first query): changing servers needs a new one.
 */
#ifndef MXACL_DNS_H
#define MXACL_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct dns;

enum dns_type { DNS_T_A = 1, DNS_T_PTR = 12, DNS_T_MX = 15, DNS_T_TXT = 16, DNS_T_AAAA = 28 };
enum dns_status { DNS_FOUND, DNS_NOTFOUND, DNS_TEMPFAIL };

#define DNS_MAX_RR 64           /* records kept per answer; more are dropped (big
                                   domains publish 40+ TXT records besides SPF) */
#define DNS_MAX_TXT 4096        /* bytes kept of one TXT record's strings */

struct dns_rr {
	uint8_t addr[16];       /* A: 4 bytes, AAAA: 16 */
	const char *txt;        /* TXT: its character-strings joined with nothing
				   between (RFC 7208 3.3), every byte as served:
				   control bytes and NUL too, so a consumer that
				   reads it as a C string must compare strlen(txt)
				   with txtlen (txt[txtlen] is always 0) */
	size_t txtlen;          /* TXT: bytes in txt, at most DNS_MAX_TXT */
	const char *host;       /* MX: the exchange; PTR: the name (no trailing dot) */
	uint16_t pref;          /* MX: the preference */
};

struct dns_result {
	enum dns_status status;
	enum dns_type type;
	const char *name;       /* as asked */
	uint32_t ttl;           /* FOUND: the smallest record TTL; NOTFOUND: the
				   SOA's negative TTL when there is one, else 0 */
	bool nxdomain;          /* NOTFOUND: the name does not exist at all */
	bool null_mx;           /* MX: the answer held a record whose exchange is
				   the root, "." (RFC 7505's null MX, "no mail
				   here"); such records are not in rr, so an
				   answer of only that is NOTFOUND with this set */
	size_t n;               /* FOUND: records in rr (>= 1) */
	const struct dns_rr *rr;
	const char *why;        /* TEMPFAIL: a short reason ("timeout", "SERVFAIL") */
};

typedef void (*dns_cb)(void *arg, const struct dns_result *r);

struct dns_opts {
	const char *const *servers; /* "HOST", "HOST:PORT", "[V6]:PORT"; none: resolv.conf */
	size_t nservers;
	unsigned timeout_ms;        /* a request's deadline (dns_deadline); 0:
				       DNS_DEFAULT_TIMEOUT_MS */
	unsigned max_ttl;           /* cache-max-ttl; 0: DNS_DEFAULT_MAX_TTL */
	unsigned max_negative_ttl;  /* cache-max-negative-ttl; 0: DNS_DEFAULT_MAX_NEG_TTL */
	unsigned outgoing_range;    /* queries on the wire; 0: 1024, capped to half
				       the soft RLIMIT_NOFILE */
	bool offline;               /* send nothing: every lookup answers DNS_TEMPFAIL
				       ("offline") at once (mxacl replay --offline) */
	size_t cache_entries;       /* answers in our first-level cache
				       (backends/dnscache.h); 0: DNS_DEFAULT_CACHE */
};

#define DNS_DEFAULT_TIMEOUT_MS 2000
#define DNS_DEFAULT_MAX_TTL 86400
#define DNS_DEFAULT_MAX_NEG_TTL 3600
#define DNS_DEFAULT_CACHE 200000
#define DNS_UNBOUND_MSG_CACHE (16u << 20)    /* libunbound's caches, bytes */
#define DNS_UNBOUND_RRSET_CACHE (32u << 20)

/*
 * A resolver on base (not owned). o may be NULL for the defaults. Returns
 * NULL with *err (malloc'd, the caller frees it) when a server is malformed
 * or libunbound refuses an option: a start-up error.
 */
struct dns *dns_new(struct event_base *base, const struct dns_opts *o, char **err);
/*
 * Answer every lookup in flight with DNS_TEMPFAIL ("shutdown"), then free.
 * Lookups started from those callbacks fail at once. NULL is a no-op.
 */
void dns_free(struct dns *d);

/*
 * A deadline for lookups that start now: the configured timeout from now,
 * in milliseconds of CLOCK_MONOTONIC. A request takes one when its first
 * lookup starts and passes it to every lookup it makes (also those started
 * ahead and SPF's later ones), so that it waits for DNS at most one
 * timeout in all, however many acls it evaluates (docs/dev/dns.md, "One
 * deadline per request").
 */
uint64_t dns_deadline(const struct dns *d);

/*
 * Look name (no trailing dot needed) up for type; cb(arg, result) is
 * called exactly once, perhaps before this returns (see above), and at the
 * latest at deadline (dns_deadline), with DNS_TEMPFAIL ("timeout") if
 * nothing answered by then. name is copied.
 */
void dns_lookup_until(struct dns *d, const char *name, enum dns_type type, uint64_t deadline,
		      dns_cb cb, void *arg);
/* The same with a deadline of its own: dns_deadline(d). */
void dns_lookup(struct dns *d, const char *name, enum dns_type type, dns_cb cb, void *arg);

/*
 * Start a lookup whose answer nobody waits for, so that it is in
 * libunbound's cache, or in flight to be merged with, when a dns_lookup
 * for it comes. It is cancelled at deadline, as the lookup that will wait
 * for it would be.
 */
void dns_prefetch(struct dns *d, const char *name, enum dns_type type, uint64_t deadline);

/*
 * Count lookups, cache hits and misses, failures by reason and the time
 * of each query into st (backends/runtime.h) from now on; NULL stops.
 */
struct runtime_stats;
void dns_set_stats(struct dns *d, struct runtime_stats *st);
/* Answers in our first-level cache now (status). */
size_t dns_cache_entries(const struct dns *d);

/* Lookups started and not yet answered (tests, shutdown). */
size_t dns_pending(const struct dns *d);

/* The reversed form of an address for a DNSBL: "2.0.0.127" or 32 nibbles
 * for IPv6 ("1.0.0.0....8.b.d.0.1.0.0.2"). False if s is not an address. */
bool dns_reverse_name(const char *s, size_t len, char *out, size_t size);

#endif
