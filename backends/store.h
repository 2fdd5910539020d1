/*
 * store - where greylisting, rate and distinct counters keep their state: embedded
 * in memory by default (store_memory.c), or in Redis when several MX
 * gateways must share it (store_redis.c). A backend is a small table of
 * functions (OpenSMTPD's table_*.c), picked by the scheme of a URL:
 *
 *   memory                         (the default)
 *   redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?db=N&prefix=P&timeout=MS]
 *   redis+unix://[[USER]:PASSWORD@]/PATH[?db=N&prefix=P&timeout=MS]
 *   redis-sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER[/DB][?...]
 *   redis-cluster://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...][?prefix=P&timeout=MS]
 * (docs/store.md has the details.)
 *
 * grey, rate, distinct and each single edit are one atomic check-and-update on the
 * store's side, so two gateways racing on one triplet cannot both pass it
 * early (list and flush are not snapshots). Answers come through a callback
 * called exactly once: at once (the memory store, or Redis while it is
 * down) or later from the event loop (Redis), also on failure, timeout and
 * shutdown (status STORE_FAIL). A caller must cope with both. An answer
 * pointer is NULL unless the status is STORE_OK.
 *
 * hiredis writes with write(2): a process using Redis must ignore SIGPIPE.
 *
 * A backend logs an outage once when it begins and once when it ends, never
 * per request; callers only see STORE_FAIL.
 */
#ifndef MXACL_STORE_H
#define MXACL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct event_base;
struct store;

enum store_status { STORE_OK, STORE_FAIL };

/* ---- greylisting ------------------------------------------------------- */

struct grey_params {
	uint32_t delay;         /* seconds before a retry passes */
	uint32_t expire;        /* seconds a passed triplet (and an AWL entry) lives */
	uint32_t retry_window;  /* seconds a new triplet waits for its retry */
	uint32_t awl;           /* passed triplets that whitelist a network; 0: off */
};

struct grey_query {
	const char *triplet;    /* normalised key, e.g. "192.0.2/a@b.example/c@d.example" */
	size_t triplet_len;
	const char *net;        /* client network key for the auto-whitelist */
	size_t net_len;
	time_t now;
	struct grey_params p;
};

/* What the check did, as postgrey logs it (the decision line's greylist=). */
enum grey_state {
	GREY_NEW,               /* unknown, or seen again too late: its wait starts now */
	GREY_EARLY,             /* retried before the delay: `remaining` s missing */
	GREY_FIRST_PASS,        /* retried after the delay: passes for the first time,
				   `age` s after it was first seen */
	GREY_PASSED,            /* a triplet that had passed before */
	GREY_AWL,               /* its network is auto-whitelisted */
};

struct grey_answer {
	bool greylisted;        /* true: the request must wait (the acl matches);
				   exactly state NEW or EARLY */
	bool awl;               /* passed because its network is auto-whitelisted
				   (state AWL) */
	uint32_t remaining;     /* greylisted: seconds until a retry will pass */
	uint32_t age;           /* seconds since the triplet was first seen */
	enum grey_state state;
};

/*
 * The check-and-update, as postgrey does it:
 *  - network in the auto-whitelist (>= awl passed triplets): pass (AWL);
 *  - triplet unknown, or not retried within retry_window, or passed but
 *    unused for expire: (re)start it at now; greylisted, remaining = delay
 *    (NEW);
 *  - triplet waiting, now - first < delay: greylisted, remaining = the rest
 *    (EARLY);
 *  - else pass: the triplet is remembered as passed for expire from now,
 *    and the first pass of a triplet (FIRST_PASS; later ones PASSED)
 *    counts once towards its network's AWL.
 */
typedef void (*grey_cb)(void *arg, enum store_status st, const struct grey_answer *a);

/* ---- rate counters ------------------------------------------------------- */

/*
 * Two logs, one per kind of rate:
 *  - an exact log (slotted false; count=requests): one event per request,
 *    amount 1, kept at its time; at most limit events;
 *  - a slotted log (slotted true; count=recipients|bytes): amounts summed
 *    per slot of rate_slot_width(window) seconds, each slot dated at its
 *    last second, so an amount is forgotten up to width - 1 seconds late
 *    (never early: no window of `window` seconds ever holds more than
 *    limit); at most RATE_SLOTS + 1 slots live, whatever the limit.
 * The caller keeps the two apart by their keys (the rate acl's spec
 * names the count kind); a key used with both is a caller's bug.
 */
