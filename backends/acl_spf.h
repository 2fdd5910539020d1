/*
 * acl_spf - the SPF verdict of a request, from libspf2:
 *
 *   acl NAME spf RESULT... [tempfail=match|nomatch|default]
 *
 * RESULT is pass, fail, softfail, neutral, none, permerror or temperror
 * (RFC 7208). The identity checked is the MAIL FROM address's domain for
 * client_address; for the null sender it is helo_name (RFC 7208 section
 * 2.4: postmaster@HELO). The acl matches when the verdict is one of its
 * results. A temperror (a lookup timed out or failed) matches an acl that
 * lists temperror; for any other acl it is a temporary failure, so the
 * acl's tempfail= setting decides, as for every lookup. A request without
 * a client address, or without both sender and helo_name, does not match
 * and sends no query.
 *
 * ${spf_result} holds the verdict's name and ${spf_received} the value of
 * a Received-SPF: header (RFC 7208 section 9.1), for
 * "PREPEND Received-SPF: ${spf_received}". The verdict is computed once
 * per request, whatever the number of spf acls.
 *
 * libspf2 resolves synchronously; here it never waits. It runs with a DNS
 * layer that answers only from the answers this evaluation has collected,
 * and reports every other name as a temporary failure (TRY_AGAIN) after
 * noting it. Such a run is thrown away: the noted names are looked up
 * through the runtime's resolver (backends/dns.h) and libspf2 runs again,
 * until a run needs nothing new (docs/dns.md).
 */
#ifndef MXACL_ACL_SPF_H
#define MXACL_ACL_SPF_H

#include "engine/acltype.h"

extern const struct acl_type acl_spf_type;

#endif
