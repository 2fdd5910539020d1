/*
 * grey - `mxacl grey` (see grey.h).
 *
 * Both ways in end in the same place: a list of entries, or the count of
 * entries an edit changed, printed as a table or as JSON. The entries are
 * sorted (triplets, then networks, each by key) because neither the store
 * nor mxacld promises an order.
 *
 * Networks are written the way greylist acls key them: "192.0.2.0/24", the
 * address masked to its prefix. A NET given with host bits set is masked
 * here, so that "whitelist 192.0.2.7/24" does what was meant; a bare
 * address is refused, since only the acl knows its prefix length.
 */
#include "cli/grey.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "backends/store.h"
#include "engine/cidr.h"
#include "util/log.h"
#include "util/util.h"

/* postgrey's defaults, as mxacld's control socket uses them. */
#define GREY_CLI_EXPIRE (35u * 86400u)
#define GREY_CLI_AWL 5u
/* How long to wait for mxacld or the store before giving up. */
#define GREY_CLI_TIMEOUT 120

enum grey_cli_cmd { GC_LIST, GC_WHITELIST, GC_PASS, GC_FORGET, GC_FLUSH };

static const char *const grey_cli_names[] = { "list", "whitelist", "pass", "forget", "flush" };

struct grey_cli_entry {
	enum store_entry_kind kind;
	char *key;
	long long first, last;
	bool passed;
	unsigned long count;
};

struct grey_cli {
	enum grey_cli_cmd cmd;
	const char *control, *store;
	bool json;
	char *key;                        /* whitelist, pass, forget */
	bool has_expire, has_awl;
	struct grey_params p;
	/* the answer */
	struct grey_cli_entry *v;
	size_t n, cap;
	unsigned long changed;
	/* --store: the loop's state */
	bool done;
	enum store_status st;
};

static void grey_cli_usage(FILE *f)
{
	fputs("usage: mxacl grey (--control PATH | --store URL) [--json] COMMAND\n"
	      "\n"
	      "  list               every greylist triplet and auto-whitelisted network\n"
	      "  whitelist NET      put a network (e.g. 192.0.2.0/24) on the auto-whitelist\n"
	      "  pass TRIPLET       let a triplet (a key from list) pass at once\n"
	      "  forget KEY         delete a triplet or a network\n"
	      "  flush              delete all greylisting state\n"
	      "\n"
	      "  --control PATH     ask the mxacld running with --control PATH\n"
	      "  --store URL        open a shared store directly: redis://HOST:PORT[/DB],\n"
	      "                     redis+unix:///PATH, redis-sentinel://HOST:PORT/MASTER\n"
	      "                     or redis-cluster://HOST:PORT[,HOST:PORT...] (the memory\n"
	      "                     store lives inside mxacld: use --control)\n"
	      "  --json             JSON on stdout instead of a table\n"
	      "  --expire DUR       whitelist, pass: how long the entry lives (default 35d)\n"
	      "  --awl N            whitelist: the passes the entry counts for (default 5;\n"
	      "                     at least the acl's awl=)\n"
	      "\n"
	      "Exit status: 0 done, 1 failed, 2 bad usage.\n",
	      f);
}

static int PRINTF_LIKE(1, 2) grey_cli_usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("mxacl grey: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'mxacl grey --help'.\n", stderr);
	return 2;
}

