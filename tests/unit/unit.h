/*
 * Unit test suites (Check). Each tests/unit/test_MODULE.c defines one
 * MODULE_suite(); main.c runs every suite listed in UNIT_SUITES that is
 * linked in.
 */
#ifndef MXACL_UNIT_H
#define MXACL_UNIT_H

#include <check.h>

#define UNIT_SUITES(X) \
	X(util)        \
	X(cidr)        \
	X(strmap)      \
	X(numcmp)      \
	X(timematch)   \
	X(action)      \
	X(request)     \
	X(lexer)       \
	X(compile)     \
	X(vm)          \
	X(acl_state)   \
	X(store)       \
	X(dns)         \
	X(dnscache)    \
	X(maillog)

#define X(n) Suite *n##_suite(void) __attribute__((weak));
UNIT_SUITES(X)
#undef X

#endif
