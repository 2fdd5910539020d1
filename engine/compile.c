/*
 * compile - from resolved policy to program: compile each acl with its
 * type and each action with the access(5) rules, warn about access lines
 * that can never match, then lay out the code.
 *
 * Code layout. Each access line becomes its tests followed by a VERDICT;
 * a failed test jumps to the next line. A run of at least RUN_MIN
 * consecutive lines whose first acl is a positive literal string acl on the
 * same attribute becomes one SWITCH: a hash lookup of the request's value
 * yields, in line order, the lines whose first acl matches; the VM visits
 * only those (NEXT goes to the next one), so 10,000 "acl sN sender userN@x"
 * / "access sN rejN" lines cost one lookup, not 10,000 tests. Lines whose
 * first acl is one of regexes only (acl.h, regexes) fold the same way when
 * they hold MULTIRE_MIN patterns or more: the SWITCH is one multire scan
 * of all their patterns (engine/multire.h), each pattern naming its line,
 * so 10,000 "acl rN helo_name /pattern/" lines cost one scan.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/compile.h"
#include "engine/stage.h"
#include "engine/geoip.h"
#include "engine/multire.h"
#include "engine/recache.h"
#include "engine/verify.h"
#include "grammar/parse.h"
#include "grammar/policy.h"

#define RUN_MIN 3

struct compiler {
	struct program *p;
	struct policy *pol;
	struct diags *d;
	uint64_t *code;
	uint32_t *code_rule;
	size_t ncode, capcode, caprule;
	/* fixups: instruction index whose B is the start of rule fix_rule */
	struct fixup {
		uint32_t pc, rule;
	} *fix;
	size_t nfix, capfix;
	struct loc geoip_loc;   /* the "set geoip" value, for errors */
	bool geoip_failed;
	unsigned char *state;   /* per acl: enum acl_state, while compiling acls */
	uint32_t *stack;        /* the acls being compiled, innermost last */
	size_t nstack, capstack;
	bool ref_failed;        /* the acl being compiled named one that failed */
	bool notes;             /* load_opts.why_pcre */
	struct recache *recache;        /* load_opts.recache */
	bool regex_classify_only;       /* load_opts.regex_classify_only */
};

/* The acl names, for suggest_word. */
static const char *acl_name_at(size_t i, void *ctx)
{
	const struct policy *pol = ctx;
	return i < pol->nacls ? pol->acls[i].name : NULL;
}

/* Open the GeoIP database the flag or "set geoip" names, if any. */
static void open_geoip(struct compiler *c, const struct load_opts *o, const char *path)
{
	const char *file = o && o->geoip ? o->geoip : c->p->settings.geoip;
	if (!file)
		return;
	char *err = NULL;
	c->p->geoip = geoip_open(file, &err);
	if (!c->p->geoip) {
		diag_error(c->d, o && o->geoip ? loc_file(path) : c->geoip_loc, "%s", err);
		free(err);
		c->geoip_failed = true;
	}
}

/* Template variables: ids 0..ATTR_COUNT-1 are request attributes, then
 * the lookup values of VAR_LIST (acl.h). Each one named is recorded as
 * used, so the VM can tell a type whether to fetch it (vm_var_used). */
static int var_resolve(void *ctx, const char *name, size_t len)
{
	static const char *const vars[] = {
#define X(n) #n,
		VAR_LIST(X)
#undef X
	};
	struct program *p = ctx;
	int id = attr_lookup(name, len);
	if (id >= 0) {
		p->used_attr[id] = true;
		p->used_attr[attr_root((enum attr_id)id)] = true;   /* a derived one's source */
		return id;
	}
	for (size_t i = 0; i < ARRAY_LEN(vars); i++)
		if (strlen(vars[i]) == len && memcmp(vars[i], name, len) == 0) {
			p->used_var[i] = true;
			return VAR_BASE + 1 + (int)i;
		}
	return -1;
}

/* ---- settings ------------------------------------------------------------ */

/* A set statement: the settings table (settings.h) parses and checks it;
 * the compiler keeps where geoip came from, for open_geoip's errors. */
static void compile_set(struct compiler *c, const struct ast_stmt *s)
{
	if (settings_set(&c->p->settings, s, c->d) && strcmp(s->w[0].s, "geoip") == 0)
		c->geoip_loc = s->w[1].loc;
}

/* ---- acls and actions ---------------------------------------------------- */

/* Where an acl is in compile_acl (acl_ref's cycle check). */
enum acl_state { ACL_TODO, ACL_COMPILING, ACL_DONE, ACL_FAILED };

static void compile_acl(struct compiler *c, uint32_t i);

/*
 * acl_compile.ref: another acl named in an acl's values (a score's
 * terms). It is compiled first when it is not yet, depth first, so the
 * acls being compiled are a stack (c->stack); naming one of them closes a
 * cycle, reported with its path.
 */
static bool acl_ref(struct acl_compile *ac, const char *name, struct loc loc, struct acl_ref *out)
{
	struct compiler *c = ac->ref_ctx;
	enum ast_kind kind;
	int i = policy_lookup(c->pol, name, &kind);
	if (i < 0 || kind != AST_ACL) {
		size_t n = strlen(name);
		/* one or two letters are as close to any other short name */
		const char *hint = n >= 3 ? suggest_word(name, n, acl_name_at, c->pol) : NULL;
		if (i >= 0)
			diag_error(c->d, loc, "'%s' is an action, not an acl", name);
		else if (hint)
			diag_error(c->d, loc, "'%s' is not defined; did you mean '%s'?", name, hint);
		else
			diag_error(c->d, loc, "'%s' is not defined", name);
		return false;
	}
	c->pol->acls[i].used = true;
	if (c->state[i] == ACL_COMPILING) {
		struct strbuf path;
		sb_init(&path);
		size_t from = c->nstack;
		while (from > 0 && c->stack[from - 1] != (uint32_t)i)
			from--;
		for (size_t k = from - 1; k < c->nstack; k++)
			sb_printf(&path, "%s -> ", c->pol->acls[c->stack[k]].name);
		sb_adds(&path, name);
		diag_error(c->d, loc, "'%s' is used inside itself: %s", name, path.s);
		sb_free(&path);
		return false;
	}
	if (c->state[i] == ACL_TODO)
		compile_acl(c, (uint32_t)i);
	if (c->state[i] != ACL_DONE) {
		c->ref_failed = true;   /* reported already: no "does not compile" */
		return false;
	}
	const struct acl_rt *acl = &c->p->acls[i];
	*out = (struct acl_ref){ .index = i, .name = arena_strdup(c->p->arena, acl->name),
				 .type = acl->type, .stateful = acl->stateful,
				 .tempfail = acl->tempfail };
	return true;
}

/* Compile acl i with its type (once: acl_ref may have done it already). */
static void compile_acl(struct compiler *c, uint32_t i)
{
	struct program *p = c->p;
	const struct pol_acl *pa = &c->pol->acls[i];
	struct acl_rt *acl = &p->acls[i];
	c->state[i] = ACL_FAILED;
	acl->name = pa->name;
	acl->loc = pa->loc;
	acl->run = -1;
	acl->tempfail = TEMPFAIL_NOMATCH;
	acl->type = acl_type_find(pa->type->s);
	if (!acl->type) {
		const char *hint = acl_type_suggest(pa->type->s);
		if (hint)
			diag_error(c->d, pa->type->loc, "unknown acl type '%s'; did you mean '%s'?",
				   pa->type->s, hint);
		else {
			struct strbuf types;
			sb_init(&types);
			acl_type_list_named(&types);
			diag_error(c->d, pa->type->loc,
				   "unknown acl type '%s'; use a request attribute (sender, "
				   "client_address, ...) or %s (docs/language.md lists them)",
				   pa->type->s, types.s);
			sb_free(&types);
		}
		return;
	}
	if (acl->type->attr >= 0) {
		p->used_attr[acl->type->attr] = true;
		p->used_attr[attr_root((enum attr_id)acl->type->attr)] = true;
	}
	if (pa->nvals == 0 && !acl->type->values_optional) {
		diag_error(c->d, pa->loc, "acl '%s' has no values", pa->name);
		return;
	}
	struct acl_compile ac = { .arena = p->arena, .diags = c->d, .acl = pa,
				  .attr = acl->type->attr, .tempfail = -1,
				  .stage_attr = acl->type->attr,
				  .geoip = p->geoip, .geoip_failed = c->geoip_failed,
				  .used_attr = p->used_attr, .ref = acl_ref, .ref_ctx = c,
				  .notes = c->notes, .recache = c->recache,
				  .regex_classify_only = c->regex_classify_only };
	size_t errors = c->d->nerrors;
	c->state[i] = ACL_COMPILING;
	VEC_PUSH(c->stack, c->nstack, c->capstack, i);
	c->ref_failed = false;
	bool ok = acl->type->compile(&ac);
	bool ref_failed = c->ref_failed;
	c->ref_failed = false;
	c->nstack--;
	c->state[i] = ok && c->d->nerrors == errors ? ACL_DONE : ACL_FAILED;
	acl->data = ac.data;
	acl->stateful = ac.stateful;
	acl->stage_attr = ac.stage_attr;
	if (ac.tempfail >= 0)
		acl->tempfail = (enum tempfail_mode)ac.tempfail;
	else if (p->settings.tempfail >= 0)
		acl->tempfail = (enum tempfail_mode)p->settings.tempfail;
	acl->indexable = ok && ac.indexable && c->d->nerrors == errors;
	if (!ok && c->d->nerrors == errors && !ref_failed)
		diag_error(c->d, pa->loc, "acl '%s' does not compile", pa->name);
}

static void compile_acls(struct compiler *c)
{
	struct program *p = c->p;
	p->nacls = (uint32_t)c->pol->nacls;
	p->acls = xcalloc(p->nacls ? p->nacls : 1, sizeof *p->acls);
	c->state = xcalloc(p->nacls ? p->nacls : 1, sizeof *c->state);
	for (uint32_t i = 0; i < p->nacls; i++)
		if (c->state[i] == ACL_TODO)
			compile_acl(c, i);
	free(c->state);
	free(c->stack);
	/* here, not in the resolver: an acl may be used only by another's values */
	for (size_t i = 0; i < c->pol->nacls; i++)
		if (!c->pol->acls[i].used)
			diag_warning(c->d, c->pol->acls[i].loc, "acl '%s' is never used",
				     c->pol->acls[i].name);
}

/* Where an action_error points: the type word, or a span of the text. */
static struct loc action_error_loc(const struct pol_action *pa, const struct action_error *err)
{
	struct loc loc = pa->type ? pa->type->loc : pa->loc;
	if (!err->in_type && pa->text) {
		/* map the offset in the text back to its source position */
		const struct ast_word *t = pa->text;
		size_t off = err->offset < t->len ? err->offset : t->len;
		size_t end = off + (err->len ? err->len : 1) - 1;
		if (end > t->len)
			end = t->len;
		loc = t->loc;
		loc.line = t->map_line[off];
		loc.col = t->map_col[off];
		loc.len = t->map_line[end] == loc.line ? t->map_col[end] - loc.col + 1 : 1;
	}
	return loc;
}

static void compile_actions(struct compiler *c)
{
	struct program *p = c->p;
	p->nactions = (uint32_t)c->pol->nactions;
	p->actions = xcalloc(p->nactions, sizeof *p->actions);
	for (uint32_t i = 0; i < p->nactions; i++) {
		const struct pol_action *pa = &c->pol->actions[i];
		struct action_rt *ar = &p->actions[i];
		ar->name = pa->name;
		ar->loc = pa->loc;
		const char *type = pa->type ? pa->type->s : "DUNNO";
		const char *text = pa->text ? pa->text->s : NULL;
		struct action_error err = { 0 };
		struct action_vocab vocab = {
			.classes = p->settings.restriction_classes,
			.nclasses = p->settings.nrestriction_classes };
		if (action_compile_in(&vocab, p->arena, type, text, var_resolve, p, &ar->act,
				      &err)) {
			if (err.warning)
				diag_warning(c->d, action_error_loc(pa, &err), "%s", err.warning);
			free((char *)err.warning);
			continue;
		}
		diag_error(c->d, action_error_loc(pa, &err), "%s", err.msg ? err.msg : "bad action");
		free((char *)err.msg);
	}
}

/*
 * A greylist or rate acl records state when evaluated, so it must only be
 * evaluated when everything else on its line matched: move such terms to
 * the end of each line, keeping their order (a stable partition).
 */
static void order_stateful_last(struct compiler *c)
{
	for (size_t i = 0; i < c->pol->nrules; i++) {
		struct pol_rule *r = &c->pol->rules[i];
		struct pol_term *tmp = xmalloc((r->nterms ? r->nterms : 1) * sizeof *tmp);
		size_t k = 0;
		for (int pass = 0; pass < 2; pass++)
			for (size_t t = 0; t < r->nterms; t++)
				if (c->p->acls[r->terms[t].acl].stateful == (pass == 1))
					tmp[k++] = r->terms[t];
		memcpy(r->terms, tmp, r->nterms * sizeof *tmp);
		free(tmp);
	}
}

/* ---- warnings about lines that can never match ---------------------------- */

