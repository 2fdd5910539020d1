build/obj/gen/parser.o: build/gen/parser.c build/gen/parser.h \
 grammar/parse.h grammar/ast.h grammar/diag.h util/util.h
build/gen/parser.h:
grammar/parse.h:
grammar/ast.h:
grammar/diag.h:
util/util.h:
