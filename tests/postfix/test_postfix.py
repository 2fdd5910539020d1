"""End to end through a real Postfix: swaks talks SMTP to a private Postfix
on loopback, whose smtpd asks mxacld (check_policy_service) over TCP and
over a unix socket in the queue directory; the tests assert what an SMTP
client sees and what lands in the queue.

    tests/run postfix
    MXACL_POSTFIX_FAKE=1 tests/run postfix   # the harness against a tiny
                                             # Python policy server instead

The daemon under test is $MXACL_BUILD/mxacld (default build/asan). The
Postfix instance and its restrictions are described in tests/lib/postfix.py:
smtpd_recipient_restrictions = check_policy_service SERVICE, MARKER,
permit_mynetworks, reject_unauth_destination, where MARKER rejects the
"ok" and "dunno" recipients with 550 5.7.9 if it is ever reached, so an OK
from the policy (which ends the list) is told apart from a DUNNO (which
goes on to the next restriction).
"""
import os
import re
import stat
import unittest

import postfix as pf

DOMAIN = "relay.invalid"
MARKER_REPLY = "550 5.7.9 reached the restriction after the policy"
MARKER = "check_recipient_access inline:{{ok@%s=%s}, {dunno@%s=%s}}" % (
    DOMAIN, MARKER_REPLY, DOMAIN, MARKER_REPLY)

# recipient local part -> the action mxacl answers for it
RULES = [
    ("ok", "OK"),
    ("reject", "REJECT refused by the mxacl test policy"),
    ("defer", "DEFER_IF_PERMIT try again later (mxacl test)"),
    ("code", "550 5.7.2 custom refusal from mxacl"),
    ("hold", "HOLD parked by mxacl"),
    ("prepend", "PREPEND X-Mxacl-Test: tagged ${client_address} for ${recipient}"),
]


def policy_conf():
    """policy.conf with one acl, one action and one access line per rule;
    every other recipient falls through to the default, DUNNO."""
    out = ["# mxacl end-to-end test policy (tests/postfix/test_postfix.py)"]
    for name, _ in RULES:
        out.append("acl to_%s recipient %s@%s" % (name, name, DOMAIN))
    for name, act in RULES:
        out.append("action do_%s %s" % (name, act))
    for name, _ in RULES:
        out.append("access to_%s do_%s" % (name, name))
    return "\n".join(out) + "\n"


def fake_decide(attrs):
    """What policy_conf() decides, for the harness self-check."""
    local = attrs.get("recipient", "").lower()
    for name, act in RULES:
        if local == "%s@%s" % (name, DOMAIN):
            return re.sub(r"\$\{(\w+)\}", lambda m: attrs.get(m.group(1), ""), act)
    return "DUNNO"


def use_fake():
    return os.environ.get("MXACL_POSTFIX_FAKE") == "1"


