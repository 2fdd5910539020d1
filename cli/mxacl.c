/*
 * mxacl - the command-line tool: check a policy, print its compiled form,
 * and run requests through it exactly as mxacld would answer them.
 *
 *   mxacl check -c FILE [--why-pcre] [--build]
 *   mxacl dump -c FILE
 *   mxacl test -c FILE [--explain] [--now EPOCH] [FILE...]
 *   mxacl grey (--control PATH | --store URL) [--json] COMMAND   (grey.c)
 *   mxacl replay -c FILE [--diff OTHER] [...] [LOG...]          (replay.c)
 *   mxacl status|stats [--control PATH] [--json]                (status.c)
 */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/common.h"
#include "cli/grey.h"
#include "cli/replay.h"
#include "cli/status.h"
#include "backends/runtime.h"
#include "engine/compile.h"
#include "engine/disasm.h"
#include "engine/recache.h"
#include "engine/vm.h"
#include "util/testhooks.h"
#include "util/util.h"

#define MXACL_VERSION "0.1"

static void usage(FILE *f)
{
	fputs("usage: mxacl check -c FILE [--geoip FILE] [--why-pcre] [--build]\n"
	      "       mxacl dump -c FILE [--geoip FILE] [--values]\n"
	      "       mxacl test -c FILE [--geoip FILE] [--dns HOST:PORT]... [--dns-timeout MS]\n"
	      "                  [--explain] [--now EPOCH] [--dry-run] [REQUESTFILE...]\n"
	      "       mxacl grey (--control PATH | --store URL) [--json] list|whitelist NET|\n"
	      "                  pass TRIPLET|forget KEY|flush\n"
	      "       mxacl replay -c FILE [--diff OTHER] [--format text|json] [--fail-on-change]\n"
	      "                  [--year YYYY] [--offline] [--dns HOST:PORT]... [LOG...]\n"
	      "       mxacl status|stats [--control PATH] [--json]\n"
	      "\n"
	      "check    compile the policy; print every error and warning as FILE:LINE:COL\n"
	      "dump     print the compiled program, each instruction with its source line\n"
	      "test     read requests (name=value lines, an empty line after each) from the\n"
	      "         files or stdin and print what mxacld would reply to each; a request's\n"
	      "         policy_test_time=EPOCH attribute sets its clock\n"
	      "grey     list or edit greylisting state in a running mxacld or a shared store\n"
	      "         (mxacl grey --help)\n"
	      "replay   run the policy over mail logs (Postfix's and mxacld's): what it would\n"
	      "         have decided, or with --diff what a new policy changes\n"
	      "         (mxacl replay --help)\n"
	      "status   what a running mxacld serves: version, uptime, policy and its SHA-256,\n"
	      "         connections, store, DNS cache (over its control socket, by default\n"
	      "         " STATUS_DEFAULT_CONTROL ")\n"
	      "stats    a running mxacld's counters, as its metrics endpoint has them\n"
	      "\n"
	      "  -c, --config FILE   the policy (default /etc/mxacl/policy.conf)\n"
	      "  -e, --explain       print each acl evaluated and the deciding line on stderr\n"
	      "      --now EPOCH     the clock for requests without policy_test_time\n"
	      "      --values        dump: list each acl's values as compiled under its line\n"
	      "      --dry-run       test: the whole policy a dry run, as mxacld --dry-run (each\n"
	      "                      answer but DUNNO logged as dryrun ... would=, DUNNO sent)\n"
	      "      --why-pcre      check: a note at each regex that one Vectorscan scan does\n"
	      "                      not answer exactly (PCRE2 confirms or answers it), and why\n"
	      "      --build         check: also build each regex acl's Vectorscan database,\n"
	      "                      as mxacld does, and say how long it took (without it,\n"
	      "                      each regex is checked alone: seconds, not minutes)\n"
	      "      --geoip FILE    MaxMind DB for country acls (overrides set geoip)\n"
	      "      --dns HOST:PORT DNS server for rbl/rhsbl/spf acls, repeatable (overrides\n"
	      "                      set dns; default: /etc/resolv.conf)\n"
	      "      --dns-timeout MS  give up on a DNS lookup after MS ms (default 2000)\n",
	      f);
}

struct test_run {
	struct event_base *base;
	struct runtime *rt;
	struct program *p;
	bool explain;
	long long now;           /* -1: the real clock */
	unsigned long count;
	bool resumed;
};

static void on_resume(struct vm *vm, void *arg)
{
	(void)vm;
	((struct test_run *)arg)->resumed = true;
}

/* Run one complete request; print the reply. */
static bool run_one(struct test_run *t, const char *buf, size_t len, const char *file)
{
	const char *err;
	struct request *r = req_new();
	bool ok = req_parse(r, buf, len, &err);
	t->count++;
	if (!ok) {
		fprintf(stderr, "mxacl: %s: request %lu: %s (mxacld would close the connection)\n", file,
			t->count, err);
		req_free(r);
		return false;
	}
	req_set_clock(r, true, t->now >= 0 ? (time_t)t->now : time(NULL));
	struct vm *vm = vm_new(t->rt, t->p, r, on_resume, t);
	if (t->explain) {
		fprintf(stderr, "request %lu (%s):\n", t->count, file);
		vm_set_trace(vm, stderr);
	}
	while (vm_run(vm) == VM_SUSPENDED) {
		t->resumed = false;
		while (!t->resumed)
			if (event_base_loop(t->base, EVLOOP_ONCE) < 0) {
				fprintf(stderr, "mxacl: event loop failed\n");
				exit(2);
			}
	}
	struct strbuf out;
	sb_init(&out);
	/* what mxacld would log for the dry runs (--explain's trace has them) */
	for (size_t k = 0; k < vm_dry_count(vm) && !t->explain; k++) {
		sb_reset(&out);
		vm_dry_line(vm, k, &out);
		fprintf(stderr, "%s\n", out.s);
	}
	sb_reset(&out);
	vm_reply(vm, &out);
	fwrite(out.s, 1, out.len, stdout);
	if (t->explain)
		fflush(stdout);          /* keep the reply next to its trace */
	sb_free(&out);
	vm_refund(vm);           /* as mxacld does: a refused request's counts */
	vm_free(vm);
	req_free(r);
	return true;
}

