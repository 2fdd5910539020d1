/*
 * settings - the table of mxacld's settings and what reads it
 * (settings.h). A row says what a setting is; the kinds below say how a
 * value of each kind is parsed, checked, stored, compared, copied and
 * freed, so nothing outside this file names a setting to do any of that.
 */
#include "engine/settings.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/acl.h"
#include "grammar/ast.h"
#include "grammar/diag.h"
#include "util/hostport.h"
#include "util/log.h"
#include "util/util.h"

#define AT(field) .off = offsetof(struct settings, field)
#define LIST(field) .off = offsetof(struct settings, field), \
		    .off_n = offsetof(struct settings, n##field)

/*
 * The table. Rows with a name are the language's "set" statements, in the
 * order the "unknown setting" hint lists them; --help and the docs list
 * every row not hidden in this order. Adding a setting: docs/dev/design.md,
 * "Recipe: a setting".
 */
const struct setting settings_table[] = {
	{ .flag = "config", .short_flag = 'c', .kind = SETTING_PATH, AT(config),
	  .def = "/etc/mxacl/policy.conf", .metavar = "FILE", .help = "policy file",
	  .doc = "the policy file (and what it includes)" },
	{ .name = "listen", .flag = "listen", .short_flag = 'l', .kind = SETTING_ENDPOINTS,
	  .flags = SETTING_STARTUP, LIST(listen), .def = "inet:127.0.0.1:10038",
	  .metavar = "ENDPOINT",
	  .help = "inet:HOST:PORT, inet:[ADDR]:PORT or unix:PATH; repeatable",
	  .doc = "where to listen: `inet:HOST:PORT`, `inet:[ADDR]:PORT` or `unix:PATH`; "
		 "any `-l` replaces every `set listen`" },
	{ .name = "user", .flag = "user", .kind = SETTING_STRING, .flags = SETTING_STARTUP,
	  AT(user), .def_doc = "none: stay as started", .metavar = "USER",
	  .help = "run as USER after binding (start as root)",
	  .doc = "after binding, switch to USER (its groups, its login group, its uid); "
		 "needs root" },
	{ .name = "pidfile", .flag = "pidfile", .kind = SETTING_PATH, .flags = SETTING_STARTUP,
	  AT(pidfile), .metavar = "FILE", .help = "write the PID to FILE; removed at exit",
	  .doc = "write the PID there once serving; removed at a clean exit" },
	{ .name = "daemonize", .flag = "daemonize", .short_flag = 'd', .kind = SETTING_YESNO,
	  .flags = SETTING_STARTUP, .flag_value = 1, AT(daemonize), .def = "no",
	  .help = "detach from the terminal",
	  .doc = "detach from the terminal; in the policy `yes` or `no` (`true`/`false`, "
		 "`on`/`off`)" },
	{ .flag = "foreground", .short_flag = 'f', .kind = SETTING_YESNO, .flag_value = 0,
	  AT(daemonize), .help = "stay in the foreground (the default)",
	  .doc = "stay in the foreground (to override `set daemonize yes`)" },
	{ .name = "socket_mode", .flag = "socket-mode", .kind = SETTING_OCTAL,
	  .flags = SETTING_STARTUP, AT(socket_mode), .min = 0, .max = 07777,
	  .def_doc = "as bind(2) makes it: 0777 less the umask", .metavar = "OCTAL",
	  .help = "permissions of unix sockets (e.g. 0660)",
	  .doc = "permissions of unix sockets, an octal mode up to `07777`" },
	{ .name = "socket_owner", .flag = "socket-owner", .kind = SETTING_STRING,
	  .flags = SETTING_STARTUP, AT(socket_owner), .def_doc = "the starting user",
	  .metavar = "USER[:GROUP]", .help = "owner of unix sockets",
	  .doc = "owner of unix sockets; without `:GROUP`, the user's login group; `:GROUP` "
		 "alone changes only the group" },
	{ .name = "log", .flag = "log", .kind = SETTING_STRING, .flags = SETTING_STARTUP,
	  AT(log), .def_doc = "stderr; syslog with -d", .metavar = "DEST",
	  .help = "stderr, syslog or a file", .doc = "`stderr`, `syslog`, or a file path" },
	{ .name = "syslog_facility", .flag = "syslog-facility", .kind = SETTING_FACILITY,
	  .flags = SETTING_STARTUP, AT(syslog_facility), .def = "mail", .metavar = "NAME",
	  .help = "mail, daemon, user, local0..local7",
	  .doc = "`mail`, `daemon`, `user`, `local0`..`local7`" },
	{ .name = "store", .flag = "store", .kind = SETTING_STRING, .flags = SETTING_STARTUP,
	  AT(store), .def = "memory", .metavar = "URL",
	  .help = "greylist and rate state: memory, "
		  "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?prefix=P&timeout=MS], "
		  "redis+unix:///PATH, "
		  "redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTERNAME[/DB] or "
		  "redis-cluster://HOST:PORT[,HOST:PORT...] (docs/store.md)",
	  .doc = "where greylisting and rate counters keep state: `memory` (embedded, this "
		 "process only) or a Redis URL shared by several gateways: one server "
		 "(`redis://`, `redis+unix://`), the master Redis Sentinel names "
		 "(`redis-sentinel://`) or a Redis Cluster (`redis-cluster://`) "
		 "([State](#state-greylisting-and-rate-counters)); checked at start "
		 "(a Sentinel or Cluster store must answer then)" },
	{ .name = "state_file", .flag = "state-file", .kind = SETTING_PATH,
	  .flags = SETTING_STARTUP, AT(state_file), .metavar = "FILE",
	  .help = "keep the memory store in FILE across restarts",
	  .doc = "keep the memory store across restarts: loaded at start, written every 5 "
		 "minutes and at a clean stop" },
	{ .name = "control", .flag = "control", .kind = SETTING_PATH, .flags = SETTING_STARTUP,
	  AT(control), .metavar = "PATH",
	  .help = "unix socket for mxacl grey (mode 0600, owned by the user mxacld runs as)",
	  .doc = "a unix socket for `mxacl grey` "
		 "([below](#inspecting-greylisting-mxacl-grey)); mode 0600, owned by the user "
		 "mxacld serves as" },
	{ .name = "metrics", .flag = "metrics", .kind = SETTING_STRING, .flags = SETTING_STARTUP,
	  AT(metrics), .metavar = "inet:HOST:PORT",
	  .help = "serve Prometheus metrics over HTTP at http://HOST:PORT/metrics",
	  .doc = "serve Prometheus metrics at `http://HOST:PORT/metrics` "
		 "([Metrics](#metrics-and-status)); `inet:HOST:PORT` or `inet:[ADDR]:PORT`, "
		 "no authentication, so bind it to loopback or a monitoring network" },
	{ .name = "tempfail", .kind = SETTING_TEMPFAIL, AT(tempfail), .def = "nomatch",
	  .metavar = "MODE", .help = "what a temporary failure of an acl means",
	  .doc = "what a temporary failure of a DNS, SPF or store acl means when the acl's "
		 "`tempfail=` does not say: `nomatch`, `match` or `default` (`language.md`)" },
	{ .name = "dryrun", .flag = "dry-run", .kind = SETTING_YESNO, .flag_value = 1,
	  AT(dryrun), .def = "no",
	  .help = "the whole policy a dry run: log and count what it would answer, answer DUNNO",
	  .doc = "a dry run of the whole policy: each request whose answer would not be "
		 "`DUNNO` is logged (`dryrun ... would=...`) and counted "
		 "(`mxacl_dryrun_hits_total`), and answered `DUNNO` "
		 "([Rolling out a rule](#rolling-out-a-rule-dry-run)); a reload applies a change" },
	{ .name = "restriction_classes", .kind = SETTING_NAMES, LIST(restriction_classes),
	  .def_doc = "none", .metavar = "NAME",
	  .help = "restriction classes of main.cf that actions may answer",
	  .doc = "the restriction classes of main.cf's `smtpd_restriction_classes` that an "
		 "action may answer (`action grey check_postgrey`), separated by blanks or "
		 "commas; an action naming a class not listed is an error "
		 "([Actions](language.md#postfix-restrictions-and-restriction-classes)); "
		 "given twice, the lists add up" },
	{ .name = "geoip", .flag = "geoip", .kind = SETTING_PATH, .flags = SETTING_CONFIG_RELATIVE,
	  AT(geoip), .metavar = "FILE", .help = "MaxMind DB for country acls (reopened on SIGHUP)",
	  .doc = "the MaxMind DB for `country` acls (in the policy, relative to the config "
		 "file); opened with the policy, so a SIGHUP after the weekly update uses the "
		 "new file" },
	{ .name = "dns", .flag = "dns", .kind = SETTING_DNS_SERVERS, .flags = SETTING_STARTUP,
	  LIST(dns), .def_doc = "the nameservers of /etc/resolv.conf", .metavar = "HOST[:PORT]",
	  .help = "DNS server for rbl/dnswl/rhsbl/spf acls; repeatable",
	  .doc = "DNS servers for `rbl`, `dnswl`, `rhsbl*` and `spf` acls ([DNS](#dns)): "
		 "`ADDRESS`, `ADDRESS:PORT` or `[IPV6]:PORT`; any `--dns` replaces every "
		 "`set dns`" },
	{ .flag = "cache-dir", .kind = SETTING_PATH, AT(cache_dir),
	  .def_doc = "none", .metavar = "DIR",
	  .help = "keep compiled regex databases in DIR, so that an unchanged policy does not "
		  "compile them again",
	  .doc = "keep the compiled Vectorscan databases of regex acls in DIR (a directory "
		 "owned by the user mxacld runs as, not writable by others), so that a start or "
		 "reload whose regexes did not change does not compile them again "
		 "([The regex cache](#the-regex-cache---cache-dir-dir))" },
	{ .flag = "dns-timeout", .kind = SETTING_MS, AT(dns_timeout_ms), .min = 1, .max = 600000,
	  .def_doc = "2000", .metavar = "MS",
	  .help = "a DNS lookup not answered in MS ms is a temporary failure",
	  .doc = "a DNS lookup not answered in MS milliseconds is a temporary failure" },
	/* Hidden: for tests and for operators who read the source. Not in
	 * the language, so that it does not grow knobs for them. */
	{ .flag = "idle-timeout", .kind = SETTING_SECONDS, .flags = SETTING_HIDDEN,
	  AT(idle_timeout), .max = 1e7, .def = "600", .metavar = "SECONDS",
	  .help = "close a connection with no request in progress after SECONDS" },
	{ .flag = "request-timeout", .kind = SETTING_SECONDS, .flags = SETTING_HIDDEN,
	  AT(request_timeout), .max = 1e7, .def = "30", .metavar = "SECONDS",
	  .help = "drop a request not received, or replies not read, within SECONDS" },
	{ .flag = "max-connections", .kind = SETTING_COUNT, .flags = SETTING_HIDDEN,
	  AT(max_connections), .min = 1, .max = 1000000, .def = "1024", .metavar = "N",
	  .help = "client connections open at once" },
	{ .flag = "state-interval", .kind = SETTING_SECONDS, .flags = SETTING_HIDDEN,
	  AT(state_interval), .max = 1e7, .def = "300", .metavar = "SECONDS",
	  .help = "seconds between saves of the memory store to the state file" },
	{ .flag = "help", .short_flag = 'h', .kind = SETTING_ACTION, .help = "this text",
	  .doc = "usage on stdout, exit 0" },
	{ .flag = "version", .short_flag = 'V', .kind = SETTING_ACTION, .help = "the version",
	  .doc = "`mxacld VERSION`, exit 0" },
	{ .flag = "settings-markdown", .kind = SETTING_ACTION, .flags = SETTING_HIDDEN,
	  .help = "print the table of settings of docs/operations.md" },
	{ .flag = "settings-man", .kind = SETTING_ACTION, .flags = SETTING_HIDDEN,
	  .help = "print the OPTIONS of mxacld(8) as roff (docs/man/mxacld.8)" },
};
const size_t settings_count = ARRAY_LEN(settings_table);

/* ---- kinds ------------------------------------------------------------------ */

/* How a kind's value is held in struct settings. */
enum storage { ST_NONE, ST_STR, ST_LIST, ST_INT, ST_UINT, ST_SIZE, ST_TIME };

union value {
	const char *s;
	int i;
	unsigned u;
	size_t z;
	struct timeval tv;
};

/* Parse text as row's kind into *v; false with a message in err unless the
 * kind has a "want" phrase (then the caller words it). */
typedef bool parse_fn(const struct setting *row, const char *text, union value *v, char *err,
		      size_t errlen);

static bool parse_string(const struct setting *row, const char *text, union value *v, char *err,
			 size_t errlen)
{
	v->s = text;
	return true;
}

static bool parse_endpoint(const struct setting *row, const char *text, union value *v,
			   char *err, size_t errlen)
{
	if (strncmp(text, "inet:", 5) && strncmp(text, "unix:", 5)) {
		snprintf(err, errlen, "bad endpoint '%s': write inet:HOST:PORT or unix:PATH", text);
		return false;
	}
	v->s = text;
	return true;
}

static bool parse_dns_server(const struct setting *row, const char *text, union value *v,
			     char *err, size_t errlen)
{
	char fwd[80];
	if (!hostport_dns_server(text, fwd, sizeof fwd, err, errlen))
		return false;
	v->s = text;
	return true;
}

static bool parse_facility(const struct setting *row, const char *text, union value *v,
			   char *err, size_t errlen)
{
	if (!log_facility_known(text)) {
		snprintf(err, errlen,
			 "unknown syslog facility '%s'; use mail, daemon, user or local0..local7",
			 text);
		return false;
	}
	v->s = text;
	return true;
}

/* A restriction class name, as Postfix's parameter names are written. */
static bool parse_name(const struct setting *row, const char *text, union value *v, char *err,
		       size_t errlen)
{
	for (const char *c = text; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' || *c == '.')) {
			snprintf(err, errlen,
				 "bad %s name '%s': use letters, digits, '_', '-' and '.'",
				 row->name, text);
			return false;
		}
	v->s = text;
	return true;
}

static bool parse_yesno(const struct setting *row, const char *text, union value *v, char *err,
			size_t errlen)
{
	if (ascii_ieq(text, "yes") || ascii_ieq(text, "true") || ascii_ieq(text, "on"))
		v->i = 1;
	else if (ascii_ieq(text, "no") || ascii_ieq(text, "false") || ascii_ieq(text, "off"))
		v->i = 0;
	else
		return false;
	return true;
}

static bool parse_octal(const struct setting *row, const char *text, union value *v, char *err,
			size_t errlen)
{
	char *end;
	long m = strtol(text, &end, 8);
	if (!*text || *end || m < (long)row->min || m > (long)row->max)
		return false;
	v->i = (int)m;
	return true;
}

static bool parse_tempfail(const struct setting *row, const char *text, union value *v,
			   char *err, size_t errlen)
{
	return acl_tempfail_parse(text, &v->i);
}

/* A whole number in the row's range. */
static bool parse_whole(const struct setting *row, const char *text, unsigned long *n)
{
	char *end;
	errno = 0;
	*n = strtoul(text, &end, 10);
	return *text && !*end && !errno && *n >= row->min && *n <= row->max;
}

static bool parse_ms(const struct setting *row, const char *text, union value *v, char *err,
		     size_t errlen)
{
	unsigned long n;
	if (!parse_whole(row, text, &n))
		return false;
	v->u = (unsigned)n;
	return true;
}

static bool parse_count(const struct setting *row, const char *text, union value *v, char *err,
			size_t errlen)
{
	unsigned long n;
	if (!parse_whole(row, text, &n))
		return false;
	v->z = n;
	return true;
}

static bool parse_seconds(const struct setting *row, const char *text, union value *v,
			  char *err, size_t errlen)
{
	char *end;
	errno = 0;
	double s = strtod(text, &end);
	if (!*text || *end || errno || !(s > 0) || s > row->max)
		return false;
	v->tv.tv_sec = (time_t)s;
	v->tv.tv_usec = (suseconds_t)((s - (double)(time_t)s) * 1e6);
	return true;
}

static const struct kind {
	enum storage storage;
	parse_fn *parse;
	/* What a bad value is told ("socket_mode takes WANT", "--socket-mode:
	 * want WANT, got ..."); printf'd with the row's min and max. NULL: the
	 * parser words its own message. */
	const char *want;
	/* A flag's value is taken as given: where it is used checks it and
	 * says more (listener_open, log_open; a start-up error, exit 1). */
	bool flag_unchecked;
} kinds[] = {
	[SETTING_STRING] = { ST_STR, parse_string, NULL, false },
	[SETTING_PATH] = { ST_STR, parse_string, NULL, false },
	[SETTING_ENDPOINTS] = { ST_LIST, parse_endpoint, NULL, true },
	[SETTING_DNS_SERVERS] = { ST_LIST, parse_dns_server, NULL, false },
	[SETTING_NAMES] = { ST_LIST, parse_name, NULL, false },
	[SETTING_YESNO] = { ST_INT, parse_yesno, "yes or no", false },
	[SETTING_OCTAL] = { ST_INT, parse_octal, "an octal mode such as 0660", false },
	[SETTING_TEMPFAIL] = { ST_INT, parse_tempfail, "match, nomatch or default", false },
	[SETTING_FACILITY] = { ST_STR, parse_facility, NULL, true },
	[SETTING_MS] = { ST_UINT, parse_ms, "milliseconds %.0f..%.0f", false },
	[SETTING_SECONDS] = { ST_TIME, parse_seconds, "a number of seconds", false },
	[SETTING_COUNT] = { ST_SIZE, parse_count, "%.0f..%.0f", false },
	[SETTING_ACTION] = { ST_NONE, NULL, NULL, false },
};

static enum storage storage_of(const struct setting *row)
{
	return kinds[row->kind].storage;
}

static void *field(const struct settings *s, size_t off)
{
	return (char *)s + off;
}

#define STR(s, row) (*(const char **)field(s, (row)->off))
#define VEC(s, row) (*(const char ***)field(s, (row)->off))
#define NVEC(s, row) (*(size_t *)field(s, (row)->off_n))
#define INT(s, row) (*(int *)field(s, (row)->off))
#define UINT(s, row) (*(unsigned *)field(s, (row)->off))
#define SIZE(s, row) (*(size_t *)field(s, (row)->off))
#define TIME(s, row) (*(struct timeval *)field(s, (row)->off))

/* The kind's "want" phrase for row, with its range. */
static void want_text(const struct setting *row, char *out, size_t size)
{
	snprintf(out, size, kinds[row->kind].want, row->min, row->max);
}

/* Store v as row's value: a string replaces (a copy), a list grows. */
static void store(struct settings *s, const struct setting *row, const union value *v)
{
	switch (storage_of(row)) {
	case ST_STR:
		free((char *)STR(s, row));
		STR(s, row) = xstrdup(v->s);
		break;
	case ST_LIST:
		VEC(s, row) = xrealloc(VEC(s, row), (NVEC(s, row) + 1) * sizeof(char *));
		VEC(s, row)[NVEC(s, row)++] = xstrdup(v->s);
		break;
	case ST_INT:
		INT(s, row) = v->i;
		break;
	case ST_UINT:
		UINT(s, row) = v->u;
		break;
	case ST_SIZE:
		SIZE(s, row) = v->z;
		break;
	case ST_TIME:
		TIME(s, row) = v->tv;
		break;
	case ST_NONE:
		break;
	}
}

/* Unset row's value in s, freeing it. */
static void clear(struct settings *s, const struct setting *row)
{
	switch (storage_of(row)) {
	case ST_STR:
		free((char *)STR(s, row));
		STR(s, row) = NULL;
		break;
	case ST_LIST:
		for (size_t i = 0; i < NVEC(s, row); i++)
			free((char *)VEC(s, row)[i]);
		free(VEC(s, row));
		VEC(s, row) = NULL;
		NVEC(s, row) = 0;
		break;
	case ST_INT:
		INT(s, row) = -1;
		break;
	case ST_UINT:
		UINT(s, row) = 0;
		break;
	case ST_SIZE:
		SIZE(s, row) = 0;
		break;
	case ST_TIME:
		TIME(s, row) = (struct timeval){ 0, 0 };
		break;
	case ST_NONE:
		break;
	}
}

/* dst's value of row (unset) becomes a copy of src's. */
static void copy_value(struct settings *dst, const struct setting *row,
		       const struct settings *src)
{
	switch (storage_of(row)) {
	case ST_STR:
		STR(dst, row) = STR(src, row) ? xstrdup(STR(src, row)) : NULL;
		break;
	case ST_LIST:
		for (size_t i = 0; i < NVEC(src, row); i++)
			store(dst, row, &(union value){ .s = VEC(src, row)[i] });
		break;
	case ST_INT:
		INT(dst, row) = INT(src, row);
		break;
	case ST_UINT:
		UINT(dst, row) = UINT(src, row);
		break;
	case ST_SIZE:
		SIZE(dst, row) = SIZE(src, row);
		break;
	case ST_TIME:
		TIME(dst, row) = TIME(src, row);
		break;
	case ST_NONE:
		break;
	}
}

bool settings_is_set(const struct setting *row, const struct settings *s)
{
	switch (storage_of(row)) {
	case ST_STR:
		return STR(s, row) != NULL;
	case ST_LIST:
		return NVEC(s, row) > 0;
	case ST_INT:
		return INT(s, row) >= 0;
	case ST_UINT:
		return UINT(s, row) > 0;
	case ST_SIZE:
		return SIZE(s, row) > 0;
	case ST_TIME:
		return TIME(s, row).tv_sec > 0 || TIME(s, row).tv_usec > 0;
	case ST_NONE:
		break;
	}
	return false;
}

/* Whether a and b hold the same value for row. */
static bool same(const struct setting *row, const struct settings *a, const struct settings *b)
{
	switch (storage_of(row)) {
	case ST_STR:
		return STR(a, row) == STR(b, row) ||
		       (STR(a, row) && STR(b, row) && strcmp(STR(a, row), STR(b, row)) == 0);
	case ST_LIST:
		if (NVEC(a, row) != NVEC(b, row))
			return false;
		for (size_t i = 0; i < NVEC(a, row); i++)
			if (strcmp(VEC(a, row)[i], VEC(b, row)[i]) != 0)
				return false;
		return true;
	case ST_INT:
		return INT(a, row) == INT(b, row);
	case ST_UINT:
		return UINT(a, row) == UINT(b, row);
	case ST_SIZE:
		return SIZE(a, row) == SIZE(b, row);
	case ST_TIME:
		return TIME(a, row).tv_sec == TIME(b, row).tv_sec &&
		       TIME(a, row).tv_usec == TIME(b, row).tv_usec;
	case ST_NONE:
		break;
	}
	return true;
}

/* Rows that own their value: not an action, and not a second flag for
 * another row's value (--foreground is daemonize's). */
static bool owns_value(const struct setting *row)
{
	if (storage_of(row) == ST_NONE)
		return false;
	for (const struct setting *r = settings_table; r < row; r++)
		if (storage_of(r) != ST_NONE && r->off == row->off)
			return false;
	return true;
}

/* ---- whole structs ------------------------------------------------------------- */

void settings_init(struct settings *s)
{
	memset(s, 0, sizeof *s);
	for (size_t i = 0; i < settings_count; i++)
		if (owns_value(&settings_table[i]))
			clear(s, &settings_table[i]);
}

void settings_free(struct settings *s)
{
	for (size_t i = 0; i < settings_count; i++)
		if (owns_value(&settings_table[i]))
			clear(s, &settings_table[i]);
}

void settings_copy(struct settings *dst, const struct settings *src)
{
	settings_init(dst);
	for (size_t i = 0; i < settings_count; i++)
		if (owns_value(&settings_table[i]))
			copy_value(dst, &settings_table[i], src);
}

/* Give row its default in s (when it has one), parsed as a value. */
static void apply_default(struct settings *s, const struct setting *row)
{
	char err[160];
	union value v;
	if (!row->def)
		return;
	bool ok = kinds[row->kind].parse(row, row->def, &v, err, sizeof err);
	if (!ok)
		fatal_abort("settings: the default \"%s\" of %s does not parse", row->def,
			    row->flag ? row->flag : row->name);
	store(s, row, &v);
}

void settings_default_flag_only(struct settings *s)
{
	for (size_t i = 0; i < settings_count; i++) {
		const struct setting *row = &settings_table[i];
		if (!row->name && owns_value(row) && !settings_is_set(row, s))
			apply_default(s, row);
	}
}

void settings_merge(struct settings *out, const struct settings *flags,
		    const struct settings *file)
{
	settings_init(out);
	for (size_t i = 0; i < settings_count; i++) {
		const struct setting *row = &settings_table[i];
		if (!owns_value(row))
			continue;
		if (settings_is_set(row, flags))
			copy_value(out, row, flags);
		else if (settings_is_set(row, file))
			copy_value(out, row, file);
		else
			apply_default(out, row);
	}
}

void settings_startup_changes(const struct settings *flags, const struct settings *boot,
			      const struct settings *now,
			      void (*fn)(const struct setting *row, void *arg), void *arg)
{
	for (size_t i = 0; i < settings_count; i++) {
		const struct setting *row = &settings_table[i];
		if ((row->flags & SETTING_STARTUP) && !settings_is_set(row, flags) &&
		    !same(row, boot, now))
			fn(row, arg);
	}
}

/* ---- set statements and flags ---------------------------------------------------- */

const struct setting *settings_find(const char *name)
{
	for (size_t i = 0; i < settings_count; i++)
		if (settings_table[i].name && strcmp(settings_table[i].name, name) == 0)
			return &settings_table[i];
	return NULL;
}

/* The i-th set name for suggest_word; "" for flag-only rows (never suggested). */
static const char *name_at(size_t i, void *ctx)
{
	if (i >= settings_count)
		return NULL;
	return settings_table[i].name ? settings_table[i].name : "";
}

const char *settings_suggest(const char *name)
{
	return suggest_word(name, strlen(name), name_at, NULL);
}

/* "unknown setting": the closest name, or the list of them. */
static void unknown_setting(const struct ast_word *w, struct diags *d)
{
	const char *near = settings_suggest(w->s);
	if (near) {
		diag_error(d, w->loc, "unknown setting '%s'; did you mean '%s'?", w->s, near);
		return;
	}
	struct strbuf known;
	sb_init(&known);
	for (size_t i = 0; i < settings_count; i++)
		if (settings_table[i].name)
			sb_printf(&known, "%s%s", known.len ? ", " : "", settings_table[i].name);
	diag_error(d, w->loc, "unknown setting '%s'; known settings: %s", w->s, known.s);
	sb_free(&known);
}

/* Parse and store one word of a set statement; a diagnostic if it is bad. */
static bool set_word(struct settings *s, const struct setting *row, const struct ast_word *w,
		     struct diags *d)
{
	char err[256];
	union value v;
	if (!kinds[row->kind].parse(row, w->s, &v, err, sizeof err)) {
		if (kinds[row->kind].want) {
			char want[96];
			want_text(row, want, sizeof want);
			diag_error(d, w->loc, "%s takes %s", row->name, want);
		} else {
			diag_error(d, w->loc, "%s", err);
		}
		return false;
	}
	if (row->flags & SETTING_CONFIG_RELATIVE) {
		/* relative to the config file, as value files are */
		const char *slash = strrchr(w->loc.file, '/');
		if (w->s[0] != '/' && slash) {
			char *path = xasprintf("%.*s/%s", (int)(slash - w->loc.file), w->loc.file,
					       w->s);
			store(s, row, &(union value){ .s = path });
			free(path);
			return true;
		}
	}
	store(s, row, &v);
	return true;
}

/* A word of names separated by commas ("a,b", "a,"), as main.cf writes
 * lists: each name set, located in the word. */
static bool set_names(struct settings *s, const struct setting *row, const struct ast_word *w,
		      struct diags *d)
{
	bool ok = true;
	size_t start = 0;
	for (size_t i = 0; i <= w->len; i++) {
		if (i < w->len && w->s[i] != ',')
			continue;
		if (i > start) {
			char *name = xstrndup(w->s + start, i - start);
			struct ast_word part = *w;
			part.s = name;
			part.len = i - start;
			if (!w->quoted) {
				part.loc.col += (int)start;
				part.loc.len = (int)(i - start);
			}
			ok &= set_word(s, row, &part, d);
			free(name);
		}
		start = i + 1;
	}
	return ok;
}

bool settings_set(struct settings *s, const struct ast_stmt *st, struct diags *d)
{
	if (st->nw < 2) {
		diag_error(d, st->loc, "set needs a name and a value: set NAME VALUE...");
		return false;
	}
	const char *name = st->w[0].s;
	const struct setting *row = settings_find(name);
	if (row && storage_of(row) == ST_LIST) {
		bool ok = true;
		for (size_t i = 1; i < st->nw; i++)
			ok &= row->kind == SETTING_NAMES ? set_names(s, row, &st->w[i], d)
							 : set_word(s, row, &st->w[i], d);
		return ok;
	}
	if (st->nw != 2) {
		diag_error(d, st->w[2].loc, "set %s takes one value", name);
		return false;
	}
	if (!row) {
		unknown_setting(&st->w[0], d);
		return false;
	}
	return set_word(s, row, &st->w[1], d);
}

bool settings_parse_flag(struct settings *s, const struct setting *row, const char *arg,
			 char *err, size_t errlen)
{
	union value v;
	if (row->kind == SETTING_YESNO) {   /* -d, -f: no argument */
		INT(s, row) = row->flag_value;
		return true;
	}
	if (storage_of(row) == ST_NONE)
		return true;
	char msg[256];
	if (kinds[row->kind].flag_unchecked) {
		v.s = arg;
	} else if (!kinds[row->kind].parse(row, arg, &v, msg, sizeof msg)) {
		if (kinds[row->kind].want) {
			char want[96];
			want_text(row, want, sizeof want);
			snprintf(err, errlen, "--%s: want %s, got \"%s\"", row->flag, want, arg);
		} else {
			snprintf(err, errlen, "--%s: %s", row->flag, msg);
		}
		return false;
	}
	store(s, row, &v);
	return true;
}

/* ---- help and docs ---------------------------------------------------------------- */

/* The default in words, or NULL. */
static const char *default_text(const struct setting *row)
{
	return row->def_doc ? row->def_doc : row->def;
}

/* Whether the row's flag takes an argument. */
static bool flag_has_arg(const struct setting *row)
{
	return row->kind != SETTING_YESNO && row->kind != SETTING_ACTION;
}

#define HELP_COL 28
#define HELP_WIDTH 79

void settings_print_help(FILE *out)
{
	for (size_t i = 0; i < settings_count; i++) {
		const struct setting *row = &settings_table[i];
		if (!row->flag || (row->flags & SETTING_HIDDEN))
			continue;
		struct strbuf left, text;
		sb_init(&left);
		sb_init(&text);
		if (row->short_flag)
			sb_printf(&left, "  -%c, --%s", row->short_flag, row->flag);
		else
			sb_printf(&left, "      --%s", row->flag);
		if (flag_has_arg(row))
			sb_printf(&left, " %s", row->metavar);
		sb_adds(&text, row->help);
		if (default_text(row))
			sb_printf(&text, " (default %s)", default_text(row));
		/* the help after the flag, wrapped at HELP_WIDTH under HELP_COL */
		size_t col = left.len + 2 > HELP_COL ? left.len + 2 : HELP_COL;
		fprintf(out, "%s%*s", left.s, (int)(col - left.len), "");
		const char *p = text.s;
		while (*p) {
			size_t room = HELP_WIDTH - col, n = strlen(p);
			if (n > room) {
				size_t cut = room;
				while (cut > 0 && p[cut] != ' ')
					cut--;
				if (cut == 0)              /* one long word: break after it */
					cut = strcspn(p, " ");
				n = cut;
			}
			fprintf(out, "%.*s\n", (int)n, p);
			p += n;
			while (*p == ' ')
				p++;
			if (*p) {
				col = HELP_COL;
				fprintf(out, "%*s", HELP_COL, "");
			}
		}
		sb_free(&left);
		sb_free(&text);
	}
}

void settings_print_markdown(FILE *out)
{
	fputs("| flag | `set` in the policy | default | a changed `set` applies | meaning |\n"
	      "|---|---|---|---|---|\n", out);
	for (size_t i = 0; i < settings_count; i++) {
		const struct setting *row = &settings_table[i];
		if (row->flags & SETTING_HIDDEN)
			continue;
		bool list = storage_of(row) == ST_LIST;
		fputs("| ", out);
		if (!row->flag)
			fputs("—", out);
		else if (row->short_flag && flag_has_arg(row))
			fprintf(out, "`-%c %s`, `--%s`", row->short_flag, row->metavar, row->flag);
		else if (row->short_flag)
			fprintf(out, "`-%c`, `--%s`", row->short_flag, row->flag);
		else if (flag_has_arg(row))
			fprintf(out, "`--%s %s`", row->flag, row->metavar);
		else
			fprintf(out, "`--%s`", row->flag);
		if (row->flag && list)
			fputs(" (repeatable)", out);
		fputs(" | ", out);
		if (!row->name)
			fputs("—", out);
		else if (row->kind == SETTING_YESNO)
			fprintf(out, "`set %s yes`", row->name);
		else
			fprintf(out, "`set %s %s%s`", row->name, row->metavar, list ? "..." : "");
		fputs(" | ", out);
		if (row->def_doc)
			fputs(row->def_doc, out);
		else if (row->def)
			fprintf(out, "`%s`", row->def);
		else if (storage_of(row) != ST_NONE && row->name)
			fputs("none", out);
		fputs(" | ", out);
		if (row->name)
			fputs(row->flags & SETTING_STARTUP ? "at restart" : "at reload", out);
		fprintf(out, " | %s |\n", row->doc ? row->doc : row->help);
	}
}

static void md_roff(FILE *out, const char *s);

/* n bytes of s through md_roff. */
static void md_roff_span(FILE *out, const char *s, size_t n)
{
	char *t = xstrndup(s, n);
	md_roff(out, t);
	free(t);
}

/*
 * Markdown of the table's texts as man(7) roff: `code` in bold (its
 * hyphens as \-, so that options are searchable and do not break),
 * [text](link) as its text, backslashes escaped, the em dash as \(em.
 * Nothing else of markdown occurs in the table.
 */
static void md_roff(FILE *out, const char *s)
{
	bool code = false;
	if (*s == '.' || *s == '\'')
		fputs("\\&", out);       /* not a request */
	for (const char *p = s; *p; p++) {
		if (*p == '`') {
			fputs(code ? "\\fR" : "\\fB", out);
			code = !code;
		} else if (*p == '[' && strstr(p, "](")) {
			const char *close = strstr(p, "](");
			const char *end = strchr(close, ')');
			md_roff_span(out, p + 1, (size_t)(close - p - 1));
			p = end ? end : close + 1;
		} else if (*p == '\\') {
			fputs("\\e", out);
		} else if (*p == '-' && code) {
			fputs("\\-", out);
		} else if (strncmp(p, "\u2014", strlen("\u2014")) == 0) {
			fputs("\\(em", out);
			p += strlen("\u2014") - 1;
		} else {
			fputc(*p, out);
		}
	}
	if (code)
		fputs("\\fR", out);
}

/* The flag's name in roff: \fB\-c\fR, \fB\-\-config\fR \fIFILE\fR. */
static void man_flag(FILE *out, const struct setting *row)
{
	if (row->short_flag)
		fprintf(out, "\\fB\\-%c\\fR, ", row->short_flag);
	fputs("\\fB\\-\\-", out);
	for (const char *p = row->flag; *p; p++)
		fputs(*p == '-' ? "\\-" : (char[2]){ *p, 0 }, out);
	fputs("\\fR", out);
	if (flag_has_arg(row))
		fprintf(out, " \\fI%s\\fR", row->metavar);
}

void settings_print_man(FILE *out)
{
	for (size_t i = 0; i < settings_count; i++) {
		const struct setting *row = &settings_table[i];
		if (row->flags & SETTING_HIDDEN)
			continue;
		bool list = storage_of(row) == ST_LIST;
		fputs(".TP\n", out);
		if (row->flag) {
			man_flag(out, row);
			if (list)
				fputs(" (repeatable)", out);
		} else {
			fprintf(out, "\\fBset %s\\fR \\fI%s\\fR (in the policy only)", row->name,
				row->metavar);
		}
		fputc('\n', out);
		md_roff(out, row->doc ? row->doc : row->help);
		fputs(".\n", out);
		if (default_text(row)) {
			fputs("Default: ", out);
			md_roff(out, default_text(row));
			fputs(".\n", out);
		}
		if (row->name && row->flag) {
			if (row->kind == SETTING_YESNO)
				fprintf(out, "In the policy: \\fBset %s yes\\fR", row->name);
			else
				fprintf(out, "In the policy: \\fBset %s\\fR \\fI%s\\fR%s", row->name,
					row->metavar, list ? "..." : "");
		}
		if (row->name)
			fprintf(out, "%s a changed \\fBset\\fR applies %s.\n", row->flag ? ";" : "It:",
				row->flags & SETTING_STARTUP ? "when mxacld is restarted"
							     : "at the next reload");
	}
}
