/*
 * Store tests: one table of greylisting, rate and administration semantics
 * run against the memory store and against a real redis-server (started
 * here on a free loopback port, stopped by PID), then what only Redis has:
 * a server that is down, killed, restarted or stalled; AUTH, SELECT, key
 * prefix and unix sockets; two gateways racing on one server; and
 * callbacks called exactly once when the store closes under them.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backends/store.h"
#include "tests/unit/unit.h"
#include "util/util.h"

#define T0 1700000000

/* ---- a private redis-server -------------------------------------------------- */

struct rsrv {
	pid_t pid;
	int port;               /* 0: unix socket only */
	char dir[64];           /* its working directory */
	char sock[128];         /* unix socket path, or "" */
	char pass[64];          /* requirepass, or "" */
};

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t n = sizeof a;
	ck_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
		  getsockname(fd, (struct sockaddr *)&a, &n) == 0);
	close(fd);
	return ntohs(a.sin_port);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A blocking client for the test's own checks (never the store's way). */
static redisContext *rsrv_client(const struct rsrv *r)
{
	struct timeval tv = { 1, 0 };
	redisContext *c = r->sock[0] ? redisConnectUnixWithTimeout(r->sock, tv)
				     : redisConnectWithTimeout("127.0.0.1", r->port, tv);
	if (c && !c->err)
		redisSetTimeout(c, tv);
	return c;
}

/* A command on a fresh connection, after AUTH; the caller frees the reply. */
static redisReply *rsrv_cmd(const struct rsrv *r, long db, const char *fmt, ...)
{
	redisContext *c = rsrv_client(r);
	ck_assert_msg(c && !c->err, "cannot reach the test's redis-server: %s",
		      c ? c->errstr : "no memory");
	if (r->pass[0])
		freeReplyObject(redisCommand(c, "AUTH %s", r->pass));
	if (db)
		freeReplyObject(redisCommand(c, "SELECT %ld", db));
	va_list ap;
	va_start(ap, fmt);
	redisReply *rp = redisvCommand(c, fmt, ap);
	va_end(ap);
	ck_assert_msg(rp != NULL, "redis command failed: %s", c->errstr);
	redisFree(c);
	return rp;
}

static long long rsrv_int(const struct rsrv *r, long db, const char *fmt, const char *arg)
{
	redisReply *rp = rsrv_cmd(r, db, fmt, arg);
	ck_assert_msg(rp->type == REDIS_REPLY_INTEGER, "want an integer reply to '%s', got type %d",
		      fmt, rp->type);
	long long v = rp->integer;
	freeReplyObject(rp);
	return v;
}

/* Any answer to PING (PONG, or NOAUTH when a password is set) will do. */
static bool rsrv_answers(const struct rsrv *r)
{
	redisContext *c = rsrv_client(r);
	bool ok = false;
	if (c && !c->err) {
		redisReply *rp = redisCommand(c, "PING");
		ok = rp != NULL;
		freeReplyObject(rp);
	}
	redisFree(c);
	return ok;
}

static void rsrv_spawn(struct rsrv *r)
{
	char port[16];
	snprintf(port, sizeof port, "%d", r->port);
	const char *argv[24];
	int n = 0;
	argv[n++] = "redis-server";
	argv[n++] = "--port";
	argv[n++] = port;
	argv[n++] = "--bind";
	argv[n++] = "127.0.0.1";
	argv[n++] = "--save";
	argv[n++] = "";
	argv[n++] = "--appendonly";
	argv[n++] = "no";
	argv[n++] = "--dir";
	argv[n++] = r->dir;
	if (r->sock[0]) {
		argv[n++] = "--unixsocket";
		argv[n++] = r->sock;
		argv[n++] = "--unixsocketperm";
		argv[n++] = "700";
	}
	if (r->pass[0]) {
		argv[n++] = "--requirepass";
		argv[n++] = r->pass;
	}
	argv[n] = NULL;
	pid_t parent = getpid();
	pid_t pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		/* dies with the test, even one that fails half-way */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execvp("redis-server", (char **)argv);
		_exit(127);
	}
	r->pid = pid;
	double deadline = now_s() + 10;
	while (!rsrv_answers(r)) {
		int st;
		ck_assert_msg(waitpid(pid, &st, WNOHANG) == 0, "redis-server exited at start-up");
		ck_assert_msg(now_s() < deadline, "redis-server does not answer after 10 s");
		usleep(10000);
	}
}

static void rsrv_start(struct rsrv *r, bool unix_sock, const char *pass)
{
	memset(r, 0, sizeof *r);
	snprintf(r->dir, sizeof r->dir, "/tmp/mxacl-redis-XXXXXX");
	ck_assert(mkdtemp(r->dir) != NULL);
	if (unix_sock)
		snprintf(r->sock, sizeof r->sock, "%s/redis.sock", r->dir);
	else
		r->port = free_port();
	if (pass)
		snprintf(r->pass, sizeof r->pass, "%s", pass);
	rsrv_spawn(r);
}

/* Send sig to the server by PID; for a deadly one, wait for the exit. */
static void rsrv_signal(struct rsrv *r, int sig)
{
	ck_assert(r->pid > 0);
	ck_assert(kill(r->pid, sig) == 0);
	if (sig == SIGKILL || sig == SIGTERM) {
		if (sig == SIGTERM)
			kill(r->pid, SIGCONT);
		int st;
		ck_assert(waitpid(r->pid, &st, 0) == r->pid);
		r->pid = 0;
	}
}

static void rsrv_stop(struct rsrv *r)
{
	if (r->pid > 0)
		rsrv_signal(r, SIGTERM);
	char path[256];
	snprintf(path, sizeof path, "%s/redis.sock", r->dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/dump.rdb", r->dir);
	unlink(path);
	rmdir(r->dir);
}

static char *rsrv_url(const struct rsrv *r, const char *userinfo, const char *rest)
{
	if (r->sock[0])
		return xasprintf("redis+unix://%s%s%s", userinfo ? userinfo : "", r->sock,
				 rest ? rest : "");
	return xasprintf("redis://%s127.0.0.1:%d%s", userinfo ? userinfo : "", r->port,
			 rest ? rest : "");
}

/* ---- driving the loop ---------------------------------------------------------- */

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

/* Run base until *count reaches want; false after max_ms. */
static bool run_until(struct event_base *base, const int *count, int want, int max_ms)
{
	bool late = false;
	struct event *t = evtimer_new(base, on_deadline, &late);
	struct timeval tv = { max_ms / 1000, (max_ms % 1000) * 1000 };
	evtimer_add(t, &tv);
	while (*count < want && !late)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	return *count >= want;
}

static void run_for(struct event_base *base, int ms)
{
	int never = 0;
	run_until(base, &never, 1, ms);
}

/* What callbacks were given, and how often. */
struct rec {
	int calls;
	enum store_status st;
	struct grey_answer g;
	struct rate_answer r;
	unsigned long changed;
	/* list */
	int entries;
	char *lines[64];
	int nlines;
	/* close the store from inside the first callback */
	struct store **close_me;
};

static void rec_free(struct rec *r)
{
	for (int i = 0; i < r->nlines; i++)
		free(r->lines[i]);
	r->nlines = 0;
}

static void maybe_close(struct rec *r)
{
	if (r->close_me && *r->close_me) {
		struct store *s = *r->close_me;
		*r->close_me = NULL;
		store_close(s);
	}
}

static void grey_done(void *arg, enum store_status st, const struct grey_answer *a)
{
	struct rec *r = arg;
	r->calls++;
	r->st = st;
	if (st == STORE_OK)
		r->g = *a;
	else
		ck_assert_msg(a == NULL, "a failed grey answer must come without an answer");
	maybe_close(r);
}

static void rate_done(void *arg, enum store_status st, const struct rate_answer *a)
{
	struct rec *r = arg;
	r->calls++;
	r->st = st;
	if (st == STORE_OK)
		r->r = *a;
	maybe_close(r);
}

static void edit_done(void *arg, enum store_status st, unsigned long changed)
{
	struct rec *r = arg;
	r->calls++;
	r->st = st;
	r->changed = changed;
	maybe_close(r);
}

/* Entries become "g:KEY p=PASSED f=FIRST l=LAST" (times from T0) or
 * "a:NET n=COUNT f=FIRST l=LAST"; the end counts as the call. */
static void list_done(void *arg, enum store_status st, const struct store_entry *e)
{
	struct rec *r = arg;
	ck_assert_msg(r->calls == 0, "list: called after its end");
	if (!e) {
		r->calls++;
		r->st = st;
		return;
	}
	ck_assert_int_eq(st, STORE_OK);
	r->entries++;
	if (r->nlines < (int)ARRAY_LEN(r->lines)) {
		if (e->kind == STORE_TRIPLET)
			r->lines[r->nlines++] = xasprintf("g:%s p=%d f=%lld l=%lld", e->key, e->passed,
							  (long long)(e->first - T0),
							  (long long)(e->last - T0));
		else
			r->lines[r->nlines++] = xasprintf("a:%s n=%u f=%lld l=%lld", e->key, e->count,
							  (long long)(e->first - T0),
							  (long long)(e->last - T0));
	}
	maybe_close(r);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The listing sorted and joined by '|'. */
static char *rec_listing(struct rec *r)
{
	qsort(r->lines, (size_t)r->nlines, sizeof r->lines[0], cmp_str);
	struct strbuf b;
	sb_init(&b);
	for (int i = 0; i < r->nlines; i++)
		sb_printf(&b, "%s%s", i ? "|" : "", r->lines[i]);
	return b.s;
}

struct fix {
	struct event_base *base;
	struct store *s;
	struct rsrv srv;
	bool redis;
};

static struct store *open_ok(struct event_base *base, const char *url)
{
	char *err = NULL;
	struct store *s = store_open(base, url, &err);
	ck_assert_msg(s != NULL, "store_open(%s): %s", url, err ? err : "?");
	return s;
}

/* Wait until the store answers OK (it connects on its own); bounded. */
static bool wait_ready(struct event_base *base, struct store *s, int max_ms)
{
	static const struct grey_params p = { 60, 3600, 600, 0 };
	double deadline = now_s() + max_ms / 1000.0;
	while (now_s() < deadline) {
		struct rec r = { 0 };
		struct grey_query q = { .triplet = "probe", .triplet_len = 5, .net = "probe",
					.net_len = 5, .now = T0, .p = p };
		store_grey(s, &q, grey_done, &r);
		ck_assert(run_until(base, &r.calls, 1, 5000));
		if (r.st == STORE_OK)
			return true;
		run_for(base, 50);
	}
	return false;
}

static void fix_open(struct fix *f, bool redis)
{
	memset(f, 0, sizeof *f);
	signal(SIGPIPE, SIG_IGN);       /* as mxacld does: hiredis writes to sockets */
	f->base = event_base_new();
	f->redis = redis;
	if (redis) {
		rsrv_start(&f->srv, false, NULL);
		char *url = rsrv_url(&f->srv, NULL, NULL);
		f->s = open_ok(f->base, url);
		free(url);
		ck_assert_msg(wait_ready(f->base, f->s, 5000), "the store does not connect");
		freeReplyObject(rsrv_cmd(&f->srv, 0, "FLUSHALL"));
	} else {
		f->s = open_ok(f->base, "memory");
	}
}

static void fix_close(struct fix *f)
{
	store_close(f->s);
	if (f->redis)
		rsrv_stop(&f->srv);
	event_base_free(f->base);
}

/* ---- the shared table ------------------------------------------------------------ */

enum op { OP_GREY, OP_RATE, OP_WHITELIST, OP_PASS, OP_FORGET, OP_FLUSH, OP_LIST };

struct step {
	enum op op;
	int t;                           /* seconds after T0 */
	const char *key, *net;
	int grey;                        /* grey: 1 greylisted, 0 pass */
	unsigned remaining, age;
	int awl;
	unsigned long long limit, count; /* rate */
	unsigned window;
	int over;
	int slotted;                     /* rate: the slotted log, with amount */
	unsigned long long amount;       /* (the exact log: always 1) */
	unsigned long changed;           /* edit */
	const char *listing;             /* list */
	const struct grey_params *p;     /* NULL: the table's */
	const char *state;               /* grey: what the check did (grey_state) */
	const char *what;
};

/* The short names of enum grey_state in the tables above. */
static const char *const grey_state_names[] = {
	[GREY_NEW] = "new", [GREY_EARLY] = "early", [GREY_FIRST_PASS] = "first",
	[GREY_PASSED] = "passed", [GREY_AWL] = "awl",
};

static const struct grey_params P = { .delay = 60, .expire = 3600, .retry_window = 600, .awl = 3 };
static const struct grey_params P_NOAWL = { .delay = 60, .expire = 3600, .retry_window = 600 };

static const struct step greylist_steps[] = {
	{ OP_GREY, 0, "192.0.2/a@x/b@y", "192.0.2", .grey = 1, .remaining = 60, .state = "new", .what = "first seen" },
	{ OP_GREY, 20, "192.0.2/a@x/b@y", "192.0.2", .grey = 1, .remaining = 40, .age = 20,
	  .state = "early", .what = "early retry" },
	{ OP_GREY, 59, "192.0.2/a@x/b@y", "192.0.2", .grey = 1, .remaining = 1, .age = 59,
	  .state = "early", .what = "one second early" },
	{ OP_GREY, 60, "192.0.2/a@x/b@y", "192.0.2", .age = 60, .state = "first", .what = "retry after the delay" },
	{ OP_GREY, 1000, "192.0.2/a@x/b@y", "192.0.2", .age = 1000, .state = "passed", .what = "passed, within expire" },
	{ OP_GREY, 4599, "192.0.2/a@x/b@y", "192.0.2", .age = 4599,
	  .state = "passed", .what = "passed, used just before expire" },
	{ OP_GREY, 8199, "192.0.2/a@x/b@y", "192.0.2", .grey = 1, .remaining = 60,
	  .state = "new", .what = "unused for expire: starts over" },
	{ OP_GREY, 8259, "192.0.2/a@x/b@y", "192.0.2", .age = 60, .state = "first", .what = "passes again" },
	{ OP_GREY, 0, "192.0.2/c@x/d@y", "192.0.2", .grey = 1, .remaining = 60, .state = "new", .what = "second" },
	{ OP_GREY, 600, "192.0.2/c@x/d@y", "192.0.2", .age = 600,
	  .state = "first", .what = "retried at the end of the retry window" },
	{ OP_GREY, 0, "192.0.2/e@x/f@y", "192.0.2", .grey = 1, .remaining = 60, .state = "new", .what = "third" },
	{ OP_GREY, 601, "192.0.2/e@x/f@y", "192.0.2", .grey = 1, .remaining = 60,
	  .state = "new", .what = "not retried within retry_window: starts over" },
	{ OP_GREY, 630, "192.0.2/e@x/f@y", "192.0.2", .grey = 1, .remaining = 31, .age = 29,
	  .state = "early", .what = "waiting again" },
	{ OP_GREY, 661, "192.0.2/e@x/f@y", "192.0.2", .age = 60, .state = "first", .what = "passes after restart" },
	{ OP_GREY, 0, "d0", "n0", .grey = 1, .p = &(struct grey_params){ 0, 3600, 600, 0 },
	  .state = "new", .what = "delay 0: the first request still waits" },
	{ OP_GREY, 0, "d0", "n0", .p = &(struct grey_params){ 0, 3600, 600, 0 },
	  .state = "first", .what = "delay 0: the retry passes" },
};

static const struct step awl_steps[] = {
	{ OP_GREY, 0, "a1", "198.51.100", .grey = 1, .remaining = 60, .state = "new", .what = "a1 first" },
	{ OP_GREY, 0, "a2", "198.51.100", .grey = 1, .remaining = 60, .state = "new", .what = "a2 first" },
	{ OP_GREY, 0, "a3", "198.51.100", .grey = 1, .remaining = 60, .state = "new", .what = "a3 first" },
	{ OP_GREY, 60, "a1", "198.51.100", .age = 60, .state = "first", .what = "a1 passes: AWL 1" },
	{ OP_GREY, 70, "a1", "198.51.100", .age = 70, .state = "passed", .what = "a1 again: a triplet counts once" },
	{ OP_GREY, 60, "a2", "198.51.100", .age = 60, .state = "first", .what = "a2 passes: AWL 2" },
	{ OP_GREY, 61, "b1", "198.51.100", .grey = 1, .remaining = 60,
	  .state = "new", .what = "two passes do not whitelist" },
	{ OP_GREY, 61, "a3", "198.51.100", .age = 61, .state = "first", .what = "a3 passes: AWL 3" },
	{ OP_GREY, 62, "b2", "198.51.100", .awl = 1, .state = "awl", .what = "whitelisted network, new triplet" },
	{ OP_GREY, 62, "b1", "198.51.100", .awl = 1, .state = "awl", .what = "whitelisted network, waiting triplet" },
	{ OP_GREY, 62, "c1", "203.0.113", .grey = 1, .remaining = 60, .state = "new", .what = "other network" },
	{ OP_GREY, 62, "c2", "198.51.100", .grey = 1, .remaining = 60, .p = &P_NOAWL,
	  .state = "new", .what = "awl=0 ignores the whitelist" },
	{ OP_LIST, 62,
	  .listing = "a:198.51.100 n=3 f=60 l=62|g:a1 p=1 f=0 l=70|g:a2 p=1 f=0 l=60|"
		     "g:a3 p=1 f=0 l=61|g:b1 p=0 f=61 l=61|g:c1 p=0 f=62 l=62|"
		     "g:c2 p=0 f=62 l=62",
	  .what = "listing" },
	{ OP_GREY, 3661, "b3", "198.51.100", .awl = 1, .state = "awl", .what = "AWL lives expire from its last use" },
	{ OP_GREY, 7261, "b4", "198.51.100", .grey = 1, .remaining = 60,
	  .state = "new", .what = "AWL entry expired" },
};

/* A refused event is not recorded (the quota is not used up by what it
 * refuses), in both logs. */
static const struct step rate_steps[] = {
	{ OP_RATE, 0, "k1", .limit = 3, .window = 60, .count = 1, .what = "1st" },
	{ OP_RATE, 1, "k1", .limit = 3, .window = 60, .count = 2, .what = "2nd" },
	{ OP_RATE, 2, "k1", .limit = 3, .window = 60, .count = 3, .what = "3rd: at the limit" },
	{ OP_RATE, 3, "k1", .limit = 3, .window = 60, .count = 4, .over = 1, .what = "past it" },
	{ OP_RATE, 4, "k1", .limit = 3, .window = 60, .count = 4, .over = 1,
	  .what = "refused events are not recorded: still limit + 1" },
	{ OP_RATE, 4, "k2", .limit = 3, .window = 60, .count = 1, .what = "another key" },
	{ OP_RATE, 60, "k1", .limit = 3, .window = 60, .count = 3,
	  .what = "window slides: 0 out, 1,2 in, this one recorded" },
	{ OP_RATE, 61, "k1", .limit = 3, .window = 60, .count = 3, .what = "1 out: 2,60 and this" },
	{ OP_RATE, 62, "k1", .limit = 3, .window = 60, .count = 3, .what = "2 out: 60,61 and this" },
	{ OP_RATE, 63, "k1", .limit = 3, .window = 60, .count = 4, .over = 1,
	  .what = "60,61,62 in: full again" },
	{ OP_RATE, 200, "k1", .limit = 3, .window = 60, .count = 1, .what = "window empty" },
	{ OP_RATE, 200, "k3", .limit = 1, .window = 10, .count = 1, .what = "limit 1" },
	{ OP_RATE, 200, "k3", .limit = 1, .window = 10, .count = 2, .over = 1, .what = "limit 1 over" },
	{ OP_RATE, 210, "k3", .limit = 1, .window = 10, .count = 1, .what = "10 s later: out" },
	/* the slotted log, a window of 60 s: slots of 1 s, exact */
	{ OP_RATE, 0, "s1", .slotted = 1, .amount = 10, .limit = 100, .window = 60, .count = 10,
	  .what = "recipients: 10" },
	{ OP_RATE, 0, "s1", .slotted = 1, .amount = 50, .limit = 100, .window = 60, .count = 60,
	  .what = "50 more in the same second" },
	{ OP_RATE, 5, "s1", .slotted = 1, .amount = 41, .limit = 100, .window = 60, .count = 101,
	  .over = 1, .what = "41 more would pass 100: refused, not recorded" },
	{ OP_RATE, 5, "s1", .slotted = 1, .amount = 40, .limit = 100, .window = 60, .count = 100,
	  .what = "40 fit exactly" },
	{ OP_RATE, 6, "s1", .slotted = 1, .amount = 0, .limit = 100, .window = 60, .count = 100,
	  .what = "amount 0 at the limit: not over" },
	{ OP_RATE, 6, "s1", .slotted = 1, .amount = 1, .limit = 100, .window = 60, .count = 101,
	  .over = 1, .what = "one more is over" },
	{ OP_RATE, 60, "s1", .slotted = 1, .amount = 1, .limit = 100, .window = 60, .count = 41,
	  .what = "second 0 left the window" },
	{ OP_RATE, 65, "s1", .slotted = 1, .amount = 99, .limit = 100, .window = 60, .count = 100,
	  .what = "second 5 left too" },
	/* bytes, 50 MiB a day: slots of 720 s, dated at their last second
	 * (T0 % 720 == 80: T0's slot is dated T0 + 639) */
	{ OP_RATE, 0, "s2", .slotted = 1, .amount = 20971520, .limit = 52428800, .window = 86400,
	  .count = 20971520, .what = "bytes: 20 MiB" },
	{ OP_RATE, 100, "s2", .slotted = 1, .amount = 20971520, .limit = 52428800, .window = 86400,
	  .count = 41943040, .what = "40 MiB, one slot" },
	{ OP_RATE, 700, "s2", .slotted = 1, .amount = 20971520, .limit = 52428800,
	  .window = 86400, .count = 62914560, .over = 1, .what = "60 MiB: refused" },
	{ OP_RATE, 700, "s2", .slotted = 1, .amount = 10485760, .limit = 52428800,
	  .window = 86400, .count = 52428800, .what = "10 MiB fit exactly (next slot)" },
	{ OP_RATE, 86400, "s2", .slotted = 1, .amount = 1, .limit = 52428800, .window = 86400,
	  .count = 52428801, .over = 1,
	  .what = "a day after the first: its slot still counts (late by 639 s at most)" },
	{ OP_RATE, 87039, "s2", .slotted = 1, .amount = 41943040, .limit = 52428800,
	  .window = 86400, .count = 52428800, .what = "the first slot has gone" },
	{ OP_RATE, 87800, "s2", .slotted = 1, .amount = 10485760, .limit = 52428800,
	  .window = 86400, .count = 52428800, .what = "the second slot has gone" },
	{ OP_RATE, 87800, "s2", .slotted = 1, .amount = 1, .limit = 52428800, .window = 86400,
	  .count = 52428801, .over = 1, .what = "full again" },
	{ OP_RATE, 0, "s3", .slotted = 1, .amount = 101, .limit = 100, .window = 60, .count = 101,
	  .over = 1, .what = "one amount over the limit on an empty key" },
	{ OP_RATE, 1, "s3", .slotted = 1, .amount = 100, .limit = 100, .window = 60,
	  .count = 100, .what = "it was not recorded" },
};

static const struct step edit_steps[] = {
	{ OP_GREY, 0, "e1", "n7", .grey = 1, .remaining = 60, .state = "new", .what = "e1 waits" },
	{ OP_PASS, 0, "e2", .changed = 1, .what = "pass e2" },
	{ OP_WHITELIST, 0, "n9", .changed = 1, .what = "whitelist n9" },
	{ OP_WHITELIST, 0, "n8", .changed = 1, .p = &P_NOAWL, .what = "whitelist n8, awl 0" },
	{ OP_LIST, 10,
	  .listing = "a:n8 n=1 f=0 l=0|a:n9 n=3 f=0 l=0|g:e1 p=0 f=0 l=0|g:e2 p=1 f=0 l=0",
	  .what = "listing" },
	{ OP_GREY, 10, "x1", "n9", .awl = 1, .state = "awl", .what = "whitelisted by hand" },
	{ OP_GREY, 10, "x1", "n8", .awl = 1, .p = &(struct grey_params){ 60, 3600, 600, 1 },
	  .state = "awl", .what = "whitelisted with awl 0: count 1" },
	{ OP_GREY, 10, "e2", "n7", .age = 10, .state = "passed", .what = "passed by hand" },
	{ OP_FORGET, 20, "e1", .changed = 1, .what = "forget e1" },
	{ OP_FORGET, 20, "n8", .changed = 1, .what = "forget n8" },
	{ OP_FORGET, 20, "nothing", .changed = 0, .what = "forget what is not there" },
	{ OP_LIST, 20, .listing = "a:n9 n=3 f=0 l=10|g:e2 p=1 f=0 l=10", .what = "after forget" },
	{ OP_RATE, 20, "k", .limit = 1, .window = 60, .count = 1, .what = "a rate counter" },
	{ OP_FLUSH, 30, .changed = 2, .what = "flush" },
	{ OP_LIST, 30, .listing = "", .what = "flushed" },
	{ OP_RATE, 30, "k", .limit = 1, .window = 60, .count = 2, .over = 1,
	  .what = "flush keeps rate counters" },
	{ OP_GREY, 30, "e2", "n7", .grey = 1, .remaining = 60, .state = "new", .what = "flushed triplet restarts" },
	{ OP_LIST, 30, .listing = "g:e2 p=0 f=30 l=30", .what = "restarted" },
	{ OP_LIST, 5000, .listing = "", .what = "what expired is not listed" },
};

static void run_steps(struct fix *f, const char *name, const struct step *steps, size_t n)
{
	const char *be = f->redis ? "redis" : "memory";
	for (size_t i = 0; i < n; i++) {
		const struct step *st = &steps[i];
		const struct grey_params *p = st->p ? st->p : &P;
		time_t now = T0 + st->t;
		struct rec r = { 0 };
		switch (st->op) {
		case OP_GREY: {
			struct grey_query q = { .triplet = st->key, .triplet_len = strlen(st->key),
						.net = st->net, .net_len = strlen(st->net),
						.now = now, .p = *p };
			store_grey(f->s, &q, grey_done, &r);
			break;
		}
		case OP_RATE: {
			struct rate_query q = { .key = st->key, .key_len = strlen(st->key),
						.limit = st->limit, .window = st->window, .now = now,
						.slotted = st->slotted != 0,
						.amount = st->slotted ? st->amount : 1 };
			store_rate(f->s, &q, rate_done, &r);
			break;
		}
		case OP_WHITELIST:
		case OP_PASS:
		case OP_FORGET:
		case OP_FLUSH: {
			static const enum store_edit ed[] = { [OP_WHITELIST] = STORE_WHITELIST,
							      [OP_PASS] = STORE_PASS,
							      [OP_FORGET] = STORE_FORGET,
							      [OP_FLUSH] = STORE_FLUSH };
			store_edit(f->s, ed[st->op], st->key, now, p, edit_done, &r);
			break;
		}
		case OP_LIST:
			store_list(f->s, now, list_done, &r);
			break;
		}
		ck_assert_msg(run_until(f->base, &r.calls, 1, 5000), "%s %s step %zu (%s): no answer",
			      be, name, i, st->what);
		ck_assert_msg(r.st == STORE_OK, "%s %s step %zu (%s): STORE_FAIL", be, name, i,
			      st->what);
		switch (st->op) {
		case OP_GREY:
			ck_assert_msg(r.g.greylisted == (st->grey != 0) && r.g.awl == (st->awl != 0) &&
					      (!st->grey || r.g.remaining == st->remaining) &&
					      r.g.age == st->age,
				      "%s %s step %zu (%s): got greylisted=%d awl=%d remaining=%u "
				      "age=%u, want greylisted=%d awl=%d remaining=%u age=%u",
				      be, name, i, st->what, r.g.greylisted, r.g.awl, r.g.remaining,
				      r.g.age, st->grey, st->awl, st->remaining, st->age);
			ck_assert_msg(st->state, "%s step %zu (%s): no state in the table", name, i,
				      st->what);
			ck_assert_msg((unsigned)r.g.state < ARRAY_LEN(grey_state_names) &&
					      strcmp(grey_state_names[r.g.state], st->state) == 0,
				      "%s %s step %zu (%s): got state %d (%s), want %s", be, name, i,
				      st->what, (int)r.g.state,
				      (unsigned)r.g.state < ARRAY_LEN(grey_state_names)
					      ? grey_state_names[r.g.state] : "?",
				      st->state);
			break;
		case OP_RATE:
			ck_assert_msg(r.r.count == st->count && r.r.over == (st->over != 0),
				      "%s %s step %zu (%s): got count=%llu over=%d, want count=%llu "
				      "over=%d", be, name, i, st->what,
				      (unsigned long long)r.r.count, r.r.over, st->count, st->over);
			break;
		case OP_LIST: {
			char *got = rec_listing(&r);
			ck_assert_msg(strcmp(got, st->listing) == 0,
				      "%s %s step %zu (%s):\n got  %s\n want %s", be, name, i,
				      st->what, got, st->listing);
			free(got);
			rec_free(&r);
			break;
		}
		default:
			ck_assert_msg(r.changed == st->changed,
				      "%s %s step %zu (%s): got changed=%lu, want %lu", be, name, i,
				      st->what, r.changed, st->changed);
			break;
		}
	}
}

#define TABLE_TEST(name)                                                         \
	START_TEST(test_##name)                                                  \
	{                                                                        \
		struct fix f;                                                    \
		fix_open(&f, _i == 1);                                           \
		run_steps(&f, #name, name##_steps, ARRAY_LEN(name##_steps));     \
		fix_close(&f);                                                   \
	}                                                                        \
	END_TEST

/*
 * The slotted log against a model of what store.h says it does (each
 * recorded amount counts while its slot's last second + window > now;
 * an amount is recorded when the sum stays within the limit), over three
 * windows of irregular traffic: more slots than the first allocation,
 * every slot of a window live at once, refusals, zeros. Both stores.
 */
START_TEST(test_rate_slotted_model)
{
	struct fix f;
	fix_open(&f, _i == 1);
	const char *be = f.redis ? "redis" : "memory";
	enum { WINDOW = 7200, EVENTS = 900 };          /* slots of 60 s */
	static struct {
		uint64_t t, amount;
	} rec[EVENTS];
	size_t nrec = 0;
	uint64_t seed = 12345, t = T0;
	for (int i = 0; i < EVENTS; i++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		t += (seed >> 33) % 61;                  /* 0 to 60 s apart */
		uint64_t amount = (seed >> 20) % 9;      /* 0 to 8 recipients */
		uint64_t limit = 400;
		uint64_t sum = 0;
		for (size_t k = 0; k < nrec; k++)
			if (rec[k].t + WINDOW > t)
				sum += rec[k].amount;
		struct rate_query q = { .key = "model", .key_len = 5, .limit = limit,
					.window = WINDOW, .slotted = true, .amount = amount,
					.now = (time_t)t };
		struct rec r = { 0 };
		store_rate(f.s, &q, rate_done, &r);
		ck_assert(run_until(f.base, &r.calls, 1, 5000) && r.st == STORE_OK);
		bool over = sum + amount > limit;
		ck_assert_msg(r.r.count == sum + amount && r.r.over == over,
			      "%s event %d at +%llu, amount %llu: got count=%llu over=%d, want "
			      "%llu %d", be, i, (unsigned long long)(t - T0),
			      (unsigned long long)amount, (unsigned long long)r.r.count, r.r.over,
			      (unsigned long long)(sum + amount), over);
		if (!over && amount)
		{
			rec[nrec].t = rate_slot_time(t, WINDOW);
			rec[nrec++].amount = amount;
		}
	}
	fix_close(&f);
}
END_TEST

TABLE_TEST(greylist)
TABLE_TEST(awl)
TABLE_TEST(rate)
TABLE_TEST(edit)

/* ---- Redis only ------------------------------------------------------------------ */

/* stderr into a file while a test watches the log. */
struct capture {
	int saved;
	char path[64];
};

static void capture_begin(struct capture *c)
{
	fflush(stderr);
	snprintf(c->path, sizeof c->path, "/tmp/mxacl-log-XXXXXX");
	int fd = mkstemp(c->path);
	ck_assert(fd >= 0);
	c->saved = dup(2);
	dup2(fd, 2);
	close(fd);
}

static char *capture_end(struct capture *c)
{
	fflush(stderr);
	dup2(c->saved, 2);
	close(c->saved);
	FILE *f = fopen(c->path, "r");
	ck_assert(f != NULL);
	struct strbuf b;
	sb_init(&b);
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		sb_add(&b, buf, n);
	fclose(f);
	unlink(c->path);
	return b.s;
}

static int count_of(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static struct rec grey_once(struct event_base *base, struct store *s, const char *trip, time_t now,
			    int max_ms)
{
	struct rec r = { 0 };
	struct grey_query q = { .triplet = trip, .triplet_len = strlen(trip), .net = "n",
				.net_len = 1, .now = now, .p = P };
	store_grey(s, &q, grey_done, &r);
	ck_assert_msg(run_until(base, &r.calls, 1, max_ms), "no answer within %d ms", max_ms);
	return r;
}

START_TEST(test_url_errors)
{
	static const struct {
		const char *url, *want;
	} bad[] = {
		{ "redis://", "no host" },
		{ "redis://127.0.0.1:0", "bad port" },
		{ "redis://127.0.0.1:99999", "bad port" },
		{ "redis://127.0.0.1:x", "bad port" },
		{ "redis://127.0.0.1:6379/x", "bad database" },
		{ "redis://127.0.0.1:6379?foo=1", "unknown option 'foo'" },
		{ "redis://127.0.0.1:6379?timeout=0", "bad timeout" },
		{ "redis://127.0.0.1:6379?timeout=100000", "bad timeout" },
		{ "redis://127.0.0.1:6379/1?db=2", "given twice" },
		{ "redis://sekrit@127.0.0.1:6379", ":PASSWORD@" },
		{ "redis://:sekrit%zz@127.0.0.1:6379", "bad %-escape in the password" },
		{ "redis://:@127.0.0.1:6379", "empty password" },
		{ "redis://[::1:6379", "no ']'" },
		{ "redis+unix://host/tmp/x.sock", "takes no host" },
		{ "redis+unix://", "no socket path" },
		{ "redis+unix:///", "no socket path" },
		{ "redis+unix:///tmp/x.sock?db=z", "bad database" },
		{ "rediss://127.0.0.1:6379", "unknown store" },
		{ "redis-sentinel://127.0.0.1:1", "no master name" },
		{ "redis-sentinel://127.0.0.1:1/", "no master name" },
		{ "redis-sentinel://127.0.0.1:1,/m", "no host" },
		{ "redis-sentinel://127.0.0.1:1/m/x", "bad database" },
		{ "redis-sentinel://127.0.0.1:1/m?foo=1", "sentinel_password=" },
		{ "redis-sentinel://127.0.0.1:1/m?sentinel_password=", "empty sentinel_password" },
		{ "redis-sentinel://127.0.0.1:1/m?sentinel_user=u", "needs sentinel_password" },
		/* nothing listens: the start-up check names each sentinel, never a
		 * password */
		{ "redis-sentinel://:sekrit@127.0.0.1:1,127.0.0.1:2/m?sentinel_password=sekrit",
		  "no sentinel answers (127.0.0.1:1: Connection refused; 127.0.0.1:2: " },
		{ "redis-cluster://127.0.0.1:1/0", "takes no path" },
		{ "redis-cluster://127.0.0.1:1?db=1", "only database 0" },
		{ "redis-cluster://:sekrit@127.0.0.1:1", "no cluster seed answers (127.0.0.1:1: " },
	};
	struct event_base *base = event_base_new();
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		char *err = NULL;
		struct store *s = store_open(base, bad[i].url, &err);
		ck_assert_msg(s == NULL, "%s: opened, want an error", bad[i].url);
		ck_assert_msg(err && strstr(err, bad[i].want), "%s: got error '%s', want '%s'",
			      bad[i].url, err ? err : "(none)", bad[i].want);
		ck_assert_msg(!strstr(err, "sekrit"), "%s: the error shows the password: %s",
			      bad[i].url, err);
		free(err);
	}
	/* good ones open (nothing listens: the store retries on its own) */
	int port = free_port();
	char *good[] = {
		xasprintf("redis://127.0.0.1:%d", port),
		xasprintf("redis://:pw@127.0.0.1:%d/2?prefix=a%%3Ab&timeout=50", port),
		xasprintf("redis://user:pw@localhost:%d?db=3", port),
		xasprintf("redis://[::1]:%d/0", port),
		xasprintf("redis+unix:///nonexistent/redis.sock?db=1&prefix=p:"),
		xasprintf("redis+unix://:pw@/nonexistent/redis.sock"),
	};
	struct capture cap;
	capture_begin(&cap);
	for (size_t i = 0; i < ARRAY_LEN(good); i++) {
		char *err = NULL;
		struct store *s = store_open(base, good[i], &err);
		ck_assert_msg(s != NULL, "%s: %s", good[i], err ? err : "?");
		store_close(s);
		free(good[i]);
	}
	char *log = capture_end(&cap);
	ck_assert_msg(!strstr(log, ":pw@") && !strstr(log, "user:pw"), "password in the log:\n%s",
		      log);
	free(log);
	event_base_free(base);
}
END_TEST

START_TEST(test_down_fails_fast)
{
	signal(SIGPIPE, SIG_IGN);
	struct event_base *base = event_base_new();
	char *url = xasprintf("redis://127.0.0.1:%d", free_port());
	struct capture cap;
	capture_begin(&cap);
	struct store *s = open_ok(base, url);
	for (int i = 0; i < 5; i++) {
		double t = now_s();
		struct rec r = grey_once(base, s, "t", T0, 2000);
		ck_assert_int_eq(r.st, STORE_FAIL);
		ck_assert_int_eq(r.calls, 1);
		ck_assert_msg(now_s() - t < 1.0, "a store that is down took %.3f s to fail",
			      now_s() - t);
	}
	run_for(base, 400);               /* a few reconnect attempts */
	store_close(s);
	char *log = capture_end(&cap);
	ck_assert_msg(count_of(log, "cannot connect") == 1,
		      "want one 'cannot connect' line, got:\n%s", log);
	ck_assert_msg(strstr(log, "greylist and rate acls answer as temporary failures"),
		      "log: %s", log);
	free(log);
	free(url);
	event_base_free(base);
}
END_TEST

START_TEST(test_kill_and_restart)
{
	struct fix f;
	fix_open(&f, true);
	struct capture cap;
	capture_begin(&cap);
	ck_assert_int_eq(grey_once(f.base, f.s, "t", T0, 2000).st, STORE_OK);
	rsrv_signal(&f.srv, SIGKILL);
	/* the first call may go out before the loop sees the EOF: either way it fails */
	for (int i = 0; i < 3; i++) {
		struct rec r = grey_once(f.base, f.s, "t", T0 + 1, 2000);
		ck_assert_int_eq(r.st, STORE_FAIL);
	}
	run_for(f.base, 300);
	ck_assert_int_eq(grey_once(f.base, f.s, "t", T0 + 1, 2000).st, STORE_FAIL);
	rsrv_spawn(&f.srv);               /* same port */
	ck_assert_msg(wait_ready(f.base, f.s, 10000), "no reconnect within 10 s");
	struct rec r = grey_once(f.base, f.s, "t2", T0, 2000);
	ck_assert(r.st == STORE_OK && r.g.greylisted);
	char *log = capture_end(&cap);
	ck_assert_msg(count_of(log, "connection lost") == 1 && count_of(log, "connected again") == 1,
		      "want one 'connection lost' and one 'connected again', got:\n%s", log);
	free(log);
	fix_close(&f);
}
END_TEST

START_TEST(test_stalled_server_times_out)
{
	signal(SIGPIPE, SIG_IGN);
	struct event_base *base = event_base_new();
	struct rsrv srv;
	rsrv_start(&srv, false, NULL);
	char *url = rsrv_url(&srv, NULL, "?timeout=200");
	struct store *s = open_ok(base, url);
	ck_assert(wait_ready(base, s, 5000));
	struct capture cap;
	capture_begin(&cap);
	rsrv_signal(&srv, SIGSTOP);
	static struct rec r[3];
	memset(r, 0, sizeof r);
	struct grey_query q = { .triplet = "t", .triplet_len = 1, .net = "n", .net_len = 1,
				.now = T0, .p = P };
	double t = now_s();
	for (int i = 0; i < 3; i++)
		store_grey(s, &q, grey_done, &r[i]);
	ck_assert(run_until(base, &r[2].calls, 1, 5000));
	double took = now_s() - t;
	for (int i = 0; i < 3; i++)
		ck_assert(r[i].calls == 1 && r[i].st == STORE_FAIL);
	ck_assert_msg(took >= 0.15 && took < 3.0, "timeout 200 ms answered after %.3f s", took);
	/* dropped: the next call fails at once (or within one timeout while reconnecting) */
	t = now_s();
	ck_assert_int_eq(grey_once(base, s, "t", T0, 2000).st, STORE_FAIL);
	ck_assert(now_s() - t < 1.5);
	rsrv_signal(&srv, SIGCONT);
	ck_assert_msg(wait_ready(base, s, 10000), "no recovery after SIGCONT");
	run_for(base, 300);               /* late replies, if any, are ignored */
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(r[i].calls, 1);
	char *log = capture_end(&cap);
	ck_assert_msg(count_of(log, "connection lost: no reply within 200 ms") == 1 &&
			      count_of(log, "connected again") == 1,
		      "log:\n%s", log);
	free(log);
	store_close(s);
	free(url);
	rsrv_stop(&srv);
	event_base_free(base);
}
END_TEST

START_TEST(test_auth_db_prefix)
{
	signal(SIGPIPE, SIG_IGN);
	struct event_base *base = event_base_new();
	struct rsrv srv;
	rsrv_start(&srv, false, "pw-XYZZY@1");
	char *url = rsrv_url(&srv, ":pw-XYZZY%401@", "/3?prefix=t%3Ax:");
	struct store *s = open_ok(base, url);
	ck_assert(wait_ready(base, s, 5000));
	struct rec r = grey_once(base, s, "trip", T0, 2000);
	ck_assert(r.st == STORE_OK && r.g.greylisted);
	ck_assert_int_eq(rsrv_int(&srv, 3, "EXISTS %s", "t:x:g:trip"), 1);
	ck_assert_int_eq(rsrv_int(&srv, 0, "EXISTS %s", "t:x:g:trip"), 0);
	long long ttl = rsrv_int(&srv, 3, "TTL %s", "t:x:g:trip");
	ck_assert_msg(ttl > 600 && ttl <= 660, "waiting triplet TTL %lld, want retry_window + delay",
		      ttl);
	struct rate_query rq = { .key = "rk", .key_len = 2, .limit = 5, .window = 90, .amount = 1,
				 .now = T0 };
	struct rec rr = { 0 };
	store_rate(s, &rq, rate_done, &rr);
	ck_assert(run_until(base, &rr.calls, 1, 2000) && rr.st == STORE_OK && rr.r.count == 1);
	ttl = rsrv_int(&srv, 3, "TTL %s", "t:x:r:rk");
	ck_assert_msg(ttl > 0 && ttl <= 90, "rate TTL %lld, want the window", ttl);
	/* the list and flush see only our prefix */
	freeReplyObject(rsrv_cmd(&srv, 3, "HSET %s first 1", "other:g:x"));
	struct rec l = { 0 };
	store_list(s, T0, list_done, &l);
	ck_assert(run_until(base, &l.calls, 1, 2000));
	ck_assert_int_eq(l.entries, 2);   /* trip and the probe */
	rec_free(&l);
	store_close(s);
	free(url);

	/* a wrong password: fails, logged once, never shown */
	struct capture cap;
	capture_begin(&cap);
	url = rsrv_url(&srv, ":wrong-QWERTY@", NULL);
	s = open_ok(base, url);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(grey_once(base, s, "t", T0, 2000).st, STORE_FAIL);
		run_for(base, 150);
	}
	store_close(s);
	char *log = capture_end(&cap);
	ck_assert_msg(count_of(log, "cannot connect: AUTH: ") == 1, "log:\n%s", log);
	ck_assert_msg(!strstr(log, "QWERTY") && !strstr(log, "XYZZY"), "password in log:\n%s", log);
	free(log);
	free(url);
	rsrv_stop(&srv);
	event_base_free(base);
}
END_TEST

START_TEST(test_unix_socket)
{
	signal(SIGPIPE, SIG_IGN);
	struct event_base *base = event_base_new();
	struct rsrv srv;
	rsrv_start(&srv, true, NULL);
	char *url = rsrv_url(&srv, NULL, "?db=2");
	struct store *s = open_ok(base, url);
	ck_assert(wait_ready(base, s, 5000));
	ck_assert(grey_once(base, s, "u", T0, 2000).g.greylisted);
	ck_assert_int_eq(rsrv_int(&srv, 2, "EXISTS %s", "mxacl:g:u"), 1);
	rsrv_signal(&srv, SIGKILL);
	unlink(srv.sock);
	struct capture cap;
	capture_begin(&cap);
	run_for(base, 200);
	ck_assert_int_eq(grey_once(base, s, "u", T0, 2000).st, STORE_FAIL);
	rsrv_spawn(&srv);
	ck_assert_msg(wait_ready(base, s, 10000), "no reconnect over the socket");
	free(capture_end(&cap));
	store_close(s);
	free(url);
	rsrv_stop(&srv);
	event_base_free(base);
}
END_TEST

START_TEST(test_noscript_recovers)
{
	struct fix f;
	fix_open(&f, true);
	freeReplyObject(rsrv_cmd(&f.srv, 0, "SCRIPT FLUSH"));
	struct rec r = grey_once(f.base, f.s, "ns", T0, 2000);
	ck_assert(r.st == STORE_OK && r.g.greylisted);
	r = grey_once(f.base, f.s, "ns", T0 + 60, 2000);
	ck_assert(r.st == STORE_OK && !r.g.greylisted && r.g.age == 60);
	freeReplyObject(rsrv_cmd(&f.srv, 0, "SCRIPT FLUSH"));
	struct rate_query q = { .key = "k", .key_len = 1, .limit = 1, .window = 60, .amount = 1,
				.now = T0 };
	struct rec rr = { 0 };
	store_rate(f.s, &q, rate_done, &rr);
	ck_assert(run_until(f.base, &rr.calls, 1, 2000) && rr.st == STORE_OK && rr.r.count == 1);
	/* the slotted log's script too (its body is the one sent again) */
	freeReplyObject(rsrv_cmd(&f.srv, 0, "SCRIPT FLUSH"));
	struct rate_query sq = { .key = "k", .key_len = 1, .limit = 100, .window = 60,
				 .slotted = true, .amount = 60, .now = T0 };
	struct rec sr = { 0 };
	store_rate(f.s, &sq, rate_done, &sr);
	ck_assert(run_until(f.base, &sr.calls, 1, 2000) && sr.st == STORE_OK && sr.r.count == 60);
	sr = (struct rec){ 0 };
	store_rate(f.s, &sq, rate_done, &sr);
	ck_assert(run_until(f.base, &sr.calls, 1, 2000) && sr.st == STORE_OK && sr.r.over &&
		  sr.r.count == 120);
	fix_close(&f);
}
END_TEST

/* An error reply fails that request only. Errors are logged per outage: a
 * success between them does not end it (at maxmemory, failing and working
 * commands alternate: issue 9), so one line for all four. */
START_TEST(test_error_reply_fails_one)
{
	struct fix f;
	fix_open(&f, true);
	freeReplyObject(rsrv_cmd(&f.srv, 0, "SET %s x", "mxacl:g:wrongtype"));
	struct capture cap;
	capture_begin(&cap);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(grey_once(f.base, f.s, "wrongtype", T0, 2000).st, STORE_FAIL);
	struct rec r = grey_once(f.base, f.s, "fine", T0, 2000);
	ck_assert(r.st == STORE_OK && r.g.greylisted);
	ck_assert_int_eq(grey_once(f.base, f.s, "wrongtype", T0, 2000).st, STORE_FAIL);
	char *log = capture_end(&cap);
	ck_assert_msg(count_of(log, "command failed: ") == 1 &&
			      count_of(log, "WRONGTYPE") == 1 &&
			      count_of(log, "commands succeed again") == 0 &&
			      count_of(log, "connection lost") == 0,
		      "log:\n%s", log);
	free(log);
	fix_close(&f);
}
END_TEST

/* Two gateways, one Redis: the check-and-update is atomic. */
START_TEST(test_two_gateways_race)
{
	struct fix f;
	fix_open(&f, true);
	char *url = rsrv_url(&f.srv, NULL, NULL);
	struct store *s2 = open_ok(f.base, url);
	ck_assert(wait_ready(f.base, s2, 5000));
	struct store *gw[2] = { f.s, s2 };
	enum { N = 40 };
	static struct rec r[N];
	static const struct grey_params pa = { 60, 3600, 600, 2 };

	/* first seen through both at once: all wait */
	memset(r, 0, sizeof r);
	int done = 0;
	struct grey_query q = { .triplet = "race", .triplet_len = 4, .net = "198.51.100",
				.net_len = 10, .now = T0, .p = pa };
	for (int i = 0; i < N; i++)
		store_grey(gw[i % 2], &q, grey_done, &r[i]);
	for (int i = 0; i < N; i++) {
		ck_assert(run_until(f.base, &r[i].calls, 1, 5000));
		ck_assert(r[i].st == STORE_OK && r[i].g.greylisted);
	}
	/* after the delay, all pass through both, and the AWL counts one pass */
	memset(r, 0, sizeof r);
	q.now = T0 + 60;
	for (int i = 0; i < N; i++)
		store_grey(gw[i % 2], &q, grey_done, &r[i]);
	for (int i = 0; i < N; i++) {
		ck_assert(run_until(f.base, &r[i].calls, 1, 5000));
		ck_assert(r[i].st == STORE_OK && !r[i].g.greylisted && !r[i].g.awl);
	}
	redisReply *rp = rsrv_cmd(&f.srv, 0, "HGET %s count", "mxacl:a:198.51.100");
	ck_assert_msg(rp->type == REDIS_REPLY_STRING && strcmp(rp->str, "1") == 0,
		      "AWL count after one triplet passed %d times: %s", N,
		      rp->type == REDIS_REPLY_STRING ? rp->str : "(none)");
	freeReplyObject(rp);

	/* a rate limit counts events from both */
	memset(r, 0, sizeof r);
	struct rate_query rq = { .key = "shared", .key_len = 6, .limit = 7, .window = 60,
				 .amount = 1, .now = T0 };
	for (int i = 0; i < N; i++)
		store_rate(gw[i % 2], &rq, rate_done, &r[i]);
	int under = 0;
	for (int i = 0; i < N; i++) {
		ck_assert(run_until(f.base, &r[i].calls, 1, 5000));
		ck_assert(r[i].st == STORE_OK);
		under += !r[i].r.over;
		done++;
	}
	ck_assert_msg(under == 7, "%d of %d events under a limit of 7", under, done);
	store_close(s2);
	free(url);
	fix_close(&f);
}
END_TEST

/* Two gateways, one Redis: 30 messages of 10 recipients each against a
 * limit of 100 recipients: exactly 10 pass, and the refused ones are not
 * counted (a message of 0 recipients still passes at the end). */
START_TEST(test_two_gateways_race_recipients)
{
	struct fix f;
	fix_open(&f, true);
	char *url = rsrv_url(&f.srv, NULL, NULL);
	struct store *s2 = open_ok(f.base, url);
	ck_assert(wait_ready(f.base, s2, 5000));
	struct store *gw[2] = { f.s, s2 };
	enum { N = 30 };
	struct rec r[N];
	memset(r, 0, sizeof r);
	struct rate_query rq = { .key = "quota", .key_len = 5, .limit = 100, .window = 86400,
				 .slotted = true, .amount = 10, .now = T0 };
	for (int i = 0; i < N; i++)
		store_rate(gw[i % 2], &rq, rate_done, &r[i]);
	int under = 0;
	for (int i = 0; i < N; i++) {
		ck_assert(run_until(f.base, &r[i].calls, 1, 5000));
		ck_assert(r[i].st == STORE_OK);
		under += !r[i].r.over;
		ck_assert_msg(r[i].r.over ? r[i].r.count == 110 : r[i].r.count <= 100,
			      "event %d: count %llu over %d", i, (unsigned long long)r[i].r.count,
			      r[i].r.over);
	}
	ck_assert_msg(under == 10, "%d of %d messages of 10 under a limit of 100", under, N);
	struct rec z = { 0 };
	rq.amount = 0;
	store_rate(s2, &rq, rate_done, &z);
	ck_assert(run_until(f.base, &z.calls, 1, 5000) && z.st == STORE_OK);
	ck_assert_msg(z.r.count == 100 && !z.r.over, "0 recipients: count %llu over %d",
		      (unsigned long long)z.r.count, z.r.over);
	redisReply *rp = rsrv_cmd(&f.srv, 0, "HLEN %s", "mxacl:q:quota");
	ck_assert_msg(rp->type == REDIS_REPLY_INTEGER && rp->integer == 1,
		      "one slot in the hash, got %lld", rp->integer);
	freeReplyObject(rp);
	rp = rsrv_cmd(&f.srv, 0, "TTL %s", "mxacl:q:quota");
	ck_assert_msg(rp->type == REDIS_REPLY_INTEGER && rp->integer > 86400 &&
			      rp->integer < 86400 + 720,
		      "TTL %lld, want a day and the rest of the slot", rp->integer);
	freeReplyObject(rp);
	store_close(s2);
	free(url);
	fix_close(&f);
}
END_TEST

/* More keys than one SCAN step returns. */
START_TEST(test_list_and_flush_many)
{
	struct fix f;
	fix_open(&f, true);
	enum { N = 2500 };
	static struct rec r[N];
	memset(r, 0, sizeof r);
	char key[32];
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof key, "t%d", i);
		struct grey_query q = { .triplet = key, .triplet_len = strlen(key), .net = "n",
					.net_len = 1, .now = T0, .p = P };
		store_grey(f.s, &q, grey_done, &r[i]);
	}
	ck_assert(run_until(f.base, &r[N - 1].calls, 1, 10000));
	for (int i = 0; i < N; i++)
		ck_assert(r[i].calls == 1 && r[i].st == STORE_OK);
	struct rec l = { 0 };
	store_list(f.s, T0, list_done, &l);
	ck_assert(run_until(f.base, &l.calls, 1, 10000));
	ck_assert(l.st == STORE_OK);
	ck_assert_int_eq(l.entries, N);
	rec_free(&l);
	struct rec e = { 0 };
	store_edit(f.s, STORE_FLUSH, NULL, T0, NULL, edit_done, &e);
	ck_assert(run_until(f.base, &e.calls, 1, 10000));
	ck_assert(e.st == STORE_OK);
	ck_assert_int_eq(e.changed, N);
	ck_assert_int_eq(rsrv_int(&f.srv, 0, "DBSIZE%s", ""), 0);
	fix_close(&f);
}
END_TEST

/* close: every pending callback once, before close returns; none after. */
START_TEST(test_close_answers_pending)
{
	struct fix f;
	fix_open(&f, true);
	enum { N = 8 };
	static struct rec r[N];
	memset(r, 0, sizeof r);
	struct grey_query q = { .triplet = "c", .triplet_len = 1, .net = "n", .net_len = 1,
				.now = T0, .p = P };
	for (int i = 0; i < N - 2; i++)
		store_grey(f.s, &q, grey_done, &r[i]);
	store_list(f.s, T0, list_done, &r[N - 2]);
	store_edit(f.s, STORE_FLUSH, NULL, T0, NULL, edit_done, &r[N - 1]);
	store_close(f.s);
	f.s = NULL;
	for (int i = 0; i < N; i++)
		ck_assert_msg(r[i].calls == 1 && r[i].st == STORE_FAIL, "request %d: %d calls, st %d",
			      i, r[i].calls, r[i].st);
	run_for(f.base, 200);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(r[i].calls, 1);

	/* closed while still connecting */
	char *url = rsrv_url(&f.srv, NULL, NULL);
	struct store *s = open_ok(f.base, url);
	memset(r, 0, sizeof r);
	for (int i = 0; i < N; i++)
		store_grey(s, &q, grey_done, &r[i]);
	store_close(s);
	run_for(f.base, 200);
	for (int i = 0; i < N; i++)
		ck_assert(r[i].calls == 1 && r[i].st == STORE_FAIL);
	free(url);
	fix_close(&f);
}
END_TEST

/* close from inside a callback: from a reply, from a timeout, from a list entry. */
START_TEST(test_close_inside_callback)
{
	struct fix f;
	fix_open(&f, true);
	enum { N = 6 };
	static struct rec r[N];
	struct grey_query q = { .triplet = "c", .triplet_len = 1, .net = "n", .net_len = 1,
				.now = T0, .p = P };
	char *url = rsrv_url(&f.srv, NULL, "?timeout=150");

	/* the first reply closes the store; the rest come from close */
	memset(r, 0, sizeof r);
	r[0].close_me = &f.s;
	for (int i = 0; i < N; i++)
		store_grey(f.s, &q, grey_done, &r[i]);
	ck_assert(run_until(f.base, &r[0].calls, 1, 2000));
	ck_assert(f.s == NULL && r[0].st == STORE_OK);
	for (int i = 1; i < N; i++)
		ck_assert_msg(r[i].calls == 1 && r[i].st == STORE_FAIL, "request %d: %d calls", i,
			      r[i].calls);
	run_for(f.base, 200);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(r[i].calls, 1);

	/* a list entry closes it */
	struct store *s = open_ok(f.base, url);
	ck_assert(wait_ready(f.base, s, 5000));
	struct rec l = { 0 };
	l.close_me = &s;
	store_list(s, T0, list_done, &l);
	ck_assert(run_until(f.base, &l.calls, 1, 2000));
	ck_assert(s == NULL && l.st == STORE_FAIL && l.entries == 1);
	rec_free(&l);

	/* a timeout answers the first, which closes the store */
	s = open_ok(f.base, url);
	ck_assert(wait_ready(f.base, s, 5000));
	struct capture cap;
	capture_begin(&cap);
	rsrv_signal(&f.srv, SIGSTOP);
	memset(r, 0, sizeof r);
	r[0].close_me = &s;
	for (int i = 0; i < N; i++)
		store_grey(s, &q, grey_done, &r[i]);
	ck_assert(run_until(f.base, &r[N - 1].calls, 1, 3000));
	ck_assert(s == NULL);
	for (int i = 0; i < N; i++)
		ck_assert(r[i].calls == 1 && r[i].st == STORE_FAIL);
	rsrv_signal(&f.srv, SIGCONT);
	run_for(f.base, 200);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(r[i].calls, 1);
	free(capture_end(&cap));

	/* the server dies; the first failure closes the store */
	s = open_ok(f.base, url);
	ck_assert(wait_ready(f.base, s, 5000));
	capture_begin(&cap);
	memset(r, 0, sizeof r);
	r[0].close_me = &s;
	for (int i = 0; i < N; i++)
		store_grey(s, &q, grey_done, &r[i]);
	rsrv_signal(&f.srv, SIGKILL);
	ck_assert(run_until(f.base, &r[N - 1].calls, 1, 3000));
	run_for(f.base, 200);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(r[i].calls, 1);
	ck_assert(s == NULL);
	free(capture_end(&cap));
	free(url);
	fix_close(&f);
}
END_TEST

/* ---- the memory store --------------------------------------------------------- */

/* A key of n bytes: a triplet-like prefix, then filler, unique per tag. */
static char *long_key(size_t n, char tag)
{
	char *k = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++)
		k[i] = (char)('a' + (i * 7 + (size_t)tag) % 26);
	if (n)
		k[0] = tag;
	k[n] = 0;
	return k;
}

