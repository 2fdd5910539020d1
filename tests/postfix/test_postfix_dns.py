"""DNS lists and SPF end to end: swaks talks SMTP to a private Postfix on
loopback, whose smtpd asks mxacld, which asks a private unbound (tests/lib/
dnsserver.py) for an RBL listing and SPF records. Postfix lets swaks set the
client address with XCLIENT (smtpd_authorized_xclient_hosts), so clients
can be listed, or fail SPF, while the connection comes from 127.0.0.1
(libspf2 passes loopback clients)."""
import re
import unittest

import postfix as pf
from dnsserver import DnsServer

DOMAIN = "relay.invalid"
Z = "spf.mxacl.example"
RECORDS = [
    '2.0.0.11.bl.mxacl.example. 300 IN A 127.0.0.2',
    '2.0.0.11.bl.mxacl.example. 300 IN TXT "listed for testing"',
    'ip4.%s. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"' % Z,
]
ZONES = ["bl.mxacl.example.", Z + "."]

CONF = """
acl listed   rbl bl.mxacl.example
acl spf_fail spf fail
acl spf_seen spf pass softfail neutral none
action rej_listed REJECT 5.7.1 ${client_address} is listed at ${rbl_zone}: ${rbl_txt}
action rej_spf    REJECT 5.7.23 SPF ${spf_result} for ${sender}
action spf_hdr    PREPEND Received-SPF: ${spf_received}
access listed rej_listed
access spf_fail rej_spf
access spf_seen spf_hdr
"""


class DnsThroughPostfix(pf.PostfixPolicyCase):
    @classmethod
    def setUpClass(cls):
        pf.require()
        cls.start(cls.start_servers)

    @classmethod
    def start_servers(cls):
        cls.dns = DnsServer(records=RECORDS, zones=ZONES).start()
        listen = "inet:127.0.0.1:%d" % pf.free_port()
        cls.policy = pf.start_mxacld(CONF, listen, extra_args=["--dns", cls.dns.server])
        cls.postfix = pf.PrivatePostfix(listen, main={
            "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
            "relay_domains": DOMAIN,
        }).start()

    def smtp(self, client, sender, *extra):
        return self.postfix.swaks("--xclient-addr", client, "--from", sender,
                                  "--to", "someone@" + DOMAIN, *extra)

    def test_listed_client_rejected_with_the_lists_text(self):
        t = self.smtp("11.0.0.2", "a@elsewhere.example", "--quit-after", "RCPT")
        got = self.postfix.reply_to(t, "RCPT TO")
        self.assertEqual(got, "554 5.7.1 <someone@%s>: Recipient address rejected: "
                         "11.0.0.2 is listed at bl.mxacl.example: listed for testing" % DOMAIN,
                         self.context())

    def test_spf_fail_rejected(self):
        t = self.smtp("198.18.0.1", "u@ip4." + Z, "--quit-after", "RCPT")
        got = self.postfix.reply_to(t, "RCPT TO")
        self.assertEqual(got, "554 5.7.23 <someone@%s>: Recipient address rejected: "
                         "SPF fail for u@ip4.%s" % (DOMAIN, Z), self.context())

    def test_spf_pass_prepends_received_spf(self):
        t = self.smtp("192.0.2.7", "u@ip4." + Z, "--header", "Subject: spf",
                      "--body", "mxacl SPF end-to-end test\n")
        m = re.search(r"<-\s+250 .*queued as ([0-9A-Za-z]+)", t)
        self.assertTrue(m, "message not queued:\n%s%s" % (t, self.context()))
        qid = m.group(1)
        self.postfix.wait_queued(qid)
        headers = self.postfix.postcat(qid, "-h")
        spf = [l for l in headers.splitlines() if l.startswith("Received-SPF:")]
        self.assertEqual(len(spf), 1, headers)
        self.assertRegex(spf[0], r"^Received-SPF: pass \(.*designates 192\.0\.2\.7 as permitted "
                         r"sender\) client-ip=192\.0\.2\.7; envelope-from=u@ip4\.%s; "
                         r"helo=client\.test;$" % re.escape(Z))


if __name__ == "__main__":
    unittest.main()
