build/obj/engine/timematch.o: engine/timematch.c engine/timematch.h \
 util/util.h
engine/timematch.h:
util/util.h:
