"""mxacl replay --stage eom on a log recorded from a real Postfix
(tests/lib/postfix.py: a private instance on loopback writing its own
maillog_file) whose smtpd asks a real mxacld at RCPT and at END-OF-MESSAGE
(smtpd_end_of_data_restrictions), mxacld logging its decisions to a file.
SMTP AUTH goes through Postfix's Dovecot SASL client (smtpd_sasl_type =
dovecot) to DovecotAuth (tests/lib/dovecotauth.py), which speaks Dovecot's auth protocol for
PLAIN with two fixed users; Postfix logs the login as it would for a real
Dovecot. swaks sends, as SCENARIO lists: accepted messages of one, two
and three recipients, a 60 kB message the policy rejects at
END-OF-MESSAGE by size, a message of two recipients it rejects at
END-OF-MESSAGE by its login, a message with a recipient rejected at RCPT,
a transaction refused at RCPT (NOQUEUE), and sendmail(1) a local message
(pickup). Then:

  - every END-OF-MESSAGE request Postfix sent (mxacld's decision log) is
    rebuilt from the maillog, once, and no other: none for the NOQUEUE
    transaction nor for the local message;
  - the rebuilt attributes are Postfix's, where the log has them: sender,
    client, login, HELO and protocol, recipient_count, the one recipient;
    size is qmgr's (a little more than smtpd's: the Received: header);
  - replaying the maillog through the same policy gives the decision
    mxacld gave, but for the size rule on a message Postfix rejected (the
    log has no size for it: docs/replay.md).

`python3 tests/replay/test_postfix_replay_eom.py --record FILE` runs the
same scenario and writes the maillog to FILE: that is how
tests/replay/fixtures/postfix-eom.log was made (test_replay_eom.py).
"""
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import postfix as pf
from dovecotauth import DovecotAuth
from mxtest import Mxacld, mxacl_path

DOMAIN = "relay.invalid"
REALM = "mxacl-test.localdomain"
USERS = {"alice@" + REALM: "alice-secret", "mallory@" + REALM: "mallory-secret"}

# RCPT: one recipient refused. END-OF-MESSAGE: mallory's mail, and mail
# over 50 kB, refused. After its deciding acl, each END-OF-MESSAGE line
# reads (and so mxacld logs) the attributes the comparison needs; those
# acls always match Postfix's requests.
POLICY = """
acl rcpt protocol_state RCPT
acl eom protocol_state END-OF-MESSAGE
acl to_reject recipient reject@{d}
acl qid queue_id /./
acl login sasl_username /./ ""
acl method sasl_method /./ ""
acl any_sender sender /./ ""
acl any_rcpt recipient /./ ""
acl loopback client_address 127.0.0.0/8
acl named client_name localhost
acl helo helo_name /./
acl proto protocol_name ESMTP
acl counted recipient_count >=0
acl sized size >=0
acl blocked sasl_username mallory@{r}
acl big size >50000
acl never sasl_username never@{d}
action rej REJECT refused at RCPT (replay test)
action blocked_user REJECT user blocked (replay test)
action too_big 552 5.3.4 message too big (replay test)
action nope REJECT never
access rcpt to_reject rej
access eom blocked qid login method any_sender any_rcpt loopback named helo proto blocked_user
access eom big qid login method any_sender any_rcpt loopback named helo proto counted too_big
access eom qid login method any_sender any_rcpt loopback named helo proto counted sized never nope
""".format(d=DOMAIN, r=REALM)


def auth(user):
    u = "%s@%s" % (user, REALM)
    return ["--auth", "PLAIN", "--auth-user", u, "--auth-password", USERS[u]]


def rcpts(*names):
    return ",".join("%s@%s" % (n, DOMAIN) for n in names)


# (sender, recipients, swaks options): sent in this order
SCENARIO = [
    ("alice@client.test", rcpts("a1", "a2", "a3"), auth("alice")),
    ("alice@client.test", rcpts("big"), auth("alice") + ["--body", "x" * 60000 + "\n"]),
    ("alice@client.test", rcpts("a4"), auth("alice")),
    ("alice@client.test", rcpts("a5", "a6"), auth("alice")),
    ("mallory@client.test", rcpts("m1", "m2"), auth("mallory")),
    ("anon@client.test", rcpts("b1", "b2", "reject"), []),
    ("anon@client.test", rcpts("reject"), []),
]
# END-OF-MESSAGE requests: all but the NOQUEUE transaction
N_EOM = 6


