/*
 * load - read policy.conf files and splice include statements in place
 * (see parse.h). An include names a file or a glob pattern; relative paths
 * are taken from the directory of the including file; a pattern's matches
 * are read in sorted order and a pattern matching nothing is not an error
 * (an empty conf.d/ is normal), while a plain path that is missing is, and
 * so is a pattern whose directory is missing or unreadable.
 *
 * Include guards. Every file is read at most once per load, as if each
 * had C's "#pragma once": files are told apart by device and inode, not by
 * name, so "a.conf", "./a.conf" and a symlink to it are one file. A later
 * include of a file already read adds nothing. Without this, n files in a
 * directory that each "include *.conf" were read n^n times (nine files:
 * over a minute and 300 MB).
 *
 * Cycles. A file that includes a file still being read (itself, or one of
 * the files that include it) cannot have its statements spliced anywhere
 * sensible, so it is reported with the whole chain, at the include that
 * closes it. A plain path is an error, as in Apache's Include or sudoers'
 * @include: the author asked for exactly that file. A glob's match is a
 * warning and the match is skipped: "include *.conf" in conf.d/a.conf
 * means the other files, and C's include guards skip such a file the same
 * way (GCC says nothing; we say which chain).
 *
 * Thread safety: no static state (the glob error callback's record is
 * thread-local), so loads may run on several threads at once.
 */
#include "grammar/parse.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lexer.h"

#define LOAD_MAX_DEPTH 16
#define LOAD_MAX_FILE (64u << 20)

void parse_buffer(struct parse_ctx *ctx, const char *text, size_t len)
{
	yyscan_t scanner;
	ctx->line = 1;
	ctx->col = 1;
	ctx->nword = 0;
	ctx->in_action = false;
	pc_lex_init_extra(ctx, &scanner);
	YY_BUFFER_STATE b = pc__scan_bytes(text, (int)len, scanner);
	pc_parse(scanner, ctx);
	pc__delete_buffer(b, scanner);
	pc_lex_destroy(scanner);
	ast_words_free(&ctx->cur);
}

/* Read an open file to its end; NULL with errno set on failure. */
static char *read_fd(int fd, size_t *len)
{
	struct strbuf b;
	sb_init(&b);
	char chunk[65536];
	int err = 0;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = errno;
			break;
		}
		if (n == 0)
			break;
		sb_add(&b, chunk, (size_t)n);
		if (b.len > LOAD_MAX_FILE) {
			err = EFBIG;
			break;
		}
	}
	if (err) {
		sb_free(&b);
		errno = err;
		return NULL;
	}
	*len = b.len;
	return b.s;
}

/* A file's identity: what include guards and cycle checks compare. */
struct load_id {
	dev_t dev;
	ino_t ino;
};

/* The files read so far in one load: an open-addressing set of ids. */
struct load_seen {
	struct load_slot {
		struct load_id id;
		bool used;
	} *slot;
	size_t n, cap;          /* cap: 0 or a power of two */
};

/* One load: where statements and diagnostics go, and the guards. */
struct load {
	struct arena *a;
	struct diags *d;
	struct load_seen seen;
};

/* A file being read, and the files that include it (up). */
struct load_frame {
	const char *path;       /* interned in the diags */
	bool has_id;            /* false for a string (parse_string) */
	struct load_id id;
	const struct load_frame *up;
};

static size_t id_hash(struct load_id id)
{
	uint64_t h = (uint64_t)id.ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)id.dev * 0xc2b2ae3d27d4eb4full;
	return (size_t)(h ^ (h >> 29));
}

/* Add id to the set; false when it was there already. */
static bool seen_add(struct load_seen *s, struct load_id id)
{
	if (2 * (s->n + 1) > s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		struct load_slot *v = xcalloc(cap, sizeof *v);
		for (size_t i = 0; i < s->cap; i++) {
			if (!s->slot[i].used)
				continue;
			size_t k = id_hash(s->slot[i].id) & (cap - 1);
			while (v[k].used)
				k = (k + 1) & (cap - 1);
			v[k] = s->slot[i];
		}
		free(s->slot);
		s->slot = v;
		s->cap = cap;
	}
	size_t k = id_hash(id) & (s->cap - 1);
	for (; s->slot[k].used; k = (k + 1) & (s->cap - 1))
		if (s->slot[k].id.dev == id.dev && s->slot[k].id.ino == id.ino)
			return false;
	s->slot[k] = (struct load_slot){ .id = id, .used = true };
	s->n++;
	return true;
}

