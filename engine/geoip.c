/*
 * geoip - country lookups in a MaxMind DB (see geoip.h).
 */
#include "engine/geoip.h"

#include <errno.h>
#include <maxminddb.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

struct geoip {
	MMDB_s mmdb;
};

struct geoip *geoip_open(const char *path, char **err)
{
	struct geoip *g = xcalloc(1, sizeof *g);
	int rc = MMDB_open(path, MMDB_MODE_MMAP, &g->mmdb);
	if (rc != MMDB_SUCCESS) {
		*err = xasprintf("cannot open GeoIP database '%s': %s", path,
				 rc == MMDB_FILE_OPEN_ERROR || rc == MMDB_IO_ERROR ? strerror(errno)
										 : MMDB_strerror(rc));
		free(g);
		return NULL;
	}
	return g;
}

void geoip_close(struct geoip *g)
{
	if (!g)
		return;
	MMDB_close(&g->mmdb);
	free(g);
}

/* Copy a two-letter code at path in entry into out, upper case. */
static bool code_at(MMDB_entry_s *entry, const char *const *path, char out[3])
{
	MMDB_entry_data_s data;
	if (MMDB_aget_value(entry, &data, path) != MMDB_SUCCESS || !data.has_data ||
	    data.type != MMDB_DATA_TYPE_UTF8_STRING || data.data_size != 2)
		return false;
	out[0] = ascii_upper(data.utf8_string[0]);
	out[1] = ascii_upper(data.utf8_string[1]);
	out[2] = 0;
	return true;
}

enum geoip_result geoip_lookup(const struct geoip *g, const char *addr, size_t len,
			       char country[3], char continent[3])
{
	char buf[64];
	if (len >= sizeof buf)
		return GEOIP_NOT_FOUND;
	memcpy(buf, addr, len);
	buf[len] = 0;
	int gai_error, mmdb_error;
	MMDB_lookup_result_s r = MMDB_lookup_string((MMDB_s *)&g->mmdb, buf, &gai_error, &mmdb_error);
	if (gai_error)
		return GEOIP_NOT_FOUND;          /* not an address */
	if (mmdb_error != MMDB_SUCCESS)
		return GEOIP_ERROR;
	if (!r.found_entry)
		return GEOIP_NOT_FOUND;
	static const char *const cc[] = { "country", "iso_code", NULL };
	static const char *const reg[] = { "registered_country", "iso_code", NULL };
	static const char *const cont[] = { "continent", "code", NULL };
	country[0] = continent[0] = 0;
	if (!code_at(&r.entry, cc, country))
		code_at(&r.entry, reg, country);
	code_at(&r.entry, cont, continent);
	return GEOIP_FOUND;
}
