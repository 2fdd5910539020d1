"""One DNS deadline per request, against a real unbound on loopback whose
"never" zone drops every query, through mxacld:

- a request with 1, 2 or 4 DNS acls (rbl, dnswl, rhsbl, spf) that never
  answer gets its reply within about one --dns-timeout, not one per acl
  (the lookups started ahead and the acls' own lookups share the request's
  deadline);
- SPF's later lookups (an include: that never answers, after the record
  itself did) end at the same deadline when an rbl already used it up;
- the answers are what tempfail= says.

Times are measured and compared with a generous bound (twice the
deadline, which the per-lookup deadlines exceeded from two acls on), never
with a tight one."""
import time
import unittest

import dnsserver
from mxtest import Mxacld, PolicyConn

TIMEOUT_MS = 1000
NEVER = "never.mxacl.example"

RECORDS = [
    # an SPF record whose include: never answers
    'inc.spf.mxacl.example. 300 IN TXT "v=spf1 include:x.%s -all"' % NEVER,
]
ZONES = ["spf.mxacl.example."]


def req(ip, sender):
    return {"request": "smtpd_access_policy", "protocol_state": "RCPT",
            "client_address": ip, "client_name": "unknown", "helo_name": "mx.example",
            "sender": sender, "recipient": "b@dest.example"}


# each acl's lookups go to the never zone; a timeout is no match
ACLS = [
    "acl a1 rbl one.%s tempfail=nomatch" % NEVER,
    "acl a2 dnswl two.%s tempfail=nomatch" % NEVER,
    "acl a3 rhsbl three.%s tempfail=nomatch" % NEVER,
    "acl a4 spf pass fail tempfail=nomatch",
]


def conf(n):
    """n DNS acls, each on its own line, then a line every request reaches
    when all of them failed."""
    out = ACLS[:n] + ["acl any client_address 0.0.0.0/0",
                      "action last REJECT all %d lookups timed out" % n]
    for i in range(n):
        out.append("action r%d REJECT a%d" % (i + 1, i + 1))
        out.append("access a%d r%d" % (i + 1, i + 1))
    out.append("access any last")
    return "\n".join(out) + "\n"


class TestOneDeadlinePerRequest(dnsserver.DnsCase):
    RECORDS, ZONES = RECORDS, ZONES

    def timed(self, conf_text, reqs):
        """Send each request to a fresh mxacld; return [(reply, seconds)]."""
        out = []
        with Mxacld(conf_text, extra_args=["--dns", self.dns.server,
                                           "--dns-timeout", str(TIMEOUT_MS)]) as d:
            with PolicyConn(d.endpoint, timeout=60) as c:
                for r in reqs:
                    t0 = time.monotonic()
                    reply = c.request(r)
                    out.append((reply, time.monotonic() - t0))
            log = d.log_text()
        self.assertNotIn("Sanitizer", log)
        return out

    def test_1_2_4_acls_wait_one_deadline(self):
        bound = 2 * TIMEOUT_MS / 1000.0
        measured = {}
        for n in (1, 2, 4):
            # a new client and sender domain per request: nothing cached
            r = req("192.0.2.%d" % (10 + n), "a@d%d.%s" % (n, NEVER))
            [(reply, secs)] = self.timed(conf(n), [r])
            measured[n] = secs
            self.assertEqual(reply, "action=REJECT all %d lookups timed out" % n)
        print("\nrequest times with --dns-timeout %d ms: %s" % (
            TIMEOUT_MS, ", ".join("%d acl%s %.2f s" % (n, "s" if n > 1 else "", s)
                                  for n, s in sorted(measured.items()))), flush=True)
        for n, secs in measured.items():
            # the lookups did wait for the deadline (the zone never answers) ...
            self.assertGreater(secs, 0.5 * TIMEOUT_MS / 1000.0, (n, secs))
            # ... but once, whatever the number of acls
            self.assertLess(secs, bound, "%d DNS acls waited %.2f s with --dns-timeout %d ms "
                            "(measured: %s)" % (n, secs, TIMEOUT_MS, measured))

    def test_spf_later_lookups_share_the_deadline(self):
        # the rbl waits the deadline out; spf's record answers at once (it
        # was started ahead), its include: is asked after the deadline and
        # fails at once: temperror, answered per tempfail=
        c = ("acl bl rbl one.%s tempfail=nomatch\n"
             "acl sp spf pass fail none tempfail=match\n"
             "action r1 REJECT listed\n"
             "action r2 DEFER spf ${spf_result}\n"
             "access bl r1\naccess sp r2\n" % NEVER)
        [(reply, secs)] = self.timed(c, [req("192.0.2.50", "a@inc.spf.mxacl.example")])
        self.assertEqual(reply, "action=DEFER spf temperror")
        self.assertLess(secs, 2 * TIMEOUT_MS / 1000.0, "rbl then spf's include waited %.2f s "
                        "with --dns-timeout %d ms" % (secs, TIMEOUT_MS))


if __name__ == "__main__":
    unittest.main()
