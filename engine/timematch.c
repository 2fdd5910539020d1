/*
 * timematch - day and time-of-day acl values (see timematch.h).
 */
#include "engine/timematch.h"

#include <string.h>

#include "util/util.h"

/* Indexed by tm_wday. */
static const char *const day_names[7] = {
	"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
};

/* apolicy's one-letter days, indexed by tm_wday. */
static const char day_letters[7] = { 's', 'm', 't', 'w', 'h', 'f', 'a' };

/* tm_wday of a full name or three-letter abbreviation (any case), or -1. */
static int day_lookup(const char *s, size_t len)
{
	for (int d = 0; d < 7; d++) {
		size_t n = strlen(day_names[d]);
		if ((len == 3 || len == n) && ascii_nieq(s, day_names[d], len))
			return d;
	}
	return -1;
}

/* The mask of a run of apolicy letters, or 0 when one is not a letter. */
static uint8_t day_letters_mask(const char *s, size_t len)
{
	uint8_t m = 0;

	for (size_t i = 0; i < len; i++) {
		const char *p = memchr(day_letters, ascii_lower(s[i]), sizeof day_letters);
		if (!p)
			return 0;
		m |= (uint8_t)(1u << (p - day_letters));
	}
	return m;
}

/* One list item: a day, or a range "from-to" that may wrap past Saturday. */
static bool day_item(const char *s, size_t len, uint8_t *mask, const char **err)
{
	const char *dash = memchr(s, '-', len);

	if (len == 0) {
		*err = "empty day in list";
		return false;
	}
	if (!dash) {
		int d = day_lookup(s, len);
		if (d < 0) {
			*err = "unknown day (want a name like monday or mon, or letters mtwhfas)";
			return false;
		}
		*mask |= (uint8_t)(1u << d);
		return true;
	}
	size_t n1 = (size_t)(dash - s);
	int from = day_lookup(s, n1);
	int to = day_lookup(dash + 1, len - n1 - 1);
	if (from < 0 || to < 0) {
		*err = "bad day range (want e.g. mon-fri)";
		return false;
	}
	/* "fri-mon" walks fri, sat, sun, mon; "mon-mon" is just monday */
	for (int d = from;; d = (d + 1) % 7) {
		*mask |= (uint8_t)(1u << d);
		if (d == to)
			break;
	}
	return true;
}

bool day_parse(const char *s, size_t len, uint8_t *mask, const char **err)
{
	uint8_t m = 0;

	if (len == 0) {
		*err = "empty day value";
		return false;
	}
	/*
	 * Letters only as the whole value, and only when it is not a name:
	 * "sat" is Saturday, not Sunday + Saturday + Tuesday.
	 */
	if (!memchr(s, ',', len) && !memchr(s, '-', len) && day_lookup(s, len) < 0) {
		m = day_letters_mask(s, len);
		if (m) {
			*mask |= m;
			return true;
		}
	}
	const char *p = s, *end = s + len;
	for (;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *item_end = comma ? comma : end;
		if (!day_item(p, (size_t)(item_end - p), &m, err))
			return false;
		if (!comma)
			break;
		p = comma + 1;
	}
	/* only now, so a bad value leaves *mask as it was */
	*mask |= m;
	return true;
}

/* "H:MM" or "HH:MM" into minutes; 24:00 only when allow_24 (as the end). */
static bool time_hhmm(const char *s, size_t len, bool allow_24, unsigned *out, const char **err)
{
	const char *colon = memchr(s, ':', len);
	size_t hlen = colon ? (size_t)(colon - s) : 0;

	if (!colon || hlen < 1 || hlen > 2 || len - hlen - 1 != 2) {
		*err = "expected HH:MM-HH:MM";
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		if (i != hlen && (s[i] < '0' || s[i] > '9')) {
			*err = "expected HH:MM-HH:MM";
			return false;
		}
	}
	unsigned h = (unsigned)(s[0] - '0');
	if (hlen == 2)
		h = h * 10 + (unsigned)(s[1] - '0');
	unsigned m = (unsigned)(colon[1] - '0') * 10 + (unsigned)(colon[2] - '0');
	if (m > 59) {
		*err = "minute out of range (00-59)";
		return false;
	}
	if (h == 24 && m == 0 && allow_24) {
		*out = 0;   /* the midnight that ends the day */
		return true;
	}
	if (h > 23) {
		*err = allow_24 ? "hour out of range (00-23, or 24:00 as an end)"
				: "hour out of range (00-23)";
		return false;
	}
	*out = h * 60 + m;
	return true;
}

bool timerange_parse(const char *s, size_t len, struct timerange *out, const char **err)
{
	const char *dash = memchr(s, '-', len);
	unsigned start, end;

	if (!dash) {
		*err = "expected HH:MM-HH:MM";
		return false;
	}
	size_t n1 = (size_t)(dash - s);
	if (!time_hhmm(s, n1, false, &start, err) ||
	    !time_hhmm(dash + 1, len - n1 - 1, true, &end, err))
		return false;
	out->start = (uint16_t)start;
	out->end = (uint16_t)end;
	return true;
}

bool timerange_contains(const struct timerange *r, unsigned minute)
{
	if (r->start < r->end)
		return minute >= r->start && minute < r->end;
	/* wraps past midnight; start == end covers the whole day */
	return minute >= r->start || minute < r->end;
}
