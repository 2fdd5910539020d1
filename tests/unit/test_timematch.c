/*
 * Unit tests for engine/timematch: every way to write days, time ranges
 * with and without wrap, months, days of the month and dates (open,
 * yearly, wrapping), and the inputs that must be rejected.
 */
#include <string.h>

#include "engine/timematch.h"
#include "tests/unit/unit.h"
#include "util/util.h"

/* Day mask bits, by tm_wday. */
#define SUN 0x01
#define MON 0x02
#define TUE 0x04
#define WED 0x08
#define THU 0x10
#define FRI 0x20
#define SAT 0x40
#define ALL 0x7f

static const struct {
	const char *in;
	uint8_t want;
} day_cases[] = {
	{ "sunday", SUN }, { "monday", MON }, { "tuesday", TUE }, { "wednesday", WED },
	{ "thursday", THU }, { "friday", FRI }, { "saturday", SAT },
	{ "Sun", SUN }, { "MON", MON }, { "tue", TUE }, { "wEd", WED },
	{ "Thu", THU }, { "FRI", FRI }, { "sat", SAT },   /* "sat" is Saturday, not s+a+t */
	{ "MONDAY", MON }, { "Wednesday", WED },
	{ "Mon-Fri", MON | TUE | WED | THU | FRI },
	{ "Fri-Mon", FRI | SAT | SUN | MON },             /* wraps past Saturday */
	{ "Sat-Sun", SAT | SUN },
	{ "Sun-Sat", ALL },
	{ "Tue-Mon", ALL },
	{ "mon-mon", MON },
	{ "saturday-monday", SAT | SUN | MON },
	{ "wednesday-Fri", WED | THU | FRI },
	{ "Mon-Fri,Sun", MON | TUE | WED | THU | FRI | SUN },
	{ "mon,wed,fri", MON | WED | FRI },
	{ "sun,sun", SUN },
	{ "Fri-Sun,Tue-Wed", FRI | SAT | SUN | TUE | WED },
	{ "m", MON }, { "t", TUE }, { "w", WED }, { "h", THU },
	{ "f", FRI }, { "a", SAT }, { "s", SUN },
	{ "sm", SUN | MON },
	{ "mtwhf", MON | TUE | WED | THU | FRI },
	{ "as", SAT | SUN },
	{ "MTWHFAS", ALL },
	{ "tas", TUE | SAT | SUN },                       /* letters, not a name */
};

START_TEST(test_day_parse)
{
	const char *in = day_cases[_i].in;
	uint8_t mask = 0;
	const char *err = NULL;
	bool ok = day_parse(in, strlen(in), &mask, &err);

	ck_assert_msg(ok, "day_parse(\"%s\"): got error \"%s\", want 0x%02x", in, err,
		      day_cases[_i].want);
	ck_assert_msg(mask == day_cases[_i].want, "day_parse(\"%s\"): got 0x%02x, want 0x%02x", in,
		      mask, day_cases[_i].want);
}
END_TEST

static const struct {
	const char *in;
	size_t len;   /* 0: strlen(in) */
} day_bad[] = {
	{ "", 0 }, { "funday", 0 }, { "mo", 0 }, { "mond", 0 }, { "tues", 0 }, { "thurs", 0 },
	{ "sundays", 0 }, { "mon,", 0 }, { ",mon", 0 }, { "mon,,tue", 0 }, { "mon-", 0 },
	{ "-fri", 0 }, { "mon-fri-sat", 0 }, { "mon--fri", 0 }, { "x", 0 }, { "smx", 0 },
	{ "sm,mon", 0 }, { "mtw-f", 0 }, { "mon fri", 0 }, { " mon", 0 }, { "mon ", 0 },
	{ "mon;tue", 0 }, { "s-m", 0 }, { "1", 0 }, { "mon-funday", 0 },
	{ "m\0n", 3 }, { "mon\0", 4 },
};

START_TEST(test_day_parse_bad)
{
	const char *in = day_bad[_i].in;
	size_t len = day_bad[_i].len ? day_bad[_i].len : strlen(in);
	uint8_t mask = SUN;
	const char *err = NULL;
	bool ok = day_parse(in, len, &mask, &err);

	ck_assert_msg(!ok, "day_parse(\"%s\"): got success 0x%02x, want an error", in, mask);
	ck_assert_msg(err != NULL, "day_parse(\"%s\"): got no error message", in);
	ck_assert_msg(mask == SUN, "day_parse(\"%s\") failed but changed the mask: got 0x%02x, want 0x%02x",
		      in, mask, SUN);
}
END_TEST

