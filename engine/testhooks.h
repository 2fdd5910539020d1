/*
 * testhooks - acl types for tests only, registered when the environment
 * has MXACL_TEST_HOOKS=1 (mxacld and mxacl call testhooks_register_from_env).
 * They let the daemon's tests drive the suspension path end to end before
 * the real asynchronous sources (DNS, Redis) exist, and keep doing so
 * without a network.
 *
 *   acl NAME test_sleep MS [yes|no|tempfail]
 *       answers after MS milliseconds on a libevent timer (default yes)
 */
#ifndef MXACL_TESTHOOKS_H
#define MXACL_TESTHOOKS_H

/* Evaluations of test_sleep acls so far (tests check "at most once"). */
extern unsigned long testhooks_sleep_evals;

void testhooks_register(void);
/* testhooks_register() when MXACL_TEST_HOOKS=1; returns whether it did. */
int testhooks_register_from_env(void);

#endif
