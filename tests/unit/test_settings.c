/*
 * Unit tests for engine/settings (the settings table) and util/hostport:
 * each value kind through a flag and through "set", with its stored value
 * or its exact message; the merge (flags win, then the file, then the
 * defaults); the start-up-only changes a reload reports; copies; the help
 * and docs printers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/settings.h"
#include "grammar/ast.h"
#include "grammar/diag.h"
#include "tests/unit/unit.h"
#include "util/hostport.h"
#include "util/util.h"

/* The row of flag f (without "--"). */
static const struct setting *row_of_flag(const char *f)
{
	for (size_t i = 0; i < settings_count; i++)
		if (settings_table[i].flag && strcmp(settings_table[i].flag, f) == 0)
			return &settings_table[i];
	ck_abort_msg("no row with flag --%s", f);
	return NULL;
}

/* ---- flags -------------------------------------------------------------------- */

static const struct {
	const char *flag, *arg;
	const char *err;          /* NULL: accepted */
	const char *field;        /* what to check when accepted */
	long long want;           /* ints; timeouts in microseconds */
	const char *want_s;       /* strings; the last element of lists */
} flag_cases[] = {
#define FLAG_ERR(f, a, e) { f, a, e, NULL, 0, NULL }
	{ "socket-mode", "0660", NULL, "socket_mode", 0660, NULL },
	{ "socket-mode", "7777", NULL, "socket_mode", 07777, NULL },
	FLAG_ERR("socket-mode", "rw",
		 "--socket-mode: want an octal mode such as 0660, got \"rw\""),
	FLAG_ERR("socket-mode", "010000",
		 "--socket-mode: want an octal mode such as 0660, got \"010000\""),
	FLAG_ERR("socket-mode", "", "--socket-mode: want an octal mode such as 0660, got \"\""),
	FLAG_ERR("socket-mode", "0668",
		 "--socket-mode: want an octal mode such as 0660, got \"0668\""),
	{ "dns-timeout", "1", NULL, "dns_timeout_ms", 1, NULL },
	{ "dns-timeout", "600000", NULL, "dns_timeout_ms", 600000, NULL },
	FLAG_ERR("dns-timeout", "0", "--dns-timeout: want milliseconds 1..600000, got \"0\""),
	FLAG_ERR("dns-timeout", "600001",
		 "--dns-timeout: want milliseconds 1..600000, got \"600001\""),
	FLAG_ERR("dns-timeout", "5x", "--dns-timeout: want milliseconds 1..600000, got \"5x\""),
	FLAG_ERR("dns-timeout", "-1", "--dns-timeout: want milliseconds 1..600000, got \"-1\""),
	{ "max-connections", "1000000", NULL, "max_connections", 1000000, NULL },
	FLAG_ERR("max-connections", "0", "--max-connections: want 1..1000000, got \"0\""),
	FLAG_ERR("max-connections", "1000001",
		 "--max-connections: want 1..1000000, got \"1000001\""),
	{ "idle-timeout", "0.5", NULL, "idle_timeout", 500000, NULL },
	{ "idle-timeout", "600", NULL, "idle_timeout", 600000000, NULL },
	{ "request-timeout", "2.25", NULL, "request_timeout", 2250000, NULL },
	{ "state-interval", "0.1", NULL, "state_interval", 100000, NULL },
	FLAG_ERR("idle-timeout", "0", "--idle-timeout: want a number of seconds, got \"0\""),
	FLAG_ERR("idle-timeout", "-3", "--idle-timeout: want a number of seconds, got \"-3\""),
	FLAG_ERR("request-timeout", "1e8",
		 "--request-timeout: want a number of seconds, got \"1e8\""),
	FLAG_ERR("state-interval", "soon",
		 "--state-interval: want a number of seconds, got \"soon\""),
	{ "dns", "127.0.0.1:5353", NULL, "dns", 0, "127.0.0.1:5353" },
	FLAG_ERR("dns", "localhost:53",
	  "--dns: bad DNS server 'localhost:53': 'localhost' is not an IP address"),
	/* checked where they are used (listener_open, log_open: exit 1) */
	{ "listen", "tcp:10040", NULL, "listen", 0, "tcp:10040" },
	{ "syslog-facility", "nosuch", NULL, "syslog_facility", 0, "nosuch" },
	{ "user", "nobody", NULL, "user", 0, "nobody" },
	{ "config", "p.conf", NULL, "config", 0, "p.conf" },
	{ "geoip", "rel/db.mmdb", NULL, "geoip", 0, "rel/db.mmdb" },   /* as given */
	{ "daemonize", NULL, NULL, "daemonize", 1, NULL },
	{ "foreground", NULL, NULL, "daemonize", 0, NULL },
};