static void check_rules(struct compiler *c)
{
	struct policy *pol = c->pol;
	size_t n = pol->nrules;
	/* postings: for term key (acl*2+neg), the earlier rules that have it */
	size_t nkeys = pol->nacls * 2;
	uint32_t **post = xcalloc(nkeys ? nkeys : 1, sizeof *post);
	size_t *npost = xcalloc(nkeys ? nkeys : 1, sizeof *npost);
	size_t *cappost = xcalloc(nkeys ? nkeys : 1, sizeof *cappost);
	uint32_t *count = xcalloc(n ? n : 1, sizeof *count);
	uint32_t *distinct = xcalloc(n ? n : 1, sizeof *distinct);
	uint32_t *touched = xmalloc((n ? n : 1) * sizeof *touched);
	long unconditional = -1;
	bool reported_unreachable = false;

	for (size_t i = 0; i < n; i++) {
		struct pol_rule *r = &pol->rules[i];
		/* distinct terms, and "x and !x" */
		bool never = false;
		for (size_t a = 0; a < r->nterms; a++) {
			bool dup = false;
			for (size_t b = 0; b < a; b++) {
				if (r->terms[b].acl != r->terms[a].acl)
					continue;
				if (r->terms[b].neg == r->terms[a].neg)
					dup = true;
				else if (!never) {
					diag_warning(c->d, r->terms[a].loc,
						     "access line can never match: it needs both '%s' and '!%s'",
						     pol->acls[r->terms[a].acl].name,
						     pol->acls[r->terms[a].acl].name);
					never = true;
				}
			}
			if (!dup)
				distinct[i]++;
		}
		if (unconditional >= 0) {
			if (!reported_unreachable) {
				const struct loc *u = &pol->rules[unconditional].loc;
				diag_warning(c->d, r->loc,
					     "access line can never match: the line at %s:%d before it "
					     "matches every request (so do all lines after it)",
					     u->file, u->line);
				reported_unreachable = true;
			}
			continue;
		}
		/* an earlier line whose terms are all in this one shadows it */
		size_t ntouched = 0;
		long shadow = -1;
		for (size_t a = 0; a < r->nterms && shadow < 0; a++) {
			size_t key = (size_t)r->terms[a].acl * 2 + r->terms[a].neg;
			bool seen = false;
			for (size_t b = 0; b < a; b++)
				seen |= r->terms[b].acl == r->terms[a].acl && r->terms[b].neg == r->terms[a].neg;
			if (seen)
				continue;
			for (size_t k = 0; k < npost[key]; k++) {
				uint32_t e = post[key][k];
				if (count[e]++ == 0)
					touched[ntouched++] = e;
				if (count[e] == distinct[e] && (shadow < 0 || e < shadow))
					shadow = e;
			}
		}
		for (size_t k = 0; k < ntouched; k++)
			count[touched[k]] = 0;
		if (shadow >= 0 && !never) {
			const struct loc *s = &pol->rules[shadow].loc;
			diag_warning(c->d, r->loc,
				     "access line can never match: the line at %s:%d matches "
				     "whenever this one does",
				     s->file, s->line);
		}
		/* a dry-run line never decides, so it hides no line after it */
		if (r->dryrun)
			continue;
		if (r->nterms == 0)
			unconditional = (long)i;
		for (size_t a = 0; a < r->nterms; a++) {
			size_t key = (size_t)r->terms[a].acl * 2 + r->terms[a].neg;
			if (npost[key] && post[key][npost[key] - 1] == i)
				continue;
			VEC_PUSH(post[key], npost[key], cappost[key], (uint32_t)i);
		}
	}
	for (size_t k = 0; k < nkeys; k++)
		free(post[k]);
	free(post);
	free(npost);
	free(cappost);
	free(count);
	free(distinct);
	free(touched);
}

/* ---- code ---------------------------------------------------------------- */

static uint32_t emit(struct compiler *c, enum opcode op, uint32_t a, uint32_t b, uint32_t rule)
{
	grow_array((void **)&c->code, &c->capcode, c->ncode + 1, sizeof *c->code);
	grow_array((void **)&c->code_rule, &c->caprule, c->ncode + 1, sizeof *c->code_rule);
	c->code[c->ncode] = INSN(op, a, b);
	c->code_rule[c->ncode] = rule;
	return (uint32_t)c->ncode++;
}

static void set_target(struct compiler *c, uint32_t pc, uint32_t target)
{
	c->code[pc] = INSN(INSN_OP(c->code[pc]), INSN_A(c->code[pc]), target);
}

