/*
 * recache - Vectorscan databases kept in files between compiles (see
 * recache.h).
 */
#include "engine/recache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/digest.h"
#include "util/log.h"
#include "util/util.h"

#define MAGIC "MXACLRE1"
#define HEADER (8 + 64 + 64 + 8)
#define PREFIX "re-"
#define SUFFIX ".hsdb"
#define TMP_PREFIX ".re-"

struct recache_line {
	bool warning;
	char *text;
};

struct recache {
	char *dir;                  /* NULL: no cache */
	char *none_why;             /* with no dir: why, for the log, or NULL */
	int dirfd;                  /* during a compile, or -1 (off) */
	char **used;                /* keys this compile asked for */
	size_t nused, capused;
	struct recache_line *lines;
	size_t nlines, caplines;
	size_t built, loaded;
	double built_s, loaded_s;
	char *off;                  /* why the cache is off for this compile */
};

static void line_add(struct recache *rc, bool warning, char *text)
{
	struct recache_line l = { warning, text };
	VEC_PUSH(rc->lines, rc->nlines, rc->caplines, l);
}

struct recache *recache_new(const char *dir, const char *none_why)
{
	struct recache *rc = xcalloc(1, sizeof *rc);
	rc->dir = dir ? xstrdup(dir) : NULL;
	rc->none_why = none_why ? xstrdup(none_why) : NULL;
	rc->dirfd = -1;
	return rc;
}

static void forget_used(struct recache *rc)
{
	for (size_t i = 0; i < rc->nused; i++)
		free(rc->used[i]);
	rc->nused = 0;
}

void recache_free(struct recache *rc)
{
	if (!rc)
		return;
	if (rc->dirfd >= 0)
		close(rc->dirfd);
	forget_used(rc);
	free(rc->used);
	for (size_t i = 0; i < rc->nlines; i++)
		free(rc->lines[i].text);
	free(rc->lines);
	free(rc->off);
	free(rc->dir);
	free(rc->none_why);
	free(rc);
}

void recache_begin(struct recache *rc)
{
	if (!rc)
		return;
	forget_used(rc);
	rc->built = rc->loaded = 0;
	rc->built_s = rc->loaded_s = 0;
	free(rc->off);
	rc->off = NULL;
	if (rc->dirfd >= 0)
		close(rc->dirfd);
	rc->dirfd = -1;
	if (!rc->dir) {
		rc->off = rc->none_why ? xstrdup(rc->none_why) : NULL;
		return;
	}
	int fd = open(rc->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0) {
		rc->off = xasprintf("%s: %s", rc->dir, strerror(errno));
	} else if (fstat(fd, &st) < 0) {
		rc->off = xasprintf("%s: %s", rc->dir, strerror(errno));
	} else if (st.st_uid != geteuid()) {
		rc->off = xasprintf("%s is owned by uid %u, not by uid %u that compiles the policy",
				    rc->dir, (unsigned)st.st_uid, (unsigned)geteuid());
	} else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		rc->off = xasprintf("%s is writable by group or others (mode %04o)", rc->dir,
				    (unsigned)(st.st_mode & 07777));
	} else {
		rc->dirfd = fd;
		return;
	}
	if (fd >= 0)
		close(fd);
}

