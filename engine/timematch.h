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
 *
 * month: names (march) or three-letter abbreviations (mar), any case, in
 * comma-separated lists and ranges, both ends included; a range may wrap
 * past December ("Nov-Feb") and either end may be left open as in postfwd
 * ("-Apr" is January to April, "Oct-" October to December). Numbers are
 * refused: postfwd counts months from 0, so "1" would mean two things.
 * Bit n of a month mask is tm_mon n (0 = January).
 *
 * mday: days of the month 1..31 in the same lists and ranges ("1-7",
 * "-7", "25-", "25-5" wraps to the next month). Bit n is tm_mday n.
 *
 * date: a day "DD.MM.YYYY" (postfwd), "YYYY-MM-DD" (ISO 8601) or
 * "DD.MM." (every year), or a range of them "A-B", both ends included,
 * either end open ("-26.12.2026", "24.12.2026-"). A range of dated days
 * must not end before it starts; a range of yearly days may wrap past
 * New Year ("20.12.-06.01."). Both ends of a range have a year or neither.
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

/* Parse one month value; ORs its months into *mask. err gets the reason. */
bool month_parse(const char *s, size_t len, uint16_t *mask, char *err, size_t errlen);
/* Parse one day-of-month value; ORs its days into *mask (bits 1..31). */
bool mday_parse(const char *s, size_t len, uint32_t *mask, char *err, size_t errlen);

/*
 * A date range. Dated ends are YYYYMMDD numbers, yearly ones MMDD
 * numbers; an open end is 0 (from) or 99999999 (to).
 */
struct daterange {
	uint32_t from, to;
	bool yearly;            /* MMDD ends; from > to wraps past New Year */
};

bool daterange_parse(const char *s, size_t len, struct daterange *out, char *err, size_t errlen);
/* year: e.g. 2026; mon: 1..12; mday: 1..31 (local time). */
bool daterange_contains(const struct daterange *r, int year, int mon, int mday);

#endif
