/*
 * settings - every setting of mxacld as one row of one table
 * (settings_table in settings.c): its "set NAME" in the policy, its
 * command-line flag, its kind of value, range, default, help line, and
 * whether a reload can change it. The table is the only list of them:
 * "set" statements (the compiler calls settings_set), mxacld's getopt
 * options, --help, the "flags win over the file" merge, the warning a
 * reload gives for a start-up setting, the "unknown setting" hint and the
 * table in docs/operations.md (mxacld --settings-markdown, make docs) all
 * read it. In the spirit of Postfix's CONFIG_*_TABLE and Redis's
 * static_configs[].
 *
 * One table, also for mxacld's flag-only options (--config, --dns-timeout
 * and the hidden limits): they are rows without a set name. Keeping them
 * here rather than in a second table in daemon/main.c gives --help and the
 * docs one order and the daemon one struct to read; the engine ignores
 * the fields it does not use. The language stays closed to them: only
 * rows with a name are settable with "set".
 *
 * Ownership: a struct settings owns its strings and lists (heap copies);
 * settings_free releases them. Nothing here calls back or suspends.
 */
#ifndef MXACL_SETTINGS_H
#define MXACL_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/time.h>

struct ast_stmt;
struct diags;

/*
 * The values. "Not set" is NULL, no elements, -1 (ints) or 0 (flag-only
 * numbers): settings_merge tells a flag that was given from one that was
 * not by it.
 */
struct settings {
	const char *config;         /* -c: the policy file (flag only) */
	const char **listen;        /* endpoints "inet:HOST:PORT" / "unix:PATH" */
	size_t nlisten;
	const char *user;           /* drop privileges to this user */
	const char *pidfile;
	int daemonize;              /* 1 yes, 0 no, -1 not set */
	int socket_mode;            /* unix socket permissions; -1 not set */
	const char *socket_owner;   /* "USER[:GROUP]" for unix sockets */
	const char *log;            /* "stderr", "syslog" or a file */
	const char *syslog_facility;/* "mail", "daemon", "user", "local0".."local7" */
	const char *store;          /* state store URL ("memory", "redis://...") */
	const char *state_file;     /* memory store persistence */
	const char *cache_dir;      /* flag only: Vectorscan databases kept
				       between compiles (engine/recache.h) */
	const char *control;        /* control socket path (mxacl grey) */
	const char *metrics;        /* Prometheus endpoint "inet:HOST:PORT" */
	int tempfail;               /* default tempfail mode of acls; -1 not set */
	int dryrun;                 /* the whole policy a dry run: 1 yes, 0 no, -1 not set */
	const char **restriction_classes; /* main.cf's smtpd_restriction_classes
					     the policy may answer (set only) */
	size_t nrestriction_classes;
	const char *geoip;          /* MaxMind DB for country acls */
	const char **dns;           /* DNS servers "HOST[:PORT]" */
	size_t ndns;
	unsigned dns_timeout_ms;    /* flag only; 0: the resolver's default */
	struct timeval idle_timeout;    /* flag only (hidden) */
	struct timeval request_timeout; /* flag only (hidden) */
	size_t max_connections;         /* flag only (hidden) */
	struct timeval state_interval;  /* flag only (hidden): between saves */
};

/* Kinds of value: each has one parser, one check, one message. */
enum setting_kind {
	SETTING_STRING,         /* any one word */
	SETTING_PATH,           /* a file name (SETTING_CONFIG_RELATIVE: see below) */
	SETTING_ENDPOINTS,      /* list: inet:HOST:PORT or unix:PATH */
	SETTING_DNS_SERVERS,    /* list: ADDRESS[:PORT] (util/hostport.h) */
	SETTING_NAMES,          /* list: names, separated by blanks or commas as
	                           in main.cf */
	SETTING_YESNO,          /* yes/no; as a flag it takes no argument */
	SETTING_OCTAL,          /* an octal mode in [min, max] */
	SETTING_TEMPFAIL,       /* nomatch, match or default */
	SETTING_FACILITY,       /* a syslog facility (util/log.h) */
	SETTING_MS,             /* milliseconds in [min, max] */
	SETTING_SECONDS,        /* seconds, fractions allowed, in (0, max] */
	SETTING_COUNT,          /* a whole number in [min, max] */
	SETTING_ACTION,         /* a flag that does something (--help): no value */
};