/* day_parse ORs into the mask, so several day values add up. */
START_TEST(test_day_parse_accumulates)
{
	uint8_t mask = 0;
	const char *err;

	ck_assert(day_parse("sat", 3, &mask, &err));
	ck_assert(day_parse("mon-tue", 7, &mask, &err));
	ck_assert(day_parse("f", 1, &mask, &err));
	ck_assert_msg(mask == (SAT | MON | TUE | FRI), "got 0x%02x, want 0x%02x", mask,
		      SAT | MON | TUE | FRI);
	/* len bounds the value: "mon" of "monXYZ" */
	mask = 0;
	ck_assert_msg(day_parse("monXYZ", 3, &mask, &err) && mask == MON,
		      "day_parse(\"mon\"XYZ): got 0x%02x, want 0x%02x", mask, MON);
}
END_TEST

static const struct {
	const char *in;
	bool ok;
	unsigned start, end;
} range_cases[] = {
	{ "09:00-17:00", true, 540, 1020 },
	{ "9:00-17:00", true, 540, 1020 },
	{ "08:30-8:45", true, 510, 525 },
	{ "22:00-06:00", true, 1320, 360 },
	{ "00:00-00:00", true, 0, 0 },
	{ "00:00-24:00", true, 0, 0 },
	{ "22:00-24:00", true, 1320, 0 },
	{ "23:59-00:00", true, 1439, 0 },
	{ "00:00-23:59", true, 0, 1439 },
	{ "12:34-12:34", true, 754, 754 },
	{ "", false, 0, 0 },
	{ "09:00", false, 0, 0 },
	{ "09:00-", false, 0, 0 },
	{ "-10:00", false, 0, 0 },
	{ "24:00-01:00", false, 0, 0 },      /* 24:00 only as an end */
	{ "25:00-01:00", false, 0, 0 },
	{ "10:00-25:00", false, 0, 0 },
	{ "10:00-24:01", false, 0, 0 },
	{ "09:60-10:00", false, 0, 0 },
	{ "09:00-10:60", false, 0, 0 },
	{ "9-17", false, 0, 0 },
	{ "09:0-10:00", false, 0, 0 },
	{ "09:000-10:00", false, 0, 0 },
	{ "009:00-10:00", false, 0, 0 },
	{ "09:00-10:00-11:00", false, 0, 0 },
	{ "09:00 - 10:00", false, 0, 0 },
	{ " 09:00-10:00", false, 0, 0 },
	{ "09:00-10:00 ", false, 0, 0 },
	{ "aa:bb-cc:dd", false, 0, 0 },
	{ "09.00-10.00", false, 0, 0 },
	{ "0900-1000", false, 0, 0 },
	{ "+9:00-10:00", false, 0, 0 },
	{ ":00-10:00", false, 0, 0 },
	{ "09::00-10:00", false, 0, 0 },
};

START_TEST(test_timerange_parse)
{
	const char *in = range_cases[_i].in;
	struct timerange r = { 9999, 9999 };
	const char *err = NULL;
	bool ok = timerange_parse(in, strlen(in), &r, &err);

	ck_assert_msg(ok == range_cases[_i].ok, "timerange_parse(\"%s\"): got %s, want %s", in,
		      ok ? "success" : err, range_cases[_i].ok ? "success" : "an error");
	if (!ok) {
		ck_assert_msg(err != NULL, "timerange_parse(\"%s\"): got no error message", in);
		return;
	}
	ck_assert_msg(r.start == range_cases[_i].start && r.end == range_cases[_i].end,
		      "timerange_parse(\"%s\"): got %u-%u, want %u-%u", in, r.start, r.end,
		      range_cases[_i].start, range_cases[_i].end);
}
END_TEST

static const struct {
	const char *range;
	unsigned minute;
	bool want;
} contains_cases[] = {
	{ "09:00-17:00", 0, false },
	{ "09:00-17:00", 539, false },
	{ "09:00-17:00", 540, true },      /* start inclusive */
	{ "09:00-17:00", 1019, true },
	{ "09:00-17:00", 1020, false },    /* end exclusive */
	{ "09:00-17:00", 1439, false },
	{ "22:00-06:00", 1319, false },
	{ "22:00-06:00", 1320, true },
	{ "22:00-06:00", 1439, true },
	{ "22:00-06:00", 0, true },
	{ "22:00-06:00", 359, true },
	{ "22:00-06:00", 360, false },
	{ "22:00-06:00", 720, false },
	{ "00:00-00:00", 0, true },        /* the whole day */
	{ "00:00-00:00", 720, true },
	{ "00:00-00:00", 1439, true },
	{ "00:00-24:00", 0, true },
	{ "00:00-24:00", 1439, true },
	{ "12:34-12:34", 0, true },        /* start == end wraps all the way round */
	{ "12:34-12:34", 754, true },
	{ "22:00-24:00", 1319, false },
	{ "22:00-24:00", 1320, true },
	{ "22:00-24:00", 1439, true },
	{ "22:00-24:00", 0, false },
	{ "23:59-00:00", 1438, false },
	{ "23:59-00:00", 1439, true },
	{ "23:59-00:00", 0, false },
	{ "00:00-00:01", 0, true },
	{ "00:00-00:01", 1, false },
	{ "00:00-00:01", 1439, false },
};

