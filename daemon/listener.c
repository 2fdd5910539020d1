/*
 * listener - listening sockets from endpoint strings (see listener.h).
 * Accepting goes through libevent's evconnlistener, which accepts in a
 * loop and hands out non-blocking sockets; what it does not do is back off
 * when descriptors run out, so the error callback pauses it.
 */
#include "daemon/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "util/log.h"

struct listener {
	char *spec;                 /* as the operator wrote it */
	char *name;                 /* what was bound: "inet:127.0.0.1:10040" */
	char *path;                 /* unix: the absolute path, for messages */
	int dirfd;                  /* unix: its directory (O_PATH), and */
	char *base;                 /*   its name there, to remove it by */
	dev_t dev;                  /* unix: the file we created, so that we */
	ino_t ino;                  /*   never remove somebody else's */
	int fd;
	struct evconnlistener *evl;
	struct event *pause_ev;     /* re-enables accepting after EMFILE */
	listener_accept_fn cb;
	void *arg;
};

static struct listener *listener_new(const char *spec, int fd)
{
	struct listener *l = xcalloc(1, sizeof *l);
	l->spec = xstrdup(spec);
	l->fd = fd;
	l->dirfd = -1;
	return l;
}

static void listener_free(struct listener *l)
{
	free(l->spec);
	free(l->name);
	free(l->path);
	free(l->base);
	if (l->dirfd >= 0)
		close(l->dirfd);
	free(l);
}

const char *listener_spec(const struct listener *l)
{
	return l->spec;
}

const char *listener_name(const struct listener *l)
{
	return l->name;
}

/* "127.0.0.1:41234" / "[::1]:41234" for an inet address. */
static void listener_format_addr(const struct sockaddr *sa, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN];
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		snprintf(out, outlen, "%s:%u", host, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		snprintf(out, outlen, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		snprintf(out, outlen, "?");
	}
}

/* Parse "HOST:PORT" or "[ADDR]:PORT" into its parts (copies in host). */
static bool listener_split_inet(const char *rest, char *host, size_t hostlen,
				const char **port, bool *v6, struct strbuf *err)
{
	const char *colon;
	*v6 = rest[0] == '[';
	if (*v6) {
		const char *close = strchr(rest, ']');
		if (!close || close[1] != ':') {
			sb_printf(err, "want inet:[ADDRESS]:PORT");
			return false;
		}
		rest++;
		colon = close + 1;
		if ((size_t)(close - rest) >= hostlen) {
			sb_printf(err, "address too long");
			return false;
		}
		memcpy(host, rest, (size_t)(close - rest));
		host[close - rest] = 0;
	} else {
		colon = strrchr(rest, ':');
		if (!colon) {
			sb_printf(err, "want inet:HOST:PORT");
			return false;
		}
		if ((size_t)(colon - rest) >= hostlen) {
			sb_printf(err, "host name too long");
			return false;
		}
		memcpy(host, rest, (size_t)(colon - rest));
		host[colon - rest] = 0;
		if (strchr(host, ':')) {
			sb_printf(err, "write an IPv6 address in brackets: inet:[ADDRESS]:PORT");
			return false;
		}
	}
	*port = colon + 1;
	char *end;
	long p = strtol(*port, &end, 10);
	if (!**port || *end || p < 1 || p > 65535) {
		sb_printf(err, "bad port \"%s\" (want 1..65535)", *port);
		return false;
	}
	return true;
}

