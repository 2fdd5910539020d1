/*
 * dnscache - see dnscache.h. An open-addressing table (linear probing)
 * whose slots are the entries themselves, and a ring of slot numbers in
 * store order for eviction.
 *
 * Laid out for the warm lookup, the one that counts (docs/dev/dns.md, "The
 * cache's layout"): bench/run score makes seven lookups a request over
 * about 110,000 warm answers, and with one allocation per entry behind a
 * bucket of pointers each hit cost two cache misses and two TLB misses
 * (440 ns a lookup measured alone, 11 % of mxacld's profile). Here a slot
 * is 128 bytes holding the hash and flags, and for the common answers the
 * records and the name too (not found: a name of up to 95 bytes; one
 * A/AAAA record: up to 47), so such a hit reads one slot and nothing
 * else; larger answers go to one allocation (DCF_EXT) as before. Big
 * tables are mapped with transparent huge pages where the system allows
 * them (madvise), which saves most of the TLB misses.
 *
 * Names are stored lower-cased and hashed and compared eight bytes at a
 * time (ASCII case folded per word), which is what makes "without regard
 * to case" cheap.
 *
 * The table grows by doubling up to the size that holds max_entries at a
 * load of 7/8 at most, so memory follows use. A slot moves when the table
 * grows and when a deletion shifts the entries after it back (no
 * tombstones); inline records point into their slot, so a move rebases
 * them (slot_move). The ring has room for twice max_entries: a replaced
 * or evicted entry leaves a hole, and a full ring is compacted.
 */
#include "backends/dnscache.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "util/util.h"

#define DC_INLINE 96                     /* bytes of a slot for records and name */
#define DC_HOLE UINT32_MAX               /* a ring position whose entry is gone */
#define DC_MIN_SLOTS 16
#define DC_MAX_ENTRIES (1u << 30)        /* slot numbers are uint32_t */
#define DC_HUGE (2u << 20)               /* tables this big are mapped, with huge pages */

enum { DCF_NXDOMAIN = 1, DCF_NULL_MX = 2, DCF_EXT = 4 };

struct dc_slot {
	uint64_t hash;                   /* 0: empty (dc_hash never gives 0) */
	uint64_t expires;
	uint32_t ring;                   /* position in c->ring */
	uint8_t namelen;                 /* <= 253 (dns.c asks for no longer name) */
	uint8_t type;                    /* enum dns_type */
	uint8_t status;                  /* DNS_FOUND or DNS_NOTFOUND */
	uint8_t flags;                   /* DCF_* */
	uint8_t n;                       /* records, <= DNS_MAX_RR */
	/* n struct dns_rr, then the name and its NUL, then the records'
	 * strings; or, with DCF_EXT, a pointer to one allocation laid out so */
	_Alignas(8) unsigned char inl[DC_INLINE];
};

_Static_assert(sizeof(struct dc_slot) == 128, "a slot is two cache lines");
_Static_assert(DNS_MAX_RR <= 255, "n fits a byte");

struct dnscache {
	struct dc_slot *slot;
	size_t mask;                     /* slots - 1 (a power of two) */
	size_t top;                      /* the most slots the table grows to */
	size_t count, max;
	uint32_t *ring;                  /* slot numbers in store order, or DC_HOLE */
	size_t ring_size;                /* 2 * max */
	size_t head, tail;               /* ring[head % ring_size] is the oldest */
};

/* ---- names ----------------------------------------------------------------- */

/* The next (up to) eight bytes of a name as a word; a short tail is
 * zero-padded. Hashing and comparing both read names through this. */
static inline uint64_t load8(const char *p, size_t left)
{
	uint64_t w = 0;
	if (left >= 8) {
		memcpy(&w, p, 8);
		return w;
	}
	for (size_t k = 0; k < left; k++)
		w |= (uint64_t)(unsigned char)p[k] << 8 * k;
	return w;
}

/* ASCII upper-case letters of a word made lower case, other bytes as they
 * are (bytes over 0x7f included): the SWAR form of ascii_lower. */
static inline uint64_t lower8(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ULL;
	uint64_t low7 = w & 0x7f * ones;
	uint64_t above_z = low7 + 0x25 * ones;   /* high bit set: byte > 'Z' */
	uint64_t from_a = low7 + 0x3f * ones;    /* high bit set: byte >= 'A' */
	uint64_t upper = (from_a ^ above_z) & ~w & 0x80 * ones;
	return w | upper >> 2;
}

/* The hash of (name, type), case folded; never 0. */
static uint64_t dc_hash(const char *name, size_t len, enum dns_type type)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ (len << 8 | (uint64_t)type);
	for (size_t i = 0; i < len; i += 8) {
		h ^= lower8(load8(name + i, len - i));
		h *= 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	h ^= h >> 29;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 32;
	return h ? h : 1;
}