static void load_file(struct load *l, const char *path, struct loc from,
		      const struct load_frame *up, int depth, bool from_glob, struct ast_list *out);

/* The directory part of path, with a trailing slash, or "" */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? xstrndup(path, (size_t)(slash - path + 1)) : xstrdup("");
}

static bool has_glob_chars(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

/* The first error glob() met (its callback has no argument for it). */
static _Thread_local struct {
	int err;
	char *path;
} glob_failure;

static int glob_error(const char *epath, int eerrno)
{
	if (!glob_failure.path) {
		glob_failure.err = eerrno;
		glob_failure.path = xstrdup(epath);
	}
	return 1;       /* stop: a conf.d we cannot read must not load half */
}

/*
 * A pattern that matched nothing: an error when the directory it lists
 * (the part before the first glob character) is missing or not a
 * directory, since glob() says "no match" for both.
 */
static void check_glob_dir(struct load *l, const char *pattern, struct loc loc)
{
	size_t first = strcspn(pattern, "*?[");
	const char *slash = NULL;
	for (const char *p = pattern; p < pattern + first; p++)
		if (*p == '/')
			slash = p;
	if (!slash)
		return;                 /* the current directory */
	/* named as glob() names a directory it cannot open: no trailing slash */
	char *dir = xstrndup(pattern, slash == pattern ? 1 : (size_t)(slash - pattern));
	struct stat st;
	if (stat(dir, &st) < 0)
		diag_error(l->d, loc, "cannot read the files of '%s': '%s': %s", pattern, dir,
			   strerror(errno));
	else if (!S_ISDIR(st.st_mode))
		diag_error(l->d, loc, "cannot read the files of '%s': '%s': %s", pattern, dir,
			   strerror(ENOTDIR));
	free(dir);
}

static void load_include(struct load *l, const struct ast_stmt *s, const struct load_frame *fr,
			 int depth, struct ast_list *out)
{
	if (s->nw != 1) {
		diag_error(l->d, s->loc, "include takes one path, not %zu", s->nw);
		return;
	}
	const struct ast_word *w = &s->w[0];
	char *path;
	if (w->s[0] == '/') {
		path = xstrdup(w->s);
	} else {
		char *dir = dir_of(fr->path);
		path = xasprintf("%s%s", dir, w->s);
		free(dir);
	}
	if (!has_glob_chars(w->s)) {
		load_file(l, path, w->loc, fr, depth + 1, false, out);
		free(path);
		return;
	}
	glob_t g;
	int rc = glob(path, 0, glob_error, &g);
	if (rc == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++) {
			struct stat st;
			if (stat(g.gl_pathv[i], &st) == 0 && S_ISDIR(st.st_mode))
				continue;
			load_file(l, g.gl_pathv[i], w->loc, fr, depth + 1, true, out);
		}
	} else if (rc == GLOB_NOMATCH) {
		check_glob_dir(l, path, w->loc);
	} else if (rc == GLOB_ABORTED && glob_failure.path) {
		diag_error(l->d, w->loc, "cannot read the files of '%s': '%s': %s", path,
			   glob_failure.path, strerror(glob_failure.err));
	} else {
		diag_error(l->d, w->loc, "cannot read the files of '%s'", path);
	}
	free(glob_failure.path);
	glob_failure.path = NULL;
	if (rc != GLOB_NOMATCH)
		globfree(&g);
	free(path);
}

/* Append a file's statements to out, each include replaced by its files. */
static void load_splice(struct load *l, const struct ast_list *stmts,
			const struct load_frame *fr, int depth, struct ast_list *out)
{
	struct ast_stmt *s, *next;
	for (s = stmts->head; s; s = next) {
		next = s->next;
		if (s->kind == AST_INCLUDE)
			load_include(l, s, fr, depth, out);
		else
			ast_list_append(out, s);
	}
}

