/*
 * acl - finding acl types by name, for the compiler and its hints, and the
 * small services every type's compile and eval use (see acl.h).
 */
#include "engine/acl.h"

#include <string.h>

#include "engine/program.h"

/* Types added outside the table (tests); searched after it, newest first. */
static const struct acl_type **extra;
static size_t nextra, capextra;

void acl_type_register(const struct acl_type *t)
{
	VEC_PUSH(extra, nextra, capextra, t);
}

const struct acl_type *acl_type_find(const char *name)
{
	const struct acl_type *t;
	for (size_t i = 0; (t = acl_types_at(i)); i++)
		if (ascii_ieq(name, t->name))
			return t;
	for (size_t i = nextra; i-- > 0;)
		if (ascii_ieq(name, extra[i]->name))
			return extra[i];
	return NULL;
}

/* Every type's name by index (the table's, then registered ones); NULL
 * past the end. */
static const char *type_name_at(size_t i, void *ctx)
{
	(void)ctx;
	size_t n = 0;
	while (acl_types_at(n))
		n++;
	if (i < n)
		return acl_types_at(i)->name;
	return i - n < nextra ? extra[i - n]->name : NULL;
}

const char *acl_type_suggest(const char *name)
{
	return suggest_word(name, strlen(name), type_name_at, NULL);
}

void acl_type_list_named(struct strbuf *out)
{
	const struct acl_type *t;
	bool first = true;
	for (size_t i = 0; (t = acl_types_at(i)); i++)
		if (t->attr < 0) {
			sb_printf(out, "%s%s", first ? "" : ", ", t->name);
			first = false;
		}
}

void *acl_data(const struct acl_rt *acl)
{
	return acl->data;
}

const char *acl_name(const struct acl_rt *acl)
{
	return acl->name;
}

bool acl_tempfail_option(struct acl_compile *c, const struct ast_word *w, bool *ok)
{
	if (strncmp(w->s, "tempfail=", 9))
		return false;
	if (!acl_tempfail_parse(w->s + 9, &c->tempfail)) {
		diag_error(c->diags, w->loc, "tempfail takes match, nomatch or default");
		*ok = false;
	}
	return true;
}

bool acl_tempfail_parse(const char *v, int *mode)
{
	if (!strcmp(v, "nomatch"))
		*mode = TEMPFAIL_NOMATCH;
	else if (!strcmp(v, "match"))
		*mode = TEMPFAIL_MATCH;
	else if (!strcmp(v, "default"))
		*mode = TEMPFAIL_DEFAULT;
	else
		return false;
	return true;
}
