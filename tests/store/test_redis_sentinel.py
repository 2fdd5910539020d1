"""Two mxacld gateways sharing a Redis managed by Sentinel (--store
redis-sentinel://...): a master, a replica and three redis-sentinel
processes with a short down-after-milliseconds, all on loopback. Killing
the master under load: every request is answered (per tempfail= while
no master is there), each gateway follows the promoted replica by
itself, and a triplet first seen before the failure passes after its
delay through either gateway. The failover window as each gateway sees
it is printed.

Bad input fails at start with a clear message: no sentinel answers, or
no sentinel knows the master name.
"""
import json
import os
import re
import subprocess
import threading
import time
import unittest

from mxtest import Mxacld, control_stats, mxacl_path
from redis import SentinelSet

GREY = """
acl g greylist delay=4s
action grey DEFER_IF_PERMIT Greylisted
action pass PREPEND X-Greylist: delayed ${greylist_age} seconds
action ok DUNNO
access g grey
access pass
"""

GREYLISTED = "action=DEFER_IF_PERMIT Greylisted"
# tempfail=nomatch (the default): the acl does not match, the pass action
FAILED_OPEN = re.compile(r"^action=PREPEND X-Greylist: delayed \S* ?seconds$")


def req(sender, recipient="b@example.net", client="192.0.2.10"):
    return {"request": "smtpd_access_policy", "protocol_state": "RCPT",
            "client_address": client, "sender": sender, "recipient": recipient}



def store_lines(d):
    """mxacld's log without its decision lines."""
    return "\n".join(line for line in d.log_text().splitlines() if " decision " not in line)


