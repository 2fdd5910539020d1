"""Greylisting and rate state in the embedded memory store: it survives a
SIGHUP reload (the store belongs to the process, not to the policy), and
with --state-file a restart; the file is written atomically."""
import os
import shutil
import tempfile
import time
import unittest

from mxtest import Mxacld, run_mxacld

CONF = """
acl grey greylist delay=1s retry_window=1h
acl flood rate sasl_username 2/1h
action wait DEFER_IF_PERMIT wait ${greylist_remaining}s
action tag PREPEND X-Greylist: delayed ${greylist_age}s
action slow REJECT too many (${rate_count})
access flood slow
access grey wait
access tag
"""
REQ = {"client_address": "192.0.2.1", "sender": "a@b.example", "recipient": "c@d.example"}
USER = {"sasl_username": "alice", "client_address": "10.0.0.1",
        "sender": "x@y.example", "recipient": "z@y.example"}


class StateTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mxacl-state-")
        self.state = os.path.join(self.dir, "state")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)
    def test_reload_keeps_greylist_and_rate_state(self):
        with Mxacld(CONF) as d:
            self.assertEqual(d.query(REQ), "action=DEFER_IF_PERMIT wait 1s")
            self.assertTrue(d.query(USER).startswith("action="))   # rate count 1
            d.reload(CONF.replace("wait ${", "please wait ${"))
            time.sleep(1.2)
            # the triplet seen before the reload passes after it
            self.assertTrue(d.query(REQ).startswith("action=PREPEND X-Greylist: delayed "))
            self.assertTrue(d.query(USER).startswith("action="))   # count 2
            self.assertEqual(d.query(USER), "action=REJECT too many (3)")

    def test_state_file_survives_restart(self):
        state = self.state
        args = ["--state-file", state]
        with Mxacld(CONF, extra_args=args) as d:
            self.assertEqual(d.query(REQ), "action=DEFER_IF_PERMIT wait 1s")
            d.query(USER)
            d.query(USER)
        with open(state) as f:
            text = f.read()
        self.assertTrue(text.startswith("mxacl-state 1\n"), text[:40])
        self.assertIn("192.0.2.0/24/a@b.example/c@d.example", text)
        self.assertFalse([n for n in os.listdir(os.path.dirname(state)) if ".tmp." in n])
        time.sleep(1.2)
        with Mxacld(CONF, extra_args=args) as d:
            self.assertIn("state: kept in", d.log_text())
            # remembered: waited long enough, passes now; the rate goes on
            self.assertTrue(d.query(REQ).startswith("action=PREPEND X-Greylist: delayed "))
            self.assertEqual(d.query(USER), "action=REJECT too many (3)")

    def test_state_file_written_periodically(self):
        state = self.state
        with Mxacld(CONF, extra_args=["--state-file", state, "--state-interval", "0.2"]) as d:
            d.query(REQ)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if os.path.exists(state) and "c@d.example" in open(state).read():
                    break
                time.sleep(0.05)
            self.assertIn("c@d.example", open(state).read())

    def test_corrupt_state_file_is_not_fatal(self):
        state = self.state
        with open(state, "w") as f:
            f.write("not a state file\n")
        with Mxacld(CONF, extra_args=["--state-file", state]) as d:
            self.assertIn("not an mxacl state file", d.log_text())
            self.assertEqual(d.query(REQ), "action=DEFER_IF_PERMIT wait 1s")

    def test_state_file_needs_the_memory_store(self):
        conf = os.path.join(self.dir, "policy.conf")
        with open(conf, "w") as f:
            f.write(CONF)
        p = run_mxacld(["-c", conf, "-l", "inet:127.0.0.1:1", "--store",
                        "redis://127.0.0.1:1", "--state-file", self.state])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("--state-file keeps the memory store", p.stderr)


if __name__ == "__main__":
    unittest.main()
