"""conf.d/policy.conf as shipped, and as its comments say to change it:
it compiles without a warning, and so does the DNS block at its end once
uncommented and moved where the comment says ("move these above `access
our_domains tag`"). How it behaves behind Postfix: tests/postfix/test_examples.py.
"""
import os
import subprocess
import tempfile
import unittest

from mxtest import mxacl_path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POLICY = os.path.join(ROOT, "conf.d", "policy.conf")


def check(text):
    with tempfile.TemporaryDirectory() as d:
        os.symlink(os.path.join(ROOT, "conf.d", "lists"), os.path.join(d, "lists"))
        path = os.path.join(d, "policy.conf")
        with open(path, "w") as f:
            f.write(text)
        return subprocess.run([mxacl_path(), "check", "-c", path], capture_output=True,
                              text=True, timeout=60)


class ExampleConf(unittest.TestCase):

    def test_as_shipped(self):
        with open(POLICY) as f:
            p = check(f.read())
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))

    def test_examples_as_shipped(self):
        """conf.d/examples/*.conf (installed as documentation) compile
        without a warning; how they behave: test_policyd_weight.py,
        test_postscreen_weights.py, tests/postfix/test_outbound.py. An
        example that names a GeoIP database with `set geoip` (outbound.conf:
        where geoipupdate puts it, absent here) is checked with --geoip and a
        small database, as its comment says to."""
        d = os.path.join(ROOT, "conf.d", "examples")
        names = sorted(f for f in os.listdir(d) if f.endswith(".conf"))
        self.assertIn("policyd-weight.conf", names)
        self.assertIn("postscreen-weights.conf", names)
        self.assertIn("outbound.conf", names)
        with tempfile.TemporaryDirectory() as tmp:
            geo = os.path.join(tmp, "geo.mmdb")
            subprocess.run(["perl", os.path.join(ROOT, "tests", "lib", "mkmmdb.pl"), geo,
                            "192.0.2.0/24=US:NA"], check=True, timeout=60)
            for name in names:
                with self.subTest(name):
                    path = os.path.join(d, name)
                    with open(path) as f:
                        geoip = ["--geoip", geo] if "\nset geoip " in f.read() else []
                    p = subprocess.run([mxacl_path(), "check", "-c", path] + geoip,
                                       capture_output=True, text=True, timeout=60)
                    self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))

    def test_dns_block_as_the_comment_says(self):
        with open(POLICY) as f:
            lines = f.read().splitlines()
        start = next(i for i, l in enumerate(lines) if l.startswith("# --- DNS lists"))
        block = [l[2:] for l in lines[start:]
                 if l.startswith(("# acl ", "# action ", "# access "))]
        self.assertEqual(len(block), 6, block)
        at = lines.index("access our_domains tag")
        new = lines[:at] + block + lines[at:start]
        p = check("\n".join(new) + "\n")
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))


if __name__ == "__main__":
    unittest.main()
