/*
 * sockio - shared socket plumbing of mxacld's clients (see sockio.h).
 */
#include "daemon/sockio.h"

#include <errno.h>
#include <event2/event.h>
#include <sys/socket.h>

ssize_t sockio_send(int fd, struct strbuf *out, size_t *off)
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

void sockio_watch(struct event *ev, bool *on, bool want)
{
	if (want == *on)
		return;
	if (want)
		event_add(ev, NULL);
	else
		event_del(ev);
	*on = want;
}
