"""Two mxacld gateways sharing one Redis (--store redis://...): greylisting
state and rate counters are one across both; racing requests through both
pass or count exactly as one gateway would; an outage makes the acls answer
per their tempfail= setting without holding anything up, and service
resumes by itself when Redis is back.

mxacld takes its clock from real time (it ignores policy_test_time), so
these tests use delays of a few seconds and sleep through them.
"""
import re
import threading
import time
import unittest

from mxtest import Mxacld, concurrent
from redis import PATIENT, RedisServer

GREY = """
acl g greylist delay=2s
action grey DEFER_IF_PERMIT Greylisted, retry in ${greylist_remaining}s
action pass PREPEND X-Greylist: delayed ${greylist_age} seconds
access g grey
access pass
"""

RATE = """
acl flood rate sender %d/1h
action slow DEFER_IF_PERMIT slow down (${rate_count})
action ok OK
access flood slow
access ok
"""

# tempfail: the default (nomatch) fails open; tempfail=match greylists.
OUTAGE = """
acl quick recipient quick@example.net
acl to_m recipient m@example.net
acl g greylist delay=2s
acl gm greylist delay=2s tempfail=match
action grey DEFER_IF_PERMIT Greylisted
action ok DUNNO
action fast OK
access quick fast
access to_m gm grey
access g grey
access ok
"""

GREYLISTED = re.compile(r"^action=DEFER_IF_PERMIT Greylisted, retry in [12]s$")
PASSED = re.compile(r"^action=PREPEND X-Greylist: delayed [23] seconds$")


def req(sender="a@example.org", recipient="b@example.net", client="192.0.2.10"):
    return {"request": "smtpd_access_policy", "protocol_state": "RCPT",
            "client_address": client, "sender": sender, "recipient": recipient}


class ClusterTest(unittest.TestCase):
    def start(self, conf, nodes=2, url_suffix=""):
        self.redis = RedisServer()
        self.redis.start()
        self.addCleanup(self.redis.cleanup)
        self.nodes = []
        for _ in range(nodes):
            d = Mxacld(conf, extra_args=["--store", self.redis.url + url_suffix])
            self.addCleanup(d.cleanup)
            d.start()
            self.nodes.append(d)
        return self.nodes

    def tearDown(self):
        # exit status 0 and no sanitizer report, with the store closed under
        # whatever is still pending
        for d in getattr(self, "nodes", []):
            d.stop()

    def keys(self, pattern):
        return sorted(self.redis.cmd("KEYS", pattern))

    def test_triplet_seen_on_one_passes_on_the_other(self):
        a, b = self.start(GREY)
        self.assertRegex(a.query(req()), GREYLISTED)
        first = time.monotonic()    # mxacld's stamp of the triplet is no later
        self.assertRegex(b.query(req()), GREYLISTED)
        # another triplet is its own
        self.assertRegex(b.query(req(sender="other@example.org")), GREYLISTED)
        time.sleep(max(0.0, first + 2.2 - time.monotonic()))
        self.assertRegex(b.query(req()), PASSED)
        self.assertRegex(a.query(req()), PASSED)
        triplets = self.keys("mxacl:g:*")
        self.assertEqual(len(triplets), 2, triplets)
        passed = [self.redis.cmd("HGET", k, "passed") for k in triplets]
        self.assertEqual(sorted(passed), ["0", "1"])
        ttl = [self.redis.cmd("TTL", k) for k in triplets]
        self.assertTrue(all(t > 0 for t in ttl), "every key has a TTL: %r" % ttl)

    def test_rate_counts_requests_to_both(self):
        nodes = self.start(RATE % 5)
        got = [nodes[i % 2].query(req()) for i in range(9)]
        self.assertEqual(got[:5], ["action=OK"] * 5)
        self.assertEqual(got[5:], ["action=DEFER_IF_PERMIT slow down (6)"] * 4)
        # another sender has its own counter
        self.assertEqual(nodes[1].query(req(sender="z@example.org")), "action=OK")

    def test_racing_first_requests_none_pass_early(self):
        nodes = self.start(GREY.replace("delay=2s", "delay=3s"))
        jobs = [(nodes[i % 2], req()) for i in range(24)]
        replies = concurrent(jobs)
        first = time.monotonic()    # mxacld's stamp of the triplet is no later
        for r in replies:
            self.assertRegex(r, r"^action=DEFER_IF_PERMIT Greylisted, retry in [23]s$")
        time.sleep(max(0.0, first + 3.2 - time.monotonic()))
        replies = concurrent(jobs)
        for r in replies:
            self.assertRegex(r, r"^action=PREPEND X-Greylist: delayed [34] seconds$")
        # the triplet's first pass counted once towards its network's AWL
        awl = self.keys("mxacl:a:*")
        self.assertEqual(len(awl), 1, awl)
        self.assertEqual(self.redis.cmd("HGET", awl[0], "count"), "1")

    def test_racing_rate_exactly_limit_pass(self):
        nodes = self.start(RATE % 10, url_suffix=PATIENT)
        replies = concurrent([(nodes[i % 2], req()) for i in range(30)])
        self.assertEqual(replies.count("action=OK"), 10, replies)
        self.assertEqual(replies.count("action=DEFER_IF_PERMIT slow down (11)"), 20, replies)

    def test_outage_answers_per_tempfail_and_recovers(self):
        nodes = self.start(OUTAGE)
        for i, d in enumerate(nodes):
            self.assertEqual(d.query(req(sender="s%d@example.org" % i)),
                             "action=DEFER_IF_PERMIT Greylisted")
        self.redis.kill()
        for round_ in range(3):
            for i, d in enumerate(nodes):
                t = time.monotonic()
                # default tempfail (nomatch): fail open
                self.assertEqual(d.query(req(sender="down%d%d@example.org" % (round_, i))),
                                 "action=DUNNO")
                # tempfail=match: the acl matches
                self.assertEqual(d.query(req(sender="down%d%d@example.org" % (round_, i),
                                             recipient="m@example.net")),
                                 "action=DEFER_IF_PERMIT Greylisted")
                self.assertLess(time.monotonic() - t, 5.0)
            time.sleep(0.2)
        self.redis.start()            # same port, empty
        for i, d in enumerate(nodes):
            deadline = time.monotonic() + 15
            while True:
                r = d.query(req(sender="back%d-%f@example.org" % (i, time.monotonic())))
                if r == "action=DEFER_IF_PERMIT Greylisted":
                    break
                self.assertEqual(r, "action=DUNNO")
                self.assertLess(time.monotonic(), deadline, "no reconnect within 15 s")
                time.sleep(0.1)
        for d in nodes:
            log = d.wait_log(r"store redis://\S+: connected again")
            self.assertEqual(len(re.findall(r"store redis://\S+: connection lost: ", log)), 1,
                             log)
            self.assertIn("greylist and rate acls answer as temporary failures", log)

    def test_stalled_redis_holds_nothing_up(self):
        nodes = self.start(OUTAGE, nodes=1, url_suffix="?timeout=1500")
        d = nodes[0]
        self.assertEqual(d.query(req()), "action=DEFER_IF_PERMIT Greylisted")
        self.redis.stall()
        try:
            waiting = {}

            def grey():
                t = time.monotonic()
                waiting["reply"] = d.query(req(sender="stall@example.org"))
                waiting["took"] = time.monotonic() - t
                waiting["done"] = time.monotonic()

            th = threading.Thread(target=grey)
            th.start()
            time.sleep(0.1)
            # a request that needs no store is answered while the other waits
            self.assertEqual(d.query(req(recipient="quick@example.net")), "action=OK")
            quick_done = time.monotonic()
            th.join(15)
            self.assertEqual(waiting.get("reply"), "action=DUNNO")
            self.assertLess(quick_done, waiting["done"])
            # the per-command timeout answered it, not a hang
            self.assertLess(waiting["took"], 10.0)
            # the stuck connection was dropped: the next one is not held
            self.assertEqual(d.query(req(sender="stall2@example.org")), "action=DUNNO")
        finally:
            self.redis.resume()
        deadline = time.monotonic() + 15
        while d.query(req(sender="after-%f@example.org" % time.monotonic())) != \
                "action=DEFER_IF_PERMIT Greylisted":
            self.assertLess(time.monotonic(), deadline, "no recovery within 15 s")
            time.sleep(0.1)
        d.wait_log(r"connection lost: no reply within 1500 ms")
        d.wait_log(r"connected again")

if __name__ == "__main__":
    unittest.main()
