/*
 * Greylist key normalisation and durations (acl/greylist.c).
 */
#include <string.h>

#include "acl/greylist.h"
#include "util/util.h"
#include "tests/unit/unit.h"

START_TEST(test_normalize_sender)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "", "<>" },
		{ "Alice@Example.ORG", "alice@example.org" },
		{ "alice+news@example.org", "alice@example.org" },
		{ "+x@example.org", "+x@example.org" },
		{ "prvs=1234abcdef=carol@example.com", "carol@example.com" },
		{ "PRVS=0123ABCDEF=Carol@example.com", "carol@example.com" },
		{ "SRS0=abcd=T1=example.com=frank@forwarder.example", "frank@example.com" },
		{ "SRS1=x=fwd.example==abcd=T1=example.com=frank@other.example", "frank@example.com" },
		{ "bounce-12345@lists.example", "bounce-#@lists.example" },
		{ "12345@lists.example", "#@lists.example" },
		{ "user42@example.com", "user42@example.com" },
		{ "a.1.b.22@example.com", "a.#.b.#@example.com" },
		{ "no-at-sign", "no-at-sign" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[256];
		grey_normalize_sender(cases[i].in, strlen(cases[i].in), out, sizeof out);
		ck_assert_msg(!strcmp(out, cases[i].want), "'%s': got '%s', want '%s'", cases[i].in,
			      out, cases[i].want);
	}
}
END_TEST

START_TEST(test_duration)
{
	static const struct {
		const char *in;
		bool ok;
		uint32_t want;
	} cases[] = {
		{ "300", true, 300 }, { "5m", true, 300 },     { "2h", true, 7200 },
		{ "35d", true, 3024000 }, { "10s", true, 10 }, { "1D", true, 86400 },
		{ "", false, 0 },     { "m", false, 0 },       { "5x", false, 0 },
		{ "5mm", false, 0 },  { "-1", false, 0 },      { "99999999999", false, 0 },
		{ "50000d", false, 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint32_t got = 0;
		bool ok = duration_parse(cases[i].in, strlen(cases[i].in), &got);
		ck_assert_msg(ok == cases[i].ok, "'%s': got ok=%d, want %d", cases[i].in, ok,
			      cases[i].ok);
		if (ok)
			ck_assert_msg(got == cases[i].want, "'%s': got %u, want %u", cases[i].in, got,
				      cases[i].want);
	}
}
END_TEST

Suite *greylist_suite(void)
{
	Suite *s = suite_create("greylist");
	TCase *tc = tcase_create("greylist");
	tcase_add_test(tc, test_normalize_sender);
	tcase_add_test(tc, test_duration);
	suite_add_tcase(s, tc);
	return s;
}
