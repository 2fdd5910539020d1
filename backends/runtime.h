/*
 * runtime - what lives as long as the process and outlives every program:
 * the event loop lookups run on, the state store, the DNS resolver, and
 * the request clock's source, and the counters. The VM only carries it, as an opaque handle
 * (engine/vm.h): acl types reach their backends through it, so a reload
 * (a new program) keeps the store's state and the resolver's cache.
 *
 * One runtime per event loop; everything here runs on that loop's thread.
 */
#ifndef MXACL_RUNTIME_H
#define MXACL_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct dns;
struct event_base;
struct runtime;
struct store;

/*
 * base: the event loop asynchronous lookups run on (not owned). The runtime
 * starts with an embedded memory store and no resolver.
 */
struct runtime *runtime_new(struct event_base *base);
/* Closes the store and frees the resolver (their callbacks in flight are
 * answered with a failure first). NULL is a no-op. */
void runtime_free(struct runtime *rt);

/* The event loop (for timers and sockets of lookups). */
struct event_base *runtime_base(struct runtime *rt);
/* The loop's cached time, in seconds: what a live request's clock reads. */
time_t runtime_now(struct runtime *rt);

/* Replace the state store (the runtime owns it; the old one is closed). */
void runtime_set_store(struct runtime *rt, struct store *s);
/* The state store (never NULL: memory unless set otherwise). */
struct store *runtime_store(struct runtime *rt);

/*
 * Replace the DNS resolver (backends/dns.h; the runtime owns it, the old one
 * is freed, answering its lookups in flight with a temporary failure).
 */
void runtime_set_dns(struct runtime *rt, struct dns *d);
/*
 * The resolver, never NULL. Without runtime_set_dns it is made on first
 * use with the defaults (/etc/resolv.conf), so a program without DNS acls
 * never creates one; that happens on the loop, after daemonising.
 */
struct dns *runtime_dns(struct runtime *rt);
/*
 * The DNS deadline of one request (dns_deadline): *slot is the request's
 * (engine/vm.h, eval_deadline); the first call sets it from the resolver's
 * timeout, later ones return the same instant, so every lookup of the
 * request, started ahead or not, ends by it.
 */
uint64_t runtime_dns_deadline(struct runtime *rt, uint64_t *slot);

/*
 * The counters: one row each, X(NAME, KIND, "help"). NAME is what the
 * control socket's "stats" shows; the metrics endpoint (daemon/metrics.h)
 * exports a COUNTER as mxacl_NAME_total and a GAUGE as mxacl_NAME, with the
 * help line. KIND STATS is a counter the endpoint has as a labelled family
 * instead (requests: mxacl_requests_total{action=...}), so "stats" only.
 * A counter only goes up (a gauge goes both ways), from the loop's thread,
 * and lives as long as the runtime (a reload does not reset it). New rows
 * go at the end: "stats" keeps its order.
 */
#define RUNTIME_COUNTERS(X)                                                                \
	X(requests, STATS, "policy requests answered")                                     \
	X(requests_tempfail, COUNTER, "requests given the default action by a failed "    \
				       "lookup (tempfail=default)")                        \
	X(greylist_checks, COUNTER, "greylist acls asked of the store")                    \
	X(rate_checks, COUNTER, "rate acls asked of the store")                            \
	X(dnslist_checks, COUNTER, "DNS list acls looked up (rbl, dnswl, rhsbl...)")       \
	X(spf_checks, COUNTER, "SPF verdicts computed")                                    \
	X(connections_open, GAUGE, "policy connections open")                              \
	X(connections_accepted, COUNTER, "policy connections accepted")                    \
	X(connections_refused, COUNTER, "policy connections refused at the limit, none "  \
					 "idle")                                           \
	X(connections_evicted, COUNTER, "policy connections closed at the limit to make " \
					 "room for a new one")                             \
	X(dns_queries, COUNTER, "DNS lookups asked of the resolver")                       \
	X(dns_cache_hits, COUNTER, "DNS lookups answered from mxacld's own cache")         \
	X(dns_cache_misses, COUNTER, "DNS lookups not in mxacld's cache (sent to "         \
				      "libunbound)")                                       \
	X(store_calls, COUNTER, "calls into the state store")                              \
	X(store_errors, COUNTER, "greylist and rate store calls answered with a "          \
				  "temporary failure")                                     \
	X(store_down, GAUGE, "1 while the state store is unreachable (an outage), else 0") \
	X(store_reconnects, COUNTER, "connection attempts to the state store after the "  \
				      "first")                                             \
	X(store_outages, COUNTER, "outages of the state store (or of one node of a Redis " \
				   "Cluster) begun")                                      \
	X(store_failovers, COUNTER, "Redis Sentinel failovers followed to a new master")  \
	X(store_slot_map_changes, COUNTER, "Redis Cluster slot maps that changed (a "     \
					    "resharding or a failover)")                   \
	X(reloads, COUNTER, "policy reloads that compiled and were swapped in")           \
	X(reloads_failed, COUNTER, "policy reloads rejected for errors (the previous "    \
				    "policy stays)")                                       \
	X(distinct_checks, COUNTER, "distinct acls asked of the store")                    \
	X(refunds, COUNTER, "rate amounts and distinct values taken back because the "    \
			     "answer refused the request")                               \
	X(counted_ahead, COUNTER, "rate and distinct acls asked of the store before "     \
				   "their line was reached, with the request's first "    \
				   "store call (a store that answers later: Redis)")      \
	X(ahead_given_back, COUNTER, "of those, counts given back because their line "    \
				      "was not reached")

