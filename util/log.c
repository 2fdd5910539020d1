/*
 * log - the daemon's log (see log.h). One static state: a process has one
 * log. Lines are built in place in the output buffer, so an info line
 * costs one vsnprintf and a scan for control bytes; the write(2) happens
 * per batch when a flush hook is set.
 */
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* Longer messages are cut: a log line is for a human or a grep. */
#define LOG_MSG_MAX 16384
/* Room for a line's prefixes around the message. */
#define LOG_HEAD_MAX 256
#define LOG_BUF_SIZE (8 * (LOG_MSG_MAX + LOG_HEAD_MAX))

enum log_kind { LOG_KIND_STDERR, LOG_KIND_FILE, LOG_KIND_SYSLOG };
enum log_level { LOG_LEVEL_INFO, LOG_LEVEL_WARNING, LOG_LEVEL_ERROR };

static const char *const log_level_text[] = { "", "warning: ", "error: " };
static const int log_level_prio[] = { LOG_INFO, LOG_WARNING, LOG_ERR };

static const struct {
	const char *name;
	int facility;
} log_facilities[] = {
	{ "mail", LOG_MAIL },     { "daemon", LOG_DAEMON }, { "user", LOG_USER },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 },
	{ "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
};

static struct {
	enum log_kind kind;
	int fd;                      /* stderr or the file */
	char *path;                  /* the file, absolute, for log_reopen */
	char ident[64];              /* openlog keeps a pointer to it */
	char prefix[96];             /* "ident[pid]: " */
	size_t prefixlen;
	void (*hook)(void *);
	void *hook_arg;
	time_t stamp_time;           /* second the cached stamp is for */
	char stamp[40];
	size_t stamplen;
	size_t len;                  /* bytes waiting in buf */
	char buf[LOG_BUF_SIZE];
} lg = { .kind = LOG_KIND_STDERR, .fd = STDERR_FILENO, .ident = "mxacld",
	 .stamp_time = -1 };

/* Build "ident[pid]: " once per process; getpid is a system call. */
static void log_make_prefix(void)
{
	int n = snprintf(lg.prefix, sizeof lg.prefix, "%s[%ld]: ", lg.ident, (long)getpid());
	lg.prefixlen = n < 0 ? 0 : (size_t)n < sizeof lg.prefix ? (size_t)n : sizeof lg.prefix - 1;
}

void log_refresh_pid(void)
{
	log_make_prefix();
}

/* Write all of s, giving up on errors: there is nowhere to report them. */
static void log_write_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		s += w;
		n -= (size_t)w;
	}
}

void log_flush(void)
{
	if (lg.len == 0)
		return;
	log_write_all(lg.fd, lg.buf, lg.len);
	lg.len = 0;
}

/* Replace bytes a terminal or a log parser would act on. */
static void log_clean(char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			s[i] = '?';
	}
}

/* The local-time stamp for file lines, recomputed once a second. */
static void log_stamp(void)
{
	time_t now = time(NULL);
	if (now == lg.stamp_time)
		return;
	struct tm tm;
	lg.stamp_time = now;
	lg.stamplen = localtime_r(&now, &tm)
		? strftime(lg.stamp, sizeof lg.stamp, "%Y-%m-%dT%H:%M:%S ", &tm)
		: 0;
}

static void log_add(const char *s, size_t n)
{
	memcpy(lg.buf + lg.len, s, n);
	lg.len += n;
}

/* Write one finished message (mlen bytes, no newline) as a log line. */
static void log_emit(enum log_level level, const char *m, size_t mlen)
{
	int saved_errno = errno;   /* callers may log and then look at errno */
	if (mlen >= LOG_MSG_MAX)
		mlen = LOG_MSG_MAX - 1;

	if (lg.kind == LOG_KIND_SYSLOG) {
		char msg[LOG_MSG_MAX];
		memcpy(msg, m, mlen);
		msg[mlen] = 0;
		log_clean(msg, mlen);
		syslog(log_level_prio[level], "%s%s", log_level_text[level], msg);
		errno = saved_errno;
		return;
	}

	if (lg.prefixlen == 0)
		log_make_prefix();
	if (LOG_BUF_SIZE - lg.len < LOG_MSG_MAX + LOG_HEAD_MAX)
		log_flush();
	bool was_empty = lg.len == 0;
	if (lg.kind == LOG_KIND_FILE) {
		log_stamp();
		log_add(lg.stamp, lg.stamplen);
	}
	log_add(lg.prefix, lg.prefixlen);
	log_add(log_level_text[level], strlen(log_level_text[level]));
	char *msg = lg.buf + lg.len;
	log_add(m, mlen);
	log_clean(msg, mlen);
	lg.buf[lg.len++] = '\n';

	if (level != LOG_LEVEL_INFO || lg.hook == NULL)
		log_flush();
	else if (was_empty)
		lg.hook(lg.hook_arg);
	errno = saved_errno;
}

