"""Regex values answered by one Vectorscan scan (engine/multire.h): mxacl
check --why-pcre puts a note at each regex that Vectorscan does not
answer exactly, and nothing changes without the flag. The answers
themselves are golden (transcript/regex_set, made before the one-scan
path existed; dump/values_regex_set shows the paths).
"""
import unittest

from test_golden import run_mxacl
from mxtest import ScratchDir

POLICY = r"""acl helo helo_name ^\[?[0-9.]+\]?$ /^(x+)-\1\./ /(?C1)^ppp/ dyn|pool \.lan$
acl few sender /^(a)\1/ /b$/
action rej REJECT
access helo rej
access few rej
"""


class WhyPcre(ScratchDir, unittest.TestCase):
    prefix = "mxacl-whypcre-"

    def test_notes_say_which_path_and_why(self):
        self.write("policy.conf", POLICY)
        p = run_mxacl(["check", "--why-pcre", "-c", "policy.conf"], self.dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        notes = [l for l in p.stderr.splitlines() if ": note: " in l]
        want = [
            # a back-reference: Vectorscan's prefilter, then PCRE2
            ("policy.conf:1:37: note: runs in Vectorscan's prefilter, confirmed by PCRE2: "
             "Vectorscan: Back-references are unsupported"),
            ("policy.conf:1:50: note: runs in PCRE2 alone: Vectorscan: Callout at index 0 "
             "not supported, also as a prefilter"),
            # an acl of two regexes is below the one-scan threshold
            ("policy.conf:2:17: note: runs in PCRE2 alone: its acl has 2 regexes, fewer than "
             "the 4 a Vectorscan set is built for"),
            ("policy.conf:2:26: note: runs in PCRE2 alone: its acl has 2 regexes, fewer than "
             "the 4 a Vectorscan set is built for"),
        ]
        self.assertEqual(notes, want, p.stderr)
        # each note quotes its line with a caret under the pattern
        self.assertIn("/^(x+)-\\1\\./", p.stderr)

    def test_no_notes_without_the_flag(self):
        self.write("policy.conf", POLICY)
        p = run_mxacl(["check", "-c", "policy.conf"], self.dir)
        self.assertEqual((p.returncode, p.stderr), (0, ""))

    def test_flag_is_checks_only(self):
        self.write("policy.conf", POLICY)
        p = run_mxacl(["dump", "--why-pcre", "-c", "policy.conf"], self.dir)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--why-pcre is an option of check", p.stderr)


class CheckBuild(ScratchDir, unittest.TestCase):
    """mxacl check decides each regex's path pattern by pattern and builds
    no database (tests/unit/test_multire.c, test_classify_only, shows none
    is built); --build builds them as mxacld does and says how long."""
    prefix = "mxacl-checkbuild-"

    def test_build_only_when_asked(self):
        self.write("policy.conf", POLICY)
        p = run_mxacl(["check", "-c", "policy.conf"], self.dir)
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        p = run_mxacl(["check", "--build", "-c", "policy.conf"], self.dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stderr, r"\Amxacl: policy\.conf: regex databases: 1 built in "
                         r"[0-9]+\.[0-9]{2} s\n\Z")

    def test_same_notes_either_way(self):
        self.write("policy.conf", POLICY)
        a = run_mxacl(["check", "--why-pcre", "-c", "policy.conf"], self.dir)
        b = run_mxacl(["check", "--why-pcre", "--build", "-c", "policy.conf"], self.dir)
        notes = [l for l in a.stderr.splitlines() if ": note: " in l]
        self.assertEqual(len(notes), 4, a.stderr)
        self.assertEqual(notes, [l for l in b.stderr.splitlines() if ": note: " in l])

    def test_errors_still_found(self):
        self.write("policy.conf", "acl r helo_name /a/ /b/ /c/ /(d/\naccess r r\n")
        p = run_mxacl(["check", "-c", "policy.conf"], self.dir)
        self.assertEqual(p.returncode, 1)
        self.assertIn("policy.conf:1:32: error: bad regular expression: missing closing "
                      "parenthesis", p.stderr)

    def test_flag_is_checks_only(self):
        self.write("policy.conf", POLICY)
        p = run_mxacl(["dump", "--build", "-c", "policy.conf"], self.dir)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--build is an option of check", p.stderr)


# Patterns of every path (exact, prefilter, PCRE2 alone, non-ASCII) for
# the differential test of regex access lines.
LINE_PATTERNS = [r"^dyn-%d[-.]" , r"pool%d\.", r"(x)\1-%d", r"(?<=ab)c%d", r"^mx%d$",
                 r"(?C1)q%d", "caf\u00e9%d", r"\d{2}%d\.net$"]


def regex_lines_policy(n, folded):
    """n access lines, line i's acl one or two regexes on helo_name. Not
    folded: each line's first term is an acl that always matches, which
    no SWITCH keys, so each regex acl is tested on its own."""
    out = ["acl any client_address 0.0.0.0/0 ::/0\n"]
    for i in range(n):
        pats = [LINE_PATTERNS[i % len(LINE_PATTERNS)] % (i % 37)]
        if i % 5 == 0:
            pats.append(LINE_PATTERNS[(i + 3) % len(LINE_PATTERNS)] % (i % 11))
        out.append("acl r%d helo_name %s\n" % (i, " ".join("/%s/" % p for p in pats)))
        out.append("action a%d REJECT line %d\n" % (i, i))
        out.append("access %sr%d a%d\n" % ("" if folded else "any ", i, i))
    return "".join(out)


class RegexLines(ScratchDir, unittest.TestCase):
    """Consecutive access lines of regex acls on one attribute are one
    scan (a SWITCH over a multire set); the first line whose acl matches
    decides, exactly as line by line."""
    prefix = "mxacl-relines-"

    def test_same_answers_as_line_by_line(self):
        n = 400
        self.write("folded.conf", regex_lines_policy(n, True))
        self.write("plain.conf", regex_lines_policy(n, False))
        d = run_mxacl(["dump", "-c", "folded.conf"], self.dir)
        self.assertEqual(d.returncode, 0, d.stderr)
        self.assertRegex(d.stdout, r"switch  helo_name, %d lines, 480 regexes in one scan "
                         r"\(\d+ exact, \d+ prefilter\+pcre2, \d+ pcre2\)" % n)
        d = run_mxacl(["dump", "-c", "plain.conf"], self.dir)
        self.assertNotIn("regexes in one scan", d.stdout)
        subjects = ["dyn-%d.x" % i for i in range(0, 40, 3)] + \
                   ["pool%d.net" % i for i in range(0, 40, 4)] + \
                   ["xx-%d" % i for i in range(0, 40, 5)] + ["abc%d" % i for i in range(9)] + \
                   ["mx%d" % i for i in range(0, 40, 6)] + ["q1", "caf\u00e9%d" % 3, "CAF\u00c912",
                   "12%d.net" % 7, "nothing", "", "a\xffb", "DYN-7.X", "mx3", "mx3 "]
        reqs = "".join("request=smtpd_access_policy\nhelo_name=%s\nclient_address=192.0.2.%d\n\n"
                       % (s, k % 250 + 1) for k, s in enumerate(subjects))
        self.write("requests", reqs)
        a = run_mxacl(["test", "-c", "folded.conf", "requests"], self.dir)
        b = run_mxacl(["test", "-c", "plain.conf", "requests"], self.dir)
        self.assertEqual(a.returncode, 0, a.stderr)
        answers = [l for l in a.stdout.splitlines() if l.startswith("action=")]
        self.assertEqual(len(answers), len(subjects))
        self.assertEqual(a.stdout, b.stdout)
        # and the test means something: most subjects are rejected, by
        # lines of every kind
        rejected = [l for l in answers if l.startswith("action=REJECT")]
        self.assertGreater(len(rejected), len(subjects) * 2 // 3, a.stdout)
        self.assertIn("action=DUNNO", answers)


if __name__ == "__main__":
    unittest.main()
