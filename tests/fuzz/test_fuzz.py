"""Fuzz the policy compiler, the request parser and the one-scan regex
set against PCRE2 (fuzz_multire) for a bounded number of
runs (libFuzzer, built by `make fuzz` into build/fuzz). A crash, leak or
sanitizer report fails the test; the count of runs, not time, bounds it."""
import glob
import os
import shutil
import subprocess
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FUZZ = os.path.join(ROOT, "build", "fuzz")


def seeds_policy(d):
    files = [os.path.join(ROOT, "conf.d", "policy.conf")]
    files += [f for f in glob.glob(os.path.join(ROOT, "tests", "golden", "**", "*.conf"),
                                   recursive=True) if os.path.isfile(f)]
    for i, f in enumerate(files):
        shutil.copy(f, os.path.join(d, "seed%d" % i))


def seeds_request(d):
    reqs = [
        "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.1\n"
        "sender=a@b.example\nrecipient=c@d.example\n\n",
        "sender=\nsize=12\npolicy_test_time=1700000000\n\nsender=x\n\n",
        "noequals\n\n", "=x\n\n", "a=b\r\n\r\n",
    ]
    for i, r in enumerate(reqs):
        with open(os.path.join(d, "seed%d" % i), "w") as f:
            f.write(r)


def seeds_multire(d):
    """Patterns, an empty line, subjects (tests/fuzz/fuzz_multire.c)."""
    inputs = [
        b"^dsl[0-9]+\\.example$\ndyn|pool\n(a+)\\1\n(?<=x)y\n\nDSL12.example\naa\nxy\npool\n",
        b"\\bab\\B\n[^a-c]{2}$\n(?i:Ab)c\n(?>a|ab)c\n\nabc\nAB\nxyz\nab-\n",
        b"\xc3\xa9\nk\n\\x{212a}\n.\n\n\xc3\x89\n\xe2\x84\xaa\nK\na\xffb\n",
        b"^$\na?\n\\Z\n\\s+\n\na\n \t\nx\r\n",
    ]
    for i, s in enumerate(inputs):
        with open(os.path.join(d, "seed%d" % i), "wb") as f:
            f.write(s)


class FuzzTest(unittest.TestCase):
    def run_target(self, name, seeder, runs):
        exe = os.path.join(FUZZ, name)
        if not os.path.exists(exe):
            self.fail("%s is not built (make fuzz)" % exe)
        with tempfile.TemporaryDirectory() as d:
            corpus = os.path.join(d, "corpus")
            os.mkdir(corpus)
            seeder(corpus)
            p = subprocess.run([exe, "-runs=%d" % runs, "-max_len=4096", "-seed=1",
                                "-print_final_stats=1", corpus],
                               cwd=d, capture_output=True, text=True)
            self.assertEqual(p.returncode, 0,
                             "%s failed:\n%s" % (name, p.stderr[-4000:]))
            self.assertIn("Done %d runs" % runs, p.stderr)

    def test_policy_compiler(self):
        self.run_target("fuzz_policy", seeds_policy, 20000)

    def test_request_parser(self):
        self.run_target("fuzz_request", seeds_request, 100000)

    def test_multire_against_pcre2(self):
        # each run compiles a Vectorscan database: fewer runs
        self.run_target("fuzz_multire", seeds_multire, 3000)


if __name__ == "__main__":
    unittest.main()
