"""Golden tests: mxacl's exact output for checked-in inputs.

    tests/golden/diag/NAME.conf        `mxacl check -c NAME.conf`
    tests/golden/diag/NAME.expected    its stderr, then a last line "exit N"

    tests/golden/dump/NAME.conf        `mxacl dump -c NAME.conf`
    tests/golden/dump/NAME.expected    its stdout
    tests/golden/dump/values_NAME.conf `mxacl dump --values -c values_NAME.conf`

    tests/golden/transcript/NAME.conf      `mxacl test -c NAME.conf NAME.requests`
    tests/golden/transcript/NAME.requests  requests (name=value lines, an empty
                                           line after each)
    tests/golden/transcript/NAME.expected  its stdout: the replies mxacld sends
    tests/golden/transcript/NAME.args      (optional) more arguments of mxacl test,
                                           one per line (--dry-run, --explain);
                                           such a case also keeps its stderr
                                           (dry-run log lines, the trace) in
                                           NAME.stderr

Each command runs with the golden directory of its kind as the working
directory and relative file names, so outputs hold no absolute paths, and
with TZ=UTC and, for transcripts, --now NOW (below), so day and time acls
see the same clock everywhere; a request sets its own with
policy_test_time=EPOCH. Only files named *.conf directly in
the kind's directory are tests; value files and included files live next
to them under other names or in subdirectories.

The binary is $MXACL_BUILD/mxacl (default build/asan, relative to the
repository). A mismatch fails with a unified diff, expected -> actual.

    MXACL_GOLDEN_UPDATE=1 tests/run golden

rewrites every .expected file from the current binary. That records
whatever the binary does, bugs included: read every changed file (git
diff) and check it against docs/language.md before keeping it.
"""
import difflib
import os
import subprocess
import unittest

from mxtest import ScratchDir

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
UPDATE = os.environ.get("MXACL_GOLDEN_UPDATE") == "1"
KINDS = ("diag", "dump", "transcript")
# The clock of transcript requests without policy_test_time (--now):
# Tuesday 2024-01-02 12:00:00 UTC.
NOW = 1704196800


def mxacl_path():
    b = os.environ.get("MXACL_BUILD", "build/asan")
    if not os.path.isabs(b):
        b = os.path.join(ROOT, b)
    return os.path.join(b, "mxacl")


