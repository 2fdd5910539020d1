/*
 * Unit tests for engine/numcmp: every operator, the K/M/G suffixes,
 * overflow, and request value parsing.
 */
#include <stdio.h>
#include <string.h>

#include "engine/numcmp.h"
#include "tests/unit/unit.h"
#include "util/util.h"

#define TOO_LARGE "number too large"

static const struct {
	const char *in;
	bool ok;
	enum num_op op;
	uint64_t value;
	const char *err;   /* when !ok: NULL means any message */
} parse_cases[] = {
	{ "10", true, NUM_GT, 10, NULL },          /* bare number: greater than */
	{ "0", true, NUM_GT, 0, NULL },
	{ "007", true, NUM_GT, 7, NULL },
	{ "<10", true, NUM_LT, 10, NULL },
	{ "<=10", true, NUM_LE, 10, NULL },
	{ ">10", true, NUM_GT, 10, NULL },
	{ ">=10", true, NUM_GE, 10, NULL },
	{ "=10", true, NUM_EQ, 10, NULL },
	{ "!=10", true, NUM_NE, 10, NULL },
	{ "10k", true, NUM_GT, 10240, NULL },
	{ "10K", true, NUM_GT, 10240, NULL },
	{ "1m", true, NUM_GT, 1048576, NULL },
	{ "1M", true, NUM_GT, 1048576, NULL },
	{ "2g", true, NUM_GT, 2147483648ULL, NULL },
	{ "2G", true, NUM_GT, 2147483648ULL, NULL },
	{ "<=0k", true, NUM_LE, 0, NULL },
	{ ">=512K", true, NUM_GE, 524288, NULL },
	{ "!=3M", true, NUM_NE, 3145728, NULL },
	{ "18446744073709551615", true, NUM_GT, UINT64_MAX, NULL },
	{ "18014398509481983k", true, NUM_GT, 18014398509481983ULL << 10, NULL },
	{ "17179869183G", true, NUM_GT, 17179869183ULL << 30, NULL },
	{ "18446744073709551616", false, 0, 0, TOO_LARGE },
	{ "99999999999999999999", false, 0, 0, TOO_LARGE },
	{ "18014398509481984k", false, 0, 0, TOO_LARGE },
	{ "17592186044416M", false, 0, 0, TOO_LARGE },
	{ "17179869184G", false, 0, 0, TOO_LARGE },
	{ "", false, 0, 0, "expected a number" },
	{ ">", false, 0, 0, "expected a number" },
	{ "<=", false, 0, 0, "expected a number" },
	{ "!=", false, 0, 0, "expected a number" },
	{ "k", false, 0, 0, "expected a number" },
	{ ">=G", false, 0, 0, "expected a number" },
	{ "10kb", false, 0, 0, NULL },
	{ "10kk", false, 0, 0, NULL },
	{ "10T", false, 0, 0, NULL },
	{ "10 ", false, 0, 0, NULL },
	{ " 10", false, 0, 0, NULL },
	{ "> 10", false, 0, 0, NULL },
	{ "-1", false, 0, 0, NULL },
	{ "+1", false, 0, 0, NULL },
	{ "1.5", false, 0, 0, NULL },
	{ "0x10", false, 0, 0, NULL },
	{ "==10", false, 0, 0, NULL },
	{ "=>10", false, 0, 0, NULL },
	{ "=<10", false, 0, 0, NULL },
	{ "<>10", false, 0, 0, NULL },
	{ "!10", false, 0, 0, NULL },
	{ "10<", false, 0, 0, NULL },
};

START_TEST(test_numcmp_parse)
{
	const char *in = parse_cases[_i].in;
	struct numcmp c = { NUM_LT, 12345 };
	const char *err = NULL;
	bool ok = numcmp_parse(in, strlen(in), &c, &err);

	ck_assert_msg(ok == parse_cases[_i].ok, "numcmp_parse(\"%s\"): got %s, want %s", in,
		      ok ? "success" : err, parse_cases[_i].ok ? "success" : "an error");
	if (ok) {
		ck_assert_msg(c.op == parse_cases[_i].op && c.value == parse_cases[_i].value,
			      "numcmp_parse(\"%s\"): got %s%llu, want %s%llu", in, num_op_name(c.op),
			      (unsigned long long)c.value, num_op_name(parse_cases[_i].op),
			      (unsigned long long)parse_cases[_i].value);
		return;
	}
	ck_assert_msg(err != NULL, "numcmp_parse(\"%s\"): got no error message", in);
	if (parse_cases[_i].err)
		ck_assert_msg(strcmp(err, parse_cases[_i].err) == 0,
			      "numcmp_parse(\"%s\"): got error \"%s\", want \"%s\"", in, err,
			      parse_cases[_i].err);
}
END_TEST

/* Each operator below, at and above its value, and at the ends of the range. */
static const struct {
	enum num_op op;
	uint64_t value, v;
	bool want;
} eval_cases[] = {
	{ NUM_LT, 10, 9, true }, { NUM_LT, 10, 10, false }, { NUM_LT, 10, 11, false },
	{ NUM_LE, 10, 9, true }, { NUM_LE, 10, 10, true }, { NUM_LE, 10, 11, false },
	{ NUM_GT, 10, 9, false }, { NUM_GT, 10, 10, false }, { NUM_GT, 10, 11, true },
	{ NUM_GE, 10, 9, false }, { NUM_GE, 10, 10, true }, { NUM_GE, 10, 11, true },
	{ NUM_EQ, 10, 9, false }, { NUM_EQ, 10, 10, true }, { NUM_EQ, 10, 11, false },
	{ NUM_NE, 10, 9, true }, { NUM_NE, 10, 10, false }, { NUM_NE, 10, 11, true },
	{ NUM_LT, 0, 0, false }, { NUM_GE, 0, 0, true }, { NUM_GT, 0, UINT64_MAX, true },
	{ NUM_GT, UINT64_MAX, UINT64_MAX, false }, { NUM_LE, UINT64_MAX, UINT64_MAX, true },
	{ NUM_EQ, UINT64_MAX, UINT64_MAX, true }, { NUM_NE, 0, UINT64_MAX, true },
};

