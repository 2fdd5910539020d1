/*
 * store_memory - the embedded store: one open-addressing hash table of
 * greylist triplets, auto-whitelisted networks and rate logs, each entry a
 * single allocation with its key inline (a million triplets fit in about
 * 120 MB). Answers synchronously. Expired entries are dropped when met and
 * by a sweep that advances a few slots on every operation, so memory
 * follows the live state without a timer.
 *
 * Time is the caller's (the request's clock): tests and replays run on
 * their own clock, and the state file stores absolute times.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/store.h"
#include "util/util.h"

enum mem_kind { MEM_TRIPLET = 'g', MEM_AWL = 'a', MEM_RATE = 'r' };

struct mem_entry {
	uint64_t hash;
	uint32_t first, last;     /* seconds since the epoch */
	uint32_t expires;         /* dropped once now >= expires */
	uint32_t count;           /* triplet: passed (0/1); AWL: passes */
	uint32_t *ts;             /* rate: ring of event times */
	uint32_t nts, head, cap;  /* rate: events held, oldest index, ring size */
	uint16_t keylen;
	char kind;
	char key[];
};

struct mem_store {
	struct store base;
	struct mem_entry **slot;
	size_t mask, count, sweep;
};

#define MEM_MAX_KEY 1024
#define MEM_SWEEP_STEP 8

static struct mem_store *mem(struct store *s)
{
	return (struct mem_store *)s;
}

static uint64_t mem_hash(char kind, const char *key, size_t len)
{
	return hash_bytes(key, len, false) ^ ((uint64_t)(unsigned char)kind * 0x9e3779b97f4a7c15ULL);
}

static size_t mem_find(const struct mem_store *m, char kind, const char *key, size_t len,
		       uint64_t h)
{
	for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
		const struct mem_entry *e = m->slot[i];
		if (!e || (e->hash == h && e->kind == kind && e->keylen == len &&
			   memcmp(e->key, key, len) == 0))
			return i;
	}
}

static void mem_entry_free(struct mem_entry *e)
{
	free(e->ts);
	free(e);
}

/* Delete the entry at slot i, shifting later entries of its cluster back
 * (no tombstones: probes stay short however much churn there is). */
static void mem_delete_at(struct mem_store *m, size_t i)
{
	mem_entry_free(m->slot[i]);
	m->slot[i] = NULL;
	m->count--;
	for (size_t j = (i + 1) & m->mask; m->slot[j]; j = (j + 1) & m->mask) {
		size_t home = m->slot[j]->hash & m->mask;
		/* move j back to i when its home is not in (i, j] */
		if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
			m->slot[i] = m->slot[j];
			m->slot[j] = NULL;
			i = j;
		}
	}
}

static void mem_grow(struct mem_store *m)
{
	struct mem_entry **old = m->slot;
	size_t oldn = m->mask + 1;
	m->mask = oldn * 2 - 1;
	m->slot = xcalloc(m->mask + 1, sizeof *m->slot);
	for (size_t i = 0; i < oldn; i++) {
		if (!old[i])
			continue;
		size_t j = old[i]->hash & m->mask;
		while (m->slot[j])
			j = (j + 1) & m->mask;
		m->slot[j] = old[i];
	}
	free(old);
}

/* Advance the sweep a few slots, dropping what has expired by now. */
static void mem_sweep(struct mem_store *m, uint32_t now)
{
	for (int k = 0; k < MEM_SWEEP_STEP; k++) {
		size_t i = m->sweep & m->mask;
		m->sweep++;
		struct mem_entry *e = m->slot[i];
		if (e && now >= e->expires) {
			mem_delete_at(m, i);
			m->sweep--;          /* slot i may hold a shifted entry now */
		}
	}
}

/* The live entry for key, or NULL; an expired one is dropped. */
static struct mem_entry *mem_get(struct mem_store *m, char kind, const char *key, size_t len,
				 uint32_t now)
{
	uint64_t h = mem_hash(kind, key, len);
	size_t i = mem_find(m, kind, key, len, h);
	struct mem_entry *e = m->slot[i];
	if (e && now >= e->expires) {
		mem_delete_at(m, i);
		return NULL;
	}
	return e;
}

static struct mem_entry *mem_put(struct mem_store *m, char kind, const char *key, size_t len)
{
	if ((m->count + 1) * 10 > (m->mask + 1) * 7)
		mem_grow(m);
	uint64_t h = mem_hash(kind, key, len);
	size_t i = mem_find(m, kind, key, len, h);
	if (m->slot[i])
		return m->slot[i];
	if (len > MEM_MAX_KEY)
		len = MEM_MAX_KEY;
	struct mem_entry *e = xcalloc(1, sizeof *e + len + 1);
	e->hash = h;
	e->kind = kind;
	e->keylen = (uint16_t)len;
	memcpy(e->key, key, len);
	m->slot[i] = e;
	m->count++;
	return e;
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
	mem_sweep(m, now);

