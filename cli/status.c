/*
 * status - `mxacl status` and `mxacl stats` (see status.h).
 *
 * Both send one command, read "NAME VALUE" lines up to "ok N", and print
 * them: as they came (stats) or with times made readable (status), or as
 * one JSON object. A stats line's count is its last word; its name may
 * carry a label, NAME{label="VALUE"}: JSON gathers the lines of one NAME
 * into an object NAME_by_LABEL of VALUE to count (NAME alone may be a
 * plain counter too: requests).
 */
#include "cli/status.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

#define STATUS_TIMEOUT 30   /* seconds to wait for mxacld */

/* The answer's lines (before "ok N"). */
struct status_lines {
	char **v;
	size_t n, cap;
};

static void status_lines_free(struct status_lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

/* Send cmd to the control socket at path and collect the answer; false
 * (after a message) on any failure. */
static bool status_ask(const char *path, const char *cmd, struct status_lines *out)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (!strncmp(path, "unix:", 5))
		path += 5;
	if (strlen(path) >= sizeof sun.sun_path) {
		fprintf(stderr, "mxacl: %s: path too long for a unix socket\n", path);
		return false;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "mxacl: socket: %s\n", strerror(errno));
		return false;
	}
	struct timeval tv = { STATUS_TIMEOUT, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		fprintf(stderr, "mxacl: cannot connect to %s: %s (is mxacld running with "
			"--control %s?)\n", path, strerror(errno), path);
		close(fd);
		return false;
	}
	char line1[64];
	int len = snprintf(line1, sizeof line1, "%s\n", cmd);
	if (send(fd, line1, (size_t)len, MSG_NOSIGNAL) != len) {
		fprintf(stderr, "mxacl: %s: write: %s\n", path, strerror(errno));
		close(fd);
		return false;
	}
	shutdown(fd, SHUT_WR);
	FILE *in = fdopen(fd, "r");
	if (!in) {
		close(fd);
		return false;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = -1;
	while (rc < 0 && (n = getline(&line, &cap, in)) >= 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = 0;
		if (!strncmp(line, "ok ", 3)) {
			rc = 0;
		} else if (!strncmp(line, "error ", 6)) {
			fprintf(stderr, "mxacl: mxacld: %s\n", line + 6);
			rc = 1;
		} else {
			if (out->n == out->cap) {
				out->cap = out->cap ? 2 * out->cap : 64;
				out->v = xrealloc(out->v, out->cap * sizeof *out->v);
			}
			out->v[out->n++] = xstrdup(line);
		}
	}
	if (rc < 0)
		fprintf(stderr, "mxacl: %s: %s before the answer ended\n", path,
			ferror(in) ? strerror(errno) : "connection closed");
	free(line);
	fclose(in);
	return rc == 0;
}

