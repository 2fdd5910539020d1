/*
 * verify - prove a compiled program sound before it may run (libpcap's
 * bpf_validate): operands in range, every jump forward and inside the code,
 * the last instruction a VERDICT. Since control only moves forward and
 * only a VERDICT has no successor, every path ends in a verdict (a DRYRUN
 * goes on to the next instruction, which exists). SWITCH
 * tables are checked too: their entries ascend inside the run, and every
 * NEXT sits in one line's code, so the next candidate is always ahead.
 */
#include <stdio.h>

#include "engine/verify.h"
#include "engine/multire.h"

static char why[160];

#define FAIL(...)                                          \
	do {                                               \
		snprintf(why, sizeof why, __VA_ARGS__);    \
		return why;                                \
	} while (0)

static const char *verify_run(const struct program *p, uint32_t pc, const struct run *run)
{
	if (run->end <= pc || run->end >= p->ncode)
		FAIL("switch at %u: end %u out of range", pc, run->end);
	if (run->nrules == 0)
		FAIL("switch at %u: empty run", pc);
	for (uint32_t j = 0; j < run->nrules; j++) {
		if (run->entry[j] <= pc || run->entry[j] >= run->end)
			FAIL("switch at %u: entry %u outside the run", pc, j);
		if (j && run->entry[j] <= run->entry[j - 1])
			FAIL("switch at %u: entries not ascending", pc);
		if (run->first_acl[j] >= p->nacls)
			FAIL("switch at %u: bad acl", pc);
	}
	if (run->re && run->nlists)
		FAIL("switch at %u: both a regex set and an index", pc);
	if (run->re) {
		size_t n[3];
		multire_counts(run->re, n);
		for (size_t x = 0; x < n[0] + n[1] + n[2]; x++)
			if (run->re_line[x] >= run->nrules)
				FAIL("switch at %u: regex %zu names line %u", pc, x, run->re_line[x]);
	}
	for (uint32_t k = 0; k < run->nlists; k++) {
		if (run->list_off[k] >= run->list_off[k + 1])
			FAIL("switch at %u: empty list %u", pc, k);
		for (uint32_t x = run->list_off[k]; x < run->list_off[k + 1]; x++) {
			if (run->lines[x] >= run->nrules)
				FAIL("switch at %u: list %u names line %u", pc, k, run->lines[x]);
			if (x > run->list_off[k] && run->lines[x] <= run->lines[x - 1])
				FAIL("switch at %u: list %u not ascending", pc, k);
		}
	}
	return NULL;
}

const char *verify_program(const struct program *p)
{
	if (p->ncode == 0 || INSN_OP(p->code[p->ncode - 1]) != OP_VERDICT)
		FAIL("the program does not end in a verdict");
	const struct run *run = NULL;   /* the run whose code we are in */
	uint32_t run_id = 0, line = 0;
	for (uint32_t pc = 0; pc < p->ncode; pc++) {
		uint64_t i = p->code[pc];
		uint32_t a = INSN_A(i), b = INSN_B(i);
		if (run && pc >= run->end)
			run = NULL;
		if (run)
			while (line + 1 < run->nrules && pc >= run->entry[line + 1])
				line++;
		switch (INSN_OP(i)) {
		case OP_TEST:
		case OP_TESTN:
			if (a >= p->nacls || !p->acls[a].type || !p->acls[a].type->eval)
				FAIL("%u: test of a bad acl %u", pc, a);
			if (b <= pc || b >= p->ncode)
				FAIL("%u: jump to %u is not forward inside the code", pc, b);
			if (run && b >= run->end)
				FAIL("%u: jump out of its run", pc);
			break;
		case OP_SWITCH:
			if (a >= p->nruns)
				FAIL("%u: switch on a bad run %u", pc, a);
			if (run)
				FAIL("%u: switch inside a run", pc);
			if (b != p->runs[a].end)
				FAIL("%u: switch end %u is not its run's end", pc, b);
			const char *err = verify_run(p, pc, &p->runs[a]);
			if (err)
				return err;
			run = &p->runs[a];
			run_id = a;
			line = 0;
			break;
		case OP_NEXT:
			if (!run || a != run_id)
				FAIL("%u: next outside its run", pc);
			if (pc < run->entry[line] || (line + 1 < run->nrules && pc >= run->entry[line + 1]))
				FAIL("%u: next outside a line's code", pc);
			break;
		case OP_DRYRUN:
			if (b >= p->nrules || !p->rules[b].dryrun)
				FAIL("%u: dryrun of a line %u that is not one", pc, b);
			if (pc + 1 >= p->ncode)
				FAIL("%u: dryrun without a next instruction", pc);
			if (run && INSN_OP(p->code[pc + 1]) != OP_NEXT)
				FAIL("%u: dryrun in a run not followed by next", pc);
			if (a >= p->nactions)
				FAIL("%u: dryrun with a bad action %u", pc, a);
			break;
		case OP_VERDICT:
			if (a >= p->nactions)
				FAIL("%u: verdict with a bad action %u", pc, a);
			if (b != NO_RULE && b >= p->nrules)
				FAIL("%u: verdict with a bad rule %u", pc, b);
			break;
		default:
			FAIL("%u: bad opcode %d", pc, (int)INSN_OP(i));
		}
	}
	return NULL;
}
