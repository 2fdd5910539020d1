/*
 * Unit tests for backends/dnscache: hits and expiry, not-found answers,
 * temporary failures never stored, replacement, eviction of the oldest
 * entry, records (TXT, MX) copied out of the caller's memory, names of
 * every length (inline in a slot or not), and a long random run checked
 * against a plain model of the cache (growth, deletions that shift
 * entries back, the ring's compaction).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* Names from 1 to 253 bytes, each with a record or two and an MX host:
 * short ones are kept in the slot, long ones beside it; all come back
 * whole, in any case. A name over 253 bytes cannot exist: not stored. */
START_TEST(test_name_lengths)
{
	struct dnscache *c = dnscache_new(600);
	char name[300], upper[300], host[80];
	struct dns_result out;
	for (int len = 1; len <= 253; len++) {
		for (int k = 0; k < len; k++)
			name[k] = k % 9 == 8 ? '.' : (char)('a' + (len + k) % 26);
		name[len] = 0;
		struct dns_rr rr[2] = { { .addr = { 127, 0, 0, (uint8_t)len } },
					{ .addr = { 127, 0, 1, (uint8_t)len } } };
		struct dns_result a = { .status = DNS_FOUND, .type = DNS_T_A, .name = name,
					.n = 1 + len % 2, .rr = rr };
		dnscache_put(c, &a, 100, 0);
		snprintf(host, sizeof host, "mx%d.Example", len);
		struct dns_rr mx = { .host = host, .pref = (uint16_t)len };
		struct dns_result m = { .status = DNS_FOUND, .type = DNS_T_MX, .name = name, .n = 1,
					.rr = &mx };
		dnscache_put(c, &m, 100, 0);
	}
	ck_assert_uint_eq(dnscache_count(c), 2 * 253);
	for (int len = 1; len <= 253; len++) {
		for (int k = 0; k < len; k++) {
			name[k] = k % 9 == 8 ? '.' : (char)('a' + (len + k) % 26);
			upper[k] = (char)(k % 2 && name[k] != '.' ? name[k] - 'a' + 'A' : name[k]);
		}
		name[len] = upper[len] = 0;
		ck_assert_msg(dnscache_get(c, upper, DNS_T_A, 1, &out), "length %d: want a hit", len);
		ck_assert_msg(out.n == (size_t)(1 + len % 2) && out.rr[0].addr[3] == len &&
			      (out.n == 1 || out.rr[1].addr[2] == 1),
			      "length %d: got %zu records, first ending %u", len, out.n,
			      out.rr[0].addr[3]);
		ck_assert(dnscache_get(c, name, DNS_T_MX, 1, &out));
		snprintf(host, sizeof host, "mx%d.Example", len);
		ck_assert_msg(out.n == 1 && !strcmp(out.rr[0].host, host) && out.rr[0].pref == len,
			      "length %d: got MX '%s' %u, want '%s'", len, out.rr[0].host,
			      out.rr[0].pref, host);
		name[len - 1] ^= 1;             /* one byte off: another name */
		ck_assert_msg(!dnscache_get(c, name, DNS_T_A, 1, &out), "length %d: false hit", len);
	}
	memset(name, 'a', 254);
	name[254] = 0;
	dnscache_put(c, &(struct dns_result){ .status = DNS_NOTFOUND, .type = DNS_T_A, .name = name },
		     100, 0);
	ck_assert_uint_eq(dnscache_count(c), 2 * 253);
	ck_assert(!dnscache_get(c, name, DNS_T_A, 1, &out));
	/* case folds for ASCII letters only: bytes over 0x7f and '@'..'`' stay */
	dnscache_put(c, &(struct dns_result){ .status = DNS_NOTFOUND, .type = DNS_T_A,
					      .name = "x\xc3\x89@[`.example" }, 100, 0);
	ck_assert(dnscache_get(c, "X\xc3\x89@[`.EXAMPLE", DNS_T_A, 1, &out));
	ck_assert(!dnscache_get(c, "x\xe3\x89@[`.example", DNS_T_A, 1, &out));
	ck_assert(!dnscache_get(c, "x\xc3\xa9@[`.example", DNS_T_A, 1, &out));
	ck_assert(!dnscache_get(c, "x\xc3\x89`[`.example", DNS_T_A, 1, &out));
	ck_assert(!dnscache_get(c, "x\xc3\x89@{`.example", DNS_T_A, 1, &out));
	dnscache_free(c);
}
END_TEST

/* The model: per name and type, whether held, until when, what; and a
 * queue of stores (name, its store number) in order, where a stale
 * element (replaced or evicted since) is skipped. */
enum { M_MAX = 1000, M_NAMES = 3000, M_OPS = 200000 };

struct model {
	bool held[2 * M_NAMES];
	uint64_t expires[2 * M_NAMES];
	int value[2 * M_NAMES];          /* 0: not found; else the record's last byte */
	int stored[2 * M_NAMES];         /* store number */
	int queue[M_OPS][2];             /* (key, store number), oldest first */
	size_t head, tail, count;
};

/* 200,000 random puts and gets over 3,000 names with a limit of 1,000
 * answers: every get agrees with the model (hit or not, the records, the
 * TTL left) and so does the count, across growth, evictions, replacements
 * and expiry. */
START_TEST(test_against_model)
{
	struct dnscache *c = dnscache_new(M_MAX);
	struct model *m = calloc(1, sizeof *m);
	uint64_t now = 1;
	srandom(13);
	for (int op = 0; op < M_OPS; op++) {
		char name[40], host[40];
		int k = (int)(random() % M_NAMES);
		bool mx = random() % 4 == 0;
		enum dns_type type = mx ? DNS_T_MX : DNS_T_A;
		int key = 2 * k + mx;
		/* every seventh name is long enough to be kept beside its slot;
		 * the case varies, which must not matter */
		snprintf(name, sizeof name, k % 7 ? "%d.%s.example" : "%d.a-much-longer-zone.%s.example",
			 k, random() % 2 ? "bl" : "BL");
		if (random() % 500 == 0)
			now += 1 + random() % 30;
		struct dns_result out;
		if (random() % 3) {
			bool hit = dnscache_get(c, name, type, now, &out);
			bool want = m->held[key] && m->expires[key] > now;
			ck_assert_msg(hit == want, "op %d, get %s: got hit=%d, want %d", op, name, hit,
				      want);
			if (!hit)
				continue;
			ck_assert_uint_eq(out.ttl, m->expires[key] - now);
			ck_assert_uint_eq(out.n, m->value[key] ? 1 : 0);
			if (m->value[key] && !mx)
				ck_assert_uint_eq(out.rr[0].addr[3], m->value[key]);
			if (m->value[key] && mx) {
				snprintf(host, sizeof host, "mx%d.example", m->value[key]);
				ck_assert_str_eq(out.rr[0].host, host);
			}
			continue;
		}
		int value = (int)(random() % 4) * (1 + k % 60);
		uint32_t ttl = 1 + (uint32_t)(random() % 100);
		snprintf(host, sizeof host, "mx%d.example", value);
		struct dns_rr rr = { .addr = { 127, 0, 0, (uint8_t)value } };
		if (mx)
			rr = (struct dns_rr){ .host = host };
		struct dns_result r = { .status = value ? DNS_FOUND : DNS_NOTFOUND, .type = type,
					.name = name, .n = value ? 1 : 0, .rr = &rr };
		dnscache_put(c, &r, ttl, now);
		if (m->held[key]) {             /* replaced: out of its place */
			m->count--;
		} else if (m->count == M_MAX) { /* evicted: the oldest */
			while (!m->held[m->queue[m->head][0]] ||
			       m->stored[m->queue[m->head][0]] != m->queue[m->head][1])
				m->head++;
			m->held[m->queue[m->head++][0]] = false;
			m->count--;
		}
		m->held[key] = true;
		m->expires[key] = now + ttl;
		m->value[key] = value;
		m->stored[key] = op;
		m->queue[m->tail][0] = key;
		m->queue[m->tail++][1] = op;
		m->count++;
		ck_assert_msg(dnscache_count(c) == m->count, "op %d: count %zu, want %zu", op,
			      dnscache_count(c), m->count);
	}
	ck_assert_uint_eq(m->count, M_MAX);
	free(m);
	dnscache_free(c);
}
END_TEST

Suite *dnscache_suite(void)
{
	Suite *s = suite_create("dnscache");
	TCase *t = tcase_create("dnscache");
	tcase_set_timeout(t, 60);         /* the model run takes seconds under ASan */
	tcase_add_test(t, test_hit_and_expiry);
	tcase_add_test(t, test_notfound_and_tempfail);
	tcase_add_test(t, test_replace_and_evict_oldest);
	tcase_add_test(t, test_strings_are_copied);
	tcase_add_test(t, test_name_lengths);
	tcase_add_test(t, test_against_model);
	suite_add_tcase(s, t);
	return s;
}
