/*
 * Unit tests for engine/cidr: address parsing and formatting, netset_add
 * errors, membership, merging, and a random set checked against a scan.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cidr.h"
#include "tests/unit/unit.h"
#include "util/util.h"

#define S(lit) (lit), (sizeof(lit) - 1)

/* ip_parse: accepted forms, with what ip_format gives back. */
static const struct {
	const char *in;
	size_t len;           /* 0: strlen(in) */
	const char *want;     /* NULL: must be rejected */
	bool v4;
} parse_cases[] = {
	{ "192.0.2.1", 0, "192.0.2.1", true },
	{ "0.0.0.0", 0, "0.0.0.0", true },
	{ "255.255.255.255", 0, "255.255.255.255", true },
	{ "::ffff:192.0.2.1", 0, "192.0.2.1", true },
	{ "::FFFF:c000:0201", 0, "192.0.2.1", true },
	{ "[192.0.2.1]", 0, "192.0.2.1", true },
	{ "2001:db8::1", 0, "2001:db8::1", false },
	{ "2001:DB8:0:0:0:0:0:1", 0, "2001:db8::1", false },
	{ "[2001:db8::1]", 0, "2001:db8::1", false },
	{ "ipv6:2001:db8::1", 0, "2001:db8::1", false },
	{ "IPv6:2001:db8::1", 0, "2001:db8::1", false },
	{ "[IPv6:2001:db8::1]", 0, "2001:db8::1", false },
	{ "ipv6:::ffff:10.0.0.1", 0, "10.0.0.1", true },
	{ "::", 0, "::", false },
	{ "::1", 0, "::1", false },
	{ "::1.2.3.4", 0, "::1.2.3.4", false },   /* IPv4-compatible, not mapped */
	{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false },
	{ "", 0, NULL, false },
	{ "1.2.3", 0, NULL, false },
	{ "1.2.3.4.5", 0, NULL, false },
	{ "256.1.1.1", 0, NULL, false },
	{ "01.2.3.4", 0, NULL, false },
	{ " 1.2.3.4", 0, NULL, false },
	{ "1.2.3.4 ", 0, NULL, false },
	{ "1.2.3.4\0junk", 12, NULL, false },
	{ "2001:db8::1::2", 0, NULL, false },
	{ "2001:db8::g", 0, NULL, false },
	{ "fe80::1%eth0", 0, NULL, false },
	{ "[2001:db8::1", 0, NULL, false },
	{ "2001:db8::1]", 0, NULL, false },
	{ "[]", 0, NULL, false },
	{ "ipv6:", 0, NULL, false },
	{ "ipv6:1.2.3.4", 0, NULL, false },
	{ "localhost", 0, NULL, false },
	{ "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd:eeee", 0, NULL, false },
};

START_TEST(test_ip_parse)
{
	const char *in = parse_cases[_i].in;
	size_t len = parse_cases[_i].len ? parse_cases[_i].len : strlen(in);
	const char *want = parse_cases[_i].want;
	struct ipaddr a;
	char buf[64];

	bool ok = ip_parse(in, len, &a);
	ck_assert_msg(ok == (want != NULL), "ip_parse(\"%s\"): got %d, want %d", in, ok, want != NULL);
	if (!ok)
		return;
	ip_format(&a, buf, sizeof buf);
	ck_assert_msg(strcmp(buf, want) == 0, "ip_format(ip_parse(\"%s\")): got \"%s\", want \"%s\"",
		      in, buf, want);
	ck_assert_msg(ip_is_v4(&a) == parse_cases[_i].v4, "ip_is_v4(\"%s\"): got %d, want %d",
		      in, ip_is_v4(&a), parse_cases[_i].v4);
}
END_TEST

/* The layout the header promises: IPv4 as ::ffff:a.b.c.d, big-endian halves. */
START_TEST(test_ip_layout)
{
	static const struct {
		const char *in;
		uint64_t hi, lo;
	} cases[] = {
		{ "10.0.0.1", 0, 0x0000ffff0a000001ULL },
		{ "::ffff:10.0.0.1", 0, 0x0000ffff0a000001ULL },
		{ "2001:db8::1", 0x20010db800000000ULL, 1 },
		{ "1:2:3:4:5:6:7:8", 0x0001000200030004ULL, 0x0005000600070008ULL },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct ipaddr a;
		ck_assert_msg(ip_parse(cases[i].in, strlen(cases[i].in), &a), "ip_parse(\"%s\") failed",
			      cases[i].in);
		ck_assert_msg(a.hi == cases[i].hi && a.lo == cases[i].lo,
			      "ip_parse(\"%s\"): got %016llx:%016llx, want %016llx:%016llx", cases[i].in,
			      (unsigned long long)a.hi, (unsigned long long)a.lo,
			      (unsigned long long)cases[i].hi, (unsigned long long)cases[i].lo);
	}
}
END_TEST

START_TEST(test_ip_format_truncates)
{
	struct ipaddr a;
	char buf[8];

	ck_assert(ip_parse(S("192.0.2.1"), &a));
	memset(buf, 'x', sizeof buf);
	ip_format(&a, buf, sizeof buf);
	ck_assert_msg(strcmp(buf, "192.0.2") == 0, "got \"%s\", want \"192.0.2\"", buf);
	ip_format(&a, buf, 0);   /* must not write at all */
	ck_assert_msg(strcmp(buf, "192.0.2") == 0, "size 0 wrote: got \"%s\"", buf);
}
END_TEST

/* netset_add: rejected networks and the message each gets. */
static const struct {
	const char *in;
	const char *want_err;
} add_errors[] = {
	{ "", "empty network" },
	{ "foo", "not an IP address" },
	{ "192.0.2.1/24", "host bits set under the prefix" },
	{ "11.0.0.0/7", "host bits set under the prefix" },
	{ "2001:db8::1/32", "host bits set under the prefix" },
	{ "::ffff:10.0.0.0/8", "host bits set under the prefix" },   /* /8 of the v6 space */
	{ "10.0.0.0/255.0.255.0", "netmask is not contiguous" },
	{ "10.0.0.0/255.255.255.1", "netmask is not contiguous" },
	{ "10.0.0.0/0.255.255.255", "netmask is not contiguous" },
	{ "10.0.0.0/255.255.256.0", "bad netmask" },
	{ "10.0.0.0/255.255.0", "bad netmask" },
	{ "2001:db8::/255.255.0.0", "a dotted netmask needs an IPv4 address" },
	{ "10.0.0.0/33", "bad prefix length (want 0-32)" },
	{ "10.0.0.0/", "bad prefix length (want 0-32)" },
	{ "10.0.0.0/x", "bad prefix length (want 0-32)" },
	{ "10.0.0.0/0008", "bad prefix length (want 0-32)" },
	{ "10.0.0.0/+8", "bad prefix length (want 0-32)" },
	{ "2001:db8::/129", "bad prefix length (want 0-128)" },
	{ "2001:db8::/ffff::", "bad prefix length (want 0-128)" },
	{ "10.0.0.0/8/8", "bad prefix length (want 0-32)" },
	{ "10.0.0.5-10.0.0.1", "range starts after its end" },
	{ "2001:db8::2-2001:db8::1", "range starts after its end" },
	{ "10.0.0.1-2001:db8::1", "range mixes IPv4 and IPv6" },
	{ "::1-10.0.0.1", "range mixes IPv4 and IPv6" },
	{ "10.0.0.1-", "bad address in range" },
	{ "-10.0.0.1", "bad address in range" },
	{ "10.0.0.1-10.0.0.2-10.0.0.3", "bad address in range" },
	{ "10.0.0.0/8-10.0.0.9", "a range cannot have a prefix length" },
	{ "10.0.0.0/-8", "a range cannot have a prefix length" },
	/* a comma list, not the "bad netmask" the part after '/' would give */
	{ "192.168.1.0/24,172.16.254.23", "a comma list: write each network as a value of its own, "
					  "separated by blanks" },
	{ "10.0.0.1,10.0.0.2", "a comma list: write each network as a value of its own, "
			       "separated by blanks" },
	{ "2001:db8::/32,2001:db8:1::/48", "a comma list: write each network as a value of its "
					   "own, separated by blanks" },
};

START_TEST(test_netset_add_errors)
{
	struct netset *s = netset_new();
	const char *err = NULL;
	const char *in = add_errors[_i].in;

	bool ok = netset_add(s, in, strlen(in), &err, NULL);
	ck_assert_msg(!ok, "netset_add(\"%s\"): got success, want error \"%s\"", in,
		      add_errors[_i].want_err);
	ck_assert_msg(err && strcmp(err, add_errors[_i].want_err) == 0,
		      "netset_add(\"%s\"): got error \"%s\", want \"%s\"", in, err ? err : "(null)",
		      add_errors[_i].want_err);
	netset_free(s);
}
END_TEST

/* Build and freeze a set from a NULL-terminated list, failing the test on a bad one. */
static struct netset *build_set(const char *const *nets)
{
	struct netset *s = netset_new();
	for (; *nets; nets++) {
		const char *err = NULL;
		ck_assert_msg(netset_add(s, *nets, strlen(*nets), &err, NULL),
			      "netset_add(\"%s\"): got error \"%s\", want success", *nets, err);
	}
	netset_freeze(s);
	return s;
}

static bool set_has(const struct netset *s, const char *addr)
{
	struct ipaddr a;
	ck_assert_msg(ip_parse(addr, strlen(addr), &a), "ip_parse(\"%s\") failed", addr);
	return netset_contains(s, &a);
}

static const char *const member_set[] = {
	"192.0.2.0/24",
	"10.0.0.0/255.0.0.0",
	"2001:db8::/32",
	"198.51.100.7",
	"203.0.113.10-203.0.113.20",     /* not CIDR-aligned */
	"::ffff:172.16.0.0/108",         /* 172.16.0.0/12 written as v6 */
	"[2001:db8:ffff::]/48",
	"fe80::1-fe80::ff",
	NULL,
};

