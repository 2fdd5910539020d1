/*
 * Unit tests for engine/strmap: case folding, exact byte keys, probe
 * collisions, and growth to a million keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/strmap.h"
#include "tests/unit/unit.h"
#include "util/util.h"

struct kv {
	const char *key;
	size_t len;        /* 0: strlen(key) */
	uint32_t value;
};

static size_t kv_len(const struct kv *k)
{
	return k->len ? k->len : strlen(k->key);
}

/* Keys put in order; a later put of an equal key (any case) keeps the first slot. */
static const struct kv basic_puts[] = {
	{ "example.com", 0, 1 },
	{ "Example.ORG", 0, 2 },
	{ "ab", 0, 3 },
	{ "abc", 0, 4 },
	{ "a\0b", 3, 5 },
	{ "a\0c", 3, 6 },
	{ "a", 0, 7 },
	{ "\xc3\x89", 0, 8 },     /* É: bytes above ASCII are not folded */
	{ "\xc3\xa9", 0, 9 },     /* é */
	{ "MiXeD-123_@[]", 0, 10 },
	{ "@", 0, 11 },           /* '@' is one below 'A' */
	{ "`", 0, 12 },           /* '`' is one below 'a' */
	{ "[", 0, 13 },           /* '[' is one above 'Z' */
	{ "{", 0, 14 },           /* '{' is one above 'z' */
};

static const struct {
	const char *key;
	size_t len;
	uint32_t want;   /* 0: absent */
} basic_gets[] = {
	{ "example.com", 0, 1 },
	{ "EXAMPLE.COM", 0, 1 },
	{ "eXaMpLe.CoM", 0, 1 },
	{ "example.org", 0, 2 },
	{ "EXAMPLE.ORG", 0, 2 },
	{ "example.co", 0, 0 },
	{ "example.comm", 0, 0 },
	{ "AB", 0, 3 },
	{ "aBc", 0, 4 },
	{ "abcd", 0, 0 },
	{ "a\0b", 3, 5 },
	{ "A\0B", 3, 5 },
	{ "a\0c", 3, 6 },
	{ "a\0d", 3, 0 },
	{ "a", 0, 7 },
	{ "A", 0, 7 },
	{ "", 0, 0 },
	{ "\xc3\x89", 0, 8 },
	{ "\xc3\xa9", 0, 9 },
	{ "mixed-123_@[]", 0, 10 },
	{ "MIXED-123_@[]", 0, 10 },
	{ "mixed-123_`{}", 0, 0 },  /* folding must not touch @ [ ] */
	{ "@", 0, 11 },
	{ "`", 0, 12 },
	{ "[", 0, 13 },
	{ "{", 0, 14 },
};

static struct strmap *basic_map(void)
{
	struct strmap *m = strmap_new();
	for (size_t i = 0; i < ARRAY_LEN(basic_puts); i++) {
		bool added = false;
		uint32_t *v = strmap_put(m, basic_puts[i].key, kv_len(&basic_puts[i]), &added);
		ck_assert_msg(added, "put(%s): got added=0, want 1", basic_puts[i].key);
		ck_assert_msg(*v == 0, "put(%s): new slot got %u, want 0", basic_puts[i].key, *v);
		*v = basic_puts[i].value;
	}
	return m;
}

START_TEST(test_strmap_basic)
{
	struct strmap *m = basic_map();
	const char *key = basic_gets[_i].key;
	size_t len = basic_gets[_i].len ? basic_gets[_i].len : strlen(key);
	const uint32_t *v = strmap_get(m, key, len);

	if (basic_gets[_i].want == 0)
		ck_assert_msg(v == NULL, "get(\"%s\"): got %u, want absent", key, v ? *v : 0);
	else
		ck_assert_msg(v && *v == basic_gets[_i].want, "get(\"%s\"): got %s%u, want %u", key,
			      v ? "" : "absent ", v ? *v : 0, basic_gets[_i].want);
	ck_assert_msg(strmap_count(m) == ARRAY_LEN(basic_puts), "count: got %zu, want %zu",
		      strmap_count(m), ARRAY_LEN(basic_puts));
	strmap_free(m);
}
END_TEST

START_TEST(test_strmap_put_existing)
{
	struct strmap *m = basic_map();
	bool added = true;
	uint32_t *v = strmap_put(m, "EXAMPLE.com", 11, &added);

	ck_assert_msg(!added, "re-put in another case: got added=1, want 0");
	ck_assert_msg(*v == 1, "re-put: got value %u, want 1", *v);
	*v = 42;
	const uint32_t *g = strmap_get(m, "example.COM", 11);
	ck_assert_msg(g && *g == 42, "after set through put: got %u, want 42", g ? *g : 0);
	ck_assert_msg(strmap_count(m) == ARRAY_LEN(basic_puts), "count: got %zu, want %zu",
		      strmap_count(m), ARRAY_LEN(basic_puts));
	/* added may be NULL */
	v = strmap_put(m, "new.key", 7, NULL);
	ck_assert_msg(*v == 0, "put with added NULL: got %u, want 0", *v);
	strmap_free(m);
}
END_TEST

