/*
 * verify - prove a compiled program sound before it may run (libpcap's
 * bpf_validate): operands in range, every jump forward, every path ending
 * in a verdict (verify.c says how).
 */
#ifndef MXACL_VERIFY_H
#define MXACL_VERIFY_H

#include "engine/program.h"

/* NULL if p is sound, else what is wrong (a static string). */
const char *verify_program(const struct program *p);

#endif
