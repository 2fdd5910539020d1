build/obj/engine/numcmp.o: engine/numcmp.c engine/numcmp.h
engine/numcmp.h:
