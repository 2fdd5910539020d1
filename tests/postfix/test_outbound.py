"""conf.d/examples/outbound.conf, as shipped, behind a real Postfix wired
as its header says: the policy asked from smtpd_end_of_data_restrictions
only, SMTP AUTH through Postfix's Dovecot SASL client to a small auth
server (tests/lib/dovecotauth.py), message_size_limit raised. swaks sends
messages of 100 recipients and of 20 MB, and the tests read Postfix's SMTP
reply to the end of DATA. A refused message uses up nothing, whichever
line refuses it: one user's retried refused big messages do not eat its
recipient quota (test_volume_quota). The example's dry-run line (an
hourly recipient cap) changes no reply; its log lines and its counter on
the metrics endpoint show what it would have refused.

  - the memory store, one gateway (one Postfix, one mxacld);
  - Redis, two gateways: two Postfix instances, each with its own mxacld,
    both on one redis-server, the messages of one user sent through them
    in turn; and a race: messages sent at once through both never take a
    user over a quota (the accepted ones are counted against the limit,
    and so is the counter Redis holds).

The country rule needs client addresses with a country: Postfix lets
127.0.0.0/8 send XCLIENT (smtpd_authorized_xclient_hosts), and swaks sets
the client address with it before AUTH; mxacld gets a small MaxMind DB
(tests/lib/mkmmdb.pl) with --geoip, which wins over the example's `set
geoip`, as --store wins over its `set store`.
"""
import os
import re
import shutil
import subprocess
import tempfile
import threading
import unittest
import urllib.request

import postfix as pf
from dovecotauth import DovecotAuth
from mxtest import ROOT

EXAMPLE = os.path.join(ROOT, "conf.d", "examples", "outbound.conf")
MKMMDB = os.path.join(ROOT, "tests", "lib", "mkmmdb.pl")
REALM = "mxacl-test.localdomain"
DOMAIN = "relay.invalid"
USERS = {"%s@%s" % (u, REALM): u + "-secret"
         for u in ("alice", "bob", "carol", "dave", "erin", "frank")}
NETS = {"US": "192.0.2.9", "DE": "198.51.100.9", "FR": "203.0.113.9", "JP": "100.64.0.9"}
MB = 1024 * 1024


def user(name):
    return "%s@%s" % (name, REALM)


class Gateway:
    """One submission host: an mxacld with the example policy and a Postfix
    asking it at the end of DATA."""

    def __init__(self, store, geo, auth_port):
        self.store, self.geo, self.auth_port = store, geo, auth_port
        self.mx = self.postfix = None

    def start(self):
        with open(EXAMPLE) as f:
            conf = f.read()
        listen = "inet:127.0.0.1:%d" % pf.free_port()
        self.metrics_port = pf.free_port()
        self.mx = pf.start_mxacld(conf, listen, ["--store", self.store, "--geoip", self.geo,
                                                 "--metrics",
                                                 "inet:127.0.0.1:%d" % self.metrics_port])
        rules = "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"
        self.postfix = pf.PrivatePostfix(listen, main={
            # the example's main.cf and master.cf lines
            "smtpd_end_of_data_restrictions": "check_policy_service " + listen,
            "message_size_limit": "52428800",
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_type": "dovecot",
            "smtpd_sasl_path": "inet:127.0.0.1:%d" % self.auth_port,
            # the policy only at the end of DATA, as on a submission service
            "smtpd_recipient_restrictions": rules,
            "smtpd_relay_restrictions": rules,
            # swaks sets the client address (for its country) with XCLIENT
            "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
        })
        self.postfix.start()
        return self

    def stop(self):
        try:
            if self.postfix:
                self.postfix.stop()
        finally:
            self.postfix = None
            if self.mx:
                mx, self.mx = self.mx, None
                mx.stop()

    def send(self, login, nrcpt=1, body=None, addr=None):
        """Send one message as login; returns Postfix's reply to the end
        of DATA ("250 2.0.0 Ok: queued as ...", "452 4.5.3 ...")."""
        to = ",".join("r%d@%s" % (i, DOMAIN) for i in range(nrcpt))
        args = ["--from", login, "--to", to, "--auth", "PLAIN", "--auth-user", login,
                "--auth-password", USERS[login], "--suppress-data"]
        if body:
            args += ["--body", "@" + body]
        if addr:
            args += ["--xclient-addr", addr]
        t = self.postfix.swaks(*args)
        return end_of_data_reply(t)

    def dryrun_hits(self, rule):
        """mxacl_dryrun_hits_total{rule="RULE"} on this mxacld's metrics
        endpoint (0 before its first hit)."""
        url = "http://127.0.0.1:%d/metrics" % self.metrics_port
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
        m = re.search(r'^mxacl_dryrun_hits_total\{rule="%s"\} (\S+)$' % re.escape(rule),
                      text, re.M)
        return float(m.group(1)) if m else 0.0

    def context(self):
        return "\n--- mxacld log (end):\n%s\n--- Postfix maillog (end):\n%s" % (
            self.mx.log_text()[-3000:], self.postfix.log_text()[-3000:])


def end_of_data_reply(transcript):
    """The server's reply after the message content: swaks with
    --suppress-data prints a summary line where the content was; the
    reply follows it."""
    reply = pf.swaks_reply_after(transcript, r"\s*-> \d+ lines sent")
    if reply is None:
        raise AssertionError("no end-of-data reply in swaks transcript:\n" + transcript[-4000:])
    return reply


def accepted(reply):
    return reply.startswith("250 ") and "queued as" in reply


class OutboundBase:
    """The scenarios, run through self.gateways in turn (message i through
    gateway i mod N)."""

    gateways = ()
    store_url = None
    workdir = None
    auth = None

    @classmethod
    def setUpClass(cls):
        pf.require()
        cls.workdir = tempfile.mkdtemp(prefix="mxacl-outbound-")
        try:
            cls.geo = os.path.join(cls.workdir, "geo.mmdb")
            subprocess.run(["perl", MKMMDB, cls.geo] +
                           ["%s/24=%s" % (a.rsplit(".", 1)[0] + ".0", c) for c, a in NETS.items()],
                           check=True, timeout=60)
            cls.big = os.path.join(cls.workdir, "20mb")
            cls.small = os.path.join(cls.workdir, "5mb")
            for path, size in ((cls.big, 20 * MB), (cls.small, 5 * MB)):
                with open(path, "w") as f:
                    line = "x" * 76 + "\r\n"
                    f.write(line * (size // len(line)))
            cls.auth = DovecotAuth(USERS).start()
            cls.start_store()
            cls.gateways = [Gateway(cls.store_url, cls.geo, cls.auth.port).start()
                            for _ in range(cls.n_gateways)]
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for g in cls.gateways:
                g.stop()
        finally:
            cls.gateways = ()
            cls.stop_store()
            if cls.auth:
                cls.auth.stop()
                cls.auth = None
            if cls.workdir:
                shutil.rmtree(cls.workdir, ignore_errors=True)

    @classmethod
    def start_store(cls):
        cls.store_url = "memory"

    @classmethod
    def stop_store(cls):
        pass

    def context(self):
        return "".join(g.context() for g in self.gateways)

    def run_scenario(self, login, steps):
        """steps: (kwargs of Gateway.send, expected reply regex); each
        message goes through the next gateway."""
        for i, (kw, want) in enumerate(steps):
            g = self.gateways[i % len(self.gateways)]
            got = g.send(user(login), **kw)
            self.assertRegex(got, want, "message %d of %s (%s) via gateway %d%s" % (
                i + 1, login, kw, i % len(self.gateways), g.context()))

    def dryrun_hits(self):
        return sum(g.dryrun_hits("hourly_quota") for g in self.gateways)

    def test_recipients_quota(self):
        """Five messages of 100 recipients pass, the sixth is refused with
        the policy's text; a refused message (150 recipients, over the
        quota) uses nothing up: a message of 100 after it still passes.
        The dry-run hourly cap (100) changes none of these replies: each
        message past it that the quotas let through is logged as what it
        would have answered, and counted."""
        a = user("alice")
        hits = self.dryrun_hits()
        ok = r"^250 2\.0\.0 Ok: queued as "
        over = (r"^452 4\.5\.3 <END-OF-MESSAGE>: End-of-data rejected: %s may send to 500 "
                r"recipients a day; this message would make %d\. Try again later$")
        self.run_scenario("alice", [
            (dict(nrcpt=100), ok),
            (dict(nrcpt=100), ok),
            (dict(nrcpt=100), ok),
            (dict(nrcpt=100), ok),
            (dict(nrcpt=150), over % (re.escape(a), 550)),
            (dict(nrcpt=100), ok),           # the fifth of 100: 500
            (dict(nrcpt=100), over % (re.escape(a), 600)),   # the sixth
            (dict(nrcpt=1), over % (re.escape(a), 501)),
        ])
        # the hourly cap: the first 100 fit; the 2nd, 3rd, 4th and the
        # 6th message would have made 200 (a message it would refuse is
        # not recorded; the 5th and the last two were refused above it)
        would = (r"^.*dryrun client=\S+ helo=<[^>]*> from=<%s> .*rule=hourly_quota "
                 r"would=452 4\.5\.3 %s may send to 100 recipients an hour; this message "
                 r"would make (\d+)\. Try again later$" % (re.escape(a), re.escape(a)))
        got = [m for g in self.gateways for m in re.findall(would, g.mx.log_text(), re.M)]
        self.assertEqual(got, ["200"] * 4, self.context())
        self.assertEqual(self.dryrun_hits() - hits, 4)

    def test_volume_quota(self):
        """Both quotas on one user. Two 20 MB messages to 100 recipients
        pass, the third is refused by the volume and retried twice; a 5 MB
        message after them passes (the refused 20 MB were not counted);
        a 20 MB one is refused again. The refused messages had passed the
        recipients line above the volume line, and their recipients were
        given back: the user still has exactly 500 recipients a day (before
        refunds they used them up, and this test sent 1 recipient a message
        to keep out of the recipients quota)."""
        b = user("bob")
        ok = r"^250 2\.0\.0 Ok: queued as "
        over = (r"^452 4\.7\.1 <END-OF-MESSAGE>: End-of-data rejected: %s may send 50 MB a "
                r"day; this message would make (\d+) bytes\. Try again later$" % re.escape(b))
        rcpts = (r"^452 4\.5\.3 <END-OF-MESSAGE>: End-of-data rejected: %s may send to 500 "
                 r"recipients a day; this message would make 501\. Try again later$"
                 % re.escape(b))
        self.run_scenario("bob", [
            (dict(nrcpt=100, body=self.big), ok),        # 100 recipients, 20 MB
            (dict(nrcpt=100, body=self.big), ok),        # 200, 40 MB
            (dict(nrcpt=100, body=self.big), over),      # refused: still 200
            (dict(nrcpt=100, body=self.big), over),      # retried: still 200
            (dict(nrcpt=100, body=self.big), over),      # and again
            (dict(nrcpt=100, body=self.small), ok),      # 300, 45 MB
            (dict(nrcpt=100, body=self.big), over),
            (dict(nrcpt=100), ok),                       # 400
            (dict(nrcpt=100), ok),                       # 500
            (dict(nrcpt=1), rcpts),
        ])

    def test_roaming(self):
        """Three countries in an hour pass, a fourth is deferred; a known
        country and an address without one still pass; another user is
        not affected."""
        ok = r"^250 2\.0\.0 Ok: queued as "
        hold = (r"^450 4\.7\.1 <END-OF-MESSAGE>: End-of-data rejected: %s was used from 4 "
                r"countries within an hour; contact support$" % re.escape(user("carol")))
        self.run_scenario("carol", [
            (dict(addr=NETS["US"]), ok),
            (dict(addr=NETS["DE"]), ok),
            (dict(), ok),                    # loopback: no country, not counted
            (dict(addr=NETS["FR"]), ok),
            (dict(addr=NETS["JP"]), hold),
            (dict(addr=NETS["DE"]), ok),
            (dict(addr="192.0.2.77"), ok),   # US again
        ])
        self.run_scenario("dave", [(dict(addr=NETS["JP"]), ok)])
        # the deferral is in Postfix's log as such
        log = "".join(g.postfix.log_text() for g in self.gateways)
        self.assertRegex(log, r"reject: END-OF-MESSAGE from \S+\[100\.64\.0\.9\]: 450 4\.7\.1 "
                              r"<END-OF-MESSAGE>: End-of-data rejected: carol@")


class MemoryStoreTest(OutboundBase, unittest.TestCase):
    n_gateways = 1


class RedisTwoGatewaysTest(OutboundBase, unittest.TestCase):
    n_gateways = 2
    redis = None

    @classmethod
    def start_store(cls):
        from redis import PATIENT, RedisServer
        cls.redis = RedisServer()
        cls.redis.start()
        cls.store_url = cls.redis.url + PATIENT

    @classmethod
    def stop_store(cls):
        if cls.redis:
            cls.redis.stop()
            cls.redis.cleanup()
            cls.redis = None

    def race(self, login, n, **kw):
        """Send n messages at once, half through each gateway; returns the
        replies."""
        replies = [None] * n

        def one(i):
            try:
                replies[i] = self.gateways[i % 2].send(user(login), **kw)
            except BaseException as e:   # reported below
                replies[i] = "exception: %r" % e
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(pf.WAIT * 3)
        return replies

    def test_race_recipients(self):
        """12 messages of 100 recipients at once through both gateways:
        exactly 5 are accepted (500), the others refused with the quota's
        text, and Redis holds 500 for the user."""
        replies = self.race("erin", 12, nrcpt=100)
        ok = [r for r in replies if accepted(r)]
        refused = [r for r in replies if r and r.startswith("452 4.5.3 ")]
        self.assertEqual((len(ok), len(refused)), (5, 7), "%s%s" % (replies, self.context()))
        key = "mxacl:q:recipients|sasl_username|500/86400|" + user("erin")
        slots = self.redis.cmd("HGETALL", key)
        self.assertEqual(sum(int(v) for v in slots[1::2]), 500, slots)
        # both gateways answered some of them
        for g in self.gateways:
            self.assertIn("sasl_username=<%s>" % user("erin"), g.mx.log_text())

    def test_race_volume(self):
        """5 messages of 20 MB at once through both gateways: two are
        accepted, never three."""
        replies = self.race("frank", 5, body=self.big)
        ok = [r for r in replies if accepted(r)]
        refused = [r for r in replies if r and r.startswith("452 4.7.1 ")]
        self.assertEqual((len(ok), len(refused)), (2, 3), "%s%s" % (replies, self.context()))
        key = "mxacl:q:bytes|sasl_username|52428800/86400|" + user("frank")
        slots = self.redis.cmd("HGETALL", key)
        total = sum(int(v) for v in slots[1::2])
        self.assertGreater(total, 40 * MB)
        self.assertLessEqual(total, 50 * MB)


if __name__ == "__main__":
    unittest.main()
