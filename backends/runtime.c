/*
 * runtime - the process-long owner of the loop, the store, the resolver
 * and the counters (see runtime.h).
 */
#include "backends/runtime.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "backends/dns.h"
#include "backends/store.h"
#include "util/util.h"

struct runtime {
	struct event_base *base;
	struct store *store;
	struct dns *dns;         /* NULL until set or first used */
	struct runtime_stats stats;
	time_t started;
	char *version;
	char *policy_path, *policy_sha256;
	time_t policy_loaded;
};

static const struct {
	const char *name, *help;
	enum runtime_counter_kind kind;
} counter_rows[RC_COUNT] = {
#define X(name, kind, help) { #name, help, RUNTIME_##kind },
	RUNTIME_COUNTERS(X)
#undef X
};

static const struct {
	const char *name, *label, *help;
} family_rows[RF_COUNT] = {
#define X(name, label, help) { #name, label, help },
	RUNTIME_FAMILIES(X)
#undef X
};

static const struct {
	const char *name, *metric, *kind, *help;
} hist_rows[RH_COUNT] = {
#define X(name, metric, kind, help) { #name, metric, kind, help },
	RUNTIME_HISTOGRAMS(X)
#undef X
};

static const double hist_bounds[RUNTIME_HIST_NBOUNDS] = RUNTIME_HIST_BOUNDS;
/* The same bounds in nanoseconds, for the search: filled by runtime_new
 * (the same values every time; runtimes are made on the main thread). */
static uint64_t hist_bounds_ns[RUNTIME_HIST_NBOUNDS];

struct runtime *runtime_new(struct event_base *base)
{
	struct runtime *rt = xcalloc(1, sizeof *rt);
	rt->base = base;
	char *err = NULL;
	rt->store = store_open(base, "memory", &err);
	if (!rt->store)
		fatal_abort("cannot open the memory store: %s", err);
	store_set_stats(rt->store, &rt->stats);
	for (int f = 0; f < RF_COUNT; f++)
		rt->stats.f[f].tail = &rt->stats.f[f].first;
	for (int i = 0; i < RUNTIME_HIST_NBOUNDS; i++)
		hist_bounds_ns[i] = (uint64_t)(hist_bounds[i] * 1e9 + 0.5);
	rt->started = time(NULL);
	rt->version = xstrdup("");
	rt->policy_path = xstrdup("");
	rt->policy_sha256 = xstrdup("");
	return rt;
}

void runtime_free(struct runtime *rt)
{
	if (!rt)
		return;
	store_close(rt->store);
	dns_free(rt->dns);
	for (int f = 0; f < RF_COUNT; f++)
		free(rt->stats.f[f].index);
	arena_free(rt->stats.values);
	free(rt->version);
	free(rt->policy_path);
	free(rt->policy_sha256);
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
	store_set_stats(s, &rt->stats);
}

struct store *runtime_store(struct runtime *rt)
{
	return rt->store;
}

void runtime_set_dns(struct runtime *rt, struct dns *d)
{
	dns_free(rt->dns);
	rt->dns = d;
	if (d)
		dns_set_stats(d, &rt->stats);
}

struct dns *runtime_dns(struct runtime *rt)
{
	if (!rt->dns) {
		char *err = NULL;
		rt->dns = dns_new(rt->base, NULL, &err);
		if (!rt->dns)           /* only a bad option can fail: a bug here */
			fatal_abort("cannot make the DNS resolver: %s", err);
		dns_set_stats(rt->dns, &rt->stats);
	}
	return rt->dns;
}

uint64_t runtime_dns_deadline(struct runtime *rt, uint64_t *slot)
{
	if (!*slot)
		*slot = dns_deadline(runtime_dns(rt));
	return *slot;
}

struct dns *runtime_dns_if_made(struct runtime *rt)
{
	return rt->dns;
}

struct runtime_stats *runtime_stats(struct runtime *rt)
{
	return &rt->stats;
}

void runtime_count(struct runtime *rt, enum runtime_counter c, uint64_t n)
{
	rt->stats.c[c] += n;
}

uint64_t runtime_counter(const struct runtime *rt, enum runtime_counter c)
{
	return rt->stats.c[c];
}

const char *runtime_counter_name(enum runtime_counter c)
{
	return counter_rows[c].name;
}

