"""Restriction classes and restriction names answered by mxacld, applied by
a real Postfix: main.cf defines two classes in smtpd_restriction_classes,
the policy declares them (set restriction_classes) and answers them, and
Postfix runs them. The client is 127.0.0.1, inside mynetworks, so without
the policy's answer permit_mynetworks would let every recipient through:
a "Relay access denied" or the class's own reject shows that Postfix
applied what mxacld named."""
import unittest

import postfix as pf

DOMAIN = "relay.invalid"

CONF = """
set restriction_classes relay_only, sender_check
acl outside   recipient @elsewhere.example
acl from_bad  sender bad@client.test
acl builtin   recipient builtin@other.example
action only_relay   relay_only
action check_sender sender_check
action unauth       reject_unauth_destination
access builtin unauth
access outside only_relay
access from_bad check_sender
"""


class RestrictionClassThroughPostfix(pf.PostfixPolicyCase):
    @classmethod
    def setUpClass(cls):
        pf.require()
        cls.start(cls.start_servers)

    @classmethod
    def start_servers(cls):
        listen = "inet:127.0.0.1:%d" % pf.free_port()
        cls.policy = pf.start_mxacld(CONF, listen)
        cls.postfix = pf.PrivatePostfix(listen, main={
            "relay_domains": DOMAIN,
            "smtpd_restriction_classes": "relay_only, sender_check",
            "relay_only": "reject_unauth_destination",
            "sender_check": "check_sender_access inline:{ { bad@client.test = "
                            "550 5.7.1 refused by the class sender_check } }",
        }).start()

    def rcpt(self, sender, rcpt):
        t = self.postfix.swaks("--from", sender, "--to", rcpt, "--quit-after", "RCPT")
        return self.postfix.reply_to(t, "RCPT TO")

    def test_class_answered_by_mxacld_is_applied(self):
        self.assertEqual(self.rcpt("ok@client.test", "x@elsewhere.example"),
                         "554 5.7.1 <x@elsewhere.example>: Relay access denied", self.context())
        # (decision lines are written at the end of mxacld's loop pass,
        # which may come after the reply)
        self.policy.d.wait_log(r"decision .*to=<x@elsewhere\.example> "
                               r".*rule=\S+:10 action=relay_only\n")

    def test_class_with_a_table_is_applied(self):
        self.assertEqual(self.rcpt("bad@client.test", "someone@" + DOMAIN),
                         "550 5.7.1 <bad@client.test>: Sender address rejected: refused by "
                         "the class sender_check", self.context())

    def test_builtin_restriction_name_is_applied(self):
        self.assertEqual(self.rcpt("ok@client.test", "builtin@other.example"),
                         "554 5.7.1 <builtin@other.example>: Relay access denied",
                         self.context())

    def test_other_mail_passes(self):
        got = self.rcpt("ok@client.test", "someone@" + DOMAIN)
        self.assertTrue(got.startswith("250 "), got + self.context())
        # the same recipient outside the relay domain, no policy line: mynetworks
        got = self.rcpt("ok@client.test", "y@unlisted.example")
        self.assertTrue(got.startswith("250 "), got + self.context())


if __name__ == "__main__":
    unittest.main()
