"""DNS facts (acl/dnsfact.c: the `mx` and `a` acl types) against a real
unbound on loopback, through `mxacl test --dns` and mxacld:

- `mx ATTR none`: NXDOMAIN, no MX and no address, a null MX (RFC 7505)
  match; an MX, or no MX but an address (RFC 5321's implicit MX), do not;
- `mx ATTR NETWORK...`: an MX host's address in the networks (the bogus
  MX check), the domain's own address for the implicit MX, an MX host
  written as an address; only the 10 most preferred hosts are looked at;
  a host whose lookup never answers is a temporary failure (tempfail=);
- `a ATTR ${client_address}` / `a ATTR NETWORK...` / `a ATTR none`: the
  HELO resolves to the client (IPv4, IPv6, IPv4-mapped) or not;
- the ${vars}: ${mx_none}, ${mx_hosts}, ${dns_name}, ${dns_address};
- lookups start ahead, and the MX hosts' addresses (the second round
  trip) as soon as the MX answer arrives, also when started ahead;
- one deadline for both round trips.

Round trips are counted from a DelayProxy's log (queries and answers with
their moments), never from a clock; the times are printed."""
import time
import unittest

import dnsserver
from mxtest import Mxacld, PolicyConn

Z = "facts.mxacl.example"
NEVER = "never.mxacl.example"
TIMEOUT_MS = 1000

RECORDS = [
    # a proper domain: two MX hosts, one IPv4 and one IPv6
    'good.%s. 300 IN MX 10 mx1.good.%s.' % (Z, Z),
    'good.%s. 300 IN MX 20 mx2.good.%s.' % (Z, Z),
    'mx1.good.%s. 300 IN A 192.0.2.1' % Z,
    'mx2.good.%s. 300 IN AAAA 2001:db8::2' % Z,
    # no MX, an address: the implicit MX
    'implicit.%s. 300 IN A 192.0.2.5' % Z,
    # no MX, a loopback address: a bogus implicit MX
    'implbogus.%s. 300 IN A 127.0.0.1' % Z,
    # no MX and no address (a TXT record only: NODATA)
    'nothing.%s. 300 IN TXT "v=spf1 -all"' % Z,
    # a null MX (RFC 7505), with a web server's address beside it
    'nullmx.%s. 300 IN MX 0 .' % Z,
    'nullmx.%s. 300 IN A 192.0.2.9' % Z,
    # bogus MX: the second host is in 127/8
    'bogus.%s. 300 IN MX 10 mx1.good.%s.' % (Z, Z),
    'bogus.%s. 300 IN MX 20 lo.bogus.%s.' % (Z, Z),
    'lo.bogus.%s. 300 IN A 127.0.0.2' % Z,
    # bogus MX over IPv6 (::1)
    'bogus6.%s. 300 IN MX 10 lo6.bogus6.%s.' % (Z, Z),
    'lo6.bogus6.%s. 300 IN AAAA ::1' % Z,
    # an MX host written as an address
    'literal.%s. 300 IN MX 10 127.0.0.1.' % Z,
    # an MX host whose lookups never answer, one that answers fine
    'slowhost.%s. 300 IN MX 10 mx1.good.%s.' % (Z, Z),
    'slowhost.%s. 300 IN MX 20 mx.%s.' % (Z, NEVER),
    # the same, and a bogus host: the match decides
    'slowbogus.%s. 300 IN MX 10 lo.bogus.%s.' % (Z, Z),
    'slowbogus.%s. 300 IN MX 20 mx.%s.' % (Z, NEVER),
    # HELO names
    'helo.%s. 300 IN A 192.0.2.20' % Z,
    'helo.%s. 300 IN AAAA 2001:db8::20' % Z,
    'private.%s. 300 IN A 10.1.2.3' % Z,
]
# twelve MX hosts, preference 1..12, listed in reverse: the last two by
# preference are in 127/8 (beyond the limit), in "many"; in "tenth" the
# tenth is
for dom, bad in (("many", (11, 12)), ("tenth", (10,))):
    for i in range(12, 0, -1):
        RECORDS.append('%s.%s. 300 IN MX %d h%d.%s.%s.' % (dom, Z, i, i, dom, Z))
        RECORDS.append('h%d.%s.%s. 300 IN A %s' % (
            i, dom, Z, "127.0.0.%d" % i if i in bad else "192.0.2.%d" % (100 + i)))
ZONES = [Z + "."]

BOGUS = "127.0.0.0/8 10.0.0.0/8 0.0.0.0/8 ::1/128"


def req(ip="192.0.2.200", sender="a@good.%s" % Z, helo="helo.%s" % Z, **kw):
    r = {"request": "smtpd_access_policy", "protocol_state": "RCPT",
         "client_address": ip, "client_name": "unknown", "helo_name": helo,
         "sender": sender, "recipient": "b@dest.example"}
    r.update(kw)
    return r


def at(dom):
    return "a@%s.%s" % (dom, Z)


class TestMxNone(dnsserver.DnsCase):
    RECORDS, ZONES = RECORDS, ZONES

    CONF = """
acl nomx mx sender none
acl all client_address 0.0.0.0/0
action rej REJECT 5.7.1 no usable MX: ${mx_none}
action ok PREPEND X-MX: has one
access nomx rej
access all ok
"""

    def test_each_case(self):
        got = self.mxacl_test(self.CONF, [
            req(sender=at("good")),        # MX
            req(sender=at("implicit")),    # no MX, an A: the implicit MX
            req(sender=at("nx")),          # NXDOMAIN
            req(sender=at("nothing")),     # no MX, no A/AAAA
            req(sender=at("nullmx")),      # null MX (with an A beside it)
            req(sender=""),                # the null sender: no domain, no query
            req(sender="a@[192.0.2.1]"),   # an address literal: no name
        ])
        self.assertEqual(got, [
            "action=PREPEND X-MX: has one",
            "action=PREPEND X-MX: has one",
            "action=REJECT 5.7.1 no usable MX: NXDOMAIN",
            "action=REJECT 5.7.1 no usable MX: no MX, no address",
            "action=REJECT 5.7.1 no usable MX: null MX",
            "action=PREPEND X-MX: has one",
            "action=PREPEND X-MX: has one",
        ])

    def test_domain_attribute_and_trailing_dot(self):
        # helo_name holds a domain itself (no '@'); a trailing dot is dropped
        conf = ("acl nomx mx helo_name none\naction rej REJECT ${mx_none}\n"
                "access nomx rej\n")
        got = self.mxacl_test(conf, [req(helo="NX.%s." % Z), req(helo="good.%s" % Z)])
        self.assertEqual(got, ["action=REJECT NXDOMAIN", "action=DUNNO"])


