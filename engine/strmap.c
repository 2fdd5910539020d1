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
 *
 * A small map (at most STRMAP_LINEAR keys) has no index at all: a lookup
 * compares the few entries' lengths and keys, which costs about what
 * hashing the key does. Most literal acls hold one value, and one access
 * line per value is how big policies are written, so the index of 16
 * slots each of them had was most of its memory (docs/dev/design.md,
 * "Memory per access line"). The index is built when the map outgrows
 * that, and strmap_shrink gives back the room kept for growing; or
 * strmap_pack freezes such a small map into a buffer of the caller's (a
 * string acl's arena) as a count, its entries and the keys: a one-key
 * map is then about 30 bytes instead of a 72-byte header and two
 * allocations.
 */
#include "engine/strmap.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define STRMAP_MIN_SLOTS 16
#define STRMAP_LINEAR 8      /* keys a map holds without an index */

struct strmap_entry {
	uint32_t off;     /* of the folded key in keys */
	uint32_t len;
	uint32_t value;
};

struct strmap_slot {
	uint32_t entry;   /* entry number + 1; 0 is an empty slot */
	uint32_t tag;     /* hash >> 32: rejects most mismatches without a key compare */
};

struct strmap {
	bool packed;      /* false; first, as in struct strmap_packed */
	struct strmap_slot *slots;   /* NULL while count <= STRMAP_LINEAR */
	size_t mask;      /* slot count - 1 (0 without slots) */
	struct strmap_entry *entries;
	size_t count, entries_cap;
	char *keys;
	size_t keys_len, keys_cap;
};

/*
 * A small map frozen into the caller's buffer (strmap_pack): a struct
 * strmap's header alone is bigger than a one-key literal acl's key, so
 * this is all of it: a count, the entries, then the keys.
 */
struct strmap_packed {
	bool packed;      /* true; first, as in struct strmap */
	uint32_t count;
	struct strmap_entry e[];   /* then the keys, NUL-terminated */
};

static const struct strmap_packed *strmap_as_packed(const struct strmap *m)
{
	return m->packed ? (const struct strmap_packed *)(const void *)m : NULL;
}

struct strmap *strmap_new(void)
{
	return xcalloc(1, sizeof(struct strmap));
}

void strmap_free(struct strmap *m)
{
	if (!m || m->packed)
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

/* A small map's entry number + 1 of key, or 0 (no index: compare them all). */
static uint32_t strmap_scan(const struct strmap *m, const char *key, size_t len)
{
	for (size_t j = 0; j < m->count; j++)
		if (m->entries[j].len == len && strmap_key_eq(m->keys + m->entries[j].off, key, len))
			return (uint32_t)(j + 1);
	return 0;
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

/* Double the index, or make the first, and re-place every entry (keys
 * are unique: no compares). */
static void strmap_grow(struct strmap *m)
{
	size_t nslots = m->slots ? (m->mask + 1) * 2 : STRMAP_MIN_SLOTS;
	while ((m->count + 1) * 10 > nslots * 7)
		nslots *= 2;

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
	if (m->packed)
		fatal_abort("strmap: put into a packed map");
	uint64_t h = hash_bytes(key, len, true);
	struct strmap_slot *sl = NULL;
	uint32_t found = m->slots ? (sl = strmap_probe(m, key, len, h))->entry
				  : strmap_scan(m, key, len);

	if (found != 0) {
		if (added)
			*added = false;
		return &m->entries[found - 1].value;
	}
	/* entry numbers, lengths and offsets are 32-bit to keep slots and
	 * entries small */
	if (len > UINT32_MAX || m->count >= UINT32_MAX - 1 || m->keys_len + len + 1 > UINT32_MAX)
		fatal_abort("strmap: too many keys or key too long (%zu keys, %zu bytes)",
			    m->count, len);
	if (m->slots ? (m->count + 1) * 10 > (m->mask + 1) * 7 : m->count + 1 > STRMAP_LINEAR) {
		strmap_grow(m);
		sl = strmap_probe(m, key, len, h);
	}
	/* a small map grows its buffers a little at a time: most stay small */
	if (m->keys_len + len + 1 > m->keys_cap && m->count < STRMAP_LINEAR) {
		m->keys_cap = m->keys_len + len + 1 + (m->count ? m->keys_len : 0);
		m->keys = xrealloc(m->keys, m->keys_cap);
	}
	grow_array((void **)&m->keys, &m->keys_cap, m->keys_len + len + 1, 1);
	ascii_lower_copy(m->keys + m->keys_len, key, len);
	m->keys[m->keys_len + len] = 0;   /* so strmap_key_at gives a C string */
	struct strmap_entry e = { (uint32_t)m->keys_len, (uint32_t)len, 0 };
	m->keys_len += len + 1;
	if (m->count == m->entries_cap && m->count < STRMAP_LINEAR) {
		m->entries_cap = m->count ? m->count * 2 : 1;
		m->entries = xrealloc(m->entries, m->entries_cap * sizeof *m->entries);
	}
	VEC_PUSH(m->entries, m->count, m->entries_cap, e);
	if (sl) {
		sl->entry = (uint32_t)m->count;
		sl->tag = (uint32_t)(h >> 32);
	}
	if (added)
		*added = true;
	return &m->entries[m->count - 1].value;
}

const uint32_t *strmap_get(const struct strmap *m, const char *key, size_t len)
{
	const struct strmap_packed *pm = strmap_as_packed(m);
	if (pm) {
		const char *keys = (const char *)&pm->e[pm->count];
		for (uint32_t j = 0; j < pm->count; j++)
			if (pm->e[j].len == len && strmap_key_eq(keys + pm->e[j].off, key, len))
				return &pm->e[j].value;
		return NULL;
	}
	uint32_t e = m->slots ? strmap_probe(m, key, len, hash_bytes(key, len, true))->entry
			      : strmap_scan(m, key, len);
	return e ? &m->entries[e - 1].value : NULL;
}

void strmap_shrink(struct strmap *m)
{
	if (!m || m->packed || !m->count)
		return;
	if (m->entries_cap > m->count) {
		m->entries = xrealloc(m->entries, m->count * sizeof *m->entries);
		m->entries_cap = m->count;
	}
	if (m->keys_cap > m->keys_len) {
		m->keys = xrealloc(m->keys, m->keys_len);
		m->keys_cap = m->keys_len;
	}
}

size_t strmap_packed_size(const struct strmap *m)
{
	if (!m || m->packed || m->slots)
		return 0;
	return sizeof(struct strmap_packed) + m->count * sizeof(struct strmap_entry) +
	       m->keys_len;
}

struct strmap *strmap_pack(struct strmap *m, void *buf)
{
	assert(strmap_packed_size(m) > 0);
	struct strmap_packed *p = buf;
	p->packed = true;
	p->count = (uint32_t)m->count;
	memcpy(p->e, m->entries, m->count * sizeof *p->e);
	memcpy(&p->e[m->count], m->keys, m->keys_len);
	strmap_free(m);
	return buf;
}

size_t strmap_count(const struct strmap *m)
{
	const struct strmap_packed *pm = m ? strmap_as_packed(m) : NULL;
	return pm ? pm->count : m ? m->count : 0;
}

const char *strmap_key_at(const struct strmap *m, size_t i, size_t *len)
{
	const struct strmap_packed *pm = strmap_as_packed(m);
	if (pm) {
		assert(i < pm->count);
		*len = pm->e[i].len;
		return (const char *)&pm->e[pm->count] + pm->e[i].off;
	}
	assert(i < m->count);
	*len = m->entries[i].len;
	return m->keys + m->entries[i].off;
}