/* The value of field in s, as a number or a string. */
static void value_of(const struct settings *s, const char *f, long long *n, const char **str)
{
	*n = 0;
	*str = NULL;
	if (!strcmp(f, "socket_mode"))
		*n = s->socket_mode;
	else if (!strcmp(f, "daemonize"))
		*n = s->daemonize;
	else if (!strcmp(f, "dns_timeout_ms"))
		*n = s->dns_timeout_ms;
	else if (!strcmp(f, "max_connections"))
		*n = (long long)s->max_connections;
	else if (!strcmp(f, "idle_timeout"))
		*n = (long long)s->idle_timeout.tv_sec * 1000000 + s->idle_timeout.tv_usec;
	else if (!strcmp(f, "request_timeout"))
		*n = (long long)s->request_timeout.tv_sec * 1000000 + s->request_timeout.tv_usec;
	else if (!strcmp(f, "state_interval"))
		*n = (long long)s->state_interval.tv_sec * 1000000 + s->state_interval.tv_usec;
	else if (!strcmp(f, "tempfail"))
		*n = s->tempfail;
	else if (!strcmp(f, "dns"))
		*str = s->ndns ? s->dns[s->ndns - 1] : NULL;
	else if (!strcmp(f, "listen"))
		*str = s->nlisten ? s->listen[s->nlisten - 1] : NULL;
	else if (!strcmp(f, "syslog_facility"))
		*str = s->syslog_facility;
	else if (!strcmp(f, "user"))
		*str = s->user;
	else if (!strcmp(f, "config"))
		*str = s->config;
	else if (!strcmp(f, "geoip"))
		*str = s->geoip;
	else
		ck_abort_msg("test: no field %s", f);
}

START_TEST(test_flag_kinds)
{
	struct settings s;
	settings_init(&s);
	char err[256] = "";
	bool ok = settings_parse_flag(&s, row_of_flag(flag_cases[_i].flag), flag_cases[_i].arg, err,
				      sizeof err);
	const char *what = flag_cases[_i].flag;
	if (flag_cases[_i].err) {
		ck_assert_msg(!ok, "--%s %s: accepted, want \"%s\"", what, flag_cases[_i].arg,
			      flag_cases[_i].err);
		ck_assert_msg(!strcmp(err, flag_cases[_i].err), "--%s: got \"%s\", want \"%s\"", what,
			      err, flag_cases[_i].err);
	} else {
		ck_assert_msg(ok, "--%s %s: refused: %s", what, flag_cases[_i].arg, err);
		long long n;
		const char *str;
		value_of(&s, flag_cases[_i].field, &n, &str);
		if (flag_cases[_i].want_s)
			ck_assert_msg(str && !strcmp(str, flag_cases[_i].want_s),
				      "--%s: got \"%s\", want \"%s\"", what, str ? str : "(null)",
				      flag_cases[_i].want_s);
		else
			ck_assert_msg(n == flag_cases[_i].want, "--%s: got %lld, want %lld", what, n,
				      flag_cases[_i].want);
		ck_assert_msg(settings_is_set(row_of_flag(what), &s), "--%s: not set", what);
	}
	settings_free(&s);
}
END_TEST

/* A refused flag leaves the value not set, and a list keeps what it had. */
START_TEST(test_flag_refused_keeps)
{
	struct settings s;
	char err[256];
	settings_init(&s);
	ck_assert(settings_parse_flag(&s, row_of_flag("dns"), "127.0.0.1", err, sizeof err));
	ck_assert(!settings_parse_flag(&s, row_of_flag("dns"), "nope", err, sizeof err));
	ck_assert(settings_parse_flag(&s, row_of_flag("dns"), "[::1]:5353", err, sizeof err));
	ck_assert_uint_eq(s.ndns, 2);
	ck_assert_str_eq(s.dns[0], "127.0.0.1");
	ck_assert_str_eq(s.dns[1], "[::1]:5353");
	ck_assert(!settings_parse_flag(&s, row_of_flag("socket-mode"), "rw", err, sizeof err));
	ck_assert_int_eq(s.socket_mode, -1);
	ck_assert(!settings_is_set(row_of_flag("socket-mode"), &s));
	settings_free(&s);
	ck_assert_uint_eq(s.ndns, 0);
	ck_assert_ptr_null(s.dns);
}
END_TEST

/* ---- set statements ------------------------------------------------------------ */

/* Run "set WORDS..." (space-separated) from file into s; the messages of
 * d's records, joined by " | ", into out. */
static bool run_set(struct settings *s, const char *file, const char *line, struct strbuf *out)
{
	struct diags d;
	diags_init(&d);
	char *copy = xstrdup(line);
	struct ast_word w[8];
	size_t nw = 0;
	for (char *tok = strtok(copy, " "); tok && nw < ARRAY_LEN(w); tok = strtok(NULL, " "))
		w[nw++] = (struct ast_word){ .s = tok, .len = strlen(tok),
					     .loc = { .file = file, .line = 1,
						      .col = (int)(tok - copy) + 5 } };
	struct ast_stmt st = { .kind = AST_SET, .loc = { .file = file, .line = 1, .col = 1 },
			       .w = w, .nw = nw };
	bool ok = settings_set(s, &st, &d);
	for (size_t i = 0; i < d.n; i++)
		sb_printf(out, "%s%s", i ? " | " : "", d.v[i].msg);
	ck_assert_msg(ok == (d.nerrors == 0), "set %s: returned %d with %zu errors", line, ok,
		      d.nerrors);
	diags_free(&d);
	free(copy);
	return ok;
}

#define KNOWN "listen, user, pidfile, daemonize, socket_mode, socket_owner, log, " \
	      "syslog_facility, store, state_file, control, metrics, tempfail, dryrun, " \
	      "restriction_classes, geoip, dns"

static const struct {
	const char *line;
	const char *err;          /* "": accepted */
	const char *field;        /* what to check (NULL: nothing) */
	long long want;
	const char *want_s;
} set_cases[] = {
#define SET_ERR(l, e) { l, e, NULL, 0, NULL }
	{ "daemonize yes", "", "daemonize", 1, NULL },
	{ "daemonize On", "", "daemonize", 1, NULL },
	{ "daemonize TRUE", "", "daemonize", 1, NULL },
	{ "daemonize off", "", "daemonize", 0, NULL },
	{ "daemonize false", "", "daemonize", 0, NULL },
	{ "daemonize maybe", "daemonize takes yes or no", "daemonize", -1, NULL },
	{ "socket_mode 0660", "", "socket_mode", 0660, NULL },
	{ "socket_mode 0999", "socket_mode takes an octal mode such as 0660", "socket_mode", -1, NULL },
	{ "socket_mode rw", "socket_mode takes an octal mode such as 0660", "socket_mode", -1, NULL },
	{ "tempfail match", "", "tempfail", 1, NULL },
	{ "tempfail default", "", "tempfail", 2, NULL },
	{ "tempfail nomatch", "", "tempfail", 0, NULL },
	{ "tempfail sometimes", "tempfail takes match, nomatch or default", "tempfail", -1,
	  NULL },
	{ "syslog_facility local3", "", "syslog_facility", 0, "local3" },
	{ "syslog_facility nosuch",
	  "unknown syslog facility 'nosuch'; use mail, daemon, user or local0..local7",
	  "syslog_facility", 0, NULL },
	{ "listen inet:127.0.0.1:1 tcp:2 unix:/s",
	  "bad endpoint 'tcp:2': write inet:HOST:PORT or unix:PATH", "listen", 0, "unix:/s" },
	{ "dns 127.0.0.1 localhost",
	  "bad DNS server 'localhost': 'localhost' is not an IP address", "dns", 0, "127.0.0.1" },
	{ "user nobody", "", "user", 0, "nobody" },
	{ "user nobody extra", "set user takes one value", "user", 0, NULL },
	SET_ERR("colour blue extra", "set colour takes one value"),
	SET_ERR("colour blue", "unknown setting 'colour'; known settings: " KNOWN),
	SET_ERR("stat_file /x", "unknown setting 'stat_file'; did you mean 'state_file'?"),
	SET_ERR("Listen inet:1:2", "unknown setting 'Listen'; did you mean 'listen'?"),
	/* flag-only rows are not part of the language */
	SET_ERR("config x", "unknown setting 'config'; known settings: " KNOWN),
	SET_ERR("dns-timeout 5", "unknown setting 'dns-timeout'; known settings: " KNOWN),
	SET_ERR("idle_timeout 5", "unknown setting 'idle_timeout'; known settings: " KNOWN),
	SET_ERR("user", "set needs a name and a value: set NAME VALUE..."),
	/* relative to the config file's directory */
	{ "geoip db.mmdb", "", "geoip", 0, "conf/db.mmdb" },
	{ "geoip /var/db.mmdb", "", "geoip", 0, "/var/db.mmdb" },
};

