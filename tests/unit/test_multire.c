/*
 * Unit tests for engine/multire: the paths patterns take, and a
 * differential test holding the one-scan answers to PCRE2's, pattern by
 * pattern, on thousands of generated patterns and subjects and on a real
 * rDNS list (tests/golden/transcript/lists/fqrdns, its source in its
 * header). The patterns are compiled as acl/string.c compiles a regex value.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/multire.h"
#include "engine/recache.h"
#include "tests/unit/unit.h"
#include "util/util.h"

#define OPTS (PCRE2_CASELESS | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF)

/* Patterns and their PCRE2 code, for one set. */
struct pats {
	struct multire_pattern *v;
	size_t n, cap;
};

/* Add pattern s (len bytes); false when PCRE2 refuses it (skipped). */
static bool pats_add(struct pats *p, const char *s, size_t len)
{
	int code;
	PCRE2_SIZE off;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)s, len, OPTS, &code, &off, NULL);
	if (!re)
		return false;
	pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	struct multire_pattern mp = { xstrndup(s, len), len, re };
	VEC_PUSH(p->v, p->n, p->cap, mp);
	return true;
}

static void pats_free(struct pats *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free((char *)p->v[i].s);
		pcre2_code_free(p->v[i].re);
	}
	free(p->v);
	memset(p, 0, sizeof *p);
}

static bool collect(void *ctx, size_t i)
{
	unsigned char *hit = ctx;
	ck_assert_msg(!hit[i], "pattern %zu reported twice", i);
	hit[i] = 1;
	return false;
}

/* The one-scan answer for each pattern must be PCRE2's own; also the
 * any-answer. Returns the number of (pattern, subject) matches seen. */
static size_t compare(struct multire *m, const struct pats *p, const char *s, size_t len)
{
	unsigned char *hit = xcalloc(p->n ? p->n : 1, 1);
	multire_scan(m, s, len, collect, hit);
	size_t matches = 0;
	bool any = false;
	for (size_t i = 0; i < p->n; i++) {
		bool want = multire_pcre_match(m, i, s, len);
		const char *why;
		enum multire_path path = multire_path(m, i, &why);
		ck_assert_msg(hit[i] == want,
			      "pattern /%.*s/ (path %d) on \"%.*s\": got %s, want %s (PCRE2)",
			      (int)p->v[i].len, p->v[i].s, (int)path, (int)len, s,
			      hit[i] ? "match" : "no match", want ? "match" : "no match");
		matches += want;
		any |= want;
	}
	ck_assert_msg(multire_any(m, s, len) == any, "any on \"%.*s\": got %d, want %d", (int)len,
		      s, !any, any);
	free(hit);
	return matches;
}

/* ---- generated patterns ---------------------------------------------------- */

static uint64_t rng_state;

static unsigned rnd(unsigned n)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (unsigned)((rng_state >> 33) % n);
}

/* Pieces of the patterns; each a regex fragment PCRE2 takes alone. */
static const char *const atoms[] = {
	"a", "b", "c", "A", "B", "x", "1", "2", "-", "\\.", ".", "@", "_", "[a-c]", "[^a-c]",
	"[0-9]", "[[:alpha:]]", "[[:digit:]]", "\\d", "\\w", "\\s", "\\W", "\\D", "\\S", "[-.]",
	"[a\\-z]", "\\x41", "\\x{62}", "\\t", "dyn", "DSL", "pool", "(?i:Ab)", "(?-i:ab)",
	/* the fallback paths: back-references, lookaround, atomic, possessive */
	"(a)\\1", "(b|c)\\1", "(?=a)", "(?!b)", "(?<=a)", "(?<!c)", "(?>ab|a)", "a++", "[ab]*+",
	"(?(?=a)a|b)", "\\Ka", "a{,2}", "(?C1)",
	/* past ASCII: to PCRE2 by the gate, or through the subject check */
	"\xc3\xa9", "\xe2\x84\xaa", "\\x{212a}", "[\xc3\xa0-\xc3\xbf]", "\\p{L}",
};
static const char *const quants[] = { "", "", "", "*", "+", "?", "{2}", "{1,3}", "*?", "+?", "{0,2}" };
static const char *const anchors_l[] = { "", "", "", "^", "\\A", "\\b" };
static const char *const anchors_r[] = { "", "", "", "$", "\\z", "\\Z", "\\b", "\\B" };

