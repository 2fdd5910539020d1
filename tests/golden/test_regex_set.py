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


if __name__ == "__main__":
    unittest.main()