def run_env():
    env = dict(os.environ)
    env["TZ"] = "UTC"
    env.setdefault("ASAN_OPTIONS", "abort_on_error=1:detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


def run_mxacl(args, cwd, stdin=None):
    exe = mxacl_path()
    if not os.access(exe, os.X_OK):
        raise AssertionError("%s is not built (make asan, or set MXACL_BUILD)" % exe)
    return subprocess.run([exe] + args, cwd=cwd, env=run_env(), input=stdin,
                          capture_output=True, text=True, timeout=120)


def golden_output(kind, name):
    """What the case produces now, as the text its .expected file holds."""
    cwd = os.path.join(HERE, kind)
    conf = name + ".conf"
    if kind == "diag":
        p = run_mxacl(["check", "-c", conf], cwd)
        return p.stderr + "exit %d\n" % p.returncode, None
    if kind == "dump":
        flags = ["--values"] if name.startswith("values_") else []
        p = run_mxacl(["dump"] + flags + ["-c", conf], cwd)
    else:
        extra = transcript_args(name)
        p = run_mxacl(["test", "-c", conf, "--now", str(NOW)] + (extra or [])
                      + [name + ".requests"], cwd)
        if extra is not None:
            problem = None if p.returncode == 0 else "exit %d" % p.returncode
            return (p.stdout, p.stderr), problem
    problem = None
    if p.returncode != 0:
        problem = "exit %d, stderr:\n%s" % (p.returncode, p.stderr)
    return p.stdout, problem


def transcript_args(name):
    """The extra arguments of transcript NAME (NAME.args), or None."""
    path = os.path.join(HERE, "transcript", name + ".args")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return [l.strip() for l in f if l.strip() and not l.startswith("#")]


def cases(kind):
    d = os.path.join(HERE, kind)
    if not os.path.isdir(d):
        return []
    return sorted(f[:-5] for f in os.listdir(d)
                  if f.endswith(".conf") and os.path.isfile(os.path.join(d, f)))


class Golden(unittest.TestCase):
    maxDiff = None

    def check_golden(self, kind, name):
        expected_path = os.path.join(HERE, kind, name + ".expected")
        got, problem = golden_output(kind, name)
        if problem:
            self.fail("%s/%s: %s" % (kind, name, problem))
        if isinstance(got, tuple):       # NAME.args: stderr is golden too
            got, err = got
            self.compare(kind, name, os.path.join(HERE, kind, name + ".stderr"), err)
        self.compare(kind, name, expected_path, got)

    def compare(self, kind, name, expected_path, got):
        if UPDATE:
            with open(expected_path, "w") as f:
                f.write(got)
            return
        base = os.path.basename(expected_path)
        if not os.path.exists(expected_path):
            self.fail("%s/%s is missing (MXACL_GOLDEN_UPDATE=1 writes it; "
                      "then check it by hand)" % (kind, base))
        with open(expected_path) as f:
            want = f.read()
        if got != want:
            diff = "".join(difflib.unified_diff(
                want.splitlines(True), got.splitlines(True),
                fromfile="%s/%s" % (kind, base),
                tofile="%s/%s (actual)" % (kind, name)))
            self.fail("output differs from the golden file:\n" + diff)


def _make_test(kind, name):
    def test(self):
        self.check_golden(kind, name)
    test.__doc__ = "%s/%s" % (kind, name)
    return test


for _kind in KINDS:
    for _name in cases(_kind):
        setattr(Golden, "test_%s_%s" % (_kind, _name.replace("-", "_")),
                _make_test(_kind, _name))


class Generated(ScratchDir, unittest.TestCase):
    """Cases whose input is generated: too big, or needing absolute paths."""

    prefix = "mxacl-golden-"

    def test_big_literal_policy(self):
        """10,000 literal sender lines: one SWITCH, first match kept."""
        n = 10000
        lines = ["acl s%d sender user%d@example.com" % (i, i) for i in range(1, n + 1)]
        lines += ["action rej%d REJECT blocked %d" % (i, i) for i in range(1, n + 1)]
        lines += ["access s%d rej%d" % (i, i) for i in range(1, n + 1)]
        self.write("big.conf", "\n".join(lines) + "\n")

        p = run_mxacl(["check", "-c", "big.conf"], self.dir)
        self.assertEqual((p.returncode, p.stderr), (0, ""))

        p = run_mxacl(["dump", "-c", "big.conf"], self.dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.splitlines()
        self.assertEqual(out[0], "; big.conf: 10000 acls, 10001 actions, 10000 access lines, "
                                 "10002 instructions, 1 switch")
        code = [l for l in out if not l.startswith(";")]
        self.assertEqual(len(code), 10002)
        self.assertTrue(code[0].startswith(
            "0000  switch  sender, 10000 lines, 10000 keys, else 10001"), code[0])
        self.assertTrue(code[0].endswith("; big.conf:20001: access s1 rej1"), code[0])
        self.assertEqual([l for l in code if "switch " in l], [code[0]])
        self.assertEqual(code[-1].split(), ["10001", "verdict", "default", ";", "no",
                                            "line", "matched"])

        reqs = "".join("sender=%s\n\n" % s for s in (
            "user1@example.com", "USER5000@Example.COM", "user10000@example.com",
            "user10001@example.com", "user1@example.org", ""))
        p = run_mxacl(["test", "-c", "big.conf"], self.dir, stdin=reqs)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "action=REJECT blocked 1\n\n"
                                   "action=REJECT blocked 5000\n\n"
                                   "action=REJECT blocked 10000\n\n"
                                   "action=DUNNO\n\n"
                                   "action=DUNNO\n\n"
                                   "action=DUNNO\n\n")

    def test_bare_absolute_path_is_a_value_file(self):
        """As in apolicy, a bare absolute path (not a /regex/) is a value file."""
        lst = os.path.join(self.dir, "senders")
        self.write("senders", "# listed\nbad@example.com\n@worse.example\n")
        self.write("abs.conf", "acl listed sender %s\n"
                               "acl re sender /^x/\n"
                               "action no REJECT listed\n"
                               "action rx REJECT regex\n"
                               "access listed no\n"
                               "access re rx\n" % lst)
        p = run_mxacl(["check", "-c", "abs.conf"], self.dir)
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        reqs = "sender=BAD@example.com\n\nsender=a@worse.example\n\nsender=xy@z\n\nsender=ok@z\n\n"
        p = run_mxacl(["test", "-c", "abs.conf"], self.dir, stdin=reqs)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "action=REJECT listed\n\naction=REJECT listed\n\n"
                                   "action=REJECT regex\n\naction=DUNNO\n\n")

    def test_missing_bare_absolute_path(self):
        missing = os.path.join(self.dir, "nope")
        self.write("abs.conf", "acl listed sender %s\naccess listed\n" % missing)
        p = run_mxacl(["check", "-c", "abs.conf"], self.dir)
        self.assertEqual(p.returncode, 1)
        self.assertIn("abs.conf:1:19: error: cannot read value file '%s': "
                      "No such file or directory\n" % missing, p.stderr)

    def test_missing_config_file_fails(self):
        """A config that cannot be read is an error, not an empty policy."""
        p = run_mxacl(["check", "-c", "nothere.conf"], self.dir)
        self.assertEqual(p.stderr, "nothere.conf: error: cannot read 'nothere.conf': "
                                   "No such file or directory\n"
                                   "mxacl: nothere.conf: 1 error\n")
        self.assertEqual(p.returncode, 1)
        p = run_mxacl(["test", "-c", "nothere.conf"], self.dir, stdin="sender=a@b\n\n")
        self.assertEqual((p.returncode, p.stdout), (1, ""))


if __name__ == "__main__":
    unittest.main()
