/*
 * testhooks - the test hooks of util/testhooks.h; linked only into test
 * builds (the Makefile adds tests/hooks/ when it defines MXACL_TESTHOOKS).
 */
#include "util/testhooks.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "backends/runtime.h"
#include "engine/acl.h"
#include "engine/vm.h"

unsigned long testhooks_sleep_evals;

struct sleep_data {
	int ms;
	enum tri answer;
};

struct sleep_pending {
	struct vm_wait *w;
	struct event *ev;
	enum tri answer;
};

static bool sleep_compile(struct acl_compile *c)
{
	const struct pol_acl *a = c->acl;
	struct sleep_data *d = arena_zalloc(c->arena, sizeof *d);
	char *end;
	long ms = strtol(a->vals[0]->s, &end, 10);
	if (*end || ms < 0 || ms > 600000) {
		diag_error(c->diags, a->vals[0]->loc, "test_sleep takes milliseconds (0..600000)");
		return false;
	}
	d->ms = (int)ms;
	d->answer = TRI_TRUE;
	if (a->nvals > 1) {
		const char *s = a->vals[1]->s;
		if (!strcmp(s, "no"))
			d->answer = TRI_FALSE;
		else if (!strcmp(s, "tempfail"))
			d->answer = TRI_TEMPFAIL;
		else if (strcmp(s, "yes")) {
			diag_error(c->diags, a->vals[1]->loc, "test_sleep answers yes, no or tempfail");
			return false;
		}
	}
	if (a->nvals > 2) {
		diag_error(c->diags, a->vals[2]->loc, "test_sleep takes MS [yes|no|tempfail]");
		return false;
	}
	c->data = d;
	return true;
}

static void sleep_fire(evutil_socket_t fd, short what, void *arg)
{
	struct sleep_pending *pd = arg;
	(void)fd;
	(void)what;
	event_free(pd->ev);
	vm_wait_done(pd->w, pd->answer);
	free(pd);
}

static enum tri sleep_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct sleep_data *d = acl_data(acl);
	testhooks_sleep_evals++;
	struct sleep_pending *pd = xmalloc(sizeof *pd);
	pd->w = vm_wait_begin(e);
	pd->answer = d->answer;
	pd->ev = evtimer_new(runtime_base(e->rt), sleep_fire, pd);
	struct timeval tv = { d->ms / 1000, (d->ms % 1000) * 1000 };
	evtimer_add(pd->ev, &tv);
	return TRI_PENDING;
}

static void sleep_describe(const struct acl_rt *acl, struct strbuf *out)
{
	const struct sleep_data *d = acl_data(acl);
	sb_printf(out, "test_sleep %d ms", d->ms);
}

static const struct acl_type sleep_type = {
	.name = "test_sleep", .attr = -1, .compile = sleep_compile, .eval = sleep_eval,
	.describe = sleep_describe,
};

void testhooks_register(void)
{
	static bool done;
	if (!done)
		acl_type_register(&sleep_type);
	done = true;
}

/* Whether the environment asks for the hooks. */
static bool testhooks_on(void)
{
	const char *v = getenv("MXACL_TEST_HOOKS");
	return v && strcmp(v, "1") == 0;
}

int testhooks_register_from_env(void)
{
	if (!testhooks_on())
		return 0;
	testhooks_register();
	return 1;
}

unsigned long testhooks_ms(const char *var)
{
	const char *v = getenv(var);
	return testhooks_on() && v ? strtoul(v, NULL, 10) : 0;
}
