/*
 * multire - many PCRE2 regexes in one Vectorscan database (see multire.h).
 */
#include "engine/multire.h"

#include <hs.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>
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

/* Every pattern's flags on top of the mapped ones: a yes/no needs one
 * report per pattern, and "x*" is a pattern PCRE2 accepts (it matches
 * every subject; empty subjects are never scanned). */
#define HS_BASE_FLAGS (HS_FLAG_SINGLEMATCH | HS_FLAG_ALLOWEMPTY)

struct multire {
	size_t n;
	struct multire_pattern *pats;        /* copies of the caller's (s, re) */
	unsigned char *path;                 /* enum multire_path per pattern */
	char **why;                          /* per pattern, or NULL */
	size_t *pcre_only;                   /* indexes of MULTIRE_PCRE patterns */
	size_t npcre;
	hs_database_t *db;
	hs_scratch_t *scratch;
	pcre2_match_data *md;
	size_t db_bytes, scratch_bytes;
	double build_seconds;
	bool from_cache;                     /* the database came from a file */
};

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

/* Build the database of the patterns not on MULTIRE_PCRE; a pattern the
 * whole compile refuses is moved to PCRE2 and the rest tried again. */
static void build_db(struct multire *m, char **ex, unsigned flags)
{
	size_t n = m->n;
	const char **exprs = xcalloc(n ? n : 1, sizeof *exprs);
	unsigned *fl = xcalloc(n ? n : 1, sizeof *fl), *ids = xcalloc(n ? n : 1, sizeof *ids);
	for (;;) {
		unsigned k = 0;
		for (size_t i = 0; i < n; i++) {
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
		hs_error_t rc = hs_compile_multi(exprs, fl, ids, k, HS_MODE_BLOCK, NULL, &m->db, &ce);
		if (rc == HS_SUCCESS) {
			hs_free_compile_error(ce);
			break;
		}
		m->db = NULL;
		int bad = ce ? ce->expression : -1;
		char *msg = xasprintf("Vectorscan refused it in the set: %s",
				      ce && ce->message ? ce->message : "error");
		hs_free_compile_error(ce);
		if (bad < 0 || (unsigned)bad >= k) {
			/* the set as a whole (too large, ...): all to PCRE2 */
			for (size_t i = 0; i < n; i++)
				if (m->path[i] != MULTIRE_PCRE)
					set_pcre(m, i, xstrdup(msg));
			free(msg);
			break;
		}
		set_pcre(m, ids[bad], msg);
	}
	free(exprs);
	free(fl);
	free(ids);
	if (m->db && hs_alloc_scratch(m->db, &m->scratch) != HS_SUCCESS) {
		hs_free_database(m->db);
		m->db = NULL;
		for (size_t i = 0; i < n; i++)
			if (m->path[i] != MULTIRE_PCRE)
				set_pcre(m, i, xstrdup("no memory for Vectorscan's scratch space"));
	}
	if (m->db) {
		hs_database_size(m->db, &m->db_bytes);
		hs_scratch_size(m->scratch, &m->scratch_bytes);
	}
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
 * gate, the flags, the body's format): old files then go unused. */
#define CACHE_FORMAT "mxacl multire 1"

/*
 * The cache key of m's database: what it depends on, hashed. Vectorscan's
 * version and the platform it was built for (the database is tuned to the
 * CPU), the flags, and each pattern's path (which decides its flags) and
 * text.
 */
static void cache_key(const struct multire *m, unsigned flags, char key[65])
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
	digest_sha256(b.p, b.n, key);
	free(b.p);
}

/*
 * The cache body of a built m: each pattern's path after the build (a
 * pattern the set refused went to PCRE2), why for those, and the
 * serialized database (none when nothing is left for Vectorscan).
 */
static bool cache_body(const struct multire *m, const unsigned char *pre, struct bytes *b)
{
	char *db = NULL;
	size_t dblen = 0;
	if (m->db && hs_serialize_database(m->db, &db, &dblen) != HS_SUCCESS)
		return false;
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
	put64(b, dblen);
	if (dblen)
		put(b, db, dblen);
	free(db);
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
	bool any = false;
	for (size_t i = 0; i < m->n; i++)
		any |= path[i] != MULTIRE_PCRE;
	if (!bad && (!get64(p, len, &off, &dblen) || dblen != len - off || (dblen > 0) != any))
		bad = "has a database of the wrong length";
	hs_database_t *db = NULL;
	hs_scratch_t *scratch = NULL;
	if (!bad && dblen) {
		char *info = NULL;
		if (hs_serialized_database_info((const char *)p + off, dblen, &info) != HS_SUCCESS)
			bad = "holds no Vectorscan database";
		else if (!strstr(info, "BLOCK"))
			bad = "holds a Vectorscan database of another mode";
		free(info);
		if (!bad && hs_deserialize_database((const char *)p + off, dblen, &db) != HS_SUCCESS)
			bad = "holds a Vectorscan database this Vectorscan does not load";
		if (!bad && hs_alloc_scratch(db, &scratch) != HS_SUCCESS)
			bad = "holds a Vectorscan database this host cannot scan";
	}
	if (bad) {
		for (size_t i = 0; i < m->n; i++)
			free(why[i]);
		free(why);
		hs_free_database(db);
		return bad;
	}
	for (size_t i = 0; i < m->n; i++)
		if (why[i]) {
			set_pcre(m, i, why[i]);
		}
	free(why);
	m->db = db;
	m->scratch = scratch;
	if (m->db) {
		hs_database_size(m->db, &m->db_bytes);
		hs_scratch_size(m->scratch, &m->scratch_bytes);
	}
	m->from_cache = true;
	return NULL;
}

/* The database of m's patterns that are not MULTIRE_PCRE: from the cache
 * when it has it, else built (and then kept in the cache). */
static void cached_db(struct multire *m, char **ex, unsigned flags, struct recache *rc)
{
	if (!rc) {
		build_db(m, ex, flags);
		return;
	}
	double t0 = now_seconds();
	char key[65];
	cache_key(m, flags, key);
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
		if (!(o && o->classify_only))
			cached_db(m, ex, flags, o ? o->cache : NULL);
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
	if (m->db)
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
	hs_free_database(m->db);
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
	return m->db != NULL;
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
	if (m->db && len <= UINT_MAX && scannable(s, len)) {
		struct scan sc = { m, s, len, fn, ctx, false };
		hs_error_t rc = hs_scan(m->db, s, (unsigned)len, 0, m->scratch, on_match, &sc);
		if (sc.stopped)
			return true;
		if (rc == HS_SUCCESS) {
			for (size_t k = 0; k < m->npcre; k++)
				if (multire_pcre_match(m, m->pcre_only[k], s, len) &&
				    fn(ctx, m->pcre_only[k]))
					return true;
			return false;
		}
		/* Vectorscan refuses before its first report (its scratch in
		 * use by another scan, HS_SCRATCH_IN_USE): PCRE2 answers */
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