static const struct {
	const char *addr;
	bool want;
} member_cases[] = {
	{ "192.0.2.0", true },
	{ "192.0.2.255", true },
	{ "192.0.1.255", false },
	{ "192.0.3.0", false },
	{ "::ffff:192.0.2.5", true },
	{ "10.0.0.0", true },
	{ "10.255.255.255", true },
	{ "9.255.255.255", false },
	{ "11.0.0.0", false },
	{ "::ffff:10.1.2.3", true },
	{ "::10.1.2.3", false },   /* IPv4-compatible is not IPv4 */
	{ "2001:db8::", true },
	{ "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true },
	{ "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false },
	{ "2001:db9::", false },
	{ "198.51.100.6", false },
	{ "198.51.100.7", true },
	{ "198.51.100.8", false },
	{ "203.0.113.9", false },
	{ "203.0.113.10", true },
	{ "203.0.113.15", true },
	{ "203.0.113.20", true },
	{ "203.0.113.21", false },
	{ "172.15.255.255", false },
	{ "172.16.0.0", true },
	{ "172.31.255.255", true },
	{ "172.32.0.0", false },
	{ "fe80::", false },
	{ "fe80::1", true },
	{ "fe80::ff", true },
	{ "fe80::100", false },
	{ "0.0.0.0", false },
	{ "::", false },
	{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false },
};

START_TEST(test_netset_members)
{
	struct netset *s = build_set(member_set);
	for (size_t i = 0; i < ARRAY_LEN(member_cases); i++) {
		bool got = set_has(s, member_cases[i].addr);
		ck_assert_msg(got == member_cases[i].want, "contains(%s): got %d, want %d",
			      member_cases[i].addr, got, member_cases[i].want);
	}
	netset_free(s);
}
END_TEST

/* Merging: how many intervals a set freezes into, and a probe in the gap. */
static const struct {
	const char *nets[5];
	size_t want;
} merge_cases[] = {
	{ { NULL }, 0 },
	{ { "10.0.0.0/24", "10.0.1.0/24" }, 1 },                       /* adjacent */
	{ { "10.0.1.0/24", "10.0.0.0/24" }, 1 },                       /* adjacent, reversed */
	{ { "10.0.0.0/24", "10.0.2.0/24" }, 2 },                       /* gap */
	{ { "10.0.0.0/8", "10.1.0.0/16" }, 1 },                        /* contained */
	{ { "10.1.0.0/16", "10.0.0.0/8", "10.200.0.0/16" }, 1 },
	{ { "10.0.0.0-10.0.0.100", "10.0.0.50-10.0.0.200" }, 1 },      /* overlap */
	{ { "10.0.0.0-10.0.0.100", "10.0.0.101-10.0.0.200" }, 1 },     /* touch */
	{ { "10.0.0.0-10.0.0.100", "10.0.0.102-10.0.0.200" }, 2 },
	{ { "10.0.0.5", "10.0.0.5", "::ffff:10.0.0.5" }, 1 },          /* duplicates */
	{ { "0.0.0.0/0", "1.2.3.4", "255.255.255.255" }, 1 },
	{ { "0.0.0.0", "::fffe:ffff:ffff" }, 1 },                      /* v4 space's lower edge */
	{ { "::/0", "10.0.0.0/8", "2001:db8::/32" }, 1 },
	{ { "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe" }, 1 },           /* the very top */
	{ { "::", "::1" }, 1 },                                        /* the very bottom */
	{ { "::ffff:ffff:ffff:ffff", "0:0:0:1::" }, 1 },               /* carry into hi */
	{ { "::ffff:ffff:ffff:fffe", "0:0:0:1::" }, 2 },
	{ { "2001:db8::/33", "2001:db8:8000::/33" }, 1 },
	{ { "10.0.0.0/8", "2001:db8::/32", "192.0.2.0/24" }, 3 },
};

START_TEST(test_netset_merge)
{
	size_t n = 0;
	while (n < ARRAY_LEN(merge_cases[_i].nets) && merge_cases[_i].nets[n])
		n++;
	const char *nets[6] = { NULL };
	memcpy(nets, merge_cases[_i].nets, n * sizeof nets[0]);
	struct netset *s = build_set(nets);
	ck_assert_msg(netset_intervals(s) == merge_cases[_i].want,
		      "case %d (%s ...): got %zu intervals, want %zu", _i, nets[0] ? nets[0] : "empty",
		      netset_intervals(s), merge_cases[_i].want);
	/* every added network is still inside after merging */
	for (size_t i = 0; i < n; i++) {
		struct ipaddr a;
		char first[64];
		snprintf(first, sizeof first, "%s", nets[i]);
		first[strcspn(first, "/-")] = 0;
		ck_assert(ip_parse(first, strlen(first), &a));
		ck_assert_msg(netset_contains(s, &a), "after merge, %s not in the set", first);
	}
	netset_free(s);
}
END_TEST

START_TEST(test_netset_empty_and_null)
{
	struct netset *s = netset_new();
	struct ipaddr a = { 0, 0 };
	netset_freeze(s);
	ck_assert_msg(!netset_contains(s, &a), "empty set: got contains, want not");
	ck_assert_msg(netset_intervals(s) == 0, "empty set: got %zu intervals, want 0",
		      netset_intervals(s));
	netset_free(s);
	netset_free(NULL);
}
END_TEST

/* xorshift64*: a fixed, portable sequence so a failure can be replayed. */
static uint64_t rng_state;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

struct span {
	struct ipaddr first, last;
};

static bool ip_lte(const struct ipaddr *a, const struct ipaddr *b)
{
	return a->hi < b->hi || (a->hi == b->hi && a->lo <= b->lo);
}

static struct ipaddr ip_add(struct ipaddr a, int64_t d)
{
	uint64_t lo = a.lo + (uint64_t)d;
	if (d > 0 && lo < a.lo)
		a.hi++;
	else if (d < 0 && lo > a.lo)
		a.hi--;
	a.lo = lo;
	return a;
}

#define RANDOM_NETS 100000
#define RANDOM_PROBES 3000

/*
 * A random network, written as text for netset_add. IPv4 comes from
 * 10.0.0.0/8, dense enough that networks overlap and touch often; IPv6
 * from 2001:db8::/44, with prefixes and ranges that straddle the 64-bit
 * halves. About half of each pool ends up covered.
 */
static void random_net(char *text, size_t size, struct span *sp)
{
	uint64_t r = rng();
	char a[64], b[64];

	if (r % 10 < 5) {   /* IPv4 prefix */
		unsigned bits = 24 + (unsigned)(rng() % 9);
		uint32_t v = 0x0a000000u | (uint32_t)(rng() & 0xffffff);
		uint32_t m = bits == 0 ? 0 : ~0u << (32 - bits);
		v &= m;
		sp->first = (struct ipaddr){ 0, 0x0000ffff00000000ULL | v };
		sp->last = (struct ipaddr){ 0, 0x0000ffff00000000ULL | v | ~m };
		ip_format(&sp->first, a, sizeof a);
		if (r % 10 == 0)   /* a dotted mask now and then */
			snprintf(text, size, "%s/%u.%u.%u.%u", a, m >> 24, (m >> 16) & 0xff,
				 (m >> 8) & 0xff, m & 0xff);
		else
			snprintf(text, size, "%s/%u", a, bits);
	} else if (r % 10 < 7) {   /* IPv4 range, not aligned */
		uint32_t v = 0x0a000000u | (uint32_t)(rng() & 0xffffff);
		uint32_t w = v + (uint32_t)(rng() % 500);
		if (w > 0x0affffffu)
			w = 0x0affffffu;
		sp->first = (struct ipaddr){ 0, 0x0000ffff00000000ULL | v };
		sp->last = (struct ipaddr){ 0, 0x0000ffff00000000ULL | w };
		ip_format(&sp->first, a, sizeof a);
		ip_format(&sp->last, b, sizeof b);
		snprintf(text, size, "%s-%s", a, b);
	} else if (r % 10 < 9) {   /* IPv6 prefix */
		unsigned bits = 60 + (unsigned)(rng() % 69);
		struct ipaddr v = { 0x20010db800000000ULL | (rng() & 0xfffff), rng() };
		struct ipaddr m = { ~0ULL, 0 };
		if (bits < 64)
			m.hi = ~0ULL << (64 - bits);
		else if (bits > 64)
			m.lo = ~0ULL << (128 - bits);
		v.hi &= m.hi;
		v.lo &= m.lo;
		sp->first = v;
		sp->last = (struct ipaddr){ v.hi | ~m.hi, v.lo | ~m.lo };
		ip_format(&sp->first, a, sizeof a);
		snprintf(text, size, "%s/%u", a, bits);
	} else {   /* IPv6 range across the halves */
		struct ipaddr v = { 0x20010db800000000ULL | (rng() & 0xfffff), rng() };
		sp->first = v;
		sp->last = ip_add(v, (int64_t)(rng() >> 2));
		if (!ip_lte(&sp->first, &sp->last) || (sp->last.hi >> 20) != (v.hi >> 20))
			sp->last = v;
		ip_format(&sp->first, a, sizeof a);
		ip_format(&sp->last, b, sizeof b);
		snprintf(text, size, "%s-%s", a, b);
	}
}

static struct ipaddr random_probe(const struct span *spans, size_t n)
{
	uint64_t r = rng();
	const struct span *sp = &spans[rng() % n];

	switch (r % 6) {
	case 0: return ip_add(sp->first, -1);
	case 1: return sp->first;
	case 2: return sp->last;
	case 3: return ip_add(sp->last, 1);
	case 4: return (struct ipaddr){ 0, 0x0000ffff0a000000ULL | (rng() & 0xffffff) };
	default: return (struct ipaddr){ 0x20010db800000000ULL | (rng() & 0xfffff), rng() };
	}
}

START_TEST(test_netset_random)
{
	struct span *spans = xmalloc(RANDOM_NETS * sizeof *spans);
	struct netset *s = netset_new();
	size_t hits = 0;
	char text[128];

	rng_state = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < RANDOM_NETS; i++) {
		const char *err = NULL;
		random_net(text, sizeof text, &spans[i]);
		ck_assert_msg(netset_add(s, text, strlen(text), &err, NULL),
			      "netset_add(\"%s\"): got error \"%s\", want success", text, err);
	}
	netset_freeze(s);
	ck_assert_msg(netset_intervals(s) > 0 && netset_intervals(s) < RANDOM_NETS,
		      "got %zu intervals, want some merged (< %d)", netset_intervals(s), RANDOM_NETS);
	for (size_t p = 0; p < RANDOM_PROBES; p++) {
		struct ipaddr a = random_probe(spans, RANDOM_NETS);
		bool want = false;
		for (size_t i = 0; i < RANDOM_NETS && !want; i++)
			want = ip_lte(&spans[i].first, &a) && ip_lte(&a, &spans[i].last);
		bool got = netset_contains(s, &a);
		if (got != want) {
			char buf[64];
			ip_format(&a, buf, sizeof buf);
			ck_abort_msg("probe %zu, contains(%s): got %d, want %d (naive scan)", p, buf,
				     got, want);
		}
		hits += got;
	}
	/* the probes must exercise both answers, or the test proves nothing */
	ck_assert_msg(hits > RANDOM_PROBES / 10 && hits < RANDOM_PROBES * 9 / 10,
		      "got %zu hits of %d probes, want a mix", hits, RANDOM_PROBES);
	netset_free(s);
	free(spans);
}
END_TEST

/* netset_add's note: the network meant, and IPv6 networks that hold IPv4. */
static const struct {
	const char *in;
	bool ok;
	const char *meant;
	bool spills, all_v4;
} note_cases[] = {
	/* postfwd's shipped sample: 192.168.1.0/22 */
	{ "192.168.1.0/22", false, "192.168.0.0/22", false, false },
	{ "192.0.2.1/24", false, "192.0.2.0/24", false, false },
	{ "10.1.2.3/255.255.0.0", false, "10.1.0.0/255.255.0.0", false, false },
	{ "2001:db8::1/32", false, "2001:db8::/32", false, false },
	{ "2001:db8:1:2::/30", false, "2001:db8::/30", false, false },
	{ "::ffff:192.168.1.0/118", false, "::ffff:192.168.0.0/118", false, false },
	{ "10.0.0.0/33", false, "", false, false },
	{ "foo", false, "", false, false },
	/* the IPv4-mapped space, ::ffff:0:0/96 */
	{ "::/0", true, "", true, false },
	{ "::/80", true, "", true, false },
	{ "::ff00:0:0/88", true, "", true, false },
	{ "::-::1:0:0:0", true, "", true, false },
	{ "::ffff:0:0/96", true, "", false, false },          /* inside: meant */
	{ "::ffff:10.0.0.0/104", true, "", false, false },
	{ "::/81", true, "", false, false },                  /* ::/81 stops at ::7fff:... */
	{ "::1", true, "", false, false },
	{ "2000::/3", true, "", false, false },
	{ "0.0.0.0/0", true, "", false, true },
	{ "0.0.0.0-255.255.255.255", true, "", false, true },
	{ "0.0.0.0/1", true, "", false, false },
	{ "10.0.0.0/8", true, "", false, false },
};

START_TEST(test_netset_note)
{
	struct netset *s = netset_new();
	const char *err = NULL, *in = note_cases[_i].in;
	struct net_note note;
	memset(&note, 0x55, sizeof note);     /* netset_add must set every field */

	bool ok = netset_add(s, in, strlen(in), &err, &note);
	ck_assert_msg(ok == note_cases[_i].ok, "netset_add(\"%s\"): got %d (%s), want %d", in, ok,
		      ok ? "" : err, note_cases[_i].ok);
	ck_assert_msg(strcmp(note.meant, note_cases[_i].meant) == 0,
		      "netset_add(\"%s\"): got meant \"%s\", want \"%s\"", in, note.meant,
		      note_cases[_i].meant);
	if (ok)
		ck_assert_msg(note.spills_into_v4 == note_cases[_i].spills &&
				      note.all_v4 == note_cases[_i].all_v4,
			      "netset_add(\"%s\"): got spills=%d all_v4=%d, want %d %d", in,
			      note.spills_into_v4, note.all_v4, note_cases[_i].spills,
			      note_cases[_i].all_v4);
	netset_free(s);
}
END_TEST

/* netset_interval_format: what dump --values shows for a merged set. */
START_TEST(test_netset_interval_format)
{
	static const char *const nets[] = {
		"192.168.0.0/23", "192.168.2.0/23",    /* merge into one /22 */
		"10.0.0.1-10.0.0.9", "198.51.100.7", "0.0.0.0/1",
		"2001:db8::/32", "fe80::1-fe80::ff", "64:ff9b::/96",
		NULL,
	};
	static const char *const want[] = {
		"0.0.0.0/1", "192.168.0.0/22", "198.51.100.7", "64:ff9b::/96", "2001:db8::/32",
		"fe80::1-fe80::ff",
	};
	struct netset *s = build_set(nets);
	ck_assert_msg(netset_intervals(s) == ARRAY_LEN(want), "got %zu intervals, want %zu",
		      netset_intervals(s), ARRAY_LEN(want));
	for (size_t i = 0; i < ARRAY_LEN(want); i++) {
		char buf[NET_TEXT_MAX];
		netset_interval_format(s, i, buf, sizeof buf);
		ck_assert_msg(strcmp(buf, want[i]) == 0, "interval %zu: got \"%s\", want \"%s\"", i,
			      buf, want[i]);
	}
	netset_free(s);
	/* merged across the end of ::ffff:0:0/96: both ends as IPv6 */
	static const char *const across[] = { "255.255.255.0/24", "::1:0:0:0-::1:0:0:5", NULL };
	s = build_set(across);
	char buf[NET_TEXT_MAX];
	netset_interval_format(s, 0, buf, sizeof buf);
	ck_assert_msg(strcmp(buf, "::ffff:255.255.255.0-::1:0:0:5") == 0, "got \"%s\"", buf);
	netset_free(s);
}
END_TEST

Suite *cidr_suite(void)
{
	Suite *s = suite_create("cidr");
	TCase *tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_ip_parse, 0, ARRAY_LEN(parse_cases));
	tcase_add_test(tc, test_ip_layout);
	tcase_add_test(tc, test_ip_format_truncates);
	suite_add_tcase(s, tc);

	tc = tcase_create("netset");
	tcase_add_loop_test(tc, test_netset_add_errors, 0, ARRAY_LEN(add_errors));
	tcase_add_test(tc, test_netset_members);
	tcase_add_loop_test(tc, test_netset_merge, 0, ARRAY_LEN(merge_cases));
	tcase_add_test(tc, test_netset_empty_and_null);
	tcase_add_loop_test(tc, test_netset_note, 0, ARRAY_LEN(note_cases));
	tcase_add_test(tc, test_netset_interval_format);
	suite_add_tcase(s, tc);

	tc = tcase_create("random");
	/* a scan of 1e5 networks per probe is slow under the sanitizers */
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_netset_random);
	suite_add_tcase(s, tc);
	return s;
}
