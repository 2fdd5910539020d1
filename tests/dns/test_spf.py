"""spf acls against a real unbound on loopback (tests/lib/dnsserver.py):
records that give each result through ip4:, ip6:, a, mx, ptr, include:,
redirect=, -all, ~all and ?all; none, permerror (bad record, two records,
include loop) and temperror (a name that never answers, with the acl's
tempfail modes); the HELO identity for the null sender; ${spf_result} and
${spf_received}; one verdict per request for several spf acls; and the
same through mxacld."""
import subprocess
import unittest

import dnsserver
from mxtest import Mxacld, PolicyConn, mxacl_path

Z = "spf.mxacl.example"
NEVER = "x.never.mxacl.example"     # in the test server's zone that never answers
RECORDS = [
    'ip4.%s. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"' % Z,
    'ip6.%s. 300 IN TXT "v=spf1 ip6:2001:db8::/32 -all"' % Z,
    'soft.%s. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 ~all"' % Z,
    'neutral.%s. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 ?all"' % Z,
    'a.%s. 300 IN TXT "v=spf1 a a:host.%s -all"' % (Z, Z),
    'a.%s. 300 IN A 11.0.0.1' % Z,
    'host.%s. 300 IN A 11.0.0.2' % Z,
    'mx.%s. 300 IN TXT "v=spf1 mx -all"' % Z,
    'mx.%s. 300 IN MX 10 mail1.%s.' % (Z, Z),
    'mx.%s. 300 IN MX 20 mail2.%s.' % (Z, Z),
    'mail1.%s. 300 IN A 11.0.1.1' % Z,
    'mail2.%s. 300 IN AAAA 2001:db8:1::25' % Z,
    'inc.%s. 300 IN TXT "v=spf1 include:ip4.%s include:mx.%s ~all"' % (Z, Z, Z),
    'redir.%s. 300 IN TXT "v=spf1 ip4:11.0.9.9 redirect=mx.%s"' % (Z, Z),
    'ptr.%s. 300 IN TXT "v=spf1 ptr -all"' % Z,
    '4.3.2.11.in-addr.arpa. 300 IN PTR gw.ptr.%s.' % Z,
    'gw.ptr.%s. 300 IN A 11.2.3.4' % Z,
    'bad.%s. 300 IN TXT "v=spf1 ip4:192.0.2.0/33 -all"' % Z,
    'two.%s. 300 IN TXT "v=spf1 -all"' % Z,
    'two.%s. 300 IN TXT "v=spf1 +all"' % Z,
    'loop.%s. 300 IN TXT "v=spf1 include:loop.%s -all"' % (Z, Z),
    'slow.%s. 300 IN TXT "v=spf1 a:%s -all"' % (Z, NEVER),
    'norecord.%s. 300 IN TXT "some-site-verification=abc"' % Z,
    'helo.%s. 300 IN TXT "v=spf1 ip4:11.5.5.5 -all"' % Z,
    # a domain with many other TXT records besides its SPF record
    'many.%s. 300 IN TXT "v=spf1 ip4:11.6.6.0/24 -all"' % Z,
    # exists: with macros: %{i} (dotted IPv4, nibbles for IPv6, in address
    # order) and %{d}
    'ex.%s. 300 IN TXT "v=spf1 exists:%%{i}.ip.%%{d} -all"' % Z,
    '11.3.3.3.ip.ex.%s. 300 IN A 127.0.0.2' % Z,
    '2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.5.ip.ex.%s. 300 IN A 127.0.0.2'
    % Z,
    # a for an IPv6 client: the domain's AAAA
    'a6.%s. 300 IN TXT "v=spf1 a -all"' % Z,
    'a6.%s. 300 IN A 11.0.6.1' % Z,
    'a6.%s. 300 IN AAAA 2001:db8:6::1' % Z,
    # %{p}: the client's validated name, from 9 PTR names whose A records
    # libspf2 asks for all in one run
    'pm.%s. 300 IN TXT "v=spf1 exists:%%{p}.ok.%s -all"' % (Z, Z),
    'h9.pm.%s.ok.%s. 300 IN A 127.0.0.2' % (Z, Z),
    # 7 mx: terms of 10 MX hosts each: 78 lookups, within RFC 7208's limits
    'mx7.%s. 300 IN TXT "v=spf1 %s -all"' % (Z, " ".join("mx:m%d.mx7.%s" % (m, Z) for m in range(7))),
    # 15 such terms, 7 of them in an include: (libspf2 counts per record):
    # 156 lookups, beyond the RFC's limits
    # (two strings each: one holds at most 255 bytes; SPF joins them)
    'big.%s. 300 IN TXT "v=spf1 include:inc.big.%s %s " "%s -all"'
    % (Z, Z, " ".join("mx:m%d.mx7.%s" % (m, Z) for m in range(4)),
       " ".join("mx:m%d.mx7.%s" % (m, Z) for m in range(4, 8))),
    'inc.big.%s. 300 IN TXT "v=spf1 %s " "%s -all"'
    % (Z, " ".join("mx:m%d.mx7.%s" % (m, Z) for m in range(8, 12)),
       " ".join("mx:m%d.mx7.%s" % (m, Z) for m in range(12, 15))),
] + ['c%d.%s. 300 IN TXT "v=spf1 a:h.c%d.%s include:i.c%d.%s -all"' % (n, Z, n, Z, n, Z)
     for n in range(24)] \
  + ['h.c%d.%s. 300 IN A 11.8.%d.1' % (n, Z, n) for n in range(24)] \
  + ['i.c%d.%s. 300 IN TXT "v=spf1 ip4:11.9.%d.0/24 -all"' % (n, Z, n) for n in range(24)] \
  + ['m%d.mx7.%s. 300 IN MX %d h%d.m%d.mx7.%s.' % (m, Z, h, h, m, Z)
     for m in range(15) for h in range(10)] \
  + ['h%d.m%d.mx7.%s. 300 IN A 11.7.%d.%d' % (h, m, Z, m, h) for m in range(15) for h in range(10)] \
  + ['9.3.2.11.in-addr.arpa. 300 IN PTR h%d.pm.%s.' % (i, Z) for i in range(1, 10)] \
  + ['h%d.pm.%s. 300 IN A 11.2.3.%d' % (i, Z, 9 if i == 9 else 8) for i in range(1, 10)] \
  + ['many.%s. 300 IN TXT "site-verification-%02d=0123456789abcdef0123456789"' % (Z, i)
     for i in range(48)]
# 70 ip4: terms and -all: libspf2's compiled buffer (511 bytes) holds about
# 63, and it dropped the rest, -all included (neutral for a forged sender)
_IP4S = " ".join("ip4:11.10.%d.%d" % (i // 200, i % 200) for i in range(70)) + " -all"
RECORDS.append('big511.%s. 300 IN TXT %s' % (
    Z, " ".join('"%s"' % c for c in [("v=spf1 " + _IP4S)[i:i + 200]
                                      for i in range(0, len(_IP4S) + 7, 200)])))
RECORDS += ['exp.%s. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 exp=why.%s -all"' % (Z, Z),
            'why.%s. 300 IN TXT "Not (really) from %%{d}"' % Z]
ZONES = [Z + ".", "3.2.11.in-addr.arpa."]

ALL = ["pass", "fail", "softfail", "neutral", "none", "permerror", "temperror"]
CONF_ALL = "".join("acl is_%s spf %s\naction say_%s REJECT %s ${spf_result}\naccess is_%s say_%s\n"
                   % (r, r, r, r, r, r) for r in ALL)


def req(ip, sender, helo="mx.client.example"):
    return {"request": "smtpd_access_policy", "protocol_state": "RCPT",
            "client_address": ip, "client_name": "unknown", "helo_name": helo,
            "sender": sender, "recipient": "rcpt@dest.example"}


class SpfCase(dnsserver.DnsCase):
    RECORDS, ZONES = RECORDS, ZONES

    def results(self, cases, extra=()):
        got = self.mxacl_test(CONF_ALL, [req(ip, s) for ip, s, _ in cases], extra)
        want = ["action=REJECT %s %s" % (r, r) if r else "action=DUNNO" for _, _, r in cases]
        self.assertEqual(got, want)


class TestSpfResults(SpfCase):
    def test_ip4_ip6_and_all_qualifiers(self):
        self.results([
            ("192.0.2.7", "u@ip4." + Z, "pass"),
            ("198.18.0.1", "u@ip4." + Z, "fail"),              # -all
            ("198.18.0.1", "u@soft." + Z, "softfail"),         # ~all
            ("198.18.0.1", "u@neutral." + Z, "neutral"),       # ?all
            ("2001:db8::99", "u@ip6." + Z, "pass"),
            ("2001:db9::99", "u@ip6." + Z, "fail"),
            ("192.0.2.7", "U@IP4.SPF.MXACL.EXAMPLE", "pass"),  # domains ignore case
            ("11.6.6.6", "u@many." + Z, "pass"),               # 1 SPF among 49 TXT
            ("11.6.7.6", "u@many." + Z, "fail"),
        ])

    def test_a_mx_ptr(self):
        self.results([
            ("11.0.0.1", "u@a." + Z, "pass"),                  # a (the domain's own)
            ("11.0.0.2", "u@a." + Z, "pass"),                  # a:host
            ("11.0.0.3", "u@a." + Z, "fail"),
            ("11.0.1.1", "u@mx." + Z, "pass"),                 # first MX's A
            ("2001:db8:1::25", "u@mx." + Z, "pass"),           # second MX's AAAA
            ("11.0.1.2", "u@mx." + Z, "fail"),
            ("11.2.3.4", "u@ptr." + Z, "pass"),                # PTR, then its A back
            ("11.2.3.5", "u@ptr." + Z, "fail"),
        ])

    def test_exists_and_macros(self):
        self.results([
            ("11.3.3.3", "u@ex." + Z, "pass"),                 # %{i}.ip.%{d} has an A
            ("11.3.3.4", "u@ex." + Z, "fail"),
            ("2001:db8::5", "u@ex." + Z, "pass"),              # %{i} as 32 nibbles
            ("2001:db8::6", "u@ex." + Z, "fail"),
            ("11.2.3.9", "u@pm." + Z, "pass"),                 # %{p}: h9 of 9 PTR names
            ("11.2.3.8", "u@pm." + Z, "fail"),                 # names, none validated
        ])

    def test_many_lookups_within_the_rfc_limits(self):
        # libspf2 asks for the MX hosts' A records one run at a time: 79 runs
        self.results([
            ("11.7.6.9", "u@mx7." + Z, "pass"),                # the 70th A record
            ("11.7.7.7", "u@mx7." + Z, "fail"),
            ("11.7.9.9", "u@big." + Z, "pass"),                # found in the include
            ("11.7.20.7", "u@big." + Z, "permerror"),          # more than 10 terms
        ])
        conf = ("acl any spf pass fail permerror\n"
                "action hdr PREPEND Received-SPF: ${spf_received}\naccess any hdr\n")
        self.assertEqual(self.mxacl_test(conf, [req("11.7.20.7", "u@big." + Z)]),
                         ["action=PREPEND Received-SPF: permerror (more than 10 DNS-querying "
                          "terms \\(RFC 7208 4.6.4\\)) client-ip=11.7.20.7; "
                          "envelope-from=u@big.%s; helo=mx.client.example;" % Z])

    def test_ipv6_client_a_is_aaaa(self):
        self.results([
            ("2001:db8:6::1", "u@a6." + Z, "pass"),            # a: the AAAA
            ("2001:db8:6::2", "u@a6." + Z, "fail"),
            ("11.0.6.1", "u@a6." + Z, "pass"),                 # a: the A
            ("2001:db8::99", "U@IP6." + Z, "pass"),            # ip6:
        ])

    def test_include_and_redirect(self):
        self.results([
            ("192.0.2.9", "u@inc." + Z, "pass"),               # first include
            ("11.0.1.1", "u@inc." + Z, "pass"),                # second include (mx)
            ("198.18.0.1", "u@inc." + Z, "softfail"),          # neither: ~all
            ("11.0.9.9", "u@redir." + Z, "pass"),              # before the redirect
            ("11.0.1.1", "u@redir." + Z, "pass"),              # through redirect=mx
            ("198.18.0.1", "u@redir." + Z, "fail"),            # the redirect's -all
        ])

    def test_none_and_permerror(self):
        self.results([
            ("192.0.2.7", "u@norecord." + Z, "none"),          # TXT, but no v=spf1
            ("192.0.2.7", "u@nxdomain." + Z, "none"),          # no such domain
            ("192.0.2.7", "u@bad." + Z, "permerror"),          # /33
            ("192.0.2.7", "u@two." + Z, "permerror"),          # two records
            ("192.0.2.7", "u@loop." + Z, "permerror"),         # include loop
            # a domain that cannot exist is none (RFC 7208 4.3), not a
            # temperror: a 64-byte label, over 253 bytes, an empty label
            ("192.0.2.7", "u@%s.%s" % ("a" * 64, Z), "none"),
            ("192.0.2.7", "u@%s%s" % ("abcdefghi." * 23, "abcdefg." + Z), "none"),
            ("192.0.2.7", "u@a..b." + Z, "none"),
        ])

    def test_null_sender_checks_helo(self):
        got = self.mxacl_test(CONF_ALL, [req("11.5.5.5", "", helo="helo." + Z),
                                         req("11.5.5.6", "", helo="helo." + Z),
                                         req("11.5.5.5", "", helo="")])
        self.assertEqual(got, ["action=REJECT pass pass", "action=REJECT fail fail",
                               "action=DUNNO"])          # no identity at all: no match

    def test_no_client_address_does_not_match(self):
        self.assertEqual(self.mxacl_test(CONF_ALL, [req("", "u@ip4." + Z)]), ["action=DUNNO"])

    def test_received_spf_header(self):
        conf = ("acl checked spf pass fail softfail neutral none permerror\n"
                "action hdr PREPEND Received-SPF: ${spf_received}\naccess checked hdr\n")
        got = self.mxacl_test(conf, [req("192.0.2.7", "u@ip4." + Z),
                                     req("198.18.0.1", "u@ip4." + Z),
                                     req("192.0.2.7", "u@bad." + Z)])
        self.assertEqual(len(got), 3)
        self.assertTrue(got[0].startswith("action=PREPEND Received-SPF: pass ("), got[0])
        self.assertIn("client-ip=192.0.2.7; envelope-from=u@ip4.%s; helo=mx.client.example;" % Z,
                      got[0])
        self.assertTrue(got[1].startswith("action=PREPEND Received-SPF: fail ("), got[1])
        self.assertIn("client-ip=198.18.0.1;", got[1])
        # a syntax error: mxacl's value, with the reason as its comment
        self.assertEqual(got[2], "action=PREPEND Received-SPF: permerror (syntax error in SPF "
                         "record: bad ip4 cidr length) client-ip=192.0.2.7; "
                         "envelope-from=u@bad.%s; helo=mx.client.example;" % Z)

    def test_record_too_large_for_libspf2_is_permerror(self):
        self.results([("192.0.2.99", "u@big511." + Z, "permerror"),
                      ("11.10.0.5", "u@big511." + Z, "permerror")])

    def test_received_carries_the_explanation(self):
        conf = ("acl checked spf pass fail\n"
                "action hdr PREPEND Received-SPF: ${spf_received}\naccess checked hdr\n")
        got = self.mxacl_test(conf, [req("198.18.0.1", "u@exp." + Z),
                                     req("192.0.2.7", "u@exp." + Z)])
        # the comment's parentheses are quoted (RFC 5322 comment syntax)
        self.assertEqual(got[0], "action=PREPEND Received-SPF: fail (Not \\(really\\) from "
                         "exp.%s) client-ip=198.18.0.1; envelope-from=u@exp.%s; "
                         "helo=mx.client.example;" % (Z, Z))
        self.assertTrue(got[1].startswith("action=PREPEND Received-SPF: pass ("), got[1])

    def test_one_verdict_for_several_acls(self):
        # the second acl takes the first's verdict: the explain trace shows one
        # evaluation each, and the answers agree
        conf = ("acl p spf pass\nacl f spf fail\naction rej REJECT ${spf_result}\n"
                "action no DUNNO\naccess p no\naccess f rej\n")
        p = self.mxacl_test_run(conf, [req("198.18.0.1", "u@mx." + Z)], ["--explain"])
        self.assertEqual(p.stdout.strip(), "action=REJECT fail")
        self.assertIn("acl p answered: no match", p.stderr)
        self.assertRegex(p.stderr, r"acl f \(.*:2\) spf: match")


class TestSpfTempfail(SpfCase):
    def test_temperror_matches_only_when_named(self):
        # the a: name never answers: our deadline makes it a temperror
        self.results([("11.9.9.9", "u@slow." + Z, "temperror")], extra=["--dns-timeout", "300"])

    def test_sender_domain_txt_times_out(self):
        # the first lookup, the domain's own TXT, never answers: libspf2 then
        # gives no result but a DNS error, which is a temperror (it was
        # reported as permerror, and "spf permerror" lines rejected for good)
        self.results([("11.9.9.9", "u@x.never.mxacl.example", "temperror")],
                     extra=["--dns-timeout", "300"])
        got = self.mxacl_test(CONF_ALL, [req("11.9.9.9", "", helo="h.never.mxacl.example")],
                              extra=["--dns-timeout", "300"])
        self.assertEqual(got, ["action=REJECT temperror temperror"])

    def test_txt_timeout_with_a_second_spf_acl_waiting(self):
        # two spf acls on two lines: the first waits for the TXT that never
        # comes, answers a temporary failure (no match here); the second,
        # on a later line, takes the same verdict without a lookup of its own
        conf = ("acl p spf pass\nacl t spf temperror\naction ok OK\n"
                "action defer DEFER_IF_PERMIT spf ${spf_result}\naccess p ok\naccess t defer\n")
        got = self.mxacl_test(conf, [req("11.9.9.9", "u@y.never.mxacl.example")],
                              extra=["--dns-timeout", "300"])
        self.assertEqual(got, ["action=DEFER_IF_PERMIT spf temperror"])

    def test_tempfail_modes(self):
        for mode, want in [(None, "action=OK"), ("nomatch", "action=OK"),
                           ("match", "action=REJECT spf temperror"), ("default", "action=DUNNO")]:
            conf = ("acl bad spf fail softfail%s\naction rej REJECT spf ${spf_result}\n"
                    "action ok OK\naccess bad rej\naccess ok\n" % (" tempfail=" + mode if mode else ""))
            got = self.mxacl_test(conf, [req("11.9.9.9", "u@slow." + Z)],
                                  extra=["--dns-timeout", "300"])
            self.assertEqual(got, [want], mode)

    def test_compile_errors(self):
        path = self.write_conf("acl a spf pass maybe\nacl b spf\nacl c spf error\n"
                               "action no DUNNO\naccess a b c no\n")
        p = subprocess.run([mxacl_path(), "check", "-c", path], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("unknown SPF result 'maybe'", p.stderr)
        self.assertIn("acl 'b' has no values", p.stderr)
        self.assertIn("write temperror or permerror", p.stderr)


class TestSpfDaemon(SpfCase):
    def test_through_mxacld(self):
        conf = ("acl spf_fail spf fail\nacl spf_ok spf pass\n"
                "action rej REJECT 5.7.1 SPF ${spf_result} for ${sender}\n"
                "action hdr PREPEND Received-SPF: ${spf_received}\n"
                "access spf_fail rej\naccess spf_ok hdr\n")
        with Mxacld(conf, extra_args=["--dns", self.dns.server]) as d:
            with PolicyConn(d.endpoint) as c:
                self.assertEqual(c.request(req("198.18.0.1", "u@mx." + Z)),
                                 "action=REJECT 5.7.1 SPF fail for u@mx." + Z)
                got = c.request(req("11.0.1.1", "u@inc." + Z))
                self.assertTrue(got.startswith("action=PREPEND Received-SPF: pass ("), got)
                self.assertEqual(c.request(req("11.0.1.1", "u@norecord." + Z)), "action=DUNNO")
            self.assertRegex(d.log_text(), r"decision client=unknown\[198.18.0.1\] .*rule=.*:5 "
                                         r"action=REJECT 5.7.1 SPF fail")

    def test_abandoned_and_pending_at_shutdown(self):
        # SPF waits on a name that never answers: one client hangs up while
        # it waits, another is still waiting when mxacld is stopped; others
        # are served meanwhile, and the stop is clean (status 0, no
        # sanitizer report: Mxacld.stop checks both)
        conf = ("acl spf_fail spf fail\naction rej REJECT spf\naccess spf_fail rej\n")
        d = Mxacld(conf, extra_args=["--dns", self.dns.server, "--dns-timeout", "20000"])
        with d:
            asked = self.dns.query_count(NEVER)
            gone = PolicyConn(d.endpoint)
            gone.send(req("11.9.9.9", "u@slow." + Z))
            waiting = PolicyConn(d.endpoint)
            waiting.send(req("11.9.9.8", "u@slow." + Z))
            self.dns.wait_query(NEVER, asked)       # the evaluations wait
            gone.close()
            with PolicyConn(d.endpoint) as c:
                self.assertEqual(c.request(req("198.18.0.1", "u@ip4." + Z)), "action=REJECT spf")
                self.assertEqual(c.request(req("192.0.2.1", "u@ip4." + Z)), "action=DUNNO")
            d.stop()
            # stopping drops clients (smtpd then answers 4xx and the mail is retried)
            self.assertIsNone(waiting.recv_reply())
            waiting.close()


class TestSpfDaemonConcurrent(SpfCase):
    CONF = ("acl spf_any spf pass fail softfail neutral none permerror temperror\n"
            "action say REJECT %s ${spf_result} for ${sender} from ${client_address}\n"
            "access spf_any say\n")

    def test_reload_while_spf_waits(self):
        # an SPF evaluation waits (a: name that never answers) when mxacld
        # reloads: that request finishes on the program it started with, the
        # next one on the new
        conf = lambda tag: self.CONF % tag
        with Mxacld(conf("old"), extra_args=["--dns", self.dns.server,
                                             "--dns-timeout", "1500"]) as d:
            with PolicyConn(d.endpoint) as c, PolicyConn(d.endpoint) as c2:
                asked = self.dns.query_count(NEVER)
                c.send(req("11.9.9.9", "u@slow." + Z))
                self.dns.wait_query(NEVER, asked)   # the evaluation waits
                self.assertTrue(d.reload(conf("new")))
                self.assertEqual(c2.request(req("192.0.2.7", "u@ip4." + Z)),
                                 "action=REJECT new pass for u@ip4.%s from 192.0.2.7" % Z)
                self.assertEqual(c.recv_reply(), "action=REJECT old temperror for u@slow.%s "
                                 "from 11.9.9.9" % Z)
                self.assertEqual(c.request(req("11.9.9.9", "u@slow." + Z)),
                                 "action=REJECT new temperror for u@slow.%s from 11.9.9.9" % Z)
            d.stop()

    def test_many_connections_interleaved(self):
        # 8 connections, 3 rounds, each request a different domain (two or
        # three lookups each: TXT, a:, include:'s TXT): answers interleave on
        # the loop, and each request gets its own verdict and header values
        conf = self.CONF % "v"
        with Mxacld(conf, extra_args=["--dns", self.dns.server]) as d:
            conns = [PolicyConn(d.endpoint) for _ in range(8)]
            try:
                for rnd in range(3):
                    want = []
                    for i, c in enumerate(conns):
                        n = (rnd * 8 + i) % 24
                        # pass by a:, pass by include:, or fail; never the
                        # verdict of the neighbouring domain
                        ip, verdict = [("11.8.%d.1" % n, "pass"), ("11.9.%d.7" % n, "pass"),
                                       ("11.8.%d.1" % ((n + 1) % 24), "fail")][(i + rnd) % 3]
                        sender = "u%d@c%d.%s" % (i, n, Z)
                        c.send(req(ip, sender))
                        want.append("action=REJECT v %s for %s from %s" % (verdict, sender, ip))
                    got = [c.recv_reply() for c in conns]
                    self.assertEqual(got, want, "round %d" % rnd)
            finally:
                for c in conns:
                    c.close()
            d.stop()


if __name__ == "__main__":
    unittest.main()
