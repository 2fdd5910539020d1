"""Counting ahead on Redis (engine/vm.h, "Counting ahead"): when a request
first waits for a counter, the counters of the lines below whose other
terms already hold are sent with it, so four counters on four lines cost
one round trip, not four; a counter sent ahead whose line is then not
reached (a line above answered, or the request went away) is given back,
so Redis holds what evaluating the lines one by one would have left, and
the answers and ${rate_count}/${distinct_count} are the same.

The round trip is made long by a proxy that holds every chunk 100 ms in
each direction (DelayProxy); mxacld's clock is real time and the windows
are an hour or a day, the tests take seconds.
"""
import os
import re
import socket
import struct
import time
import unittest

from mxtest import Mxacld, PolicyConn, control_stats
from redis import DelayProxy, GatewaysCase, eom_request as msg

# four counters on four consecutive lines, as conf.d/examples/outbound.conf
POLICY = """
acl eom    protocol_state END-OF-MESSAGE
acl authed sasl_username /./
acl helos  distinct sasl_username helo_name 2/1h
acl rcpts  rate sasl_username 10/1d count=recipients
acl volume rate sasl_username 1M/1d count=bytes
acl msgs   rate sasl_username 100/1h
action roaming   DEFER helos: ${distinct_count}
action too_many  452 4.5.3 recipients: ${rate_count}
action too_big   552 5.3.4 bytes: ${rate_count}
action hourly    452 4.5.3 messages: ${rate_count}
access eom authed helos roaming
access eom authed rcpts too_many
access eom authed volume too_big
dryrun access eom authed msgs hourly
"""

KB = 1024
DELAY = 0.4        # each way: a round trip through the proxy is >= 0.8 s


# (request, answer): lines 1-3 refuse in turn, so the counters below the
# refusing line were sent ahead for nothing and must be given back
SEQUENCE = [
    (msg(helo="a.example", rcpts=4, size=100 * KB), "action=DUNNO"),
    (msg(helo="b.example", rcpts=4, size=100 * KB), "action=DUNNO"),
    # a third HELO: line 1 answers; rcpts, volume, msgs go back
    (msg(helo="c.example", rcpts=1, size=1000), "action=DEFER helos: 3"),
    # 8 + 5 recipients: line 2 answers; volume, msgs go back
    (msg(helo="a.example", rcpts=5, size=1000), "action=452 4.5.3 recipients: 13"),
    # 200 KB + 900 KB: line 3 answers; msgs goes back, rcpts is refunded
    (msg(helo="a.example", rcpts=2, size=900 * KB),
     "action=552 5.3.4 bytes: %d" % (200 * KB + 900 * KB)),
    (msg(helo="a.example", rcpts=1, size=1000), "action=DUNNO"),
    # no login: no line's guard holds, nothing is counted, nothing ahead
    (msg(user="", helo="z.example", rcpts=50, size=1000), "action=DUNNO"),
]


def with_control(d):
    d.control_path = os.path.join(d.tmpdir, "control.sock")
    d.extra_args += ["--control", d.control_path]
    return d


