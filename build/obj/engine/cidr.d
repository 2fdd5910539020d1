build/obj/engine/cidr.o: engine/cidr.c engine/cidr.h util/util.h
engine/cidr.h:
util/util.h:
