/*
 * multire - many PCRE2 regexes in one Vectorscan database (see multire.h).
 */
#include "engine/multire.h"

#include <hs.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "engine/recache.h"
#include "util/digest.h"
#include "util/util.h"

/*
 * The PCRE2 options a set may be compiled with, and the Vectorscan flag of
 * the same meaning. PCRE2_UTF and PCRE2_MATCH_INVALID_UTF have none: the
 * database holds only patterns of ASCII (gate) and scans only subjects of
 * ASCII (multire.h), where a character is a byte and UTF-8 mode means
 * what byte mode does; HS_FLAG_UTF8 would only cost compile time (a
 * third more for an rDNS list) and a larger database. An option not in
 * the table leaves the whole set to PCRE2.
 */
static const struct {
	uint32_t pcre2;
	unsigned hs;
} option_map[] = {
	{ PCRE2_CASELESS, HS_FLAG_CASELESS },
	{ PCRE2_UTF, 0 },
	{ PCRE2_UCP, 0 },          /* \w, \d, \b: the same on ASCII */
	{ PCRE2_DOTALL, HS_FLAG_DOTALL },
	{ PCRE2_MULTILINE, HS_FLAG_MULTILINE },
	{ PCRE2_MATCH_INVALID_UTF, 0 },
};

/* A set is split (struct mr_db) from this many patterns with a first-byte
 * set on: below it the split saves under half a microsecond a value for
 * up to twice the database and compile time (docs/dev/performance.md). A
 * pattern whose set has more bytes than MULTIRE_FANOUT stays in dbs[0]:
 * each byte's database would hold a copy. */
#define MULTIRE_SPLIT_MIN 5000
#define MULTIRE_FANOUT 8

/* Every pattern's flags on top of the mapped ones: a yes/no needs one
 * report per pattern, and "x*" is a pattern PCRE2 accepts (it matches
 * every subject; empty subjects are never scanned). */
#define HS_BASE_FLAGS (HS_FLAG_SINGLEMATCH | HS_FLAG_ALLOWEMPTY)

/*
 * One database of a set. A set of many patterns is split by the first
 * byte a match can start with: Vectorscan runs every anchored DFA of a
 * database on each scan (about one per 850 anchored patterns, 118 for the
 * bench's 100,000), so a subject should meet only the patterns it could
 * match. A pattern PCRE2 knows to be anchored with a short set of first
 * code units (pcre2_pattern_info: PCRE2_ANCHORED, FIRSTCODEUNIT or
 * FIRSTBITMAP, the very test pcre2_match makes before it tries an
 * anchored pattern) goes into the database of each byte of its set; bytes
 * with the same patterns share one database; every other pattern is in
 * dbs[0], scanned for every subject. A subject then scans dbs[0] and at
 * most one other, and meets each pattern at most once.
 */
struct mr_db {
	hs_database_t *db;                   /* NULL: none left for Vectorscan */
	size_t *ids;                         /* the patterns it is made for */
	size_t nids;
	size_t built;                        /* how many of them db holds */
};

struct multire {
	size_t n;
	struct multire_pattern *pats;        /* copies of the caller's (s, re) */
	unsigned char *path;                 /* enum multire_path per pattern */
	char **why;                          /* per pattern, or NULL */
	size_t *pcre_only;                   /* indexes of MULTIRE_PCRE patterns */
	size_t npcre;
	struct mr_db *dbs;                   /* dbs[0] for every subject, the
						others by first byte (split) */
	size_t ndb;
	unsigned char first[128];            /* ASCII first byte -> its dbs
						index, 0 for none */
	hs_scratch_t *scratch;               /* one for all of dbs */
	pcre2_match_data *md;
	size_t db_bytes, scratch_bytes;
	double build_seconds;
	bool from_cache;                     /* the database came from a file */
};

/*
 * Vectorscan's databases and scratch spaces, in memory of their own when
 * large: a scan reads a large database all over (the bench's 100,000
 * patterns: 177 MB), and on 4 KB pages most of those reads also miss the
 * TLB. A block of HUGE_MIN or more is mapped alone, aligned to 2 MB and
 * marked MADV_HUGEPAGE, so that transparent huge pages in "madvise" mode
 * (Debian's default) back it with 2 MB pages: 40 % off a scan at 100,000
 * patterns (docs/dev/performance.md). With THP off it is as good as
 * malloc. Smaller blocks come from malloc. Each block starts with a
 * header of ALLOC_HDR bytes: the mapped length, or 0 from malloc.
 * Installed once per process before the first database is made: a block
 * must be freed by the allocator that made it.
 */
#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_MIN HUGE_PAGE
#define ALLOC_HDR ((size_t)64)

static void *hs_block_alloc(size_t n)
{
	if (n > SIZE_MAX - ALLOC_HDR - 2 * HUGE_PAGE)
		return NULL;
#ifdef MADV_HUGEPAGE
	if (n >= HUGE_MIN) {
		size_t len = (n + ALLOC_HDR + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
		char *p = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return NULL;
		char *a = (char *)(((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
		/* the unaligned head and the tail back to the system */
		if (a > p)
			munmap(p, (size_t)(a - p));
		if (p + len + HUGE_PAGE > a + len)
			munmap(a + len, (size_t)(p + len + HUGE_PAGE - (a + len)));
		madvise(a, len, MADV_HUGEPAGE);   /* advice: no huge pages is no error */
		*(size_t *)a = len;
		return a + ALLOC_HDR;
	}
#endif
	char *p = malloc(n + ALLOC_HDR);
	if (!p)
		return NULL;
	*(size_t *)p = 0;
	return p + ALLOC_HDR;
}

static void hs_block_free(void *q)
{
	if (!q)
		return;
	char *a = (char *)q - ALLOC_HDR;
	size_t len = *(size_t *)a;
	if (len)
		munmap(a, len);
	else
		free(a);
}

static void set_allocators(void)
{
	hs_set_database_allocator(hs_block_alloc, hs_block_free);
	hs_set_scratch_allocator(hs_block_alloc, hs_block_free);
}

static pthread_once_t allocators_once = PTHREAD_ONCE_INIT;

/* The Vectorscan flags that mean options, or false when one has none. */
static bool map_options(uint32_t options, unsigned *flags, uint32_t *unmapped)
{
	*flags = 0;
	uint32_t left = options;
	for (size_t i = 0; i < ARRAY_LEN(option_map); i++)
		if (options & option_map[i].pcre2) {
			*flags |= option_map[i].hs;
			left &= ~option_map[i].pcre2;
		}
	*unmapped = left;
	return left == 0;
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/*
 * What in a pattern Vectorscan might accept with a meaning other than
 * PCRE2's, as a reason, or NULL. Conservative by design: a pattern sent
 * to PCRE2 costs speed, one sent wrongly to Vectorscan costs a wrong
 * answer. An escaped backslash is skipped as a pair, so "\\x{" is a
 * backslash and "x{".
 */
static const char *gate(const char *s, size_t len)
{
	if (memchr(s, 0, len))
		return "it holds a NUL byte (a Vectorscan expression is a C string)";
	if (len >= 2 && s[0] == '(' && s[1] == '*')
		return "it starts with a PCRE2 verb such as (*UCP), which Vectorscan reads otherwise";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x80)
			return "it holds characters past ASCII, which PCRE2 case-folds by Unicode's "
			       "rules (K, the Kelvin sign, matches k)";
		if (c == '{' && i + 1 < len && s[i + 1] == ',')
			return "'{,N}' is a literal in PCRE2 before 10.43 and a repeat from then on";
		if (c != '\\' || i + 1 == len)
			continue;
		char e = s[++i];
		if (strchr("oNpPX", e))
			return "it names a code point or Unicode property (\\o, \\N, \\p, \\P, \\X), "
			       "whose case folding is PCRE2's own";
		if (e == 'x' && i + 1 < len && (s[i + 1] == '{' || (is_hex(s[i + 1]) && s[i + 1] >= '8')))
			return "it names a code point past ASCII (\\x), which PCRE2 case-folds by "
			       "Unicode's rules";
		if (e == '0' || (e >= '1' && e <= '9' && i + 1 < len && s[i + 1] >= '0' && s[i + 1] <= '9'))
			return "an octal escape or a back-reference of two digits, which PCRE2 tells "
			       "apart by the number of groups";
	}
	return NULL;
}

/* s as a C string (Vectorscan's expressions are). */
static char *cstr(const char *s, size_t len)
{
	char *c = xmalloc(len + 1);
	memcpy(c, s, len);
	c[len] = 0;
	return c;
}

/* Whether Vectorscan takes expression e with flags; *err its message. */
static bool hs_accepts(const char *e, unsigned flags, char **err)
{
	hs_expr_info_t *info = NULL;
	hs_compile_error_t *ce = NULL;
	hs_error_t rc = hs_expression_info(e, flags, &info, &ce);
	free(info);
	if (rc == HS_SUCCESS)
		return true;
	if (err) {
		/* its messages end in a period; ours go on after them */
		*err = xstrdup(ce && ce->message ? ce->message : "refused");
		size_t n = strlen(*err);
		if (n && (*err)[n - 1] == '.')
			(*err)[n - 1] = 0;
	}
	hs_free_compile_error(ce);
	return false;
}

static void set_pcre(struct multire *m, size_t i, char *why)
{
	m->path[i] = MULTIRE_PCRE;
	free(m->why[i]);
	m->why[i] = why;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * The ASCII bytes a match of pattern re can start with (set, a bitmap of
 * 128), when PCRE2 knows that every match starts at the subject's start
 * with one of at most MULTIRE_FANOUT of them: false otherwise (the pattern
 * then goes into dbs[0]). PCRE2's own test before it tries an anchored
 * pattern is this one (the first code unit, with its other case when
 * caseless, or the start bitmap); taking both ASCII cases of a first
 * code unit is at most wider. Bytes past ASCII are left out: no subject
 * holding one is scanned (multire.h).
 */
static bool first_bytes(const pcre2_code *re, unsigned char set[16])
{
	uint32_t all = 0, type = 0, cu = 0;
	const uint8_t *bitmap = NULL;
	memset(set, 0, 16);
	if (pcre2_pattern_info(re, PCRE2_INFO_ALLOPTIONS, &all) != 0 || !(all & PCRE2_ANCHORED) ||
	    (all & PCRE2_NO_START_OPTIMIZE) ||
	    pcre2_pattern_info(re, PCRE2_INFO_FIRSTCODETYPE, &type) != 0)
		return false;
	if (type == 1) {
		if (pcre2_pattern_info(re, PCRE2_INFO_FIRSTCODEUNIT, &cu) != 0 || cu >= 128)
			return false;
		set[cu / 8] |= (unsigned char)(1u << (cu % 8));
		if ((cu >= 'a' && cu <= 'z') || (cu >= 'A' && cu <= 'Z'))
			cu ^= 0x20, set[cu / 8] |= (unsigned char)(1u << (cu % 8));
	} else if (type == 0 && pcre2_pattern_info(re, PCRE2_INFO_FIRSTBITMAP, &bitmap) == 0 &&
		   bitmap) {
		memcpy(set, bitmap, 16);
	} else {
		return false;
	}
	unsigned count = 0;
	for (int i = 0; i < 16; i++)
		count += (unsigned)__builtin_popcount(set[i]);
	return count > 0 && count <= MULTIRE_FANOUT;
}

static bool has_byte(const unsigned char set[16], unsigned c)
{
	return set[c / 8] & (1u << (c % 8));
}

/*
 * Plan m's databases (struct mr_db) for the patterns not on MULTIRE_PCRE:
 * sets[i] is pattern i's first bytes (or all zero), computed by the
 * caller. One database, dbs[0], unless split; then dbs[0] for the
 * patterns without a set and one per distinct list of patterns a first
 * byte has. Deterministic: the cache key holds its inputs.
 */
static void plan_dbs(struct multire *m, const unsigned char (*sets)[16], bool split)
{
	size_t n = m->n;
	m->dbs = xcalloc(129, sizeof *m->dbs);
	m->ndb = 1;
	memset(m->first, 0, sizeof m->first);
	struct mr_db *all = &m->dbs[0];
	all->ids = xcalloc(n ? n : 1, sizeof *all->ids);
	static const unsigned char none[16];
	for (size_t i = 0; i < n; i++)
		if (m->path[i] != MULTIRE_PCRE && (!split || !memcmp(sets[i], none, 16)))
			all->ids[all->nids++] = i;
	if (!split)
		return;
	size_t *ids = xcalloc(n ? n : 1, sizeof *ids);
	for (unsigned c = 0; c < 128; c++) {
		size_t k = 0;
		for (size_t i = 0; i < n; i++)
			if (m->path[i] != MULTIRE_PCRE && has_byte(sets[i], c))
				ids[k++] = i;
		if (k == 0)
			continue;
		size_t d;
		for (d = 1; d < m->ndb; d++)
			if (m->dbs[d].nids == k && !memcmp(m->dbs[d].ids, ids, k * sizeof *ids))
				break;
		if (d == m->ndb) {
			m->dbs[d].ids = xmalloc(k * sizeof *ids);
			memcpy(m->dbs[d].ids, ids, k * sizeof *ids);
			m->dbs[d].nids = k;
			m->ndb++;
		}
		m->first[c] = (unsigned char)d;
	}
	free(ids);
}

/* Compile database d of m from its patterns not (now) on MULTIRE_PCRE; a
 * pattern the whole compile refuses is moved to PCRE2 and the rest tried
 * again. */
static void build_one(struct multire *m, struct mr_db *d, char **ex, unsigned flags)
{
	hs_free_database(d->db);
	d->db = NULL;
	d->built = 0;
	size_t n = d->nids;
	const char **exprs = xcalloc(n ? n : 1, sizeof *exprs);
	unsigned *fl = xcalloc(n ? n : 1, sizeof *fl), *ids = xcalloc(n ? n : 1, sizeof *ids);
	for (;;) {
		unsigned k = 0;
		for (size_t j = 0; j < n; j++) {
			size_t i = d->ids[j];
			if (m->path[i] == MULTIRE_PCRE)
				continue;
			exprs[k] = ex[i];
			fl[k] = flags | HS_BASE_FLAGS |
				(m->path[i] == MULTIRE_PREFILTER ? HS_FLAG_PREFILTER : 0);
			ids[k++] = (unsigned)i;
		}
		if (k == 0)
			break;
		hs_compile_error_t *ce = NULL;
		hs_error_t rc = hs_compile_multi(exprs, fl, ids, k, HS_MODE_BLOCK, NULL, &d->db, &ce);
		if (rc == HS_SUCCESS) {
			hs_free_compile_error(ce);
			d->built = k;
			break;
		}
		d->db = NULL;
		int bad = ce ? ce->expression : -1;
		char *msg = xasprintf("Vectorscan refused it in the set: %s",
				      ce && ce->message ? ce->message : "error");
		hs_free_compile_error(ce);
		if (bad < 0 || (unsigned)bad >= k) {
			/* the set as a whole (too large, ...): all to PCRE2 */
			for (unsigned j = 0; j < k; j++)
				set_pcre(m, ids[j], xstrdup(msg));
			free(msg);
			break;
		}
		set_pcre(m, ids[bad], msg);
	}
	free(exprs);
	free(fl);
	free(ids);
}

/* How many of d's patterns are not on MULTIRE_PCRE. */
static size_t live_ids(const struct multire *m, const struct mr_db *d)
{
	size_t k = 0;
	for (size_t j = 0; j < d->nids; j++)
		k += m->path[d->ids[j]] != MULTIRE_PCRE;
	return k;
}

/* The scratch space for all of m's databases, and their sizes; without
 * it every pattern goes to PCRE2. */
static void alloc_scratch(struct multire *m)
{
	bool ok = true;
	m->db_bytes = 0;
	for (size_t d = 0; d < m->ndb && ok; d++)
		if (m->dbs[d].db) {
			size_t b = 0;
			ok = hs_alloc_scratch(m->dbs[d].db, &m->scratch) == HS_SUCCESS;
			hs_database_size(m->dbs[d].db, &b);
			m->db_bytes += b;
		}
	if (!ok) {
		for (size_t d = 0; d < m->ndb; d++) {
			hs_free_database(m->dbs[d].db);
			m->dbs[d].db = NULL;
		}
		for (size_t i = 0; i < m->n; i++)
			if (m->path[i] != MULTIRE_PCRE)
				set_pcre(m, i, xstrdup("no memory for Vectorscan's scratch space"));
		m->db_bytes = 0;
	}
	if (m->scratch)
		hs_scratch_size(m->scratch, &m->scratch_bytes);
}

/* Build m's planned databases. A pattern one compile moved to PCRE2 may
 * sit in another database built before: that one is built again, until
 * every database holds just its patterns left for Vectorscan. */
static void build_db(struct multire *m, char **ex, unsigned flags)
{
	for (size_t d = 0; d < m->ndb; d++)
		build_one(m, &m->dbs[d], ex, flags);
	for (bool again = true; again;) {
		again = false;
		for (size_t d = 0; d < m->ndb; d++)
			if (m->dbs[d].built != live_ids(m, &m->dbs[d])) {
				build_one(m, &m->dbs[d], ex, flags);
				again = true;
			}
	}
	alloc_scratch(m);
}

/* A growing byte buffer, for the cache's key and body. */
struct bytes {
	unsigned char *p;
	size_t n, cap;
};

static void put(struct bytes *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void put64(struct bytes *b, uint64_t v)
{
	unsigned char le[8];
	for (int i = 0; i < 8; i++)
		le[i] = (unsigned char)(v >> (8 * i));
	put(b, le, 8);
}

/* Bumped when what a database means for the same inputs changes (the
 * gate, the flags, the split, the body's format): old files then go
 * unused. 2: split by first byte, a body of several databases. */
#define CACHE_FORMAT "mxacl multire 2"

/*
 * The cache key of m's database: what it depends on, hashed. Vectorscan's
 * version and the platform it was built for (the database is tuned to the
 * CPU), the flags, and each pattern's path (which decides its flags) and
 * text; when split, each pattern's first bytes (which decide its
 * databases; they come from PCRE2, whose version may change them).
 */
static void cache_key(const struct multire *m, unsigned flags, const unsigned char (*sets)[16],
		      bool split, char key[65])
{
	struct bytes b = { 0 };
	put(&b, CACHE_FORMAT, sizeof CACHE_FORMAT);
	const char *v = hs_version();
	put(&b, v, strlen(v) + 1);
	hs_platform_info_t pl;
	memset(&pl, 0, sizeof pl);
	hs_populate_platform(&pl);
	put64(&b, pl.tune);
	put64(&b, pl.cpu_features);
	put64(&b, sizeof(void *));
#if defined(__x86_64__)
	put(&b, "x86_64", 7);
#elif defined(__aarch64__)
	put(&b, "aarch64", 8);
#else
	put(&b, "other", 6);
#endif
	put64(&b, flags | HS_BASE_FLAGS);
	put64(&b, HS_FLAG_PREFILTER);
	put64(&b, m->n);
	for (size_t i = 0; i < m->n; i++) {
		put(&b, &m->path[i], 1);
		put64(&b, m->pats[i].len);
		put(&b, m->pats[i].s, m->pats[i].len);
	}
	put(&b, split ? "s" : "1", 1);
	for (size_t i = 0; split && i < m->n; i++)
		put(&b, sets[i], 16);
	digest_sha256(b.p, b.n, key);
	free(b.p);
}

/*
 * The cache body of a built m: each pattern's path after the build (a
 * pattern the set refused went to PCRE2), why for those, and each
 * planned database serialized (an empty one where nothing was left for
 * Vectorscan).
 */
static bool cache_body(const struct multire *m, const unsigned char *pre, struct bytes *b)
{
	put64(b, m->n);
	put(b, m->path, m->n);
	for (size_t i = 0; i < m->n; i++) {
		if (m->path[i] == pre[i])
			continue;
		size_t l = strlen(m->why[i]);
		put64(b, i);
		put64(b, l);
		put(b, m->why[i], l);
	}
	put64(b, UINT64_MAX);
	put64(b, m->ndb);
	for (size_t d = 0; d < m->ndb; d++) {
		char *db = NULL;
		size_t dblen = 0;
		if (m->dbs[d].db && hs_serialize_database(m->dbs[d].db, &db, &dblen) != HS_SUCCESS)
			return false;
		put64(b, dblen);
		if (dblen)
			put(b, db, dblen);
		free(db);
	}
	return true;
}

/* A little-endian uint64 from the body at *off; false past its end. */
static bool get64(const unsigned char *p, size_t len, size_t *off, uint64_t *v)
{
	if (len - *off < 8)
		return false;
	*v = 0;
	for (int i = 7; i >= 0; i--)
		*v = *v << 8 | p[*off + (size_t)i];
	*off += 8;
	return true;
}

/*
 * Take m's paths and database from a cache body, checked as if it came
 * from anyone: NULL on success, else why not (m then unchanged but for
 * what the caller resets).
 */
static const char *cache_take(struct multire *m, const unsigned char *p, size_t len)
{
	size_t off = 0;
	uint64_t v, dblen;
	if (!get64(p, len, &off, &v) || v != m->n || len - off < m->n)
		return "holds another number of patterns";
	const unsigned char *path = p + off;
	off += m->n;
	for (size_t i = 0; i < m->n; i++)
		if (path[i] > MULTIRE_PCRE || (path[i] != m->path[i] && path[i] != MULTIRE_PCRE))
			return "holds impossible paths";
	char **why = xcalloc(m->n ? m->n : 1, sizeof *why);
	const char *bad = NULL;
	for (;;) {
		uint64_t i, l;
		if (!get64(p, len, &off, &i)) {
			bad = "is cut short";
			break;
		}
		if (i == UINT64_MAX)
			break;
		if (i >= m->n || path[i] == m->path[i] || why[i] || !get64(p, len, &off, &l) ||
		    l > len - off) {
			bad = "holds impossible reasons";
			break;
		}
		why[i] = xstrndup((const char *)p + off, l);
		off += l;
	}
	for (size_t i = 0; i < m->n && !bad; i++)
		if (path[i] != m->path[i] && !why[i])
			bad = "holds a path without its reason";
	uint64_t ndb = 0;
	if (!bad && (!get64(p, len, &off, &ndb) || ndb != m->ndb))
		bad = "holds another number of databases";
	hs_database_t **dbs = xcalloc(m->ndb, sizeof *dbs);
	hs_scratch_t *scratch = NULL;
	for (size_t d = 0; d < m->ndb && !bad; d++) {
		bool any = false;
		for (size_t j = 0; j < m->dbs[d].nids; j++)
			any |= path[m->dbs[d].ids[j]] != MULTIRE_PCRE;
		if (!get64(p, len, &off, &dblen) || dblen > len - off || (dblen > 0) != any) {
			bad = "has a database of the wrong length";
			break;
		}
		const char *db = (const char *)p + off;
		off += dblen;
		if (!dblen)
			continue;
		char *info = NULL;
		if (hs_serialized_database_info(db, dblen, &info) != HS_SUCCESS)
			bad = "holds no Vectorscan database";
		else if (!strstr(info, "BLOCK"))
			bad = "holds a Vectorscan database of another mode";
		free(info);
		if (!bad && hs_deserialize_database(db, dblen, &dbs[d]) != HS_SUCCESS)
			bad = "holds a Vectorscan database this Vectorscan does not load";
		if (!bad && hs_alloc_scratch(dbs[d], &scratch) != HS_SUCCESS)
			bad = "holds a Vectorscan database this host cannot scan";
	}
	if (!bad && off != len)
		bad = "has bytes after its databases";
	if (bad) {
		for (size_t i = 0; i < m->n; i++)
			free(why[i]);
		free(why);
		for (size_t d = 0; d < m->ndb; d++)
			hs_free_database(dbs[d]);
		free(dbs);
		hs_free_scratch(scratch);
		return bad;
	}
	for (size_t i = 0; i < m->n; i++)
		if (why[i])
			set_pcre(m, i, why[i]);
	free(why);
	for (size_t d = 0; d < m->ndb; d++) {
		m->dbs[d].db = dbs[d];
		m->dbs[d].built = live_ids(m, &m->dbs[d]);
	}
	free(dbs);
	hs_free_scratch(scratch);
	alloc_scratch(m);
	m->from_cache = true;
	return NULL;
}

/* The database of m's patterns that are not MULTIRE_PCRE: from the cache
 * when it has it, else built (and then kept in the cache). */
static void cached_db(struct multire *m, char **ex, unsigned flags,
		      const unsigned char (*sets)[16], bool split, struct recache *rc)
{
	plan_dbs(m, sets, split);
	if (!rc) {
		build_db(m, ex, flags);
		return;
	}
	double t0 = now_seconds();
	char key[65];
	cache_key(m, flags, sets, split, key);
	size_t len = 0;
	unsigned char *body = recache_load(rc, key, &len);
	if (body) {
		const char *bad = cache_take(m, body, len);
		free(body);
		if (!bad) {
			recache_count_loaded(rc, now_seconds() - t0);
			return;
		}
		recache_reject(rc, key, bad);
	}
	unsigned char *pre = xmalloc(m->n ? m->n : 1);
	memcpy(pre, m->path, m->n);
	build_db(m, ex, flags);
	recache_count_built(rc, now_seconds() - t0);
	struct bytes b = { 0 };
	if (cache_body(m, pre, &b))
		recache_store(rc, key, b.p, b.n);
	free(b.p);
	free(pre);
}

struct multire *multire_build(const struct multire_pattern *pats, size_t n, uint32_t options,
			      size_t min)
{
	return multire_build_with(pats, n, options, min, NULL);
}

struct multire *multire_build_with(const struct multire_pattern *pats, size_t n, uint32_t options,
				   size_t min, const struct multire_opts *o)
{
	double t0 = now_seconds();
	pthread_once(&allocators_once, set_allocators);
	struct multire *m = xcalloc(1, sizeof *m);
	m->n = n;
	m->pats = xcalloc(n ? n : 1, sizeof *m->pats);
	memcpy(m->pats, pats, n * sizeof *pats);
	m->path = xcalloc(n ? n : 1, 1);
	m->why = xcalloc(n ? n : 1, sizeof *m->why);
	m->md = pcre2_match_data_create(1, NULL);
	unsigned flags = 0;
	uint32_t unmapped;
	char *all = NULL;
	if (n < min)
		all = xasprintf("one of %zu regexes in its acl, fewer than the %zu a Vectorscan "
				"database is built for",
				n, min);
	else if (!map_options(options, &flags, &unmapped))
		all = xasprintf("PCRE2 option 0x%x has no Vectorscan flag", (unsigned)unmapped);
	if (all) {
		for (size_t i = 0; i < n; i++)
			set_pcre(m, i, xstrdup(all));
		free(all);
	} else {
		char **ex = xcalloc(n, sizeof *ex);
		for (size_t i = 0; i < n; i++) {
			const char *g = gate(pats[i].s, pats[i].len);
			if (g) {
				set_pcre(m, i, xstrdup(g));
				continue;
			}
			ex[i] = cstr(pats[i].s, pats[i].len);
			char *err = NULL;
			if (hs_accepts(ex[i], flags | HS_BASE_FLAGS, &err)) {
				m->path[i] = MULTIRE_EXACT;
			} else if (hs_accepts(ex[i], flags | HS_BASE_FLAGS | HS_FLAG_PREFILTER, NULL)) {
				m->path[i] = MULTIRE_PREFILTER;
				m->why[i] = xasprintf("Vectorscan: %s", err);
			} else {
				set_pcre(m, i, xasprintf("Vectorscan: %s, also as a prefilter", err));
			}
			free(err);
		}
		if (!(o && o->classify_only)) {
			/* the split (struct mr_db) by each pattern's first bytes */
			unsigned char(*sets)[16] = xcalloc(n, sizeof *sets);
			size_t with_set = 0;
			for (size_t i = 0; i < n; i++)
				if (m->path[i] != MULTIRE_PCRE && first_bytes(pats[i].re, sets[i]))
					with_set++;
			size_t split_min = o && o->split_min ? o->split_min : MULTIRE_SPLIT_MIN;
			cached_db(m, ex, flags, (const unsigned char(*)[16])sets, with_set >= split_min,
				  o ? o->cache : NULL);
			free(sets);
		}
		for (size_t i = 0; i < n; i++)
			free(ex[i]);
		free(ex);
	}
	for (size_t i = 0; i < n; i++)
		if (m->path[i] == MULTIRE_PCRE)
			m->npcre++;
	m->pcre_only = xcalloc(m->npcre ? m->npcre : 1, sizeof *m->pcre_only);
	for (size_t i = 0, k = 0; i < n; i++)
		if (m->path[i] == MULTIRE_PCRE)
			m->pcre_only[k++] = i;
	m->build_seconds = now_seconds() - t0;
#ifdef __GLIBC__
	/* Vectorscan's compile peaks far above the database (about 30 MB
	 * for 1,000 rDNS patterns, of a 1.9 MB database) and glibc keeps the
	 * freed pages: give them back (1,000 patterns: 39 MB resident after
	 * the build, 16 MB after this) */
	if (m->ndb)
		malloc_trim(0);
#endif
	return m;
}

void multire_free(struct multire *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		free(m->why[i]);
	free(m->why);
	free(m->path);
	free(m->pats);
	free(m->pcre_only);
	hs_free_scratch(m->scratch);
	for (size_t d = 0; d < m->ndb; d++) {
		hs_free_database(m->dbs[d].db);
		free(m->dbs[d].ids);
	}
	free(m->dbs);
	pcre2_match_data_free(m->md);
	free(m);
}

enum multire_path multire_path(const struct multire *m, size_t i, const char **why)
{
	*why = m->why[i];
	return (enum multire_path)m->path[i];
}

void multire_counts(const struct multire *m, size_t counts[3])
{
	counts[0] = counts[1] = counts[2] = 0;
	for (size_t i = 0; i < m->n; i++)
		counts[m->path[i]]++;
}

bool multire_db_info(const struct multire *m, size_t *db_bytes, size_t *scratch_bytes,
		     double *build_seconds)
{
	*db_bytes = m->db_bytes;
	*scratch_bytes = m->scratch_bytes;
	*build_seconds = m->build_seconds;
	return multire_db_count(m) > 0;
}

size_t multire_db_count(const struct multire *m)
{
	size_t k = 0;
	for (size_t d = 0; d < m->ndb; d++)
		k += m->dbs[d].db != NULL;
	return k;
}

bool multire_from_cache(const struct multire *m)
{
	return m->from_cache;
}

bool multire_pcre_match(const struct multire *m, size_t i, const char *s, size_t len)
{
	return pcre2_match(m->pats[i].re, (PCRE2_SPTR)s, len, 0, 0, m->md, NULL) >= 0;
}

/* A scan in progress: what the Vectorscan callback needs. */
struct scan {
	struct multire *m;
	const char *s;
	size_t len;
	multire_match_fn fn;
	void *ctx;
	bool stopped;
};

/* Vectorscan's match callback: confirm a prefilter report with PCRE2;
 * non-zero ends the scan. */
static int on_match(unsigned int id, unsigned long long from, unsigned long long to,
		    unsigned int flags, void *arg)
{
	struct scan *sc = arg;
	if (sc->m->path[id] == MULTIRE_PREFILTER && !multire_pcre_match(sc->m, id, sc->s, sc->len))
		return 0;
	if (sc->fn(sc->ctx, id)) {
		sc->stopped = true;
		return 1;
	}
	return 0;
}

/* Whether s is ASCII without a newline: what the database may scan. A
 * newline never reaches an acl (the policy protocol is lines), and where
 * "$" and "\Z" stand before one is PCRE2's business alone. */
static bool scannable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80 || s[i] == '\n')
			return false;
	return true;
}

bool multire_scan(struct multire *m, const char *s, size_t len, multire_match_fn fn, void *ctx)
{
	if (m->ndb && len <= UINT_MAX && scannable(s, len)) {
		struct scan sc = { m, s, len, fn, ctx, false };
		/* dbs[0], then the database of the first byte (none for an
		 * empty subject: every pattern there needs a first byte) */
		size_t pick[2] = { 0, len ? m->first[(unsigned char)s[0]] : 0 };
		for (int k = 0; k < 2; k++) {
			const struct mr_db *d = &m->dbs[pick[k]];
			if ((k > 0 && !pick[k]) || !d->db)
				continue;
			hs_error_t rc = hs_scan(d->db, s, (unsigned)len, 0, m->scratch, on_match, &sc);
			if (sc.stopped)
				return true;
			if (rc == HS_SUCCESS)
				continue;
			/* Vectorscan refuses before its first report (its
			 * scratch in use by another scan, HS_SCRATCH_IN_USE):
			 * PCRE2 answers for this database's patterns */
			for (size_t j = 0; j < d->nids; j++)
				if (m->path[d->ids[j]] != MULTIRE_PCRE &&
				    multire_pcre_match(m, d->ids[j], s, len) && fn(ctx, d->ids[j]))
					return true;
		}
		for (size_t k = 0; k < m->npcre; k++)
			if (multire_pcre_match(m, m->pcre_only[k], s, len) && fn(ctx, m->pcre_only[k]))
				return true;
		return false;
	}
	for (size_t i = 0; i < m->n; i++)
		if (multire_pcre_match(m, i, s, len) && fn(ctx, i))
			return true;
	return false;
}

static bool stop_at_first(void *ctx, size_t i)
{
	(void)i;
	*(bool *)ctx = true;
	return true;
}

bool multire_any(struct multire *m, const char *s, size_t len)
{
	bool found = false;
	multire_scan(m, s, len, stop_at_first, &found);
	return found;
}
