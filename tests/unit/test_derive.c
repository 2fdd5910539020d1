/*
 * Derived attributes (engine/attrs.h ATTR_DERIVED, engine/derive.c): each
 * row computed through req_get() from a parsed request, as acls and the
 * VM read them. The registered domains come from libpsl's built-in list:
 * multi-label public suffixes (co.uk), wildcard and exception rules
 * (*.kawasaki.jp, !city.kawasaki.jp), a private suffix (blogspot.com),
 * IDNs as A-labels and as UTF-8.
 */
#include <string.h>

#include "engine/attrs.h"
#include "engine/request.h"
#include "tests/unit/unit.h"

/* Parse text as one request into a fresh request (caller frees). */
static struct request *parse(const char *text)
{
	struct request *r = req_new();
	const char *err = NULL;
	ck_assert_msg(req_parse(r, text, strlen(text), &err), "parse: %s", err ? err : "?");
	return r;
}

static const struct {
	const char *request;     /* attribute lines */
	const char *attr;        /* the derived attribute asked for */
	const char *want;        /* its value */
} cases[] = {
	/* the split: case kept as sent, the last '@' separates */
	{ "sender=Joe@Example.COM", "sender_domain", "Example.COM" },
	{ "sender=Joe@Example.COM", "sender_localpart", "Joe" },
	{ "sender=\"a@b\"@example.com", "sender_domain", "example.com" },
	{ "sender=\"a@b\"@example.com", "sender_localpart", "\"a@b\"" },
	{ "recipient=sales@Example.org", "recipient_domain", "Example.org" },
	{ "recipient=sales@Example.org", "recipient_localpart", "sales" },
	/* the null sender, an absent one, and no '@' at all: no parts */
	{ "sender=", "sender_domain", "" },
	{ "sender=", "sender_localpart", "" },
	{ "sender=", "sender_org_domain", "" },
	{ "client_name=x", "sender_domain", "" },
	{ "sender=postmaster", "sender_domain", "" },
	{ "sender=postmaster", "sender_localpart", "" },
	{ "sender=user@", "sender_domain", "" },
	{ "sender=user@", "sender_localpart", "user" },
	/* registered domains: lower case, trailing dot dropped */
	{ "sender=a@Mail.Example.CO.UK", "sender_org_domain", "example.co.uk" },
	{ "sender=a@example.co.uk", "sender_org_domain", "example.co.uk" },
	{ "sender=a@co.uk", "sender_org_domain", "" },
	{ "sender=a@mail.example.com.", "sender_org_domain", "example.com" },
	{ "sender=a@x.y.blogspot.com", "sender_org_domain", "y.blogspot.com" },
	{ "sender=a@blogspot.com", "sender_org_domain", "" },
	{ "client_name=mx1.out.Example.ORG", "client_domain", "example.org" },
	{ "client_name=unknown", "client_domain", "" },
	{ "client_name=", "client_domain", "" },
	{ "helo_name=www.city.kawasaki.jp", "helo_domain", "city.kawasaki.jp" },
	{ "helo_name=a.b.kawasaki.jp", "helo_domain", "a.b.kawasaki.jp" },
	{ "helo_name=b.kawasaki.jp", "helo_domain", "" },
	{ "helo_name=localhost", "helo_domain", "" },
	{ "helo_name=[192.0.2.1]", "helo_domain", "" },
	{ "helo_name=192.0.2.1", "helo_domain", "" },
	{ "helo_name=[IPv6:2001:db8::1]", "helo_domain", "" },
	{ "sender=a@[192.0.2.1]", "sender_org_domain", "" },
	{ "helo_name=.", "helo_domain", "" },
	{ "helo_name=a@b.example.com", "helo_domain", "" },
	/* IDN: an A-label stays one, UTF-8 stays UTF-8 (its letters folded) */
	{ "sender=a@mail.xn--bcher-kva.de", "sender_org_domain", "xn--bcher-kva.de" },
	{ "sender=a@Mail.B\xc3\x9c" "CHER.de", "sender_org_domain", "b\xc3\xbc" "cher.de" },
	{ "helo_name=mx.example.xn--55qx5d.cn", "helo_domain", "example.xn--55qx5d.cn" },
	{ "helo_name=mx.example.\xe5\x85\xac\xe5\x8f\xb8.cn", "helo_domain",
	  "example.\xe5\x85\xac\xe5\x8f\xb8.cn" },
	/* bytes that are not UTF-8 are no name */
	{ "helo_name=mx.b\xfc" "cher.de", "helo_domain", "" },
	{ "helo_name=mx.b\xc3" "cher.de", "helo_domain", "" },        /* cut short */
	{ "helo_name=mx.b\xc0\xae" "cher.de", "helo_domain", "" },    /* overlong */
	{ "helo_name=mx.b\xed\xa0\x80" "cher.de", "helo_domain", "" }, /* surrogate */
	/* a request cannot set a derived attribute: it is ignored */
	{ "sender=a@good.example\nsender_domain=evil.example", "sender_domain", "good.example" },
	{ "sender_org_domain=evil.example", "sender_org_domain", "" },
};

START_TEST(test_derive_table)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct request *r = parse(cases[i].request);
		int id = attr_lookup(cases[i].attr, strlen(cases[i].attr));
		ck_assert_msg(attr_derived(id), "case %zu: %s is not derived", i, cases[i].attr);
		const struct req_value *v = req_get(r, (enum attr_id)id);
		ck_assert_msg(v->len == strlen(v->s) && !strcmp(v->s, cases[i].want),
			      "case %zu: %s of [%s]: got '%s' (len %u), want '%s'", i,
			      cases[i].attr, cases[i].request, v->s, v->len, cases[i].want);
		ck_assert_msg(v->present == (v->len > 0), "case %zu: present %d for '%s'", i,
			      v->present, v->s);
		req_free(r);
	}
}
END_TEST

/* The names, ids and sources of the table, as other modules rely on them. */
START_TEST(test_derive_names)
{
	static const char *const derived[] = { "sender_domain", "sender_localpart",
		"recipient_domain", "recipient_localpart", "client_domain", "helo_domain",
		"sender_org_domain" };
	for (size_t i = 0; i < sizeof derived / sizeof derived[0]; i++) {
		int id = attr_lookup(derived[i], strlen(derived[i]));
		ck_assert_msg(id >= ATTR_SENT_COUNT && id < ATTR_COUNT, "%s: id %d", derived[i], id);
		ck_assert_str_eq(attr_name((enum attr_id)id), derived[i]);
	}
	ck_assert_int_lt(attr_lookup("sender", 6), ATTR_SENT_COUNT);
	ck_assert_int_eq(attr_lookup("sender_domainx", 14), -1);
	ck_assert_int_eq(attr_source(ATTR_sender_org_domain), ATTR_sender_domain);
	ck_assert_int_eq(attr_root(ATTR_sender_org_domain), ATTR_sender);
	ck_assert_int_eq(attr_root(ATTR_helo_domain), ATTR_helo_name);
	ck_assert_int_eq(attr_root(ATTR_recipient), ATTR_recipient);
	ck_assert(attr_is_domain(ATTR_sender_domain) && attr_is_domain(ATTR_helo_name));
	ck_assert(!attr_is_domain(ATTR_sender_localpart) && !attr_is_domain(ATTR_sender));
}
END_TEST

/* Computed once per request, lower-cased on demand, forgotten on reset. */
START_TEST(test_derive_lazy)
{
	struct request *r = parse("sender=Joe@Mail.Example.COM\nhelo_name=x");
	const struct req_value *a = req_get(r, ATTR_sender_domain);
	ck_assert_ptr_eq(req_get(r, ATTR_sender_domain)->s, a->s);
	ck_assert_str_eq(req_lower(r, ATTR_sender_domain), "mail.example.com");
	ck_assert_str_eq(req_lower(r, ATTR_sender_localpart), "joe");
	ck_assert_str_eq(req_get(r, ATTR_sender_org_domain)->s, "example.com");
	req_reset(r);
	const char *text = "sender=b@other.example";
	const char *err = NULL;
	ck_assert(req_parse(r, text, strlen(text), &err));
	ck_assert_str_eq(req_get(r, ATTR_sender_domain)->s, "other.example");
	ck_assert_str_eq(req_get(r, ATTR_sender_org_domain)->s, "other.example");
	ck_assert_str_eq(req_lower(r, ATTR_sender_localpart), "b");
	req_free(r);
}
END_TEST

Suite *derive_suite(void)
{
	Suite *s = suite_create("derive");
	TCase *tc = tcase_create("derive");
	tcase_add_test(tc, test_derive_table);
	tcase_add_test(tc, test_derive_names);
	tcase_add_test(tc, test_derive_lazy);
	suite_add_tcase(s, tc);
	return s;
}
