/*
 * resolve - bind names: collect acl and action definitions, check that
 * every name in an access line is defined (before use, and as the right
 * kind), and build the rule list (see policy.h).
 */
#include "grammar/policy.h"

#include <stdlib.h>
#include <string.h>

struct pol_name {
	const char *name;        /* NULL: empty slot */
	uint64_t hash;
	enum ast_kind kind;
	int index;
	const struct loc *at;    /* access-line names: where it was given */
};

static uint64_t name_hash(const char *s)
{
	return hash_bytes(s, strlen(s), false);
}

/* A name table: open addressing, a power-of-two capacity. */
static struct pol_name *name_slot(struct pol_name *tab, size_t cap, const char *name, uint64_t h)
{
	size_t mask = cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct pol_name *e = &tab[i];
		if (!e->name || (e->hash == h && strcmp(e->name, name) == 0))
			return e;
	}
}

static void table_add(struct pol_name **tab, size_t *cap, size_t *n, const char *name,
		      enum ast_kind kind, int index)
{
	if ((*n + 1) * 10 >= *cap * 7) {
		struct pol_name *old = *tab;
		size_t oldcap = *cap;
		*cap = oldcap ? oldcap * 2 : 64;
		*tab = xcalloc(*cap, sizeof **tab);
		for (size_t i = 0; i < oldcap; i++)
			if (old[i].name)
				*name_slot(*tab, *cap, old[i].name, old[i].hash) = old[i];
		free(old);
	}
	uint64_t h = name_hash(name);
	struct pol_name *e = name_slot(*tab, *cap, name, h);
	*e = (struct pol_name){ .name = name, .hash = h, .kind = kind, .index = index };
	(*n)++;
}

static int table_find(const struct pol_name *tab, size_t cap, const char *name,
		      enum ast_kind *kind)
{
	if (!cap)
		return -1;
	const struct pol_name *e = name_slot((struct pol_name *)tab, cap, name, name_hash(name));
	if (!e->name)
		return -1;
	if (kind)
		*kind = e->kind;
	return e->index;
}

static void name_add(struct policy *p, const char *name, enum ast_kind kind, int index)
{
	table_add(&p->names, &p->nnames_cap, &p->nnames, name, kind, index);
}

int policy_lookup(const struct policy *p, const char *name, enum ast_kind *kind)
{
	return table_find(p->names, p->nnames_cap, name, kind);
}

static bool valid_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

static bool check_name(struct diags *d, const struct ast_word *w, const char *what)
{
	if (w->quoted || !valid_name(w->s)) {
		diag_error(d, w->loc, "invalid %s name '%s': use letters, digits, '_', '-' and '.'",
			   what, w->s);
		return false;
	}
	return true;
}

static const struct loc *defined_at(const struct policy *p, enum ast_kind kind, int i)
{
	return kind == AST_ACL ? &p->acls[i].loc : &p->actions[i].loc;
}

static void resolve_acl(struct policy *p, const struct ast_stmt *s, struct diags *d)
{
	if (s->nw < 2) {
		diag_error(d, s->loc, "acl needs a name and a type: acl NAME TYPE VALUE...");
		return;
	}
	const struct ast_word *name = &s->w[0], *type = &s->w[1];
	if (!check_name(d, name, "acl"))
		return;
	enum ast_kind kind;
	int i = policy_lookup(p, name->s, &kind);
	if (i == POLICY_DEFAULT_ACTION && kind == AST_ACTION) {
		diag_error(d, name->loc, "'default' names the default action; choose another acl name");
		return;
	}
	if (i >= 0 && kind == AST_ACTION) {
		const struct loc *at = defined_at(p, kind, i);
		diag_error(d, name->loc, "'%s' is already defined as an action at %s:%d",
			   name->s, at->file, at->line);
		return;
	}
	struct pol_acl *acl;
	if (i >= 0) {
		acl = &p->acls[i];
		if (!ascii_ieq(acl->type->s, type->s)) {
			diag_error(d, type->loc,
				   "acl '%s' redefined with type '%s'; it was defined with type '%s' at %s:%d",
				   name->s, type->s, acl->type->s, acl->loc.file, acl->loc.line);
			return;
		}
	} else {
		struct pol_acl n = { .name = name->s, .loc = name->loc, .type = type };
		VEC_PUSH(p->acls, p->nacls, p->capacls, n);
		acl = &p->acls[p->nacls - 1];
		name_add(p, name->s, AST_ACL, (int)(p->nacls - 1));
	}
	for (size_t k = 2; k < s->nw; k++)
		VEC_PUSH(acl->vals, acl->nvals, acl->capvals, &s->w[k]);
}

