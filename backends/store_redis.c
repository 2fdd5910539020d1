/*
 * store_redis - the state store in Redis, for MX gateways that must share
 * greylisting, rate and distinct-counter state (the contract is store.h; the key layout,
 * atomicity and failure behaviour are in docs/store.md).
 *
 * One hiredis asynchronous connection on the caller's libevent loop: a
 * request that waits for Redis never blocks anything else. Greylisting,
 * rate and distinct counting are each one Lua script, loaded once per connection and
 * called by its SHA1 (EVALSHA), so every check-and-update is one atomic
 * round trip; time is the caller's `now`, never the Redis clock.
 *
 * Life of a connection:
 *
 *   DOWN --reconnect timer--> CONNECTING --handshake done--> UP
 *     ^                            |                          |
 *     +-------- drop (error, EOF, timeout, handshake failure) +
 *
 * While DOWN every call answers STORE_FAIL at once. While CONNECTING and UP
 * commands are queued on the connection behind the handshake (AUTH, SELECT,
 * SCRIPT LOAD, pipelined), each with its own timer. A timeout drops the
 * whole connection: replies come in order, so every later command would
 * time out too, and a dropped connection answers them now instead of one
 * timeout each. Reconnection backs off from 100 ms to 5 s.
 *
 * Exactly-once answers. A request (struct rreq) is on the store's pending
 * list until it is answered; dropping the connection first takes every
 * pending request off the list and marks it answered, then frees the
 * hiredis context, then calls the callbacks. hiredis later calls each
 * command's reply callback once more (with a late reply or NULL), and an
 * answered request only counts that down; it is freed when answered and
 * no hiredis callback is left to come (r->inflight == 0).
 *
 * Never freed under a callback. Every entry from the loop (timers, hiredis
 * callbacks) and close() hold the store (busy); close() inside a callback
 * only marks it, and the last one out frees it. hiredis defers its own
 * free when redisAsyncFree is called from inside one of its reply
 * callbacks; by then ac->data is NULL, so its leftover callbacks touch
 * nothing of ours but their (answered) requests.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "backends/runtime.h"
#include "backends/store.h"
#include "util/log.h"
#include "util/util.h"

#define REDIS_DEFAULT_PORT 6379
#define REDIS_DEFAULT_PREFIX "mxacl:"
#define REDIS_DEFAULT_TIMEOUT_MS 200
#define REDIS_MAX_TIMEOUT_MS 60000
#define REDIS_BACKOFF_MIN_MS 100
#define REDIS_BACKOFF_MAX_MS 5000
/* Connecting and the handshake get at least this long (slow links). */
#define REDIS_HANDSHAKE_MIN_MS 1000
#define REDIS_ERR_LOG_S 60            /* error replies: a line a minute at most, and
					 a minute without one ends their outage */
/* Keys asked for per SCAN step (list, flush). */
#define REDIS_SCAN_COUNT "1000"
#define REDIS_PREFIX_MAX 256

/* ---- the scripts ----------------------------------------------------------
 *
 * Keys are hashes (see docs/store.md); every hash carries `expires`, the
 * logical end of the entry on the gateways' clock, so the answers follow
 * the caller's `now` exactly as the memory store does, and a Redis TTL of
 * the same length lets Redis drop it without a cleanup job. Elapsed times
 * are clamped at 0: a gateway whose clock is a little behind another's
 * sees "just now", not a restart.
 */

/* KEYS: triplet, AWL net. ARGV: now delay expire retry_window awl.
 * Returns {greylisted, remaining, age, awl, state}, state an enum
 * grey_state: 0 new, 1 early retry, 2 first pass, 3 passed, 4 awl. */
static const char grey_lua[] =
	"local now = tonumber(ARGV[1])\n"
	"local delay, expire = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
	"local window, awl = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
	"local function since(t) if now > t then return now - t end return 0 end\n"
	"local function ttl(n) if n < 1 then return 1 end return n end\n"
	"if awl > 0 then\n"
	"  local w = redis.call('HMGET', KEYS[2], 'count', 'expires')\n"
	"  local c, e = tonumber(w[1]), tonumber(w[2])\n"
	"  if c and e and now < e and c >= awl then\n"
	"    redis.call('HSET', KEYS[2], 'last', now, 'expires', now + expire)\n"
	"    redis.call('EXPIRE', KEYS[2], ttl(expire))\n"
	"    return {0, 0, 0, 1, 4}\n"
	"  end\n"
	"end\n"
	"local t = redis.call('HMGET', KEYS[1], 'first', 'last', 'passed', 'expires')\n"
	"local first, last, e = tonumber(t[1]), tonumber(t[2]), tonumber(t[4])\n"
	"local passed = t[3] == '1'\n"
	"if not (first and last and e) or now >= e\n"
	"   or (not passed and since(first) > window)\n"
	"   or (passed and since(last) > expire) then\n"
	"  redis.call('HSET', KEYS[1], 'first', now, 'last', now, 'passed', 0,\n"
	"             'expires', now + window + delay)\n"
	"  redis.call('EXPIRE', KEYS[1], ttl(window + delay))\n"
	"  return {1, delay, 0, 0, 0}\n"
	"end\n"
	"local age = since(first)\n"
	"local state = 3\n"
	"if not passed and age >= delay then\n"
	"  passed = true\n"
	"  state = 2\n"
	"  if awl > 0 then\n"
	"    local w = redis.call('HMGET', KEYS[2], 'count', 'expires')\n"
	"    local c, we = tonumber(w[1]), tonumber(w[2])\n"
	"    if not (c and we) or now >= we then\n"
	"      redis.call('DEL', KEYS[2])\n"
	"      redis.call('HSET', KEYS[2], 'first', now)\n"
	"      c = 0\n"
	"    end\n"
	"    redis.call('HSET', KEYS[2], 'count', c + 1, 'last', now, 'expires', now + expire)\n"
	"    redis.call('EXPIRE', KEYS[2], ttl(expire))\n"
	"  end\n"
	"end\n"
	"if passed then\n"
	"  redis.call('HSET', KEYS[1], 'last', now, 'passed', 1, 'expires', now + expire)\n"
	"  redis.call('EXPIRE', KEYS[1], ttl(expire))\n"
	"  return {0, 0, age, 0, state}\n"
	"end\n"
	"redis.call('HSET', KEYS[1], 'last', now)\n"
	"return {1, delay - age, age, 0, 1}\n";

/* count=requests: a sliding log, one member per event, scored by its
 * time; an event that would pass the limit is not added, so at most limit
 * members. The first write frees (ZREMRANGEBYSCORE: see the OOM note in
 * docs/store.md). KEYS: log. ARGV: now window limit member (unique across
 * gateways). Returns {count (the window's events and this one), over}. */
static const char rate_lua[] =
	"local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
	"local limit = tonumber(ARGV[3])\n"
	"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)\n"
	"local n = redis.call('ZCARD', KEYS[1]) + 1\n"
	"if n > limit then return {n, 1} end\n"
	"redis.call('ZADD', KEYS[1], now, ARGV[4])\n"
	"if window < 1 then window = 1 end\n"
	"redis.call('EXPIRE', KEYS[1], window)\n"
	"return {n, 0}\n";

/* count=recipients|bytes: a slotted log (store.h), a hash of slot time
 * (the slot's last second) -> amount; at most RATE_SLOTS + 1 live fields.
 * The amount is added to this slot only when the window's sum and it stay
 * within the limit. The TTL only grows: it covers the newest slot.
 * KEYS: log. ARGV: now window limit amount slot (rate_slot_time).
 * Returns {count (the window's sum and this amount), over}. Lua numbers
 * are doubles: sums up to 2^53 are exact (limits stop at 2^40). */
