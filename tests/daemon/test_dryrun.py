"""Dry runs on a real mxacld: a "dryrun access" line that matches is
logged as "dryrun ... would=..." before the decision line, which lists it
in dryrun=<...> and is decided by the lines after it; the counters
mxacl_dryrun_hits_total{rule} and mxacl_dryrun_would_total{action} count
it (metrics endpoint and `mxacl stats`). --dry-run puts the whole policy
in a dry run: what it would answer is logged and counted, the reply is
DUNNO, and a reload keeps the flag."""
import os
import re
import subprocess
import sys
import unittest

from mxtest import mxacl_path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_metrics import MetricsCase, request, value  # noqa: E402

CONF = ("acl bad sender bad@example.com\n"
        "acl worse sender worse@example.com\n"
        "action rej REJECT go away\n"
        "action hold HOLD look at ${sender}\n"
        "dryrun access new_rule: bad hold\n"
        "access old_rule: bad rej\n"
        "access worse rej\n")


def lines(d, what, n):
    return re.findall(r"%s .*$" % what, d.wait_log(r"%s " % what, count=n), re.M)


class DryRunLineTest(MetricsCase):
    def test_logged_counted_and_the_next_line_decides(self):
        d = self.start(CONF)
        self.assertEqual(d.query(request("bad@example.com")), "action=REJECT go away")
        self.assertEqual(d.query(request("ok@example.com")), "action=DUNNO")
        dry = lines(d, "dryrun", 1)
        self.assertEqual(dry, ["dryrun client=unknown[192.0.2.7] helo=<> from=<bad@example.com> "
                               "to=<bob@example.net> rule=new_rule would=HOLD look at "
                               "bad@example.com"])
        dec = lines(d, "decision", 2)
        self.assertTrue(dec[0].endswith(" dryrun=<new_rule:HOLD> rule=old_rule "
                                        "action=REJECT go away"), dec[0])
        self.assertNotIn("dryrun=", dec[1])
        log = d.log_text()
        self.assertLess(log.index("dryrun client="), log.index("decision client="))
        got = self.samples()
        self.assertEqual(value(got, "mxacl_dryrun_hits_total", rule="new_rule"), 1)
        self.assertEqual(value(got, "mxacl_dryrun_would_total", action="HOLD"), 1)
        self.assertEqual(value(got, "mxacl_rule_hits_total", rule="old_rule"), 1)
        self.assertFalse(value(got, "mxacl_rule_hits_total", rule="new_rule"))
        self.assertEqual(value(got, "mxacl_requests_total", action="REJECT"), 1)
        stats = subprocess.run([mxacl_path(), "stats", "--control", self.ctl],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(stats.returncode, 0, stats.stderr)
        self.assertIn('dryrun_hits{rule="new_rule"} 1\n', stats.stdout)
        self.assertIn('dryrun_would{action="HOLD"} 1\n', stats.stdout)


class DryRunPolicyTest(MetricsCase):
    def test_flag_answers_dunno_and_survives_a_reload(self):
        d = self.start(CONF, extra=["--dry-run"])
        self.assertEqual(d.query(request("worse@example.com")), "action=DUNNO")
        self.assertEqual(d.query(request("ok@example.com")), "action=DUNNO")
        dry = lines(d, "dryrun", 1)
        self.assertTrue(dry[0].endswith(" rule=%s:7 would=REJECT go away" % d.conf_path), dry)
        dec = lines(d, "decision", 2)
        self.assertTrue(dec[0].endswith(" dryrun=<%s:7:REJECT> rule=%s:7 action=DUNNO"
                                        % (d.conf_path, d.conf_path)), dec[0])
        got = self.samples()
        self.assertEqual(value(got, "mxacl_requests_total", action="DUNNO"), 2)
        self.assertFalse(value(got, "mxacl_requests_total", action="REJECT"))
        self.assertEqual(value(got, "mxacl_dryrun_would_total", action="REJECT"), 1)
        # a reload compiles with the flag again
        self.assertTrue(d.reload(CONF + "# reloaded\n"))
        self.assertEqual(d.query(request("worse@example.com")), "action=DUNNO")
        got = self.samples()
        self.assertEqual(value(got, "mxacl_dryrun_would_total", action="REJECT"), 2)


if __name__ == "__main__":
    unittest.main()
