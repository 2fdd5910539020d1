/*
 * store_redis - the state store in Redis, for MX gateways that must share
 * greylisting, rate and distinct-counter state (the contract is store.h; the key layout,
 * atomicity and failure behaviour are in docs/store.md).
 *
 * Three ways to reach Redis, one row each in store.h's table:
 *
 *   redis://, redis+unix://   one server
 *   redis-sentinel://         the master a set of Sentinels names: asked
 *                             at start, followed on +switch-master and
 *                             asked again when the master is lost or
 *                             refuses writes (READONLY); a server whose
 *                             ROLE is not master is never written to
 *   redis-cluster://          a Redis Cluster: each command goes to the
 *                             master that owns its key's slot (the map from
 *                             CLUSTER SLOTS), MOVED and ASK followed, the
 *                             map asked again after a redirection or a
 *                             lost node
 *
 * Each server is one node (redis_node.h: a hiredis asynchronous connection
 * on the caller's libevent loop, its handshake, timers and exactly-once
 * answers); this file decides what goes to which node and keeps the Lua
 * scripts. Greylisting and rate counting are each one Lua script, loaded
 * once per connection and called by its SHA1 (EVALSHA), so every
 * check-and-update is one atomic round trip; time is the caller's `now`,
 * never the Redis clock. In a cluster every script's keys share one hash
 * tag (docs/store.md), so each script runs on one node.
 *
 * Exactly-once answers. A request (struct rreq) is answered once, by the
 * reply handler of the node command that carries it, or at once when no
 * node can take it. A request waits on at most one node command at a
 * time, except a listing, which counts its commands (outstanding) and is
 * freed when answered and none is left. A redirection or NOSCRIPT retry
 * sends the same arguments again from the handler.
 *
 * Never freed under a callback. Every entry from the loop (node
 * callbacks, timers) and close() hold the store (busy); close() inside a
 * callback only marks it, and the last one out frees it.
 *
 * The start-up check. A Sentinel or Cluster URL is checked when the store
 * is opened, blocking for at most the timeout per server (hiredis's
 * synchronous API): some sentinel must name the master, some seed must be
 * a cluster node; otherwise open fails with the reason. A single server
 * that is down is not an error (it is waited for).
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
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "backends/redis_node.h"
#include "backends/redis_slot.h"
#include "backends/runtime.h"
#include "backends/store.h"
#include "util/log.h"
#include "util/util.h"

#define REDIS_DEFAULT_PORT 6379
#define SENTINEL_DEFAULT_PORT 26379
#define REDIS_DEFAULT_PREFIX "mxacl:"
#define REDIS_DEFAULT_TIMEOUT_MS 200
#define REDIS_MAX_TIMEOUT_MS 60000
#define REDIS_ERR_LOG_S 60            /* error replies: a line a minute at most, and
					 a minute without one ends their outage */
/* Keys asked for per SCAN step (list, flush). */
#define REDIS_SCAN_COUNT "1000"
#define REDIS_PREFIX_MAX 256
#define REDIS_MAX_SERVERS 32          /* sentinels or seeds in one URL */
/* The start-up check: per server, at least this long to connect and answer. */
#define REDIS_PROBE_MIN_MS 1000
/* While the master is lost, the sentinels are asked again this often. */
#define SENTINEL_ASK_MS 500
/* A cluster's slot map is asked again at most this often (a lost node, a
 * redirection), and this often while a slot has no reachable owner. */
#define CLUSTER_REFRESH_MIN_MS 100
#define CLUSTER_REFRESH_DOWN_MS 500
/* Redirections one request follows before it fails. */
#define CLUSTER_MAX_REDIRECTS 5
/* Rate and distinct calls one call of the group script carries at most. */
#define REDIS_GROUP_MAX 16

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
#define RATE_LUA \
	"local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])\n" \
	"local limit = tonumber(ARGV[3])\n" \
	"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)\n" \
	"local n = redis.call('ZCARD', KEYS[1]) + 1\n" \
	"if n > limit then return {n, 1} end\n" \
	"redis.call('ZADD', KEYS[1], now, ARGV[4])\n" \
	"if window < 1 then window = 1 end\n" \
	"redis.call('EXPIRE', KEYS[1], window)\n" \
	"return {n, 0}\n"
static const char rate_lua[] = RATE_LUA;

/* count=recipients|bytes: a slotted log (store.h), a hash of slot time
 * (the slot's last second) -> amount; at most RATE_SLOTS + 1 live fields.
 * The amount is added to this slot only when the window's sum and it stay
 * within the limit. The TTL only grows: it covers the newest slot, and
 * is looked at only when this slot is new (an existing slot's end was
 * covered when the slot was made): two calls a check, not four.
 * KEYS: log. ARGV: now window limit amount slot (rate_slot_time).
 * Returns {count (the window's sum and this amount), over}. Lua numbers
 * are doubles: sums up to 2^53 are exact (limits stop at 2^40). */
#define SUM_LUA \
	"local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])\n" \
	"local limit, amount = tonumber(ARGV[3]), tonumber(ARGV[4])\n" \
	"local h = redis.call('HGETALL', KEYS[1])\n" \
	"local sum, dead, have = 0, {}, false\n" \
	"for i = 1, #h, 2 do\n" \
	"  if tonumber(h[i]) + window <= now then dead[#dead + 1] = h[i]\n" \
	"  else\n" \
	"    sum = sum + tonumber(h[i + 1])\n" \
	"    if h[i] == ARGV[5] then have = true end\n" \
	"  end\n" \
	"end\n" \
	"if #dead > 0 then redis.call('HDEL', KEYS[1], unpack(dead)) end\n" \
	"local n = sum + amount\n" \
	"if n > limit then return {n, 1} end\n" \
	"if amount > 0 then\n" \
	"  redis.call('HINCRBY', KEYS[1], ARGV[5], amount)\n" \
	"  if not have then\n" \
	"    local ttl = tonumber(ARGV[5]) + window - now\n" \
	"    if ttl < 1 then ttl = 1 end\n" \
	"    if redis.call('TTL', KEYS[1]) < ttl then redis.call('EXPIRE', KEYS[1], ttl) end\n" \
	"  end\n" \
	"end\n" \
	"return {n, 0}\n"
static const char sum_lua[] = SUM_LUA;

/* A distinct counter: a sorted set of values scored by their last
 * sighting (store.h has the rules). A value seen again keeps the later of
 * its two times (a gateway's clock may be behind another's); a new value
 * past the limit is not added. The TTL is set with each ZADD (a value
 * already seen at now or later was covered when it was added). KEYS:
 * set. ARGV: now window limit value.
 * Returns {count (limit + 1 when over), added (1: the value joined the set
 * now, so a refund may take it out)}. */
#define DISTINCT_LUA \
	"local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])\n" \
	"local limit = tonumber(ARGV[3])\n" \
	"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)\n" \
	"local n = redis.call('ZCARD', KEYS[1])\n" \
	"local t = redis.call('ZSCORE', KEYS[1], ARGV[4])\n" \
	"if not t then\n" \
	"  if n >= limit then return {limit + 1, 0} end\n" \
	"  n = n + 1\n" \
	"end\n" \
	"if not t or tonumber(t) < now then\n" \
	"  redis.call('ZADD', KEYS[1], now, ARGV[4])\n" \
	"  if window < 1 then window = 1 end\n" \
	"  redis.call('EXPIRE', KEYS[1], window)\n" \
	"end\n" \
	"if t then return {n, 0} end\n" \
	"return {n, 1}\n"
static const char distinct_lua[] = DISTINCT_LUA;

/* group: several rate, sum and distinct calls of one loop iteration (a request's
 * counters, sent together since counting ahead: engine/vm.h) as one call:
 * for key i, ARGV holds the script ('r', 's' or 'd'), the number of its
 * arguments and the arguments, as its own call would have them. Each runs
 * in turn, as its own call would (pcall: an error fails that call alone).
 * Returns each one's reply, in order. Single server and Sentinel only: a
 * cluster's keys of one request are on different slots. */
static const char group_lua[] =
	"local f = {r = function(KEYS, ARGV)\n" RATE_LUA "end,\n"
	"  s = function(KEYS, ARGV)\n" SUM_LUA "end,\n"
	"  d = function(KEYS, ARGV)\n" DISTINCT_LUA "end}\n"
	"local out, a = {}, 1\n"
	"for i = 1, #KEYS do\n"
	"  local n = tonumber(ARGV[a + 1])\n"
	"  local ok, res = pcall(f[ARGV[a]], {KEYS[i]}, {unpack(ARGV, a + 2, a + 1 + n)})\n"
	"  if ok then out[i] = res\n"
	"  elseif type(res) == 'table' then out[i] = res\n"
	"  else out[i] = redis.error_reply(tostring(res)) end\n"
	"  a = a + 2 + n\n"
	"end\n"
	"return out\n";

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


/*
 * The scripts called by SHA1: loaded by every node's handshake (SCRIPT
 * LOAD), sent as EVAL when a server has lost them (NOSCRIPT). One row
 * each: the name (RS_NAME, and the SHA's slot s->sha[RS_NAME]) and the
 * body NAME_lua above; a new script is a row here plus the code that
 * sends it and reads its reply.
 */
#define REDIS_SCRIPTS(X) \
	X(grey)          \
	X(rate)          \
	X(sum)           \
	X(distinct)      \
	X(refund)        \
	X(group)

enum rscript {
#define X(name) RS_##name,
	REDIS_SCRIPTS(X)
#undef X
	RS_COUNT
};

static const char *const script_body[RS_COUNT] = {
#define X(name) [RS_##name] = name##_lua,
	REDIS_SCRIPTS(X)
#undef X
};

/* ---- the store ------------------------------------------------------------ */

enum redis_mode { RM_SINGLE, RM_SENTINEL, RM_CLUSTER };

/* What a node is to the store. */
enum peer_kind {
	PEER_DATA,                    /* a server that holds the keys */
	PEER_SENTINEL,                /* a sentinel, asked for the master */
	PEER_WATCH,                   /* a sentinel, subscribed to +switch-master */
};

struct store_redis;

