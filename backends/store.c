/*
 * store - pick a backend by the URL's scheme, and the one door every call
 * into a store goes through (see store.h).
 */
#include "backends/store.h"

#include <string.h>

#include "util/util.h"

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
	if (s)
		s->ops->close(s);
}

void store_grey(struct store *s, const struct grey_query *q, grey_cb cb, void *arg)
{
	s->ops->grey(s, q, cb, arg);
}

void store_rate(struct store *s, const struct rate_query *q, rate_cb cb, void *arg)
{
	s->ops->rate(s, q, cb, arg);
}

void store_list(struct store *s, time_t now, store_list_cb cb, void *arg)
{
	s->ops->list(s, now, cb, arg);
}

bool store_slices(const struct store *s)
{
	return s->ops->list_slice != NULL;
}

void store_list_slice(struct store *s, unsigned long *cursor, size_t max, time_t now,
		      store_list_cb cb, void *arg)
{
	if (s->ops->list_slice)
		s->ops->list_slice(s, cursor, max, now, cb, arg);
	else
		s->ops->list(s, now, cb, arg);
}

void store_edit(struct store *s, enum store_edit op, const char *key, time_t now,
		const struct grey_params *p, store_done_cb cb, void *arg)
{
	s->ops->edit(s, op, key, now, p, cb, arg);
}