static bool run_file(struct test_run *t, FILE *f, const char *name)
{
	struct strbuf in;
	sb_init(&in);
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		sb_add(&in, chunk, n);
	/* a last request may end at end of file without its empty line */
	size_t end = in.len;
	while (end && (in.s[end - 1] == '\n' || in.s[end - 1] == '\r'))
		end--;
	in.len = end;
	if (end)
		sb_add(&in, "\n\n", 2);
	size_t pos = 0;
	bool ok = true;
	while (pos < in.len) {
		/* blank lines between requests are tolerated in test files */
		while (pos < in.len && (in.s[pos] == '\n' || in.s[pos] == '\r'))
			pos++;
		if (pos >= in.len)
			break;
		size_t len;
		const char *err;
		enum req_scan s = req_scan(in.s + pos, in.len - pos, &len, &err);
		if (s != REQ_SCAN_COMPLETE) {
			fprintf(stderr, "mxacl: %s: request %lu: %s (mxacld would close the connection)\n",
				name, t->count + 1, s == REQ_SCAN_ERROR ? err : "incomplete");
			ok = false;
			break;
		}
		if (!run_one(t, in.s + pos, len, name)) {
			ok = false;
			break;
		}
		pos += len;
	}
	fflush(stdout);
	sb_free(&in);
	return ok;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
		printf("mxacl %s\n", MXACL_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "grey"))
		return grey_cli_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "replay"))
		return replay_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "status") || !strcmp(cmd, "stats"))
		return status_cli_main(argc - 1, argv + 1);
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "explain", no_argument, NULL, 'e' },
		{ "now", required_argument, NULL, 'n' },
		{ "values", no_argument, NULL, 'v' },
		{ "dry-run", no_argument, NULL, 'D' },
		{ "why-pcre", no_argument, NULL, 'W' },
		{ "build", no_argument, NULL, 'B' },
		CLI_LOOKUP_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = "/etc/mxacl/policy.conf";
	struct cli_lookups lk = { 0 };
	struct test_run t = { .now = -1 };
	unsigned dump_flags = 0;
	bool build = false;     /* check --build */
	int c;
	optind = 2;
	while ((c = getopt_long(argc, argv, "c:eh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'e':
			t.explain = true;
			break;
		case 'v':
			dump_flags |= DISASM_VALUES;
			break;
		case 'D':
			lk.load.dryrun = 1;
			break;
		case 'W':
			lk.load.why_pcre = true;
			break;
		case 'B':
			build = true;
			break;
		case 'n': {
			char *end;
			errno = 0;
			t.now = strtoll(optarg, &end, 10);
			if (errno || *end || t.now < 0) {
				fprintf(stderr, "mxacl: --now takes seconds since the epoch\n");
				return 2;
			}
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			switch (cli_lookup_option(&lk, c, optarg, cmd)) {
			case 1:
				continue;
			case -1:
				return 2;
			}
			usage(stderr);
			return 2;
		}
	}
	if (strcmp(cmd, "check") && strcmp(cmd, "dump") && strcmp(cmd, "test")) {
		fprintf(stderr, "mxacl: unknown command '%s'\n", cmd);
		usage(stderr);
		return 2;
	}
	if (dump_flags && strcmp(cmd, "dump")) {
		fprintf(stderr, "mxacl: --values is an option of dump\n");
		return 2;
	}
	if (lk.load.why_pcre && strcmp(cmd, "check")) {
		fprintf(stderr, "mxacl: --why-pcre is an option of check\n");
		return 2;
	}
	if (build && strcmp(cmd, "check")) {
		fprintf(stderr, "mxacl: --build is an option of check\n");
		return 2;
	}
	/* check decides each regex's path pattern by pattern (multire.h): a
	 * database of 10,000 patterns takes Vectorscan half a minute, and
	 * 100,000 a quarter of an hour; dump and test serve, so they build */
	struct recache *built = NULL;
	if (!strcmp(cmd, "check") && !build)
		lk.load.regex_classify_only = true;
	if (build)
		lk.load.recache = built = recache_new(NULL, NULL);
	testhooks_register_from_env();
	t.p = cli_load(config, &lk.load, strcmp(cmd, "check") == 0);
	if (t.p && built) {
		char *prefix = xasprintf("mxacl: %s: ", config);
		recache_print(built, stderr, prefix);
		free(prefix);
	}
	recache_free(built);
	if (!t.p)
		return 1;
	int rc = 0;
	if (!strcmp(cmd, "dump")) {
		disasm_program(t.p, stdout, dump_flags);
	} else if (!strcmp(cmd, "test")) {
		t.base = event_base_new();
		t.rt = runtime_new(t.base);
		if (!cli_lookups_apply(&lk, t.rt, t.base, program_settings(t.p))) {
			runtime_free(t.rt);
			event_base_free(t.base);
			program_unref(t.p);
			return 2;
		}
		if (optind == argc) {
			rc = run_file(&t, stdin, "-") ? 0 : 1;
		}
		for (int i = optind; i < argc && rc == 0; i++) {
			FILE *f = strcmp(argv[i], "-") ? fopen(argv[i], "rb") : stdin;
			if (!f) {
				fprintf(stderr, "mxacl: cannot read %s: %s\n", argv[i], strerror(errno));
				rc = 1;
				break;
			}
			if (!run_file(&t, f, argv[i]))
				rc = 1;
			if (f != stdin)
				fclose(f);
		}
		runtime_free(t.rt);
		event_base_free(t.base);
	}
	program_unref(t.p);
	return rc;
}
