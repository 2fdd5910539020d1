/*
 * proc - daemon chores at start-up (see proc.h).
 */
#include "daemon/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A number in full, for "USER" given as a uid. */
static bool proc_number(const char *s, unsigned long *out)
{
	char *end;
	if (!*s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return !*end && errno == 0;
}

bool proc_owner(const char *spec, uid_t *uid, gid_t *gid, struct strbuf *err)
{
	char *user = xstrdup(spec);
	char *group = strchr(user, ':');
	unsigned long num;
	bool ok = false;
	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (group)
		*group++ = 0;
	if (*user) {
		struct passwd *pw = getpwnam(user);
		if (pw) {
			*uid = pw->pw_uid;
			*gid = pw->pw_gid;
		} else if (proc_number(user, &num)) {
			*uid = (uid_t)num;
		} else {
			sb_printf(err, "unknown user \"%s\"", user);
			goto out;
		}
	}
	if (group && *group) {
		struct group *gr = getgrnam(group);
		if (gr) {
			*gid = gr->gr_gid;
		} else if (proc_number(group, &num)) {
			*gid = (gid_t)num;
		} else {
			sb_printf(err, "unknown group \"%s\"", group);
			goto out;
		}
	} else if (!*user) {
		sb_printf(err, "want USER, USER:GROUP or :GROUP");
		goto out;
	}
	ok = true;
out:
	free(user);
	return ok;
}

bool proc_daemonize(int *ready_fd, struct strbuf *err)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		sb_printf(err, "pipe: %s", strerror(errno));
		return false;
	}
	pid_t pid = fork();
	if (pid < 0) {
		sb_printf(err, "fork: %s", strerror(errno));
		return false;
	}
	if (pid > 0) {
		/* The parent: exit once the child is serving, so that an init
		 * script sees start-up errors in our exit status. */
		char c;
		ssize_t n;
		close(pfd[1]);
		do
			n = read(pfd[0], &c, 1);
		while (n < 0 && errno == EINTR);
		_exit(n == 1 ? 0 : 1);
	}
	close(pfd[0]);
	*ready_fd = pfd[1];
	if (setsid() < 0) {
		sb_printf(err, "setsid: %s", strerror(errno));
		return false;
	}
	if (chdir("/") < 0) {
		sb_printf(err, "chdir /: %s", strerror(errno));
		return false;
	}
	int fd = open("/dev/null", O_RDWR);
	if (fd < 0) {
		sb_printf(err, "/dev/null: %s", strerror(errno));
		return false;
	}
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
	return true;
}

void proc_daemon_ready(int ready_fd, bool keep_stderr)
{
	if (!keep_stderr) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			if (fd > STDERR_FILENO)
				close(fd);
		}
	}
	ssize_t n;
	do
		n = write(ready_fd, "", 1);
	while (n < 0 && errno == EINTR);
	close(ready_fd);
}

bool proc_write_pidfile(const char *path, struct strbuf *err)
{
	/* Its directory may be writable by somebody else: never through a
	 * symlink, never into a file with another name (a hard link), and
	 * truncated only once it is known to be a plain file of its own. */
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
	if (fd < 0) {
		if (errno == ELOOP)
			sb_printf(err, "cannot create pid file %s: it is a symbolic link", path);
		else
			sb_printf(err, "cannot create pid file %s: %s", path, strerror(errno));
		return false;
	}
	struct stat st;
	const char *why = NULL;
	if (fstat(fd, &st) < 0)
		why = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (st.st_nlink != 1)
		why = "it has other names (hard links)";
	else if (ftruncate(fd, 0) < 0)
		why = strerror(errno);
	if (why) {
		sb_printf(err, "cannot create pid file %s: %s", path, why);
		close(fd);
		return false;
	}
	char buf[32];
	int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	bool ok = write(fd, buf, (size_t)n) == n;
	if (!ok)
		sb_printf(err, "cannot write pid file %s: %s", path, strerror(errno));
	if (close(fd) < 0 && ok) {
		sb_printf(err, "cannot write pid file %s: %s", path, strerror(errno));
		ok = false;
	}
	return ok;
}

bool proc_remove_pidfile(const char *path, struct strbuf *err)
{
	/* Another mxacld may have taken the file over since: leave it. So
	 * may somebody who can write the directory: a symlink is not
	 * followed, and a FIFO must not hang us on open. */
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	long pid = 0;
	if (fd < 0) {
		if (errno == ENOENT)
			return true;
		sb_printf(err, "cannot read pid file %s: %s; left in place", path, strerror(errno));
		return false;
	}
	char buf[32];
	struct stat st;
	ssize_t n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? read(fd, buf, sizeof buf - 1) : -1;
	close(fd);
	if (n > 0) {
		buf[n] = 0;
		char *end;
		pid = strtol(buf, &end, 10);
	}
	bool ours = n > 0 && pid == (long)getpid();
	if (ours && unlink(path) < 0) {
		sb_printf(err, "cannot remove pid file %s: %s", path, strerror(errno));
		return false;
	}
	return true;
}

bool proc_drop_privileges(const char *user, struct strbuf *err)
{
	struct passwd *pw = getpwnam(user);
	if (!pw) {
		sb_printf(err, "unknown user \"%s\"", user);
		return false;
	}
	if (getuid() == pw->pw_uid && geteuid() == pw->pw_uid)
		return true;
	if (geteuid() != 0) {
		sb_printf(err, "must start as root to run as user \"%s\"", user);
		return false;
	}
	/* Groups before the uid: afterwards we may no longer change them. */
	if (initgroups(pw->pw_name, pw->pw_gid) < 0) {
		sb_printf(err, "initgroups %s: %s", user, strerror(errno));
		return false;
	}
	if (setgid(pw->pw_gid) < 0) {
		sb_printf(err, "setgid %ld: %s", (long)pw->pw_gid, strerror(errno));
		return false;
	}
	if (setuid(pw->pw_uid) < 0) {
		sb_printf(err, "setuid %ld: %s", (long)pw->pw_uid, strerror(errno));
		return false;
	}
	if (pw->pw_uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		sb_printf(err, "could regain root after switching to \"%s\"", user);
		return false;
	}
	return true;
}

char *proc_abs_path(const char *path)
{
	char cwd[PATH_MAX];
	if (path[0] == '/' || !getcwd(cwd, sizeof cwd))
		return xstrdup(path);
	return xasprintf("%s/%s", cwd, path);
}