START_TEST(test_set_kinds)
{
	struct settings s;
	struct strbuf msg;
	settings_init(&s);
	sb_init(&msg);
	const char *line = set_cases[_i].line;
	bool ok = run_set(&s, "conf/policy.conf", line, &msg);
	ck_assert_msg(ok == !*set_cases[_i].err, "set %s: ok=%d", line, ok);
	ck_assert_msg(!strcmp(msg.s ? msg.s : "", set_cases[_i].err),
		      "set %s: got \"%s\", want \"%s\"", line, msg.s ? msg.s : "",
		      set_cases[_i].err);
	if (set_cases[_i].field) {
		long long n;
		const char *str;
		value_of(&s, set_cases[_i].field, &n, &str);
		if (set_cases[_i].want_s)
			ck_assert_msg(str && !strcmp(str, set_cases[_i].want_s),
				      "set %s: got \"%s\", want \"%s\"", line, str ? str : "(null)",
				      set_cases[_i].want_s);
		else if (str || !strcmp(set_cases[_i].field, "user") ||
			 !strcmp(set_cases[_i].field, "syslog_facility"))
			ck_assert_msg(str == NULL, "set %s: got \"%s\", want nothing", line, str);
		else
			ck_assert_msg(n == set_cases[_i].want, "set %s: got %lld, want %lld", line, n,
				      set_cases[_i].want);
	}
	settings_free(&s);
	sb_free(&msg);
}
END_TEST

/* Lists given twice add up; other settings take the later value. */
START_TEST(test_set_twice)
{
	struct settings s;
	struct strbuf msg;
	settings_init(&s);
	sb_init(&msg);
	ck_assert(run_set(&s, "p.conf", "listen inet:127.0.0.1:1", &msg));
	ck_assert(run_set(&s, "p.conf", "listen unix:/a unix:/b", &msg));
	ck_assert(run_set(&s, "p.conf", "user a", &msg));
	ck_assert(run_set(&s, "p.conf", "user b", &msg));
	ck_assert(run_set(&s, "p.conf", "geoip db.mmdb", &msg));   /* no directory */
	ck_assert_uint_eq(s.nlisten, 3);
	ck_assert_str_eq(s.listen[2], "unix:/b");
	ck_assert_str_eq(s.user, "b");
	ck_assert_str_eq(s.geoip, "db.mmdb");
	ck_assert_msg(msg.len == 0, "messages: %s", msg.s);
	settings_free(&s);
	sb_free(&msg);
}
END_TEST

/* ---- merge, copies, reload warnings ------------------------------------------------- */