static bool listener_open_inet(const char *spec, const char *rest, struct listener ***v,
			       size_t *n, size_t *cap, struct strbuf *err)
{
	char host[256];
	const char *port;
	bool v6;
	if (!listener_split_inet(rest, host, sizeof host, &port, &v6, err))
		return false;

	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	const char *node = host;
	hints.ai_family = v6 ? AF_INET6 : AF_UNSPEC;
	if (!v6 && (host[0] == 0 || strcmp(host, "*") == 0)) {
		node = NULL;                 /* AI_PASSIVE: every address */
		hints.ai_family = AF_INET;
	} else if (v6) {
		hints.ai_flags |= AI_NUMERICHOST;
	}
	struct addrinfo *res;
	int rc = getaddrinfo(node, port, &hints, &res);
	if (rc != 0) {
		sb_printf(err, "%s: %s", host, gai_strerror(rc));
		return false;
	}

	size_t first = *n;
	bool ok = true;
	for (struct addrinfo *ai = res; ai && ok; ai = ai->ai_next) {
		char addr[INET6_ADDRSTRLEN + 8];
		listener_format_addr(ai->ai_addr, addr, sizeof addr);
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int one = 1;
		if (fd < 0) {
			sb_printf(err, "socket: %s", strerror(errno));
			ok = false;
			break;
		}
		/* Restart at once after a crash, with old connections in TIME_WAIT. */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		/* "[::]" and "0.0.0.0" are separate listeners, as in Postfix. */
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
			sb_printf(err, "cannot listen on %s: %s", addr, strerror(errno));
			close(fd);
			ok = false;
			break;
		}
		struct listener *l = listener_new(spec, fd);
		l->name = xasprintf("inet:%s", addr);
		VEC_PUSH(*v, *n, *cap, l);
	}
	freeaddrinfo(res);
	if (!ok) {
		while (*n > first)
			listener_close((*v)[--*n]);
	}
	return ok;
}

/*
 * Check what is at dir/name before a socket takes its place: nothing, or a
 * socket nobody accepts on (left by a crash), which the rename in
 * listener_open_unix replaces. Anything else is an error: a live socket
 * (another mxacld may be using it) or a file that is not a socket. Nothing
 * is removed here, so nothing can be removed that was swapped in since.
 */
static bool listener_check_stale(int dirfd, const char *name, const char *path,
				 struct strbuf *err)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? true
				       : (sb_printf(err, "%s: %s", path, strerror(errno)), false);
	if (!S_ISSOCK(st.st_mode)) {
		sb_printf(err, "%s exists and is not a socket", path);
		return false;
	}
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	/* Non-blocking: a listener with a full backlog must not hold us up
	 * (it answers EAGAIN, which means someone is listening). */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		sb_printf(err, "socket: %s", strerror(errno));
		return false;
	}
	int rc = connect(fd, (struct sockaddr *)&sun, sizeof sun);
	int e = errno;
	close(fd);
	if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
		sb_printf(err, "another process is listening on %s", path);
		return false;
	}
	if (e != ECONNREFUSED && e != ENOENT) {
		sb_printf(err, "%s: %s", path, strerror(e));
		return false;
	}
	return true;
}

/* Remove our private directory, if the name still leads to it. */
static void listener_rmdir(int dirfd, const char *name, int tmpfd)
{
	struct stat a, b;
	if (fstat(tmpfd, &a) == 0 && fstatat(dirfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
		unlinkat(dirfd, name, AT_REMOVEDIR);
}

/*
 * Make a directory inside dirfd that only we can enter, and open it: its
 * name is in a directory others may write, so what we opened is checked
 * to be the directory we made (ours, mode 0700) before anything goes in.
 * Returns its descriptor and name, or -1 with a message in err.
 */
static int listener_private_dir(int dirfd, const char *dir, char *name, size_t namelen,
				struct strbuf *err)
{
	static unsigned seq;
	for (int tries = 0; tries < 100; tries++) {
		snprintf(name, namelen, ".mxacld-%ld-%u-%lx", (long)getpid(), seq++,
			 (unsigned long)random());
		if (mkdirat(dirfd, name, 0700) < 0) {
			if (errno == EEXIST)
				continue;
			sb_printf(err, "cannot create a directory in %s: %s", dir, strerror(errno));
			return -1;
		}
		int fd = openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) &&
		    st.st_uid == geteuid() && (st.st_mode & 077) == 0)
			return fd;
		if (fd >= 0)
			close(fd);
		sb_printf(err, "%s/%s was replaced as it was made: is %s writable by others?",
			  dir, name, dir);
		return -1;
	}
	sb_printf(err, "cannot create a directory in %s: too many names taken", dir);
	return -1;
}