/* What a run's SWITCH looks up: literals in a hash, or regexes in one scan. */
enum run_kind { RUN_LITERAL, RUN_REGEX };

/* Can rule i's first term key a SWITCH on attribute *attr, and which kind? */
static bool run_eligible(struct compiler *c, size_t i, int *attr, enum run_kind *kind)
{
	const struct pol_rule *r = &c->pol->rules[i];
	if (r->nterms == 0 || r->terms[0].neg)
		return false;
	const struct acl_rt *acl = &c->p->acls[r->terms[0].acl];
	struct strmap *const *sets;
	bool empty;
	if (!acl->type || acl->type->attr < 0)
		return false;
	*attr = acl->type->attr;
	if (acl->indexable && acl->type->literals && acl->type->literals(acl, &sets, &empty)) {
		*kind = RUN_LITERAL;
		return true;
	}
	if (acl->type->regexes && acl->type->regexes(acl, NULL, NULL) > 0) {
		*kind = RUN_REGEX;
		return true;
	}
	return false;
}

/* Tests of rule i from term `from` on; failures jump to fail (fixed later). */
static void emit_tests(struct compiler *c, size_t i, size_t from, uint32_t **fails, size_t *nfails,
		       size_t *capfails)
{
	const struct pol_rule *r = &c->pol->rules[i];
	for (size_t t = from; t < r->nterms; t++) {
		uint32_t pc = emit(c, r->terms[t].neg ? OP_TESTN : OP_TEST, (uint32_t)r->terms[t].acl, 0,
				   (uint32_t)i);
		VEC_PUSH(*fails, *nfails, *capfails, pc);
	}
}

/* Build the index of run: literal key -> ascending run-local line numbers. */
static void build_run_index(struct compiler *c, struct run *run)
{
	struct program *p = c->p;
	struct vec {
		uint32_t *v;
		size_t n, cap;
	} *lists = NULL;
	size_t nlists = 0, caplists = 0;
	for (int f = 0; f < FORM_COUNT; f++)
		run->index[f] = NULL;
	for (uint32_t j = 0; j < run->nrules; j++) {
		const struct acl_rt *acl = &p->acls[run->first_acl[j]];
		struct strmap *const *sets;
		bool empty;
		acl->type->literals(acl, &sets, &empty);
		for (int f = 0; f < FORM_COUNT; f++) {
			/* FORM_EMPTY has no set: its one key is "" when the acl has "" */
			size_t nk = f == FORM_EMPTY ? (empty ? 1 : 0) : strmap_count(sets[f]);
			for (size_t k = 0; k < nk; k++) {
				size_t klen = 0;
				const char *key = f == FORM_EMPTY ? "" : strmap_key_at(sets[f], k, &klen);
				if (!run->index[f])
					run->index[f] = strmap_new();
				bool added;
				uint32_t *slot = strmap_put(run->index[f], key, klen, &added);
				if (added) {
					grow_array((void **)&lists, &caplists, nlists + 1, sizeof *lists);
					lists[nlists] = (struct vec){ 0 };
					*slot = (uint32_t)nlists++;
				}
				struct vec *l = &lists[*slot];
				if (!l->n || l->v[l->n - 1] != j)
					VEC_PUSH(l->v, l->n, l->cap, j);
			}
		}
	}
	for (int f = 0; f < FORM_COUNT; f++)
		strmap_shrink(run->index[f]);
	run->nlists = (uint32_t)nlists;
	run->list_off = arena_alloc(p->arena, (nlists + 1) * sizeof *run->list_off);
	size_t total = 0;
	for (size_t k = 0; k < nlists; k++)
		total += lists[k].n;
	run->lines = arena_alloc(p->arena, (total ? total : 1) * sizeof *run->lines);
	size_t off = 0;
	for (size_t k = 0; k < nlists; k++) {
		run->list_off[k] = (uint32_t)off;
		memcpy(run->lines + off, lists[k].v, lists[k].n * sizeof *run->lines);
		off += lists[k].n;
		free(lists[k].v);
	}
	run->list_off[nlists] = (uint32_t)off;
	free(lists);
}

/* The number of regexes of the first acls of lines first..last. */
static size_t run_patterns(struct compiler *c, size_t first, size_t last)
{
	size_t n = 0;
	for (size_t i = first; i <= last; i++) {
		const struct acl_rt *acl = &c->p->acls[c->pol->rules[i].terms[0].acl];
		n += acl->type->regexes(acl, NULL, NULL);
	}
	return n;
}

/*
 * The set of a regex run: every line's patterns, in line order, as one
 * multire set whose pattern index names its line (re_line); a scan then
 * says which lines' first acls match, as a literal run's index does.
 */
static void build_run_regex(struct compiler *c, struct run *run)
{
	struct program *p = c->p;
	size_t n = 0;
	for (uint32_t j = 0; j < run->nrules; j++) {
		const struct acl_rt *acl = &p->acls[run->first_acl[j]];
		n += acl->type->regexes(acl, NULL, NULL);
	}
	struct multire_pattern *pats = xcalloc(n, sizeof *pats);
	run->re_line = xcalloc(n, sizeof *run->re_line);
	uint32_t options = 0;
	size_t k = 0;
	for (uint32_t j = 0; j < run->nrules; j++) {
		const struct acl_rt *acl = &p->acls[run->first_acl[j]];
		size_t got = acl->type->regexes(acl, pats + k, &options);
		for (size_t x = 0; x < got; x++)
			run->re_line[k + x] = j;
		k += got;
	}
	struct multire_opts o = { .cache = c->recache, .classify_only = c->regex_classify_only };
	run->re = multire_build_with(pats, n, options, MULTIRE_MIN, &o);
	free(pats);
}

static void emit_run(struct compiler *c, size_t first, size_t last, int attr, enum run_kind kind,
		     uint32_t *rule_start)
{
	struct program *p = c->p;
	uint32_t id = p->nruns;
	p->runs = xrealloc(p->runs, (p->nruns + 1) * sizeof *p->runs);
	struct run *run = &p->runs[p->nruns++];
	memset(run, 0, sizeof *run);
	run->attr = attr;
	run->first_rule = (uint32_t)first;
	run->nrules = (uint32_t)(last - first + 1);
	run->entry = arena_alloc(p->arena, run->nrules * sizeof *run->entry);
	run->first_acl = arena_alloc(p->arena, run->nrules * sizeof *run->first_acl);
	if (run->nrules > p->max_cand)
		p->max_cand = run->nrules;

	uint32_t sw = emit(c, OP_SWITCH, id, 0, (uint32_t)first);
	rule_start[first] = sw;
	for (size_t i = first; i <= last; i++) {
		const struct pol_rule *r = &c->pol->rules[i];
		uint32_t j = (uint32_t)(i - first);
		run->first_acl[j] = (uint32_t)r->terms[0].acl;
		struct acl_rt *acl = &p->acls[r->terms[0].acl];
		if (acl->run < 0)
			acl->run = (int)id;
		run->entry[j] = (uint32_t)c->ncode;
		if (i != first)
			rule_start[i] = (uint32_t)c->ncode;
		uint32_t *fails = NULL;
		size_t nfails = 0, capfails = 0;
		emit_tests(c, i, 1, &fails, &nfails, &capfails);
		emit(c, r->dryrun ? OP_DRYRUN : OP_VERDICT, r->action, (uint32_t)i, (uint32_t)i);
		if (nfails || r->dryrun) {
			uint32_t next = emit(c, OP_NEXT, id, 0, (uint32_t)i);
			for (size_t k = 0; k < nfails; k++)
				set_target(c, fails[k], next);
		}
		free(fails);
	}
	run->end = (uint32_t)c->ncode;
	set_target(c, sw, run->end);
	if (kind == RUN_REGEX)
		build_run_regex(c, run);
	else
		build_run_index(c, run);
}

static void generate(struct compiler *c)
{
	struct policy *pol = c->pol;
	size_t n = pol->nrules;
	uint32_t *rule_start = xcalloc(n + 1, sizeof *rule_start);
	for (size_t i = 0; i < n;) {
		int attr, attr2;
		enum run_kind kind, kind2;
		size_t j = i;
		if (run_eligible(c, i, &attr, &kind)) {
			while (j + 1 < n && run_eligible(c, j + 1, &attr2, &kind2) && attr2 == attr &&
			       kind2 == kind)
				j++;
		}
		if (j + 1 - i >= RUN_MIN && (kind == RUN_LITERAL || run_patterns(c, i, j) >= MULTIRE_MIN)) {
			emit_run(c, i, j, attr, kind, rule_start);
			i = j + 1;
			continue;
		}
		const struct pol_rule *r = &pol->rules[i];
		rule_start[i] = (uint32_t)c->ncode;
		uint32_t *fails = NULL;
		size_t nfails = 0, capfails = 0;
		emit_tests(c, i, 0, &fails, &nfails, &capfails);
		for (size_t k = 0; k < nfails; k++) {
			struct fixup f = { fails[k], (uint32_t)(i + 1) };
			VEC_PUSH(c->fix, c->nfix, c->capfix, f);
		}
		free(fails);
		/* a dry-run line's DRYRUN falls through to the next line's code */
		emit(c, r->dryrun ? OP_DRYRUN : OP_VERDICT, r->action, (uint32_t)i, (uint32_t)i);
		i++;
	}
	rule_start[n] = emit(c, OP_VERDICT, POLICY_DEFAULT_ACTION, NO_RULE, NO_RULE);
	for (size_t k = 0; k < c->nfix; k++)
		set_target(c, c->fix[k].pc, rule_start[c->fix[k].rule]);
	free(rule_start);
	free(c->fix);
	c->p->code = c->code;
	c->p->code_rule = c->code_rule;
	c->p->ncode = (uint32_t)c->ncode;
}