enum runtime_counter_kind { RUNTIME_COUNTER, RUNTIME_GAUGE, RUNTIME_STATS };

enum runtime_counter {
#define X(name, kind, help) RC_##name,
	RUNTIME_COUNTERS(X)
#undef X
	RC_COUNT
};

/*
 * Labelled counters: one row each, X(NAME, "label", "help"): a counter per
 * value of one label, exported as mxacl_NAME_total{label="VALUE"} and shown
 * by "stats" as NAME{label="VALUE"} N. Values are made on first use (the
 * only allocation; a slot is then a stable pointer the hot path keeps, see
 * runtime_family_slot) and never dropped, so they survive a reload.
 *   requests  by the action word answered ("REJECT", "DUNNO", "450")
 *   rule_hits by the access line that decided: its name, today FILE:LINE;
 *             "default" and "tempfail" as on the decision line
 *   dns_failures by the reason of the temporary failure ("timeout",
 *             "SERVFAIL", "REFUSED", ...: dns.h)
 *   dryrun_hits  dry runs that matched, by line (its label, as rule_hits;
 *             "default"/"tempfail" for the policy's default in a dry run
 *             of the whole policy)
 *   dryrun_would the same, by the action word they would have answered
 *             (one label each, as requests and rule_hits are a pair)
 */
#define RUNTIME_FAMILIES(X)                                                        \
	X(requests, "action", "policy requests answered, by action word")          \
	X(rule_hits, "rule", "requests decided by each access line (its name, "    \
			     "else FILE:LINE), or by the default")                 \
	X(dns_failures, "kind", "DNS lookups that failed temporarily, by reason")  \
	X(dryrun_hits, "rule", "dry runs that matched (dryrun access lines, or every "  \
			       "answer but DUNNO of a policy in dry run), by line")   \
	X(dryrun_would, "action", "dry runs that matched, by the action word they "     \
				  "would have answered")

enum runtime_family {
#define X(name, label, help) RF_##name,
	RUNTIME_FAMILIES(X)
#undef X
	RF_COUNT
};

/*
 * Histograms of durations: one row each, X(NAME, "metric", "kind",
 * "help"), exported as mxacl_METRIC_seconds (with kind="KIND" when KIND is
 * not empty; rows of one metric are adjacent) over RUNTIME_HIST_BOUNDS.
 */
#define RUNTIME_HISTOGRAMS(X)                                                        \
	X(request_duration, "request_duration", "",                                  \
	  "time from a request's last byte to its reply")                            \
	X(lookup_dns, "lookup_duration", "dns", "time a lookup took, by kind: a DNS " \
	  "query from start to answer, a Redis call, an SPF verdict")                \
	X(lookup_redis, "lookup_duration", "redis", "")                              \
	X(lookup_spf, "lookup_duration", "spf", "")

enum runtime_histogram {
#define X(name, metric, kind, help) RH_##name,
	RUNTIME_HISTOGRAMS(X)
#undef X
	RH_COUNT
};