/* One greylist check without the auto-whitelist (it would pass twins). */
static struct rec grey_noawl(struct fix *f, const char *trip, time_t now)
{
	struct rec r = { 0 };
	struct grey_query q = { .triplet = trip, .triplet_len = strlen(trip), .net = "n",
				.net_len = 1, .now = now, .p = P_NOAWL };
	store_grey(f->s, &q, grey_done, &r);
	ck_assert_msg(run_until(f->base, &r.calls, 1, 5000), "no answer");
	return r;
}

/* Keys at and around the old 1,024-byte cut, and up to a whole request:
 * each is found again (a triplet passes after the delay, and stays one
 * entry however often it is asked), counted by a rate limit, listed whole;
 * two keys equal in their first 1,024 bytes stay apart. Both backends. */
START_TEST(test_long_keys)
{
	static const size_t sizes[] = { 1023, 1024, 1025, 1030, 4096, 65536 };
	struct fix f;
	fix_open(&f, _i == 1);
	const char *be = _i ? "redis" : "memory";
	for (size_t k = 0; k < ARRAY_LEN(sizes); k++) {
		size_t n = sizes[k];
		char *key = long_key(n, (char)('A' + k));
		char *twin = xstrdup(key);
		twin[n - 1] = twin[n - 1] == 'z' ? 'y' : 'z';   /* same first n - 1 bytes */
		for (int t = 0; t < 4; t++) {
			struct rec r = grey_noawl(&f, key, T0 + (t ? 60 + t : 0));
			ck_assert_msg(r.st == STORE_OK && r.g.greylisted == (t == 0),
				      "%s: %zu-byte triplet, request %d at %d s: got greylisted=%d, "
				      "want %d", be, n, t + 1, t ? 60 + t : 0, r.g.greylisted, t == 0);
		}
		struct rec r = grey_noawl(&f, twin, T0 + 70);
		ck_assert_msg(r.g.greylisted && r.g.age == 0,
			      "%s: %zu-byte twin of a passed triplet: got greylisted=%d age=%u, "
			      "want a new triplet", be, n, r.g.greylisted, r.g.age);
		for (unsigned c = 1; c <= 3; c++) {
			struct rec q = { 0 };
			struct rate_query rq = { .key = key, .key_len = n, .limit = 2, .window = 3600,
						 .amount = 1, .now = T0 + 100 };
			store_rate(f.s, &rq, rate_done, &q);
			ck_assert(run_until(f.base, &q.calls, 1, 5000) && q.st == STORE_OK);
			ck_assert_msg(q.r.count == c && q.r.over == (c > 2),
				      "%s: %zu-byte rate key, event %u: got count=%llu over=%d", be,
				      n, c, (unsigned long long)q.r.count, q.r.over);
		}
		struct rec l = { 0 };
		store_list(f.s, T0 + 100, list_done, &l);
		ck_assert(run_until(f.base, &l.calls, 1, 10000) && l.st == STORE_OK);
		int want = (int)(2 * (k + 1));   /* the key and its twin per size */
		ck_assert_msg(l.entries == want, "%s: after %zu-byte keys: %d entries listed, want %d",
			      be, n, l.entries, want);
		bool whole = false;
		for (int i = 0; i < l.nlines; i++)
			whole |= strncmp(l.lines[i], "g:", 2) == 0 &&
				 strncmp(l.lines[i] + 2, key, n) == 0 && l.lines[i][2 + n] == ' ';
		ck_assert_msg(whole, "%s: the %zu-byte key is not listed whole", be, n);
		rec_free(&l);
		free(key);
		free(twin);
	}
	fix_close(&f);
}
END_TEST


