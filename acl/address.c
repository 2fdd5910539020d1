/*
 * address - the acl type of client_address and server_address: networks
 * and addresses, IPv4 and IPv6 (192.0.2.0/24, 2001:db8::/32, 10.1.2.3),
 * merged into sorted ranges (engine/cidr.h) so a lookup is one binary
 * search however many values the acl has.
 */
#include <stdlib.h>

#include "acl/value.h"
#include "engine/cidr.h"

struct addr_matcher {
	int attr;
	struct netset *set;
};

static bool addr_value(struct acl_compile *c, void *vm, const struct value *v)
{
	struct addr_matcher *m = vm;
	const char *err;
	if (!netset_add(m->set, v->s, v->len, &err)) {
		diag_error(c->diags, v->loc, "bad network '%.*s': %s", (int)v->len, v->s, err);
		return false;
	}
	return true;
}

static bool addr_compile(struct acl_compile *c)
{
	struct addr_matcher *m = arena_zalloc(c->arena, sizeof *m);
	m->attr = c->attr;
	m->set = netset_new();
	c->data = m;
	bool ok = value_each(c, m, addr_value);
	netset_freeze(m->set);
	return ok;
}

static enum tri addr_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct addr_matcher *m = acl_data(acl);
	const struct req_value *v = &e->req->v[m->attr];
	struct ipaddr a;
	if (!v->len || !ip_parse(v->s, v->len, &a))
		return TRI_FALSE;
	return netset_contains(m->set, &a) ? TRI_TRUE : TRI_FALSE;
}

static void addr_describe(const struct acl_rt *acl, struct strbuf *out)
{
	const struct addr_matcher *m = acl_data(acl);
	sb_printf(out, "%s: %zu address range%s", attr_name((enum attr_id)m->attr),
		  netset_intervals(m->set), netset_intervals(m->set) == 1 ? "" : "s");
}

static void addr_free(void *data)
{
	netset_free(((struct addr_matcher *)data)->set);
}

const struct acl_type acl_address_kind = {
	.compile = addr_compile, .eval = addr_eval, .describe = addr_describe, .free = addr_free,
};
