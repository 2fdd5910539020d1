/*
 * Unit tests for acl/spf_record: RFC 7208's record syntax (the suite's
 * malformed records and more), and the rewrite libspf2 is given: /0
 * prefixes, modifiers moved behind the mechanisms, probes before each
 * term that looks up DNS.
 */
#include <stdlib.h>
#include <string.h>

#include "acl/spf_record.h"
#include "tests/unit/unit.h"
#include "util/util.h"

#define P(k) " exists:" k SPF_RECORD_PROBE
#define ANY SPF_RECORD_ANY

/* Records that break the grammar: permerror, whatever the client. */
static const char *const bad[] = {
	"v=spf1 a:foo-bar -all",                 /* no "." toplabel */
	"v=spf1 a:1.2.3.4 -all",                 /* numeric toplabel */
	"v=spf1 a: -all",                        /* empty domain-spec */
	"v=spf1 ptr: -all",
	"v=spf1 exists:",
	"v=spf1 exists:foo.example.com/24",      /* exists takes no cidr */
	"v=spf1 mx:example.com. -all extra:x",   /* unknown mechanism */
	"v=spf1 -all exp=a.example.com exp=b.example.com",
	"v=spf1 redirect=a.example.com redirect=b.example.com",
	"v=spf1 redirect:a.example.com",         /* a modifier written as mechanism */
	"v=spf1 ip4:1.2.3.4/032",                /* leading zero */
	"v=spf1 ip4:1.2.3.4/33",
	"v=spf1 ip4:01.2.3.4",
	"v=spf1 ip6:::1/129",
	"v=spf1 ip6:1.2.3.4",
	"v=spf1 a:example.com/33",
	"v=spf1 a//129",
	"v=spf1 a:%{x}.example.com",             /* unknown macro letter */
	"v=spf1 a:%{c}.example.com",             /* c is for exp text only */
	"v=spf1 a:%{d0}.example.com",
	"v=spf1 a:foo%.example.com",             /* lone % */
	"v=spf1 a:ctrl.example.com\rptr -all",   /* control byte */
	"v=spf1 \x80" "a:example.net -all",      /* 8-bit byte */
	"v=spf1 all:foo",
	"v=spf1 -all\tptr",                      /* only spaces separate terms */
	"v=spf1 foo=%",                          /* bad unknown-modifier value */
	"v=spf1 exp=",
};

START_TEST(test_syntax_errors)
{
	size_t nmech = 9, nmod = 9;
	const char *why = NULL;
	for (int six = 0; six < 2; six++) {
		char *r = spf_record_rewrite(bad[_i], six, &nmech, &nmod, &why);
		ck_assert_msg(r == NULL, "accepted: %s -> %s", bad[_i], r ? r : "");
		ck_assert_ptr_nonnull(why);
	}
}
END_TEST

