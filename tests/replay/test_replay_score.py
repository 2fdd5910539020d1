"""The decision line shows a score (score=<SUM> score_hits=<TERMS> and,
when a term's lookup failed, score_missing=<ACLS>), through a real mxacld,
only on requests that evaluated a score; mxacl replay skips those fields,
so replaying the log rebuilds the requests Postfix sent and the same
policy gives the same decisions (issue 13)."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest
import json

from mxtest import Mxacld, free_port, mxacl_path

POLICY = """acl internal     client_address 10.0.0.0/8
acl no_rdns      client_name unknown
acl helo_literal helo_name /^\\[/
acl bad_sender   sender_domain spam.example
acl authed       sasl_method PLAIN LOGIN
acl spammy score no_rdns*1.5 helo_literal bad_sender*3 authed*-5 %s>= 2.5
action accept OK
action spam REJECT 5.7.1 spam
access relay: internal accept
access scored: spammy spam
"""

BASE = {"request": "smtpd_access_policy", "protocol_state": "RCPT",
        "recipient": "bob@example.org"}
REQUESTS = [
    # decided before the score: no score fields
    dict(BASE, client_address="10.1.2.3", client_name="relay.example.org",
         helo_name="relay.example.org", sender="a@example.org"),
    # 1.5 + 1 + 3 = 5.5 >= 2.5
    dict(BASE, client_address="192.0.2.7", client_name="unknown",
         helo_name="[192.0.2.7]", sender="x@spam.example"),
    # nothing holds: 0
    dict(BASE, client_address="198.51.100.4", client_name="mail.example.net",
         helo_name="mail.example.net", sender="c@example.net"),
    # 1.5 - 5 = -3.5: a negative sum; a value that needs escaping
    dict(BASE, client_address="203.0.113.9", client_name="unknown",
         helo_name="odd>name", sender="d@example.net", sasl_method="PLAIN"),
]
# the attributes this policy reads: what the decision line carries
SHOWN = ("client_address", "client_name", "helo_name", "sender", "recipient",
         "sasl_method")


class ScoreDecisionLine(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mxacl-replay-score-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_daemon(self, policy, extra_args=()):
        """The replies and the decision lines of REQUESTS through mxacld."""
        with open(os.path.join(self.dir, "policy.conf"), "w") as f:
            f.write(policy)
        logfile = os.path.join(self.dir, "decisions.log")
        with Mxacld(policy, log_mode=logfile, extra_args=list(extra_args)) as d:
            replies = [d.query(r) for r in REQUESTS]
        with open(logfile) as f:
            log = [l for l in f.read().splitlines() if " decision " in l]
        self.assertEqual(len(log), len(REQUESTS), log)
        return replies, log

    def replay(self):
        p = subprocess.run([mxacl_path(), "replay", "--format", "json", "--offline",
                            "-c", "policy.conf", "decisions.log"],
                           capture_output=True, cwd=self.dir, timeout=120,
                           env=dict(os.environ, TZ="UTC"))
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, err)
        self.assertNotIn("Sanitizer", err)
        return json.loads(p.stdout)

    def assert_rebuilt(self, doc, log):
        self.assertEqual(doc["summary"]["from_mxacld"], len(REQUESTS))
        self.assertEqual(doc["summary"]["unparsable"], 0)
        reqs = doc["requests"]
        self.assertEqual(len(reqs), len(REQUESTS))
        for sent, got, line in zip(REQUESTS, reqs, log):
            for field in ("score", "score_hits", "score_missing", "tempfail"):
                self.assertNotIn(field, got, line)
            # exactly the attributes sent that the policy reads, no more
            want = {k: sent.get(k, "") for k in SHOWN}
            want.update(request="smtpd_access_policy", protocol_state="RCPT")
            self.assertEqual(got["attributes"], want, line)
            # the same policy decides the same
            self.assertEqual(got["decision"]["rule"], got["was_rule"], line)
            self.assertEqual(got["decision"]["action"],
                             re.search(r" action=(.*)$", line).group(1), line)

    def test_score_fields_only_when_a_score_was_evaluated(self):
        replies, log = self.run_daemon(POLICY % "")
        self.assertEqual(replies, ["action=OK", "action=REJECT 5.7.1 spam", "action=DUNNO",
                                   "action=DUNNO"])
        self.assertNotIn("score", log[0])
        self.assertRegex(log[0], r" rule=relay action=OK$")
        self.assertIn(" score=<5.5> score_hits=<no_rdns*1.5 helo_literal*1 bad_sender*3> "
                      "rule=scored action=REJECT 5.7.1 spam", log[1])
        self.assertIn(" score=<0> score_hits=<> rule=default action=DUNNO", log[2])
        self.assertIn(" helo=<odd\\>name> ", log[3])
        self.assertIn(" score=<-3.5> score_hits=<no_rdns*1.5 authed*-5> rule=default ", log[3])
        for line in log:
            self.assertNotIn("score_missing=", line)
        self.assert_rebuilt(self.replay(), log)

    def test_a_failed_term_is_named(self):
        # a DNS server that never answers: the rbl term fails, nomatch
        policy = "acl open rbl open.example.invalid\n" + POLICY % "open*2 "
        silent = free_port()
        replies, log = self.run_daemon(policy, ["--dns", "127.0.0.1:%d" % silent,
                                                "--dns-timeout", "300"])
        self.assertEqual(replies[:2], ["action=OK", "action=REJECT 5.7.1 spam"])
        self.assertNotIn("score", log[0])
        self.assertIn(" score=<5.5> score_hits=<no_rdns*1.5 helo_literal*1 bad_sender*3> "
                      "score_missing=<open> rule=scored ", log[1])
        self.assertIn(" score=<0> score_hits=<> score_missing=<open> ", log[2])
        self.assert_rebuilt(self.replay(), log)


if __name__ == "__main__":
    unittest.main()
