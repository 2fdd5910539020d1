/*
 * diag - error records (nftables' erec, in spirit). Every AST node carries
 * a location; every problem found while reading, resolving or compiling a
 * config becomes a record, and all records are printed together as
 *
 *   FILE:LINE:COL: error: message
 *     the source line
 *     ^~~~~
 *
 * The sources are kept here (the diag set owns their text) so a record can
 * quote its line long after the lexer is gone.
 */
#ifndef MXACL_DIAG_H
#define MXACL_DIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "util/util.h"

struct loc {
	const char *file;   /* interned by diags_add_source; never NULL */
	int line, col;      /* 1-based; line 0: the file as a whole */
	int len;            /* bytes to underline; 0 or 1: a caret */
};

enum diag_level { DIAG_ERROR, DIAG_WARNING, DIAG_NOTE };

struct diag {
	enum diag_level level;
	struct loc loc;
	char *msg;
};

struct source {
	char *path;         /* as written (relative paths stay relative) */
	char *text;         /* whole file, NUL-terminated */
	size_t len;
};

struct diags {
	struct diag *v;
	size_t n, cap;
	struct source **src;
	size_t nsrc, srccap;
	size_t nerrors, nwarnings;
	size_t max_errors;  /* stop recording errors after this many (0: 100) */
};

void diags_init(struct diags *d);
void diags_free(struct diags *d);

/*
 * Register a file's text (ownership of text passes to d) and return the
 * interned path to use in locations.
 */
const char *diags_add_source(struct diags *d, const char *path, char *text, size_t len);
/* The registered text of path, or NULL. */
const struct source *diags_source(const struct diags *d, const char *path);

void diag_error(struct diags *d, struct loc loc, const char *fmt, ...) PRINTF_LIKE(3, 4);
void diag_warning(struct diags *d, struct loc loc, const char *fmt, ...) PRINTF_LIKE(3, 4);
void diag_note(struct diags *d, struct loc loc, const char *fmt, ...) PRINTF_LIKE(3, 4);
/* A location for a whole file (no line to quote). */
struct loc loc_file(const char *file);

/*
 * Print every record in source order: by file (in the order the files were
 * read), line and column; records at one place in the order they were made.
 */
void diags_print(const struct diags *d, FILE *out);
/*
 * Put d's records in the order diags_print prints them (for callers that
 * walk d->v themselves, such as mxacld logging a reload's diagnostics).
 */
void diags_sort(struct diags *d);
/* Print one record (with its source line and carets) into b. */
void diag_format(const struct diags *d, const struct diag *r, struct strbuf *b);

#endif
