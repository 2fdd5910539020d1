/*
 * request - one Postfix policy request: parsing the protocol
 * (SMTPD_POLICY_README: "name=value" lines ended by an empty line) and the
 * per-request values the matchers derive from it.
 *
 * A request owns a copy of its bytes, so it outlives the connection buffer
 * it came from (the VM may suspend while the connection reads on). Values
 * are NUL-terminated in place. Unknown attributes are ignored, as Postfix
 * asks; a repeated attribute keeps its last value. So are the names of
 * derived attributes (attrs.h): a request cannot set sender_domain, it is
 * always computed from sender.
 *
 * Reading a value: req_get(r, id) for any attribute, sent or derived (it
 * computes a derived one on first use); req_lower(r, id) for the same
 * folded to lower case. r->v[id] directly is right only for a sent id
 * (id < ATTR_SENT_COUNT).
 */
#ifndef MXACL_REQUEST_H
#define MXACL_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "engine/attrs.h"
#include "util/util.h"

/* Hard limits on what a client may send (STYLE rule 9). */
#define REQ_MAX_LINE 8192     /* one "name=value" line, without the newline */
#define REQ_MAX_ATTRS 256     /* attribute lines in one request */
#define REQ_MAX_SIZE 65536    /* whole request, with the empty line */

struct req_value {
	const char *s;   /* NUL-terminated; "" when absent */
	uint32_t len;
	bool present;
};

struct request {
	struct req_value v[ATTR_COUNT];
	char *buf;               /* owned copy of the request bytes */
	size_t buflen;
	time_t now;              /* the request's clock (see req_set_clock) */
	struct arena *arena;     /* per-request scratch: derived values, VM */
	/* lazily derived, lower-cased copies of values; NULL until asked */
	const char *lower[ATTR_COUNT];
	/* which derived attributes v[] holds already (see req_get) */
	bool derived[ATTR_COUNT - ATTR_SENT_COUNT];
};

enum req_scan {
	REQ_SCAN_MORE,      /* no complete request yet; read more */
	REQ_SCAN_COMPLETE,  /* *reqlen bytes hold one request */
	REQ_SCAN_ERROR,     /* protocol or limit violation (also an empty
			       request: a blank line first); *err says which */
};

/*
 * Look for one complete request at the start of buf[0..len). Checks the
 * limits on what has arrived so far, so an overlong line or request is
 * caught before it completes. Does not modify buf. *err is a static string.
 */
enum req_scan req_scan(const char *buf, size_t len, size_t *reqlen, const char **err);

/*
 * Parse one complete request (as found by req_scan) into r, copying the
 * bytes. r must be fresh from req_new. Returns false with *err (static) on a
 * malformed request: a line without '=', an empty name, too many lines.
 */
bool req_parse(struct request *r, const char *buf, size_t len, const char **err);

/* A new empty request with its own arena; req_free(NULL) is a no-op. */
struct request *req_new(void);
void req_free(struct request *r);
/* Forget the parsed values and scratch memory, keeping the allocations. */
void req_reset(struct request *r);

/*
 * Set r->now: from policy_test_time when use_test_time and it is present
 * and numeric, else from fallback (the caller's clock).
 */
void req_set_clock(struct request *r, bool use_test_time, time_t fallback);

/*
 * The value of any attribute of r, sent or derived: the one accessor acl
 * types and the VM use (a DNS fact's ATTR argument, a rate key, a string
 * acl, ${name}). A derived value is computed from its source through its
 * row of ATTR_DERIVED on first call and kept in r->v[id] (in r's arena)
 * until req_reset; present is true when it is not empty. Never fails;
 * the pointer lives as long as r's current request.
 */
const struct req_value *req_get(struct request *r, enum attr_id id);

/* The value of an attribute (sent or derived), folded to lower case
 * (cached per request). */
const char *req_lower(struct request *r, enum attr_id id);

#endif
