/*
 * value - an acl's values, value files expanded (see value.h).
 */
#include "acl/value.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define VALUE_FILE_MAX (512u << 20)     /* a value file larger is refused */

static bool is_file_value(const struct ast_word *w, const char **path)
{
	if (w->quoted)
		return false;
	if (strncmp(w->s, "file:", 5) == 0) {
		*path = w->s + 5;
		return true;
	}
	/* a bare absolute path that is not a /regex/ (apolicy) */
	if (w->s[0] == '/' && !(w->len >= 2 && w->s[w->len - 1] == '/')) {
		*path = w->s;
		return true;
	}
	return false;
}

/*
 * Postfix's lookup table types (postconf -m, and the ones it documents).
 * "hash:/etc/postfix/senders" as a value is one literal that never
 * matches; people bring it from main.cf, so it is an error with the way
 * mxacl reads a list instead.
 */
static const char *const postfix_map_types[] = {
	"btree", "cdb", "cidr", "dbm", "environ", "fail", "hash", "inline", "internal",
	"ldap", "lmdb", "memcache", "mongodb", "mysql", "netinfo", "nis", "nisplus",
	"pcre", "pgsql", "pipemap", "proxy", "randmap", "regexp", "sdbm", "socketmap",
	"sqlite", "static", "tcp", "texthash", "unionmap", "unix",
};

/* Whether w is "TYPE:..." with TYPE a Postfix table type, and not an IPv6
 * address that happens to start like one ("cdb:1::2"). */
static bool is_postfix_map(const struct ast_word *w)
{
	const char *colon = w->quoted ? NULL : strchr(w->s, ':');
	if (!colon)
		return false;
	size_t n = (size_t)(colon - w->s);
	bool known = false;
	for (size_t i = 0; i < ARRAY_LEN(postfix_map_types) && !known; i++)
		known = strlen(postfix_map_types[i]) == n && memcmp(postfix_map_types[i], w->s, n) == 0;
	if (!known)
		return false;
	for (const char *q = colon + 1; *q; q++)
		if (!strchr("0123456789abcdefABCDEF:./-", *q))
			return true;
	return false;
}

/* Read a value file into the diag sources (so errors quote its lines). */
static const struct source *read_value_file(struct acl_compile *c, const struct ast_word *w,
					    const char *path)
{
	char *full;
	if (path[0] != '/') {
		const char *slash = strrchr(w->loc.file, '/');
		full = slash ? xasprintf("%.*s/%s", (int)(slash - w->loc.file), w->loc.file, path)
			     : xstrdup(path);
	} else {
		full = xstrdup(path);
	}
	FILE *f = fopen(full, "rb");
	struct stat st;
	if (!f || fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
		diag_error(c->diags, w->loc, "cannot read value file '%s': %s", full,
			   f ? "not a regular file" : strerror(errno));
		if (f)
			fclose(f);
		free(full);
		return NULL;
	}
	struct strbuf b;
	sb_init(&b);
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len <= VALUE_FILE_MAX)
		sb_add(&b, chunk, n);
	bool err = ferror(f) || b.len > VALUE_FILE_MAX;
	fclose(f);
	if (err) {
		diag_error(c->diags, w->loc, "cannot read value file '%s'%s", full,
			   b.len > VALUE_FILE_MAX ? ": larger than 512 MB" : "");
		sb_free(&b);
		free(full);
		return NULL;
	}
	const char *name = diags_add_source(c->diags, full, b.s, b.len);
	free(full);
	return diags_source(c->diags, name);
}

/* Call fn for each value of the acl, expanding value files line by line. */
bool value_each(struct acl_compile *c, void *m, value_fn fn)
{
	bool ok = true;
	for (size_t i = 0; i < c->acl->nvals; i++) {
		const struct ast_word *w = c->acl->vals[i];
		const char *path;
		if (is_postfix_map(w)) {
			diag_error(c->diags, w->loc,
				   "'%s' is a Postfix lookup table, which mxacl does not read (it would "
				   "be one value that never matches); put the values in a file, one "
				   "per line, and write file:PATH",
				   w->s);
			ok = false;
			continue;
		}
		if (!is_file_value(w, &path)) {
			struct value v = { w->s, w->len, w->loc, w->quoted };
			ok &= fn(c, m, &v);
			continue;
		}
		const struct source *src = read_value_file(c, w, path);
		if (!src) {
			ok = false;
			continue;
		}
		const char *p = src->text, *end = src->text + src->len;
		size_t nvalues = 0;
		for (int line = 1; p < end; line++) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			const char *eol = nl ? nl : end, *s = p;
			p = nl ? nl + 1 : end;
			while (s < eol && (*s == ' ' || *s == '\t'))
				s++;
			const char *e = eol;
			/* a '#' at the start of a word begins a comment */
			for (const char *q = s; q < e; q++)
				if (*q == '#' && (q == s || q[-1] == ' ' || q[-1] == '\t')) {
					e = q;
					break;
				}
			while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
				e--;
			if (e == s)
				continue;
			const char *ls = s;       /* the line's start, for the column */
			while (ls > src->text && ls[-1] != '\n')
				ls--;
			struct value v = { s, (size_t)(e - s),
					   { src->path, line, (int)(s - ls) + 1, (int)(e - s) }, false };
			char *unq = NULL;
			if (v.len >= 2 && s[0] == '"' && s[v.len - 1] == '"') {
				/* a quoted line: literal, as a quoted word is inline */
				unq = xmalloc(v.len);
				size_t k = 0;
				for (size_t q = 1; q + 1 < v.len; q++) {
					if (s[q] == '\\' && q + 2 < v.len)
						q++;
					unq[k++] = s[q];
				}
				unq[k] = 0;
				v.s = unq;
				v.len = k;
				v.quoted = true;
			}
			ok &= fn(c, m, &v);
			free(unq);
			nvalues++;
		}
		if (nvalues == 0)
			diag_warning(c->diags, w->loc, "value file '%s' has no values", src->path);
	}
	return ok;
}
