/*
 * dnscache - see dnscache.h. Chained hash buckets (as many as entries may
 * be held) and a doubly linked list in store order for eviction. Each
 * entry is one allocation: the struct, then its records, then the name
 * and the records' strings.
 */
#include "backends/dnscache.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "util/util.h"

struct dc_entry {
	struct dc_entry *chain;          /* same bucket */
	TAILQ_ENTRY(dc_entry) age;       /* store order, oldest first */
	uint64_t hash;
	uint64_t expires;
	enum dns_type type;
	enum dns_status status;
	bool nxdomain;
	bool null_mx;
	size_t n;
	struct dns_rr *rr;               /* n records, inside this allocation */
	char *name;                      /* inside this allocation */
};

struct dnscache {
	struct dc_entry **bucket;
	size_t mask;
	size_t count, max;
	TAILQ_HEAD(, dc_entry) by_age;
};

struct dnscache *dnscache_new(size_t max_entries)
{
	struct dnscache *c = xcalloc(1, sizeof *c);
	c->max = max_entries ? max_entries : 1;
	TAILQ_INIT(&c->by_age);
	size_t nb = 16;
	while (nb < c->max)
		nb <<= 1;
	c->bucket = xcalloc(nb, sizeof *c->bucket);
	c->mask = nb - 1;
	return c;
}

void dnscache_free(struct dnscache *c)
{
	if (!c)
		return;
	struct dc_entry *e;
	while ((e = TAILQ_FIRST(&c->by_age)) != NULL) {
		TAILQ_REMOVE(&c->by_age, e, age);
		free(e);
	}
	free(c->bucket);
	free(c);
}

static uint64_t key_hash(const char *name, enum dns_type type)
{
	return hash_bytes(name, strlen(name), true) * 31 + (uint64_t)type;
}

/* The entry for (name, type) and the link that points to it. */
static struct dc_entry **find(struct dnscache *c, const char *name, enum dns_type type, uint64_t h)
{
	struct dc_entry **p = &c->bucket[h & c->mask];
	while (*p && !((*p)->hash == h && (*p)->type == type && !strcasecmp((*p)->name, name)))
		p = &(*p)->chain;
	return p;
}

bool dnscache_get(struct dnscache *c, const char *name, enum dns_type type, uint64_t now,
		  struct dns_result *r)
{
	const struct dc_entry *e = *find(c, name, type, key_hash(name, type));
	if (!e || e->expires <= now)
		return false;
	r->status = e->status;
	r->nxdomain = e->nxdomain;
	r->null_mx = e->null_mx;
	r->n = e->n;
	r->rr = e->rr;
	r->ttl = (uint32_t)(e->expires - now);
	return true;
}

static void unlink_entry(struct dnscache *c, struct dc_entry **link, struct dc_entry *e)
{
	*link = e->chain;
	TAILQ_REMOVE(&c->by_age, e, age);
	c->count--;
	free(e);
}

void dnscache_put(struct dnscache *c, const struct dns_result *r, uint32_t ttl, uint64_t now)
{
	if (ttl == 0 || (r->status != DNS_FOUND && r->status != DNS_NOTFOUND))
		return;
	size_t n = r->status == DNS_FOUND ? r->n : 0;
	uint64_t h = key_hash(r->name, r->type);
	struct dc_entry **link = find(c, r->name, r->type, h);
	if (*link)
		unlink_entry(c, link, *link);
	else if (c->count == c->max) {
		struct dc_entry *old = TAILQ_FIRST(&c->by_age);
		unlink_entry(c, find(c, old->name, old->type, old->hash), old);
		link = find(c, r->name, r->type, h);   /* the chain may have changed */
	}
	size_t size = sizeof(struct dc_entry) + n * sizeof(struct dns_rr) + strlen(r->name) + 1;
	for (size_t i = 0; i < n; i++)
		size += (r->rr[i].txt ? r->rr[i].txtlen + 1 : 0) +
			(r->rr[i].host ? strlen(r->rr[i].host) + 1 : 0);
	struct dc_entry *e = xmalloc(size);
	memset(e, 0, sizeof *e);
	e->rr = (struct dns_rr *)(e + 1);
	char *p = (char *)(e->rr + n);
	e->name = p;
	p = stpcpy(p, r->name) + 1;
	for (size_t i = 0; i < n; i++) {
		e->rr[i] = r->rr[i];
		if (r->rr[i].txt) {      /* may hold NUL bytes: copied by length */
			e->rr[i].txt = p;
			memcpy(p, r->rr[i].txt, r->rr[i].txtlen + 1);
			p += r->rr[i].txtlen + 1;
		}
		if (r->rr[i].host) {
			e->rr[i].host = p;
			p = stpcpy(p, r->rr[i].host) + 1;
		}
	}
	e->hash = h;
	e->expires = now + ttl;
	e->type = r->type;
	e->status = n ? DNS_FOUND : DNS_NOTFOUND;
	e->nxdomain = r->nxdomain;
	e->null_mx = r->null_mx;
	e->n = n;
	e->chain = *link;
	*link = e;
	TAILQ_INSERT_TAIL(&c->by_age, e, age);
	c->count++;
}

size_t dnscache_count(const struct dnscache *c)
{
	return c->count;
}