/* Is the stored (lower-case) name s of len bytes this name, ignoring case? */
static bool name_eq(const char *s, const char *name, size_t len)
{
	for (size_t i = 0; i < len; i += 8)
		if (load8(s + i, len - i) != lower8(load8(name + i, len - i)))
			return false;
	return true;
}

/* ---- slots ----------------------------------------------------------------- */

/* The allocation of a DCF_EXT slot, else NULL. */
static void *slot_ext(const struct dc_slot *s)
{
	void *ext = NULL;
	if (s->flags & DCF_EXT)
		memcpy(&ext, s->inl, sizeof ext);
	return ext;
}

static struct dns_rr *slot_rr(struct dc_slot *s)
{
	return s->flags & DCF_EXT ? slot_ext(s) : (struct dns_rr *)(void *)s->inl;
}

static const char *slot_name(struct dc_slot *s)
{
	return (const char *)(slot_rr(s) + s->n);
}

/* Bytes an entry's records, name and strings take. */
static size_t entry_size(const struct dns_result *r, size_t n, size_t namelen)
{
	size_t size = n * sizeof(struct dns_rr) + namelen + 1;
	for (size_t i = 0; i < n; i++)
		size += (r->rr[i].txt ? r->rr[i].txtlen + 1 : 0) +
			(r->rr[i].host ? strlen(r->rr[i].host) + 1 : 0);
	return size;
}

/* Copy src to dst (an empty slot), rebasing inline records' strings. */
static void slot_move(struct dc_slot *dst, const struct dc_slot *src)
{
	*dst = *src;
	if (dst->flags & DCF_EXT)
		return;
	struct dns_rr *rr = (struct dns_rr *)(void *)dst->inl;
	const char *from = (const char *)src->inl, *to = (const char *)dst->inl;
	for (size_t i = 0; i < dst->n; i++) {
		if (rr[i].txt)
			rr[i].txt = to + (rr[i].txt - from);
		if (rr[i].host)
			rr[i].host = to + (rr[i].host - from);
	}
}

static struct dc_slot *slots_new(size_t n)
{
	size_t bytes = n * sizeof(struct dc_slot);
	if (bytes < DC_HUGE)
		return xcalloc(n, sizeof(struct dc_slot));
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fatal_abort("dnscache: cannot map %zu bytes", bytes);
	(void)madvise(p, bytes, MADV_HUGEPAGE);  /* a hint: without it, 4 KiB pages */
	return p;
}

static void slots_free(struct dc_slot *s, size_t n)
{
	if (n * sizeof(struct dc_slot) < DC_HUGE)
		free(s);
	else
		munmap(s, n * sizeof(struct dc_slot));
}

/* ---- the table ------------------------------------------------------------- */

struct dnscache *dnscache_new(size_t max_entries)
{
	struct dnscache *c = xcalloc(1, sizeof *c);
	c->max = max_entries ? max_entries : 1;
	if (c->max > DC_MAX_ENTRIES)
		c->max = DC_MAX_ENTRIES;
	c->top = DC_MIN_SLOTS;
	while (c->max > c->top / 8 * 7)
		c->top <<= 1;
	c->mask = (c->top < 1024 ? c->top : 1024) - 1;
	c->slot = slots_new(c->mask + 1);
	c->ring_size = 2 * c->max;
	c->ring = xmalloc(c->ring_size * sizeof *c->ring);
	return c;
}

void dnscache_free(struct dnscache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i <= c->mask; i++)
		if (c->slot[i].hash)
			free(slot_ext(&c->slot[i]));
	slots_free(c->slot, c->mask + 1);
	free(c->ring);
	free(c);
}

/* The slot holding (name, type), or the empty slot that ends its probe. */
static size_t probe(const struct dnscache *c, const char *name, size_t len, enum dns_type type,
		    uint64_t h)
{
	size_t i = h & c->mask;
	for (;; i = (i + 1) & c->mask) {
		struct dc_slot *s = &c->slot[i];
		if (!s->hash || (s->hash == h && s->type == type && s->namelen == len &&
				 name_eq(slot_name(s), name, len)))
			return i;
	}
}

bool dnscache_get(struct dnscache *c, const char *name, enum dns_type type, uint64_t now,
		  struct dns_result *r)
{
	size_t len = strlen(name);
	if (len > 255)
		return false;
	struct dc_slot *s = &c->slot[probe(c, name, len, type, dc_hash(name, len, type))];
	if (!s->hash || s->expires <= now)
		return false;
	r->status = s->status;
	r->nxdomain = s->flags & DCF_NXDOMAIN;
	r->null_mx = s->flags & DCF_NULL_MX;
	r->n = s->n;
	r->rr = slot_rr(s);
	r->ttl = (uint32_t)(s->expires - now);
	return true;
}

