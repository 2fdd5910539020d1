"""The README's "Using it" lines work as written right after `make run`
(issue 12: "today req.txt does not exist and no control socket is started").

The daemon is started with the command `make run` runs (read from `make -n
run`, only the port changed to a free one), and each command of the first
block of "Using it" is run from the top of the tree, as a user would type
it, but for build/ being $MXACL_BUILD/. Each must exit 0 and say what the
README says it shows. The second block (a real mail log, a root daemon) is
not run here; the test checks that it is exactly those lines, so that a line
added to the first block cannot go unchecked.
"""
import os
import re
import shlex
import subprocess
import time
import unittest

from mxtest import connect, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("MXACL_BUILD", "build/asan").rstrip("/")


def using_it_blocks():
    """The indented command blocks of "Using it": [[command, ...], ...];
    continuation lines joined, `# ...` comments (also on lines of their own)
    dropped."""
    with open(os.path.join(ROOT, "README")) as f:
        readme = f.read()
    section = readme.split("\nUsing it\n", 1)[1].split("\nDocumentation\n", 1)[0]
    blocks, cur, cmd = [], [], ""
    for line in section.splitlines():
        if not line.startswith("    "):
            if cur:
                blocks.append(cur)
                cur = []
            continue
        text = line.split(" #", 1)[0].strip()
        if not text or text.startswith("#"):
            continue
        cmd += text
        if cmd.endswith("\\"):
            cmd = cmd[:-1].rstrip() + " "
            continue
        cur.append(cmd)
        cmd = ""
    if cur:
        blocks.append(cur)
    return blocks


def local(arg):
    """build/... of the README is $MXACL_BUILD/... here."""
    return BUILD + arg[5:] if arg.startswith("build/") else arg


class ReadmeUsingIt(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not os.access(os.path.join(ROOT, BUILD, "mxacld"), os.X_OK):
            raise AssertionError("%s/mxacld is not built" % BUILD)
        cls.blocks = using_it_blocks()
        cls.port = free_port()
        # what `make run` runs, less the deps and the build (make -n prints)
        p = subprocess.run(["make", "-s", "-n", "-C", ROOT, "run", "B=" + BUILD,
                            "RUN_LISTEN=inet:127.0.0.1:%d" % cls.port],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        runs = [l for l in p.stdout.splitlines() if l.startswith("./%s/mxacld " % BUILD)]
        assert len(runs) == 1, "make -n run: want one mxacld line:\n" + p.stdout
        cls.run_argv = shlex.split(runs[0])
        control = cls.run_argv[cls.run_argv.index("--control") + 1]
        cls.control = os.path.join(ROOT, control)
        if os.path.exists(cls.control):
            os.unlink(cls.control)  # left by a run that was killed
        cls.log = open(os.path.join(ROOT, BUILD, "test_readme.log"), "w+")
        cls.daemon = subprocess.Popen(cls.run_argv, cwd=ROOT, stdin=subprocess.DEVNULL,
                                      stdout=cls.log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                if cls.daemon.poll() is not None:
                    raise AssertionError("mxacld exited with %d" % cls.daemon.returncode)
                try:
                    connect("inet:127.0.0.1:%d" % cls.port, 1.0).close()
                    if os.path.exists(cls.control):
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError("mxacld did not come up as make run starts it")
                time.sleep(0.05)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.daemon.poll() is None:
            cls.daemon.terminate()
            cls.daemon.wait(timeout=30)
        cls.log.close()
        assert cls.daemon.returncode == 0, "mxacld exit %d" % cls.daemon.returncode

    def run_line(self, line):
        argv = [local(a) for a in shlex.split(line)]
        p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, "%s: exit %d\n%s%s" % (line, p.returncode,
                                                                p.stdout, p.stderr))
        return p.stdout

    def test_make_run_has_a_control_socket_the_readme_names(self):
        self.assertIn("--control", self.run_argv)
        control = self.run_argv[self.run_argv.index("--control") + 1]
        self.assertEqual(control, BUILD + "/control")
        readme_controls = {l.split("--control ", 1)[1].split()[0]
                           for l in self.blocks[0] if "--control " in l}
        self.assertEqual(readme_controls, {"build/control"})

    def test_each_line_runs(self):
        first = self.blocks[0]
        self.assertEqual(len(first), 5, first)
        seen = {}
        for line in first:
            with self.subTest(line=line):
                self.assertTrue(line.startswith("build/mxacl "), line)
                seen[shlex.split(line)[1]] = self.run_line(line)
        self.assertEqual(sorted(seen), ["check", "dump", "grey", "status", "test"])
        # what each shows
        self.assertRegex(seen["dump"], r"(?m)^\s*\d+")
        answers = re.findall(r"^action=(.*)$", seen["test"], re.M)
        self.assertEqual(answers, ["PREPEND X-Policy: checked by mxacl"] * 2 + ["DUNNO"])
        self.assertRegex(seen["status"], r"(?m)^version\s+\S+")
        self.assertRegex(seen["status"], r"conf\.d/policy\.conf")
        self.assertRegex(seen["grey"], r"\d+ triplets")

    def test_the_other_lines_are_the_ones_that_need_a_mail_server(self):
        """Not run: a real mail log and root. Anything else belongs above."""
        self.assertEqual(len(self.blocks), 2, self.blocks)
        rest = self.blocks[1]
        self.assertEqual(len(rest), 2, rest)
        self.assertIn("/var/log/mail.log", rest[0])
        self.assertIn("--user", rest[1])

    def test_request_file_is_what_postfix_sends(self):
        """conf.d/request.txt: whole requests as Postfix 3.7 sends them."""
        with open(os.path.join(ROOT, "conf.d", "request.txt")) as f:
            reqs = f.read().split("\n\n")
        reqs = [r for r in reqs if r.strip()]
        self.assertEqual(len(reqs), 3)
        for r in reqs:
            attrs = dict(l.split("=", 1) for l in r.splitlines())
            self.assertEqual(attrs["request"], "smtpd_access_policy")
            for a in ("client_address", "client_name", "helo_name", "sender", "instance",
                      "recipient_count", "size", "queue_id", "sasl_username"):
                self.assertIn(a, attrs)
        self.assertEqual([dict(l.split("=", 1) for l in r.splitlines())["protocol_state"]
                          for r in reqs], ["RCPT", "RCPT", "END-OF-MESSAGE"])


if __name__ == "__main__":
    unittest.main()
