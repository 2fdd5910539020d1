/*
 * replay - `mxacl replay` (see replay.h and docs/replay.md).
 *
 * The loop: read a large block, cut it into lines, hand each to maillog;
 * a line that completes a request becomes policy-protocol text, is parsed
 * into one reused struct request, gets its clock and runs on each policy
 * to its verdict (on the event loop while a lookup is out). Memory stays
 * flat: one read buffer, one request, reused output buffers, counters sized
 * by the policies; only maillog's queue-ID window grows with the log, and
 * it is bounded.
 */
#include "cli/replay.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "cli/common.h"
#include "cli/maillog.h"
#include "backends/runtime.h"
#include "engine/compile.h"
#include "engine/vm.h"
#include "engine/strmap.h"
#include "util/testhooks.h"

#define REPLAY_READ_SIZE (1 << 20)   /* bytes per gzread */
#define REPLAY_EXAMPLES 3            /* examples kept per group of changes */

enum { RULE_DEFAULT = -1, RULE_TEMPFAIL = -2 };

struct act_count {
	char *word;
	uint64_t n;
};

/* One policy and what it decided. */
struct ruleset {
	const char *path;
	struct program *p;
	struct runtime *rt;
	size_t nrules;
	uint64_t *per_rule;          /* nrules */
	uint64_t n_default, n_tempfail;
	struct act_count *acts;
	size_t nacts;
};

/* The verdict of one ruleset on the current request. */
struct decision {
	struct strbuf reply;         /* "action=WORD text\n\n" */
	const char *action;          /* into reply: "WORD text" */
	size_t action_len, word_len;
	long rule;                   /* index, RULE_DEFAULT or RULE_TEMPFAIL */
};

/* Requests decided differently, by (old line, new line). */
struct change_group {
	long old_rule, new_rule;
	uint64_t n;
	char *examples[REPLAY_EXAMPLES];
	size_t nexamples;
};

struct replay {
	struct maillog_opts mo;
	struct maillog *ml;
	bool json, diff, verbose, summary_only, fail_on_change;
	struct event_base *base;
	struct ruleset rs[2];
	int nrs;
	struct request *req;
	struct strbuf text;          /* the request in the policy protocol */
	struct strbuf line;          /* one output line / JSON object */
	struct decision d[2];
	time_t clock;                /* never goes back (see docs/replay.md) */
	bool resumed;
	bool first_item;             /* JSON: no comma before the first */
	uint64_t changed, compared, bad_requests;
	struct strmap *group_index;  /* "old,new" -> group number + 1 */
	struct change_group *groups;
	size_t ngroups, capgroups;
	time_t stamp_time;           /* cached formatted time */
	char stamp[32];
	int rc;
};

/* replay's usage and options, on f. */
static void usage(FILE *f)
{
	fputs("usage: mxacl replay -c FILE [--diff OTHER] [--format text|json] [--fail-on-change]\n"
	      "                    [--year YYYY] [--offline | --dns HOST:PORT... [--dns-timeout MS]]\n"
	      "                    [--geoip FILE] [--window N] [--window-age SECONDS]\n"
	      "                    [--stage rcpt|eom|all] [--summary] [-v] [LOG...]\n"
	      "\n"
	      "Read mail logs (Postfix smtpd/qmgr/delivery lines and mxacld decision lines;\n"
	      "files, - for stdin, gzip or plain; stdin when none), rebuild the policy\n"
	      "requests Postfix sent, and run them in log order, on the log's clock, through\n"
	      "the policy. Prints one line per request, then a summary.\n"
	      "\n"
	      "  -c, --config FILE     the policy (default /etc/mxacl/policy.conf)\n"
	      "      --diff OTHER      also run OTHER; print only requests it decides\n"
	      "                        differently, grouped by (FILE line -> OTHER line)\n"
	      "      --fail-on-change  with --diff: exit 3 when any request changed\n"
	      "      --format FMT      text (default) or json (one JSON document)\n"
	      "      --summary         no line per request, only the summary\n"
	      "      --year YYYY       year of the first classic syslog stamp (default: this\n"
	      "                        year, or last year for a date in the future)\n"
	      "      --offline         DNS and SPF lookups fail at once (temporary failure)\n"
	      "      --dns HOST:PORT   DNS server for rbl/rhsbl/spf acls, repeatable\n"
	      "      --dns-timeout MS  give up on a DNS lookup after MS ms (default 2000)\n"
	      "      --geoip FILE      MaxMind DB for country acls\n"
	      "      --window N        queue IDs held while their lines come (default 100000)\n"
	      "      --window-age S    drop a queue ID not mentioned for S s of log time\n"
	      "                        (default 3600)\n"
	      "      --stage STAGE     requests rebuilt from Postfix's lines: rcpt (default),\n"
	      "                        eom (END-OF-MESSAGE, one per message) or all\n"
	      "  -v, --verbose         show each line that cannot be parsed on stderr\n"
	      "\n"
	      "Exit status: 0; 1 policy or input errors; 2 usage; 3 --fail-on-change and a\n"
	      "change.\n",
	      f);
}

/* ---- output helpers ---------------------------------------------------- */

/* s as a JSON string: control bytes and invalid UTF-8 escaped (a byte of
 * an invalid sequence as the Latin-1 character it would be). */
static void json_str(struct strbuf *b, const char *s, size_t n)
{
	sb_addc(b, '"');
	size_t run = 0, i = 0;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			i++;
			continue;
		}
		size_t len = 0;
		if (c >= 0xc2 && c <= 0xdf)
			len = 2;
		else if (c >= 0xe0 && c <= 0xef)
			len = 3;
		else if (c >= 0xf0 && c <= 0xf4)
			len = 4;
		if (len && i + len <= n) {
			bool ok = true;
			for (size_t k = 1; k < len; k++)
				ok &= ((unsigned char)s[i + k] & 0xc0) == 0x80;
			if (ok) {
				i += len;
				continue;
			}
		}
		sb_add(b, s + run, i - run);
		if (c == '"' || c == '\\') {
			sb_addc(b, '\\');
			sb_addc(b, (char)c);
		} else {
			sb_printf(b, "\\u%04x", c);
		}
		run = ++i;
	}
	sb_add(b, s + run, n - run);
	sb_addc(b, '"');
}

/* A NUL-terminated s as a JSON string. */
static void json_strz(struct strbuf *b, const char *s)
{
	json_str(b, s, strlen(s));
}

/* "2024-11-22T06:25:01", local time, cached per second. */
static const char *fmt_time(struct replay *R, time_t t)
{
	if (t != R->stamp_time) {
		struct tm tm;
		R->stamp_time = t;
		if (!localtime_r(&t, &tm) || !strftime(R->stamp, sizeof R->stamp, "%Y-%m-%dT%H:%M:%S", &tm))
			snprintf(R->stamp, sizeof R->stamp, "%lld", (long long)t);
	}
	return R->stamp;
}

/* Is rule of ruleset s a "dryrun access" line? A replay lets such lines
 * decide (vm_set_dry_decides): it shows what they would have done. */
static bool rule_dry(const struct ruleset *s, long rule)
{
	return rule >= 0 && s->p->rules[rule].dryrun;
}

/* The line's label (its name, else "FILE:LINE"), "default" or "tempfail"
 * for rule of ruleset s. */
static void add_label(struct strbuf *b, const struct ruleset *s, long rule)
{
	if (rule == RULE_DEFAULT)
		sb_adds(b, "default");
	else if (rule == RULE_TEMPFAIL)
		sb_adds(b, "tempfail");
	else {
		char lab[PROGRAM_LABEL_SIZE];
		sb_adds(b, program_rule_label(s->p, (size_t)rule, lab));
	}
}

/* The label, and " (dry run)" after a dry-run line's: text output. */
static void add_rule(struct strbuf *b, const struct ruleset *s, long rule)
{
	add_label(b, s, rule);
	if (rule_dry(s, rule))
		sb_adds(b, " (dry run)");
}

/* rule as a JSON string: "FILE:LINE", "default" or "tempfail" (a dry-run
 * line is marked by a "dryrun" member beside it). */
static void json_rule(struct strbuf *b, const struct ruleset *s, long rule)
{
	struct strbuf r;
	sb_init(&r);
	add_label(&r, s, rule);
	json_str(b, r.s, r.len);
	sb_free(&r);
}

/* q's attribute name, or "" when it has none. */
static const char *attr_or_empty(const struct maillog_req *q, const char *name)
{
	const char *v = maillog_req_get(q, name);
	return v ? v : "";
}

/* ---- running requests -------------------------------------------------- */

/* The VM may go on: a lookup it waited for has answered. */
static void on_resume(struct vm *vm, void *arg)
{
	(void)vm;
	((struct replay *)arg)->resumed = true;
}

/* Count an action word for s. */
static void count_action(struct ruleset *s, const char *w, size_t n)
{
	for (size_t i = 0; i < s->nacts; i++)
		if (strlen(s->acts[i].word) == n && !memcmp(s->acts[i].word, w, n)) {
			s->acts[i].n++;
			return;
		}
	s->acts = xrealloc(s->acts, (s->nacts + 1) * sizeof *s->acts);
	s->acts[s->nacts].word = xstrndup(w, n);
	s->acts[s->nacts++].n = 1;
}

