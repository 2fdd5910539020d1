"""Requests that wait: a request suspended on an asynchronous lookup (the
test_sleep acl, a libevent timer, enabled by MXACL_TEST_HOOKS=1) must not
hold up other connections; replies on its own connection stay in request
order; a client that leaves while its request waits costs nothing."""
import os
import subprocess
import tempfile
import threading
import time
import unittest

from mxtest import ROOT, Mxacld, PolicyConn, fmt_request, mxacl_path

os.environ["MXACL_TEST_HOOKS"] = "1"

CONF = """
acl slow_sender sender slow@example.com
acl nap test_sleep 400
acl slower_sender sender slower@example.com
acl long_nap test_sleep 3000
acl nap_fail test_sleep 50 tempfail
acl failing sender fail@example.com
action slept REJECT slept ${recipient}
action quick OK
action failed REJECT should not happen
access failing nap_fail failed
access slow_sender nap slept
access slower_sender long_nap slept
access quick
"""


class SuspendTest(unittest.TestCase):
    def setUp(self):
        self.d = Mxacld(CONF)
        self.d.start()

    def tearDown(self):
        self.d.stop()

    def test_others_served_while_one_waits(self):
        done = {}

        def slow():
            with PolicyConn(self.d.endpoint) as c:
                done["slow"] = c.request({"sender": "slower@example.com", "recipient": "r@x"})
                done["slow_at"] = time.monotonic()

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.05)
        quick_at = []
        with PolicyConn(self.d.endpoint) as c:
            for i in range(50):
                self.assertEqual(c.request({"sender": "q%d@example.com" % i}), "action=OK")
            quick_at.append(time.monotonic())
        t.join(10)
        self.assertEqual(done.get("slow"), "action=REJECT slept r@x")
        # the quick connection finished while the slow one still waited
        # (3 s: time to spare for 50 requests on a loaded machine)
        self.assertLess(quick_at[0], done["slow_at"])

    def test_pipelined_replies_keep_order(self):
        reqs = [{"sender": "slow@example.com", "recipient": "a"},
                {"sender": "x@example.com"},
                {"sender": "slow@example.com", "recipient": "b"},
                {"sender": "y@example.com"}]
        with PolicyConn(self.d.endpoint) as c:
            c.send_raw(b"".join(fmt_request(r) for r in reqs))
            got = [c.recv_reply() for _ in reqs]
        self.assertEqual(got, ["action=REJECT slept a", "action=OK",
                               "action=REJECT slept b", "action=OK"])

    def test_client_leaves_while_waiting(self):
        for _ in range(5):
            c = PolicyConn(self.d.endpoint)
            c.send(({"sender": "slow@example.com", "recipient": "gone"}))
            c.close()
        time.sleep(0.6)          # let the timers fire into abandoned requests
        with PolicyConn(self.d.endpoint) as c:
            self.assertEqual(c.request({"sender": "z@example.com"}), "action=OK")
        # stop() in tearDown insists on a clean exit with no sanitizer report

    def test_temporary_failure_does_not_match(self):
        with PolicyConn(self.d.endpoint) as c:
            self.assertEqual(c.request({"sender": "fail@example.com"}), "action=OK")


if __name__ == "__main__":
    unittest.main()


class ProductionBuildTest(unittest.TestCase):
    """The test hooks are linked into test builds only (util/testhooks.h):
    the production mxacl, built by `make` (make check builds it first),
    knows no test_sleep acl even with MXACL_TEST_HOOKS=1."""

    def test_production_build_has_no_test_hooks(self):
        exe = os.path.join(ROOT, "build", "mxacl")
        self.assertTrue(os.path.exists(exe), "%s is not built (make)" % exe)
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write("acl nap test_sleep 10\naction no REJECT\naccess nap no\n")
            f.flush()
            env = dict(os.environ, MXACL_TEST_HOOKS="1")
            prod = subprocess.run([exe, "check", "-c", f.name], env=env,
                                  capture_output=True, text=True)
            self.assertEqual(prod.returncode, 1, prod.stderr)
            self.assertIn("unknown acl type 'test_sleep'", prod.stderr)
            # and the build under test does have them
            test = subprocess.run([mxacl_path(), "check", "-c", f.name], env=env,
                                  capture_output=True, text=True)
            self.assertEqual(test.returncode, 0, test.stderr)
