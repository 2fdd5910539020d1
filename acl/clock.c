/*
 * clock - the acl types of the request's clock: day (Mon-Fri, Sat, ...),
 * time (08:00-18:00, ranges may wrap midnight), month (Mar-May, -Apr),
 * mday (1-7) and date (24.12.2026-26.12.2026), in local time
 * (engine/timematch.h). The clock is the request's: mxacld's own time
 * when live, the log line's time in mxacl replay.
 */
#include <stdio.h>
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

static bool month_value(struct acl_compile *c, void *m, const struct value *v)
{
	char err[160];
	if (month_parse(v->s, v->len, m, err, sizeof err))
		return true;
	diag_error(c->diags, v->loc, "bad month '%.*s': %s", (int)v->len, v->s, err);
	return false;
}

static bool month_compile(struct acl_compile *c)
{
	uint16_t *mask = arena_zalloc(c->arena, sizeof *mask);
	c->data = mask;
	return value_each(c, mask, month_value);
}

static enum tri month_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const uint16_t *mask = acl_data(acl);
	return (*mask >> vm_localtime(e)->tm_mon) & 1 ? TRI_TRUE : TRI_FALSE;
}

static void month_describe(const struct acl_rt *acl, struct strbuf *out)
{
	static const char *months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					"Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	const uint16_t *mask = acl_data(acl);
	sb_adds(out, "month:");
	for (int m = 0; m < 12; m++)
		if (*mask & (1 << m))
			sb_printf(out, " %s", months[m]);
}

static bool mday_value(struct acl_compile *c, void *m, const struct value *v)
{
	char err[160];
	if (mday_parse(v->s, v->len, m, err, sizeof err))
		return true;
	diag_error(c->diags, v->loc, "bad day of the month '%.*s': %s", (int)v->len, v->s, err);
	return false;
}

static bool mday_compile(struct acl_compile *c)
{
	uint32_t *mask = arena_zalloc(c->arena, sizeof *mask);
	c->data = mask;
	return value_each(c, mask, mday_value);
}

static enum tri mday_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const uint32_t *mask = acl_data(acl);
	return (*mask >> vm_localtime(e)->tm_mday) & 1 ? TRI_TRUE : TRI_FALSE;
}

/* The days as ranges: "1-7 15 25-31". */
static void mday_describe(const struct acl_rt *acl, struct strbuf *out)
{
	const uint32_t *mask = acl_data(acl);
	sb_adds(out, "mday:");
	for (int d = 1; d <= 31; d++) {
		if (!(*mask & (1u << d)))
			continue;
		int e = d;
		while (e < 31 && (*mask & (1u << (e + 1))))
			e++;
		if (e == d)
			sb_printf(out, " %d", d);
		else
			sb_printf(out, " %d-%d", d, e);
		d = e;
	}
}

struct date_matcher {
	struct daterange *r;
	size_t n, cap;
};

static bool date_value(struct acl_compile *c, void *dm, const struct value *v)
{
	struct date_matcher *m = dm;
	struct daterange r;
	char err[160];
	if (daterange_parse(v->s, v->len, &r, err, sizeof err)) {
		VEC_PUSH(m->r, m->n, m->cap, r);
		return true;
	}
	diag_error(c->diags, v->loc, "bad date '%.*s': %s", (int)v->len, v->s, err);
	return false;
}

static bool date_compile(struct acl_compile *c)
{
	struct date_matcher *m = arena_zalloc(c->arena, sizeof *m);
	c->data = m;
	return value_each(c, m, date_value);
}

static enum tri date_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct date_matcher *m = acl_data(acl);
	const struct tm *tm = vm_localtime(e);
	for (size_t i = 0; i < m->n; i++)
		if (daterange_contains(&m->r[i], tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday))
			return TRI_TRUE;
	return TRI_FALSE;
}

/* One end in ISO form (yearly ones as DD.MM.), or nothing when open. */
static void date_end(struct strbuf *out, uint32_t v, bool yearly)
{
	if (yearly)
		sb_printf(out, "%02u.%02u.", v % 100, v / 100);
	else
		sb_printf(out, "%04u-%02u-%02u", v / 10000, v / 100 % 100, v % 100);
}

static void date_describe(const struct acl_rt *acl, struct strbuf *out)
{
	const struct date_matcher *m = acl_data(acl);
	sb_adds(out, "date:");
	for (size_t i = 0; i < m->n; i++) {
		const struct daterange *r = &m->r[i];
		bool open_from = r->yearly ? r->from == 101 : r->from == 0;
		bool open_to = r->yearly ? r->to == 1231 : r->to == 99999999;
		sb_addc(out, ' ');
		if (r->from == r->to) {
			date_end(out, r->from, r->yearly);
			continue;
		}
		if (!open_from || open_to)
			date_end(out, r->from, r->yearly);
		sb_addc(out, '-');
		if (!open_to || open_from)
			date_end(out, r->to, r->yearly);
	}
}

static void date_free(void *data)
{
	free(((struct date_matcher *)data)->r);
}

const struct acl_type acl_day_type = {
	.name = "day", .attr = -1, .compile = day_compile, .eval = day_eval,
	.describe = day_describe,
};

const struct acl_type acl_time_type = {
	.name = "time", .attr = -1, .compile = time_compile, .eval = time_eval,
	.describe = time_describe, .free = time_free,
};

const struct acl_type acl_month_type = {
	.name = "month", .attr = -1, .compile = month_compile, .eval = month_eval,
	.describe = month_describe,
};

const struct acl_type acl_mday_type = {
	.name = "mday", .attr = -1, .compile = mday_compile, .eval = mday_eval,
	.describe = mday_describe,
};

const struct acl_type acl_date_type = {
	.name = "date", .attr = -1, .compile = date_compile, .eval = date_eval,
	.describe = date_describe, .free = date_free,
};
