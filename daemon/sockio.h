/*
 * sockio - what mxacld's non-blocking client sockets (policy and control
 * clients) share: output waiting in a strbuf from an offset, sent as far
 * as the socket takes it now, and events switched on only when wanted.
 */
#ifndef MXACL_SOCKIO_H
#define MXACL_SOCKIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/util.h"

/*
 * Send out->s[*off..out->len) on fd without blocking; when all is sent the
 * buffer is emptied and *off reset. Returns the bytes sent (0 when the
 * socket takes none now), or -1 with errno set on a real error (the peer
 * is gone: the caller closes). Never raises SIGPIPE.
 */
ssize_t sockio_send(int fd, struct strbuf *out, size_t *off);

struct event;

/*
 * Add or delete ev so that it is pending exactly when want says; *on
 * remembers its state, so nothing is done when it already matches.
 */
void sockio_watch(struct event *ev, bool *on, bool want);

/* Whether bytes are waiting. */
static inline bool sockio_pending(const struct strbuf *out, size_t off)
{
	return out->len > off;
}

#endif
