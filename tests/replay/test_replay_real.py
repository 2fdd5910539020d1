"""mxacl replay on real logs cut from public repositories (tests/replay/real,
sources in its README.md): the attributes Postfix logs around a request
(the PTR name of a client that failed forward confirmation, the SASL login
of a NOQUEUE filter line's session), a milter's END-OF-MESSAGE reject, the
stamp forms seen in the wild, blank lines.

The logs are read with TZ=UTC and --year 2020.
"""
import json
import os
import re
import subprocess
import unittest

from mxtest import ScratchDir, mxacl_path, ROOT

REAL = os.path.join(ROOT, "tests", "replay", "real")
FIX = os.path.join(ROOT, "tests", "replay", "fixtures")


class ReplayRealTest(ScratchDir, unittest.TestCase):
    prefix = "mxacl-replay-real-"
    copy_from = (REAL, FIX)

    def replay(self, *args):
        argv = [mxacl_path(), "replay", "--year", "2020", "--format", "json", "-c",
                "policy.conf"] + list(args)
        p = subprocess.run(argv, capture_output=True, cwd=self.dir,
                           env=dict(os.environ, TZ="UTC"), timeout=120)
        out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, "exit %d\n%s\n%s" % (p.returncode, out, err))
        self.assertNotIn("Sanitizer", err)
        self.assertNotIn("runtime error:", err)
        try:
            return json.loads(out), err
        except ValueError as e:
            self.fail("output is not JSON (%s):\n%s" % (e, out))

    # -- item 1: reverse_client_name from smtpd's warning

    def test_reverse_client_name_from_the_smtpd_warning(self):
        # "warning: hostname some.client.com does not resolve to address
        # 1.2.3.4", then "connect from unknown[1.2.3.4]" of the same smtpd
        doc, _ = self.replay("lightmeter-22_virtual_delivery.log")
        self.assertEqual(len(doc["requests"]), 1)
        a = doc["requests"][0]["attributes"]
        self.assertEqual((a["client_name"], a["client_address"], a["reverse_client_name"],
                          a["recipient"]),
                         ("unknown", "1.2.3.4", "some.client.com",
                          "recipient@recipient.example.com"))
        # another smtpd process, or a later connection of the same process,
        # does not get that name
        log = self.read("lightmeter-22_virtual_delivery.log").replace(
            "smtpd[21134]: connect from", "smtpd[21135]: connect from").replace(
            "smtpd[21134]: EA015DF2B6", "smtpd[21135]: EA015DF2B6")
        self.write("other-pid.log", log)
        doc, _ = self.replay("other-pid.log")
        self.assertNotIn("reverse_client_name", doc["requests"][0]["attributes"])

    # -- item 2: the SASL login of a NOQUEUE filter line's session

    def test_noqueue_filter_line_gets_the_login_of_its_client_line(self):
        doc, _ = self.replay("lightmeter-5_zimbra_amavisd.log")
        first = doc["requests"][0]
        self.assertEqual((first["source"], first["was"], first["recipient"]),
                         ("reject", "filter", "recipient@recipient.example.com"))
        a = first["attributes"]
        self.assertEqual((a.get("sasl_method"), a.get("sasl_username")),
                         ("LOGIN", "sender@sender.example.com"), a)
        self.assertEqual(first["time"], "2020-12-17T06:28:56")
        # replayed once: its delivery line to amavis is not another request
        self.assertEqual([r["recipient"] for r in doc["requests"]
                          if r.get("client_address") == "11.22.33.44"],
                         ["recipient@recipient.example.com"])

    def test_filter_then_reject_in_one_session_keep_their_order(self):
        doc, _ = self.replay("lightmeter-20_rejected.log")
        got = [(r["was"], r["recipient"], r["attributes"].get("sasl_username"))
               for r in doc["requests"]]
        self.assertEqual(got, [
            ("filter", "h-3c3175932cb3b@h-526472e87.com", "h-2d34d8bb8@h-93a1a37cd1.com"),
            ("defer", "h-2d34d8bb8@h-93a1a37cd1.com", "h-2d34d8bb8@h-93a1a37cd1.com")])

    # -- item 3: stamps

    def test_stamp_forms_seen_in_the_wild_give_the_same_requests(self):
        plain = self.read("lightmeter-5_zimbra_amavisd.log")
        want, _ = self.replay("lightmeter-5_zimbra_amavisd.log")
        self.assertEqual(want["summary"]["unparsable"], 0)
        stamp = re.compile(r"^Dec 17 (\d\d:\d\d:\d\d) ", re.M)
        tag = re.compile(r"^(\S+ \S+ \S+ \S+ \S+?\[\d+\]:) ", re.M)
        forms = {
            "iso-space": stamp.sub(r"2020-12-17 \1 ", plain),
            "priority": stamp.sub(r"<22>Dec 17 \1 ", plain),
            "priority-before-tag": re.sub(r"^(Dec 17 \S+ sm02) ", r"\1 <22>", plain,
                                          flags=re.M),
            "solaris": tag.sub(r"\1 [ID 197553 mail.info] ", plain),
        }
        for name, text in forms.items():
            self.assertNotEqual(text, plain, name)
            self.write(name + ".log", text)
            got, _ = self.replay(name + ".log")
            self.assertEqual(got["summary"]["unparsable"], 0, name)
            self.assertEqual(got["requests"], want["requests"], name)

    def test_fail2ban_log_one_space_stamps_and_blank_lines(self):
        doc, err = self.replay("-v", "fail2ban-postfix.log")
        shown = [line for line in err.splitlines() if "cannot parse" in line]
        # blank lines are not "cannot parse", and neither are the stamps
        # with one space before a one-digit day
        self.assertFalse([s for s in shown if s.endswith("cannot parse: ")], shown)
        self.assertFalse([s for s in shown if re.search(r"parse: [A-Z][a-z]{2} \d ", s)],
                         shown)
        s = doc["summary"]
        self.assertEqual(s["blank"], 52)
        # fail2ban's lines are edited for its tests: those without the
        # brackets Postfix writes ("to=<> proto=ESMTP helo=") stay unparsable
        self.assertEqual(s["unparsable"], len(shown))
        self.assertIn("Feb 21 09:21:54 xxx postfix/smtpd[14398]", "\n".join(shown))
        recipients = [r["recipient"] for r in doc["requests"]]
        self.assertIn("sales@server.com", recipients)

    # -- item 4: a milter's reject at END-OF-MESSAGE

    def test_milter_reject_at_end_of_message_replays_its_recipient(self):
        doc, _ = self.replay("lightmeter-17-smtpd-reject-with-milter-reject.log")
        got = [(r["was"], r["recipient"]) for r in doc["requests"]]
        self.assertEqual(got, [
            ("reject", "h-f91a317fd08716dbf2@h-ff6b5e9182fd933.com"),
            ("reject", "h-0b38f31d8f5146498e8862@h-ff6b5e9182fd933.com"),
            ("milter-reject", "h-688f0f21f362894034ba55@h-ff6b5e9182fd933.com")])
        last = doc["requests"][2]
        self.assertEqual((last["attributes"]["queue_id"], last["helo_name"], last["time"]),
                         ("769FF2E0760", "h-72f555a0840e4b9553", "2020-02-16T22:23:12"))
        self.assertEqual(doc["summary"]["incomplete"], 0)
        # the same reject logged twice for one queue ID: one request
        doc, _ = self.replay("lightmeter-15_milter-reject.log")
        self.assertEqual([(r["was"], r["recipient"]) for r in doc["requests"]],
                         [("milter-reject", "h-7abde52c2@h-ffd2115d4f.com")])
        self.assertEqual(doc["requests"][0]["was_text"], "4.7.1 Try again later")


if __name__ == "__main__":
    unittest.main()