static void gen_piece(struct strbuf *b, int depth)
{
	unsigned k = rnd(10);
	if (k == 0 && depth < 1) {
		sb_adds(b, rnd(2) ? "(" : "(?:");
		gen_piece(b, depth + 1);
		sb_addc(b, '|');
		gen_piece(b, depth + 1);
		sb_addc(b, ')');
	} else {
		sb_adds(b, atoms[rnd(ARRAY_LEN(atoms))]);
	}
	sb_adds(b, quants[rnd(ARRAY_LEN(quants))]);
}

static void gen_pattern(struct strbuf *b)
{
	b->len = 0;
	sb_adds(b, anchors_l[rnd(ARRAY_LEN(anchors_l))]);
	unsigned n = 1 + rnd(3);
	for (unsigned i = 0; i < n; i++)
		gen_piece(b, 0);
	sb_adds(b, anchors_r[rnd(ARRAY_LEN(anchors_r))]);
}

static const char *const subject_pieces[] = {
	"a", "b", "c", "A", "B", "C", "x", "1", "2", "-", ".", "@", "_", " ", "\t", "ab", "dyn",
	"DSL", "Pool", "\n", "\xc3\xa9", "\xc3\x89", "\xe2\x84\xaa", "k", "K", "\xff", "\xc3",
};

static size_t gen_subject(char *buf, size_t cap)
{
	size_t len = 0, n = rnd(10);
	for (size_t i = 0; i < n; i++) {
		const char *p = subject_pieces[rnd(ARRAY_LEN(subject_pieces))];
		size_t l = strlen(p);
		if (len + l >= cap)
			break;
		memcpy(buf + len, p, l);
		len += l;
	}
	return len;
}

/* 20 sets of 100 generated patterns, each against 300 subjects. */
START_TEST(test_generated)
{
	rng_state = 16;
	struct strbuf b;
	sb_init(&b);
	size_t npats = 0, counts[3] = { 0 }, matches = 0, checks = 0;
	for (int set = 0; set < 20; set++) {
		struct pats p = { 0 };
		while (p.n < 100) {
			gen_pattern(&b);
			pats_add(&p, b.s, b.len);
		}
		struct multire *m = multire_build(p.v, p.n, OPTS, 1);
		size_t c[3];
		multire_counts(m, c);
		for (int k = 0; k < 3; k++)
			counts[k] += c[k];
		char subj[64];
		for (int t = 0; t < 300; t++) {
			size_t len = gen_subject(subj, sizeof subj);
			if (len == 0)
				continue;      /* acl/string.c never matches an empty value */
			matches += compare(m, &p, subj, len);
			checks += p.n;
		}
		npats += p.n;
		multire_free(m);
		pats_free(&p);
	}
	sb_free(&b);
	/* every path taken, and enough matches that "no match" is not all */
	ck_assert_msg(counts[MULTIRE_EXACT] > npats / 4 && counts[MULTIRE_PREFILTER] > 20 &&
			      counts[MULTIRE_PCRE] > 20,
		      "paths: %zu exact, %zu prefilter, %zu pcre of %zu", counts[0], counts[1],
		      counts[2], npats);
	ck_assert_msg(matches > checks / 50, "only %zu matches in %zu checks", matches, checks);
}
END_TEST

/* ---- a real list ------------------------------------------------------------- */

#define FQRDNS "tests/golden/transcript/lists/fqrdns"

