/*
 * common - shared pieces of the mxacl commands (see common.h).
 */
#include "cli/common.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

struct program *cli_load(const char *path, const struct load_opts *o, bool count_warnings)
{
	struct diags d;
	diags_init(&d);
	struct program *p = compile_file(path, o, &d);
	diags_print(&d, stderr);
	if (!p)
		fprintf(stderr, "mxacl: %s: %zu error%s\n", path, d.nerrors, d.nerrors == 1 ? "" : "s");
	else if (count_warnings && d.nwarnings)
		fprintf(stderr, "mxacl: %s: %zu warning%s\n", path, d.nwarnings,
			d.nwarnings == 1 ? "" : "s");
	diags_free(&d);
	return p;
}

long long cli_number(const char *cmd, const char *opt, const char *s, long long lo, long long hi)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi) {
		fprintf(stderr, "mxacl: %s: %s takes a number from %lld to %lld\n", cmd, opt, lo, hi);
		return -1;
	}
	return v;
}

int cli_lookup_option(struct cli_lookups *l, int opt, const char *arg, const char *cmd)
{
	long long v;
	l->dns.servers = l->servers;
	switch (opt) {
	case CLI_OPT_DNS:
		if (l->dns.nservers == CLI_MAX_DNS) {
			fprintf(stderr, "mxacl: %s: at most %d --dns servers\n", cmd, CLI_MAX_DNS);
			return -1;
		}
		l->servers[l->dns.nservers++] = arg;
		return 1;
	case CLI_OPT_DNS_TIMEOUT:
		if ((v = cli_number(cmd, "--dns-timeout", arg, 1, 600000)) < 0)
			return -1;
		l->dns.timeout_ms = (unsigned)v;
		return 1;
	case CLI_OPT_GEOIP:
		l->load.geoip = arg;
		return 1;
	default:
		return 0;
	}
}

bool cli_lookups_apply(const struct cli_lookups *l, struct runtime *rt, struct event_base *base,
		       const struct settings *set)
{
	struct dns_opts o = l->dns;
	o.servers = l->servers;
	if (o.nservers == 0 && !o.offline) {     /* --dns wins over "set dns" */
		o.servers = set->dns;
		o.nservers = set->ndns;
	}
	if (!o.nservers && !o.timeout_ms && !o.offline)
		return true;
	char *err = NULL;
	struct dns *d = dns_new(base, &o, &err);
	if (!d) {
		fprintf(stderr, "mxacl: %s\n", err);
		free(err);
		return false;
	}
	runtime_set_dns(rt, d);
	return true;
}
