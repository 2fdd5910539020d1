build/obj/engine/strmap.o: engine/strmap.c engine/strmap.h util/util.h
engine/strmap.h:
util/util.h:
