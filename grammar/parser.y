/*
 * parser - policy.conf statements. The grammar is deliberately flat: a
 * statement is a keyword, words, and (for action) a text. Meaning is given
 * by later passes; the actions here only build nodes, so every error after
 * the syntax is reported with the same location machinery.
 */
%define api.pure full
%define api.prefix {pc_}
%define parse.error verbose
%locations
%expect 0
%param {void *scanner}
%parse-param {struct parse_ctx *ctx}

%code requires {
#include "grammar/parse.h"
}

%code provides {
int pc_lex(PC_STYPE *lval, PC_LTYPE *lloc, void *scanner);
void pc_error(PC_LTYPE *lloc, void *scanner, struct parse_ctx *ctx, const char *msg);
}

%code {
#include <string.h>

static struct loc loc_of(const struct parse_ctx *ctx, const PC_LTYPE *l)
{
	return (struct loc){ .file = ctx->file, .line = l->first_line,
			     .col = l->first_column,
			     .len = l->first_line == l->last_line
				    ? l->last_column - l->first_column : 1 };
}

static void add(struct parse_ctx *ctx, enum ast_kind kind, const PC_LTYPE *l,
		const struct ast_word *text)
{
	ast_list_append(&ctx->out, ast_stmt_new(ctx->arena, kind, loc_of(ctx, l),
						&ctx->cur, text));
}
}

%union {
	struct ast_word word;
}

/* Words live in the compile arena: nothing to free on error recovery. */
%destructor { (void)$$; } <word>

%token <word> WORD "word"
%token <word> TEXT "action text"
%token KW_ACL "acl" KW_ACTION "action" KW_ACCESS "access" KW_INCLUDE "include" KW_SET "set"
%token KW_DRYRUN "dryrun"
%token NEWLINE "end of line"
%token LEXERROR "invalid token"

%%

file
	: %empty
	| file stmt
	;

stmt
	: KW_ACL words NEWLINE               { add(ctx, AST_ACL, &@1, NULL); }
	| KW_ACTION words NEWLINE            { add(ctx, AST_ACTION, &@1, NULL); }
	| KW_ACTION words TEXT NEWLINE       { add(ctx, AST_ACTION, &@1, &$3); }
	| KW_ACCESS words NEWLINE            { add(ctx, AST_ACCESS, &@1, NULL); }
	| KW_INCLUDE words NEWLINE           { add(ctx, AST_INCLUDE, &@1, NULL); }
	| KW_SET words NEWLINE               { add(ctx, AST_SET, &@1, NULL); }
	| KW_DRYRUN words NEWLINE            { add(ctx, AST_DRYRUN, &@1, NULL); }
	| WORD { ast_words_push(&ctx->cur, $1); } words NEWLINE
	                                     { add(ctx, AST_UNKNOWN, &@1, NULL); }
	| error NEWLINE                      { ctx->cur.n = 0; yyerrok; }
	;

words
	: %empty
	| words WORD                         { ast_words_push(&ctx->cur, $2); }
	;

%%

void pc_error(PC_LTYPE *lloc, void *scanner, struct parse_ctx *ctx, const char *msg)
{
	(void)scanner;
	/* the lexer already reported its own errors */
	if (strstr(msg, "invalid token"))
		return;
	diag_error(ctx->diags, loc_of(ctx, lloc), "%s", msg);
}
