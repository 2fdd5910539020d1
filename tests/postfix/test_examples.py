"""The shipped example, conf.d/policy.conf, behind a real Postfix wired as
its header says (issue 12: "the shipped example must work where its header
says to put it").

mxacld serves conf.d/policy.conf as shipped (and its lists/); a private
Postfix (tests/lib/postfix.py) gets the main.cf lines of the policy's
header, read from the file, only the port changed. Then one swaks session
per access line makes that line fire, and the test checks both sides: what
the SMTP client is told, and the decision line mxacld logs for it
(rule=policy.conf:LINE). Among them, the issue's case: a 60-recipient
message gets the too-many-recipients answer, at END-OF-MESSAGE, where
Postfix sends the real recipient_count (it sends 0 at RCPT TO).

Test-only main.cf additions, none of them a restriction:
- smtpd_authorized_xclient_hosts = 127.0.0.0/8, so that swaks can pose as a
  remote client (XCLIENT ADDR, NAME, HELO, LOGIN: Postfix then sends that
  client_address, client_name, helo_name and sasl_username to the policy,
  sasl_method=XCLIENT);
- relay_domains = the policy's own domains, so that Postfix takes mail for
  them (a real server has them in mydestination or virtual domains).
"""
import os
import re
import tempfile
import unittest

import postfix as pf

ROOT = pf.ROOT
POLICY = os.path.join(ROOT, "conf.d", "policy.conf")
STRANGER = "203.0.113.10"        # not internal, not in lists/blocked_nets
INTERNAL = "192.0.2.20"          # internal_nets, but not Postfix's mynetworks
BLOCKED = "198.51.100.7"         # lists/blocked_nets


def header_main_cf(path=POLICY):
    """The main.cf settings the policy's header tells a user to add:
    {name: value}, continuation lines joined."""
    with open(path) as f:
        lines = f.read().splitlines()
    start = next(i for i, l in enumerate(lines) if "Postfix main.cf" in l) + 1
    out, name = {}, None
    for l in lines[start:]:
        body = l[1:] if l.startswith("#") else None
        if body is None or not body.strip():
            break
        m = re.match(r"\s{1,4}(\w+)\s*=\s*(.*)$", body)
        if m:
            name = m.group(1)
            out[name] = m.group(2).strip()
        elif name and body.startswith("     "):
            out[name] = (out[name] + " " + body.strip()).strip()
    return out


def line_of(text, path=POLICY):
    """The line number of the policy line that is exactly text."""
    with open(path) as f:
        for n, l in enumerate(f, 1):
            if " ".join(l.split()) == text:
                return n
    raise AssertionError("%s: no line %r" % (path, text))


