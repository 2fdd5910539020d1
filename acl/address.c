/*
 * address - the acl type of client_address and server_address: networks
 * and addresses, IPv4 and IPv6 (192.0.2.0/24, 2001:db8::/32, 10.1.2.3),
 * merged into sorted ranges (engine/cidr.h) so a lookup is one binary
 * search however many values the acl has.
 */
#include <stdio.h>
#include <stdlib.h>

#include "acl/value.h"
#include "engine/cidr.h"

struct addr_matcher {
	int attr;
	struct netset *set;
	/* while compiling: IPv6 values that also hold IPv4 addresses */
	struct spill {
		struct loc loc;
		char text[NET_TEXT_MAX];
	} *spills;
	size_t nspills, capspills;
	bool all_v4;             /* a value holds every IPv4 address */
};

static bool addr_value(struct acl_compile *c, void *vm, const struct value *v)
{
	struct addr_matcher *m = vm;
	const char *err;
	struct net_note note;
	if (!netset_add(m->set, v->s, v->len, &err, &note)) {
		if (note.meant[0])
			diag_error(c->diags, v->loc, "bad network '%.*s': %s; did you mean %s?",
				   (int)v->len, v->s, err, note.meant);
		else
			diag_error(c->diags, v->loc, "bad network '%.*s': %s", (int)v->len, v->s, err);
		return false;
	}
	m->all_v4 |= note.all_v4;
	if (note.spills_into_v4) {
		struct spill sp = { .loc = v->loc };
		snprintf(sp.text, sizeof sp.text, "%.*s", (int)v->len, v->s);
		VEC_PUSH(m->spills, m->nspills, m->capspills, sp);
	}
	return true;
}

/*
 * IPv4 clients are IPv4-mapped (::ffff:a.b.c.d), so "::/0", written for
 * "IPv6 clients", matches every IPv4 client too. Said once the whole acl
 * is known: with 0.0.0.0/0 in it as well, every client is plainly meant.
 */
static void addr_warn_spills(struct acl_compile *c, struct addr_matcher *m)
{
	for (size_t i = 0; i < m->nspills && !m->all_v4; i++)
		diag_warning(c->diags, m->spills[i].loc,
			     "'%s' also matches IPv4 clients: they are matched as IPv4-mapped "
			     "addresses (::ffff:0:0/96), which it covers; for IPv6 clients only, write 2000::/3 "
			     "(global IPv6) or test an acl of 0.0.0.0/0 negated on the same line; "
			     "add 0.0.0.0/0 to this acl if every client is meant",
			     m->spills[i].text);
	free(m->spills);
	m->spills = NULL;
}

static bool addr_compile(struct acl_compile *c)
{
	struct addr_matcher *m = arena_zalloc(c->arena, sizeof *m);
	m->attr = c->attr;
	m->set = netset_new();
	c->data = m;
	bool ok = value_each(c, m, addr_value);
	addr_warn_spills(c, m);
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

/* dump --values: the merged intervals, as networks where they are one. */
static void addr_values(const struct acl_rt *acl, const char *prefix, struct strbuf *out)
{
	const struct addr_matcher *m = acl_data(acl);
	char buf[NET_TEXT_MAX];
	for (size_t i = 0; i < netset_intervals(m->set); i++) {
		netset_interval_format(m->set, i, buf, sizeof buf);
		sb_printf(out, "%s%s\n", prefix, buf);
	}
}

static void addr_free(void *data)
{
	netset_free(((struct addr_matcher *)data)->set);
}

const struct acl_type acl_address_kind = {
	.compile = addr_compile, .eval = addr_eval, .describe = addr_describe, .free = addr_free,
	.values = addr_values,
};