/* Run the current request on ruleset s to its verdict, into *d. */
static void decide(struct replay *R, struct ruleset *s, struct decision *d)
{
	struct vm *vm = vm_new(s->rt, s->p, R->req, on_resume, R);
	vm_set_dry_decides(vm);
	while (vm_run(vm) == VM_SUSPENDED) {
		R->resumed = false;
		while (!R->resumed)
			if (event_base_loop(R->base, EVLOOP_ONCE) < 0) {
				fprintf(stderr, "mxacl: replay: event loop failed\n");
				exit(1);
			}
	}
	sb_reset(&d->reply);
	vm_reply(vm, &d->reply);
	bool tf = false;
	long rule = vm_rule(vm, &tf);
	vm_refund(vm);           /* as mxacld does: a refused request's counts */
	vm_free(vm);
	d->rule = rule >= 0 ? rule : tf ? RULE_TEMPFAIL : RULE_DEFAULT;
	const char *a = d->reply.s;
	size_t n = d->reply.len;
	if (n >= 7 && !memcmp(a, "action=", 7)) {
		a += 7;
		n -= 7;
	}
	while (n && a[n - 1] == '\n')
		n--;
	d->action = a;
	d->action_len = n;
	const char *sp = memchr(a, ' ', n);
	d->word_len = sp ? (size_t)(sp - a) : n;
	if (d->rule >= 0)
		s->per_rule[d->rule]++;
	else if (d->rule == RULE_DEFAULT)
		s->n_default++;
	else
		s->n_tempfail++;
	count_action(s, a, d->word_len);
}

/* The request's who and when, shared by every output form. */
static void text_head(struct replay *R, struct strbuf *b, const struct maillog_req *q)
{
	sb_adds(b, fmt_time(R, q->time));
	sb_adds(b, " client=");
	const char *name = maillog_req_get(q, "client_name");
	sb_adds(b, name && *name ? name : "unknown");
	sb_addc(b, '[');
	sb_adds(b, attr_or_empty(q, "client_address"));
	sb_adds(b, "] from=<");
	sb_adds(b, attr_or_empty(q, "sender"));
	sb_adds(b, "> to=<");
	sb_adds(b, attr_or_empty(q, "recipient"));
	sb_addc(b, '>');
	const char *state = maillog_req_get(q, "protocol_state");
	if (state && strcmp(state, "RCPT")) {
		/* another stage than RCPT (--stage eom): what a quota counts */
		sb_adds(b, " state=");
		sb_adds(b, state);
		sb_adds(b, " recipient_count=");
		sb_adds(b, attr_or_empty(q, "recipient_count"));
		sb_adds(b, " size=");
		sb_adds(b, attr_or_empty(q, "size"));
	}
	sb_adds(b, " was=");
	sb_adds(b, q->outcome[0] ? q->outcome : "-");
}

/* The request's who, when, attributes and logged outcome as JSON members. */
static void json_head(struct replay *R, struct strbuf *b, const struct maillog_req *q)
{
	static const char *const src[] = { "reject", "queue", "mxacld" };
	sb_adds(b, "{\"time\":");
	json_strz(b, fmt_time(R, q->time));
	sb_printf(b, ",\"epoch\":%lld,\"source\":\"%s\"", (long long)q->time, src[q->source]);
	static const char *const names[] = { "client_name", "client_address", "helo_name",
					     "sender", "recipient", "sasl_username" };
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		const char *v = maillog_req_get(q, names[i]);
		if (!v)
			continue;
		sb_printf(b, ",\"%s\":", names[i]);
		json_strz(b, v);
	}
	sb_adds(b, ",\"attributes\":{");
	for (size_t i = 0; i < q->nattrs; i++) {
		if (i)
			sb_addc(b, ',');
		json_strz(b, q->attrs[i].name);
		sb_addc(b, ':');
		json_str(b, q->attrs[i].value, q->attrs[i].len);
	}
	sb_adds(b, "},\"was\":");
	json_strz(b, q->outcome);
	sb_adds(b, ",\"was_text\":");
	json_strz(b, q->outcome_text);
	if (q->orig_rule[0]) {
		sb_adds(b, ",\"was_rule\":");
		json_strz(b, q->orig_rule);
	}
}

/* One ruleset's decision as a JSON object. */
static void json_decision(struct strbuf *b, const struct ruleset *s, const struct decision *d)
{
	sb_adds(b, "{\"action\":");
	json_str(b, d->action, d->action_len);
	sb_adds(b, ",\"word\":");
	json_str(b, d->action, d->word_len);
	sb_adds(b, ",\"rule\":");
	json_rule(b, s, d->rule);
	if (rule_dry(s, d->rule))
		sb_adds(b, ",\"dryrun\":true");
	sb_addc(b, '}');
}

/* Write the current output line to stdout. */
static void emit(struct replay *R)
{
	if (R->json) {
		fputs(R->first_item ? "\n" : ",\n", stdout);
		R->first_item = false;
	}
	fwrite(R->line.s, 1, R->line.len, stdout);
	if (!R->json)
		putchar('\n');
}

/* Record a change in its (old line, new line) group. */
static void note_change(struct replay *R, const struct maillog_req *q)
{
	char key[48];
	int klen = snprintf(key, sizeof key, "%ld,%ld", R->d[0].rule, R->d[1].rule);
	bool added;
	uint32_t *slot = strmap_put(R->group_index, key, (size_t)klen, &added);
	if (added) {
		if (R->ngroups == R->capgroups) {
			R->capgroups = R->capgroups ? 2 * R->capgroups : 16;
			R->groups = xrealloc(R->groups, R->capgroups * sizeof *R->groups);
		}
		R->groups[R->ngroups] = (struct change_group){ .old_rule = R->d[0].rule,
							       .new_rule = R->d[1].rule };
		*slot = (uint32_t)++R->ngroups;
	}
	struct change_group *g = &R->groups[*slot - 1];
	g->n++;
	if (g->nexamples < REPLAY_EXAMPLES) {
		struct strbuf e;
		sb_init(&e);
		text_head(R, &e, q);
		sb_adds(&e, ": ");
		sb_add(&e, R->d[0].action, R->d[0].action_len);
		sb_adds(&e, " -> ");
		sb_add(&e, R->d[1].action, R->d[1].action_len);
		g->examples[g->nexamples++] = e.s;     /* the group owns it */
	}
}

/* A request rebuilt from the log: run it, print it. */
static void replay_request(struct replay *R, const struct maillog_req *q)
{
	sb_reset(&R->text);
	for (size_t i = 0; i < q->nattrs; i++) {
		size_t nlen = strlen(q->attrs[i].name), vlen = q->attrs[i].len;
		/* as long as Postfix could send; a name too long for any line is
		 * left whole for req_parse to refuse */
		if (nlen < REQ_MAX_LINE && nlen + 1 + vlen > REQ_MAX_LINE)
			vlen = REQ_MAX_LINE - nlen - 1;
		sb_add(&R->text, q->attrs[i].name, nlen);
		sb_addc(&R->text, '=');
		sb_add(&R->text, q->attrs[i].value, vlen);
		sb_addc(&R->text, '\n');
	}
	sb_addc(&R->text, '\n');
	const char *err;
	req_reset(R->req);
	if (!req_parse(R->req, R->text.s, R->text.len, &err)) {
		R->bad_requests++;
		return;
	}
	if (q->time > R->clock && !q->unconfirmed)   /* a stray stamp must not */
		R->clock = q->time;                  /* move it months ahead */
	req_set_clock(R->req, false, R->clock);
	for (int i = 0; i < R->nrs; i++)
		decide(R, &R->rs[i], &R->d[i]);

	bool differs = false;
	if (R->diff) {
		R->compared++;
		differs = R->d[0].action_len != R->d[1].action_len ||
			  memcmp(R->d[0].action, R->d[1].action, R->d[0].action_len) != 0;
		if (!differs)
			return;
		R->changed++;
		note_change(R, q);
	}
	if (R->summary_only)
		return;
	sb_reset(&R->line);
	if (R->json) {
		json_head(R, &R->line, q);
		if (R->diff) {
			sb_adds(&R->line, ",\"old\":");
			json_decision(&R->line, &R->rs[0], &R->d[0]);
			sb_adds(&R->line, ",\"new\":");
			json_decision(&R->line, &R->rs[1], &R->d[1]);
		} else {
			sb_adds(&R->line, ",\"decision\":");
			json_decision(&R->line, &R->rs[0], &R->d[0]);
		}
		sb_addc(&R->line, '}');
	} else {
		text_head(R, &R->line, q);
		for (int i = 0; i < R->nrs; i++) {
			sb_adds(&R->line, R->diff ? (i ? " => new rule=" : " old rule=") : " rule=");
			add_rule(&R->line, &R->rs[i], R->d[i].rule);
			sb_adds(&R->line, " action=");
			sb_add(&R->line, R->d[i].action, R->d[i].action_len);
		}
	}
	emit(R);
}

/* ---- reading logs ------------------------------------------------------ */

/* Feed one log line; run the request it completes, if any. */
static void one_line(struct replay *R, const char *name, uint64_t lineno, const char *s,
		     size_t n)
{
	struct maillog_req q;
	enum maillog_line k = maillog_feed(R->ml, s, n);
	while (maillog_next(R->ml, &q))
		replay_request(R, &q);
	if (k == MAILLOG_UNPARSABLE && R->verbose)
		fprintf(stderr, "mxacl: replay: %s:%llu: cannot parse: %.*s\n", name,
			(unsigned long long)lineno, (int)(n > 300 ? 300 : n), s);
}