/* Whether name is one of this format's files (or a temporary one). */
static bool ours(const char *name, bool *tmp)
{
	size_t n = strlen(name);
	*tmp = strncmp(name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0;
	if (*tmp)
		return true;
	return strncmp(name, PREFIX, strlen(PREFIX)) == 0 && n == strlen(PREFIX) + 64 + strlen(SUFFIX) &&
	       strcmp(name + n - strlen(SUFFIX), SUFFIX) == 0;
}

/* Remove the files of this format the compile did not use. */
static void sweep(struct recache *rc)
{
	int fd = openat(rc->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	size_t removed = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		bool tmp;
		if (!ours(e->d_name, &tmp))
			continue;
		bool keep = false;
		for (size_t i = 0; i < rc->nused && !tmp && !keep; i++)
			keep = memcmp(e->d_name + strlen(PREFIX), rc->used[i], 64) == 0;
		if (!keep && unlinkat(rc->dirfd, e->d_name, 0) == 0)
			removed++;
	}
	closedir(d);
	if (removed)
		line_add(rc, false,
			 xasprintf("regex cache: removed %zu file%s the policy no longer uses from %s",
				   removed, removed == 1 ? "" : "s", rc->dir));
}

void recache_end(struct recache *rc, bool ok)
{
	if (!rc)
		return;
	if (ok && rc->dirfd >= 0)
		sweep(rc);
	if (rc->dirfd >= 0)
		close(rc->dirfd);
	rc->dirfd = -1;
	if (rc->built + rc->loaded) {
		/* one line per compile: how long Vectorscan took, and whether
		 * the cache spared it (docs/operations.md quotes it) */
		char *loaded = rc->loaded ? xasprintf("%zu read from the cache in %.2f s", rc->loaded,
						      rc->loaded_s)
					  : NULL;
		char *built = rc->built ? xasprintf("%zu built in %.2f s", rc->built, rc->built_s)
					: NULL;
		char *where = rc->off ? xasprintf(" (no cache: %s)", rc->off)
			      : rc->dir ? xasprintf(" (cache %s)", rc->dir)
					: xstrdup("");
		line_add(rc, false,
			 xasprintf("regex databases: %s%s%s%s", loaded ? loaded : "",
				   loaded && built ? ", " : "", built ? built : "", where));
		free(loaded);
		free(built);
		free(where);
	}
}

static void file_name(char out[128], const char *key)
{
	snprintf(out, 128, PREFIX "%.64s" SUFFIX, key);
}

static void reject(struct recache *rc, const char *name, const char *why)
{
	line_add(rc, true, xasprintf("regex cache: %s/%s %s; building it again", rc->dir, name, why));
}

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

void *recache_load(struct recache *rc, const char *key, size_t *len)
{
	if (!rc || rc->dirfd < 0)
		return NULL;
	char *k = xstrndup(key, 64);
	VEC_PUSH(rc->used, rc->nused, rc->capused, k);
	char name[128];
	file_name(name, key);
	int fd = openat(rc->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno != ENOENT)
			reject(rc, name, errno == ELOOP ? "is a symbolic link" : strerror(errno));
		return NULL;
	}
	struct stat st;
	unsigned char h[HEADER];
	unsigned char *body = NULL;
	const char *why = NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		why = "is not a regular file";
	else if ((size_t)st.st_size < HEADER || pread(fd, h, HEADER, 0) != HEADER)
		why = "is shorter than its header (truncated)";
	else if (memcmp(h, MAGIC, 8) != 0)
		why = "is not a cache file of this format";
	else if (memcmp(h + 8, key, 64) != 0)
		why = "holds another database (its key differs)";
	else {
		uint64_t blen = get_le64(h + 8 + 64 + 64);
		if (blen != (uint64_t)st.st_size - HEADER)
			why = "has the wrong length (truncated or grown)";
		else {
			body = xmalloc(blen ? blen : 1);
			size_t got = 0;
			while (got < blen) {
				ssize_t n = pread(fd, body + got, blen - got, (off_t)(HEADER + got));
				if (n <= 0)
					break;
				got += (size_t)n;
			}
			char sum[65];
			digest_sha256(body, got, sum);
			if (got != blen)
				why = "cannot be read whole";
			else if (memcmp(sum, h + 8 + 64, 64) != 0)
				why = "does not match its checksum (corrupt)";
			else
				*len = blen;
		}
	}
	close(fd);
	if (why) {
		reject(rc, name, why);
		free(body);
		return NULL;
	}
	return body;
}

void recache_reject(struct recache *rc, const char *key, const char *why)
{
	char name[128];
	file_name(name, key);
	reject(rc, name, why);
}

static bool write_all(int fd, const void *p, size_t n)
{
	const char *s = p;
	while (n) {
		ssize_t k = write(fd, s, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		s += k;
		n -= (size_t)k;
	}
	return true;
}

void recache_store(struct recache *rc, const char *key, const void *body, size_t len)
{
	if (!rc || rc->dirfd < 0)
		return;
	char name[128], tmp[160];
	file_name(name, key);
	/* O_EXCL: a name that exists (a symlink planted there too) fails,
	 * and is never followed or reused */
	snprintf(tmp, sizeof tmp, TMP_PREFIX "%.64s.%ld.tmp", key, (long)getpid());
	(void)unlinkat(rc->dirfd, tmp, 0);     /* a leftover of a crash of this pid */
	int fd = openat(rc->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int e = fd < 0 ? errno : 0;
	if (!e) {
		unsigned char h[HEADER];
		memcpy(h, MAGIC, 8);
		memcpy(h + 8, key, 64);
		char sum[65];
		digest_sha256(body, len, sum);
		memcpy(h + 8 + 64, sum, 64);
		uint64_t l = len;
		for (int i = 0; i < 8; i++)
			h[8 + 64 + 64 + i] = (unsigned char)(l >> (8 * i));
		if (!write_all(fd, h, HEADER) || !write_all(fd, body, len) || fsync(fd) < 0)
			e = errno ? errno : EIO;
		if (close(fd) < 0 && !e)
			e = errno;
	}
	if (!e && renameat(rc->dirfd, tmp, rc->dirfd, name) < 0)
		e = errno;
	if (e) {
		(void)unlinkat(rc->dirfd, tmp, 0);
		line_add(rc, true,
			 xasprintf("regex cache: cannot write %s/%s: %s", rc->dir, name, strerror(e)));
		return;
	}
	(void)fsync(rc->dirfd);
}

void recache_count_built(struct recache *rc, double seconds)
{
	if (!rc)
		return;
	rc->built++;
	rc->built_s += seconds;
}

void recache_count_loaded(struct recache *rc, double seconds)
{
	if (!rc)
		return;
	rc->loaded++;
	rc->loaded_s += seconds;
}

void recache_flush(struct recache *rc)
{
	if (!rc)
		return;
	for (size_t i = 0; i < rc->nlines; i++) {
		if (rc->lines[i].warning)
			log_warning("%s", rc->lines[i].text);
		else
			log_info("%s", rc->lines[i].text);
		free(rc->lines[i].text);
	}
	rc->nlines = 0;
}

void recache_print(struct recache *rc, FILE *f, const char *prefix)
{
	if (!rc)
		return;
	for (size_t i = 0; i < rc->nlines; i++) {
		fprintf(f, "%s%s%s\n", prefix, rc->lines[i].warning ? "warning: " : "",
			rc->lines[i].text);
		free(rc->lines[i].text);
	}
	rc->nlines = 0;
}
