/*
 * geoip - the country of an address, from a MaxMind DB file (GeoLite2,
 * DB-IP and others write this format; libmaxminddb reads it). The file is
 * memory-mapped once per compiled program, so a reload picks up a new
 * weekly database, and a lookup is a walk down a tree in memory: it
 * answers at once.
 */
#ifndef MXACL_GEOIP_H
#define MXACL_GEOIP_H

#include <stdbool.h>
#include <stddef.h>

struct geoip;

/* Open path; NULL with *err (malloc'ed) when it is not a readable MMDB. */
struct geoip *geoip_open(const char *path, char **err);
void geoip_close(struct geoip *g);     /* NULL is a no-op */

enum geoip_result { GEOIP_FOUND, GEOIP_NOT_FOUND, GEOIP_ERROR };

/*
 * Look up the address (IPv4 or IPv6 text of len bytes). On GEOIP_FOUND,
 * country (3 bytes) holds the ISO 3166 code, upper case: the country's,
 * else the registered country's; continent (3 bytes) the continent code
 * ("EU"); either may be "" when the database has none. GEOIP_NOT_FOUND:
 * the database does not know the address. GEOIP_ERROR: a corrupt entry.
 */
enum geoip_result geoip_lookup(const struct geoip *g, const char *addr, size_t len,
			       char country[3], char continent[3]);

#endif