/* zlib's message for f's error, without the "PATH: " zlib puts before it
 * (the caller names the log itself; zlib's own texts hold no ": ");
 * NULL when there is no error. */
static const char *gz_problem(gzFile f)
{
	int e;
	const char *msg = gzerror(f, &e);
	if (e == Z_OK)
		return NULL;
	if (e == Z_ERRNO)
		return strerror(errno);
	const char *text = msg;
	for (const char *c = msg; (c = strstr(c, ": ")) != NULL; c += 2)
		text = c + 2;
	return text;
}

/* Feed every line of one log; false when it cannot be read to its end. */
static bool read_log(struct replay *R, const char *path, char *buf, size_t cap)
{
	const char *name = strcmp(path, "-") ? path : "(stdin)";
	gzFile f;
	if (strcmp(path, "-")) {
		f = gzopen(path, "rb");
	} else {
		int fd = dup(0);
		f = fd < 0 ? NULL : gzdopen(fd, "rb");
	}
	if (!f) {
		fprintf(stderr, "mxacl: replay: cannot read %s: %s\n", name,
			errno ? strerror(errno) : "out of memory");
		return false;
	}
	gzbuffer(f, 256 * 1024);
	size_t have = 0;
	uint64_t lineno = 0;
	bool skipping = false;      /* inside an overlong line */
	bool ok = true;
	for (;;) {
		int n = gzread(f, buf + have, (unsigned)(cap - have));
		if (n <= 0) {
			/* a gzip stream cut short is an error zlib reports at n == 0 */
			const char *problem = gz_problem(f);
			if (n < 0 || problem) {
				fprintf(stderr, "mxacl: replay: %s: %s\n", name,
					problem ? problem : "read error");
				ok = false;
			}
			break;
		}
		have += (size_t)n;
		size_t pos = 0;
		for (;;) {
			char *nl = memchr(buf + pos, '\n', have - pos);
			if (!nl)
				break;
			size_t len = (size_t)(nl - (buf + pos));
			if (skipping) {
				skipping = false;
			} else {
				lineno++;
				one_line(R, name, lineno, buf + pos, len);
			}
			pos += len + 1;
		}
		memmove(buf, buf + pos, have - pos);
		have -= pos;
		if (have > MAILLOG_MAX_LINE) {
			/* no newline in sight: an overlong line, counted once */
			if (!skipping) {
				lineno++;
				one_line(R, name, lineno, buf, have);
			}
			skipping = true;
			have = 0;
		}
	}
	if (ok && have && !skipping) {
		lineno++;
		one_line(R, name, lineno, buf, have);   /* a last line without newline */
	}
	gzclose(f);
	return ok;
}

/* ---- summary ----------------------------------------------------------- */

/* One policy's counts per action and access line, as text. */
static void text_ruleset_summary(struct replay *R, struct ruleset *s, FILE *o)
{
	(void)R;
	fprintf(o, "policy %s:\n  actions:", s->path);
	for (size_t i = 0; i < s->nacts; i++)
		fprintf(o, "%s %s %llu", i ? "," : "", s->acts[i].word, (unsigned long long)s->acts[i].n);
	fprintf(o, "%s\n  access lines:\n", s->nacts ? "" : " none");
	struct strbuf b;
	sb_init(&b);
	size_t never = 0;
	for (size_t i = 0; i < s->nrules; i++) {
		if (!s->per_rule[i]) {
			never++;
			continue;
		}
		sb_reset(&b);
		add_rule(&b, s, (long)i);
		fprintf(o, "    %-30s %llu\n", b.s, (unsigned long long)s->per_rule[i]);
	}
	fprintf(o, "    %-30s %llu\n    %-30s %llu\n", "default (no line matched)",
		(unsigned long long)s->n_default, "tempfail (default action)",
		(unsigned long long)s->n_tempfail);
	fprintf(o, "  never matched: %zu line%s", never, never == 1 ? "" : "s");
	const char *sep = ": ";
	for (size_t i = 0; i < s->nrules; i++)
		if (!s->per_rule[i]) {
			sb_reset(&b);
			add_rule(&b, s, (long)i);
			fprintf(o, "%s%s", sep, b.s);
			sep = ", ";
		}
	fputc('\n', o);
	sb_free(&b);
}

/* qsort order of change groups: the largest first. */
static int cmp_group(const void *a, const void *b)
{
	const struct change_group *x = a, *y = b;
	return x->n < y->n ? 1 : x->n > y->n ? -1 : 0;
}

