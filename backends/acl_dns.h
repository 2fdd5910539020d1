/*
 * acl_dns - DNS list acls, asked through the runtime's resolver
 * (backends/dns.h):
 *
 *   acl NAME rbl ZONE[SPEC]... [tempfail=match|nomatch|default]
 *        client_address listed: its octets (IPv4) or nibbles (IPv6)
 *        reversed, under ZONE, have an A record
 *   acl NAME dnswl ZONE[SPEC]...           the same lookup, as an allowlist
 *   acl NAME rhsbl ZONE[SPEC]...           the sender's domain under ZONE
 *   acl NAME rhsbl_helo ZONE[SPEC]...      helo_name under ZONE
 *   acl NAME rhsbl_client ZONE[SPEC]...    client_name under ZONE
 *
 * Several zones are alternatives: the acl matches when any zone lists the
 * key. Every zone's query starts when the acl is evaluated; the acl waits
 * for all of them (so ${rbl_zone} is always the first listing zone in the
 * order written, whatever answered first).
 *
 * SPEC filters the A answers, as Exim's dnslists do (answers outside
 * 127.0.0.0/8 are ignored first, as Exim does: a hijacked list cannot list
 * everyone):
 *   =A,B...   some answer is one of these       ==A,B...  every answer is
 *   &M        some answer has all bits of M      =&M       every answer has
 *   !=, !==, !&, !=&   the same, negated: listed, but the filter fails
 *
 * Answers: any zone lists → match (a timeout elsewhere does not matter);
 * otherwise a timeout or failure of any zone → temporary failure; otherwise
 * no match. On a match the TXT record of the listing is fetched too, and
 * ${rbl_zone}, ${rbl_answer} (the A answers, ascending, comma-separated)
 * and ${rbl_txt} are set. A request without the key (no client address, the
 * null sender, client_name "unknown", an address literal) does not match
 * and sends no query.
 */
#ifndef MXACL_ACL_DNS_H
#define MXACL_ACL_DNS_H

#include "engine/acltype.h"

extern const struct acl_type acl_rbl_type;
extern const struct acl_type acl_dnswl_type;
extern const struct acl_type acl_rhsbl_type;
extern const struct acl_type acl_rhsbl_helo_type;
extern const struct acl_type acl_rhsbl_client_type;

#endif