class AheadRedis(GatewaysCase, unittest.TestCase):

    def gateway(self, url):
        d = with_control(Mxacld(POLICY, extra_args=["--store", url]))
        self.addCleanup(d.cleanup)
        d.start()
        self.nodes = getattr(self, "nodes", []) + [d]
        return d

    def proxy(self, r):
        px = DelayProxy(r.port, DELAY)
        self.addCleanup(px.close)
        return px

    def test_four_counters_one_round_trip(self):
        r = self.redis()
        px = self.proxy(r)
        d = self.gateway(px.url)
        self.assertEqual(d.query(msg(user="warm")), "action=DUNNO")   # connected
        for i in range(3):
            ahead = control_stats(d).get("counted_ahead", 0)
            chunks = px.chunks_up
            t0 = time.monotonic()
            self.assertEqual(d.query(msg(user="u%d" % i)), "action=DUNNO")
            took = time.monotonic() - t0
            # one round trip (0.8 s), not four (3.2 s): the margin is a whole
            # round trip, as a loaded machine may need
            self.assertLess(took, 4 * DELAY, "request %d took %.3f s" % (i, took))
            self.assertGreaterEqual(took, 2 * DELAY)
            # the three counters below the first went with it, in one write
            self.assertEqual(control_stats(d)["counted_ahead"] - ahead, 3)
            self.assertEqual(px.chunks_up - chunks, 1)
            # each counted once, as the lines one by one would
            self.assertEqual(r.cmd("ZCARD", "mxacl:r:sasl_username|100/3600|u%d" % i), 1)
        st = control_stats(d)
        self.assertEqual(st.get("ahead_given_back"), 0)

    def evalsha_calls(self, r):
        m = re.search(r"cmdstat_evalsha:calls=(\d+)", r.cmd("INFO", "commandstats"))
        return int(m.group(1)) if m else 0

    def test_one_script_call_for_the_four(self):
        # the four counters of a request go as one EVALSHA of the group
        # script (backends/store_redis.c); a Redis that lost its scripts
        # gets it again by EVAL, and the counts are the same
        r = self.redis()
        d = self.gateway(r.url)
        self.assertEqual(d.query(msg(user="warm")), "action=DUNNO")
        for i in range(3):
            calls = self.evalsha_calls(r)
            self.assertEqual(d.query(msg(user="g%d" % i, rcpts=3, size=2000)), "action=DUNNO")
            self.assertEqual(self.evalsha_calls(r) - calls, 1)
        r.cmd("SCRIPT", "FLUSH")
        self.assertEqual(d.query(msg(user="g0", rcpts=3, size=2000)), "action=DUNNO")
        self.assertEqual(d.query(msg(user="g0", helo="b.example", rcpts=5, size=2000)),
                         "action=452 4.5.3 recipients: 11")
        self.assertEqual(d.query(msg(user="settle")), "action=DUNNO")   # after the give-backs
        self.assertEqual(r.cmd("ZCARD", "mxacl:r:sasl_username|100/3600|g0"), 2)
        rcpts = "mxacl:q:recipients|sasl_username|10/86400|g0"
        self.assertEqual(sum(int(v) for v in r.cmd("HVALS", rcpts)), 6)
        helos = "mxacl:d:sasl_username|helo_name|2/3600|g0"
        self.assertEqual(sorted(r.cmd("ZRANGE", helos, "0", "-1")), ["a.example"])

    def test_same_answers_and_counts_as_line_by_line(self):
        r = self.redis()
        mem = self.gateway("memory")
        d = self.gateway(r.url)
        want = [w for _, w in SEQUENCE]
        self.assertEqual([mem.query(q) for q, _ in SEQUENCE], want)
        self.assertEqual([d.query(q) for q, _ in SEQUENCE], want)
        # the memory store answers at once: nothing to gain, nothing ahead
        self.assertEqual(control_stats(mem)["counted_ahead"], 0)
        st = control_stats(d)
        self.assertEqual(st["counted_ahead"], 6 * 3)
        self.assertEqual(st["ahead_given_back"], 3 + 2 + 1)
        self.assertEqual(st["refunds"], 1)          # request 5's recipients
        # a request after the others through the same connection to Redis:
        # every give-back and refund is in before its answer
        self.assertEqual(d.query(msg(user="settle")), "action=DUNNO")
        self.assertEqual(r.cmd("ZCARD", "mxacl:r:sasl_username|100/3600|alice"), 3)
        rcpts = "mxacl:q:recipients|sasl_username|10/86400|alice"
        self.assertEqual(sum(int(v) for v in r.cmd("HVALS", rcpts)), 4 + 4 + 1)
        volume = "mxacl:q:bytes|sasl_username|%d/86400|alice" % (1024 * KB)
        self.assertEqual(sum(int(v) for v in r.cmd("HVALS", volume)), 200 * KB + 1000)
        helos = "mxacl:d:sasl_username|helo_name|2/3600|alice"
        self.assertEqual(sorted(r.cmd("ZRANGE", helos, "0", "-1")), ["a.example", "b.example"])
        self.assertEqual(r.cmd("KEYS", "*z.example*"), [])

    def test_request_gone_before_its_answer_gives_back(self):
        # Postfix closes the connection while the first counter is out: the
        # counters sent ahead come back after the request is gone and are
        # given back; the first one's line was reached, so it stays counted
        # (as it would without counting ahead)
        r = self.redis()
        px = self.proxy(r)
        d = self.gateway(px.url)
        self.assertEqual(d.query(msg(user="warm")), "action=DUNNO")
        c = PolicyConn(d.endpoint)
        c.send(msg(user="carol", helo="a.example", rcpts=3, size=5000))
        time.sleep(DELAY / 2)
        # a reset (not a half-close, after which mxacld still answers):
        # mxacld drops the connection and the request waiting on it
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        deadline = time.monotonic() + 10
        while control_stats(d).get("ahead_given_back", 0) < 3:
            self.assertLess(time.monotonic(), deadline, control_stats(d))
            time.sleep(0.05)
        self.assertEqual(d.query(msg(user="settle")), "action=DUNNO")
        helos = "mxacl:d:sasl_username|helo_name|2/3600|carol"
        self.assertEqual(r.cmd("ZRANGE", helos, "0", "-1"), ["a.example"])
        self.assertEqual(control_stats(d)["requests"], 2)      # warm, settle
        self.assertEqual(r.cmd("ZCARD", "mxacl:r:sasl_username|100/3600|carol"), 0)
        for kind, limit in (("recipients", "10"), ("bytes", str(1024 * KB))):
            key = "mxacl:q:%s|sasl_username|%s/86400|carol" % (kind, limit)
            self.assertEqual(sum(int(v) for v in r.cmd("HVALS", key)), 0, key)


if __name__ == "__main__":
    unittest.main()
