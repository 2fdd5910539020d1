"""What mxacl's resolver asks and in what order it hands answers on
(backends/dns.c, acl/dnslist.c), against a real unbound on loopback,
through `mxacl test --dns` and mxacld:

- names libunbound would answer itself (under test., home.arpa., the
  private reverse zones such as 10.in-addr.arpa) are asked of the
  configured server: a DNS list under test. lists, an SPF ptr: for a
  10.x client finds its name (issue 11, item 13);
- records keep the order the server gives: an SPF `mx` over eleven MX
  hosts whose TTL is 0 gives the same verdict on every request (libspf2
  looks at the first ten; libunbound used to rotate them) (item 14);
- a listed client costs one round trip to a DNS server 200 ms away,
  with and without ${rbl_txt}: the TXT record is asked only when an
  action reads ${rbl_txt}, and then beside the A query; lookups started
  ahead follow the same rule (item 15);
- answers outside 127.0.0.0/8 are dropped before any filter, and a filter
  that names such an answer is warned about at compile time (item 16).

"One round trip" is asserted from the proxy's log, not from a clock:
every query of the request reached the server before the first answer
left it. The times are printed, never compared."""
import re
import subprocess
import time
import unittest

import dnsserver
from mxtest import Mxacld, PolicyConn, mxacl_path

DELAY = 0.2


def req(ip, sender="a@sender.example", **kw):
    r = {"request": "smtpd_access_policy", "protocol_state": "RCPT",
         "client_address": ip, "client_name": "unknown", "helo_name": "mx.example",
         "sender": sender, "recipient": "b@dest.example"}
    r.update(kw)
    return r


# ---- item 13: the configured server decides, also for special-use names ----

LOCAL_RECORDS = [
    # a site's own list under test. (RFC 6761), as rbldnsd would serve it
    '2.0.0.127.bl.test. 300 IN A 127.0.0.2',
    '9.1.168.192.bl.test. 300 IN A 127.0.0.2',
    'spam.example.dbl.home.arpa. 300 IN A 127.0.1.2',
    # a private client whose PTR the site's resolver serves
    '3.2.1.10.in-addr.arpa. 300 IN PTR mail.corp.mxacl.example.',
    'mail.corp.mxacl.example. 300 IN A 10.1.2.3',
    'corp.mxacl.example. 300 IN TXT "v=spf1 ptr:corp.mxacl.example -all"',
]
LOCAL_ZONES = ["bl.test.", "dbl.home.arpa.", "2.1.10.in-addr.arpa.", "corp.mxacl.example."]


class TestSpecialUseNamesAreAsked(dnsserver.DnsCase):
    RECORDS, ZONES = LOCAL_RECORDS, LOCAL_ZONES

    CONF = """
acl listed rbl bl.test
acl baddom rhsbl dbl.home.arpa
acl spf_ok spf pass
acl spf_bad spf fail softfail neutral none permerror temperror
action rej REJECT listed at ${rbl_zone}
action rejdom REJECT domain listed at ${rbl_zone}
action ok PREPEND X-SPF: ${spf_result}
action bad REJECT spf ${spf_result}
access listed rej
access baddom rejdom
access spf_ok ok
access spf_bad bad
"""

    def test_rbl_under_test_and_home_arpa(self):
        got = self.mxacl_test(self.CONF, [
            req("127.0.0.2", sender=""),
            req("192.168.1.9", sender=""),
            req("192.0.2.1", sender="x@spam.example"),
        ])
        self.assertEqual(got, ["action=REJECT listed at bl.test",
                               "action=REJECT listed at bl.test",
                               "action=REJECT domain listed at dbl.home.arpa"])

    def test_spf_ptr_of_a_private_client(self):
        # 3.2.1.10.in-addr.arpa is answered by the server, so ptr: validates
        got = self.mxacl_test(self.CONF, [req("10.1.2.3", sender="a@corp.mxacl.example"),
                                          req("10.1.2.4", sender="a@corp.mxacl.example")])
        self.assertEqual(got, ["action=PREPEND X-SPF: pass", "action=REJECT spf fail"])
        deadline = time.monotonic() + 5     # unbound's log may lag behind its answer
        while time.monotonic() < deadline and not [
                l for l in self.dns.queries() if "3.2.1.10.in-addr.arpa. PTR" in l]:
            time.sleep(0.02)
        self.assertTrue([l for l in self.dns.queries() if "3.2.1.10.in-addr.arpa. PTR" in l],
                        "the PTR query never reached the server")


# ---- item 14: records in the order served -----------------------------------

MX_RECORDS = (
    # TTL 0: every lookup goes past our cache to libunbound's
    ['many.mxacl.example. 0 IN MX 10 mx%d.many.mxacl.example.' % i for i in range(1, 12)] +
    ['mx%d.many.mxacl.example. 300 IN A 192.0.2.%d' % (i, 100 + i) for i in range(1, 12)] +
    ['many.mxacl.example. 300 IN TXT "v=spf1 mx -all"'])


