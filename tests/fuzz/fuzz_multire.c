/*
 * Fuzz target: engine/multire against PCRE2 alone. The input is lines:
 * patterns up to the first empty line, subjects after it. The patterns
 * PCRE2 takes (compiled as acl/string.c compiles a regex value) become one
 * set; every subject must get, pattern by pattern, exactly PCRE2's answer
 * through the one scan, or the target aborts with both. An input of odd
 * length has its set split by first byte (multire.h), as a long list is.
 *
 *   make fuzz        (clang's libFuzzer; tests/fuzz/test_fuzz.py runs it)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/multire.h"
#include "util/util.h"

#define OPTS (PCRE2_CASELESS | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF)
#define MAX_PATS 8
#define MAX_LEN 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool record(void *ctx, size_t i)
{
	unsigned char *hit = ctx;
	if (hit[i]) {
		fprintf(stderr, "fuzz_multire: pattern %zu reported twice\n", i);
		abort();
	}
	hit[i] = 1;
	return false;
}

/* A pattern Vectorscan would spend long compiling ("a{999}"), or not
 * worth the time: three digits in a row, or too long. */
static bool too_costly(const char *s, size_t len)
{
	if (len > MAX_LEN)
		return true;
	for (size_t i = 0; i + 2 < len; i++)
		if (s[i] >= '0' && s[i] <= '9' && s[i + 1] >= '0' && s[i + 1] <= '9' &&
		    s[i + 2] >= '0' && s[i + 2] <= '9')
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	struct multire_pattern pats[MAX_PATS];
	size_t n = 0;
	/* patterns: lines up to the first empty one */
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		const char *line = p;
		p = nl ? nl + 1 : end;
		if (e == line)
			break;
		if (n == MAX_PATS || too_costly(line, (size_t)(e - line)))
			continue;
		int code;
		PCRE2_SIZE off;
		pcre2_code *re = pcre2_compile((PCRE2_SPTR)line, (size_t)(e - line), OPTS, &code, &off,
					       NULL);
		if (!re)
			continue;
		pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
		pats[n++] = (struct multire_pattern){ line, (size_t)(e - line), re };
	}
	if (n == 0)
		return 0;
	/* an input of odd length also splits the set by first byte
	 * (multire.h), whatever its size */
	struct multire_opts o = { .split_min = size % 2 ? 1 : 0 };
	struct multire *m = multire_build_with(pats, n, OPTS, 1, &o);
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);
	/* subjects: the other lines, never empty (acl/string.c scans none) */
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *s = p, *e = nl ? nl : end;
		size_t len = (size_t)(e - s);
		p = nl ? nl + 1 : end;
		if (len == 0 || len > 256)
			continue;
		unsigned char hit[MAX_PATS] = { 0 };
		multire_scan(m, s, len, record, hit);
		bool any = false;
		for (size_t i = 0; i < n; i++) {
			int rc = pcre2_match(pats[i].re, (PCRE2_SPTR)s, len, 0, 0, md, NULL);
			if (rc < 0 && rc != PCRE2_ERROR_NOMATCH)
				continue;   /* PCRE2 gave up (a match limit): no reference */
			any |= rc >= 0;
			if ((rc >= 0) != (hit[i] != 0)) {
				const char *why;
				enum multire_path path = multire_path(m, i, &why);
				fprintf(stderr,
					"fuzz_multire: /%.*s/ (path %d) on \"%.*s\": one scan %s, "
					"PCRE2 %s\n",
					(int)pats[i].len, pats[i].s, (int)path, (int)len, s,
					hit[i] ? "matches" : "does not", rc >= 0 ? "matches" : "does not");
				abort();
			}
		}
		if (any && !multire_any(m, s, len)) {
			fprintf(stderr, "fuzz_multire: any says no on \"%.*s\"\n", (int)len, s);
			abort();
		}
	}
	pcre2_match_data_free(md);
	multire_free(m);
	for (size_t i = 0; i < n; i++)
		pcre2_code_free(pats[i].re);
	return 0;
}
