/*
 * dnscache - the resolver's first-level answer cache: found and not-found
 * answers by (name, type), each kept for its TTL, at most max_entries of
 * them (the oldest stored goes first).
 *
 * libunbound has a cache of its own, and it stays behind this one (for
 * misses here, and for merging queries in flight). This one exists for
 * speed: a libunbound cache hit costs 3-4 us in mxacld (a query built, a
 * locked cache, an answer packet encoded for us and parsed back), which
 * made three DNS lists cost more than the whole request otherwise does
 * (docs/dev/dns.md, "A first-level cache"); a hit here is a hash probe and a
 * copy-free answer. Temporary failures are never stored.
 *
 * Names compare without regard to case, as in DNS; a name over 253 bytes
 * (which cannot exist) is not stored. Time is a monotonic count of
 * seconds the caller supplies.
 *
 * Memory: a table of 128-byte slots, one per answer, that grows with use
 * up to the power of two that holds max_entries at 7/8 full (32 MiB for
 * the default 200,000), plus an allocation for each answer too big for
 * its slot (long names, MX and TXT records, many addresses).
 */
#ifndef MXACL_DNSCACHE_H
#define MXACL_DNSCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "backends/dns.h"

struct dnscache;

/* A cache of at most max_entries answers (at least 1). Never NULL. */
struct dnscache *dnscache_new(size_t max_entries);
void dnscache_free(struct dnscache *c);          /* NULL is a no-op */

/*
 * The stored answer for (name, type) if it has not expired at now: *r is
 * filled (status, nxdomain, n, rr, and ttl = the seconds left; name and
 * type are not set). r->rr points into the cache, valid until the next
 * dnscache_put or dnscache_free. False on a miss.
 */
bool dnscache_get(struct dnscache *c, const char *name, enum dns_type type, uint64_t now,
		  struct dns_result *r);

/*
 * Store r (DNS_FOUND or DNS_NOTFOUND; anything else is ignored), copied,
 * for ttl seconds from now (0: not stored). Replaces an entry for the same
 * (name, type); evicts the oldest entry when full.
 */
void dnscache_put(struct dnscache *c, const struct dns_result *r, uint32_t ttl, uint64_t now);

/* Entries held (expired ones included until replaced or evicted). */
size_t dnscache_count(const struct dnscache *c);

#endif
