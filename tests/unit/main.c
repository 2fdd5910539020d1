/*
 * Unit test runner: the suites of UNIT_SUITES.
 *   build/asan/unit            run all
 *   build/asan/unit cidr vm    run the named suites
 * A name that is not a suite is an error (exit 2, the list of suites on
 * stderr): a typo must not pass by running nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/unit.h"

static const struct {
	const char *name;
	Suite *(*fn)(void);
} suites[] = {
#define X(n) { #n, n##_suite },
	UNIT_SUITES(X)
#undef X
};

#define NSUITES (sizeof suites / sizeof suites[0])

/* The index of the suite called name, or -1. */
static int suite_index(const char *name)
{
	for (size_t i = 0; i < NSUITES; i++)
		if (strcmp(suites[i].name, name) == 0)
			return (int)i;
	return -1;
}

int main(int argc, char **argv)
{
	int want[NSUITES] = { 0 };
	for (int j = 1; j < argc; j++) {
		int i = suite_index(argv[j]);
		if (i < 0) {
			fprintf(stderr, "unit: no suite \"%s\"; the suites are:", argv[j]);
			for (size_t k = 0; k < NSUITES; k++)
				fprintf(stderr, " %s", suites[k].name);
			fputc('\n', stderr);
			return 2;
		}
		want[i] = 1;
	}
	SRunner *sr = NULL;
	for (size_t i = 0; i < NSUITES; i++) {
		if (argc > 1 && !want[i])
			continue;
		if (!sr)
			sr = srunner_create(suites[i].fn());
		else
			srunner_add_suite(sr, suites[i].fn());
	}
	srunner_run_all(sr, CK_NORMAL);
	int run = srunner_ntests_run(sr);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (run == 0) {
		fprintf(stderr, "unit: no checks ran\n");
		return EXIT_FAILURE;
	}
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