/* Upper bounds of the buckets, in seconds (Prometheus's le), ascending;
 * the last bucket, +Inf, is implied. */
#define RUNTIME_HIST_BOUNDS                                                            \
	{ 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, \
	  0.5, 1, 2.5, 5, 10 }
#define RUNTIME_HIST_NBOUNDS 16

struct runtime_hist {
	uint64_t bucket[RUNTIME_HIST_NBOUNDS + 1];   /* not cumulative; last: +Inf */
	uint64_t count;
	uint64_t sum_ns;
};

struct runtime_family_value {
	struct runtime_family_value *next;           /* in first-use order */
	uint64_t n;
	char value[];
};

struct runtime_family_set {
	struct runtime_family_value *first, **tail;
	struct runtime_family_value **index;         /* open addressing */
	size_t nvalues, cap;
};

/*
 * Everything counted, as one block: the runtime owns one, and hands a
 * pointer to the store and the resolver (store_set_stats, dns_set_stats)
 * so that they count without knowing the runtime. Plain increments on the
 * loop's thread; a NULL block counts nothing (a store of mxacl grey).
 */
struct runtime_stats {
	uint64_t c[RC_COUNT];
	struct runtime_hist h[RH_COUNT];
	struct runtime_family_set f[RF_COUNT];
	struct arena *values;   /* the family values: never freed one by one,
				   and one per access line of a big policy */
};

/* The runtime's block (never NULL). */
struct runtime_stats *runtime_stats(struct runtime *rt);

/* Add n to counter c. */
void runtime_count(struct runtime *rt, enum runtime_counter c, uint64_t n);
/* Counter c's value, name, kind and help line. */
uint64_t runtime_counter(const struct runtime *rt, enum runtime_counter c);
const char *runtime_counter_name(enum runtime_counter c);
enum runtime_counter_kind runtime_counter_kind(enum runtime_counter c);
const char *runtime_counter_help(enum runtime_counter c);

/*
 * The counter of label value (len bytes, any bytes) in family f: made on
 * first use, then the same pointer for the block's life. A caller on the
 * hot path looks a value up once and keeps the pointer.
 */
uint64_t *runtime_family_slot(struct runtime_stats *st, enum runtime_family f, const char *value,
			      size_t len);
const char *runtime_family_name(enum runtime_family f);
const char *runtime_family_label(enum runtime_family f);
const char *runtime_family_help(enum runtime_family f);

/* Count one duration of ns nanoseconds in histogram h: a bucket search.
 * st may be NULL (nothing counted). */
void runtime_observe(struct runtime_stats *st, enum runtime_histogram h, uint64_t ns);
const char *runtime_hist_name(enum runtime_histogram h);
const char *runtime_hist_metric(enum runtime_histogram h);
const char *runtime_hist_kind(enum runtime_histogram h);
const char *runtime_hist_help(enum runtime_histogram h);
/* The bucket bounds, RUNTIME_HIST_NBOUNDS of them. */
const double *runtime_hist_bounds(void);

/* Nanoseconds of CLOCK_MONOTONIC: what durations are measured with. */
uint64_t runtime_mono_ns(void);

/* Count into a block that may be NULL. */
static inline void runtime_stats_add(struct runtime_stats *st, enum runtime_counter c, uint64_t n)
{
	if (st)
		st->c[c] += n;
}

/*
 * What "status" and the metrics endpoint say about the process: the
 * version, when the runtime started (wall clock), and the policy serving
 * now: its main file, the SHA-256 of that file (hex; the daemon reads it
 * when the program is swapped in, so an edit between the compile and the
 * swap would show), and when it was swapped in. The strings are copied.
 */
void runtime_set_version(struct runtime *rt, const char *version);
const char *runtime_version(const struct runtime *rt);
time_t runtime_started(const struct runtime *rt);
void runtime_set_policy(struct runtime *rt, const char *path, const char *sha256_hex,
			time_t loaded);
/* The policy's identity; "" and 0 until set. */
const char *runtime_policy_path(const struct runtime *rt);
const char *runtime_policy_sha256(const struct runtime *rt);
time_t runtime_policy_loaded(const struct runtime *rt);
/* The resolver when one was made (NULL: no DNS acl has run yet). */
struct dns *runtime_dns_if_made(struct runtime *rt);

#endif
