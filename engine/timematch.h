/*
 * timematch - the day and time acls, in local time.
 *
 * day: names (monday) or three-letter abbreviations (mon), any case, in
 * comma-separated lists and ranges ("Mon-Fri,Sun"; a range may wrap:
 * "Fri-Mon"), or apolicy's letters m t w h f a s run together ("sm" is
 * Sunday and Monday). Bit n of a day mask is tm_wday n (0 = Sunday).
 *
 * time: "HH:MM-HH:MM", start inclusive, end exclusive; when end <= start the
 * range wraps past midnight ("22:00-06:00"); "00:00-00:00" is the whole day.
 */
#ifndef MXACL_TIMEMATCH_H
#define MXACL_TIMEMATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parse one day value; ORs its days into *mask. *err static on error. */
bool day_parse(const char *s, size_t len, uint8_t *mask, const char **err);

struct timerange {
	uint16_t start, end;   /* minutes since midnight, 0..1439 */
};

bool timerange_parse(const char *s, size_t len, struct timerange *out, const char **err);
/* minute: minutes since local midnight (0..1439). */
bool timerange_contains(const struct timerange *r, unsigned minute);

#endif
