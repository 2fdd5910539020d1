/*
 * timematch - day and time-of-day acl values (see timematch.h).
 */
#include "engine/timematch.h"

#include <stdio.h>
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

/* ---- month, mday, date ------------------------------------------------------ */

static const char *const month_names[12] = {
	"january", "february", "march", "april", "may", "june",
	"july", "august", "september", "october", "november", "december",
};

static const char *const month_titles[12] = {
	"January", "February", "March", "April", "May", "June",
	"July", "August", "September", "October", "November", "December",
};

/* tm_mon of a full name or three-letter abbreviation (any case), or -1. */
static int month_lookup(const char *s, size_t len)
{
	for (int m = 0; m < 12; m++) {
		size_t n = strlen(month_names[m]);
		if ((len == 3 || len == n) && ascii_nieq(s, month_names[m], len))
			return m;
	}
	return -1;
}

static bool all_digits(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/*
 * One list item of a month or mday value: "X", "X-Y" (wrapping past the
 * last), "-Y" (from the first) or "X-" (to the last). lookup gives an
 * item's number in [lo, hi] or -1 (then it wrote err).
 */
static bool range_item(const char *s, size_t len, unsigned lo, unsigned hi,
		       int (*lookup)(const char *s, size_t len, char *err, size_t errlen),
		       uint32_t *mask, const char *what, char *err, size_t errlen)
{
	if (len == 0) {
		snprintf(err, errlen, "empty %s in list", what);
		return false;
	}
	const char *dash = memchr(s, '-', len);
	if (!dash) {
		int v = lookup(s, len, err, errlen);
		if (v < 0)
			return false;
		*mask |= 1u << v;
		return true;
	}
	size_t n1 = (size_t)(dash - s), n2 = len - n1 - 1;
	if (n1 == 0 && n2 == 0) {
		snprintf(err, errlen, "a range needs at least one end");
		return false;
	}
	int from = n1 ? lookup(s, n1, err, errlen) : (int)lo;
	if (from < 0)
		return false;
	int to = n2 ? lookup(dash + 1, n2, err, errlen) : (int)hi;
	if (to < 0)
		return false;
	/* "Nov-Feb" walks Nov, Dec, Jan, Feb; "Mar-Mar" is March alone */
	for (unsigned v = (unsigned)from;; v = v == hi ? lo : v + 1) {
		*mask |= 1u << v;
		if (v == (unsigned)to)
			break;
	}
	return true;
}

static bool list_parse(const char *s, size_t len, unsigned lo, unsigned hi,
		       int (*lookup)(const char *s, size_t len, char *err, size_t errlen),
		       uint32_t *mask, const char *what, char *err, size_t errlen)
{
	uint32_t m = 0;
	const char *p = s, *end = s + len;
	for (;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *item_end = comma ? comma : end;
		if (!range_item(p, (size_t)(item_end - p), lo, hi, lookup, &m, what, err, errlen))
			return false;
		if (!comma)
			break;
		p = comma + 1;
	}
	*mask |= m;         /* only now: a bad value leaves *mask as it was */
	return true;
}

static int month_item(const char *s, size_t len, char *err, size_t errlen)
{
	int m = month_lookup(s, len);
	if (m >= 0)
		return m;
	if (all_digits(s, len))
		snprintf(err, errlen,
			 "'%.*s': write the month's name (jan..dec); numbers are ambiguous "
			 "(postfwd counts months from 0)",
			 (int)len, s);
	else
		snprintf(err, errlen, "unknown month '%.*s' (want a name like march or mar)",
			 (int)len, s);
	return -1;
}

bool month_parse(const char *s, size_t len, uint16_t *mask, char *err, size_t errlen)
{
	uint32_t m = 0;
	if (!list_parse(s, len, 0, 11, month_item, &m, "month", err, errlen))
		return false;
	*mask |= (uint16_t)m;
	return true;
}

static int mday_item(const char *s, size_t len, char *err, size_t errlen)
{
	if (!all_digits(s, len) || len > 2) {
		snprintf(err, errlen, "'%.*s' is not a day of the month (1-31)", (int)len, s);
		return -1;
	}
	int d = len == 1 ? s[0] - '0' : (s[0] - '0') * 10 + (s[1] - '0');
	if (d < 1 || d > 31) {
		snprintf(err, errlen, "day of the month %d out of range (1-31)", d);
		return -1;
	}
	return d;
}

bool mday_parse(const char *s, size_t len, uint32_t *mask, char *err, size_t errlen)
{
	return list_parse(s, len, 1, 31, mday_item, mask, "day of the month", err, errlen);
}

static bool leap_year(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days in month mon (1..12) of year y; y 0: any year (February 29). */
static int month_days(int y, int mon)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (mon == 2 && (y == 0 || leap_year(y)))
		return 29;
	return days[mon - 1];
}

/* A number of 1 to max digits at s[*i]; -1 if none. */
static long digits(const char *s, size_t len, size_t *i, size_t max)
{
	size_t start = *i;
	long v = 0;
	while (*i < len && *i - start < max && s[*i] >= '0' && s[*i] <= '9')
		v = v * 10 + (s[(*i)++] - '0');
	return *i == start ? -1 : v;
}

/*
 * One date at s[*i]: "D.M.YYYY", "D.M." (yearly) or "YYYY-M-D"; *i moves
 * past it. *value is YYYYMMDD, or MMDD with *yearly set.
 */
static bool date_one(const char *s, size_t len, size_t *i, uint32_t *value, bool *yearly,
		     char *err, size_t errlen)
{
	size_t at = *i;
	long a = digits(s, len, i, 4);
	long y = 0, m, d;
	if (a < 0)
		goto syntax;
	if (*i - at == 4) {                           /* ISO YYYY-MM-DD */
		if (*i >= len || s[*i] != '-')
			goto syntax;
		(*i)++;
		m = digits(s, len, i, 2);
		if (m < 0 || *i >= len || s[*i] != '-')
			goto syntax;
		(*i)++;
		d = digits(s, len, i, 2);
		if (d < 0)
			goto syntax;
		y = a;
	} else {                                      /* DD.MM.YYYY or DD.MM. */
		d = a;
		if (*i - at > 2 || *i >= len || s[*i] != '.')
			goto syntax;
		(*i)++;
		m = digits(s, len, i, 2);
		if (m < 0 || *i >= len || s[*i] != '.')
			goto syntax;
		(*i)++;
		size_t ys = *i;
		if (*i < len && s[*i] >= '0' && s[*i] <= '9') {
			y = digits(s, len, i, 4);
			if (*i - ys != 4)
				goto syntax;
		}
	}
	if (y && (y < 1970 || y > 9999)) {
		snprintf(err, errlen, "year %ld out of range (1970-9999)", y);
		return false;
	}
	if (m < 1 || m > 12) {
		snprintf(err, errlen, "month %ld out of range (1-12)", m);
		return false;
	}
	if (d < 1 || d > month_days((int)y, (int)m)) {
		if (y)
			snprintf(err, errlen, "no such date: %s %ld has %d days",
				 month_titles[m - 1], y, month_days((int)y, (int)m));
		else
			snprintf(err, errlen, "no such date: %s has at most %d days",
				 month_titles[m - 1], month_days(0, (int)m));
		return false;
	}
	*yearly = y == 0;
	*value = (uint32_t)(y * 10000 + m * 100 + d);
	return true;
syntax:
	snprintf(err, errlen, "expected DD.MM.YYYY, YYYY-MM-DD or DD.MM., or a range of them");
	return false;
}

bool daterange_parse(const char *s, size_t len, struct daterange *out, char *err, size_t errlen)
{
	size_t i = 0;
	uint32_t from = 0, to = 0;
	bool y1 = false, y2 = false, have_from = false, have_to = false;
	if (len == 0) {
		snprintf(err, errlen, "empty date");
		return false;
	}
	if (s[0] != '-') {
		if (!date_one(s, len, &i, &from, &y1, err, errlen))
			return false;
		have_from = true;
	}
	if (i == len) {                              /* one day */
		*out = (struct daterange){ from, from, y1 };
		return true;
	}
	if (s[i] != '-') {
		snprintf(err, errlen, "expected DD.MM.YYYY, YYYY-MM-DD or DD.MM., or a range of them");
		return false;
	}
	i++;
	if (i < len) {
		if (!date_one(s, len, &i, &to, &y2, err, errlen))
			return false;
		have_to = true;
		if (i != len) {
			snprintf(err, errlen,
				 "expected DD.MM.YYYY, YYYY-MM-DD or DD.MM., or a range of them");
			return false;
		}
	}
	if (!have_from && !have_to) {
		snprintf(err, errlen, "a range needs at least one end");
		return false;
	}
	if (have_from && have_to && y1 != y2) {
		snprintf(err, errlen, "both ends of a date range have a year, or neither");
		return false;
	}
	bool yearly = have_from ? y1 : y2;
	if (!have_from)
		from = yearly ? 101 : 0;
	if (!have_to)
		to = yearly ? 1231 : 99999999;
	if (!yearly && from > to) {
		snprintf(err, errlen, "date range ends before it starts");
		return false;
	}
	*out = (struct daterange){ from, to, yearly };
	return true;
}

bool daterange_contains(const struct daterange *r, int year, int mon, int mday)
{
	uint32_t md = (uint32_t)(mon * 100 + mday);
	if (!r->yearly) {
		uint32_t v = (uint32_t)year * 10000 + md;
		return v >= r->from && v <= r->to;
	}
	if (r->from <= r->to)
		return md >= r->from && md <= r->to;
	return md >= r->from || md <= r->to;      /* wraps past New Year */
}