/* ---- the whole pipeline -------------------------------------------------- */

/* Keep copies of the config files' names (for locations) and, unless
 * no_text, their text (for dump's source lines). */
static void keep_sources(struct program *p, const struct diags *d, size_t from, size_t to,
			 bool no_text)
{
	for (size_t i = from; i < to; i++) {
		const struct source *s = d->src[i];
		if (no_text)
			diags_add_source(&p->sources, s->path, xstrdup(""), 0);
		else
			diags_add_source(&p->sources, s->path, xstrndup(s->text, s->len), s->len);
	}
}

/* Point a location at the program's own copy of its file name. */
static void own_loc(struct program *p, struct loc *l)
{
	const struct source *s = diags_source(&p->sources, l->file);
	l->file = s ? s->path : arena_strdup(p->arena, l->file);
}

/* The acls whose lookups can start early, and the last pc testing each. */
static void list_prefetch(struct program *p)
{
	for (uint32_t pc = 0; pc < p->ncode; pc++) {
		uint64_t i = p->code[pc];
		if (INSN_OP(i) == OP_TEST || INSN_OP(i) == OP_TESTN)
			p->acls[INSN_A(i)].last_use = pc;
	}
	uint32_t n = 0;      /* counted first: a big policy has few of them */
	for (uint32_t a = 0; a < p->nacls; a++)
		n += p->acls[a].type->prefetch && p->acls[a].last_use;
	p->prefetch = arena_zalloc(p->arena, (n ? n : 1) * sizeof *p->prefetch);
	for (uint32_t a = 0; a < p->nacls; a++)
		if (p->acls[a].type->prefetch && p->acls[a].last_use)
			p->prefetch[p->nprefetch++] = a;
}

/*
 * The tests of counters that can be counted ahead (acl.h, ahead), in pc
 * order, each with the terms its line tests before it (program.h,
 * ahead_site): a line's first term is tested by its run's SWITCH when it
 * is in one, the others by TESTs, so the terms are read from the line.
 */
static void list_ahead(struct compiler *c)
{
	struct program *p = c->p;
	uint32_t n = 0, ng = 0;
	for (int pass = 0; pass < 2; pass++) {
		n = ng = 0;
		for (uint32_t pc = 0; pc < p->ncode; pc++) {
			uint64_t i = p->code[pc];
			if (INSN_OP(i) != OP_TEST && INSN_OP(i) != OP_TESTN)
				continue;
			uint32_t a = INSN_A(i);
			if (!p->acls[a].type->ahead || p->code_rule[pc] == NO_RULE)
				continue;
			const struct pol_rule *r = &c->pol->rules[p->code_rule[pc]];
			size_t t = 0;
			while (t < r->nterms && (uint32_t)r->terms[t].acl != a)
				t++;
			if (t == r->nterms)
				continue;
			if (pass) {
				p->ahead[n] = (struct ahead_site){ .pc = pc, .acl = a, .guard = ng,
								   .nguard = (uint32_t)t };
				for (size_t g = 0; g < t; g++) {
					const struct acl_rt *ga = &p->acls[r->terms[g].acl];
					bool pure = !ga->stateful && !ga->type->prefetch;
					p->ahead_guard[ng + g] = (uint32_t)r->terms[g].acl << 2 |
								 (uint32_t)r->terms[g].neg << 1 | pure;
				}
			}
			n++;
			ng += (uint32_t)t;
		}
		if (!n)
			return;
		if (!pass) {
			p->ahead = arena_zalloc(p->arena, n * sizeof *p->ahead);
			p->ahead_guard = arena_zalloc(p->arena, (ng ? ng : 1) * sizeof *p->ahead_guard);
		}
	}
	p->nahead = n;
}

