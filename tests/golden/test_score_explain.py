"""--explain on a score: every term with its answer, whether it holds and
what it adds, then the sum against the threshold, then the score's own
line (the golden transcripts hold only the replies; this holds the trace).
The policy is transcript/score_weights.conf; a score over DNS lists, with
a failing term and lookups that wait, is in tests/dns/test_score.py."""
import os
import unittest

from test_golden import HERE, NOW, run_mxacl

REQUEST = "client_address=198.51.100.7\nclient_name=unknown\nhelo_name=[198.51.100.7]\n\n"

TRACE = """request 1 (-):
  acl zen (score_weights.conf:4) client_address: no match
  acl barracuda (score_weights.conf:5) client_address: match
  acl fcrdns (score_weights.conf:6) client_name: no match
  acl helo_mismatch (score_weights.conf:7) helo_name: match
  acl dnswl (score_weights.conf:8) client_address: no match
    term zen*3: no match, does not hold
    term barracuda*2: match, holds: +2
    term !fcrdns*1.5: no match, holds: +1.5
    term helo_mismatch*1: match, holds: +1
    term dnswl*-5: no match, does not hold
    score spammy = 4.5 >= 3: true
  acl spammy (score_weights.conf:10) score: match
  => decision client=unknown[198.51.100.7] helo=<[198.51.100.7]> from=<> to=<> \
score=<4.5> score_hits=<barracuda*2 !fcrdns*1.5 helo_mismatch*1> rule=score_weights.conf:12 action=REJECT 5.7.1 score 4.5 (barracuda*2 !fcrdns*1.5 helo_mismatch*1)
"""


class ScoreExplain(unittest.TestCase):
    maxDiff = None

    def test_each_term_shown(self):
        p = run_mxacl(["test", "--explain", "-c", "score_weights.conf", "--now", str(NOW)],
                      os.path.join(HERE, "transcript"), stdin=REQUEST)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "action=REJECT 5.7.1 score 4.5 "
                                   "(barracuda*2 !fcrdns*1.5 helo_mismatch*1)\n\n")
        self.assertEqual(p.stderr, TRACE)


if __name__ == "__main__":
    unittest.main()
