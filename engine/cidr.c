/*
 * cidr - IP addresses and frozen sets of networks (see cidr.h).
 *
 * Every network, mask and range becomes one closed interval [first, last]
 * of the 128-bit space. Freezing sorts them and merges the ones that
 * overlap or touch, so a lookup is one binary search and never allocates.
 */
#include "engine/cidr.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

/* Longest text we hand to inet_pton: an IPv6 address is at most 45 bytes. */
#define IP_TEXT_MAX 63

/* The ::ffff:0:0/96 prefix that IPv4 addresses live under. */
#define IP_V4_MAPPED_LO 0x0000ffff00000000ULL

struct ip_interval {
	struct ipaddr first, last;
};

struct netset {
	struct ip_interval *iv;
	size_t n, cap;
	bool frozen;
};

static bool ip_lt(const struct ipaddr *a, const struct ipaddr *b)
{
	return a->hi < b->hi || (a->hi == b->hi && a->lo < b->lo);
}

static bool ip_le(const struct ipaddr *a, const struct ipaddr *b)
{
	return a->hi < b->hi || (a->hi == b->hi && a->lo <= b->lo);
}

static uint64_t be64_load(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* The netmask of a prefix of bits (0..128) in the 128-bit space. */
static struct ipaddr ip_prefix_mask(unsigned bits)
{
	struct ipaddr m = { 0, 0 };
	/* shifting a uint64_t by 64 is undefined, hence the special cases */
	if (bits >= 64) {
		m.hi = ~0ULL;
		m.lo = bits == 64 ? 0 : ~0ULL << (128 - bits);
	} else if (bits > 0) {
		m.hi = ~0ULL << (64 - bits);
	}
	return m;
}

/*
 * Parse an address of len bytes, without the Postfix decorations. *family
 * is the family as written (4 or 6), which decides how a prefix length
 * counts even for "::ffff:a.b.c.d".
 */
static bool ip_parse_plain(const char *s, size_t len, struct ipaddr *out, int *family)
{
	char buf[IP_TEXT_MAX + 1];
	unsigned char bytes[16];

	/* a NUL inside would let inet_pton accept a prefix of the text */
	if (len == 0 || len > IP_TEXT_MAX || memchr(s, 0, len))
		return false;
	memcpy(buf, s, len);
	buf[len] = 0;
	if (memchr(buf, ':', len) == NULL) {
		if (inet_pton(AF_INET, buf, bytes) != 1)
			return false;
		out->hi = 0;
		out->lo = IP_V4_MAPPED_LO | (uint64_t)bytes[0] << 24 |
			  (uint64_t)bytes[1] << 16 | (uint64_t)bytes[2] << 8 | bytes[3];
		*family = 4;
		return true;
	}
	if (inet_pton(AF_INET6, buf, bytes) != 1)
		return false;
	out->hi = be64_load(bytes);
	out->lo = be64_load(bytes + 8);
	*family = 6;
	return true;
}

/*
 * ip_parse with the written family: strips "[...]" (the SMTP address
 * literal, accepted for IPv4 too) and "ipv6:" (which must hold IPv6).
 */
static bool ip_parse_family(const char *s, size_t len, struct ipaddr *out, int *family)
{
	bool want_v6 = false;

	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		s++;
		len -= 2;
	}
	if (len > 5 && ascii_nieq(s, "ipv6:", 5)) {
		s += 5;
		len -= 5;
		want_v6 = true;
	}
	if (!ip_parse_plain(s, len, out, family))
		return false;
	return !want_v6 || *family == 6;
}

bool ip_parse(const char *s, size_t len, struct ipaddr *out)
{
	int family;
	return ip_parse_family(s, len, out, &family);
}

bool ip_is_v4(const struct ipaddr *a)
{
	return a->hi == 0 && (a->lo >> 32) == 0xffff;
}

void ip_mask(struct ipaddr *a, unsigned len)
{
	struct ipaddr m = ip_prefix_mask(ip_is_v4(a) ? 96 + len : len);
	a->hi &= m.hi;
	a->lo &= m.lo;
}

void ip_format(const struct ipaddr *a, char *buf, size_t size)
{
	char tmp[INET6_ADDRSTRLEN];
	unsigned char bytes[16];

	if (size == 0)
		return;
	if (ip_is_v4(a)) {
		uint32_t v = (uint32_t)a->lo;
		snprintf(buf, size, "%u.%u.%u.%u", v >> 24, (v >> 16) & 0xff,
			 (v >> 8) & 0xff, v & 0xff);
		return;
	}
	for (int i = 0; i < 8; i++) {
		bytes[i] = (unsigned char)(a->hi >> (56 - 8 * i));
		bytes[8 + i] = (unsigned char)(a->lo >> (56 - 8 * i));
	}
	if (!inet_ntop(AF_INET6, bytes, tmp, sizeof tmp))
		tmp[0] = 0;   /* cannot happen with a buffer this size */
	snprintf(buf, size, "%s", tmp);
}

struct netset *netset_new(void)
{
	return xcalloc(1, sizeof(struct netset));
}

void netset_free(struct netset *s)
{
	if (!s)
		return;
	free(s->iv);
	free(s);
}

/* Parse the decimal prefix length after '/'; at most three digits. */
static bool netset_prefix_len(const char *s, size_t len, unsigned max, unsigned *out)
{
	unsigned v = 0;

	if (len == 0 || len > 3)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* Parse a dotted IPv4 netmask into a prefix length; it must be contiguous. */
static bool netset_netmask(const char *s, size_t len, unsigned *bits, const char **err)
{
	char buf[16];
	unsigned char b[4];

	if (len >= sizeof buf || memchr(s, 0, len)) {
		*err = "bad netmask";
		return false;
	}
	memcpy(buf, s, len);
	buf[len] = 0;
	if (inet_pton(AF_INET, buf, b) != 1) {
		*err = "bad netmask";
		return false;
	}
	uint32_t m = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	uint32_t inv = ~m;
	/* the host part must be a run of low one bits: 0...01...1 */
	if (inv & (inv + 1)) {
		*err = "netmask is not contiguous";
		return false;
	}
	unsigned n = 0;
	while (n < 32 && (m & (0x80000000u >> n)))
		n++;
	*bits = n;
	return true;
}

static void netset_push(struct netset *s, const struct ipaddr *first, const struct ipaddr *last)
{
	struct ip_interval iv = { *first, *last };
	VEC_PUSH(s->iv, s->n, s->cap, iv);
}

static const struct ipaddr ip_v4_first = { 0, IP_V4_MAPPED_LO };
static const struct ipaddr ip_v4_last = { 0, IP_V4_MAPPED_LO | 0xffffffffULL };

/* Fill note's flags for [first, last] written in families f1 and f2. */
static void netset_note_span(struct net_note *note, const struct ipaddr *first,
			     const struct ipaddr *last, int f1, int f2)
{
	if (!note)
		return;
	bool overlaps = ip_le(first, &ip_v4_last) && ip_le(&ip_v4_first, last);
	bool inside = ip_le(&ip_v4_first, first) && ip_le(last, &ip_v4_last);
	note->spills_into_v4 = (f1 == 6 || f2 == 6) && overlaps && !inside;
	note->all_v4 = f1 == 4 && f2 == 4 && ip_le(first, &ip_v4_first) && ip_le(&ip_v4_last, last);
}

/* An address in its written family: "::ffff:a.b.c.d" stays IPv6 text. */
static void ip_format_family(const struct ipaddr *a, int family, char *buf, size_t size)
{
	if (family == 6 && ip_is_v4(a)) {
		char v4[INET_ADDRSTRLEN];
		ip_format(a, v4, sizeof v4);
		snprintf(buf, size, "::ffff:%s", v4);
		return;
	}
	ip_format(a, buf, size);
}

/* Add "first-last"; both ends of the same family, first <= last. */
static bool netset_add_range(struct netset *s, const char *text, size_t len,
			     const char *dash, const char **err, struct net_note *note)
{
	struct ipaddr first, last;
	int f1, f2;
	size_t n1 = (size_t)(dash - text);

	if (!ip_parse_family(text, n1, &first, &f1) ||
	    !ip_parse_family(dash + 1, len - n1 - 1, &last, &f2)) {
		*err = "bad address in range";
		return false;
	}
	if (ip_is_v4(&first) != ip_is_v4(&last)) {
		*err = "range mixes IPv4 and IPv6";
		return false;
	}
	if (ip_lt(&last, &first)) {
		*err = "range starts after its end";
		return false;
	}
	netset_note_span(note, &first, &last, f1, f2);
	netset_push(s, &first, &last);
	return true;
}

bool netset_add(struct netset *s, const char *text, size_t len, const char **err,
		struct net_note *note)
{
	struct ipaddr addr;
	int family;
	unsigned bits;

	assert(!s->frozen);
	if (note)
		*note = (struct net_note){ 0 };
	if (len == 0) {
		*err = "empty network";
		return false;
	}
	/* Postfix's mynetworks and postfwd take "10.0.0.0/8, 192.0.2.0/24";
	 * without this it fails further on as a "bad netmask" */
	if (memchr(text, ',', len)) {
		*err = "a comma list: write each network as a value of its own, separated by blanks";
		return false;
	}
	const char *slash = memchr(text, '/', len);
	const char *dash = memchr(text, '-', len);
	if (dash) {
		if (slash) {
			*err = "a range cannot have a prefix length";
			return false;
		}
		return netset_add_range(s, text, len, dash, err, note);
	}
	size_t alen = slash ? (size_t)(slash - text) : len;
	if (!ip_parse_family(text, alen, &addr, &family)) {
		*err = "not an IP address";
		return false;
	}
	if (!slash) {
		netset_note_span(note, &addr, &addr, family, family);
		netset_push(s, &addr, &addr);
		return true;
	}
	const char *p = slash + 1;
	size_t plen = len - alen - 1;
	if (plen > 0 && memchr(p, '.', plen)) {
		if (family != 4) {
			*err = "a dotted netmask needs an IPv4 address";
			return false;
		}
		if (!netset_netmask(p, plen, &bits, err))
			return false;
	} else if (!netset_prefix_len(p, plen, family == 4 ? 32 : 128, &bits)) {
		*err = family == 4 ? "bad prefix length (want 0-32)" : "bad prefix length (want 0-128)";
		return false;
	}
	if (family == 4)
		bits += 96;
	struct ipaddr m = ip_prefix_mask(bits);
	if ((addr.hi & ~m.hi) || (addr.lo & ~m.lo)) {
		*err = "host bits set under the prefix";
		if (note) {
			/* postfwd's sample has 192.168.1.0/22: say which network that is */
			struct ipaddr net = { addr.hi & m.hi, addr.lo & m.lo };
			char a[INET6_ADDRSTRLEN + 8];
			ip_format_family(&net, family, a, sizeof a);
			snprintf(note->meant, sizeof note->meant, "%s/%.*s", a, (int)plen, p);
		}
		return false;
	}
	struct ipaddr last = { addr.hi | ~m.hi, addr.lo | ~m.lo };
	netset_note_span(note, &addr, &last, family, family);
	netset_push(s, &addr, &last);
	return true;
}

static int netset_cmp(const void *pa, const void *pb)
{
	const struct ip_interval *a = pa, *b = pb;
	if (ip_lt(&a->first, &b->first))
		return -1;
	return ip_lt(&b->first, &a->first);
}

/* True when b == a + 1, i.e. the intervals ending at a and starting at b touch. */
static bool ip_is_next(const struct ipaddr *a, const struct ipaddr *b)
{
	uint64_t lo = a->lo + 1;
	uint64_t hi = a->hi + (lo == 0);
	if (lo == 0 && hi == 0)
		return false;   /* a is the last address: nothing follows it */
	return b->hi == hi && b->lo == lo;
}

void netset_freeze(struct netset *s)
{
	size_t w = 0;

	if (s->n > 1)
		qsort(s->iv, s->n, sizeof s->iv[0], netset_cmp);
	for (size_t i = 0; i < s->n; i++) {
		struct ip_interval *cur = &s->iv[i];
		if (w > 0) {
			struct ip_interval *prev = &s->iv[w - 1];
			if (ip_le(&cur->first, &prev->last) || ip_is_next(&prev->last, &cur->first)) {
				if (ip_lt(&prev->last, &cur->last))
					prev->last = cur->last;
				continue;
			}
		}
		s->iv[w++] = *cur;
	}
	s->n = w;
	if (w < s->cap) {
		/* the set lives as long as the program: give the slack back */
		s->iv = xrealloc(s->iv, (w ? w : 1) * sizeof s->iv[0]);
		s->cap = w ? w : 1;
	}
	s->frozen = true;
}

bool netset_contains(const struct netset *s, const struct ipaddr *a)
{
	size_t lo = 0, hi = s->n;

	assert(s->frozen);
	/* find the first interval that starts after a; a can only be in the one before */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ip_le(&s->iv[mid].first, a))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && ip_le(a, &s->iv[lo - 1].last);
}

size_t netset_intervals(const struct netset *s)
{
	return s->n;
}

void netset_interval_format(const struct netset *s, size_t i, char *buf, size_t size)
{
	const struct ipaddr *first = &s->iv[i].first, *last = &s->iv[i].last;
	char a[INET6_ADDRSTRLEN + 8], b[INET6_ADDRSTRLEN + 8];
	bool v4 = ip_is_v4(first) && ip_is_v4(last);
	/* mixed ends (merged across ::ffff:0:0/96) are both written as IPv6 */
	ip_format_family(first, v4 ? 4 : 6, a, sizeof a);
	if (first->hi == last->hi && first->lo == last->lo) {
		snprintf(buf, size, "%s", a);
		return;
	}
	for (unsigned bits = v4 ? 96 : 0; bits <= 128; bits++) {
		struct ipaddr m = ip_prefix_mask(bits);
		if ((first->hi & ~m.hi) || (first->lo & ~m.lo))
			continue;
		if (last->hi == (first->hi | ~m.hi) && last->lo == (first->lo | ~m.lo)) {
			snprintf(buf, size, "%s/%u", a, v4 ? bits - 96 : bits);
			return;
		}
	}
	ip_format_family(last, v4 ? 4 : 6, b, sizeof b);
	snprintf(buf, size, "%s-%s", a, b);
}
