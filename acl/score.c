/*
 * score - weighted sums of other acls (policyd-weight, postscreen's
 * DNSBL weights): "acl spammy score zen*3 barracuda*2 !fcrdns*1.5
 * helo_mismatch dnswl*-5 >= 3" matches when the weights of the terms that
 * hold add up to at least 3.
 *
 * A term is [!]ACL[*WEIGHT]; the weight defaults to 1 and may be negative
 * or have up to three decimals. Weights and the threshold are kept in
 * thousandths (int64), so sums are exact: 0.1 + 0.2 >= 0.3 holds, as it
 * reads.
 *
 * Evaluation asks the VM for every term's answer (vm_acl_answer) before
 * looking at any, so the lookups of all terms start at once and a score
 * over five DNS lists waits one round trip; when some are pending the
 * score returns TRI_PENDING and is evaluated again on resume, reading the
 * answers from the memo (each acl is evaluated once per request, so a
 * greylist term counts once). A term's temporary failure follows that
 * acl's tempfail mode: no match or match (the score says it was computed
 * without the term: ${score_missing}, --explain), or the default action
 * (the score answers a temporary failure, and its own mode is "default").
 *
 * The compiler resolves the term names (acl_compile.ref): an undefined
 * name, and scores that use themselves, are errors; a threshold outside
 * or around every possible sum is a warning.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/program.h"
#include "engine/vm.h"

enum score_op { SCORE_GE, SCORE_GT, SCORE_LE, SCORE_LT };

static const char *const op_names[] = { ">=", ">", "<=", "<" };

/* The largest weight or threshold, in thousandths (a million). */
#define SCORE_MAX INT64_C(1000000000)

struct score_term {
	int acl;                    /* index (vm_acl_answer) */
	const char *name;
	bool neg;
	int64_t weight;             /* thousandths */
	enum tempfail_mode tempfail;
};

struct score {
	struct score_term *t;
	size_t n;
	enum score_op op;
	int64_t threshold;          /* thousandths */
	int64_t min, max;           /* the lowest and highest possible sums */
};

/* ---- numbers ------------------------------------------------------------- */

/* "-5", "1.5", ".25", "+2": thousandths into *out; false for anything else. */
static bool milli_parse(const char *s, size_t len, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	if (i < len && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	int64_t v = 0;
	size_t digits = 0;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
		v = v * 10 + (s[i] - '0');
		if (v * 1000 > SCORE_MAX)
			return false;
	}
	v *= 1000;
	if (i < len && s[i] == '.') {
		int64_t scale = 100;
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
			if (scale == 0)
				return false;   /* a fourth decimal */
			v += (s[i] - '0') * scale;
			scale /= 10;
		}
	}
	if (i != len || digits == 0)
		return false;
	*out = neg ? -v : v;
	return true;
}

/* Thousandths as the policy writes them: "3", "-5", "1.5", "0.125". */
static void milli_format(struct strbuf *b, int64_t v)
{
	/* by hand, not printf: every request formats its sum and each term
	 * that holds (the decision log shows them), and printf was 6 % of
	 * bench/run score's profile (performance.md, "Scores") */
	char d[32], *p = d + sizeof d;
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	unsigned f = (unsigned)(u % 1000);
	int places = f == 0 ? 0 : f % 100 == 0 ? 1 : f % 10 == 0 ? 2 : 3;
	for (int i = 3; i > 0; i--, f /= 10)
		if (i <= places)
			*--p = (char)('0' + f % 10);
	if (places)
		*--p = '.';
	u /= 1000;
	do
		*--p = (char)('0' + u % 10);
	while (u /= 10);
	if (v < 0)
		*--p = '-';
	sb_add(b, p, (size_t)(d + sizeof d - p));
}

static bool compare(enum score_op op, int64_t sum, int64_t t)
{
	switch (op) {
	case SCORE_GE:
		return sum >= t;
	case SCORE_GT:
		return sum > t;
	case SCORE_LE:
		return sum <= t;
	case SCORE_LT:
		return sum < t;
	}
	return false;
}

/* ---- compiling ----------------------------------------------------------- */

/* The comparison a word starts with, and its length (0: none). */
static size_t op_len(const char *s, enum score_op *op)
{
	if (s[0] != '<' && s[0] != '>')
		return 0;
	bool eq = s[1] == '=';
	*op = s[0] == '>' ? (eq ? SCORE_GE : SCORE_GT) : (eq ? SCORE_LE : SCORE_LT);
	return eq ? 2 : 1;
}

/* "[!]ACL[*WEIGHT]" */
static bool parse_term(struct acl_compile *c, const struct ast_word *w, struct score_term *t)
{
	const char *s = w->s;
	t->neg = s[0] == '!';
	if (t->neg)
		s++;
	const char *star = strrchr(s, '*');
	size_t nlen = star ? (size_t)(star - s) : strlen(s);
	t->weight = 1000;
	if (star && !milli_parse(star + 1, strlen(star + 1), &t->weight)) {
		diag_error(c->diags, w->loc,
			   "bad weight '%s' in score term '%s': a number with at most three "
			   "decimals, such as 3, -5 or 1.5",
			   star + 1, w->s);
		return false;
	}
	if (nlen == 0) {
		diag_error(c->diags, w->loc, "score term '%s' names no acl: write [!]ACL[*WEIGHT]",
			   w->s);
		return false;
	}
	char *name = arena_strndup(c->arena, s, nlen);
	struct acl_ref ref;
	if (!c->ref(c, name, w->loc, &ref))
		return false;
	t->acl = ref.index;
	t->name = ref.name;
	t->tempfail = ref.tempfail;
	if (ref.stateful)
		c->stateful = true;     /* tested last on its line, as the term would be */
	return true;
}

/* Warn when the threshold decides alone: no sum, or every sum, satisfies it. */
static void check_reach(struct acl_compile *c, const struct score *m, struct loc loc)
{
	bool never = !compare(m->op, m->op <= SCORE_GT ? m->max : m->min, m->threshold);
	bool always = compare(m->op, m->op <= SCORE_GT ? m->min : m->max, m->threshold);
	if (!never && !always)
		return;
	struct strbuf b;
	sb_init(&b);
	milli_format(&b, m->min);
	sb_adds(&b, " and ");
	milli_format(&b, m->max);
	sb_printf(&b, ", so it is %s %s ", never ? "never" : "always", op_names[m->op]);
	milli_format(&b, m->threshold);
	diag_warning(c->diags, loc, "score '%s' %s: its sum lies between %s", c->acl->name,
		     never ? "can never match" : "always matches", b.s);
	sb_free(&b);
}

static bool score_compile(struct acl_compile *c)
{
	const struct pol_acl *a = c->acl;
	struct score *m = arena_zalloc(c->arena, sizeof *m);
	m->t = arena_zalloc(c->arena, a->nvals * sizeof *m->t);
	c->data = m;
	bool ok = true, have_op = false;
	struct loc op_loc = { 0 };
	for (size_t i = 0; i < a->nvals; i++) {
		const struct ast_word *w = a->vals[i];
		enum score_op op;
		size_t ol = w->quoted ? 0 : op_len(w->s, &op);
		if (ol) {
			/* ">= 3" or ">=3", and nothing after it */
			const char *num = w->s + ol;
			struct loc loc = w->loc;
			if (!*num && i + 1 < a->nvals) {
				num = a->vals[++i]->s;
				if (a->vals[i]->loc.line == loc.line)
					loc.len = a->vals[i]->loc.col + a->vals[i]->loc.len - loc.col;
			}
			if (!*num) {
				diag_error(c->diags, w->loc, "score comparison '%s' without a number",
					   w->s);
				return false;
			}
			if (!milli_parse(num, strlen(num), &m->threshold)) {
				diag_error(c->diags, loc,
					   "bad score threshold '%s': a number with at most three "
					   "decimals, such as 3 or -1.5",
					   num);
				return false;
			}
			if (i + 1 < a->nvals) {
				diag_error(c->diags, a->vals[i + 1]->loc,
					   "the comparison ends a score: nothing may follow '%s %s'",
					   op_names[op], num);
				return false;
			}
			m->op = op;
			op_loc = loc;
			have_op = true;
			break;
		}
		if (!w->quoted && (w->s[0] == '=' || !strncmp(w->s, "!=", 2))) {
			diag_error(c->diags, w->loc,
				   "'%s' is not a score comparison; use >=, >, <= or <", w->s);
			return false;
		}
		if (!parse_term(c, w, &m->t[m->n])) {
			ok = false;
			continue;
		}
		for (size_t k = 0; k < m->n; k++)
			if (m->t[k].acl == m->t[m->n].acl && m->t[k].neg == m->t[m->n].neg)
				diag_warning(c->diags, w->loc,
					     "score term '%s%s' is counted twice in score '%s'",
					     m->t[k].neg ? "!" : "", m->t[k].name, a->name);
		/* a term whose failure asks for the default action fails the score */
		if (m->t[m->n].tempfail == TEMPFAIL_DEFAULT)
			c->tempfail = TEMPFAIL_DEFAULT;
		m->n++;
	}
	if (!ok)
		return false;
	if (!have_op) {
		diag_error(c->diags, a->vals[a->nvals - 1]->loc,
			   "score '%s' needs a comparison at the end: score TERM... >= NUMBER "
			   "(or >, <=, <)",
			   a->name);
		return false;
	}
	if (m->n == 0) {
		diag_error(c->diags, op_loc, "score '%s' has no terms before its comparison",
			   a->name);
		return false;
	}
	for (size_t k = 0; k < m->n; k++) {
		if (m->t[k].weight < 0)
			m->min += m->t[k].weight;
		else
			m->max += m->t[k].weight;
	}
	check_reach(c, m, op_loc);
	return true;
}

