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
 *
 * A client may close its sending side after its last request (a script's
 * `printf ... | nc`): at end of file the connection stops reading, answers
 * every request it holds in full (waiting for their lookups), sends the
 * replies and only then closes.
 *
 * When max_conns are open, a new client takes the place of the connection
 * idle the longest (or, when none is idle, the one whose request has been
 * arriving the longest): two lists, oldest at the tail, kept in step with
 * the states above, so that finding it is O(1). A request received whole
 * (running, suspended, or its reply unsent) is never dropped for another
 * client; with every connection busy so, the new one is refused.
 *
 * Counting (backends/runtime.h) adds no allocation to the hot path: the
 * counters of the serving program's actions and access lines are looked
 * up once per program (conn_slots), so a request adds to three counters
 * through pointers and one histogram; only a request that finishes on the
 * program a reload replaced looks its counters up by name.
 */
#include "daemon/conn.h"
#include "daemon/client.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "backends/runtime.h"
#include "engine/program.h"
#include "engine/vm.h"
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

/* Which eviction list a connection is on: the idle, the partial, none. */
enum conn_class { CONN_BUSY, CONN_IDLE, CONN_PARTIAL };

/* A kind of log line written at most once a second: the lines held back
 * meanwhile are counted, and the count goes in the next one written. */
struct conn_quiet {
	time_t logged;               /* the last second one was written */
	unsigned long held;          /* held back since */
};

/* A list of connections (sys/queue.h), newest at the head, oldest at
 * the tail. */
TAILQ_HEAD(conn_list, conn);

struct conn {
	struct client cl;            /* socket, events, replies not yet sent;
					on pool->clients; its timer is the idle
					or request timer, its write event on
					while blocked */
	struct conn_pool *pool;
	struct event *resume_ev;     /* runs a resumed VM from the loop */
	enum conn_class cls;         /* the eviction list c is on */
	TAILQ_ENTRY(conn) lru;       /* on that list */
	struct timeval since;        /* idle, or partial, since then */
	enum conn_timer timer;
	bool progress;               /* a request ended since the timer was set */
	char *in;                    /* unprocessed input: in[in_off..in_len) */
	size_t in_off, in_len, in_cap;
	struct request *req;         /* reused for every request */
	struct vm *vm;               /* the suspended request, or NULL */
	uint64_t read_ns;            /* runtime_mono_ns() of the latest read */
	uint64_t vm_t0;              /* the suspended request's read_ns */
};

/* The counters of one program's actions and access lines (runtime.h's
 * families requests and rule_hits), found once per program. */
struct conn_slots {
	const struct program *p;
	uint64_t **action;           /* per action of p */
	uint64_t **rule;             /* per access line of p */
	uint64_t *rule_default, *rule_tempfail;
};

struct conn_pool {
	struct event_base *base;
	struct runtime *rt;
	struct program *program;
	struct conn_limits lim;
	const struct timeval *idle_tv;     /* libevent common timeouts: O(1) */
	const struct timeval *request_tv;  /*   re-arming for every request */
	struct client_set clients;         /* every connection */
	struct strbuf line;                /* the decision line being logged */
	struct conn_list idle;             /* idle connections, by idle time */
	struct conn_list partial;          /* half-received requests, by age */
	struct conn_quiet refused;         /* log lines of refusals, */
	struct conn_quiet evicted;         /*   of connections closed for room */
	struct runtime_stats *stats;       /* the runtime's counters */
	struct conn_slots slots;           /* of program */
};

/* Write an access line's label (runtime.h, rule_hits) as on the decision
 * line: its name ("access NAME: ..."), else FILE:LINE. A named line keeps
 * its series when lines move or files are re-ordered. */
