"""mxacl replay --stage rcpt|eom|all: END-OF-MESSAGE requests rebuilt from
Postfix's lines (docs/replay.md, "END-OF-MESSAGE").

fixtures/postfix-eom.log is a real Postfix 3.7.11 log (Debian 12's
package), written by a private instance (tests/lib/postfix.py) driven by
swaks, unchanged: `python3 tests/replay/test_postfix_replay_eom.py
--record FILE` made it (the scenario is SCENARIO there; its README.md
says so too). In it alice (SASL PLAIN) sends messages of three, one,
one and two recipients, the second of 60 kB, which the policy rejected at
END-OF-MESSAGE by size; mallory's message of two recipients was rejected
at END-OF-MESSAGE by login; an anonymous message had one of three
recipients rejected at RCPT; an anonymous transaction was refused at RCPT
(NOQUEUE); a local message came through pickup.

The public logs in tests/replay/real (sources in its README.md) add a
client that failed forward confirmation, a SASL LOGIN submission with a
content filter, and milters' END-OF-MESSAGE rejects.

Every run sets TZ=UTC.
"""
import json
import os
import subprocess
import unittest

from mxtest import ScratchDir, mxacl_path, ROOT

FIX = os.path.join(ROOT, "tests", "replay", "fixtures")
REAL = os.path.join(ROOT, "tests", "replay", "real")

ALICE = "alice@mxacl-test.localdomain"
LOCALHOST = {"request": "smtpd_access_policy", "protocol_state": "END-OF-MESSAGE",
             "client_address": "127.0.0.1", "client_name": "localhost",
             "reverse_client_name": "localhost"}
ALICE_LOGIN = {"sasl_method": "PLAIN", "sasl_username": ALICE, "sender": "alice@client.test"}

# the END-OF-MESSAGE requests of fixtures/postfix-eom.log, in order:
# (was, time, attributes: exactly these)
EOM_WANT = [
    ("accept", "2026-12-03T09:10:39",
     dict(LOCALHOST, **ALICE_LOGIN, queue_id="6D6DFA763B2", recipient_count="3", size="453")),
    # rejected by the policy: the line names the one recipient; no size
    ("reject", "2026-12-03T09:10:39",
     dict(LOCALHOST, **ALICE_LOGIN, queue_id="848FFA763E3", recipient="big@relay.invalid",
          recipient_count="1", helo_name="client.test", protocol_name="ESMTP")),
    ("accept", "2026-12-03T09:10:39",
     dict(LOCALHOST, **ALICE_LOGIN, queue_id="A5F27A763E3", recipient_count="1", size="442")),
    ("accept", "2026-12-03T09:10:39",
     dict(LOCALHOST, **ALICE_LOGIN, queue_id="D2819A76413", recipient_count="2", size="436")),
    # two recipients: smtpd logs none, nor how many
    ("reject", "2026-12-03T09:10:39",
     dict(LOCALHOST, sasl_method="PLAIN", sasl_username="mallory@mxacl-test.localdomain",
          sender="mallory@client.test", queue_id="ED4FEA76462", helo_name="client.test",
          protocol_name="ESMTP")),
    # no login; the HELO from the session's RCPT reject line
    ("accept", "2026-12-03T09:10:40",
     dict(LOCALHOST, sender="anon@client.test", queue_id="1128AA76471", recipient_count="2",
          size="455", helo_name="client.test", protocol_name="ESMTP")),
]

QUOTA = """\
acl eom protocol_state END-OF-MESSAGE
acl authed sasl_username /./
acl quota rate sasl_username 2/1d
action over REJECT daily quota of ${sasl_username} used up
access eom authed quota over
"""


class ReplayEomTest(ScratchDir, unittest.TestCase):
    prefix = "mxacl-replay-eom-"
    copy_from = (FIX, REAL)

    def replay(self, *args, year="2026", want_rc=0):
        argv = [mxacl_path(), "replay", "--year", year] + list(args)
        p = subprocess.run(argv, capture_output=True, cwd=self.dir,
                           env=dict(os.environ, TZ="UTC"), timeout=120)
        out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, want_rc, "mxacl replay %s: exit %d, want %d\n%s\n%s" % (
            " ".join(args), p.returncode, want_rc, out, err))
        self.assertNotIn("Sanitizer", err)
        self.assertNotIn("runtime error:", err)
        return out, err

    def replay_json(self, *args, **kw):
        out, _ = self.replay("--format", "json", *args, **kw)
        return json.loads(out)

    def test_eom_requests_exactly(self):
        doc = self.replay_json("--stage", "eom", "-c", "policy.conf", "postfix-eom.log")
        got = [(r["was"], r["time"], r["attributes"]) for r in doc["requests"]]
        self.assertEqual(len(got), len(EOM_WANT), json.dumps(doc["requests"], indent=1))
        for g, w in zip(got, EOM_WANT):
            self.assertEqual(g, w)
        s = doc["summary"]
        # 4 queued (qmgr lines), 2 rejected at END-OF-MESSAGE; none for the
        # NOQUEUE transaction; the local message's qmgr and delivery lines
        # have no client= line
        self.assertEqual((s["requests"], s["eom"], s["from_queue"], s["from_reject"],
                          s["unparsable"], s["orphans"], s["messages"]),
                         (6, 6, 4, 2, 0, 2, 6))
        rejected = [r["was_text"] for r in doc["requests"] if r["was"] == "reject"]
        self.assertEqual(rejected, [
            "552 5.3.4 <END-OF-MESSAGE>: End-of-data rejected: message too big (replay test)",
            "554 5.7.1 <END-OF-MESSAGE>: End-of-data rejected: user blocked (replay test)"])

    def test_quota_policy_at_end_of_message(self):
        with open(os.path.join(self.dir, "quota.conf"), "w") as f:
            f.write(QUOTA)
        doc = self.replay_json("--stage", "eom", "-c", "quota.conf", "postfix-eom.log")
        got = [(r["attributes"]["queue_id"], r["decision"]["rule"], r["decision"]["action"])
               for r in doc["requests"]]
        over = "REJECT daily quota of %s used up" % ALICE
        self.assertEqual(got, [
            ("6D6DFA763B2", "default", "DUNNO"),      # alice's 1st
            ("848FFA763E3", "default", "DUNNO"),      # 2nd (rejected then, for its size)
            ("A5F27A763E3", "quota.conf:5", over),    # 3rd: over 2 a day
            ("D2819A76413", "quota.conf:5", over),
            ("ED4FEA76462", "default", "DUNNO"),      # mallory's 1st
            ("1128AA76471", "default", "DUNNO"),      # no login
        ])
        # the same policy on RCPT requests (the default) decides nothing
        doc = self.replay_json("-c", "quota.conf", "postfix-eom.log")
        self.assertEqual({r["decision"]["rule"] for r in doc["requests"]}, {"default"})
        self.assertEqual(len(doc["requests"]), 11)

    def test_stage_all_in_log_order(self):
        doc = self.replay_json("--stage", "all", "-c", "policy.conf", "postfix-eom.log")
        got = [(r["attributes"]["protocol_state"][0], r["attributes"].get("queue_id", "-"),
                r.get("recipient", "")) for r in doc["requests"]]
        self.assertEqual(got, [
            # a queued message: END-OF-MESSAGE at its qmgr line, then each
            # recipient at its delivery line
            ("E", "6D6DFA763B2", ""), ("R", "6D6DFA763B2", "a1@relay.invalid"),
            ("R", "6D6DFA763B2", "a2@relay.invalid"), ("R", "6D6DFA763B2", "a3@relay.invalid"),
            # one line, two requests: the recipient, then the message
            ("R", "848FFA763E3", "big@relay.invalid"), ("E", "848FFA763E3", "big@relay.invalid"),
            ("E", "A5F27A763E3", ""), ("R", "A5F27A763E3", "a4@relay.invalid"),
            ("E", "D2819A76413", ""), ("R", "D2819A76413", "a5@relay.invalid"),
            ("R", "D2819A76413", "a6@relay.invalid"),
            ("E", "ED4FEA76462", ""),
            ("R", "1128AA76471", "reject@relay.invalid"), ("E", "1128AA76471", ""),
            ("R", "1128AA76471", "b1@relay.invalid"), ("R", "1128AA76471", "b2@relay.invalid"),
            ("R", "-", "reject@relay.invalid"),
        ])
        s = doc["summary"]
        self.assertEqual((s["requests"], s["eom"]), (17, 6))

    def test_default_is_rcpt(self):
        for log in ("postfix.log", "postfix-eom.log", "lightmeter-5_zimbra_amavisd.log"):
            default, _ = self.replay("-c", "policy.conf", log, year="2024")
            rcpt, _ = self.replay("--stage", "rcpt", "-c", "policy.conf", log, year="2024")
            self.assertEqual(default, rcpt, log)
            self.assertNotIn("END-OF-MESSAGE", default.replace(
                "<END-OF-MESSAGE>", ""), log)
            self.assertNotIn("\nstages: ", default)

    def test_text_output(self):
        out, _ = self.replay("--stage", "eom", "-c", "policy.conf", "postfix-eom.log")
        lines = out.splitlines()
        self.assertEqual(lines[0], "2026-12-03T09:10:39 client=localhost[127.0.0.1] "
                         "from=<alice@client.test> to=<> state=END-OF-MESSAGE recipient_count=3 "
                         "size=453 was=accept rule=default action=DUNNO")
        self.assertIn("stages: 0 RCPT requests, 6 END-OF-MESSAGE requests", lines)

    def test_bad_stage(self):
        _, err = self.replay("--stage", "data", "-c", "policy.conf", "postfix-eom.log",
                             want_rc=2)
        self.assertIn("--stage is rcpt, eom or all", err)

    # -- public logs

    def test_real_unknown_client_virtual_delivery(self):
        doc = self.replay_json("--stage", "eom", "-c", "policy.conf",
                               "lightmeter-22_virtual_delivery.log", year="2020")
        self.assertEqual([r["attributes"] for r in doc["requests"]], [{
            "request": "smtpd_access_policy", "protocol_state": "END-OF-MESSAGE",
            "client_address": "1.2.3.4", "client_name": "unknown",
            "reverse_client_name": "some.client.com", "sender": "sender@sender.example.com",
            "size": "17554", "recipient_count": "1", "queue_id": "EA015DF2B6"}])
        # the time of cleanup's message-id= line
        self.assertEqual(doc["requests"][0]["time"], "2020-07-08T17:05:24")

    def test_real_submission_with_content_filter(self):
        doc = self.replay_json("--stage", "eom", "-c", "policy.conf",
                               "lightmeter-5_zimbra_amavisd.log", year="2020")
        first = doc["requests"][0]["attributes"]
        self.assertEqual(first, {
            "request": "smtpd_access_policy", "protocol_state": "END-OF-MESSAGE",
            "client_address": "11.22.33.44", "client_name": "unknown",
            "sasl_method": "LOGIN", "sasl_username": "sender@sender.example.com",
            "sender": "sender@sender.example.com", "size": "344000", "recipient_count": "1",
            "helo_name": "MsLy", "protocol_name": "ESMTP", "queue_id": "E8759DC24C3"})
        # the filters hand the message back without XFORWARD: each return
        # is a message from localhost (docs/replay.md, "Honest limits")
        self.assertEqual([(r["attributes"]["queue_id"], r["client_address"])
                          for r in doc["requests"][1:]],
                         [("218BEDC28EC", "127.0.0.1"), ("33DE0DC24C3", "127.0.0.1")])

    def test_real_milter_reject(self):
        doc = self.replay_json("--stage", "eom", "-c", "policy.conf",
                               "lightmeter-15_milter-reject.log", year="2020")
        (r,) = doc["requests"]
        self.assertEqual(r["was"], "milter-reject")
        a = r["attributes"]
        self.assertEqual((a["protocol_state"], a["queue_id"], a["recipient_count"],
                          a["recipient"], a["client_address"]),
                         ("END-OF-MESSAGE", "B37FD2E05B9", "1", "h-7abde52c2@h-ffd2115d4f.com",
                          "254.65.43.194"))
        self.assertNotIn("size", a)
        # the second reject line of the same queue ID is not another message
        self.assertEqual((doc["summary"]["eom"], doc["summary"]["other_stage"]), (1, 1))


if __name__ == "__main__":
    unittest.main()
