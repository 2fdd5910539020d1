/*
 * strkey - the keys under which a text value is looked up in a set of
 * literals: the whole value, its domain, each parent domain, its local
 * part. String acls (acl/string.c) store their literals by these forms,
 * and the VM's SWITCH looks a request value up by them, so both must cut
 * a value the same way: here.
 */
#ifndef MXACL_STRKEY_H
#define MXACL_STRKEY_H

#include <stddef.h>

/* Literal forms: whole value, domain (@dom), parent domains (@.dom), local
 * part (user@), empty (""). */
enum str_form { FORM_WHOLE, FORM_DOMAIN, FORM_SUBDOMAIN, FORM_LOCAL, FORM_EMPTY, FORM_COUNT };

#define STR_MAX_KEYS 40
struct str_key {
	enum str_form form;
	const char *s;           /* points into the value */
	size_t len;
};

/*
 * The keys of value s (len bytes, lower-cased by the caller) of attribute
 * attr into out (room for STR_MAX_KEYS); returns how many. A host name
 * attribute's value without '@' is its own domain.
 */
size_t strkey_split(int attr, const char *s, size_t len, struct str_key *out);

#endif
