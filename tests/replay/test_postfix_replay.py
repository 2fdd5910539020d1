"""mxacl replay on a log recorded from a real Postfix (tests/lib/postfix.py:
a private instance on loopback writing its own maillog_file) whose smtpd
asks a real mxacld, which logs its decisions to a file. swaks sends
rejected, deferred, warned, held and accepted mail, and a message with
two accepted recipients and one rejected (long queue IDs). Then:

  - replaying Postfix's maillog gives one request per recipient mxacld
    was asked about, with the same attributes where both logs carry them,
    the same decision, and about the same time;
  - replaying mxacld's own log reproduces its decisions line for line.
"""
import datetime
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import postfix as pf
from mxtest import Mxacld, mxacl_path

DOMAIN = "relay.invalid"
# recipient local part -> action; every attribute an acl reads is logged
POLICY = """
acl to_reject recipient reject@{d} reject2@{d}
acl to_defer recipient defer@{d}
acl to_warn recipient warn@{d}
acl to_hold recipient hold@{d}
acl rcpt_state protocol_state RCPT
acl esmtp protocol_name ESMTP
acl named reverse_client_name localhost
acl loopback client_address 127.0.0.0/8
acl authed sasl_username never@{d}
action rej REJECT refused by the replay test
action later DEFER_IF_PERMIT try later (replay test)
action watch WARN watched by the replay test
action park HOLD parked by the replay test
access authed rej
access to_reject rej
access to_defer later
access to_warn watch
access to_hold park
access rcpt_state esmtp named loopback authed rej
""".format(d=DOMAIN)


class PostfixRecordingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pf.require()
        cls.dir = tempfile.mkdtemp(prefix="mxacl-replay-pf-")
        cls.decisions = os.path.join(cls.dir, "mxacld.log")
        cls.mxacld = cls.postfix = None
        try:
            listen = "inet:127.0.0.1:%d" % pf.free_port()
            cls.mxacld = Mxacld(POLICY, listen=listen, log_mode=cls.decisions).start()
            # replays read the very file mxacld loaded, so rule=FILE:LINE compare
            cls.conf = cls.mxacld.conf_path
            cls.postfix = pf.PrivatePostfix(listen, main={"enable_long_queue_ids": "yes"})
            cls.postfix.start()
            cls.record()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.postfix:
            cls.postfix.stop()
            cls.postfix = None
        if cls.mxacld:
            try:
                cls.mxacld.stop()
            finally:
                cls.mxacld.cleanup()
                cls.mxacld = None
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def record(cls):
        p = cls.postfix
        cls.replies = {}
        for local in ("reject", "defer"):
            cls.replies[local] = p.rcpt_reply("%s@%s" % (local, DOMAIN))
        for local in ("ok", "warn", "hold"):
            p.send_message("%s@%s" % (local, DOMAIN))
        # two accepted recipients and one refused in one transaction
        cls.multi = p.swaks("--from", "multi@client.test", "--to",
                            ",".join("%s@%s" % (x, DOMAIN)
                                     for x in ("multi1", "multi2", "reject2")))
        # accepted mail reaches the queue manager, which logs from= and to=
        want = ["to=<%s@%s>" % (x, DOMAIN) for x in ("ok", "warn", "multi1", "multi2")]
        pf.wait_for("delivery lines in the maillog",
                    lambda: all(w in p.log_text() for w in want))
        pf.wait_for("8 decisions in mxacld's log", lambda: cls.decision_text().count(
            " decision ") >= 8)
        cls.maillog = os.path.join(cls.dir, "maillog")
        shutil.copyfile(p.maillog, cls.maillog)

    @classmethod
    def decision_text(cls):
        try:
            with open(cls.decisions, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def replay(self, log):
        year = str(datetime.date.today().year)
        p = subprocess.run([mxacl_path(), "replay", "--format", "json", "--year", year,
                            "-c", self.conf, log], capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def context(self):
        return "\n--- maillog:\n%s\n--- mxacld log:\n%s" % (
            open(self.maillog, errors="replace").read()[-6000:], self.decision_text()[-4000:])

    def test_replayed_maillog_matches_what_mxacld_received(self):
        self.assertTrue(self.replies["reject"].startswith("554 "), self.replies)
        self.assertTrue(self.replies["defer"].startswith("450 "), self.replies)
        server = self.replay(self.decisions)["requests"]
        rebuilt = self.replay(self.maillog)["requests"]
        by_rcpt = {}
        for r in rebuilt:
            self.assertNotIn(r["recipient"], by_rcpt, "recipient replayed twice: %s%s" % (
                r, self.context()))
            by_rcpt[r["recipient"]] = r
        want = {"%s@%s" % (x, DOMAIN) for x in ("reject", "defer", "ok", "warn", "hold",
                                                  "multi1", "multi2", "reject2")}
        self.assertEqual({r["recipient"] for r in server}, want, self.context())
        self.assertEqual(set(by_rcpt), want, self.context())
        compared = set()
        for s in server:
            r = by_rcpt[s["recipient"]]
            ra, sa = r["attributes"], s["attributes"]
            both = set(ra) & set(sa)
            for a in both:
                self.assertEqual(ra[a], sa[a], "%s of %s: maillog %r, mxacld %r%s" % (
                    a, s["recipient"], ra[a], sa[a], self.context()))
            # what the policy read, the maillog gave; HELO and protocol only
            # where a reject/warn/hold line of the session showed them, SASL
            # only for a login (docs/replay.md)
            self.assertEqual(set(sa) - set(ra) - {"helo_name", "protocol_name"},
                             {"sasl_username"}, (ra, sa))
            self.assertTrue({"client_name", "client_address", "reverse_client_name", "sender",
                             "recipient", "protocol_state"} <= both, both)
            compared.update(both)
            # the same policy decides the rebuilt request as mxacld decided the real one
            self.assertEqual(r["decision"]["action"], s["was_text"], (r, s))
            self.assertEqual(r["decision"]["rule"], s["was_rule"], (r, s))
            self.assertLessEqual(abs(r["epoch"] - s["epoch"]), 2, (r, s))
        self.assertIn("protocol_name", compared)
        self.assertIn("helo_name", compared)
        # what each rebuilt request says Postfix did
        was = {k.split("@")[0]: v["was"] for k, v in by_rcpt.items()}
        self.assertEqual(was, {"reject": "reject", "defer": "defer", "warn": "warn",
                               "hold": "hold", "ok": "accept", "multi1": "accept",
                               "multi2": "accept", "reject2": "reject"}, self.context())
        # every attribute mxacld logged was there: client, sender, HELO where logged
        for k in ("reject", "defer", "warn", "hold", "reject2", "multi1", "multi2"):
            self.assertEqual(by_rcpt["%s@%s" % (k, DOMAIN)].get("helo_name"), "client.test",
                             k + self.context())

    def test_replaying_mxacld_log_reproduces_its_decisions(self):
        doc = self.replay(self.decisions)
        self.assertEqual(doc["summary"]["from_mxacld"], 8)
        self.assertEqual(doc["summary"]["unparsable"], 0)
        for r in doc["requests"]:
            self.assertEqual(r["decision"]["action"], r["was_text"], r)
            self.assertEqual(r["decision"]["rule"], r["was_rule"], r)

    def test_maillog_summary(self):
        s = self.replay(self.maillog)["summary"]
        self.assertEqual((s["requests"], s["from_reject"], s["from_queue"], s["unparsable"]),
                         (8, 5, 3, 0), self.context())


if __name__ == "__main__":
    unittest.main()