/* The summary after the text lines. */
static void text_summary(struct replay *R, FILE *o)
{
	const struct maillog_stats *st = maillog_stats(R->ml);
	fprintf(o, "\nsummary: %llu lines, %llu requests (%llu from smtpd reject/defer/warn/hold/... "
		"lines, %llu from accepted messages, %llu from mxacld decision lines), %llu "
		"unparsable, %llu not needed",
		(unsigned long long)st->lines, (unsigned long long)st->requests,
		(unsigned long long)st->from_reject, (unsigned long long)st->from_queue,
		(unsigned long long)st->from_mxacld, (unsigned long long)st->unparsable,
		(unsigned long long)(st->ignored + st->used));
	if (st->blank)
		fprintf(o, ", %llu blank", (unsigned long long)st->blank);
	fputc('\n', o);
	fprintf(o, "queue IDs: %llu messages, %llu re-injected by a content filter (not replayed "
		"again), %llu incomplete (no recipient logged), %llu evicted "
		"by the window (%zu IDs, %ld s idle), peak %llu held; %llu from=/to= lines without "
		"their client= line, %llu repeated delivery lines\n",
		(unsigned long long)st->messages, (unsigned long long)st->reinjected,
		(unsigned long long)st->incomplete,
		(unsigned long long)st->evicted, R->mo.window, R->mo.window_age,
		(unsigned long long)st->window_peak, (unsigned long long)st->orphans,
		(unsigned long long)st->duplicates);
	if (st->other_stage || st->backwards || R->bad_requests)
		fprintf(o, "also: %llu smtpd reject lines at other stages than RCPT (not replayed), "
			"%llu lines stamped earlier than the line before, %llu requests refused by the "
			"request parser\n",
			(unsigned long long)st->other_stage, (unsigned long long)st->backwards,
			(unsigned long long)R->bad_requests);
	if (st->eom || (R->mo.stages & MAILLOG_STAGE_EOM))
		fprintf(o, "stages: %llu RCPT requests, %llu END-OF-MESSAGE requests\n",
			(unsigned long long)(st->requests - st->eom), (unsigned long long)st->eom);
	if (st->held || st->stray)
		fprintf(o, "also: %llu NOQUEUE requests waited for their client= line (%llu got a "
			"SASL login from it), %llu stray stamps\n",
			(unsigned long long)st->held, (unsigned long long)st->held_login,
			(unsigned long long)st->stray);
	for (int i = 0; i < R->nrs; i++)
		text_ruleset_summary(R, &R->rs[i], o);
	if (!R->diff)
		return;
	fprintf(o, "changes: %llu of %llu requests decided differently\n",
		(unsigned long long)R->changed, (unsigned long long)R->compared);
	struct strbuf b;
	sb_init(&b);
	for (size_t i = 0; i < R->ngroups; i++) {
		struct change_group *g = &R->groups[i];
		sb_reset(&b);
		add_rule(&b, &R->rs[0], g->old_rule);
		sb_adds(&b, " -> ");
		add_rule(&b, &R->rs[1], g->new_rule);
		fprintf(o, "  %s: %llu\n", b.s, (unsigned long long)g->n);
		for (size_t k = 0; k < g->nexamples; k++)
			fprintf(o, "    e.g. %s\n", g->examples[k]);
	}
	sb_free(&b);
}

/* One policy's counts as a JSON object. */
static void json_ruleset_summary(struct strbuf *b, struct ruleset *s)
{
	sb_adds(b, "{\"config\":");
	json_strz(b, s->path);
	sb_adds(b, ",\"actions\":{");
	for (size_t i = 0; i < s->nacts; i++) {
		if (i)
			sb_addc(b, ',');
		json_strz(b, s->acts[i].word);
		sb_printf(b, ":%llu", (unsigned long long)s->acts[i].n);
	}
	sb_adds(b, "},\"lines\":[");
	for (size_t i = 0; i < s->nrules; i++) {
		sb_adds(b, i ? ",{\"rule\":" : "{\"rule\":");
		json_rule(b, s, (long)i);
		if (rule_dry(s, (long)i))
			sb_adds(b, ",\"dryrun\":true");
		sb_printf(b, ",\"count\":%llu}", (unsigned long long)s->per_rule[i]);
	}
	sb_printf(b, "],\"default\":%llu,\"tempfail\":%llu,\"never_matched\":[",
		  (unsigned long long)s->n_default, (unsigned long long)s->n_tempfail);
	bool first = true;
	for (size_t i = 0; i < s->nrules; i++)
		if (!s->per_rule[i]) {
			if (!first)
				sb_addc(b, ',');
			first = false;
			json_rule(b, s, (long)i);
		}
	sb_adds(b, "]}");
}

