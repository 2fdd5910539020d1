/*
 * replay - `mxacl replay`: run a policy over real mail logs. The logs
 * (files, "-" for stdin, gzip or plain) go through cli/maillog.h, which
 * rebuilds the requests Postfix would have sent; each runs, in log order
 * and on the log's clock, through the policy (and with --diff through a
 * second one), each policy with a runtime of its own, so greylisting and
 * rate acls start from an empty private memory store and see the day as it
 * happened. Prints one line per request (or, with --diff, per request
 * decided differently), then a summary; --format json prints one JSON
 * document instead. docs/replay.md is the user guide.
 *
 *   mxacl replay -c FILE [--diff OTHER] [--format text|json] [--fail-on-change]
 *                [--year YYYY] [--offline | --dns HOST:PORT... --dns-timeout MS]
 *                [--geoip FILE] [--window N] [--window-age SECONDS]
 *                [--stage rcpt|eom|all] [--summary] [-v] [LOG...]
 */
#ifndef MXACL_REPLAY_H
#define MXACL_REPLAY_H

/*
 * Run `mxacl replay` with argv[0] = "replay" and the words after it.
 * Writes results on stdout and errors (and with -v the lines it could not
 * parse) on stderr. Returns the exit status: 0 done; 1 a policy has errors
 * or a log could not be read; 2 bad usage; 3 with --fail-on-change, when
 * some request was decided differently.
 */
int replay_main(int argc, char **argv);

#endif
