/*
 * listener - the sockets mxacld listens on, from endpoint strings:
 *
 *   inet:HOST:PORT      IPv4 address or host name ("*" for every address)
 *   inet:[ADDR]:PORT    IPv6 address ("[::]" for every address)
 *   unix:PATH           a unix socket; for Postfix's "unix:private/mxacl"
 *                       that is $queue_directory/private/mxacl
 *
 * Opening happens at start-up, before privileges are dropped, so that a
 * unix socket can be given its owner; accepting happens later on an event
 * loop. A unix socket's file is removed when its listener is closed.
 *
 * A unix socket's directory may be writable by another user (Postfix's
 * private/ belongs to postfix): the socket is bound, given its mode and
 * owner, and set listening in a fresh directory only mxacld can write
 * (made inside that directory and removed again), then renamed into place,
 * so no chmod or chown ever follows a name somebody else can change.
 */
#ifndef MXACL_LISTENER_H
#define MXACL_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/util.h"

struct event_base;
struct listener;

/* How unix socket files are created. */
struct listener_perms {
	int mode;     /* permission bits; -1: as bind(2) makes it (0777 less the umask) */
	uid_t uid;    /* (uid_t)-1: leave as created */
	gid_t gid;    /* (gid_t)-1: leave as created */
};

/*
 * Called for each accepted connection: fd is non-blocking and close-on-exec
 * and now belongs to the callee; peer names the client for log lines
 * ("127.0.0.1:41234", "[::1]:41234", "unix:/path").
 */
typedef void (*listener_accept_fn)(int fd, const char *peer, void *arg);

/*
 * Bind and listen on spec, appending one listener per address to *v (a
 * host name may give several). A stale unix socket file (one nobody
 * accepts on) is replaced; any other file in the way is an error.
 * Returns false with a message in err (nothing appended) when spec is
 * malformed or a socket cannot be set up.
 */
bool listener_open(const char *spec, const struct listener_perms *perms,
		   struct listener ***v, size_t *n, size_t *cap, struct strbuf *err);

/* The endpoint as given, and the address actually bound ("inet:..."). */
const char *listener_spec(const struct listener *l);
const char *listener_name(const struct listener *l);

/*
 * Start accepting on base: cb(fd, peer, arg) per connection, from the
 * loop. When accept fails for lack of descriptors, accepting pauses for a
 * second (logged) instead of spinning.
 */
bool listener_start(struct listener *l, struct event_base *base,
		    listener_accept_fn cb, void *arg);

/* Close the socket and remove a unix socket's file if it is still the one
 * this listener made. NULL is a no-op. */
void listener_close(struct listener *l);

#endif
