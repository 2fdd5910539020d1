/*
 * mxacld - the mxacl policy server for Postfix: flags and config settings,
 * start-up in the order a daemon needs (load the policy, open the log,
 * bind, detach, write the pid file, drop root, then the event loop), the
 * control socket (control.h), and the signals: SIGHUP reloads the policy,
 * SIGUSR1 reopens the log file, SIGTERM and SIGINT stop.
 *
 * Start-up problems are fatal (a message on stderr, exit 1); once serving,
 * nothing a client or a reload does stops the daemon.
 */
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/conn.h"
#include "daemon/control.h"
#include "daemon/listener.h"
#include "daemon/proc.h"
#include "daemon/reload.h"
#include "backends/dns.h"
#include "backends/runtime.h"
#include "backends/store.h"
#include "engine/compile.h"
#include "util/testhooks.h"
#include "grammar/diag.h"
#include "util/log.h"
#include "util/util.h"

#define MXACLD_VERSION "0.1"
#define MXACLD_CONFIG "/etc/mxacl/policy.conf"
#define MXACLD_LISTEN "inet:127.0.0.1:10040"

/* Limits; the timeouts are longer than Postfix's own waits, so that Postfix
 * (smtpd_policy_service_max_idle = 300s) closes an idle connection first. */
#define MXACLD_MAX_CONNS 1024
#define MXACLD_IDLE_TIMEOUT 600
#define MXACLD_REQUEST_TIMEOUT 30
/* How often the memory store is written to --state-file, in seconds. */
#define MXACLD_STATE_INTERVAL 300
/* Descriptors beyond the clients: listeners, log, backends. */
#define MXACLD_SPARE_FDS 64

/* What the command line set; unset values are NULL or -1. */
struct opts {
	const char *config;
	const char **listen;
	size_t nlisten, caplisten;
	const char *user;
	const char *pidfile;
	int daemonize;
	int socket_mode;
	const char *socket_owner;
	const char *log;
	const char *syslog_facility;
	const char *store;
	const char *state_file;
	const char *control;
	const char **dns;          /* --dns HOST:PORT, repeatable */
	size_t ndns, capdns;
	unsigned dns_timeout_ms;   /* --dns-timeout; 0: the default */
	struct load_opts load;     /* what the compiler takes from flags (--geoip) */
	double state_interval;     /* hidden: seconds between state saves */
	struct conn_limits lim;
};

/* The running daemon, for the signal callbacks. */
struct daemon {
	struct opts opts;
	char *config_path;             /* absolute once detached */
	struct settings boot;          /* the config's settings at start-up
	                                  (copies), to spot changes on reload */
	char *pidfile;                 /* absolute; NULL: none */
	struct event_base *base;
	struct runtime *rt;
	struct conn_pool *pool;
	struct listener **ls;
	size_t nls, capls;
	struct listener *control_ls;   /* --control; NULL: none */
	struct control *control;
	struct event *sig_ev[4];       /* SIGHUP, SIGTERM, SIGINT, SIGUSR1 */
	struct event *flush_ev;
	char *state_file;              /* absolute; NULL: none */
	struct event *state_ev;        /* periodic save of the memory store */
	struct reload *reload;         /* SIGHUP's compiles, off the loop */
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mxacld [options]\n"
		"  -c, --config FILE         policy file (default " MXACLD_CONFIG ")\n"
		"  -l, --listen ENDPOINT     inet:HOST:PORT, inet:[ADDR]:PORT or unix:PATH;\n"
		"                            repeatable (default " MXACLD_LISTEN ")\n"
		"      --socket-mode OCTAL   permissions of unix sockets (e.g. 0660)\n"
		"      --socket-owner USER[:GROUP]  owner of unix sockets\n"
		"      --user USER           run as USER after binding (start as root)\n"
		"      --pidfile FILE        write the PID to FILE; removed at exit\n"
		"  -d, --daemonize           detach from the terminal\n"
		"  -f, --foreground          stay in the foreground (the default)\n"
		"      --log DEST            stderr, syslog or a file (default stderr;\n"
		"                            syslog with -d)\n"
		"      --syslog-facility NAME  mail (default), daemon, user, local0..local7\n"
		"      --store URL           greylist and rate state: memory (default),\n"
		"                            redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]\n"
		"                            [?prefix=P&timeout=MS] or redis+unix:///PATH\n"
		"                            (docs/store.md)\n"
		"      --state-file FILE     keep the memory store in FILE across restarts\n"
		"      --geoip FILE          MaxMind DB for country acls (reopened on SIGHUP)\n"
		"      --dns HOST[:PORT]     DNS server for rbl/dnswl/rhsbl/spf acls; repeatable\n"
		"                            (default: /etc/resolv.conf)\n"
		"      --dns-timeout MS      a DNS lookup not answered in MS ms is a temporary\n"
		"                            failure (default 2000)\n"
		"      --control PATH        unix socket for mxacl grey (mode 0600, owned by\n"
		"                            the user mxacld runs as)\n"
		"  -h, --help                this text\n"
		"  -V, --version             the version\n"
		"Flags override the config's \"set\" statements. SIGHUP reloads the policy\n"
		"(and reopens the log file); SIGUSR1 only reopens the log file; SIGTERM stops.\n");
}

/* Whether the log goes somewhere else than stderr. */
static bool log_elsewhere;
/* The daemon being started, whose sockets a fatal error must remove. */
static struct daemon *starting;

/* A start-up error: on stderr, and in the log if it goes elsewhere. */
static void NORETURN PRINTF_LIKE(1, 2) die(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "mxacld: fatal: %s\n", msg);
	if (log_elsewhere)
		log_error("%s", msg);
	for (size_t i = 0; starting && i < starting->nls; i++)
		listener_close(starting->ls[i]);
	if (starting)
		listener_close(starting->control_ls);
	log_close();
	exit(1);
}

static void NORETURN PRINTF_LIKE(1, 2) usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("mxacld: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'mxacld --help'.\n", stderr);
	exit(2);
}

/* Seconds for a hidden timeout flag: positive, fractions allowed. */
static struct timeval parse_seconds(const char *flag, const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (!*s || *end || errno || !(v > 0) || v > 1e7)
		usage_error("%s: want a number of seconds, got \"%s\"", flag, s);
	struct timeval tv = { (time_t)v, (suseconds_t)((v - (double)(time_t)v) * 1e6) };
	return tv;
}

enum {
	OPT_USER = 256, OPT_PIDFILE, OPT_SOCKET_MODE, OPT_SOCKET_OWNER, OPT_LOG,
	OPT_SYSLOG_FACILITY, OPT_STORE, OPT_STATE_FILE, OPT_GEOIP, OPT_CONTROL, OPT_DNS,
	OPT_DNS_TIMEOUT,
	/* Hidden: for tests and for operators who read the source. Not in
	 * the config, so that the language does not grow knobs for them. */
	OPT_IDLE_TIMEOUT, OPT_REQUEST_TIMEOUT, OPT_MAX_CONNECTIONS, OPT_STATE_INTERVAL,
};

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "daemonize", no_argument, NULL, 'd' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "user", required_argument, NULL, OPT_USER },
		{ "pidfile", required_argument, NULL, OPT_PIDFILE },
		{ "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
		{ "socket-owner", required_argument, NULL, OPT_SOCKET_OWNER },
		{ "log", required_argument, NULL, OPT_LOG },
		{ "syslog-facility", required_argument, NULL, OPT_SYSLOG_FACILITY },
		{ "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
		{ "request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT },
		{ "max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS },
		{ "store", required_argument, NULL, OPT_STORE },
		{ "state-file", required_argument, NULL, OPT_STATE_FILE },
		{ "geoip", required_argument, NULL, OPT_GEOIP },
		{ "control", required_argument, NULL, OPT_CONTROL },
		{ "dns", required_argument, NULL, OPT_DNS },
		{ "dns-timeout", required_argument, NULL, OPT_DNS_TIMEOUT },
		{ "state-interval", required_argument, NULL, OPT_STATE_INTERVAL },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	char *end;

	*o = (struct opts){ .daemonize = -1, .socket_mode = -1 };
	o->lim.max_conns = MXACLD_MAX_CONNS;
	o->lim.idle.tv_sec = MXACLD_IDLE_TIMEOUT;
	o->lim.request.tv_sec = MXACLD_REQUEST_TIMEOUT;
	while ((ch = getopt_long(argc, argv, "c:l:dfhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->config = optarg;
			break;
		case 'l':
			VEC_PUSH(o->listen, o->nlisten, o->caplisten, optarg);
			break;
		case 'd':
			o->daemonize = 1;
			break;
		case 'f':
			o->daemonize = 0;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("mxacld %s\n", MXACLD_VERSION);
			exit(0);
		case OPT_USER:
			o->user = optarg;
			break;
		case OPT_PIDFILE:
			o->pidfile = optarg;
			break;
		case OPT_SOCKET_MODE: {
			long m = strtol(optarg, &end, 8);
			if (!*optarg || *end || m < 0 || m > 07777)
				usage_error("--socket-mode: want an octal mode such as 0660, got \"%s\"",
					    optarg);
			o->socket_mode = (int)m;
			break;
		}
		case OPT_SOCKET_OWNER:
			o->socket_owner = optarg;
			break;
		case OPT_LOG:
			o->log = optarg;
			break;
		case OPT_SYSLOG_FACILITY:
			o->syslog_facility = optarg;
			break;
		case OPT_STORE:
			o->store = optarg;
			break;
		case OPT_STATE_FILE:
			o->state_file = optarg;
			break;
		case OPT_GEOIP:
			o->load.geoip = optarg;
			break;
		case OPT_CONTROL:
			o->control = optarg;
			break;
		case OPT_DNS: {
			char fwd[80], msg[160];
			if (!dns_server_parse(optarg, fwd, sizeof fwd, msg, sizeof msg))
				usage_error("--dns: %s", msg);
			VEC_PUSH(o->dns, o->ndns, o->capdns, optarg);
			break;
		}
		case OPT_DNS_TIMEOUT: {
			errno = 0;
			unsigned long ms = strtoul(optarg, &end, 10);
			if (!*optarg || *end || errno || ms < 1 || ms > 600000)
				usage_error("--dns-timeout: want milliseconds 1..600000, got \"%s\"", optarg);
			o->dns_timeout_ms = (unsigned)ms;
			break;
		}
		case OPT_STATE_INTERVAL: {
			struct timeval tv = parse_seconds("--state-interval", optarg);
			o->state_interval = (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
			break;
		}
		case OPT_IDLE_TIMEOUT:
			o->lim.idle = parse_seconds("--idle-timeout", optarg);
			break;
		case OPT_REQUEST_TIMEOUT:
			o->lim.request = parse_seconds("--request-timeout", optarg);
			break;
		case OPT_MAX_CONNECTIONS: {
			errno = 0;
			unsigned long n = strtoul(optarg, &end, 10);
			if (!*optarg || *end || errno || n < 1 || n > 1000000)
				usage_error("--max-connections: want 1..1000000, got \"%s\"", optarg);
			o->lim.max_conns = n;
			break;
		}
		default:
			fputs("Try 'mxacld --help'.\n", stderr);
			exit(2);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument \"%s\"", argv[optind]);
	if (!o->config)
		o->config = MXACLD_CONFIG;
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/* Keep the config's start-up settings past the program they came from. */
static void settings_copy(struct settings *dst, const struct settings *src)
{
	*dst = *src;
	dst->listen = src->nlisten ? xcalloc(src->nlisten, sizeof *dst->listen) : NULL;
	for (size_t i = 0; i < src->nlisten; i++)
		dst->listen[i] = xstrdup(src->listen[i]);
	dst->user = dup_or_null(src->user);
	dst->pidfile = dup_or_null(src->pidfile);
	dst->socket_owner = dup_or_null(src->socket_owner);
	dst->log = dup_or_null(src->log);
	dst->syslog_facility = dup_or_null(src->syslog_facility);
	dst->store = dup_or_null(src->store);
	dst->state_file = dup_or_null(src->state_file);
	dst->control = dup_or_null(src->control);
	dst->dns = src->ndns ? xcalloc(src->ndns, sizeof *dst->dns) : NULL;
	for (size_t i = 0; i < src->ndns; i++)
		dst->dns[i] = xstrdup(src->dns[i]);
}

static void settings_free(struct settings *s)
{
	for (size_t i = 0; i < s->nlisten; i++)
		free((char *)s->listen[i]);
	free(s->listen);
	free((char *)s->user);
	free((char *)s->pidfile);
	free((char *)s->socket_owner);
	free((char *)s->log);
	free((char *)s->syslog_facility);
	free((char *)s->store);
	free((char *)s->state_file);
	free((char *)s->control);
	for (size_t i = 0; i < s->ndns; i++)
		free((char *)s->dns[i]);
	free(s->dns);
}

static bool str_same(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool list_same(const char *const *a, size_t na, const char *const *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

/*
 * Start-up settings are applied once (sockets are bound and root is gone
 * by the time of a reload): say so for each one a reload would change.
 */
static void warn_startup_changes(const struct daemon *d, const struct settings *now)
{
	const struct opts *o = &d->opts;
	const struct settings *b = &d->boot;
	struct {
		const char *name;
		bool overridden, same;
	} s[] = {
		{ "listen", o->nlisten > 0, list_same(b->listen, b->nlisten, now->listen, now->nlisten) },
		{ "user", o->user != NULL, str_same(b->user, now->user) },
		{ "pidfile", o->pidfile != NULL, str_same(b->pidfile, now->pidfile) },
		{ "daemonize", o->daemonize >= 0, b->daemonize == now->daemonize },
		{ "socket_mode", o->socket_mode >= 0, b->socket_mode == now->socket_mode },
		{ "socket_owner", o->socket_owner != NULL,
		  str_same(b->socket_owner, now->socket_owner) },
		{ "log", o->log != NULL, str_same(b->log, now->log) },
		{ "syslog_facility", o->syslog_facility != NULL,
		  str_same(b->syslog_facility, now->syslog_facility) },
		{ "store", o->store != NULL, str_same(b->store, now->store) },
		{ "state_file", o->state_file != NULL, str_same(b->state_file, now->state_file) },
		{ "control", o->control != NULL, str_same(b->control, now->control) },
		{ "dns", o->ndns > 0, list_same(b->dns, b->ndns, now->dns, now->ndns) },
	};
	for (size_t i = 0; i < ARRAY_LEN(s); i++)
		if (!s[i].overridden && !s[i].same)
			log_warning("reload: \"set %s\" changed; it takes effect when mxacld is "
				    "restarted", s[i].name);
}

/* A reload compiled (reload.h): serve it from now on; the reloader frees
 * the old one off the loop. */
static struct program *reload_ready(struct program *p, void *arg)
{
	struct daemon *d = arg;
	struct program *old = conn_pool_program(d->pool);
	program_ref(old);
	warn_startup_changes(d, program_settings(p));
	conn_pool_set_program(d->pool, p);
	return old;
}

/*
 * SIGHUP: reopen the log, compile the config again off the loop
 * (reload.h); it is switched to only when it loads without errors.
 * Requests in flight finish on the program they started on (their VMs
 * hold it).
 */
static void reload(struct daemon *d)
{
	char err[512];
	if (!log_reopen(err, sizeof err))
		log_warning("reload: %s", err);
	reload_request(d->reload);
}

/* A background save has ended (store_memory_save_start). */
static void state_saved(void *arg, const struct store_save_result *r)
{
	struct daemon *d = arg;
	if (r->ok)
		log_info("state: saved %lu entries to %s in %.2f s (process %ld; the loop paused "
			 "%.1f ms to fork)", r->entries, d->state_file, r->seconds, r->pid,
			 r->fork_ms);
	else
		log_error("state: %s", r->error);
}

/*
 * The periodic save: a forked child writes a snapshot (tmp + fsync +
 * rename) while the loop serves on; skipped while one is still running
 * or while the file is still loading.
 */
static void save_state(struct daemon *d)
{
	char *err = NULL;
	if (!d->state_file || !store_is_memory(runtime_store(d->rt)))
		return;
	struct store_memory_stats st;
	store_memory_stats(runtime_store(d->rt), &st);
	if (st.loading)
		return;
	int r = store_memory_save_start(runtime_store(d->rt), d->state_file, state_saved, d, &err);
	if (r == 0)
		log_warning("state: the previous save of %s is still running; skipping this one",
			    d->state_file);
	if (r < 0) {
		log_error("state: %s", err);
		free(err);
	}
}

static void state_cb(evutil_socket_t fd, short what, void *arg)
{
	save_state(arg);
}

/*
 * The final save at exit, in this process. Never over a file that has not
 * finished loading: the store holds only part of it (or nothing).
 */
static void save_state_final(struct daemon *d)
{
	char *err = NULL;
	if (!d->state_file)
		return;
	struct store_memory_stats st;
	store_memory_stats(runtime_store(d->rt), &st);
	if (st.loading) {
		log_warning("state: not saved: %s had not finished loading; it is left as it was",
			    d->state_file);
		return;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!store_memory_save(runtime_store(d->rt), d->state_file, &err)) {
		log_error("state: %s", err);
		free(err);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_info("state: saved %zu entries to %s in %.2f s", st.entries, d->state_file,
		 (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}

/* The state file is loaded: log what came of it. */
static void state_loaded(void *arg, const struct store_load_result *r)
{
	struct daemon *d = arg;
	struct strbuf b;
	sb_init(&b);
	sb_printf(&b, "state: loaded %lu entr%s from %s in %.2f s (%lu expired dropped",
		  r->loaded, r->loaded == 1 ? "y" : "ies", d->state_file, r->seconds, r->expired);
	if (r->skipped)
		sb_printf(&b, ", %lu bad line%s skipped, the first at line %lu", r->skipped,
			  r->skipped == 1 ? "" : "s", r->first_bad);
	sb_addc(&b, ')');
	if (r->error)
		sb_printf(&b, "; stopped early: %s", r->error);
	if (r->aside)
		sb_printf(&b, "; the original kept as %s", r->aside);
	else if (r->skipped || r->error)
		sb_adds(&b, "; the original could not be kept aside, the next save replaces it");
	sb_adds(&b, "; greylist and rate acls answer from the store again");
	if (r->skipped || r->error)
		log_error("%s", b.s);
	else
		log_info("%s", b.s);
	sb_free(&b);
}

/* SIGTERM, SIGINT: stop accepting, drop the clients, leave the loop. */
static void stop(struct daemon *d, int sig)
{
	log_info("stopping on %s", strsignal(sig));
	reload_free(d->reload);        /* a compile running is abandoned */
	d->reload = NULL;
	for (size_t i = 0; i < d->nls; i++)
		listener_close(d->ls[i]);
	d->nls = 0;
	listener_close(d->control_ls);
	d->control_ls = NULL;
	conn_pool_free(d->pool);
	d->pool = NULL;
	control_free(d->control);
	d->control = NULL;
	event_base_loopbreak(d->base);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	if (!d->pool)
		return;     /* stopping: signals caught in the same pass */
	if (sig == SIGHUP) {
		reload(arg);
	} else if (sig == SIGUSR1) {
		/* logrotate's convention: reopen the log file, nothing else. */
		char err[512];
		if (log_reopen(err, sizeof err))
			log_info("log reopened on SIGUSR1");
		else
			log_warning("SIGUSR1: %s; still logging to the file already open", err);
	} else {
		stop(arg, (int)sig);
	}
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	log_flush();
}

/* Log lines wait for the end of the loop iteration: one write for all. */
static void flush_hook(void *arg)
{
	event_active(arg, EV_TIMEOUT, 1);
}

/* Enough descriptors for max_conns clients, if the hard limit allows. */
static void raise_fd_limit(size_t max_conns)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)max_conns + MXACLD_SPARE_FDS;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < need)
		log_warning("only %lu file descriptors (RLIMIT_NOFILE): fewer than %zu clients can "
			    "be served at once", (unsigned long)rl.rlim_cur, max_conns);
}

/*
 * The resolver: --dns (or "set dns") servers and --dns-timeout make it now;
 * otherwise the runtime makes one from /etc/resolv.conf when an rbl acl
 * first needs it. Either way after daemonising, on this process's loop.
 */
static void open_dns(struct daemon *d, const struct settings *set)
{
	struct dns_opts o = { .servers = d->opts.ndns ? d->opts.dns : set->dns,
			      .nservers = d->opts.ndns ? d->opts.ndns : set->ndns,
			      .timeout_ms = d->opts.dns_timeout_ms };
	if (!o.nservers && !o.timeout_ms)
		return;
	char *err = NULL;
	struct dns *dns = dns_new(d->base, &o, &err);
	if (!dns)
		die("dns: %s", err);
	runtime_set_dns(d->rt, dns);
	if (o.nservers) {
		struct strbuf b;
		sb_init(&b);
		for (size_t i = 0; i < o.nservers; i++)
			sb_printf(&b, "%s%s", i ? " " : "", o.servers[i]);
		log_info("dns: asking %s", b.s);
		sb_free(&b);
	}
}

/*
 * The state store: the memory store (the runtime's own) or a URL's; a
 * memory store is loaded from the state file and saved to it every
 * MXACLD_STATE_INTERVAL seconds and at exit. A store that is down is not
 * fatal: its acls answer as temporary failures until it is back.
 */
static void open_store(struct daemon *d, const char *url, const char *state_file, bool abs)
{
	char *err = NULL;
	if (url && strcmp(url, "memory")) {
		if (state_file)
			die("--state-file keeps the memory store; the store is %s", url);
		struct store *st = store_open(d->base, url, &err);
		if (!st)
			die("%s", err);
		runtime_set_store(d->rt, st);
		return;
	}
	if (!state_file)
		return;
	d->state_file = abs ? proc_abs_path(state_file) : xstrdup(state_file);
	/* Loaded by a thread: the loop serves meanwhile, the acls answer per
	 * tempfail=, and SIGTERM is honoured (the file is then left alone). */
	int r = store_memory_load_start(runtime_store(d->rt), d->state_file, time(NULL),
					state_loaded, d, &err);
	if (r < 0)
		die("--state-file: %s", err);
	log_info("state: kept in %s", d->state_file);
	if (r > 0)
		log_info("state: loading %s; greylist and rate acls answer as temporary failures "
			 "until it is loaded", d->state_file);
	else
		log_info("state: no file yet; starting with an empty store");
	double every = d->opts.state_interval > 0 ? d->opts.state_interval : MXACLD_STATE_INTERVAL;
	struct timeval tv = { (time_t)every, (suseconds_t)((every - (double)(time_t)every) * 1e6) };
	d->state_ev = event_new(d->base, -1, EV_PERSIST, state_cb, d);
	event_add(d->state_ev, &tv);
}

/*
 * Bind the control socket (control.h). It edits greylisting, so only its
 * owner may connect, and that is the user mxacld serves as (root until
 * privileges drop): mode 0600 and user's ids, whatever socket_mode says.
 */
static void open_control(struct daemon *d, const char *path, const char *user)
{
	struct listener_perms perms = { .mode = 0600, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	struct strbuf err;
	sb_init(&err);
	if (user && !proc_owner(user, &perms.uid, &perms.gid, &err))
		die("user %s: %s", user, err.s);
	char *spec = strncmp(path, "unix:", 5) ? xasprintf("unix:%s", path) : xstrdup(path);
	struct listener **v = NULL;
	size_t n = 0, cap = 0;
	bool ok = listener_open(spec, &perms, &v, &n, &cap, &err);
	free(spec);
	if (!ok)
		die("cannot open the control socket %s: %s", path, err.s);
	d->control_ls = v[0];
	free(v);
	sb_free(&err);
}

int main(int argc, char **argv)
{
	struct daemon d = { 0 };
	struct opts *o = &d.opts;
	struct strbuf err;
	char errbuf[512];
	sigset_t sigs, oldsigs;

	/* A client that goes away must not kill us on write. */
	signal(SIGPIPE, SIG_IGN);
	/* Hold these until the loop handles them: a SIGHUP that arrives
	 * while we start must not kill us (its default action). */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGUSR1);
	sigprocmask(SIG_BLOCK, &sigs, &oldsigs);

	parse_args(argc, argv, o);
	testhooks_register_from_env();
	sb_init(&err);
	starting = &d;

	/* The policy first: everything else may come from its settings. */
	struct diags dg;
	diags_init(&dg);
	struct program *prog = compile_file(o->config, &o->load, &dg);
	if (dg.n)
		diags_print(&dg, stderr);
	if (!prog) {
		fprintf(stderr, "mxacld: fatal: %s: %zu error%s\n", o->config, dg.nerrors,
			dg.nerrors == 1 ? "" : "s");
		exit(1);
	}
	diags_free(&dg);
	const struct settings *set = program_settings(prog);
	settings_copy(&d.boot, set);

	/* Flags win over "set" statements. */
	const char **listen = o->nlisten ? o->listen : set->listen;
	size_t nlisten = o->nlisten ? o->nlisten : set->nlisten;
	static const char *default_listen[] = { MXACLD_LISTEN };
	if (nlisten == 0) {
		listen = default_listen;
		nlisten = 1;
	}
	bool daemonize = (o->daemonize >= 0 ? o->daemonize : set->daemonize) == 1;
	int socket_mode = o->socket_mode >= 0 ? o->socket_mode : set->socket_mode;
	const char *socket_owner = o->socket_owner ? o->socket_owner : set->socket_owner;
	const char *user = o->user ? o->user : set->user;
	const char *pidfile = o->pidfile ? o->pidfile : set->pidfile;
	const char *logdest = o->log ? o->log : set->log ? set->log
						   : daemonize ? "syslog" : "stderr";
	const char *facility = o->syslog_facility ? o->syslog_facility : set->syslog_facility;

	if (!log_open(logdest, "mxacld", facility, errbuf, sizeof errbuf))
		die("%s", errbuf);
	log_elsewhere = strcmp(logdest, "stderr") != 0;

	struct listener_perms perms = { .mode = socket_mode, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	if (socket_owner && !proc_owner(socket_owner, &perms.uid, &perms.gid, &err))
		die("socket owner %s: %s", socket_owner, err.s);
	for (size_t i = 0; i < nlisten; i++) {
		sb_reset(&err);
		if (!listener_open(listen[i], &perms, &d.ls, &d.nls, &d.capls, &err))
			die("cannot listen on %s: %s", listen[i], err.s);
	}
	const char *control = o->control ? o->control : set->control;
	if (control)
		open_control(&d, control, user);
	raise_fd_limit(o->lim.max_conns);

	/* Paths are kept absolute: a detached daemon lives in "/". */
	d.config_path = daemonize ? proc_abs_path(o->config) : xstrdup(o->config);
	char *geoip_abs = NULL;        /* a reload after detaching runs in "/" */
	if (daemonize && o->load.geoip)
		o->load.geoip = geoip_abs = proc_abs_path(o->load.geoip);
	d.pidfile = pidfile ? proc_abs_path(pidfile) : NULL;
	int ready_fd = -1;
	sb_reset(&err);
	if (daemonize) {
		if (!proc_daemonize(&ready_fd, &err))
			die("%s", err.s);
		log_refresh_pid();
	}
	if (d.pidfile && !proc_write_pidfile(d.pidfile, &err))
		die("%s", err.s);
	if (user && !proc_drop_privileges(user, &err))
		die("%s", err.s);

	/* The loop, after the fork: an epoll descriptor is not inherited. */
	d.base = event_base_new();
	if (!d.base)
		die("cannot create the event loop");
	d.rt = runtime_new(d.base);
	open_store(&d, o->store ? o->store : set->store,
		   o->state_file ? o->state_file : set->state_file, daemonize);
	open_dns(&d, set);
	d.pool = conn_pool_new(d.base, d.rt, prog, &o->lim);
	d.reload = reload_new(d.base, d.config_path, &o->load, reload_ready, &d);
	if (!d.reload)
		die("reload: %s", strerror(errno));
	for (size_t i = 0; i < d.nls; i++)
		if (!listener_start(d.ls[i], d.base, conn_pool_accept, d.pool))
			die("cannot accept on %s", listener_name(d.ls[i]));
	if (d.control_ls) {
		d.control = control_new(d.base, d.rt);
		if (!listener_start(d.control_ls, d.base, control_accept, d.control))
			die("cannot accept on %s", listener_name(d.control_ls));
	}
	static const int sig_list[] = { SIGHUP, SIGTERM, SIGINT, SIGUSR1 };
	for (size_t i = 0; i < ARRAY_LEN(sig_list); i++) {
		d.sig_ev[i] = evsignal_new(d.base, sig_list[i], signal_cb, &d);
		if (!d.sig_ev[i] || evsignal_add(d.sig_ev[i], NULL) < 0)
			die("cannot handle signal %d", sig_list[i]);
	}
	d.flush_ev = event_new(d.base, -1, 0, flush_cb, NULL);
	log_set_flush_hook(flush_hook, d.flush_ev);
	sigprocmask(SIG_SETMASK, &oldsigs, NULL);

	sb_reset(&err);
	for (size_t i = 0; i < d.nls; i++)
		sb_printf(&err, "%s%s", i ? " " : "", listener_name(d.ls[i]));
	if (d.control_ls)
		sb_printf(&err, ", control %s", listener_name(d.control_ls));
	log_info("mxacld %s started: policy %s, listening on %s", MXACLD_VERSION,
		 d.config_path, err.s);
	if (ready_fd >= 0)
		proc_daemon_ready(ready_fd, strcmp(logdest, "stderr") == 0);

	event_base_dispatch(d.base);

	/* Normally stop() has closed these; also when the loop ran dry. */
	for (size_t i = 0; i < d.nls; i++)
		listener_close(d.ls[i]);
	listener_close(d.control_ls);
	reload_free(d.reload);
	conn_pool_free(d.pool);
	control_free(d.control);
	log_set_flush_hook(NULL, NULL);
	event_free(d.flush_ev);
	for (size_t i = 0; i < ARRAY_LEN(d.sig_ev); i++)
		event_free(d.sig_ev[i]);
	save_state_final(&d);
	if (d.state_ev)
		event_free(d.state_ev);
	free(d.state_file);
	runtime_free(d.rt);
	event_base_free(d.base);
	sb_reset(&err);
	if (d.pidfile && !proc_remove_pidfile(d.pidfile, &err))
		log_warning("%s", err.s);
	log_info("stopped");
	log_close();

	settings_free(&d.boot);
	free(d.ls);
	free(o->listen);
	free(o->dns);
	free(d.config_path);
	free(geoip_abs);
	free(d.pidfile);
	sb_free(&err);
	return 0;
}
