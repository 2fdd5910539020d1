/*
 * derive - the functions that compute derived attributes (the rows of
 * ATTR_DERIVED in engine/attrs.h) from their source's value: the domain
 * and local part of an address, and the registered domain of a host name
 * (its public suffix plus one label, from libpsl's built-in Public Suffix
 * List, ICANN and private sections both).
 *
 * Each function reads len bytes of s (the source value as the request sent
 * it, not NUL-terminated) and sets *out to the derived value, NUL-terminated,
 * either pointing into s (NUL-terminated at s[len]: so *out is, when it
 * ends where s does; s must outlive it) or
 * allocated in arena a (the request's). An empty *out means "no such
 * value": the null sender has no domain, "unknown" has no registered
 * domain. None fails, blocks or calls back.
 *
 * Callers do not call these directly: req_get() (engine/request.h) computes
 * a derived attribute through its row on first use and caches it.
 */
#ifndef MXACL_DERIVE_H
#define MXACL_DERIVE_H

#include <stddef.h>

#include "util/util.h"

typedef void derive_fn(struct arena *a, const char *s, size_t len, const char **out,
		       size_t *outlen);

/* What follows the last '@' of an address; "" without an '@'. */
derive_fn derive_domain;
/* What precedes the last '@' of an address; "" without an '@' (as postfwd:
 * a value without '@' is not split). */
derive_fn derive_localpart;
/*
 * The registered domain of a host or mail domain name, lower-cased (ASCII,
 * and UTF-8 letters of an IDN), without a trailing dot, in the form given
 * (an A-label "xn--..." stays one, a U-label stays UTF-8):
 * "mail.example.co.uk" → "example.co.uk", "a.b.blogspot.com" →
 * "b.blogspot.com" (a private suffix). "" for a public suffix itself
 * ("co.uk"), a single label ("localhost"), Postfix's "unknown", an address
 * literal ("[192.0.2.1]", "192.0.2.1", "2001:db8::1") and a name that is
 * not valid UTF-8.
 */
derive_fn derive_registered;

#endif
