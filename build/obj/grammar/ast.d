build/obj/grammar/ast.o: grammar/ast.c grammar/ast.h grammar/diag.h \
 util/util.h
grammar/ast.h:
grammar/diag.h:
util/util.h:
