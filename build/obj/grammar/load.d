build/obj/grammar/load.o: grammar/load.c grammar/parse.h grammar/ast.h \
 grammar/diag.h util/util.h build/gen/lexer.h build/gen/parser.h
grammar/parse.h:
grammar/ast.h:
grammar/diag.h:
util/util.h:
build/gen/lexer.h:
build/gen/parser.h:
