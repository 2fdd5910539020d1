/*
 * strmap - case-insensitive string -> uint32 map (see strmap.h).
 *
 * Layout: a dense array of entries in insertion order (key offset, length,
 * value) and a sparse power-of-two index of 8-byte slots (entry number and
 * the high half of the hash). A probe compares hash tags and touches an
 * entry and its key bytes only on a tag match, and growing rewrites only
 * the small index. Keys are stored folded to lower case and NUL-terminated,
 * one after another, in a single byte buffer addressed by offset, so it can
 * move when it grows.
 */
#include "engine/strmap.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define STRMAP_MIN_SLOTS 16

struct strmap_entry {
	size_t off;       /* of the folded key in keys */
	uint32_t len;
	uint32_t value;
};

struct strmap_slot {
	uint32_t entry;   /* entry number + 1; 0 is an empty slot */
	uint32_t tag;     /* hash >> 32: rejects most mismatches without a key compare */
};

struct strmap {
	struct strmap_slot *slots;
	size_t mask;      /* slot count - 1 */
	struct strmap_entry *entries;
	size_t count, entries_cap;
	char *keys;
	size_t keys_len, keys_cap;
};

struct strmap *strmap_new(void)
{
	struct strmap *m = xcalloc(1, sizeof *m);
	m->slots = xcalloc(STRMAP_MIN_SLOTS, sizeof m->slots[0]);
	m->mask = STRMAP_MIN_SLOTS - 1;
	return m;
}

void strmap_free(struct strmap *m)
{
	if (!m)
		return;
	free(m->slots);
	free(m->entries);
	free(m->keys);
	free(m);
}

/* Compare a key as given with a stored (folded) key of the same length. */
static bool strmap_key_eq(const char *stored, const char *key, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (ascii_lower(key[i]) != stored[i])
			return false;
	return true;
}

/*
 * The slot holding key, or the empty slot where it would go. Terminates
 * because the index is never more than 70 % full.
 */
static struct strmap_slot *strmap_probe(const struct strmap *m, const char *key, size_t len,
					uint64_t h)
{
	uint32_t tag = (uint32_t)(h >> 32);
	size_t i = (size_t)h & m->mask;

	for (;;) {
		struct strmap_slot *sl = &m->slots[i];
		if (sl->entry == 0)
			return sl;
		if (sl->tag == tag) {
			const struct strmap_entry *e = &m->entries[sl->entry - 1];
			if (e->len == len && strmap_key_eq(m->keys + e->off, key, len))
				return sl;
		}
		i = (i + 1) & m->mask;
	}
}

/* Double the index and re-place every entry (keys are unique: no compares). */
static void strmap_grow(struct strmap *m)
{
	size_t nslots = (m->mask + 1) * 2;

	free(m->slots);
	m->slots = xcalloc(nslots, sizeof m->slots[0]);
	m->mask = nslots - 1;
	for (size_t j = 0; j < m->count; j++) {
		const struct strmap_entry *e = &m->entries[j];
		/* stored keys are folded already, so no folding gives the same hash */
		uint64_t h = hash_bytes(m->keys + e->off, e->len, false);
		size_t i = (size_t)h & m->mask;
		while (m->slots[i].entry != 0)
			i = (i + 1) & m->mask;
		m->slots[i].entry = (uint32_t)(j + 1);
		m->slots[i].tag = (uint32_t)(h >> 32);
	}
}

uint32_t *strmap_put(struct strmap *m, const char *key, size_t len, bool *added)
{
	uint64_t h = hash_bytes(key, len, true);
	struct strmap_slot *sl = strmap_probe(m, key, len, h);

	if (sl->entry != 0) {
		if (added)
			*added = false;
		return &m->entries[sl->entry - 1].value;
	}
	/* entry numbers and lengths are 32-bit to keep slots and entries small */
	if (len > UINT32_MAX || m->count >= UINT32_MAX - 1)
		fatal_abort("strmap: too many keys or key too long (%zu keys, %zu bytes)",
			    m->count, len);
	if ((m->count + 1) * 10 > (m->mask + 1) * 7) {
		strmap_grow(m);
		sl = strmap_probe(m, key, len, h);
	}
	grow_array((void **)&m->keys, &m->keys_cap, m->keys_len + len + 1, 1);
	ascii_lower_copy(m->keys + m->keys_len, key, len);
	m->keys[m->keys_len + len] = 0;   /* so strmap_key_at gives a C string */
	struct strmap_entry e = { m->keys_len, (uint32_t)len, 0 };
	m->keys_len += len + 1;
	VEC_PUSH(m->entries, m->count, m->entries_cap, e);
	sl->entry = (uint32_t)m->count;
	sl->tag = (uint32_t)(h >> 32);
	if (added)
		*added = true;
	return &m->entries[m->count - 1].value;
}

const uint32_t *strmap_get(const struct strmap *m, const char *key, size_t len)
{
	const struct strmap_slot *sl = strmap_probe(m, key, len, hash_bytes(key, len, true));
	return sl->entry ? &m->entries[sl->entry - 1].value : NULL;
}

size_t strmap_count(const struct strmap *m)
{
	return m ? m->count : 0;
}

const char *strmap_key_at(const struct strmap *m, size_t i, size_t *len)
{
	assert(i < m->count);
	*len = m->entries[i].len;
	return m->keys + m->entries[i].off;
}
