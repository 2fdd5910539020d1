/*
 * reload - compile a reloaded policy on a thread, swap it in on the loop
 * (see reload.h).
 *
 * The hand-over. A compile is a job shared by two threads under its mutex:
 * the worker fills in the program and the diagnostics, marks the job done
 * and writes a byte into a pipe the loop watches; the loop logs, swaps the
 * program in, and hands the job back with the program it replaced, which
 * the worker drops (freeing a big program takes tens of milliseconds: not
 * on the loop either) before it frees the job and ends. Workers are
 * detached: the loop never waits for one. When the loop goes away first
 * (SIGTERM), it marks the job abandoned and the worker, when its compile
 * ends, frees everything itself; it writes to the pipe only while the job
 * is not abandoned, under the mutex, so never to a closed (or reused)
 * descriptor. The worker always frees the job, exactly once. It blocks
 * every signal but faults: signals are the loop's (libevent).
 *
 * Audit: what compile_file (grammar/, engine/, acl/ compile
 * functions) touches while the loop thread runs requests on the old
 * program, checked for this module (December 2026):
 *
 * - grammar/: the lexer is a reentrant flex scanner (%option reentrant,
 *   yyscan_t) and the parser a pure bison parser: no globals. load.c keeps
 *   its include guards per load and its glob() error record thread-local;
 *   glob() is MT-safe without GLOB_TILDE (we never set it) as long as no
 *   thread calls setlocale(), which mxacld does not. diag.c sorted with a
 *   static pointer for qsort's comparator: now the keys are computed first
 *   and the comparator has no state.
 * - engine/attrs.c builds its name table lazily (table_ready) and the loop
 *   calls attr_lookup for every request: reload_new builds it on the loop
 *   thread first, so the worker only reads it.
 * - acl/types.c builds the table of attribute types once (pthread_once);
 *   acl/string.c creates the process-wide pcre2 match data on the first
 *   string acl it compiles. Both are written only by compiles, and
 *   reload_new compiles a one-line policy on the loop thread so both exist
 *   before any worker does; the loop reads them only for programs handed
 *   over through the job's mutex. The registry of extra acl types
 *   (engine/acl.c; tests/hooks/testhooks.c, test builds only) is written
 *   at start-up only.
 * - engine/verify.c returns its reason in a static buffer: only compiles
 *   use it, and one compile runs at a time (mxacld compiles nothing on the
 *   loop once the worker exists; the start-up compile is over by then).
 * - PCRE2: pcre2_compile and pcre2_jit_compile with default contexts keep
 *   no shared state (the JIT's executable allocator locks itself); each
 *   program owns its patterns.
 * - Vectorscan (engine/multire.c, string acls of four regexes or more):
 *   hs_expression_info, hs_compile_multi and hs_alloc_scratch keep no
 *   shared state; each set owns its database, scratch space and match
 *   data, allocated by the worker and used only by the loop's scans once
 *   the program is handed over. A 10,000-pattern set takes seconds to
 *   build: here, not on the loop.
 * - engine/recache.c (--cache-dir): one object shared by every compile,
 *   used by one compile at a time (the job's); it records its log lines,
 *   which finish() logs on the loop after the hand-over, before the next
 *   job can start.
 * - libmaxminddb: each program opens its own MMDB_s (engine/geoip.c); the
 *   loop's lookups use the old program's handle; the handle is closed by
 *   whoever drops the program's last reference, which is the loop (or the
 *   worker, for a program nobody else ever saw).
 * - backends/: the rbl/dnswl/rhsbl, spf, greylist and rate compile
 *   functions parse their values into the program's arena; the resolver,
 *   the DNS cache, the libspf2 server and the store belong to the runtime
 *   and are touched by evaluation only, on the loop.
 * - Logging: the compile path never logs (diagnostics are records); this
 *   module logs them on the loop.
 * - Reference counts are plain ints: a new program is touched by the
 *   worker only until the hand-over and by the loop only after it.
 */
#include "daemon/reload.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/notify.h"
#include "engine/attrs.h"
#include "engine/compile.h"
#include "engine/recache.h"
#include "grammar/diag.h"
#include "util/log.h"
#include "util/testhooks.h"
#include "util/util.h"

/* The worker's stack: what the start-up compile has on the main thread. */
#define RELOAD_STACK (8u << 20)

/* One compile, shared by the loop and the worker (see the top). */
struct reload_job {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool done;              /* the worker has compiled: prog, diags set */
	bool handed_back;       /* the loop is done with the job: old is set */
	bool abandoned;         /* the loop has gone away */
	int wake_fd;            /* the loop's pipe; written once, under mu */
	char *path;
	char *geoip;
	struct load_opts opts;
	struct program *prog;   /* the result; NULL: errors */
	struct diags diags;
	double seconds;         /* how long the compile took */
	struct program *old;    /* the program prog replaced, for the worker
	                           to drop off the loop */
	long test_delay_ms;     /* see reload_new */
};

