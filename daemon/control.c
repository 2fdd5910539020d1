/*
 * control - the administration socket (see control.h).
 *
 * A client is in one of these states, which decide its events:
 *
 *   reading    no command running, no answer pending: read; idle timer,
 *              restarted when a command ends, not by bytes of a partial
 *              line (a trickling client cannot hold a slot for ever)
 *   running    a store operation is in flight: no read, no timer (the
 *              store has its own timeouts and always answers)
 *   listing    a listing in slices: no read; the next slice once the
 *              answer so far is out; the idle timer as when writing
 *   writing    an answer the client has not read yet: write, no read;
 *              the idle timer, restarted whenever bytes go out
 *   draining   after a line too long: the error is out and our side shut;
 *              what the client still sends is read and dropped until it
 *              closes (closing with unread input would reset the
 *              connection and lose the error line); the idle timer runs on
 *
 * A store operation is a struct control_op of its own, not part of the
 * client: the client may go away (or mxacld stop) while the store still
 * owes an answer, and the store's callback must then find something valid
 * to call into. The op frees itself on the store's final call when its
 * client has gone; otherwise the client frees it. Callbacks only append to
 * the answer and activate an event: nothing is flushed or closed while a
 * store frame may be on the stack (the memory store answers inside the
 * call).
 *
 * A listing from a store that answers at once (the memory store, whose
 * table may hold millions of entries) goes in slices (store.h,
 * list_slice): one slice of CONTROL_LIST_SLICE buckets per loop pass, and
 * the next only once the client has taken the answer so far. The loop
 * never holds more than a slice, nor the buffer more than a slice's lines;
 * a client that stops reading stops its listing (and is dropped by the
 * idle timer). Such a listing is not a snapshot: entries that change
 * meanwhile may or may not be in it.
 */
#include "daemon/control.h"
#include "daemon/client.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "backends/dns.h"
#include "backends/runtime.h"
#include "backends/store.h"
#include "daemon/metrics.h"
#include "util/log.h"
#include "util/util.h"

/* Buckets of the memory store listed per loop pass: well under a millisecond. */
#define CONTROL_LIST_SLICE 1024

/* Edits without expire=/awl= take postgrey's defaults (--max-age 35,
 * --auto-whitelist-clients 5): the daemon cannot see inside its acls. */
#define CONTROL_DEFAULT_EXPIRE (35u * 86400u)
#define CONTROL_DEFAULT_AWL 5u

struct control_conn;

struct control_op {
	struct control_conn *c;      /* NULL once the client has gone */
	char *cmd;                   /* the command, for the log line */
	unsigned long n;             /* entries listed so far */
	bool done;                   /* the store's final call came */
	bool slicing;                /* a listing in slices: no store call is
					pending between them */
	unsigned long cursor;        /* where the next slice starts */
	time_t now;                  /* the listing's time */
};

struct control_conn {
	struct client cl;            /* socket, events, idle timer, the answer
					not yet sent; on ctl->clients; named
					"control: pid=N uid=N" in log lines */
	struct control *ctl;
	struct event *done_ev;       /* runs the end of a command from the loop */
	struct event *slice_ev;      /* the next slice of a listing, next pass */
	bool closing;                /* drain and close once the answer is out */
	bool draining;
	bool progress;               /* restart the idle timer */
	char in[CONTROL_MAX_LINE + 1];
	size_t in_len;
	struct control_op *op;       /* the command in flight, or NULL */
};

struct control {
	struct event_base *base;
	struct runtime *rt;
	struct timeval idle;
	const struct timeval *idle_tv;
	struct client_set clients;
};

static void control_op_free(struct control_op *op)
{
	free(op->cmd);
	free(op);
}

/* Close and free c. Nothing may use c afterwards; safe from inside any
 * callback (client.h). */
static void control_close(struct control_conn *c)
{
	if (c->op) {
		if (c->op->done || c->op->slicing)
			control_op_free(c->op);
		else
			c->op->c = NULL;     /* the store's last call frees it */
	}
	event_free(c->done_ev);
	event_free(c->slice_ev);
	client_close(&c->cl);
	free(c);
}

/* Send what we can of the answer; false when c was closed. */
static bool control_flush(struct control_conn *c)
{
	ssize_t w = client_flush(&c->cl);
	if (w < 0) {
		control_close(c);
		return false;
	}
	if (w > 0)
		c->progress = true;
	return true;
}

/* Append key to the answer; a CR or LF (never in keys mxacl makes, but a
 * shared Redis may hold anything) would break the line framing. */
static void control_add_key(struct strbuf *out, const char *key)
{
	for (const char *p = key; *p; p++)
		sb_addc(out, *p == '\n' || *p == '\r' ? '?' : *p);
}

/* The final line of a command, and its log line. */
static void control_answer(struct control_conn *c, const char *cmd, bool ok, unsigned long n,
			   const char *msg)
{
	if (ok) {
		sb_printf(&c->cl.out, "ok %lu\n", n);
		log_info("%s: %s: ok %lu", c->cl.name, cmd, n);
	} else {
		sb_printf(&c->cl.out, "error %s\n", msg);
		log_warning("%s: %s: error %s", c->cl.name, cmd, msg);
	}
	c->progress = true;
}

/* The store's last call for op: answer, and finish from the loop. */
static void control_op_end(struct control_op *op, enum store_status st, unsigned long n)
{
	struct control_conn *c = op->c;
	if (!c) {
		control_op_free(op);
		return;
	}
	control_answer(c, op->cmd, st == STORE_OK, n,
		       "store: temporary failure (see mxacld's log)");
	op->done = true;
	event_active(c->done_ev, EV_TIMEOUT, 1);
}

static void control_list_cb(void *arg, enum store_status st, const struct store_entry *e)
{
	struct control_op *op = arg;
	if (!e) {
		control_op_end(op, st, op->n);
		return;
	}
	if (!op->c || st != STORE_OK)
		return;
	struct strbuf *out = &op->c->cl.out;
	if (e->kind == STORE_TRIPLET)
		sb_printf(out, "triplet first=%lld last=%lld passed=%s ", (long long)e->first,
			  (long long)e->last, e->passed ? "yes" : "no");
	else
		sb_printf(out, "awl first=%lld last=%lld count=%u ", (long long)e->first,
			  (long long)e->last, e->count);
	control_add_key(out, e->key);
	sb_addc(out, '\n');
	op->n++;
}

static void control_done_cb(void *arg, enum store_status st, unsigned long changed)
{
	control_op_end(arg, st, changed);
}

/* "stats": a line per counter of the runtime (backends/runtime.h), in the
 * tables' order (daemon/metrics.h), then "ok N"; answered at once. */
static void control_stats(struct control_conn *c, const char *cmd, const char *err)
{
	if (err) {
		control_answer(c, cmd, false, 0, err);
		return;
	}
	size_t n = metrics_stats(c->ctl->rt, &c->cl.out);
	control_answer(c, cmd, true, n, NULL);
}

/* How this binary was built, for "status". */
#ifdef MXACL_TESTHOOKS
#define CONTROL_BUILD "cc " __VERSION__ ", test build (sanitisers, test hooks)"
#else
#define CONTROL_BUILD "cc " __VERSION__
#endif

/* "status": what is running, as "NAME VALUE" lines; answered at once. */
static void control_status(struct control_conn *c, const char *cmd, const char *err)
{
	if (err) {
		control_answer(c, cmd, false, 0, err);
		return;
	}
	struct runtime *rt = c->ctl->rt;
	struct strbuf *o = &c->cl.out;
	time_t now = runtime_now(rt);
	struct store *st = runtime_store(rt);
	struct dns *dns = runtime_dns_if_made(rt);
	sb_printf(o, "version %s\n", runtime_version(rt));
	sb_printf(o, "build %s\n", CONTROL_BUILD);
	sb_printf(o, "pid %ld\n", (long)getpid());
	sb_printf(o, "started %lld\n", (long long)runtime_started(rt));
	sb_printf(o, "uptime %lld\n", (long long)(now - runtime_started(rt)));
	sb_printf(o, "policy %s\n", runtime_policy_path(rt));
	sb_printf(o, "policy_sha256 %s\n", runtime_policy_sha256(rt));
	sb_printf(o, "policy_loaded %lld\n", (long long)runtime_policy_loaded(rt));
	sb_printf(o, "connections %llu\n",
		  (unsigned long long)runtime_counter(rt, RC_connections_open));
	sb_printf(o, "store %s\n", store_is_memory(st) ? "memory" : "redis");
	sb_printf(o, "store_state %s\n", runtime_counter(rt, RC_store_down) ? "down" : "up");
	sb_printf(o, "dns_cache_entries %zu\n", dns ? dns_cache_entries(dns) : (size_t)0);
	control_answer(c, cmd, true, 12, NULL);
}

static bool control_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* The next word of *s (moved past it and the blanks after it). */
static const char *control_word(char **s)
{
	char *w = *s, *p = w;
	while (*p && !control_space(*p))
		p++;
	if (*p) {
		*p++ = 0;
		while (control_space(*p))
			p++;
	}
	*s = p;
	return w;
}

/*
 * "expire=DUR" and "awl=N" words in front of the key, then "--" if the key
 * itself starts like one. false with msg on a bad one.
 */
static bool control_params(char **rest, bool awl_ok, struct grey_params *p, const char **msg)
{
	for (;;) {
		char *s = *rest;
		if (strncmp(s, "expire=", 7) && strncmp(s, "awl=", 4) &&
		    !(s[0] == '-' && s[1] == '-' && (!s[2] || control_space(s[2]))))
			return true;
		const char *w = control_word(rest);
		if (!strcmp(w, "--"))
			return true;
		if (w[0] == 'e') {
			if (!duration_parse(w + 7, strlen(w + 7), &p->expire) || !p->expire) {
				*msg = "expire= takes a duration such as 35d";
				return false;
			}
		} else {
			char *end;
			errno = 0;
			unsigned long v = strtoul(w + 4, &end, 10);
			if (!awl_ok) {
				*msg = "awl= goes with grey whitelist only";
				return false;
			}
			if (!w[4] || *end || errno || v < 1 || v > 1000000) {
				*msg = "awl= takes a count from 1 to 1000000";
				return false;
			}
			p->awl = (uint32_t)v;
		}
	}
}

/* Run the next slice of a listing on a later loop pass: a timer, not
 * event_active, so that the loop polls its sockets in between. */
static void control_slice_next(struct control_conn *c)
{
	static const struct timeval now = { 0, 0 };
	evtimer_add(c->slice_ev, &now);
}

static void control_serve(struct control_conn *c);

/* One slice of a listing, once the previous one has gone out. */
static void control_slice_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control_conn *c = arg;
	struct control_op *o = c->op;
	if (!o || !o->slicing || o->done || client_pending(&c->cl))
		return;
	struct store *s = runtime_store(c->ctl->rt);
	store_list_slice(s, &o->cursor, CONTROL_LIST_SLICE, o->now, control_list_cb, o);
	if (!o->done)
		control_serve(c);
}

/*
 * Run one command line (NUL-terminated, no LF). Either answers at once
 * (a bad command) or starts a store operation that answers later.
 */
static void control_exec(struct control_conn *c, char *line, size_t len)
{
	struct control *ctl = c->ctl;
	static const char usage[] = "use grey list, grey whitelist NET, grey pass TRIPLET, "
				    "grey forget KEY, grey flush, stats or status";
	if (memchr(line, 0, len)) {
		control_answer(c, "(binary)", false, 0, "NUL byte in the command");
		return;
	}
	while (control_space(*line))
		line++;
	if (!*line)
		return;                      /* blank lines are ignored */
	char *cmd = xstrdup(line);           /* for the log line */
	char *rest = line;
	const char *w = control_word(&rest);
	if (!strcmp(w, "stats")) {
		control_stats(c, cmd, *rest ? "stats takes no argument" : NULL);
		free(cmd);
		return;
	}
	if (!strcmp(w, "status")) {
		control_status(c, cmd, *rest ? "status takes no argument" : NULL);
		free(cmd);
		return;
	}
	if (strcmp(w, "grey")) {
		control_answer(c, cmd, false, 0, usage);
		free(cmd);
		return;
	}
	const char *sub = control_word(&rest);
	struct grey_params p = { .delay = 300, .expire = CONTROL_DEFAULT_EXPIRE,
				 .retry_window = 2 * 86400, .awl = CONTROL_DEFAULT_AWL };
	enum store_edit op = STORE_FLUSH;
	const char *msg = NULL;
	bool list = false;
	if (!strcmp(sub, "list") || !strcmp(sub, "flush")) {
		list = sub[0] == 'l';
		if (*rest)
			msg = list ? "grey list takes no argument" : "grey flush takes no argument";
	} else if (!strcmp(sub, "whitelist") || !strcmp(sub, "pass")) {
		op = sub[0] == 'w' ? STORE_WHITELIST : STORE_PASS;
		if (control_params(&rest, op == STORE_WHITELIST, &p, &msg) && !*rest)
			msg = op == STORE_WHITELIST ? "grey whitelist needs a network, e.g. 192.0.2.0/24"
						    : "grey pass needs a triplet key (see grey list)";
	} else if (!strcmp(sub, "forget")) {
		op = STORE_FORGET;
		if (!*rest)
			msg = "grey forget needs a key (see grey list)";
	} else {
		msg = usage;
	}
	if (msg) {
		control_answer(c, cmd, false, 0, msg);
		free(cmd);
		return;
	}

	struct control_op *o = xcalloc(1, sizeof *o);
	o->c = c;
	o->cmd = cmd;
	c->op = o;
	time_t now = runtime_now(ctl->rt);
	struct store *s = runtime_store(ctl->rt);
	/* May call back before it returns (memory) or later (Redis). */
	if (list && store_slices(s)) {
		o->slicing = true;
		o->now = now;
		control_slice_next(c);
	} else if (list)
		store_list(s, now, control_list_cb, o);
	else
		store_edit(s, op, op == STORE_FLUSH ? NULL : rest, now, &p, control_done_cb, o);
}

/*
 * The next command line in the buffer, cut out into line (NUL-terminated,
 * CR LF or LF removed); false when there is none yet. A line over the
 * limit is answered and the client closed once the answer is out.
 */
static bool control_next_line(struct control_conn *c, char *line, size_t *len)
{
	char *lf = memchr(c->in, '\n', c->in_len);
	size_t n, used;
	if (lf) {
		n = (size_t)(lf - c->in);
		used = n + 1;
	} else if (c->in_len > CONTROL_MAX_LINE) {
		control_answer(c, "(too long)", false, 0, "line too long (at most 4096 bytes)");
		c->closing = true;
		c->in_len = 0;
		return false;
	} else if (c->cl.eof && c->in_len) {
		n = used = c->in_len;        /* a last line without its LF */
	} else {
		return false;
	}
	if (n > CONTROL_MAX_LINE) {
		control_answer(c, "(too long)", false, 0, "line too long (at most 4096 bytes)");
		c->closing = true;
		c->in_len = 0;
		return false;
	}
	memcpy(line, c->in, n);
	if (n && line[n - 1] == '\r')
		n--;
	line[n] = 0;
	*len = n;
	memmove(c->in, c->in + used, c->in_len - used);
	c->in_len -= used;
	return true;
}

/* Register the events c's state asks for, and its timer. */
static void control_update(struct control_conn *c)
{
	bool pending = client_pending(&c->cl);
	bool want_read = c->draining || (!c->op && !pending && !c->closing && !c->cl.eof);
	client_watch(&c->cl, want_read, pending);
	if (c->op && !c->op->slicing)
		client_timer(&c->cl, NULL, false);
	else
		client_timer(&c->cl, c->ctl->idle_tv, c->progress);
	c->progress = false;
}

/* Run the commands that can run, send the answers; close when done. */
static void control_serve(struct control_conn *c)
{
	char line[CONTROL_MAX_LINE + 1];
	size_t len;
	for (;;) {
		if (!control_flush(c))
			return;
		if (c->op || client_pending(&c->cl) || c->closing)
			break;
		if (!control_next_line(c, line, &len))
			break;
		control_exec(c, line, len);
	}
	if (c->op && c->op->slicing && !c->op->done && !client_pending(&c->cl))
		control_slice_next(c);       /* all taken: the next slice */
	if (!c->op && !client_pending(&c->cl)) {
		if (c->closing && !c->cl.eof && !c->draining) {
			shutdown(c->cl.fd, SHUT_WR);
			c->draining = true;
		} else if (c->closing || (c->cl.eof && !c->in_len)) {
			control_close(c);
			return;
		}
	}
	control_update(c);
}

static void control_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control_conn *c = arg;
	if (c->draining) {
		char junk[4096];
		ssize_t n = client_read(&c->cl, junk, sizeof junk);
		if (n < 0 || c->cl.eof)
			control_close(c);
		return;
	}
	/* Never full here: a full buffer without a LF is answered "too long"
	 * and reading stops. */
	assert(c->in_len < sizeof c->in);
	ssize_t n = client_read(&c->cl, c->in + c->in_len, sizeof c->in - c->in_len);
	if (n < 0) {
		control_close(c);
		return;
	}
	if (n == 0 && !c->cl.eof)
		return;
	/* At end of file: answer what was sent, then close. */
	c->in_len += (size_t)n;
	control_serve(c);
}

static void control_write_cb(evutil_socket_t fd, short what, void *arg)
{
	control_serve(arg);
}

static void control_done_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control_conn *c = arg;
	if (!c->op || !c->op->done)
		return;
	control_op_free(c->op);
	c->op = NULL;
	control_serve(c);
}

static void control_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control_conn *c = arg;
	log_info("%s: idle for %d s; closing the connection", c->cl.name,
		 CONTROL_IDLE_TIMEOUT);
	control_close(c);
}

void control_accept(int fd, const char *peer, void *arg)
{
	struct control *ctl = arg;
	if (ctl->clients.count >= CONTROL_MAX_CLIENTS) {
		/* Best effort: the socket is new, its buffer takes one line. */
		static const char busy[] = "error too many control clients; try again later\n";
		(void)send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		log_warning("control: %s: refused: %d control clients connected, the limit", peer,
			    CONTROL_MAX_CLIENTS);
		return;
	}
	struct control_conn *c = xcalloc(1, sizeof *c);
	c->ctl = ctl;
	/* Who edits greylisting goes in the log: the socket's name says
	 * nothing, the kernel's credentials of the client do. */
	struct ucred cred;
	socklen_t credlen = sizeof cred;
	char *name;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) == 0)
		name = xasprintf("control: pid=%ld uid=%ld", (long)cred.pid, (long)cred.uid);
	else
		name = xasprintf("control: %s", peer);
	client_open(&c->cl, &ctl->clients, ctl->base, fd, name, control_read_cb,
		    control_write_cb, control_timeout_cb, c);
	c->done_ev = event_new(ctl->base, -1, 0, control_done_ev_cb, c);
	c->slice_ev = evtimer_new(ctl->base, control_slice_cb, c);
	if (!c->done_ev || !c->slice_ev)
		fatal_abort("out of memory for control connection events");
	control_update(c);
}

struct control *control_new(struct event_base *base, struct runtime *rt)
{
	struct control *ctl = xcalloc(1, sizeof *ctl);
	ctl->base = base;
	ctl->rt = rt;
	client_set_init(&ctl->clients);
	ctl->idle.tv_sec = CONTROL_IDLE_TIMEOUT;
	ctl->idle_tv = event_base_init_common_timeout(base, &ctl->idle);
	if (!ctl->idle_tv)
		fatal_abort("cannot set up control timeouts");
	return ctl;
}

void control_free(struct control *ctl)
{
	if (!ctl)
		return;
	struct client *cl;
	while ((cl = client_set_first(&ctl->clients)))
		control_close(CLIENT_OWNER(cl, struct control_conn, cl));
	free(ctl);
}

size_t control_count(const struct control *ctl)
{
	return ctl->clients.count;
}
