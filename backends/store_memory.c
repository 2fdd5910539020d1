/*
 * store_memory - the embedded store: a chained hash table of greylist
 * triplets, auto-whitelisted networks, rate logs (exact and slotted,
 * store.h) and distinct-value sets, each entry a single allocation with
 * its whole key inline (a rate log's ring or slots and a distinct set are
 * a second one). Answers synchronously.
 *
 * Nothing here may hold the event loop for long, whatever the size:
 *  - the table grows as Redis's dict does: a second table twice the size,
 *    and every operation moves a few buckets across; lookups look in both
 *    until the old one is empty;
 *  - expired entries are dropped when met and by a sweep that advances a
 *    few buckets on every operation, so memory follows the live state
 *    without a timer;
 *  - the state file is loaded by a thread into a table of its own, which
 *    the loop swaps in when it is complete; until then every operation
 *    answers STORE_FAIL (the acls' tempfail=), and a save is refused;
 *  - a periodic save is written by a forked child from its copy-on-write
 *    snapshot (as Redis writes its RDB); the loop only forks and, later,
 *    reaps. The final save at exit is written in-process;
 *  - a listing for the control socket goes in slices (list_slice), by a
 *    cursor that survives growth (Redis's reverse-binary SCAN cursor).
 *
 * Time is the caller's (the request's clock): tests and replays run on
 * their own clock, and the state file stores absolute times.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "backends/store.h"
#include "util/testhooks.h"
#include "util/util.h"

enum mem_kind { MEM_TRIPLET = 'g', MEM_AWL = 'a', MEM_RATE = 'r', MEM_SUM = 's', MEM_DISTINCT = 'd' };

/* An exact rate log (count=requests): a ring of event times. */
struct mem_ring {
	uint32_t cap, n, head;
	uint32_t t[];
};

/*
 * A distinct counter's set: n records packed in b, each the value's last
 * sighting (4 bytes), its length (4 bytes) and its bytes, unaligned (read
 * with memcpy). Whole values, not hashes: a value an attacker picks (a
 * HELO name) cannot be made to collide with another. At most the acl's
 * limit records (store.h), so a key costs a few bytes per value.
 */
struct mem_dset {
	uint32_t n, len, cap;     /* records; bytes used and allocated in b */
	char b[];
};
/* A slotted rate log (count=recipients|bytes): the amount of each live
 * slot, in no order; 12 bytes a slot. It grows by doubling up to
 * MEM_SUM_MAX slots (the RATE_SLOTS + 1 that can be live, and one spare),
 * so a key that sends once a day costs a few slots, not all. */
struct mem_slot {
	uint32_t t;               /* the slot's last second */
	uint64_t amount;
} __attribute__((packed));

struct mem_sum {
	uint32_t cap, n;
	struct mem_slot s[];
};
#define MEM_SUM_MAX (RATE_SLOTS + 2)

struct mem_entry {
	struct mem_entry *next;   /* in its bucket */
	uint32_t hash, keylen;
	uint32_t first, last;     /* seconds since the epoch */
	uint32_t expires;         /* dropped once now >= expires */
	uint32_t count;           /* triplet: passed (0/1); AWL: passes */
	union {
		struct mem_ring *ring;    /* MEM_RATE */
		struct mem_sum *sum;      /* MEM_SUM */
		struct mem_dset *set;     /* MEM_DISTINCT */
	};
	char kind;
	char key[];               /* keylen bytes and a NUL */
};

/*
 * min[i] is at most the earliest `expires` of bucket i's entries (0: not
 * known), so the sweep passes a bucket where nothing can have expired
 * without touching its entries, which are scattered allocations: a miss
 * each. It stays true because an entry changes only after dict_link or
 * dict_add has found or made it, and both set its bucket's min to 0, as
 * a rehash does for the buckets it moves entries into; the sweep sets the
 * exact value when it visits.
 */
struct mem_table {
	struct mem_entry **b;     /* NULL: no table */
	uint32_t *min;
	size_t mask;
};

/* Two tables while growing: t[0] is emptied into t[1] from bucket rehash
 * on; then t[1] becomes t[0]. */
struct mem_dict {
	struct mem_table t[2];
	size_t rehash;
	size_t count;
	size_t sweep;             /* the next bucket the sweep visits */
};

struct mem_loader;
struct mem_saver;

struct mem_store {
	struct store base;
	struct event_base *evb;
	struct mem_dict d;
	struct mem_loader *loader;   /* loading: every operation fails */
	struct mem_saver *saver;     /* a child is saving */
};

/* Keys come from requests (at most 64 KiB) and from the state file; a
 * longer one is refused, never cut. */
#define MEM_MAX_KEY (1u << 20)
#define MEM_SWEEP_STEP 8          /* buckets the sweep visits per operation */
#define MEM_REHASH_STEP 8         /* buckets moved per operation while growing */
#define MEM_FIRST_SIZE 1024
#define MEM_WBUF (1u << 20)       /* a save's write buffer */
/* Walks over the whole table (save, free) ask for the entry this many
 * buckets ahead: entries are scattered allocations, and waiting for each
 * in turn is most of the time such a walk takes. */
#define MEM_PREFETCH 16
#define MEM_MAX_PRESIZE (1u << 26) /* buckets a load starts with, at most */

static struct mem_store *mem(struct store *s)
{
	return (struct mem_store *)s;
}

static uint32_t mem_hash(char kind, const char *key, size_t len)
{
	uint64_t h = hash_bytes(key, len, false) ^
		     ((uint64_t)(unsigned char)kind * 0x9e3779b97f4a7c15ULL);
	return (uint32_t)(h ^ (h >> 32));
}

/* ---- the table ------------------------------------------------------------ */

/* An empty table of at least size buckets (a power of two). */
static void dict_init(struct mem_dict *d, size_t size)
{
	size_t n = MEM_FIRST_SIZE;
	while (n < size)
		n *= 2;
	memset(d, 0, sizeof *d);
	d->t[0].b = xcalloc(n, sizeof *d->t[0].b);
	d->t[0].min = xcalloc(n, sizeof *d->t[0].min);
	d->t[0].mask = n - 1;
}

static void mem_entry_free(struct mem_entry *e)
{
	free(e->ring);
	free(e);
}

static void dict_free(struct mem_dict *d)
{
	for (int t = 0; t < 2; t++) {
		if (!d->t[t].b)
			continue;
		for (size_t i = 0; i <= d->t[t].mask; i++) {
			if (i + MEM_PREFETCH <= d->t[t].mask && d->t[t].b[i + MEM_PREFETCH])
				__builtin_prefetch(d->t[t].b[i + MEM_PREFETCH]);
			for (struct mem_entry *e = d->t[t].b[i], *next; e; e = next) {
				next = e->next;
				mem_entry_free(e);
			}
		}
		free(d->t[t].b);
		free(d->t[t].min);
	}
	memset(d, 0, sizeof *d);
}

/* Move up to n buckets of t[0] into t[1] (visiting at most 10 n empty
 * ones), as Redis's dictRehash: the cost of growing spread over the
 * operations that follow it. */