static void resolve_action(struct policy *p, const struct ast_stmt *s, struct diags *d)
{
	if (s->nw < 2) {
		diag_error(d, s->loc, "action needs a name and a type: action NAME TYPE [TEXT]");
		return;
	}
	const struct ast_word *name = &s->w[0];
	if (!check_name(d, name, "action"))
		return;
	enum ast_kind kind;
	int i = policy_lookup(p, name->s, &kind);
	struct pol_action *act = NULL;
	if (i == POLICY_DEFAULT_ACTION && kind == AST_ACTION && !p->actions[0].type) {
		act = &p->actions[0];            /* the one redefinition of default */
		act->loc = name->loc;
	} else if (i >= 0) {
		const struct loc *at = defined_at(p, kind, i);
		diag_error(d, name->loc, "'%s' is already defined as %s at %s:%d", name->s,
			   kind == AST_ACL ? "an acl" : "an action", at->file, at->line);
		return;
	} else {
		struct pol_action n = { .name = name->s, .loc = name->loc };
		VEC_PUSH(p->actions, p->nactions, p->capactions, n);
		act = &p->actions[p->nactions - 1];
		name_add(p, name->s, AST_ACTION, (int)(p->nactions - 1));
	}
	act->type = &s->w[1];
	act->text = s->text.s ? &s->text : NULL;
	/* a quoted type, or words after it, arrive as extra words: treat them as text */
	if (s->nw > 2)
		diag_error(d, s->w[2].loc, "unexpected word after the action type");
}

/* The names defined so far, acls then actions, for suggest_word. */
static const char *defined_name_at(size_t i, void *ctx)
{
	const struct policy *p = ctx;
	if (i < p->nacls)
		return p->acls[i].name;
	i -= p->nacls;
	return i < p->nactions ? p->actions[i].name : NULL;
}

/*
 * "NAME:", the name of an access line: check it and claim it. Returns
 * false (reported) when it is invalid or taken; the line is still resolved
 * so that its other errors are reported too.
 */
static bool resolve_rule_name(struct policy *p, const struct ast_word *w, struct diags *d,
			      struct arena *a, struct pol_rule *r)
{
	char *name = arena_strndup(a, w->s, w->len - 1);
	struct loc loc = w->loc;
	loc.len = loc.len > 1 ? loc.len - 1 : 1;
	if (!valid_name(name)) {
		diag_error(d, loc,
			   "invalid access line name '%s': use letters, digits, '_', '-' and '.'",
			   name);
		return false;
	}
	/* rule=default and rule=tempfail already mean "no line decided" */
	if (!strcmp(name, "default") || !strcmp(name, "tempfail")) {
		diag_error(d, loc,
			   "'%s' cannot name an access line: logs and metrics use rule=%s "
			   "when no line decided",
			   name, name);
		return false;
	}
	struct pol_name *e = p->nrule_names_cap
		? name_slot(p->rule_names, p->nrule_names_cap, name, name_hash(name)) : NULL;
	if (e && e->name) {
		diag_error(d, loc, "access line name '%s' is already used at %s:%d", name,
			   e->at->file, e->at->line);
		return false;
	}
	struct loc *at = arena_alloc(a, sizeof *at);
	*at = loc;
	table_add(&p->rule_names, &p->nrule_names_cap, &p->nrule_names, name, AST_ACCESS, 0);
	name_slot(p->rule_names, p->nrule_names_cap, name, name_hash(name))->at = at;
	r->name = name;
	r->name_loc = loc;
	return true;
}

/* "access [NAME:] [!]ACL... [ACTION]"; dryrun: the line was marked
 * "dryrun access ..." (its words start after "access"). */
static void resolve_access(struct policy *p, const struct ast_stmt *s, struct diags *d,
			   struct arena *a, bool dryrun)
{
	struct pol_rule r = { .loc = s->loc, .action = POLICY_DEFAULT_ACTION, .dryrun = dryrun };
	size_t first = 0;
	bool ok = true;
	if (s->nw > 0 && !s->w[0].quoted && s->w[0].len > 0 && s->w[0].s[s->w[0].len - 1] == ':') {
		ok = resolve_rule_name(p, &s->w[0], d, a, &r);
		first = 1;
	}
	if (s->nw == 0) {
		diag_error(d, s->loc, "access needs at least one acl or action: access ACL... [ACTION]");
		return;
	}
	if (s->nw == first) {
		diag_error(d, s->w[0].loc,
			   "access line '%.*s' needs at least one acl or action: "
			   "access NAME: ACL... [ACTION]",
			   (int)s->w[0].len - 1, s->w[0].s);
		return;
	}
	r.terms = arena_alloc(a, s->nw * sizeof *r.terms);
	for (size_t k = first; k < s->nw; k++) {
		const struct ast_word *w = &s->w[k];
		bool neg = w->s[0] == '!' && !w->quoted;
		const char *name = neg ? w->s + 1 : w->s;
		enum ast_kind kind;
		int i = policy_lookup(p, name, &kind);
		if (i < 0) {
			/* one or two letters are as close to any other short name */
			size_t n = strlen(name);
			const char *hint = n >= 3 ? suggest_word(name, n, defined_name_at, p) : NULL;
			if (!strcmp(name, ":") && k == first + 1 && !first)
				diag_error(d, w->loc,
					   "a lone ':'; an access line's name is written with the "
					   "colon attached: access NAME: ACL... [ACTION]");
			else if (hint)
				diag_error(d, w->loc, "'%s' is not defined; did you mean '%s'?", name,
					   hint);
			else
				diag_error(d, w->loc,
					   "'%s' is not defined (names must be defined before use)", name);
			ok = false;
			continue;
		}
		if (kind == AST_ACTION) {
			if (k != s->nw - 1) {
				diag_error(d, w->loc,
					   "'%s' is an action; only the last word of an access line may be one",
					   name);
				ok = false;
			} else if (neg) {
				diag_error(d, w->loc, "an action cannot be negated");
				ok = false;
			} else {
				r.action = i;
				r.explicit_action = true;
				r.action_loc = w->loc;
				p->actions[i].used = true;
			}
			continue;
		}
		p->acls[i].used = true;
		r.terms[r.nterms++] = (struct pol_term){ .acl = i, .neg = neg, .loc = w->loc };
	}
	if (!r.explicit_action) {
		p->actions[POLICY_DEFAULT_ACTION].used = true;
		/*
		 * Usually an action forgotten or misspelt as an acl; a line that
		 * answers DUNNO looks as if it does nothing (postfwd: "contains no
		 * action"). Naming 'default' says it is meant.
		 */
		if (ok && r.nterms > 0 && !dryrun)
			diag_warning(d, s->w[s->nw - 1].loc,
				     "access line names no action, so it answers 'default' when it "
				     "matches; end it with an action, or with 'default' if that is meant");
	}
	if (ok)
		VEC_PUSH(p->rules, p->nrules, p->caprules, r);
}

/*
 * "dryrun access ...": the access line after the mark, resolved as any
 * other. "dryrun" is a keyword only as a statement's first word, so acls,
 * actions and lines named dryrun keep working.
 */
static void resolve_dryrun(struct policy *p, const struct ast_stmt *s, struct diags *d,
			   struct arena *a)
{
	if (s->nw == 0 || s->w[0].quoted || !ascii_ieq(s->w[0].s, "access")) {
		diag_error(d, s->nw ? s->w[0].loc : s->loc,
			   "dryrun marks an access line: dryrun access [NAME:] ACL... [ACTION]");
		return;
	}
	struct ast_stmt line = *s;
	line.w = s->w + 1;
	line.nw = s->nw - 1;
	resolve_access(p, &line, d, a, true);
}

bool policy_resolve(struct policy *p, const struct ast_list *l, struct arena *a, struct diags *d)
{
	size_t errors = d->nerrors;
	struct pol_action def = { .name = "default" };
	VEC_PUSH(p->actions, p->nactions, p->capactions, def);
	name_add(p, "default", AST_ACTION, POLICY_DEFAULT_ACTION);

	for (const struct ast_stmt *s = l->head; s; s = s->next) {
		switch (s->kind) {
		case AST_ACL:
			resolve_acl(p, s, d);
			break;
		case AST_ACTION:
			resolve_action(p, s, d);
			break;
		case AST_ACCESS:
			resolve_access(p, s, d, a, false);
			break;
		case AST_DRYRUN:
			resolve_dryrun(p, s, d, a);
			break;
		case AST_SET:
			VEC_PUSH(p->sets, p->nsets, p->capsets, s);
			break;
		case AST_INCLUDE:
			break;  /* spliced by the loader */
		case AST_UNKNOWN:
			diag_error(d, s->loc,
				   "unknown statement '%s'; expected acl, action, access, include or set",
				   s->w[0].s);
			break;
		}
	}
	/* unused acls are reported by the compiler: a score's terms use acls too */
	for (size_t i = 1; i < p->nactions; i++)
		if (!p->actions[i].used)
			diag_warning(d, p->actions[i].loc, "action '%s' is never used",
				     p->actions[i].name);
	return d->nerrors == errors;
}

void policy_free(struct policy *p)
{
	for (size_t i = 0; i < p->nacls; i++)
		free(p->acls[i].vals);
	free(p->acls);
	free(p->actions);
	free(p->rules);
	free(p->sets);
	free(p->names);
	free(p->rule_names);
	memset(p, 0, sizeof *p);
}
