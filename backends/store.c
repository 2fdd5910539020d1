/*
 * store - pick a backend by the URL's scheme (see store.h).
 */
#include "backends/store.h"

#include <string.h>

#include "util/util.h"

static const struct store_ops *const backends[] = {
	&store_memory_ops,
	&store_redis_ops,
	&store_redis_unix_ops,
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
	*err = xasprintf("unknown store '%s': use memory, redis://HOST:PORT[/DB] or "
			 "redis+unix:///PATH",
			 url);
	return NULL;
}

void store_close(struct store *s)
{
	if (s)
		s->ops->close(s);
}
