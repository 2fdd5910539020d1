"""Lookups started ahead (postscreen style) and the seeds' policy end to
end, against a real unbound on loopback:

- when a request first waits, the DNS queries of every acl on a line still
  ahead are sent too: unbound receives them even when an earlier line
  decides, and a request that never waits sends none;
- "greylist clients from listed countries; reject clients in an RBL whose
  country is unusual", through mxacld with a MaxMind DB written by the
  test and the memory store."""
import os
import re
import subprocess
import time
import unittest

import dnsserver
from mxtest import Mxacld, PolicyConn, ROOT

MKMMDB = os.path.join(ROOT, "tests", "lib", "mkmmdb.pl")

RECORDS = [
    # 192.0.2.10 (DE) and 198.51.100.10 (CN) and 203.0.113.10 (BR) listed in one
    '10.2.0.192.one.mxacl.example. 300 IN A 127.0.0.2',
    '10.100.51.198.one.mxacl.example. 300 IN A 127.0.0.2',
    '10.100.51.198.one.mxacl.example. 300 IN TXT "seen spamming"',
    '10.113.0.203.two.mxacl.example. 300 IN A 127.0.0.3',
]
ZONES = ["one.mxacl.example.", "two.mxacl.example.", "three.mxacl.example."]


def req(ip, sender="a@sender.example", rcpt="b@dest.example"):
    return {"request": "smtpd_access_policy", "protocol_state": "RCPT",
            "client_address": ip, "client_name": "unknown", "helo_name": "mx.example",
            "sender": sender, "recipient": rcpt}


class DnsTestCase(dnsserver.DnsCase):
    RECORDS, ZONES = RECORDS, ZONES
    FRESH_SERVER = True     # queries are counted per test

    def asked(self, name):
        """How many times unbound was asked for name's A record (its query log)."""
        return sum(1 for l in self.dns.queries() if (" %s. A IN" % name) in l)

    def wait_asked(self, name, timeout=5.0):
        deadline = time.monotonic() + timeout
        while self.asked(name) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.asked(name)


class TestPrefetch(DnsTestCase):
    CONF = """
acl local client_address 10.0.0.0/8
acl l1 rbl one.mxacl.example
acl l2 rbl two.mxacl.example
acl l3 rbl three.mxacl.example
action ok OK
action rej1 REJECT one
action rej2 REJECT two
action rej3 REJECT three
access local ok
access l1 rej1
access l2 rej2
access l3 rej3
"""

    def run_test(self, reqs):
        p = self.mxacl_test_run(self.CONF, reqs, ["--explain"])
        return p.stdout.split("\n\n")[:-1], p.stderr

    def test_lines_ahead_are_asked_at_the_first_wait(self):
        out, trace = self.run_test([req("192.0.2.10")])
        self.assertEqual(out, ["action=REJECT one"])
        # the trace says which lookups started ahead ...
        self.assertRegex(trace, r"acl l2 \(.*:4\) rbl: lookups started ahead")
        self.assertRegex(trace, r"acl l3 \(.*:5\) rbl: lookups started ahead")
        self.assertNotIn("acl l1 (", trace.split("answered")[0].split("ahead")[0][-80:])
        # ... and unbound received them, though line 1 decided
        self.assertEqual(self.wait_asked("10.2.0.192.one.mxacl.example"), 1)
        self.assertEqual(self.wait_asked("10.2.0.192.two.mxacl.example"), 1)
        self.assertEqual(self.wait_asked("10.2.0.192.three.mxacl.example"), 1)

    def test_request_that_never_waits_sends_nothing(self):
        out, trace = self.run_test([req("10.1.2.3")])
        self.assertEqual(out, ["action=OK"])
        self.assertNotIn("started ahead", trace)
        time.sleep(0.2)       # nothing should arrive; give a stray query time to show
        self.assertEqual([l for l in self.dns.queries() if "3.2.1.10." in l], [])

    def test_each_name_asked_once(self):
        # the acl's own lookup meets the one started ahead (merged in flight
        # or answered from the cache): one query per zone
        out, _ = self.run_test([req("192.0.2.77")])
        self.assertEqual(out, ["action=DUNNO"])
        for z in ("one", "two", "three"):
            self.assertEqual(self.wait_asked("77.2.0.192.%s.mxacl.example" % z), 1, z)


class TestSeedsPolicy(DnsTestCase):
    """The seeds' gateways: greylist clients from listed countries; reject
    clients listed in an RBL whose country is unusual."""

    NETS = ["192.0.2.0/24=DE:EU", "198.51.100.0/24=CN:AS", "203.0.113.0/24=BR:SA",
            "2001:db8::/32=FR:EU"]

    def conf(self, mmdb):
        return """
set geoip %s
acl usual    country DE FR US continent:eu
acl watched  country CN BR
acl listed   rbl one.mxacl.example two.mxacl.example
acl grey     greylist delay=1
action rej   REJECT 5.7.1 ${client_address} is listed at ${rbl_zone}
action wait  DEFER_IF_PERMIT 4.7.1 greylisted, retry in ${greylist_remaining}s
access listed !usual rej
access watched grey wait
""" % mmdb

    def test_end_to_end_through_mxacld(self):
        mmdb = os.path.join(self.tmp, "geo.mmdb")
        subprocess.run(["perl", MKMMDB, mmdb] + self.NETS, check=True)
        with Mxacld(self.conf(mmdb), extra_args=["--dns", self.dns.server]) as d:
            with PolicyConn(d.endpoint) as c:
                # listed, but from a usual country (DE): not rejected, not watched
                self.assertEqual(c.request(req("192.0.2.10")), "action=DUNNO")
                # listed and unusual (CN): rejected, not greylisted
                self.assertEqual(c.request(req("198.51.100.10")),
                                 "action=REJECT 5.7.1 198.51.100.10 is listed at one.mxacl.example")
                # listed in the second zone and unusual (BR)
                self.assertEqual(c.request(req("203.0.113.10")),
                                 "action=REJECT 5.7.1 203.0.113.10 is listed at two.mxacl.example")
                # unlisted, watched country: greylisted, then passes after the delay
                first = c.request(req("198.51.100.20"))
                self.assertRegex(first, r"^action=DEFER_IF_PERMIT 4\.7\.1 greylisted, retry in [01]s$")
                time.sleep(1.2)
                self.assertEqual(c.request(req("198.51.100.20")), "action=DUNNO")
                # a new triplet from the same client waits again
                self.assertTrue(c.request(req("198.51.100.20", rcpt="other@dest.example"))
                                .startswith("action=DEFER_IF_PERMIT"))
                # unlisted, unknown to the database (not watched): accepted
                self.assertEqual(c.request(req("11.1.1.1")), "action=DUNNO")
                # IPv6 from a usual country
                self.assertEqual(c.request(req("2001:db8::1")), "action=DUNNO")
            log = d.wait_log(r"decision ", count=8)
        self.assertNotIn("error", log)
        decisions = re.findall(r"decision .* rule=(\S+) action=(\S+)", log)
        self.assertEqual([a for _, a in decisions],
                         ["DUNNO", "REJECT", "REJECT", "DEFER_IF_PERMIT", "DUNNO",
                          "DEFER_IF_PERMIT", "DUNNO", "DUNNO"])


if __name__ == "__main__":
    unittest.main()