/* One node and what the store knows of it (the node's owner argument). */
struct peer {
	struct store_redis *s;
	struct rnode *n;
	enum peer_kind kind;
	char *host;                   /* numeric; NULL for a unix socket */
	int port;
	bool outage;                  /* logged as lost, not yet back */
	bool ever_up;
	bool seed;                    /* cluster: named in the URL (kept for asking) */
	bool owns;                    /* cluster: owns slots in the current map */
	uint64_t down_ms;             /* mono_ms() when its outage began */
};

/* A host and port from the URL, resolved. */
struct hostport {
	char *host;
	int port;
};

struct rreq;

struct store_redis {
	struct store base;            /* first: what store.h hands out */
	struct event_base *evb;
	char *display;                /* the URL without its password, for logs */
	enum redis_mode mode;

	/* where and how (from the URL) */
	bool is_unix;
	char *host;                   /* single: a numeric address (resolved at open) */
	int port;
	char *path;                   /* unix socket */
	struct hostport *servers;     /* sentinels or cluster seeds */
	size_t nservers;
	char *user, *password;        /* the data nodes'; NULL: no AUTH */
	char *sentinel_user, *sentinel_password;
	char *master_name;            /* sentinel */
	long db;
	char *prefix;
	size_t prefix_len;
	unsigned timeout_ms;

	char sha[RS_COUNT][41];       /* empty until a SCRIPT LOAD answered */
	bool outage;                  /* single, sentinel: logged as lost, not yet back */
	bool ever_up;
	/* error replies (OOM, READONLY, ...), logged per outage (cmd_failed) */
	bool cmd_failing;             /* in an outage: an error reply within REDIS_ERR_LOG_S */
	uint64_t cmd_logged_at;       /* mono_s() of its last line */
	uint64_t cmd_last_error;      /* mono_s() of its latest error reply */
	uint64_t cmd_errors, cmd_oks; /* replies since its last line */
	uint64_t cmd_errors_all;      /* error replies in the whole outage */

	/* single and sentinel: the one server written to */
	struct peer *master;
	/* sentinel */
	struct peer **sentinels, **watchers; /* nservers each */
	size_t ask_next;              /* the sentinel to ask first next time */
	bool asking;                  /* a question is out */
	struct event *ask_ev;         /* ask again while the master is lost */
	uint64_t lost_ms;             /* mono_ms() when the master was lost, or 0 */
	bool addr_failed;             /* the master's current address has failed since
					 we moved there: a sentinel's answer may move us */
	/* cluster */
	struct peer **nodes;          /* every data node known */
	size_t nnodes;
	uint16_t *slot;               /* RSLOT_COUNT entries: index into nodes + 1; 0 none */
	bool refreshing;              /* CLUSTER SLOTS is out */
	bool map_known;
	struct event *refresh_ev;
	uint64_t refreshed_ms;        /* mono_ms() of the last CLUSTER SLOTS sent */

	int busy;                     /* loop entries and close() on the stack */
	bool closing;

	uint64_t nonce, seq;          /* unique rate members */
	/* rate and distinct calls of this loop iteration, sent as one call of
	 * the group script when the loop comes back (group_add) */
	struct rreq *group[REDIS_GROUP_MAX];
	size_t ngroup;
	struct event *group_ev;
	char *scan_pattern;           /* PREFIX (glob-escaped) + "[ga]:*" */
};

enum rkind { RK_GREY, RK_RATE, RK_DISTINCT, RK_REFUND, RK_LIST, RK_EDIT, RK_FLUSH, RK_SLOTS, RK_ASK,
	     RK_GROUP };

#define RREQ_MAXARG 10

struct rreq {
	struct store_redis *s;
	enum rkind kind;
	enum rscript script;          /* grey, rate, distinct: its script (NOSCRIPT retry) */
	bool answered;
	bool retried;                 /* NOSCRIPT: sent again as EVAL */
	bool scan_over;               /* list, flush: SCAN said cursor 0 */
	int outstanding;              /* node commands to come back, plus holds */
	int redirects;                /* cluster: MOVED and ASK followed */
	rnode_reply_fn handler;       /* what reads the reply of argv */
	struct peer *on;              /* list, flush: the node being walked */
	size_t node_at;               /* list, flush in a cluster: its index */
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
	unsigned long changed;        /* flush: keys deleted so far */
	/* grey, rate, edit: the command, kept for a retry or redirection;
	 * key_arg is the argument whose slot routes it */
	int argc, key_arg;
	const char *argv[RREQ_MAXARG];
	size_t argvlen[RREQ_MAXARG];
	char buf[];                   /* the arguments' bytes */
};

/* The Redis store behind store.h's handle. */
static struct store_redis *sr(struct store *s)
{
	return (struct store_redis *)s;
}

static void sentinel_ask(struct store_redis *s);
static void cluster_refresh(struct store_redis *s, bool soon);

/* Milliseconds of a clock that never steps back. */
static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- holding the store ------------------------------------------------------ */

static void peer_free(struct peer *p)
{
	if (!p)
		return;
	rnode_free(p->n);
	free(p->host);
	free(p);
}

/* Free s for good: its nodes are closed already. */
static void store_free(struct store_redis *s)
{
	if (s->group_ev)
		event_free(s->group_ev);
	if (s->ask_ev)
		event_free(s->ask_ev);
	if (s->refresh_ev)
		event_free(s->refresh_ev);
	free(s->display);
	free(s->host);
	free(s->path);
	for (size_t i = 0; i < s->nservers; i++)
		free(s->servers[i].host);
	free(s->servers);
	free(s->sentinels);
	free(s->watchers);
	free(s->nodes);
	free(s->slot);
	free(s->user);
	free(s->sentinel_user);
	char *pw[] = { s->password, s->sentinel_password };
	for (size_t i = 0; i < ARRAY_LEN(pw); i++) {
		if (pw[i]) {
			explicit_bzero(pw[i], strlen(pw[i]));
			free(pw[i]);
		}
	}
	free(s->master_name);
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

/* A request with extra bytes of argument room. */
static struct rreq *rreq_new(struct store_redis *s, enum rkind kind, size_t extra)
{
	struct rreq *r = xcalloc(1, sizeof *r + extra);
	r->s = s;
	r->kind = kind;
	r->key_arg = -1;
	return r;
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
	case RK_REFUND:
	case RK_EDIT:
	case RK_FLUSH:
		r->cb.done(r->arg, st, st == STORE_OK ? *(const unsigned long *)answer : 0);
		break;
	case RK_SLOTS:
	case RK_ASK:
	case RK_GROUP:
		break;                    /* the store's own: no caller */
	}
}

/* Drop a hold (or a node command's count) on r; free it when done. */
static void rreq_put(struct rreq *r)
{
	assert(r->outstanding > 0);
	if (--r->outstanding == 0 && r->answered)
		free(r);
}

/* Answer r; the caller holds r (outstanding) or frees it after. */
static void rreq_answer(struct rreq *r, enum store_status st, const void *answer)
{
	assert(!r->answered);
	r->answered = true;
	rreq_notify(r, st, answer);
}

/* Queue one command for r on p; false when p cannot take it now. */
static bool rreq_send_to(struct peer *p, struct rreq *r, rnode_reply_fn fn, int argc,
			 const char **argv, const size_t *argvlen, bool asking)
{
	if (!p || r->s->closing || !rnode_send(p->n, argc, argv, argvlen, asking, fn, r))
		return false;
	r->outstanding++;
	enter(r->s);                      /* the handler lets go: s outlives its commands */
	return true;
}

/* A request that could not even be queued: answer it and let it go. */
static void rreq_fail_now(struct rreq *r)
{
	r->outstanding++;
	rreq_answer(r, STORE_FAIL, NULL);
	rreq_put(r);
}


/* ---- error replies ------------------------------------------------------------ */

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


/* ---- where a command goes --------------------------------------------------------- */

/* The node a key lives on: the one server, a sentinel's master (which
 * holds commands until ROLE has said master), or the owner of the key's
 * slot. NULL: none now. */
static struct peer *route_key(struct store_redis *s, const char *key, size_t len)
{
	switch (s->mode) {
	case RM_SINGLE:
		return s->master;
	case RM_SENTINEL:
		/* at start (mxacl grey, mxacld's first requests) a command may
		 * wait for the first connection, held by the node until ROLE
		 * has said master; once the store has been up, a master being
		 * connected again fails commands at once (a failover is short,
		 * and tempfail= says what to do meanwhile) */
		return (s->ever_up ? rnode_up(s->master->n) : rnode_ready(s->master->n)) ? s->master
										     : NULL;
	case RM_CLUSTER:
		break;
	}
	unsigned i = s->slot[rslot_of(key, len)];
	return i ? s->nodes[i - 1] : NULL;
}

/* Send r's command (argv) where its key lives; false: nowhere now. */
static bool rreq_route(struct rreq *r)
{
	struct store_redis *s = r->s;
	struct peer *p = r->key_arg >= 0
				 ? route_key(s, r->argv[r->key_arg], r->argvlen[r->key_arg])
				 : route_key(s, "", 0);
	if (rreq_send_to(p, r, r->handler, r->argc, r->argv, r->argvlen, false))
		return true;
	if (s->mode == RM_CLUSTER)
		cluster_refresh(s, true);   /* an unknown or lost owner */
	return false;
}

static struct peer *cluster_node(struct store_redis *s, const char *host, int port);

/* "MOVED 3999 127.0.0.1:6381": the slot and where it is; false if not that shape. */
static bool redirect_parse(const redisReply *rp, size_t skip, unsigned *slot, char *host,
			   size_t hostsize, int *port)
{
	char buf[128];
	if (rp->len <= skip || rp->len - skip >= sizeof buf)
		return false;
	memcpy(buf, rp->str + skip, rp->len - skip);
	buf[rp->len - skip] = 0;
	char *end, *colon = strrchr(buf, ':');
	errno = 0;
	unsigned long sl = strtoul(buf, &end, 10);
	if (errno || end == buf || *end != ' ' || sl >= RSLOT_COUNT || !colon || colon < end)
		return false;
	long pt = strtol(colon + 1, &end, 10);
	if (*end || pt < 1 || pt > 65535)
		return false;
	*colon = 0;
	const char *h = buf + (size_t)(strchr(buf, ' ') - buf) + 1;
	if (strlen(h) >= hostsize)
		return false;
	snprintf(host, hostsize, "%s", h);
	*slot = (unsigned)sl;
	*port = (int)pt;
	return true;
}

/*
 * An error reply that is about where to write, not about the command:
 * a cluster's MOVED (the slot has a new owner: remember it, ask for the
 * whole map, send again there) and ASK (the slot is moving: send again
 * there once, after ASKING), a sentinel master's READONLY (it has become
 * a replica: drop it and ask the sentinels). true: r was sent again or
 * answered; the caller only lets its hold go.
 */
static bool reply_redirect(struct rreq *r, const redisReply *rp)
{
	struct store_redis *s = r->s;
	bool moved = rp->len > 6 && !memcmp(rp->str, "MOVED ", 6);
	bool ask = rp->len > 4 && !memcmp(rp->str, "ASK ", 4);
	if (s->mode == RM_SENTINEL && rp->len >= 8 && !memcmp(rp->str, "READONLY", 8)) {
		rreq_answer(r, STORE_FAIL, NULL);
		rnode_drop(s->master->n, "READONLY: the master has become a replica");
		return true;
	}
	if (s->mode == RM_CLUSTER &&
	    ((rp->len >= 11 && !memcmp(rp->str, "CLUSTERDOWN", 11)) ||
	     (rp->len >= 8 && !memcmp(rp->str, "TRYAGAIN", 8)))) {
		/* a master lost and not yet replaced, or a multi-key command on
		 * a slot half moved: this request fails (logged by cmd_failed as
		 * any error reply), and the map is asked for again */
		cluster_refresh(s, true);
		return false;
	}
	if (s->mode != RM_CLUSTER || !(moved || ask) || r->key_arg < 0)
		return false;
	unsigned slot;
	char host[INET6_ADDRSTRLEN + 8];
	int port;
	struct peer *p = NULL;
	if (redirect_parse(rp, moved ? 6 : 4, &slot, host, sizeof host, &port))
		p = cluster_node(s, host, port);
	if (p && moved) {
		for (size_t i = 0; i < s->nnodes; i++)
			if (s->nodes[i] == p)
				s->slot[slot] = (uint16_t)(i + 1);
		cluster_refresh(s, true);
	}
	if (!p || ++r->redirects > CLUSTER_MAX_REDIRECTS ||
	    !rreq_send_to(p, r, r->handler, r->argc, r->argv, r->argvlen, ask))
		rreq_answer(r, STORE_FAIL, NULL);
	return true;
}

/*
 * The start of every request's reply handler: false when the reply is not
 * for the handler (r answered already, the node gone, or r redirected);
 * the hold is then let go here. The caller holds the store.
 */
static bool reply_live(struct rreq *r, redisReply *rp)
{
	if (!r->answered && !rp)
		rreq_answer(r, STORE_FAIL, NULL);   /* the node dropped (it logs) */
	else if (!r->answered && rp->type == REDIS_REPLY_ERROR && reply_redirect(r, rp))
		;
	else if (!r->answered)
		return true;
	rreq_put(r);
	return false;
}

/* ---- outages ------------------------------------------------------------------------ */

/* The store's gauge: 1 while a server it must write to is lost. */
static void store_down_gauge(struct store_redis *s)
{
	if (!s->base.stats)
		return;
	bool down = s->outage;
	for (size_t i = 0; i < s->nnodes && !down; i++)
		down = s->nodes[i]->owns && s->nodes[i]->outage;
	s->base.stats->c[RC_store_down] = down;
}

/* The one server (or the sentinel's master) is up: an outage ends. */
static void store_back(struct store_redis *s, struct peer *p)
{
	if (s->mode == RM_SENTINEL)
		evtimer_del(s->ask_ev);
	if (s->outage) {
		s->outage = false;
		store_down_gauge(s);
		if (s->mode == RM_SINGLE)
			log_info("store %s: %s", s->display, s->ever_up ? "connected again" : "connected");
		else
			log_info("store %s: %s master %s (%" PRIu64 " ms after it was lost)",
				 s->display, s->ever_up ? "connected again, to" : "connected to",
				 rnode_addr(p->n), mono_ms() - s->lost_ms);
	}
	s->ever_up = true;
}

/* The one server (or the sentinel's master) is lost: log it once. */
static void store_lost(struct store_redis *s, struct peer *p, const char *why)
{
	if (!s->outage) {
		s->outage = true;
		s->lost_ms = mono_ms();
		store_down_gauge(s);
		runtime_stats_add(s->base.stats, RC_store_outages, 1);
		if (s->mode == RM_SINGLE)
			log_warning("store %s: %s: %s; greylist and rate acls answer as temporary "
				    "failures", s->display,
				    s->ever_up ? "connection lost" : "cannot connect", why);
		else
			log_warning("store %s: master %s: %s: %s; greylist and rate acls answer as "
				    "temporary failures until a master is back", s->display,
				    rnode_addr(p->n), s->ever_up ? "connection lost" : "cannot connect",
				    why);
	}
	if (s->mode == RM_SENTINEL) {
		/* the drop of the address we are leaving (rnode_set_addr) is
		 * not a failure of the one we go to */
		char here[INET6_ADDRSTRLEN + 8];
		snprintf(here, sizeof here, strchr(p->host, ':') ? "[%s]:%d" : "%s:%d", p->host,
			 p->port);
		if (!strcmp(here, rnode_addr(p->n)))
			s->addr_failed = true;
		sentinel_ask(s);
	}
}

/* A cluster node is up: its outage ends. */
static void node_back(struct store_redis *s, struct peer *p)
{
	if (!p->outage)
		return;
	p->outage = false;
	store_down_gauge(s);
	log_info("store %s: node %s: connected again (%" PRIu64 " ms after it was lost)",
		 s->display, rnode_addr(p->n), mono_ms() - p->down_ms);
}

/* A cluster node is lost: log it once, and ask where its slots went. */
static void node_lost(struct store_redis *s, struct peer *p, const char *why)
{
	if (!p->outage) {
		p->outage = true;
		p->down_ms = mono_ms();
		store_down_gauge(s);
		runtime_stats_add(s->base.stats, RC_store_outages, 1);
		log_warning("store %s: node %s: %s: %s%s", s->display, rnode_addr(p->n),
			    p->ever_up ? "connection lost" : "cannot connect", why,
			    p->owns ? "; greylist and rate acls on its slots answer as temporary "
				      "failures until they have a master" : "");
	}
	cluster_refresh(s, true);
}

/* rnode_owner.up */
static void peer_up(void *arg, struct rnode *n)
{
	(void)n;
	struct peer *p = arg;
	struct store_redis *s = p->s;
	enter(s);
	if (p->kind != PEER_DATA) {
		if (p->outage)
			log_info("store %s: sentinel %s: connected again", s->display,
				 rnode_addr(p->n));
		p->outage = false;
		if (p->kind == PEER_SENTINEL && !rnode_up(s->master->n))
			sentinel_ask(s);
	} else if (s->mode == RM_CLUSTER) {
		node_back(s, p);
	} else {
		store_back(s, p);
	}
	p->ever_up = true;
	leave(s);
}

/* rnode_owner.down */
static void peer_down(void *arg, struct rnode *n, const char *why, bool was_up)
{
	(void)n;
	(void)was_up;
	struct peer *p = arg;
	struct store_redis *s = p->s;
	enter(s);
	if (p->kind != PEER_DATA) {
		if (!p->outage && p->kind == PEER_SENTINEL)
			log_warning("store %s: sentinel %s: %s: %s", s->display, rnode_addr(p->n),
				    p->ever_up ? "connection lost" : "cannot connect", why);
		p->outage = true;
	} else if (s->mode == RM_CLUSTER) {
		node_lost(s, p, why);
	} else {
		store_lost(s, p, why);
	}
	leave(s);
}

static void peer_message(void *arg, struct rnode *n, redisReply *rp);

/* A node for the store: a data node (the scripts loaded; a sentinel's
 * master checked with ROLE), a sentinel, or a sentinel's watcher. */
static struct peer *peer_new(struct store_redis *s, enum peer_kind kind, const char *host,
			     int port)
{
	struct peer *p = xcalloc(1, sizeof *p);
	p->s = s;
	p->kind = kind;
	p->host = host ? xstrdup(host) : NULL;
	p->port = port;
	struct rnode_config c = {
		.host = host,
		.port = port,
		.path = host ? NULL : s->path,
		.timeout_ms = s->timeout_ms,
		.display = s->mode == RM_SINGLE ? s->display : NULL,
	};
	if (kind == PEER_DATA) {
		c.user = s->user;
		c.password = s->password;
		c.db = s->db;
		c.scripts = script_body;
		c.nscripts = RS_COUNT;
		c.sha = s->sha;
		c.check_master = s->mode == RM_SENTINEL;
	} else {
		c.user = s->sentinel_user;
		c.password = s->sentinel_password;
		c.subscribe = kind == PEER_WATCH ? "+switch-master" : NULL;
	}
	struct rnode_owner o = { .arg = p, .up = peer_up, .down = peer_down,
				 .message = peer_message, .stats = &s->base.stats };
	p->n = rnode_new(s->evb, &c, &o);
	return p;
}

/* ---- Sentinel ---------------------------------------------------------------------------- */

/* The master is (now) at host:port: follow it there. from: who said so. */
static void master_at(struct store_redis *s, const char *host, int port, const char *from)
{
	struct peer *m = s->master;
	if (!strcmp(host, m->host) && port == m->port) {
		rnode_kick(m->n);         /* the same: try it now, not after the backoff */
		return;
	}
	log_warning("store %s: failover: master %s moved from %s to %s:%d (%s)", s->display,
		    s->master_name, rnode_addr(m->n), host, port, from);
	runtime_stats_add(s->base.stats, RC_store_failovers, 1);
	free(m->host);
	m->host = xstrdup(host);
	m->port = port;
	s->addr_failed = false;
	rnode_set_addr(m->n, host, port);
}

/* The answer to SENTINEL get-master-addr-by-name; arg: the sentinel asked. */
static void on_master_addr(void *arg, struct rnode *n, redisReply *rp, const char *why)
{
	(void)why;
	struct peer *p = arg;
	struct store_redis *s = p->s;    /* held by the command (sentinel_ask) */
	s->asking = false;
	/* Only while the master is lost, and only once its address has
	 * failed: a sentinel that has not heard of a failover yet still names
	 * the old master, and its answer may come after +switch-master has
	 * moved us, while we connect to the new one (a verified master, or
	 * one not tried yet, is not left for a sentinel's word;
	 * +switch-master moves us at any time). */
	if (s->closing || rnode_up(s->master->n) || !s->addr_failed) {
		leave(s);
		return;
	}
	if (rp && rp->type == REDIS_REPLY_ARRAY && rp->elements == 2 &&
	    rp->element[0]->type == REDIS_REPLY_STRING &&
	    rp->element[1]->type == REDIS_REPLY_STRING) {
		char *end;
		long port = strtol(rp->element[1]->str, &end, 10);
		char from[96];
		snprintf(from, sizeof from, "sentinel %s", rnode_addr(n));
		unsigned char bin[16];
		if (!*end && port > 0 && port < 65536 &&
		    (inet_pton(AF_INET, rp->element[0]->str, bin) == 1 ||
		     inet_pton(AF_INET6, rp->element[0]->str, bin) == 1))
			master_at(s, rp->element[0]->str, (int)port, from);
	} else {
		/* no answer, an error or no such master: the next sentinel's turn
		 * (the timer asks again) */
		s->ask_next = (s->ask_next + 1) % s->nservers;
	}
	leave(s);
}

/* Ask a sentinel where the master is, the one that answered last first;
 * and again every SENTINEL_ASK_MS until the master is up. */
static void sentinel_ask(struct store_redis *s)
{
	if (s->closing)
		return;
	struct timeval tv = { 0, SENTINEL_ASK_MS * 1000 };
	evtimer_add(s->ask_ev, &tv);
	if (s->asking)
		return;
	const char *argv[3] = { "SENTINEL", "get-master-addr-by-name", s->master_name };
	for (size_t k = 0; k < s->nservers; k++) {
		size_t i = (s->ask_next + k) % s->nservers;
		if (rnode_send(s->sentinels[i]->n, 3, argv, NULL, false, on_master_addr,
			       s->sentinels[i])) {
			enter(s);
			s->asking = true;
			s->ask_next = i;
			return;
		}
	}
}

/* The timer: ask again while the master is not up. */
static void on_ask_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct store_redis *s = arg;
	enter(s);
	if (!rnode_up(s->master->n))
		sentinel_ask(s);
	leave(s);
}

/* rnode_owner.message: "+switch-master NAME OLDIP OLDPORT NEWIP NEWPORT". */
static void peer_message(void *arg, struct rnode *n, redisReply *rp)
{
	struct peer *p = arg;
	struct store_redis *s = p->s;
	const redisReply *msg = rp->element[2];
	if (msg->type != REDIS_REPLY_STRING || s->mode != RM_SENTINEL)
		return;
	char name[256], oldip[64], newip[64];
	int oldport, newport;
	if (sscanf(msg->str, "%255s %63s %d %63s %d", name, oldip, &oldport, newip, &newport) != 5 ||
	    strcmp(name, s->master_name) || newport < 1 || newport > 65535)
		return;
	char from[96];
	snprintf(from, sizeof from, "+switch-master from sentinel %s", rnode_addr(n));
	enter(s);
	master_at(s, newip, newport, from);
	leave(s);
}

/* ---- Redis Cluster ---------------------------------------------------------------------- */

/* The data node at host:port, made when first named. NULL for an address
 * that is not numeric (a name would need the resolver, which blocks). */
static struct peer *cluster_node(struct store_redis *s, const char *host, int port)
{
	for (size_t i = 0; i < s->nnodes; i++)
		if (s->nodes[i]->port == port && !strcmp(s->nodes[i]->host, host))
			return s->nodes[i];
	unsigned char bin[16];
	if (inet_pton(AF_INET, host, bin) != 1 && inet_pton(AF_INET6, host, bin) != 1)
		return NULL;
	if (s->nnodes >= UINT16_MAX - 1)
		return NULL;
	struct peer *p = peer_new(s, PEER_DATA, host, port);
	s->nodes = xrealloc(s->nodes, (s->nnodes + 1) * sizeof *s->nodes);
	s->nodes[s->nnodes++] = p;
	return p;
}

/*
 * A CLUSTER SLOTS reply becomes the map: each range to its master (the
 * first address of the entry; replicas are never used). A change is
 * logged once, with how many slots moved. false: not a map.
 */
static bool cluster_map_apply(struct store_redis *s, const redisReply *rp, const char *from)
{
	if (rp->type != REDIS_REPLY_ARRAY || rp->elements == 0)
		return false;
	uint16_t *map = xcalloc(RSLOT_COUNT, sizeof *map);
	for (size_t i = 0; i < rp->elements; i++) {
		const redisReply *e = rp->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    e->element[0]->type != REDIS_REPLY_INTEGER ||
		    e->element[1]->type != REDIS_REPLY_INTEGER ||
		    e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
		    e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
		    e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
			continue;
		long long lo = e->element[0]->integer, hi = e->element[1]->integer;
		long long port = e->element[2]->element[1]->integer;
		if (lo < 0 || hi >= RSLOT_COUNT || lo > hi || port < 1 || port > 65535)
			continue;
		struct peer *p = cluster_node(s, e->element[2]->element[0]->str, (int)port);
		if (!p)
			continue;
		size_t idx = 0;
		while (s->nodes[idx] != p)
			idx++;
		for (long long sl = lo; sl <= hi; sl++)
			map[sl] = (uint16_t)(idx + 1);
	}
	unsigned moved = 0, unowned = 0;
	for (size_t i = 0; i < RSLOT_COUNT; i++) {
		moved += map[i] != s->slot[i];
		unowned += map[i] == 0;
	}
	size_t masters = 0;
	for (size_t i = 0; i < s->nnodes; i++)
		s->nodes[i]->owns = false;
	for (size_t i = 0; i < RSLOT_COUNT; i++)
		if (map[i] && !s->nodes[map[i] - 1]->owns) {
			s->nodes[map[i] - 1]->owns = true;
			masters++;
		}
	memcpy(s->slot, map, RSLOT_COUNT * sizeof *map);
	free(map);
	if (!s->map_known) {
		log_info("store %s: slot map from %s: %zu masters%s", s->display, from, masters,
			 unowned ? ", some slots without one" : "");
	} else if (moved) {
		runtime_stats_add(s->base.stats, RC_store_slot_map_changes, 1);
		log_info("store %s: slot map changed: %u of %d slots have a new master (%zu "
			 "masters%s, from %s)", s->display, moved, RSLOT_COUNT, masters,
			 unowned ? ", some slots without one" : "", from);
	}
	s->map_known = true;
	store_down_gauge(s);
	return true;
}

/* The answer to CLUSTER SLOTS; arg: the node asked. */
static void on_slots(void *arg, struct rnode *n, redisReply *rp, const char *why)
{
	(void)why;
	struct peer *p = arg;
	struct store_redis *s = p->s;    /* held by the command (cluster_refresh) */
	s->refreshing = false;
	if (!s->closing) {
		bool ok = rp && cluster_map_apply(s, rp, rnode_addr(n));
		/* while a slot has no reachable owner, look again soon */
		bool whole = ok;
		for (size_t i = 0; whole && i < RSLOT_COUNT; i++)
			whole = s->slot[i] && rnode_ready(s->nodes[s->slot[i] - 1]->n);
		if (!whole) {
			struct timeval tv = { 0, CLUSTER_REFRESH_DOWN_MS * 1000 };
			evtimer_add(s->refresh_ev, &tv);
		}
	}
	leave(s);
}

/*
 * Ask a node for the slot map: an owner that is up first, then any node
 * that is up (seeds included). At most one question out, and one every
 * CLUSTER_REFRESH_MIN_MS; a timer asks later when it is too soon or no
 * node is up.
 */
static void cluster_refresh(struct store_redis *s, bool soon)
{
	(void)soon;
	if (s->closing || s->refreshing)
		return;
	uint64_t now = mono_ms();
	if (now - s->refreshed_ms < CLUSTER_REFRESH_MIN_MS) {
		if (!evtimer_pending(s->refresh_ev, NULL)) {
			struct timeval tv = { 0, (long)(CLUSTER_REFRESH_MIN_MS -
							(now - s->refreshed_ms)) * 1000 };
			evtimer_add(s->refresh_ev, &tv);
		}
		return;
	}
	const char *argv[2] = { "CLUSTER", "SLOTS" };
	for (int pass = 0; pass < 2; pass++)
		for (size_t k = 0; k < s->nnodes; k++) {
			/* start where the last one left off, so a dead node is not
			 * always asked first */
			struct peer *p = s->nodes[(s->refreshed_ms + k) % s->nnodes];
			if ((pass == 0 && !p->owns) || !rnode_up(p->n))
				continue;
			if (rnode_send(p->n, 2, argv, NULL, false, on_slots, p)) {
				enter(s);
				s->refreshing = true;
				s->refreshed_ms = now;
				return;
			}
		}
	struct timeval tv = { 0, CLUSTER_REFRESH_DOWN_MS * 1000 };
	evtimer_add(s->refresh_ev, &tv);
}

/* The timer: ask for the map now. */
static void on_refresh_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct store_redis *s = arg;
	enter(s);
	s->refreshed_ms = 0;
	cluster_refresh(s, true);
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

/* The reply to EVALSHA (or EVAL) of the grey, rate, sum or distinct script. */
static void on_script_reply(void *priv, struct rnode *n, redisReply *rp, const char *why)
{
	(void)why;
	struct rreq *r = priv;
	struct store_redis *s = r->s;    /* held by the command (rreq_send_to) */
	if (!reply_live(r, rp)) {
		leave(s);
		return;
	}
	if (rp->type == REDIS_REPLY_ERROR && !r->retried && rp->len >= 8 &&
	    memcmp(rp->str, "NOSCRIPT", 8) == 0) {
		/* The server lost its script cache (restart, SCRIPT FLUSH, a
		 * failover): EVAL sends the body and caches it again. */
		const char *body = script_body[r->script];
		r->retried = true;
		r->argv[0] = "EVAL";
		r->argvlen[0] = 4;
		r->argv[1] = body;
		r->argvlen[1] = strlen(body);
		if (!rreq_route(r))
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
		long long count = 0, added = 0;
		bool ok = int_elem(rp, 0, &count) && int_elem(rp, 1, &added);
		struct distinct_answer a = { .count = ok ? clamp_u32(count) : 0,
					     .added = added != 0 };
		a.over = a.count > r->limit;
		cmd_done(s, r, rp, ok, &a);
	} else if (r->kind == RK_REFUND) {
		bool ok = rp->type == REDIS_REPLY_INTEGER;
		unsigned long undone = ok && rp->integer > 0 ? 1 : 0;
		cmd_done(s, r, rp, ok, &undone);
	} else {
		long long count = 0, over = 0;
		bool ok = int_elem(rp, 0, &count) && int_elem(rp, 1, &over) && count >= 0;
		struct rate_answer a = { .count = (uint64_t)count, .over = over != 0, .id = r->seq };
		cmd_done(s, r, rp, ok, &a);
	}
	rreq_put(r);
	leave(s);
}

/* ---- building commands -------------------------------------------------------- */

/* Room arg_key needs beyond the prefix, kind and key: a cluster's tag. */
#define TAG_ROOM 3

/*
 * Add an argument of r's command from its buffer: PREFIX KIND KEY. In a
 * cluster, a greylist key (triplet or network) carries its hash tag
 * (docs/store.md): the tag is in braces where the key begins with it
 * and a '/' ("{192.0.2.0}/24/a@b.example/c@d.example"), else in front,
 * followed by '|' ("{192.0.2.0}|a@b.example/c@d.example"); tag NULL (a
 * rate key, or not a cluster) adds none.
 */
static void arg_key_tagged(struct rreq *r, char **pos, const struct store_redis *s,
			   const char *kind, const char *tag, size_t tag_len, const char *key,
			   size_t len)
{
	char *p = *pos;
	memcpy(p, s->prefix, s->prefix_len);
	p += s->prefix_len;
	memcpy(p, kind, 2);
	p += 2;
	if (s->mode == RM_CLUSTER && tag && tag_len) {
		*p++ = '{';
		memcpy(p, tag, tag_len);
		p += tag_len;
		*p++ = '}';
		if (len >= tag_len && !memcmp(key, tag, tag_len) &&
		    (len == tag_len || key[tag_len] == '/')) {
			key += tag_len;
			len -= tag_len;
		} else {
			*p++ = '|';
		}
	}
	memcpy(p, key, len);
	p += len;
	r->argv[r->argc] = *pos;
	r->argvlen[r->argc++] = (size_t)(p - *pos);
	*pos = p;
}

