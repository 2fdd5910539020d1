"""rbl, dnswl and rhsbl acls against a real unbound on loopback (tests/lib/
dnsserver.py), through `mxacl test --dns` and through mxacld: listed and
unlisted IPv4 and IPv6 clients, answer filters and bitmasks, the listing's
TXT in the reply, rhsbl on sender, helo and client names, a zone that never
answers (our deadline, then the acl's tempfail mode), and other connections
served while one request waits for that zone."""
import subprocess
import threading
import time
import unittest

import dnsserver
from mxtest import Mxacld, PolicyConn, fmt_request, mxacl_path

V6 = "2001:db8::1"
V6_REV = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"

RECORDS = [
    # bl: 127.0.0.2 listed with text; .3 has two answers; .4 outside 127/8
    '2.0.0.127.bl.mxacl.example. 300 IN A 127.0.0.2',
    '2.0.0.127.bl.mxacl.example. 300 IN TXT "listed: see https://bl.example/127.0.0.2"',
    '3.0.0.127.bl.mxacl.example. 300 IN A 127.0.0.2',
    '3.0.0.127.bl.mxacl.example. 300 IN A 127.0.0.10',
    '4.0.0.127.bl.mxacl.example. 300 IN A 192.0.2.99',
    # a return-code list: 10 = bits 2 and 8; 4 = bit 4
    '10.2.0.192.codes.mxacl.example. 300 IN A 127.0.0.10',
    '11.2.0.192.codes.mxacl.example. 300 IN A 127.0.0.4',
    '12.2.0.192.codes.mxacl.example. 300 IN A 127.0.0.4',
    '12.2.0.192.codes.mxacl.example. 300 IN A 127.0.0.6',
    '%s.bl.mxacl.example. 300 IN A 127.0.0.2' % V6_REV,
    '%s.bl.mxacl.example. 300 IN TXT "v6 listed"' % V6_REV,
    # second list, for several zones in one acl
    '20.2.0.192.other.mxacl.example. 300 IN A 127.0.0.3',
    '20.2.0.192.other.mxacl.example. 300 IN TXT "other says no"',
    # allowlist
    '30.2.0.192.wl.mxacl.example. 300 IN A 127.0.10.1',
    # domain lists
    'spam.example.dbl.mxacl.example. 300 IN A 127.0.1.2',
    'spam.example.dbl.mxacl.example. 300 IN TXT "domain spam.example is listed"',
    'bad-helo.example.dbl.mxacl.example. 300 IN A 127.0.1.3',
    'bad-ptr.example.dbl.mxacl.example. 300 IN A 127.0.1.4',
]
ZONES = ["bl.mxacl.example.", "codes.mxacl.example.", "other.mxacl.example.",
         "wl.mxacl.example.", "dbl.mxacl.example."]

CONF = """
acl allowed dnswl wl.mxacl.example
acl listed rbl bl.mxacl.example
acl spamdom rhsbl dbl.mxacl.example=127.0.1.2
acl badhelo rhsbl_helo dbl.mxacl.example=127.0.1.3
acl badptr rhsbl_client dbl.mxacl.example
action ok PREPEND X-DNSWL: ${rbl_zone}
action rej REJECT listed at ${rbl_zone} (${rbl_answer}): ${rbl_txt}
action rejdom REJECT ${rbl_txt}
action rejhelo REJECT helo ${rbl_zone} ${rbl_answer}
action rejptr REJECT ptr ${rbl_answer}
access allowed ok
access listed rej
access spamdom rejdom
access badhelo rejhelo
access badptr rejptr
"""


def req(**kw):
    r = {"request": "smtpd_access_policy", "client_address": "192.0.2.1",
         "client_name": "unknown", "helo_name": "mail.example", "sender": "a@ok.example"}
    r.update(kw)
    return r


class DnsCase(dnsserver.DnsCase):
    RECORDS, ZONES = RECORDS, ZONES


