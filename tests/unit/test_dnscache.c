/*
 * Unit tests for backends/dnscache: hits and expiry, not-found answers,
 * temporary failures never stored, replacement, eviction of the oldest
 * entry, and records (TXT, MX) copied out of the caller's memory.
 */
#include <stdio.h>
#include <string.h>

#include "backends/dnscache.h"
#include "tests/unit/unit.h"

static struct dns_result found_a(const char *name, struct dns_rr *rr, uint8_t last)
{
	memset(rr, 0, sizeof *rr);
	rr->addr[0] = 127;
	rr->addr[3] = last;
	return (struct dns_result){ .status = DNS_FOUND, .type = DNS_T_A, .name = name, .n = 1,
				    .rr = rr, .ttl = 300 };
}

START_TEST(test_hit_and_expiry)
{
	struct dnscache *c = dnscache_new(8);
	struct dns_rr rr;
	struct dns_result in = found_a("2.0.0.127.bl.example", &rr, 2), out;
	dnscache_put(c, &in, 60, 1000);
	ck_assert_msg(dnscache_get(c, "2.0.0.127.bl.example", DNS_T_A, 1000, &out), "want a hit");
	ck_assert_int_eq(out.status, DNS_FOUND);
	ck_assert_uint_eq(out.n, 1);
	ck_assert_uint_eq(out.rr[0].addr[3], 2);
	ck_assert_uint_eq(out.ttl, 60);
	ck_assert(dnscache_get(c, "2.0.0.127.bl.example", DNS_T_A, 1059, &out));
	ck_assert_uint_eq(out.ttl, 1);
	ck_assert_msg(!dnscache_get(c, "2.0.0.127.bl.example", DNS_T_A, 1060, &out),
		      "want expired at now + ttl");
	ck_assert_msg(!dnscache_get(c, "2.0.0.127.bl.example", DNS_T_TXT, 1000, &out),
		      "another type is another entry");
	ck_assert(!dnscache_get(c, "3.0.0.127.bl.example", DNS_T_A, 1000, &out));
	ck_assert_msg(dnscache_get(c, "2.0.0.127.BL.Example", DNS_T_A, 1000, &out),
		      "names compare without regard to case");
	dnscache_free(c);
}
END_TEST

START_TEST(test_notfound_and_tempfail)
{
	struct dnscache *c = dnscache_new(8);
	struct dns_result nx = { .status = DNS_NOTFOUND, .type = DNS_T_A, .name = "x.bl.example",
				 .nxdomain = true, .ttl = 45 };
	struct dns_result tf = { .status = DNS_TEMPFAIL, .type = DNS_T_A, .name = "y.bl.example",
				 .why = "timeout" };
	struct dns_result out;
	dnscache_put(c, &nx, 45, 10);
	dnscache_put(c, &tf, 45, 10);
	dnscache_put(c, &(struct dns_result){ .status = DNS_NOTFOUND, .type = DNS_T_A,
					      .name = "z.bl.example" }, 0, 10);
	ck_assert(dnscache_get(c, "x.bl.example", DNS_T_A, 20, &out));
	ck_assert_int_eq(out.status, DNS_NOTFOUND);
	ck_assert(out.nxdomain);
	ck_assert_uint_eq(out.n, 0);
	ck_assert_msg(!dnscache_get(c, "y.bl.example", DNS_T_A, 20, &out),
		      "a temporary failure must not be stored");
	ck_assert_msg(!dnscache_get(c, "z.bl.example", DNS_T_A, 10, &out), "TTL 0: not stored");
	ck_assert_uint_eq(dnscache_count(c), 1);
	dnscache_free(c);
}
END_TEST

START_TEST(test_replace_and_evict_oldest)
{
	struct dnscache *c = dnscache_new(3);
	struct dns_rr rr;
	char name[32];
	struct dns_result out;
	for (int i = 1; i <= 3; i++) {
		snprintf(name, sizeof name, "%d.bl.example", i);
		struct dns_result r = found_a(name, &rr, (uint8_t)i);
		dnscache_put(c, &r, 100, 0);
	}
	struct dns_result again = found_a("1.bl.example", &rr, 9);   /* replaces, now newest */
	dnscache_put(c, &again, 100, 0);
	ck_assert_uint_eq(dnscache_count(c), 3);
	ck_assert(dnscache_get(c, "1.bl.example", DNS_T_A, 0, &out));
	ck_assert_uint_eq(out.rr[0].addr[3], 9);
	struct dns_result four = found_a("4.bl.example", &rr, 4);
	dnscache_put(c, &four, 100, 0);                 /* evicts 2, the oldest */
	ck_assert_uint_eq(dnscache_count(c), 3);
	ck_assert_msg(!dnscache_get(c, "2.bl.example", DNS_T_A, 0, &out), "2 should be evicted");
	ck_assert(dnscache_get(c, "1.bl.example", DNS_T_A, 0, &out));
	ck_assert(dnscache_get(c, "3.bl.example", DNS_T_A, 0, &out));
	ck_assert(dnscache_get(c, "4.bl.example", DNS_T_A, 0, &out));
	dnscache_free(c);
}
END_TEST

START_TEST(test_strings_are_copied)
{
	struct dnscache *c = dnscache_new(4);
	char txt[] = "v=spf1 -all", host[] = "mx1.example", name[] = "example";
	struct dns_rr rr[2] = { { .txt = txt, .txtlen = sizeof txt - 1 },
				{ .txt = "sec\0nd", .txtlen = 6 } };
	struct dns_result r = { .status = DNS_FOUND, .type = DNS_T_TXT, .name = name, .n = 2,
				.rr = rr };
	dnscache_put(c, &r, 10, 0);
	struct dns_rr mx = { .host = host, .pref = 10 };
	struct dns_result m = { .status = DNS_FOUND, .type = DNS_T_MX, .name = name, .n = 1, .rr = &mx };
	dnscache_put(c, &m, 10, 0);
	memset(txt, 'x', sizeof txt - 1);
	memset(host, 'x', sizeof host - 1);
	memset(name, 'x', sizeof name - 1);
	struct dns_result out;
	ck_assert(dnscache_get(c, "example", DNS_T_TXT, 0, &out));
	ck_assert_uint_eq(out.n, 2);
	ck_assert_str_eq(out.rr[0].txt, "v=spf1 -all");
	ck_assert_msg(out.rr[1].txtlen == 6 && !memcmp(out.rr[1].txt, "sec\0nd", 7),
		      "a TXT with a NUL byte is kept whole (length %zu)", out.rr[1].txtlen);
	ck_assert(dnscache_get(c, "example", DNS_T_MX, 0, &out));
	ck_assert_str_eq(out.rr[0].host, "mx1.example");
	ck_assert_uint_eq(out.rr[0].pref, 10);
	dnscache_free(c);
}
END_TEST

Suite *dnscache_suite(void)
{
	Suite *s = suite_create("dnscache");
	TCase *t = tcase_create("dnscache");
	tcase_add_test(t, test_hit_and_expiry);
	tcase_add_test(t, test_notfound_and_tempfail);
	tcase_add_test(t, test_replace_and_evict_oldest);
	tcase_add_test(t, test_strings_are_copied);
	suite_add_tcase(s, t);
	return s;
}
