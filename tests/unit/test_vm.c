/*
 * VM tests: evaluation order and memo, SWITCH runs against the plain code,
 * suspension on a real asynchronous source (a libevent timer), an
 * answer that comes before the type's eval returns, and scores: several
 * waits outstanding on one request.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "backends/runtime.h"
#include "engine/compile.h"
#include "engine/verify.h"
#include "engine/vm.h"
#include "util/testhooks.h"
#include "tests/unit/unit.h"

/* ---- helpers ------------------------------------------------------------- */

static struct program *compile_ok(const char *text)
{
	struct diags d;
	diags_init(&d);
	struct program *p = compile_string("t.conf", text, &d);
	if (!p)
		diags_print(&d, stderr);
	ck_assert_msg(p != NULL, "policy did not compile:\n%s", text);
	diags_free(&d);
	return p;
}

struct waiter {
	int resumed;
};

static void on_resume(struct vm *vm, void *arg)
{
	(void)vm;
	((struct waiter *)arg)->resumed++;
}

/* Run req (name=value lines) to the end, looping on base; return the reply. */
static char *run(struct runtime *rt, struct event_base *base, struct program *p, const char *req,
		 int *suspensions)
{
	struct request *r = req_new();
	const char *err;
	ck_assert_msg(req_parse(r, req, strlen(req), &err), "request: %s", err);
	req_set_clock(r, true, 0);
	struct waiter w = { 0 };
	struct vm *vm = vm_new(rt, p, r, on_resume, &w);
	int n = 0;
	while (vm_run(vm) == VM_SUSPENDED) {
		n++;
		int before = w.resumed;
		while (w.resumed == before)
			ck_assert(event_base_loop(base, EVLOOP_ONCE) == 0);
	}
	if (suspensions)
		*suspensions = n;
	struct strbuf b;
	sb_init(&b);
	vm_reply(vm, &b);
	vm_free(vm);
	req_free(r);
	return b.s;
}

/* ---- tests --------------------------------------------------------------- */

START_TEST(test_first_match_and_default)
{
	struct event_base *base = event_base_new();
	struct runtime *rt = runtime_new(base);
	struct program *p = compile_ok("acl a sender a@x\n"
				       "acl b recipient @y\n"
				       "action r1 REJECT one\n"
				       "action r2 554 5.7.1 two ${recipient}\n"
				       "access a r1\n"
				       "access b r2\n"
				       "access a b r1\n");
	static const struct {
		const char *req, *want;
	} cases[] = {
		{ "sender=a@x\nrecipient=q@y\n\n", "action=REJECT one\n\n" },
		{ "sender=b@x\nrecipient=q@Y\n\n", "action=554 5.7.1 two q@Y\n\n" },
		{ "sender=b@x\nrecipient=q@z\n\n", "action=DUNNO\n\n" },
		{ "\n\n", "action=DUNNO\n\n" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *got = run(rt, base, p, cases[i].req, NULL);
		ck_assert_msg(!strcmp(got, cases[i].want), "case %zu: got %s want %s", i, got,
			      cases[i].want);
		free(got);
	}
	program_unref(p);
	runtime_free(rt);
	event_base_free(base);
}
END_TEST

/* The SWITCH form must give the same answers as line-by-line tests. */
START_TEST(test_switch_equals_plain)
{
	struct strbuf run_src, plain_src;
	sb_init(&run_src);
	sb_init(&plain_src);
	for (int i = 0; i < 50; i++) {
		const char *forms[] = { "u%d@d.example", "@dom%d.example", "@.sub%d.example", "local%d@" };
		char v[64];
		snprintf(v, sizeof v, forms[i % 4], i);
		sb_printf(&run_src, "acl s%d sender %s\naction a%d REJECT line %d\n", i, v, i, i);
	}
	sb_adds(&run_src, "acl nul sender \"\"\nacl big size >100\naction an REJECT null\n");
	sb_add(&plain_src, run_src.s, run_src.len);
	/* run version: consecutive lines; plain version: each line also needs a
	 * dummy negated acl first, which breaks the run */
	sb_adds(&plain_src, "acl never helo_name never.invalid\n");
	for (int i = 0; i < 50; i++) {
		sb_printf(&run_src, "access s%d%s a%d\n", i, i % 7 == 3 ? " big" : "", i);
		sb_printf(&plain_src, "access !never s%d%s a%d\n", i, i % 7 == 3 ? " big" : "", i);
	}
	sb_adds(&run_src, "access nul an\n");
	sb_adds(&plain_src, "access !never nul an\n");
	struct event_base *base = event_base_new();
	struct runtime *rt = runtime_new(base);
	struct program *pr = compile_ok(run_src.s), *pp = compile_ok(plain_src.s);
	ck_assert_msg(pr->nruns == 1, "got %u runs, want 1", pr->nruns);
	ck_assert_msg(pp->nruns == 0, "got %u runs in the plain version, want 0", pp->nruns);
	const char *senders[] = { "u0@d.example", "U4@D.EXAMPLE", "x@dom1.example", "x@dom5.example",
				  "x@a.sub2.example", "x@sub2.example", "local3@anything",
				  "local7@q", "nobody@nowhere", "", "u44@d.example", "x@dom45.example",
				  "local3@dom1.example" };
	for (size_t i = 0; i < sizeof senders / sizeof senders[0]; i++)
		for (int size = 0; size <= 200; size += 200) {
			char req[256];
			snprintf(req, sizeof req, "sender=%s\nsize=%d\n\n", senders[i], size);
			char *a = run(rt, base, pr, req, NULL), *b = run(rt, base, pp, req, NULL);
			ck_assert_msg(!strcmp(a, b), "sender '%s' size %d: switch says %s, plain says %s",
				      senders[i], size, a, b);
			free(a);
			free(b);
		}
	program_unref(pr);
	program_unref(pp);
	runtime_free(rt);
	event_base_free(base);
	sb_free(&run_src);
	sb_free(&plain_src);
}
END_TEST

START_TEST(test_suspend_on_timer)
{
	testhooks_register();
	struct event_base *base = event_base_new();
	struct runtime *rt = runtime_new(base);
	struct program *p = compile_ok("acl slow test_sleep 20 yes\n"
				       "acl other test_sleep 5 no\n"
				       "acl x sender x@y\n"
				       "action r REJECT slow\n"
				       "access x other r\n"
				       "access x slow r\n"
				       "access slow r\n");
	testhooks_sleep_evals = 0;
	int susp;
	char *got = run(rt, base, p, "sender=x@y\n\n", &susp);
	ck_assert_str_eq(got, "action=REJECT slow\n\n");
	ck_assert_msg(susp == 2, "got %d suspensions, want 2 (other, then slow)", susp);
	ck_assert_msg(testhooks_sleep_evals == 2, "got %lu evaluations, want 2 (each acl once)",
		      testhooks_sleep_evals);
	free(got);
	/* the sender does not match: slow is not evaluated until line 3 */
	testhooks_sleep_evals = 0;
	got = run(rt, base, p, "sender=q@y\n\n", &susp);
	ck_assert_str_eq(got, "action=REJECT slow\n\n");
	ck_assert_uint_eq(testhooks_sleep_evals, 1);
	free(got);
	program_unref(p);
	runtime_free(rt);
	event_base_free(base);
}
END_TEST

START_TEST(test_many_suspended_and_abandoned)
{
	testhooks_register();
	struct event_base *base = event_base_new();
	struct runtime *rt = runtime_new(base);
	struct program *p = compile_ok("acl slow test_sleep 10 yes\naction r REJECT x\naccess slow r\n");
	enum { N = 20 };
	struct request *r[N];
	struct vm *vm[N];
	struct waiter w[N];
	for (int i = 0; i < N; i++) {
		const char *err;
		r[i] = req_new();
		ck_assert(req_parse(r[i], "sender=a@b\n\n", 12, &err));
		w[i].resumed = 0;
		vm[i] = vm_new(rt, p, r[i], on_resume, &w[i]);
		ck_assert_int_eq(vm_run(vm[i]), VM_SUSPENDED);
	}
	/* abandon every other one while it waits, and drop our program ref:
	 * the VMs keep it alive */
	for (int i = 0; i < N; i += 2) {
		vm_free(vm[i]);
		vm[i] = NULL;
	}
	program_unref(p);
	event_base_dispatch(base);
	for (int i = 0; i < N; i++) {
		if (!vm[i]) {
			ck_assert_msg(w[i].resumed == 0, "abandoned vm %d was resumed", i);
			req_free(r[i]);
			continue;
		}
		ck_assert_msg(w[i].resumed == 1, "vm %d resumed %d times", i, w[i].resumed);
		ck_assert_int_eq(vm_run(vm[i]), VM_DONE);
		struct strbuf b;
		sb_init(&b);
		vm_reply(vm[i], &b);
		ck_assert_str_eq(b.s, "action=REJECT x\n\n");
		sb_free(&b);
		vm_free(vm[i]);
		req_free(r[i]);
	}
	runtime_free(rt);
	event_base_free(base);
}
END_TEST

START_TEST(test_tempfail_modes)
{
	testhooks_register();
	struct event_base *base = event_base_new();
	struct runtime *rt = runtime_new(base);
	struct program *p = compile_ok("acl t test_sleep 1 tempfail\naction r REJECT x\n"
				       "action default DEFER_IF_PERMIT later\n"
				       "access t r\naccess !t r\n");
	/* default: a temporary failure does not match, so !t matches */
	char *got = run(rt, base, p, "sender=a\n\n", NULL);
	ck_assert_str_eq(got, "action=REJECT x\n\n");
	free(got);
	p->acls[0].tempfail = TEMPFAIL_DEFAULT;
	got = run(rt, base, p, "sender=a\n\n", NULL);
	ck_assert_str_eq(got, "action=DEFER_IF_PERMIT later\n\n");
	free(got);
	p->acls[0].tempfail = TEMPFAIL_MATCH;
	got = run(rt, base, p, "sender=a\n\n", NULL);
	ck_assert_str_eq(got, "action=REJECT x\n\n");
	free(got);
	program_unref(p);
	runtime_free(rt);
	event_base_free(base);
}
END_TEST

/* A waiting type whose answer comes before its eval returns, as the memory
 * store's does: it begins a wait, sets a ${var}, answers, returns PENDING. */
static enum tri now_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	(void)acl;
	struct vm_wait *w = vm_wait_begin(e);
	vm_wait_set_var(w, VAR_rate_count, "7");
	vm_wait_done(w, TRI_TRUE);
	return TRI_PENDING;
}