static const char *const rdns_names[] = {
	"mail.example.com", "adsl.viettel.vn", "ADSL.VIETTEL.VN", "adsl-1-2-3-4.fast.net.uk",
	"12-34-56-78.fastlink.lt", "dsl1-2-3-4.fastlinkdata.jo", "1-2-3-4.fastres.net",
	"host-1-2.cable.dynamic.kbtelecom.net", "192-0-2-1.pool.nctc.com", "mx1.telus.com",
	"out-ab-12.wireless.telus.com", "1.2.3.4", "abts-kk-dynamic-1.2.3.4.airtelbroadband.in",
	"smtp.airtelbroadband.in", "dynamic.163data.com.cn", "static.example.net",
	"ppp-1-2-3-4.dial.example.org", "dhcp.example.org", "x:y", "\xc3\xa9t\xc3\xa9.example",
};

/* The patterns of FQRDNS (each "/.../" line), every one accepted by PCRE2. */
static struct pats read_fqrdns(void)
{
	FILE *f = fopen(FQRDNS, "r");
	ck_assert_msg(f != NULL, "cannot read %s (run from the repository's top)", FQRDNS);
	struct pats p = { 0 };
	char line[4096];
	while (fgets(line, sizeof line, f)) {
		size_t len = strcspn(line, "\n");
		if (len >= 2 && line[0] == '/' && line[len - 1] == '/')
			ck_assert_msg(pats_add(&p, line + 1, len - 2), "PCRE2 refuses %s", line);
	}
	fclose(f);
	ck_assert_msg(p.n > 1500, "only %zu patterns in %s", p.n, FQRDNS);
	return p;
}

START_TEST(test_real_list)
{
	struct pats p = read_fqrdns();
	struct multire *m = multire_build(p.v, p.n, OPTS, MULTIRE_MIN);
	size_t c[3];
	multire_counts(m, c);
	ck_assert_msg(c[MULTIRE_EXACT] > p.n * 9 / 10, "only %zu of %zu exact", c[0], p.n);
	size_t matches = 0;
	for (size_t i = 0; i < ARRAY_LEN(rdns_names); i++)
		matches += compare(m, &p, rdns_names[i], strlen(rdns_names[i]));
	/* and names made from the generator's pieces */
	rng_state = 7;
	char subj[64];
	for (int t = 0; t < 300; t++) {
		size_t len = gen_subject(subj, sizeof subj);
		if (len)
			matches += compare(m, &p, subj, len);
	}
	ck_assert_msg(matches > 10, "only %zu matches", matches);
	multire_free(m);
	pats_free(&p);
}
END_TEST

/* ---- paths ---------------------------------------------------------------------- */

static const struct {
	const char *pat;
	enum multire_path path;
} path_cases[] = {
	{ "^dsl[0-9]+\\.example\\.net$", MULTIRE_EXACT },
	{ "dyn(amic)?|pool", MULTIRE_EXACT },
	{ "(a+)\\1", MULTIRE_PREFILTER },           /* a back-reference */
	{ "(?<=x)y", MULTIRE_PREFILTER },           /* lookbehind */
	{ "(?>ab|a)c", MULTIRE_PREFILTER },         /* atomic group */
	{ "(?C1)a", MULTIRE_PCRE },                 /* a callout */
	{ "(a)(?1)", MULTIRE_PCRE },                /* a subroutine call */
	{ "a{,3}", MULTIRE_PCRE },                  /* literal before PCRE2 10.43 */
	{ "(*UCP)\\w", MULTIRE_PCRE },              /* a start-of-pattern verb */
	{ "\xe2\x84\xaa", MULTIRE_PCRE },           /* K, the Kelvin sign */
	{ "\\x{212a}", MULTIRE_PCRE },
	{ "\\012", MULTIRE_PCRE },                  /* octal */
	{ "a\\\\x{", MULTIRE_EXACT },              /* an escaped backslash, then "x{" */
};

START_TEST(test_paths)
{
	struct pats p = { 0 };
	for (size_t i = 0; i < ARRAY_LEN(path_cases); i++)
		ck_assert_msg(pats_add(&p, path_cases[i].pat, strlen(path_cases[i].pat)),
			      "PCRE2 refuses %s", path_cases[i].pat);
	struct multire *m = multire_build(p.v, p.n, OPTS, 1);
	for (size_t i = 0; i < ARRAY_LEN(path_cases); i++) {
		const char *why;
		enum multire_path got = multire_path(m, i, &why);
		ck_assert_msg(got == path_cases[i].path, "/%s/: path %d, want %d (%s)",
			      path_cases[i].pat, (int)got, (int)path_cases[i].path, why ? why : "-");
		ck_assert_msg((got == MULTIRE_EXACT) == (why == NULL), "/%s/: reason %s",
			      path_cases[i].pat, why ? why : "none");
	}
	size_t db, scratch;
	double secs;
	ck_assert(multire_db_info(m, &db, &scratch, &secs) && db > 0 && scratch > 0);
	/* the Kelvin sign folds to k in PCRE2: "K" must match it */
	ck_assert(multire_any(m, "K", 1));
	ck_assert(multire_any(m, "aaaa", 4));       /* (a+)\1, confirmed */
	ck_assert(!multire_any(m, "--", 2));      /* (*UCP)\\w takes any letter */
	multire_free(m);

	/* below the minimum every pattern is PCRE2's, with the reason */
	m = multire_build(p.v, 2, OPTS, MULTIRE_MIN);
	const char *why;
	ck_assert(multire_path(m, 0, &why) == MULTIRE_PCRE && strstr(why, "fewer than"));
	ck_assert(!multire_db_info(m, &db, &scratch, &secs));
	ck_assert(multire_any(m, "DSL1.example.net", 16));
	multire_free(m);
	multire_free(NULL);
	pats_free(&p);
}
END_TEST

/* A subject that is not UTF-8 (PCRE2_MATCH_INVALID_UTF) and one past ASCII:
 * both answered by PCRE2, the same as the scan would for ASCII. */
START_TEST(test_subjects)
{
	struct pats p = { 0 };
	const char *pats[] = { "a.b", "^x", "\xc3\xa9", "b$", "zz" };
	for (size_t i = 0; i < ARRAY_LEN(pats); i++)
		pats_add(&p, pats[i], strlen(pats[i]));
	struct multire *m = multire_build(p.v, p.n, OPTS, 1);
	const char *subjects[] = { "a\xff" "b", "a\xc3\xa9" "b", "\xc3\x89", "xb", "A-B", "\xff\xfe" };
	for (size_t i = 0; i < ARRAY_LEN(subjects); i++)
		compare(m, &p, subjects[i], strlen(subjects[i]));
	ck_assert(multire_any(m, "\xc3\x89", 2));   /* É matches é caselessly */
	ck_assert(!multire_any(m, "a\xff\xff" "c", 4));
	multire_free(m);
	pats_free(&p);
}
END_TEST

/* ---- classify only, and the cache ---------------------------------------------- */

/* The paths of set a and set b agree pattern by pattern. */
static void same_paths(struct multire *a, struct multire *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *wa, *wb;
		enum multire_path pa = multire_path(a, i, &wa), pb = multire_path(b, i, &wb);
		ck_assert_msg(pa == pb, "pattern %zu: path %d, want %d", i, (int)pb, (int)pa);
		ck_assert_msg((wa == NULL) == (wb == NULL) && (!wa || !strcmp(wa, wb)),
			      "pattern %zu: why %s, want %s", i, wb ? wb : "-", wa ? wa : "-");
	}
}

/* mxacl check without --build: the same paths as a build, no database,
 * and the answers still PCRE2's. */
START_TEST(test_classify_only)
{
	struct pats p = { 0 };
	for (size_t i = 0; i < ARRAY_LEN(path_cases); i++)
		pats_add(&p, path_cases[i].pat, strlen(path_cases[i].pat));
	struct multire *full = multire_build(p.v, p.n, OPTS, 1);
	struct multire_opts o = { .classify_only = true };
	struct multire *m = multire_build_with(p.v, p.n, OPTS, 1, &o);
	same_paths(full, m, p.n);
	size_t db, scratch;
	double secs;
	ck_assert_msg(!multire_db_info(m, &db, &scratch, &secs), "a database was built");
	const char *subjects[] = { "dsl12.example.net", "K", "aaaa", "--", "xy", "nothing" };
	for (size_t i = 0; i < ARRAY_LEN(subjects); i++)
		compare(m, &p, subjects[i], strlen(subjects[i]));
	multire_free(m);
	multire_free(full);
	pats_free(&p);
}
END_TEST

