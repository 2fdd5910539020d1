/*
 * log - the daemon's log: one line per event, to stderr, a file or
 * syslog(3). Lines on stderr and in a file read, Postfix style,
 *
 *   mxacld[PID]: a decision or a notice
 *   mxacld[PID]: warning: something went wrong with one request
 *   mxacld[PID]: error: something the operator must fix
 *
 * with, in a file only, a local timestamp in front (a file has no syslog to
 * add one). Control bytes in a message become '?', so a client cannot forge
 * log lines.
 *
 * A busy mxacld logs one line per decision, tens of thousands a second, so
 * info lines can be buffered: once a flush hook is set, info lines collect
 * in memory and the hook is told when the buffer stops being empty; the
 * owner of the event loop then calls log_flush once per loop iteration.
 * Warnings and errors, and every line while no hook is set, are written at
 * once. Syslog is never buffered here (syslog(3) has its own socket).
 *
 * Not thread-safe: one thread logs.
 */
#ifndef MXACL_LOG_H
#define MXACL_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

/*
 * Send the log to dest: "stderr", "syslog", or a file path (opened for
 * appending, created 0640; a symlink or anything but a regular file or a
 * character device is refused, here and on reopen). ident names the program in each line;
 * facility is a syslog facility name ("mail", "daemon", "user",
 * "local0".."local7"; NULL: "mail"), checked whatever dest is.
 * On failure returns false with a message in err and the previous
 * destination stays in use. Buffered lines are flushed first.
 */
bool log_open(const char *dest, const char *ident, const char *facility,
	      char *err, size_t errlen);
/* Whether name is a syslog facility log_open takes (the list is log.c's). */
bool log_facility_known(const char *name);
/* Reopen a log file by its path (after rotation); true for other kinds.
 * On failure (err says why) the file already open stays in use. */
bool log_reopen(char *err, size_t errlen);
/* Take the new PID for line prefixes; call in the child after fork. */
void log_refresh_pid(void);
/* Flush, close a file, closelog(); lines after this go to stderr. */
void log_close(void);

/*
 * Buffer info lines and call hook(arg) whenever the buffer goes from empty
 * to non-empty; the hook must arrange for log_flush to be called soon (it
 * must not log). hook NULL: flush and write every line at once again.
 */
void log_set_flush_hook(void (*hook)(void *arg), void *arg);
/* Write out buffered lines. */
void log_flush(void);

void log_info(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* An info line that is already formatted (the hot path: decisions). */
void log_info_line(const char *msg, size_t len);
void log_warning(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_error(const char *fmt, ...) PRINTF_LIKE(1, 2);

#endif
