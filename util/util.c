/*
 * util - checked allocation, arenas and string buffers (see util.h).
 */
#include "util.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

void fatal_abort(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("mxacl: fatal: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		fatal_abort("out of memory (%zu bytes)", n);
	return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (!p)
		fatal_abort("out of memory (%zu x %zu bytes)", nmemb, size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		fatal_abort("out of memory (%zu bytes)", n);
	return p;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
	struct strbuf b;
	sb_init(&b);
	sb_vprintf(&b, fmt, ap);
	return b.s;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	return s;
}

void grow_array(void **arr, size_t *cap, size_t need, size_t sz)
{
	if (need <= *cap)
		return;
	size_t n = *cap ? *cap : 8;
	while (n < need)
		n *= 2;
	*arr = xrealloc(*arr, n * sz);
	*cap = n;
}

void heap_trim(void)
{
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

/* arena: a chain of blocks; the newest block is at the head. */
struct arena_block {
	struct arena_block *next;
	size_t size, used;
	_Alignas(16) unsigned char data[];
};

struct arena {
	struct arena_block *head;
	size_t first_block, total;
};

static struct arena_block *arena_block_new(size_t size)
{
	struct arena_block *b = xmalloc(sizeof *b + size);
	b->next = NULL;
	b->size = size;
	b->used = 0;
	return b;
}

struct arena *arena_new(size_t first_block)
{
	struct arena *a = xmalloc(sizeof *a);
	a->first_block = first_block ? first_block : 4096;
	a->head = arena_block_new(a->first_block);
	a->total = 0;
	return a;
}

void arena_free(struct arena *a)
{
	if (!a)
		return;
	struct arena_block *b = a->head, *next;
	for (; b; b = next) {
		next = b->next;
		free(b);
	}
	free(a);
}

void arena_reset(struct arena *a)
{
	struct arena_block *b = a->head, *next;
	/* The oldest block is the first one; keep it, free the rest. */
	while (b->next) {
		next = b->next;
		free(b);
		b = next;
	}
	a->head = b;
	b->used = 0;
	a->total = 0;
}

/* n bytes at an address that is a multiple of align (a power of two). */
static void *arena_take(struct arena *a, size_t n, size_t align)
{
	struct arena_block *b = a->head;
	size_t at = (b->used + align - 1) & ~(align - 1);
	if (at > b->size || b->size - at < n) {
		size_t size = b->size * 2;
		if (size < n)
			size = n;
		if (size > (1u << 20) && n <= (1u << 20))
			size = 1u << 20;
		b = arena_block_new(size);
		b->next = a->head;
		a->head = b;
		at = 0;
	}
	void *p = b->data + at;
	b->used = at + n;
	a->total += n;
	return p;
}

void *arena_alloc(struct arena *a, size_t n)
{
	return arena_take(a, n, 16);
}

void *arena_alloc_align(struct arena *a, size_t n, size_t align)
{
	assert(align && align <= 16 && !(align & (align - 1)));
	return arena_take(a, n, align);
}

void *arena_zalloc(struct arena *a, size_t n)
{
	void *p = arena_alloc(a, n);
	memset(p, 0, n);
	return p;
}

/* Strings are not aligned: a big policy's names and labels are short, and
 * 16-byte steps were a third of their room. */
char *arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_take(a, n + 1, 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *tmp = xvasprintf(fmt, ap);
	va_end(ap);
	char *p = arena_strdup(a, tmp);
	free(tmp);
	return p;
}

size_t arena_used(const struct arena *a)
{
	return a->total;
}

void sb_init(struct strbuf *b)
{
	b->cap = 64;
	b->len = 0;
	b->s = xmalloc(b->cap);
	b->s[0] = 0;
}

void sb_free(struct strbuf *b)
{
	free(b->s);
	b->s = NULL;
	b->len = b->cap = 0;
}

void sb_reset(struct strbuf *b)
{
	b->len = 0;
	b->s[0] = 0;
}

static void sb_reserve(struct strbuf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	while (b->len + extra + 1 > b->cap)
		b->cap *= 2;
	b->s = xrealloc(b->s, b->cap);
}

void sb_add(struct strbuf *b, const char *s, size_t n)
{
	sb_reserve(b, n);
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = 0;
}

void sb_adds(struct strbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

void sb_addc(struct strbuf *b, char c)
{
	sb_add(b, &c, 1);
}

void sb_vprintf(struct strbuf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		fatal_abort("vsnprintf failed");
	if ((size_t)n >= b->cap - b->len) {
		sb_reserve(b, (size_t)n);
		vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
	}
	b->len += (size_t)n;
}

void sb_printf(struct strbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sb_vprintf(b, fmt, ap);
	va_end(ap);
}

bool ascii_ieq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (ascii_lower(*a) != ascii_lower(*b))
			return false;
	return *a == *b;
}

bool ascii_nieq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ascii_lower(a[i]) != ascii_lower(b[i]))
			return false;
	return true;
}

void ascii_lower_copy(char *dst, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = ascii_lower(src[i]);
}

/* s, m, h, d multiply; a bare number is seconds; more than 2^32-1 s is refused. */
bool duration_parse(const char *s, size_t len, uint32_t *out)
{
	uint64_t v = 0, mult = 1;
	size_t i = 0;
	if (len == 0)
		return false;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > UINT32_MAX)
			return false;
	}
	if (i == 0)
		return false;
	if (i < len) {
		switch (ascii_lower(s[i])) {
		case 's': mult = 1; break;
		case 'm': mult = 60; break;
		case 'h': mult = 3600; break;
		case 'd': mult = 86400; break;
		default: return false;
		}
		if (++i != len)
			return false;
	}
	if (v * mult > UINT32_MAX)
		return false;
	*out = (uint32_t)(v * mult);
	return true;
}

uint64_t hash_bytes(const char *s, size_t n, bool fold)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)(fold ? ascii_lower(s[i]) : s[i]);
		h ^= c;
		h *= 1099511628211ULL;
	}
	/* final avalanche so the low bits are usable as a table index */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

#define SUGGEST_MAX 32

/*
 * Optimal string alignment distance (Levenshtein plus transposition of two
 * neighbours, the commonest typo), ignoring ASCII case; lengths <= SUGGEST_MAX.
 */
static size_t edit_distance(const char *a, size_t n, const char *b, size_t m)
{
	size_t d[SUGGEST_MAX + 1][SUGGEST_MAX + 1];
	for (size_t i = 0; i <= n; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= m; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= n; i++) {
		for (size_t j = 1; j <= m; j++) {
			size_t cost = ascii_lower(a[i - 1]) != ascii_lower(b[j - 1]);
			size_t v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < v)
				v = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && ascii_lower(a[i - 1]) == ascii_lower(b[j - 2]) &&
			    ascii_lower(a[i - 2]) == ascii_lower(b[j - 1]) && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	}
	return d[n][m];
}

const char *suggest_word(const char *w, size_t n, const char *(*cand)(size_t i, void *ctx),
			 void *ctx)
{
	if (n > SUGGEST_MAX)
		return NULL;
	const char *best = NULL;
	size_t limit = (n + 2) / 3 < 2 ? (n + 2) / 3 : 2;
	size_t best_d = limit + 1;
	const char *c;
	for (size_t i = 0; (c = cand(i, ctx)) != NULL; i++) {
		size_t m = strlen(c);
		if (m == 0 || m > SUGGEST_MAX || m > n + limit || n > m + limit)
			continue;
		size_t d = edit_distance(w, n, c, m);
		if (d < best_d) {
			best = c;
			best_d = d;
		}
	}
	return best;
}
