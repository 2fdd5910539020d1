/*
 * disasm - print a program: its acls, actions and instructions, each
 * instruction with the access line it came from (jq's dump, Lua's luac -l).
 */
#include <string.h>

#include "engine/disasm.h"
#include "engine/multire.h"

static const char *opcode_name(enum opcode op)
{
	static const char *names[] = {
#define X(op, name) name,
		OPCODE_LIST(X)
#undef X
	};
	return (unsigned)op < OP_COUNT ? names[op] : "?";
}

/* The text of line n of file, trimmed, into out. */
static void source_text(const struct program *p, const struct loc *l, struct strbuf *out)
{
	const struct source *s = diags_source(&p->sources, l->file);
	if (!s)
		return;
	const char *q = s->text, *end = s->text + s->len;
	for (int i = 1; i < l->line && q < end; i++) {
		const char *nl = memchr(q, '\n', (size_t)(end - q));
		q = nl ? nl + 1 : end;
	}
	const char *nl = memchr(q, '\n', (size_t)(end - q));
	const char *e = nl ? nl : end;
	while (q < e && (*q == ' ' || *q == '\t'))
		q++;
	while (e > q && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	sb_add(out, q, (size_t)(e - q));
}

void disasm_program(const struct program *p, FILE *f, unsigned flags)
{
	struct strbuf b;
	sb_init(&b);
	sb_printf(&b, "; %s: %u acl%s, %u action%s, %u access line%s, %u instruction%s, %u switch%s\n",
		  p->path, p->nacls, p->nacls == 1 ? "" : "s", p->nactions, p->nactions == 1 ? "" : "s",
		  p->nrules, p->nrules == 1 ? "" : "s", p->ncode, p->ncode == 1 ? "" : "s", p->nruns,
		  p->nruns == 1 ? "" : "es");
	sb_adds(&b, "; acls\n");
	for (uint32_t i = 0; i < p->nacls; i++) {
		const struct acl_rt *a = &p->acls[i];
		sb_printf(&b, ";   %-4u %-16s ", i, a->name);
		a->type->describe(a, &b);
		/* only acls that wait (DNS, SPF, the store) can fail; nomatch is
		 * the default, not worth a word */
		if ((a->stateful || a->type->prefetch) && a->tempfail != TEMPFAIL_NOMATCH)
			sb_adds(&b, a->tempfail == TEMPFAIL_MATCH ? "; tempfail=match"
								  : "; tempfail=default");
		sb_printf(&b, "  (%s:%d)\n", a->loc.file, a->loc.line);
		/* "1 literal" hides "@a.example,@b.example": show which */
		if ((flags & DISASM_VALUES) && a->type->values)
			a->type->values(a, ";          ", &b);
	}
	sb_adds(&b, "; actions\n");
	for (uint32_t i = 0; i < p->nactions; i++) {
		const struct action_rt *a = &p->actions[i];
		sb_printf(&b, ";   %-4u %-16s ", i, a->name);
		action_format(&a->act, NULL, NULL, &b);
		if (a->loc.file)
			sb_printf(&b, "  (%s:%d)", a->loc.file, a->loc.line);
		sb_addc(&b, '\n');
	}
	uint32_t last_rule = NO_RULE - 1;
	for (uint32_t pc = 0; pc < p->ncode; pc++) {
		uint64_t i = p->code[pc];
		uint32_t a = INSN_A(i), bb = INSN_B(i);
		size_t start = b.len;
		sb_printf(&b, "%04u  %-8s", pc, opcode_name(INSN_OP(i)));
		switch (INSN_OP(i)) {
		case OP_TEST:
		case OP_TESTN:
			sb_printf(&b, "%s%s, else %04u", INSN_OP(i) == OP_TESTN ? "!" : "", p->acls[a].name, bb);
			break;
		case OP_SWITCH: {
			const struct run *r = &p->runs[a];
			if (r->re) {
				size_t n[3];
				multire_counts(r->re, n);
				sb_printf(&b, "%s, %u lines, %zu regexes in one scan (%zu exact, %zu "
					  "prefilter+pcre2, %zu pcre2), else %04u",
					  attr_name((enum attr_id)r->attr), r->nrules,
					  n[0] + n[1] + n[2], n[MULTIRE_EXACT], n[MULTIRE_PREFILTER],
					  n[MULTIRE_PCRE], bb);
				break;
			}
			sb_printf(&b, "%s, %u lines, %u keys, else %04u", attr_name((enum attr_id)r->attr),
				  r->nrules, r->nlists, bb);
			break;
		}
		case OP_NEXT:
			sb_printf(&b, "next selected line of switch %u", a);
			break;
		case OP_VERDICT:
			sb_printf(&b, "%s", p->actions[a].name);
			break;
		case OP_DRYRUN:
			sb_printf(&b, "%s (would answer; go on)", p->actions[a].name);
			break;
		default:
			break;
		}
		uint32_t rule = p->code_rule[pc];
		if (rule != last_rule) {
			do
				sb_addc(&b, ' ');
			while (b.len - start < 48);
			if (rule == NO_RULE) {
				sb_adds(&b, "; no line matched");
			} else {
				const struct rule_rt *r = &p->rules[rule];
				/* a named line: the name logs and metrics use first */
				if (r->name)
					sb_printf(&b, "; %s (%s:%d): ", r->name, r->loc.file, r->loc.line);
				else
					sb_printf(&b, "; %s:%d: ", r->loc.file, r->loc.line);
				source_text(p, &p->rules[rule].loc, &b);
			}
			last_rule = rule;
		}
		sb_addc(&b, '\n');
	}
	fputs(b.s, f);
	sb_free(&b);
}