class SentinelTest(unittest.TestCase):
    def setUp(self):
        self.ss = SentinelSet(down_after_ms=1000)
        self.ss.start()
        self.addCleanup(self.ss.cleanup)

    def gateway(self):
        d = Mxacld(GREY, extra_args=["--store", self.ss.url])
        d.control_path = os.path.join(d.tmpdir, "control.sock")
        d.extra_args += ["--control", d.control_path]
        self.addCleanup(d.cleanup)
        d.start()
        self.addCleanup(d.stop)
        return d

    def wait_sentinels_switch(self, deadline):
        """Until the sentinels name the replica (a failure here is
        Sentinel's, not mxacld's)."""
        want = ("127.0.0.1", self.ss.replica.port)
        while self.ss.master_addr() != want:
            if time.monotonic() > deadline:
                raise AssertionError("the sentinels still name %r, not the replica %r"
                                     % (self.ss.master_addr(), want))
            time.sleep(0.05)

    def test_failover_under_load(self):
        a, b = self.gateway(), self.gateway()
        for d in (a, b):
            d.wait_log(r"master mymaster at 127\.0\.0\.1:%d" % self.ss.master.port)
        # a triplet first seen before the failure, replicated
        self.assertEqual(a.query(req("old@example.org")), GREYLISTED)
        first = time.monotonic()    # mxacld's stamp of the triplet is no later
        self.assertEqual(b.query(req("old@example.org")), GREYLISTED)
        # replicated: on the replica (WAIT would not say it: it waits for
        # the writes of its own connection, not mxacld's)
        old_key = "mxacl:g:192.0.2.0/24/old@example.org/b@example.net"
        while self.ss.replica.cmd("EXISTS", old_key) != 1:
            self.assertLess(time.monotonic(), first + 3, "the triplet is not replicated")
            time.sleep(0.01)

        # load: two connections per gateway, new triplets all the time
        stop = threading.Event()
        results = {a.pid: [], b.pid: []}
        errors = []

        def load(d, tag):
            try:
                with d.conn() as c:
                    i = 0
                    while not stop.is_set():
                        i += 1
                        # the recipient makes each triplet new (digits in a
                        # sender are normalised away, as postgrey does)
                        r = c.request(req("load@example.org",
                                          recipient="r-%s-%d@example.net" % (tag, i)))
                        results[d.pid].append((time.monotonic(), r))
                        time.sleep(0.005)
            except Exception as e:          # a request not answered
                errors.append("%s: %r" % (tag, e))

        threads = [threading.Thread(target=load, args=(d, "%d%s" % (d.pid, k)))
                   for d in (a, b) for k in "xy"]
        for t in threads:
            t.start()
        time.sleep(0.5)
        killed = time.monotonic()
        self.ss.master.kill()
        # until both gateways greylist again on the promoted replica
        deadline = time.monotonic() + 30
        try:
            self.wait_sentinels_switch(deadline)
            for d in (a, b):
                d.wait_log(r"failover: master mymaster moved from 127\.0\.0\.1:%d to "
                           r"127\.0\.0\.1:%d" % (self.ss.master.port, self.ss.replica.port),
                           timeout=max(1, deadline - time.monotonic()))
                d.wait_log(r"connected again, to master 127\.0\.0\.1:%d"
                           % self.ss.replica.port, timeout=max(1, deadline - time.monotonic()))
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(self.ss.master_addr(), ("127.0.0.1", self.ss.replica.port))

        for d in (a, b):
            got = results[d.pid]
            self.assertTrue(got, "no load went through")
            self.assertEqual({r for _, r in got
                              if r != GREYLISTED and not FAILED_OPEN.match(r)}, set(),
                             "every request answered, greylisted or per tempfail=")
            failed = [t for t, r in got if r != GREYLISTED]
            self.assertTrue(failed, "the failover left no trace in the answers")
            after = [t for t, r in got if r == GREYLISTED and t > failed[-1]]
            self.assertTrue(after, "greylisting did not resume: the last %d answers %r; "
                            "the log without decisions:\n%s"
                            % (min(5, len(got)), got[-5:],
                               store_lines(d) + "\n" + "\n".join(
                                   d.log_text().splitlines()[-5:])))
            print("\n  gateway %d: %d requests, %d answered per tempfail=; failover window "
                  "as mxacld sees it: %.0f ms (first failed %.0f ms after the kill, "
                  "greylisting again %.0f ms after the kill)"
                  % (d.pid, len(got), len(failed), (after[0] - failed[0]) * 1000,
                     (failed[0] - killed) * 1000, (after[0] - killed) * 1000))
            log = d.log_text()
            self.assertEqual(len(re.findall(r"master 127\.0\.0\.1:\d+: connection lost", log)),
                             1, log)
            m = re.search(r"connected again, to master \S+ \((\d+) ms after it was lost\)",
                          log)
            self.assertTrue(m, log)
            print("  gateway %d logs: master back %s ms after it was lost" % (d.pid, m.group(1)))
            st = control_stats(d)
            self.assertEqual((st["store_outages"], st["store_failovers"], st["store_down"]),
                             (1, 1, 0), st)

        # the triplet seen before the failure passes through either gateway
        self.assertEqual(self.ss.replica.cmd("EXISTS", old_key), 1,
                         "the triplet is no longer on the promoted replica")
        time.sleep(max(0.0, first + 4.2 - time.monotonic()))
        for d in (b, a):
            r = d.query(req("old@example.org"))
            if not re.match(r"^action=PREPEND X-Greylist: delayed [4-9]\d* seconds$", r):
                self.fail("the triplet seen before the failure: %r, %.1f s after it was "
                          "first seen; its decisions:\n%s\n%s" % (
                              r, time.monotonic() - first,
                              "\n".join(line for x in (a, b)
                                        for line in x.log_text().splitlines()
                                        if "old@example.org" in line), store_lines(d)))
        # nothing was ever written to the replica while it was one: the old
        # master, restarted, is a replica now and mxacld stays where it is
        self.ss.master.start()
        self.assertEqual(a.query(req("new@example.org")), GREYLISTED)