/* A memory store on its own loop, for the tests below. */
static struct store *mem_open_ok(struct event_base **base)
{
	*base = event_base_new();
	return open_ok(*base, "memory");
}

/* A fixture on a new memory store and a loop of its own. */
static struct fix mem_fix(void)
{
	struct fix f = { 0 };
	f.s = mem_open_ok(&f.base);
	return f;
}

static struct store_memory_stats mem_stats(const struct store *s)
{
	struct store_memory_stats st;
	store_memory_stats(s, &st);
	return st;
}

/* Growing is incremental: the insert that crosses load factor 1 only
 * starts a second table; later operations move the buckets; every entry
 * is found at every step of the way. */
START_TEST(test_mem_growth_is_incremental)
{
	struct fix f = mem_fix();
	struct event_base *base = f.base;
	char key[32];
	size_t first = mem_stats(f.s).buckets;
	for (size_t i = 0; i < first; i++) {
		snprintf(key, sizeof key, "t%zu", i);
		ck_assert(grey_noawl(&f, key, T0).g.greylisted);
	}
	ck_assert_msg(!mem_stats(f.s).growing, "growing before load factor 1");
	ck_assert(grey_noawl(&f, "one more", T0).g.greylisted);
	struct store_memory_stats st = mem_stats(f.s);
	ck_assert_msg(st.growing && st.buckets == first * 3,
		      "after the insert past load factor 1: growing=%d buckets=%zu, want 1 and %zu",
		      st.growing, st.buckets, first * 3);
	int ops = 0;
	for (size_t i = 0; i < first; i++) {
		snprintf(key, sizeof key, "t%zu", i);
		struct rec r = grey_noawl(&f, key, T0 + 10);
		ck_assert_msg(r.g.greylisted && r.g.age == 10,
			      "%s during growth: got greylisted=%d age=%u, want the entry from T0",
			      key, r.g.greylisted, r.g.age);
		if (mem_stats(f.s).growing)
			ops++;
	}
	st = mem_stats(f.s);
	ck_assert_msg(!st.growing && st.buckets == first * 2 && st.entries == first + 1,
		      "after growth: growing=%d buckets=%zu entries=%zu", st.growing, st.buckets,
		      st.entries);
	ck_assert_msg(ops > 1, "growth finished within %d operations: not incremental", ops);
	store_close(f.s);
	event_base_free(base);
}
END_TEST

/* The sweep drops what expired and nothing else, also where a bucket's
 * earliest expiry (store_memory.c, mem_table.min) was recorded by an
 * earlier pass and entries were added or seen again since: a pass over
 * the empty table, 512 waiting triplets, a pass before they expire (all
 * stay), half of them pass (a later expiry), and a pass after the others'
 * expiry leaves exactly the passed half and the probe the passes are
 * driven by. */
START_TEST(test_mem_sweep_drops_expired)
{
	struct fix f = mem_fix();
	struct event_base *base = f.base;
	char key[32];
	size_t buckets = mem_stats(f.s).buckets, n = buckets / 2;
	for (size_t k = 0; k < buckets / 4; k++)        /* a pass over empty buckets first */
		grey_noawl(&f, "probe", T0);
	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof key, "t%zu", i);
		ck_assert(grey_noawl(&f, key, T0).g.greylisted);
	}
	for (size_t k = 0; k < buckets / 4; k++)        /* two passes of 8 buckets an op */
		grey_noawl(&f, "probe", T0 + 1);
	ck_assert_msg(mem_stats(f.s).entries == n + 1, "before any expiry: %zu entries, want %zu",
		      mem_stats(f.s).entries, n + 1);
	for (size_t i = 0; i < n / 2; i++) {
		snprintf(key, sizeof key, "t%zu", i);
		ck_assert(!grey_noawl(&f, key, T0 + P_NOAWL.delay + 1).g.greylisted);
	}
	time_t later = T0 + P_NOAWL.retry_window + P_NOAWL.delay + 40;
	for (size_t k = 0; k < buckets / 4; k++)
		grey_noawl(&f, "probe", later);
	ck_assert_msg(mem_stats(f.s).entries == n / 2 + 1,
		      "after the waiting half expired: %zu entries, want %zu (the passed half and "
		      "the probe)", mem_stats(f.s).entries, n / 2 + 1);
	for (size_t i = 0; i < n / 2; i++) {           /* the passed half is still there */
		snprintf(key, sizeof key, "t%zu", i);
		struct rec r = grey_noawl(&f, key, later);
		ck_assert_msg(!r.g.greylisted, "%s: greylisted again after the sweep", key);
	}
	store_close(f.s);
	event_base_free(base);
}
END_TEST

