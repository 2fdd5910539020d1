/*
 * reload - SIGHUP's policy reload, compiled off the serving loop.
 *
 * A large policy takes about a second to read and compile (404,000 lines),
 * and the loop that answers Postfix must not stop for it: the compile runs
 * on a thread of its own, the loop keeps answering on the running program,
 * and the new program is swapped in on the loop when it is ready. At most
 * one compile runs at a time; a request that arrives while one runs is
 * coalesced into one more compile after it, so a burst of SIGHUPs ends
 * with the newest file loaded and never stacks compiles up.
 *
 * Everything this module logs (the diagnostics, in source order, and the
 * outcome line) is logged on the loop thread: util/log is not thread-safe.
 *
 * Falls back to compiling on the loop, as before, if no thread can be
 * started (logged).
 *
 * systemd (notify.h) hears RELOADING=1 when a compile starts and READY=1,
 * with a STATUS= naming the policy that serves and whether the reload
 * failed, when the last compile of a burst is over; so `systemctl reload`
 * returns once the new policy serves or has been refused.
 *
 * Test hook (test builds only, util/testhooks.h): MXACL_TEST_RELOAD_MS=N in the
 * environment makes every compile take N ms longer.
 */
#ifndef MXACL_RELOAD_H
#define MXACL_RELOAD_H

struct event_base;
struct load_opts;
struct program;
struct reload;

/*
 * Called on the loop when a reload compiled without errors, before the
 * "reload: FILE loaded" line. The callee takes over the reference to p
 * (typically conn_pool_set_program) and returns the program p replaces,
 * with a reference of its own (or NULL): the reloader drops that one on
 * its thread, so that freeing a big program does not stop the loop either
 * (program references are atomic). A reload with errors calls it with p
 * NULL (the callee returns NULL): the diagnostics are logged and the
 * running program stays.
 */
typedef struct program *(*reload_ready_fn)(struct program *p, void *arg);

/*
 * A reloader for path with the compiler options o, on base (borrowed: it
 * outlives the reloader). path and o are copied. Call it on the loop
 * thread before any reload, as it also initialises the engine's lazily
 * built tables there (see reload.c). NULL with errno set when it cannot
 * make its pipe or event.
 */
struct reload *reload_new(struct event_base *base, const char *path, const struct load_opts *o,
			  reload_ready_fn ready, void *arg);
/*
 * Read and compile the policy again: start a compile now, or, while one
 * runs, once more after it. Returns at once; the outcome is logged and
 * ready called later, from the loop.
 */
void reload_request(struct reload *r);
/*
 * Free the reloader (NULL is a no-op). A compile still running is
 * abandoned without waiting: its (detached) thread frees its own result
 * when it ends, or the process exits first; ready is never called after
 * this.
 */
void reload_free(struct reload *r);

#endif