static const char sum_lua[] =
	"local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
	"local limit, amount = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
	"local h = redis.call('HGETALL', KEYS[1])\n"
	"local sum, dead = 0, {}\n"
	"for i = 1, #h, 2 do\n"
	"  if tonumber(h[i]) + window <= now then dead[#dead + 1] = h[i]\n"
	"  else sum = sum + tonumber(h[i + 1]) end\n"
	"end\n"
	"if #dead > 0 then redis.call('HDEL', KEYS[1], unpack(dead)) end\n"
	"local n = sum + amount\n"
	"if n > limit then return {n, 1} end\n"
	"if amount > 0 then\n"
	"  redis.call('HINCRBY', KEYS[1], ARGV[5], amount)\n"
	"  local ttl = tonumber(ARGV[5]) + window - now\n"
	"  if ttl < 1 then ttl = 1 end\n"
	"  if redis.call('TTL', KEYS[1]) < ttl then redis.call('EXPIRE', KEYS[1], ttl) end\n"
	"end\n"
	"return {n, 0}\n";

/* A distinct counter: a sorted set of values scored by their last
 * sighting (store.h has the rules). A value seen again keeps the later of
 * its two times (a gateway's clock may be behind another's); a new value
 * past the limit is not added. KEYS: set. ARGV: now window limit value.
 * Returns {count (limit + 1 when over), added (1: the value joined the set
 * now, so a refund may take it out)}. */
static const char distinct_lua[] =
	"local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
	"local limit = tonumber(ARGV[3])\n"
	"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)\n"
	"local n = redis.call('ZCARD', KEYS[1])\n"
	"local t = redis.call('ZSCORE', KEYS[1], ARGV[4])\n"
	"if not t then\n"
	"  if n >= limit then return {limit + 1, 0} end\n"
	"  n = n + 1\n"
	"end\n"
	"if not t or tonumber(t) < now then redis.call('ZADD', KEYS[1], now, ARGV[4]) end\n"
	"if window < 1 then window = 1 end\n"
	"redis.call('EXPIRE', KEYS[1], window)\n"
	"if t then return {n, 0} end\n"
	"return {n, 1}\n";

/* A refund (store.h), one of three by ARGV[1]: 'r' an exact log's member
 * ARGV[2] leaves it; 's' ARGV[3] leaves a slotted log's slot ARGV[2]
 * (never below 0; an empty slot goes); 'd' value ARGV[2] leaves a distinct
 * set if its score is still ARGV[3] (the request's now: a later sighting
 * keeps it). TTLs stay: they only cover what is left. KEYS: the log or
 * set. Returns 1 when something was undone, else 0. */
static const char refund_lua[] =
	"local kind = ARGV[1]\n"
	"if kind == 'r' then return redis.call('ZREM', KEYS[1], ARGV[2]) end\n"
	"if kind == 'd' then\n"
	"  local t = redis.call('ZSCORE', KEYS[1], ARGV[2])\n"
	"  if t and tonumber(t) == tonumber(ARGV[3]) then\n"
	"    return redis.call('ZREM', KEYS[1], ARGV[2])\n"
	"  end\n"
	"  return 0\n"
	"end\n"
	"local v = tonumber(redis.call('HGET', KEYS[1], ARGV[2]))\n"
	"if not v then return 0 end\n"
	"local left = v - tonumber(ARGV[3])\n"
	"if left > 0 then redis.call('HSET', KEYS[1], ARGV[2], left)\n"
	"else redis.call('HDEL', KEYS[1], ARGV[2]) end\n"
	"return 1\n";

/* list: each key and its fields, for one SCAN batch. pcall: a foreign key
 * of another type under the prefix is skipped, not an error. */
static const char list_lua[] =
	"local out = {}\n"
	"for i = 1, #KEYS do\n"
	"  local h = redis.pcall('HGETALL', KEYS[i])\n"
	"  if type(h) == 'table' and not h.err and #h > 0 then\n"
	"    out[#out + 1] = KEYS[i]\n"
	"    out[#out + 1] = h\n"
	"  end\n"
	"end\n"
	"return out\n";

/* edit WHITELIST. KEYS: net. ARGV: now count expire. */
static const char whitelist_lua[] =
	"local now, expire = tonumber(ARGV[1]), tonumber(ARGV[3])\n"
	"redis.call('HSETNX', KEYS[1], 'first', now)\n"
	"redis.call('HSET', KEYS[1], 'count', ARGV[2], 'last', now, 'expires', now + expire)\n"
	"if expire < 1 then expire = 1 end\n"
	"redis.call('EXPIRE', KEYS[1], expire)\n"
	"return 1\n";

/* edit PASS. KEYS: triplet. ARGV: now expire. */
static const char pass_lua[] =
	"local now, expire = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
	"redis.call('HSETNX', KEYS[1], 'first', now)\n"
	"redis.call('HSET', KEYS[1], 'last', now, 'passed', 1, 'expires', now + expire)\n"
	"if expire < 1 then expire = 1 end\n"
	"redis.call('EXPIRE', KEYS[1], expire)\n"
	"return 1\n";

/* ---- the store ------------------------------------------------------------ */

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_UP };

/* Handshake steps, in the order they are pipelined. */
enum hs_step { HS_AUTH, HS_SELECT, HS_LOAD_GREY, HS_LOAD_RATE, HS_LOAD_SUM, HS_LOAD_DISTINCT,
	       HS_LOAD_REFUND };
static const char *const hs_name[] = { "AUTH", "SELECT", "SCRIPT LOAD", "SCRIPT LOAD",
				       "SCRIPT LOAD", "SCRIPT LOAD", "SCRIPT LOAD" };

struct rreq;

struct store_redis {
	struct store base;            /* first: what store.h hands out */
	struct event_base *evb;
	char *display;                /* the URL without its password, for logs */

	/* where and how (from the URL) */
	bool is_unix;
	char *host;                   /* a numeric address (resolved at open) */
	int port;
	char *path;                   /* unix socket */
	char *user, *password;        /* NULL: no AUTH */
	long db;
	char *prefix;
	size_t prefix_len;
	unsigned timeout_ms;
	const struct timeval *cmd_tv; /* libevent common timeout: O(1) timers */
	struct timeval hs_tv;

	enum conn_state state;
	redisAsyncContext *ac;        /* NULL while DOWN */
	struct event *reconnect_ev, *handshake_ev;
	unsigned backoff_ms;
	bool outage;                  /* logged as lost, not yet back */
	bool ever_up;
	/* error replies (OOM, READONLY, ...), logged per outage (cmd_failed) */
	bool cmd_failing;             /* in an outage: an error reply within REDIS_ERR_LOG_S */
	uint64_t cmd_logged_at;       /* mono_s() of its last line */
	uint64_t cmd_last_error;      /* mono_s() of its latest error reply */
	uint64_t cmd_errors, cmd_oks; /* replies since its last line */
	uint64_t cmd_errors_all;      /* error replies in the whole outage */
	char sha_grey[41], sha_rate[41]; /* empty until a SCRIPT LOAD answered */
	char sha_sum[41], sha_distinct[41], sha_refund[41];

	TAILQ_HEAD(, rreq) pending;   /* unanswered requests, oldest first */
	int busy;                     /* loop entries and close() on the stack */
	bool closing;

	uint64_t nonce, seq;          /* unique rate members */
	char *scan_pattern;           /* PREFIX (glob-escaped) + "[ga]:*" */
};

enum rkind { RK_GREY, RK_RATE, RK_LIST, RK_EDIT, RK_FLUSH, RK_DISTINCT };

#define RREQ_MAXARG 10

struct rreq {
	TAILQ_ENTRY(rreq) link;       /* on s's pending list while unanswered */
	struct store_redis *s;        /* NULL once answered */
	enum rkind kind;
	bool answered;
	bool retried;                 /* NOSCRIPT: sent again as EVAL */
	bool scan_over;               /* list, flush: SCAN said cursor 0 */
	int inflight;                 /* hiredis callbacks to come, plus holds */
	struct event *timer;
	union {
		grey_cb grey;
		rate_cb rate;
		distinct_cb distinct;
		store_list_cb list;
		store_done_cb done;
	} cb;
	void *arg;
	time_t now;                   /* list: drops what has expired by then */
	uint32_t limit;               /* distinct: over when the count passes it */
	uint64_t seq;                 /* rate, exact: its member's number (answer id) */
	const char *script;           /* grey, rate, distinct: the body, for the EVAL retry */
	unsigned long changed;        /* flush: keys deleted so far */
	/* grey, rate: the command, kept for the EVAL retry after NOSCRIPT */
	int argc;
	const char *argv[RREQ_MAXARG];
	size_t argvlen[RREQ_MAXARG];
	char buf[];                   /* the arguments' bytes */
};

/* The Redis store behind store.h's handle. */
static struct store_redis *sr(struct store *s)
{
	return (struct store_redis *)s;
}

static void conn_drop(struct store_redis *s, const char *why, bool hiredis_frees);

/* ---- holding the store ------------------------------------------------------ */

/* Free s for good: nothing may be pending and no connection left. */
static void store_free(struct store_redis *s)
{
	assert(TAILQ_EMPTY(&s->pending) && !s->ac);
	if (s->reconnect_ev)
		event_free(s->reconnect_ev);
	if (s->handshake_ev)
		event_free(s->handshake_ev);
	free(s->display);
	free(s->host);
	free(s->path);
	free(s->user);
	if (s->password) {
		explicit_bzero(s->password, strlen(s->password));
		free(s->password);
	}
	free(s->prefix);
	free(s->scan_pattern);
	free(s);
}

/* Keep s alive while code that may call back (and so close it) runs. */
static void enter(struct store_redis *s)
{
	s->busy++;
}

/* The last one out of a closing store frees it. */
static void leave(struct store_redis *s)
{
	if (--s->busy == 0 && s->closing)
		store_free(s);
}

/* ---- requests --------------------------------------------------------------- */

static void on_cmd_timeout(evutil_socket_t fd, short what, void *arg);

/* A pending request with extra bytes of argument room, its timer running. */
static struct rreq *rreq_new(struct store_redis *s, enum rkind kind, size_t extra)
{
	struct rreq *r = xcalloc(1, sizeof *r + extra);
	r->s = s;
	r->kind = kind;
	TAILQ_INSERT_TAIL(&s->pending, r, link);
	r->timer = evtimer_new(s->evb, on_cmd_timeout, r);
	if (!r->timer)
		fatal_abort("store redis: cannot create a timer");
	evtimer_add(r->timer, s->cmd_tv);
	return r;
}

/* Mark r answered, whatever hiredis still has to say about it (r is off
 * the pending list already). */
static void rreq_answered(struct rreq *r)
{
	r->answered = true;
	r->s = NULL;
	event_free(r->timer);
	r->timer = NULL;
}

/* Take r off the pending list: from here on it is answered. The callback
 * comes separately. */
static void rreq_settle(struct rreq *r)
{
	assert(!r->answered && r->s);
	TAILQ_REMOVE(&r->s->pending, r, link);
	rreq_answered(r);
}

/* The one final callback. answer: the typed answer, NULL on failure. */
static void rreq_notify(struct rreq *r, enum store_status st, const void *answer)
{
	switch (r->kind) {
	case RK_GREY:
		r->cb.grey(r->arg, st, answer);
		break;
	case RK_RATE:
		r->cb.rate(r->arg, st, answer);
		break;
	case RK_DISTINCT:
		r->cb.distinct(r->arg, st, answer);
		break;
	case RK_LIST:
		r->cb.list(r->arg, st, NULL);
		break;
	case RK_EDIT:
	case RK_FLUSH:
		r->cb.done(r->arg, st, st == STORE_OK ? *(const unsigned long *)answer : 0);
		break;
	}
}

/* Drop a hold (or a hiredis callback's count) on r; free it when done. */
static void rreq_put(struct rreq *r)
{
	assert(r->inflight > 0);
	if (--r->inflight == 0 && r->answered)
		free(r);
}

/* Answer r; the caller holds r (inflight) or frees it after. */
static void rreq_answer(struct rreq *r, enum store_status st, const void *answer)
{
	rreq_settle(r);
	rreq_notify(r, st, answer);
}

/* Queue one command for r; false when hiredis refuses it. */
static bool rreq_send(struct store_redis *s, struct rreq *r, redisCallbackFn *fn, int argc,
		      const char **argv, const size_t *argvlen)
{
	if (!s->ac || redisAsyncCommandArgv(s->ac, fn, r, argc, argv, argvlen) != REDIS_OK)
		return false;
	r->inflight++;
	return true;
}

/* A request that could not even be queued: answer it and let it go. */
static void rreq_fail_now(struct rreq *r)
{
	r->inflight++;
	rreq_answer(r, STORE_FAIL, NULL);
	rreq_put(r);
}

/* Why hiredis gave up on a connection. */
static const char *conn_error(const redisAsyncContext *ac)
{
	return ac->err && ac->errstr[0] ? ac->errstr : "connection closed";
}

/*
 * The start of every request's reply callback: false when the reply is not
 * ours to use. An answered request only counts the callback down. NULL for
 * an unanswered request means hiredis is dropping the connection on its
 * own (we settle every request before we drop one): drop ours with it.
 */
static bool reply_live(redisAsyncContext *ac, void *reply, struct rreq *r)
{
	if (r->answered) {
		rreq_put(r);
		return false;
	}
	if (!reply) {
		struct store_redis *s = r->s;
		enter(s);
		conn_drop(s, conn_error(ac), true);
		rreq_put(r);
		leave(s);
		return false;
	}
	return true;
}

/* Seconds of a clock that never steps back, for the error outage. */
static uint64_t mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec;
}

/*
 * An error reply (or a reply of the wrong shape) fails one request. Error
 * replies are logged per outage, as a lost connection is, but an outage
 * of errors has no clean end: at maxmemory with noeviction, Redis refuses
 * the greylist's writes while the rate script (which frees before it adds)
 * goes through, so errors and successes alternate request after request.
 * The first error starts an outage (a warning); while errors go on, a
 * warning a minute at most, with counts; a success after a minute without
 * errors ends it (one line, with the count).
 */
static void cmd_failed(struct store_redis *s, const redisReply *rp)
{
	uint64_t now = mono_s();
	char what[160];
	if (rp->type == REDIS_REPLY_ERROR)
		snprintf(what, sizeof what, "%.*s", (int)(rp->len < 150 ? rp->len : 150), rp->str);
	else
		snprintf(what, sizeof what, "unexpected reply (type %d)", rp->type);
	s->cmd_last_error = now;
	s->cmd_errors++;
	s->cmd_errors_all++;
	if (!s->cmd_failing) {
		s->cmd_failing = true;
		s->cmd_errors_all = 1;
		log_warning("store %s: command failed: %s; greylist and rate acls answer as "
			    "temporary failures", s->display, what);
	} else if (now - s->cmd_logged_at >= REDIS_ERR_LOG_S) {
		log_warning("store %s: commands still failing: %" PRIu64 " failed and %" PRIu64
			    " succeeded since the last warning, the latest: %s; greylist and rate "
			    "acls answer as temporary failures", s->display, s->cmd_errors,
			    s->cmd_oks, what);
	} else {
		return;
	}
	s->cmd_logged_at = now;
	s->cmd_errors = s->cmd_oks = 0;
}

/* A command worked: end an outage of error replies after a quiet minute. */
static void cmd_succeeded(struct store_redis *s)
{
	if (!s->cmd_failing)
		return;
	s->cmd_oks++;
	if (mono_s() - s->cmd_last_error < REDIS_ERR_LOG_S)
		return;
	s->cmd_failing = false;
	log_info("store %s: commands succeed again: none failed for %d s (%" PRIu64 " failed "
		 "command%s in this outage)", s->display, REDIS_ERR_LOG_S, s->cmd_errors_all,
		 s->cmd_errors_all == 1 ? "" : "s");
}

/* The end of a command: answer when the reply had the expected shape, else
 * fail it (cmd_failed logs per outage of failures). */
static void cmd_done(struct store_redis *s, struct rreq *r, const redisReply *rp, bool ok,
		     const void *answer)
{
	if (ok) {
		cmd_succeeded(s);
		rreq_answer(r, STORE_OK, answer);
	} else {
		cmd_failed(s, rp);
		rreq_answer(r, STORE_FAIL, NULL);
	}
}

/* A command took too long: the connection is stuck, drop it. */
static void on_cmd_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct rreq *r = arg;
	struct store_redis *s = r->s;
	char why[80];
	snprintf(why, sizeof why, "no reply within %u ms", s->timeout_ms);
	enter(s);
	conn_drop(s, why, false);
	leave(s);
}

/* ---- the connection ----------------------------------------------------------- */

/* Can a command be queued now? (Else the call fails at once.) */
static bool store_ready(const struct store_redis *s)
{
	return !s->closing && s->ac && s->state != CONN_DOWN;
}

/*
 * Drop the connection (if any): settle every pending request, free the
 * hiredis context unless hiredis is freeing it itself, log the outage once,
 * schedule a reconnect (unless closing), and only then answer the
 * requests, so that a callback that calls us again finds a consistent
 * store. The caller holds s.
 */
static void conn_drop(struct store_redis *s, const char *why, bool hiredis_frees)
{
	redisAsyncContext *ac = s->ac;
	TAILQ_HEAD(, rreq) dropped = TAILQ_HEAD_INITIALIZER(dropped);
	TAILQ_CONCAT(&dropped, &s->pending, link);
	s->ac = NULL;
	s->state = CONN_DOWN;
	evtimer_del(s->handshake_ev);
	struct rreq *r;
	TAILQ_FOREACH(r, &dropped, link) {
		r->inflight++;            /* ours until its callback below */
		rreq_answered(r);
	}
	if (ac) {
		ac->data = NULL;
		if (!hiredis_frees)
			redisAsyncFree(ac);
	}
	if (!s->closing) {
		if (!s->outage) {
			s->outage = true;
			if (s->base.stats)
				s->base.stats->c[RC_store_down] = 1;
			log_warning("store %s: %s: %s; greylist and rate acls answer as temporary "
				    "failures", s->display,
				    s->ever_up ? "connection lost" : "cannot connect", why);
		}
		struct timeval tv = { s->backoff_ms / 1000, (s->backoff_ms % 1000) * 1000 };
		evtimer_add(s->reconnect_ev, &tv);
		s->backoff_ms = s->backoff_ms * 2 > REDIS_BACKOFF_MAX_MS ? REDIS_BACKOFF_MAX_MS
									  : s->backoff_ms * 2;
	}
	while ((r = TAILQ_FIRST(&dropped)) != NULL) {
		TAILQ_REMOVE(&dropped, r, link);
		rreq_notify(r, STORE_FAIL, NULL);
		rreq_put(r);
	}
}

/* The handshake is done: serve, and say so if an outage ends. */
static void conn_up(struct store_redis *s)
{
	s->state = CONN_UP;
	evtimer_del(s->handshake_ev);
	s->backoff_ms = REDIS_BACKOFF_MIN_MS;
	if (s->outage) {
		s->outage = false;
		if (s->base.stats)
			s->base.stats->c[RC_store_down] = 0;
		log_info("store %s: %s", s->display, s->ever_up ? "connected again" : "connected");
	}
	s->ever_up = true;
}

/* Replies to the handshake; privdata is the step. */
static void on_handshake(redisAsyncContext *ac, void *reply, void *priv)
{
	struct store_redis *s = ac->data;
	if (!s)
		return;                   /* a connection we dropped */
	enum hs_step step = (enum hs_step)(intptr_t)priv;
	redisReply *rp = reply;
	enter(s);
	if (!rp) {
		conn_drop(s, conn_error(ac), true);
	} else if (rp->type == REDIS_REPLY_ERROR) {
		char *why = xasprintf("%s: %.*s", hs_name[step], (int)rp->len, rp->str);
		conn_drop(s, why, false);
		free(why);
	} else if (step >= HS_LOAD_GREY) {
		char *sha = step == HS_LOAD_GREY ? s->sha_grey :
			    step == HS_LOAD_RATE ? s->sha_rate :
			    step == HS_LOAD_SUM ? s->sha_sum :
			    step == HS_LOAD_DISTINCT ? s->sha_distinct : s->sha_refund;
		if (rp->type == REDIS_REPLY_STRING && rp->len == 40) {
			memcpy(sha, rp->str, 40);
			sha[40] = 0;
			if (step == HS_LOAD_REFUND)     /* the last step */
				conn_up(s);
		} else {
			conn_drop(s, "SCRIPT LOAD: unexpected reply", false);
		}
	}
	leave(s);
}

/* hiredis: the TCP (or unix) connect finished; only a failure matters. */
static void on_connect(const redisAsyncContext *ac, int status)
{
	struct store_redis *s = ac->data;
	if (!s || status == REDIS_OK)
		return;
	/* hiredis frees the context after this (no disconnect callback) */
	enter(s);
	conn_drop(s, conn_error(ac), true);
	leave(s);
}

/* hiredis: an established connection is gone (not one we dropped). */
static void on_disconnect(const redisAsyncContext *ac, int status)
{
	(void)status;
	struct store_redis *s = ac->data;
	if (!s)
		return;
	enter(s);
	conn_drop(s, conn_error(ac), true);
	leave(s);
}

/* Queue one handshake command. */
static bool hs_send(struct store_redis *s, enum hs_step step, int argc, const char **argv)
{
	return redisAsyncCommandArgv(s->ac, on_handshake, (void *)(intptr_t)step, argc, argv,
				     NULL) == REDIS_OK;
}

/* Connect (non-blocking) and pipeline the handshake behind it. */
static void conn_start(struct store_redis *s)
{
	redisAsyncContext *ac = s->is_unix ? redisAsyncConnectUnix(s->path)
					   : redisAsyncConnect(s->host, s->port);
	if (!ac)
		fatal_abort("store redis: out of memory");
	if (ac->err) {
		char *why = xstrdup(conn_error(ac));
		redisAsyncFree(ac);       /* not connected: calls nothing back */
		conn_drop(s, why, true);
		free(why);
		return;
	}
	ac->data = s;
	if (redisLibeventAttach(ac, s->evb) != REDIS_OK)
		fatal_abort("store redis: cannot attach to the event loop");
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	s->ac = ac;
	s->state = CONN_CONNECTING;

	bool ok = true;
	if (s->password) {
		const char *argv[3] = { "AUTH", s->user ? s->user : s->password, s->password };
		ok = hs_send(s, HS_AUTH, s->user ? 3 : 2, argv);
	}
	char db[24];
	snprintf(db, sizeof db, "%ld", s->db);
	const char *sel[2] = { "SELECT", db };
	const char *lg[3] = { "SCRIPT", "LOAD", grey_lua };
	const char *lr[3] = { "SCRIPT", "LOAD", rate_lua };
	const char *ls[3] = { "SCRIPT", "LOAD", sum_lua };
	ok = ok && (s->db == 0 || hs_send(s, HS_SELECT, 2, sel));
	const char *ld[3] = { "SCRIPT", "LOAD", distinct_lua };
	const char *lf[3] = { "SCRIPT", "LOAD", refund_lua };
	ok = ok && hs_send(s, HS_LOAD_GREY, 3, lg) && hs_send(s, HS_LOAD_RATE, 3, lr) &&
	     hs_send(s, HS_LOAD_SUM, 3, ls) && hs_send(s, HS_LOAD_DISTINCT, 3, ld) &&
	     hs_send(s, HS_LOAD_REFUND, 3, lf);
	if (!ok) {
		conn_drop(s, "cannot queue the handshake", false);
		return;
	}
	evtimer_add(s->handshake_ev, &s->hs_tv);
}

/* The backoff timer: try to connect again. */
static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct store_redis *s = arg;
	enter(s);
	if (!s->closing && !s->ac) {
		runtime_stats_add(s->base.stats, RC_store_reconnects, 1);
		conn_start(s);
	}
	leave(s);
}

/* Connecting took too long (a stalled server still accepts TCP). */
static void on_handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct store_redis *s = arg;
	char why[80];
	snprintf(why, sizeof why, "no answer within %ld ms while connecting",
		 (long)(s->hs_tv.tv_sec * 1000 + s->hs_tv.tv_usec / 1000));
	enter(s);
	conn_drop(s, why, false);
	leave(s);
}

/* ---- grey and rate ---------------------------------------------------------- */

/* Element i of an array reply, when it is an integer. */
static bool int_elem(const redisReply *rp, size_t i, long long *out)
{
	if (rp->type != REDIS_REPLY_ARRAY || i >= rp->elements ||
	    rp->element[i]->type != REDIS_REPLY_INTEGER)
		return false;
	*out = rp->element[i]->integer;
	return true;
}

/* A script's number as an answer field. */
static uint32_t clamp_u32(long long v)
{
	return v < 0 ? 0 : v > (long long)UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* The reply to EVALSHA (or EVAL) of the grey or rate script. */
static void on_script_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rreq *r = priv;
	if (!reply_live(ac, reply, r))
		return;
	struct store_redis *s = r->s;
	redisReply *rp = reply;
	enter(s);
	if (rp->type == REDIS_REPLY_ERROR && !r->retried && rp->len >= 8 &&
	    memcmp(rp->str, "NOSCRIPT", 8) == 0) {
		/* The server lost its script cache (restart, SCRIPT FLUSH, a
		 * failover): EVAL sends the body and caches it again. */
		const char *body = r->script;
		r->retried = true;
		r->argv[0] = "EVAL";
		r->argvlen[0] = 4;
		r->argv[1] = body;
		r->argvlen[1] = strlen(body);
		if (rreq_send(s, r, on_script_reply, r->argc, r->argv, r->argvlen))
			evtimer_add(r->timer, s->cmd_tv);
		else
			rreq_answer(r, STORE_FAIL, NULL);
	} else if (r->kind == RK_GREY) {
		long long g = 0, rem = 0, age = 0, awl = 0, state = 0;
		bool ok = int_elem(rp, 0, &g) && int_elem(rp, 1, &rem) && int_elem(rp, 2, &age) &&
			  int_elem(rp, 3, &awl) && int_elem(rp, 4, &state) && state >= GREY_NEW &&
			  state <= GREY_AWL;
		struct grey_answer a = { .greylisted = g != 0, .awl = awl != 0,
					 .remaining = clamp_u32(rem), .age = clamp_u32(age),
					 .state = (enum grey_state)state };
		cmd_done(s, r, rp, ok, &a);
	} else if (r->kind == RK_DISTINCT) {
		long long n = 0, added = 0;
		bool ok = int_elem(rp, 0, &n) && int_elem(rp, 1, &added);
		struct distinct_answer a = { .count = ok ? clamp_u32(n) : 0, .added = added != 0 };
		a.over = a.count > r->limit;
		cmd_done(s, r, rp, ok, &a);
	} else if (r->kind == RK_EDIT) {           /* a refund */
		bool ok = rp->type == REDIS_REPLY_INTEGER;
		unsigned long n = ok && rp->integer > 0 ? 1 : 0;
		cmd_done(s, r, rp, ok, &n);
	} else {
		long long n = 0, over = 0;
		bool ok = int_elem(rp, 0, &n) && int_elem(rp, 1, &over) && n >= 0;
		struct rate_answer a = { .count = (uint64_t)n, .over = over != 0, .id = r->seq };
		cmd_done(s, r, rp, ok, &a);
	}
	rreq_put(r);
	leave(s);
}

/* ---- building commands -------------------------------------------------------- */

/* Add an argument of r's command from its buffer: PREFIX KIND KEY. */
static void arg_key(struct rreq *r, char **pos, const struct store_redis *s, const char *kind,
		    const char *key, size_t len)
{
	char *p = *pos;
	memcpy(p, s->prefix, s->prefix_len);
	p += s->prefix_len;
	memcpy(p, kind, 2);
	p += 2;
	memcpy(p, key, len);
	p += len;
	r->argv[r->argc] = *pos;
	r->argvlen[r->argc++] = (size_t)(p - *pos);
	*pos = p;
}

/* Room arg_num needs for one number. */
#define NUM_ROOM 24

/* Add a decimal number argument from r's buffer. */
static void arg_num(struct rreq *r, char **pos, long long v)
{
	int n = snprintf(*pos, NUM_ROOM, "%lld", v);
	r->argv[r->argc] = *pos;
	r->argvlen[r->argc++] = (size_t)n;
	*pos += n;
}

/* Add a constant argument (not copied: it outlives r). */
static void arg_lit(struct rreq *r, const char *lit)
{
	r->argv[r->argc] = lit;
	r->argvlen[r->argc++] = strlen(lit);
}

/* EVALSHA sha NKEYS, or EVAL body NKEYS until the SHA is known. */
static void arg_script(struct rreq *r, const char *sha, const char *body, const char *nkeys)
{
	if (sha[0]) {
		arg_lit(r, "EVALSHA");
		arg_lit(r, sha);
	} else {
		arg_lit(r, "EVAL");
		arg_lit(r, body);
		r->retried = true;        /* nothing to retry with */
	}
	arg_lit(r, nkeys);
}

/* store_ops.grey: one EVALSHA of the grey script. */
static void redis_grey(struct store *st, const struct grey_query *q, grey_cb cb, void *arg)
{
	struct store_redis *s = sr(st);
	if (!store_ready(s)) {
		cb(arg, STORE_FAIL, NULL);
		return;
	}
	struct rreq *r = rreq_new(s, RK_GREY, 2 * (s->prefix_len + 2) + q->triplet_len +
						      q->net_len + 5 * NUM_ROOM);
	r->cb.grey = cb;
	r->arg = arg;
	char *pos = r->buf;
	r->script = grey_lua;
	arg_script(r, s->sha_grey, grey_lua, "2");
	arg_key(r, &pos, s, "g:", q->triplet, q->triplet_len);
	arg_key(r, &pos, s, "a:", q->net, q->net_len);
	arg_num(r, &pos, (long long)q->now);
	arg_num(r, &pos, q->p.delay);
	arg_num(r, &pos, q->p.expire);
	arg_num(r, &pos, q->p.retry_window);
	arg_num(r, &pos, q->p.awl);
	if (!rreq_send(s, r, on_script_reply, r->argc, r->argv, r->argvlen))
		rreq_fail_now(r);
}

/* Add an exact log's member from r's buffer (64 bytes): this store's
 * nonce and the event's sequence number. */
static void arg_member(struct rreq *r, char **pos, const struct store_redis *s, uint64_t seq)
{
	int n = snprintf(*pos, 64, "%016llx%llx", (unsigned long long)s->nonce,
			 (unsigned long long)seq);
	r->argv[r->argc] = *pos;
	r->argvlen[r->argc++] = (size_t)n;
	*pos += n;
}

/* store_ops.rate: one EVALSHA of the rate script (count=requests) or of
 * the sum script (recipients, bytes). */
static void redis_rate(struct store *st, const struct rate_query *q, rate_cb cb, void *arg)
{
	struct store_redis *s = sr(st);
	if (!store_ready(s)) {
		cb(arg, STORE_FAIL, NULL);
		return;
	}
	struct rreq *r = rreq_new(s, RK_RATE, s->prefix_len + 2 + q->key_len + 5 * NUM_ROOM + 64);
	r->cb.rate = cb;
	r->arg = arg;
	char *pos = r->buf;
	r->script = q->slotted ? sum_lua : rate_lua;
	arg_script(r, q->slotted ? s->sha_sum : s->sha_rate, r->script, "1");
	arg_key(r, &pos, s, q->slotted ? "q:" : "r:", q->key, q->key_len);
	arg_num(r, &pos, (long long)q->now);
	arg_num(r, &pos, q->window);
	arg_num(r, &pos, (long long)q->limit);
	if (q->slotted) {
		arg_num(r, &pos, (long long)q->amount);
		arg_num(r, &pos, (long long)rate_slot_time((uint64_t)q->now, q->window));
	} else {
		/* a member no other event, here or on another gateway, can have;
		 * the time is its score, so the member is only this store's
		 * random nonce and a sequence number (short: a busy log holds
		 * limit of them) */
		r->seq = ++s->seq;
		arg_member(r, &pos, s, r->seq);
	}
	if (!rreq_send(s, r, on_script_reply, r->argc, r->argv, r->argvlen))
		rreq_fail_now(r);
}

/* store_ops.distinct: one EVALSHA of the distinct script. */
static void redis_distinct(struct store *st, const struct distinct_query *q, distinct_cb cb,
			   void *arg)
{
	struct store_redis *s = sr(st);
	if (!store_ready(s)) {
		cb(arg, STORE_FAIL, NULL);
		return;
	}
	struct rreq *r = rreq_new(s, RK_DISTINCT,
				  s->prefix_len + 2 + q->key_len + q->value_len + 3 * NUM_ROOM);
	r->cb.distinct = cb;
	r->arg = arg;
	r->limit = q->limit;
	r->script = distinct_lua;
	char *pos = r->buf;
	arg_script(r, s->sha_distinct, distinct_lua, "1");
	arg_key(r, &pos, s, "d:", q->key, q->key_len);
	arg_num(r, &pos, (long long)q->now);
	arg_num(r, &pos, q->window);
	arg_num(r, &pos, q->limit);
	memcpy(pos, q->value, q->value_len);
	r->argv[r->argc] = pos;
	r->argvlen[r->argc++] = q->value_len;
	if (!rreq_send(s, r, on_script_reply, r->argc, r->argv, r->argvlen))
		rreq_fail_now(r);
}

/* store_ops.refund: one EVALSHA of the refund script (its reply: on_script_reply). */
static void redis_refund(struct store *st, const struct store_refund *q, store_done_cb cb,
			 void *arg)
{
	struct store_redis *s = sr(st);
	if (!store_ready(s)) {
		cb(arg, STORE_FAIL, 0);
		return;
	}
	struct rreq *r = rreq_new(s, RK_EDIT, s->prefix_len + 2 + q->key_len + q->value_len +
						      2 * NUM_ROOM + 64);
	r->cb.done = cb;
	r->arg = arg;
	r->script = refund_lua;
	char *pos = r->buf;
	arg_script(r, s->sha_refund, refund_lua, "1");
	if (q->kind == REFUND_DISTINCT) {
		arg_key(r, &pos, s, "d:", q->key, q->key_len);
		arg_lit(r, "d");
		memcpy(pos, q->value, q->value_len);
		r->argv[r->argc] = pos;
		r->argvlen[r->argc++] = q->value_len;
		pos += q->value_len;
		arg_num(r, &pos, (long long)q->now);
	} else if (q->slotted) {
		arg_key(r, &pos, s, "q:", q->key, q->key_len);
		arg_lit(r, "s");
		arg_num(r, &pos, (long long)rate_slot_time((uint64_t)q->now, q->window));
		arg_num(r, &pos, (long long)q->amount);
	} else {
		arg_key(r, &pos, s, "r:", q->key, q->key_len);
		arg_lit(r, "r");
		arg_member(r, &pos, s, q->id);
	}
	if (!rreq_send(s, r, on_script_reply, r->argc, r->argv, r->argvlen))
		rreq_fail_now(r);
}

/* ---- list, edit, flush ---------------------------------------------------------- */

static void on_scan(redisAsyncContext *ac, void *reply, void *priv);

/* Ask for the next SCAN step of a list or flush. */
static bool scan_next(struct store_redis *s, struct rreq *r, const char *cursor)
{
	const char *argv[6] = { "SCAN", cursor, "MATCH", s->scan_pattern, "COUNT", REDIS_SCAN_COUNT };
	return rreq_send(s, r, on_scan, 6, argv, NULL);
}

/* The end of a list or flush: every SCAN step and batch answered. */
static void scan_finish(struct rreq *r)
{
	rreq_answer(r, STORE_OK, &r->changed);
}

/* A hash field's value as a number; false leaves *out alone. */
static bool field_num(const redisReply *v, long long *out)
{
	if (v->type != REDIS_REPLY_STRING)
		return false;
	char *end;
	errno = 0;
	long long n = strtoll(v->str, &end, 10);
	if (errno || end == v->str || *end)
		return false;
	*out = n;
	return true;
}

/* One key of a list batch and its fields; live entries go to the caller. */
static void list_entry(struct store_redis *s, struct rreq *r, const redisReply *k,
		       const redisReply *h)
{
	if (k->type != REDIS_REPLY_STRING || h->type != REDIS_REPLY_ARRAY ||
	    k->len < s->prefix_len + 2 || k->str[s->prefix_len + 1] != ':')
		return;
	char kind = k->str[s->prefix_len];
	if (kind != 'g' && kind != 'a')
		return;
	long long first = 0, last = 0, passed = 0, count = 0, expires = -1;
	for (size_t i = 0; i + 1 < h->elements; i += 2) {
		const redisReply *f = h->element[i], *v = h->element[i + 1];
		if (f->type != REDIS_REPLY_STRING)
			continue;
		long long *dst = !strcmp(f->str, "first")     ? &first
				 : !strcmp(f->str, "last")    ? &last
				 : !strcmp(f->str, "passed")  ? &passed
				 : !strcmp(f->str, "count")   ? &count
				 : !strcmp(f->str, "expires") ? &expires
							      : NULL;
		if (dst)
			field_num(v, dst);
	}
	if (expires >= 0 && (long long)r->now >= expires)
		return;                   /* dead on the caller's clock */
	struct store_entry e = {
		.kind = kind == 'g' ? STORE_TRIPLET : STORE_AWL,
		.key = k->str + s->prefix_len + 2,
		.first = (time_t)first,
		.last = (time_t)last,
		.passed = kind == 'g' && passed != 0,
		.count = kind == 'a' ? clamp_u32(count) : (passed != 0),
	};
	r->cb.list(r->arg, STORE_OK, &e);
}

/* The reply to one batch of a list (the list script) or a flush (DEL). */
static void on_batch(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rreq *r = priv;
	if (!reply_live(ac, reply, r))
		return;
	struct store_redis *s = r->s;
	redisReply *rp = reply;
	enter(s);
	if (r->kind == RK_LIST && rp->type == REDIS_REPLY_ARRAY) {
		cmd_succeeded(s);
		for (size_t i = 0; i + 1 < rp->elements && !r->answered; i += 2)
			list_entry(s, r, rp->element[i], rp->element[i + 1]);
	} else if (r->kind == RK_FLUSH && rp->type == REDIS_REPLY_INTEGER) {
		cmd_succeeded(s);
		r->changed += rp->integer > 0 ? (unsigned long)rp->integer : 0;
	} else {
		cmd_failed(s, rp);
		rreq_answer(r, STORE_FAIL, NULL);
	}
	if (!r->answered) {
		evtimer_add(r->timer, s->cmd_tv);
		if (r->scan_over && r->inflight == 1)
			scan_finish(r);
	}
	rreq_put(r);
	leave(s);
}