class TestRecordOrderIsKept(dnsserver.DnsCase):
    RECORDS, ZONES = MX_RECORDS, ["many.mxacl.example."]
    SERVER_OPTIONS = ["rrset-roundrobin: no"]   # the test server serves one order

    CONF = ("acl s spf pass fail softfail neutral none permerror temperror\n"
            "action r REJECT spf ${spf_result}\naccess s r\n")

    def test_mx_order_as_served(self):
        served = [host for _, (_, host) in dnsserver.query(self.dns.port, "many.mxacl.example",
                                                           "MX")]
        self.assertEqual(len(served), 11)
        self.assertEqual(served, [h for _, (_, h) in dnsserver.query(
            self.dns.port, "many.mxacl.example", "MX")], "the test server rotates")
        addr = {"mx%d.many.mxacl.example" % i: "192.0.2.%d" % (100 + i) for i in range(1, 12)}
        first, last = addr[served[0]], addr[served[-1]]
        n = 8
        got = self.mxacl_test(self.CONF, [req(first, sender="a@many.mxacl.example")] * n +
                              [req(last, sender="a@many.mxacl.example")] * n)
        # libspf2 checks the first ten MX hosts, then gives permerror for the
        # eleventh (RFC 7208 suite, mx-limit): the same on every lookup only
        # if the order is the server's. (The first host's verdict is pass
        # with libspf2 alone; a stricter SPF layer may make any list of more
        # than ten permerror: either way it must not change.)
        self.assertEqual(len(set(got[:n])), 1, got[:n])
        self.assertIn(got[0], ["action=REJECT spf pass", "action=REJECT spf permerror"])
        self.assertEqual(got[n:], ["action=REJECT spf permerror"] * n, served)


# ---- item 15: one round trip for a listed client ------------------------------

RT_RECORDS = [
    '10.2.0.192.one.mxacl.example. 300 IN A 127.0.0.2',
    '10.2.0.192.one.mxacl.example. 300 IN TXT "seen spamming"',
    '11.2.0.192.one.mxacl.example. 300 IN A 127.0.0.2',
    '11.2.0.192.one.mxacl.example. 300 IN TXT "seen spamming too"',
    '12.2.0.192.one.mxacl.example. 300 IN A 127.0.0.2',
    '12.2.0.192.one.mxacl.example. 300 IN TXT "seen again"',
    '13.2.0.192.two.mxacl.example. 300 IN A 127.0.0.3',
    '13.2.0.192.two.mxacl.example. 300 IN TXT "two says no"',
    '14.2.0.192.two.mxacl.example. 300 IN A 127.0.0.3',
    '14.2.0.192.two.mxacl.example. 300 IN TXT "two says no again"',
]
RT_ZONES = ["one.mxacl.example.", "two.mxacl.example.", "three.mxacl.example."]


class TestOneRoundTrip(dnsserver.DnsCase):
    RECORDS, ZONES = RT_RECORDS, RT_ZONES

    def through_slow_dns(self, conf, ip):
        """One request through mxacld whose DNS server is DELAY away:
        (reply, seconds, [(arrived, answered, qname, qtype)] of its queries)."""
        with dnsserver.DelayProxy(self.dns.port, DELAY) as slow:
            with Mxacld(conf, extra_args=["--dns", slow.server]) as d:
                with PolicyConn(d.endpoint, timeout=30) as c:
                    t0 = time.monotonic()
                    reply = c.request(req(ip))
                    secs = time.monotonic() - t0
                log = d.log_text()
            events = slow.events()
        self.assertNotIn("Sanitizer", log)
        rev = ".".join(reversed(ip.split(".")))
        mine = [e for e in events if e[2].startswith(rev + ".")]
        print("\n%s: %.3f s, queries %s" % (self.id().split(".")[-1], secs,
                                          ["%s %s" % (e[2], e[3]) for e in mine]), flush=True)
        return reply, secs, mine

    def assert_one_round_trip(self, events):
        self.assertTrue(events)
        answered = [e[1] for e in events if e[1] is not None]
        self.assertTrue(answered, events)
        last_asked = max(e[0] for e in events)
        self.assertLess(last_asked, min(answered),
                        "a query was sent after an answer came back (a second round "
                        "trip): %s" % [(round(e[0] - events[0][0], 3), e[2], e[3])
                                       for e in events])

    def test_listed_without_rbl_txt_asks_no_txt(self):
        conf = ("acl bl rbl one.mxacl.example\n"
                "action rej REJECT 5.7.1 listed at ${rbl_zone} (${rbl_answer})\n"
                "access bl rej\n")
        reply, _, events = self.through_slow_dns(conf, "192.0.2.10")
        self.assertEqual(reply, "action=REJECT 5.7.1 listed at one.mxacl.example (127.0.0.2)")
        self.assertEqual(sorted(e[3] for e in events), ["A"], events)
        self.assert_one_round_trip(events)

    def test_listed_with_rbl_txt_asks_both_at_once(self):
        conf = ("acl bl rbl one.mxacl.example\n"
                "action rej REJECT 5.7.1 ${rbl_txt}\n"
                "access bl rej\n")
        reply, _, events = self.through_slow_dns(conf, "192.0.2.11")
        self.assertEqual(reply, "action=REJECT 5.7.1 seen spamming too")
        self.assertEqual(sorted(e[3] for e in events), ["A", "TXT"], events)
        self.assert_one_round_trip(events)

    def test_rbl_txt_in_an_unreached_action_still_counts(self):
        # an action that names ${rbl_txt} anywhere in the program makes the
        # text wanted (the compiler does not follow which line uses which)
        conf = ("acl bl rbl one.mxacl.example\nacl never client_address 10.9.9.9\n"
                "action rej REJECT 5.7.1 listed\n"
                "action other REJECT ${rbl_txt}\n"
                "access never other\naccess bl rej\n")
        reply, _, events = self.through_slow_dns(conf, "192.0.2.12")
        self.assertEqual(reply, "action=REJECT 5.7.1 listed")
        self.assertEqual(sorted(e[3] for e in events), ["A", "TXT"], events)
        self.assert_one_round_trip(events)

    def test_started_ahead_with_rbl_txt(self):
        # the request first waits on line 1 (zone three: unlisted), which
        # starts line 2's lookups ahead: its TXT too, so that nothing is
        # left to ask when line 1's answer comes (${rbl_txt} is read, so
        # line 1 asks its TXT beside its A as well)
        conf = ("acl l1 rbl three.mxacl.example\nacl l2 rbl two.mxacl.example\n"
                "action rej1 REJECT three\n"
                "action rej2 REJECT 5.7.1 ${rbl_zone}: ${rbl_txt}\n"
                "access l1 rej1\naccess l2 rej2\n")
        reply, _, events = self.through_slow_dns(conf, "192.0.2.13")
        self.assertEqual(reply, "action=REJECT 5.7.1 two.mxacl.example: two says no")
        self.assertEqual(sorted((e[2].split(".")[4], e[3]) for e in events),
                         [("three", "A"), ("three", "TXT"), ("two", "A"), ("two", "TXT")],
                         events)
        self.assert_one_round_trip(events)

    def test_started_ahead_without_rbl_txt(self):
        conf = ("acl l1 rbl three.mxacl.example\nacl l2 rbl two.mxacl.example\n"
                "action rej1 REJECT three\n"
                "action rej2 REJECT 5.7.1 ${rbl_zone} ${rbl_answer}\n"
                "access l1 rej1\naccess l2 rej2\n")
        reply, _, events = self.through_slow_dns(conf, "192.0.2.14")
        self.assertEqual(reply, "action=REJECT 5.7.1 two.mxacl.example 127.0.0.3")
        self.assertEqual(sorted((e[2].split(".")[4], e[3]) for e in events),
                         [("three", "A"), ("two", "A")], events)
        self.assert_one_round_trip(events)


# ---- item 16: answers outside 127.0.0.0/8 ------------------------------------

OUT_RECORDS = [
    '5.2.0.192.bl.mxacl.example. 300 IN A 192.0.2.99',
    '6.2.0.192.bl.mxacl.example. 300 IN A 192.0.2.99',
    '6.2.0.192.bl.mxacl.example. 300 IN A 127.0.0.4',
]


class TestAnswersOutside127(dnsserver.DnsCase):
    RECORDS, ZONES = OUT_RECORDS, ["bl.mxacl.example."]

    def test_dropped_before_every_filter(self):
        conf = ("acl plain rbl bl.mxacl.example\n"
                "acl eq rbl bl.mxacl.example=192.0.2.99\n"
                "acl ne rbl bl.mxacl.example!=127.0.0.2\n"
                "action r1 REJECT plain ${rbl_answer}\n"
                "action r2 REJECT eq\n"
                "action r3 REJECT ne ${rbl_answer}\n"
                "access eq r2\naccess ne r3\naccess plain r1\n")
        got = self.mxacl_test(conf, [req("192.0.2.5"), req("192.0.2.6")])
        # Exim would match "eq" and "ne" for 192.0.2.5 (its = compares the
        # answer, its != counts it as "not 127.0.0.2"); mxacl drops it first
        self.assertEqual(got, ["action=DUNNO", "action=REJECT ne 127.0.0.4"])

    def test_filter_outside_127_is_warned(self):
        conf = ("acl eq rbl bl.mxacl.example=127.0.0.2,192.0.2.99\n"
                "acl ok rbl bl.mxacl.example&0.0.0.2\n"
                "action r REJECT\naccess eq r\naccess ok r\n")
        path = self.write_conf(conf)
        p = subprocess.run([mxacl_path(), "check", "-c", path], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout + p.stderr
        self.assertRegex(out, r"policy\.conf:1:\d+: warning: 'bl\.mxacl\.example=127\.0\.0\.2,"
                         r"192\.0\.2\.99' names 192\.0\.2\.99, outside 127\.0\.0\.0/8")
        self.assertEqual(len(re.findall("warning:", out)), 1, out)


if __name__ == "__main__":
    unittest.main()
