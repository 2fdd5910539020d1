/*
 * disasm - print a program: its acls, actions and instructions, each
 * instruction with the access line it came from (mxacl dump).
 */
#ifndef MXACL_DISASM_H
#define MXACL_DISASM_H

#include <stdio.h>

#include "engine/program.h"

/* Print the disassembly of p to out. */
void disasm_program(const struct program *p, FILE *out);

#endif
