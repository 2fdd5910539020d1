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
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/conn.h"
#include "daemon/control.h"
#include "daemon/listener.h"
#include "daemon/metrics.h"
#include "daemon/notify.h"
#include "daemon/proc.h"
#include "daemon/reload.h"
#include "backends/dns.h"
#include "backends/runtime.h"
#include "backends/store.h"
#include "engine/compile.h"
#include "engine/recache.h"
#include "util/testhooks.h"
#include "grammar/diag.h"
#include "util/log.h"
#include "util/digest.h"
#include "util/util.h"

#define MXACLD_VERSION "0.1"

/* The flags, their defaults and limits are rows of engine/settings.c's
 * table. The timeouts there are longer than Postfix's own waits, so that
 * Postfix (smtpd_policy_service_max_idle = 300s) closes an idle connection
 * first. */
/* Descriptors beyond the clients: listeners, log, backends. */
#define MXACLD_SPARE_FDS 64

/* What the command line gave. */
struct opts {
	struct settings flags;     /* the flags (settings.h): unset values are
	                              not set, flag-only ones have their defaults */
	struct load_opts load;     /* what the compiler takes from flags (--geoip) */
	struct conn_limits lim;    /* from the flags */
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
	struct metrics *metrics;       /* --metrics; NULL: none */
	struct event *sig_ev[4];       /* SIGHUP, SIGTERM, SIGINT, SIGUSR1 */
	struct event *flush_ev;
	char *state_file;              /* absolute; NULL: none */
	struct event *state_ev;        /* periodic save of the memory store */
	struct reload *reload;         /* SIGHUP's compiles, off the loop */
};

static void usage(FILE *out)
{
	fputs("usage: mxacld [options]\n", out);
	settings_print_help(out);
	fputs("Flags override the config's \"set\" statements. SIGHUP reloads the policy\n"
	      "(and reopens the log file); SIGUSR1 only reopens the log file; SIGTERM stops.\n",
	      out);
}

/* Whether the log goes somewhere else than stderr. */
static bool log_elsewhere;
/* The daemon being started, whose sockets a fatal error must remove. */
static struct daemon *starting;

/* The regex databases kept between compiles (--cache-dir; without it, only
 * the count of what was built, for the log). A global, not the daemon's:
 * a reload worker abandoned at exit may still be using it, so it is never
 * freed. */
static struct recache *regex_cache;

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

/*
 * The flags, from the settings table: each row with a flag is a getopt
 * option (its short flag, or 256 + its index), parsed by its kind.
 */
static void parse_args(int argc, char **argv, struct opts *o)
{
	struct option *longopts = xcalloc(settings_count + 1, sizeof *longopts);
	char *shorts = xcalloc(2 * settings_count + 1, 1);
	size_t nlong = 0, nshort = 0;
	for (size_t i = 0; i < settings_count; i++) {
		const struct setting *row = &settings_table[i];
		if (!row->flag)
			continue;
		bool arg = row->kind != SETTING_YESNO && row->kind != SETTING_ACTION;
		longopts[nlong++] = (struct option){ row->flag, arg ? required_argument : no_argument,
						     NULL, row->short_flag ? row->short_flag
									   : 256 + (int)i };
		if (row->short_flag) {
			shorts[nshort++] = row->short_flag;
			if (arg)
				shorts[nshort++] = ':';
		}
	}
	settings_init(&o->flags);
	int ch;
	while ((ch = getopt_long(argc, argv, shorts, longopts, NULL)) != -1) {
		const struct setting *row = NULL;
		for (size_t i = 0; i < settings_count && !row; i++)
			if (ch == (settings_table[i].short_flag ? settings_table[i].short_flag
								: 256 + (int)i) &&
			    settings_table[i].flag)
				row = &settings_table[i];
		if (!row) {          /* getopt has said what is wrong */
			fputs("Try 'mxacld --help'.\n", stderr);
			exit(2);
		}
		if (row->kind == SETTING_ACTION) {
			if (strcmp(row->flag, "help") == 0)
				usage(stdout);
			else if (strcmp(row->flag, "version") == 0)
				printf("mxacld %s\n", MXACLD_VERSION);
			else if (strcmp(row->flag, "settings-markdown") == 0)
				settings_print_markdown(stdout);
			else if (strcmp(row->flag, "settings-man") == 0)
				settings_print_man(stdout);
			exit(0);
		}
		char err[512];
		if (!settings_parse_flag(&o->flags, row, optarg, err, sizeof err))
			usage_error("%s", err);
	}
	free(longopts);
	free(shorts);
	if (optind < argc)
		usage_error("unexpected argument \"%s\"", argv[optind]);
	settings_default_flag_only(&o->flags);
	o->load.geoip = o->flags.geoip;
	o->load.dryrun = o->flags.dryrun;
	o->load.no_text = true;     /* the daemon never disassembles */
	o->lim = (struct conn_limits){ .max_conns = o->flags.max_connections,
				       .idle = o->flags.idle_timeout,
				       .request = o->flags.request_timeout };
}

