/*
 * client - what both kinds of mxacld client connection have in common
 * (policy connections, daemon/conn.c; control clients, daemon/control.c):
 * the non-blocking socket, its read and write events and its timer, the
 * output waiting to be sent, the name the client has in log lines, and its
 * place in its owner's set of clients. Opening, reading, sending, switching
 * events and the teardown are written here once; what to read, when to
 * answer, which timer and when to close stay with the owner's protocol.
 *
 * Ownership. The owner embeds a struct client in its own connection struct
 * (CLIENT_OWNER gets back to it) and owns that memory. From client_open to
 * client_close the client owns the socket, its three events, the output
 * buffer and the name, and is on its set; client_close releases all of
 * them, closes the socket and takes the client off its set. The owner's
 * close function frees what it holds itself, calls client_close and then
 * frees its struct.
 *
 * Callbacks. The three functions given to client_open are libevent
 * callbacks, called with the owner's argument from the loop only, never
 * from inside a client_ function: read while client_watch asks for
 * reading and the socket is readable (or at end of file), write while it
 * asks for writing and the socket takes bytes, timeout when the timer set
 * by client_timer runs out. None is called after client_close.
 *
 * Closing. client_close is safe from inside any callback of that client
 * or of another one (eviction closes another client): libevent lets an
 * event be freed from inside its own callback, and freeing an event that
 * is already activated for this loop pass deletes it, so no callback of a
 * closed client runs afterwards. The callback must return without touching
 * the client again. No client_ function closes: those that meet a dead
 * peer say so (logged), and the caller closes, so that the owner's state
 * is released in one place.
 */
#ifndef MXACL_CLIENT_H
#define MXACL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>
#include <sys/time.h>
#include <sys/types.h>

#include <event2/event.h>

#include "util/util.h"

struct client_set;

struct client {
	struct client_set *set;
	TAILQ_ENTRY(client) link;    /* on set's list, newest first */
	int fd;
	char *name;                  /* starts each of its log lines */
	struct event *rev;           /* EV_READ | EV_PERSIST */
	struct event *wev;           /* EV_WRITE | EV_PERSIST */
	struct event *tev;           /* the owner's timer */
	bool reading, writing, timing;   /* rev, wev, tev added */
	bool eof;                    /* the peer will send no more */
	struct strbuf out;           /* not yet sent: out.s[out_off..out.len) */
	size_t out_off;
};

/* The clients of one owner (the policy pool, the control socket). */
struct client_set {
	TAILQ_HEAD(, client) all;
	size_t count;
};

/* The owner's struct around cl, a client embedded in it as member. */
#define CLIENT_OWNER(cl, type, member) \
	((type *)(void *)((char *)(cl) - offsetof(type, member)))

/* An empty set. */
void client_set_init(struct client_set *set);

/* The newest client of set, or NULL when it is empty (for closing them
 * all at shutdown). */
static inline struct client *client_set_first(const struct client_set *set)
{
	return TAILQ_FIRST(&set->all);
}

/*
 * Take over fd (non-blocking, already accepted) and name (a malloc'd
 * string, freed by client_close) into cl, and put cl on set. The events
 * are made on base with arg as their argument; none is added yet:
 * client_watch and client_timer do that. Cannot fail (allocation failure
 * aborts).
 */
void client_open(struct client *cl, struct client_set *set, struct event_base *base,
		 int fd, char *name, event_callback_fn on_read, event_callback_fn on_write,
		 event_callback_fn on_timeout, void *arg);

/*
 * Free the events, close the socket, drop the output and the name, and take
 * cl off its set. The memory of cl is the owner's; nothing may use cl as
 * a client afterwards. Safe from inside a callback (see above).
 */
void client_close(struct client *cl);

/*
 * Read at most cap bytes into buf. Returns the bytes read (> 0); 0 when
 * none are there now, or at end of file, which sets cl->eof (the peer may
 * have closed only its sending side and still read); -1 on a real error,
 * logged ("NAME: read: ERROR; closing the connection"): the caller closes.
 */
ssize_t client_read(struct client *cl, void *buf, size_t cap);

/*
 * Send as much of the output as the socket takes now, without blocking
 * and without SIGPIPE; when all is sent the buffer is emptied. Returns the
 * bytes sent (0: none now, or nothing to send), or -1 when the peer is
 * gone, logged (at info level when the peer had sent its end of file and
 * left: "NAME: the client left before reading its replies"; otherwise a
 * warning): the caller closes.
 */
ssize_t client_flush(struct client *cl);

/* Whether output is waiting to be sent. */
static inline bool client_pending(const struct client *cl)
{
	return cl->out.len > cl->out_off;
}

/* Have the read and write callbacks called exactly when wanted (nothing is
 * done for an event already in that state). */
void client_watch(struct client *cl, bool want_read, bool want_write);

/*
 * The timer: tv NULL stops it. Otherwise it is started when it is not
 * running, and restarted (from now, for tv) when restart is true; else it
 * keeps running on the time it was started with (a client cannot push a
 * deadline back by trickling bytes). tv may be a libevent common timeout.
 */
void client_timer(struct client *cl, const struct timeval *tv, bool restart);

#endif
