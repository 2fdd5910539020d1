"""A Redis at maxmemory with maxmemory-policy noeviction refuses writes with
"OOM command not allowed ...". mxacld answers every request per the acls'
tempfail= settings and logs the failing commands per outage, not per
command (issue 9: about 2,800 lines a second, "command failed: OOM" and
"commands succeed again" alternating): one warning when errors start, at
most one a minute while they go on, one line when they are over.

A real redis-server is filled past `maxmemory 1mb` and then the requests
come: greylist and rate acls, each new triplet and rate event a write.
The greylist's script fails with OOM, the rate acl's succeeds, request
after request."""
import re
import time
import unittest

from mxtest import Mxacld, PolicyConn
from redis import RedisServer

CONF = """
acl g greylist delay=60 tempfail=nomatch
acl r rate client_address 100000/1h tempfail=match
action grey DEFER_IF_PERMIT greylisted
action down DEFER_IF_PERMIT 4.3.0 store unavailable
access g grey
access r down
"""

LINE = re.compile(r"store redis://[^:]+:\d+: (command failed|commands succeed again|"
                  r"commands still failing|unexpected reply)")


def req(i):
    return {"request": "smtpd_access_policy", "protocol_state": "RCPT",
            "client_address": "192.0.2.%d" % (i % 250 + 1), "client_name": "unknown",
            "helo_name": "mx.example", "sender": "s%d@sender.example" % i,
            "recipient": "r%d@dest.example" % i}


class TestRedisOom(unittest.TestCase):
    def setUp(self):
        self.redis = RedisServer().start()
        # fill past 1 MB, then set the limit: every write now fails with OOM
        self.redis.cmd("SET", "filler", "x" * (3 << 20))
        self.redis.cmd("CONFIG", "SET", "maxmemory-policy", "noeviction")
        self.redis.cmd("CONFIG", "SET", "maxmemory", "1mb")
        with self.assertRaises(Exception) as e:
            self.redis.cmd("SET", "probe", "1")
        self.assertIn("OOM", str(e.exception))

    def tearDown(self):
        self.redis.cleanup()

    def test_oom_logged_per_outage(self):
        n = 400
        with Mxacld(CONF, extra_args=["--store", self.redis.url]) as d:
            replies = []
            with PolicyConn(d.endpoint, timeout=30) as c:
                for i in range(n):
                    replies.append(c.request(req(i)))
            time.sleep(0.2)
            log = d.log_text()
        self.assertNotIn("Sanitizer", log)
        # every request answered, the greylist as its tempfail= says: it
        # fails open (nomatch; new triplets would otherwise be greylisted).
        # The rate acl's script succeeds: its first write (ZREMRANGEBYSCORE)
        # frees memory, and Redis checks OOM only before a script's first
        # write, so the errors come between successes, as in issue 9.
        self.assertEqual(len(replies), n)
        self.assertEqual(set(replies), {"action=DUNNO"}, replies[:5])
        self.assertEqual(len(re.findall(r"decision .* action=DUNNO", log)), n)
        lines = [l for l in log.split("\n") if LINE.search(l)]
        self.assertIn("OOM command not allowed", log)
        self.assertGreaterEqual(len(lines), 1, log[-2000:])
        self.assertLessEqual(len(lines), 3, "%d store lines for %d requests:\n%s"
                             % (len(lines), n, "\n".join(lines[:20])))

    def test_outage_ends_after_a_quiet_minute(self):
        """When memory is freed, the outage ends with one line, given after
        a minute without errors, with the count of failed commands. (This
        test takes a minute: that is the rule it checks.)"""
        n = 200
        with Mxacld(CONF, extra_args=["--store", self.redis.url]) as d:
            with PolicyConn(d.endpoint, timeout=30) as c:
                for i in range(n):
                    self.assertEqual(c.request(req(i)), "action=DUNNO")
                self.redis.cmd("CONFIG", "SET", "maxmemory", "0")
                t_ok = time.monotonic()
                # greylisting works again at once: a new triplet waits
                self.assertEqual(c.request(req(n)), "action=DEFER_IF_PERMIT greylisted")
                # a request every 2 s; the line comes with the first success
                # a minute after the last error
                deadline = t_ok + 90
                i = n + 1
                while time.monotonic() < deadline and "succeed again" not in d.log_text():
                    c.request(req(i))
                    i += 1
                    time.sleep(2)
            log = d.log_text()
        lines = [l for l in log.split("\n") if LINE.search(l)]
        self.assertEqual(len(lines), 2, "\n".join(lines))
        self.assertIn("command failed: OOM command not allowed", lines[0])
        self.assertRegex(lines[1], r"commands succeed again: none failed for 60 s "
                         r"\(%d failed commands in this outage\)$" % n)


if __name__ == "__main__":
    unittest.main()
