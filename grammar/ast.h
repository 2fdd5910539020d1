/*
 * ast - the syntax tree of a policy.conf: a list of statements, each a
 * keyword, its words and, for an action, the text that ends the line.
 * The parser only builds these nodes; meaning comes later (resolve.c for
 * names, engine/compile.c for types and values). Every node carries its
 * source location. All nodes live in one compile arena.
 */
#ifndef MXACL_AST_H
#define MXACL_AST_H

#include <stdbool.h>
#include <stddef.h>

#include "grammar/diag.h"
#include "util/util.h"

enum ast_kind {
	AST_ACL,       /* acl NAME TYPE VALUE... */
	AST_ACTION,    /* action NAME TYPE [TEXT] */
	AST_ACCESS,    /* access [NAME:] [!]ACL... [ACTION] (resolve.c) */
	AST_INCLUDE,   /* include PATH */
	AST_SET,       /* set NAME VALUE... */
	AST_DRYRUN,    /* dryrun access [NAME:] [!]ACL... [ACTION] (resolve.c) */
	AST_UNKNOWN,   /* a line that starts with any other word */
};

struct ast_word {
	const char *s;     /* unquoted text, NUL-terminated */
	size_t len;
	struct loc loc;
	bool quoted;       /* written in "double quotes" */
	/* action text only: source line and column of each byte of s, since
	 * quotes, escapes and continuations move text away from its columns */
	const int *map_line, *map_col;
};

struct ast_words {
	struct ast_word *v;
	size_t n, cap;
};

struct ast_stmt {
	enum ast_kind kind;
	struct loc loc;         /* the keyword */
	struct ast_word *w;     /* the words after the keyword (AST_UNKNOWN: all) */
	size_t nw;
	struct ast_word text;   /* action text; text.s NULL when there is none */
	struct ast_stmt *next;
};

struct ast_list {
	struct ast_stmt *head, **tail;
};

void ast_list_init(struct ast_list *l);
void ast_list_append(struct ast_list *l, struct ast_stmt *s);

/* Build a statement; the words are copied into arena a, ws is emptied. */
struct ast_stmt *ast_stmt_new(struct arena *a, enum ast_kind kind, struct loc loc,
			      struct ast_words *ws, const struct ast_word *text);
void ast_words_push(struct ast_words *ws, struct ast_word w);
void ast_words_free(struct ast_words *ws);

const char *ast_kind_name(enum ast_kind k);

#endif
