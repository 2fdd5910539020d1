/*
 * client - the socket plumbing mxacld's policy and control clients share
 * (see client.h).
 */
#include "daemon/client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/log.h"

void client_set_init(struct client_set *set)
{
	TAILQ_INIT(&set->all);
	set->count = 0;
}

void client_open(struct client *cl, struct client_set *set, struct event_base *base,
		 int fd, char *name, event_callback_fn on_read, event_callback_fn on_write,
		 event_callback_fn on_timeout, void *arg)
{
	cl->set = set;
	cl->fd = fd;
	cl->name = name;
	cl->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_read, arg);
	cl->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, on_write, arg);
	cl->tev = evtimer_new(base, on_timeout, arg);
	if (!cl->rev || !cl->wev || !cl->tev)
		fatal_abort("out of memory for connection events");
	cl->reading = cl->writing = cl->timing = false;
	cl->eof = false;
	sb_init(&cl->out);
	cl->out_off = 0;
	TAILQ_INSERT_HEAD(&set->all, cl, link);
	set->count++;
}

void client_close(struct client *cl)
{
	/* event_free deletes a pending or activated event first: no callback
	 * of cl runs after this, even one due in this loop pass. */
	event_free(cl->rev);
	event_free(cl->wev);
	event_free(cl->tev);
	close(cl->fd);
	sb_free(&cl->out);
	free(cl->name);
	TAILQ_REMOVE(&cl->set->all, cl, link);
	cl->set->count--;
	cl->set = NULL;
}

ssize_t client_read(struct client *cl, void *buf, size_t cap)
{
	ssize_t n = read(cl->fd, buf, cap);
	if (n > 0)
		return n;
	if (n == 0) {
		cl->eof = true;
		return 0;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	log_warning("%s: read: %s; closing the connection", cl->name, strerror(errno));
	return -1;
}

ssize_t client_flush(struct client *cl)
{
	size_t left = cl->out.len - cl->out_off;
	if (left == 0)
		return 0;
	ssize_t w = send(cl->fd, cl->out.s + cl->out_off, left, MSG_NOSIGNAL);
	if (w < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		if (cl->eof && (errno == EPIPE || errno == ECONNRESET))
			log_info("%s: the client left before reading its replies", cl->name);
		else
			log_warning("%s: write: %s; closing the connection", cl->name,
				    strerror(errno));
		return -1;
	}
	cl->out_off += (size_t)w;
	if (cl->out_off == cl->out.len) {
		sb_reset(&cl->out);
		cl->out_off = 0;
	}
	return w;
}

/* Add or delete ev so that it is pending exactly when want says. */
static void client_switch(struct event *ev, bool *on, bool want)
{
	if (want == *on)
		return;
	if (want)
		event_add(ev, NULL);
	else
		event_del(ev);
	*on = want;
}

void client_watch(struct client *cl, bool want_read, bool want_write)
{
	client_switch(cl->rev, &cl->reading, want_read);
	client_switch(cl->wev, &cl->writing, want_write);
}

void client_timer(struct client *cl, const struct timeval *tv, bool restart)
{
	if (!tv) {
		if (cl->timing)
			event_del(cl->tev);
		cl->timing = false;
	} else if (!cl->timing || restart) {
		event_add(cl->tev, tv);
		cl->timing = true;
	}
}
