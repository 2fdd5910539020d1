/*
 * cidr - IP addresses and sets of networks for client_address and
 * server_address acls.
 *
 * Both families share one 128-bit space: an IPv4 address is stored as the
 * IPv4-mapped IPv6 address ::ffff:a.b.c.d, so 10.0.0.0/8 is ::ffff:a00:0/104.
 * A netset is built by netset_add (networks, masks, ranges), then frozen
 * into a sorted array of disjoint, merged intervals; a lookup is a binary
 * search (O(log n): a hundred thousand networks cost ~17 comparisons).
 */
#ifndef MXACL_CIDR_H
#define MXACL_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ipaddr {
	uint64_t hi, lo;   /* network byte order read as two big-endian halves */
};

/*
 * Parse an IPv4 ("192.0.2.1") or IPv6 ("2001:db8::1", "::ffff:192.0.2.1")
 * address of len bytes. An IPv6 address may be written "[2001:db8::1]" or
 * "ipv6:2001:db8::1" as Postfix sometimes logs it. An IPv4-mapped IPv6
 * address equals the IPv4 address. Returns false when s is not an address.
 */
bool ip_parse(const char *s, size_t len, struct ipaddr *out);
/* True when a is an IPv4 (mapped) address. */
bool ip_is_v4(const struct ipaddr *a);
/*
 * Clear the host bits of a under a prefix of len bits, counted in a's own
 * family (an IPv4 /24 is 24, not 120). len must be 0..32 for IPv4 and
 * 0..128 for IPv6.
 */
void ip_mask(struct ipaddr *a, unsigned len);
/* Format a into buf (at least 46 bytes) the usual way (IPv4 dotted). */
void ip_format(const struct ipaddr *a, char *buf, size_t size);

struct netset;

struct netset *netset_new(void);
void netset_free(struct netset *s);   /* NULL is a no-op */

/* Longest text of one network or range: two IPv6 addresses and a dash. */
#define NET_TEXT_MAX 96

/* What netset_add noticed about a network, for warnings and hints. */
struct net_note {
	/*
	 * Written as IPv6 and holding some of ::ffff:0:0/96 (the IPv4
	 * addresses) without lying inside it: "::/0" also matches every
	 * IPv4 client, which "IPv6 clients" did not mean.
	 */
	bool spills_into_v4;
	bool all_v4;             /* written as IPv4 and holding all of it (0.0.0.0/0) */
	/*
	 * Refused for host bits under the prefix: the network with those bits
	 * cleared, as written otherwise ("192.168.1.0/22" -> "192.168.0.0/22");
	 * "" when refused for another reason.
	 */
	char meant[NET_TEXT_MAX];
};

/*
 * Add one network written as an address, "addr/len", "a.b.c.d/a.b.c.d"
 * (a contiguous netmask), or a range "addr-addr" (inclusive, same family,
 * first <= last). Host bits set under the prefix ("192.0.2.1/24") are an
 * error, as in Postfix cidr tables, because they usually hide a typo. A
 * comma is an error of its own ("a comma list"): values are one network
 * each. Returns false with *err set to a static message on bad input.
 * note may be NULL; else it is filled on success and on error.
 * Must not be called after netset_freeze.
 */
bool netset_add(struct netset *s, const char *text, size_t len, const char **err,
		struct net_note *note);

/* Sort and merge; call once after the last netset_add, before lookups. */
void netset_freeze(struct netset *s);

/* True when a lies in any network of the frozen set. */
bool netset_contains(const struct netset *s, const struct ipaddr *a);

/* Number of disjoint intervals after freezing (for dump and tests). */
size_t netset_intervals(const struct netset *s);

/*
 * Write interval i (< netset_intervals) of a frozen set into buf (at least
 * NET_TEXT_MAX bytes) as a policy would: an address, a network
 * ("192.0.2.0/24", "2001:db8::/32") when it is one, else a range.
 */
void netset_interval_format(const struct netset *s, size_t i, char *buf, size_t size);

#endif
