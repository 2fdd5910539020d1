/*
 * conn - client connections (see conn.h).
 *
 * The hot path is: read() into the connection's buffer, req_scan/req_parse
 * each complete request into the connection's one struct request (reset,
 * not reallocated), vm_run, append the reply to the connection's output,
 * and one send() for all the replies of the batch. The decision line goes
 * to the log buffer, which the daemon flushes once per loop iteration.
 *
 * Each connection is in one of these states, which decide its events:
 *
 *   idle       nothing buffered: read; idle timer
 *   partial    part of a request buffered: read; request timer, started
 *              when the partial request was first seen
 *   suspended  a VM waits for a lookup: read (to notice a close, up to the
 *              buffer's limit) but start no request; no timer, the
 *              lookups have their own
 *   blocked    replies the client has not read: write, do not read;
 *              request timer
 */
#include "daemon/conn.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "engine/engine.h"
#include "engine/request.h"
#include "util/log.h"
#include "util/util.h"

/* The buffer starts here and grows, by doubling, up to a whole request of
 * the largest size and as much again of the requests behind it. */
#define CONN_IN_FIRST 16384
#define CONN_IN_MAX (2 * REQ_MAX_SIZE)
/* Below this much free space the buffer is compacted or grown first. */
#define CONN_READ_MIN 4096

enum conn_timer { CONN_TIMER_NONE, CONN_TIMER_IDLE, CONN_TIMER_REQUEST };

struct conn {
	struct conn_pool *pool;
	struct conn *prev, *next;
	int fd;
	char *peer;                  /* for log lines */
	struct event *rev;           /* EV_READ | EV_PERSIST */
	struct event *wev;           /* EV_WRITE | EV_PERSIST, while blocked */
	struct event *tev;           /* the idle or request timer */
	struct event *resume_ev;     /* runs a resumed VM from the loop */
	bool reading, writing;       /* rev / wev added */
	enum conn_timer timer;
	bool progress;               /* a request ended since the timer was set */
	char *in;                    /* unprocessed input: in[in_off..in_len) */
	size_t in_off, in_len, in_cap;
	struct strbuf out;           /* replies not yet sent: out.s[out_off..] */
	size_t out_off;
	struct request *req;         /* reused for every request */
	struct vm *vm;               /* the suspended request, or NULL */
};

struct conn_pool {
	struct event_base *base;
	struct runtime *rt;
	struct program *program;
	struct conn_limits lim;
	const struct timeval *idle_tv;     /* libevent common timeouts: O(1) */
	const struct timeval *request_tv;  /*   re-arming for every request */
	struct conn *head;
	size_t count;
	struct strbuf line;                /* the decision line being logged */
	time_t refused_logged;             /* last second a refusal was logged */
	unsigned long refused_quiet;       /* refusals since, not logged */
};

static double conn_secs(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

/* Close and free c. Nothing may use c afterwards. */
static void conn_close(struct conn *c)
{
	struct conn_pool *pool = c->pool;
	vm_free(c->vm);   /* abandons its lookups; resume is not called */
	event_free(c->rev);
	event_free(c->wev);
	event_free(c->tev);
	event_free(c->resume_ev);
	close(c->fd);
	req_free(c->req);
	sb_free(&c->out);
	free(c->in);
	free(c->peer);
	if (c->prev)
		c->prev->next = c->next;
	else
		pool->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pool->count--;
	free(c);
}

/* Send what we can of the replies; false when c was closed. */
static bool conn_flush(struct conn *c)
{
	size_t left = c->out.len - c->out_off;
	if (left == 0)
		return true;
	ssize_t w = send(c->fd, c->out.s + c->out_off, left, MSG_NOSIGNAL);
	if (w < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			log_warning("%s: write: %s; closing the connection", c->peer,
				    strerror(errno));
			conn_close(c);
			return false;
		}
		w = 0;
	}
	c->out_off += (size_t)w;
	if (c->out_off == c->out.len) {
		sb_reset(&c->out);
		c->out_off = 0;
	}
	return true;
}

/*
 * Drop a client that broke the protocol or a limit: the replies it already
 * earned go out if the socket takes them at once, the bad request gets
 * none.
 */
static void conn_reject(struct conn *c, const char *why)
{
	log_warning("%s: bad request: %s; closing the connection without a reply", c->peer, why);
	if (conn_flush(c))
		conn_close(c);
}

/* A request is done: queue its reply and log its decision. */
static void conn_finish(struct conn *c, struct vm *vm)
{
	struct conn_pool *pool = c->pool;
	vm_reply(vm, &c->out);
	sb_reset(&pool->line);
	vm_log_line(vm, &pool->line);
	log_info("%s", pool->line.s);
	vm_free(vm);
	c->progress = true;
}

/*
 * Start every complete request in the buffer, in order, until one
 * suspends. Returns false when c was closed.
 */
static bool conn_process(struct conn *c)
{
	struct conn_pool *pool = c->pool;
	while (c->vm == NULL && c->in_off < c->in_len) {
		const char *buf = c->in + c->in_off;
		size_t avail = c->in_len - c->in_off, reqlen = 0;
		const char *err = NULL;
		enum req_scan st = req_scan(buf, avail, &reqlen, &err);
		if (st == REQ_SCAN_MORE) {
			/* The buffer holds more than a whole request of the
			 * largest size: req_scan should have said so. */
			if (avail >= CONN_IN_MAX) {
				conn_reject(c, "request too large");
				return false;
			}
			break;
		}
		if (st == REQ_SCAN_ERROR) {
			conn_reject(c, err ? err : "malformed request");
			return false;
		}
		assert(reqlen > 0 && reqlen <= avail);
		req_reset(c->req);
		if (!req_parse(c->req, buf, reqlen, &err)) {
			conn_reject(c, err ? err : "malformed request");
			return false;
		}
		c->in_off += reqlen;

		/* mxacld always decides on its own clock, never the client's. */
		struct timeval now;
		event_base_gettimeofday_cached(pool->base, &now);
		req_set_clock(c->req, false, now.tv_sec);
		struct vm *vm = vm_new(pool->rt, pool->program, c->req, NULL, NULL);
		(void)vm;
		assert(0 && "replaced below");
	}
	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
	return true;
}
