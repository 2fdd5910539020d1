/*
 * Request tests: framing (req_scan), parsing, limits, clock.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/request.h"
#include "tests/unit/unit.h"

START_TEST(test_scan)
{
	static const struct {
		const char *in;
		enum req_scan want;
		size_t len;
		const char *err;
	} cases[] = {
		{ "", REQ_SCAN_MORE, 0, NULL },
		{ "sender=a", REQ_SCAN_MORE, 0, NULL },
		{ "sender=a\n", REQ_SCAN_MORE, 0, NULL },
		{ "sender=a\n\n", REQ_SCAN_COMPLETE, 10, NULL },
		{ "sender=a\n\nsender=b\n\n", REQ_SCAN_COMPLETE, 10, NULL },
		{ "sender=a\r\n\r\n", REQ_SCAN_COMPLETE, 12, NULL },
		{ "\n", REQ_SCAN_ERROR, 0, "empty request" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t len = 0;
		const char *err = NULL;
		enum req_scan got = req_scan(cases[i].in, strlen(cases[i].in), &len, &err);
		ck_assert_msg(got == cases[i].want, "case %zu: got %d want %d", i, got, cases[i].want);
		if (got == REQ_SCAN_COMPLETE)
			ck_assert_msg(len == cases[i].len, "case %zu: got len %zu want %zu", i, len,
				      cases[i].len);
		if (cases[i].err)
			ck_assert_msg(err && !strcmp(err, cases[i].err), "case %zu: got err %s want %s", i,
				      err ? err : "(none)", cases[i].err);
	}
}
END_TEST

START_TEST(test_scan_limits)
{
	size_t n = REQ_MAX_LINE + 10, len;
	const char *err = NULL;
	char *line = malloc(n);
	memset(line, 'x', n);
	/* an overlong line is caught before its newline arrives */
	ck_assert_int_eq(req_scan(line, n, &len, &err), REQ_SCAN_ERROR);
	ck_assert_str_eq(err, "line too long");
	free(line);

	struct strbuf b;
	sb_init(&b);
	for (int i = 0; i <= REQ_MAX_ATTRS; i++)
		sb_adds(&b, "x=y\n");
	ck_assert_int_eq(req_scan(b.s, b.len, &len, &err), REQ_SCAN_ERROR);
	ck_assert_str_eq(err, "too many attributes");
	sb_reset(&b);
	while (b.len <= REQ_MAX_SIZE)
		sb_adds(&b, "ccert_subject=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n");
	ck_assert_int_eq(req_scan(b.s, b.len, &len, &err), REQ_SCAN_ERROR);
	sb_free(&b);
}
END_TEST

/* A request of exactly total bytes, the empty line included, with eol
 * ("\n" or "\r\n") ending every line; lines within REQ_MAX_LINE. */
static void make_sized_request(struct strbuf *b, size_t total, const char *eol)
{
	size_t el = strlen(eol), body = total - el;
	sb_reset(b);
	while (b->len < body) {
		size_t left = body - b->len;
		/* a full line, unless the rest is too short to leave a line */
		size_t line = left >= 4000 + 100 ? 4000 : left;
		sb_adds(b, "ccert_subject=");
		for (size_t i = strlen("ccert_subject=") + el; i < line; i++)
			sb_adds(b, "a");
		sb_adds(b, eol);
	}
	sb_adds(b, eol);
	ck_assert_uint_eq(b->len, total);
}

/* The limit is on the whole request, the empty line included: 65,536
 * bytes are accepted, 65,537 refused, with either line ending. */