/*
 * The file of up's chain with identity id, or NULL. *chain gets the files
 * between it and the includer, outermost first: " (through 'b', 'c')",
 * or "" when the file includes itself directly.
 */
static const struct load_frame *find_cycle(const struct load_frame *up, struct load_id id,
					   struct strbuf *chain)
{
	const struct load_frame *f;
	size_t n = 0;
	for (f = up; f; f = f->up, n++)
		if (f->has_id && f->id.dev == id.dev && f->id.ino == id.ino)
			break;
	if (!f || n == 0)
		return f;
	const struct load_frame **v = xmalloc(n * sizeof *v);
	size_t i = n;
	for (const struct load_frame *g = up; g != f; g = g->up)
		v[--i] = g;
	sb_adds(chain, " (through ");
	for (i = 0; i < n; i++)
		sb_printf(chain, "%s'%s'", i ? ", " : "", v[i]->path);
	sb_adds(chain, ")");
	free(v);
	return f;
}

static void load_file(struct load *l, const char *path, struct loc from,
		      const struct load_frame *up, int depth, bool from_glob, struct ast_list *out)
{
	if (depth > LOAD_MAX_DEPTH) {
		diag_error(l->d, from, "includes nested deeper than %d (a cycle?)", LOAD_MAX_DEPTH);
		return;
	}
	/* stat first: opening a FIFO or a device could block or do things */
	struct stat st;
	if (stat(path, &st) < 0) {
		diag_error(l->d, from, "cannot read '%s': %s", path, strerror(errno));
		return;
	}
	int fd = -1;
	if (S_ISREG(st.st_mode)) {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd < 0) {
			diag_error(l->d, from, "cannot read '%s': %s", path, strerror(errno));
			return;
		}
		/* the identity of what was opened, not of what stat saw */
		if (fstat(fd, &st) < 0) {
			diag_error(l->d, from, "cannot read '%s': %s", path, strerror(errno));
			close(fd);
			return;
		}
	}
	if (!S_ISREG(st.st_mode)) {
		diag_error(l->d, from, "cannot read '%s': %s", path,
			   S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
		if (fd >= 0)
			close(fd);
		return;
	}
	struct load_id id = { st.st_dev, st.st_ino };
	struct strbuf chain;
	sb_init(&chain);
	if (find_cycle(up, id, &chain)) {
		close(fd);
		if (from_glob)
			diag_warning(l->d, from, "'%s' includes itself%s; skipped", path, chain.s);
		else
			diag_error(l->d, from, "'%s' includes itself%s", path, chain.s);
		sb_free(&chain);
		return;
	}
	sb_free(&chain);
	if (!seen_add(&l->seen, id)) {
		close(fd);              /* read already: the include guard */
		return;
	}
	size_t len;
	char *text = read_fd(fd, &len);
	int err = errno;
	close(fd);
	if (!text) {
		diag_error(l->d, from, "cannot read '%s': %s", path, strerror(err));
		return;
	}
	struct parse_ctx ctx = { .arena = l->a, .diags = l->d };
	ctx.file = diags_add_source(l->d, path, text, len);
	ast_list_init(&ctx.out);
	parse_buffer(&ctx, text, len);

	struct load_frame fr = { .path = ctx.file, .has_id = true, .id = id, .up = up };
	load_splice(l, &ctx.out, &fr, depth, out);
}

void parse_file(struct arena *a, struct diags *d, const char *path, struct ast_list *out)
{
	struct load l = { .a = a, .d = d };
	ast_list_init(out);
	load_file(&l, path, loc_file(path), NULL, 0, false, out);
	free(l.seen.slot);
}

void parse_string(struct arena *a, struct diags *d, const char *name, const char *text,
		  struct ast_list *out)
{
	struct load l = { .a = a, .d = d };
	ast_list_init(out);
	size_t len = strlen(text);
	struct parse_ctx ctx = { .arena = a, .diags = d };
	ctx.file = diags_add_source(d, name, xstrndup(text, len), len);
	ast_list_init(&ctx.out);
	const struct source *src = diags_source(d, ctx.file);
	parse_buffer(&ctx, src->text, len);
	struct load_frame fr = { .path = ctx.file };
	load_splice(&l, &ctx.out, &fr, 0, out);
	free(l.seen.slot);
}
