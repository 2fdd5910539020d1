/*
 * proc - what makes mxacld a Unix daemon: users and groups by name,
 * detaching from the terminal, the pid file, dropping root.
 *
 * All of it runs at start-up, before the event loop exists (libevent's
 * epoll descriptor does not survive a fork). Functions that can fail
 * return false with a message in err; start-up treats that as fatal.
 */
#ifndef MXACL_PROC_H
#define MXACL_PROC_H

#include <stdbool.h>
#include <sys/types.h>

#include "util/util.h"

/*
 * "USER" or "USER:GROUP" (names or numbers) to ids; without a group, the
 * user's login group. ":GROUP" alone keeps the owner ((uid_t)-1).
 */
bool proc_owner(const char *spec, uid_t *uid, gid_t *gid, struct strbuf *err);

/*
 * Detach: fork, start a new session, change to "/", point stdin and stdout
 * at /dev/null. Returns in the child only, with *ready_fd to pass to
 * proc_daemon_ready once start-up has succeeded. The parent waits for that
 * and exits 0 then, or 1 if the child exits first: until it is ready the
 * child keeps the terminal's stderr, so a start-up error is seen there.
 */
bool proc_daemonize(int *ready_fd, struct strbuf *err);
/* Tell the parent start-up is done; stderr goes to /dev/null unless
 * keep_stderr (the log goes there). */
void proc_daemon_ready(int ready_fd, bool keep_stderr);

/* Write our PID to path (created 0644, overwritten if there). A symlink,
 * a file that is not a regular file or one with other names (hard links)
 * is refused: the directory may be writable by somebody else. */
bool proc_write_pidfile(const char *path, struct strbuf *err);
/* Remove path if it still holds our PID; false with err on failure. */
bool proc_remove_pidfile(const char *path, struct strbuf *err);

/*
 * Become user: its groups (initgroups), its login group, its uid, in that
 * order, and check that root cannot be regained. Needs root unless we
 * already are that user.
 */
bool proc_drop_privileges(const char *user, struct strbuf *err);

/* An absolute version of path (relative to the working directory); the
 * caller frees it. */
char *proc_abs_path(const char *path);

#endif
