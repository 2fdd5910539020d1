build/obj/grammar/diag.o: grammar/diag.c grammar/diag.h util/util.h
grammar/diag.h:
util/util.h:
