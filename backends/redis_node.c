/*
 * redis_node - one hiredis connection and its life (the contract is
 * redis_node.h; what is sent where is store_redis.c's business).
 */
#include <assert.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "backends/redis_node.h"
#include "backends/runtime.h"
#include "util/log.h"
#include "util/util.h"

#define RNODE_BACKOFF_MIN_MS 100
#define RNODE_BACKOFF_MAX_MS 5000
/* Connecting and the handshake get at least this long (slow links). */
#define RNODE_HANDSHAKE_MIN_MS 1000

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_UP };

/* Handshake steps, in the order they are pipelined; scripts follow. */
enum hs_step { HS_AUTH, HS_SELECT, HS_ROLE, HS_SUBSCRIBE, HS_SCRIPT };
static const char *const hs_name[] = { "AUTH", "SELECT", "ROLE", "SUBSCRIBE" };

struct rcmd;

struct rnode {
	struct event_base *evb;
	struct rnode_owner owner;
	char *host, *path, *user, *password, *addr, *subscribe;
	int port;
	long db;
	bool check_master;
	const char *const *scripts;
	size_t nscripts;
	char (*sha)[41];
	unsigned timeout_ms;
	const struct timeval *cmd_tv; /* libevent common timeout: O(1) timers */
	struct timeval hs_tv;

	enum conn_state state;
	redisAsyncContext *ac;        /* NULL while DOWN */
	struct event *reconnect_ev, *handshake_ev;
	unsigned backoff_ms;
	intptr_t last_step;           /* the handshake step whose reply makes it UP;
					 -1: none, UP at connect */

	TAILQ_HEAD(, rcmd) pending;   /* unanswered commands, oldest first */
	int busy;                     /* loop entries and rnode_free on the stack */
	bool closing;
};

struct rcmd {
	TAILQ_ENTRY(rcmd) link;       /* on n's pending list while unanswered */
	struct rnode *n;              /* NULL once answered */
	bool answered;
	int inflight;                 /* hiredis callbacks to come, plus holds */
	struct event *timer;
	rnode_reply_fn fn;
	void *arg;
	char *held;                   /* check_master: formatted, sent when UP */
	int held_len;
};

static void conn_drop(struct rnode *n, const char *why, bool hiredis_frees);
static void conn_start(struct rnode *n);

/* ---- holding the node ----------------------------------------------------- */

static void node_free(struct rnode *n)
{
	assert(TAILQ_EMPTY(&n->pending) && !n->ac);
	if (n->reconnect_ev)
		event_free(n->reconnect_ev);
	if (n->handshake_ev)
		event_free(n->handshake_ev);
	free(n->host);
	free(n->path);
	free(n->user);
	if (n->password) {
		explicit_bzero(n->password, strlen(n->password));
		free(n->password);
	}
	free(n->addr);
	free(n->subscribe);
	free(n);
}

/* Keep n alive while code that may call back (and so free it) runs. */
static void enter(struct rnode *n)
{
	n->busy++;
}

/* The last one out of a closing node frees it. */
static void leave(struct rnode *n)
{
	if (--n->busy == 0 && n->closing)
		node_free(n);
}

/* ---- commands ----------------------------------------------------------------- */

/* Mark c answered, whatever hiredis still has to say about it (c is off
 * the pending list already). */
static void rcmd_answered(struct rcmd *c)
{
	c->answered = true;
	c->n = NULL;
	if (c->timer)
		event_free(c->timer);
	c->timer = NULL;
}

/* Drop a hold (or a hiredis callback's count) on c; free it when done. */
static void rcmd_put(struct rcmd *c)
{
	assert(c->inflight > 0);
	if (--c->inflight == 0 && c->answered) {
		redisFreeCommand(c->held);
		free(c);
	}
}

/* Why hiredis gave up on a connection. */
static const char *conn_error(const redisAsyncContext *ac)
{
	return ac->err && ac->errstr[0] ? ac->errstr : "connection closed";
}