struct seen {
	int *count;                     /* per key index */
	int n, ends;
	enum store_status st;
};

static void seen_cb(void *arg, enum store_status st, const struct store_entry *e)
{
	struct seen *sn = arg;
	if (!e) {
		sn->ends++;
		sn->st = st;
		return;
	}
	int i;
	if (sscanf(e->key, "t%d", &i) == 1 && i >= 0 && i < sn->n)
		sn->count[i]++;
}

/* A listing in slices lists each entry that lives through it exactly
 * once, although the table grows (twice) between its slices. */
START_TEST(test_mem_list_slices_during_growth)
{
	struct fix f = mem_fix();
	struct event_base *base = f.base;
	enum { N = 3000 };
	char key[32];
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof key, "t%d", i);
		grey_noawl(&f, key, T0);
	}
	struct seen sn = { .count = xcalloc(N, sizeof(int)), .n = N };
	unsigned long cursor = 0;
	int slices = 0, added = 0;
	bool grew = false;
	do {
		store_list_slice(f.s, &cursor, 16, T0, seen_cb, &sn);
		slices++;
		for (int k = 0; k < 20; k++, added++) {   /* new keys between slices */
			snprintf(key, sizeof key, "new%d", added);
			grey_noawl(&f, key, T0);
		}
		grew |= mem_stats(f.s).growing;
	} while (cursor);
	ck_assert_int_eq(sn.ends, 1);
	ck_assert(sn.st == STORE_OK);
	ck_assert_msg(grew && slices > 10, "the table did not grow during the listing");
	for (int i = 0; i < N; i++)
		ck_assert_msg(sn.count[i] == 1, "t%d listed %d times, want once", i, sn.count[i]);
	free(sn.count);
	store_close(f.s);
	event_base_free(base);
}
END_TEST

struct loadrec {
	int calls;
	struct store_load_result r;
	char aside[512], error[256];
};

static void load_cb(void *arg, const struct store_load_result *r)
{
	struct loadrec *l = arg;
	l->calls++;
	l->r = *r;
	snprintf(l->aside, sizeof l->aside, "%s", r->aside ? r->aside : "");
	snprintf(l->error, sizeof l->error, "%s", r->error ? r->error : "");
	l->r.aside = l->r.error = NULL;
}

/* Load path into a new memory store; run the loop until it is loaded. */
static struct store *load_ok(struct event_base *base, const char *path, time_t now,
			     struct loadrec *l)
{
	struct store *s = open_ok(base, "memory");
	char *err = NULL;
	int r = store_memory_load_start(s, path, now, load_cb, l, &err);
	ck_assert_msg(r == 1, "load_start(%s): %d %s", path, r, err ? err : "");
	ck_assert_int_eq(l->calls, 0);
	ck_assert_msg(run_until(base, &l->calls, 1, 60000), "the load did not end");
	ck_assert(!mem_stats(s).loading);
	return s;
}

static char *slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	ck_assert_msg(fp != NULL, "%s: %s", path, strerror(errno));
	struct strbuf b;
	sb_init(&b);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, fp)) > 0)
		sb_add(&b, buf, n);
	fclose(fp);
	return b.s;
}

/* A fresh directory for a state file; path is DIR/state (owned by sd). */
struct state_dir {
	char dir[32];
	char *path;
};

static char *state_dir_make(struct state_dir *sd)
{
	snprintf(sd->dir, sizeof sd->dir, "/tmp/mxacl-state-XXXXXX");
	ck_assert(mkdtemp(sd->dir) != NULL);
	sd->path = xasprintf("%s/state", sd->dir);
	return sd->path;
}

/* Remove the state file (if still there) and the directory, which must
 * hold nothing else by then. */
static void state_dir_remove(struct state_dir *sd)
{
	unlink(sd->path);
	ck_assert_msg(rmdir(sd->dir) == 0, "%s: %s", sd->dir, strerror(errno));
	free(sd->path);
}

static void spit(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	ck_assert(fp != NULL);
	fputs(text, fp);
	fclose(fp);
}

/* Saved and loaded again: triplets (one of 64 KiB), networks and rate logs
 * come back as they were, the expired stay out; the file is mode 0600. */
START_TEST(test_mem_save_load_roundtrip)
{
	struct state_dir sd;
	char *path = state_dir_make(&sd);
	struct fix f = mem_fix();
	struct event_base *base = f.base;
	char *big = long_key(65536, 'Q');
	struct grey_query q = { .triplet = big, .triplet_len = 65536, .net = "192.0.2",
				.net_len = 7, .now = T0, .p = P };
	struct rec r = { 0 };
	store_grey(f.s, &q, grey_done, &r);
	q.now = T0 + 60;
	store_grey(f.s, &q, grey_done, &r);            /* passes: AWL 1 */
	grey_noawl(&f, "waiting", T0 + 50);
	grey_noawl(&f, "dead", T0 - 100000);                  /* long expired by T0 + 60 */
	for (int i = 0; i < 2; i++) {
		struct rate_query rq = { .key = "k", .key_len = 1, .limit = 3, .window = 3600,
					 .amount = 1, .now = T0 + i };
		store_rate(f.s, &rq, rate_done, &r);
		struct rate_query sq = { .key = "b", .key_len = 1, .limit = 100, .window = 3600,
					 .slotted = true, .amount = 30 + 10 * (unsigned)i,
					 .now = T0 + 200 * i };
		store_rate(f.s, &sq, rate_done, &r);
	}
	umask(022);
	char *err = NULL;
	ck_assert_msg(store_memory_save(f.s, path, &err), "save: %s", err);
	struct stat st;
	ck_assert(stat(path, &st) == 0);
	ck_assert_msg((st.st_mode & 07777) == 0600, "state file mode %o, want 600",
		      (unsigned)(st.st_mode & 07777));
	store_close(f.s);

	struct loadrec l = { 0 };
	f.s = load_ok(base, path, T0 + 60, &l);
	ck_assert_msg(l.r.loaded == 5 && l.r.expired == 1 && l.r.skipped == 0 && !l.aside[0] &&
			      !l.error[0],
		      "loaded=%lu expired=%lu skipped=%lu aside=%s error=%s", l.r.loaded,
		      l.r.expired, l.r.skipped, l.aside, l.error);
	struct rec a = { 0 };
	q.now = T0 + 70;
	store_grey(f.s, &q, grey_done, &a);
	ck_assert_msg(a.st == STORE_OK && !a.g.greylisted && a.g.age == 70,
		      "the 64 KiB triplet after a restart: greylisted=%d age=%u", a.g.greylisted,
		      a.g.age);
	struct rec w = grey_noawl(&f, "waiting", T0 + 70);
	ck_assert_msg(w.g.greylisted && w.g.age == 20, "waiting: age %u, want 20", w.g.age);
	struct rec rr = { 0 };
	struct rate_query rq = { .key = "k", .key_len = 1, .limit = 3, .window = 3600,
				 .amount = 1, .now = T0 + 70 };
	store_rate(f.s, &rq, rate_done, &rr);
	ck_assert_msg(rr.r.count == 3, "rate after a restart: count %llu, want 3",
		      (unsigned long long)rr.r.count);
	/* the slotted log: 30 + 40 at two times, then 30 more fit, 31 would not */
	struct rate_query sq = { .key = "b", .key_len = 1, .limit = 100, .window = 3600,
				 .slotted = true, .amount = 30, .now = T0 + 70 };
	struct rec sr = { 0 };
	store_rate(f.s, &sq, rate_done, &sr);
	ck_assert_msg(sr.r.count == 100 && !sr.r.over,
		      "slotted log after a restart: count %llu over %d, want 100 0",
		      (unsigned long long)sr.r.count, sr.r.over);
	store_close(f.s);
	event_base_free(base);
	state_dir_remove(&sd);
	free(big);
}
END_TEST

/* Bad lines are skipped and counted, the entries after them load, and the
 * original is kept aside byte for byte; a file that is not a state file
 * is kept aside too. A directory or a symbolic link is refused at once. */
