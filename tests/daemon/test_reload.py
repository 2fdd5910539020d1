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


if __name__ == "__main__":
    unittest.main()