/* Row flags. */
enum {
	SETTING_STARTUP = 1,         /* applied once at start: a reload that
	                                changes it gets a warning */
	SETTING_HIDDEN = 2,          /* not in --help nor in the docs */
	SETTING_CONFIG_RELATIVE = 4, /* a relative "set" path is relative to
	                                the file the set line is in */
};

struct setting {
	const char *name;       /* "set NAME"; NULL: a flag only */
	const char *flag;       /* "--FLAG"; NULL: set only */
	char short_flag;        /* "-c"; 0: none */
	enum setting_kind kind;
	unsigned flags;         /* SETTING_STARTUP... */
	int flag_value;         /* SETTING_YESNO flags: what giving it means */
	size_t off;             /* the value in struct settings */
	size_t off_n;           /* lists: their count */
	double min, max;        /* range of the numeric kinds */
	const char *def;        /* the default, in the value's own syntax; NULL: none */
	const char *def_doc;    /* the default in words, when def is not all of it */
	const char *metavar;    /* FILE, ENDPOINT...; NULL for flags without value */
	const char *help;       /* one line for --help */
	const char *doc;        /* the docs table's "meaning" (markdown); NULL: help */
};

extern const struct setting settings_table[];
extern const size_t settings_count;

/* Every value not set. */
void settings_init(struct settings *s);
/* Free what s owns and leave it as settings_init does. */
void settings_free(struct settings *s);
/* dst (uninitialised) becomes a deep copy of src. */
void settings_copy(struct settings *dst, const struct settings *src);

/* The row whose set name is name; NULL if none (flag-only rows have none). */
const struct setting *settings_find(const char *name);
/* The closest set name to an unknown name, for "did you mean"; NULL if none. */
const char *settings_suggest(const char *name);
/* Whether s holds a value for row. */
bool settings_is_set(const struct setting *row, const struct settings *s);

/*
 * "set NAME VALUE..." (st's words) into s: checked with the row's kind, a
 * diagnostic in d for each bad value (bad list elements are left out, the
 * others kept). True when the statement set its value with no error.
 */
bool settings_set(struct settings *s, const struct ast_stmt *st, struct diags *d);

/*
 * The flag of row with its argument arg (NULL for flags without one) into
 * s; lists grow by one. False with a message in err ("--socket-mode: want
 * an octal mode such as 0660, got \"rw\"") when the kind rejects it. Kinds
 * whose use checks them with its own message (endpoints: listener_open,
 * facilities: log_open) are taken as given here.
 */
bool settings_parse_flag(struct settings *s, const struct setting *row, const char *arg,
			 char *err, size_t errlen);
/* Give each flag-only value (rows without a set name) not set its default:
 * no file will set it. */
void settings_default_flag_only(struct settings *s);
/*
 * out (uninitialised) becomes, for each row, a copy of the flag's value
 * if it was given, else the file's, else the row's default: "flags win
 * over the file". The caller frees out with settings_free.
 */
void settings_merge(struct settings *out, const struct settings *flags,
		    const struct settings *file);
/*
 * For each start-up setting (SETTING_STARTUP) whose value differs between
 * boot and now and that no flag overrides, in table order, call fn: a
 * reload cannot apply it.
 */
void settings_startup_changes(const struct settings *flags, const struct settings *boot,
			      const struct settings *now,
			      void (*fn)(const struct setting *row, void *arg), void *arg);

/* The option lines of --help, in table order, hidden rows left out. */
void settings_print_help(FILE *out);
/* The table of docs/operations.md (markdown), hidden rows left out. */
void settings_print_markdown(FILE *out);
/* The OPTIONS items of mxacld(8) (man(7) roff, .TP paragraphs), the same
 * rows in the same order as the markdown table. */
void settings_print_man(FILE *out);

#endif