static bool now_compile(struct acl_compile *c)
{
	c->data = NULL;
	return true;
}

static const struct acl_type now_type = {
	.name = "test_now", .attr = -1, .values_optional = true, .compile = now_compile,
	.eval = now_eval,
};

START_TEST(test_answered_at_once)
{
	static bool registered;
	if (!registered)
		acl_type_register(&now_type);
	registered = true;
	struct event_base *base = event_base_new();
	struct runtime *rt = runtime_new(base);
	struct program *p = compile_ok("acl n test_now\n"
				       "action r REJECT count ${rate_count}\n"
				       "access n r\n");
	int susp = -1;
	char *got = run(rt, base, p, "sender=x@y\n\n", &susp);
	ck_assert_str_eq(got, "action=REJECT count 7\n\n");
	ck_assert_int_eq(susp, 0);
	free(got);

	/* the trace shows one evaluation, not a late answer */
	struct request *r = req_new();
	const char *err;
	ck_assert(req_parse(r, "sender=x@y\n\n", 12, &err));
	req_set_clock(r, true, 0);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct vm *vm = vm_new(rt, p, r, NULL, NULL);
	vm_set_trace(vm, f);
	ck_assert_int_eq(vm_run(vm), VM_DONE);
	vm_free(vm);
	fclose(f);
	ck_assert_msg(strstr(buf, "test_now: match") != NULL, "trace:\n%s", buf);
	ck_assert_msg(strstr(buf, "answered") == NULL, "trace:\n%s", buf);
	free(buf);
	req_free(r);
	program_unref(p);
	runtime_free(rt);
	event_base_free(base);
}
END_TEST

/*
 * A score evaluates all its terms at once: four lookups of different
 * lengths are outstanding together on one VM, the request suspends once
 * and is resumed once, when the last has answered (not once per answer),
 * and each term is evaluated once.
 */
START_TEST(test_score_several_waits)
{
	testhooks_register();
	struct event_base *base = event_base_new();
	struct runtime *rt = runtime_new(base);
	struct program *p = compile_ok("acl a test_sleep 30 yes\n"
				       "acl b test_sleep 10 no\n"
				       "acl c test_sleep 20 yes\n"
				       "acl t test_sleep 5 tempfail\n"
				       "acl s score a*2 b*5 !c c*0.5 t*7 >= 2.5\n"
				       "action r REJECT ${score} [${score_hits}] [${score_missing}]\n"
				       "access s r\n");
	testhooks_sleep_evals = 0;
	int susp = -1;
	char *got = run(rt, base, p, "sender=x@y\n\n", &susp);
	ck_assert_str_eq(got, "action=REJECT 2.5 [a*2 c*0.5] [t]\n\n");
	ck_assert_msg(susp == 1, "got %d suspensions, want 1 (all four terms waited together)", susp);
	ck_assert_msg(testhooks_sleep_evals == 4, "got %lu evaluations, want 4 (each term once)",
		      testhooks_sleep_evals);
	free(got);

	/* freed while its four waits are outstanding: never resumed, released
	 * when the last answers (ASan checks the rest) */
	struct request *r = req_new();
	const char *err;
	ck_assert(req_parse(r, "sender=x@y\n\n", 12, &err));
	req_set_clock(r, true, 0);
	struct waiter w = { 0 };
	struct vm *vm = vm_new(rt, p, r, on_resume, &w);
	ck_assert_int_eq(vm_run(vm), VM_SUSPENDED);
	vm_free(vm);
	event_base_dispatch(base);
	ck_assert_int_eq(w.resumed, 0);
	req_free(r);
	program_unref(p);
	runtime_free(rt);
	event_base_free(base);
}
END_TEST