static void PRINTF_LIKE(1, 2) grey_cli_error(const char *fmt, ...)
{
	va_list ap;
	fputs("mxacl grey: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/*
 * NET as acls key it: "ADDR/LEN" masked to LEN bits. Anything that is not
 * an address is kept verbatim (acls key a client without an address by
 * its client_address value). false for a bare address or a bad length.
 */
static bool grey_cli_net(const char *in, char **out, bool need_len)
{
	const char *slash = strrchr(in, '/');
	struct ipaddr a;
	if (!slash) {
		if (ip_parse(in, strlen(in), &a) && need_len)
			return false;
		*out = xstrdup(in);
		return true;
	}
	if (!ip_parse(in, (size_t)(slash - in), &a)) {
		*out = xstrdup(in);
		return true;
	}
	char *end;
	errno = 0;
	long len = strtol(slash + 1, &end, 10);
	int max = ip_is_v4(&a) ? 32 : 128;
	if (!slash[1] || *end || errno || len < 0 || len > max)
		return false;
	ip_mask(&a, (unsigned)len);
	char buf[64];
	ip_format(&a, buf, sizeof buf);
	*out = xasprintf("%s/%ld", buf, len);
	return true;
}

static int grey_cli_parse(int argc, char **argv, struct grey_cli *g)
{
	static const struct option opts[] = {
		{ "control", required_argument, NULL, 'C' },
		{ "store", required_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'j' },
		{ "expire", required_argument, NULL, 'E' },
		{ "awl", required_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'C':
			g->control = optarg;
			break;
		case 'S':
			g->store = optarg;
			break;
		case 'j':
			g->json = true;
			break;
		case 'E':
			if (!duration_parse(optarg, strlen(optarg), &g->p.expire) || !g->p.expire)
				return grey_cli_usage_error("--expire takes a duration such as 35d, "
							    "got \"%s\"", optarg);
			g->has_expire = true;
			break;
		case 'A': {
			char *end;
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || errno || v < 1 || v > 1000000)
				return grey_cli_usage_error("--awl takes a count from 1 to 1000000, "
							    "got \"%s\"", optarg);
			g->p.awl = (uint32_t)v;
			g->has_awl = true;
			break;
		}
		case 'h':
			grey_cli_usage(stdout);
			return 0;
		default:
			fputs("Try 'mxacl grey --help'.\n", stderr);
			return 2;
		}
	}
	if (optind >= argc)
		return grey_cli_usage_error("which command? list, whitelist, pass, forget or flush");
	const char *cmd = argv[optind++];
	size_t i;
	for (i = 0; i < ARRAY_LEN(grey_cli_names); i++)
		if (!strcmp(cmd, grey_cli_names[i]))
			break;
	if (i == ARRAY_LEN(grey_cli_names))
		return grey_cli_usage_error("unknown command '%s': use list, whitelist, pass, "
					    "forget or flush", cmd);
	g->cmd = (enum grey_cli_cmd)i;
	bool keyed = g->cmd == GC_WHITELIST || g->cmd == GC_PASS || g->cmd == GC_FORGET;
	if (keyed && optind == argc)
		return grey_cli_usage_error("%s needs a %s", cmd,
					    g->cmd == GC_WHITELIST ? "network, e.g. 192.0.2.0/24"
					    : g->cmd == GC_PASS    ? "triplet (a key from list)"
								   : "key (from list)");
	if (argc - optind > (keyed ? 1 : 0))
		return grey_cli_usage_error("unexpected argument \"%s\" (quote a key that has "
					    "spaces)", argv[optind + (keyed ? 1 : 0)]);
	if (g->has_expire && g->cmd != GC_WHITELIST && g->cmd != GC_PASS)
		return grey_cli_usage_error("--expire goes with whitelist and pass");
	if (g->has_awl && g->cmd != GC_WHITELIST)
		return grey_cli_usage_error("--awl goes with whitelist");
	if (keyed) {
		const char *k = argv[optind];
		if (!*k || strchr(k, '\n') || strchr(k, '\r'))
			return grey_cli_usage_error("a key is not empty and holds no line break");
		if (g->cmd == GC_PASS) {
			g->key = xstrdup(k);
		} else if (!grey_cli_net(k, &g->key, g->cmd == GC_WHITELIST)) {
			return grey_cli_usage_error("\"%s\": write a network with its prefix length "
						    "as the greylist acl keys it (net4=, net6=), "
						    "e.g. 192.0.2.0/24",
						    k);
		}
	}
	if (!g->control == !g->store)
		return grey_cli_usage_error(g->control ? "give --control or --store, not both"
					    : "say where the state is: --control PATH (a running "
					      "mxacld) or --store URL (a shared Redis)");
	if (g->store && (!strcmp(g->store, "memory") || !strncmp(g->store, "memory:", 7)))
		return grey_cli_usage_error("the memory store lives inside mxacld (an empty one "
					    "would be opened here): start mxacld with --control "
					    "PATH and use mxacl grey --control PATH");
	return -1;
}

/* ---- the answer ------------------------------------------------------------ */

static void grey_cli_add(struct grey_cli *g, enum store_entry_kind kind, const char *key,
			 long long first, long long last, bool passed, unsigned long count)
{
	struct grey_cli_entry e = { .kind = kind, .key = xstrdup(key), .first = first,
				    .last = last, .passed = passed, .count = count };
	VEC_PUSH(g->v, g->n, g->cap, e);
}

static int grey_cli_cmp(const void *a, const void *b)
{
	const struct grey_cli_entry *x = a, *y = b;
	if (x->kind != y->kind)
		return x->kind == STORE_TRIPLET ? -1 : 1;
	return strcmp(x->key, y->key);
}

static void grey_cli_time(long long t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (t <= 0 || !gmtime_r(&tt, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, size, "-");
}

/* A key for the terminal: control bytes as '?'. */
static void grey_cli_put_key(const char *k, int width)
{
	int n = 0;
	for (; *k; k++, n++)
		putchar((unsigned char)*k < 0x20 || *k == 0x7f ? '?' : *k);
	for (; n < width; n++)
		putchar(' ');
}

/* A JSON string: escapes, and bytes that are not UTF-8 as U+FFFD. */
static void grey_cli_json_str(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	putchar('"');
	while (*p) {
		unsigned char c = *p;
		if (c == '"' || c == '\\') {
			printf("\\%c", c);
			p++;
		} else if (c < 0x20 || c == 0x7f) {
			printf("\\u%04x", c);
			p++;
		} else if (c < 0x80) {
			putchar(c);
			p++;
		} else {
			int n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
			int k = 1;
			while (n && k < n && (p[k] & 0xc0) == 0x80)
				k++;
			if (n && k == n) {
				fwrite(p, 1, (size_t)n, stdout);
				p += n;
			} else {
				fputs("\\ufffd", stdout);
				p++;
			}
		}
	}
	putchar('"');
}

static void grey_cli_print_list(struct grey_cli *g)
{
	if (g->n)
		qsort(g->v, g->n, sizeof *g->v, grey_cli_cmp);
	char f[32], l[32];
	if (g->json) {
		fputs("[", stdout);
		for (size_t i = 0; i < g->n; i++) {
			const struct grey_cli_entry *e = &g->v[i];
			grey_cli_time(e->first, f, sizeof f);
			grey_cli_time(e->last, l, sizeof l);
			printf("%s\n{\"kind\":\"%s\",\"key\":", i ? "," : "",
			       e->kind == STORE_TRIPLET ? "triplet" : "awl");
			grey_cli_json_str(e->key);
			printf(",\"first\":%lld,\"last\":%lld,\"first_utc\":\"%s\",\"last_utc\":\"%s\",",
			       e->first, e->last, f, l);
			if (e->kind == STORE_TRIPLET)
				printf("\"passed\":%s}", e->passed ? "true" : "false");
			else
				printf("\"count\":%lu}", e->count);
		}
		fputs(g->n ? "\n]\n" : "]\n", stdout);
		return;
	}
	size_t triplets = 0, passed = 0;
	int width = 3;
	for (size_t i = 0; i < g->n; i++) {
		int len = (int)strlen(g->v[i].key);
		width = len > width ? len : width;
		triplets += g->v[i].kind == STORE_TRIPLET;
		passed += g->v[i].kind == STORE_TRIPLET && g->v[i].passed;
	}
	if (g->n) {
		printf("%-8s ", "KIND");
		grey_cli_put_key("KEY", width);
		printf("  %-20s  %-20s  %s\n", "FIRST SEEN (UTC)", "LAST SEEN (UTC)", "PASSED/COUNT");
	}
	for (size_t i = 0; i < g->n; i++) {
		const struct grey_cli_entry *e = &g->v[i];
		grey_cli_time(e->first, f, sizeof f);
		grey_cli_time(e->last, l, sizeof l);
		printf("%-8s ", e->kind == STORE_TRIPLET ? "triplet" : "awl");
		grey_cli_put_key(e->key, width);
		printf("  %-20s  %-20s  ", f, l);
		if (e->kind == STORE_TRIPLET)
			printf("%s\n", e->passed ? "yes" : "no");
		else
			printf("%lu\n", e->count);
	}
	printf("%zu triplet%s (%zu passed), %zu auto-whitelisted network%s\n", triplets,
	       triplets == 1 ? "" : "s", passed, g->n - triplets, g->n - triplets == 1 ? "" : "s");
}

static void grey_cli_print_edit(const struct grey_cli *g)
{
	if (g->json) {
		printf("{\"command\":\"%s\",", grey_cli_names[g->cmd]);
		if (g->key) {
			fputs("\"key\":", stdout);
			grey_cli_json_str(g->key);
			putchar(',');
		}
		printf("\"changed\":%lu}\n", g->changed);
		return;
	}
	switch (g->cmd) {
	case GC_WHITELIST:
		printf("whitelisted %s\n", g->key);
		break;
	case GC_PASS:
		printf("passed %s\n", g->key);
		break;
	case GC_FORGET:
		if (g->changed)
			printf("forgot %s (%lu entr%s)\n", g->key, g->changed,
			       g->changed == 1 ? "y" : "ies");
		else
			printf("nothing to forget: no entry %s\n", g->key);
		break;
	case GC_FLUSH:
		printf("flushed %lu entr%s\n", g->changed, g->changed == 1 ? "y" : "ies");
		break;
	case GC_LIST:
		break;
	}
}

/* ---- --control: ask mxacld ------------------------------------------------- */

/* Parse one list line of the control protocol into an entry. */
static bool grey_cli_parse_entry(struct grey_cli *g, const char *line)
{
	long long first, last;
	char word[4];
	unsigned long count;
	int off = 0;
	if (sscanf(line, "triplet first=%lld last=%lld passed=%3[a-z] %n", &first, &last, word,
		   &off) == 3 && off && (!strcmp(word, "yes") || !strcmp(word, "no"))) {
		grey_cli_add(g, STORE_TRIPLET, line + off, first, last, word[0] == 'y', 0);
		return true;
	}
	off = 0;
	if (sscanf(line, "awl first=%lld last=%lld count=%lu %n", &first, &last, &count, &off) == 3 &&
	    off) {
		grey_cli_add(g, STORE_AWL, line + off, first, last, false, count);
		return true;
	}
	return false;
}

static int grey_cli_control(struct grey_cli *g)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (!strncmp(g->control, "unix:", 5))    /* as mxacld's endpoints are written */
		g->control += 5;
	if (strlen(g->control) >= sizeof sun.sun_path) {
		grey_cli_error("%s: path too long for a unix socket", g->control);
		return 1;
	}
	memcpy(sun.sun_path, g->control, strlen(g->control) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		grey_cli_error("socket: %s", strerror(errno));
		return 1;
	}
	struct timeval tv = { GREY_CLI_TIMEOUT, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		grey_cli_error("cannot connect to %s: %s (is mxacld running with --control %s?)",
			       g->control, strerror(errno), g->control);
		close(fd);
		return 1;
	}
	char *cmd;
	if (g->cmd == GC_WHITELIST || g->cmd == GC_PASS) {
		/* Only what was asked for: mxacld has its own defaults. */
		char expire[32] = "", awl[32] = "";
		if (g->has_expire)
			snprintf(expire, sizeof expire, " expire=%u", g->p.expire);
		if (g->has_awl)
			snprintf(awl, sizeof awl, " awl=%u", g->p.awl);
		cmd = xasprintf("grey %s%s%s -- %s\n", grey_cli_names[g->cmd], expire, awl, g->key);
	} else if (g->cmd == GC_FORGET) {
		cmd = xasprintf("grey forget %s\n", g->key);
	} else {
		cmd = xasprintf("grey %s\n", grey_cli_names[g->cmd]);
	}
	/* The key may be long, but the line must fit mxacld's limit. */
	size_t len = strlen(cmd);
	if (len - 1 > 4096) {
		grey_cli_error("the command is longer than the control socket takes (4096 bytes)");
		free(cmd);
		close(fd);
		return 1;
	}
	ssize_t w = send(fd, cmd, len, MSG_NOSIGNAL);
	free(cmd);
	if (w < 0 || (size_t)w != len) {
		grey_cli_error("%s: write: %s", g->control, w < 0 ? strerror(errno) : "short write");
		close(fd);
		return 1;
	}
	shutdown(fd, SHUT_WR);          /* one command: mxacld closes after it */
	FILE *in = fdopen(fd, "r");
	if (!in) {
		grey_cli_error("fdopen: %s", strerror(errno));
		close(fd);
		return 1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = -1;
	while (rc < 0 && (n = getline(&line, &cap, in)) >= 0) {
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = 0;
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = 0;
		char *end;
		if (!strncmp(line, "ok ", 3)) {
			errno = 0;
			g->changed = strtoul(line + 3, &end, 10);
			rc = *end || errno ? 1 : 0;
			if (rc)
				grey_cli_error("%s: unexpected answer \"%s\"", g->control, line);
		} else if (!strncmp(line, "error ", 6)) {
			grey_cli_error("mxacld: %s", line + 6);
			rc = 1;
		} else if (g->cmd != GC_LIST || !grey_cli_parse_entry(g, line)) {
			grey_cli_error("%s: unexpected answer \"%s\"", g->control, line);
			rc = 1;
		}
	}
	if (rc < 0) {
		grey_cli_error("%s: %s before the answer ended", g->control,
			       ferror(in) ? strerror(errno) : "connection closed");
		rc = 1;
	}
	free(line);
	fclose(in);
	return rc;
}

/* ---- --store: open it here --------------------------------------------------- */

static void grey_cli_list_cb(void *arg, enum store_status st, const struct store_entry *e)
{
	struct grey_cli *g = arg;
	if (!e) {
		g->st = st;
		g->done = true;
		return;
	}
	if (st == STORE_OK)
		grey_cli_add(g, e->kind, e->key, (long long)e->first, (long long)e->last, e->passed,
			     e->count);
}

static void grey_cli_done_cb(void *arg, enum store_status st, unsigned long changed)
{
	struct grey_cli *g = arg;
	g->st = st;
	g->changed = changed;
	g->done = true;
}

static void grey_cli_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

static int grey_cli_store(struct grey_cli *g)
{
	struct event_base *base = event_base_new();
	if (!base) {
		grey_cli_error("cannot create an event loop");
		return 1;
	}
	/* The store logs its outages; they are ours to show, under our name. */
	char logerr[256];
	if (!log_open("stderr", "mxacl", NULL, logerr, sizeof logerr))
		grey_cli_error("%s", logerr);
	char *err = NULL;
	struct store *s = store_open(base, g->store, &err);
	if (!s) {
		grey_cli_error("%s", err);
		free(err);
		event_base_free(base);
		log_close();
		return 2;
	}
	struct event *timer = evtimer_new(base, grey_cli_timeout_cb, base);
	struct timeval tv = { GREY_CLI_TIMEOUT, 0 };
	evtimer_add(timer, &tv);
	time_t now = time(NULL);
	enum store_edit op = g->cmd == GC_WHITELIST ? STORE_WHITELIST
			     : g->cmd == GC_PASS   ? STORE_PASS
			     : g->cmd == GC_FORGET ? STORE_FORGET
						   : STORE_FLUSH;
	/* Either may answer before returning; the loop runs until it has. */
	if (g->cmd == GC_LIST)
		store_list(s, now, grey_cli_list_cb, g);
	else
		store_edit(s, op, g->key, now, &g->p, grey_cli_done_cb, g);
	bool timed_out = false;
	while (!g->done) {
		int r = event_base_loop(base, EVLOOP_ONCE);
		if (r != 0 || event_base_got_break(base)) {
			timed_out = true;
			break;
		}
	}
	/* Closing answers what is still pending with STORE_FAIL. */
	store_close(s);
	event_free(timer);
	event_base_free(base);
	log_close();
	if (timed_out || g->st != STORE_OK) {
		grey_cli_error("%s: %s", g->store,
			       timed_out ? "no answer from the store"
					 : "temporary failure (is the server up and reachable?)");
		return 1;
	}
	return 0;
}

int grey_cli_main(int argc, char **argv)
{
	struct grey_cli g = { .p = { .delay = 300, .expire = GREY_CLI_EXPIRE,
				     .retry_window = 2 * 86400, .awl = GREY_CLI_AWL } };
	int rc = grey_cli_parse(argc, argv, &g);
	if (rc < 0) {
		rc = g.control ? grey_cli_control(&g) : grey_cli_store(&g);
		if (rc == 0 && g.cmd == GC_LIST)
			grey_cli_print_list(&g);
		else if (rc == 0)
			grey_cli_print_edit(&g);
	}
	for (size_t i = 0; i < g.n; i++)
		free(g.v[i].key);
	free(g.v);
	free(g.key);
	if (fflush(stdout) != 0 && rc == 0) {
		grey_cli_error("stdout: %s", strerror(errno));
		rc = 1;
	}
	return rc;
}
