"""Distinct counters in Redis shared by two mxacld: the same answers as the
memory store for the same requests; a key seen from 2 countries through one
gateway and 2 others through the other has 4 (the fourth matches at limit
3); racing requests with new values through both never let more than
LIMIT in, and the set in Redis holds exactly LIMIT values.

mxacld takes its clock from real time; these tests finish well inside
their windows (1h)."""
import os
import shutil
import subprocess
import tempfile
import unittest

from mxtest import Mxacld, ROOT, concurrent
import test_redis_cluster as cluster

MKMMDB = os.path.join(ROOT, "tests", "lib", "mkmmdb.pl")
NETS = ["192.0.2.0/24=US:NA", "198.51.100.0/24=DE:EU", "2001:db8::/32=JP:AS",
        "203.0.113.0/24=BR:SA"]

HELOS = """
acl many_helos distinct sasl_username helo_name 3/1h
action hold DEFER_IF_PERMIT ${sasl_username}: ${distinct_count} HELO names
action ok OK
access many_helos hold
access ok
"""

COUNTRIES = """
set geoip %s
acl roaming distinct sasl_username country 3/1h
action hold DEFER_IF_PERMIT ${sasl_username}: ${distinct_count} countries
action ok OK
access roaming hold
access ok
"""


def req(user="alice", helo="a.example", client="192.0.2.10"):
    return {"request": "smtpd_access_policy", "protocol_state": "RCPT",
            "client_address": client, "helo_name": helo, "sasl_method": "PLAIN",
            "sasl_username": user, "sender": "a@example.org", "recipient": "b@example.net"}


class DistinctClusterTest(unittest.TestCase):
    # the cluster tests' gateways on one Redis, without their tests
    start = cluster.ClusterTest.start
    tearDown = cluster.ClusterTest.tearDown
    keys = cluster.ClusterTest.keys

    SEQUENCE = [req(helo="a.example"), req(helo="A.example"), req(helo="b.example"),
                req(user="bob", helo="a.example"), req(helo="c.example"),
                req(helo="d.example"), req(helo="e.example"), req(helo="b.example"),
                req(user="", helo="x.example"), req(helo=""), req(user="Alice", helo="f")]

    def test_same_answers_as_memory(self):
        mem = Mxacld(HELOS)
        self.addCleanup(mem.cleanup)
        mem.start()
        want = [mem.query(r) for r in self.SEQUENCE]
        mem.stop()
        over = "action=DEFER_IF_PERMIT alice: 4 HELO names"
        self.assertEqual(want, ["action=OK"] * 5 + [over, over] + ["action=OK"] * 3 +
                         ["action=DEFER_IF_PERMIT Alice: 4 HELO names"])
        nodes = self.start(HELOS)
        got = [nodes[i % 2].query(r) for i, r in enumerate(self.SEQUENCE)]
        self.assertEqual(got, want)
        keys = self.keys("mxacl:d:*")
        self.assertEqual(keys, ["mxacl:d:sasl_username|helo_name|3/3600|alice",
                                "mxacl:d:sasl_username|helo_name|3/3600|bob"])
        self.assertEqual(self.redis.cmd("ZCARD", keys[0]), 3)
        self.assertGreater(self.redis.cmd("TTL", keys[0]), 3500)

    def test_countries_across_gateways(self):
        d = tempfile.mkdtemp(prefix="mxacl-distinct-")
        self.addCleanup(shutil.rmtree, d, True)
        db = os.path.join(d, "geo.mmdb")
        subprocess.run(["perl", MKMMDB, db] + NETS, check=True)
        a, b = self.start(COUNTRIES % db)
        self.assertEqual(a.query(req(client="192.0.2.1")), "action=OK")       # US
        self.assertEqual(a.query(req(client="198.51.100.1")), "action=OK")    # DE
        self.assertEqual(b.query(req(client="2001:db8::1")), "action=OK")     # JP
        self.assertEqual(b.query(req(client="203.0.113.1")),                  # BR: 4
                         "action=DEFER_IF_PERMIT alice: 4 countries")
        self.assertEqual(a.query(req(client="203.0.113.9")),
                         "action=DEFER_IF_PERMIT alice: 4 countries")
        self.assertEqual(b.query(req(client="192.0.2.77")), "action=OK")      # US, known
        self.assertEqual(b.query(req(client="8.8.8.8")), "action=OK")         # unknown
        key = "mxacl:d:sasl_username|country|3/3600|alice"
        self.assertEqual(sorted(self.redis.cmd("ZRANGE", key, "0", "-1")), ["DE", "JP", "US"])

    def test_racing_new_values_never_overshoot(self):
        nodes = self.start(HELOS.replace("3/1h", "10/1h"))
        jobs = [(nodes[i % 2], req(helo="h%d.example" % i)) for i in range(30)]
        replies = concurrent(jobs)
        self.assertEqual(replies.count("action=OK"), 10, replies)
        self.assertEqual(replies.count("action=DEFER_IF_PERMIT alice: 11 HELO names"), 20,
                         replies)
        key = "mxacl:d:sasl_username|helo_name|10/3600|alice"
        self.assertEqual(self.redis.cmd("ZCARD", key), 10)


if __name__ == "__main__":
    unittest.main()
