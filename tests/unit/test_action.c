/*
 * Unit tests for actions/action.c: the vocabulary and its argument rules,
 * templates, and the exact bytes of the reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actions/action.h"
#include "tests/unit/unit.h"

/* Variables the tests know, with the ids the resolver gives them. */
enum { V_SENDER, V_RECIPIENT, V_CLIENT_ADDRESS, V_RBL_TXT, V_A, V_B, V_C, NVARS };

static const char *const var_names[NVARS] = {
	[V_SENDER] = "sender",
	[V_RECIPIENT] = "recipient",
	[V_CLIENT_ADDRESS] = "client_address",
	[V_RBL_TXT] = "rbl_txt",
	[V_A] = "a",
	[V_B] = "b",
	[V_C] = "c",
};

static int resolve(void *ctx, const char *name, size_t len)
{
	(void)ctx;
	for (int i = 0; i < NVARS; i++)
		if (strlen(var_names[i]) == len && memcmp(var_names[i], name, len) == 0)
			return i;
	return -1;
}

/* Values at reply time: NULL means the variable has no value. */
struct values {
	const char *val[NVARS];
	size_t len[NVARS]; /* 0: strlen(val) */
	int calls;
};

static bool lookup(void *ctx, int var, const char **val, size_t *len)
{
	struct values *v = ctx;
	v->calls++;
	if (var < 0 || var >= NVARS || !v->val[var])
		return false;
	*val = v->val[var];
	*len = v->len[var] ? v->len[var] : strlen(v->val[var]);
	return true;
}

/* Show bytes readably in a failure message (one buffer per slot). */
static const char *esc(int slot, const char *s, size_t n)
{
	static char buf[4][4200];
	char *b = buf[slot];
	size_t o = 0;
	if (!s)
		return "(null)";
	for (size_t i = 0; i < n && o + 5 < sizeof buf[slot]; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n')
			o += (size_t)sprintf(b + o, "\\n");
		else if (c == '\r')
			o += (size_t)sprintf(b + o, "\\r");
		else if (c < 0x20 || c >= 0x7f)
			o += (size_t)sprintf(b + o, "\\x%02x", c);
		else
			b[o++] = (char)c;
	}
	b[o] = 0;
	return b;
}

/* ---- action_compile: valid actions ------------------------------------ */

struct valid_case {
	const char *type, *text;
	enum action_kind kind;
	const char *word;
	const char *fmt; /* action_format with a NULL lookup */
};

static const struct valid_case valid_cases[] = {
	{ "OK", NULL, ACT_OK, "OK", "OK" },
	{ "ok", "", ACT_OK, "OK", "OK" },
	{ "Ok", " \t ", ACT_OK, "OK", "OK" },
	{ "DUNNO", NULL, ACT_DUNNO, "DUNNO", "DUNNO" },
	{ "dunno", "", ACT_DUNNO, "DUNNO", "DUNNO" },
	{ "REJECT", NULL, ACT_REJECT, "REJECT", "REJECT" },
	{ "reject", "no thanks", ACT_REJECT, "REJECT", "REJECT no thanks" },
	{ "ReJeCt", "  padded  text\t", ACT_REJECT, "REJECT", "REJECT padded  text" },
	{ "REJECT", "tab\there", ACT_REJECT, "REJECT", "REJECT tab here" },
	{ "DEFER", NULL, ACT_DEFER, "DEFER", "DEFER" },
	{ "defer", "try later", ACT_DEFER, "DEFER", "DEFER try later" },
	{ "DEFER_IF_REJECT", NULL, ACT_DEFER_IF_REJECT, "DEFER_IF_REJECT", "DEFER_IF_REJECT" },
	{ "defer_if_reject", "maybe", ACT_DEFER_IF_REJECT, "DEFER_IF_REJECT", "DEFER_IF_REJECT maybe" },
	{ "DEFER_IF_PERMIT", NULL, ACT_DEFER_IF_PERMIT, "DEFER_IF_PERMIT", "DEFER_IF_PERMIT" },
	{ "Defer_If_Permit", "dns down", ACT_DEFER_IF_PERMIT, "DEFER_IF_PERMIT", "DEFER_IF_PERMIT dns down" },
	{ "DISCARD", NULL, ACT_DISCARD, "DISCARD", "DISCARD" },
	{ "discard", "spam trap", ACT_DISCARD, "DISCARD", "DISCARD spam trap" },
	{ "HOLD", NULL, ACT_HOLD, "HOLD", "HOLD" },
	{ "hold", "review", ACT_HOLD, "HOLD", "HOLD review" },
	{ "INFO", NULL, ACT_INFO, "INFO", "INFO" },
	{ "info", "seen ${sender}", ACT_INFO, "INFO", "INFO seen ${sender}" },
	{ "WARN", NULL, ACT_WARN, "WARN", "WARN" },
	{ "warn", "would reject", ACT_WARN, "WARN", "WARN would reject" },
	/* reply codes, with and without an enhanced status code */
	{ "550", "5.7.1 blocked", ACT_CODE, "550", "550 5.7.1 blocked" },
	{ "450", "4.7.1 greylisted", ACT_CODE, "450", "450 4.7.1 greylisted" },
	{ "554", "rejected", ACT_CODE, "554", "554 rejected" },
	{ "421", "closing", ACT_CODE, "421", "421 closing" },
	{ "521", "5.7.0 go away", ACT_CODE, "521", "521 5.7.0 go away" },
	{ "451", "4.3.0", ACT_CODE, "451", "451 4.3.0" },
	{ "550", "5.7.1\tblocked", ACT_CODE, "550", "550 5.7.1 blocked" },
	{ "550", "5.1.10 no such user", ACT_CODE, "550", "550 5.1.10 no such user" },
	{ "550", "5.123.456 x", ACT_CODE, "550", "550 5.123.456 x" },
	/* not enhanced status codes: plain text, not checked */
	{ "550", "4.7 x", ACT_CODE, "550", "550 4.7 x" },
	{ "550", "4.7.1234 x", ACT_CODE, "550", "550 4.7.1234 x" },
	{ "550", "4.7.1x", ACT_CODE, "550", "550 4.7.1x" },
	{ "550", "${rbl_txt}", ACT_CODE, "550", "550 ${rbl_txt}" },
	/* FILTER, REDIRECT, BCC, PREPEND */
	{ "FILTER", "smtp:[127.0.0.1]:10025", ACT_FILTER, "FILTER", "FILTER smtp:[127.0.0.1]:10025" },
	{ "filter", "dkim:", ACT_FILTER, "FILTER", "FILTER dkim:" },
	{ "REDIRECT", "abuse@example.com", ACT_REDIRECT, "REDIRECT", "REDIRECT abuse@example.com" },
	{ "redirect", " quarantine@[192.0.2.1] ", ACT_REDIRECT, "REDIRECT", "REDIRECT quarantine@[192.0.2.1]" },
	{ "BCC", "archive@example.org", ACT_BCC, "BCC", "BCC archive@example.org" },
	{ "bcc", "\"a@b\"@example.org", ACT_BCC, "BCC", "BCC \"a@b\"@example.org" },
	{ "PREPEND", "X-Policy: checked", ACT_PREPEND, "PREPEND", "PREPEND X-Policy: checked" },
	{ "prepend", "X-Client: ${client_address}", ACT_PREPEND, "PREPEND", "PREPEND X-Client: ${client_address}" },
	{ "PREPEND", "X-Empty:", ACT_PREPEND, "PREPEND", "PREPEND X-Empty:" },
	{ "PREPEND", "X-Tight:value", ACT_PREPEND, "PREPEND", "PREPEND X-Tight:value" },
	{ "PREPEND", "X$$Cost: 1", ACT_PREPEND, "PREPEND", "PREPEND X$Cost: 1" },
	/* templates */
	{ "REJECT", "${sender} is blocked", ACT_REJECT, "REJECT", "REJECT ${sender} is blocked" },
	{ "REJECT", "${a}${b}", ACT_REJECT, "REJECT", "REJECT ${a}${b}" },
	{ "REJECT", "$$5 fee", ACT_REJECT, "REJECT", "REJECT $5 fee" },
	{ "REJECT", "$$${a}", ACT_REJECT, "REJECT", "REJECT $${a}" },
	{ "REJECT", "$${a}", ACT_REJECT, "REJECT", "REJECT ${a}" },
	{ "REJECT", "cost $5", ACT_REJECT, "REJECT", "REJECT cost $5" },
	{ "REJECT", "$sender {x} $", ACT_REJECT, "REJECT", "REJECT $sender {x} $" },
};

START_TEST(test_compile_valid)
{
	const struct valid_case *c = &valid_cases[_i];
	struct arena *a = arena_new(0);
	struct action act;
	struct action_error err = { .msg = "garbage" };
	struct strbuf b;
	sb_init(&b);

	bool ok = action_compile(a, c->type, c->text, resolve, NULL, &act, &err);
	ck_assert_msg(ok, "%s '%s': got error '%s', want success", c->type,
		      esc(0, c->text, c->text ? strlen(c->text) : 0), err.msg);
	ck_assert_msg(err.msg == NULL, "%s: err.msg not NULL on success", c->type);
	ck_assert_msg(act.kind == c->kind, "%s: got kind %s, want %s", c->type,
		      action_kind_name(act.kind), action_kind_name(c->kind));
	ck_assert_msg(strcmp(act.word, c->word) == 0, "%s: got word '%s', want '%s'",
		      c->type, act.word, c->word);
	action_format(&act, NULL, NULL, &b);
	ck_assert_msg(strcmp(b.s, c->fmt) == 0, "%s '%s': got '%s', want '%s'",
		      c->type, esc(0, c->text, c->text ? strlen(c->text) : 0),
		      esc(1, b.s, b.len), c->fmt);
	sb_free(&b);
	arena_free(a);
}
END_TEST

/* ---- action_compile: errors ------------------------------------------- */

struct error_case {
	const char *type, *text;
	const char *msg;
	bool in_type;
	size_t offset, len;
};

#define ALL_WORDS                                                             \
	"OK, DUNNO, REJECT, DEFER, DEFER_IF_REJECT, DEFER_IF_PERMIT, DISCARD, " \
	"HOLD, FILTER, REDIRECT, BCC, PREPEND, INFO, WARN and 4NN/5NN codes"

static const struct error_case error_cases[] = {
	/* the word */
	{ "", "x", "missing action", true, 0, 1 },
	{ NULL, NULL, "missing action", true, 0, 1 },
	{ "REJCT", NULL, "unknown action 'REJCT'; did you mean 'REJECT'?", true, 0, 5 },
	{ "rejet", "x", "unknown action 'rejet'; did you mean 'REJECT'?", true, 0, 5 },
	{ "REJETC", NULL, "unknown action 'REJETC'; did you mean 'REJECT'?", true, 0, 6 },
	{ "PERMIT", NULL, "unknown action 'PERMIT'; did you mean 'OK'?", true, 0, 6 },
	{ "accept", NULL, "unknown action 'accept'; did you mean 'OK'?", true, 0, 6 },
	{ "Allow", NULL, "unknown action 'Allow'; did you mean 'OK'?", true, 0, 5 },
	{ "deny", NULL, "unknown action 'deny'; did you mean 'REJECT'?", true, 0, 4 },
	{ "defer-if-permit", NULL, "unknown action 'defer-if-permit'; did you mean 'DEFER_IF_PERMIT'?", true, 0, 15 },
	{ "DEFER_IF_PERMT", NULL, "unknown action 'DEFER_IF_PERMT'; did you mean 'DEFER_IF_PERMIT'?", true, 0, 14 },
	{ "duno", NULL, "unknown action 'duno'; did you mean 'DUNNO'?", true, 0, 4 },
	{ "OKAY", NULL, "unknown action 'OKAY'; did you mean 'OK'?", true, 0, 4 },
	{ "hodl", NULL, "unknown action 'hodl'; did you mean 'HOLD'?", true, 0, 4 },
	{ "BC", NULL, "unknown action 'BC'; did you mean 'BCC'?", true, 0, 2 },
	{ "prepnd", "X: y", "unknown action 'prepnd'; did you mean 'PREPEND'?", true, 0, 6 },
	{ "NO", NULL, "unknown action 'NO'; valid actions are " ALL_WORDS, true, 0, 2 },
	{ "FOOBAR", NULL, "unknown action 'FOOBAR'; valid actions are " ALL_WORDS, true, 0, 6 },
	{ "re\x01ject", NULL, "unknown action 're\\x01ject'; did you mean 'REJECT'?", true, 0, 7 },
	/* reply codes */
	{ "250", "ok", "reply code 250 is not 4NN or 5NN", true, 0, 3 },
	{ "650", "x", "reply code 650 is not 4NN or 5NN", true, 0, 3 },
	{ "5500", "x", "reply code '5500' is not three digits", true, 0, 4 },
	{ "55", "x", "reply code '55' is not three digits", true, 0, 2 },
	{ "5x0", "x", "reply code '5x0' is not three digits", true, 0, 3 },
	{ "4NN", "x", "reply code '4NN' is not three digits", true, 0, 3 },
	{ "550", NULL, "5NN action needs a text", true, 0, 3 },
	{ "550", "", "5NN action needs a text", true, 0, 3 },
	{ "450", "  \t", "4NN action needs a text", true, 0, 3 },
	{ "550", "4.7.1 x", "enhanced status code 4.7.1 does not match reply code 550", false, 0, 5 },
	{ "450", " 5.7.1 x", "enhanced status code 5.7.1 does not match reply code 450", false, 1, 5 },
	{ "550", "2.0.0", "enhanced status code 2.0.0 does not match reply code 550", false, 0, 5 },
	{ "421", "5.1.10 x", "enhanced status code 5.1.10 does not match reply code 421", false, 0, 6 },
	/* FILTER */
	{ "FILTER", NULL, "FILTER needs transport:destination", true, 0, 6 },
	{ "filter", " ", "FILTER needs transport:destination", true, 0, 6 },
	{ "FILTER", "smtp", "FILTER needs transport:destination", false, 0, 4 },
	{ "FILTER", ":dest", "FILTER transport is empty", false, 0, 1 },
	{ "FILTER", "smtp: x", "FILTER takes one transport:destination, without spaces", false, 5, 1 },
	{ "FILTER", "smtp:x\x01", "FILTER takes one transport:destination, without spaces", false, 6, 1 },
	{ "FILTER", "smtp:${rbl_txt}", "FILTER cannot use variables", false, 5, 10 },
	/* REDIRECT and BCC */
	{ "REDIRECT", NULL, "REDIRECT needs an address", true, 0, 8 },
	{ "bcc", "", "BCC needs an address", true, 0, 3 },
	{ "REDIRECT", "a@x b@y", "REDIRECT takes exactly one address", false, 4, 3 },
	{ "BCC", "a@x,b@y", "BCC takes exactly one address", false, 4, 3 },
	{ "BCC", "a@x, b@y", "BCC takes exactly one address", false, 5, 3 },
	{ "REDIRECT", "abuse", "REDIRECT needs user@domain", false, 0, 5 },
	{ "REDIRECT", "@example.com", "REDIRECT needs user@domain", false, 0, 12 },
	{ "BCC", "abuse@", "BCC needs user@domain", false, 0, 6 },
	{ "REDIRECT", "<a@x>", "REDIRECT address must not be in angle brackets", false, 0, 5 },
	{ "REDIRECT", "a\x7f@x", "bad character '\\x7f' in address", false, 1, 1 },
	{ "REDIRECT", "${sender}", "REDIRECT cannot use variables", false, 0, 9 },
	{ "BCC", "copy+${recipient}", "BCC cannot use variables", false, 5, 12 },
	/* PREPEND */
	{ "PREPEND", NULL, "PREPEND needs 'Header-Name: value'", true, 0, 7 },
	{ "PREPEND", "X-Foo value", "PREPEND needs 'Header-Name: value'", false, 0, 11 },
	{ "PREPEND", "X-Foo", "PREPEND needs 'Header-Name: value'", false, 0, 5 },
	{ "PREPEND", ": v", "PREPEND header name is empty", false, 0, 1 },
	{ "PREPEND", "X Foo: v", "bad character ' ' in header name", false, 1, 1 },
	{ "PREPEND", "X-Foo : v", "bad character ' ' in header name", false, 5, 1 },
	{ "PREPEND", "X-F\xc3\xa9: v", "bad character '\\xc3' in header name", false, 3, 1 },
	{ "PREPEND", "${sender}: v", "header name cannot use variables", false, 0, 9 },
	{ "PREPEND", "X-${a}: v", "header name cannot use variables", false, 2, 4 },
	/* templates */
	{ "REJECT", "hi ${nosuch} there", "unknown variable 'nosuch'", false, 5, 6 },
	{ "REJECT", "${sender}${Sender}", "unknown variable 'Sender'", false, 11, 6 },
	{ "550", "5.7.1 ${rbl}", "unknown variable 'rbl'", false, 8, 3 },
	{ "REJECT", "${sender", "unclosed '${'", false, 0, 2 },
	{ "REJECT", "x ${", "unclosed '${'", false, 2, 2 },
	{ "REJECT", "${a} and ${b", "unclosed '${'", false, 9, 2 },
	{ "REJECT", "${sen der}", "bad character ' ' in variable name", false, 5, 1 },
	{ "REJECT", "${a-b}", "bad character '-' in variable name", false, 3, 1 },
	{ "REJECT", "${}", "empty variable name", false, 0, 3 },
	{ "PREPEND", "X-Foo: ${nosuch}", "unknown variable 'nosuch'", false, 9, 6 },
};

