"""SIGHUP reloads the policy: a good config replaces the running one, a
broken one is refused (its errors logged) while the old one keeps serving,
and under load no request is lost or answered by a half-loaded config.
"""
import os
import re
import signal
import threading
import time
import unittest

from mxtest import Mxacld, PolicyConn, free_port

import daemon_policies as pol

SPAM = {"request": "smtpd_access_policy", "sender": pol.SPAM_SENDER,
        "client_address": "192.0.2.7"}


def replace_conf(d, text):
    """Write the config under another name and rename it into place, so a
    reload never reads a half-written file (that would be the test's
    fault, not the daemon's)."""
    tmp = d.conf_path + ".new"
    d.write_conf(text, tmp)
    os.rename(tmp, d.conf_path)


class ReloadTest(unittest.TestCase):
    def daemon(self, conf=None, **kw):
        d = Mxacld(conf or pol.policy("v1"), **kw)
        self.addCleanup(d.cleanup)
        d.start()
        return d

    def test_good_reload_switches(self):
        d = self.daemon()
        with d.conn() as c:
            self.assertEqual(c.request(SPAM), "action=REJECT spam sender v1")
            self.assertTrue(d.reload(pol.policy("v2")))
            # the same connection, the new policy
            self.assertEqual(c.request(SPAM), "action=REJECT spam sender v2")
        self.assertEqual(d.query(SPAM), "action=REJECT spam sender v2")
        self.assertIn("reload: %s loaded" % d.conf_path, d.log_text())
        d.stop()

    def test_broken_reload_keeps_old_policy(self):
        d = self.daemon()
        with d.conn() as c:
            self.assertEqual(c.request(SPAM), "action=REJECT spam sender v1")
            self.assertFalse(d.reload(pol.BROKEN))
            self.assertEqual(c.request(SPAM), "action=REJECT spam sender v1")
        self.assertEqual(d.query(SPAM), "action=REJECT spam sender v1")
        log = d.log_text()
        self.assertRegex(log, r"mxacld\[\d+\]: error: %s:3:\d+: .*nosuchacl"
                         % re.escape(d.conf_path))
        self.assertIn("reload: %s has errors; still serving the previous policy"
                      % d.conf_path, log)
        # and a good one after the broken one is taken
        self.assertTrue(d.reload(pol.policy("v3")))
        self.assertEqual(d.query(SPAM), "action=REJECT spam sender v3")
        d.stop()

    def test_missing_config_on_reload(self):
        d = self.daemon()
        os.unlink(d.conf_path)
        self.assertFalse(d.reload())
        self.assertEqual(d.query(SPAM), "action=REJECT spam sender v1")
        d.stop()

    def test_listen_change_not_applied(self):
        port, other = free_port(), free_port()
        ep = "inet:127.0.0.1:%d" % port
        d = Mxacld("set listen %s\n" % ep + pol.policy("v1"), listen=ep)
        self.addCleanup(d.cleanup)
        d.listen = []       # the config's "set listen" decides
        d.start()
        self.assertTrue(d.reload("set listen inet:127.0.0.1:%d\n" % other + pol.policy("v2")))
        self.assertIn('warning: reload: "set listen" changed', d.log_text())
        self.assertEqual(d.query(SPAM), "action=REJECT spam sender v2")
        with self.assertRaises(OSError):
            PolicyConn("inet:127.0.0.1:%d" % other, timeout=2)
        d.stop()

    def test_listen_flag_hides_config_changes(self):
        d = self.daemon()
        self.assertTrue(d.reload("set listen inet:127.0.0.1:%d\n" % free_port()
                                 + pol.policy("v2")))
        self.assertNotIn("changed", d.log_text())
        d.stop()

    def test_reload_under_load(self):
        d = self.daemon()
        versions = ["v1", "v2"]
        allowed = {}
        for v in versions:
            for i in range(40):
                allowed.setdefault(i, set()).add(pol.expect(pol.request(i), v))
        allowed_spam = {"action=REJECT spam sender %s" % v for v in versions}
        seen = {v: 0 for v in versions}
        seen_lock = threading.Lock()
        stop = threading.Event()
        errors = []
        counts = []

        def client(k):
            sent = answered = 0
            conn = None
            try:
                i = 0
                while not stop.is_set() or sent < 300:
                    # a new connection now and then: reloads must not
                    # disturb accepting either
                    if conn is None or i % 250 == 0:
                        if conn:
                            conn.close()
                        conn = d.conn(timeout=30)
                    a = pol.request(i % 40) if i % 3 else SPAM
                    want = allowed[i % 40] if i % 3 else allowed_spam
                    sent += 1
                    got = conn.request(a)
                    answered += 1
                    if got not in want:
                        errors.append("client %d request %d: got %r, want one of %r"
                                      % (k, i, got, sorted(want)))
                        return
                    for v in versions:
                        if got.endswith(" " + v):
                            with seen_lock:
                                seen[v] += 1
                    i += 1
            except Exception as e:
                errors.append("client %d after %d requests: %r" % (k, sent, e))
            finally:
                counts.append((k, sent, answered))
                if conn:
                    conn.close()

        threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        try:
            # Phase 1: alternate, each time waiting until the log says the
            # reload is done and a reply from the new version has been seen.
            for n in range(12):
                v = versions[(n + 1) % 2]
                with seen_lock:
                    before = seen[v]
                replace_conf(d, pol.policy(v))
                self.assertTrue(d.reload(), "reload %d" % n)
                deadline = time.monotonic() + 30
                while True:
                    with seen_lock:
                        if seen[v] > before:
                            break
                    self.assertFalse(errors, errors)
                    self.assertLess(time.monotonic(), deadline, "no %s reply" % v)
                    time.sleep(0.005)
            # Phase 2: a burst of signals, configs swapped under them.
            for n in range(60):
                replace_conf(d, pol.policy(versions[n % 2]))
                d.signal(signal.SIGHUP)
                time.sleep(0.003)
        finally:
            stop.set()
            for t in threads:
                t.join(120)
        self.assertEqual(errors, [])
        self.assertEqual(len(counts), len(threads))
        for k, sent, answered in counts:
            self.assertEqual(sent, answered, "client %d lost requests" % k)
        self.assertGreater(seen["v1"], 0)
        self.assertGreater(seen["v2"], 0)
        # It settles on the last config written (v2). A reload line from
        # the burst may answer our reload(), so try until it shows.
        for _ in range(100):
            self.assertTrue(d.reload())
            if d.query(SPAM) == "action=REJECT spam sender v2":
                break
        self.assertEqual(d.query(SPAM), "action=REJECT spam sender v2")
        log = d.log_text()
        self.assertNotIn("error", log)
        self.assertGreaterEqual(log.count("reload: %s loaded" % d.conf_path), 13)
        d.stop()


# A policy big enough that compiling it takes a while (200,000 lines: about
# 1.7 s in the sanitised build, a few tenths optimised): long enough to see
# whether the loop keeps answering meanwhile. pol.policy(v)'s rules come
# first, so SPAM is answered by "spam sender V" in every version.
BIG_LINES = 100000


def big_policy(version, broken=False):
    lines = [pol.policy(version), "action bulk REJECT bulk %s" % version]
    lines += ["acl s%d sender user%d@bulk.example" % (i, i) for i in range(BIG_LINES)]
    lines += ["access s%d bulk" % i for i in range(BIG_LINES)]
    if broken:
        lines.append("access nosuchacl bulk")
    return "\n".join(lines) + "\n"


def spam(version):
    return "action=REJECT spam sender %s" % version


class BigReloadTest(unittest.TestCase):
    """Reloads compile on a thread of their own; the loop keeps answering."""

    def daemon(self, conf):
        d = Mxacld(conf)
        self.addCleanup(d.cleanup)
        d.start(timeout=120)
        return d

    def ask_until(self, c, want, timeout=120):
        """Ask SPAM on c until the answer is want; the answers, timed."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            r = c.request(SPAM)
            got.append((time.monotonic(), r))
            if r == want:
                return got
            self.assertLess(time.monotonic(), deadline, "no %r; last %r" % (want, r))

    @staticmethod
    def between(log, first, last):
        """The lines of log after the first line containing first, up to
        the first line after it containing last."""
        lines = log.splitlines()
        i = next(k for k, l in enumerate(lines) if first in l)
        j = next(k for k in range(i + 1, len(lines)) if last in lines[k])
        return lines[i + 1:j]

    def test_answers_flow_during_the_compile(self):
        """The report: a 404,000-line policy stopped every answer for about
        a second. Requests sent after the SIGHUP are answered by the old
        policy while the new one compiles, then by the new one."""
        d = self.daemon(big_policy("v1"))
        with d.conn(timeout=120) as c:
            self.assertEqual(c.request(SPAM), spam("v1"))
            replace_conf(d, big_policy("v2"))
            t0 = time.monotonic()
            d.signal(signal.SIGHUP)
            got = self.ask_until(c, spam("v2"))
            # the new policy decides from then on
            for _ in range(20):
                self.assertEqual(c.request(SPAM), spam("v2"))
        old = [r for _, r in got if r == spam("v1")]
        self.assertEqual(len(old) + 1, len(got), got[-3:])
        times = [t0] + [t for t, _ in got]
        gap = max(b - a for a, b in zip(times, times[1:]))
        print("\n    %d answers from the old policy during the reload (%.2f s); longest "
              "wait for an answer %.3f s" % (len(old), got[-1][0] - t0, gap))
        # Before: none (or the one that raced the signal), as the loop was
        # compiling. Now the loop answers while the thread compiles.
        self.assertGreaterEqual(len(old), 5)
        log = d.wait_log(r"reload: \S+ loaded")
        during = self.between(log, "reload: reading %s" % d.conf_path,
                              "reload: %s loaded" % d.conf_path)
        decisions = [l for l in during if " decision " in l or ": decision " in l]
        self.assertGreaterEqual(len(decisions), 5, during[-5:])
        self.assertTrue(all(l.endswith("spam sender v1") for l in decisions), decisions[-3:])
        self.assertRegex(log, r"reload: %s loaded \(compiled in \d+\.\d\d s\)"
                         % re.escape(d.conf_path))
        d.stop()

    def test_errors_keep_the_old_policy(self):
        """A big reload with an error: logged, the old policy stays, and it
        answered all along."""
        d = self.daemon(big_policy("v1"))
        with d.conn(timeout=120) as c:
            replace_conf(d, big_policy("v2", broken=True))
            d.signal(signal.SIGHUP)
            n = 0
            while "has errors" not in d.log_text():
                self.assertEqual(c.request(SPAM), spam("v1"))
                n += 1
            self.assertEqual(c.request(SPAM), spam("v1"))
        log = d.log_text()
        self.assertRegex(log, r"error: %s:%d:\d+: .*nosuchacl"
                         % (re.escape(d.conf_path), big_policy("v2").count("\n") + 1))
        self.assertIn("reload: %s has errors; still serving the previous policy"
                      % d.conf_path, log)
        self.assertGreater(n, 0)
        self.assertTrue(d.reload(big_policy("v3"), timeout=120))
        self.assertEqual(d.query(SPAM), spam("v3"))
        d.stop()

    def slow_compiles(self, ms):
        """Each compile of the daemons started from now on takes ms longer
        (a test hook), so signals surely arrive during one."""
        saved = {k: os.environ.get(k) for k in ("MXACL_TEST_HOOKS", "MXACL_TEST_RELOAD_MS")}

        def restore():
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        self.addCleanup(restore)
        os.environ["MXACL_TEST_HOOKS"] = "1"
        os.environ["MXACL_TEST_RELOAD_MS"] = str(ms)

    def test_sighups_during_a_compile_coalesce(self):
        """SIGHUPs that arrive while a compile runs make one more compile
        after it, which reads the newest file (the compile lasts 3 s, so
        that a loaded machine still signals within it)."""
        self.slow_compiles(3000)
        d = self.daemon(pol.policy("v1"))
        replace_conf(d, pol.policy("v2"))
        d.signal(signal.SIGHUP)
        d.wait_log("reload: reading ")
        replace_conf(d, pol.policy("v3"))
        for _ in range(5):
            d.signal(signal.SIGHUP)
        d.wait_log(r"reload: \S+ loaded", timeout=60, count=2)
        self.assertEqual(d.query(SPAM), spam("v3"))
        log = d.log_text()
        self.assertEqual(log.count("reload: a reload of %s is running; it will be read "
                                   "again after it" % d.conf_path), 1, log)
        self.assertEqual(log.count("reload: reading "), 2, log)
        # and nothing more comes: the five made one
        self.assertEqual(d.query(SPAM), spam("v3"))
        self.assertEqual(d.log_text().count(" loaded (compiled in "), 2)
        d.stop()

    def test_sigterm_does_not_wait_for_a_compile(self):
        """SIGTERM while a compile runs (one made to take ten minutes):
        mxacld stops at once, the program it was making never serves."""
        self.slow_compiles(600000)
        d = self.daemon(pol.policy("v1"))
        replace_conf(d, pol.policy("v2"))
        d.signal(signal.SIGHUP)
        d.wait_log("reload: reading ")
        self.assertEqual(d.query(SPAM), spam("v1"))
        t0 = time.monotonic()
        d.stop(timeout=60)      # fails if it waits for the compile
        print("\n    SIGTERM during a (ten-minute) compile: exited after %.2f s"
              % (time.monotonic() - t0))
        log = d.log_text()
        self.assertNotIn(" loaded", log[log.index("reload: reading "):])
        self.assertIn("stopped", log[log.index("stopping on "):])

    def test_sigterm_during_a_real_compile(self):
        """The same in the middle of a real 200,000-line compile: the thread
        is left to the exit, which is clean (exit 0; d.stop fails on any
        ASan or LeakSanitizer report)."""
        d = self.daemon(big_policy("v1"))
        replace_conf(d, big_policy("v2"))
        d.signal(signal.SIGHUP)
        # answered by v1: the loop is not compiling (before, it was, and
        # this came back from v2 after the compile)
        self.assertEqual(d.query(SPAM), spam("v1"))
        d.wait_log("reload: reading ")
        t0 = time.monotonic()
        d.stop(timeout=120)
        print("\n    SIGTERM during a 200,000-line compile: exited after %.2f s"
              % (time.monotonic() - t0))
        self.assertIn("stopped", d.log_text())

    def test_warnings_logged_in_line_order(self):
        """The report: a reload's diagnostics came out in reverse line
        order (each pass makes its own records: resolve's unused actions
        after its unused acls). Now in file, line, column order."""
        d = Mxacld(pol.policy("v1"))
        self.addCleanup(d.cleanup)
        d.start()
        self.assertTrue(d.reload(pol.policy("v2") +
                                 "action unused_action REJECT nobody\n"
                                 "acl unused_acl sender nobody@example.com\n"))
        log = d.log_text()
        lines = [l for l in log.splitlines() if "warning: " in l]
        n = pol.policy("v2").count("\n")
        self.assertEqual(len(lines), 2, lines)
        self.assertIn("%s:%d:8: action 'unused_action' is never used" % (d.conf_path, n + 1),
                      lines[0])
        self.assertIn("%s:%d:5: acl 'unused_acl' is never used" % (d.conf_path, n + 2),
                      lines[1])
        d.stop()


if __name__ == "__main__":
    unittest.main()