/* The one cache file in dir, by name (out), or false. */
static bool cache_file(const char *dir, char *out, size_t cap)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, "re-", 3)) {
			snprintf(out, cap, "%s/%s", dir, e->d_name);
			n++;
		}
	if (d)
		closedir(d);
	return n == 1;
}

/* A second build reads what the first stored: the same paths, reasons and
 * answers; a damaged file is not used. */
START_TEST(test_cache)
{
	char dir[] = "/tmp/mxacl-recache-XXXXXX";
	ck_assert(mkdtemp(dir) != NULL);
	struct pats p = { 0 };
	for (size_t i = 0; i < ARRAY_LEN(path_cases); i++)
		pats_add(&p, path_cases[i].pat, strlen(path_cases[i].pat));
	struct recache *rc = recache_new(dir, NULL);
	struct multire_opts o = { .cache = rc };
	recache_begin(rc);
	struct multire *a = multire_build_with(p.v, p.n, OPTS, 1, &o);
	recache_end(rc, true);
	ck_assert(!multire_from_cache(a));
	char path[4096];
	ck_assert_msg(cache_file(dir, path, sizeof path), "no cache file in %s", dir);

	recache_begin(rc);
	struct multire *b = multire_build_with(p.v, p.n, OPTS, 1, &o);
	recache_end(rc, true);
	ck_assert_msg(multire_from_cache(b), "the second build did not read the cache");
	same_paths(a, b, p.n);
	const char *subjects[] = { "dsl12.example.net", "K", "aaaa", "--", "xy", "poolside" };
	for (size_t i = 0; i < ARRAY_LEN(subjects); i++) {
		compare(b, &p, subjects[i], strlen(subjects[i]));
		ck_assert(multire_any(a, subjects[i], strlen(subjects[i])) ==
			  multire_any(b, subjects[i], strlen(subjects[i])));
	}

	/* a byte flipped in the database: rebuilt, not read */
	FILE *f = fopen(path, "r+b");
	ck_assert(f != NULL);
	fseek(f, -50, SEEK_END);
	int ch = fgetc(f);
	fseek(f, -50, SEEK_END);
	fputc(ch ^ 0x20, f);
	fclose(f);
	recache_begin(rc);
	struct multire *c = multire_build_with(p.v, p.n, OPTS, 1, &o);
	recache_end(rc, true);
	ck_assert_msg(!multire_from_cache(c), "a corrupt file was used");
	same_paths(a, c, p.n);

	/* another set: another file, and the first one's removed at the end */
	recache_begin(rc);
	struct multire *d = multire_build_with(p.v, p.n - 1, OPTS, 1, &o);
	recache_end(rc, true);
	char path2[4096];
	ck_assert(cache_file(dir, path2, sizeof path2) && strcmp(path, path2) != 0);

	multire_free(a);
	multire_free(b);
	multire_free(c);
	multire_free(d);
	unlink(path2);
	rmdir(dir);
	recache_free(rc);
	pats_free(&p);
}
END_TEST

/* ---- split by first byte ------------------------------------------------------ */

/* A pattern anchored at the start (so that most have a first-byte set) or
 * not, from the generator's pieces. */
static void gen_anchored(struct strbuf *b)
{
	static const char *const starts[] = { "^", "^", "^", "\\A", "^(?:", "" };
	const char *st = starts[rnd(ARRAY_LEN(starts))];
	b->len = 0;
	sb_adds(b, st);
	unsigned n = 1 + rnd(3);
	for (unsigned i = 0; i < n; i++)
		gen_piece(b, 0);
	if (!strcmp(st, "^(?:")) {
		sb_addc(b, '|');
		gen_piece(b, 0);
		sb_addc(b, ')');
	}
	sb_adds(b, anchors_r[rnd(ARRAY_LEN(anchors_r))]);
}

/* Sets split by first byte (forced: split_min 1) answer as PCRE2 does,
 * pattern by pattern, and are in fact split; and a split set read back
 * from the cache answers the same. */
START_TEST(test_split)
{
	rng_state = 44;
	struct strbuf b;
	sb_init(&b);
	struct multire_opts o = { .split_min = 1 };
	size_t matches = 0, checks = 0, split = 0;
	for (int set = 0; set < 10; set++) {
		struct pats p = { 0 };
		while (p.n < 200) {
			gen_anchored(&b);
			pats_add(&p, b.s, b.len);
		}
		struct multire *m = multire_build_with(p.v, p.n, OPTS, 1, &o);
		split += multire_db_count(m) > 2;
		char subj[64];
		for (int t = 0; t < 300; t++) {
			size_t len = gen_subject(subj, sizeof subj);
			if (len == 0)
				continue;
			matches += compare(m, &p, subj, len);
			checks += p.n;
		}
		multire_free(m);
		pats_free(&p);
	}
	sb_free(&b);
	ck_assert_msg(split >= 8, "only %zu of 10 sets split", split);
	ck_assert_msg(matches > checks / 100, "only %zu matches in %zu checks", matches, checks);

	/* the real list, split, and through the cache */
	struct pats p = read_fqrdns();
	char dir[] = "/tmp/mxacl-recache-XXXXXX";
	ck_assert(mkdtemp(dir) != NULL);
	struct recache *rc = recache_new(dir, NULL);
	o.cache = rc;
	struct multire *m[2];
	for (int k = 0; k < 2; k++) {
		recache_begin(rc);
		m[k] = multire_build_with(p.v, p.n, OPTS, MULTIRE_MIN, &o);
		recache_end(rc, true);
		ck_assert_msg(multire_from_cache(m[k]) == (k == 1), "build %d: from the cache %d", k,
			      multire_from_cache(m[k]));
		ck_assert_msg(multire_db_count(m[k]) > 2, "fqrdns in %zu databases",
			      multire_db_count(m[k]));
	}
	same_paths(m[0], m[1], p.n);
	rng_state = 7;
	size_t hits = 0;
	for (int t = 0; t < 400; t++) {
		char subj[64];
		size_t len = t < (int)ARRAY_LEN(rdns_names) ? strlen(rdns_names[t])
							     : gen_subject(subj, sizeof subj);
		const char *s = t < (int)ARRAY_LEN(rdns_names) ? rdns_names[t] : subj;
		if (len == 0)
			continue;
		for (int k = 0; k < 2; k++)
			hits += compare(m[k], &p, s, len);
	}
	ck_assert_msg(hits > 10, "only %zu matches", hits);
	/* the default does not split a list this short */
	struct multire *whole = multire_build(p.v, p.n, OPTS, MULTIRE_MIN);
	ck_assert_int_eq(multire_db_count(whole), 1);
	multire_free(whole);
	for (int k = 0; k < 2; k++)
		multire_free(m[k]);
	char path[4096];
	if (cache_file(dir, path, sizeof path))
		unlink(path);
	rmdir(dir);
	recache_free(rc);
	pats_free(&p);
}
END_TEST

Suite *multire_suite(void)
{
	Suite *s = suite_create("multire");
	TCase *tc = tcase_create("multire");
	tcase_set_timeout(tc, 900);   /* Vectorscan compiles slowly under load */
	tcase_add_test(tc, test_paths);
	tcase_add_test(tc, test_subjects);
	tcase_add_test(tc, test_classify_only);
	tcase_add_test(tc, test_cache);
	tcase_add_test(tc, test_generated);
	tcase_add_test(tc, test_real_list);
	tcase_add_test(tc, test_split);
	suite_add_tcase(s, tc);
	return s;
}
