/*
 * ast - statement nodes (see ast.h).
 */
#include "grammar/ast.h"

#include <stdlib.h>
#include <string.h>

void ast_list_init(struct ast_list *l)
{
	l->head = NULL;
	l->tail = &l->head;
}

void ast_list_append(struct ast_list *l, struct ast_stmt *s)
{
	s->next = NULL;
	*l->tail = s;
	l->tail = &s->next;
}

void ast_words_push(struct ast_words *ws, struct ast_word w)
{
	VEC_PUSH(ws->v, ws->n, ws->cap, w);
}

void ast_words_free(struct ast_words *ws)
{
	free(ws->v);
	ws->v = NULL;
	ws->n = ws->cap = 0;
}

struct ast_stmt *ast_stmt_new(struct arena *a, enum ast_kind kind, struct loc loc,
			      struct ast_words *ws, const struct ast_word *text)
{
	struct ast_stmt *s = arena_zalloc(a, sizeof *s);
	s->kind = kind;
	s->loc = loc;
	if (ws && ws->n) {
		s->w = arena_alloc(a, ws->n * sizeof *s->w);
		memcpy(s->w, ws->v, ws->n * sizeof *s->w);
		s->nw = ws->n;
		ws->n = 0;
	}
	if (text)
		s->text = *text;
	return s;
}

const char *ast_kind_name(enum ast_kind k)
{
	static const char *names[] = { "acl", "action", "access", "include", "set", "dryrun", "?" };
	return names[k];
}
