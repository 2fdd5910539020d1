/*
 * parse - reading policy.conf files into statement lists: the shared state
 * of the flex lexer and the bison parser, and the loader that expands
 * include statements (files or globs, relative to the including file,
 * matches read in sorted order) into one list in file order.
 */
#ifndef MXACL_PARSE_H
#define MXACL_PARSE_H

#include <stdbool.h>

#include "grammar/ast.h"
#include "grammar/diag.h"

/* State shared by the lexer and the parser of one file. */
struct parse_ctx {
	struct arena *arena;
	struct diags *diags;
	const char *file;        /* interned path for locations */
	struct ast_list out;     /* statements, in order */
	struct ast_words cur;    /* words of the statement being read */
	int nword;               /* words so far in the current statement */
	bool in_action;          /* the current statement is "action" */
	int line, col;           /* position of the next byte */
};

/*
 * Parse one buffer (NUL-terminated, len bytes) registered in diags as
 * file. Appends statements to ctx->out; reports syntax errors to diags.
 */
void parse_buffer(struct parse_ctx *ctx, const char *text, size_t len);

/*
 * Read path and everything it includes. Returns the statements in order
 * (includes spliced in place) in *out. Each file is read at most once
 * (told apart by device and inode); a later include of it adds nothing.
 * Errors (unreadable files, a glob in a missing directory, an include
 * cycle through a plain path, nesting deeper than 16, syntax errors) and
 * warnings (a glob match that would close a cycle, skipped) go to d.
 * Statements and words live in arena a. Keeps no static state: loads may
 * run on several threads at once.
 */
void parse_file(struct arena *a, struct diags *d, const char *path, struct ast_list *out);

/* Parse a string as if it were file name (for tests and -e). */
void parse_string(struct arena *a, struct diags *d, const char *name, const char *text,
		  struct ast_list *out);

#endif
