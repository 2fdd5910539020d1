build/obj/grammar/resolve.o: grammar/resolve.c grammar/policy.h \
 grammar/ast.h grammar/diag.h util/util.h
grammar/policy.h:
grammar/ast.h:
grammar/diag.h:
util/util.h:
