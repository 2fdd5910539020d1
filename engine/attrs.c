/*
 * attrs - names and ids of the policy protocol attributes (see attrs.h).
 * The name table is a small perfect-enough hash built once; a request
 * with 30 attributes costs 30 probes.
 */
#include "engine/attrs.h"

#include <string.h>

#include "util/util.h"

static const char *const names[ATTR_COUNT] = {
#define X(n) #n,
	ATTR_LIST(X)
#undef X
};

#define ATTR_TABLE 256
static signed char table[ATTR_TABLE];
static bool table_ready;

static void attrs_init(void)
{
	memset(table, -1, sizeof table);
	for (int i = 0; i < ATTR_COUNT; i++) {
		uint64_t h = hash_bytes(names[i], strlen(names[i]), false);
		size_t k = h & (ATTR_TABLE - 1);
		while (table[k] >= 0)
			k = (k + 1) & (ATTR_TABLE - 1);
		table[k] = (signed char)i;
	}
	table_ready = true;
}

const char *attr_name(enum attr_id id)
{
	return (unsigned)id < ATTR_COUNT ? names[id] : "?";
}

int attr_lookup(const char *name, size_t len)
{
	if (!table_ready)
		attrs_init();
	uint64_t h = hash_bytes(name, len, false);
	for (size_t k = h & (ATTR_TABLE - 1);; k = (k + 1) & (ATTR_TABLE - 1)) {
		int i = table[k];
		if (i < 0)
			return -1;
		if (strncmp(names[i], name, len) == 0 && names[i][len] == 0)
			return i;
	}
}