/* Empty slot i, shifting back the entries after it that probed past it. */
static void slot_delete(struct dnscache *c, size_t i)
{
	c->ring[c->slot[i].ring] = DC_HOLE;
	free(slot_ext(&c->slot[i]));
	c->count--;
	for (size_t j = i;;) {
		j = (j + 1) & c->mask;
		if (!c->slot[j].hash)
			break;
		size_t home = c->slot[j].hash & c->mask;
		if (((j - home) & c->mask) >= ((j - i) & c->mask)) {   /* i lies on j's probe */
			slot_move(&c->slot[i], &c->slot[j]);
			c->ring[c->slot[i].ring] = (uint32_t)i;
			i = j;
		}
	}
	c->slot[i].hash = 0;
}

/* Twice the slots; every entry moves to its place in the new table. */
static void grow(struct dnscache *c)
{
	struct dc_slot *old = c->slot;
	size_t n = c->mask + 1;
	c->slot = slots_new(2 * n);
	c->mask = 2 * n - 1;
	for (size_t k = 0; k < n; k++) {
		if (!old[k].hash)
			continue;
		size_t i = old[k].hash & c->mask;
		while (c->slot[i].hash)
			i = (i + 1) & c->mask;
		slot_move(&c->slot[i], &old[k]);
		c->ring[c->slot[i].ring] = (uint32_t)i;
	}
	slots_free(old, n);
}

/* Close the ring's holes, the oldest first at position 0. */
static void ring_compact(struct dnscache *c)
{
	size_t k = 0;
	uint32_t *fresh = xmalloc(c->ring_size * sizeof *fresh);
	for (size_t p = c->head; p != c->tail; p++) {
		uint32_t i = c->ring[p % c->ring_size];
		if (i == DC_HOLE)
			continue;
		c->slot[i].ring = (uint32_t)k;
		fresh[k++] = i;
	}
	free(c->ring);
	c->ring = fresh;
	c->head = 0;
	c->tail = k;
}

static void evict_oldest(struct dnscache *c)
{
	while (c->ring[c->head % c->ring_size] == DC_HOLE)
		c->head++;
	slot_delete(c, c->ring[c->head % c->ring_size]);
	c->head++;
}

void dnscache_put(struct dnscache *c, const struct dns_result *r, uint32_t ttl, uint64_t now)
{
	if (ttl == 0 || (r->status != DNS_FOUND && r->status != DNS_NOTFOUND))
		return;
	size_t len = strlen(r->name);
	if (len > 253)
		return;                  /* no such name (dns.c never asks for one) */
	size_t n = r->status == DNS_FOUND ? r->n : 0;
	if (n > DNS_MAX_RR)
		n = DNS_MAX_RR;
	uint64_t h = dc_hash(r->name, len, r->type);
	size_t i = probe(c, r->name, len, r->type, h);
	if (c->slot[i].hash)
		slot_delete(c, i);
	else if (c->count == c->max)
		evict_oldest(c);
	if (c->count + 1 > (c->mask + 1) / 8 * 7 && c->mask + 1 < c->top)
		grow(c);
	if (c->tail - c->head == c->ring_size)
		ring_compact(c);
	i = probe(c, r->name, len, r->type, h);  /* the table may have changed */
	struct dc_slot *s = &c->slot[i];
	size_t size = entry_size(r, n, len);
	s->flags = (r->nxdomain ? DCF_NXDOMAIN : 0) | (r->null_mx ? DCF_NULL_MX : 0);
	if (size > DC_INLINE) {
		void *ext = xmalloc(size);
		memcpy(s->inl, &ext, sizeof ext);
		s->flags |= DCF_EXT;
	}
	s->n = (uint8_t)n;
	struct dns_rr *rr = slot_rr(s);
	char *p = (char *)(rr + n);
	for (size_t k = 0; k < len; k++)
		p[k] = ascii_lower(r->name[k]);
	p[len] = 0;
	p += len + 1;
	for (size_t k = 0; k < n; k++) {
		rr[k] = r->rr[k];
		if (r->rr[k].txt) {      /* may hold NUL bytes: copied by length */
			rr[k].txt = p;
			memcpy(p, r->rr[k].txt, r->rr[k].txtlen + 1);
			p += r->rr[k].txtlen + 1;
		}
		if (r->rr[k].host) {
			rr[k].host = p;
			p = stpcpy(p, r->rr[k].host) + 1;
		}
	}
	s->hash = h;
	s->expires = now + ttl;
	s->namelen = (uint8_t)len;
	s->type = (uint8_t)r->type;
	s->status = n ? DNS_FOUND : DNS_NOTFOUND;
	s->ring = (uint32_t)(c->tail % c->ring_size);
	c->ring[s->ring] = (uint32_t)i;
	c->tail++;
	c->count++;
}

size_t dnscache_count(const struct dnscache *c)
{
	return c->count;
}