/* hiredis: the reply to one command (or NULL: the connection is going). */
static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rcmd *c = priv;
	if (c->answered) {
		rcmd_put(c);
		return;
	}
	struct rnode *n = c->n;
	enter(n);
	if (!reply) {
		/* hiredis drops the connection on its own (we settle every
		 * command before we drop one): drop ours with it */
		conn_drop(n, conn_error(ac), true);
	} else {
		TAILQ_REMOVE(&n->pending, c, link);
		rcmd_answered(c);
		c->fn(c->arg, n, reply, NULL);
	}
	rcmd_put(c);
	leave(n);
}

/* A command took too long: the connection is stuck, drop it. */
static void on_cmd_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct rcmd *c = arg;
	struct rnode *n = c->n;
	char why[80];
	snprintf(why, sizeof why, "no reply within %u ms", n->timeout_ms);
	enter(n);
	conn_drop(n, why, false);
	leave(n);
}

/* hiredis: the reply to ASKING; only the command behind it matters. */
static void on_asking(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	(void)reply;
	(void)priv;
}

bool rnode_send(struct rnode *n, int argc, const char **argv, const size_t *argvlen,
		bool asking, rnode_reply_fn fn, void *arg)
{
	if (!rnode_ready(n) || n->subscribe)
		return false;
	if (n->check_master && n->state == CONN_CONNECTING) {
		/* nothing goes to a server before ROLE has said master: the
		 * command waits here, formatted, and goes out when UP */
		struct rcmd *c = xcalloc(1, sizeof *c);
		c->held_len = redisFormatCommandArgv(&c->held, argc, argv, argvlen);
		if (c->held_len < 0)
			fatal_abort("store redis: out of memory");
		c->n = n;
		c->fn = fn;
		c->arg = arg;
		TAILQ_INSERT_TAIL(&n->pending, c, link);
		return true;
	}
	static const char *const ask[1] = { "ASKING" };
	if (asking &&
	    redisAsyncCommandArgv(n->ac, on_asking, NULL, 1, (const char **)ask, NULL) != REDIS_OK)
		return false;
	struct rcmd *c = xcalloc(1, sizeof *c);
	if (redisAsyncCommandArgv(n->ac, on_reply, c, argc, argv, argvlen) != REDIS_OK) {
		free(c);
		return false;
	}
	c->n = n;
	c->fn = fn;
	c->arg = arg;
	c->inflight = 1;
	TAILQ_INSERT_TAIL(&n->pending, c, link);
	c->timer = evtimer_new(n->evb, on_cmd_timeout, c);
	if (!c->timer)
		fatal_abort("store redis: cannot create a timer");
	evtimer_add(c->timer, n->cmd_tv);
	return true;
}

/* ---- the connection ----------------------------------------------------------- */

bool rnode_ready(const struct rnode *n)
{
	return n && !n->closing && n->ac && n->state != CONN_DOWN;
}

bool rnode_up(const struct rnode *n)
{
	return n && !n->closing && n->ac && n->state == CONN_UP;
}

const char *rnode_addr(const struct rnode *n)
{
	return n->addr;
}

/*
 * Drop the connection (if any): settle every pending command, free the
 * hiredis context unless hiredis is freeing it itself, schedule a
 * reconnect (unless closing), tell the owner, and only then answer the
 * commands, so that a function that calls us again finds a consistent
 * node. The caller holds n.
 */
static void conn_drop(struct rnode *n, const char *why, bool hiredis_frees)
{
	redisAsyncContext *ac = n->ac;
	bool was_up = n->state == CONN_UP;
	TAILQ_HEAD(, rcmd) dropped = TAILQ_HEAD_INITIALIZER(dropped);
	TAILQ_CONCAT(&dropped, &n->pending, link);
	n->ac = NULL;
	n->state = CONN_DOWN;
	evtimer_del(n->handshake_ev);
	struct rcmd *c;
	TAILQ_FOREACH(c, &dropped, link) {
		c->inflight++;            /* ours until its function below */
		rcmd_answered(c);
	}
	if (ac) {
		ac->data = NULL;
		if (!hiredis_frees)
			redisAsyncFree(ac);
	}
	if (!n->closing) {
		struct timeval tv = { n->backoff_ms / 1000, (n->backoff_ms % 1000) * 1000 };
		evtimer_add(n->reconnect_ev, &tv);
		n->backoff_ms = n->backoff_ms * 2 > RNODE_BACKOFF_MAX_MS ? RNODE_BACKOFF_MAX_MS
									  : n->backoff_ms * 2;
		if (n->owner.down)
			n->owner.down(n->owner.arg, n, why, was_up);
	}
	while ((c = TAILQ_FIRST(&dropped)) != NULL) {
		TAILQ_REMOVE(&dropped, c, link);
		c->fn(c->arg, n, NULL, why);
		rcmd_put(c);
	}
}

/* The handshake is done: serve, first what waited for it. */
static void conn_up(struct rnode *n)
{
	n->state = CONN_UP;
	evtimer_del(n->handshake_ev);
	n->backoff_ms = RNODE_BACKOFF_MIN_MS;
	struct rcmd *c;
	TAILQ_FOREACH(c, &n->pending, link) {
		if (!c->held)
			continue;
		if (redisAsyncFormattedCommand(n->ac, on_reply, c, c->held, (size_t)c->held_len) !=
		    REDIS_OK) {
			conn_drop(n, "cannot queue a command", false);
			return;
		}
		redisFreeCommand(c->held);
		c->held = NULL;
		c->inflight = 1;
		c->timer = evtimer_new(n->evb, on_cmd_timeout, c);
		if (!c->timer)
			fatal_abort("store redis: cannot create a timer");
		evtimer_add(c->timer, n->cmd_tv);
	}
	if (n->owner.up)
		n->owner.up(n->owner.arg, n);
}

/* The ROLE reply: is this server a master? */
static bool role_master(const redisReply *rp, char *why, size_t size)
{
	if (rp->type == REDIS_REPLY_ARRAY && rp->elements > 0 &&
	    rp->element[0]->type == REDIS_REPLY_STRING) {
		if (!strcmp(rp->element[0]->str, "master"))
			return true;
		snprintf(why, size, "not a master (ROLE: %.40s)", rp->element[0]->str);
	} else {
		snprintf(why, size, "ROLE: unexpected reply");
	}
	return false;
}

/* Replies to the handshake; privdata is the step. */
static void on_handshake(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rnode *n = ac->data;
	if (!n)
		return;                   /* a connection we dropped */
	intptr_t step = (intptr_t)priv;
	redisReply *rp = reply;
	char why[120];
	enter(n);
	if (!rp) {
		conn_drop(n, conn_error(ac), true);
	} else if (rp->type == REDIS_REPLY_ERROR) {
		snprintf(why, sizeof why, "%s: %.*s",
			 step < HS_SCRIPT ? hs_name[step] : "SCRIPT LOAD",
			 (int)(rp->len < 90 ? rp->len : 90), rp->str);
		conn_drop(n, why, false);
	} else if (step == HS_ROLE && !role_master(rp, why, sizeof why)) {
		conn_drop(n, why, false);
	} else if (step >= HS_SCRIPT && (rp->type != REDIS_REPLY_STRING || rp->len != 40)) {
		conn_drop(n, "SCRIPT LOAD: unexpected reply", false);
	} else {
		if (step >= HS_SCRIPT) {
			char *sha = n->sha[step - HS_SCRIPT];
			memcpy(sha, rp->str, 40);
			sha[40] = 0;
		}
		if (step == n->last_step)
			conn_up(n);
	}
	leave(n);
}

