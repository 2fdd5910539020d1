/*
 * util - memory helpers shared by every module: checked allocation, a bump
 * arena for objects that die together (one compile, one request), and a
 * growable string buffer.
 *
 * Allocation failure is a broken invariant on this kind of daemon (we cannot
 * answer Postfix without memory): x* functions abort with a message.
 */
#ifndef MXACL_UTIL_H
#define MXACL_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define UNUSED(x) ((void)(x))

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#define NORETURN __attribute__((noreturn))
#else
#define PRINTF_LIKE(f, a)
#define NORETURN
#endif

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Return a malloc'ed formatted string; the caller frees it. */
char *xasprintf(const char *fmt, ...) PRINTF_LIKE(1, 2);
char *xvasprintf(const char *fmt, va_list ap);
/* Print "mxacl: fatal: ..." on stderr and abort(). */
void fatal_abort(const char *fmt, ...) PRINTF_LIKE(1, 2) NORETURN;

/* Grow *arr (of *cap elements of size sz) so that it holds at least need. */
void grow_array(void **arr, size_t *cap, size_t need, size_t sz);
#define VEC_PUSH(arr, n, cap, val)                                          \
	do {                                                                \
		grow_array((void **)&(arr), &(cap), (n) + 1, sizeof(*(arr))); \
		(arr)[(n)++] = (val);                                       \
	} while (0)

/*
 * Give the heap memory freed so far back to the system: glibc keeps freed
 * memory for reuse (in the middle of its heaps, and in the heaps of
 * threads that have ended), so a process that freed a big compiled policy
 * would stay as big as it was. Walks every malloc arena (glibc's
 * malloc_trim), so call it after freeing something big, not per request;
 * a no-op without glibc.
 */
void heap_trim(void);

/*
 * arena - bump allocator. Everything allocated from an arena is freed by
 * arena_free (or recycled by arena_reset); single objects are never freed.
 */
struct arena;
struct arena *arena_new(size_t first_block);
void arena_free(struct arena *a);               /* NULL is a no-op */
void arena_reset(struct arena *a);              /* keep the first block */
void *arena_alloc(struct arena *a, size_t n);   /* 16-byte aligned */
/* n bytes aligned to align (a power of two up to 16): what a big policy
 * has one of per line packs closer than arena_alloc's 16-byte steps. */
void *arena_alloc_align(struct arena *a, size_t n, size_t align);
void *arena_zalloc(struct arena *a, size_t n);
char *arena_strdup(struct arena *a, const char *s);      /* not aligned */
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_printf(struct arena *a, const char *fmt, ...) PRINTF_LIKE(2, 3);
size_t arena_used(const struct arena *a);

/* strbuf - growable NUL-terminated byte string. */
struct strbuf {
	char *s;
	size_t len, cap;
};
void sb_init(struct strbuf *b);
void sb_free(struct strbuf *b);
void sb_reset(struct strbuf *b);
void sb_add(struct strbuf *b, const char *s, size_t n);
void sb_adds(struct strbuf *b, const char *s);
void sb_addc(struct strbuf *b, char c);
void sb_printf(struct strbuf *b, const char *fmt, ...) PRINTF_LIKE(2, 3);
void sb_vprintf(struct strbuf *b, const char *fmt, va_list ap);

/* ASCII case helpers (locale-independent, as SMTP is). */
static inline char ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}
static inline char ascii_upper(char c)
{
	return (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
}
bool ascii_ieq(const char *a, const char *b);
bool ascii_nieq(const char *a, const char *b, size_t n);
void ascii_lower_copy(char *dst, const char *src, size_t n);

/*
 * The candidate closest to the unknown word w (n bytes), ignoring case, for
 * "did you mean" hints; NULL when none is close: at most two edits away, and
 * fewer for short words (a third of the length, rounded up, as clang does).
 * cand(i, ctx) gives the i-th candidate, NULL after the last; an empty
 * candidate is never suggested.
 */
const char *suggest_word(const char *w, size_t n, const char *(*cand)(size_t i, void *ctx),
			 void *ctx);

/* Parse a duration: a number with s, m, h or d (bare: seconds), n bytes of s;
 * false for anything else or more than 2^32-1 seconds. */
bool duration_parse(const char *s, size_t len, uint32_t *out);

/* FNV-1a style 64-bit hash of n bytes, folded to lower case when fold; the
 * one hash of the tree (tables, the memory store, mxacl replay). */
uint64_t hash_bytes(const char *s, size_t n, bool fold);

#endif
