/*
 * number - the acl type of the numeric attributes (size, recipient_count,
 * client_port, server_port, encryption_keysize): comparisons such as
 * ">= 10M" or "!= 25" (engine/numcmp.h); the acl matches when one holds.
 * An operator may be its own word (">= 10M" as two words).
 */
#include <stdio.h>
#include <stdlib.h>

#include "acl/value.h"
#include "engine/numcmp.h"

struct num_matcher {
	int attr;
	struct numcmp *cmp;
	size_t n, cap;
	const char *pending_op;     /* while compiling: an operator word */
	struct loc pending_loc;
};

/* The operator a value starts with, and its length (0: none). */
static size_t operator_len(const char *s, size_t len)
{
	if (len >= 2 && (s[1] == '=') && (s[0] == '<' || s[0] == '>' || s[0] == '!'))
		return 2;
	if (len >= 1 && (s[0] == '<' || s[0] == '>' || s[0] == '='))
		return 1;
	return 0;
}

static bool num_value(struct acl_compile *c, void *vm, const struct value *v)
{
	struct num_matcher *m = vm;
	/* ">= 10M": an operator written as its own word waits for the next */
	size_t op = operator_len(v->s, v->len);
	if (op && op == v->len) {
		if (m->pending_op) {
			diag_error(c->diags, m->pending_loc, "operator '%s' without a number",
				   m->pending_op);
			return false;
		}
		m->pending_op = op == 2 ? (v->s[0] == '<' ? "<=" : v->s[0] == '>' ? ">=" : "!=")
					: (v->s[0] == '<' ? "<" : v->s[0] == '>' ? ">" : "=");
		m->pending_loc = v->loc;
		return true;
	}
	/* join operator and number, dropping blanks between them */
	char buf[64];
	const char *pre = m->pending_op ? m->pending_op : "";
	const char *num = v->s + op;
	size_t numlen = v->len - op;
	while (numlen && (*num == ' ' || *num == '\t')) {
		num++;
		numlen--;
	}
	int n = snprintf(buf, sizeof buf, "%s%.*s%.*s", pre, (int)op, v->s, (int)numlen, num);
	struct loc loc = v->loc;
	if (m->pending_op && m->pending_loc.line == v->loc.line) {
		loc.len = v->loc.col + v->loc.len - m->pending_loc.col;
		loc.col = m->pending_loc.col;
	}
	m->pending_op = NULL;
	struct numcmp cmp;
	const char *err = "too long";
	if (n > 0 && (size_t)n < sizeof buf && numcmp_parse(buf, (size_t)n, &cmp, &err)) {
		VEC_PUSH(m->cmp, m->n, m->cap, cmp);
		return true;
	}
	diag_error(c->diags, loc, "bad number '%s': %s", buf, err);
	return false;
}

static bool num_compile(struct acl_compile *c)
{
	struct num_matcher *m = arena_zalloc(c->arena, sizeof *m);
	m->attr = c->attr;
	c->data = m;
	bool ok = value_each(c, m, num_value);
	if (m->pending_op) {
		diag_error(c->diags, m->pending_loc, "operator '%s' without a number", m->pending_op);
		ok = false;
	}
	return ok;
}

static enum tri num_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct num_matcher *m = acl_data(acl);
	const struct req_value *v = &e->req->v[m->attr];
	uint64_t x;
	if (!v->len || !num_parse_u64(v->s, v->len, &x))
		return TRI_FALSE;
	for (size_t i = 0; i < m->n; i++)
		if (numcmp_eval(&m->cmp[i], x))
			return TRI_TRUE;
	return TRI_FALSE;
}

static void num_describe(const struct acl_rt *acl, struct strbuf *out)
{
	const struct num_matcher *m = acl_data(acl);
	sb_printf(out, "%s", attr_name((enum attr_id)m->attr));
	for (size_t i = 0; i < m->n; i++)
		sb_printf(out, "%s %s %llu", i ? " or" : "", num_op_name(m->cmp[i].op),
			  (unsigned long long)m->cmp[i].value);
}

static void num_free(void *data)
{
	free(((struct num_matcher *)data)->cmp);
}

const struct acl_type acl_number_kind = {
	.compile = num_compile, .eval = num_eval, .describe = num_describe, .free = num_free,
};
