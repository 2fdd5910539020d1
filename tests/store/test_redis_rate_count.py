"""What a rate counts, on Redis shared by two gateways: count=recipients
and count=bytes add the request's recipient_count and size in one atomic
script (a refused request adds nothing), racing messages through both
gateways never pass the limit, and the answers are the memory store's.

mxacld takes its clock from real time (it ignores policy_test_time); the
windows here are an hour or a day and every test runs in a few seconds,
so nothing slides out meanwhile (the slotted log's edges are covered by
tests/unit/test_store.c and the golden transcripts, on their own clock).
"""
import unittest

from mxtest import concurrent
from redis import PATIENT, GatewaysCase

QUOTA = """
acl eom    protocol_state END-OF-MESSAGE
acl rcpts  rate sasl_username %d/1d count=recipients
acl volume rate sasl_username 50M/1d count=bytes
acl msgs   rate sasl_username 3/1h
acl bob    sasl_username bob
action too_many 452 4.5.3 recipients: ${rate_count}
action too_big  452 4.5.3 bytes: ${rate_count}
action too_often 450 4.7.1 messages: ${rate_count}
action ok OK
access eom rcpts too_many
access eom volume too_big
access eom bob msgs too_often
access ok
"""

MB = 1048576


def msg(user="alice", rcpts=1, size=1000):
    return {"request": "smtpd_access_policy", "protocol_state": "END-OF-MESSAGE",
            "sasl_username": user, "recipient_count": str(rcpts), "size": str(size)}


# (request, what a store that works answers): recipients summed, a refusal
# not counted, 0 adding nothing, bytes summed, the count kinds apart.
SEQUENCE = [
    (msg(rcpts=40), "action=OK"),
    (msg(rcpts=50), "action=OK"),
    (msg(rcpts=20), "action=452 4.5.3 recipients: 110"),
    (msg(rcpts=10), "action=OK"),
    (msg(rcpts=0), "action=OK"),
    (msg(rcpts=1), "action=452 4.5.3 recipients: 101"),
    (msg(user="bob", rcpts=100, size=20 * MB), "action=OK"),
    (msg(user="bob", rcpts=0, size=20 * MB), "action=OK"),
    (msg(user="bob", rcpts=0, size=20 * MB), "action=452 4.5.3 bytes: 62914560"),
    (msg(user="bob", rcpts=0, size=10 * MB), "action=OK"),
    (msg(user="bob", rcpts=0, size=0), "action=450 4.7.1 messages: 4"),
    (msg(user="bob", rcpts=0, size=1), "action=452 4.5.3 bytes: 52428801"),
]


class RateCountRedis(GatewaysCase, unittest.TestCase):

    def test_same_answers_as_the_memory_store(self):
        r = self.redis()
        mem, a, b = self.start(QUOTA % 100, [None, r.url, r.url])
        got_mem = [mem.query(q) for q, _ in SEQUENCE]
        # through both gateways in turn: one counter
        got_redis = [(a, b)[i % 2].query(q) for i, (q, _) in enumerate(SEQUENCE)]
        want = [w for _, w in SEQUENCE]
        self.assertEqual(got_mem, want)
        self.assertEqual(got_redis, want)
        # the recipients and bytes logs are hashes of at most a few slots,
        # the requests log a sorted set; all with a TTL
        sums = sorted(r.cmd("KEYS", "mxacl:q:*"))
        self.assertEqual(sums, ["mxacl:q:%s|sasl_username|%d/86400|%s" % (kind, limit, user)
                                for kind, limit in (("bytes", 50 * MB), ("recipients", 100))
                                for user in ("alice", "bob")])
        self.assertTrue(all(r.cmd("TYPE", k) == "hash" for k in sums), sums)
        self.assertTrue(all(0 < r.cmd("TTL", k) <= 86400 + 720 for k in sums), sums)
        logs = sorted(r.cmd("KEYS", "mxacl:r:*"))
        self.assertEqual(logs, ["mxacl:r:sasl_username|3/3600|bob"])
        self.assertEqual(r.cmd("TYPE", logs[0]), "zset")
        self.assertEqual(r.cmd("ZCARD", logs[0]), 3)     # the refused 4th not recorded

    def test_racing_recipients_never_pass_the_limit(self):
        r = self.redis()
        nodes = self.start(QUOTA % 100, [r.url + PATIENT] * 2)
        jobs = [(nodes[i % 2], msg(user="carol", rcpts=10)) for i in range(30)]
        replies = concurrent(jobs)
        self.assertEqual(replies.count("action=OK"), 10, replies)
        self.assertEqual(replies.count("action=452 4.5.3 recipients: 110"), 20, replies)
        # the refused 20 were not counted: the sum is exactly the limit
        key = [k for k in r.cmd("KEYS", "mxacl:q:*") if k.startswith("mxacl:q:recipients|") and k.endswith("|carol")]
        self.assertEqual(len(key), 1, key)
        vals = r.cmd("HVALS", key[0])
        self.assertEqual(sum(int(v) for v in vals), 100, vals)

    def test_racing_bytes_never_pass_the_limit(self):
        r = self.redis()
        nodes = self.start(QUOTA % 100000, [r.url + PATIENT] * 2)
        jobs = [(nodes[i % 2], msg(user="dave", rcpts=1, size=7 * MB)) for i in range(16)]
        replies = concurrent(jobs)
        # 7 messages of 7 MiB fit in 50 MiB, the 8th would make 56 MiB
        self.assertEqual(replies.count("action=OK"), 7, replies)
        self.assertEqual(replies.count("action=452 4.5.3 bytes: %d" % (56 * MB)), 9, replies)


if __name__ == "__main__":
    unittest.main()
