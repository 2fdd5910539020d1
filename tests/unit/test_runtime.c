/*
 * Unit tests for the counting facility of backends/runtime (labelled
 * counters, histograms) and util/sha256 (the policy's identity).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "backends/runtime.h"
#include "tests/unit/unit.h"
#include "util/digest.h"
#include "util/util.h"

/* FIPS 180-2's examples, and a million 'a's (two-block and long inputs). */
static const struct {
	const char *in;
	const char *want;
} sha_cases[] = {
	{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
	{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
	{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
};

START_TEST(test_sha256_vectors)
{
	char hex[65];
	digest_sha256(sha_cases[_i].in, strlen(sha_cases[_i].in), hex);
	ck_assert_msg(!strcmp(hex, sha_cases[_i].want), "sha256(\"%s\"): got %s, want %s",
		      sha_cases[_i].in, hex, sha_cases[_i].want);
}
END_TEST

/* A file read in blocks: a million 'a's (FIPS 180-2's long vector). */
START_TEST(test_sha256_file_of_a_million_a)
{
	char path[] = "/tmp/mxacl-digest-XXXXXX", hex[65], a[1000];
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	memset(a, 'a', sizeof a);
	for (int i = 0; i < 1000; i++)
		ck_assert_int_eq(write(fd, a, sizeof a), (int)sizeof a);
	close(fd);
	ck_assert(digest_sha256_file(path, hex));
	unlink(path);
	const char *want = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
	ck_assert_msg(!strcmp(hex, want), "sha256(a x 1e6): got %s, want %s", hex, want);
	ck_assert(!digest_sha256_file(path, hex));
	ck_assert_str_eq(hex, "");
}
END_TEST

START_TEST(test_family_slots_are_stable)
{
	struct event_base *base = event_base_new();
	struct runtime *rt = runtime_new(base);
	struct runtime_stats *st = runtime_stats(rt);
	uint64_t *rej = runtime_family_slot(st, RF_requests, "REJECT", 6);
	(*rej)++;
	/* enough values to grow the index several times */
	char buf[32];
	for (int i = 0; i < 1000; i++) {
		int n = snprintf(buf, sizeof buf, "policy.conf:%d", i);
		(*runtime_family_slot(st, RF_rule_hits, buf, (size_t)n)) += (uint64_t)i;
	}
	ck_assert_msg(runtime_family_slot(st, RF_requests, "REJECT!", 6) == rej,
		      "the same value (by length) gives the same slot");
	ck_assert_msg(runtime_family_slot(st, RF_requests, "REJECTED", 8) != rej,
		      "a longer value is another slot");
	ck_assert_msg(*rej == 1, "REJECT: got %llu, want 1", (unsigned long long)*rej);
	uint64_t *l500 = runtime_family_slot(st, RF_rule_hits, "policy.conf:500", 15);
	ck_assert_msg(*l500 == 500, "policy.conf:500: got %llu, want 500",
		      (unsigned long long)*l500);
	/* first-use order is kept */
	const struct runtime_family_value *v = st->f[RF_rule_hits].first;
	for (int i = 0; i < 3; i++, v = v->next) {
		snprintf(buf, sizeof buf, "policy.conf:%d", i);
		ck_assert_msg(v && !strcmp(v->value, buf), "value %d: got %s, want %s", i,
			      v ? v->value : "(none)", buf);
	}
	runtime_free(rt);
	event_base_free(base);
}
END_TEST

START_TEST(test_histogram_buckets)
{
	struct event_base *base = event_base_new();
	struct runtime *rt = runtime_new(base);
	struct runtime_stats *st = runtime_stats(rt);
	runtime_observe(st, RH_request_duration, 50000);        /* 50 us: first bucket */
	runtime_observe(st, RH_request_duration, 100000);       /* 100 us: le=0.0001 too */
	runtime_observe(st, RH_request_duration, 100001);       /* just above */
	runtime_observe(st, RH_request_duration, 20000000000u); /* 20 s: +Inf */
	runtime_observe(NULL, RH_request_duration, 1);          /* nowhere */
	const struct runtime_hist *h = &st->h[RH_request_duration];
	ck_assert_msg(h->bucket[0] == 2, "le=0.0001: got %llu, want 2",
		      (unsigned long long)h->bucket[0]);
	ck_assert_msg(h->bucket[1] == 1, "le=0.00025: got %llu, want 1",
		      (unsigned long long)h->bucket[1]);
	ck_assert_msg(h->bucket[RUNTIME_HIST_NBOUNDS] == 1, "+Inf: got %llu, want 1",
		      (unsigned long long)h->bucket[RUNTIME_HIST_NBOUNDS]);
	ck_assert_msg(h->count == 4, "count: got %llu, want 4", (unsigned long long)h->count);
	ck_assert_msg(h->sum_ns == 20000250001u, "sum: got %llu",
		      (unsigned long long)h->sum_ns);
	runtime_free(rt);
	event_base_free(base);
}
END_TEST

Suite *runtime_suite(void)
{
	Suite *s = suite_create("runtime");
	TCase *tc = tcase_create("runtime");
	tcase_add_loop_test(tc, test_sha256_vectors, 0, ARRAY_LEN(sha_cases));
	tcase_add_test(tc, test_sha256_file_of_a_million_a);
	tcase_add_test(tc, test_family_slots_are_stable);
	tcase_add_test(tc, test_histogram_buckets);
	suite_add_tcase(s, tc);
	return s;
}
