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
 * The counters: one row each, its name (as the control socket's "stats"
 * and a metrics endpoint show it) and one line of help. A counter only
 * goes up, from the loop's thread, and lives as long as the runtime (a
 * reload does not reset it).
 */
#define RUNTIME_COUNTERS(X)                                                          \
	X(requests, "policy requests answered")                                      \
	X(requests_tempfail, "requests given the default action by a failed lookup " \
			     "(tempfail=default)")                                   \
	X(greylist_checks, "greylist acls asked of the store")                       \
	X(rate_checks, "rate acls asked of the store")                               \
	X(dnslist_checks, "DNS list acls looked up (rbl, dnswl, rhsbl...)")          \
	X(spf_checks, "SPF verdicts computed")

enum runtime_counter {
#define X(name, help) RC_##name,
	RUNTIME_COUNTERS(X)
#undef X
	RC_COUNT
};

/* Add n to counter c. */
void runtime_count(struct runtime *rt, enum runtime_counter c, uint64_t n);
/* Counter c's value, name and help line. */
uint64_t runtime_counter(const struct runtime *rt, enum runtime_counter c);
const char *runtime_counter_name(enum runtime_counter c);
const char *runtime_counter_help(enum runtime_counter c);

#endif
