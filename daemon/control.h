/*
 * control - mxacld's administration socket (--control PATH, "set control"),
 * which `mxacl grey --control PATH` talks to: inspect and edit the
 * greylisting state in the runtime's store while mxacld serves.
 *
 * The protocol (docs/protocol.md, "The control socket") is one command
 * line per request, answered by zero or more lines and a final "ok N" or
 * "error MESSAGE" line:
 *
 *   grey list                                   -> triplet/awl lines, ok N
 *   grey whitelist [expire=DUR] [awl=N] NET     -> ok 1
 *   grey pass [expire=DUR] TRIPLET              -> ok 1
 *   grey forget KEY                             -> ok N (entries deleted)
 *   grey flush                                  -> ok N (entries deleted)
 *
 * Keys are taken verbatim (the rest of the line). A command runs to its
 * end before the next line of that client is read; a store that answers
 * later (Redis) keeps only that client waiting, never the event loop, and
 * a listing of a store that answers at once (memory) goes in slices, the
 * next when the client has read the last (store.h, list_slice).
 *
 * The socket itself is a listener (listener.h): main opens it with mode
 * 0600 and the runtime user as owner, and hands accepted clients to
 * control_accept.
 */
#ifndef MXACL_CONTROL_H
#define MXACL_CONTROL_H

#include <stddef.h>

struct event_base;
struct runtime;
struct control;

/* Limits on what a control client can make us hold or wait for. */
#define CONTROL_MAX_LINE 4096        /* bytes in one command, LF excluded */
#define CONTROL_MAX_CLIENTS 8        /* more are told so and closed */
#define CONTROL_IDLE_TIMEOUT 60      /* seconds without a command, or
					without reading a pending answer */

/*
 * Serve control clients on base with rt's store (both borrowed; they
 * outlive the control). Cannot fail (allocation failure aborts).
 */
struct control *control_new(struct event_base *base, struct runtime *rt);

/*
 * Close every control client and free ctl. Store operations still in
 * flight are abandoned: their answers, when the store gives them (at the
 * latest when it is closed), are dropped. NULL is a no-op.
 */
void control_free(struct control *ctl);

/*
 * Serve the client on fd (non-blocking; ctl owns it from now on). peer is
 * copied. Suitable as a listener_accept_fn with the control as arg.
 */
void control_accept(int fd, const char *peer, void *ctl);

/* Clients connected now (tests, logs). */
size_t control_count(const struct control *ctl);

#endif