/* Nested scores and a term shared between lines: every acl is evaluated
 * once per request (a stateful term counts once), and the outer score's
 * ${score} is the one shown. */
START_TEST(test_score_memo)
{
	testhooks_register();
	struct event_base *base = event_base_new();
	struct runtime *rt = runtime_new(base);
	struct program *p = compile_ok("acl a test_sleep 10 yes\n"
				       "acl b test_sleep 15 yes\n"
				       "acl s1 score a b >= 2\n"
				       "acl s2 score s1*2 a >= 3\n"
				       "action r REJECT ${score} ${score_hits}\n"
				       "access !s1 r\n"
				       "access a s2 r\n");
	testhooks_sleep_evals = 0;
	int susp = -1;
	char *got = run(rt, base, p, "sender=x@y\n\n", &susp);
	ck_assert_str_eq(got, "action=REJECT 3 s1*2 a*1\n\n");
	ck_assert_int_eq(susp, 1);
	ck_assert_msg(testhooks_sleep_evals == 2, "got %lu evaluations, want 2",
		      testhooks_sleep_evals);
	free(got);
	program_unref(p);

	/* a term whose failure asks for the default action fails the score */
	p = compile_ok("set tempfail default\n"
		       "acl a test_sleep 20 yes\n"
		       "acl t test_sleep 5 tempfail\n"
		       "acl s score a t >= 1\n"
		       "action r REJECT x\n"
		       "action default DEFER_IF_PERMIT later\n"
		       "access s r\n");
	got = run(rt, base, p, "sender=x@y\n\n", &susp);
	ck_assert_str_eq(got, "action=DEFER_IF_PERMIT later\n\n");
	free(got);
	program_unref(p);
	runtime_free(rt);
	event_base_free(base);
}
END_TEST

START_TEST(test_verifier_rejects)
{
	struct program *p = compile_ok("acl a sender a@x\nacl b sender b@x\naction r REJECT\n"
				       "access a r\naccess b r\n");
	ck_assert_ptr_null(verify_program(p));
	uint64_t saved = p->code[0];
	static const struct {
		uint64_t insn;
		const char *want;
	} bad[] = {
		{ INSN(OP_TEST, 0, 0), "not forward" },
		{ INSN(OP_TEST, 0, 99), "not forward" },
		{ INSN(OP_TEST, 7, 2), "bad acl" },
		{ INSN(OP_VERDICT, 9, NO_RULE), "bad action" },
		{ INSN(OP_NEXT, 0, 0), "next outside" },
		{ INSN(OP_SWITCH, 0, 3), "bad run" },
		{ INSN(OP_COUNT, 0, 0), "bad opcode" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		p->code[0] = bad[i].insn;
		const char *why = verify_program(p);
		ck_assert_msg(why && strstr(why, bad[i].want), "case %zu: got '%s', want '%s'", i,
			      why ? why : "(accepted)", bad[i].want);
	}
	p->code[0] = saved;
	p->code[p->ncode - 1] = INSN(OP_TEST, 0, 0);
	ck_assert_ptr_nonnull(verify_program(p));
	program_unref(p);
}
END_TEST

Suite *vm_suite(void)
{
	Suite *s = suite_create("vm");
	TCase *tc = tcase_create("vm");
	tcase_add_test(tc, test_first_match_and_default);
	tcase_add_test(tc, test_switch_equals_plain);
	tcase_add_test(tc, test_suspend_on_timer);
	tcase_add_test(tc, test_many_suspended_and_abandoned);
	tcase_add_test(tc, test_tempfail_modes);
	tcase_add_test(tc, test_answered_at_once);
	tcase_add_test(tc, test_score_several_waits);
	tcase_add_test(tc, test_score_memo);
	tcase_add_test(tc, test_verifier_rejects);
	suite_add_tcase(s, tc);
	return s;
}