/* bind(fd) to name inside the directory tmpfd, under umask mask. */
static int listener_bind_in(int fd, int tmpfd, const char *name, bool set_mask, mode_t mask)
{
	/* bind(2) takes a path, not a directory descriptor: bind relative to
	 * the private directory, then go back. Start-up is single-threaded. */
	int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cwd < 0)
		return -1;
	int rc = -1, e;
	if (fchdir(tmpfd) == 0) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		snprintf(sun.sun_path, sizeof sun.sun_path, "%s", name);
		mode_t old = set_mask ? umask(mask) : 0;
		rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
		e = errno;
		if (set_mask)
			umask(old);
		if (fchdir(cwd) < 0)
			fatal_abort("cannot return to the working directory: %s", strerror(errno));
		errno = e;
	}
	e = errno;
	close(cwd);
	errno = e;
	return rc;
}

/*
 * A unix socket at path, made so that a local user who can write path's
 * directory (Postfix's private/ is the postfix user's; the control socket's
 * may be --user's) cannot turn our chmod and chown on the socket into
 * changes to another file: the socket is bound in a fresh directory only
 * we can write, given its mode and owner there, set listening, and then
 * renamed into place. rename(2) replaces whatever is at the name without
 * following it, and nothing is done by path in the shared directory after
 * that (apart from removing our own socket at exit, by directory
 * descriptor, after checking it is still ours).
 */
static bool listener_open_unix(const char *spec, const char *path,
			       const struct listener_perms *perms, struct listener ***v,
			       size_t *n, size_t *cap, struct strbuf *err)
{
	struct sockaddr_un sun;
	char *abs;
	if (!path[0]) {
		sb_printf(err, "want unix:PATH");
		return false;
	}
	/* Absolute, so that it can be named after a daemon chdir("/"). */
	if (path[0] == '/') {
		abs = xstrdup(path);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof cwd)) {
			sb_printf(err, "getcwd: %s", strerror(errno));
			return false;
		}
		abs = xasprintf("%s/%s", cwd, path);
	}
	if (strlen(abs) >= sizeof sun.sun_path) {
		sb_printf(err, "socket path too long (%zu bytes, at most %zu): %s", strlen(abs),
			  sizeof sun.sun_path - 1, abs);
		free(abs);
		return false;
	}
	char *slash = strrchr(abs, '/');
	const char *base = slash + 1;
	char *dir = slash == abs ? xstrdup("/") : xstrndup(abs, (size_t)(slash - abs));
	char tmpname[64];
	int dirfd = -1, tmpfd = -1, fd = -1;
	bool bound = false;
	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
		sb_printf(err, "%s: want a file name after the last '/'", abs);
		goto fail;
	}
	dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		sb_printf(err, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	if (!listener_check_stale(dirfd, base, abs, err))
		goto fail;
	tmpfd = listener_private_dir(dirfd, dir, tmpname, sizeof tmpname, err);
	if (tmpfd < 0)
		goto fail;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		sb_printf(err, "socket: %s", strerror(errno));
		goto fail;
	}
	/* No more open than asked, even in our own directory. */
	if (listener_bind_in(fd, tmpfd, "s", perms->mode >= 0, 0177) < 0) {
		sb_printf(err, "cannot bind %s: %s", abs, strerror(errno));
		goto fail;
	}
	bound = true;
	if (perms->mode >= 0 && fchmodat(tmpfd, "s", (mode_t)perms->mode, 0) < 0) {
		sb_printf(err, "chmod %s: %s", abs, strerror(errno));
		goto fail;
	}
	if ((perms->uid != (uid_t)-1 || perms->gid != (gid_t)-1) &&
	    fchownat(tmpfd, "s", perms->uid, perms->gid, AT_SYMLINK_NOFOLLOW) < 0) {
		sb_printf(err, "chown %s: %s", abs, strerror(errno));
		goto fail;
	}
	struct stat st;
	if (fstatat(tmpfd, "s", &st, AT_SYMLINK_NOFOLLOW) < 0) {
		sb_printf(err, "%s: %s", abs, strerror(errno));
		goto fail;
	}
	/* Listening before it appears: a client never finds it refusing. */
	if (listen(fd, SOMAXCONN) < 0) {
		sb_printf(err, "listen %s: %s", abs, strerror(errno));
		goto fail;
	}
	if (renameat(tmpfd, "s", dirfd, base) < 0) {
		sb_printf(err, "cannot move the socket to %s: %s", abs, strerror(errno));
		goto fail;
	}
	bound = false;
	listener_rmdir(dirfd, tmpname, tmpfd);
	close(tmpfd);

	struct listener *l = listener_new(spec, fd);
	l->path = abs;
	l->name = xasprintf("unix:%s", abs);
	l->dirfd = dirfd;
	l->base = xstrdup(base);
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	VEC_PUSH(*v, *n, *cap, l);
	free(dir);
	return true;
