/*
 * greylist - the greylisting acl types, whose state is in the store:
 *
 *   acl NAME greylist [delay=DUR] [expire=DUR] [retry_window=DUR] [awl=N]
 *                     [key=PART+PART...] [net4=LEN] [net6=LEN]
 *                     [normalize=yes|no] [tempfail=match|nomatch|default]
 *   acl NAME greylisting [time=MIN,lifetime=MIN]      (apolicy's form)
 *
 * A greylist acl matches while the request must wait. The types are rows
 * of acl/types.c; this header is for the key normalisation, which mxacl's
 * unit tests check against postgrey's.
 */
#ifndef MXACL_GREYLIST_H
#define MXACL_GREYLIST_H

#include <stddef.h>

/*
 * Normalise a sender for a greylist key as postgrey does: lower case,
 * BATV (prvs=...=) and SRS (SRS0=/SRS1=) undone, +extension dropped,
 * numbers that stand alone in the local part replaced by '#'; the null
 * sender becomes "<>". Writes at most size bytes (NUL-terminated).
 */
void grey_normalize_sender(const char *s, size_t len, char *out, size_t size);

#endif