class TestBogusMx(dnsserver.DnsCase):
    RECORDS, ZONES = RECORDS, ZONES

    CONF = """
acl bogus mx sender %s
action rej REJECT 5.7.1 MX ${dns_name} is ${dns_address} (hosts ${mx_hosts})
access bogus rej
""" % BOGUS

    def test_each_case(self):
        got = self.mxacl_test(self.CONF, [
            req(sender=at("good")),
            req(sender=at("bogus")),
            req(sender=at("bogus6")),
            req(sender=at("implicit")),
            req(sender=at("implbogus")),
            req(sender=at("literal")),
            req(sender=at("nx")),
            req(sender=at("nullmx")),
            req(sender=at("nothing")),
        ])
        self.assertEqual(got, [
            "action=DUNNO",
            "action=REJECT 5.7.1 MX lo.bogus.%s is 127.0.0.2 (hosts mx1.good.%s,lo.bogus.%s)"
            % (Z, Z, Z),
            "action=REJECT 5.7.1 MX lo6.bogus6.%s is ::1 (hosts lo6.bogus6.%s)" % (Z, Z),
            "action=DUNNO",
            "action=REJECT 5.7.1 MX implbogus.%s is 127.0.0.1 (hosts implbogus.%s)" % (Z, Z),
            "action=REJECT 5.7.1 MX 127.0.0.1 is 127.0.0.1 (hosts 127.0.0.1)",
            "action=DUNNO",
            "action=DUNNO",
            "action=DUNNO",
        ])

    def test_mx_host_is_the_client(self):
        conf = ("acl own mx sender ${client_address}\naction ok PREPEND X-MX: client is ${dns_name}\n"
                "access own ok\n")
        got = self.mxacl_test(conf, [req("192.0.2.1", sender=at("good")),
                                     req("2001:db8::2", sender=at("good")),
                                     req("192.0.2.2", sender=at("good")),
                                     req("192.0.2.5", sender=at("implicit"))])
        self.assertEqual(got, ["action=PREPEND X-MX: client is mx1.good.%s" % Z,
                               "action=PREPEND X-MX: client is mx2.good.%s" % Z,
                               "action=DUNNO",
                               "action=PREPEND X-MX: client is implicit.%s" % Z])

    def test_only_the_ten_most_preferred_hosts(self):
        got = self.mxacl_test(self.CONF, [req(sender=at("many")), req(sender=at("tenth"))])
        hosts = ",".join("h%d.tenth.%s" % (i, Z) for i in range(1, 11))
        self.assertEqual(got, ["action=DUNNO",
                               "action=REJECT 5.7.1 MX h10.tenth.%s is 127.0.0.10 (hosts %s)"
                               % (Z, hosts)])
        # the eleventh and twelfth hosts were never asked for
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
                " h10.many.%s. A IN" % Z in l for l in self.dns.queries()):
            time.sleep(0.02)
        asked = "".join(self.dns.queries())
        self.assertIn(" h10.many.%s. A IN" % Z, asked)
        self.assertNotIn(" h11.many.%s. A IN" % Z, asked)
        self.assertNotIn(" h12.many.%s. A IN" % Z, asked)


class TestTempfail(dnsserver.DnsCase):
    RECORDS, ZONES = RECORDS, ZONES

    def run_conf(self, mode, sender):
        conf = ("acl bogus mx sender %s tempfail=%s\naction rej REJECT bogus\n"
                "access bogus rej\n" % (BOGUS, mode))
        return self.mxacl_test(conf, [req(sender=sender)], ["--dns-timeout", "500"])

    def test_a_host_that_never_answers(self):
        self.assertEqual(self.run_conf("match", at("slowhost")), ["action=REJECT bogus"])
        self.assertEqual(self.run_conf("nomatch", at("slowhost")), ["action=DUNNO"])

    def test_a_match_decides_despite_a_failure(self):
        self.assertEqual(self.run_conf("nomatch", at("slowbogus")), ["action=REJECT bogus"])

    def test_mx_lookup_never_answers(self):
        self.assertEqual(self.run_conf("match", "a@x.%s" % NEVER), ["action=REJECT bogus"])
        conf = ("acl nomx mx sender none tempfail=default\naction rej REJECT none\n"
                "access nomx rej\n")
        got = self.mxacl_test(conf, [req(sender="a@x.%s" % NEVER), req(sender=at("nx"))],
                              ["--dns-timeout", "500"])
        self.assertEqual(got, ["action=DUNNO", "action=REJECT none"])