static size_t conn_rule_label(const struct program *p, uint32_t rule, char *buf, size_t size)
{
	char lab[PROGRAM_LABEL_SIZE];
	int n = snprintf(buf, size, "%s", program_rule_label(p, rule, lab));
	return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

/* Look the counters of p's actions and lines up (at start and reload). */
static void conn_slots_set(struct conn_pool *pool, const struct program *p)
{
	struct conn_slots *sl = &pool->slots;
	free(sl->action);
	free(sl->rule);
	sl->p = p;
	sl->action = xcalloc(p->nactions ? p->nactions : 1, sizeof *sl->action);
	sl->rule = xcalloc(p->nrules ? p->nrules : 1, sizeof *sl->rule);
	for (uint32_t i = 0; i < p->nactions; i++) {
		const char *w = p->actions[i].act.word;
		sl->action[i] = runtime_family_slot(pool->stats, RF_requests, w, strlen(w));
	}
	char buf[4096];
	for (uint32_t i = 0; i < p->nrules; i++)
		sl->rule[i] = runtime_family_slot(pool->stats, RF_rule_hits, buf,
						  conn_rule_label(p, i, buf, sizeof buf));
	sl->rule_default = runtime_family_slot(pool->stats, RF_rule_hits, "default", 7);
	sl->rule_tempfail = runtime_family_slot(pool->stats, RF_rule_hits, "tempfail", 8);
}

/* Count a finished request: its action, its line, its time. */
static void conn_count(struct conn_pool *pool, struct vm *vm, uint64_t t0)
{
	struct runtime_stats *st = pool->stats;
	const struct program *p = vm_program(vm);
	bool by_tempfail;
	long rule = vm_rule(vm, &by_tempfail);
	uint32_t act = vm_action(vm);
	st->c[RC_requests]++;
	if (by_tempfail)
		st->c[RC_requests_tempfail]++;
	/* a dry run of the whole policy answered DUNNO; its line still matched */
	bool dry = vm_dry_answered(vm);
	if (dry)
		(*runtime_family_slot(st, RF_requests, "DUNNO", 5))++;
	if (p == pool->slots.p) {
		if (!dry)
			(*pool->slots.action[act])++;
		(*(rule >= 0 ? pool->slots.rule[rule]
		   : by_tempfail ? pool->slots.rule_tempfail : pool->slots.rule_default))++;
	} else {                     /* on the program a reload replaced */
		const char *w = p->actions[act].act.word;
		if (!dry)
			(*runtime_family_slot(st, RF_requests, w, strlen(w)))++;
		char buf[4096];
		size_t n = rule >= 0 ? conn_rule_label(p, (uint32_t)rule, buf, sizeof buf)
				     : (size_t)snprintf(buf, sizeof buf, "%s",
							by_tempfail ? "tempfail" : "default");
		(*runtime_family_slot(st, RF_rule_hits, buf, n))++;
	}
	runtime_observe(st, RH_request_duration, runtime_mono_ns() - t0);
}

static double conn_secs(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static struct conn_list *conn_class_list(struct conn_pool *pool, enum conn_class cls)
{
	return cls == CONN_IDLE ? &pool->idle : cls == CONN_PARTIAL ? &pool->partial : NULL;
}

/* Take c off its eviction list, if any. */
static void conn_lru_unlink(struct conn *c)
{
	struct conn_list *l = conn_class_list(c->pool, c->cls);
	if (!l)
		return;
	TAILQ_REMOVE(l, c, lru);
	c->cls = CONN_BUSY;
}

/* Put c at the head (the newest end) of the list for cls, from now. */
static void conn_lru_push(struct conn *c, enum conn_class cls)
{
	conn_lru_unlink(c);
	struct conn_list *l = conn_class_list(c->pool, cls);
	if (!l)
		return;
	c->cls = cls;
	TAILQ_INSERT_HEAD(l, c, lru);
	event_base_gettimeofday_cached(c->pool->base, &c->since);
}

/* Close and free c. Nothing may use c afterwards; safe from inside any
 * callback (client.h). */
static void conn_close(struct conn *c)
{
	conn_lru_unlink(c);
	c->pool->stats->c[RC_connections_open]--;
	vm_free(c->vm);   /* abandons its lookups; resume is not called */
	event_free(c->resume_ev);
	req_free(c->req);
	free(c->in);
	client_close(&c->cl);
	free(c);
}

/* Send what we can of the replies; false when c was closed. */
static bool conn_flush(struct conn *c)
{
	if (client_flush(&c->cl) < 0) {
		conn_close(c);
		return false;
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
	log_warning("%s: bad request: %s; closing the connection without a reply", c->cl.name, why);
	if (conn_flush(c))
		conn_close(c);
}

/* A request is done: queue its reply, count it and log its decision.
 * t0: when its last byte was read. */
static void conn_finish(struct conn *c, struct vm *vm, uint64_t t0)
{
	struct conn_pool *pool = c->pool;
	vm_reply(vm, &c->cl.out);
	conn_count(pool, vm, t0);
	/* each dry run that matched: a line before the decision, and counted */
	for (size_t k = 0; k < vm_dry_count(vm); k++) {
		char buf[PROGRAM_LABEL_SIZE];
		const char *lab = vm_dry_label(vm, k, buf), *w = vm_dry_word(vm, k);
		(*runtime_family_slot(pool->stats, RF_dryrun_hits, lab, strlen(lab)))++;
		(*runtime_family_slot(pool->stats, RF_dryrun_would, w, strlen(w)))++;
		sb_reset(&pool->line);
		vm_dry_line(vm, k, &pool->line);
		log_info_line(pool->line.s, pool->line.len);
	}
	sb_reset(&pool->line);
	vm_log_line(vm, &pool->line);
	log_info_line(pool->line.s, pool->line.len);
	/* The reply is queued; a refused request's counts are refunded
	 * behind it (nobody waits for the store's answers). */
	vm_refund(vm);
	vm_free(vm);
	c->progress = true;
}

/* The engine's resume callback: run the VM from our own event, so that no
 * engine frame is on the stack when the connection is closed or freed. */
static void conn_resume(struct vm *vm, void *arg)
{
	struct conn *c = arg;
	assert(c->vm == vm);
	event_active(c->resume_ev, EV_TIMEOUT, 1);
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
			/* More than a whole request of the largest size and
			 * still no end: req_scan should have said so. */
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

		/* mxacld decides on its own clock, never on the client's. */
		req_set_clock(c->req, false, runtime_now(pool->rt));
		struct vm *vm = vm_new(pool->rt, pool->program, c->req, conn_resume, c);
		if (vm_run(vm) == VM_SUSPENDED) {
			c->vm = vm;
			c->vm_t0 = c->read_ns;
			break;
		}
		conn_finish(c, vm, c->read_ns);
	}
	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
	return true;
}

/* Set the timer for c's state (see the top of the file). */
static void conn_set_timer(struct conn *c)
{
	struct conn_pool *pool = c->pool;
	enum conn_timer want;
	bool pending = client_pending(&c->cl);
	if (c->vm)
		want = CONN_TIMER_NONE;
	else if (pending || c->in_len > c->in_off)
		want = CONN_TIMER_REQUEST;
	else
		want = CONN_TIMER_IDLE;

	/* The eviction lists follow the same rules as the timers: activity
	 * makes an idle connection the newest; a partial request keeps its
	 * age until a request completes. */
	if (c->vm || pending || c->cl.eof)
		conn_lru_unlink(c);
	else if (want == CONN_TIMER_IDLE)
		conn_lru_push(c, CONN_IDLE);
	else if (c->cls != CONN_PARTIAL || c->progress)
		conn_lru_push(c, CONN_PARTIAL);

	if (want == CONN_TIMER_NONE)
		client_timer(&c->cl, NULL, false);
	else if (want == CONN_TIMER_IDLE)
		/* Any activity restarts the idle time. */
		client_timer(&c->cl, pool->idle_tv, true);
	else
		/* A request's time runs from when it was first seen, not from
		 * its latest byte: a client cannot keep one alive by
		 * trickling it. */
		client_timer(&c->cl, pool->request_tv,
			     c->timer != CONN_TIMER_REQUEST || c->progress);
	c->timer = want;
	c->progress = false;
}

/* Make room to read; false when the buffer is full (a suspended request
 * with a full buffer behind it). */
static bool conn_make_room(struct conn *c)
{
	if (c->in_cap - c->in_len >= CONN_READ_MIN)
		return true;
	if (c->in_off > 0) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
		if (c->in_cap - c->in_len >= CONN_READ_MIN)
			return true;
	}
	if (c->in_cap < CONN_IN_MAX) {
		c->in_cap = c->in_cap * 2 < CONN_IN_MAX ? c->in_cap * 2 : CONN_IN_MAX;
		c->in = xrealloc(c->in, c->in_cap);
	}
	return c->in_len < c->in_cap;
}

/* Register the events c's state asks for, and its timer. */
static void conn_update(struct conn *c)
{
	bool blocked = client_pending(&c->cl);
	/* Blocked: stop reading, so that a client that does not read its
	 * replies cannot make us buffer without bound. */
	bool want_read = !blocked && !c->cl.eof &&
			 (c->in_cap < CONN_IN_MAX || c->in_len - c->in_off < CONN_IN_MAX);
	client_watch(&c->cl, want_read, blocked);
	conn_set_timer(c);
}

/* After input, a finished VM or a drained output: do what can be done. */
static void conn_serve(struct conn *c)
{
	if (!conn_process(c) || !conn_flush(c))
		return;
	if (c->cl.eof && !c->vm && !client_pending(&c->cl)) {
		/* Every whole request answered and its reply sent. */
		if (c->in_len > c->in_off)
			log_warning("%s: connection closed in the middle of a request", c->cl.name);
		conn_close(c);
		return;
	}
	conn_update(c);
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	if (!conn_make_room(c)) {
		conn_update(c);
		return;
	}
	ssize_t n = client_read(&c->cl, c->in + c->in_len, c->in_cap - c->in_len);
	if (n < 0) {
		conn_close(c);
		return;
	}
	/* At end of file perhaps only the client's sending side is closed,
	 * and it waits for its replies: answer what arrived whole, then
	 * close (conn_serve). */
	if (n == 0 && !c->cl.eof)
		return;
	c->in_len += (size_t)n;
	/* A request is timed from the read that brought its last byte (one
	 * queued behind a request waiting for a lookup: from the latest). */
	c->read_ns = runtime_mono_ns();
	conn_serve(c);
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_serve(arg);
}

static void conn_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	if (!c->vm || vm_run(c->vm) == VM_SUSPENDED)
		return;
	struct vm *vm = c->vm;
	c->vm = NULL;
	conn_finish(c, vm, c->vm_t0);
	conn_serve(c);
}

static void conn_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct conn_pool *pool = c->pool;
	if (c->timer == CONN_TIMER_IDLE)
		log_info("%s: idle for %g s; closing the connection", c->cl.name,
			 conn_secs(&pool->lim.idle));
	else if (client_pending(&c->cl))
		log_warning("%s: timeout: replies not read for %g s; closing the connection",
			    c->cl.name, conn_secs(&pool->lim.request));
	else
		log_warning("%s: timeout: request incomplete after %g s; closing the connection",
			    c->cl.name, conn_secs(&pool->lim.request));
	conn_close(c);
}

/* Whether a line of q's kind may be written now: if so, *held is the
 * count held back since the last one (and starts again); if not, one more
 * is held back. */
static bool conn_quiet_pass(struct conn_quiet *q, unsigned long *held)
{
	time_t now = time(NULL);
	if (now == q->logged) {
		q->held++;
		return false;
	}
	*held = q->held;
	q->logged = now;
	q->held = 0;
	return true;
}

/* Refuse a client over the limit with every connection busy, logging at
 * most once a second. */
static void conn_refuse(struct conn_pool *pool, int fd, const char *peer)
{
	close(fd);
	pool->stats->c[RC_connections_refused]++;
	unsigned long held;
	if (!conn_quiet_pass(&pool->refused, &held))
		return;
	if (held)
		log_warning("%s: connection refused: %zu connections open, the limit, none "
			    "idle (and %lu more refused since the last such line)",
			    peer, pool->clients.count, held);
	else
		log_warning("%s: connection refused: %zu connections open, the limit, none idle",
			    peer, pool->clients.count);
}

/*
 * Make room for a new client at the limit: close the connection idle the
 * longest, or else the one whose request has been arriving the longest (a
 * flood of idle or trickling connections must not lock Postfix out).
 * Logged at most once a second. False when every connection is busy.
 */
static bool conn_evict(struct conn_pool *pool, const char *peer)
{
	struct conn *v = TAILQ_LAST(&pool->idle, conn_list);
	if (!v)
		v = TAILQ_LAST(&pool->partial, conn_list);
	if (!v)
		return false;
	pool->stats->c[RC_connections_evicted]++;
	unsigned long held;
	if (conn_quiet_pass(&pool->evicted, &held)) {
		struct timeval tv;
		event_base_gettimeofday_cached(pool->base, &tv);
		double age = conn_secs(&tv) - conn_secs(&v->since);
		char more[96] = "";
		if (held)
			snprintf(more, sizeof more, " (and %lu more since the last such line)",
				 held);
		log_warning("%s: %zu connections open, the limit: closing the connection "
			    "%s for %.1f s to serve %s%s", v->cl.name, pool->clients.count,
			    v->cls == CONN_IDLE ? "idle" : "with a request half received",
			    age < 0 ? 0 : age, peer, more);
	}
	conn_close(v);
	return true;
}

void conn_pool_accept(int fd, const char *peer, void *arg)
{
	struct conn_pool *pool = arg;
	if (pool->clients.count >= pool->lim.max_conns && !conn_evict(pool, peer)) {
		conn_refuse(pool, fd, peer);
		return;
	}
	struct conn *c = xcalloc(1, sizeof *c);
	c->pool = pool;
	pool->stats->c[RC_connections_open]++;
	pool->stats->c[RC_connections_accepted]++;
	client_open(&c->cl, &pool->clients, pool->base, fd, xstrdup(peer), conn_read_cb,
		    conn_write_cb, conn_timeout_cb, c);
	c->resume_ev = event_new(pool->base, -1, 0, conn_resume_cb, c);
	if (!c->resume_ev)
		fatal_abort("out of memory for connection events");
	c->in_cap = CONN_IN_FIRST;
	c->in = xmalloc(c->in_cap);
	c->req = req_new();
	conn_update(c);
}

struct conn_pool *conn_pool_new(struct event_base *base, struct runtime *rt,
				struct program *program, const struct conn_limits *lim)
{
	struct conn_pool *pool = xcalloc(1, sizeof *pool);
	pool->base = base;
	pool->rt = rt;
	pool->program = program;
	pool->lim = *lim;
	client_set_init(&pool->clients);
	TAILQ_INIT(&pool->idle);
	TAILQ_INIT(&pool->partial);
	pool->idle_tv = event_base_init_common_timeout(base, &pool->lim.idle);
	pool->request_tv = event_base_init_common_timeout(base, &pool->lim.request);
	if (!pool->idle_tv || !pool->request_tv)
		fatal_abort("cannot set up connection timeouts");
	pool->refused.logged = -1;
	pool->evicted.logged = -1;
	pool->stats = runtime_stats(rt);
	conn_slots_set(pool, program);
	sb_init(&pool->line);
	return pool;
}

void conn_pool_free(struct conn_pool *pool)
{
	if (!pool)
		return;
	struct client *cl;
	while ((cl = client_set_first(&pool->clients)))
		conn_close(CLIENT_OWNER(cl, struct conn, cl));
	program_unref(pool->program);
	sb_free(&pool->line);
	free(pool->slots.action);
	free(pool->slots.rule);
	free(pool);
}

void conn_pool_set_program(struct conn_pool *pool, struct program *program)
{
	/* VMs in flight hold their own references to the old program. */
	program_unref(pool->program);
	pool->program = program;
	conn_slots_set(pool, program);
}

struct program *conn_pool_program(const struct conn_pool *pool)
{
	return pool->program;
}

size_t conn_pool_count(const struct conn_pool *pool)
{
	return pool->clients.count;
}
