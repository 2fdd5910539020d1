/*
 * store - pick a backend by the URL's scheme, and the one door every call
 * into a store goes through (see store.h).
 */
#include "backends/store.h"

#include <stdlib.h>
#include <string.h>

#include "backends/runtime.h"
#include "util/util.h"

/*
 * A greylist or rate call in flight, timed and checked for failure on its
 * way back: the wrapper puts its own callback between the caller and the
 * backend. Records are kept on the store's free list once used, so a call
 * allocates nothing after the first few (at most one per call in flight).
 */
struct store_call {
	struct store *s;
	union {
		grey_cb grey;
		rate_cb rate;
		distinct_cb distinct;
	} cb;
	void *arg;
	uint64_t t0;                   /* 0: not timed (the memory store) */
	struct store_call *next;       /* on the free list */
};

static const struct store_ops *const backends[] = {
#define X(name) &store_##name##_ops,
	STORE_BACKENDS(X)
#undef X
};

struct store *store_open(struct event_base *base, const char *url, char **err)
{
	if (!url || !*url)
		url = "memory";
	const char *colon = strchr(url, ':');
	size_t n = colon ? (size_t)(colon - url) : strlen(url);
	for (size_t i = 0; i < ARRAY_LEN(backends); i++)
		if (strlen(backends[i]->scheme) == n && strncmp(url, backends[i]->scheme, n) == 0)
			return backends[i]->open(base, url, err);
	struct strbuf hint;
	sb_init(&hint);
	for (size_t i = 0; i < ARRAY_LEN(backends); i++)
		sb_printf(&hint, "%s%s", i == 0 ? "" : i + 1 < ARRAY_LEN(backends) ? ", " : " or ",
			  backends[i]->form);
	*err = xasprintf("unknown store '%s': use %s", url, hint.s);
	sb_free(&hint);
	return NULL;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	/* The backend answers its calls in flight and frees s before it
	 * returns: their records are freed as they come back. */
	s->closing = true;
	for (struct store_call *c = s->free_calls, *next; c; c = next) {
		next = c->next;
		free(c);
	}
	s->free_calls = NULL;
	s->ops->close(s);
}

void store_set_stats(struct store *s, struct runtime_stats *st)
{
	s->stats = st;
}

/* Take a record for a call (counted) and time it unless s answers at once. */
static struct store_call *store_call_get(struct store *s, void *arg)
{
	struct store_call *c = s->free_calls;
	if (c)
		s->free_calls = c->next;
	else
		c = xcalloc(1, sizeof *c);
	c->s = s;
	c->arg = arg;
	c->t0 = store_is_memory(s) ? 0 : runtime_mono_ns();
	s->stats->c[RC_store_calls]++;
	return c;
}

/* A call came back: count it, put its record back. */
static void store_call_put(struct store_call *c, enum store_status st)
{
	struct store *s = c->s;
	if (s->stats) {
		if (st != STORE_OK)
			s->stats->c[RC_store_errors]++;
		if (c->t0)
			runtime_observe(s->stats, RH_lookup_redis, runtime_mono_ns() - c->t0);
	}
	if (s->closing) {
		free(c);
		return;
	}
	c->next = s->free_calls;
	s->free_calls = c;
}

static void store_grey_done(void *arg, enum store_status st, const struct grey_answer *a)
{
	struct store_call *c = arg;
	grey_cb cb = c->cb.grey;
	void *cb_arg = c->arg;
	store_call_put(c, st);
	cb(cb_arg, st, a);
}

static void store_rate_done(void *arg, enum store_status st, const struct rate_answer *a)
{
	struct store_call *c = arg;
	rate_cb cb = c->cb.rate;
	void *cb_arg = c->arg;
	store_call_put(c, st);
	cb(cb_arg, st, a);
}

void store_grey(struct store *s, const struct grey_query *q, grey_cb cb, void *arg)
{
	if (!s->stats) {
		s->ops->grey(s, q, cb, arg);
		return;
	}
	struct store_call *c = store_call_get(s, arg);
	c->cb.grey = cb;
	s->ops->grey(s, q, store_grey_done, c);
}

void store_rate(struct store *s, const struct rate_query *q, rate_cb cb, void *arg)
{
	if (!s->stats) {
		s->ops->rate(s, q, cb, arg);
		return;
	}
	struct store_call *c = store_call_get(s, arg);
	c->cb.rate = cb;
	s->ops->rate(s, q, store_rate_done, c);
}

static void store_distinct_done(void *arg, enum store_status st, const struct distinct_answer *a)
{
	struct store_call *c = arg;
	distinct_cb cb = c->cb.distinct;
	void *cb_arg = c->arg;
	store_call_put(c, st);
	cb(cb_arg, st, a);
}

void store_distinct(struct store *s, const struct distinct_query *q, distinct_cb cb, void *arg)
{
	if (!s->stats) {
		s->ops->distinct(s, q, cb, arg);
		return;
	}
	struct store_call *c = store_call_get(s, arg);
	c->cb.distinct = cb;
	s->ops->distinct(s, q, store_distinct_done, c);
}

void store_refund(struct store *s, const struct store_refund *q, store_done_cb cb, void *arg)
{
	runtime_stats_add(s->stats, RC_store_calls, 1);
	s->ops->refund(s, q, cb, arg);
}

void store_list(struct store *s, time_t now, store_list_cb cb, void *arg)
{
	runtime_stats_add(s->stats, RC_store_calls, 1);
	s->ops->list(s, now, cb, arg);
}

bool store_slices(const struct store *s)
{
	return s->ops->list_slice != NULL;
}

void store_list_slice(struct store *s, unsigned long *cursor, size_t max, time_t now,
		      store_list_cb cb, void *arg)
{
	runtime_stats_add(s->stats, RC_store_calls, 1);
	if (s->ops->list_slice)
		s->ops->list_slice(s, cursor, max, now, cb, arg);
	else
		s->ops->list(s, now, cb, arg);
}

void store_edit(struct store *s, enum store_edit op, const char *key, time_t now,
		const struct grey_params *p, store_done_cb cb, void *arg)
{
	runtime_stats_add(s->stats, RC_store_calls, 1);
	s->ops->edit(s, op, key, now, p, cb, arg);
}