struct rate_query {
	const char *key;        /* e.g. "sasl_username|100/3600|alice" */
	size_t key_len;
	uint64_t limit;         /* amount allowed in window */
	uint32_t window;        /* seconds */
	uint64_t amount;        /* this request's: 1 for requests; 0 records nothing */
	bool slotted;           /* the slotted log (above) */
	time_t now;
};

struct rate_answer {
	uint64_t count;         /* the amount in (now - window, now] plus this
				   request's, recorded or not */
	bool over;              /* count > limit: the acl matches, and this
				   request's amount was NOT recorded (a refused
				   request does not use up the quota) */
	uint64_t id;            /* recorded in the exact log: names this event
				   for store_refund (the backend's; 0 when it
				   needs none) */
};

/* Slots of a slotted log per window (a Redis hash of at most 121 fields
 * stays a compact listpack: 128 or fewer). */
#define RATE_SLOTS 120

/* The width of a slotted log's slots: ceil(window / RATE_SLOTS), at least 1. */
static inline uint32_t rate_slot_width(uint32_t window)
{
	return window <= RATE_SLOTS ? 1 : (uint32_t)(((uint64_t)window + RATE_SLOTS - 1) / RATE_SLOTS);
}

/* The time a slotted log dates an amount of now at: its slot's last second. */
static inline uint64_t rate_slot_time(uint64_t now, uint32_t window)
{
	uint32_t w = rate_slot_width(window);
	return now - now % w + w - 1;
}

/* Adds q->amount at now unless the window's amount plus it would pass the
 * limit, and answers the count (both in one atomic step). */
typedef void (*rate_cb)(void *arg, enum store_status st, const struct rate_answer *a);

/* ---- distinct-value counters ---------------------------------------------- */

struct distinct_query {
	const char *key;        /* e.g. "sasl_username|country|3/3600|alice" */
	size_t key_len;
	const char *value;      /* this request's value, e.g. "DE"; never empty */
	size_t value_len;
	uint32_t limit;         /* distinct values allowed in window */
	uint32_t window;        /* seconds */
	time_t now;
};

struct distinct_answer {
	uint32_t count;         /* distinct values seen in (now - window, now],
				   this one included: at most limit + 1 */
	bool over;              /* count > limit: the acl matches */
	bool added;             /* the value joined the set now (it was not
				   there, or had left the window): a refund
				   may take it out; false when it was only
				   seen again (a refund leaves it) */
};

/*
 * The check-and-update of a distinct counter, a set of (value, last seen)
 * per key, exact (values are kept whole, never hashed):
 *  - values last seen at or before now - window leave the set;
 *  - a value already in the set is seen again: its time becomes now (never
 *    earlier than it was: another gateway's clock may be behind), count =
 *    the set's size, not over;
 *  - a new value with fewer than limit in the set joins it at now;
 *  - a new value with limit already in the set is not recorded: count =
 *    limit + 1, over. A refused request uses up nothing, and the set never
 *    holds more than limit values (memory per key is bounded by it).
 */
typedef void (*distinct_cb)(void *arg, enum store_status st, const struct distinct_answer *a);

/* ---- refunds -------------------------------------------------------------- */

/*
 * Undo what one rate or distinct call recorded, when the request's final
 * answer refused it (a later line rejected the message: engine/vm.h,
 * vm_refund). One atomic step in the store, like the call it undoes:
 *  - REFUND_RATE, exact log: the event the call added (id: its answer's)
 *    leaves the log (the memory store: one event at now);
 *  - REFUND_RATE, slotted: amount is taken from now's slot
 *    (rate_slot_time), never below 0; an empty slot is dropped;
 *  - REFUND_DISTINCT: value leaves the set if its last sighting is still
 *    now (a later sighting, here or on another gateway, keeps it).
 * What has left the window meanwhile is not touched. The callback gets
 * changed = 1 when something was undone, 0 when nothing was left to undo.
 * Refunds are rare (refused requests only): one round trip each.
 */
enum store_refund_kind { REFUND_RATE, REFUND_DISTINCT };

struct store_refund {
	enum store_refund_kind kind;
	const char *key;        /* the query's key */
	size_t key_len;
	uint32_t window;        /* the query's */
	time_t now;             /* the query's now */
	bool slotted;           /* rate: the query's */
	uint64_t amount;        /* rate, slotted: the amount recorded */
	uint64_t id;            /* rate, exact: rate_answer.id */
	const char *value;      /* distinct: the value recorded */
	size_t value_len;
};

/* ---- administration (mxacl grey) ---------------------------------------- */