/*
 * errors: d->nerrors before the files were read, so read errors count.
 * ast is the arena the statements l were parsed into: the resolved policy
 * goes there too, and all of it is freed here once the program is built.
 * The program keeps its own arena, holding only what it serves with (the
 * parse tree was about half of a big policy's memory: docs/dev/design.md,
 * "Memory per access line").
 */
static struct program *program_build(struct arena *ast, struct diags *d, struct ast_list *l,
				     const char *path, size_t src0, size_t errors,
				     const struct load_opts *o)
{
	struct program *p = xcalloc(1, sizeof *p);
	struct arena *a = arena_new(1 << 12);
	p->refs = 1;
	p->arena = a;
	p->path = xstrdup(path);
	settings_init(&p->settings);
	diags_init(&p->sources);
	keep_sources(p, d, src0, d->nsrc, o && o->no_text);

	struct policy pol = { 0 };
	policy_resolve(&pol, l, ast, d);
	struct compiler c = { .p = p, .pol = &pol, .d = d, .notes = o && o->why_pcre,
			      .recache = o ? o->recache : NULL,
			      .regex_classify_only = o && o->regex_classify_only };
	for (size_t i = 0; i < pol.nsets; i++)
		compile_set(&c, pol.sets[i]);
	if (o && o->dryrun > 0)
		p->settings.dryrun = 1;        /* --dry-run wins over "set dryrun" */
	open_geoip(&c, o, path);
	compile_acls(&c);
	compile_actions(&c);
	if (d->nerrors == errors) {
		order_stateful_last(&c);
		check_rules(&c);
		stage_check(&pol, p, d);
	}
	if (d->nerrors == errors) {
		p->nrules = (uint32_t)pol.nrules;
		p->rules = arena_alloc(a, (pol.nrules ? pol.nrules : 1) * sizeof *p->rules);
		for (size_t i = 0; i < pol.nrules; i++) {
			p->rules[i] = (struct rule_rt){ .loc = pol.rules[i].loc,
							.action = (uint32_t)pol.rules[i].action,
							.nterms = (uint32_t)pol.rules[i].nterms,
							.explicit_action = pol.rules[i].explicit_action,
							.dryrun = pol.rules[i].dryrun };
			own_loc(p, &p->rules[i].loc);
			if (pol.rules[i].name)
				p->rules[i].name = arena_strdup(a, pol.rules[i].name);
		}
		generate(&c);
		list_prefetch(p);
		list_ahead(&c);
		const char *why = verify_program(p);
		if (why)
			diag_error(d, loc_file(path), "internal error: compiled program is unsound: %s",
				   why);
	} else {
		free(c.code);
		free(c.code_rule);
		free(c.fix);
	}
	for (uint32_t i = 0; i < p->nacls; i++) {
		p->acls[i].name = arena_strdup(a, p->acls[i].name);
		own_loc(p, &p->acls[i].loc);
	}
	for (uint32_t i = 0; i < p->nactions; i++) {
		p->actions[i].name = arena_strdup(a, p->actions[i].name);
		if (p->actions[i].loc.file)
			own_loc(p, &p->actions[i].loc);
	}
	policy_free(&pol);
	size_t parsed = arena_used(ast);
	arena_free(ast);
	if (d->nerrors != errors) {
		program_unref(p);
		p = NULL;
	}
	if (parsed >= PROGRAM_TRIM_BYTES)
		heap_trim();    /* the parse tree was as big as the program */
	return p;
}

struct program *compile_file(const char *path, const struct load_opts *o, struct diags *d)
{
	struct arena *a = arena_new(1 << 16);
	size_t src0 = d->nsrc, errors = d->nerrors;
	struct ast_list l;
	parse_file(a, d, path, &l);
	struct recache *rc = o ? o->recache : NULL;
	recache_begin(rc);
	struct program *p = program_build(a, d, &l, path, src0, errors, o);
	recache_end(rc, p != NULL);
	return p;
}

struct program *compile_string(const char *name, const char *text, struct diags *d)
{
	struct arena *a = arena_new(1 << 16);
	size_t src0 = d->nsrc, errors = d->nerrors;
	struct ast_list l;
	parse_string(a, d, name, text, &l);
	return program_build(a, d, &l, name, src0, errors, NULL);
}