struct reload {
	struct event_base *base;
	char *path;
	char *geoip;
	struct load_opts opts;
	reload_ready_fn ready;
	void *arg;
	int pipe[2];
	struct event *wake_ev;
	struct reload_job *job; /* the compile running, or NULL */
	bool again;             /* a request came while job ran */
	time_t loaded;          /* when the policy serving was loaded, for
	                           systemd's STATUS= (notify.h) */
	long test_delay_ms;     /* see reload_new */
};

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct reload_job *job_new(const struct reload *r)
{
	struct reload_job *j = xcalloc(1, sizeof *j);
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cond, NULL);
	j->wake_fd = r->pipe[1];
	j->path = xstrdup(r->path);
	j->geoip = r->geoip ? xstrdup(r->geoip) : NULL;
	j->opts = r->opts;
	j->opts.geoip = j->geoip;
	j->test_delay_ms = r->test_delay_ms;
	diags_init(&j->diags);
	return j;
}

static void job_free(struct reload_job *j)
{
	program_unref(j->prog);
	program_unref(j->old);
	diags_free(&j->diags);
	free(j->path);
	free(j->geoip);
	pthread_cond_destroy(&j->cond);
	pthread_mutex_destroy(&j->mu);
	free(j);
}

/* The compile itself; touches nothing but the job (see the audit above). */
static void job_compile(struct reload_job *j)
{
	double t0 = now_seconds();
	if (j->test_delay_ms > 0) {
		struct timespec ts = { j->test_delay_ms / 1000, j->test_delay_ms % 1000 * 1000000 };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	j->prog = compile_file(j->path, &j->opts, &j->diags);
	diags_sort(&j->diags);
	j->seconds = now_seconds() - t0;
}

static void *worker(void *arg)
{
	struct reload_job *j = arg;
	job_compile(j);
	pthread_mutex_lock(&j->mu);
	j->done = true;
	if (!j->abandoned) {
		ssize_t n;
		do
			n = write(j->wake_fd, "", 1);
		while (n < 0 && errno == EINTR);
		/* the pipe is empty (one job at a time): a write cannot fail */
	}
	while (!j->handed_back && !j->abandoned)
		pthread_cond_wait(&j->cond, &j->mu);
	pthread_mutex_unlock(&j->mu);
	job_free(j);            /* drops the replaced program here, too */
	/* and gives its memory back to the system, here off the loop: also
	 * when it was small in lines but big in values (program.h) */
	heap_trim();
	return NULL;
}

/* Each diagnostic as one log line, in source order, its level the line's. */
static void log_diags(const struct diags *dg)
{
	for (size_t i = 0; i < dg->n; i++) {
		const struct diag *r = &dg->v[i];
		char where[PATH_MAX + 32];
		if (r->loc.line > 0)
			snprintf(where, sizeof where, "%s:%d:%d", r->loc.file, r->loc.line,
				 r->loc.col);
		else
			snprintf(where, sizeof where, "%s", r->loc.file);
		if (r->level == DIAG_ERROR)
			log_error("%s: %s", where, r->msg);
		else if (r->level == DIAG_WARNING)
			log_warning("%s: %s", where, r->msg);
		else
			log_info("%s: note: %s", where, r->msg);
	}
}

static void start(struct reload *r);

/*
 * On the loop: log a finished compile and swap its program in. Returns the
 * program it replaced (a reference), or NULL.
 */
static struct program *finish(struct reload *r, struct reload_job *j)
{
	struct program *old = NULL;
	log_diags(&j->diags);
	recache_flush(r->opts.recache);   /* the worker's lines, now on the loop */
	if (j->prog) {
		struct program *p = j->prog;
		j->prog = NULL;
		old = r->ready(p, r->arg);
		log_info("reload: %s loaded (compiled in %.2f s)", j->path, j->seconds);
	} else {
		r->ready(NULL, r->arg);     /* told, to count it */
		log_error("reload: %s has errors; still serving the previous policy", j->path);
	}
	return old;
}

/*
 * Tell systemd the reload is over (notify.h), whatever came of it: READY=1
 * and a status that says which policy serves since when, and whether the
 * last reload failed.
 */
static void notify_done(struct reload *r, bool ok, size_t nerrors)
{
	char when[32], status[PATH_MAX + 160];
	struct tm tm;
	if (ok)
		r->loaded = time(NULL);
	strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&r->loaded, &tm));
	if (ok)
		snprintf(status, sizeof status, "serving %s, loaded %s", r->path, when);
	else
		snprintf(status, sizeof status,
			 "serving %s as loaded %s; the reload failed with %zu error%s (see the log)",
			 r->path, when, nerrors, nerrors == 1 ? "" : "s");
	notify_ready(status);
}

/* The worker's byte: its job is done. */
static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct reload *r = arg;
	char buf[16];
	while (read(fd, buf, sizeof buf) > 0)
		;
	struct reload_job *j = r->job;
	if (!j)
		return;
	pthread_mutex_lock(&j->mu);
	bool done = j->done;
	pthread_mutex_unlock(&j->mu);
	if (!done)
		return;
	/* the worker waits for the hand-back and touches nothing meanwhile */
	bool ok = j->prog != NULL;
	size_t nerrors = j->diags.nerrors;
	struct program *old = finish(r, j);
	pthread_mutex_lock(&j->mu);
	j->old = old;
	j->handed_back = true;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->mu);
	r->job = NULL;                  /* the worker frees it */
	if (r->again) {
		r->again = false;
		start(r);       /* systemd hears READY=1 after that one */
	} else {
		notify_done(r, ok, nerrors);
	}
}

static void start(struct reload *r)
{
	log_info("reload: reading %s", r->path);
	char status[PATH_MAX + 32];
	snprintf(status, sizeof status, "reloading %s", r->path);
	notify_reloading(status);
	struct reload_job *j = job_new(r);
	pthread_attr_t attr;
	pthread_t thread;
	sigset_t all, old;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, RELOAD_STACK);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* signals are the loop's; faults stay deliverable (sanitizer reports) */
	sigfillset(&all);
	static const int faults[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS };
	for (size_t i = 0; i < ARRAY_LEN(faults); i++)
		sigdelset(&all, faults[i]);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&thread, &attr, worker, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc == 0) {
		r->job = j;
		return;
	}
	log_warning("reload: cannot start a thread (%s); compiling on the serving loop",
		    strerror(rc));
	job_compile(j);
	bool ok = j->prog != NULL;
	size_t nerrors = j->diags.nerrors;
	j->old = finish(r, j);
	job_free(j);
	notify_done(r, ok, nerrors);
}

void reload_request(struct reload *r)
{
	if (!r->job) {
		start(r);
		return;
	}
	if (!r->again)
		log_info("reload: a reload of %s is running; it will be read again after it",
			 r->path);
	r->again = true;
}

struct reload *reload_new(struct event_base *base, const char *path, const struct load_opts *o,
			  reload_ready_fn ready, void *arg)
{
	struct reload *r = xcalloc(1, sizeof *r);
	r->base = base;
	r->path = xstrdup(path);
	if (o)
		r->opts = *o;
	r->geoip = r->opts.geoip ? xstrdup(r->opts.geoip) : NULL;
	r->opts.geoip = r->geoip;
	r->ready = ready;
	r->arg = arg;
	r->loaded = time(NULL);     /* the start-up compile has just ended */
	/* Test hook (util/testhooks.h): MXACL_TEST_RELOAD_MS=N makes each
	 * compile take N ms longer, so that a test's signals surely arrive
	 * during one, however fast the machine. Read here: getenv is not for
	 * threads. */
	r->test_delay_ms = (long)testhooks_ms("MXACL_TEST_RELOAD_MS");
	if (pipe2(r->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		int e = errno;
		free(r->path);
		free(r->geoip);
		free(r);
		errno = e;
		return NULL;
	}
	r->wake_ev = event_new(base, r->pipe[0], EV_READ | EV_PERSIST, wake_cb, r);
	if (!r->wake_ev || event_add(r->wake_ev, NULL) < 0) {
		reload_free(r);
		errno = ENOMEM;
		return NULL;
	}

	/* Build the engine's lazy tables here, on the loop thread (see the
	 * audit at the top): the attribute names, the acl type table and the
	 * regex match data. The one-line policy has one string acl. */
	attr_lookup("sender", 6);
	struct diags dg;
	diags_init(&dg);
	program_unref(compile_string("(reload warm-up)",
					  "acl a sender /^a$/\naccess a\n", &dg));
	diags_free(&dg);
	return r;
}

void reload_free(struct reload *r)
{
	if (!r)
		return;
	struct reload_job *j = r->job;
	if (j) {
		/* the worker frees j: now if it is done, else when it is */
		pthread_mutex_lock(&j->mu);
		j->abandoned = true;
		pthread_cond_signal(&j->cond);
		pthread_mutex_unlock(&j->mu);
	}
	if (r->wake_ev)
		event_free(r->wake_ev);
	close(r->pipe[0]);
	close(r->pipe[1]);
	free(r->path);
	free(r->geoip);
	free(r);
}