def policy_line(words):
    """The line number in POLICY of the access line ending in words."""
    lines = POLICY.split("\n")
    return [i + 1 for i, l in enumerate(lines) if l.endswith(words)][0]


def record(workdir, decisions):
    """Run SCENARIO through a private Postfix asking an mxacld that logs
    to decisions; returns (postfix, mxacld, auth server), all stopped, and
    leaves Postfix's maillog in workdir/maillog."""
    mx = postfix = dv = None
    try:
        listen = "inet:127.0.0.1:%d" % pf.free_port()
        mx = Mxacld(POLICY, listen=listen, log_mode=decisions).start()
        dv = DovecotAuth(USERS).start()
        postfix = pf.PrivatePostfix(listen, main={
            "smtpd_end_of_data_restrictions": "check_policy_service " + listen,
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_type": "dovecot",
            "smtpd_sasl_path": "inet:127.0.0.1:%d" % dv.port,
        })
        postfix.start()
        for sender, to, opts in SCENARIO:
            postfix.swaks("--from", sender, "--to", to, *opts)
        local = subprocess.run(["sendmail", "-C", postfix.confdir, "-f", "root@localhost",
                                rcpts("local")], input=b"Subject: local\n\nlocal mail\n",
                               capture_output=True, timeout=pf.WAIT)
        if local.returncode:
            raise AssertionError("sendmail: %r" % (local,))
        # every queued message reaches qmgr, the local one last
        want = ["to=<%s>" % r for r in rcpts("a1", "a4", "a6", "b2", "local").split(",")]
        pf.wait_for("qmgr and delivery lines in the maillog",
                    lambda: all(w in postfix.log_text() for w in want))

        def decision_count():
            try:
                with open(decisions, errors="replace") as f:
                    return f.read().count("protocol_state=<END-OF-MESSAGE>")
            except OSError:
                return 0
        pf.wait_for("%d END-OF-MESSAGE decisions" % N_EOM, lambda: decision_count() >= N_EOM)
        shutil.copyfile(postfix.maillog, os.path.join(workdir, "maillog"))
        return postfix, mx
    finally:
        if postfix:
            postfix.stop()
        if dv:
            dv.stop()
        if mx:
            try:
                mx.stop()
            finally:
                mx.cleanup()


class PostfixEomRecordingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pf.require()
        cls.dir = tempfile.mkdtemp(prefix="mxacl-replay-eom-")
        try:
            cls.decisions = os.path.join(cls.dir, "mxacld.log")
            cls.conf = os.path.join(cls.dir, "policy.conf")
            with open(cls.conf, "w") as f:
                f.write(POLICY)
            record(cls.dir, cls.decisions)
            cls.maillog = os.path.join(cls.dir, "maillog")
        except BaseException:
            shutil.rmtree(cls.dir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def replay(self, log, *args):
        year = str(datetime.date.today().year)
        p = subprocess.run([mxacl_path(), "replay", "--format", "json", "--year", year,
                            "-c", self.conf] + list(args) + [log],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn("Sanitizer", p.stderr)
        return json.loads(p.stdout)

    def context(self):
        with open(self.maillog, errors="replace") as f:
            log = f.read()
        with open(self.decisions, errors="replace") as f:
            dec = f.read()
        return "\n--- maillog:\n%s\n--- mxacld log:\n%s" % (log[-8000:], dec[-6000:])

    def sent(self):
        """The END-OF-MESSAGE requests Postfix sent, by queue ID."""
        reqs = self.replay(self.decisions)["requests"]
        eom = {r["attributes"]["queue_id"]: r for r in reqs
               if r["attributes"].get("protocol_state") == "END-OF-MESSAGE"}
        self.assertEqual(len(eom), N_EOM, self.context())
        return eom

    def test_every_eom_request_rebuilt_with_postfix_attributes(self):
        sent = self.sent()
        doc = self.replay(self.maillog, "--stage", "eom")
        rebuilt = {}
        for r in doc["requests"]:
            a = r["attributes"]
            self.assertEqual(a["protocol_state"], "END-OF-MESSAGE", r)
            self.assertNotIn(a["queue_id"], rebuilt, "rebuilt twice: %s%s" % (r, self.context()))
            rebuilt[a["queue_id"]] = r
        self.assertEqual(set(rebuilt), set(sent), self.context())
        self.assertEqual(doc["summary"]["eom"], N_EOM)
        self.assertEqual(doc["summary"]["unparsable"], 0, self.context())
        sizes = 0
        for qid, s in sent.items():
            sa, r = s["attributes"], rebuilt[qid]
            ra = r["attributes"]
            for k in ("sender", "client_address", "client_name", "sasl_username", "sasl_method"):
                self.assertEqual(ra.get(k, ""), sa[k], "%s of %s%s" % (k, qid, self.context()))
            if s["was"] == "DUNNO":      # queued: qmgr's line
                self.assertEqual(r["was"], "accept", r)
                self.assertEqual(ra["recipient_count"], sa["recipient_count"], (ra, sa))
                self.assertNotIn("recipient", ra)
                # qmgr's size counts the Received: header Postfix adds
                self.assertGreater(int(ra["size"]), int(sa["size"]), (ra, sa))
                self.assertLess(int(ra["size"]) - int(sa["size"]), 1024, (ra, sa))
                sizes += 1
            else:                        # rejected: smtpd's END-OF-MESSAGE line
                self.assertEqual(r["was"], "reject", r)
                self.assertIn("<END-OF-MESSAGE>: End-of-data rejected: ", r["was_text"], r)
                self.assertNotIn("size", ra)
                self.assertEqual((ra["helo_name"], ra["protocol_name"]),
                                 (sa["helo_name"], sa["protocol_name"]))
                if sa["recipient"]:      # one recipient: logged, and sent
                    self.assertEqual((ra["recipient"], ra["recipient_count"]),
                                     (sa["recipient"], "1"))
                else:                    # several: the log does not say how many
                    self.assertNotIn("recipient_count", ra)
                    self.assertNotIn("recipient", ra)
        self.assertEqual(sizes, 4)

    def test_replayed_decisions(self):
        sent = self.sent()
        rebuilt = {r["attributes"]["queue_id"]: r
                   for r in self.replay(self.maillog, "--stage", "eom")["requests"]}
        rules = set()
        for qid, s in sent.items():
            r = rebuilt[qid]
            rules.add(s["was_rule"].split(":")[-1])
            if s["was_rule"].endswith(":%d" % policy_line("too_big")):
                # no size in the log for a message Postfix did not queue
                self.assertEqual(r["decision"]["rule"], "default", r)
            else:
                self.assertEqual(r["decision"]["action"], s["was_text"], (r, s))
                self.assertEqual(r["decision"]["rule"].split(":")[-1],
                                 s["was_rule"].split(":")[-1], (r, s))
        self.assertEqual(rules, {"default", str(policy_line("blocked_user")),
                                 str(policy_line("too_big"))}, self.context())

    def test_stage_all_and_default(self):
        rcpt = self.replay(self.maillog)
        both = self.replay(self.maillog, "--stage", "all")
        eom = self.replay(self.maillog, "--stage", "eom")
        self.assertEqual(rcpt["summary"]["eom"], 0)
        self.assertTrue(all(r["attributes"]["protocol_state"] == "RCPT"
                            for r in rcpt["requests"]))
        self.assertEqual(both["summary"]["requests"],
                         rcpt["summary"]["requests"] + eom["summary"]["requests"])
        key = lambda r: (r["attributes"]["protocol_state"], r["attributes"].get("queue_id"),
                         r.get("recipient"))
        self.assertEqual(sorted(map(key, both["requests"]), key=repr),
                         sorted(map(key, rcpt["requests"] + eom["requests"]), key=repr))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--record":
        pf.require()
        d = tempfile.mkdtemp(prefix="mxacl-replay-eom-")
        try:
            record(d, os.path.join(d, "mxacld.log"))
            shutil.copyfile(os.path.join(d, "maillog"), sys.argv[2])
        finally:
            shutil.rmtree(d, ignore_errors=True)
        sys.exit(0)
    unittest.main()
