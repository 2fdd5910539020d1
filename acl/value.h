/*
 * value - the values of an acl as its type's compile function sees them:
 * the words after "acl NAME TYPE", with value files (file:PATH, or a bare
 * absolute path as in apolicy) expanded line by line. A line is a value;
 * blank lines and '#' comments are skipped; a quoted line is literal.
 * Errors (an unreadable file, one over 512 MB) are diagnostics at the
 * word that named the file; the file's text is kept as a diagnostic
 * source, so errors in it quote its lines.
 */
#ifndef MXACL_VALUE_H
#define MXACL_VALUE_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/acl.h"

/* One value: a word of the config or a line of a value file. */
struct value {
	const char *s;           /* not NUL-terminated when from a file */
	size_t len;
	struct loc loc;
	bool quoted;             /* written in quotes: never a regex, never a file */
};

/* Called per value; false when the value is bad (it reported why). */
typedef bool (*value_fn)(struct acl_compile *c, void *m, const struct value *v);

/* Call fn(c, m, value) for each value of c->acl; false if any call or a
 * file failed (all values are still visited, to report every error). */
bool value_each(struct acl_compile *c, void *m, value_fn fn);

#endif
