/*
 * opcodes - the instruction set, listed once (jq's opcode_list.h).
 *
 * An instruction is 64 bits:
 *
 *   63                 32 31                  8 7        0
 *  +---------------------+---------------------+----------+
 *  |          B          |          A          |    op    |
 *  +---------------------+---------------------+----------+
 *
 * Jump targets (B) are absolute and always greater than the instruction's
 * own address: programs only run forward (libpcap), so every run ends.
 *
 *   TEST    A=acl  B=target   acl false: jump to B, else go on
 *   TESTN   A=acl  B=target   acl true:  jump to B, else go on
 *   SWITCH  A=run  B=end      look the run's attribute up in its index;
 *                             go to the first candidate line, or to B
 *   NEXT    A=run             go to the next candidate line, or the end
 *   VERDICT A=action B=rule   stop with this action (B=NO_RULE: default)
 *   DRYRUN  A=action B=rule   a dry-run line matched: note that it would
 *                             answer the action, and go on (its line's
 *                             code ends here, so the next line follows;
 *                             in a run, a NEXT follows)
 */
#ifndef MXACL_OPCODES_H
#define MXACL_OPCODES_H

#include <stdint.h>

#define OPCODE_LIST(X) \
	X(TEST, "test")       \
	X(TESTN, "testn")     \
	X(SWITCH, "switch")   \
	X(NEXT, "next")       \
	X(VERDICT, "verdict") \
	X(DRYRUN, "dryrun")

enum opcode {
#define X(op, name) OP_##op,
	OPCODE_LIST(X)
#undef X
	OP_COUNT
};

#define INSN(op, a, b) ((uint64_t)(op) | ((uint64_t)(a) << 8) | ((uint64_t)(b) << 32))
#define INSN_OP(i) ((enum opcode)((i) & 0xff))
#define INSN_A(i) ((uint32_t)(((i) >> 8) & 0xffffff))
#define INSN_B(i) ((uint32_t)((i) >> 32))
#define INSN_MAX_A 0xffffffu
#define NO_RULE 0xffffffffu

#endif