START_TEST(test_compile_error)
{
	const struct error_case *c = &error_cases[_i];
	struct arena *a = arena_new(0);
	struct action act;
	struct action_error err;
	const char *shown = esc(0, c->text, c->text ? strlen(c->text) : 0);

	bool ok = action_compile(a, c->type, c->text, resolve, NULL, &act, &err);
	ck_assert_msg(!ok, "%s '%s': got success, want error '%s'",
		      esc(1, c->type, c->type ? strlen(c->type) : 0), shown, c->msg);
	ck_assert_msg(err.msg && strcmp(err.msg, c->msg) == 0,
		      "%s '%s': got error '%s', want '%s'",
		      esc(1, c->type, c->type ? strlen(c->type) : 0), shown,
		      err.msg, c->msg);
	ck_assert_msg(err.in_type == c->in_type && err.offset == c->offset &&
			      err.len == c->len,
		      "%s '%s': got in_type=%d offset=%zu len=%zu, want in_type=%d offset=%zu len=%zu",
		      esc(1, c->type, c->type ? strlen(c->type) : 0), shown,
		      err.in_type, err.offset, err.len, c->in_type, c->offset,
		      c->len);
	/* The same error without an error record must not crash or leak. */
	ck_assert(!action_compile(a, c->type, c->text, resolve, NULL, &act, NULL));
	free((char *)err.msg);
	arena_free(a);
}
END_TEST

/*
 * Text after OK or DUNNO: Postfix ignores it (smtpd_check.c), so it
 * compiles, with a warning at the text, and the reply is the bare word.
 */
static const struct ignored_case {
	const char *type, *text, *warning;
	size_t offset, len;
	const char *reply;
} ignored_cases[] = {
	{ "OK", "whitelisted", "Postfix ignores the text after OK; mxacl drops it and answers action=OK",
	  0, 11, "action=OK\n\n" },
	{ "ok", "  fine by me ", "Postfix ignores the text after OK; mxacl drops it and answers action=OK",
	  2, 10, "action=OK\n\n" },
	{ "dunno", "  x ", "Postfix ignores the text after DUNNO; mxacl drops it and answers action=DUNNO",
	  2, 1, "action=DUNNO\n\n" },
	/* dropped whole: not even a variable is looked at */
	{ "OK", "${nosuch}", "Postfix ignores the text after OK; mxacl drops it and answers action=OK",
	  0, 9, "action=OK\n\n" },
};

START_TEST(test_compile_ignored_text)
{
	const struct ignored_case *c = &ignored_cases[_i];
	struct arena *a = arena_new(0);
	struct action act;
	struct action_error err;

	ck_assert_msg(action_compile(a, c->type, c->text, resolve, NULL, &act, &err),
		      "%s '%s': got error '%s', want success", c->type, c->text, err.msg);
	ck_assert_msg(err.msg == NULL && err.warning && strcmp(err.warning, c->warning) == 0,
		      "%s '%s': got warning '%s', want '%s'", c->type, c->text, err.warning,
		      c->warning);
	ck_assert_msg(!err.in_type && err.offset == c->offset && err.len == c->len,
		      "%s '%s': got in_type=%d offset=%zu len=%zu, want 0/%zu/%zu", c->type,
		      c->text, err.in_type, err.offset, err.len, c->offset, c->len);
	ck_assert(!act.has_text);
	struct strbuf out;
	sb_init(&out);
	action_reply(&act, NULL, NULL, &out);
	ck_assert_msg(strcmp(out.s, c->reply) == 0, "%s '%s': got reply '%s', want '%s'",
		      c->type, c->text, esc(0, out.s, out.len), esc(1, c->reply, strlen(c->reply)));
	sb_free(&out);
	free((char *)err.warning);
	/* without an error record: the same success, nothing to leak */
	ck_assert(action_compile(a, c->type, c->text, resolve, NULL, &act, NULL));
	/* a clean action leaves no warning behind */
	ck_assert(action_compile(a, c->type, NULL, resolve, NULL, &act, &err));
	ck_assert(err.warning == NULL);
	arena_free(a);
}
END_TEST

/* Without a resolver no variable exists; with one, it gets the bare name. */
static int seen_len;
static char seen_name[32];
static int resolve_spy(void *ctx, const char *name, size_t len)
{
	int *calls = ctx;
	(*calls)++;
	seen_len = (int)len;
	snprintf(seen_name, sizeof seen_name, "%.*s", (int)len, name);
	return 42;
}

START_TEST(test_compile_resolver)
{
	struct arena *a = arena_new(0);
	struct action act;
	struct action_error err;

	ck_assert(!action_compile(a, "REJECT", "x ${sender}", NULL, NULL, &act, &err));
	ck_assert_msg(strcmp(err.msg, "unknown variable 'sender'") == 0,
		      "got '%s', want unknown variable 'sender'", err.msg);
	ck_assert_msg(err.offset == 4 && err.len == 6, "got %zu/%zu, want 4/6",
		      err.offset, err.len);
	free((char *)err.msg);

	/* constant text needs no resolver */
	ck_assert(action_compile(a, "REJECT", "plain $$ text", NULL, NULL, &act, &err));

	int calls = 0;
	ck_assert(action_compile(a, "REJECT", "${sender}!", resolve_spy, &calls, &act, &err));
	ck_assert_msg(calls == 1, "got %d resolver calls, want 1", calls);
	ck_assert_msg(seen_len == 6 && strcmp(seen_name, "sender") == 0,
		      "resolver got '%s' (%d), want 'sender' (6)", seen_name, seen_len);
	ck_assert_int_eq(act.text.segs[0].var, 42);
	arena_free(a);
}
END_TEST

