"""Refunds on Redis shared by two gateways: a message that a later line
refuses takes back what the lines above it counted (the exact log's
member, the slotted logs' amounts, a distinct value it added), each by one
EVALSHA of the refund script; the answers are the memory store's; racing
messages through both gateways never let more than the limit through,
and once the race is over the quota holds exactly what was accepted.

A refund is sent after the reply and nobody waits for it, so a request
that follows a refused one through the other gateway could reach Redis
first: the sequence sends the request after a refusal through the same
gateway (its one connection keeps the order), and settle() does the same
before Redis is read. mxacld's clock is real time; the windows are an
hour or a day and the tests take seconds.
"""
import unittest

from mxtest import concurrent
from redis import PATIENT, GatewaysCase, eom_request as msg

QUOTA = """
acl eom    protocol_state END-OF-MESSAGE
acl msgs   rate sasl_username 4/1h
acl rcpts  rate sasl_username %d/1d count=recipients
acl helos  distinct sasl_username helo_name 2/1h
acl volume rate sasl_username 1M/1d count=bytes
action too_often 450 4.7.1 messages: ${rate_count}
action too_many  452 4.5.3 recipients: ${rate_count}
action roaming   DEFER_IF_PERMIT HELO names: ${distinct_count}
action too_big   552 5.3.4 bytes: ${rate_count}
action ok OK
access eom msgs too_often
access eom rcpts too_many
access eom helos roaming
access eom volume too_big
access ok
"""

KB, MB = 1024, 1048576


# (request, the answer): the refused big message is retried and each time
# gives back its message, its 4 recipients and its HELO name.
SEQUENCE = [
    (msg(helo="a.example", rcpts=4, size=100 * KB), "action=OK"),
    (msg(helo="b.example", rcpts=4, size=2 * MB), "action=552 5.3.4 bytes: 2199552"),
    (msg(helo="b.example", rcpts=4, size=2 * MB), "action=552 5.3.4 bytes: 2199552"),
    # 2 messages, 10 recipients, {a, c}: 4 messages, 18 recipients and
    # {a, b} (c over) without the refunds
    (msg(helo="c.example", rcpts=6, size=100 * KB), "action=OK"),
    (msg(helo="a.example", rcpts=1), "action=452 4.5.3 recipients: 11"),
    # a was in the set before: the refusal leaves it there
    (msg(helo="a.example", rcpts=0, size=2 * MB), "action=552 5.3.4 bytes: 2301952"),
    (msg(helo="d.example", rcpts=0), "action=DEFER_IF_PERMIT HELO names: 3"),
    (msg(helo="a.example", rcpts=0), "action=OK"),
]


class RefundRedis(GatewaysCase, unittest.TestCase):

    def settle(self, nodes):
        """A request through each gateway: its answer comes after every
        refund that gateway sent before it."""
        for n in nodes:
            self.assertEqual(n.query(msg(user="settle", rcpts=0, size=0)), "action=OK")

    def test_same_answers_as_the_memory_store(self):
        r = self.redis()
        mem, a, b = self.start(QUOTA % 10, [None, r.url, r.url])
        want = [w for _, w in SEQUENCE]
        self.assertEqual([mem.query(q) for q, _ in SEQUENCE], want)
        got, node = [], 0
        for q, _ in SEQUENCE:        # alternate, but stay after a refusal
            got.append((a, b)[node].query(q))
            if got[-1] == "action=OK":
                node ^= 1
        self.assertEqual(got, want)
        self.settle([a, b])
        # what is left is exactly what the accepted messages used
        log = "mxacl:r:sasl_username|4/3600|alice"
        self.assertEqual(r.cmd("ZCARD", log), 3)
        rcpts = "mxacl:q:recipients|sasl_username|10/86400|alice"
        self.assertEqual(sum(int(v) for v in r.cmd("HVALS", rcpts)), 10)
        volume = "mxacl:q:bytes|sasl_username|%d/86400|alice" % MB
        self.assertEqual(sum(int(v) for v in r.cmd("HVALS", volume)), 200 * KB + 1000)
        helos = "mxacl:d:sasl_username|helo_name|2/3600|alice"
        self.assertEqual(sorted(r.cmd("ZRANGE", helos, "0", "-1")), ["a.example", "c.example"])

    def test_racing_refused_messages_never_let_more_through(self):
        r = self.redis()
        nodes = self.start(QUOTA.replace("4/1h", "1000/1h") % 100, [r.url + PATIENT] * 2)
        # 10 big messages (refused by the bytes line, after the recipients
        # line has counted them) race 10 small ones, 10 recipients each,
        # from one HELO name
        jobs = []
        for i in range(20):
            size = 2 * MB if i % 2 else 1000
            jobs.append((nodes[i % 2], msg(user="carol", rcpts=10, size=size)))
        replies = concurrent(jobs)
        big, small = replies[1::2], replies[0::2]
        # refused by the bytes line, or (the quota already full) by the
        # recipients line
        self.assertTrue(all(x.startswith("action=552 5.3.4 bytes: ") or
                            x == "action=452 4.5.3 recipients: 110" for x in big), big)
        # a big message's reservation, not yet refunded, may refuse a small
        # one: never too many, perhaps fewer
        passed = small.count("action=OK")
        self.assertTrue(all(x == "action=OK" or x.startswith("action=452 4.5.3 recipients: ")
                            for x in small), small)
        self.assertLessEqual(passed, 10)
        self.settle(nodes)
        rcpts = "mxacl:q:recipients|sasl_username|100/86400|carol"
        self.assertEqual(sum(int(v) for v in r.cmd("HVALS", rcpts)), 10 * passed)
        # the rest of the quota is all there: exactly 10 accepted in all
        more = 0
        while nodes[more % 2].query(msg(user="carol", rcpts=10)) == "action=OK":
            more += 1
            self.assertLessEqual(passed + more, 10)
        self.assertEqual(passed + more, 10)
        self.assertEqual(sum(int(v) for v in r.cmd("HVALS", rcpts)), 100)


if __name__ == "__main__":
    unittest.main()