	if (p->awl) {
		struct mem_entry *w = mem_get(m, MEM_AWL, q->net, q->net_len, now);
		if (w && w->count >= p->awl) {
			w->last = now;
			w->expires = add_sat(now, p->expire);
			a.awl = true;
			cb(arg, STORE_OK, &a);
			return;
		}
	}
	struct mem_entry *t = mem_get(m, MEM_TRIPLET, q->triplet, q->triplet_len, now);
	if (!t) {
		t = mem_put(m, MEM_TRIPLET, q->triplet, q->triplet_len);
		grey_start(t, now, p);
	} else if (!t->count && now - t->first > p->retry_window) {
		grey_start(t, now, p);       /* not retried in time: start over */
	} else if (t->count && now - t->last > p->expire) {
		grey_start(t, now, p);
	} else if (!t->count && now - t->first >= p->delay) {
		t->count = 1;                /* the first pass */
		if (p->awl) {
			struct mem_entry *w = mem_get(m, MEM_AWL, q->net, q->net_len, now);
			if (!w) {
				w = mem_put(m, MEM_AWL, q->net, q->net_len);
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

static void mem_rate(struct store *s, const struct rate_query *q, rate_cb cb, void *arg)
{
	struct mem_store *m = mem(s);
	uint32_t now = t32(q->now);
	mem_sweep(m, now);
	struct mem_entry *r = mem_get(m, MEM_RATE, q->key, q->key_len, now);
	if (!r)
		r = mem_put(m, MEM_RATE, q->key, q->key_len);
	uint32_t cap = q->limit + 1;
	if (r->cap != cap) {             /* new, or the limit changed: start over */
		free(r->ts);
		r->ts = xmalloc(cap * sizeof *r->ts);
		r->cap = cap;
		r->nts = r->head = 0;
	}
	/* drop events that left the window (now - window, now] */
	while (r->nts && (uint64_t)r->ts[r->head] + q->window <= now) {
		r->head = (r->head + 1) % r->cap;
		r->nts--;
	}
	if (r->nts == r->cap) {          /* full: the oldest goes */
		r->head = (r->head + 1) % r->cap;
		r->nts--;
	}
	r->ts[(r->head + r->nts) % r->cap] = now;
	r->nts++;
	r->expires = add_sat(now, q->window);
	struct rate_answer a = { .count = r->nts, .over = r->nts > q->limit };
	cb(arg, STORE_OK, &a);
}

static void mem_list(struct store *s, time_t tnow, store_list_cb cb, void *arg)
{
	struct mem_store *m = mem(s);
	uint32_t now = t32(tnow);
	for (size_t i = 0; i <= m->mask; i++) {
		const struct mem_entry *e = m->slot[i];
		if (!e || e->kind == MEM_RATE || now >= e->expires)
			continue;
		char key[MEM_MAX_KEY + 1];
		memcpy(key, e->key, e->keylen);
		key[e->keylen] = 0;
		struct store_entry se = {
			.kind = e->kind == MEM_TRIPLET ? STORE_TRIPLET : STORE_AWL,
			.key = key, .first = e->first, .last = e->last,
			.passed = e->kind == MEM_TRIPLET && e->count, .count = e->count,
		};
		cb(arg, STORE_OK, &se);
	}
	cb(arg, STORE_OK, NULL);
}

static void mem_edit(struct store *s, enum store_edit op, const char *key, time_t tnow,
		     const struct grey_params *p, store_done_cb cb, void *arg)
{
	struct mem_store *m = mem(s);
	uint32_t now = t32(tnow);
	unsigned long changed = 0;
	size_t len = key ? strlen(key) : 0;
	switch (op) {
	case STORE_WHITELIST: {
		struct mem_entry *w = mem_put(m, MEM_AWL, key, len);
		if (!w->first)
			w->first = now;
		w->count = p->awl ? p->awl : 1;
		w->last = now;
		w->expires = add_sat(now, p->expire);
		changed = 1;
		break;
	}
	case STORE_PASS: {
		struct mem_entry *t = mem_put(m, MEM_TRIPLET, key, len);
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
			size_t i = mem_find(m, kind, key, len, mem_hash(kind, key, len));
			if (m->slot[i]) {
				mem_delete_at(m, i);
				changed++;
			}
		}
		break;
	case STORE_FLUSH:
		for (size_t i = 0; i <= m->mask;) {
			struct mem_entry *e = m->slot[i];
			if (e && e->kind != MEM_RATE) {
				mem_delete_at(m, i);      /* slot i may refill: look again */
				changed++;
			} else {
				i++;
			}
		}
		break;
	}
	cb(arg, STORE_OK, changed);
}

static struct store *mem_open(struct event_base *base, const char *url, char **err)
{
	(void)base;
	if (strcmp(url, "memory") && strcmp(url, "memory:")) {
		*err = xasprintf("bad store '%s': the memory store takes no options", url);
		return NULL;
	}
	struct mem_store *m = xcalloc(1, sizeof *m);
	m->base.ops = &store_memory_ops;
	m->mask = 1023;
	m->slot = xcalloc(m->mask + 1, sizeof *m->slot);
	return &m->base;
}

static void mem_close(struct store *s)
{
	struct mem_store *m = mem(s);
	for (size_t i = 0; i <= m->mask; i++)
		if (m->slot[i])
			mem_entry_free(m->slot[i]);
	free(m->slot);
	free(m);
}

const struct store_ops store_memory_ops = {
	.scheme = "memory",
	.open = mem_open,
	.close = mem_close,
	.grey = mem_grey,
	.rate = mem_rate,
	.list = mem_list,
	.edit = mem_edit,
};

bool store_is_memory(const struct store *s)
{
	return s && s->ops == &store_memory_ops;
}

/* ---- the state file -------------------------------------------------------
 *
 *   mxacl-state 1
 *   g FIRST LAST EXPIRES PASSED KEY
 *   a FIRST LAST EXPIRES COUNT KEY
 *   r FIRST LAST EXPIRES CAP T1,T2,... KEY
 *
 * One entry a line; the key comes last and runs to the end of the line
 * (keys never hold a newline: request values cannot).
 */

bool store_memory_save(struct store *s, const char *path, char **err)
{
	struct mem_store *m = mem(s);
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	FILE *f = fopen(tmp, "w");
	if (!f) {
		*err = xasprintf("cannot write %s: %s", tmp, strerror(errno));
		free(tmp);
		return false;
	}
	fputs("mxacl-state 1\n", f);
	for (size_t i = 0; i <= m->mask; i++) {
		const struct mem_entry *e = m->slot[i];
		if (!e)
			continue;
		fprintf(f, "%c %u %u %u ", e->kind, e->first, e->last, e->expires);
		if (e->kind == MEM_RATE) {
			fprintf(f, "%u ", e->cap);
			for (uint32_t k = 0; k < e->nts; k++)
				fprintf(f, "%s%u", k ? "," : "", e->ts[(e->head + k) % e->cap]);
			if (!e->nts)
				fputc('-', f);
			fputc(' ', f);
		} else {
			fprintf(f, "%u ", e->count);
		}
		fwrite(e->key, 1, e->keylen, f);
		fputc('\n', f);
	}
	bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
	ok &= fclose(f) == 0;
	if (!ok || rename(tmp, path) != 0) {
		*err = xasprintf("cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
		free(tmp);
		return false;
	}
	free(tmp);
	return true;
}

bool store_memory_load(struct store *s, const char *path, time_t tnow, char **err)
{
	struct mem_store *m = mem(s);
	uint32_t now = t32(tnow);
	FILE *f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT)
			return true;        /* the first start: nothing saved yet */
		*err = xasprintf("cannot read %s: %s", path, strerror(errno));
		return false;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0;
	bool ok = true;
	while ((n = getline(&line, &cap, f)) > 0) {
		lineno++;
		if (line[n - 1] == '\n')
			line[--n] = 0;
		if (lineno == 1) {
			if (strcmp(line, "mxacl-state 1")) {
				*err = xasprintf("%s: not an mxacl state file", path);
				ok = false;
				break;
			}
			continue;
		}
		char kind;
		unsigned first, last, expires, count;
		int off = 0;
		if (sscanf(line, "%c %u %u %u %u %n", &kind, &first, &last, &expires, &count, &off) < 5 ||
		    !off || (kind != MEM_TRIPLET && kind != MEM_AWL && kind != MEM_RATE)) {
			*err = xasprintf("%s:%d: bad line", path, lineno);
			ok = false;
			break;
		}
		char *rest = line + off;
		uint32_t *ts = NULL, nts = 0;
		if (kind == MEM_RATE) {
			if (count == 0 || count > 1000001) {
				*err = xasprintf("%s:%d: bad rate entry", path, lineno);
				ok = false;
				break;
			}
			ts = xmalloc(count * sizeof *ts);
			char *sp = strchr(rest, ' ');
			if (!sp) {
				free(ts);
				*err = xasprintf("%s:%d: bad rate entry", path, lineno);
				ok = false;
				break;
			}
			*sp = 0;
			for (char *tok = strtok(rest, ","); tok && *tok != '-' && nts < count;
			     tok = strtok(NULL, ","))
				ts[nts++] = (uint32_t)strtoul(tok, NULL, 10);
			rest = sp + 1;
		}
		if (now >= expires) {
			free(ts);
			continue;
		}
		struct mem_entry *e = mem_put(m, kind, rest, strlen(rest));
		e->first = first;
		e->last = last;
		e->expires = expires;
		if (kind == MEM_RATE) {
			free(e->ts);
			e->ts = ts;
			e->cap = count;
			e->nts = nts;
			e->head = 0;
		} else {
			e->count = count;
		}
	}
	free(line);
	fclose(f);
	return ok;
}