static void dict_rehash_step(struct mem_dict *d, int n)
{
	if (!d->t[1].b)
		return;
	struct mem_table *t0 = &d->t[0], *t1 = &d->t[1];
	int empty = n * 10;
	while (n > 0 && d->rehash <= t0->mask) {
		struct mem_entry *e = t0->b[d->rehash];
		if (!e) {
			d->rehash++;
			if (--empty == 0)
				break;
			continue;
		}
		while (e) {
			struct mem_entry *next = e->next;
			size_t j = e->hash & t1->mask;
			e->next = t1->b[j];
			t1->b[j] = e;
			t1->min[j] = 0;  /* the op that moved it may change it */
			e = next;
		}
		t0->b[d->rehash++] = NULL;
		n--;
	}
	if (d->rehash > t0->mask) {
		free(t0->b);
		free(t0->min);
		*t0 = *t1;
		t1->b = NULL;
		t1->min = NULL;
		t1->mask = 0;
		d->rehash = 0;
	}
}

/* The link that points at key's entry, or NULL. */
static struct mem_entry **dict_link(struct mem_dict *d, char kind, const char *key, size_t len,
				    uint32_t h)
{
	for (int t = 0; t < 2 && d->t[t].b; t++) {
		size_t i = h & d->t[t].mask;
		for (struct mem_entry **l = &d->t[t].b[i]; *l; l = &(*l)->next) {
			const struct mem_entry *e = *l;
			if (e->hash == h && e->kind == kind && e->keylen == len &&
			    memcmp(e->key, key, len) == 0) {
				d->t[t].min[i] = 0;       /* the caller may change it */
				return l;
			}
		}
	}
	return NULL;
}

static void dict_unlink(struct mem_dict *d, struct mem_entry **l)
{
	struct mem_entry *e = *l;
	*l = e->next;
	mem_entry_free(e);
	d->count--;
}

/* Add a new entry for key (not in d); starts growing at load factor 1. */
static struct mem_entry *dict_add(struct mem_dict *d, char kind, const char *key, size_t len,
				  uint32_t h)
{
	dict_rehash_step(d, MEM_REHASH_STEP);
	if (!d->t[1].b && d->count >= d->t[0].mask + 1) {
		/* calloc of a large table maps fresh zero pages: no pass over it */
		size_t n = (d->t[0].mask + 1) * 2;
		d->t[1].b = xcalloc(n, sizeof *d->t[1].b);
		d->t[1].min = xcalloc(n, sizeof *d->t[1].min);
		d->t[1].mask = n - 1;
		d->rehash = 0;
	}
	struct mem_table *t = d->t[1].b ? &d->t[1] : &d->t[0];
	struct mem_entry *e = xcalloc(1, sizeof *e + len + 1);
	e->hash = h;
	e->kind = kind;
	e->keylen = (uint32_t)len;
	memcpy(e->key, key, len);
	e->next = t->b[h & t->mask];
	t->b[h & t->mask] = e;
	t->min[h & t->mask] = 0;
	d->count++;
	return e;
}

/* Advance the sweep a few buckets of the table everything ends up in,
 * dropping what has expired by now; a bucket whose min says nothing has
 * expired is passed without reading its entries. */
static void dict_sweep(struct mem_dict *d, uint32_t now)
{
	struct mem_table *t = d->t[1].b ? &d->t[1] : &d->t[0];
	for (int k = 0; k < MEM_SWEEP_STEP; k++) {
		size_t i = d->sweep++ & t->mask;
		if (now < t->min[i])
			continue;
		uint32_t min = UINT32_MAX;
		struct mem_entry **l = &t->b[i];
		while (*l) {
			if (now >= (*l)->expires) {
				dict_unlink(d, l);
			} else {
				if ((*l)->expires < min)
					min = (*l)->expires;
				l = &(*l)->next;
			}
		}
		t->min[i] = min;
	}
}

/* v with its bits in reverse order (Redis's rev(): log2(bits) steps). */
static unsigned long rev_bits(unsigned long v)
{
	unsigned long s = CHAR_BIT * sizeof v, mask = ~0UL;
	while ((s >>= 1) > 0) {
		mask ^= mask << s;
		v = ((v >> s) & mask) | ((v << s) & ~mask);
	}
	return v;
}

typedef void (*dict_visit_fn)(const struct mem_entry *e, void *arg);

/* Visit the buckets cursor v names and return the next cursor (0: done).
 * Redis's dictScan: the cursor counts with its bits reversed, so the
 * buckets a table's growth splits one bucket into come right after it,
 * and an entry present from the first call to the last is visited
 * exactly once whatever the table does in between (it never shrinks). */
static unsigned long dict_scan(const struct mem_dict *d, unsigned long v, dict_visit_fn fn,
			       void *arg, size_t *buckets)
{
	const struct mem_table *t0 = &d->t[0], *t1 = &d->t[1];
	if (!t1->b) {
		for (const struct mem_entry *e = t0->b[v & t0->mask]; e; e = e->next)
			fn(e, arg);
		(*buckets)++;
		v |= ~t0->mask;
		return rev_bits(rev_bits(v) + 1);
	}
	if (t0->mask > t1->mask) {
		const struct mem_table *x = t0;
		t0 = t1;
		t1 = x;
	}
	size_t m0 = t0->mask, m1 = t1->mask;
	for (const struct mem_entry *e = t0->b[v & m0]; e; e = e->next)
		fn(e, arg);
	(*buckets)++;
	do {
		for (const struct mem_entry *e = t1->b[v & m1]; e; e = e->next)
			fn(e, arg);
		(*buckets)++;
		v |= ~m1;
		v = rev_bits(rev_bits(v) + 1);
	} while (v & (m0 ^ m1));
	return v;
}

/* ---- the operations -------------------------------------------------------- */

/* Every operation's share of the background work. */
static void mem_tick(struct mem_store *m, uint32_t now)
{
	dict_rehash_step(&m->d, MEM_REHASH_STEP);
	dict_sweep(&m->d, now);
}

/* The live entry for key, or NULL; an expired one is dropped. */
static struct mem_entry *mem_get(struct mem_store *m, char kind, const char *key, size_t len,
				 uint32_t now)
{
	struct mem_entry **l = dict_link(&m->d, kind, key, len, mem_hash(kind, key, len));
	if (!l)
		return NULL;
	if (now >= (*l)->expires) {
		dict_unlink(&m->d, l);
		return NULL;
	}
	return *l;
}

static struct mem_entry *mem_put(struct mem_dict *d, char kind, const char *key, size_t len)
{
	uint32_t h = mem_hash(kind, key, len);
	struct mem_entry **l = dict_link(d, kind, key, len, h);
	return l ? *l : dict_add(d, kind, key, len, h);
}

