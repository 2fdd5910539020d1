/*
 * testhooks - what tests can reach inside mxacld and mxacl, and only in
 * test builds. The hooks are compiled in when MXACL_TESTHOOKS is defined
 * (the sanitised builds: make asan, make fuzz; the code is
 * tests/hooks/testhooks.c); in the production build every call below is an
 * inline no-op, so build/mxacld and build/mxacl carry no test code and no
 * environment variable changes what they do.
 *
 * In a test build the hooks act only when the environment has
 * MXACL_TEST_HOOKS=1:
 *
 *   acl NAME test_sleep MS [yes|no|tempfail]
 *       an acl type that answers after MS milliseconds on a libevent timer
 *       (default yes): the suspension path without a network;
 *   MXACL_TEST_RELOAD_MS=N       each reload compile takes N ms longer
 *                                (daemon/reload.c);
 *   MXACL_TEST_STATE_LOAD_MS=N   the state file's loader waits N ms first
 *                                (backends/store_memory.c).
 *
 * getenv is not for threads: callers read a delay on the loop thread,
 * before starting the thread that uses it.
 */
#ifndef MXACL_TESTHOOKS_H
#define MXACL_TESTHOOKS_H

#ifdef MXACL_TESTHOOKS

/* Evaluations of test_sleep acls so far (tests check "at most once"). */
extern unsigned long testhooks_sleep_evals;

/* Register the test_sleep acl type (idempotent). */
void testhooks_register(void);
/* testhooks_register() when MXACL_TEST_HOOKS=1; returns whether it did. */
int testhooks_register_from_env(void);
/* The milliseconds in environment variable var when MXACL_TEST_HOOKS=1;
 * otherwise (or unset) 0. */
unsigned long testhooks_ms(const char *var);

#else

static inline int testhooks_register_from_env(void)
{
	return 0;
}

static inline unsigned long testhooks_ms(const char *var)
{
	(void)var;
	return 0;
}

#endif
#endif