enum store_entry_kind { STORE_TRIPLET, STORE_AWL };

struct store_entry {
	enum store_entry_kind kind;
	const char *key;        /* triplet, or network for STORE_AWL */
	time_t first, last;     /* first seen, last seen (AWL: last pass) */
	bool passed;            /* triplet: has passed greylisting */
	uint32_t count;         /* AWL: passed triplets so far */
};

/*
 * Called once per entry, then once with e == NULL (the end, or st ==
 * STORE_FAIL). Order is unspecified; entries dead at list's now are skipped.
 * e and its key live only for the call.
 */
typedef void (*store_list_cb)(void *arg, enum store_status st, const struct store_entry *e);
typedef void (*store_done_cb)(void *arg, enum store_status st, unsigned long changed);

enum store_edit {
	STORE_WHITELIST,        /* key: a network: put it on the AWL at once */
	STORE_PASS,             /* key: a triplet: mark it passed */
	STORE_FORGET,           /* key: a triplet or network: delete it */
	STORE_FLUSH,            /* key ignored: delete all greylist state */
};

/* ---- the backend table ---------------------------------------------------- */

struct store_ops {
	const char *scheme;     /* "memory", "redis", "redis+unix", "redis-sentinel", ... */
	const char *form;       /* the URL's form, for the hint of an unknown one */
	/* NULL with *err (malloc'ed) on a bad URL; a server that is down is not
	 * an error here: the backend reconnects on its own. */
	struct store *(*open)(struct event_base *base, const char *url, char **err);
	/* Pending callbacks get STORE_FAIL before close returns; close may be
	 * called from inside one of the store's own callbacks. */
	void (*close)(struct store *s);
	void (*grey)(struct store *s, const struct grey_query *q, grey_cb cb, void *arg);
	void (*rate)(struct store *s, const struct rate_query *q, rate_cb cb, void *arg);
	void (*distinct)(struct store *s, const struct distinct_query *q, distinct_cb cb,
			 void *arg);
	void (*list)(struct store *s, time_t now, store_list_cb cb, void *arg);
	/*
	 * Optional (NULL: use list). A listing in slices, for a store that
	 * answers at once and could otherwise hold the loop for a whole big
	 * table: from *cursor (0 to begin) visits about max slots, calls cb
	 * per live entry, and advances *cursor; when the cursor comes back to
	 * 0 (or on failure) cb is called once more with e == NULL. Entries
	 * that live through the whole listing are listed exactly once;
	 * entries added or removed between slices may or may not be (a
	 * listing is not a snapshot).
	 */
	void (*list_slice)(struct store *s, unsigned long *cursor, size_t max, time_t now,
			   store_list_cb cb, void *arg);
	/* A refund (above); cb gets the number of things undone (0 or 1). */
	void (*refund)(struct store *s, const struct store_refund *q, store_done_cb cb,
		       void *arg);
	/* p is required for WHITELIST and PASS; NULL is fine for the others. */
	void (*edit)(struct store *s, enum store_edit op, const char *key, time_t now,
		     const struct grey_params *p, store_done_cb cb, void *arg);
};

/*
 * The backends: one row each (its file defines store_NAME_ops). store_open
 * tries them in this order; the hint for an unknown URL lists their forms.
 */
#define STORE_BACKENDS(X) \
	X(memory)         \
	X(redis)          \
	X(redis_unix)     \
	X(redis_sentinel) \
	X(redis_cluster)
#define X(name) extern const struct store_ops store_##name##_ops;
STORE_BACKENDS(X)
#undef X

struct runtime_stats;
struct store_call;

/* Every store begins with this. */
struct store {
	const struct store_ops *ops;
	struct runtime_stats *stats;   /* where calls are counted; NULL: nowhere */
	struct store_call *free_calls; /* store.c's timing records, for reuse */
	bool closing;                  /* store_close: records are freed, not kept */
};

/*
 * Count this store's calls, errors and (for a store that answers later)
 * their time into st (backends/runtime.h), from now on; NULL stops. The
 * runtime does it for the store it owns. A backend may count its own
 * events (an outage, reconnects) into s->stats, which may be NULL.
 */
void store_set_stats(struct store *s, struct runtime_stats *st);

/*
 * Open the store a URL names ("memory" when url is NULL). NULL with *err
 * (malloc'ed) for an unknown scheme or a bad URL. The backends are the
 * rows of one table in store.c: a new store is its file plus that row.
 */
struct store *store_open(struct event_base *base, const char *url, char **err);
void store_close(struct store *s);     /* NULL is a no-op */

/*
 * Every call into a store goes through these, never through s->ops: they
 * are the one place where calls can be counted, timed or routed. Each
 * forwards to the backend's row, with its contract above (the callback is
 * called exactly once, possibly before the function returns).
 */
void store_grey(struct store *s, const struct grey_query *q, grey_cb cb, void *arg);
void store_rate(struct store *s, const struct rate_query *q, rate_cb cb, void *arg);
void store_distinct(struct store *s, const struct distinct_query *q, distinct_cb cb, void *arg);
void store_refund(struct store *s, const struct store_refund *q, store_done_cb cb, void *arg);
void store_list(struct store *s, time_t now, store_list_cb cb, void *arg);
/*
 * A listing in slices (store_ops.list_slice). A backend without slices
 * lists everything in the first call (the cursor stays 0 and the end is
 * called), so callers need only one loop.
 */
void store_list_slice(struct store *s, unsigned long *cursor, size_t max, time_t now,
		      store_list_cb cb, void *arg);
/* Whether store_list_slice really goes in slices (else one call lists all). */
bool store_slices(const struct store *s);
void store_edit(struct store *s, enum store_edit op, const char *key, time_t now,
		const struct grey_params *p, store_done_cb cb, void *arg);

bool store_is_memory(const struct store *s);

/* ---- the memory store's persistence (--state-file) ------------------------ */

struct store_load_result {
	unsigned long loaded;          /* live entries taken */
	unsigned long expired;         /* entries dead by now, dropped */
	unsigned long skipped;         /* bad lines skipped */
	unsigned long first_bad;       /* line number of the first, or 0 */
	const char *aside;             /* where the original was kept (bad lines,
					  or error), or NULL */
	const char *error;             /* why loading stopped before the end of
					  the file ("not an mxacl state file",
					  a read error), or NULL */
	double seconds;
};
typedef void (*store_load_cb)(void *arg, const struct store_load_result *r);

/*
 * Load path into the (empty) memory store s on a thread of its own: the
 * loop goes on, and until the load is complete every operation of s
 * answers STORE_FAIL and saves are refused. The loop then swaps the
 * loaded table in and calls cb (pointers in r live for the call only).
 * Lines that are not entries are skipped and counted; then, or when the
 * file is not a state file, the original is kept as PATH.bad-TIMESTAMP
 * (a hard link, else a copy) before any save can replace it.
 * Returns 1 (started; cb comes later, never before this returns), 0 (no
 * such file: nothing to load, no cb), or -1 with *err (malloc'ed): path
 * is a directory, a symbolic link, not a regular file, or unreadable.
 * store_close during a load stops the thread promptly and drops its work.
 * Test hook (test builds only, util/testhooks.h): MXACL_TEST_STATE_LOAD_MS=N makes the
 * thread wait N ms first (cancellable).
 */
int store_memory_load_start(struct store *s, const char *path, time_t now, store_load_cb cb,
			    void *arg, char **err);

struct store_save_result {
	bool ok;
	unsigned long entries;         /* written (ok) */
	const char *error;             /* !ok: why */
	double fork_ms;                /* the loop's pause to fork */
	double seconds;                /* from fork to the child's end */
	long pid;                      /* the child's */
};
typedef void (*store_save_cb)(void *arg, const struct store_save_result *r);

/*
 * Save s to path from a forked child, which writes a snapshot (the
 * copy-on-write image at the fork) to a mkstemp() file next to path
 * (mode 0600; a name planted there is never followed), fsyncs it and
 * renames it over path. The loop does not wait: cb is called from it
 * when the child has ended (a failed child's temporary file is removed).
 * Returns 1 (started), 0 (a save is already running: skipped, no cb), or
 * -1 with *err (loading, or mkstemp/pipe/fork failed; no cb).
 * store_close while the child runs kills it and removes its file (no cb).
 */
int store_memory_save_start(struct store *s, const char *path, store_save_cb cb, void *arg,
			    char **err);

/*
 * Save s to path now, in this process (the final save at exit): the same
 * file handling; a background save still running is killed first (this
 * one supersedes it). false with *err when it fails or s is loading (the
 * file is then left as it was).
 */
bool store_memory_save(struct store *s, const char *path, char **err);

struct store_memory_stats {
	size_t entries, buckets;       /* buckets of both tables while growing */
	bool growing;                  /* an incremental rehash is under way */
	bool loading, saving;
};
void store_memory_stats(const struct store *s, struct store_memory_stats *st);

#endif