START_TEST(test_strmap_empty_key_and_copy)
{
	struct strmap *m = strmap_new();
	char buf[16];
	bool added;

	ck_assert_msg(strmap_get(m, "", 0) == NULL, "empty map: got a value for \"\"");
	*strmap_put(m, "", 0, &added) = 5;
	ck_assert_msg(added, "put(\"\"): got added=0, want 1");
	const uint32_t *v = strmap_get(m, "", 0);
	ck_assert_msg(v && *v == 5, "get(\"\"): got %u, want 5", v ? *v : 0);

	/* the map keeps its own folded copy, not the caller's buffer */
	strcpy(buf, "Copied.Key");
	*strmap_put(m, buf, strlen(buf), &added) = 6;
	memset(buf, 'z', sizeof buf - 1);
	v = strmap_get(m, "copied.key", 10);
	ck_assert_msg(v && *v == 6, "get after the caller's buffer changed: got %u, want 6",
		      v ? *v : 0);
	ck_assert_msg(strmap_get(m, buf, 10) == NULL, "got a value for the overwritten buffer");
	strmap_free(m);
	strmap_free(NULL);
}
END_TEST

/* strmap_key_at walks keys in insertion order, folded and NUL-terminated. */
START_TEST(test_strmap_key_at)
{
	struct strmap *m = basic_map();
	/* a repeated key in another case adds nothing */
	strmap_put(m, "EXAMPLE.COM", 11, NULL);
	ck_assert_msg(strmap_count(m) == ARRAY_LEN(basic_puts), "count: got %zu, want %zu",
		      strmap_count(m), ARRAY_LEN(basic_puts));
	for (size_t i = 0; i < ARRAY_LEN(basic_puts); i++) {
		size_t want_len = kv_len(&basic_puts[i]), len = 999;
		char want[32];
		ascii_lower_copy(want, basic_puts[i].key, want_len);
		const char *got = strmap_key_at(m, i, &len);
		ck_assert_msg(len == want_len && memcmp(got, want, len) == 0 && got[len] == 0,
			      "key_at(%zu): got \"%.*s\" (%zu bytes), want \"%.*s\" (%zu bytes), NUL-terminated",
			      i, (int)len, got, len, (int)want_len, want, want_len);
		const uint32_t *v = strmap_get(m, got, len);
		ck_assert_msg(v && *v == basic_puts[i].value, "get(key_at(%zu)): got %u, want %u", i,
			      v ? *v : 0, basic_puts[i].value);
	}
	ck_assert_msg(strmap_count(NULL) == 0, "count(NULL): got %zu, want 0", strmap_count(NULL));
	strmap_free(m);
}
END_TEST

/*
 * strmap_pack: a map of a few keys frozen into the caller's buffer answers
 * every lookup, count and key_at as the map it was made from, and
 * strmap_free leaves the buffer alone (ASan would see a free of it). A map
 * with an index, or NULL, is not packed.
 */
START_TEST(test_strmap_pack)
{
	struct strmap *m = strmap_new(), *want = strmap_new();
	for (size_t i = 0; i < 8; i++) {
		*strmap_put(m, basic_puts[i].key, kv_len(&basic_puts[i]), NULL) = basic_puts[i].value;
		*strmap_put(want, basic_puts[i].key, kv_len(&basic_puts[i]), NULL) = basic_puts[i].value;
	}
	size_t size = strmap_packed_size(m);
	ck_assert_msg(size > 0 && size < 8 * 16 + 64, "packed size of 8 short keys: %zu", size);
	char *buf = xmalloc(size);
	struct strmap *p = strmap_pack(m, buf);
	ck_assert_msg(p == (struct strmap *)buf, "the packed map is in the buffer");
	ck_assert_msg(strmap_packed_size(p) == 0, "a packed map packs no further");
	ck_assert_msg(strmap_count(p) == 8, "count: got %zu, want 8", strmap_count(p));
	for (size_t i = 0; i < 8; i++) {
		size_t len, wlen;
		const char *got = strmap_key_at(p, i, &len), *w = strmap_key_at(want, i, &wlen);
		ck_assert_msg(len == wlen && !memcmp(got, w, len) && got[len] == 0,
			      "key_at(%zu): got \"%.*s\", want \"%.*s\"", i, (int)len, got, (int)wlen, w);
	}
	for (size_t i = 0; i < ARRAY_LEN(basic_gets); i++) {
		size_t len = basic_gets[i].len ? basic_gets[i].len : strlen(basic_gets[i].key);
		const uint32_t *g = strmap_get(p, basic_gets[i].key, len);
		const uint32_t *w = strmap_get(want, basic_gets[i].key, len);
		ck_assert_msg((g == NULL) == (w == NULL) && (!g || *g == *w),
			      "get(%s) packed: got %u, want %u", basic_gets[i].key, g ? *g : 0,
			      w ? *w : 0);
	}
	strmap_free(p);      /* a no-op: the buffer is the caller's */
	free(buf);
	strmap_free(want);

	struct strmap *big = basic_map();
	ck_assert_msg(strmap_packed_size(big) == 0, "a map with an index is not packed");
	ck_assert_msg(strmap_packed_size(NULL) == 0, "NULL is not packed");
	strmap_free(big);
}
END_TEST

/*
 * Keys whose hashes agree in the low 12 bits land in the same slot of every
 * table up to 4096 slots, so they all chain through linear probing.
 */
#define COLLIDE_BITS 0xfffu
#define COLLIDE_KEYS 48

START_TEST(test_strmap_collisions)
{
	char keys[COLLIDE_KEYS * 2][32];
	size_t n = 0;
	uint64_t target = hash_bytes("seed", 4, true) & COLLIDE_BITS;

	for (unsigned i = 0; n < ARRAY_LEN(keys); i++) {
		char k[32];
		int len = snprintf(k, sizeof k, "Key%u.Example", i);
		if ((hash_bytes(k, (size_t)len, true) & COLLIDE_BITS) == target)
			memcpy(keys[n++], k, (size_t)len + 1);
	}
	/* put the first half; the second half collides too but stays absent */
	struct strmap *m = strmap_new();
	for (size_t i = 0; i < COLLIDE_KEYS; i++) {
		bool added;
		uint32_t *v = strmap_put(m, keys[i], strlen(keys[i]), &added);
		ck_assert_msg(added, "put(%s): got added=0, want 1", keys[i]);
		*v = (uint32_t)i + 100;
	}
	for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
		char up[32];
		size_t len = strlen(keys[i]);
		for (size_t j = 0; j <= len; j++)
			up[j] = ascii_upper(keys[i][j]);
		const uint32_t *v = strmap_get(m, up, len);
		if (i < COLLIDE_KEYS)
			ck_assert_msg(v && *v == i + 100, "get(%s): got %u, want %zu", up, v ? *v : 0,
				      i + 100);
		else
			ck_assert_msg(v == NULL, "get(%s): got %u, want absent", up, *v);
	}
	ck_assert_msg(strmap_count(m) == COLLIDE_KEYS, "count: got %zu, want %d", strmap_count(m),
		      COLLIDE_KEYS);
	strmap_free(m);
}
END_TEST

#define MANY_KEYS 1000000u

START_TEST(test_strmap_million)
{
	struct strmap *m = strmap_new();
	char k[48];

	for (uint32_t i = 0; i < MANY_KEYS; i++) {
		int len = snprintf(k, sizeof k, "host%u.Example.NET", i);
		bool added;
		uint32_t *v = strmap_put(m, k, (size_t)len, &added);
		if (!added)
			ck_abort_msg("put(%s): got added=0, want 1", k);
		*v = i ^ 0x5a5a5a5au;
	}
	ck_assert_msg(strmap_count(m) == MANY_KEYS, "count: got %zu, want %u", strmap_count(m),
		      MANY_KEYS);
	for (uint32_t i = 0; i < MANY_KEYS; i++) {
		/* every third lookup in another case */
		int len = snprintf(k, sizeof k, i % 3 ? "host%u.example.net" : "HOST%u.EXAMPLE.NET", i);
		const uint32_t *v = strmap_get(m, k, (size_t)len);
		if (!v || *v != (i ^ 0x5a5a5a5au))
			ck_abort_msg("get(%s): got %s%u, want %u", k, v ? "" : "absent ", v ? *v : 0,
				     i ^ 0x5a5a5a5au);
	}
	for (uint32_t i = MANY_KEYS; i < MANY_KEYS + 20000; i++) {
		int len = snprintf(k, sizeof k, "host%u.example.net", i);
		const uint32_t *v = strmap_get(m, k, (size_t)len);
		if (v)
			ck_abort_msg("get(%s): got %u, want absent", k, *v);
	}
	strmap_free(m);
}
END_TEST

Suite *strmap_suite(void)
{
	Suite *s = suite_create("strmap");
	TCase *tc = tcase_create("basic");
	tcase_add_loop_test(tc, test_strmap_basic, 0, ARRAY_LEN(basic_gets));
	tcase_add_test(tc, test_strmap_put_existing);
	tcase_add_test(tc, test_strmap_empty_key_and_copy);
	tcase_add_test(tc, test_strmap_key_at);
	tcase_add_test(tc, test_strmap_pack);
	tcase_add_test(tc, test_strmap_collisions);
	suite_add_tcase(s, tc);

	tc = tcase_create("growth");
	tcase_set_timeout(tc, 120);   /* a million keys under the sanitizers */
	tcase_add_test(tc, test_strmap_million);
	suite_add_tcase(s, tc);
	return s;
}
