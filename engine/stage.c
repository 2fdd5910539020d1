/*
 * stage - the protocol-state warnings (see stage.h). One pass over the
 * lines after they compiled; nothing here changes the program.
 */
#include "engine/stage.h"

#include <string.h>

#include "engine/attrs.h"
#include "engine/program.h"
#include "grammar/diag.h"
#include "grammar/policy.h"
#include "util/util.h"

/* The states a protocol_state acl allows, or STAGES_ALL when a value is
 * not a plain state name (unknown: no narrowing). */
static unsigned acl_stages(const struct pol_acl *a)
{
	unsigned set = 0;
	for (size_t i = 0; i < a->nvals; i++) {
		int s = stage_lookup(a->vals[i]->s, a->vals[i]->len);
		if (s < 0)
			return STAGES_ALL;
		set |= 1u << s;
	}
	return a->nvals ? set : STAGES_ALL;
}

/* " and "-joined names of the states in set. */
static void add_stages(struct strbuf *b, unsigned set)
{
	int n = 0, total = __builtin_popcount(set);
	for (int s = 0; s < STAGE_COUNT; s++) {
		if (!(set & (1u << s)))
			continue;
		if (n)
			sb_adds(b, n + 1 == total ? " and " : ", ");
		sb_adds(b, stage_name((enum stage_id)s));
		n++;
	}
}

void stage_check(const struct policy *pol, const struct program *p, struct diags *d)
{
	for (size_t i = 0; i < pol->nrules; i++) {
		const struct pol_rule *r = &pol->rules[i];
		unsigned line = STAGES_ALL;
		for (size_t t = 0; t < r->nterms; t++) {
			const struct acl_rt *a = &p->acls[r->terms[t].acl];
			if (a->type->attr != ATTR_protocol_state)
				continue;
			unsigned set = acl_stages(&pol->acls[r->terms[t].acl]);
			line &= r->terms[t].neg && set != STAGES_ALL ? ~set : set;
		}
		line &= STAGES_ALL;
		if (line == STAGES_ALL || line == 0)    /* unknown, or never matches */
			continue;
		for (size_t t = 0; t < r->nterms; t++) {
			const struct acl_rt *a = &p->acls[r->terms[t].acl];
			if (a->stage_attr < 0)
				continue;
			struct attr_stages as;
			attr_stages(a->stage_attr, &as);
			unsigned full = STAGES_ALL & ~(as.empty | as.partial);
			if (line & full)
				continue;
			/* one warning per acl and line */
			bool seen = false;
			for (size_t u = 0; u < t; u++)
				seen |= r->terms[u].acl == r->terms[t].acl;
			if (seen)
				continue;
			struct strbuf b;
			sb_init(&b);
			const char *attr = attr_name((enum attr_id)a->stage_attr);
			sb_printf(&b, "acl '%s' reads %s, but this line is reached only at ", a->name,
				  attr);
			add_stages(&b, line);
			sb_adds(&b, ", where Postfix sends it ");
			if (line & as.empty) {
				sb_adds(&b, as.empty_how);
				if (line & as.partial) {
					sb_adds(&b, " at ");
					add_stages(&b, line & as.empty);
					sb_adds(&b, " and ");
				}
			}
			if (line & as.partial) {
				sb_adds(&b, as.partial_how);
				if (line & as.empty) {
					sb_adds(&b, " at ");
					add_stages(&b, line & as.partial);
				}
			}
			sb_printf(&b, "; %s is %s at ", attr, as.full_what);
			add_stages(&b, full);
			diag_warning(d, r->terms[t].loc, "%s", b.s);
			sb_free(&b);
		}
	}
}