static uint32_t t32(time_t t)
{
	return t < 0 ? 0 : t > (time_t)UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

static uint32_t add_sat(uint32_t a, uint32_t b)
{
	return a > UINT32_MAX - b ? UINT32_MAX : a + b;
}

/* (Re)start a triplet's wait at now. */
static void grey_start(struct mem_entry *t, uint32_t now, const struct grey_params *p)
{
	t->first = t->last = now;
	t->count = 0;
	t->expires = add_sat(now, add_sat(p->retry_window, p->delay));
}

static void mem_grey(struct store *s, const struct grey_query *q, grey_cb cb, void *arg)
{
	struct mem_store *m = mem(s);
	uint32_t now = t32(q->now);
	const struct grey_params *p = &q->p;
	struct grey_answer a = { 0 };
	if (m->loader || q->triplet_len > MEM_MAX_KEY || q->net_len > MEM_MAX_KEY) {
		cb(arg, STORE_FAIL, NULL);
		return;
	}
	mem_tick(m, now);

	if (p->awl) {
		struct mem_entry *w = mem_get(m, MEM_AWL, q->net, q->net_len, now);
		if (w && w->count >= p->awl) {
			w->last = now;
			w->expires = add_sat(now, p->expire);
			a.awl = true;
			a.state = GREY_AWL;
			cb(arg, STORE_OK, &a);
			return;
		}
	}
	struct mem_entry *t = mem_get(m, MEM_TRIPLET, q->triplet, q->triplet_len, now);
	a.state = GREY_EARLY;
	if (!t) {
		t = mem_put(&m->d, MEM_TRIPLET, q->triplet, q->triplet_len);
		grey_start(t, now, p);
		a.state = GREY_NEW;
	} else if (!t->count && now - t->first > p->retry_window) {
		grey_start(t, now, p);       /* not retried in time: start over */
		a.state = GREY_NEW;
	} else if (t->count && now - t->last > p->expire) {
		grey_start(t, now, p);
		a.state = GREY_NEW;
	} else if (t->count) {
		a.state = GREY_PASSED;
	} else if (now - t->first >= p->delay) {
		t->count = 1;                /* the first pass */
		a.state = GREY_FIRST_PASS;
		if (p->awl) {
			struct mem_entry *w = mem_get(m, MEM_AWL, q->net, q->net_len, now);
			if (!w) {
				w = mem_put(&m->d, MEM_AWL, q->net, q->net_len);
				w->first = now;
			}
			w->count++;
			w->last = now;
			w->expires = add_sat(now, p->expire);
		}
	}
	if (t->count) {
		t->last = now;
		t->expires = add_sat(now, p->expire);
		a.age = now - t->first;
	} else {
		t->last = now;
		a.greylisted = true;
		a.age = now - t->first;
		a.remaining = p->delay - a.age;
	}
	cb(arg, STORE_OK, &a);
}

/* An exact log: times in a ring of limit + 1 (a refused event is not
 * recorded, so it holds at most limit; the room for one more keeps state
 * files written before that change loadable as they are). */
static void mem_rate_exact(struct mem_entry *r, const struct rate_query *q, uint32_t now,
			   struct rate_answer *a)
{
	uint32_t cap = (uint32_t)q->limit + 1;
	if (!r->ring || r->ring->cap != cap) {   /* new, or the limit changed: start over */
		free(r->ring);
		r->ring = xmalloc(sizeof *r->ring + cap * sizeof r->ring->t[0]);
		r->ring->cap = cap;
		r->ring->n = r->ring->head = 0;
	}
	struct mem_ring *g = r->ring;
	/* drop events that left the window (now - window, now] */
	while (g->n && (uint64_t)g->t[g->head] + q->window <= now) {
		g->head = (g->head + 1) % g->cap;
		g->n--;
	}
	a->count = g->n + q->amount;
	a->over = a->count > q->limit;
	a->id = 0;                       /* a refund takes an event at now */
	if (a->over || !q->amount)
		return;
	if (g->n == g->cap) {            /* full (only an old state file): the oldest goes */
		g->head = (g->head + 1) % g->cap;
		g->n--;
	}
	g->t[(g->head + g->n) % g->cap] = now;
	g->n++;
	r->expires = add_sat(now, q->window);
}

/* A slotted log: sum the live slots (dropping the dead), then add to
 * this slot unless that passes the limit. */
static void mem_rate_slotted(struct mem_entry *r, const struct rate_query *q, uint32_t now,
			     struct rate_answer *a)
{
	struct mem_sum *g = r->sum;
	uint64_t sum = 0;
	uint32_t slot = (uint32_t)rate_slot_time(now, q->window);
	long mine = -1;
	for (uint32_t i = 0; g && i < g->n;) {
		if ((uint64_t)g->s[i].t + q->window <= now) {
			g->s[i] = g->s[--g->n];          /* dead: the last takes its place */
			continue;
		}
		sum += g->s[i].amount;
		if (g->s[i].t == slot)
			mine = i;
		i++;
	}
	a->count = sum + q->amount;
	a->over = a->count > q->limit;
	if (a->over || !q->amount)
		return;
	if (mine < 0) {
		if (!g || g->n == g->cap) {
			uint32_t cap = g ? g->cap * 2 : 4;
			if (cap > MEM_SUM_MAX)
				cap = MEM_SUM_MAX;
			if (g && g->n == cap) {  /* cannot happen: at most RATE_SLOTS + 1 live */
				a->over = true;
				return;
			}
			g = xrealloc(g, sizeof *g + cap * sizeof g->s[0]);
			if (!r->sum)
				g->n = 0;
			g->cap = cap;
			r->sum = g;
		}
		mine = g->n++;
		g->s[mine].t = slot;
		g->s[mine].amount = 0;
	}
	g->s[mine].amount += q->amount;
	if (add_sat(slot, q->window) > r->expires)
		r->expires = add_sat(slot, q->window);
}

static void mem_rate(struct store *s, const struct rate_query *q, rate_cb cb, void *arg)
{
	struct mem_store *m = mem(s);
	uint32_t now = t32(q->now);
	if (m->loader || q->key_len > MEM_MAX_KEY || (q->limit >= UINT32_MAX && !q->slotted)) {
		cb(arg, STORE_FAIL, NULL);
		return;
	}
	mem_tick(m, now);
	char kind = q->slotted ? MEM_SUM : MEM_RATE;
	struct mem_entry *r = mem_get(m, kind, q->key, q->key_len, now);
	if (!r)
		r = mem_put(&m->d, kind, q->key, q->key_len);
	struct rate_answer a;
	if (q->slotted)
		mem_rate_slotted(r, q, now, &a);
	else
		mem_rate_exact(r, q, now, &a);
	if (!r->first)
		r->first = now;
	r->last = now;
	if (!r->expires)          /* a new key that recorded nothing: gone soon */
		r->expires = add_sat(now, 1);
	cb(arg, STORE_OK, &a);
}

/* One record of a distinct set at p: its time, length and value. */
static const char *dset_rec(const char *p, uint32_t *t, uint32_t *len)
{
	memcpy(t, p, 4);
	memcpy(len, p + 4, 4);
	return p + 8;
}

/*
 * Drop the values of g last seen at or before now - window, and refresh v
 * (to now, never back in time) if it is there: *found. Returns the latest
 * time left in the set (0: empty).
 */
static uint32_t dset_prune(struct mem_dset *g, uint32_t now, uint32_t window, const char *v,
			   size_t vlen, bool *found)
{
	uint32_t n = 0, latest = 0;
	size_t in = 0, out = 0;
	for (uint32_t i = 0; i < g->n; i++) {
		uint32_t t, len;
		const char *val = dset_rec(g->b + in, &t, &len);
		size_t rec = 8 + (size_t)len;
		if ((uint64_t)t + window > now) {
			if (len == vlen && memcmp(val, v, vlen) == 0) {
				*found = true;
				if (t < now)
					t = now;
			}
			memmove(g->b + out, g->b + in, rec);
			memcpy(g->b + out, &t, 4);
			out += rec;
			n++;
			if (t > latest)
				latest = t;
		}
		in += rec;
	}
	g->n = n;
	g->len = (uint32_t)out;
	return latest;
}

/* g with v added at now (g may be NULL: a new set). */
static struct mem_dset *dset_add(struct mem_dset *g, uint32_t now, const char *v, size_t vlen)
{
	size_t need = (g ? g->len : 0) + 8 + vlen;
	if (!g || need > g->cap) {
		size_t cap = need + need / 2;
		struct mem_dset *ng = xrealloc(g, sizeof *ng + cap);
		if (!g)
			ng->n = ng->len = 0;
		ng->cap = (uint32_t)cap;
		g = ng;
	}
	uint32_t len = (uint32_t)vlen;
	memcpy(g->b + g->len, &now, 4);
	memcpy(g->b + g->len + 4, &len, 4);
	memcpy(g->b + g->len + 8, v, vlen);
	g->len += 8 + len;
	g->n++;
	return g;
}

static void mem_distinct(struct store *s, const struct distinct_query *q, distinct_cb cb,
			 void *arg)
{
	struct mem_store *m = mem(s);
	uint32_t now = t32(q->now);
	if (m->loader || q->key_len > MEM_MAX_KEY || q->value_len > MEM_MAX_KEY || !q->limit) {
		cb(arg, STORE_FAIL, NULL);
		return;
	}
	mem_tick(m, now);
	struct mem_entry *d = mem_get(m, MEM_DISTINCT, q->key, q->key_len, now);
	bool found = false;
	uint32_t n = 0, latest = 0;
	if (d && d->set) {
		latest = dset_prune(d->set, now, q->window, q->value, q->value_len, &found);
		n = d->set->n;
	}
	struct distinct_answer a = { .count = found ? n : n + 1, .added = !found };
	if (!found && n >= q->limit) {
		a.added = false;
		a.over = true;           /* not recorded: the set stays as it is */
		a.count = q->limit + 1;
	} else {
		if (!found) {
			if (!d)
				d = mem_put(&m->d, MEM_DISTINCT, q->key, q->key_len);
			d->set = dset_add(d->set, now, q->value, q->value_len);
		}
		if (latest < now)
			latest = now;
		if (!d->first)
			d->first = now;
		d->last = now;
	}
	if (d && d->set && d->set->n)
		d->expires = add_sat(latest, q->window);
	cb(arg, STORE_OK, &a);
}

/* A refund of an exact log: the newest event at now leaves the ring
 * (events of one second are alike, so it is the request's own). */
static bool mem_refund_exact(struct mem_ring *g, uint32_t now)
{
	for (uint32_t k = g ? g->n : 0; k-- > 0;) {
		if (g->t[(g->head + k) % g->cap] != now)
			continue;
		for (uint32_t j = k; j + 1 < g->n; j++)
			g->t[(g->head + j) % g->cap] = g->t[(g->head + j + 1) % g->cap];
		g->n--;
		return true;
	}
	return false;
}

/* A refund of a slotted log: amount leaves now's slot, never below 0. */
static bool mem_refund_slotted(struct mem_sum *g, const struct store_refund *q, uint32_t now)
{
	uint32_t slot = (uint32_t)rate_slot_time(now, q->window);
	for (uint32_t i = 0; g && i < g->n; i++) {
		if (g->s[i].t != slot)
			continue;
		if (g->s[i].amount > q->amount)
			g->s[i].amount -= q->amount;
		else
			g->s[i] = g->s[--g->n];  /* empty: the last takes its place */
		return true;
	}
	return false;
}

/* A refund of a distinct set: v leaves it if its last sighting is now. */
static bool mem_refund_distinct(struct mem_dset *g, uint32_t now, const char *v, size_t vlen)
{
	size_t off = 0;
	for (uint32_t i = 0; g && i < g->n; i++) {
		uint32_t t, len;
		const char *val = dset_rec(g->b + off, &t, &len);
		size_t rec = 8 + (size_t)len;
		if (t == now && len == vlen && memcmp(val, v, vlen) == 0) {
			memmove(g->b + off, g->b + off + rec, g->len - off - rec);
			g->len -= (uint32_t)rec;
			g->n--;
			return true;
		}
		off += rec;
	}
	return false;
}

/* store_ops.refund: at once, like every call of this store. */
static void mem_refund(struct store *s, const struct store_refund *q, store_done_cb cb, void *arg)
{
	struct mem_store *m = mem(s);
	uint32_t now = t32(q->now);
	if (m->loader || q->key_len > MEM_MAX_KEY) {
		cb(arg, STORE_FAIL, 0);
		return;
	}
	char kind = q->kind == REFUND_DISTINCT ? MEM_DISTINCT : q->slotted ? MEM_SUM : MEM_RATE;
	/* not mem_get: an entry the clock has expired is left to the sweep */
	struct mem_entry **l = dict_link(&m->d, kind, q->key, q->key_len,
					 mem_hash(kind, q->key, q->key_len));
	struct mem_entry *e = l ? *l : NULL;
	bool done = false;
	if (e && kind == MEM_RATE)
		done = mem_refund_exact(e->ring, now);
	else if (e && kind == MEM_SUM)
		done = mem_refund_slotted(e->sum, q, now);
	else if (e)
		done = mem_refund_distinct(e->set, now, q->value, q->value_len);
	cb(arg, STORE_OK, done ? 1 : 0);
}

struct mem_list_arg {
	uint32_t now;
	store_list_cb cb;
	void *arg;
	unsigned long n;
};

static void mem_list_visit(const struct mem_entry *e, void *arg)
{
	struct mem_list_arg *la = arg;
	if ((e->kind != MEM_TRIPLET && e->kind != MEM_AWL) || la->now >= e->expires)
		return;
	struct store_entry se = {
		.kind = e->kind == MEM_TRIPLET ? STORE_TRIPLET : STORE_AWL,
		.key = e->key, .first = e->first, .last = e->last,
		.passed = e->kind == MEM_TRIPLET && e->count, .count = e->count,
	};
	la->n++;
	la->cb(la->arg, STORE_OK, &se);
}

static void mem_list_slice(struct store *s, unsigned long *cursor, size_t max, time_t tnow,
			   store_list_cb cb, void *arg)
{
	struct mem_store *m = mem(s);
	if (m->loader) {
		*cursor = 0;
		cb(arg, STORE_FAIL, NULL);
		return;
	}
	struct mem_list_arg la = { .now = t32(tnow), .cb = cb, .arg = arg };
	size_t buckets = 0;
	unsigned long v = *cursor;
	do
		v = dict_scan(&m->d, v, mem_list_visit, &la, &buckets);
	while (v && buckets < max);
	*cursor = v;
	if (!v)
		cb(arg, STORE_OK, NULL);
}

static void mem_list(struct store *s, time_t now, store_list_cb cb, void *arg)
{
	unsigned long cursor = 0;
	mem_list_slice(s, &cursor, SIZE_MAX, now, cb, arg);
}

static void mem_edit(struct store *s, enum store_edit op, const char *key, time_t tnow,
		     const struct grey_params *p, store_done_cb cb, void *arg)
{
	struct mem_store *m = mem(s);
	uint32_t now = t32(tnow);
	unsigned long changed = 0;
	size_t len = key ? strlen(key) : 0;
	if (m->loader || len > MEM_MAX_KEY) {
		cb(arg, STORE_FAIL, 0);
		return;
	}
	mem_tick(m, now);
	switch (op) {
	case STORE_WHITELIST: {
		struct mem_entry *w = mem_put(&m->d, MEM_AWL, key, len);
		if (!w->first)
			w->first = now;
		w->count = p->awl ? p->awl : 1;
		w->last = now;
		w->expires = add_sat(now, p->expire);
		changed = 1;
		break;
	}
	case STORE_PASS: {
		struct mem_entry *t = mem_put(&m->d, MEM_TRIPLET, key, len);
		if (!t->first)
			t->first = now;
		t->count = 1;
		t->last = now;
		t->expires = add_sat(now, p->expire);
		changed = 1;
		break;
	}
	case STORE_FORGET:
		for (int k = 0; k < 2; k++) {
			char kind = k ? MEM_AWL : MEM_TRIPLET;
			struct mem_entry **l = dict_link(&m->d, kind, key, len, mem_hash(kind, key, len));
			if (l) {
				dict_unlink(&m->d, l);
				changed++;
			}
		}
		break;
	case STORE_FLUSH:
		for (int t = 0; t < 2; t++) {
			for (size_t i = 0; m->d.t[t].b && i <= m->d.t[t].mask; i++) {
				for (struct mem_entry **l = &m->d.t[t].b[i]; *l;) {
					if ((*l)->kind == MEM_TRIPLET || (*l)->kind == MEM_AWL) {
						dict_unlink(&m->d, l);
						changed++;
					} else {
						l = &(*l)->next;
					}
				}
			}
		}
		break;
	}
	cb(arg, STORE_OK, changed);
}

static struct store *mem_open(struct event_base *base, const char *url, char **err)
{
	if (strcmp(url, "memory") && strcmp(url, "memory:")) {
		*err = xasprintf("bad store '%s': the memory store takes no options", url);
		return NULL;
	}
	struct mem_store *m = xcalloc(1, sizeof *m);
	m->base.ops = &store_memory_ops;
	m->evb = base;
	dict_init(&m->d, 0);
	return &m->base;
}

static void mem_loader_stop(struct mem_store *m);
static void mem_saver_abandon(struct mem_store *m);

static void mem_close(struct store *s)
{
	struct mem_store *m = mem(s);
	mem_loader_stop(m);
	mem_saver_abandon(m);
	dict_free(&m->d);
	free(m);
}

const struct store_ops store_memory_ops = {
	.scheme = "memory",
	.form = "memory",
	.open = mem_open,
	.close = mem_close,
	.grey = mem_grey,
	.rate = mem_rate,
	.distinct = mem_distinct,
	.refund = mem_refund,
	.list = mem_list,
	.list_slice = mem_list_slice,
	.edit = mem_edit,
};

bool store_is_memory(const struct store *s)
{
	return s && s->ops == &store_memory_ops;
}

void store_memory_stats(const struct store *s, struct store_memory_stats *st)
{
	const struct mem_store *m = (const struct mem_store *)s;
	st->entries = m->d.count;
	st->buckets = m->d.t[0].mask + 1 + (m->d.t[1].b ? m->d.t[1].mask + 1 : 0);
	st->growing = m->d.t[1].b != NULL;
	st->loading = m->loader != NULL;
	st->saving = m->saver != NULL;
}

/* ---- the state file ---------------------------------------------------------
 *
 *   mxacl-state 1
 *   g FIRST LAST EXPIRES PASSED KEY
 *   a FIRST LAST EXPIRES COUNT KEY
 *   r FIRST LAST EXPIRES CAP T1,T2,... KEY      (- for no events)
 *   d FIRST LAST EXPIRES N T1 LEN1 VALUE1 ... TN LENN VALUEN KEY
 *
 * A distinct set's values are written whole, each as its last sighting,
 * its length in bytes and exactly that many bytes, then a space (a value
 * may hold spaces).
 *   s FIRST LAST EXPIRES N T1:A1,T2:A2,... KEY  (N slots; - for none)
 *
 * One entry a line; the key comes last and runs to the end of the line
 * (keys never hold a newline: request values cannot).
 */

#define MEM_HEADER "mxacl-state 1\n"

/* A buffered writer on a descriptor that uses no allocation (a forked
 * child writes with it). */
struct wbuf {
	int fd;
	char *b;
	size_t n, cap;
	int err;                  /* the first errno, or 0 */
};

static void wb_flush(struct wbuf *w)
{
	size_t off = 0;
	while (!w->err && off < w->n) {
		ssize_t k = write(w->fd, w->b + off, w->n - off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			w->err = k < 0 ? errno : EIO;
		else
			off += (size_t)k;
	}
	w->n = 0;
}

static void wb_add(struct wbuf *w, const char *s, size_t n)
{
	while (n) {
		if (w->n == w->cap)
			wb_flush(w);
		size_t k = n < w->cap - w->n ? n : w->cap - w->n;
		memcpy(w->b + w->n, s, k);
		w->n += k;
		s += k;
		n -= k;
	}
}

/* An unsigned 64-bit number and a byte after it. */
static void wb_u64(struct wbuf *w, uint64_t v, char after)
{
	char tmp[24];
	size_t i = sizeof tmp;
	tmp[--i] = after;
	do
		tmp[--i] = (char)('0' + v % 10);
	while (v /= 10);
	wb_add(w, tmp + i, sizeof tmp - i);
}

static void wb_u32(struct wbuf *w, uint32_t v, char after)
{
	wb_u64(w, v, after);
}

static void mem_write_entry(const struct mem_entry *e, void *arg)
{
	struct wbuf *w = arg;
	char k[2] = { e->kind, ' ' };
	wb_add(w, k, 2);
	wb_u32(w, e->first, ' ');
	wb_u32(w, e->last, ' ');
	wb_u32(w, e->expires, ' ');
	if (e->kind == MEM_DISTINCT) {
		const struct mem_dset *g = e->set;
		wb_u32(w, g ? g->n : 0, ' ');
		const char *p = g ? g->b : NULL;
		for (uint32_t i = 0; g && i < g->n; i++) {
			uint32_t t, len;
			p = dset_rec(p, &t, &len);
			wb_u32(w, t, ' ');
			wb_u32(w, len, ' ');
			wb_add(w, p, len);
			wb_add(w, " ", 1);
			p += len;
		}
	} else if (e->kind == MEM_RATE) {
		const struct mem_ring *g = e->ring;
		wb_u32(w, g ? g->cap : 1, ' ');
		for (uint32_t i = 0; g && i < g->n; i++)
			wb_u32(w, g->t[(g->head + i) % g->cap], i + 1 < g->n ? ',' : ' ');
		if (!g || !g->n)
			wb_add(w, "- ", 2);
	} else if (e->kind == MEM_SUM) {
		const struct mem_sum *g = e->sum;
		wb_u32(w, g ? g->n : 0, ' ');
		for (uint32_t i = 0; g && i < g->n; i++) {
			wb_u32(w, g->s[i].t, ':');
			wb_u64(w, g->s[i].amount, i + 1 < g->n ? ',' : ' ');
		}
		if (!g || !g->n)
			wb_add(w, "- ", 2);
	} else {
		wb_u32(w, e->count, ' ');
	}
	wb_add(w, e->key, e->keylen);
	wb_add(w, "\n", 1);
}

/* Write every entry of d to fd and fsync it; 0 or an errno. Bucket by
 * bucket: d does not change meanwhile (a child's snapshot, or the exit). */
static int mem_write_all(const struct mem_dict *d, int fd, char *buf, size_t cap,
			 unsigned long *n)
{
	struct wbuf w = { .fd = fd, .b = buf, .cap = cap };
	wb_add(&w, MEM_HEADER, strlen(MEM_HEADER));
	for (int t = 0; t < 2 && d->t[t].b && !w.err; t++) {
		const struct mem_table *tb = &d->t[t];
		for (size_t i = 0; i <= tb->mask && !w.err; i++) {
			if (i + MEM_PREFETCH <= tb->mask && tb->b[i + MEM_PREFETCH])
				__builtin_prefetch(tb->b[i + MEM_PREFETCH]);
			for (const struct mem_entry *e = tb->b[i]; e; e = e->next)
				mem_write_entry(e, &w);
		}
	}
	wb_flush(&w);
	*n = d->count;
	if (!w.err && fsync(fd) < 0)
		w.err = errno;
	return w.err;
}

/* A new temporary file next to path: mkstemp (O_EXCL, mode 0600), so a
 * name planted in a directory others can write is never followed. */
static int mem_tmp_open(const char *path, char **tmp, char **err)
{
	*tmp = xasprintf("%s.tmp.XXXXXX", path);
	int fd = mkostemp(*tmp, O_CLOEXEC);
	if (fd < 0) {
		*err = xasprintf("cannot create a temporary file next to %s: %s", path,
				 strerror(errno));
		free(*tmp);
		*tmp = NULL;
	}
	return fd;
}

/* Make a rename in path's directory durable. */
static void mem_sync_dir(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path + (slash == path)), path);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/* ---- saving in a child ---------------------------------------------------- */

struct mem_saver {
	struct mem_store *m;
	pid_t pid;
	int rfd;                  /* the child's report; EOF when it ends */
	struct event *ev;
	char *tmp, *path, *errmsg;
	char msg[256];
	size_t msg_len;
	struct timespec t0;
	double fork_ms;
	store_save_cb cb;
	void *arg;
};

static double mono_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void mem_saver_free(struct mem_saver *sv)
{
	if (sv->ev)
		event_free(sv->ev);
	close(sv->rfd);
	free(sv->tmp);
	free(sv->path);
	free(sv->errmsg);
	free(sv);
}

/* The child: write, fsync, rename, and say how it went on fd. */
static void NORETURN mem_save_child(const struct mem_dict *d, int fd, const char *tmp,
				    const char *path, char *buf, int report)
{
	char msg[256];
	unsigned long n = 0;
	/* The parent's signal handlers write to the parent's loop. */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGUSR1, SIG_DFL);
	int e = mem_write_all(d, fd, buf, MEM_WBUF, &n);
	if (!e && close(fd) < 0)
		e = errno;
	if (!e && rename(tmp, path) < 0)
		e = errno;
	if (e)
		snprintf(msg, sizeof msg, "error %s", strerror(e));
	else
		snprintf(msg, sizeof msg, "ok %lu", n);
	if (!e)
		mem_sync_dir(path);
	(void)!write(report, msg, strlen(msg));
	_exit(e ? 1 : 0);
}

