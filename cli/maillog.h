/*
 * maillog - turn mail log lines back into the policy requests Postfix
 * would have sent (for `mxacl replay`, cli/replay.c). Knows nothing of the
 * engine: it hands out requests as lists of policy attributes (name,
 * value) with a timestamp and the outcome the log shows.
 *
 * Lines are fed one at a time, in log order. A line is
 *
 *   [<PRI>]STAMP [HOST] [<PRI>]PROGRAM[PID]: [[ID N FACILITY.LEVEL] ]TEXT
 *
 * where STAMP is classic syslog ("Nov 22 06:25:01", "Aug 3 15:30:49"; the
 * year from maillog_opts.year for the first line, then inferred: see
 * docs/replay.md, "Years") or RFC 3339 ("2024-11-22T06:25:01", also with a
 * space for the T, optionally with fraction and Z/+HH:MM; without a zone
 * it is local time, as mxacld's own file log writes it); a line that
 * starts with PROGRAM[PID]: (mxacld logging to stderr) takes the time of
 * the line before it. <PRI> is a syslog priority a relay left in; the
 * [ID ...] tag is Solaris syslog's.
 *
 * What becomes a request (docs/replay.md has the whole mapping):
 *   - smtpd "NOQUEUE: WORD: RCPT from NAME[ADDR]: TEXT; from=<S> to=<R>
 *     proto=P helo=<H>" (also with a queue ID instead of NOQUEUE); WORD is
 *     the outcome (reject; a reject with a 4xx reply is "defer"; warn,
 *     hold, discard, filter, redirect, reject_warning, ...). A reject or
 *     defer is ready at once; any other word means the recipient was
 *     accepted and the next line of the same smtpd process is normally its
 *     "QID: client=..." line, which carries the SASL login: the request is
 *     held until that process logs again (at most MAILLOG_MAX_HELD at once);
 *   - a "QID: WORD: END-OF-MESSAGE from ..." line (a milter's reject) of
 *     a held message: its recipient, unless already replayed;
 *   - an accepted message: "QID: client=NAME[ADDR], sasl_method=...",
 *     later "QID: from=<S>, size=N, nrcpt=N" (qmgr), then one request per
 *     distinct recipient at its first "QID: to=<R>[, orig_to=<O>]" line,
 *     with the client= line's time and the outcome "accept" (not for a
 *     client= line with XFORWARD's orig_queue_id=/orig_client=: a content
 *     filter handing back a message whose recipients were replayed);
 *   - mxacld "decision client=... rule=... action=WORD ..." lines: the
 *     attributes they list, the outcome WORD (at any protocol_state,
 *     whatever maillog_opts.stages says: they are not rebuilt).
 * Those are RCPT-stage requests. With MAILLOG_STAGE_EOM in
 * maillog_opts.stages, END-OF-MESSAGE requests are rebuilt too:
 *   - one per accepted message (client= line; not a re-injection) at its
 *     qmgr "from=<S>, size=N, nrcpt=N" line: size N, recipient_count
 *     nrcpt, the client, the login, the time of cleanup's "message-id="
 *     line (else the client= line's), outcome "accept";
 *   - one per held message at smtpd's (or cleanup's) "QID: WORD:
 *     END-OF-MESSAGE from ..." line (a policy's or a milter's reject), with
 *     the line's time, sender, HELO and protocol, its recipient (with
 *     recipient_count 1) when it names one, and the outcome WORD.
 * A line may then give two requests (an END-OF-MESSAGE line: its
 * recipient's RCPT request, then the message's END-OF-MESSAGE one).
 * smtpd's "warning: ADDR: address not listed for hostname NAME" (and the
 * other forward-confirmation warnings) before "connect from unknown[ADDR]"
 * give the session's requests reverse_client_name=NAME.
 *
 * The queue-ID window holds the messages between their client= line and
 * their last recipient (or qmgr's "removed", a reject after RCPT, or
 * pickup's "uid=" reusing the ID); it is bounded by count and by idle log
 * time, the least recently mentioned message going first.
 *
 * Not thread-safe; one struct maillog per input stream.
 */
#ifndef MXACL_MAILLOG_H
#define MXACL_MAILLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define MAILLOG_MAX_LINE 16384      /* longer lines are unparsable */
#define MAILLOG_MAX_ATTRS 64        /* attributes of one request */
#define MAILLOG_MAX_NAME 64         /* bytes of an attribute name in an mxacld line */
#define MAILLOG_MAX_QID 32          /* bytes of a queue ID */
#define MAILLOG_MAX_RCPTS 4096      /* recipients remembered per message */
#define MAILLOG_DEFAULT_WINDOW 100000     /* queue IDs held at once */
#define MAILLOG_DEFAULT_WINDOW_AGE 3600   /* s of log time without a mention */
#define MAILLOG_MAX_HELD 64         /* requests waiting for their client= line */

/* maillog_opts.stages: which requests are rebuilt from Postfix's lines */
#define MAILLOG_STAGE_RCPT 1u       /* RCPT (the default) */
#define MAILLOG_STAGE_EOM 2u        /* END-OF-MESSAGE */

struct maillog_opts {
	int year;               /* of the first classic stamp; 0: this year (or
				   last year when that puts the line in the future) */
	size_t window;          /* most queue IDs held; 0: MAILLOG_DEFAULT_WINDOW */
	long window_age;        /* s; 0: MAILLOG_DEFAULT_WINDOW_AGE */
	time_t now;             /* "this year" and time for stamp-less first
				   lines; 0: time(NULL) */
	unsigned stages;        /* MAILLOG_STAGE_* bits; 0: MAILLOG_STAGE_RCPT */
};

enum maillog_source {
	MAILLOG_SRC_REJECT,     /* an smtpd reject/defer/warn/hold/... line */
	MAILLOG_SRC_QUEUE,      /* an accepted message (client=, from=, to=) */
	MAILLOG_SRC_MXACLD,     /* an mxacld decision line */
};

struct maillog_attr {
	const char *name;       /* policy attribute name ("sender") */
	const char *value;      /* NUL-terminated; no control bytes */
	size_t len;
};

/* One reconstructed request. Every pointer is valid until the next
 * maillog_feed, maillog_next, maillog_finish or maillog_free. */
struct maillog_req {
	time_t time;            /* the request's time */
	bool unconfirmed;       /* its line's classic stamp jumped more than a
				   month from the latest before it, and the
				   next line has not confirmed it yet (it may
				   be a stray stamp: see docs/replay.md) */
	enum maillog_source source;
	const char *outcome;    /* what the log says happened ("reject", "defer",
				   "accept", mxacld's action word...); "" none */
	const char *outcome_text;   /* the reply or action text; "" none */
	const char *orig_rule;  /* mxacld's rule= ("policy.conf:12"); "" */
	size_t nattrs;
	struct maillog_attr attrs[MAILLOG_MAX_ATTRS];
};

/* What a line was (each line is one of these; its requests, if any, are
 * taken with maillog_next). */
enum maillog_line {
	MAILLOG_REQUEST,        /* a request's own line (ready now or held) */
	MAILLOG_USED,           /* fed the queue-ID correlation or a session */
	MAILLOG_IGNORED,        /* understood, not needed (connect, other programs) */
	MAILLOG_UNPARSABLE,     /* no log line, or a known kind that is malformed */
	MAILLOG_BLANK,          /* empty, or only spaces and tabs */
};

struct maillog_stats {
	uint64_t lines;         /* fed */
	uint64_t requests;      /* requests made: from_reject + from_queue +
				   from_mxacld (a held one is handed out by
				   maillog_finish at the latest) */
	uint64_t from_reject, from_queue, from_mxacld;
	uint64_t eom;           /* END-OF-MESSAGE requests rebuilt (counted in
				   from_reject or from_queue too) */
	uint64_t used, ignored, unparsable;
	uint64_t blank;         /* MAILLOG_BLANK lines */
	uint64_t held;          /* requests that waited for their client= line */
	uint64_t held_login;    /* ... and got a SASL login from it */
	uint64_t stray;         /* classic stamps taken as stray (docs/replay.md) */
	uint64_t other_stage;   /* smtpd reject/... lines at CONNECT, MAIL, DATA...
				   not replayed (counted in ignored) */
	uint64_t messages;      /* client= lines */
	uint64_t incomplete;    /* messages that ended without any recipient
				   (removed, rejected after RCPT, evicted, end of input) */
	uint64_t evicted;       /* messages dropped by the window's bound */
	uint64_t orphans;       /* from=/to= lines of queue IDs not held (retries
				   after the message was done, log began later) */
	uint64_t duplicates;    /* to= lines of a recipient already replayed */
	uint64_t reinjected;    /* client= lines with XFORWARD's orig_queue_id= or
				   orig_client=: a content filter handing a
				   message back (counted in messages; its
				   recipients are not replayed again) */
	uint64_t window_peak;   /* most queue IDs held at once */
	uint64_t window;        /* held now */
	uint64_t backwards;     /* lines stamped earlier than the line before */
};

/* A parser with empty window; o may be NULL for the defaults. Never NULL. */
struct maillog *maillog_new(const struct maillog_opts *o);
/* NULL is a no-op. */
void maillog_free(struct maillog *m);

/*
 * Take one line (len bytes, no newline; it need not be NUL-terminated and
 * is not kept). Returns what the line was (MAILLOG_REQUEST when it made a
 * request: held, or ready). The requests it made ready (none, its own
 * (one, or two for an END-OF-MESSAGE line), held ones it released, in log
 * order: released ones first) are then taken with maillog_next.
 */
enum maillog_line maillog_feed(struct maillog *m, const char *line, size_t len);

/* The next ready request into *out; false when there is none. Call it
 * until false after each maillog_feed and after maillog_finish. */
bool maillog_next(struct maillog *m, struct maillog_req *out);

/* End of input: held requests become ready (take them with maillog_next);
 * the messages still held count as incomplete if they have had no
 * recipient; the window is emptied. */
void maillog_finish(struct maillog *m);

const struct maillog_stats *maillog_stats(const struct maillog *m);

/* Time of the last stamped line (0: none yet). */
time_t maillog_time(const struct maillog *m);

/* An attribute's value in r, or NULL when it has none. */
const char *maillog_req_get(const struct maillog_req *r, const char *name);

#endif