fail:
	if (fd >= 0)
		close(fd);
	if (tmpfd >= 0) {
		if (bound)
			unlinkat(tmpfd, "s", 0);
		listener_rmdir(dirfd, tmpname, tmpfd);
		close(tmpfd);
	}
	if (dirfd >= 0)
		close(dirfd);
	free(dir);
	free(abs);
	return false;
}

bool listener_open(const char *spec, const struct listener_perms *perms,
		   struct listener ***v, size_t *n, size_t *cap, struct strbuf *err)
{
	if (strncmp(spec, "inet:", 5) == 0)
		return listener_open_inet(spec, spec + 5, v, n, cap, err);
	if (strncmp(spec, "unix:", 5) == 0)
		return listener_open_unix(spec, spec + 5, perms, v, n, cap, err);
	sb_printf(err, "want inet:HOST:PORT, inet:[ADDRESS]:PORT or unix:PATH");
	return false;
}

static void listener_accept_cb(struct evconnlistener *evl, evutil_socket_t fd,
			       struct sockaddr *sa, int salen, void *arg)
{
	struct listener *l = arg;
	char peer[INET6_ADDRSTRLEN + 16];
	if (!l->path) {
		/* Replies go out as soon as they are ready; Nagle would hold
		 * the second of two batches for the peer's delayed ACK. */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		listener_format_addr(sa, peer, sizeof peer);
	}
	l->cb(fd, l->path ? l->name : peer, l->arg);
}

static void listener_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;
	evconnlistener_enable(l->evl);
}

static void listener_error_cb(struct evconnlistener *evl, void *arg)
{
	struct listener *l = arg;
	int e = EVUTIL_SOCKET_ERROR();
	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		/* The error stays until a descriptor is freed: do not spin on it. */
		static const struct timeval pause = { 1, 0 };
		log_warning("accept on %s: %s; not accepting for 1 s", l->name, strerror(e));
		evconnlistener_disable(l->evl);
		evtimer_add(l->pause_ev, &pause);
		return;
	}
	log_warning("accept on %s: %s", l->name, strerror(e));
}

bool listener_start(struct listener *l, struct event_base *base,
		    listener_accept_fn cb, void *arg)
{
	l->cb = cb;
	l->arg = arg;
	l->pause_ev = evtimer_new(base, listener_resume_cb, l);
	l->evl = evconnlistener_new(base, listener_accept_cb, l,
				    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, l->fd);
	if (!l->evl || !l->pause_ev)
		return false;
	evconnlistener_set_error_cb(l->evl, listener_error_cb);
	return true;
}

void listener_close(struct listener *l)
{
	if (!l)
		return;
	if (l->evl)
		evconnlistener_free(l->evl);
	else
		close(l->fd);
	if (l->pause_ev)
		event_free(l->pause_ev);
	/* By directory descriptor and name, and only our own socket: the
	 * directory may be somebody else's to change meanwhile. */
	struct stat st;
	if (l->dirfd >= 0 && fstatat(l->dirfd, l->base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISSOCK(st.st_mode) && st.st_dev == l->dev && st.st_ino == l->ino &&
	    unlinkat(l->dirfd, l->base, 0) < 0)
		log_warning("cannot remove %s: %s", l->path, strerror(errno));
	listener_free(l);
}