START_TEST(test_numcmp_eval)
{
	struct numcmp c = { eval_cases[_i].op, eval_cases[_i].value };
	bool got = numcmp_eval(&c, eval_cases[_i].v);

	ck_assert_msg(got == eval_cases[_i].want, "%llu %s %llu: got %d, want %d",
		      (unsigned long long)eval_cases[_i].v, num_op_name(c.op),
		      (unsigned long long)c.value, got, eval_cases[_i].want);
}
END_TEST

/* Parse and evaluate together, as the acl "size 10k" does. */
START_TEST(test_numcmp_parse_eval)
{
	static const struct {
		const char *in;
		uint64_t v;
		bool want;
	} cases[] = {
		{ "10240000", 10240001, true }, { "10240000", 10240000, false },
		{ "10k", 10241, true }, { "10k", 10240, false },
		{ "<1M", 1048575, true }, { "<1M", 1048576, false },
		{ "=25", 25, true }, { "!=25", 25, false }, { ">=1g", 1073741824, true },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct numcmp c;
		const char *err = NULL;
		ck_assert_msg(numcmp_parse(cases[i].in, strlen(cases[i].in), &c, &err),
			      "numcmp_parse(\"%s\"): got error \"%s\", want success", cases[i].in, err);
		bool got = numcmp_eval(&c, cases[i].v);
		ck_assert_msg(got == cases[i].want, "\"%s\" on %llu: got %d, want %d", cases[i].in,
			      (unsigned long long)cases[i].v, got, cases[i].want);
	}
}
END_TEST

START_TEST(test_num_op_name)
{
	static const struct {
		enum num_op op;
		const char *want;
	} cases[] = {
		{ NUM_LT, "<" }, { NUM_LE, "<=" }, { NUM_GT, ">" },
		{ NUM_GE, ">=" }, { NUM_EQ, "=" }, { NUM_NE, "!=" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const char *got = num_op_name(cases[i].op);
		ck_assert_msg(strcmp(got, cases[i].want) == 0, "num_op_name(%d): got \"%s\", want \"%s\"",
			      cases[i].op, got, cases[i].want);
		/* the name parses back to the same operator */
		char buf[8];
		struct numcmp c;
		const char *err;
		snprintf(buf, sizeof buf, "%s5", got);
		ck_assert_msg(numcmp_parse(buf, strlen(buf), &c, &err) && c.op == cases[i].op,
			      "numcmp_parse(\"%s\"): got op %s, want %s", buf, num_op_name(c.op), got);
	}
}
END_TEST

static const struct {
	const char *in;
	bool ok;
	uint64_t want;
} u64_cases[] = {
	{ "0", true, 0 },
	{ "123", true, 123 },
	{ "00042", true, 42 },
	{ "18446744073709551615", true, UINT64_MAX },
	{ "18446744073709551616", false, 0 },
	{ "18446744073709551620", false, 0 },
	{ "99999999999999999999", false, 0 },
	{ "", false, 0 },
	{ "-1", false, 0 },
	{ "+1", false, 0 },
	{ " 1", false, 0 },
	{ "1 ", false, 0 },
	{ "1a", false, 0 },
	{ "10k", false, 0 },
	{ "1.0", false, 0 },
};

START_TEST(test_num_parse_u64)
{
	const char *in = u64_cases[_i].in;
	uint64_t v = 777;
	bool ok = num_parse_u64(in, strlen(in), &v);

	ck_assert_msg(ok == u64_cases[_i].ok, "num_parse_u64(\"%s\"): got %d, want %d", in, ok,
		      u64_cases[_i].ok);
	if (ok)
		ck_assert_msg(v == u64_cases[_i].want, "num_parse_u64(\"%s\"): got %llu, want %llu", in,
			      (unsigned long long)v, (unsigned long long)u64_cases[_i].want);
}
END_TEST

/* The length bounds the parse: bytes after len are not looked at. */
START_TEST(test_num_len_bounds)
{
	uint64_t v;
	struct numcmp c;
	const char *err;

	ck_assert_msg(num_parse_u64("12345", 3, &v) && v == 123, "num_parse_u64(\"123\"45): got %llu, want 123",
		      (unsigned long long)v);
	ck_assert_msg(numcmp_parse("<=4kXYZ", 4, &c, &err) && c.op == NUM_LE && c.value == 4096,
		      "numcmp_parse(\"<=4k\"XYZ): got %s%llu, want <=4096", num_op_name(c.op),
		      (unsigned long long)c.value);
}
END_TEST

Suite *numcmp_suite(void)
{
	Suite *s = suite_create("numcmp");
	TCase *tc = tcase_create("numcmp");
	tcase_add_loop_test(tc, test_numcmp_parse, 0, ARRAY_LEN(parse_cases));
	tcase_add_loop_test(tc, test_numcmp_eval, 0, ARRAY_LEN(eval_cases));
	tcase_add_test(tc, test_numcmp_parse_eval);
	tcase_add_test(tc, test_num_op_name);
	tcase_add_loop_test(tc, test_num_parse_u64, 0, ARRAY_LEN(u64_cases));
	tcase_add_test(tc, test_num_len_bounds);
	suite_add_tcase(s, tc);
	return s;
}