/* Send the batch command for the keys one SCAN step found. */
static bool batch_send(struct store_redis *s, struct rreq *r, const redisReply *keys)
{
	size_t n = keys->elements, argc = 0;
	const char **argv = xmalloc((n + 3) * sizeof *argv);
	size_t *len = xmalloc((n + 3) * sizeof *len);
	char nkeys[24];
	if (r->kind == RK_LIST) {
		snprintf(nkeys, sizeof nkeys, "%zu", n);
		argv[argc] = "EVAL", len[argc++] = 4;
		argv[argc] = list_lua, len[argc++] = strlen(list_lua);
		argv[argc] = nkeys, len[argc++] = strlen(nkeys);
	} else {
		argv[argc] = "DEL", len[argc++] = 3;
	}
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		const redisReply *k = keys->element[i];
		ok &= k->type == REDIS_REPLY_STRING;
		argv[argc] = k->str;
		len[argc++] = k->len;
	}
	/* hiredis copies the arguments into its output buffer */
	ok = ok && argc <= INT_MAX && rreq_send(s, r, on_batch, (int)argc, argv, len);
	free(argv);
	free(len);
	return ok;
}

/* A SCAN step of a list or flush: its keys are sent on as one batch, and
 * the next step goes out behind it until the cursor comes back as 0. */
static void on_scan(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rreq *r = priv;
	if (!reply_live(ac, reply, r))
		return;
	struct store_redis *s = r->s;
	redisReply *rp = reply;
	enter(s);
	if (rp->type != REDIS_REPLY_ARRAY || rp->elements != 2 ||
	    rp->element[0]->type != REDIS_REPLY_STRING ||
	    rp->element[1]->type != REDIS_REPLY_ARRAY) {
		cmd_failed(s, rp);
		rreq_answer(r, STORE_FAIL, NULL);
	} else {
		evtimer_add(r->timer, s->cmd_tv);
		const redisReply *keys = rp->element[1];
		bool ok = keys->elements == 0 || batch_send(s, r, keys);
		if (ok && strcmp(rp->element[0]->str, "0") == 0)
			r->scan_over = true;
		else if (ok)
			ok = scan_next(s, r, rp->element[0]->str);
		if (!ok)
			rreq_answer(r, STORE_FAIL, NULL);
		else if (r->scan_over && r->inflight == 1)
			scan_finish(r);
	}
	rreq_put(r);
	leave(s);
}

/* store_ops.list: SCAN the greylist keys, a batch of hashes per step. */
static void redis_list(struct store *st, time_t now, store_list_cb cb, void *arg)
{
	struct store_redis *s = sr(st);
	if (!store_ready(s)) {
		cb(arg, STORE_FAIL, NULL);
		return;
	}
	struct rreq *r = rreq_new(s, RK_LIST, 0);
	r->cb.list = cb;
	r->arg = arg;
	r->now = now;
	if (!scan_next(s, r, "0"))
		rreq_fail_now(r);
}

/* The reply to a WHITELIST, PASS or FORGET: how many keys it changed. */
static void on_edit(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rreq *r = priv;
	if (!reply_live(ac, reply, r))
		return;
	struct store_redis *s = r->s;
	redisReply *rp = reply;
	enter(s);
	bool ok = rp->type == REDIS_REPLY_INTEGER;
	unsigned long n = ok && rp->integer > 0 ? (unsigned long)rp->integer : 0;
	cmd_done(s, r, rp, ok, &n);
	rreq_put(r);
	leave(s);
}

/* store_ops.edit: one EVAL or DEL; FLUSH walks the keys like list. */
static void redis_edit(struct store *st, enum store_edit op, const char *key, time_t now,
		       const struct grey_params *p, store_done_cb cb, void *arg)
{
	struct store_redis *s = sr(st);
	if (!store_ready(s)) {
		cb(arg, STORE_FAIL, 0);
		return;
	}
	if (op == STORE_FLUSH) {
		struct rreq *r = rreq_new(s, RK_FLUSH, 0);
		r->cb.done = cb;
		r->arg = arg;
		if (!scan_next(s, r, "0"))
			rreq_fail_now(r);
		return;
	}
	assert(key && (p || op == STORE_FORGET));
	size_t len = strlen(key);
	struct rreq *r = rreq_new(s, RK_EDIT, 2 * (s->prefix_len + 2 + len) + 3 * NUM_ROOM);
	r->cb.done = cb;
	r->arg = arg;
	char *pos = r->buf;
	switch (op) {
	case STORE_WHITELIST:
		arg_lit(r, "EVAL");
		arg_lit(r, whitelist_lua);
		arg_lit(r, "1");
		arg_key(r, &pos, s, "a:", key, len);
		arg_num(r, &pos, (long long)now);
		arg_num(r, &pos, p->awl ? p->awl : 1);
		arg_num(r, &pos, p->expire);
		break;
	case STORE_PASS:
		arg_lit(r, "EVAL");
		arg_lit(r, pass_lua);
		arg_lit(r, "1");
		arg_key(r, &pos, s, "g:", key, len);
		arg_num(r, &pos, (long long)now);
		arg_num(r, &pos, p->expire);
		break;
	case STORE_FORGET:
	case STORE_FLUSH:
		arg_lit(r, "DEL");
		arg_key(r, &pos, s, "g:", key, len);
		arg_key(r, &pos, s, "a:", key, len);
		break;
	}
	if (!rreq_send(s, r, on_edit, r->argc, r->argv, r->argvlen))
		rreq_fail_now(r);
}

/* ---- the URL -------------------------------------------------------------------- */

/* The value of a hex digit, or -1. */
static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

/* Percent-decode n bytes; NULL for a bad escape or an encoded NUL. */
static char *pct_decode(const char *src, size_t n)
{
	char *out = xmalloc(n + 1), *o = out;
	for (size_t i = 0; i < n; i++) {
		if (src[i] != '%') {
			*o++ = src[i];
			continue;
		}
		int a = i + 1 < n ? hexval(src[i + 1]) : -1;
		int b = i + 2 < n ? hexval(src[i + 2]) : -1;
		if (a < 0 || b < 0 || (a == 0 && b == 0)) {
			free(out);
			return NULL;
		}
		*o++ = (char)(a * 16 + b);
		i += 2;
	}
	*o = 0;
	return out;
}

/* A decimal number in [min, max] filling all n bytes. */
static bool num_parse(const char *p, size_t n, long min, long max, long *out)
{
	if (n == 0 || n > 10)
		return false;
	long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (p[i] - '0');
	}
	if (v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* Glob-escape s for SCAN MATCH. */
static char *glob_escape(const char *s)
{
	struct strbuf b;
	sb_init(&b);
	for (; *s; s++) {
		if (strchr("*?[]\\", *s))
			sb_addc(&b, '\\');
		sb_addc(&b, *s);
	}
	return b.s;
}

/* A host name becomes a numeric address now, at open: hiredis would ask
 * the resolver (blocking) on every reconnect, on the loop. IPv4 first, as
 * hiredis does. */
static char *host_resolve(const char *host, char **why)
{
	unsigned char bin[16];
	if (inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1)
		return xstrdup(host);
	static const int fams[] = { AF_INET, AF_INET6 };
	int rc = EAI_NONAME;
	for (size_t i = 0; i < ARRAY_LEN(fams); i++) {
		struct addrinfo hints = { .ai_family = fams[i], .ai_socktype = SOCK_STREAM }, *res;
		rc = getaddrinfo(host, NULL, &hints, &res);
		if (rc)
			continue;
		char num[INET6_ADDRSTRLEN];
		rc = getnameinfo(res->ai_addr, res->ai_addrlen, num, sizeof num, NULL, 0,
				 NI_NUMERICHOST);
		freeaddrinfo(res);
		if (!rc)
			return xstrdup(num);
	}
	*why = xasprintf("cannot resolve %s: %s", host, gai_strerror(rc));
	return NULL;
}

/*
 * Fill s from the URL (store.h's forms); NULL, or an error message
 * (malloc'ed) naming the URL without its password.
 */
static char *url_parse(struct store_redis *s, const char *url)
{
	const char *p;
	if (strncmp(url, "redis+unix://", 13) == 0) {
		s->is_unix = true;
		p = url + 13;
	} else if (strncmp(url, "redis://", 8) == 0) {
		p = url + 8;
	} else {
		return xasprintf("bad store '%s': write redis://HOST:PORT[/DB] or "
				 "redis+unix:///PATH", url);
	}
	const char *qs = strchr(p, '?');
	const char *end = qs ? qs : p + strlen(p);
	const char *slash = memchr(p, '/', (size_t)(end - p));
	const char *auth_end = slash ? slash : end;
	const char *at = memchr(p, '@', (size_t)(auth_end - p));
	s->display = xasprintf("%.*s%s", (int)(p - url), url, at ? at + 1 : p);
#define BAD(...)                                                                  \
	do {                                                                      \
		char *m_ = xasprintf(__VA_ARGS__);                                \
		char *e_ = xasprintf("bad store '%s': %s", s->display, m_);       \
		free(m_);                                                         \
		return e_;                                                        \
	} while (0)

	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (!colon)
			BAD("write the password as :PASSWORD@ or USER:PASSWORD@");
		if (colon > p && !(s->user = pct_decode(p, (size_t)(colon - p))))
			BAD("bad %%-escape in the user name");
		if (!(s->password = pct_decode(colon + 1, (size_t)(at - colon - 1))))
			BAD("bad %%-escape in the password");
		if (!s->password[0])
			BAD("empty password");
		p = at + 1;
	}
	if (s->is_unix) {
		if (p != auth_end)
			BAD("a unix socket takes no host: redis+unix:///PATH");
		if (!slash || slash + 1 >= end)
			BAD("no socket path: redis+unix:///PATH");
		if (!(s->path = pct_decode(slash, (size_t)(end - slash))))
			BAD("bad %%-escape in the path");
	} else {
		const char *h = p, *he, *port = NULL;
		if (*h == '[') {
			he = memchr(h, ']', (size_t)(auth_end - h));
			if (!he)
				BAD("no ']' after the IPv6 address");
			h++;
			if (he + 1 < auth_end) {
				if (he[1] != ':')
					BAD("':' must follow ']'");
				port = he + 2;
			}
		} else {
			he = memrchr(h, ':', (size_t)(auth_end - h));
			if (he)
				port = he + 1;
			else
				he = auth_end;
		}
		if (he == h)
			BAD("no host");
		long v = REDIS_DEFAULT_PORT;
		if (port && !num_parse(port, (size_t)(auth_end - port), 1, 65535, &v))
			BAD("bad port '%.*s'", (int)(auth_end - port), port);
		s->port = (int)v;
		s->host = xstrndup(h, (size_t)(he - h));
		if (slash && slash + 1 < end &&
		    !num_parse(slash + 1, (size_t)(end - slash - 1), 0, INT_MAX, &s->db))
			BAD("bad database '%.*s': a number", (int)(end - slash - 1), slash + 1);
	}
	bool db_in_path = !s->is_unix && slash && slash + 1 < end;
	for (const char *q = qs ? qs + 1 : NULL; q && *q;) {
		const char *amp = strchr(q, '&');
		size_t n = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', n);
		size_t kn = eq ? (size_t)(eq - q) : n;
		const char *v = eq ? eq + 1 : q + n;
		size_t vn = (size_t)(q + n - v);
		long num;
		if (kn == 6 && !strncmp(q, "prefix", 6) && eq) {
			free(s->prefix);
			if (!(s->prefix = pct_decode(v, vn)))
				BAD("bad %%-escape in the prefix");
			if (strlen(s->prefix) > REDIS_PREFIX_MAX)
				BAD("prefix longer than %d bytes", REDIS_PREFIX_MAX);
		} else if (kn == 7 && !strncmp(q, "timeout", 7)) {
			if (!num_parse(v, vn, 1, REDIS_MAX_TIMEOUT_MS, &num))
				BAD("bad timeout '%.*s': milliseconds, 1 to %d", (int)vn, v,
				    REDIS_MAX_TIMEOUT_MS);
			s->timeout_ms = (unsigned)num;
		} else if (kn == 2 && !strncmp(q, "db", 2)) {
			if (db_in_path)
				BAD("the database is given twice");
			if (!num_parse(v, vn, 0, INT_MAX, &s->db))
				BAD("bad database '%.*s': a number", (int)vn, v);
		} else {
			BAD("unknown option '%.*s': use prefix=, timeout= or db=", (int)kn, q);
		}
		q = amp ? amp + 1 : NULL;
	}
#undef BAD
	if (!s->is_unix) {
		char *why = NULL;
		char *num = host_resolve(s->host, &why);
		if (!num) {
			char *e = xasprintf("bad store '%s': %s", s->display, why);
			free(why);
			return e;
		}
		free(s->host);
		s->host = num;
	}
	return NULL;
}

/* ---- open and close ------------------------------------------------------------ */

/* store_ops.open for both schemes: parse, set up, start connecting. */
static struct store *redis_open(struct event_base *base, const char *url, char **err)
{
	struct store_redis *s = xcalloc(1, sizeof *s);
	TAILQ_INIT(&s->pending);
	s->prefix = xstrdup(REDIS_DEFAULT_PREFIX);
	s->timeout_ms = REDIS_DEFAULT_TIMEOUT_MS;
	char *why = url_parse(s, url);
	if (!why && !base)
		why = xasprintf("store %s: needs an event loop", s->display);
	if (why) {
		*err = why;
		store_free(s);
		return NULL;
	}
	s->base.ops = s->is_unix ? &store_redis_unix_ops : &store_redis_ops;
	s->evb = base;
	s->prefix_len = strlen(s->prefix);
	char *esc = glob_escape(s->prefix);
	s->scan_pattern = xasprintf("%s[ga]:*", esc);
	free(esc);
	struct timeval tv = { s->timeout_ms / 1000, (s->timeout_ms % 1000) * 1000 };
	/* one queue for every command timer: O(1) instead of a heap insert */
	s->cmd_tv = event_base_init_common_timeout(base, &tv);
	if (!s->cmd_tv)
		fatal_abort("store redis: cannot set up timers");
	unsigned hs = s->timeout_ms > REDIS_HANDSHAKE_MIN_MS ? s->timeout_ms
							     : REDIS_HANDSHAKE_MIN_MS;
	s->hs_tv = (struct timeval){ hs / 1000, (hs % 1000) * 1000 };
	s->reconnect_ev = evtimer_new(base, on_reconnect, s);
	s->handshake_ev = evtimer_new(base, on_handshake_timeout, s);
	if (!s->reconnect_ev || !s->handshake_ev)
		fatal_abort("store redis: cannot create timers");
	s->backoff_ms = REDIS_BACKOFF_MIN_MS;
	if (getrandom(&s->nonce, sizeof s->nonce, GRND_NONBLOCK) != sizeof s->nonce)
		s->nonce = (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid() ^
			   (uint64_t)(uintptr_t)s;
	conn_start(s);
	return &s->base;
}

/* Every pending callback is answered STORE_FAIL before this returns. */
static void redis_close(struct store *st)
{
	struct store_redis *s = sr(st);
	enter(s);
	s->closing = true;
	evtimer_del(s->reconnect_ev);
	conn_drop(s, "closed", false);
	leave(s);
}

const struct store_ops store_redis_ops = {
	.scheme = "redis",
	.form = "redis://HOST:PORT[/DB]",
	.open = redis_open,
	.close = redis_close,
	.grey = redis_grey,
	.rate = redis_rate,
	.distinct = redis_distinct,
	.refund = redis_refund,
	.list = redis_list,
	.edit = redis_edit,
};

const struct store_ops store_redis_unix_ops = {
	.scheme = "redis+unix",
	.form = "redis+unix:///PATH",
	.open = redis_open,
	.close = redis_close,
	.grey = redis_grey,
	.rate = redis_rate,
	.distinct = redis_distinct,
	.refund = redis_refund,
	.list = redis_list,
	.edit = redis_edit,
};
