/* A Bison parser, made by GNU Bison 3.8.2.  */

/* Bison interface for Yacc-like parsers in C

   Copyright (C) 1984, 1989-1990, 2000-2015, 2018-2021 Free Software Foundation,
   Inc.

   This program is free software: you can redistribute it and/or modify
   it under the terms of the GNU General Public License as published by
   the Free Software Foundation, either version 3 of the License, or
   (at your option) any later version.

   This program is distributed in the hope that it will be useful,
   but WITHOUT ANY WARRANTY; without even the implied warranty of
   MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
   GNU General Public License for more details.

   You should have received a copy of the GNU General Public License
   along with this program.  If not, see <https://www.gnu.org/licenses/>.  */

/* As a special exception, you may create a larger work that contains
   part or all of the Bison parser skeleton and distribute that work
   under terms of your choice, so long as that work isn't itself a
   parser generator using the skeleton or a modified version thereof
   as a parser skeleton.  Alternatively, if you modify or redistribute
   the parser skeleton itself, you may (at your option) remove this
   special exception, which will cause the skeleton and the resulting
   Bison output files to be licensed under the GNU General Public
   License without this special exception.

   This special exception was added by the Free Software Foundation in
   version 2.2 of Bison.  */

/* DO NOT RELY ON FEATURES THAT ARE NOT DOCUMENTED in the manual,
   especially those whose name start with YY_ or yy_.  They are
   private implementation details that can be changed or removed.  */

#ifndef YY_PC_BUILD_GEN_PARSER_H_INCLUDED
# define YY_PC_BUILD_GEN_PARSER_H_INCLUDED
/* Debug traces.  */
#ifndef PC_DEBUG
# if defined YYDEBUG
#if YYDEBUG
#   define PC_DEBUG 1
#  else
#   define PC_DEBUG 0
#  endif
# else /* ! defined YYDEBUG */
#  define PC_DEBUG 0
# endif /* ! defined YYDEBUG */
#endif  /* ! defined PC_DEBUG */
#if PC_DEBUG
extern int pc_debug;
#endif
/* "%code requires" blocks.  */
#line 15 "grammar/parser.y"

#include "grammar/parse.h"

#line 61 "build/gen/parser.h"

/* Token kinds.  */
#ifndef PC_TOKENTYPE
# define PC_TOKENTYPE
  enum pc_tokentype
  {
    PC_EMPTY = -2,
    PC_EOF = 0,                    /* "end of file"  */
    PC_error = 256,                /* error  */
    PC_UNDEF = 257,                /* "invalid token"  */
    WORD = 258,                    /* "word"  */
    TEXT = 259,                    /* "action text"  */
    KW_ACL = 260,                  /* "acl"  */
    KW_ACTION = 261,               /* "action"  */
    KW_ACCESS = 262,               /* "access"  */
    KW_INCLUDE = 263,              /* "include"  */
    KW_SET = 264,                  /* "set"  */
    NEWLINE = 265,                 /* "end of line"  */
    LEXERROR = 266                 /* "invalid token"  */
  };
  typedef enum pc_tokentype pc_token_kind_t;
#endif

/* Value type.  */
#if ! defined PC_STYPE && ! defined PC_STYPE_IS_DECLARED
union PC_STYPE
{
#line 43 "grammar/parser.y"

	struct ast_word word;

#line 93 "build/gen/parser.h"

};
typedef union PC_STYPE PC_STYPE;
# define PC_STYPE_IS_TRIVIAL 1
# define PC_STYPE_IS_DECLARED 1
#endif

/* Location type.  */
#if ! defined PC_LTYPE && ! defined PC_LTYPE_IS_DECLARED
typedef struct PC_LTYPE PC_LTYPE;
struct PC_LTYPE
{
  int first_line;
  int first_column;
  int last_line;
  int last_column;
};
# define PC_LTYPE_IS_DECLARED 1
# define PC_LTYPE_IS_TRIVIAL 1
#endif




int pc_parse (void *scanner, struct parse_ctx *ctx);

/* "%code provides" blocks.  */
#line 19 "grammar/parser.y"

int pc_lex(PC_STYPE *lval, PC_LTYPE *lloc, void *scanner);
void pc_error(PC_LTYPE *lloc, void *scanner, struct parse_ctx *ctx, const char *msg);

#line 126 "build/gen/parser.h"

#endif /* !YY_PC_BUILD_GEN_PARSER_H_INCLUDED  */
