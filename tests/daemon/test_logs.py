"""Logs an admin greps, on a real mxacld: access-line names in the decision
line and in the rule label of mxacl_rule_hits_total (a reload that moves
lines keeps the series); greylist=<...> from a real redis-server through
every state postgrey names; tempfail=<acl:mode> when a lookup failed (a
dead Redis port); SIGUSR1 reopens the log and leaves the policy alone, and
everything shipped tells logrotate to send SIGUSR1."""
import hashlib
import os
import re
import shutil
import signal
import sys
import time
import unittest

from mxtest import ROOT, Mxacld, free_port

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_metrics import MetricsCase, request, value  # noqa: E402
from redis import RedisServer  # noqa: E402

DECISION = re.compile(r"decision .*$", re.M)


def decisions(d, n):
    """The decision lines, once n are there (they are written once per
    turn of the loop, after the replies)."""
    return DECISION.findall(d.wait_log(r"decision ", count=n))


class LineNamesTest(MetricsCase):
    CONF = ("acl bad sender bad@example.com\n"
            "acl worse sender worse@example.com\n"
            "action rej REJECT go away\n"
            "access block_bad: bad rej\n"
            "access worse rej\n")

    def test_name_in_decision_line_and_metrics_and_it_survives_a_move(self):
        d = self.start(self.CONF)
        d.query(request("bad@example.com"))
        d.query(request("worse@example.com"))
        lines = decisions(d, 2)
        self.assertEqual(len(lines), 2, lines)
        self.assertTrue(lines[0].endswith(" rule=block_bad action=REJECT go away"), lines[0])
        self.assertTrue(lines[1].endswith(" rule=%s:5 action=REJECT go away" % d.conf_path),
                        lines[1])
        got = self.samples()
        self.assertEqual(value(got, "mxacl_rule_hits_total", rule="block_bad"), 1)
        self.assertIsNone(value(got, "mxacl_rule_hits_total", rule=d.conf_path + ":4"))
        self.assertEqual(value(got, "mxacl_rule_hits_total", rule=d.conf_path + ":5"), 1)
        # the lines move (a comment on top, their order swapped): the named
        # one keeps its series, the unnamed one gets a new FILE:LINE
        self.assertTrue(d.reload("# moved\n# down\n" + self.CONF.replace(
            "access block_bad: bad rej\naccess worse rej\n",
            "access worse rej\naccess block_bad: bad rej\n")))
        d.query(request("bad@example.com"))
        d.query(request("worse@example.com"))
        got = self.samples()
        self.assertEqual(value(got, "mxacl_rule_hits_total", rule="block_bad"), 2)
        self.assertEqual(value(got, "mxacl_rule_hits_total", rule=d.conf_path + ":6"), 1)
        self.assertTrue(decisions(d, 4)[2].endswith(" rule=block_bad action=REJECT go away"))


class GreylistLogTest(unittest.TestCase):
    """greylist=<...> on the decision line, as postgrey says it, through a
    real redis-server (the grey script returns what it did)."""

    def setUp(self):
        if not shutil.which("redis-server"):
            self.skipTest("redis-server is not installed")
        self.redis = RedisServer().start()
        self.addCleanup(self.redis.stop)

    def test_new_early_first_pass_passed_awl(self):
        conf = ("acl grey greylist delay=2s awl=2\n"
                "action wait DEFER_IF_PERMIT greylisted: ${greylist_reason}\n"
                "action tag PREPEND X-Greylist: ${greylist_reason}\n"
                "access waiting: grey wait\n"
                "access passed: tag\n")
        with Mxacld(conf, extra_args=["--store", self.redis.url]) as d:
            first = d.query(request("alice@example.org"))
            d.query(request("bob@example.org"))
            early = d.query(request("alice@example.org"))
            time.sleep(2.2)
            passed_first = d.query(request("alice@example.org"))
            passed = d.query(request("alice@example.org"))
            # bob's first pass is the second of 192.0.2.0/24 (awl=2): a new
            # triplet from there passes at once
            d.query(request("bob@example.org"))
            awl = d.query(request("carol@example.org"))
            lines = decisions(d, 7)
        self.assertEqual(first, "action=DEFER_IF_PERMIT greylisted: new")
        self.assertRegex(early, r"^action=DEFER_IF_PERMIT greylisted: early retry, [12] s missing$")
        self.assertRegex(passed_first, r"^action=PREPEND X-Greylist: passed after [23] s$")
        self.assertEqual(passed, "action=PREPEND X-Greylist: passed")
        self.assertEqual(awl, "action=PREPEND X-Greylist: awl")
        self.assertEqual(len(lines), 7, lines)
        self.assertIn(" greylist=<new> rule=waiting action=DEFER_IF_PERMIT", lines[0])
        self.assertRegex(lines[2], r" greylist=<early retry, [12] s missing> rule=waiting ")
        self.assertRegex(lines[3], r" greylist=<passed after [23] s> rule=passed ")
        self.assertIn(" greylist=<passed> rule=passed ", lines[4])
        self.assertRegex(lines[5], r" greylist=<passed after [23] s> rule=passed ")
        self.assertIn(" greylist=<awl> rule=passed ", lines[6])


