"""Refunds on a real mxacld: a message that a later line refuses gives
back what the lines above it counted (mxacl_refunds_total counts each
rate amount and distinct value taken back, as `refunds` in mxacl stats);
a dry run refuses nothing, so it refunds nothing: neither a "dryrun
access" line that would refuse (the request goes on) nor a whole policy
in --dry-run (the reply is DUNNO), and the counts stay recorded.

mxacld's clock is real time; the windows are an hour and the tests take
seconds."""
import os
import subprocess
import sys
import unittest

from mxtest import mxacl_path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_metrics import MetricsCase, value  # noqa: E402

CONF = """
acl eom    protocol_state END-OF-MESSAGE
acl rcpts  rate sasl_username 10/1h count=recipients
acl helos  distinct sasl_username helo_name 2/1h
acl big    size >1000000
action too_many 452 4.5.3 recipients: ${rate_count}
action too_big  552 5.3.4 too big
access eom rcpts too_many
access eom helos too_many
%s access eom big too_big
"""


def msg(rcpts, size=1000, helo="a.example"):
    return {"request": "smtpd_access_policy", "protocol_state": "END-OF-MESSAGE",
            "sasl_username": "alice", "helo_name": helo, "recipient_count": str(rcpts),
            "size": str(size)}


class RefundTest(MetricsCase):
    def refunds(self):
        return value(self.samples(), "mxacl_refunds_total")

    def test_refused_message_gives_back_its_counts(self):
        d = self.start(CONF % "")
        self.assertEqual(self.refunds(), 0)
        self.assertEqual(d.query(msg(4)), "action=DUNNO")
        # refused by the last line: its 6 recipients and HELO b go back
        self.assertEqual(d.query(msg(6, size=2000000, helo="b.example")),
                         "action=552 5.3.4 too big")
        self.assertEqual(self.refunds(), 2)
        self.assertEqual(d.query(msg(6, helo="c.example")), "action=DUNNO")      # 10, {a, c}
        self.assertEqual(d.query(msg(1)), "action=452 4.5.3 recipients: 11")
        self.assertEqual(self.refunds(), 2)      # refused by the counter itself: not counted
        stats = subprocess.run([mxacl_path(), "stats", "--control", self.ctl],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(stats.returncode, 0, stats.stderr)
        self.assertIn("\nrefunds 2\n", stats.stdout)

    def test_dryrun_line_refunds_nothing(self):
        # the refusing line as a dry run: the request goes on, is accepted,
        # and keeps its counts
        d = self.start(CONF % "dryrun")
        self.assertEqual(d.query(msg(6, size=2000000)), "action=DUNNO")
        self.assertEqual(d.query(msg(6)), "action=452 4.5.3 recipients: 12")
        self.assertEqual(self.refunds(), 0)
        self.assertEqual(value(self.samples(), "mxacl_dryrun_would_total", action="552"), 1)

    def test_dry_run_policy_refunds_nothing(self):
        # --dry-run: the reply is DUNNO, nothing is refused, every count stays
        d = self.start(CONF % "", extra=["--dry-run"])
        self.assertEqual(d.query(msg(6, size=2000000)), "action=DUNNO")
        self.assertEqual(d.query(msg(6)), "action=DUNNO")
        self.assertEqual(self.refunds(), 0)
        log = d.wait_log(r"dryrun .*would=452 4\.5\.3 recipients: 12")
        self.assertIn("would=552 5.3.4 too big", log)


if __name__ == "__main__":
    unittest.main()
