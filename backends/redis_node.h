/*
 * redis_node - one connection to one Redis server (or sentinel), for the
 * Redis store (store_redis.c), which decides what to send where: to one
 * server, to the master a Sentinel names, or to the owner of a key's slot
 * in a Redis Cluster.
 *
 * A node is a hiredis asynchronous connection on the caller's libevent
 * loop with its life:
 *
 *   DOWN --reconnect timer--> CONNECTING --handshake done--> UP
 *     ^                            |                          |
 *     +-------- drop (error, EOF, timeout, handshake failure) +
 *
 * The handshake (AUTH, SELECT, ROLE, SCRIPT LOAD of each script, or
 * SUBSCRIBE) is pipelined behind the connect. Commands may be queued while
 * CONNECTING and UP, each with its own timer. A timeout drops the whole
 * connection: replies come in order, so every later command would time
 * out too, and a dropped connection answers them now instead of one
 * timeout each. Reconnection backs off from 100 ms to 5 s.
 *
 * Exactly-once answers. Every command sent with rnode_send gets exactly
 * one call of its reply function: with the reply, or with NULL and a
 * reason when the connection drops, the command times out, or the node is
 * freed. A dropped connection first takes every pending command off the
 * node and marks it answered, then frees the hiredis context, then tells
 * the owner (down), and only then calls the commands' functions: a
 * function that sends again finds the node DOWN and is refused at once.
 * hiredis later calls each command's callback once more (a late reply or
 * NULL); an answered command only counts that down.
 *
 * Never freed under a callback. Every entry from the loop and
 * rnode_free hold the node; rnode_free inside one of the node's own
 * callbacks only marks it, and the last one out frees it.
 *
 * The node logs nothing: it tells its owner (up, down) and the owner
 * logs an outage once.
 */
#ifndef MXACL_REDIS_NODE_H
#define MXACL_REDIS_NODE_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct redisReply;
struct rnode;
struct runtime_stats;

/*
 * The answer to one command: rp (lives for the call only) or NULL with
 * why (a short reason: "connection closed", "no reply within 200 ms",
 * "closed"). Called exactly once per rnode_send that returned true, never
 * before rnode_send returns. The function may send, drop or free nodes.
 */
typedef void (*rnode_reply_fn)(void *arg, struct rnode *n, struct redisReply *rp,
			       const char *why);

/* What the node tells its owner. Every function may be NULL. */
struct rnode_owner {
	void *arg;
	/* The handshake is done (and ROLE said master, when asked). */
	void (*up)(void *arg, struct rnode *n);
	/* A connection failed or was dropped (not at rnode_free); called
	 * before the dropped commands are answered. was_up: it had been UP. */
	void (*down)(void *arg, struct rnode *n, const char *why, bool was_up);
	/* A subscriber node: each published message ({"message", channel,
	 * payload}); rp lives for the call. */
	void (*message)(void *arg, struct rnode *n, struct redisReply *rp);
	/* Where reconnects are counted (RC_store_reconnects); may point at
	 * NULL. */
	struct runtime_stats *const *stats;
};

struct rnode_config {
	const char *host;             /* a numeric address, or NULL for path */
	int port;
	const char *path;             /* a unix socket */
	const char *user, *password;  /* NULL: no AUTH */
	long db;                      /* SELECT when not 0 */
	unsigned timeout_ms;          /* per command; the handshake gets >= 1 s */
	bool check_master;            /* ROLE in the handshake: a replica is
					 dropped ("not a master"); commands sent
					 while CONNECTING are held by the node
					 and go out only once ROLE said master */
	/* SCRIPT LOAD each of nscripts bodies; the node writes the SHA1 the
	 * server answers into sha[i] (the same on every server). */
	const char *const *scripts;
	size_t nscripts;
	char (*sha)[41];
	const char *subscribe;        /* non-NULL: a subscriber to this channel,
					 which takes no commands */
	const char *display;          /* its name in reasons ("127.0.0.1:6379") */
};

/*
 * A node for cfg (copied: cfg's strings may go after), connecting at once.
 * owner is copied too. Never NULL (out of memory aborts).
 */
struct rnode *rnode_new(struct event_base *base, const struct rnode_config *cfg,
			const struct rnode_owner *owner);

/* Close: every pending command is answered (NULL, "closed") before this
 * returns; may be called from the node's own callbacks. NULL is a no-op. */
void rnode_free(struct rnode *n);

/* Can a command be queued now (CONNECTING or UP)? */
bool rnode_ready(const struct rnode *n);
/* Has the handshake finished? */
bool rnode_up(const struct rnode *n);

/*
 * Queue one command (hiredis copies the arguments; argvlen NULL: C
 * strings). false when the node is not ready or hiredis refuses it: fn is
 * then never called. A command with asking is preceded by ASKING on the
 * same connection (a Redis Cluster ASK redirection).
 */
bool rnode_send(struct rnode *n, int argc, const char **argv, const size_t *argvlen,
		bool asking, rnode_reply_fn fn, void *arg);

/* Drop the connection now (why is passed to the owner and the pending
 * commands) and reconnect after the backoff. */
void rnode_drop(struct rnode *n, const char *why);

/* Move the node to another TCP address (numeric) and connect there now,
 * without backoff; pending commands are answered first. */
void rnode_set_addr(struct rnode *n, const char *host, int port);

/* Connect now if DOWN (skipping the rest of the backoff). */
void rnode_kick(struct rnode *n);

/* "HOST:PORT" (or the socket path): the node's address as given. */
const char *rnode_addr(const struct rnode *n);

#endif
