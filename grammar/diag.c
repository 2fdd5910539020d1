/*
 * diag - error records with source quotes (see diag.h).
 */
#include "grammar/diag.h"

#include <stdlib.h>
#include <string.h>

void diags_init(struct diags *d)
{
	memset(d, 0, sizeof *d);
}

void diags_free(struct diags *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].msg);
	free(d->v);
	for (size_t i = 0; i < d->nsrc; i++) {
		free(d->src[i]->path);
		free(d->src[i]->text);
		free(d->src[i]);
	}
	free(d->src);
	memset(d, 0, sizeof *d);
}

const char *diags_add_source(struct diags *d, const char *path, char *text, size_t len)
{
	struct source *s = xmalloc(sizeof *s);
	s->path = xstrdup(path);
	s->text = text;
	s->len = len;
	VEC_PUSH(d->src, d->nsrc, d->srccap, s);
	return s->path;
}

const struct source *diags_source(const struct diags *d, const char *path)
{
	for (size_t i = d->nsrc; i-- > 0;)
		if (d->src[i]->path == path || strcmp(d->src[i]->path, path) == 0)
			return d->src[i];
	return NULL;
}

struct loc loc_file(const char *file)
{
	return (struct loc){ .file = file, .line = 0, .col = 0, .len = 0 };
}

static void diag_add(struct diags *d, enum diag_level level, struct loc loc,
		     const char *fmt, va_list ap)
{
	size_t max = d->max_errors ? d->max_errors : 100;
	if (level == DIAG_ERROR) {
		if (d->nerrors++ >= max)
			return;
	} else if (level == DIAG_WARNING) {
		d->nwarnings++;
	}
	struct strbuf b;
	sb_init(&b);
	sb_vprintf(&b, fmt, ap);
	struct diag r = { .level = level, .loc = loc, .msg = b.s };
	VEC_PUSH(d->v, d->n, d->cap, r);
}

#define DIAG_FN(fn, level)                                                  \
	void fn(struct diags *d, struct loc loc, const char *fmt, ...)      \
	{                                                                   \
		va_list ap;                                                 \
		va_start(ap, fmt);                                          \
		diag_add(d, level, loc, fmt, ap);                           \
		va_end(ap);                                                 \
	}
DIAG_FN(diag_error, DIAG_ERROR)
DIAG_FN(diag_warning, DIAG_WARNING)
DIAG_FN(diag_note, DIAG_NOTE)

/* Find line n (1-based) of src; sets *len without the newline. */
static const char *source_line(const struct source *src, int n, size_t *len)
{
	const char *p = src->text, *end = src->text + src->len;
	for (int i = 1; i < n && p < end; i++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			return NULL;
		p = nl + 1;
	}
	if (p >= end && n > 1)
		return NULL;
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	*len = (size_t)((nl ? nl : end) - p);
	if (*len && p[*len - 1] == '\r')
		(*len)--;
	return p;
}

void diag_format(const struct diags *d, const struct diag *r, struct strbuf *b)
{
	static const char *names[] = { "error", "warning", "note" };
	if (r->loc.line > 0)
		sb_printf(b, "%s:%d:%d: %s: %s\n", r->loc.file, r->loc.line, r->loc.col,
			  names[r->level], r->msg);
	else
		sb_printf(b, "%s: %s: %s\n", r->loc.file, names[r->level], r->msg);
	if (r->loc.line <= 0)
		return;
	const struct source *src = diags_source(d, r->loc.file);
	size_t len;
	const char *line = src ? source_line(src, r->loc.line, &len) : NULL;
	if (!line)
		return;
	sb_adds(b, "    ");
	for (size_t i = 0; i < len; i++)
		sb_addc(b, line[i] == '\t' ? ' ' : line[i]);
	sb_adds(b, "\n    ");
	int col = r->loc.col > 0 ? r->loc.col : 1;
	for (int i = 1; i < col; i++)
		sb_addc(b, ' ');
	sb_addc(b, '^');
	int ul = r->loc.len;
	if (col - 1 + ul > (int)len)
		ul = (int)len - (col - 1);
	for (int i = 1; i < ul; i++)
		sb_addc(b, '~');
	sb_addc(b, '\n');
}

/*
 * The printed order of the records: file (in the order files were read),
 * line, column, then the order they were made. The passes make records in
 * their own order (resolve's "never used" warnings come after every
 * statement, compile's after those), so printing and logging both sort.
 * The keys are computed before qsort, so no comparison needs global state
 * and a load on another thread may sort at the same time.
 */
struct diag_key {
	size_t file, seq;
	int line, col;
};

static int diag_key_cmp(const void *a, const void *b)
{
	const struct diag_key *x = a, *y = b;
	if (x->file != y->file)
		return x->file < y->file ? -1 : 1;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The record indexes of d in printed order (malloc'ed, d->n entries). */
static size_t *diag_order(const struct diags *d)
{
	struct diag_key *k = xmalloc((d->n ? d->n : 1) * sizeof *k);
	for (size_t i = 0; i < d->n; i++) {
		const struct diag *r = &d->v[i];
		size_t f = d->nsrc;
		for (size_t j = 0; j < d->nsrc; j++)
			if (d->src[j]->path == r->loc.file) {
				f = j;
				break;
			}
		k[i] = (struct diag_key){ .file = f, .seq = i, .line = r->loc.line, .col = r->loc.col };
	}
	qsort(k, d->n, sizeof *k, diag_key_cmp);
	size_t *order = xmalloc((d->n ? d->n : 1) * sizeof *order);
	for (size_t i = 0; i < d->n; i++)
		order[i] = k[i].seq;
	free(k);
	return order;
}

void diags_sort(struct diags *d)
{
	if (d->n < 2)
		return;
	size_t *order = diag_order(d);
	struct diag *v = xmalloc((d->n ? d->n : 1) * sizeof *v);
	for (size_t i = 0; i < d->n; i++)
		v[i] = d->v[order[i]];
	memcpy(d->v, v, d->n * sizeof *v);
	free(v);
	free(order);
}

void diags_print(const struct diags *d, FILE *out)
{
	struct strbuf b;
	sb_init(&b);
	size_t *order = diag_order(d);
	for (size_t i = 0; i < d->n; i++)
		diag_format(d, &d->v[order[i]], &b);
	free(order);
	size_t max = d->max_errors ? d->max_errors : 100;
	if (d->nerrors > max)
		sb_printf(&b, "too many errors (%zu); only the first %zu shown\n", d->nerrors, max);
	fputs(b.s, out);
	sb_free(&b);
}