class TestHeloResolves(dnsserver.DnsCase):
    RECORDS, ZONES = RECORDS, ZONES

    CONF = """
acl helo_ok a helo_name ${client_address}
action ok PREPEND X-HELO: ${dns_name} is ${dns_address}
action bad PREPEND X-HELO: mismatch
acl all client_address 0.0.0.0/0 ::/0
access helo_ok ok
access all bad
"""

    def test_ipv4_ipv6_and_mapped(self):
        h = "helo.%s" % Z
        got = self.mxacl_test(self.CONF, [
            req("192.0.2.20"), req("192.0.2.21"),
            req("2001:db8::20"), req("2001:db8::21"),
            req("::ffff:192.0.2.20"),
            req("192.0.2.20", helo="HELO.%s" % Z.upper()),
            req("192.0.2.20", helo="nx.%s" % Z),
            req("192.0.2.20", helo="[192.0.2.20]"),
            req("192.0.2.20", helo="192.0.2.20"),
        ])
        self.assertEqual(got, [
            "action=PREPEND X-HELO: %s is 192.0.2.20" % h,
            "action=PREPEND X-HELO: mismatch",
            "action=PREPEND X-HELO: %s is 2001:db8::20" % h,
            "action=PREPEND X-HELO: mismatch",
            "action=PREPEND X-HELO: %s is 192.0.2.20" % h,
            "action=PREPEND X-HELO: %s is 192.0.2.20" % h,
            "action=PREPEND X-HELO: mismatch",
            "action=PREPEND X-HELO: mismatch",
            "action=PREPEND X-HELO: mismatch",
        ])

    def test_networks_and_none(self):
        conf = """
acl helo_private a helo_name 10.0.0.0/8 192.168.0.0/16
acl helo_none a helo_name none
action priv REJECT HELO ${dns_name} is private ${dns_address}
action none REJECT HELO does not resolve
access helo_private priv
access helo_none none
"""
        got = self.mxacl_test(conf, [req(helo="private.%s" % Z), req(helo="helo.%s" % Z),
                                     req(helo="nx.%s" % Z), req(helo="nothing.%s" % Z)])
        self.assertEqual(got, ["action=REJECT HELO private.%s is private 10.1.2.3" % Z,
                               "action=DUNNO",
                               "action=REJECT HELO does not resolve",
                               "action=REJECT HELO does not resolve"])

    def test_client_name_unknown_sends_nothing(self):
        conf = "acl fc a client_name ${client_address}\naction ok OK\naccess fc ok\n"
        got = self.mxacl_test(conf, [req("192.0.2.20", client_name="unknown"),
                                     req("192.0.2.20", client_name="helo.%s" % Z)])
        self.assertEqual(got, ["action=DUNNO", "action=OK"])
        self.assertFalse([l for l in self.dns.queries() if " unknown. " in l])


class TestPrefetch(dnsserver.DnsCase):
    """The mx acl's lookups start ahead at the request's first wait, and
    its hosts' addresses as soon as the MX answer comes: a request whose
    first line waits for a DNS list that never answers reaches the mx line
    after its deadline, when only answers already cached count."""
    RECORDS, ZONES = RECORDS, ZONES
    FRESH_SERVER = True

    CONF = """
acl slow rbl zone.%s
acl bogus mx sender %s
acl nomx mx helo_name none
action r1 REJECT listed
action r2 REJECT bogus ${dns_name}
action r3 REJECT no MX for helo
access slow r1
access bogus r2
access nomx r3
""" % (NEVER, BOGUS)

    def test_started_ahead_before_the_acl_is_reached(self):
        p = self.mxacl_test_run(self.CONF, [req(sender=at("bogus"))],
                                ["--dns-timeout", str(TIMEOUT_MS), "--explain"])
        # the rbl timed out (nomatch); the mx line was reached after the
        # request's deadline, and still answered: its MX and its hosts'
        # addresses had been asked ahead
        self.assertEqual(p.stdout.split("\n")[0], "action=REJECT bogus lo.bogus.%s" % Z)
        self.assertRegex(p.stderr, r"acl bogus \(.*:3\) mx: lookups started ahead")

    def test_implicit_mx_started_ahead(self):
        p = self.mxacl_test_run(self.CONF, [req(sender=at("good"), helo="nothing.%s" % Z)],
                                ["--dns-timeout", str(TIMEOUT_MS)])
        self.assertEqual(p.stdout.split("\n")[0], "action=REJECT no MX for helo")

    def test_no_wait_no_query(self):
        conf = ("acl local client_address 192.0.2.0/24\nacl bogus mx sender %s\n"
                "action ok OK\naction r REJECT\naccess local ok\naccess bogus r\n" % BOGUS)
        self.assertEqual(self.mxacl_test(conf, [req(sender=at("bogus"))]), ["action=OK"])
        time.sleep(0.3)
        self.assertFalse([l for l in self.dns.queries() if "bogus.%s" % Z in l])


