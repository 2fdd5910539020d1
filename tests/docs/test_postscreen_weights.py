"""conf.d/examples/postscreen-weights.conf through mxacld, its DNS lists
served by a private unbound on loopback: postscreen's weighted sum with
threshold 3 (listed, unlisted, allowlisted clients) and the "listed in at
least 2 of these 5 lists" rule, one score acl."""
import os
import unittest

from dnsserver import DnsServer
from mxtest import Mxacld

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POLICY = os.path.join(ROOT, "conf.d", "examples", "postscreen-weights.conf")

ZONES = ["zen.spamhaus.org", "b.barracudacentral.org", "bl.spameatingmonkey.net",
         "bl.spamcop.net", "dnsbl.sorbs.net", "psbl.surriel.com", "bl.mailspike.net",
         "list.dnswl.org"]
LISTINGS = {    # last octet of 192.0.2.N: the zones that list it (answer)
    2: [("zen.spamhaus.org", "127.0.0.2")],
    3: [("b.barracudacentral.org", "127.0.0.2")],
    4: [("b.barracudacentral.org", "127.0.0.2"), ("bl.spamcop.net", "127.0.0.2")],
    5: [("zen.spamhaus.org", "127.0.0.4"), ("list.dnswl.org", "127.0.15.2")],
    6: [("list.dnswl.org", "127.0.15.3")],
    7: [("zen.spamhaus.org", "127.0.0.2"), ("list.dnswl.org", "127.0.0.255")],
    8: [("zen.spamhaus.org", "127.0.0.2"), ("list.dnswl.org", "127.0.15.0")],
    9: [("bl.spamcop.net", "127.0.0.2"), ("psbl.surriel.com", "127.0.0.2")],
    10: [("bl.spamcop.net", "127.0.0.2"), ("psbl.surriel.com", "127.0.0.2"),
         ("list.dnswl.org", "127.0.9.1")],
    11: [("bl.spameatingmonkey.net", "127.0.0.2"), ("dnsbl.sorbs.net", "127.0.0.10")],
    12: [("bl.mailspike.net", "127.0.0.2")],
}
RECORDS = ["%d.2.0.192.%s. 300 IN A %s" % (n, zone, a)
           for n, ls in LISTINGS.items() for zone, a in ls]

BLOCKED = "550 5.7.1 Service unavailable; client [192.0.2.%d] blocked using DNSBLs"
TWICE = "450 4.7.1 Client [192.0.2.%d] listed in %s of 5 DNSBLs"


class PostscreenWeights(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dns = DnsServer(records=RECORDS, zones=ZONES).start()
        with open(POLICY) as f:
            cls.d = Mxacld(f.read(), extra_args=["--dns", cls.dns.server])
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.d.cleanup()
        cls.dns.cleanup()

    def ask(self, n):
        return self.d.query({"request": "smtpd_access_policy", "protocol_state": "RCPT",
                             "client_address": "192.0.2.%d" % n, "client_name": "unknown",
                             "sender": "a@example.com", "recipient": "b@example.org"},
                            timeout=20)

    def test_unlisted_passes(self):
        self.assertEqual(self.ask(1), "action=DUNNO")

    def test_zen_alone_reaches_the_threshold(self):
        self.assertEqual(self.ask(2), "action=" + BLOCKED % 2 + " (score 3: zen*3)")

    def test_barracuda_alone_does_not(self):
        self.assertEqual(self.ask(3), "action=DUNNO")

    def test_two_lists_add_up(self):
        self.assertEqual(self.ask(4), "action=" + BLOCKED % 4
                         + " (score 3: barracuda*2 spamcop*1)")

    def test_dnswl_lowers_the_sum(self):
        self.assertEqual(self.ask(5), "action=DUNNO")      # 3 - 2 = 1
        self.assertEqual(self.ask(6), "action=DUNNO")      # allowlisted only: -2

    def test_dnswl_refusal_is_no_allowlisting(self):
        # 127.0.0.255 (dnswl.org refusing the resolver) is outside postscreen's range
        self.assertEqual(self.ask(7), "action=" + BLOCKED % 7
                         + " (score 3: zen*3 dnswl*-2 dnswl_refused*2)")

    def test_dnswl_trust_0_is_outside_the_range(self):
        self.assertEqual(self.ask(8), "action=" + BLOCKED % 8 + " (score 3: zen*3)")

    def test_two_of_five(self):
        self.assertEqual(self.ask(9), "action=" + TWICE % (9, "2")
                         + " (spamcop*1 psbl*1), try again later")
        self.assertEqual(self.ask(12), "action=DUNNO")     # one of the five
        # the threshold decides first: sem*2 + sorbs = 3
        self.assertTrue(self.ask(11).startswith("action=" + BLOCKED % 11))

    def test_two_of_five_spares_the_allowlisted(self):
        self.assertEqual(self.ask(10), "action=DUNNO")


if __name__ == "__main__":
    unittest.main()