enum runtime_counter_kind runtime_counter_kind(enum runtime_counter c)
{
	return counter_rows[c].kind;
}

const char *runtime_counter_help(enum runtime_counter c)
{
	return counter_rows[c].help;
}

/* FNV-1a: label values are short. */
static size_t family_hash(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return (size_t)h;
}

/* Put v into an index of cap slots (a power of two). */
static void family_insert(struct runtime_family_value **index, size_t cap,
			  struct runtime_family_value *v)
{
	size_t i = family_hash(v->value, strlen(v->value)) & (cap - 1);
	while (index[i])
		i = (i + 1) & (cap - 1);
	index[i] = v;
}

uint64_t *runtime_family_slot(struct runtime_stats *st, enum runtime_family f, const char *value,
			      size_t len)
{
	struct runtime_family_set *fs = &st->f[f];
	if (fs->cap) {
		size_t i = family_hash(value, len) & (fs->cap - 1);
		for (struct runtime_family_value *v; (v = fs->index[i]);
		     i = (i + 1) & (fs->cap - 1))
			if (!strncmp(v->value, value, len) && v->value[len] == '\0')
				return &v->n;
	}
	/* New: keep the index at most half full. */
	if (2 * (fs->nvalues + 1) > fs->cap) {
		size_t cap = fs->cap ? 2 * fs->cap : 16;
		struct runtime_family_value **index = xcalloc(cap, sizeof *index);
		for (struct runtime_family_value *v = fs->first; v; v = v->next)
			family_insert(index, cap, v);
		free(fs->index);
		fs->index = index;
		fs->cap = cap;
	}
	if (!st->values)
		st->values = arena_new(1 << 12);
	struct runtime_family_value *v = arena_zalloc(st->values, sizeof *v + len + 1);
	memcpy(v->value, value, len);
	/* A NUL inside a value would cut it: there is none in action words,
	 * file names or DNS reasons, and the index compares the whole. */
	*fs->tail = v;
	fs->tail = &v->next;
	fs->nvalues++;
	family_insert(fs->index, fs->cap, v);
	return &v->n;
}

const char *runtime_family_name(enum runtime_family f)
{
	return family_rows[f].name;
}

const char *runtime_family_label(enum runtime_family f)
{
	return family_rows[f].label;
}

const char *runtime_family_help(enum runtime_family f)
{
	return family_rows[f].help;
}

void runtime_observe(struct runtime_stats *st, enum runtime_histogram h, uint64_t ns)
{
	if (!st)
		return;
	struct runtime_hist *hi = &st->h[h];
	int b = 0;
	while (b < RUNTIME_HIST_NBOUNDS && ns > hist_bounds_ns[b])
		b++;
	hi->bucket[b]++;
	hi->count++;
	hi->sum_ns += ns;
}

const char *runtime_hist_name(enum runtime_histogram h)
{
	return hist_rows[h].name;
}

const char *runtime_hist_metric(enum runtime_histogram h)
{
	return hist_rows[h].metric;
}

const char *runtime_hist_kind(enum runtime_histogram h)
{
	return hist_rows[h].kind;
}

const char *runtime_hist_help(enum runtime_histogram h)
{
	return hist_rows[h].help;
}

const double *runtime_hist_bounds(void)
{
	return hist_bounds;
}

uint64_t runtime_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void runtime_set_version(struct runtime *rt, const char *version)
{
	free(rt->version);
	rt->version = xstrdup(version);
}

const char *runtime_version(const struct runtime *rt)
{
	return rt->version;
}

time_t runtime_started(const struct runtime *rt)
{
	return rt->started;
}

void runtime_set_policy(struct runtime *rt, const char *path, const char *sha256_hex,
			time_t loaded)
{
	free(rt->policy_path);
	free(rt->policy_sha256);
	rt->policy_path = xstrdup(path);
	rt->policy_sha256 = xstrdup(sha256_hex);
	rt->policy_loaded = loaded;
}

const char *runtime_policy_path(const struct runtime *rt)
{
	return rt->policy_path;
}

const char *runtime_policy_sha256(const struct runtime *rt)
{
	return rt->policy_sha256;
}

time_t runtime_policy_loaded(const struct runtime *rt)
{
	return rt->policy_loaded;
}