START_TEST(test_merge)
{
	struct settings flags, file, out;
	struct strbuf msg;
	char err[256];
	sb_init(&msg);
	settings_init(&flags);
	settings_init(&file);

	/* nothing given: the defaults */
	settings_default_flag_only(&flags);
	settings_merge(&out, &flags, &file);
	ck_assert_uint_eq(out.nlisten, 1);
	ck_assert_str_eq(out.listen[0], "inet:127.0.0.1:10038");
	ck_assert_int_eq(out.daemonize, 0);
	ck_assert_str_eq(out.syslog_facility, "mail");
	ck_assert_str_eq(out.store, "memory");
	ck_assert_str_eq(out.config, "/etc/mxacl/policy.conf");
	ck_assert_int_eq(out.socket_mode, -1);      /* no default: bind(2)'s */
	ck_assert_ptr_null(out.log);                /* stderr or syslog: mxacld decides */
	ck_assert_ptr_null(out.user);
	ck_assert_uint_eq(out.ndns, 0);
	ck_assert_uint_eq(out.dns_timeout_ms, 0);   /* the resolver's own */
	ck_assert_uint_eq(out.max_connections, 1024);
	ck_assert_int_eq(out.idle_timeout.tv_sec, 600);
	ck_assert_int_eq(out.request_timeout.tv_sec, 30);
	ck_assert_int_eq(out.state_interval.tv_sec, 300);
	settings_free(&out);

	/* the file where no flag is given; a flag replaces a whole list */
	ck_assert(run_set(&file, "p.conf", "listen unix:/a unix:/b", &msg));
	ck_assert(run_set(&file, "p.conf", "dns 127.0.0.1", &msg));
	ck_assert(run_set(&file, "p.conf", "daemonize yes", &msg));
	ck_assert(run_set(&file, "p.conf", "user fileuser", &msg));
	ck_assert(run_set(&file, "p.conf", "socket_mode 0600", &msg));
	ck_assert(settings_parse_flag(&flags, row_of_flag("listen"), "inet:127.0.0.1:9", err,
				      sizeof err));
	ck_assert(settings_parse_flag(&flags, row_of_flag("foreground"), NULL, err, sizeof err));
	ck_assert(settings_parse_flag(&flags, row_of_flag("socket-mode"), "0660", err, sizeof err));
	settings_merge(&out, &flags, &file);
	ck_assert_uint_eq(out.nlisten, 1);
	ck_assert_str_eq(out.listen[0], "inet:127.0.0.1:9");
	ck_assert_int_eq(out.daemonize, 0);         /* -f wins over set daemonize yes */
	ck_assert_int_eq(out.socket_mode, 0660);
	ck_assert_str_eq(out.user, "fileuser");
	ck_assert_uint_eq(out.ndns, 1);
	ck_assert_str_eq(out.dns[0], "127.0.0.1");
	/* a deep copy: the sources can go */
	settings_free(&flags);
	settings_free(&file);
	ck_assert_str_eq(out.user, "fileuser");
	ck_assert_str_eq(out.listen[0], "inet:127.0.0.1:9");
	settings_free(&out);
	ck_assert_msg(msg.len == 0, "messages: %s", msg.s);
	sb_free(&msg);
}
END_TEST

START_TEST(test_copy)
{
	struct settings a, b;
	struct strbuf msg;
	sb_init(&msg);
	settings_init(&a);
	ck_assert(run_set(&a, "p.conf", "listen unix:/a unix:/b", &msg));
	ck_assert(run_set(&a, "p.conf", "state_file /var/lib/mxacl/state", &msg));
	ck_assert(run_set(&a, "p.conf", "tempfail match", &msg));
	settings_copy(&b, &a);
	settings_free(&a);
	ck_assert_uint_eq(b.nlisten, 2);
	ck_assert_str_eq(b.listen[1], "unix:/b");
	ck_assert_str_eq(b.state_file, "/var/lib/mxacl/state");
	ck_assert_int_eq(b.tempfail, 1);
	ck_assert_int_eq(b.daemonize, -1);
	settings_free(&b);
	sb_free(&msg);
}
END_TEST

static void collect(const struct setting *row, void *arg)
{
	sb_printf(arg, "%s ", row->name);
}

