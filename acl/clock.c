/*
 * clock - the acl types of the request's clock: day (Mon-Fri, Sat, ...)
 * and time (08:00-18:00, ranges may wrap midnight), in local time
 * (engine/timematch.h). The clock is the request's: mxacld's own time
 * when live, the log line's time in mxacl replay.
 */
#include <stdlib.h>

#include "acl/value.h"
#include "engine/timematch.h"
#include "engine/vm.h"

static bool day_value(struct acl_compile *c, void *m, const struct value *v)
{
	const char *err;
	if (day_parse(v->s, v->len, m, &err))
		return true;
	diag_error(c->diags, v->loc, "bad day '%.*s': %s", (int)v->len, v->s, err);
	return false;
}

static bool day_compile(struct acl_compile *c)
{
	uint8_t *mask = arena_zalloc(c->arena, sizeof *mask);
	c->data = mask;
	return value_each(c, mask, day_value);
}

static enum tri day_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const uint8_t *mask = acl_data(acl);
	return (*mask >> vm_localtime(e)->tm_wday) & 1 ? TRI_TRUE : TRI_FALSE;
}

static void day_describe(const struct acl_rt *acl, struct strbuf *out)
{
	static const char *days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	const uint8_t *mask = acl_data(acl);
	sb_adds(out, "day:");
	for (int d = 0; d < 7; d++)
		if (*mask & (1 << d))
			sb_printf(out, " %s", days[d]);
}

struct time_matcher {
	struct timerange *r;
	size_t n, cap;
};

static bool time_value(struct acl_compile *c, void *vm, const struct value *v)
{
	struct time_matcher *m = vm;
	struct timerange r;
	const char *err;
	if (timerange_parse(v->s, v->len, &r, &err)) {
		VEC_PUSH(m->r, m->n, m->cap, r);
		return true;
	}
	diag_error(c->diags, v->loc, "bad time range '%.*s': %s", (int)v->len, v->s, err);
	return false;
}

static bool time_compile(struct acl_compile *c)
{
	struct time_matcher *m = arena_zalloc(c->arena, sizeof *m);
	c->data = m;
	return value_each(c, m, time_value);
}

static enum tri time_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct time_matcher *m = acl_data(acl);
	const struct tm *tm = vm_localtime(e);
	unsigned minute = (unsigned)(tm->tm_hour * 60 + tm->tm_min);
	for (size_t i = 0; i < m->n; i++)
		if (timerange_contains(&m->r[i], minute))
			return TRI_TRUE;
	return TRI_FALSE;
}

static void time_describe(const struct acl_rt *acl, struct strbuf *out)
{
	const struct time_matcher *m = acl_data(acl);
	sb_adds(out, "time:");
	for (size_t i = 0; i < m->n; i++)
		sb_printf(out, " %02u:%02u-%02u:%02u", m->r[i].start / 60, m->r[i].start % 60,
			  m->r[i].end / 60, m->r[i].end % 60);
}

static void time_free(void *data)
{
	free(((struct time_matcher *)data)->r);
}

const struct acl_type acl_day_type = {
	.name = "day", .attr = -1, .compile = day_compile, .eval = day_eval,
	.describe = day_describe,
};

const struct acl_type acl_time_type = {
	.name = "time", .attr = -1, .compile = time_compile, .eval = time_eval,
	.describe = time_describe, .free = time_free,
};
