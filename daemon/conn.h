/*
 * conn - the clients of mxacld: one connection per Postfix smtpd process,
 * many requests on each (SMTPD_POLICY_README).
 *
 * A connection reads what arrives into its own buffer, cuts it into
 * requests (req_scan), runs each through a VM on the current program and
 * answers in request order, one write per batch of replies. A request that
 * suspends (a lookup) holds up the requests behind it on that connection
 * only. A request that breaks the protocol or a limit is logged and its
 * connection closed without a reply. A client that stays silent too long,
 * or leaves a request half sent too long, is dropped with a log line. A
 * client that closes its sending side still gets the replies to every
 * request it sent whole; then the connection is closed.
 *
 * At max_conns a new client takes the place of the connection idle the
 * longest, or, with none idle, of the one whose request has been arriving
 * the longest (a flood of idle or trickling clients must not lock Postfix
 * out); a request received whole is never dropped for it. With every
 * connection busy so, the new client is refused. Both are logged at most
 * once a second.
 *
 * The pool owns every connection and the current program. Swapping the
 * program (a reload) affects requests that start afterwards; a VM holds a
 * reference to the program it started on.
 */
#ifndef MXACL_CONN_H
#define MXACL_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/time.h>

struct event_base;
struct program;
struct runtime;
struct conn_pool;

struct conn_limits {
	size_t max_conns;            /* connections open at once (see above) */
	struct timeval idle;         /* no request in progress */
	struct timeval request;      /* a request half received, or replies
	                                the client does not read */
};

/*
 * A pool on base, running requests with rt (both borrowed; they outlive
 * the pool). The pool takes over the caller's reference to program.
 */
struct conn_pool *conn_pool_new(struct event_base *base, struct runtime *rt,
				struct program *program, const struct conn_limits *lim);
/* Close every connection (abandoning suspended requests) and free the
 * pool, dropping its program reference. NULL is a no-op. */
void conn_pool_free(struct conn_pool *pool);

/* Requests from now on run on program; takes over the caller's reference. */
void conn_pool_set_program(struct conn_pool *pool, struct program *program);
/* The current program (borrowed). */
struct program *conn_pool_program(const struct conn_pool *pool);
size_t conn_pool_count(const struct conn_pool *pool);

/*
 * Serve the client on fd (non-blocking; the pool owns it from now on). At
 * max_conns an idle connection is closed to make room, or, when none can
 * be, fd is closed at once. peer is copied. Suitable as a
 * listener_accept_fn with the pool as arg.
 */
void conn_pool_accept(int fd, const char *peer, void *pool);

#endif
