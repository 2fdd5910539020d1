/*
 * load - read policy.conf files and splice include statements in place
 * (see parse.h). An include names a file or a glob pattern; relative paths
 * are taken from the directory of the including file; a pattern's matches
 * are read in sorted order and a pattern matching nothing is not an error
 * (an empty conf.d/ is normal), while a plain path that is missing is.
 */
#include "grammar/parse.h"

#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* Read a whole file; NULL with errno set on failure. */
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct strbuf b;
	sb_init(&b);
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		sb_add(&b, chunk, n);
		if (b.len > LOAD_MAX_FILE) {
			errno = EFBIG;
			break;
		}
	}
	int err = ferror(f) ? errno : b.len > LOAD_MAX_FILE ? EFBIG : 0;
	fclose(f);
	if (err) {
		sb_free(&b);
		errno = err;
		return NULL;
	}
	*len = b.len;
	return b.s;
}

struct load_frame {
	const char *path;
	dev_t dev;
	ino_t ino;
	const struct load_frame *up;
};

static void load_file(struct arena *a, struct diags *d, const char *path, struct loc from,
		      const struct load_frame *up, int depth, struct ast_list *out);

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

static void load_include(struct arena *a, struct diags *d, const struct ast_stmt *s,
			 const struct load_frame *fr, int depth, struct ast_list *out)
{
	if (s->nw != 1) {
		diag_error(d, s->loc, "include takes one path, not %zu", s->nw);
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
		load_file(a, d, path, w->loc, fr, depth + 1, out);
		free(path);
		return;
	}
	glob_t g;
	/* no GLOB_ERR: a pattern in a missing directory matches nothing, like
	 * one in an empty directory */
	int rc = glob(path, 0, NULL, &g);
	if (rc == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++) {
			struct stat st;
			if (stat(g.gl_pathv[i], &st) == 0 && S_ISDIR(st.st_mode))
				continue;
			load_file(a, d, g.gl_pathv[i], w->loc, fr, depth + 1, out);
		}
	} else if (rc != GLOB_NOMATCH) {
		diag_error(d, w->loc, "cannot read the files of '%s'", path);
	}
	if (rc != GLOB_NOMATCH)
		globfree(&g);
	free(path);
}

/* Append a file's statements to out, each include replaced by its files. */
static void splice(struct arena *a, struct diags *d, const struct ast_list *stmts,
		   const struct load_frame *fr, int depth, struct ast_list *out)
{
	struct ast_stmt *s, *next;
	for (s = stmts->head; s; s = next) {
		next = s->next;
		if (s->kind == AST_INCLUDE)
			load_include(a, d, s, fr, depth, out);
		else
			ast_list_append(out, s);
	}
}

static void load_file(struct arena *a, struct diags *d, const char *path, struct loc from,
		      const struct load_frame *up, int depth, struct ast_list *out)
{
	if (depth > LOAD_MAX_DEPTH) {
		diag_error(d, from, "includes nested deeper than %d (a cycle?)", LOAD_MAX_DEPTH);
		return;
	}
	struct stat st;
	if (stat(path, &st) == 0) {
		for (const struct load_frame *f = up; f; f = f->up) {
			if (f->dev == st.st_dev && f->ino == st.st_ino) {
				diag_error(d, from, "'%s' includes itself (through '%s')", path,
					   up->path);
				return;
			}
		}
		if (!S_ISREG(st.st_mode)) {
			diag_error(d, from, "cannot read '%s': %s", path,
				   S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
			return;
		}
	}
	size_t len;
	char *text = read_file(path, &len);
	if (!text) {
		diag_error(d, from, "cannot read '%s': %s", path, strerror(errno));
		return;
	}
	struct parse_ctx ctx = { .arena = a, .diags = d };
	ctx.file = diags_add_source(d, path, text, len);
	ast_list_init(&ctx.out);
	parse_buffer(&ctx, text, len);

	struct load_frame fr = { .path = ctx.file, .dev = st.st_dev, .ino = st.st_ino, .up = up };
	splice(a, d, &ctx.out, &fr, depth, out);
}

void parse_file(struct arena *a, struct diags *d, const char *path, struct ast_list *out)
{
	ast_list_init(out);
	load_file(a, d, path, loc_file(path), NULL, 0, out);
}

void parse_string(struct arena *a, struct diags *d, const char *name, const char *text,
		  struct ast_list *out)
{
	ast_list_init(out);
	size_t len = strlen(text);
	struct parse_ctx ctx = { .arena = a, .diags = d };
	ctx.file = diags_add_source(d, name, xstrndup(text, len), len);
	ast_list_init(&ctx.out);
	const struct source *src = diags_source(d, ctx.file);
	parse_buffer(&ctx, src->text, len);
	struct load_frame fr = { .path = ctx.file };
	splice(a, d, &ctx.out, &fr, 0, out);
}