/* A subscriber's replies: the confirmation (UP), then each message. */
static void on_message(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)priv;
	struct rnode *n = ac->data;
	redisReply *rp = reply;
	if (!n || !rp)
		return;                   /* dropped; the disconnect callback says so */
	enter(n);
	if (rp->type == REDIS_REPLY_ARRAY && rp->elements == 3 &&
	    rp->element[0]->type == REDIS_REPLY_STRING) {
		if (!strcmp(rp->element[0]->str, "subscribe")) {
			if (n->state != CONN_UP)
				conn_up(n);
		} else if (!strcmp(rp->element[0]->str, "message") && n->owner.message) {
			n->owner.message(n->owner.arg, n, rp);
		}
	} else if (rp->type == REDIS_REPLY_ERROR) {
		char why[120];
		snprintf(why, sizeof why, "SUBSCRIBE: %.*s", (int)(rp->len < 90 ? rp->len : 90),
			 rp->str);
		conn_drop(n, why, false);
	}
	leave(n);
}

/* hiredis: the TCP (or unix) connect finished. */
static void on_connect(const redisAsyncContext *ac, int status)
{
	struct rnode *n = ac->data;
	if (!n)
		return;
	enter(n);
	if (status != REDIS_OK)
		/* hiredis frees the context after this (no disconnect callback) */
		conn_drop(n, conn_error(ac), true);
	else if (n->last_step < 0 && n->state == CONN_CONNECTING)
		conn_up(n);
	leave(n);
}

/* hiredis: an established connection is gone (not one we dropped). */
static void on_disconnect(const redisAsyncContext *ac, int status)
{
	(void)status;
	struct rnode *n = ac->data;
	if (!n)
		return;
	enter(n);
	conn_drop(n, conn_error(ac), true);
	leave(n);
}

/* Queue one handshake command. */
static bool hs_send(struct rnode *n, intptr_t step, int argc, const char **argv)
{
	n->last_step = step;
	return redisAsyncCommandArgv(n->ac, step == HS_SUBSCRIBE ? on_message : on_handshake,
				     (void *)step, argc, argv, NULL) == REDIS_OK;
}

/* Connect (non-blocking) and pipeline the handshake behind it. */
static void conn_start(struct rnode *n)
{
	redisAsyncContext *ac = n->path ? redisAsyncConnectUnix(n->path)
					: redisAsyncConnect(n->host, n->port);
	if (!ac)
		fatal_abort("store redis: out of memory");
	if (ac->err) {
		char *why = xstrdup(conn_error(ac));
		redisAsyncFree(ac);       /* not connected: calls nothing back */
		conn_drop(n, why, true);
		free(why);
		return;
	}
	ac->data = n;
	if (redisLibeventAttach(ac, n->evb) != REDIS_OK)
		fatal_abort("store redis: cannot attach to the event loop");
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	n->ac = ac;
	n->state = CONN_CONNECTING;
	n->last_step = -1;

	bool ok = true;
	if (n->password) {
		const char *argv[3] = { "AUTH", n->user ? n->user : n->password, n->password };
		ok = hs_send(n, HS_AUTH, n->user ? 3 : 2, argv);
	}
	char db[24];
	snprintf(db, sizeof db, "%ld", n->db);
	const char *sel[2] = { "SELECT", db };
	ok = ok && (n->db == 0 || hs_send(n, HS_SELECT, 2, sel));
	const char *role[1] = { "ROLE" };
	ok = ok && (!n->check_master || hs_send(n, HS_ROLE, 1, role));
	for (size_t i = 0; ok && i < n->nscripts; i++) {
		const char *load[3] = { "SCRIPT", "LOAD", n->scripts[i] };
		ok = hs_send(n, HS_SCRIPT + (intptr_t)i, 3, load);
	}
	const char *sub[2] = { "SUBSCRIBE", n->subscribe };
	ok = ok && (!n->subscribe || hs_send(n, HS_SUBSCRIBE, 2, sub));
	if (!ok) {
		conn_drop(n, "cannot queue the handshake", false);
		return;
	}
	evtimer_add(n->handshake_ev, &n->hs_tv);
}

/* The backoff timer: try to connect again. */
static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct rnode *n = arg;
	enter(n);
	if (!n->closing && !n->ac) {
		if (n->owner.stats)
			runtime_stats_add(*n->owner.stats, RC_store_reconnects, 1);
		conn_start(n);
	}
	leave(n);
}

/* Connecting took too long (a stalled server still accepts TCP). */
static void on_handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct rnode *n = arg;
	char why[80];
	snprintf(why, sizeof why, "no answer within %ld ms while connecting",
		 (long)(n->hs_tv.tv_sec * 1000 + n->hs_tv.tv_usec / 1000));
	enter(n);
	conn_drop(n, why, false);
	leave(n);
}

/* ---- the node's life ----------------------------------------------------------- */

struct rnode *rnode_new(struct event_base *base, const struct rnode_config *cfg,
			const struct rnode_owner *owner)
{
	struct rnode *n = xcalloc(1, sizeof *n);
	TAILQ_INIT(&n->pending);
	n->evb = base;
	n->owner = *owner;
	n->host = cfg->host ? xstrdup(cfg->host) : NULL;
	n->port = cfg->port;
	n->path = cfg->path ? xstrdup(cfg->path) : NULL;
	n->user = cfg->user ? xstrdup(cfg->user) : NULL;
	n->password = cfg->password ? xstrdup(cfg->password) : NULL;
	n->subscribe = cfg->subscribe ? xstrdup(cfg->subscribe) : NULL;
	n->addr = cfg->display ? xstrdup(cfg->display)
		  : n->path    ? xstrdup(n->path)
			       : xasprintf(strchr(n->host, ':') ? "[%s]:%d" : "%s:%d", n->host,
					   n->port);
	n->db = cfg->db;
	n->check_master = cfg->check_master;
	n->scripts = cfg->scripts;
	n->nscripts = cfg->nscripts;
	n->sha = cfg->sha;
	n->timeout_ms = cfg->timeout_ms;
	struct timeval tv = { n->timeout_ms / 1000, (n->timeout_ms % 1000) * 1000 };
	/* one queue for every command timer: O(1) instead of a heap insert
	 * (libevent shares the queue between nodes of one timeout) */
	n->cmd_tv = event_base_init_common_timeout(base, &tv);
	if (!n->cmd_tv)
		fatal_abort("store redis: cannot set up timers");
	unsigned hs = n->timeout_ms > RNODE_HANDSHAKE_MIN_MS ? n->timeout_ms
							     : RNODE_HANDSHAKE_MIN_MS;
	n->hs_tv = (struct timeval){ hs / 1000, (hs % 1000) * 1000 };
	n->reconnect_ev = evtimer_new(base, on_reconnect, n);
	n->handshake_ev = evtimer_new(base, on_handshake_timeout, n);
	if (!n->reconnect_ev || !n->handshake_ev)
		fatal_abort("store redis: cannot create timers");
	n->backoff_ms = RNODE_BACKOFF_MIN_MS;
	enter(n);
	conn_start(n);
	leave(n);
	return n;
}

void rnode_free(struct rnode *n)
{
	if (!n || n->closing)
		return;
	enter(n);
	n->closing = true;
	evtimer_del(n->reconnect_ev);
	conn_drop(n, "closed", false);
	leave(n);
}

void rnode_drop(struct rnode *n, const char *why)
{
	if (!n->ac || n->closing)
		return;
	enter(n);
	conn_drop(n, why, false);
	leave(n);
}

void rnode_kick(struct rnode *n)
{
	if (n->closing || n->ac)
		return;
	enter(n);
	evtimer_del(n->reconnect_ev);
	n->backoff_ms = RNODE_BACKOFF_MIN_MS;
	runtime_stats_add(n->owner.stats ? *n->owner.stats : NULL, RC_store_reconnects, 1);
	conn_start(n);
	leave(n);
}

void rnode_set_addr(struct rnode *n, const char *host, int port)
{
	if (n->closing)
		return;
	enter(n);
	if (n->ac)
		conn_drop(n, "moved", false);
	if (!n->closing) {
		free(n->host);
		free(n->addr);
		n->host = xstrdup(host);
		n->port = port;
		n->addr = xasprintf(strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
		rnode_kick(n);
	}
	leave(n);
}