START_TEST(test_timerange_contains)
{
	const char *in = contains_cases[_i].range;
	struct timerange r;
	const char *err = NULL;

	ck_assert_msg(timerange_parse(in, strlen(in), &r, &err),
		      "timerange_parse(\"%s\"): got error \"%s\", want success", in, err);
	bool got = timerange_contains(&r, contains_cases[_i].minute);
	ck_assert_msg(got == contains_cases[_i].want, "\"%s\" contains %02u:%02u: got %d, want %d", in,
		      contains_cases[_i].minute / 60, contains_cases[_i].minute % 60, got,
		      contains_cases[_i].want);
}
END_TEST

/* ---- month, mday, date ---------------------------------------------------- */

#define M(n) (1u << ((n) - 1))   /* month n (1 = January) in a month mask */

static const struct {
	const char *in;
	uint16_t want;   /* 0: an error */
} month_cases[] = {
	{ "jan", M(1) }, { "January", M(1) }, { "DEC", M(12) }, { "september", M(9) },
	{ "Mar-May", M(3) | M(4) | M(5) },
	{ "-Apr", M(1) | M(2) | M(3) | M(4) },                 /* postfwd's open start */
	{ "Oct-", M(10) | M(11) | M(12) },
	{ "Nov-Feb", M(11) | M(12) | M(1) | M(2) },           /* wraps past December */
	{ "mar-mar", M(3) },
	{ "jan,jul-aug", M(1) | M(7) | M(8) },
	{ "1-3", 0 }, { "4", 0 }, { "Mai", 0 }, { "", 0 }, { "-", 0 }, { "jan,,feb", 0 },
	{ "ja", 0 }, { "januaryx", 0 },
};

START_TEST(test_month_parse)
{
	const char *in = month_cases[_i].in;
	uint16_t mask = 0;
	char err[160] = "";
	bool ok = month_parse(in, strlen(in), &mask, err, sizeof err);
	if (!month_cases[_i].want) {
		ck_assert_msg(!ok && mask == 0 && err[0],
			      "month_parse(\"%s\"): got success 0x%03x, want an error", in, mask);
		return;
	}
	ck_assert_msg(ok, "month_parse(\"%s\"): got error \"%s\"", in, err);
	ck_assert_msg(mask == month_cases[_i].want, "month_parse(\"%s\"): got 0x%03x, want 0x%03x",
		      in, mask, month_cases[_i].want);
}
END_TEST

#define D(n) (1u << (n))

static const struct {
	const char *in;
	uint32_t want;   /* 0: an error */
} mday_cases[] = {
	{ "1", D(1) }, { "31", D(31) }, { "01", D(1) },
	{ "1-3", D(1) | D(2) | D(3) },
	{ "-2", D(1) | D(2) }, { "30-", D(30) | D(31) },
	{ "30-2", D(30) | D(31) | D(1) | D(2) },             /* wraps into the next month */
	{ "1,15", D(1) | D(15) },
	{ "0", 0 }, { "32", 0 }, { "1-32", 0 }, { "x", 0 }, { "100", 0 }, { "", 0 },
};

START_TEST(test_mday_parse)
{
	const char *in = mday_cases[_i].in;
	uint32_t mask = 0;
	char err[160] = "";
	bool ok = mday_parse(in, strlen(in), &mask, err, sizeof err);
	if (!mday_cases[_i].want) {
		ck_assert_msg(!ok && mask == 0, "mday_parse(\"%s\"): got success 0x%08x", in, mask);
		return;
	}
	ck_assert_msg(ok, "mday_parse(\"%s\"): got error \"%s\"", in, err);
	ck_assert_msg(mask == mday_cases[_i].want, "mday_parse(\"%s\"): got 0x%08x, want 0x%08x",
		      in, mask, mday_cases[_i].want);
}
END_TEST