class ShippedExample(pf.PostfixPolicyCase):

    @classmethod
    def setUpClass(cls):
        pf.require()
        cls.main = header_main_cf()
        cls.endpoint = "inet:127.0.0.1:10038"
        cls.start(cls.start_servers)

    @classmethod
    def start_servers(cls):
        listen = "inet:127.0.0.1:%d" % pf.free_port()
        cls.policy = pf.start_mxacld_file(POLICY, listen)
        main = {k: v.replace(cls.endpoint, listen) for k, v in cls.main.items()}
        main.update({"smtpd_authorized_xclient_hosts": "127.0.0.0/8",
                     "relay_domains": "example.com example.net example.org"})
        cls.postfix = pf.PrivatePostfix(listen, main=main).start()

    def session(self, rcpts, sender, addr, name=None, helo=None, login=None,
                quit_after=None, body=None):
        """One swaks session posing (XCLIENT) as client addr; returns the
        transcript."""
        args = ["--from", sender, "--to", ",".join(rcpts), "--xclient-addr", addr,
                "--xclient-name", name or "mail.shop.example"]
        if login:
            args += ["--xclient-login", login]
        # the HELO swaks sends after XCLIENT is the one Postfix keeps
        args += ["--helo", helo or "mail.shop.example"]
        if quit_after:
            args += ["--quit-after", quit_after]
        if body:
            args += ["--body", body]
        return self.postfix.swaks(*args)

    def decision(self, line, needle):
        """Wait for mxacld's decision line for the policy line text,
        containing needle; returns it."""
        n = line_of(line)
        rx = re.compile(r"decision .*rule=\S*policy\.conf:%d\b.*" % n)

        def find():
            for m in rx.finditer(self.policy.log_text()):
                if needle in m.group(0):
                    return m.group(0)
            return None
        try:
            return pf.wait_for("a decision by %r (line %d) with %r" % (line, n, needle), find,
                               timeout=20)
        except TimeoutError as e:
            raise AssertionError(str(e) + self.context())

    def rcpt(self, transcript):
        return self.postfix.reply_to(transcript, "RCPT TO")

    # -- the header is what the test wires

    def test_header_names_both_stages(self):
        self.assertIn("check_policy_service " + self.endpoint,
                      self.main.get("smtpd_recipient_restrictions", ""))
        self.assertIn("reject_unauth_destination",
                      self.main["smtpd_recipient_restrictions"])
        self.assertEqual(self.main.get("smtpd_end_of_data_restrictions"),
                         "check_policy_service " + self.endpoint)

    # -- RCPT TO: each line fires

    def test_internal_nets_accept(self):
        t = self.session(["internal@example.com"], "someone@shop.example", INTERNAL,
                         quit_after="RCPT")
        self.assertTrue(self.rcpt(t).startswith("250 "), t + self.context())
        self.assertIn("action=OK", self.decision("access internal_nets accept",
                                                 "to=<internal@example.com>"))

    def test_authenticated_accept(self):
        t = self.session(["auth@example.com"], "alice@example.com", STRANGER, login="alice",
                         quit_after="RCPT")
        self.assertTrue(self.rcpt(t).startswith("250 "), t + self.context())
        self.assertIn("action=OK", self.decision("access authenticated accept",
                                                 "to=<auth@example.com>"))

    def test_blocked_senders(self):
        t = self.session(["list@example.com"], "spammer@example.biz", STRANGER,
                         quit_after="RCPT")
        self.assertEqual(self.rcpt(t), "554 5.7.1 <list@example.com>: Recipient address "
                         "rejected: sender <spammer@example.biz> is blocked here",
                         t + self.context())
        self.decision("access blocked_senders no_sender", "to=<list@example.com>")

    def test_blocked_nets(self):
        t = self.session(["net@example.com"], "someone@shop.example", BLOCKED,
                         quit_after="RCPT")
        self.assertEqual(self.rcpt(t), "554 5.7.1 <net@example.com>: Recipient address "
                         "rejected: your network %s is blocked" % BLOCKED, t + self.context())
        self.decision("access blocked_nets no_net", "to=<net@example.com>")

    def test_bare_ip_helo(self):
        t = self.session(["helo@example.com"], "someone@shop.example", STRANGER,
                         helo="[%s]" % STRANGER, quit_after="RCPT")
        self.assertEqual(self.rcpt(t), "554 5.7.1 <helo@example.com>: Recipient address "
                         "rejected: bare IP address in HELO; use your host name",
                         t + self.context())
        self.decision("access bare_ip_helo helo_ip", "to=<helo@example.com>")

    def test_our_senders_need_authentication(self):
        t = self.session(["spoof@example.com"], "ceo@example.com", STRANGER,
                         quit_after="RCPT")
        self.assertEqual(self.rcpt(t), "554 5.7.1 <spoof@example.com>: Recipient address "
                         "rejected: authentication required to send as ceo@example.com",
                         t + self.context())
        self.decision("access our_senders !authenticated spoof", "to=<spoof@example.com>")

    def test_unknown_client_null_sender_warns(self):
        t = self.session(["bounce@example.com"], "<>", STRANGER, name="[UNAVAILABLE]",
                         quit_after="RCPT")
        self.assertTrue(self.rcpt(t).startswith("250 "), t + self.context())
        self.decision("access unknown_client null_sender suspicious",
                      "to=<bounce@example.com>")
        # WARN: Postfix logs it and goes on
        pf.wait_for("the WARN text in the maillog",
                    lambda: "unknown client %s sent null-sender mail" % STRANGER
                    in self.postfix.log_text(), timeout=20)

    def test_our_domains_tag(self):
        t = self.session(["tagged@example.com", "tagged2@example.com"], "news@shop.example",
                         STRANGER)
        m = re.search(r"<-\s+250 .*queued as ([0-9A-Za-z]+)", t)
        self.assertTrue(m, t + self.context())
        headers = self.postfix.postcat(m.group(1), "-h")
        # once per recipient that got the PREPEND (docs/operations.md,
        # "Postfix stages"): RCPT-stage answers are per recipient
        self.assertEqual(headers.splitlines().count("X-Policy: checked by mxacl"), 2, headers)
        self.decision("access our_domains tag", "to=<tagged@example.com>")
        # and the message-wide lines let it through at END-OF-MESSAGE
        self.assertIn("action=DUNNO", self.decision("access end_of_message default",
                                                    m.group(1)))

    # -- END-OF-MESSAGE: the whole message

    def test_sixty_recipients_get_too_many(self):
        rcpts = ["r%02d@example.com" % i for i in range(1, 61)]
        t = self.session(rcpts, "bulk@example.com", INTERNAL)
        # every recipient was accepted at RCPT TO (recipient_count=0 there) ...
        self.assertEqual(len(re.findall(r"(?m)^\s*<-\s+250 2\.1\.5 Ok", t)), 60, t)
        # ... and the message refused at its end, when the count is final
        m = re.search(r"(?m)^\s*<\*\*\s+(5\d\d .*too many recipients.*)$", t)
        self.assertTrue(m, "no too-many-recipients answer:\n" + t + self.context())
        self.assertEqual(m.group(1), "554 5.5.3 <END-OF-MESSAGE>: End-of-data rejected: "
                         "too many recipients (60); at most 49 per message")
        self.decision("access end_of_message many_rcpts too_many", "action=REJECT")

    def test_big_message_from_outside(self):
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
            line = "x" * 998 + "\n"
            f.write(line * (6 * 1024 * 1024 // len(line) + 1))
            f.flush()
            t = self.session(["big@example.com"], "news@shop.example", STRANGER,
                             body="@" + f.name)
        m = re.search(r"(?m)^\s*<\*\*\s+(552 .*)$", t)
        self.assertTrue(m, "no 552:\n" + t[-2000:] + self.context())
        self.assertRegex(m.group(1), r"^552 5\.3\.4 <END-OF-MESSAGE>: End-of-data rejected: "
                         r"message of \d+ bytes too big; at most 5 MB from outside$")
        self.decision("access end_of_message big !internal_nets !authenticated too_big",
                      "action=552")


if __name__ == "__main__":
    unittest.main()