static void log_vemit(enum log_level level, const char *fmt, va_list ap)
{
	char msg[LOG_MSG_MAX];
	int n = vsnprintf(msg, sizeof msg, fmt, ap);
	if (n < 0)
		log_emit(level, fmt, strlen(fmt));
	else if ((size_t)n >= sizeof msg) {
		memcpy(msg + sizeof msg - 4, "...", 3);
		log_emit(level, msg, sizeof msg - 1);
	} else
		log_emit(level, msg, (size_t)n);
}

void log_info_line(const char *msg, size_t len)
{
	log_emit(LOG_LEVEL_INFO, msg, len);
}

void log_info(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vemit(LOG_LEVEL_INFO, fmt, ap);
	va_end(ap);
}

void log_warning(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vemit(LOG_LEVEL_WARNING, fmt, ap);
	va_end(ap);
}

void log_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vemit(LOG_LEVEL_ERROR, fmt, ap);
	va_end(ap);
}

void log_set_flush_hook(void (*hook)(void *arg), void *arg)
{
	log_flush();
	lg.hook = hook;
	lg.hook_arg = arg;
}

/* An absolute copy of path: a daemon changes to "/" after it opens the log. */
static char *log_abs_path(const char *path)
{
	if (path[0] == '/')
		return xstrdup(path);
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof cwd))
		return xstrdup(path);
	return xasprintf("%s/%s", cwd, path);
}

/*
 * Open the log file for appending. The directory may be writable by
 * somebody else (or become so): a symlink there would have root append to
 * (or create) any file, and a FIFO would hang the daemon on open. So the
 * name must not be a symlink (as the pid file), and what it names must be
 * a regular file with no other name (a hard link could be to any file) or
 * a character device (/dev/null, a terminal).
 */
static int log_open_file(const char *path, const char *verb, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW |
			     O_NONBLOCK, 0640);
	if (fd < 0) {
		if (errno == ELOOP)
			snprintf(err, errlen, "cannot %s log file %s: it is a symbolic link (refused: "
				 "give the file itself)", verb, path);
		else
			snprintf(err, errlen, "cannot %s log file %s: %s", verb, path,
				 strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode))) {
		snprintf(err, errlen, "cannot %s log file %s: not a regular file", verb, path);
		close(fd);
		return -1;
	}
	/* A second name for the file may be a hard link made to some other
	 * file in the same directory's file system: do not write into it. */
	if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
		snprintf(err, errlen, "cannot %s log file %s: it has %lu hard links (refused: "
			 "a log file has one name)", verb, path, (unsigned long)st.st_nlink);
		close(fd);
		return -1;
	}
	/* Blocking again: a line is written whole or not at all. */
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	return fd;
}

/* Leave the current destination (its lines flushed first). */
static void log_leave(void)
{
	log_flush();
	if (lg.kind == LOG_KIND_FILE)
		close(lg.fd);
	else if (lg.kind == LOG_KIND_SYSLOG)
		closelog();
	free(lg.path);
	lg.path = NULL;
	lg.kind = LOG_KIND_STDERR;
	lg.fd = STDERR_FILENO;
}

bool log_facility_known(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(log_facilities); i++)
		if (strcmp(name, log_facilities[i].name) == 0)
			return true;
	return false;
}

bool log_open(const char *dest, const char *ident, const char *facility,
	      char *err, size_t errlen)
{
	int fac = -1;
	if (!facility)
		facility = "mail";
	for (size_t i = 0; i < ARRAY_LEN(log_facilities); i++)
		if (strcmp(facility, log_facilities[i].name) == 0)
			fac = log_facilities[i].facility;
	if (fac < 0) {
		snprintf(err, errlen, "unknown syslog facility \"%s\" (mail, daemon, user, local0..local7)",
			 facility);
		return false;
	}
	if (strlen(ident) >= sizeof lg.ident) {
		snprintf(err, errlen, "log ident too long");
		return false;
	}

	if (strcmp(dest, "stderr") == 0) {
		log_leave();
	} else if (strcmp(dest, "syslog") == 0) {
		log_leave();
		lg.kind = LOG_KIND_SYSLOG;
	} else {
		int fd = log_open_file(dest, "open", err, errlen);
		if (fd < 0)
			return false;
		log_leave();
		lg.kind = LOG_KIND_FILE;
		lg.fd = fd;
		lg.path = log_abs_path(dest);
	}
	snprintf(lg.ident, sizeof lg.ident, "%s", ident);
	log_make_prefix();
	if (lg.kind == LOG_KIND_SYSLOG)
		openlog(lg.ident, LOG_PID | LOG_NDELAY, fac);
	return true;
}

bool log_reopen(char *err, size_t errlen)
{
	if (lg.kind != LOG_KIND_FILE)
		return true;
	int fd = log_open_file(lg.path, "reopen", err, errlen);
	if (fd < 0)
		return false;
	log_flush();
	close(lg.fd);
	lg.fd = fd;
	return true;
}

void log_close(void)
{
	log_leave();
	lg.hook = NULL;
	lg.hook_arg = NULL;
}