/* A date value and days it must and must not match (YYYYMMDD). */
static const struct {
	const char *in;
	uint32_t yes[3], no[3];
	const char *err;  /* non-NULL: the value is an error with this message */
} date_cases[] = {
	{ "24.12.2026-26.12.2026", { 20261224, 20261225, 20261226 }, { 20261223, 20261227, 20251225 }, NULL },
	{ "2026-12-24-2026-12-26", { 20261224, 20261225, 20261226 }, { 20261223, 20261227, 20271224 }, NULL },
	{ "2026-12-31", { 20261231 }, { 20261230, 20271231, 20270101 }, NULL },
	{ "1.2.2026", { 20260201 }, { 20260102, 20260202 }, NULL },
	{ "-15.01.2027", { 19700101, 20270115, 20260601 }, { 20270116, 20300101 }, NULL },
	{ "2027-06-01-", { 20270601, 20991231 }, { 20270531 }, NULL },
	{ "29.02.2028", { 20280229 }, { 20280301 }, NULL },
	{ "24.12.", { 20261224, 20301224 }, { 20261225 }, NULL },
	{ "20.12.-06.01.", { 20261220, 20270101, 20270106 }, { 20270107, 20261219, 20260601 }, NULL },
	{ "-31.03.", { 20260101, 20260331 }, { 20260401 }, NULL },
	{ "01.10.-", { 20261001, 20261231 }, { 20260930 }, NULL },
	{ "29.02.", { 20280229 }, { 20280228 }, NULL },
	{ "31.02.2026", { 0 }, { 0 }, "no such date: February 2026 has 28 days" },
	{ "29.02.2027", { 0 }, { 0 }, "no such date: February 2027 has 28 days" },
	{ "29.02.2000", { 20000229 }, { 0 }, NULL },                    /* 2000 is a leap year */
	{ "29.02.2100", { 0 }, { 0 }, "no such date: February 2100 has 28 days" },
	{ "31.04.", { 0 }, { 0 }, "no such date: April has at most 30 days" },
	{ "26.12.2026-24.12.2026", { 0 }, { 0 }, "date range ends before it starts" },
	{ "24.12.-2026-12-26", { 0 }, { 0 }, "both ends of a date range have a year, or neither" },
	{ "2026-13-01", { 0 }, { 0 }, "month 13 out of range (1-12)" },
	{ "01.01.1969", { 0 }, { 0 }, "year 1969 out of range (1970-9999)" },
	{ "-", { 0 }, { 0 }, "a range needs at least one end" },
	{ "24/12/2026", { 0 }, { 0 }, "expected DD.MM.YYYY, YYYY-MM-DD or DD.MM., or a range of them" },
	{ "24.12.26", { 0 }, { 0 }, "expected DD.MM.YYYY, YYYY-MM-DD or DD.MM., or a range of them" },
	{ "24.12", { 0 }, { 0 }, "expected DD.MM.YYYY, YYYY-MM-DD or DD.MM., or a range of them" },
	{ "", { 0 }, { 0 }, "empty date" },
};

START_TEST(test_date_parse)
{
	const char *in = date_cases[_i].in;
	struct daterange r;
	char err[160] = "";
	bool ok = daterange_parse(in, strlen(in), &r, err, sizeof err);
	if (date_cases[_i].err) {
		ck_assert_msg(!ok, "daterange_parse(\"%s\"): got success, want \"%s\"", in,
			      date_cases[_i].err);
		ck_assert_msg(strcmp(err, date_cases[_i].err) == 0,
			      "daterange_parse(\"%s\"): got \"%s\", want \"%s\"", in, err,
			      date_cases[_i].err);
		return;
	}
	ck_assert_msg(ok, "daterange_parse(\"%s\"): got error \"%s\"", in, err);
	for (int k = 0; k < 3; k++) {
		uint32_t y = date_cases[_i].yes[k], n = date_cases[_i].no[k];
		if (y)
			ck_assert_msg(daterange_contains(&r, (int)(y / 10000), (int)(y / 100 % 100),
							 (int)(y % 100)),
				      "\"%s\" contains %u: got no, want yes", in, y);
		if (n)
			ck_assert_msg(!daterange_contains(&r, (int)(n / 10000), (int)(n / 100 % 100),
							  (int)(n % 100)),
				      "\"%s\" contains %u: got yes, want no", in, n);
	}
}
END_TEST

Suite *timematch_suite(void)
{
	Suite *s = suite_create("timematch");
	TCase *tc = tcase_create("day");
	tcase_add_loop_test(tc, test_day_parse, 0, ARRAY_LEN(day_cases));
	tcase_add_loop_test(tc, test_day_parse_bad, 0, ARRAY_LEN(day_bad));
	tcase_add_test(tc, test_day_parse_accumulates);
	suite_add_tcase(s, tc);

	tc = tcase_create("time");
	tcase_add_loop_test(tc, test_timerange_parse, 0, ARRAY_LEN(range_cases));
	tcase_add_loop_test(tc, test_timerange_contains, 0, ARRAY_LEN(contains_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("calendar");
	tcase_add_loop_test(tc, test_month_parse, 0, ARRAY_LEN(month_cases));
	tcase_add_loop_test(tc, test_mday_parse, 0, ARRAY_LEN(mday_cases));
	tcase_add_loop_test(tc, test_date_parse, 0, ARRAY_LEN(date_cases));
	suite_add_tcase(s, tc);
	return s;
}
