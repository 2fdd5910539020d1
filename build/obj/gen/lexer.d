build/obj/gen/lexer.o: build/gen/lexer.c grammar/parse.h grammar/ast.h \
 grammar/diag.h util/util.h build/gen/parser.h
grammar/parse.h:
grammar/ast.h:
grammar/diag.h:
util/util.h:
build/gen/parser.h:
