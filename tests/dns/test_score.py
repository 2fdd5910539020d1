"""Scores over DNS lists, against a real unbound on loopback behind a
DelayProxy (a DNS server DELAY away):

- a score over five rbl acls sends all five queries before any answer
  comes back (one round trip, not five), through mxacld, and answers
  "listed in at least 2 of these 5 lists" in one acl;
- a score on a later line has its terms' lookups started ahead when the
  request first waits on an earlier line (the score's prefetch hook);
- a term whose lookup fails (a zone that never answers) follows its
  acl's tempfail=: the score is computed without it and says so in
  ${score_missing} and in --explain; with tempfail=default the request
  gets the default action."""
import re
import time
import unittest

import dnsserver
from mxtest import Mxacld, PolicyConn

DELAY = 0.25
ZONES = ["l%d.mxacl.example." % i for i in range(1, 6)]
RECORDS = [
    # 192.0.2.10 is in l2 and l4; 192.0.2.11 in l1 only; 192.0.2.12 in all five
    '10.2.0.192.l2.mxacl.example. 300 IN A 127.0.0.2',
    '10.2.0.192.l4.mxacl.example. 300 IN A 127.0.0.2',
    '11.2.0.192.l1.mxacl.example. 300 IN A 127.0.0.2',
] + ['12.2.0.192.l%d.mxacl.example. 300 IN A 127.0.0.2' % i for i in range(1, 6)]

LISTS = "".join("acl l%d rbl l%d.mxacl.example\n" % (i, i) for i in range(1, 6))

TWO_OF_FIVE = LISTS + """
acl two_of_five score l1 l2 l3 l4 l5 >= 2
action rej REJECT 5.7.1 listed in ${score} of 5 lists: ${score_hits}
access two_of_five rej
"""


def req(ip):
    return {"request": "smtpd_access_policy", "protocol_state": "RCPT",
            "client_address": ip, "client_name": "unknown", "helo_name": "mx.example",
            "sender": "a@sender.example", "recipient": "b@dest.example"}


class TestScoreDns(dnsserver.DnsCase):
    RECORDS, ZONES = RECORDS, ZONES

    def through_slow_dns(self, conf, ips):
        """Requests through mxacld whose DNS server is DELAY away: the
        replies, and per request the proxy's events for its names."""
        with dnsserver.DelayProxy(self.dns.port, DELAY) as slow:
            with Mxacld(conf, extra_args=["--dns", slow.server]) as d:
                with PolicyConn(d.endpoint, timeout=30) as c:
                    replies = [c.request(req(ip)) for ip in ips]
                log = d.wait_log(r"decision ", count=len(ips))
            events = slow.events()
        self.assertNotIn("Sanitizer", log)
        per_ip = []
        for ip in ips:
            rev = ".".join(reversed(ip.split("."))) + "."
            per_ip.append([e for e in events if e[2].startswith(rev)])
        return replies, per_ip, log

    def assert_one_round_trip(self, events, want):
        self.assertEqual(sorted(e[2].split(".", 4)[4] for e in events), sorted(want), events)
        answered = [e[1] for e in events if e[1] is not None]
        self.assertEqual(len(answered), len(events), events)
        last_asked = max(e[0] for e in events)
        self.assertLess(last_asked, min(answered),
                        "a query was sent after an answer came back (a second round "
                        "trip): %s" % [(round(e[0] - events[0][0], 3), e[2], e[3])
                                       for e in events])

    def test_two_of_five_waits_one_round_trip(self):
        replies, per_ip, log = self.through_slow_dns(
            TWO_OF_FIVE, ["192.0.2.10", "192.0.2.11", "192.0.2.12"])
        self.assertEqual(replies, ["action=REJECT 5.7.1 listed in 2 of 5 lists: l2*1 l4*1",
                                   "action=DUNNO",
                                   "action=REJECT 5.7.1 listed in 5 of 5 lists: "
                                   "l1*1 l2*1 l3*1 l4*1 l5*1"])
        zones = ["l%d.mxacl.example" % i for i in range(1, 6)]
        for events in per_ip:
            self.assert_one_round_trip(events, zones)
        decisions = re.findall(r"decision .* action=(\S+)", log)
        self.assertEqual(decisions, ["REJECT", "DUNNO", "REJECT"])

    def test_score_ahead_is_prefetched(self):
        # line 1 waits on l1; the score on line 2 has its terms' lookups
        # started then, so the request still waits one round trip
        conf = LISTS + """
acl some score l2*2 l3 l4*2 l5 >= 3
action rej1 REJECT one
action rej REJECT score ${score}: ${score_hits}
access l1 rej1
access some rej
"""
        replies, per_ip, _ = self.through_slow_dns(conf, ["192.0.2.10"])
        self.assertEqual(replies, ["action=REJECT score 4: l2*2 l4*2"])
        self.assert_one_round_trip(per_ip[0], ["l%d.mxacl.example" % i for i in range(1, 6)])


class TestScoreMissing(dnsserver.DnsCase):
    """A term that fails: a zone under never.mxacl.example, whose queries
    unbound drops, so the lookup ends on --dns-timeout."""
    RECORDS, ZONES = RECORDS, ZONES

    CONF = LISTS + """
acl dead rbl never.mxacl.example%s
acl s score l2*2 dead*3 l4 >= 3
action rej REJECT score ${score}: ${score_hits} (without: ${score_missing})
action default DEFER_IF_PERMIT default
access s rej
"""

    def run_explain(self, tempfail):
        p = self.mxacl_test_run(self.CONF % tempfail, [req("192.0.2.10")],
                                ["--explain", "--dns-timeout", "300"])
        return p.stdout.split("\n\n")[0], p.stderr

    def test_nomatch_counts_without_it(self):
        out, trace = self.run_explain("")
        self.assertEqual(out, "action=REJECT score 3: l2*2 l4*1 (without: dead)")
        self.assertIn("acl dead answered: temporary failure", trace)
        self.assertIn("    term dead*3: temporary failure, taken as no match (the score is "
                      "computed without it), does not hold\n", trace)
        self.assertIn("    score s = 3 >= 3: true (computed without dead)\n", trace)

    def test_match_counts_it(self):
        out, _ = self.run_explain(" tempfail=match")
        self.assertEqual(out, "action=REJECT score 6: l2*2 dead*3 l4*1 (without: dead)")

    def test_default_answers_default(self):
        out, trace = self.run_explain(" tempfail=default")
        self.assertEqual(out, "action=DEFER_IF_PERMIT default")
        self.assertIn("score s: a term failed with tempfail=default", trace)


if __name__ == "__main__":
    unittest.main()
