/*
 * status - `mxacl status` and `mxacl stats`: what a running mxacld says
 * about itself over its control socket (daemon/control.h, the "status"
 * and "stats" commands; docs/protocol.md):
 *
 *   mxacl status [--control PATH] [--json]   version, uptime, policy, ...
 *   mxacl stats  [--control PATH] [--json]   every counter (daemon/metrics.h)
 */
#ifndef MXACL_STATUS_H
#define MXACL_STATUS_H

/* The control socket used when --control is not given. */
#define STATUS_DEFAULT_CONTROL "/run/mxacld/control"

/*
 * Run `mxacl status` or `mxacl stats` (argv[0] says which) with the words
 * after it; prints the answer on stdout, errors on stderr. Returns the
 * exit status: 0 done, 1 failed (cannot connect, mxacld answered an
 * error), 2 bad usage.
 */
int status_cli_main(int argc, char **argv);

#endif
