/*
 * acl_state - the acl types that keep state in the store:
 *
 *   acl NAME greylist [delay=DUR] [expire=DUR] [retry_window=DUR] [awl=N]
 *                     [key=PART+PART...] [net4=LEN] [net6=LEN]
 *                     [normalize=yes|no] [tempfail=match|nomatch|default]
 *   acl NAME greylisting [time=MIN,lifetime=MIN]      (apolicy's form)
 *   acl NAME rate ATTR[+ATTR...] LIMIT/DUR [tempfail=...]
 *
 * A greylist acl matches while the request must wait; a rate acl matches
 * when this request makes more than LIMIT events for its key in DUR.
 */
#ifndef MXACL_ACL_STATE_H
#define MXACL_ACL_STATE_H

#include <stddef.h>

#include "engine/acltype.h"

extern const struct acl_type acl_greylist_type;
extern const struct acl_type acl_greylisting_type;
extern const struct acl_type acl_rate_type;

/*
 * Normalise a sender for a greylist key as postgrey does: lower case,
 * BATV (prvs=...=) and SRS (SRS0=/SRS1=) undone, +extension dropped,
 * numbers that stand alone in the local part replaced by '#'; the null
 * sender becomes "<>". Writes at most size bytes (NUL-terminated).
 */
void grey_normalize_sender(const char *s, size_t len, char *out, size_t size);

#endif