START_TEST(test_startup_changes)
{
	struct settings flags, boot, now;
	struct strbuf msg, got;
	char err[256];
	sb_init(&msg);
	sb_init(&got);
	settings_init(&flags);
	settings_init(&boot);
	settings_init(&now);
	ck_assert(run_set(&boot, "p.conf", "listen inet:127.0.0.1:1", &msg));
	ck_assert(run_set(&boot, "p.conf", "user a", &msg));
	ck_assert(run_set(&boot, "p.conf", "log syslog", &msg));
	ck_assert(run_set(&now, "p.conf", "listen inet:127.0.0.1:2", &msg));   /* changed */
	ck_assert(run_set(&now, "p.conf", "user b", &msg));       /* changed, but --user */
	ck_assert(run_set(&now, "p.conf", "log syslog", &msg));   /* the same */
	ck_assert(run_set(&now, "p.conf", "tempfail match", &msg));  /* applies at reload */
	ck_assert(run_set(&now, "p.conf", "geoip x.mmdb", &msg));    /* applies at reload */
	ck_assert(run_set(&now, "p.conf", "daemonize no", &msg));    /* was not set */
	ck_assert(run_set(&now, "p.conf", "dns 127.0.0.1", &msg));   /* was not set */
	ck_assert(settings_parse_flag(&flags, row_of_flag("user"), "c", err, sizeof err));
	settings_startup_changes(&flags, &boot, &now, collect, &got);
	ck_assert_str_eq(got.s, "listen daemonize dns ");
	/* -d or -f overrides daemonize */
	sb_reset(&got);
	ck_assert(settings_parse_flag(&flags, row_of_flag("foreground"), NULL, err, sizeof err));
	settings_startup_changes(&flags, &boot, &now, collect, &got);
	ck_assert_str_eq(got.s, "listen dns ");
	settings_free(&flags);
	settings_free(&boot);
	settings_free(&now);
	sb_free(&msg);
	sb_free(&got);
}
END_TEST

/* Exactly the start-up settings mxacld applied once before the table. */
START_TEST(test_startup_rows)
{
	struct strbuf got;
	sb_init(&got);
	for (size_t i = 0; i < settings_count; i++)
		if (settings_table[i].flags & SETTING_STARTUP)
			sb_printf(&got, "%s ", settings_table[i].name);
	ck_assert_str_eq(got.s, "listen user pidfile daemonize socket_mode socket_owner log "
				"syslog_facility store state_file control metrics dns ");
	sb_free(&got);
}
END_TEST

/* ---- help and docs ------------------------------------------------------------------ */

START_TEST(test_help_and_markdown)
{
	char *help = NULL, *md = NULL;
	size_t hlen = 0, mlen = 0;
	FILE *f = open_memstream(&help, &hlen);
	settings_print_help(f);
	fclose(f);
	f = open_memstream(&md, &mlen);
	settings_print_markdown(f);
	fclose(f);
	for (size_t i = 0; i < settings_count; i++) {
		const struct setting *row = &settings_table[i];
		if (!row->flag)
			continue;
		char want[64];
		snprintf(want, sizeof want, "--%s ", row->flag);
		char want_md[64];
		snprintf(want_md, sizeof want_md, "`--%s", row->flag);
		bool hidden = row->flags & SETTING_HIDDEN;
		bool in_help = strstr(help, want) != NULL;
		if (!in_help) {   /* a flag without value ends its part of the line */
			snprintf(want, sizeof want, "--%s\n", row->flag);
			in_help = strstr(help, want) != NULL;
			snprintf(want, sizeof want, "--%s  ", row->flag);
			in_help |= strstr(help, want) != NULL;
		}
		ck_assert_msg(in_help == !hidden, "--%s: in --help %d, hidden %d", row->flag, in_help,
			      hidden);
		ck_assert_msg((strstr(md, want_md) != NULL) == !hidden, "--%s: in the docs table %d",
			      row->flag, !hidden);
	}
	for (size_t i = 0; i < settings_count; i++)
		if (settings_table[i].name) {
			char want[64];
			snprintf(want, sizeof want, "`set %s ", settings_table[i].name);
			ck_assert_msg(strstr(md, want) != NULL, "set %s: not in the docs table",
				      settings_table[i].name);
		}
	/* lines fit 79 columns unless one word does not */
	for (char *line = help, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		ck_assert_ptr_nonnull(nl);
		ck_assert_msg(nl - line <= 79 || !memchr(line + 28, ' ', (size_t)(nl - line - 28)),
			      "help line too long: %.*s", (int)(nl - line), line);
	}
	ck_assert_ptr_nonnull(strstr(help, "  -c, --config FILE         policy file (default "
					   "/etc/mxacl/policy.conf)\n"));
	free(help);
	free(md);
}
END_TEST