/* A key without a tag. */
static void arg_key(struct rreq *r, char **pos, const struct store_redis *s, const char *kind,
		    const char *key, size_t len)
{
	arg_key_tagged(r, pos, s, kind, NULL, 0, key, len);
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
static void arg_script(struct rreq *r, enum rscript script, const char *nkeys)
{
	const char *sha = r->s->sha[script], *body = script_body[script];
	r->script = script;
	r->handler = on_script_reply;
	r->key_arg = 3;
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
	if (s->closing) {
		cb(arg, STORE_FAIL, NULL);
		return;
	}
	/* a cluster's tag: the network's address, without its length */
	const char *slash = memchr(q->net, '/', q->net_len);
	size_t tag_len = slash ? (size_t)(slash - q->net) : q->net_len;
	struct rreq *r = rreq_new(s, RK_GREY, 2 * (s->prefix_len + 2 + tag_len + TAG_ROOM) +
						      q->triplet_len + q->net_len + 5 * NUM_ROOM);
	r->cb.grey = cb;
	r->arg = arg;
	char *pos = r->buf;
	arg_script(r, RS_grey, "2");
	arg_key_tagged(r, &pos, s, "g:", q->net, tag_len, q->triplet, q->triplet_len);
	arg_key_tagged(r, &pos, s, "a:", q->net, tag_len, q->net, q->net_len);
	arg_num(r, &pos, (long long)q->now);
	arg_num(r, &pos, q->p.delay);
	arg_num(r, &pos, q->p.expire);
	arg_num(r, &pos, q->p.retry_window);
	arg_num(r, &pos, q->p.awl);
	if (!rreq_route(r))
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

static void group_add(struct store_redis *s, struct rreq *r);

/* store_ops.rate: one EVALSHA of the rate script (count=requests) or of
 * the sum script (recipients, bytes), sent with the others of its loop
 * iteration (group_add). */
static void redis_rate(struct store *st, const struct rate_query *q, rate_cb cb, void *arg)
{
	struct store_redis *s = sr(st);
	if (s->closing) {
		cb(arg, STORE_FAIL, NULL);
		return;
	}
	struct rreq *r = rreq_new(s, RK_RATE, s->prefix_len + 2 + q->key_len + 5 * NUM_ROOM + 64);
	r->cb.rate = cb;
	r->arg = arg;
	char *pos = r->buf;
	arg_script(r, q->slotted ? RS_sum : RS_rate, "1");
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
	group_add(s, r);
}

/* store_ops.distinct: one EVALSHA of the distinct script (group_add, as rate). */
static void redis_distinct(struct store *st, const struct distinct_query *q, distinct_cb cb,
			   void *arg)
{
	struct store_redis *s = sr(st);
	if (s->closing) {
		cb(arg, STORE_FAIL, NULL);
		return;
	}
	struct rreq *r = rreq_new(s, RK_DISTINCT,
				  s->prefix_len + 2 + q->key_len + q->value_len + 3 * NUM_ROOM);
	r->cb.distinct = cb;
	r->arg = arg;
	r->limit = q->limit;
	char *pos = r->buf;
	arg_script(r, RS_distinct, "1");
	arg_key(r, &pos, s, "d:", q->key, q->key_len);
	arg_num(r, &pos, (long long)q->now);
	arg_num(r, &pos, q->window);
	arg_num(r, &pos, q->limit);
	memcpy(pos, q->value, q->value_len);
	r->argv[r->argc] = pos;
	r->argvlen[r->argc++] = q->value_len;
	group_add(s, r);
}

/* ---- groups: a request's counters in one call ------------------------------
 *
 * Since counting ahead (engine/vm.h) a request's rate and distinct calls
 * come in one loop iteration; four EVALSHAs cost Redis about twice the CPU
 * of one carrying the four (docs/dev/performance.md, outbound). So on a
 * single server or a Sentinel master, a call whose script is loaded is not
 * sent at once but kept (held as if sent: outstanding, enter), and when
 * the loop comes back (group_ev) those kept go as one EVALSHA of the group
 * script, or as their own command when alone. The group is an rreq of its
 * own (RK_GROUP) whose members are in its buffer; its reply gives each
 * member its element, read by on_script_reply as the member's own reply
 * would be; a failure of the group (no reply, an error, a wrong shape) is
 * the first member's error, and "no reply" for the others, so it is
 * logged once. Order is kept: the members run in the order they came.
 */

/* The group's members, in its buffer. */
static struct rreq **group_members(struct rreq *b)
{
	return (struct rreq **)(void *)b->buf;
}

/* Send group b (EVALSHA, or EVAL with the body after a NOSCRIPT); false:
 * the node cannot take it now. */
static bool group_send(struct store_redis *s, struct rreq *b, bool eval)
{
	static const char *const digits[] = { "0", "1", "2", "3", "4", "5", "6", "7", "8", "9" };
	static const char *const letter[RS_COUNT] = { [RS_rate] = "r", [RS_sum] = "s",
						       [RS_distinct] = "d" };
	const char *argv[3 + REDIS_GROUP_MAX * (3 + RREQ_MAXARG)];
	size_t argvlen[ARRAY_LEN(argv)];
	char nkeys[8];
	int argc = 0, n = b->argc;
	struct rreq **m = group_members(b);
	argv[argc++] = eval ? "EVAL" : "EVALSHA";
	argv[argc++] = eval ? group_lua : s->sha[RS_group];
	snprintf(nkeys, sizeof nkeys, "%d", n);
	argv[argc++] = nkeys;
	for (int i = 0; i < n; i++)
		argv[argc++] = m[i]->argv[3];          /* the key */
	for (int i = 0; i < n; i++) {
		argv[argc++] = letter[m[i]->script];
		argv[argc++] = digits[m[i]->argc - 4];
		for (int k = 4; k < m[i]->argc; k++)
			argv[argc++] = m[i]->argv[k];
	}
	for (int i = 0; i < argc; i++)
		argvlen[i] = strlen(argv[i]);
	for (int i = 0, at = 3; i < n; i++)        /* binary-safe: the lengths kept */
		argvlen[at + i] = m[i]->argvlen[3];
	for (int i = 0, at = 3 + n; i < n; i++) {
		for (int k = 4; k < m[i]->argc; k++)
			argvlen[at + 2 + (k - 4)] = m[i]->argvlen[k];
		at += 2 + (m[i]->argc - 4);
	}
	return rreq_send_to(route_key(s, "", 0), b, b->handler, argc, argv, argvlen, false);
}

/* Give each member of b its reply: elem(i), or a failure (rp for the
 * first, none for the rest: the group's error is logged once). */
static void group_answer(struct rreq *b, struct rnode *n, redisReply *rp, bool ok)
{
	struct rreq **m = group_members(b);
	for (int i = 0; i < b->argc; i++)
		on_script_reply(m[i], n, ok ? rp->element[i] : i == 0 ? rp : NULL,
				ok ? NULL : "the group failed");
}

static void on_group_reply(void *priv, struct rnode *n, redisReply *rp, const char *why)
{
	(void)why;
	struct rreq *b = priv;
	struct store_redis *s = b->s;     /* held by the command */
	if (rp && rp->type == REDIS_REPLY_ERROR && !b->retried && rp->len >= 8 &&
	    memcmp(rp->str, "NOSCRIPT", 8) == 0) {
		b->retried = true;        /* the server lost its scripts: EVAL */
		if (group_send(s, b, true)) {
			rreq_put(b);
			leave(s);
			return;
		}
		rp = NULL;
	}
	bool ok = rp && rp->type == REDIS_REPLY_ARRAY && rp->elements == (size_t)b->argc;
	group_answer(b, n, rp, ok);
	b->answered = true;
	rreq_put(b);
	leave(s);
}

/* Send what group_add kept: alone as its own command, or as one group. */
static void group_flush(struct store_redis *s)
{
	size_t n = s->ngroup;
	s->ngroup = 0;
	if (n == 0)
		return;
	if (n == 1 && !s->closing) {
		struct rreq *r = s->group[0];
		r->outstanding--;         /* group_add's hold: sent as it came */
		leave(s);
		if (!rreq_route(r))
			rreq_fail_now(r);
		return;
	}
	struct rreq *b = rreq_new(s, RK_GROUP, n * sizeof(struct rreq *));
	memcpy(b->buf, s->group, n * sizeof(struct rreq *));
	b->argc = (int)n;
	b->handler = on_group_reply;
	if (s->closing || !group_send(s, b, false)) {
		group_answer(b, NULL, NULL, false);
		free(b);
	}
}

static void on_group_ev(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct store_redis *s = arg;
	enter(s);
	group_flush(s);
	leave(s);
}

/* Send r (a rate or distinct call) when the loop comes back, with the
 * others of this iteration; at once where groups do not go. */
static void group_add(struct store_redis *s, struct rreq *r)
{
	if (s->mode == RM_CLUSTER || !s->sha[RS_group][0] || strcmp(r->argv[0], "EVALSHA") ||
	    r->argc - 4 > 9) {
		if (!rreq_route(r))
			rreq_fail_now(r);
		return;
	}
	if (!s->group_ev)
		s->group_ev = event_new(s->evb, -1, 0, on_group_ev, s);
	r->outstanding++;                 /* held as a sent command is */
	enter(s);
	s->group[s->ngroup++] = r;
	if (s->ngroup == REDIS_GROUP_MAX)
		group_flush(s);
	else if (s->ngroup == 1)
		event_active(s->group_ev, EV_TIMEOUT, 1);
}

/* store_ops.refund: one EVALSHA of the refund script (its reply: on_script_reply). */
static void redis_refund(struct store *st, const struct store_refund *q, store_done_cb cb,
			 void *arg)
{
	struct store_redis *s = sr(st);
	if (s->closing) {
		cb(arg, STORE_FAIL, 0);
		return;
	}
	struct rreq *r = rreq_new(s, RK_REFUND, s->prefix_len + 2 + q->key_len + q->value_len +
							2 * NUM_ROOM + 64);
	r->cb.done = cb;
	r->arg = arg;
	char *pos = r->buf;
	arg_script(r, RS_refund, "1");
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
	if (!rreq_route(r))
		rreq_fail_now(r);
}

/* ---- list, edit, flush ---------------------------------------------------------- */

static void on_scan(void *priv, struct rnode *n, redisReply *rp, const char *why);

/* Ask for the next SCAN step of a list or flush, on the node it walks. */
static bool scan_next(struct store_redis *s, struct rreq *r, const char *cursor)
{
	const char *argv[6] = { "SCAN", cursor, "MATCH", s->scan_pattern, "COUNT", REDIS_SCAN_COUNT };
	return rreq_send_to(r->on, r, on_scan, 6, argv, NULL, false);
}

/*
 * The node a list or flush walks first (from == 0) or next: the one
 * server, or each master of a cluster in turn (a replica holds copies).
 * NULL: no more. *ok false: the next master cannot be reached.
 */
static struct peer *walk_node(struct store_redis *s, struct rreq *r, bool first)
{
	if (s->mode != RM_CLUSTER)
		return first ? route_key(s, "", 0) : NULL;
	for (size_t i = first ? 0 : r->node_at + 1; i < s->nnodes; i++)
		if (s->nodes[i]->owns) {
			r->node_at = i;
			return s->nodes[i];
		}
	return NULL;
}

/* The end of one node's walk: the next master's, or the answer. */
static void scan_finish(struct rreq *r)
{
	struct store_redis *s = r->s;
	if (s->mode == RM_CLUSTER) {
		struct peer *next = walk_node(s, r, false);
		if (next) {
			r->on = next;
			r->scan_over = false;
			if (!scan_next(s, r, "0"))
				rreq_answer(r, STORE_FAIL, NULL);
			return;
		}
	}
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

/* A listed key as the greylist acl made it: a cluster's hash tag taken
 * out again where it stands for the key's beginning (arg_key_tagged). */
static const char *untag(const struct store_redis *s, const char *key, char *buf, size_t size)
{
	const char *close = key[0] == '{' ? strchr(key, '}') : NULL;
	if (s->mode != RM_CLUSTER || !close || (close[1] && close[1] != '/'))
		return key;               /* "{TAG}|KEY" is shown (and edited) as it is */
	snprintf(buf, size, "%.*s%s", (int)(close - key - 1), key + 1, close + 1);
	return buf;
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
	char buf[2048];
	struct store_entry e = {
		.kind = kind == 'g' ? STORE_TRIPLET : STORE_AWL,
		.key = untag(s, k->str + s->prefix_len + 2, buf, sizeof buf),
		.first = (time_t)first,
		.last = (time_t)last,
		.passed = kind == 'g' && passed != 0,
		.count = kind == 'a' ? clamp_u32(count) : (passed != 0),
	};
	r->cb.list(r->arg, STORE_OK, &e);
}

/* The reply to one batch of a list (the list script) or a flush (DEL). */
static void on_batch(void *priv, struct rnode *n, redisReply *rp, const char *why)
{
	(void)n;
	(void)why;
	struct rreq *r = priv;
	struct store_redis *s = r->s;    /* held by the command (rreq_send_to) */
	if (!reply_live(r, rp)) {
		leave(s);
		return;
	}
	if (r->kind == RK_LIST && rp->type == REDIS_REPLY_ARRAY) {
		cmd_succeeded(s);
		for (size_t i = 0; i + 1 < rp->elements && !r->answered && !s->closing; i += 2)
			list_entry(s, r, rp->element[i], rp->element[i + 1]);
		if (!r->answered && s->closing)
			rreq_answer(r, STORE_FAIL, NULL); /* an entry's callback closed us */
	} else if (r->kind == RK_FLUSH && rp->type == REDIS_REPLY_INTEGER) {
		cmd_succeeded(s);
		r->changed += rp->integer > 0 ? (unsigned long)rp->integer : 0;
	} else {
		cmd_failed(s, rp);
		rreq_answer(r, STORE_FAIL, NULL);
	}
	if (!r->answered && r->scan_over && r->outstanding == 1)
		scan_finish(r);
	rreq_put(r);
	leave(s);
}

/* Send the batch command for the keys one SCAN step found: one command
 * for them all, or in a cluster one per key (keys of several slots in one
 * command are refused there, CROSSSLOT). */
static bool batch_send(struct store_redis *s, struct rreq *r, const redisReply *keys)
{
	size_t n = keys->elements, argc = 0;
	const char **argv = xmalloc((n + 3) * sizeof *argv);
	size_t *len = xmalloc((n + 3) * sizeof *len);
	bool per_key = s->mode == RM_CLUSTER;
	char nkeys[24];
	if (r->kind == RK_LIST) {
		snprintf(nkeys, sizeof nkeys, "%zu", per_key ? (size_t)1 : n);
		argv[argc] = "EVAL", len[argc++] = 4;
		argv[argc] = list_lua, len[argc++] = strlen(list_lua);
		argv[argc] = nkeys, len[argc++] = strlen(nkeys);
	} else {
		argv[argc] = "DEL", len[argc++] = 3;
	}
	size_t fixed = argc;
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		const redisReply *k = keys->element[i];
		ok &= k->type == REDIS_REPLY_STRING;
		if (per_key && ok) {
			argv[fixed] = k->str;
			len[fixed] = k->len;
			ok = rreq_send_to(r->on, r, on_batch, (int)fixed + 1, argv, len, false);
			continue;
		}
		argv[argc] = k->str;
		len[argc++] = k->len;
	}
	/* hiredis copies the arguments into its output buffer */
	if (!per_key)
		ok = ok && argc <= INT_MAX &&
		     rreq_send_to(r->on, r, on_batch, (int)argc, argv, len, false);
	free(argv);
	free(len);
	return ok;
}

/* A SCAN step of a list or flush: its keys are sent on as one batch, and
 * the next step goes out behind it until the cursor comes back as 0. */
static void on_scan(void *priv, struct rnode *n, redisReply *rp, const char *why)
{
	(void)n;
	(void)why;
	struct rreq *r = priv;
	struct store_redis *s = r->s;    /* held by the command (rreq_send_to) */
	if (!reply_live(r, rp)) {
		leave(s);
		return;
	}
	if (rp->type != REDIS_REPLY_ARRAY || rp->elements != 2 ||
	    rp->element[0]->type != REDIS_REPLY_STRING ||
	    rp->element[1]->type != REDIS_REPLY_ARRAY) {
		cmd_failed(s, rp);
		rreq_answer(r, STORE_FAIL, NULL);
	} else {
		const redisReply *keys = rp->element[1];
		bool ok = keys->elements == 0 || batch_send(s, r, keys);
		if (ok && strcmp(rp->element[0]->str, "0") == 0)
			r->scan_over = true;
		else if (ok)
			ok = scan_next(s, r, rp->element[0]->str);
		if (!ok)
			rreq_answer(r, STORE_FAIL, NULL);
		else if (r->scan_over && r->outstanding == 1)
			scan_finish(r);
	}
	rreq_put(r);
	leave(s);
}

/* Start walking the keys for a list or flush. */
static void walk_start(struct store_redis *s, struct rreq *r)
{
	r->on = walk_node(s, r, true);
	if (!r->on && s->mode == RM_CLUSTER && s->map_known) {
		r->outstanding++;         /* a cluster without a master: nothing there */
		rreq_answer(r, STORE_OK, &r->changed);
		rreq_put(r);
		return;
	}
	if (!scan_next(s, r, "0"))
		rreq_fail_now(r);
}

/* store_ops.list: SCAN the greylist keys, a batch of hashes per step. */
static void redis_list(struct store *st, time_t now, store_list_cb cb, void *arg)
{
	struct store_redis *s = sr(st);
	if (s->closing) {
		cb(arg, STORE_FAIL, NULL);
		return;
	}
	struct rreq *r = rreq_new(s, RK_LIST, 0);
	r->cb.list = cb;
	r->arg = arg;
	r->now = now;
	walk_start(s, r);
}

/* The reply to a WHITELIST, PASS or FORGET: how many keys it changed. */
static void on_edit(void *priv, struct rnode *n, redisReply *rp, const char *why)
{
	(void)n;
	(void)why;
	struct rreq *r = priv;
	struct store_redis *s = r->s;    /* held by the command (rreq_send_to) */
	if (!reply_live(r, rp)) {
		leave(s);
		return;
	}
	bool ok = rp->type == REDIS_REPLY_INTEGER;
	unsigned long changed = ok && rp->integer > 0 ? (unsigned long)rp->integer : 0;
	cmd_done(s, r, rp, ok, &changed);
	rreq_put(r);
	leave(s);
}

/* store_ops.edit: one EVAL or DEL; FLUSH walks the keys like list. */
static void redis_edit(struct store *st, enum store_edit op, const char *key, time_t now,
		       const struct grey_params *p, store_done_cb cb, void *arg)
{
	struct store_redis *s = sr(st);
	if (s->closing) {
		cb(arg, STORE_FAIL, 0);
		return;
	}
	if (op == STORE_FLUSH) {
		struct rreq *r = rreq_new(s, RK_FLUSH, 0);
		r->cb.done = cb;
		r->arg = arg;
		walk_start(s, r);
		return;
	}
	assert(key && (p || op == STORE_FORGET));
	size_t len = strlen(key);
	/* a cluster's tag: the key's first part, as the greylist acl's
	 * default key begins with the client network ("{TAG}..." as listed
	 * is taken as it is) */
	const char *slash = strchr(key, '/');
	size_t tag_len = key[0] == '{' ? 0 : slash ? (size_t)(slash - key) : len;
	struct rreq *r = rreq_new(s, RK_EDIT,
				  2 * (s->prefix_len + 2 + tag_len + TAG_ROOM + len) + 3 * NUM_ROOM);
	r->cb.done = cb;
	r->arg = arg;
	r->handler = on_edit;
	char *pos = r->buf;
	switch (op) {
	case STORE_WHITELIST:
		arg_lit(r, "EVAL");
		arg_lit(r, whitelist_lua);
		arg_lit(r, "1");
		r->key_arg = r->argc;
		arg_key_tagged(r, &pos, s, "a:", key, tag_len, key, len);
		arg_num(r, &pos, (long long)now);
		arg_num(r, &pos, p->awl ? p->awl : 1);
		arg_num(r, &pos, p->expire);
		break;
	case STORE_PASS:
		arg_lit(r, "EVAL");
		arg_lit(r, pass_lua);
		arg_lit(r, "1");
		r->key_arg = r->argc;
		arg_key_tagged(r, &pos, s, "g:", key, tag_len, key, len);
		arg_num(r, &pos, (long long)now);
		arg_num(r, &pos, p->expire);
		break;
	case STORE_FORGET:
	case STORE_FLUSH:
		arg_lit(r, "DEL");
		r->key_arg = r->argc;
		arg_key_tagged(r, &pos, s, "g:", key, tag_len, key, len);
		arg_key_tagged(r, &pos, s, "a:", key, tag_len, key, len);
		break;
	}
	if (!rreq_route(r))
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
 * One HOST[:PORT] (an IPv6 address in brackets) from h to end: the host
 * (malloc'ed) and port; NULL, or what is wrong (malloc'ed).
 */
static char *hostport_parse(const char *h, const char *end, int default_port, char **host,
			    int *port_out)
{
	const char *he, *port = NULL;
	if (*h == '[') {
		he = memchr(h, ']', (size_t)(end - h));
		if (!he)
			return xstrdup("no ']' after the IPv6 address");
		h++;
		if (he + 1 < end) {
			if (he[1] != ':')
				return xstrdup("':' must follow ']'");
			port = he + 2;
		}
	} else {
		he = memrchr(h, ':', (size_t)(end - h));
		if (he)
			port = he + 1;
		else
			he = end;
	}
	if (he == h)
		return xstrdup("no host");
	long v = default_port;
	if (port && !num_parse(port, (size_t)(end - port), 1, 65535, &v))
		return xasprintf("bad port '%.*s'", (int)(end - port), port);
	*port_out = (int)v;
	*host = xstrndup(h, (size_t)(he - h));
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
	} else if (strncmp(url, "redis-sentinel://", 17) == 0) {
		s->mode = RM_SENTINEL;
		p = url + 17;
	} else if (strncmp(url, "redis-cluster://", 16) == 0) {
		s->mode = RM_CLUSTER;
		p = url + 16;
	} else {
		return xasprintf("bad store '%s': write redis://HOST:PORT[/DB] or "
				 "redis+unix:///PATH", url);
	}
	const char *qs = strchr(p, '?');
	const char *end = qs ? qs : p + strlen(p);
	const char *slash = memchr(p, '/', (size_t)(end - p));
	const char *auth_end = slash ? slash : end;
	const char *at = memchr(p, '@', (size_t)(auth_end - p));
	/* a sentinel's or cluster's options may hold a password: not shown */
	if (s->mode == RM_SINGLE)
		s->display = xasprintf("%.*s%s", (int)(p - url), url, at ? at + 1 : p);
	else
		s->display = xasprintf("%.*s%.*s", (int)(p - url), url,
				       (int)(end - (at ? at + 1 : p)), at ? at + 1 : p);
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
	if (s->mode != RM_SINGLE) {
		for (const char *h = p; h;) {
			const char *comma = memchr(h, ',', (size_t)(auth_end - h));
			const char *he = comma ? comma : auth_end;
			if (s->nservers == REDIS_MAX_SERVERS)
				BAD("more than %d servers", REDIS_MAX_SERVERS);
			struct hostport *hp = &s->servers[s->nservers];
			char *why = hostport_parse(h, he, s->mode == RM_SENTINEL
								? SENTINEL_DEFAULT_PORT
								: REDIS_DEFAULT_PORT,
						   &hp->host, &hp->port);
			if (why) {
				char *e = xasprintf("bad store '%s': %s", s->display, why);
				free(why);
				return e;
			}
			s->nservers++;
			h = comma ? comma + 1 : NULL;
		}
		if (s->mode == RM_CLUSTER && slash && slash + 1 < end)
			BAD("a cluster takes no path: it has only database 0");
		if (s->mode == RM_SENTINEL) {
			const char *name = slash ? slash + 1 : end;
			const char *ne = name < end ? memchr(name, '/', (size_t)(end - name)) : NULL;
			if (!ne)
				ne = end;
			if (ne == name)
				BAD("no master name: redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTERNAME");
			if (!(s->master_name = pct_decode(name, (size_t)(ne - name))))
				BAD("bad %%-escape in the master name");
			if (ne < end && (ne + 1 == end ||
					 !num_parse(ne + 1, (size_t)(end - ne - 1), 0, INT_MAX, &s->db)))
				BAD("bad database '%.*s': a number", (int)(end - ne - 1), ne + 1);
		}
	} else if (s->is_unix) {
		if (p != auth_end)
			BAD("a unix socket takes no host: redis+unix:///PATH");
		if (!slash || slash + 1 >= end)
			BAD("no socket path: redis+unix:///PATH");
		if (!(s->path = pct_decode(slash, (size_t)(end - slash))))
			BAD("bad %%-escape in the path");
	} else {
		char *why = hostport_parse(p, auth_end, REDIS_DEFAULT_PORT, &s->host, &s->port);
		if (why) {
			char *e = xasprintf("bad store '%s': %s", s->display, why);
			free(why);
			return e;
		}
		if (slash && slash + 1 < end &&
		    !num_parse(slash + 1, (size_t)(end - slash - 1), 0, INT_MAX, &s->db))
			BAD("bad database '%.*s': a number", (int)(end - slash - 1), slash + 1);
	}
	bool db_in_path = s->mode == RM_SINGLE ? !s->is_unix && slash && slash + 1 < end
						: s->mode == RM_SENTINEL && s->db;
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
		} else if (kn == 2 && !strncmp(q, "db", 2) && s->mode != RM_CLUSTER) {
			if (db_in_path)
				BAD("the database is given twice");
			if (!num_parse(v, vn, 0, INT_MAX, &s->db))
				BAD("bad database '%.*s': a number", (int)vn, v);
		} else if (kn == 17 && !strncmp(q, "sentinel_password", 17) && eq &&
			   s->mode == RM_SENTINEL) {
			free(s->sentinel_password);
			if (!(s->sentinel_password = pct_decode(v, vn)) || !*s->sentinel_password)
				BAD("bad or empty sentinel_password");
		} else if (kn == 13 && !strncmp(q, "sentinel_user", 13) && eq &&
			   s->mode == RM_SENTINEL) {
			free(s->sentinel_user);
			if (!(s->sentinel_user = pct_decode(v, vn)) || !*s->sentinel_user)
				BAD("bad or empty sentinel_user");
		} else if (s->mode == RM_SENTINEL) {
			BAD("unknown option '%.*s': use prefix=, timeout=, db=, "
			    "sentinel_password= or sentinel_user=", (int)kn, q);
		} else if (s->mode == RM_CLUSTER) {
			BAD("unknown option '%.*s': use prefix= or timeout= (a cluster has only "
			    "database 0)", (int)kn, q);
		} else {
			BAD("unknown option '%.*s': use prefix=, timeout= or db=", (int)kn, q);
		}
		q = amp ? amp + 1 : NULL;
	}
#undef BAD
	if (s->sentinel_user && !s->sentinel_password)
		return xasprintf("bad store '%s': sentinel_user= needs sentinel_password=",
				 s->display);
	for (size_t i = 0; i < s->nservers; i++) {
		char *why = NULL;
		char *num = host_resolve(s->servers[i].host, &why);
		if (!num) {
			char *e = xasprintf("bad store '%s': %s", s->display, why);
			free(why);
			return e;
		}
		free(s->servers[i].host);
		s->servers[i].host = num;
	}
	if (s->mode == RM_SINGLE && !s->is_unix) {
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


/* ---- the start-up check (Sentinel, Cluster) -------------------------------------- */

/* A blocking connection for the check, authenticated; NULL with *why. */
static redisContext *probe_connect(const struct store_redis *s, const struct hostport *hp,
				   const char *user, const char *password, char **why)
{
	unsigned ms = s->timeout_ms > REDIS_PROBE_MIN_MS ? s->timeout_ms : REDIS_PROBE_MIN_MS;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	redisContext *c = redisConnectWithTimeout(hp->host, hp->port, tv);
	if (!c || c->err) {
		*why = xasprintf("%s:%d: %s", hp->host, hp->port, c ? c->errstr : "out of memory");
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	if (password) {
		redisReply *rp = user ? redisCommand(c, "AUTH %s %s", user, password)
				      : redisCommand(c, "AUTH %s", password);
		bool ok = rp && rp->type != REDIS_REPLY_ERROR;
		if (!ok)
			*why = xasprintf("%s:%d: AUTH: %s", hp->host, hp->port,
					 rp ? rp->str : c->errstr);
		freeReplyObject(rp);
		if (!ok) {
			redisFree(c);
			return NULL;
		}
	}
	return c;
}

/*
 * Ask the sentinels in turn for the master's address; NULL (the address
 * in *host, *port) or why none can say (malloc'ed): none answers, or none
 * knows a master of that name.
 */
static char *sentinel_probe(const struct store_redis *s, char **host, int *port)
{
	struct strbuf why;
	sb_init(&why);
	size_t unknown = 0;
	for (size_t i = 0; i < s->nservers; i++) {
		const struct hostport *hp = &s->servers[i];
		char *e = NULL;
		redisContext *c = probe_connect(s, hp, s->sentinel_user, s->sentinel_password, &e);
		redisReply *rp = c ? redisCommand(c, "SENTINEL get-master-addr-by-name %s",
						  s->master_name)
				   : NULL;
		if (rp && rp->type == REDIS_REPLY_ARRAY && rp->elements == 2 &&
		    rp->element[0]->type == REDIS_REPLY_STRING &&
		    rp->element[1]->type == REDIS_REPLY_STRING) {
			long v;
			unsigned char bin[16];
			const char *h = rp->element[0]->str;
			if (num_parse(rp->element[1]->str, rp->element[1]->len, 1, 65535, &v) &&
			    (inet_pton(AF_INET, h, bin) == 1 || inet_pton(AF_INET6, h, bin) == 1)) {
				*host = xstrdup(h);
				*port = (int)v;
				freeReplyObject(rp);
				redisFree(c);
				sb_free(&why);
				return NULL;
			}
		}
		if (!e && rp && rp->type == REDIS_REPLY_NIL) {
			unknown++;
			e = xasprintf("%s:%d: no master named '%s'", hp->host, hp->port,
				      s->master_name);
		} else if (!e) {
			e = xasprintf("%s:%d: %s", hp->host, hp->port,
				      rp && rp->type == REDIS_REPLY_ERROR ? rp->str
				      : rp ? "not a sentinel (unexpected reply)"
					   : c->errstr);
		}
		sb_printf(&why, "%s%s", why.len ? "; " : "", e);
		free(e);
		freeReplyObject(rp);
		redisFree(c);
	}
	char *out = xasprintf("bad store '%s': %s (%s)", s->display,
			      unknown ? "no sentinel knows the master name"
				      : "no sentinel answers",
			      why.s);
	sb_free(&why);
	return out;
}

/*
 * Ask the seeds in turn for the slot map (CLUSTER SLOTS); NULL (*map, the
 * reply, and *from, the seed, set) or why none can (malloc'ed): none
 * answers, or a seed is not in cluster mode.
 */
static char *cluster_probe(const struct store_redis *s, redisReply **map, size_t *from)
{
	struct strbuf why;
	sb_init(&why);
	for (size_t i = 0; i < s->nservers; i++) {
		const struct hostport *hp = &s->servers[i];
		char *e = NULL;
		redisContext *c = probe_connect(s, hp, s->user, s->password, &e);
		redisReply *rp = c ? redisCommand(c, "CLUSTER SLOTS") : NULL;
		if (rp && rp->type == REDIS_REPLY_ARRAY && rp->elements > 0) {
			*map = rp;
			*from = i;
			redisFree(c);
			sb_free(&why);
			return NULL;
		}
		if (rp && rp->type == REDIS_REPLY_ERROR && strstr(rp->str, "cluster support disabled")) {
			char *out = xasprintf("bad store '%s': %s:%d is not in cluster mode "
					      "(cluster-enabled no): use redis://", s->display,
					      hp->host, hp->port);
			freeReplyObject(rp);
			redisFree(c);
			sb_free(&why);
			return out;
		}
		if (!e)
			e = xasprintf("%s:%d: %s", hp->host, hp->port,
				      rp && rp->type == REDIS_REPLY_ERROR ? rp->str
				      : rp ? "no slots assigned (is the cluster created?)"
					   : c->errstr);
		sb_printf(&why, "%s%s", why.len ? "; " : "", e);
		free(e);
		freeReplyObject(rp);
		redisFree(c);
	}
	char *out = xasprintf("bad store '%s': no cluster seed answers (%s)", s->display, why.s);
	sb_free(&why);
	return out;
}

/* ---- open and close ------------------------------------------------------------ */

/* Set up the nodes of a sentinel's or cluster's store; NULL or why not. */
static char *store_connect(struct store_redis *s)
{
	if (s->mode == RM_SINGLE) {
		s->master = peer_new(s, PEER_DATA, s->is_unix ? NULL : s->host, s->port);
		return NULL;
	}
	if (s->mode == RM_SENTINEL) {
		char *host = NULL;
		int port = 0;
		char *why = sentinel_probe(s, &host, &port);
		if (why)
			return why;
		s->ask_ev = evtimer_new(s->evb, on_ask_timer, s);
		if (!s->ask_ev)
			fatal_abort("store redis: cannot create a timer");
		s->sentinels = xcalloc(s->nservers, sizeof *s->sentinels);
		s->watchers = xcalloc(s->nservers, sizeof *s->watchers);
		for (size_t i = 0; i < s->nservers; i++) {
			s->sentinels[i] = peer_new(s, PEER_SENTINEL, s->servers[i].host,
						   s->servers[i].port);
			s->watchers[i] = peer_new(s, PEER_WATCH, s->servers[i].host,
						  s->servers[i].port);
		}
		s->master = peer_new(s, PEER_DATA, host, port);
		log_info("store %s: master %s at %s:%d", s->display, s->master_name, host, port);
		free(host);
		return NULL;
	}
	redisReply *map = NULL;
	size_t from = 0;
	char *why = cluster_probe(s, &map, &from);
	if (why)
		return why;
	s->slot = xcalloc(RSLOT_COUNT, sizeof *s->slot);
	s->refresh_ev = evtimer_new(s->evb, on_refresh_timer, s);
	if (!s->refresh_ev)
		fatal_abort("store redis: cannot create a timer");
	for (size_t i = 0; i < s->nservers; i++) {
		struct peer *p = cluster_node(s, s->servers[i].host, s->servers[i].port);
		if (p)
			p->seed = true;
	}
	char seed[INET6_ADDRSTRLEN + 8];
	snprintf(seed, sizeof seed, "%s:%d", s->servers[from].host, s->servers[from].port);
	cluster_map_apply(s, map, seed);
	freeReplyObject(map);
	return NULL;
}

/* store_ops.open for every scheme: parse, set up, start connecting. */
static struct store *redis_open(struct event_base *base, const char *url, char **err)
{
	struct store_redis *s = xcalloc(1, sizeof *s);
	s->prefix = xstrdup(REDIS_DEFAULT_PREFIX);
	s->timeout_ms = REDIS_DEFAULT_TIMEOUT_MS;
	s->servers = xcalloc(REDIS_MAX_SERVERS, sizeof *s->servers);
	char *why = url_parse(s, url);
	if (!why && !base)
		why = xasprintf("store %s: needs an event loop", s->display);
	if (why) {
		*err = why;
		store_free(s);
		return NULL;
	}
	s->base.ops = s->mode == RM_SENTINEL ? &store_redis_sentinel_ops
		      : s->mode == RM_CLUSTER ? &store_redis_cluster_ops
		      : s->is_unix	      ? &store_redis_unix_ops
					      : &store_redis_ops;
	s->evb = base;
	s->prefix_len = strlen(s->prefix);
	char *esc = glob_escape(s->prefix);
	s->scan_pattern = xasprintf("%s[ga]:*", esc);
	free(esc);
	if (getrandom(&s->nonce, sizeof s->nonce, GRND_NONBLOCK) != sizeof s->nonce)
		s->nonce = (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid() ^
			   (uint64_t)(uintptr_t)s;
	enter(s);
	why = store_connect(s);
	if (why) {
		*err = why;
		s->closing = true;
		for (size_t i = 0; i < s->nnodes; i++)
			peer_free(s->nodes[i]);
		leave(s);
		return NULL;
	}
	leave(s);
	return &s->base;
}

/* Every pending callback is answered STORE_FAIL before this returns. */
static void redis_close(struct store *st)
{
	struct store_redis *s = sr(st);
	enter(s);
	s->closing = true;
	group_flush(s);                  /* fails what it kept */
	if (s->ask_ev)
		evtimer_del(s->ask_ev);
	if (s->refresh_ev)
		evtimer_del(s->refresh_ev);
	peer_free(s->master);
	s->master = NULL;
	for (size_t i = 0; s->sentinels && i < s->nservers; i++) {
		peer_free(s->sentinels[i]);
		peer_free(s->watchers[i]);
	}
	for (size_t i = 0; i < s->nnodes; i++)
		peer_free(s->nodes[i]);
	s->nnodes = 0;
	leave(s);
}

#define REDIS_STORE_OPS  \
	.open = redis_open,   \
	.close = redis_close, \
	.grey = redis_grey,   \
	.rate = redis_rate,   \
	.distinct = redis_distinct, \
	.refund = redis_refund, \
	.list = redis_list,   \
	.edit = redis_edit

const struct store_ops store_redis_ops = {
	.scheme = "redis",
	.form = "redis://HOST:PORT[/DB]",
	REDIS_STORE_OPS,
};

const struct store_ops store_redis_unix_ops = {
	.scheme = "redis+unix",
	.form = "redis+unix:///PATH",
	REDIS_STORE_OPS,
};

const struct store_ops store_redis_sentinel_ops = {
	.scheme = "redis-sentinel",
	.form = "redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTERNAME[/DB]",
	REDIS_STORE_OPS,
};

const struct store_ops store_redis_cluster_ops = {
	.scheme = "redis-cluster",
	.form = "redis-cluster://HOST:PORT[,HOST:PORT...]",
	REDIS_STORE_OPS,
};
