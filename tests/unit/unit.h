/*
 * Unit test suites (Check). Each tests/unit/test_MODULE.c defines one
 * MODULE_suite(), and UNIT_SUITES lists each exactly once: a listed suite
 * without its source is a link error, never a silent skip.
 */
#ifndef MXACL_UNIT_H
#define MXACL_UNIT_H

#include <check.h>

#define UNIT_SUITES(X) \
	X(cidr)        \
	X(strmap)      \
	X(numcmp)      \
	X(timematch)   \
	X(action)      \
	X(request)     \
	X(derive)      \
	X(vm)          \
	X(greylist)    \
	X(store)       \
	X(dns)         \
	X(dnscache)    \
	X(maillog)     \
	X(settings)    \
	X(spf_record)  \
	X(runtime)     \
	X(multire)     \
	X(redis_slot)

#define X(n) Suite *n##_suite(void);
UNIT_SUITES(X)
#undef X

#endif
