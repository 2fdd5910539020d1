/*
 * runtime - the process-long owner of the loop, the store, the resolver
 * and the counters (see runtime.h).
 */
#include "backends/runtime.h"

#include <event2/event.h>
#include <stdlib.h>
#include <sys/time.h>

#include "backends/dns.h"
#include "backends/store.h"
#include "util/util.h"

struct runtime {
	struct event_base *base;
	struct store *store;
	struct dns *dns;         /* NULL until set or first used */
	uint64_t counters[RC_COUNT];
};

static const struct {
	const char *name, *help;
} counter_rows[RC_COUNT] = {
#define X(name, help) { #name, help },
	RUNTIME_COUNTERS(X)
#undef X
};

struct runtime *runtime_new(struct event_base *base)
{
	struct runtime *rt = xcalloc(1, sizeof *rt);
	rt->base = base;
	char *err = NULL;
	rt->store = store_open(base, "memory", &err);
	if (!rt->store)
		fatal_abort("cannot open the memory store: %s", err);
	return rt;
}

void runtime_free(struct runtime *rt)
{
	if (!rt)
		return;
	store_close(rt->store);
	dns_free(rt->dns);
	free(rt);
}

struct event_base *runtime_base(struct runtime *rt)
{
	return rt->base;
}

time_t runtime_now(struct runtime *rt)
{
	struct timeval tv;
	event_base_gettimeofday_cached(rt->base, &tv);
	return tv.tv_sec;
}

void runtime_set_store(struct runtime *rt, struct store *s)
{
	store_close(rt->store);
	rt->store = s;
}

struct store *runtime_store(struct runtime *rt)
{
	return rt->store;
}

void runtime_set_dns(struct runtime *rt, struct dns *d)
{
	dns_free(rt->dns);
	rt->dns = d;
}

struct dns *runtime_dns(struct runtime *rt)
{
	if (!rt->dns) {
		char *err = NULL;
		rt->dns = dns_new(rt->base, NULL, &err);
		if (!rt->dns)           /* only a bad option can fail: a bug here */
			fatal_abort("cannot make the DNS resolver: %s", err);
	}
	return rt->dns;
}

uint64_t runtime_dns_deadline(struct runtime *rt, uint64_t *slot)
{
	if (!*slot)
		*slot = dns_deadline(runtime_dns(rt));
	return *slot;
}

void runtime_count(struct runtime *rt, enum runtime_counter c, uint64_t n)
{
	rt->counters[c] += n;
}

uint64_t runtime_counter(const struct runtime *rt, enum runtime_counter c)
{
	return rt->counters[c];
}

const char *runtime_counter_name(enum runtime_counter c)
{
	return counter_rows[c].name;
}

const char *runtime_counter_help(enum runtime_counter c)
{
	return counter_rows[c].help;
}
