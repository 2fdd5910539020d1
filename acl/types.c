/*
 * types - the one table of acl types (engine/acl.h, acl_types_at): what a
 * request can be matched on. A new type is its file in acl/ plus one row
 * of ACL_TYPES; its name, the typo suggestions and the "unknown acl type"
 * hint all come from here.
 *
 * Every request attribute is a type of its own name, of the kind its
 * values call for (text, address, number); policy_test_time is set by
 * mxacl replay and never matched on ("day" and "time" are the clock's
 * acls), so it has none.
 */
#include <pthread.h>
#include <stddef.h>

#include "engine/acl.h"
#include "engine/attrs.h"
#include "util/util.h"

/* The named types, in the order the hint lists them: one row each (the
 * file defining acl_NAME_type). */
#define ACL_TYPES(X)    \
	X(day)          \
	X(time)         \
	X(date)         \
	X(month)        \
	X(mday)         \
	X(country)      \
	X(greylist)     \
	X(greylisting)  \
	X(rate)         \
	X(distinct)     \
	X(rbl)          \
	X(dnswl)        \
	X(rhsbl)        \
	X(rhsbl_helo)   \
	X(rhsbl_client) \
	X(spf)          \
	X(score)        \
	X(mx)           \
	X(a)

#define X(n) extern const struct acl_type acl_##n##_type;
ACL_TYPES(X)
#undef X

static const struct acl_type *const named[] = {
#define X(n) &acl_##n##_type,
	ACL_TYPES(X)
#undef X
};

/* The kinds of attribute values (acl/string.c, address.c, number.c). */
extern const struct acl_type acl_string_kind, acl_address_kind, acl_number_kind;

static const struct acl_type *attr_kind(int a)
{
	switch (a) {
	case ATTR_client_address:
	case ATTR_server_address:
		return &acl_address_kind;
	case ATTR_size:
	case ATTR_recipient_count:
	case ATTR_client_port:
	case ATTR_encryption_keysize:
	case ATTR_server_port:
		return &acl_number_kind;
	default:
		return &acl_string_kind;
	}
}

/* Every type: the attribute types (their kind's functions under the
 * attribute's name), then the named ones. Built once, read-only after. */
static struct acl_type attr_types[ATTR_COUNT];
static const struct acl_type *all[ATTR_COUNT + ARRAY_LEN(named)];
static size_t nall;

static void types_init(void)
{
	for (int i = 0; i < ATTR_COUNT; i++) {
		if (i == ATTR_policy_test_time)
			continue;
		attr_types[i] = *attr_kind(i);
		attr_types[i].name = attr_name((enum attr_id)i);
		attr_types[i].attr = i;
		all[nall++] = &attr_types[i];
	}
	for (size_t i = 0; i < ARRAY_LEN(named); i++)
		all[nall++] = named[i];
}

const struct acl_type *acl_types_at(size_t i)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, types_init);
	return i < nall ? all[i] : NULL;
}