START_TEST(test_mem_load_bad_lines)
{
	struct state_dir sd;
	char *path = state_dir_make(&sd);
	struct event_base *base = event_base_new();
	static const char text[] =
		"mxacl-state 1\n"
		"g 1700000000 1700000000 1800000000 0 first\n"
		"g 1700000000 1700000000\n"
		"g 1700000000 1700000000 1800000000 7 passed-twice\n"
		"z 1 2 3 4 what\n"
		"g 1700000000 1700000000 99999999999 0 overflow\n"
		"r 1 2 1800000000 2 1,2,3 three-in-two\n"
		"g 1700000000 1700000000 1800000000 1 after\n"
		"r 1700000000 1700000000 1800000000 2 1700000000 rate\n"
		"s 1700000000 1700000000 1800000000 2 1700000009:40,1700000039:60 sum\n"
		"s 1700000000 1700000000 1800000000 3 1700000009:40,1700000039:60 short\n"
		"s 1700000000 1700000000 1800000000 1 1700000009:x bad-amount\n"
		"a 1700000000 1700000000 1800000000 5 net";   /* no final LF */
	spit(path, text);
	struct loadrec l = { 0 };
	struct store *s = load_ok(base, path, T0, &l);
	ck_assert_msg(l.r.loaded == 5 && l.r.skipped == 7 && l.r.first_bad == 3,
		      "loaded=%lu skipped=%lu first_bad=%lu, want 5, 7, 3", l.r.loaded,
		      l.r.skipped, l.r.first_bad);
	ck_assert_msg(l.aside[0] && strncmp(l.aside, path, strlen(path)) == 0 &&
			      strstr(l.aside, ".bad-"),
		      "aside: \"%s\"", l.aside);
	char *kept = slurp(l.aside);
	ck_assert_str_eq(kept, text);
	free(kept);
	struct fix f = { .base = base, .s = s };
	ck_assert_msg(!grey_noawl(&f, "after", T0).g.greylisted, "an entry after bad lines is lost");
	/* the slotted log loaded: 40 + 60 of 100 recipients, so 1 more is over */
	struct rate_query sq = { .key = "sum", .key_len = 3, .limit = 100, .window = 3600,
				 .slotted = true, .amount = 1, .now = T0 + 100 };
	struct rec sr = { 0 };
	store_rate(s, &sq, rate_done, &sr);
	ck_assert_msg(sr.st == STORE_OK && sr.r.over && sr.r.count == 101,
		      "loaded slotted log: count %llu over %d, want 101 1",
		      (unsigned long long)sr.r.count, sr.r.over);
	unlink(l.aside);
	store_close(s);

	/* a line longer than any key (3 MiB), between two good ones */
	FILE *fp = fopen(path, "w");
	ck_assert(fp != NULL);
	fputs("mxacl-state 1\ng 1700000000 1700000000 1800000000 1 before\ng 1 2 3 0 ", fp);
	for (int i = 0; i < 3 << 20; i++)
		fputc('x', fp);
	fputs("\ng 1700000000 1700000000 1800000000 1 behind\n", fp);
	fclose(fp);
	memset(&l, 0, sizeof l);
	s = load_ok(base, path, T0, &l);
	ck_assert_msg(l.r.loaded == 2 && l.r.skipped == 1 && l.r.first_bad == 3,
		      "overlong line: loaded=%lu skipped=%lu first_bad=%lu, want 2, 1, 3",
		      l.r.loaded, l.r.skipped, l.r.first_bad);
	f.s = s;
	ck_assert(!grey_noawl(&f, "behind", T0).g.greylisted);
	unlink(l.aside);
	store_close(s);

	spit(path, "something else\ng 1 2 3 0 x\n");
	memset(&l, 0, sizeof l);
	s = load_ok(base, path, T0, &l);
	ck_assert_msg(l.r.loaded == 0 && strstr(l.error, "not an mxacl state file") && l.aside[0],
		      "loaded=%lu error=%s aside=%s", l.r.loaded, l.error, l.aside);
	unlink(l.aside);
	store_close(s);

	s = open_ok(base, "memory");
	char *err = NULL;
	ck_assert_int_eq(store_memory_load_start(s, sd.dir, T0, load_cb, &l, &err), -1);
	ck_assert_msg(strstr(err, "is a directory"), "%s", err);
	free(err);
	err = NULL;
	char *link_path = xasprintf("%s/link", sd.dir);
	ck_assert(symlink(path, link_path) == 0);
	ck_assert_int_eq(store_memory_load_start(s, link_path, T0, load_cb, &l, &err), -1);
	ck_assert_msg(strstr(err, "symbolic link"), "%s", err);
	free(err);
	err = NULL;
	unlink(link_path);
	free(link_path);
	unlink(path);
	ck_assert_int_eq(store_memory_load_start(s, path, T0, load_cb, &l, &err), 0);
	store_close(s);
	event_base_free(base);
	state_dir_remove(&sd);
}
END_TEST

/* While loading, every operation fails and saves are refused; closing the
 * store stops the loader at once (held here by the test hook). */
START_TEST(test_mem_loading_fails_and_close_stops_it)
{
	struct state_dir sd;
	char *path = state_dir_make(&sd);
	spit(path, "mxacl-state 1\ng 1700000000 1700000000 1800000000 1 k\n");
	setenv("MXACL_TEST_HOOKS", "1", 1);
	setenv("MXACL_TEST_STATE_LOAD_MS", "600000", 1);
	struct fix f = mem_fix();
	struct event_base *base = f.base;
	struct loadrec l = { 0 };
	char *err = NULL;
	ck_assert_int_eq(store_memory_load_start(f.s, path, T0, load_cb, &l, &err), 1);
	unsetenv("MXACL_TEST_STATE_LOAD_MS");
	unsetenv("MXACL_TEST_HOOKS");
	run_for(base, 50);
	ck_assert(mem_stats(f.s).loading && l.calls == 0);
	struct rec r = { 0 };
	struct grey_query q = { .triplet = "k", .triplet_len = 1, .net = "n", .net_len = 1,
				.now = T0, .p = P };
	store_grey(f.s, &q, grey_done, &r);
	ck_assert(r.calls == 1 && r.st == STORE_FAIL);
	struct rec e = { 0 };
	store_edit(f.s, STORE_PASS, "x", T0, &P, edit_done, &e);
	ck_assert(e.calls == 1 && e.st == STORE_FAIL);
	struct rec li = { 0 };
	store_list(f.s, T0, list_done, &li);
	ck_assert(li.calls == 1 && li.st == STORE_FAIL);
	ck_assert(!store_memory_save(f.s, path, &err));
	ck_assert_msg(strstr(err, "still loading"), "%s", err);
	free(err);
	err = NULL;
	ck_assert_int_eq(store_memory_save_start(f.s, path, NULL, NULL, &err), -1);
	free(err);
	double t = now_s();
	store_close(f.s);
	ck_assert_msg(now_s() - t < 5, "close took %.1f s with a load under way", now_s() - t);
	ck_assert_int_eq(l.calls, 0);
	event_base_free(base);
	char *text = slurp(path);
	ck_assert_str_eq(text, "mxacl-state 1\ng 1700000000 1700000000 1800000000 1 k\n");
	free(text);
	state_dir_remove(&sd);
}
END_TEST

struct saverec {
	int calls;
	bool ok;
	unsigned long entries;
	long pid;
};

static void save_cb(void *arg, const struct store_save_result *r)
{
	struct saverec *sv = arg;
	sv->calls++;
	sv->ok = r->ok;
	sv->entries = r->entries;
	sv->pid = r->pid;
}

/* A background save runs in a child (another pid), a second one is
 * skipped meanwhile, the loop learns of its end; and the file loads. */
START_TEST(test_mem_save_in_a_child)
{
	struct state_dir sd;
	char *path = state_dir_make(&sd);
	struct fix f = mem_fix();
	struct event_base *base = f.base;
	char key[32];
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof key, "t%d", i);
		grey_noawl(&f, key, T0);
	}
	struct saverec sv = { 0 };
	char *err = NULL;
	ck_assert_int_eq(store_memory_save_start(f.s, path, save_cb, &sv, &err), 1);
	ck_assert(mem_stats(f.s).saving);
	ck_assert_int_eq(store_memory_save_start(f.s, path, save_cb, &sv, &err), 0);
	ck_assert(run_until(base, &sv.calls, 1, 30000));
	ck_assert_msg(sv.ok && sv.entries == 5000 && sv.pid != getpid() && sv.pid > 0,
		      "ok=%d entries=%lu pid=%ld", sv.ok, sv.entries, sv.pid);
	ck_assert(!mem_stats(f.s).saving);
	store_close(f.s);
	struct loadrec l = { 0 };
	f.s = load_ok(base, path, T0, &l);
	ck_assert_int_eq(l.r.loaded, 5000);
	store_close(f.s);
	DIR *dp = opendir(sd.dir);
	struct dirent *de;
	int files = 0;
	while ((de = readdir(dp)))
		files += de->d_name[0] != '.';
	closedir(dp);
	ck_assert_msg(files == 1, "%d files in the state directory, want only the state", files);
	event_base_free(base);
	state_dir_remove(&sd);
}
END_TEST

/* ---- distinct counters ------------------------------------------------------------ */

struct drec {
	int calls;
	enum store_status st;
	struct distinct_answer a;
};

static void distinct_done(void *arg, enum store_status st, const struct distinct_answer *a)
{
	struct drec *r = arg;
	r->calls++;
	r->st = st;
	if (st == STORE_OK)
		r->a = *a;
	else
		ck_assert_msg(a == NULL, "a failed distinct answer must come without an answer");
}

/* One distinct check, without waiting for it. */
static void distinct_ask(struct store *s, const char *key, const char *value, unsigned limit,
			 unsigned window, time_t now, struct drec *r)
{
	struct distinct_query q = { .key = key, .key_len = strlen(key), .value = value,
				    .value_len = strlen(value), .limit = limit, .window = window,
				    .now = now };
	store_distinct(s, &q, distinct_done, r);
}

struct dstep {
	int t;                           /* seconds after T0 */
	const char *key, *value;
	unsigned limit, window, count;
	int over;
	const char *what;
};

static const struct dstep distinct_steps[] = {
	{ 0, "alice", "DE", 3, 3600, 1, .what = "a first value" },
	{ 10, "alice", "DE", 3, 3600, 1, .what = "the same value again: counted once" },
	{ 20, "alice", "FR", 3, 3600, 2, .what = "a second" },
	{ 30, "alice", "US", 3, 3600, 3, .what = "a third: at the limit" },
	{ 40, "alice", "CN", 3, 3600, 4, .over = 1, .what = "a fourth: over" },
	{ 41, "alice", "RU", 3, 3600, 4, .over = 1, .what = "a fifth: over, counted up to limit + 1" },
	{ 50, "alice", "FR", 3, 3600, 3, .what = "a known value still passes" },
	{ 50, "bob", "CN", 3, 3600, 1, .what = "another key" },
	{ 3601, "alice", "CN", 3, 3600, 4, .over = 1,
	  .what = "DE left the window, FR and US not: CN was never recorded" },
	{ 3610, "alice", "CN", 3, 3600, 3, .what = "DE (last seen at 10) is out: CN joins" },
	{ 3611, "alice", "DE", 3, 3600, 4, .over = 1, .what = "FR, US, CN in: DE is new again" },
	{ 3640, "alice", "DE", 3, 3600, 3,
	  .what = "US (30) left at 3630, FR (refreshed at 50) is still in: room for DE" },
	{ 3650, "alice", "US", 3, 3600, 3,
	  .what = "FR left at 3650: room for US again (CN, DE, US)" },
	{ 9000, "alice", "a value with spaces", 1, 60, 1, .what = "window empty, limit 1" },
	{ 9001, "alice", "a value with spaces", 1, 60, 1, .what = "limit 1, same value" },
	{ 9002, "alice", "A value with spaces", 1, 60, 2, .over = 1,
	  .what = "limit 1, values compared byte for byte" },
};

/* The table against the memory store (_i 0) and Redis (_i 1). */
START_TEST(test_distinct)
{
	struct fix f;
	fix_open(&f, _i == 1);
	const char *be = f.redis ? "redis" : "memory";
	for (size_t i = 0; i < ARRAY_LEN(distinct_steps); i++) {
		const struct dstep *st = &distinct_steps[i];
		struct drec r = { 0 };
		distinct_ask(f.s, st->key, st->value, st->limit, st->window, T0 + st->t, &r);
		ck_assert_msg(run_until(f.base, &r.calls, 1, 5000), "%s step %zu (%s): no answer",
			      be, i, st->what);
		ck_assert_msg(r.st == STORE_OK, "%s step %zu (%s): STORE_FAIL", be, i, st->what);
		ck_assert_msg(r.a.count == st->count && r.a.over == (st->over != 0),
			      "%s step %zu (%s): got count=%u over=%d, want count=%u over=%d", be,
			      i, st->what, r.a.count, r.a.over, st->count, st->over);
	}
	/* list and flush are the greylist's: a distinct set is neither */
	struct rec l = { 0 };
	store_list(f.s, T0 + 9002, list_done, &l);
	ck_assert(run_until(f.base, &l.calls, 1, 5000));
	ck_assert_msg(l.nlines == 0, "a distinct set listed as greylist state");
	rec_free(&l);
	struct rec fl = { 0 };
	store_edit(f.s, STORE_FLUSH, NULL, T0 + 9002, NULL, edit_done, &fl);
	ck_assert(run_until(f.base, &fl.calls, 1, 5000));
	struct drec r = { 0 };
	distinct_ask(f.s, "alice", "other", 1, 60, T0 + 9003, &r);
	ck_assert(run_until(f.base, &r.calls, 1, 5000));
	ck_assert_msg(r.a.over, "flush dropped a distinct set");
	if (f.redis) {
		/* its key: PREFIX d: KEY, a sorted set of the values */
		long long n = rsrv_int(&f.srv, 0, "ZCARD %s", "mxacl:d:alice");
		ck_assert_msg(n == 1, "mxacl:d:alice holds %lld values, want 1", n);
	}
	fix_close(&f);
}
END_TEST