START_TEST(test_scan_size_boundary)
{
	static const char *const eols[] = { "\n", "\r\n" };
	struct strbuf b;
	sb_init(&b);
	for (size_t e = 0; e < 2; e++) {
		const char *err = NULL;
		size_t len = 0;
		make_sized_request(&b, REQ_MAX_SIZE, eols[e]);
		ck_assert_msg(req_scan(b.s, b.len, &len, &err) == REQ_SCAN_COMPLETE,
			      "eol %zu: %d bytes refused (%s)", e, REQ_MAX_SIZE, err ? err : "");
		ck_assert_uint_eq(len, REQ_MAX_SIZE);
		struct request *r = req_new();
		ck_assert(req_parse(r, b.s, b.len, &err));
		ck_assert(r->v[ATTR_ccert_subject].present);
		req_free(r);
		/* with the next request behind it */
		sb_adds(&b, "sender=a\n\n");
		ck_assert_int_eq(req_scan(b.s, b.len, &len, &err), REQ_SCAN_COMPLETE);
		ck_assert_uint_eq(len, REQ_MAX_SIZE);

		err = NULL;
		make_sized_request(&b, REQ_MAX_SIZE + 1, eols[e]);
		enum req_scan got = req_scan(b.s, b.len, &len, &err);
		ck_assert_msg(got == REQ_SCAN_ERROR, "eol %zu: %d bytes: got %d (len %zu), want "
			      "an error", e, REQ_MAX_SIZE + 1, got, len);
		ck_assert_str_eq(err, "request too large");
		/* its first REQ_MAX_SIZE bytes wait for more */
		err = NULL;
		ck_assert_int_eq(req_scan(b.s, REQ_MAX_SIZE, &len, &err), REQ_SCAN_MORE);
	}
	sb_free(&b);
}
END_TEST

START_TEST(test_parse)
{
	const char *in = "request=smtpd_access_policy\nsender=Joe@X.example\nunknown_attr=1\n"
			 "recipient=\nsize=123\nsender=last@wins\nqueue_id=a=b\n\n";
	struct request *r = req_new();
	const char *err;
	ck_assert(req_parse(r, in, strlen(in), &err));
	ck_assert_str_eq(r->v[ATTR_sender].s, "last@wins");
	ck_assert(r->v[ATTR_recipient].present);
	ck_assert_int_eq(r->v[ATTR_recipient].len, 0);
	ck_assert(!r->v[ATTR_helo_name].present);
	ck_assert_str_eq(r->v[ATTR_helo_name].s, "");
	ck_assert_str_eq(r->v[ATTR_queue_id].s, "a=b");
	ck_assert_str_eq(req_lower(r, ATTR_sender), "last@wins");
	req_reset(r);
	ck_assert(!r->v[ATTR_sender].present);

	static const struct {
		const char *in, *err;
	} bad[] = {
		{ "sender=a\nnoequals\n\n", "line without '='" },
		{ "=value\n\n", "attribute with an empty name" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		req_reset(r);
		err = NULL;
		ck_assert_msg(!req_parse(r, bad[i].in, strlen(bad[i].in), &err), "case %zu accepted", i);
		ck_assert_msg(!strcmp(err, bad[i].err), "case %zu: got %s want %s", i, err, bad[i].err);
	}
	req_free(r);
}
END_TEST

START_TEST(test_clock)
{
	struct request *r = req_new();
	const char *err;
	const char *in = "policy_test_time=1700000000\n\n";
	ck_assert(req_parse(r, in, strlen(in), &err));
	req_set_clock(r, true, 5);
	ck_assert_int_eq((long)r->now, 1700000000L);
	req_set_clock(r, false, 5);     /* mxacld ignores it */
	ck_assert_int_eq((long)r->now, 5L);
	req_reset(r);
	in = "policy_test_time=12abc\n\n";
	ck_assert(req_parse(r, in, strlen(in), &err));
	req_set_clock(r, true, 7);
	ck_assert_int_eq((long)r->now, 7L);
	req_free(r);
}
END_TEST

Suite *request_suite(void)
{
	Suite *s = suite_create("request");
	TCase *tc = tcase_create("request");
	tcase_add_test(tc, test_scan);
	tcase_add_test(tc, test_scan_limits);
	tcase_add_test(tc, test_scan_size_boundary);
	tcase_add_test(tc, test_parse);
	tcase_add_test(tc, test_clock);
	suite_add_tcase(s, tc);
	return s;
}
