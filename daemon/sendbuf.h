/*
 * sendbuf - the output side of mxacld's non-blocking sockets (policy
 * clients and control clients): bytes waiting in a strbuf from an offset,
 * sent as far as the socket takes them now.
 */
#ifndef MXACL_SENDBUF_H
#define MXACL_SENDBUF_H

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
ssize_t sendbuf_send(int fd, struct strbuf *out, size_t *off);

/* Whether bytes are waiting. */
static inline bool sendbuf_pending(const struct strbuf *out, size_t off)
{
	return out->len > off;
}

#endif
