/*
 * attrs - names and ids of the request attributes, sent and derived (see
 * attrs.h). The name table is a small perfect-enough hash built once; a
 * request with 30 attributes costs 30 probes.
 */
#include "engine/attrs.h"

#include <assert.h>
#include <string.h>
#include <strings.h>

#include "util/util.h"

static const char *const names[ATTR_COUNT] = {
#define X(n) #n,
	ATTR_LIST(X)
#undef X
#define D(n, src, fn, dom) #n,
	ATTR_DERIVED(D)
#undef D
};

/* The source of each derived attribute, from its row. */
static const signed char sources[ATTR_COUNT - ATTR_SENT_COUNT] = {
#define D(n, src, fn, dom) ATTR_##src,
	ATTR_DERIVED(D)
#undef D
};

#define ATTR_TABLE 256
static signed char table[ATTR_TABLE];
static unsigned char lens[ATTR_COUNT];
static bool table_ready;

/* Cheap and enough for these 40 names: length and three bytes. */
static size_t attr_hash(const char *s, size_t len)
{
	return (len * 37u + (unsigned char)s[0] * 7u + (unsigned char)s[len - 1] * 13u +
		(unsigned char)s[len / 2] * 3u) & (ATTR_TABLE - 1);
}

static void attrs_init(void)
{
	memset(table, -1, sizeof table);
	for (int i = 0; i < ATTR_COUNT; i++) {
		lens[i] = (unsigned char)strlen(names[i]);
		size_t k = attr_hash(names[i], lens[i]);
		while (table[k] >= 0)
			k = (k + 1) & (ATTR_TABLE - 1);
		table[k] = (signed char)i;
	}
	/* a derived attribute's source is computed before it (attrs.h) */
	for (int i = ATTR_SENT_COUNT; i < ATTR_COUNT; i++)
		assert(sources[i - ATTR_SENT_COUNT] < i);
	table_ready = true;
}

const char *attr_name(enum attr_id id)
{
	return (unsigned)id < ATTR_COUNT ? names[id] : "?";
}

/* Whether each derived attribute's values are domain names, from its row. */
static const bool derived_domain[ATTR_COUNT - ATTR_SENT_COUNT] = {
#define D(n, src, fn, dom) dom,
	ATTR_DERIVED(D)
#undef D
};

bool attr_is_domain(int id)
{
	if (attr_derived(id))
		return derived_domain[id - ATTR_SENT_COUNT];
	return id == ATTR_client_name || id == ATTR_reverse_client_name ||
	       id == ATTR_helo_name || id == ATTR_etrn_domain;
}

enum attr_id attr_source(enum attr_id id)
{
	return attr_derived(id) ? (enum attr_id)sources[id - ATTR_SENT_COUNT] : id;
}

enum attr_id attr_root(enum attr_id id)
{
	while (attr_derived(id))
		id = attr_source(id);
	return id;
}

const char *attr_name_at(size_t i, void *ctx)
{
	(void)ctx;
	return i < ATTR_COUNT ? names[i] : NULL;
}

int attr_lookup(const char *name, size_t len)
{
	if (!table_ready)
		attrs_init();
	if (len == 0)
		return -1;
	for (size_t k = attr_hash(name, len);; k = (k + 1) & (ATTR_TABLE - 1)) {
		int i = table[k];
		if (i < 0)
			return -1;
		if (lens[i] == len && memcmp(names[i], name, len) == 0)
			return i;
	}
}

static const char *const stage_names[STAGE_COUNT] = {
#define X(id, name) name,
	STAGE_LIST(X)
#undef X
};

const char *stage_name(enum stage_id s)
{
	return (unsigned)s < STAGE_COUNT ? stage_names[s] : "?";
}

int stage_lookup(const char *name, size_t len)
{
	for (int i = 0; i < STAGE_COUNT; i++)
		if (strlen(stage_names[i]) == len && !strncasecmp(stage_names[i], name, len))
			return i;
	return -1;
}

void attr_stages(int id, struct attr_stages *out)
{
	*out = (struct attr_stages){ .empty_how = "", .partial_how = "", .full_what = "sent" };
	if (id < 0 || id >= ATTR_COUNT)
		return;
	switch (attr_root((enum attr_id)id)) {
#define S(n, e, eh, p, ph, fw)                                                          \
	case ATTR_##n:                                                                  \
		*out = (struct attr_stages){ .empty = (e), .empty_how = (eh), .partial = (p), \
					     .partial_how = (ph), .full_what = (fw) };      \
		break;
	ATTR_STAGES(S)
#undef S
	default:
		break;
	}
}