/* The compiled segments: runs merged, references kept as written. */
START_TEST(test_compile_segments)
{
	struct arena *a = arena_new(0);
	struct action act;
	struct action_error err;

	ck_assert(action_compile(a, "REJECT", NULL, resolve, NULL, &act, &err));
	ck_assert(!act.has_text);
	ck_assert(act.text.constant);
	ck_assert_uint_eq(act.text.nsegs, 0);

	ck_assert(action_compile(a, "REJECT", "a$$b $x", resolve, NULL, &act, &err));
	ck_assert(act.has_text && act.text.constant);
	ck_assert_uint_eq(act.text.nsegs, 1);
	ck_assert_int_eq(act.text.segs[0].var, -1);
	ck_assert_uint_eq(act.text.segs[0].len, 6);
	ck_assert_str_eq(act.text.segs[0].text, "a$b $x");

	ck_assert(action_compile(a, "REJECT", "${a}${b}", resolve, NULL, &act, &err));
	ck_assert(!act.text.constant);
	ck_assert_uint_eq(act.text.nsegs, 2);
	ck_assert_int_eq(act.text.segs[0].var, V_A);
	ck_assert_str_eq(act.text.segs[0].text, "${a}");
	ck_assert_uint_eq(act.text.segs[0].len, 4);
	ck_assert_int_eq(act.text.segs[1].var, V_B);

	ck_assert(action_compile(a, "550", "5.7.1 ${sender} via ${client_address}.",
				 resolve, NULL, &act, &err));
	ck_assert_uint_eq(act.text.nsegs, 5);
	const char *want[] = { "5.7.1 ", "${sender}", " via ", "${client_address}", "." };
	const int want_var[] = { -1, V_SENDER, -1, V_CLIENT_ADDRESS, -1 };
	for (size_t i = 0; i < 5; i++) {
		const struct tpl_seg *s = &act.text.segs[i];
		ck_assert_msg(s->var == want_var[i] && strcmp(s->text, want[i]) == 0 &&
				      s->len == strlen(want[i]),
			      "seg %zu: got %d '%s' (%zu), want %d '%s'", i, s->var,
			      s->text, s->len, want_var[i], want[i]);
	}
	arena_free(a);
}
END_TEST

/* Literal text may fill ACTION_MAX_TEXT but not more; "$$" counts once. */
START_TEST(test_compile_length)
{
	struct arena *a = arena_new(0);
	struct action act;
	struct action_error err;
	char text[ACTION_MAX_TEXT + 8];

	memset(text, 'x', ACTION_MAX_TEXT);
	text[ACTION_MAX_TEXT] = 0;
	ck_assert_msg(action_compile(a, "REJECT", text, resolve, NULL, &act, &err),
		      "%d bytes: got '%s', want success", ACTION_MAX_TEXT, err.msg);

	text[0] = '$';
	text[1] = '$';
	text[ACTION_MAX_TEXT] = 'x';
	text[ACTION_MAX_TEXT + 1] = 0;
	ck_assert_msg(action_compile(a, "REJECT", text, resolve, NULL, &act, &err),
		      "$$ + %d bytes: got '%s', want success", ACTION_MAX_TEXT - 1,
		      err.msg);

	memset(text, 'x', ACTION_MAX_TEXT + 1);
	text[ACTION_MAX_TEXT + 1] = 0;
	ck_assert(!action_compile(a, "REJECT", text, resolve, NULL, &act, &err));
	ck_assert_str_eq(err.msg, "text is longer than 1000 bytes");
	ck_assert_uint_eq(err.offset, 0);
	ck_assert_uint_eq(err.len, ACTION_MAX_TEXT + 1);
	free((char *)err.msg);
	arena_free(a);
}
END_TEST

