/*
 * strmap - a case-insensitive hash map from strings to uint32 values, the
 * way literal acl values are indexed (nftables sets, in spirit): one lookup
 * answers for any number of literals.
 *
 * Open addressing with linear probing, power-of-two table, at most 70 %
 * full; a map of a few keys has no table and compares them all (it costs
 * about what hashing does, in a fraction of the memory). Keys are copied
 * (folded to lower case) into the map's own storage.
 */
#ifndef MXACL_STRMAP_H
#define MXACL_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strmap;

struct strmap *strmap_new(void);
void strmap_free(struct strmap *m);   /* NULL is a no-op */

/*
 * Find or insert key (len bytes, compared without regard to ASCII case).
 * Returns the value slot, which the caller may set; *added says whether the
 * key was new (its slot is then 0). The pointer is valid until the next put.
 * m must not be packed (strmap_pack): that aborts.
 */
uint32_t *strmap_put(struct strmap *m, const char *key, size_t len, bool *added);

/* The value slot of key, or NULL when absent. */
const uint32_t *strmap_get(const struct strmap *m, const char *key, size_t len);

/*
 * The map is done growing (or nearly): give back the room its buffers kept
 * for more keys. A later put still works (it grows them again). NULL is a
 * no-op.
 */
void strmap_shrink(struct strmap *m);

/*
 * A map without an index (a few keys) frozen into one small block:
 * strmap_packed_size is the bytes it needs, 0 when m cannot be packed
 * (NULL, indexed, packed already). strmap_pack copies m into buf (that
 * many bytes, 8-aligned, owned by the caller, e.g. an arena, and outliving
 * the map), frees m and returns the map in buf: read-only (a put aborts),
 * and strmap_free of it is a no-op.
 */
size_t strmap_packed_size(const struct strmap *m);
struct strmap *strmap_pack(struct strmap *m, void *buf);

/* Number of keys; a NULL map has none. */
size_t strmap_count(const struct strmap *m);

/*
 * The key added i-th (0 <= i < strmap_count), as stored: folded to lower
 * case and NUL-terminated; *len gets its length (a key may hold NUL bytes).
 * Owned by the map, valid until the next put. For walking a map's keys in
 * insertion order (building indexes, dumps).
 */
const char *strmap_key_at(const struct strmap *m, size_t i, size_t *len);

#endif
