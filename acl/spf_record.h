/*
 * spf_record - an SPF record checked against RFC 7208's grammar, and
 * rewritten into the record libspf2 1.2.10 evaluates as RFC 7208 says.
 *
 * libspf2 stays the evaluator (acl/spf.c); this module is the layer
 * around it where it is wrong (docs/dev/dns.md, "SPF: the layer around
 * libspf2"). acl/spf.c's DNS layer runs every SPF record it hands to
 * libspf2 through spf_record_rewrite():
 *
 * - a record that breaks RFC 7208 section 12's ABNF (an unknown
 *   mechanism, a bad domain-spec, macro or cidr, non-ASCII or control
 *   bytes, redirect= or exp= twice) is a syntax error: permerror (4.6),
 *   where libspf2 evaluates many of them anyway;
 * - `/0` prefixes, which libspf2 refuses: ip4:X/0 matches every IPv4
 *   client, so for an IPv4 client it becomes `all` (with its qualifier)
 *   and for an IPv6 client it is dropped (it cannot match one); ip6:X/0
 *   likewise. a/0 and mx/0 match when the domain (each MX host) has any
 *   address of the client's family: the domain gets SPF_RECORD_ANY
 *   appended and the prefix becomes the full length; the DNS layer answers
 *   a lookup of "NAME" SPF_RECORD_ANY from NAME's real answer, with the
 *   client's own address when NAME has any (spf_record_any());
 * - modifiers are moved behind the mechanisms (their place does not
 *   matter, RFC 7208 6; libspf2 refuses redirect= before a mechanism), and
 *   unknown modifiers, which have no effect, are dropped;
 * - before every term that looks up DNS (include, a, mx, ptr, exists,
 *   redirect) a probe is inserted: `exists:KIND` SPF_RECORD_PROBE. libspf2
 *   evaluates terms in order, so the DNS layer sees a probe exactly when
 *   the next term is evaluated, across include: and redirect= alike, and
 *   counts terms and void lookups for RFC 7208 4.6.4 (spf_record_probe()).
 *   A probe never matches (the layer answers it "no such name").
 *
 * Pure functions on strings: no DNS, no libspf2, no state.
 */
#ifndef MXACL_SPF_RECORD_H
#define MXACL_SPF_RECORD_H

#include <stdbool.h>
#include <stddef.h>

/* Suffixes no real name has: .invalid is reserved (RFC 6761 6.4), and a
 * "~" label is no host name; the DNS layer answers them itself, never
 * asking the resolver. The probe is short because libspf2 compiles a
 * record into a fixed buffer (libspf2_keeps_all() in acl/spf.c): each
 * probe costs 12 of its 511 bytes. */
#define SPF_RECORD_ANY ".any.mxacl.invalid"
#define SPF_RECORD_PROBE ".~"

/* The kinds of term that cost a DNS lookup (RFC 7208 4.6.4). */
enum spf_record_kind {
	SPF_RECORD_A, SPF_RECORD_MX, SPF_RECORD_PTR, SPF_RECORD_EXISTS,
	SPF_RECORD_INCLUDE, SPF_RECORD_REDIRECT, SPF_RECORD_NKINDS
};

/* True when txt is an SPF record: "v=spf1" (any case) then a space or
 * the end (RFC 7208 4.5). */
bool spf_record_is_spf(const char *txt);

/* txt (an SPF record) as libspf2 should see it, for a client of the given
 * family (true: IPv6). Returns a malloc'd string the caller frees, and sets
 * *nmech to the number of mechanisms in it (probes included) and *nmod to
 * the number of modifiers, so the caller can tell whether libspf2 kept
 * them all. On a syntax error returns NULL and sets *why to a static
 * message ("unknown mechanism", ...). Never fails otherwise (aborts when
 * out of memory). */
char *spf_record_rewrite(const char *txt, bool ipv6, size_t *nmech, size_t *nmod,
			 const char **why);

/* When name is a probe (KIND SPF_RECORD_PROBE, any case), sets *kind and
 * returns true. */
bool spf_record_probe(const char *name, enum spf_record_kind *kind);

/* When name ends in SPF_RECORD_ANY (any case), returns the length of the
 * name before it (> 0); else 0. */
size_t spf_record_any(const char *name);

#endif