/* The end of the JSON document: the summary member. */
static void json_summary(struct replay *R, FILE *o)
{
	const struct maillog_stats *st = maillog_stats(R->ml);
	struct strbuf b;
	sb_init(&b);
	sb_printf(&b, "\n],\n\"summary\":{\"lines\":%llu,\"requests\":%llu,"
		  "\"from_reject\":%llu,\"from_queue\":%llu,\"from_mxacld\":%llu,"
		  "\"unparsable\":%llu,\"not_needed\":%llu,\"other_stage\":%llu,\"messages\":%llu,"
		  "\"reinjected\":%llu,\"incomplete\":%llu,\"evicted\":%llu,\"window_peak\":%llu,\"orphans\":%llu,"
		  "\"duplicates\":%llu,\"backwards\":%llu,\"refused\":%llu,\"blank\":%llu,"
		  "\"held\":%llu,\"held_login\":%llu,\"stray\":%llu,\"eom\":%llu,\"rulesets\":[",
		  (unsigned long long)st->lines, (unsigned long long)st->requests,
		  (unsigned long long)st->from_reject, (unsigned long long)st->from_queue,
		  (unsigned long long)st->from_mxacld, (unsigned long long)st->unparsable,
		  (unsigned long long)(st->ignored + st->used), (unsigned long long)st->other_stage,
		  (unsigned long long)st->messages, (unsigned long long)st->reinjected,
		  (unsigned long long)st->incomplete,
		  (unsigned long long)st->evicted, (unsigned long long)st->window_peak,
		  (unsigned long long)st->orphans, (unsigned long long)st->duplicates,
		  (unsigned long long)st->backwards, (unsigned long long)R->bad_requests,
		  (unsigned long long)st->blank, (unsigned long long)st->held,
		  (unsigned long long)st->held_login, (unsigned long long)st->stray,
		  (unsigned long long)st->eom);
	for (int i = 0; i < R->nrs; i++) {
		if (i)
			sb_addc(&b, ',');
		json_ruleset_summary(&b, &R->rs[i]);
	}
	sb_addc(&b, ']');
	if (R->diff) {
		sb_printf(&b, ",\"compared\":%llu,\"changed\":%llu,\"changes\":[",
			  (unsigned long long)R->compared, (unsigned long long)R->changed);
		for (size_t i = 0; i < R->ngroups; i++) {
			struct change_group *g = &R->groups[i];
			sb_adds(&b, i ? ",{\"old_rule\":" : "{\"old_rule\":");
			json_rule(&b, &R->rs[0], g->old_rule);
			sb_adds(&b, ",\"new_rule\":");
			json_rule(&b, &R->rs[1], g->new_rule);
			sb_printf(&b, ",\"count\":%llu,\"examples\":[", (unsigned long long)g->n);
			for (size_t k = 0; k < g->nexamples; k++) {
				if (k)
					sb_addc(&b, ',');
				json_strz(&b, g->examples[k]);
			}
			sb_adds(&b, "]}");
		}
		sb_addc(&b, ']');
	}
	sb_adds(&b, "}}\n");
	fwrite(b.s, 1, b.len, o);
	sb_free(&b);
}

/* ---- set-up ------------------------------------------------------------ */

/* Compile the policy at path, printing its diagnostics; NULL on errors. */
/* Load path into s with its own runtime and resolver; false on errors. */
static bool ruleset_open(struct replay *R, struct ruleset *s, const char *path,
			 const struct cli_lookups *lk)
{
	s->path = path;
	s->p = cli_load(path, &lk->load, false);
	if (!s->p)
		return false;
	s->rt = runtime_new(R->base);
	s->nrules = program_nrules(s->p);
	s->per_rule = xcalloc(s->nrules ? s->nrules : 1, sizeof *s->per_rule);
	return cli_lookups_apply(lk, s->rt, R->base, program_settings(s->p));
}

/* Free what ruleset_open made (also after it failed half-way). */
static void ruleset_close(struct ruleset *s)
{
	runtime_free(s->rt);
	program_unref(s->p);
	free(s->per_rule);
	for (size_t i = 0; i < s->nacts; i++)
		free(s->acts[i].word);
	free(s->acts);
}