/* Every default parses as its row's kind (a bad one aborts at start). */
START_TEST(test_defaults_parse)
{
	struct settings flags, file, out;
	settings_init(&flags);
	settings_init(&file);
	settings_merge(&out, &flags, &file);
	for (size_t i = 0; i < settings_count; i++)
		if (settings_table[i].def)
			ck_assert_msg(settings_is_set(&settings_table[i], &out), "%s: default not set",
				      settings_table[i].flag ? settings_table[i].flag
							     : settings_table[i].name);
	settings_free(&out);
}
END_TEST

/* ---- hostport ---------------------------------------------------------------------- */

START_TEST(test_hostport_dns_server)
{
	static const struct {
		const char *in, *want;   /* want NULL: an error */
	} cases[] = {
		{ "127.0.0.1:5353", "127.0.0.1@5353" }, { "127.0.0.1", "127.0.0.1@53" },
		{ "[::1]:5353", "::1@5353" },           { "::1", "::1@53" },
		{ "[2001:db8::1]", "2001:db8::1@53" },  { "localhost:53", NULL },
		{ "127.0.0.1:0", NULL },                { "127.0.0.1:70000", NULL },
		{ "127.0.0.1:", NULL },                 { "[::1", NULL },
		{ "", NULL },                           { "1.2.3.4:53x", NULL },
		{ "[::1]x", NULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[80], err[160];
		bool ok = hostport_dns_server(cases[i].in, out, sizeof out, err, sizeof err);
		ck_assert_msg(ok == (cases[i].want != NULL), "'%s': got ok=%d (%s)", cases[i].in, ok,
			      ok ? out : err);
		if (ok)
			ck_assert_msg(!strcmp(out, cases[i].want), "'%s': got '%s', want '%s'",
				      cases[i].in, out, cases[i].want);
	}
	char out[80], err[160];
	ck_assert(!hostport_dns_server("1.2.3.4:53x", out, sizeof out, err, sizeof err));
	ck_assert_str_eq(err, "bad DNS server '1.2.3.4:53x': bad port '53x'");
	ck_assert(!hostport_dns_server("[::1", out, sizeof out, err, sizeof err));
	ck_assert_str_eq(err, "bad DNS server '[::1': write [ADDRESS]:PORT");
	ck_assert(!hostport_dns_server(":53", out, sizeof out, err, sizeof err));
	ck_assert_str_eq(err, "bad DNS server ':53': no address");
	ck_assert(!hostport_dns_server("127.0.0.1", out, 5, err, sizeof err));
	ck_assert_str_eq(err, "bad DNS server '127.0.0.1': too long");
}
END_TEST

Suite *settings_suite(void)
{
	Suite *s = suite_create("settings");
	TCase *tc = tcase_create("settings");
	tcase_add_loop_test(tc, test_flag_kinds, 0, ARRAY_LEN(flag_cases));
	tcase_add_test(tc, test_flag_refused_keeps);
	tcase_add_loop_test(tc, test_set_kinds, 0, ARRAY_LEN(set_cases));
	tcase_add_test(tc, test_set_twice);
	tcase_add_test(tc, test_merge);
	tcase_add_test(tc, test_copy);
	tcase_add_test(tc, test_startup_changes);
	tcase_add_test(tc, test_startup_rows);
	tcase_add_test(tc, test_help_and_markdown);
	tcase_add_test(tc, test_defaults_parse);
	tcase_add_test(tc, test_hostport_dns_server);
	suite_add_tcase(s, tc);
	return s;
}
