/*
 * disasm - print a program: its acls, actions and instructions, each
 * instruction with the access line it came from (mxacl dump).
 */
#ifndef MXACL_DISASM_H
#define MXACL_DISASM_H

#include <stdio.h>

#include "engine/program.h"

/* What disasm_program prints besides the program. */
enum disasm_flags {
	DISASM_VALUES = 1,      /* each acl's values as compiled, under its line */
};

/*
 * Print the disassembly of p to out; flags is a set of enum disasm_flags
 * (0: the acls' one-line summaries only, the output dump goldens hold).
 */
void disasm_program(const struct program *p, FILE *out, unsigned flags);

#endif