class PolicyThroughPostfix:
    """The cases, run once per way Postfix reaches the policy server.
    Subclasses set up cls.postfix (PrivatePostfix) and cls.policy (an
    object with stop() and log_text())."""

    postfix = None
    policy = None

    @classmethod
    def setUpClass(cls):
        pf.require(mxacld=not use_fake())
        try:
            cls.start_servers()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.postfix:
            cls.postfix.stop()
            left = pf.pids_alive(cls.postfix.own_pids())
            cls.postfix = None
            assert not left, "Postfix processes left after stop: %s" % left
        if cls.policy:
            cls.policy.stop()
            cls.policy = None

    def context(self):
        """Logs to show when an assertion fails."""
        return "\n--- policy server log:\n%s\n--- Postfix maillog (end):\n%s" % (
            self.policy.log_text()[-4000:], self.postfix.log_text()[-4000:])

    def assert_rcpt(self, local, want):
        got = self.postfix.rcpt_reply("%s@%s" % (local, DOMAIN))
        self.assertEqual(got, want, "RCPT TO:<%s@%s>: got %r, want %r%s" % (
            local, DOMAIN, got, want, self.context()))

    def test_ok_accepts_and_ends_the_restrictions(self):
        got = self.postfix.rcpt_reply("ok@" + DOMAIN)
        self.assertTrue(got.startswith("250 "), "got %r, want 250%s" % (got, self.context()))

    def test_dunno_goes_on_to_the_next_restriction(self):
        # the same marker that OK skipped rejects a recipient the policy
        # does not decide: proves the 250 above came from OK
        self.assert_rcpt("dunno", "%s <dunno@%s>: Recipient address rejected: %s" % (
            MARKER_REPLY[:9], DOMAIN, MARKER_REPLY[10:]))

    def test_unmatched_recipient_is_accepted_by_mynetworks(self):
        got = self.postfix.rcpt_reply("anyone@" + DOMAIN)
        self.assertTrue(got.startswith("250 "), "got %r, want 250%s" % (got, self.context()))

    def test_reject_with_text(self):
        self.assert_rcpt("reject", "554 5.7.1 <reject@%s>: Recipient address rejected: "
                         "refused by the mxacl test policy" % DOMAIN)

    def test_defer_if_permit(self):
        # permit_mynetworks permits later, so the deferral takes effect
        self.assert_rcpt("defer", "450 4.7.1 <defer@%s>: Recipient address rejected: "
                         "try again later (mxacl test)" % DOMAIN)

    def test_code_with_enhanced_status(self):
        self.assert_rcpt("code", "550 5.7.2 <code@%s>: Recipient address rejected: "
                         "custom refusal from mxacl" % DOMAIN)

    def test_hold_puts_the_message_in_the_hold_queue(self):
        qid = self.postfix.send_message("hold@" + DOMAIN)
        m = self.postfix.wait_queued(qid)
        self.assertEqual(m.get("queue_name"), "hold", "got %r%s" % (m, self.context()))
        # smtpd logs the policy's reason (the maillog is written a moment later)
        pf.wait_for("the HOLD reason in the maillog",
                    lambda: "parked by mxacl" in self.postfix.log_text())

    def test_prepend_adds_the_header_with_attributes_expanded(self):
        qid = self.postfix.send_message("prepend@" + DOMAIN)
        m = self.postfix.wait_queued(qid)
        self.assertNotEqual(m.get("queue_name"), "hold")
        headers = self.postfix.postcat(qid, "-h")
        want = "X-Mxacl-Test: tagged 127.0.0.1 for prepend@%s" % DOMAIN
        self.assertIn(want, headers.splitlines(),
                      "header %r not in queued message:\n%s%s" % (want, headers,
                                                                  self.context()))


class InetPolicyTest(PolicyThroughPostfix, unittest.TestCase):
    """check_policy_service inet:127.0.0.1:PORT"""

    @classmethod
    def start_servers(cls):
        listen = "inet:127.0.0.1:%d" % pf.free_port()
        if use_fake():
            cls.policy = pf.FakePolicy(fake_decide, listen).start()
        else:
            cls.policy = pf.start_mxacld(policy_conf(), listen)
        cls.postfix = pf.PrivatePostfix(listen, marker=MARKER).start()


class UnixPolicyTest(PolicyThroughPostfix, unittest.TestCase):
    """check_policy_service unix:private/mxacl, the socket in the instance's
    queue directory, owned by postfix with mode 0660 as a real
    installation would have it (smtpd runs as user postfix, no chroot)."""

    @classmethod
    def start_servers(cls):
        # Postfix first: "postfix start" creates QUEUEDIR/private
        cls.postfix = pf.PrivatePostfix("unix:private/mxacl", marker=MARKER).start()
        cls.sock = os.path.join(cls.postfix.queuedir, "private", "mxacl")
        listen = "unix:" + cls.sock
        if use_fake():
            cls.policy = pf.FakePolicy(fake_decide, listen).start()
        else:
            cls.policy = pf.start_mxacld(policy_conf(), listen, extra_args=[
                "--socket-mode", "0660", "--socket-owner", "postfix:postfix"])

    def test_socket_mode_and_owner(self):
        st = os.stat(self.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        if not use_fake():
            import pwd
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o660,
                             "mode %o, want 660" % stat.S_IMODE(st.st_mode))
            self.assertEqual(st.st_uid, pwd.getpwnam("postfix").pw_uid)


if __name__ == "__main__":
    unittest.main()
