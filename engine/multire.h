/*
 * multire - many PCRE2 regular expressions answered by one scan: the
 * patterns go into one Vectorscan (portable Hyperscan) block-mode
 * database, and one hs_scan of a subject says which of them match.
 *
 * The meaning is PCRE2's, always. Each pattern takes one of three paths,
 * decided when the set is built (multire_path says which, and why):
 *
 *   MULTIRE_EXACT      Vectorscan compiles it with the flags that mirror
 *                      the PCRE2 options, and its yes/no is PCRE2's;
 *   MULTIRE_PREFILTER  Vectorscan refuses it as written (a back-reference,
 *                      ...) but accepts it in prefilter mode, where it
 *                      reports a superset of the subjects that match: a
 *                      report is confirmed with pcre2_match;
 *   MULTIRE_PCRE       left to PCRE2 alone: Vectorscan refuses it even as
 *                      a prefilter (lookaround, atomic groups, ...), or it
 *                      uses something whose meaning Vectorscan does not
 *                      share (PCRE2's start-of-pattern verbs, code points
 *                      past ASCII that case-fold into it), or the set is
 *                      too small to be worth a database (multire_build).
 *
 * Subjects: a Vectorscan database in UTF-8 mode is undefined on input
 * that is not UTF-8, while PCRE2_MATCH_INVALID_UTF matches such input;
 * and PCRE2's Unicode case folding is not Vectorscan's. So the database
 * holds only patterns of ASCII and scans only subjects of ASCII bytes,
 * where byte mode means what UTF-8 mode does; any other subject (rare in
 * SMTP: SMTPUTF8 addresses, or junk), and one with a newline (which no
 * attribute holds), runs through every pattern's PCRE2 code, as without
 * a database. tests/unit/test_multire.c and tests/fuzz/fuzz_multire.c
 * hold both paths to the same answers.
 *
 * Split: a set of many patterns is several databases, one for the
 * patterns PCRE2 cannot say the first byte of, and the others by the
 * first byte a match must start with, so that a scan meets only the
 * anchored patterns its subject could match (multire.c, struct mr_db;
 * docs/dev/performance.md, "100,000 patterns"). Still one or two scans a
 * subject, and each pattern reported at most once.
 *
 * Memory: Vectorscan's databases and scratch of 2 MB or more are mapped
 * on their own and advised to use transparent huge pages (multire.c,
 * hs_block_alloc); multire installs that allocator for the whole process
 * (hs_set_database_allocator, hs_set_scratch_allocator) on its first
 * build, so nothing else in a process may allocate Vectorscan databases
 * before it.
 *
 * Threads: building may run on any thread (mxacld compiles a reload on a
 * worker). Scanning uses the set's own scratch space and match data,
 * allocated once when it is built (hs_alloc_scratch), never per scan; so
 * one thread at a time scans a set: in mxacld the loop, in mxacl the one
 * thread. A second concurrent scan is detected by Vectorscan
 * (HS_SCRATCH_IN_USE) and answered with PCRE2, never with a wrong answer.
 *
 * The cache: multire_build_with may keep the serialized database in a
 * file (engine/recache.h) under a SHA-256 of what it depends on
 * (Vectorscan's version, the platform, the flags, each pattern's text and
 * path), and take it from there the next time instead of compiling; the
 * file is checked, never trusted.
 *
 * Callers: a string acl's regexes (acl/string.c), and the regex terms of
 * consecutive access lines as one set whose pattern index names a line
 * (engine/compile.c, regex runs; docs/dev/design.md, "Regex runs").
 */
#ifndef MXACL_MULTIRE_H
#define MXACL_MULTIRE_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Fewer regexes than this in one set are left to PCRE2 alone: one hs_scan
 * costs about what a few JIT matches do (docs/dev/performance.md). */
#define MULTIRE_MIN 4

enum multire_path { MULTIRE_EXACT, MULTIRE_PREFILTER, MULTIRE_PCRE };

/* One pattern as the caller compiled it. */
struct multire_pattern {
	const char *s;            /* the pattern text (not NUL-terminated);
				     read only while building */
	size_t len;
	pcre2_code *re;           /* compiled with the set's options; borrowed:
				     it must outlive the set */
};

struct multire;

/*
 * Build a set from n patterns, each compiled by the caller with
 * pcre2_compile(options) (and JIT, or not). Copies what it keeps of pats
 * but not the pcre2_code objects. min is the smallest number of patterns
 * worth a database (MULTIRE_MIN; 1 to force one, for tests); below it, or
 * when Vectorscan cannot take the PCRE2 options at all, every pattern is
 * MULTIRE_PCRE. Never fails: whatever Vectorscan refuses runs on PCRE2.
 * Takes as long as Vectorscan's compile: seconds for 10,000 patterns
 * (docs/dev/performance.md), so not on a loop that serves requests.
 * Free with multire_free.
 */
struct multire *multire_build(const struct multire_pattern *pats, size_t n, uint32_t options,
			      size_t min);
void multire_free(struct multire *m);   /* NULL is a no-op */

struct recache;

/* What multire_build_with may do besides multire_build's. */
struct multire_opts {
	struct recache *cache;    /* keep and take the database here
				     (borrowed), or NULL */
	bool classify_only;       /* decide each pattern's path with
				     hs_expression_info, and build no
				     database: the set then answers with
				     PCRE2 alone (mxacl check without
				     --build). A pattern that Vectorscan
				     would refuse only inside the whole set
				     shows as on its own path */
	size_t split_min;         /* split the database by first byte from
				     this many patterns with a short set of
				     first bytes on (multire.c, struct
				     mr_db); 0: the default, a few thousand
				     (1 forces a split, for tests) */
};

/* multire_build with o (NULL: none of it). Only what Vectorscan's compile
 * costs is saved by the cache: the per-pattern checks run either way. */
struct multire *multire_build_with(const struct multire_pattern *pats, size_t n, uint32_t options,
				   size_t min, const struct multire_opts *o);

/* Pattern i's path, and for a path other than MULTIRE_EXACT why (a
 * sentence without a final period, owned by m), else NULL. */
enum multire_path multire_path(const struct multire *m, size_t i, const char **why);
/* The number of patterns on each path (counts[MULTIRE_EXACT], ...). */
void multire_counts(const struct multire *m, size_t counts[3]);
/* Whether m has a Vectorscan database, its size in bytes and its scratch
 * space's, and how long it took to build (for dump and the benchmark). */
bool multire_db_info(const struct multire *m, size_t *db_bytes, size_t *scratch_bytes,
		     double *build_seconds);
/* How many Vectorscan databases m scans from: 0 without one, 1 unless the
 * set is split by first byte (one for the patterns any subject may match,
 * one for each distinct list of patterns a first byte has). */
size_t multire_db_count(const struct multire *m);
/* Whether m's database was read from the cache rather than compiled. */
bool multire_from_cache(const struct multire *m);

/* Called for each pattern that matches, by index, at most once each;
 * return true to stop the scan there. */
typedef bool (*multire_match_fn)(void *ctx, size_t i);

/*
 * Match subject s (len bytes) against every pattern, as pcre2_match with
 * no options from offset 0 would: fn(ctx, i) for each pattern i that
 * matches, in no particular order. Returns true when fn stopped it.
 * Never calls back after returning. Not re-entrant for one m (see above).
 */
bool multire_scan(struct multire *m, const char *s, size_t len, multire_match_fn fn, void *ctx);

/* Whether any pattern matches s. */
bool multire_any(struct multire *m, const char *s, size_t len);

/* Pattern i alone through PCRE2 (the reference the tests compare with). */
bool multire_pcre_match(const struct multire *m, size_t i, const char *s, size_t len);

#endif