class TestRblCli(DnsCase):
    def test_ipv4_listed_unlisted_and_txt(self):
        got = self.mxacl_test(CONF, [req(client_address="127.0.0.2"),
                                     req(client_address="127.0.0.9"),
                                     req(client_address="192.0.2.1")])
        self.assertEqual(got, [
            "action=REJECT listed at bl.mxacl.example (127.0.0.2): "
            "listed: see https://bl.example/127.0.0.2",
            "action=DUNNO", "action=DUNNO"])

    def test_ipv6_by_nibbles(self):
        got = self.mxacl_test(CONF, [req(client_address=V6), req(client_address="2001:db8::2")])
        self.assertEqual(got, ["action=REJECT listed at bl.mxacl.example (127.0.0.2): v6 listed",
                               "action=DUNNO"])

    def test_answers_outside_127_are_ignored(self):
        self.assertEqual(self.mxacl_test(CONF, [req(client_address="127.0.0.4")]),
                         ["action=DUNNO"])

    def test_all_answers_in_reply_without_txt(self):
        self.assertEqual(self.mxacl_test(CONF, [req(client_address="127.0.0.3")]),
                         ["action=REJECT listed at bl.mxacl.example (127.0.0.2,127.0.0.10):"])

    def test_filters_and_bitmasks(self):
        # answers: .10 -> 127.0.0.10; .11 -> 127.0.0.4; .12 -> 127.0.0.4 + 127.0.0.6
        cases = [
            ("=127.0.0.10", [True, False, False]),
            ("=127.0.0.4,127.0.0.10", [True, True, True]),
            ("==127.0.0.4", [False, True, False]),
            ("==127.0.0.4,127.0.0.6", [False, True, True]),
            ("!=127.0.0.4", [True, False, False]),
            ("!==127.0.0.4", [True, False, True]),
            ("&0.0.0.2", [True, False, True]),
            ("&0.0.0.4", [False, True, True]),
            ("&0.0.0.6", [False, False, True]),
            ("=&0.0.0.4", [False, True, True]),
            ("=&0.0.0.2", [True, False, False]),
            ("!&0.0.0.4", [True, False, False]),
            ("!=&0.0.0.2", [False, True, True]),
        ]
        reqs = [req(client_address="192.0.2.%d" % i) for i in (10, 11, 12, 13)]
        for spec, want in cases:
            conf = ("acl l rbl codes.mxacl.example%s\naction hit REJECT hit\n"
                    "access l hit\n" % spec)
            got = self.mxacl_test(conf, reqs)
            # 192.0.2.13 is not listed at all: never matches, negated or not
            self.assertEqual(got, ["action=REJECT hit" if w else "action=DUNNO"
                                   for w in want] + ["action=DUNNO"], spec)

    def test_several_zones_are_alternatives(self):
        conf = ("acl l rbl bl.mxacl.example other.mxacl.example=127.0.0.3\n"
                "action rej REJECT ${rbl_zone} ${rbl_answer} ${rbl_txt}\naccess l rej\n")
        got = self.mxacl_test(conf, [req(client_address="192.0.2.20"),
                                     req(client_address="127.0.0.2"),
                                     req(client_address="192.0.2.21")])
        self.assertEqual(got, ["action=REJECT other.mxacl.example 127.0.0.3 other says no",
                               "action=REJECT bl.mxacl.example 127.0.0.2 "
                               "listed: see https://bl.example/127.0.0.2",
                               "action=DUNNO"])

    def test_dnswl_allowlist(self):
        got = self.mxacl_test(CONF, [req(client_address="192.0.2.30", sender="a@spam.example")])
        self.assertEqual(got, ["action=PREPEND X-DNSWL: wl.mxacl.example"])

    def test_rhsbl_sender_helo_client(self):
        got = self.mxacl_test(CONF, [
            req(sender="someone@Spam.Example"),
            req(sender=""),
            req(helo_name="bad-helo.example"),
            req(helo_name="[192.0.2.1]"),
            req(client_name="bad-ptr.example."),
            req(client_name="unknown"),
        ])
        self.assertEqual(got, ["action=REJECT domain spam.example is listed",
                               "action=DUNNO",
                               "action=REJECT helo dbl.mxacl.example 127.0.1.3",
                               "action=DUNNO",
                               "action=REJECT ptr 127.0.1.4",
                               "action=DUNNO"])

    def never_conf(self, mode):
        return ("acl n rbl never.mxacl.example%s\naction rej REJECT listed\n"
                "action ok OK\naccess n rej\naccess ok\n" % (" tempfail=" + mode if mode else ""))

    def test_never_answering_zone_tempfail_modes(self):
        for mode, want in [(None, "action=OK"), ("nomatch", "action=OK"),
                           ("match", "action=REJECT listed"), ("default", "action=DUNNO")]:
            t0 = time.monotonic()
            got = self.mxacl_test(self.never_conf(mode), [req(client_address="192.0.2.40")],
                                  extra=["--dns-timeout", "300"])
            self.assertEqual(got, [want], mode)
            self.assertGreaterEqual(time.monotonic() - t0, 0.2)   # the 300 ms deadline

    def test_global_tempfail_setting(self):
        conf = "set tempfail match\n" + self.never_conf(None)
        self.assertEqual(self.mxacl_test(conf, [req(client_address="192.0.2.41")],
                                         extra=["--dns-timeout", "300"]),
                         ["action=REJECT listed"])

    def test_set_dns_and_errors(self):
        conf = "set dns %s\n%s" % (self.dns.server, CONF)
        path = self.write_conf(conf)        # no --dns: the policy names the server
        p = subprocess.run([mxacl_path(), "test", "-c", path],
                           input=fmt_request(req(client_address="127.0.0.2")),
                           capture_output=True, timeout=60)
        p.stdout, p.stderr = p.stdout.decode(), p.stderr.decode()
        self.assertTrue(p.stdout.startswith("action=REJECT listed at bl.mxacl.example"),
                        p.stdout + p.stderr)
        with open(path, "w") as f:
            f.write("set dns localhost:53\nacl l rbl bl..example =1.2.3.4\n"
                    "acl m rbl x.example&0.0.0.0\nacl n rbl x.example=127.0.0.2,\n"
                    "acl o rhsbl\nacl p rhsbl tempfail=match\naction r REJECT\n"
                    "access l m n o p r\n")
        p = subprocess.run([mxacl_path(), "check", "-c", path], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        for msg in ["'localhost' is not an IP address", "bad DNS list zone 'bl..example'",
                    "'=1.2.3.4' has no zone before its filter", "bad bitmask '0.0.0.0'",
                    "ends with ','", "acl 'o' has no values",
                    "rhsbl needs at least one zone"]:
            self.assertIn(msg, p.stderr)


class TestRblDaemon(DnsCase):
    def test_listed_and_waiting_for_a_silent_zone(self):
        conf = CONF + "acl n rbl never.mxacl.example tempfail=default\n" \
                      "acl slow sender slow@example.com\naction never REJECT never\n" \
                      "action fine OK\naccess slow n never\naccess fine\n"
        with Mxacld(conf, extra_args=["--dns", self.dns.server,
                                      "--dns-timeout", "1500"]) as d:
            self.assertEqual(d.query(req(client_address="127.0.0.2")),
                             "action=REJECT listed at bl.mxacl.example (127.0.0.2): "
                             "listed: see https://bl.example/127.0.0.2")
            self.assertEqual(d.query(req(client_address=V6)),
                             "action=REJECT listed at bl.mxacl.example (127.0.0.2): v6 listed")
            self.assertEqual(d.query(req(sender="x@spam.example")),
                             "action=REJECT domain spam.example is listed")
            done = {}

            def slow():
                with PolicyConn(d.endpoint) as c:
                    done["reply"] = c.request(req(sender="slow@example.com",
                                                  client_address="192.0.2.50"))
                    done["at"] = time.monotonic()

            t0 = time.monotonic()
            th = threading.Thread(target=slow)
            th.start()
            time.sleep(0.1)
            with PolicyConn(d.endpoint) as c:
                for i in range(20):
                    self.assertEqual(c.request(req(client_address="192.0.2.%d" % (100 + i))),
                                     "action=OK")
                self.assertEqual(c.request(req(client_address="127.0.0.2")).split(" ")[0],
                                 "action=REJECT")
            quick_at = time.monotonic()
            th.join(15)
            self.assertEqual(done.get("reply"), "action=DUNNO")  # tempfail=default
            self.assertLess(quick_at, done["at"])
            # it waited for the 1.5 s deadline (libevent may fire a timer a
            # little early: its clock is cached per loop pass)
            self.assertGreaterEqual(done["at"] - t0, 1.0)

    def test_failed_lookups_are_logged_once_a_minute(self):
        # three requests time out on the silent zone: one warning, with the
        # name and the reason, not one per request
        conf = ("acl n rbl never.mxacl.example\nacl l rbl bl.mxacl.example\n"
                "action rej REJECT\naction ok OK\naccess n rej\naccess l rej\naccess ok\n")
        with Mxacld(conf, extra_args=["--dns", self.dns.server, "--dns-timeout", "200"]) as d:
            for i in range(3):
                self.assertEqual(d.query(req(client_address="192.0.2.%d" % (60 + i))),
                                 "action=OK")
            self.assertEqual(d.query(req(client_address="127.0.0.2")), "action=REJECT")
            log = d.wait_log(r"decision .*127\.0\.0\.2")
        warnings = [l for l in log.splitlines() if "dns: lookup of" in l]
        self.assertEqual(len(warnings), 1, log)
        self.assertIn("warning: dns: lookup of 60.2.0.192.never.mxacl.example A failed: "
                      "timeout (1 failed lookup since start); acls answer as their tempfail= "
                      "says", warnings[0])

    def test_client_leaves_while_waiting(self):
        conf = ("acl n rbl never.mxacl.example\naction rej REJECT\naction ok OK\n"
                "access n rej\naccess ok\n")
        with Mxacld(conf, extra_args=["--dns", self.dns.server,
                                      "--dns-timeout", "300"]) as d:
            for i in range(5):
                c = PolicyConn(d.endpoint)
                c.send(req(client_address="192.0.2.%d" % (60 + i)))
                c.close()
            # the timers fire into abandoned requests
            d.wait_log(r"dns: lookup of \S+ A failed: timeout")
            self.assertEqual(d.query(req(client_address="192.0.2.70")), "action=OK")

    def test_stop_while_waiting(self):
        conf = ("acl n rbl never.mxacl.example\naction rej REJECT\naction ok OK\n"
                "access n rej\naccess ok\n")
        d = Mxacld(conf, extra_args=["--dns", self.dns.server, "--dns-timeout", "20000"])
        d.start()
        try:
            name = "80.2.0.192.never.mxacl.example"
            asked = self.dns.query_count(name)
            c = PolicyConn(d.endpoint)
            c.send(req(client_address="192.0.2.80"))
            self.dns.wait_query(name, asked)
            d.stop()             # exit 0 and no sanitizer report, lookup in flight
            c.close()
        finally:
            d.cleanup()

    def test_bad_dns_flag(self):
        from mxtest import run_mxacld
        p = run_mxacld(["-c", "/dev/null", "--dns", "dns.example:53"])
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("is not an IP address", p.stderr)


if __name__ == "__main__":
    unittest.main()