/* Valid records and what libspf2 gets for an IPv4 (then IPv6) client. */
static const struct {
	const char *in, *want4, *want6;
	size_t nmech4, nmod;
} good[] = {
	{ "v=spf1", "v=spf1", "v=spf1", 0, 0 },
	{ "V=SPF1  -ALL ", "v=spf1 -ALL", "v=spf1 -ALL", 1, 0 },
	{ "v=spf1 ip4:192.0.2.0/24 ?all", "v=spf1 ip4:192.0.2.0/24 ?all",
	  "v=spf1 ip4:192.0.2.0/24 ?all", 2, 0 },
	/* /0 of the client's family: all; of the other: gone */
	{ "v=spf1 -ip4:1.1.1.1/0 +all", "v=spf1 -all +all", "v=spf1 +all", 2, 0 },
	{ "v=spf1 ip6:::1.1.1.1/0 -all", "v=spf1 -all", "v=spf1 all -all", 1, 0 },
	/* a/0, mx//0: the "any" name, full prefix for the client's family */
	{ "v=spf1 a/0 -all", "v=spf1" P("a") " a:%{d}" ANY "/32 -all",
	  "v=spf1" P("a") " a/32 -all", 3, 0 },
	{ "v=spf1 -mx:example.com.//0", "v=spf1" P("mx") " -mx:example.com.//128",
	  "v=spf1" P("mx") " -mx:example.com" ANY "//128", 2, 0 },
	{ "v=spf1 a:e.example.com/24//64", "v=spf1" P("a") " a:e.example.com/24//64",
	  "v=spf1" P("a") " a:e.example.com/24//64", 2, 0 },
	/* modifiers behind the mechanisms, redirect after its probe; an
	 * unknown modifier dropped */
	{ "v=spf1 redirect=r.example.com foo=%{d}x exp=e.%{d} ~all",
	  "v=spf1 ~all" P("redirect") " redirect=r.example.com exp=e.%{d}",
	  "v=spf1 ~all" P("redirect") " redirect=r.example.com exp=e.%{d}", 2, 2 },
	/* every DNS term has its probe */
	{ "v=spf1 include:i.example.com ptr exists:%{i}.%{d2r}.x.example -all",
	  "v=spf1" P("include") " include:i.example.com" P("ptr") " ptr" P("exists")
	  " exists:%{i}.%{d2r}.x.example -all",
	  "v=spf1" P("include") " include:i.example.com" P("ptr") " ptr" P("exists")
	  " exists:%{i}.%{d2r}.x.example -all", 7, 0 },
	/* macros and a domain ending in one */
	{ "v=spf1 a:%{l1r-}.%%%_%-.%{d}", "v=spf1" P("a") " a:%{l1r-}.%%%_%-.%{d}",
	  "v=spf1" P("a") " a:%{l1r-}.%%%_%-.%{d}", 2, 0 },
	{ "v=spf1 a:1-2.example.1-2", "v=spf1" P("a") " a:1-2.example.1-2",
	  "v=spf1" P("a") " a:1-2.example.1-2", 2, 0 },
};

START_TEST(test_rewrite)
{
	for (int six = 0; six < 2; six++) {
		size_t nmech = 99, nmod = 99;
		const char *why = NULL;
		char *r = spf_record_rewrite(good[_i].in, six, &nmech, &nmod, &why);
		ck_assert_msg(r != NULL, "%s: %s", good[_i].in, why ? why : "?");
		ck_assert_str_eq(r, six ? good[_i].want6 : good[_i].want4);
		if (!six)
			ck_assert_uint_eq(nmech, good[_i].nmech4);
		ck_assert_uint_eq(nmod, good[_i].nmod);
		free(r);
	}
}
END_TEST

START_TEST(test_is_spf_probe_any)
{
	ck_assert(spf_record_is_spf("v=spf1"));
	ck_assert(spf_record_is_spf("V=Spf1 -all"));
	ck_assert(!spf_record_is_spf("v=spf10 -all"));
	ck_assert(!spf_record_is_spf("v=spf1-all"));
	ck_assert(!spf_record_is_spf("spf2.0/pra"));
	enum spf_record_kind k;
	ck_assert(spf_record_probe("mx" SPF_RECORD_PROBE, &k));
	ck_assert_int_eq(k, SPF_RECORD_MX);
	ck_assert(spf_record_probe("REDIRECT.~", &k));
	ck_assert_int_eq(k, SPF_RECORD_REDIRECT);
	ck_assert(!spf_record_probe("x" SPF_RECORD_PROBE, &k));
	ck_assert(!spf_record_probe(SPF_RECORD_PROBE, &k));
	ck_assert(!spf_record_probe("mx.example.com", &k));
	ck_assert_uint_eq(spf_record_any("mail.example.com" SPF_RECORD_ANY), 16);
	ck_assert_uint_eq(spf_record_any("mail.example.com"), 0);
	ck_assert_uint_eq(spf_record_any(SPF_RECORD_ANY), 0);
}
END_TEST

Suite *spf_record_suite(void)
{
	Suite *s = suite_create("spf_record");
	TCase *tc = tcase_create("syntax");
	tcase_add_loop_test(tc, test_syntax_errors, 0, ARRAY_LEN(bad));
	tcase_add_loop_test(tc, test_rewrite, 0, ARRAY_LEN(good));
	tcase_add_test(tc, test_is_spf_probe_any);
	suite_add_tcase(s, tc);
	return s;
}