/* ---- evaluating ---------------------------------------------------------- */

static const char *answer_name(enum tri r)
{
	return r == TRI_TRUE ? "match" : r == TRI_FALSE ? "no match" : "temporary failure";
}

static void term_format(struct strbuf *b, const struct score_term *t)
{
	if (t->neg)
		sb_addc(b, '!');
	sb_adds(b, t->name);
	sb_addc(b, '*');
	milli_format(b, t->weight);
}

static enum tri score_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct score *m = acl_data(acl);
	/* ask for every term before looking at any: their lookups start together */
	bool pending = false, fail = false;
	for (size_t k = 0; k < m->n; k++) {
		enum tri r = vm_acl_answer(e, m->t[k].acl);
		if (r == TRI_PENDING)
			pending = true;
		else if (r == TRI_TEMPFAIL && m->t[k].tempfail == TEMPFAIL_DEFAULT)
			fail = true;
	}
	if (fail) {
		vm_tracef(e, "    score %s: a term failed with tempfail=default\n", acl_name(acl));
		return TRI_TEMPFAIL;
	}
	if (pending)
		return TRI_PENDING;     /* evaluated again when they have answered */

	/* ${score}, ${score_hits} and ${score_missing} are set every time,
	 * used in a template or not: the decision log shows them (vm_log_line) */
	struct strbuf hits, missing;
	sb_init(&hits);
	sb_init(&missing);
	int64_t sum = 0;
	for (size_t k = 0; k < m->n; k++) {
		const struct score_term *t = &m->t[k];
		enum tri r = vm_acl_answer(e, t->acl), raw = r;
		if (r == TRI_TEMPFAIL)
			r = t->tempfail == TEMPFAIL_MATCH ? TRI_TRUE : TRI_FALSE;
		bool holds = (r == TRI_TRUE) != t->neg;
		if (holds)
			sum += t->weight;
		if (holds) {
			if (hits.len)
				sb_addc(&hits, ' ');
			term_format(&hits, t);
		}
		if (raw == TRI_TEMPFAIL) {
			if (missing.len)
				sb_addc(&missing, ' ');
			sb_adds(&missing, t->name);
		}
		if (vm_tracing(e)) {
			struct strbuf line;
			sb_init(&line);
			term_format(&line, t);
			sb_printf(&line, ": %s", answer_name(raw));
			if (raw == TRI_TEMPFAIL)
				sb_printf(&line, ", taken as %s (the score is computed without it)",
					  answer_name(r));
			if (holds) {
				sb_adds(&line, ", holds: ");
				if (t->weight >= 0)
					sb_addc(&line, '+');
				milli_format(&line, t->weight);
			} else {
				sb_adds(&line, ", does not hold");
			}
			vm_tracef(e, "    term %s\n", line.s);
			sb_free(&line);
		}
	}
	bool match = compare(m->op, sum, m->threshold);
	struct strbuf b;
	sb_init(&b);
	milli_format(&b, sum);
	vm_set_var(e, VAR_score, b.s);
	vm_set_var(e, VAR_score_hits, hits.len ? hits.s : "");
	vm_set_var(e, VAR_score_missing, missing.len ? missing.s : "");
	sb_printf(&b, " %s ", op_names[m->op]);
	milli_format(&b, m->threshold);
	vm_tracef(e, "    score %s = %s: %s%s%s%s\n", acl_name(acl), b.s,
		  match ? "true" : "false", missing.len ? " (computed without " : "",
		  missing.len ? missing.s : "", missing.len ? ")" : "");
	sb_free(&b);
	sb_free(&hits);
	sb_free(&missing);
	return match ? TRI_TRUE : TRI_FALSE;
}

/* Lines ahead: start the lookups of every term. */
static void score_prefetch(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct score *m = acl_data(acl);
	for (size_t k = 0; k < m->n; k++)
		vm_acl_prefetch(e, m->t[k].acl);
}

static void score_describe(const struct acl_rt *acl, struct strbuf *out)
{
	const struct score *m = acl_data(acl);
	sb_printf(out, "score of %zu term%s:", m->n, m->n == 1 ? "" : "s");
	for (size_t k = 0; k < m->n; k++) {
		sb_addc(out, ' ');
		term_format(out, &m->t[k]);
	}
	sb_printf(out, " %s ", op_names[m->op]);
	milli_format(out, m->threshold);
	sb_adds(out, " (sums ");
	milli_format(out, m->min);
	sb_adds(out, " to ");
	milli_format(out, m->max);
	sb_addc(out, ')');
}

const struct acl_type acl_score_type = {
	.name = "score", .attr = -1, .compile = score_compile, .eval = score_eval,
	.prefetch = score_prefetch, .describe = score_describe,
};
