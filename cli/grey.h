/*
 * grey - `mxacl grey`: inspect and edit the greylisting state (triplets
 * and auto-whitelisted networks), either through a running mxacld's
 * control socket or in a shared store directly:
 *
 *   mxacl grey --control PATH [--json] list|whitelist NET|pass TRIPLET|forget KEY|flush
 *   mxacl grey --store URL    [--json] ...             (Redis; never "memory")
 *
 * --control speaks the control protocol (daemon/control.h,
 * docs/protocol.md); --store opens the store on an event loop of its own
 * and runs the same store operations mxacld would.
 */
#ifndef MXACL_GREY_H
#define MXACL_GREY_H

/*
 * Run `mxacl grey` with argv[0] = "grey" and the words after it; prints
 * on stdout (results) and stderr (errors). Returns the exit status: 0 done,
 * 1 failed (cannot connect, the store or mxacld said no), 2 bad usage.
 */
int grey_cli_main(int argc, char **argv);

#endif
