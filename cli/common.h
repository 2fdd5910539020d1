/*
 * common - what the tool's commands share: loading a policy with its
 * diagnostics on stderr, number options, and the options of lookups
 * (--dns, --dns-timeout, --geoip) with the resolver they make.
 */
#ifndef MXACL_CLI_COMMON_H
#define MXACL_CLI_COMMON_H

#include <stdbool.h>

#include "backends/dns.h"
#include "backends/runtime.h"
#include "engine/compile.h"

#define CLI_MAX_DNS 64

/*
 * Load path, printing its diagnostics and an error count on stderr (and a
 * warning count when count_warnings). NULL when it has errors.
 */
struct program *cli_load(const char *path, const struct load_opts *o, bool count_warnings);

/*
 * s as a whole number in [lo, hi]; -1 with "mxacl: CMD: OPT takes ..." on
 * stderr when it is not (lo must be >= 0).
 */
long long cli_number(const char *cmd, const char *opt, const char *s, long long lo, long long hi);

/* --dns (repeatable), --dns-timeout, --geoip, --offline as given. */
struct cli_lookups {
	const char *servers[CLI_MAX_DNS];
	struct dns_opts dns;        /* .servers points at servers[] once used */
	struct load_opts load;
};

/* getopt_long values of the lookup options, for a command's option table. */
enum { CLI_OPT_DNS = 0x100, CLI_OPT_DNS_TIMEOUT, CLI_OPT_GEOIP };
#define CLI_LOOKUP_OPTIONS                                                  \
	{ "dns", required_argument, NULL, CLI_OPT_DNS },                    \
	{ "dns-timeout", required_argument, NULL, CLI_OPT_DNS_TIMEOUT },    \
	{ "geoip", required_argument, NULL, CLI_OPT_GEOIP }

/*
 * Take option opt (with its argument) into l. Returns 1 when it was one of
 * CLI_LOOKUP_OPTIONS, 0 when it is not, -1 when its value is bad (a
 * message on stderr, naming cmd).
 */
int cli_lookup_option(struct cli_lookups *l, int opt, const char *arg, const char *cmd);

/*
 * Give rt the resolver l asks for: --dns servers, else the policy's "set
 * dns" ones (settings set), with --dns-timeout and offline. When none of
 * these is given rt keeps its default (made on first use from
 * /etc/resolv.conf). False with a message on stderr for a bad server.
 */
bool cli_lookups_apply(const struct cli_lookups *l, struct runtime *rt, struct event_base *base,
		       const struct settings *set);

#endif