class TempfailLogTest(unittest.TestCase):
    """A decision taken because a lookup failed names the acl and its mode:
    the store is a Redis port nobody listens on."""

    def test_default_match_and_nomatch(self):
        conf = ("acl strict_rcpt recipient strict@example.org\n"
                "acl soft_rcpt recipient soft@example.org\n"
                "acl grey greylist delay=1m tempfail=default\n"
                "acl grey_soft greylist delay=1m tempfail=match\n"
                "acl grey_open greylist delay=1m\n"
                "action wait DEFER_IF_PERMIT wait\n"
                "action accept OK\n"
                "access strict: strict_rcpt grey wait\n"
                "access soft: soft_rcpt grey_soft wait\n"
                "access open: grey_open wait\n"
                "access rest: accept\n")
        with Mxacld(conf, extra_args=["--store", "redis://127.0.0.1:%d" % free_port()]) as d:
            def ask(rcpt):
                r = dict(request("alice@example.org"), recipient=rcpt)
                return d.query(r)
            got = [ask("strict@example.org"), ask("soft@example.org"), ask("r@example.org")]
            lines = decisions(d, 3)
        self.assertEqual(got, ["action=DUNNO", "action=DEFER_IF_PERMIT wait", "action=OK"])
        self.assertEqual(len(lines), 3, lines)
        self.assertIn(" tempfail=<grey:default> rule=tempfail action=DUNNO", lines[0])
        self.assertIn(" tempfail=<grey_soft:match> rule=soft action=DEFER_IF_PERMIT wait",
                      lines[1])
        # grey_open's failure (nomatch, the default) ended the line "open"
        self.assertIn(" tempfail=<grey_open:nomatch> rule=rest action=OK", lines[2])
        for line in lines:
            self.assertNotIn("greylist=", line)


class SignalTest(MetricsCase):
    def test_sigusr1_reopens_the_log_and_does_not_reload(self):
        d = Mxacld("acl bad sender bad@example.com\naction rej REJECT v1\naccess bad rej\n")
        logfile = os.path.join(d.tmpdir, "decisions.log")
        d.log_mode = logfile
        self.mport = free_port()
        d.extra_args += ["--metrics", "inet:127.0.0.1:%d" % self.mport]
        self.addCleanup(d.cleanup)
        d.start()
        before = self.samples()
        info = [k for k in before if k[0] == "mxacl_policy_info"]
        load_time = value(before, "mxacl_policy_load_time_seconds")
        self.assertEqual(d.query(request("bad@example.com")), "action=REJECT v1")
        # the file changes and the log is rotated: only the log follows
        d.write_conf("acl bad sender bad@example.com\naction rej REJECT v2\naccess bad rej\n")
        os.rename(logfile, logfile + ".1")
        d.signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not (os.path.exists(logfile) and
                   "log reopened on SIGUSR1" in open(logfile).read()):
            self.assertLess(time.monotonic(), deadline, "the log was not reopened")
            time.sleep(0.02)
        self.assertEqual(d.query(request("bad@example.com")), "action=REJECT v1")
        after = self.samples()
        self.assertEqual([k for k in after if k[0] == "mxacl_policy_info"], info)
        self.assertEqual(value(after, "mxacl_policy_load_time_seconds"), load_time)
        self.assertEqual(value(after, "mxacl_reloads_total"), 0)
        self.assertEqual(value(after, "mxacl_reloads_failed_total"), 0)
        d.stop()
        new = open(logfile).read()
        self.assertIn("action=REJECT v1", new)
        self.assertNotIn("reload", open(logfile + ".1").read() + new)
        with open(d.conf_path, "rb") as f:
            changed = hashlib.sha256(f.read()).hexdigest()
        self.assertNotIn(("sha256", changed), [lab for k in info for lab in k[1]])


class ShippedLogrotateTest(unittest.TestCase):
    """Everything shipped tells logrotate to send SIGUSR1 (reopen only),
    never SIGHUP (which also reloads the policy)."""

    FILES = ("dist/mxacld.service.in", "docs/operations.md", "docs/man/mxacld.8")

    def test_logrotate_is_told_sigusr1(self):
        for rel in self.FILES:
            with open(os.path.join(ROOT, rel)) as f:
                text = f.read()
            self.assertIn("logrotate", text, rel)
            # each paragraph that speaks of logrotate names USR1, not HUP
            for para in re.split(r"\n\s*\n", text):
                if "logrotate" not in para:
                    continue
                self.assertRegex(para, r"USR1", "%s: %s" % (rel, para))
                self.assertNotRegex(para, r"(kill|signal)[ =-]+(-s )?(SIG)?HUP",
                                    "%s: %s" % (rel, para))
        with open(os.path.join(ROOT, "docs/operations.md")) as f:
            ops = f.read()
        # a logrotate stanza to copy, whose postrotate sends USR1
        m = re.search(r"```\n(/var/log/mxacld[^\n]*\{\n.*?\n\})\n```", ops, re.S)
        self.assertTrue(m, "no logrotate stanza in docs/operations.md")
        self.assertRegex(m.group(1), r"postrotate\n\s+.*USR1.*\n\s+endscript")


if __name__ == "__main__":
    unittest.main()