DELAY = 0.2


class TestRoundTrips(dnsserver.DnsCase):
    """Through mxacld with the DNS server DELAY away: an `a` acl costs one
    round trip; a `mx` acl two (the MX answer names the hosts whose
    addresses are asked), and the second starts when the first answer
    arrives; a deadline ends both."""
    RECORDS, ZONES = RECORDS, ZONES

    def through_slow_dns(self, conf, r, extra=(), delay=DELAY):
        with dnsserver.DelayProxy(self.dns.port, delay) as slow:
            with Mxacld(conf, extra_args=["--dns", slow.server] + list(extra)) as d:
                with PolicyConn(d.endpoint, timeout=30) as c:
                    t0 = time.monotonic()
                    reply = c.request(r)
                    secs = time.monotonic() - t0
                log = d.log_text()
            events = slow.events()
        self.assertNotIn("Sanitizer", log)
        print("\n%s: %.3f s, %s" % (self.id().split(".")[-1], secs,
                                    ["%.3f %s %s" % (e[0] - t0, e[2], e[3]) for e in events]),
              flush=True)
        return reply, secs, events

    def test_a_is_one_round_trip(self):
        conf = ("acl h a helo_name ${client_address}\naction ok PREPEND X-A: ${dns_address}\n"
                "access h ok\n")
        reply, _, ev = self.through_slow_dns(conf, req("192.0.2.20", helo="helo.%s" % Z))
        self.assertEqual(reply, "action=PREPEND X-A: 192.0.2.20")
        # an IPv4 client: only the A record is asked
        self.assertEqual([(e[2], e[3]) for e in ev], [("helo.%s" % Z, "A")])

    def test_mx_is_two_round_trips(self):
        conf = "acl b mx sender %s\naction r REJECT ${dns_name}\naccess b r\n" % BOGUS
        reply, secs, ev = self.through_slow_dns(conf, req(sender=at("bogus")))
        self.assertEqual(reply, "action=REJECT lo.bogus.%s" % Z)
        mx = [e for e in ev if e[3] == "MX"]
        hosts = [e for e in ev if e[3] in ("A", "AAAA")]
        self.assertEqual(len(mx), 1, ev)
        self.assertEqual(sorted((e[2], e[3]) for e in hosts),
                         sorted([("mx1.good.%s" % Z, "A"), ("mx1.good.%s" % Z, "AAAA"),
                                 ("lo.bogus.%s" % Z, "A"), ("lo.bogus.%s" % Z, "AAAA")]))
        # the hosts were asked after the MX answer left the server, all of
        # them before the first of their answers: exactly two round trips
        self.assertGreater(min(e[0] for e in hosts), mx[0][1])
        self.assertLess(max(e[0] for e in hosts), min(e[1] for e in hosts))

    def test_one_deadline_for_both_round_trips(self):
        conf = ("acl b mx sender %s tempfail=match\naction r REJECT timed out\n"
                "access b r\n" % BOGUS)
        delay = 0.3     # below libunbound's first retransmission (0.376 s)
        reply, secs, ev = self.through_slow_dns(conf, req(sender=at("slowhost")),
                                                ["--dns-timeout", str(TIMEOUT_MS)], delay)
        self.assertEqual(reply, "action=REJECT timed out")
        self.assertIn(("mx.%s" % NEVER, "A"), [(e[2], e[3]) for e in ev])
        # the host lookups, started after the MX answer (0.3 s), end at the
        # deadline taken when the MX lookup started: about one timeout
        # (1 s), not the MX round trip plus one (1.3 s); the bound leaves
        # most of the difference as slack
        self.assertGreater(secs, 0.5 * TIMEOUT_MS / 1000.0)
        self.assertLess(secs, TIMEOUT_MS / 1000.0 + 0.75 * delay, secs)


if __name__ == "__main__":
    unittest.main()
