/*
 * sendbuf - non-blocking sends of buffered output (see sendbuf.h).
 */
#include "daemon/sendbuf.h"

#include <errno.h>
#include <sys/socket.h>

ssize_t sendbuf_send(int fd, struct strbuf *out, size_t *off)
{
	size_t left = out->len - *off;
	if (left == 0)
		return 0;
	ssize_t w = send(fd, out->s + *off, left, MSG_NOSIGNAL);
	if (w < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		return 0;
	}
	*off += (size_t)w;
	if (*off == out->len) {
		sb_reset(out);
		*off = 0;
	}
	return w;
}