/* Reap the child: blocks only for the moment between its report's EOF
 * and its exit. */
static void mem_saver_reap(struct mem_saver *sv, int *status)
{
	while (waitpid(sv->pid, status, 0) < 0 && errno == EINTR)
		;
}

static void mem_saver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mem_saver *sv = arg;
	ssize_t k = read(fd, sv->msg + sv->msg_len, sizeof sv->msg - 1 - sv->msg_len);
	if (k < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (k > 0) {
		sv->msg_len += (size_t)k;
		if (sv->msg_len < sizeof sv->msg - 1)
			return;
	}
	sv->msg[sv->msg_len] = 0;
	int status = 0;
	mem_saver_reap(sv, &status);
	struct store_save_result r = { .fork_ms = sv->fork_ms, .seconds = mono_since(&sv->t0),
				       .pid = sv->pid };
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && !strncmp(sv->msg, "ok ", 3)) {
		r.ok = true;
		r.entries = strtoul(sv->msg + 3, NULL, 10);
	} else {
		unlink(sv->tmp);
		if (!strncmp(sv->msg, "error ", 6))
			sv->errmsg = xasprintf("cannot write %s: %s", sv->path, sv->msg + 6);
		else if (WIFSIGNALED(status))
			sv->errmsg = xasprintf("saving %s: the saving process was killed by signal %d",
					       sv->path, WTERMSIG(status));
		else
			sv->errmsg = xasprintf("saving %s: the saving process failed (status %d)",
					       sv->path, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		r.error = sv->errmsg;
	}
	sv->m->saver = NULL;
	store_save_cb cb = sv->cb;
	void *cbarg = sv->arg;
	cb(cbarg, &r);
	mem_saver_free(sv);
}

/* A child still saving is killed and its file removed: a later save (or
 * none, at close) supersedes it. */
static void mem_saver_abandon(struct mem_store *m)
{
	struct mem_saver *sv = m->saver;
	if (!sv)
		return;
	int status;
	kill(sv->pid, SIGKILL);
	mem_saver_reap(sv, &status);
	unlink(sv->tmp);
	m->saver = NULL;
	mem_saver_free(sv);
}

int store_memory_save_start(struct store *s, const char *path, store_save_cb cb, void *arg,
			    char **err)
{
	struct mem_store *m = mem(s);
	if (m->loader) {
		*err = xasprintf("not saved: %s is still loading", path);
		return -1;
	}
	if (m->saver)
		return 0;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	char *tmp;
	int fd = mem_tmp_open(path, &tmp, err);
	if (fd < 0)
		return -1;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		*err = xasprintf("cannot save %s: pipe: %s", path, strerror(errno));
		close(fd);
		unlink(tmp);
		free(tmp);
		return -1;
	}
	/* Allocated before the fork: the child allocates nothing. */
	char *buf = xmalloc(MEM_WBUF);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		mem_save_child(&m->d, fd, tmp, path, buf, p[1]);
	}
	int e = errno;
	free(buf);
	close(fd);
	close(p[1]);
	if (pid < 0) {
		*err = xasprintf("cannot save %s: fork: %s", path, strerror(e));
		close(p[0]);
		unlink(tmp);
		free(tmp);
		return -1;
	}
	struct mem_saver *sv = xcalloc(1, sizeof *sv);
	sv->m = m;
	sv->pid = pid;
	sv->rfd = p[0];
	sv->tmp = tmp;
	sv->path = xstrdup(path);
	sv->t0 = t0;
	sv->fork_ms = mono_since(&t0) * 1000;
	sv->cb = cb;
	sv->arg = arg;
	sv->ev = event_new(m->evb, p[0], EV_READ | EV_PERSIST, mem_saver_cb, sv);
	if (!sv->ev || event_add(sv->ev, NULL) < 0)
		fatal_abort("cannot watch the saving process");
	m->saver = sv;
	return 1;
}

bool store_memory_save(struct store *s, const char *path, char **err)
{
	struct mem_store *m = mem(s);
	if (m->loader) {
		*err = xasprintf("not saved: %s is still loading", path);
		return false;
	}
	mem_saver_abandon(m);
	char *tmp;
	int fd = mem_tmp_open(path, &tmp, err);
	if (fd < 0)
		return false;
	char *buf = xmalloc(MEM_WBUF);
	unsigned long n;
	int e = mem_write_all(&m->d, fd, buf, MEM_WBUF, &n);
	free(buf);
	if (close(fd) < 0 && !e)
		e = errno;
	if (!e && rename(tmp, path) < 0)
		e = errno;
	if (e) {
		*err = xasprintf("cannot write %s: %s", path, strerror(e));
		unlink(tmp);
		free(tmp);
		return false;
	}
	mem_sync_dir(path);
	free(tmp);
	return true;
}

/* ---- loading on a thread -------------------------------------------------- */

struct mem_loader {
	struct mem_store *m;
	pthread_t th;
	int fd;                   /* the state file */
	int pipe[2];              /* the thread writes a byte when done */
	struct event *ev;
	char *path;
	size_t size;              /* of the file, at open */
	uint32_t now;
	unsigned long pause_ms;   /* test hook: wait before loading */
	atomic_int cancel;
	struct timespec t0;
	/* the result, the thread's until it has written to the pipe */
	struct mem_dict d;
	unsigned long loaded, expired, skipped, first_bad;
	char *aside, *error;
	store_load_cb cb;
	void *arg;
};

/* A strict decimal uint32 at *p, then the separator sep. */
static bool parse_u32(const char **p, const char *end, char sep, uint32_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	if (s >= end || *s < '0' || *s > '9')
		return false;
	while (s < end && *s >= '0' && *s <= '9') {
		v = v * 10 + (uint64_t)(*s++ - '0');
		if (v > UINT32_MAX)
			return false;
	}
	if (s >= end || *s != sep)
		return false;
	*out = (uint32_t)v;
	*p = s + 1;
	return true;
}

/* A slotted log's "T:AMOUNT,T:AMOUNT " (or "- ") of n slots into *out
 * (NULL for none); false when it does not parse. */
static bool mem_load_sum(const char **pp, const char *end, uint32_t n, struct mem_sum **out)
{
	const char *p = *pp;
	*out = NULL;
	if (n > MEM_SUM_MAX)
		return false;
	if (n == 0) {
		if (p + 1 >= end || p[0] != '-' || p[1] != ' ')
			return false;
		*pp = p + 2;
		return true;
	}
	struct mem_sum *g = xmalloc(sizeof *g + n * sizeof g->s[0]);
	g->cap = n;
	g->n = 0;
	while (g->n < n) {
		uint32_t t;
		uint64_t v = 0;
		if (!parse_u32(&p, end, ':', &t) || p >= end || *p < '0' || *p > '9')
			break;
		while (p < end && *p >= '0' && *p <= '9' && v <= UINT64_MAX / 10 - 9)
			v = v * 10 + (uint64_t)(*p++ - '0');
		char sep = g->n + 1 < n ? ',' : ' ';
		if (p >= end || *p != sep)
			break;
		p++;
		g->s[g->n].t = t;
		g->s[g->n++].amount = v;
	}
	if (g->n < n) {
		free(g);
		return false;
	}
	*out = g;
	*pp = p;
	return true;
}

/* One line (without its LF) into d; false when it is not an entry. */
static bool mem_load_line(struct mem_loader *ld, const char *s, size_t n)
{
	const char *end = s + n;
	uint32_t first, last, expires, count;
	if (n < 2 || s[1] != ' ' ||
	    (s[0] != MEM_TRIPLET && s[0] != MEM_AWL && s[0] != MEM_RATE && s[0] != MEM_SUM &&
	     s[0] != MEM_DISTINCT))
		return false;
	char kind = s[0];
	const char *p = s + 2;
	if (!parse_u32(&p, end, ' ', &first) || !parse_u32(&p, end, ' ', &last) ||
	    !parse_u32(&p, end, ' ', &expires) || !parse_u32(&p, end, ' ', &count))
		return false;
	struct mem_ring *g = NULL;
	struct mem_dset *set = NULL;
	struct mem_sum *sum = NULL;
	if (kind == MEM_DISTINCT) {
		if (count > 1000001)
			return false;
		for (uint32_t i = 0; i < count; i++) {
			uint32_t t, len;
			if (!parse_u32(&p, end, ' ', &t) || !parse_u32(&p, end, ' ', &len) ||
			    len > MEM_MAX_KEY || (size_t)(end - p) < (size_t)len + 1 || p[len] != ' ') {
				free(set);
				return false;
			}
			set = dset_add(set, t, p, len);
			p += len + 1;
		}
	} else if (kind == MEM_RATE) {
		if (count == 0 || count > 1000001)
			return false;
		g = xmalloc(sizeof *g + count * sizeof g->t[0]);
		g->cap = count;
		g->n = g->head = 0;
		if (p + 1 < end && p[0] == '-' && p[1] == ' ') {
			p += 2;
		} else {
			for (;;) {
				uint32_t t;
				const char *q = p;
				if (g->n < count && parse_u32(&q, end, ',', &t)) {
					g->t[g->n++] = t;
					p = q;
				} else if (g->n < count && parse_u32(&p, end, ' ', &t)) {
					g->t[g->n++] = t;
					break;
				} else {
					free(g);
					return false;
				}
			}
		}
	} else if (kind == MEM_SUM) {
		if (!mem_load_sum(&p, end, count, &sum))
			return false;
	} else if (kind == MEM_TRIPLET && count > 1) {
		return false;
	}
	size_t keylen = (size_t)(end - p);
	if (keylen > MEM_MAX_KEY) {
		free(g);
		free(set);
		free(sum);
		return false;
	}
	if (ld->now >= expires) {
		free(g);
		free(set);
		free(sum);
		ld->expired++;
		return true;
	}
	uint32_t h = mem_hash(kind, p, keylen);
	struct mem_entry **l = dict_link(&ld->d, kind, p, keylen, h);
	struct mem_entry *e = l ? *l : dict_add(&ld->d, kind, p, keylen, h);
	if (l)
		ld->loaded--;        /* a key twice: the later line wins */
	e->first = first;
	e->last = last;
	e->expires = expires;
	e->count = kind == MEM_RATE || kind == MEM_DISTINCT ? 0 : count;
	free(e->ring);
	if (kind == MEM_DISTINCT)
		e->set = set;
	else if (kind == MEM_SUM)
		e->sum = sum;
	else
		e->ring = g;
	ld->loaded++;
	return true;
}

/* Keep the original file aside as PATH.bad-YYYYMMDDTHHMMSSZ: a hard link
 * (the next save renames a new file over PATH), or a copy where links
 * cannot be made. Neither follows a name planted there. */
static char *mem_keep_aside(struct mem_loader *ld)
{
	char stamp[32];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
	char *aside = xasprintf("%s.bad-%s", ld->path, stamp);
	if (link(ld->path, aside) == 0)
		return aside;
	int out = open(aside, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0) {
		free(aside);
		return NULL;
	}
	char buf[65536];
	off_t off = 0;
	ssize_t k;
	bool ok = true;
	while (ok && (k = pread(ld->fd, buf, sizeof buf, off)) > 0) {
		off += k;
		ok = write(out, buf, (size_t)k) == k;
	}
	ok &= k == 0 && fsync(out) == 0;
	ok &= close(out) == 0;
	if (!ok) {
		unlink(aside);
		free(aside);
		return NULL;
	}
	return aside;
}

/* Skip the rest of an overlong line (counted as a bad line), chunk by
 * chunk; false at the end of the file. */
static bool mem_skip_line(struct mem_loader *ld, unsigned long lineno)
{
	char chunk[65536];
	ld->skipped++;
	if (!ld->first_bad)
		ld->first_bad = lineno;
	for (;;) {
		ssize_t k = read(ld->fd, chunk, sizeof chunk);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		char *lf = memchr(chunk, '\n', (size_t)k);
		if (lf) {
			/* back to just after the LF: the next line starts there */
			off_t back = (off_t)(k - (lf + 1 - chunk));
			return lseek(ld->fd, -back, SEEK_CUR) >= 0;
		}
	}
}

static void *mem_loader_main(void *arg)
{
	struct mem_loader *ld = arg;
	for (unsigned long w = 0; w < ld->pause_ms && !atomic_load(&ld->cancel); w += 10)
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	/* Sized for the file's lines (about 100 bytes each), so that loading
	 * does not grow the table on the way. */
	dict_init(&ld->d, ld->size / 100 < MEM_MAX_PRESIZE ? ld->size / 100 : MEM_MAX_PRESIZE);
	size_t cap = 1u << 20, len = 0, off = 0;
	char *buf = xmalloc(cap);
	unsigned long lineno = 0;
	bool header = false, eof = false;
	while (!eof && !atomic_load(&ld->cancel)) {
		if (off > 0) {
			memmove(buf, buf + off, len - off);
			len -= off;
			off = 0;
		}
		if (len == cap) {
			if (cap >= 2 * (size_t)MEM_MAX_KEY) {
				/* a line with no end in sight: not an entry */
				if (!header) {
					ld->error = xstrdup("not an mxacl state file");
					break;
				}
				if (!mem_skip_line(ld, lineno + 1))
					eof = true;
				len = 0;
				lineno++;
				continue;
			}
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		ssize_t k = read(ld->fd, buf + len, cap - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			ld->error = xasprintf("read error: %s", strerror(errno));
			break;
		}
		if (k == 0) {
			eof = true;
			if (len > 0 && buf[len - 1] != '\n') {
				if (len == cap)
					buf = xrealloc(buf, ++cap);
				buf[len++] = '\n';   /* a last line without its LF */
			}
		}
		len += (size_t)k;
		char *lf;
		while (off < len && (lf = memchr(buf + off, '\n', len - off))) {
			const char *s = buf + off;
			size_t n = (size_t)(lf - s);
			off += n + 1;
			lineno++;
			if (!header) {
				if (n + 1 != strlen(MEM_HEADER) || memcmp(s, MEM_HEADER, n)) {
					ld->error = xstrdup("not an mxacl state file");
					eof = true;
					break;
				}
				header = true;
				continue;
			}
			if (!mem_load_line(ld, s, n)) {
				ld->skipped++;
				if (!ld->first_bad)
					ld->first_bad = lineno;
			}
			if ((lineno & 4095) == 0 && atomic_load(&ld->cancel))
				break;
		}
	}
	free(buf);
	if (!atomic_load(&ld->cancel) && (ld->skipped || ld->error))
		ld->aside = mem_keep_aside(ld);
	char byte = 1;
	(void)!write(ld->pipe[1], &byte, 1);
	return NULL;
}

static void mem_loader_free(struct mem_loader *ld)
{
	if (ld->ev)
		event_free(ld->ev);
	close(ld->pipe[0]);
	close(ld->pipe[1]);
	close(ld->fd);
	dict_free(&ld->d);
	free(ld->path);
	free(ld->aside);
	free(ld->error);
	free(ld);
}

/* The loader is done: swap its table in (the live one is empty: every
 * operation failed meanwhile) and report. */
static void mem_loader_done(evutil_socket_t fd, short what, void *arg)
{
	struct mem_loader *ld = arg;
	struct mem_store *m = ld->m;
	pthread_join(ld->th, NULL);
	dict_free(&m->d);
	m->d = ld->d;
	memset(&ld->d, 0, sizeof ld->d);
	m->loader = NULL;
	struct store_load_result r = {
		.loaded = ld->loaded, .expired = ld->expired, .skipped = ld->skipped,
		.first_bad = ld->first_bad, .aside = ld->aside, .error = ld->error,
		.seconds = mono_since(&ld->t0),
	};
	ld->cb(ld->arg, &r);
	mem_loader_free(ld);
}

/* Cancel a load in progress (close, exit): the thread stops within a few
 * thousand lines, and what it read is dropped. */
static void mem_loader_stop(struct mem_store *m)
{
	struct mem_loader *ld = m->loader;
	if (!ld)
		return;
	atomic_store(&ld->cancel, 1);
	pthread_join(ld->th, NULL);
	m->loader = NULL;
	mem_loader_free(ld);
}

int store_memory_load_start(struct store *s, const char *path, time_t now, store_load_cb cb,
			    void *arg, char **err)
{
	struct mem_store *m = mem(s);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;         /* the first start: nothing saved yet */
		*err = errno == ELOOP ? xasprintf("%s is a symbolic link; give the file itself", path)
				      : xasprintf("cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*err = S_ISDIR(st.st_mode) ? xasprintf("%s is a directory, not a state file", path)
					   : xasprintf("%s is not a regular file", path);
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	if (m->loader || m->d.count) {
		close(fd);
		*err = xasprintf("%s: the store is not empty", path);
		return -1;
	}
	struct mem_loader *ld = xcalloc(1, sizeof *ld);
	ld->m = m;
	ld->fd = fd;
	ld->path = xstrdup(path);
	ld->size = (size_t)st.st_size;
	ld->now = t32(now);
	ld->cb = cb;
	ld->arg = arg;
	clock_gettime(CLOCK_MONOTONIC, &ld->t0);
	ld->pause_ms = testhooks_ms("MXACL_TEST_STATE_LOAD_MS");
	if (pipe2(ld->pipe, O_CLOEXEC) < 0) {
		*err = xasprintf("cannot load %s: pipe: %s", path, strerror(errno));
		ld->pipe[0] = ld->pipe[1] = -1;
		mem_loader_free(ld);
		return -1;
	}
	ld->ev = event_new(m->evb, ld->pipe[0], EV_READ, mem_loader_done, ld);
	if (!ld->ev || event_add(ld->ev, NULL) < 0)
		fatal_abort("cannot watch the state loader");
	int e = pthread_create(&ld->th, NULL, mem_loader_main, ld);
	if (e) {
		*err = xasprintf("cannot load %s: thread: %s", path, strerror(e));
		mem_loader_free(ld);
		return -1;
	}
	m->loader = ld;
	return 1;
}
