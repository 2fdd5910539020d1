/*
 * Unit test runner: every suite of UNIT_SUITES that is linked in.
 *   build/asan/unit            run all
 *   build/asan/unit cidr vm    run the named suites
 */
#include <stdlib.h>
#include <string.h>

#include "tests/unit/unit.h"

int main(int argc, char **argv)
{
	SRunner *sr = NULL;
	struct {
		const char *name;
		Suite *(*fn)(void);
	} suites[] = {
#define X(n) { #n, n##_suite },
		UNIT_SUITES(X)
#undef X
	};
	for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
		if (!suites[i].fn)
			continue;
		int want = argc == 1;
		for (int j = 1; j < argc; j++)
			want |= strcmp(argv[j], suites[i].name) == 0;
		if (!want)
			continue;
		if (!sr)
			sr = srunner_create(suites[i].fn());
		else
			srunner_add_suite(sr, suites[i].fn());
	}
	if (!sr)
		return 0;
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