/* A JSON string. */
static void status_json_str(const char *s, size_t len)
{
	putchar('"');
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

/* Whether s is a plain non-negative integer. */
static bool status_number(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static void status_utc(time_t t, char *buf, size_t size)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* `mxacl status`: "NAME VALUE" lines. */
static void status_print(const struct status_lines *l, bool json)
{
	if (json)
		putchar('{');
	for (size_t i = 0; i < l->n; i++) {
		const char *sp = strchr(l->v[i], ' ');
		size_t nlen = sp ? (size_t)(sp - l->v[i]) : strlen(l->v[i]);
		const char *val = sp ? sp + 1 : "";
		if (json) {
			printf("%s", i ? "," : "");
			status_json_str(l->v[i], nlen);
			putchar(':');
			if (status_number(val))
				printf("%s", val);
			else
				status_json_str(val, strlen(val));
			continue;
		}
		printf("%-18.*s %s", (int)nlen, l->v[i], val);
		if ((nlen == 7 && !strncmp(l->v[i], "started", 7)) ||
		    (nlen == 13 && !strncmp(l->v[i], "policy_loaded", 13))) {
			char buf[32];
			status_utc((time_t)strtoll(val, NULL, 10), buf, sizeof buf);
			printf(" (%s)", buf);
		} else if (nlen == 6 && !strncmp(l->v[i], "uptime", 6)) {
			long long s = strtoll(val, NULL, 10);
			printf(" s (%lldd %02lld:%02lld:%02lld)", s / 86400, s / 3600 % 24, s / 60 % 60,
			       s % 60);
		}
		putchar('\n');
	}
	if (json)
		puts("}");
}

/* `mxacl stats`: the lines as they are, or one JSON object in which a
 * labelled counter is an object of its label's values. */
static void stats_print(const struct status_lines *l, bool json)
{
	if (!json) {
		for (size_t i = 0; i < l->n; i++)
			puts(l->v[i]);
		return;
	}
	putchar('{');
	const char *open = NULL;      /* the labelled name whose object is open */
	size_t open_len = 0;
	bool first = true;
	for (size_t i = 0; i < l->n; i++) {
		const char *ln = l->v[i];
		const char *sp = strrchr(ln, ' ');
		if (!sp)
			continue;
		const char *val = sp + 1;
		const char *brace = memchr(ln, '{', (size_t)(sp - ln));
		size_t nlen = brace ? (size_t)(brace - ln) : (size_t)(sp - ln);
		if (open && (!brace || nlen != open_len || strncmp(ln, open, nlen))) {
			putchar('}');
			open = NULL;
		}
		if (brace) {
			if (!open) {
				/* NAME_by_LABEL: "requests" is also a plain counter */
				const char *eq = memchr(brace, '=', (size_t)(sp - brace));
				struct strbuf key;
				sb_init(&key);
				sb_add(&key, ln, nlen);
				sb_adds(&key, "_by_");
				if (eq)
					sb_add(&key, brace + 1, (size_t)(eq - brace - 1));
				printf("%s", first ? "" : ",");
				status_json_str(key.s, key.len);
				sb_free(&key);
				printf(":{");
				open = ln;
				open_len = nlen;
			} else {
				putchar(',');
			}
			/* the label's value: between the first '"' and the last before '}' */
			const char *q1 = memchr(brace, '"', (size_t)(sp - brace));
			const char *q2 = sp;
			while (q2 > brace && *q2 != '"')
				q2--;
			if (q1 && q2 > q1) {
				/* unescape \\ \" \n as written by mxacld */
				struct strbuf v;
				sb_init(&v);
				for (const char *p = q1 + 1; p < q2; p++) {
					if (*p == '\\' && p + 1 < q2) {
						p++;
						sb_addc(&v, *p == 'n' ? '\n' : *p);
					} else {
						sb_addc(&v, *p);
					}
				}
				status_json_str(v.s ? v.s : "", v.len);
				sb_free(&v);
			} else {
				status_json_str(brace, (size_t)(sp - brace));
			}
		} else {
			printf("%s", first ? "" : ",");
			status_json_str(ln, nlen);
		}
		putchar(':');
		if (status_number(val))
			printf("%s", val);
		else
			status_json_str(val, strlen(val));
		first = false;
	}
	if (open)
		putchar('}');
	puts("}");
}

int status_cli_main(int argc, char **argv)
{
	bool stats = !strcmp(argv[0], "stats");
	const char *control = STATUS_DEFAULT_CONTROL;
	bool json = false;
	static const struct option longopts[] = {
		{ "control", required_argument, NULL, 'C' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'C':
			control = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			printf("usage: mxacl %s [--control PATH] [--json]\n", argv[0]);
			return 0;
		default:
			fprintf(stderr, "usage: mxacl %s [--control PATH] [--json]\n", argv[0]);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "mxacl: %s takes no argument\nusage: mxacl %s [--control PATH] "
			"[--json]\n", argv[0], argv[0]);
		return 2;
	}
	struct status_lines l = { 0 };
	bool ok = status_ask(control, stats ? "stats" : "status", &l);
	if (ok) {
		if (stats)
			stats_print(&l, json);
		else
			status_print(&l, json);
	}
	status_lines_free(&l);
	return ok ? 0 : 1;
}