/*
 * Start-up settings are applied once (sockets are bound and root is gone
 * by the time of a reload): say so for each one a reload would change.
 */
static void warn_changed(const struct setting *row, void *arg)
{
	log_warning("reload: \"set %s\" changed; it takes effect when mxacld is restarted",
		    row->name);
}

static void warn_startup_changes(const struct daemon *d, const struct settings *now)
{
	settings_startup_changes(&d->opts.flags, &d->boot, now, warn_changed, NULL);
}

/* The policy now serving, for status and metrics (runtime.h). */
static void note_policy(struct daemon *d)
{
	char hex[65];
	if (!digest_sha256_file(d->config_path, hex))
		log_warning("cannot read %s for its SHA-256: %s", d->config_path, strerror(errno));
	runtime_set_policy(d->rt, d->config_path, hex, time(NULL));
}

/* A reload compiled (reload.h): serve it from now on; the reloader frees
 * the old one off the loop. */
static struct program *reload_ready(struct program *p, void *arg)
{
	struct daemon *d = arg;
	if (!p) {                      /* it had errors */
		runtime_count(d->rt, RC_reloads_failed, 1);
		return NULL;
	}
	runtime_count(d->rt, RC_reloads, 1);
	struct program *old = conn_pool_program(d->pool);
	program_ref(old);
	warn_startup_changes(d, program_settings(p));
	conn_pool_set_program(d->pool, p);
	note_policy(d);
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
	notify_stopping("stopping");
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
	metrics_free(d->metrics);
	d->metrics = NULL;
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
 * The resolver: --dns (or "set dns") servers and --dns-timeout make it now
 * (set: the flags merged with the file);
 * otherwise the runtime makes one from /etc/resolv.conf when an rbl acl
 * first needs it. Either way after daemonising, on this process's loop.
 */
static void open_dns(struct daemon *d, const struct settings *set)
{
	struct dns_opts o = { .servers = set->dns, .nservers = set->ndns,
			      .timeout_ms = set->dns_timeout_ms };
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
 * --state-interval seconds (5 minutes) and at exit. A store that is down is not
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
	d->state_ev = event_new(d->base, -1, EV_PERSIST, state_cb, d);
	event_add(d->state_ev, &d->opts.flags.state_interval);
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

	/* The policy first: everything else may come from its settings. The
	 * whole policy, regex databases included, is compiled before a socket
	 * is bound: mxacld never answers with part of a policy, and systemd
	 * hears READY=1 only once it serves (docs/dev/performance.md,
	 * "Start-up"). The regex cache is what makes a restart fast. */
	{
		char *dir = o->flags.cache_dir ? proc_abs_path(o->flags.cache_dir) : NULL;
		regex_cache = recache_new(dir, "no --cache-dir");
		free(dir);
		o->load.recache = regex_cache;
	}
	struct diags dg;
	diags_init(&dg);
	struct program *prog = compile_file(o->flags.config, &o->load, &dg);
	if (dg.n)
		diags_print(&dg, stderr);
	if (!prog) {
		fprintf(stderr, "mxacld: fatal: %s: %zu error%s\n", o->flags.config, dg.nerrors,
			dg.nerrors == 1 ? "" : "s");
		exit(1);
	}
	diags_free(&dg);
	const struct settings *set = program_settings(prog);
	settings_copy(&d.boot, set);

	/* Flags win over "set" statements; then the table's defaults. */
	struct settings eff;
	settings_merge(&eff, &o->flags, set);
	bool daemonize = eff.daemonize == 1;
	const char *user = eff.user;
	const char *logdest = eff.log ? eff.log : daemonize ? "syslog" : "stderr";

	if (!log_open(logdest, "mxacld", eff.syslog_facility, errbuf, sizeof errbuf))
		die("%s", errbuf);
	log_elsewhere = strcmp(logdest, "stderr") != 0;
	recache_flush(regex_cache);     /* how the start-up compile built its regexes */

	struct listener_perms perms = { .mode = eff.socket_mode, .uid = (uid_t)-1,
					.gid = (gid_t)-1 };
	if (eff.socket_owner && !proc_owner(eff.socket_owner, &perms.uid, &perms.gid, &err))
		die("socket owner %s: %s", eff.socket_owner, err.s);
	for (size_t i = 0; i < eff.nlisten; i++) {
		sb_reset(&err);
		if (!listener_open(eff.listen[i], &perms, &d.ls, &d.nls, &d.capls, &err))
			die("cannot listen on %s: %s", eff.listen[i], err.s);
	}
	if (eff.control)
		open_control(&d, eff.control, user);
	raise_fd_limit(o->lim.max_conns);

	/* Paths are kept absolute: a detached daemon lives in "/". */
	d.config_path = daemonize ? proc_abs_path(o->flags.config) : xstrdup(o->flags.config);
	char *geoip_abs = NULL;        /* a reload after detaching runs in "/" */
	if (daemonize && o->load.geoip)
		o->load.geoip = geoip_abs = proc_abs_path(o->load.geoip);
	d.pidfile = eff.pidfile ? proc_abs_path(eff.pidfile) : NULL;
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
	open_store(&d, eff.store, eff.state_file, daemonize);
	open_dns(&d, &eff);
	runtime_set_version(d.rt, MXACLD_VERSION);
	d.pool = conn_pool_new(d.base, d.rt, prog, &o->lim);
	note_policy(&d);
	if (eff.metrics) {
		char *merr = NULL;
		d.metrics = metrics_new(d.base, d.rt, eff.metrics, &merr);
		if (!d.metrics)
			die("%s", merr);
	}
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
	if (d.metrics)
		sb_printf(&err, ", metrics http://%s/metrics", metrics_name(d.metrics));
	log_info("mxacld %s started: policy %s, listening on %s", MXACLD_VERSION,
		 d.config_path, err.s);
	if (ready_fd >= 0)
		proc_daemon_ready(ready_fd, strcmp(logdest, "stderr") == 0);
	/* systemd's Type=notify: the policy compiled, every socket accepts */
	{
		char when[32];
		struct tm tm;
		time_t now = time(NULL);
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));
		char *status = xasprintf("serving %s, loaded %s; listening on %s", d.config_path,
					 when, err.s);
		notify_ready(status);
		free(status);
	}

	event_base_dispatch(d.base);

	/* Normally stop() has closed these; also when the loop ran dry. */
	for (size_t i = 0; i < d.nls; i++)
		listener_close(d.ls[i]);
	listener_close(d.control_ls);
	reload_free(d.reload);
	conn_pool_free(d.pool);
	control_free(d.control);
	metrics_free(d.metrics);
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
	settings_free(&eff);
	settings_free(&o->flags);
	free(d.ls);
	free(d.config_path);
	free(geoip_abs);
	free(d.pidfile);
	sb_free(&err);
	return 0;
}