/* Two gateways on one Redis: a key seen with 2 values through one and 2
 * others through the other has 4; racing checks of many values never
 * record more than the limit, and exactly limit of them pass. */
START_TEST(test_distinct_two_gateways)
{
	struct fix f;
	fix_open(&f, true);
	char *url = rsrv_url(&f.srv, NULL, NULL);
	struct store *s2 = open_ok(f.base, url);
	ck_assert(wait_ready(f.base, s2, 5000));
	struct store *gw[2] = { f.s, s2 };
	static const char *const seen[] = { "DE", "FR", "US", "CN" };
	for (int i = 0; i < 4; i++) {
		struct drec r = { 0 };
		distinct_ask(gw[i / 2], "carol", seen[i], 3, 3600, T0 + i, &r);
		ck_assert(run_until(f.base, &r.calls, 1, 5000));
		ck_assert_msg(r.st == STORE_OK && r.a.count == (unsigned)i + 1 &&
				      r.a.over == (i == 3),
			      "value %d through gateway %d: count=%u over=%d", i, i / 2 + 1,
			      r.a.count, r.a.over);
	}
	enum { N = 40, LIMIT = 7 };
	static struct drec r[N];
	memset(r, 0, sizeof r);
	char values[N][16];
	for (int i = 0; i < N; i++) {
		snprintf(values[i], sizeof values[i], "v%d", i);
		distinct_ask(gw[i % 2], "race", values[i], LIMIT, 60, T0, &r[i]);
	}
	int under = 0;
	for (int i = 0; i < N; i++) {
		ck_assert(run_until(f.base, &r[i].calls, 1, 5000));
		ck_assert(r[i].st == STORE_OK);
		ck_assert_msg(r[i].a.count <= LIMIT + 1, "count %u past limit + 1", r[i].a.count);
		under += !r[i].a.over;
	}
	ck_assert_msg(under == LIMIT, "%d of %d new values passed a limit of %d", under, N, LIMIT);
	long long n = rsrv_int(&f.srv, 0, "ZCARD %s", "mxacl:d:race");
	ck_assert_msg(n == LIMIT, "the set holds %lld values, want %d", n, LIMIT);
	store_close(s2);
	free(url);
	fix_close(&f);
}
END_TEST

/* ---- refunds ----------------------------------------------------------------------- */

/* One rate call, waited for: its answer. */
static struct rate_answer refund_rate(struct fix *f, const char *key, uint64_t limit,
				      uint64_t amount, bool slotted, time_t now)
{
	struct rec r = { 0 };
	struct rate_query q = { .key = key, .key_len = strlen(key), .limit = limit,
				.window = 3600, .amount = amount, .slotted = slotted, .now = now };
	store_rate(f->s, &q, rate_done, &r);
	ck_assert_msg(run_until(f->base, &r.calls, 1, 5000) && r.st == STORE_OK,
		      "rate %s at %lld: no answer", key, (long long)(now - T0));
	return r.r;
}

/* One distinct call, waited for: its answer. */
static struct distinct_answer refund_distinct(struct fix *f, const char *value, time_t now)
{
	struct drec r = { 0 };
	distinct_ask(f->s, "dk", value, 2, 3600, now, &r);
	ck_assert_msg(run_until(f->base, &r.calls, 1, 5000) && r.st == STORE_OK,
		      "distinct %s at %lld: no answer", value, (long long)(now - T0));
	return r.a;
}

/* One refund, waited for: how many things it undid. */
static unsigned long refund_do(struct fix *f, const struct store_refund *q)
{
	struct rec r = { 0 };
	store_refund(f->s, q, edit_done, &r);
	ck_assert_msg(run_until(f->base, &r.calls, 1, 5000) && r.st == STORE_OK, "refund: no answer");
	return r.changed;
}

/*
 * What a refused request recorded, taken back (store.h): the exact log's
 * event (named by the answer's id), part of a slotted log's slot (never
 * below 0), a distinct value the call added, but not one seen again
 * since. A refund of what is no longer there undoes nothing. Both stores.
 */
START_TEST(test_refund)
{
	struct fix f;
	fix_open(&f, _i == 1);
	const char *be = f.redis ? "redis" : "memory";
	/* the exact log, limit 2 */
	struct rate_answer a = refund_rate(&f, "rx", 2, 1, false, T0);
	ck_assert(!a.over && a.count == 1);
	a = refund_rate(&f, "rx", 2, 1, false, T0 + 1);
	ck_assert(!a.over && a.count == 2);
	struct store_refund rx = { .kind = REFUND_RATE, .key = "rx", .key_len = 2, .window = 3600,
				   .now = T0 + 1, .id = a.id };
	ck_assert_msg(refund_do(&f, &rx) == 1, "%s: the exact log's event not refunded", be);
	ck_assert_msg(refund_do(&f, &rx) == 0, "%s: one event refunded twice", be);
	a = refund_rate(&f, "rx", 2, 1, false, T0 + 2);
	ck_assert_msg(!a.over && a.count == 2, "%s: after the refund: count=%llu over=%d", be,
		      (unsigned long long)a.count, a.over);
	a = refund_rate(&f, "rx", 2, 1, false, T0 + 3);
	ck_assert(a.over && a.count == 3);
	if (f.redis) {
		long long n = rsrv_int(&f.srv, 0, "ZCARD %s", "mxacl:r:rx");
		ck_assert_msg(n == 2, "mxacl:r:rx holds %lld events, want 2", n);
	}
	/* the slotted log, limit 100 (slots of 30 s) */
	a = refund_rate(&f, "rs", 100, 60, true, T0);
	ck_assert(!a.over && a.count == 60);
	a = refund_rate(&f, "rs", 100, 30, true, T0 + 1);
	ck_assert(!a.over && a.count == 90);
	struct store_refund rs = { .kind = REFUND_RATE, .key = "rs", .key_len = 2, .window = 3600,
				   .now = T0 + 1, .slotted = true, .amount = 30 };
	ck_assert_msg(refund_do(&f, &rs) == 1, "%s: the slot's amount not refunded", be);
	a = refund_rate(&f, "rs", 100, 40, true, T0 + 2);
	ck_assert_msg(!a.over && a.count == 100, "%s: after the refund: count=%llu over=%d", be,
		      (unsigned long long)a.count, a.over);
	rs.amount = 500;                 /* more than the slot holds: it goes, nothing below 0 */
	ck_assert(refund_do(&f, &rs) == 1);
	a = refund_rate(&f, "rs", 100, 1, true, T0 + 3);
	ck_assert_msg(!a.over && a.count == 1, "%s: after emptying the slot: count=%llu", be,
		      (unsigned long long)a.count);
	ck_assert(refund_do(&f, &(struct store_refund){ .kind = REFUND_RATE, .key = "none",
							 .key_len = 4, .window = 3600, .now = T0,
							 .slotted = true, .amount = 1 }) == 0);
	/* a distinct set, limit 2 */
	struct distinct_answer d = refund_distinct(&f, "DE", T0);
	ck_assert(d.added && !d.over && d.count == 1);
	d = refund_distinct(&f, "FR", T0 + 1);
	ck_assert(d.added && !d.over && d.count == 2);
	struct store_refund rd = { .kind = REFUND_DISTINCT, .key = "dk", .key_len = 2,
				   .window = 3600, .now = T0 + 1, .value = "FR", .value_len = 2 };
	ck_assert_msg(refund_do(&f, &rd) == 1, "%s: the added value not refunded", be);
	d = refund_distinct(&f, "US", T0 + 2);
	ck_assert_msg(d.added && !d.over && d.count == 2, "%s: after the refund: count=%u over=%d",
		      be, d.count, d.over);
	d = refund_distinct(&f, "DE", T0 + 3);
	ck_assert_msg(!d.added && !d.over && d.count == 2, "%s: DE seen again: added=%d", be,
		      d.added);
	/* DE's own refund (of its sighting at T0) comes after the one at T0 + 3: it stays */
	rd.now = T0;
	rd.value = "DE";
	ck_assert_msg(refund_do(&f, &rd) == 0, "%s: a value seen again since was refunded", be);
	d = refund_distinct(&f, "CN", T0 + 4);
	ck_assert_msg(!d.added && d.over && d.count == 3, "%s: CN: added=%d over=%d count=%u", be,
		      d.added, d.over, d.count);
	fix_close(&f);
}
END_TEST

/* Saved and loaded again: a distinct set's values (spaces and all) and
 * times come back; the refused value was never saved. */
START_TEST(test_mem_distinct_save_load)
{
	struct state_dir sd;
	char *path = state_dir_make(&sd);
	struct event_base *base;
	struct store *s = mem_open_ok(&base);
	static const char *const vals[] = { "DE", "two words", "x y z", "over" };
	for (int i = 0; i < 4; i++) {
		struct drec r = { 0 };
		distinct_ask(s, "k", vals[i], 3, 3600, T0 + i, &r);
		ck_assert(r.calls == 1 && r.a.over == (i == 3));
	}
	char *err = NULL;
	ck_assert_msg(store_memory_save(s, path, &err), "save: %s", err);
	store_close(s);
	char *text = slurp(path);
	ck_assert_msg(strstr(text, "\nd 1700000000 1700000002 1700003602 3 1700000000 2 DE "
				   "1700000001 9 two words 1700000002 5 x y z k\n"),
		      "the state file:\n%s", text);
	free(text);
	struct loadrec l = { 0 };
	s = load_ok(base, path, T0 + 10, &l);
	ck_assert_msg(l.r.loaded == 1 && l.r.skipped == 0, "loaded=%lu skipped=%lu", l.r.loaded,
		      l.r.skipped);
	for (int i = 0; i < 4; i++) {
		struct drec r = { 0 };
		distinct_ask(s, "k", vals[i], 3, 3600, T0 + 20, &r);
		ck_assert_msg(r.calls == 1 && r.a.count == (i < 3 ? 3u : 4u) && r.a.over == (i == 3),
			      "after a restart, %s: count=%u over=%d", vals[i], r.a.count, r.a.over);
	}
	store_close(s);
	/* a value whose length runs past the line is a bad line */
	spit(path, "mxacl-state 1\nd 1 2 1800000000 1 1700000000 40 DE k\n"
		   "d 1 2 1800000000 1 1700000000 2 DE good\n");
	memset(&l, 0, sizeof l);
	s = load_ok(base, path, T0, &l);
	ck_assert_msg(l.r.loaded == 1 && l.r.skipped == 1, "loaded=%lu skipped=%lu", l.r.loaded,
		      l.r.skipped);
	unlink(l.aside);
	struct drec r = { 0 };
	distinct_ask(s, "good", "FR", 1, 3600, T0, &r);
	ck_assert_msg(r.a.over && r.a.count == 2, "the loaded set: count=%u over=%d", r.a.count,
		      r.a.over);
	store_close(s);
	event_base_free(base);
	state_dir_remove(&sd);
}
END_TEST

Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("semantics");
	tcase_set_timeout(tc, 60);
	/* _i: 0 memory, 1 redis */
	tcase_add_loop_test(tc, test_greylist, 0, 2);
	tcase_add_loop_test(tc, test_awl, 0, 2);
	tcase_add_loop_test(tc, test_rate, 0, 2);
	tcase_add_loop_test(tc, test_rate_slotted_model, 0, 2);
	tcase_add_loop_test(tc, test_edit, 0, 2);
	tcase_add_loop_test(tc, test_long_keys, 0, 2);
	tcase_add_loop_test(tc, test_distinct, 0, 2);
	tcase_add_loop_test(tc, test_refund, 0, 2);
	suite_add_tcase(s, tc);
	tc = tcase_create("memory");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_mem_growth_is_incremental);
	tcase_add_test(tc, test_mem_sweep_drops_expired);
	tcase_add_test(tc, test_mem_list_slices_during_growth);
	tcase_add_test(tc, test_mem_save_load_roundtrip);
	tcase_add_test(tc, test_mem_load_bad_lines);
	tcase_add_test(tc, test_mem_loading_fails_and_close_stops_it);
	tcase_add_test(tc, test_mem_save_in_a_child);
	tcase_add_test(tc, test_mem_distinct_save_load);
	suite_add_tcase(s, tc);
	tc = tcase_create("redis");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_url_errors);
	tcase_add_test(tc, test_two_gateways_race_recipients);
	tcase_add_test(tc, test_down_fails_fast);
	tcase_add_test(tc, test_kill_and_restart);
	tcase_add_test(tc, test_stalled_server_times_out);
	tcase_add_test(tc, test_auth_db_prefix);
	tcase_add_test(tc, test_unix_socket);
	tcase_add_test(tc, test_noscript_recovers);
	tcase_add_test(tc, test_error_reply_fails_one);
	tcase_add_test(tc, test_two_gateways_race);
	tcase_add_test(tc, test_list_and_flush_many);
	tcase_add_test(tc, test_close_answers_pending);
	tcase_add_test(tc, test_close_inside_callback);
	tcase_add_test(tc, test_distinct_two_gateways);
	suite_add_tcase(s, tc);
	return s;
}