START_TEST(test_kind_name)
{
	static const struct {
		enum action_kind k;
		const char *name;
	} cases[] = {
		{ ACT_OK, "OK" },
		{ ACT_DUNNO, "DUNNO" },
		{ ACT_REJECT, "REJECT" },
		{ ACT_DEFER, "DEFER" },
		{ ACT_DEFER_IF_REJECT, "DEFER_IF_REJECT" },
		{ ACT_DEFER_IF_PERMIT, "DEFER_IF_PERMIT" },
		{ ACT_CODE, "CODE" },
		{ ACT_DISCARD, "DISCARD" },
		{ ACT_HOLD, "HOLD" },
		{ ACT_FILTER, "FILTER" },
		{ ACT_REDIRECT, "REDIRECT" },
		{ ACT_BCC, "BCC" },
		{ ACT_PREPEND, "PREPEND" },
		{ ACT_INFO, "INFO" },
		{ ACT_WARN, "WARN" },
		{ (enum action_kind)99, "?" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		ck_assert_msg(strcmp(action_kind_name(cases[i].k), cases[i].name) == 0,
			      "kind %d: got '%s', want '%s'", (int)cases[i].k,
			      action_kind_name(cases[i].k), cases[i].name);
}
END_TEST

/* ---- action_reply: exact bytes ---------------------------------------- */

struct reply_case {
	const char *type, *text;
	const char *want; /* the whole reply */
	const char *val[NVARS];
	size_t len[NVARS];
};

static const struct reply_case reply_cases[] = {
	{ "OK", NULL, "action=OK\n\n", .val = { 0 } },
	{ "dunno", "", "action=DUNNO\n\n", .val = { 0 } },
	{ "REJECT", NULL, "action=REJECT\n\n", .val = { 0 } },
	{ "reject", "go away", "action=REJECT go away\n\n", .val = { 0 } },
	{ "defer_if_permit", "  later  ", "action=DEFER_IF_PERMIT later\n\n", .val = { 0 } },
	{ "550", "5.7.1 ${sender} is blocked", "action=550 5.7.1 a@x is blocked\n\n",
	  .val = { [V_SENDER] = "a@x" } },
	{ "REJECT", "${sender}", "action=REJECT\n\n", .val = { 0 } },
	{ "REJECT", "${sender}", "action=REJECT\n\n",
	  .val = { [V_SENDER] = "" } },
	{ "REJECT", "${a}${b}", "action=REJECT xy\n\n",
	  .val = { [V_A] = "x", [V_B] = "y" } },
	{ "REJECT", "${a}${b}", "action=REJECT y\n\n",
	  .val = { [V_B] = "y" } },
	{ "REJECT", "<${a}>", "action=REJECT <>\n\n", .val = { 0 } },
	{ "REJECT", "$$${a}", "action=REJECT $5\n\n",
	  .val = { [V_A] = "5" } },
	{ "PREPEND", "X-Client: ${client_address}", "action=PREPEND X-Client: 192.0.2.1\n\n",
	  .val = { [V_CLIENT_ADDRESS] = "192.0.2.1" } },
	{ "PREPEND", "X-Client: ${client_address}", "action=PREPEND X-Client:\n\n", .val = { 0 } },
	{ "FILTER", "smtp:[127.0.0.1]:10025", "action=FILTER smtp:[127.0.0.1]:10025\n\n", .val = { 0 } },
	{ "redirect", "abuse@example.com", "action=REDIRECT abuse@example.com\n\n", .val = { 0 } },
	{ "BCC", "archive@example.org", "action=BCC archive@example.org\n\n", .val = { 0 } },
	{ "HOLD", NULL, "action=HOLD\n\n", .val = { 0 } },
	{ "450", "4.7.1 try ${rbl_txt}", "action=450 4.7.1 try http://x/?ip=1\n\n",
	  .val = { [V_RBL_TXT] = "http://x/?ip=1" } },
	/* values are cleaned: CR, LF, other control bytes and DEL */
	{ "REJECT", "bad ${a}!", "action=REJECT bad x  y z   !\n\n",
	  .val = { [V_A] = "x\r\ny\tz\x01\x1f\x7f" } },
	{ "REJECT", "${a}", "action=REJECT\n\n",
	  .val = { [V_A] = "\r\n" } },
	{ "REJECT", "${a}", "action=REJECT a b\n\n",
	  .val = { [V_A] = "a\0b" }, .len = { [V_A] = 3 } },
	/* well-formed UTF-8 passes through (U+00A0 and a 4-byte one too) */
	{ "REJECT", "${a}", "action=REJECT h\xc3\xa9llo \xe2\x82\xac\n\n",
	  .val = { [V_A] = "h\xc3\xa9llo \xe2\x82\xac" } },
	{ "REJECT", "<${a}>", "action=REJECT <\xc2\xa0\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf>\n\n",
	  .val = { [V_A] = "\xc2\xa0\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf" } },
	/* every byte that is not well-formed UTF-8 becomes '?' (issue 9):
	 * Latin-1, binary TXT bytes, a lone continuation byte, a sequence cut
	 * short (also at the end of the value), overlong forms, surrogates,
	 * code points past U+10FFFF, bytes that never lead */
	{ "REJECT", "${a}", "action=REJECT M?ller\n\n", .val = { [V_A] = "M\xfcller" } },
	{ "REJECT", "<${a}>", "action=REJECT <?\?\?\?>\n\n", .val = { [V_A] = "\x80\xff\xfe\xbf" } },
	{ "REJECT", "<${a}>", "action=REJECT <?\?x>\n\n", .val = { [V_A] = "\xe2\x82x" } },
	{ "REJECT", "<${a}>", "action=REJECT <ab?>\n\n", .val = { [V_A] = "ab\xc3" } },
	{ "REJECT", "<${a}>", "action=REJECT <?\?\?\?\?>\n\n", .val = { [V_A] = "\xc0\xaf\xe0\x80\xaf" } },
	{ "REJECT", "<${a}>", "action=REJECT <?\?\?>\n\n", .val = { [V_A] = "\xed\xa0\x80" } },
	{ "REJECT", "<${a}>", "action=REJECT <?\?\?\?\?>\n\n", .val = { [V_A] = "\xf4\x90\x80\x80\xf5" } },
	{ "REJECT", "<${a}>", "action=REJECT <?\xc3\xa9?>\n\n", .val = { [V_A] = "\xc3\xc3\xa9\xa9" } },
	/* C1 controls written in UTF-8 (NEL, CSI) are controls: spaces */
	{ "REJECT", "a${a}b", "action=REJECT a    b\n\n", .val = { [V_A] = "\xc2\x85\xc2\x9b" } },
	/* mixed: a binary TXT record in the middle of text */
	{ "450", "4.7.1 listed: ${rbl_txt}", "action=450 4.7.1 listed: see   http://x/ ?\?\n\n",
	  .val = { [V_RBL_TXT] = "see \x01 http://x/ \x92\xe9" } },
	/* literal text in the config is cleaned the same way */
	{ "REJECT", "f\xfcr ${a} \xc3\xa9t\xc3", "action=REJECT f?r x \xc3\xa9t?\n\n",
	  .val = { [V_A] = "x" } },
	/* values are not templates */
	{ "REJECT", "${a}", "action=REJECT ${b} $$\n\n",
	  .val = { [V_A] = "${b} $$" } },
};

static struct action compile_or_die(struct arena *a, const char *type,
				    const char *text)
{
	struct action act;
	struct action_error err;
	if (!action_compile(a, type, text, resolve, NULL, &act, &err))
		ck_abort_msg("compile %s '%s': %s", type, text, err.msg);
	return act;
}

START_TEST(test_reply)
{
	const struct reply_case *c = &reply_cases[_i];
	struct arena *a = arena_new(0);
	struct action act = compile_or_die(a, c->type, c->text);
	struct values v = { { 0 }, { 0 }, 0 };
	memcpy(v.val, c->val, sizeof v.val);
	memcpy(v.len, c->len, sizeof v.len);
	struct strbuf b;
	sb_init(&b);

	action_reply(&act, lookup, &v, &b);
	size_t wn = strlen(c->want);
	ck_assert_msg(b.len == wn && memcmp(b.s, c->want, wn) == 0,
		      "%s '%s': got '%s', want '%s'", c->type,
		      esc(0, c->text, c->text ? strlen(c->text) : 0),
		      esc(1, b.s, b.len), esc(2, c->want, wn));
	ck_assert_msg(b.s[b.len] == 0, "reply not NUL-terminated");

	/* action_format is the same without "action=" and the newlines */
	sb_reset(&b);
	action_format(&act, lookup, &v, &b);
	ck_assert_msg(b.len == wn - 9 && memcmp(b.s, c->want + 7, wn - 9) == 0,
		      "format %s: got '%s', want '%s'", c->type, esc(0, b.s, b.len),
		      esc(1, c->want + 7, wn - 9));

	/* the reply appends */
	sb_reset(&b);
	sb_adds(&b, "prefix|");
	action_reply(&act, lookup, &v, &b);
	ck_assert_msg(b.len == wn + 7 && memcmp(b.s + 7, c->want, wn) == 0,
		      "%s: did not append: got '%s'", c->type, esc(0, b.s, b.len));
	sb_free(&b);
	arena_free(a);
}
END_TEST

/* A NULL lookup shows references as written; lookup runs once per reference. */
START_TEST(test_reply_lookup)
{
	struct arena *a = arena_new(0);
	struct action act = compile_or_die(a, "REJECT", "${sender} to ${recipient}, $$1");
	struct strbuf b;
	sb_init(&b);

	action_reply(&act, NULL, NULL, &b);
	ck_assert_str_eq(b.s, "action=REJECT ${sender} to ${recipient}, $1\n\n");

	struct values v = { { [V_SENDER] = "s@x", [V_RECIPIENT] = "r@y" }, { 0 }, 0 };
	sb_reset(&b);
	action_reply(&act, lookup, &v, &b);
	ck_assert_str_eq(b.s, "action=REJECT s@x to r@y, $1\n\n");
	ck_assert_msg(v.calls == 2, "got %d lookups, want 2", v.calls);

	/* constant actions never call lookup */
	act = compile_or_die(a, "OK", NULL);
	v.calls = 0;
	sb_reset(&b);
	action_reply(&act, lookup, &v, &b);
	ck_assert_int_eq(v.calls, 0);
	sb_free(&b);
	arena_free(a);
}
END_TEST

/* ---- truncation at ACTION_MAX_TEXT on a UTF-8 boundary ---------------- */

struct cut_case {
	size_t lit;      /* bytes of 'x' before ${a} */
	const char *val; /* value of a, repeated rep times */
	size_t rep;
	size_t want;     /* bytes of text kept */
	char clean;      /* 0: the value's bytes are kept as they are; else
			    each became this byte */
};

#define EACUTE "\xc3\xa9"        /* 2 bytes */
#define EURO "\xe2\x82\xac"      /* 3 bytes */
#define GRIN "\xf0\x9f\x98\x80"  /* 4 bytes */

static const struct cut_case cut_cases[] = {
	{ 990, "a", 10, 1000, 0 },          /* exactly full: nothing cut */
	{ 990, "a", 11, 1000, 0 },          /* one ASCII byte too many */
	{ 0, "a", 100000, 1000, 0 },        /* a huge value */
	{ 998, EACUTE, 1, 1000, 0 },        /* 2-byte sequence ends at the limit */
	{ 999, EACUTE, 1, 999, 0 },         /* ... straddles it: dropped whole */
	{ 0, EACUTE, 600, 1000, 0 },        /* limit falls between sequences */
	{ 1, EACUTE, 600, 999, 0 },         /* limit falls inside one */
	{ 997, EURO, 1, 1000, 0 },
	{ 998, EURO, 1, 998, 0 },
	{ 999, EURO, 1, 999, 0 },
	{ 996, GRIN, 1, 1000, 0 },
	{ 997, GRIN, 1, 997, 0 },
	{ 998, GRIN, 1, 998, 0 },
	{ 999, GRIN, 1, 999, 0 },
	{ 0, GRIN, 300, 1000, 0 },
	{ 2, GRIN, 300, 998, 0 },
	{ 0, "\xa9", 2000, 1000, '?' },  /* not UTF-8 (Latin-1): '?' each, cut hard */
	{ 999, "\xa9", 5, 1000, '?' },
	{ 999, "\xc3", 5, 1000, '?' },   /* lead bytes without continuation */
};

START_TEST(test_reply_cut)
{
	const struct cut_case *c = &cut_cases[_i];
	struct arena *a = arena_new(0);
	char *text = malloc(c->lit + 8);
	memset(text, 'x', c->lit);
	memcpy(text + c->lit, "${a}", 5);
	struct action act = compile_or_die(a, "REJECT", text);

	size_t vn = strlen(c->val);
	char *val = malloc(vn * c->rep + 1);
	for (size_t i = 0; i < c->rep; i++)
		memcpy(val + i * vn, c->val, vn);
	val[vn * c->rep] = 0;
	struct values v = { { [V_A] = val }, { 0 }, 0 };

	struct strbuf b;
	sb_init(&b);
	action_reply(&act, lookup, &v, &b);

	const size_t head = strlen("action=REJECT ");
	size_t got = b.len - head - 2;
	ck_assert_msg(got == c->want, "%zu x + %zu x '%s': got %zu text bytes, want %zu",
		      c->lit, c->rep, esc(0, c->val, vn), got, c->want);
	ck_assert_msg(memcmp(b.s, "action=REJECT ", head) == 0 &&
			      memcmp(b.s + b.len - 2, "\n\n", 2) == 0,
		      "bad framing: '%s'", esc(0, b.s, b.len > 40 ? 40 : b.len));
	/* what is kept is the start of the full text, unchanged */
	ck_assert(memcmp(b.s + head, text, c->lit < got ? c->lit : got) == 0);
	for (size_t i = c->lit; i < got; i++)
		ck_assert_msg(b.s[head + i] == (c->clean ? c->clean : val[i - c->lit]),
			      "text byte %zu: got '%s'", i, esc(0, b.s + head + i, 1));

	sb_free(&b);
	free(val);
	free(text);
	arena_free(a);
}
END_TEST

/* The cut also applies to action_format, and with literal text only. */
START_TEST(test_format_cut)
{
	struct arena *a = arena_new(0);
	char text[ACTION_MAX_TEXT + 8];
	memset(text, 'y', ACTION_MAX_TEXT - 1);
	memcpy(text + ACTION_MAX_TEXT - 1, "${a}", 5);
	/* 999 literal bytes then the 4-byte reference written as is */
	struct action act = compile_or_die(a, "WARN", text);
	struct strbuf b;
	sb_init(&b);
	action_format(&act, NULL, NULL, &b);
	ck_assert_uint_eq(b.len, strlen("WARN ") + ACTION_MAX_TEXT);
	ck_assert_msg(b.s[b.len - 1] == '$', "got last byte '%c', want '$'", b.s[b.len - 1]);
	sb_free(&b);
	arena_free(a);
}
END_TEST

/* ---- Postfix restrictions and restriction classes ------------------------ */

static const char *const classes[] = { "check_postgrey", "local_only" };

static const struct {
	const char *type, *text;
	const char *reply;   /* NULL: an error */
	const char *msg;     /* the error's message, or a part of it */
	bool in_type;
	size_t offset;
} restr_cases[] = {
	{ "check_postgrey", NULL, "action=check_postgrey\n\n", NULL, false, 0 },
	{ "local_only,", "check_postgrey", "action=local_only, check_postgrey\n\n", NULL, false, 0 },
	{ "reject_unauth_destination", NULL, "action=reject_unauth_destination\n\n", NULL, false, 0 },
	{ "permit_mynetworks,", "reject_unauth_destination",
	  "action=permit_mynetworks, reject_unauth_destination\n\n", NULL, false, 0 },
	{ "reject_rbl_client", "zen.spamhaus.org=127.0.0.[2..11]",
	  "action=reject_rbl_client zen.spamhaus.org=127.0.0.[2..11]\n\n", NULL, false, 0 },
	{ "check_client_access", "  hash:/etc/postfix/x  ",
	  "action=check_client_access hash:/etc/postfix/x\n\n", NULL, false, 0 },
	{ "check_policy_service", "inet:127.0.0.1:10023",
	  "action=check_policy_service inet:127.0.0.1:10023\n\n", NULL, false, 0 },
	{ "sleep", "2", "action=sleep 2\n\n", NULL, false, 0 },
	{ "warn_if_reject", "reject_unknown_helo_hostname",
	  "action=warn_if_reject reject_unknown_helo_hostname\n\n", NULL, false, 0 },
	{ "reject_unknown_client", NULL, "action=reject_unknown_client\n\n", NULL, false, 0 },
	/* an access word first stays that word */
	{ "reject", "go away", "action=REJECT go away\n\n", NULL, false, 0 },
	/* errors */
	{ "check_postgray", NULL, NULL, "did you mean 'check_postgrey'?", true, 0 },
	{ "check_greylist", NULL, NULL, "set restriction_classes check_greylist", true, 0 },
	{ "reject_rbl_client", NULL, NULL, "reject_rbl_client needs a DNS list domain", true, 0 },
	{ "reject_rbl_client", "nodot", NULL, "takes a DNS list domain", false, 0 },
	{ "check_client_access", "x", NULL, "takes a Postfix lookup table", false, 0 },
	{ "check_client_access", ":x", NULL, "takes a Postfix lookup table", false, 0 },
	{ "sleep", "1s", NULL, "sleep takes a number of seconds", false, 0 },
	{ "reject_unauth_destination", "x, check_policy", NULL, "unknown restriction 'x'", false, 0 },
	{ "reject_unauth_destination", "check_policy", NULL,
	  "unknown restriction 'check_policy'", false, 0 },
	{ "reject_rbl_client", "${sender}", NULL, "cannot use variables", false, 0 },
	{ "permit", NULL, NULL, "did you mean 'OK'?", true, 0 },
	{ "Check_Postgrey", NULL, NULL, "did you mean 'check_postgrey'?", true, 0 },
	{ "NOPE_NOPE", NULL, NULL, "valid actions are", true, 0 },
};

START_TEST(test_restrictions)
{
	struct arena *a = arena_new(0);
	struct action_vocab v = { classes, ARRAY_LEN(classes) };
	struct action act;
	struct action_error err;
	const char *type = restr_cases[_i].type, *text = restr_cases[_i].text;
	bool ok = action_compile_in(&v, a, type, text, resolve, NULL, &act, &err);
	if (restr_cases[_i].reply) {
		ck_assert_msg(ok, "%s %s: got error \"%s\"", type, text ? text : "", err.msg);
		struct strbuf out;
		sb_init(&out);
		action_reply(&act, NULL, NULL, &out);
		ck_assert_msg(strcmp(out.s, restr_cases[_i].reply) == 0, "%s %s: got %s, want %s", type,
			      text ? text : "", out.s, restr_cases[_i].reply);
		sb_free(&out);
	} else {
		ck_assert_msg(!ok, "%s %s: got success, want an error", type, text ? text : "");
		ck_assert_msg(err.msg && strstr(err.msg, restr_cases[_i].msg), "%s %s: got \"%s\", want "
			      "\"%s\" in it", type, text ? text : "", err.msg, restr_cases[_i].msg);
		ck_assert_msg(err.in_type == restr_cases[_i].in_type, "%s %s: in_type %d", type,
			      text ? text : "", err.in_type);
		free((char *)err.msg);
	}
	arena_free(a);
}
END_TEST

/* Without a vocabulary (action_compile), no class is known. */
START_TEST(test_restriction_class_needs_declaring)
{
	struct arena *a = arena_new(0);
	struct action act;
	struct action_error err;
	ck_assert(!action_compile(a, "check_postgrey", NULL, resolve, NULL, &act, &err));
	ck_assert_msg(strstr(err.msg, "declare it: set restriction_classes check_postgrey"), "%s",
		      err.msg);
	free((char *)err.msg);
	ck_assert(action_compile(a, "permit_auth_destination", NULL, resolve, NULL, &act, &err));
	ck_assert_int_eq(act.kind, ACT_RESTRICTION);
	ck_assert(action_is_restriction("reject_unauth_destination"));
	ck_assert(!action_is_restriction("check_postgrey"));
	arena_free(a);
}
END_TEST

Suite *action_suite(void)
{
	Suite *s = suite_create("action");
	TCase *tc = tcase_create("compile");
	tcase_add_loop_test(tc, test_compile_valid, 0, (int)ARRAY_LEN(valid_cases));
	tcase_add_loop_test(tc, test_compile_error, 0, (int)ARRAY_LEN(error_cases));
	tcase_add_loop_test(tc, test_compile_ignored_text, 0, (int)ARRAY_LEN(ignored_cases));
	tcase_add_test(tc, test_compile_resolver);
	tcase_add_test(tc, test_compile_segments);
	tcase_add_test(tc, test_compile_length);
	tcase_add_test(tc, test_kind_name);
	tcase_add_loop_test(tc, test_restrictions, 0, (int)ARRAY_LEN(restr_cases));
	tcase_add_test(tc, test_restriction_class_needs_declaring);
	suite_add_tcase(s, tc);

	tc = tcase_create("reply");
	tcase_add_loop_test(tc, test_reply, 0, (int)ARRAY_LEN(reply_cases));
	tcase_add_test(tc, test_reply_lookup);
	tcase_add_loop_test(tc, test_reply_cut, 0, (int)ARRAY_LEN(cut_cases));
	tcase_add_test(tc, test_format_cut);
	suite_add_tcase(s, tc);
	return s;
}