class SentinelManualFailoverTest(unittest.TestCase):
    def test_demoted_master_is_left(self):
        """SENTINEL FAILOVER: the master stays up but becomes a replica;
        mxacld moves to the new master and writes nothing to the old."""
        with SentinelSet() as ss:
            d = Mxacld(GREY, extra_args=["--store", ss.url])
            self.addCleanup(d.cleanup)
            d.start()
            self.assertEqual(d.query(req("one@example.org")), GREYLISTED)
            ss.sentinels[0].cmd("SENTINEL", "FAILOVER", "mymaster")
            deadline = time.monotonic() + 30
            i = 0
            while True:
                i += 1
                r = d.query(req("m@example.org", recipient="r%d@example.net" % i))
                self.assertTrue(r == GREYLISTED or FAILED_OPEN.match(r), r)
                if (r == GREYLISTED and ss.master_addr() == ("127.0.0.1", ss.replica.port)
                        and "connected again, to master 127.0.0.1:%d" % ss.replica.port
                        in d.log_text()):
                    break
                self.assertLess(time.monotonic(), deadline, store_lines(d))
                time.sleep(0.02)
            self.assertRegex(d.log_text(), r"failover: master mymaster moved from "
                             r"127\.0\.0\.1:%d to 127\.0\.0\.1:%d"
                             % (ss.master.port, ss.replica.port))
            # what is written after the switch is on the new master: a
            # request sent once the log says so (the one that ended the
            # loop may have been answered by the old master, still writable
            # until the sentinels demote it, just before the switch)
            i += 1
            self.assertEqual(d.query(req("m@example.org", recipient="r%d@example.net" % i)),
                             GREYLISTED)
            key = "mxacl:g:192.0.2.0/24/m@example.org/r%d@example.net" % i
            self.assertEqual(ss.replica.cmd("EXISTS", key), 1, "request %d; on the old master: "
                             "%s\n%s" % (i, ss.master.cmd("EXISTS", key), store_lines(d)))
            # the old master is made a replica of it by the sentinels; a
            # write mxacld might still send there is refused (READONLY),
            # never taken
            while ss.master.cmd("ROLE")[0] != "slave":
                self.assertLess(time.monotonic(), deadline, "the old master stays one")
                time.sleep(0.1)
            self.assertEqual(d.query(req("z@example.org")), GREYLISTED)
            d.stop()


class SentinelReloadTest(unittest.TestCase):
    def test_reload_keeps_the_running_store(self):
        with SentinelSet() as ss:
            d = Mxacld("set store %s\n%s" % (ss.url, GREY))
            self.addCleanup(d.cleanup)
            d.start()
            self.assertEqual(d.query(req("one@example.org")), GREYLISTED)
            # a store no sentinel knows, in the reloaded policy: the store
            # is the process's, opened once; the running one stays
            bad = ss.url.replace("/mymaster", "/nosuch")
            d.reload("set store %s\n%s" % (bad, GREY))
            d.wait_log(r'reload: "set store" changed; it takes effect when mxacld is '
                       r'restarted')
            self.assertEqual(d.query(req("two@example.org")), GREYLISTED)
            self.assertEqual(ss.master.cmd("EXISTS", "mxacl:g:192.0.2.0/24/two@example.org/"
                                           "b@example.net"), 1)
            # mxacl grey on the same Sentinel URL lists and edits the master
            def grey(*args):
                p = subprocess.run([mxacl_path(), "grey", "--store", ss.url] + list(args),
                                   capture_output=True, text=True, timeout=60,
                                   stdin=subprocess.DEVNULL)
                self.assertEqual(p.returncode, 0, p.stderr)
                return p.stdout
            listed = sorted(e["key"] for e in json.loads(grey("--json", "list")))
            self.assertEqual(listed, ["192.0.2.0/24/one@example.org/b@example.net",
                                      "192.0.2.0/24/two@example.org/b@example.net"])
            grey("pass", listed[0])
            self.assertRegex(d.query(req("one@example.org")),
                             r"^action=PREPEND X-Greylist: delayed \d+ seconds$")
            d.stop()
            # and at start, the same policy stops mxacld with the reason
            d2 = Mxacld("set store %s\n%s" % (bad, GREY))
            self.addCleanup(d2.cleanup)
            p = subprocess.run(d2.argv(), capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("no sentinel knows the master name", p.stdout + p.stderr)


class SentinelBadInputTest(unittest.TestCase):
    def run_mxacld(self, url):
        d = Mxacld(GREY)
        self.addCleanup(d.cleanup)
        p = subprocess.run(d.argv() + ["--store", url], capture_output=True, text=True,
                           timeout=60, stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout + p.stderr

    def test_no_sentinel_answers(self):
        from mxtest import free_port
        ports = [free_port(), free_port()]
        url = "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d/mymaster" % tuple(ports)
        rc, out = self.run_mxacld(url)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("no sentinel answers (127.0.0.1:%d: Connection refused; "
                      "127.0.0.1:%d: Connection refused)" % tuple(ports), out)

    def test_unknown_master_name(self):
        with SentinelSet() as ss:
            rc, out = self.run_mxacld(ss.url.replace("/mymaster", "/nosuch"))
        self.assertNotEqual(rc, 0, out)
        self.assertIn("no sentinel knows the master name", out)
        self.assertIn("no master named 'nosuch'", out)


if __name__ == "__main__":
    unittest.main()