/* See replay.h: parse the options, open the policies, read the logs, summarise. */
int replay_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "diff", required_argument, NULL, 'D' },
		{ "format", required_argument, NULL, 'F' },
		{ "fail-on-change", no_argument, NULL, 'X' },
		{ "summary", no_argument, NULL, 's' },
		{ "year", required_argument, NULL, 'y' },
		{ "offline", no_argument, NULL, 'o' },
		CLI_LOOKUP_OPTIONS,
		{ "window", required_argument, NULL, 'W' },
		{ "window-age", required_argument, NULL, 'A' },
		{ "stage", required_argument, NULL, 'S' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct replay R = { .first_item = true, .stamp_time = -1 };
	const char *config = "/etc/mxacl/policy.conf", *other = NULL;
	struct cli_lookups lk = { 0 };
	long long v;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:svh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'D':
			other = optarg;
			break;
		case 'F':
			if (!strcmp(optarg, "json"))
				R.json = true;
			else if (strcmp(optarg, "text")) {
				fprintf(stderr, "mxacl: replay: --format is text or json\n");
				return 2;
			}
			break;
		case 'X':
			R.fail_on_change = true;
			break;
		case 's':
			R.summary_only = true;
			break;
		case 'y':
			if ((v = cli_number("replay", "--year", optarg, 1970, 9999)) < 0)
				return 2;
			R.mo.year = (int)v;
			break;
		case 'o':
			lk.dns.offline = true;
			break;
		case 'W':
			if ((v = cli_number("replay", "--window", optarg, 1, 100000000)) < 0)
				return 2;
			R.mo.window = (size_t)v;
			break;
		case 'A':
			if ((v = cli_number("replay", "--window-age", optarg, 1, 365LL * 86400)) < 0)
				return 2;
			R.mo.window_age = (long)v;
			break;
		case 'S':
			if (!strcmp(optarg, "rcpt"))
				R.mo.stages = MAILLOG_STAGE_RCPT;
			else if (!strcmp(optarg, "eom"))
				R.mo.stages = MAILLOG_STAGE_EOM;
			else if (!strcmp(optarg, "all"))
				R.mo.stages = MAILLOG_STAGE_RCPT | MAILLOG_STAGE_EOM;
			else {
				fprintf(stderr, "mxacl: replay: --stage is rcpt, eom or all\n");
				return 2;
			}
			break;
		case 'v':
			R.verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			switch (cli_lookup_option(&lk, c, optarg, "replay")) {
			case 1:
				continue;
			case -1:
				return 2;
			}
			usage(stderr);
			return 2;
		}
	}
	if (lk.dns.offline && lk.dns.nservers) {
		fprintf(stderr, "mxacl: replay: --offline and --dns exclude each other\n");
		return 2;
	}
	if (R.fail_on_change && !other) {
		fprintf(stderr, "mxacl: replay: --fail-on-change needs --diff\n");
		return 2;
	}
	R.diff = other != NULL;
	if (!R.mo.window)
		R.mo.window = MAILLOG_DEFAULT_WINDOW;
	if (!R.mo.window_age)
		R.mo.window_age = MAILLOG_DEFAULT_WINDOW_AGE;

	testhooks_register_from_env();
	R.base = event_base_new();
	if (!R.base) {
		fprintf(stderr, "mxacl: replay: cannot make an event loop\n");
		return 1;
	}
	int rc = 0;
	R.nrs = R.diff ? 2 : 1;
	if (!ruleset_open(&R, &R.rs[0], config, &lk) ||
	    (R.diff && !ruleset_open(&R, &R.rs[1], other, &lk))) {
		rc = 1;
		goto out;
	}
	R.ml = maillog_new(&R.mo);
	R.req = req_new();
	R.group_index = strmap_new();
	sb_init(&R.text);
	sb_init(&R.line);
	sb_init(&R.d[0].reply);
	sb_init(&R.d[1].reply);
	static char obuf[1 << 16];
	setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
	size_t cap = REPLAY_READ_SIZE + MAILLOG_MAX_LINE + 1;
	char *buf = xmalloc(cap);
	if (R.json)
		fputs(R.diff ? "{\"changed_requests\":[" : "{\"requests\":[", stdout);
	if (optind == argc) {
		if (!read_log(&R, "-", buf, cap))
			rc = 1;
	}
	for (int i = optind; i < argc; i++)
		if (!read_log(&R, argv[i], buf, cap))
			rc = 1;
	free(buf);
	maillog_finish(R.ml);
	struct maillog_req q;
	while (maillog_next(R.ml, &q))      /* requests still held at the end */
		replay_request(&R, &q);
	if (R.ngroups)              /* largest group first, for both formats */
		qsort(R.groups, R.ngroups, sizeof *R.groups, cmp_group);
	if (R.json)
		json_summary(&R, stdout);
	else
		text_summary(&R, stdout);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "mxacl: replay: cannot write the output: %s\n", strerror(errno));
		rc = 1;
	}
	if (rc == 0 && R.fail_on_change && R.changed)
		rc = 3;
	maillog_free(R.ml);
	req_free(R.req);
	strmap_free(R.group_index);
	for (size_t i = 0; i < R.ngroups; i++)
		for (size_t k = 0; k < R.groups[i].nexamples; k++)
			free(R.groups[i].examples[k]);
	free(R.groups);
	sb_free(&R.text);
	sb_free(&R.line);
	sb_free(&R.d[0].reply);
	sb_free(&R.d[1].reply);
out:
	for (int i = 0; i < R.nrs; i++)
		ruleset_close(&R.rs[i]);
	event_base_free(R.base);
	return rc;
}
