"""make install and make uninstall into a DESTDIR, and the systemd unit
they install: every file where PREFIX and the usual directory variables
say, an existing policy never overwritten, the unit's paths filled in and
accepted by `systemd-analyze verify`, uninstall removing what install put
there but a policy the admin changed.
"""
import os
import shutil
import subprocess
import tempfile
import unittest

from mxtest import ROOT, build_dir


def make(*args):
    """make in the tree, installing the binaries under test as they are:
    -o keeps make from rebuilding them (without SAN=1 it would rebuild a
    sanitised build's objects unsanitised)."""
    b = os.path.relpath(build_dir(), ROOT)
    return subprocess.run(["make", "-s", "B=" + b, "-o", b + "/mxacld", "-o", b + "/mxacl"] +
                          list(args), cwd=ROOT, capture_output=True, text=True)


class InstallTest(unittest.TestCase):
    def setUp(self):
        self.dest = tempfile.mkdtemp(prefix="mxacl-destdir-")
        self.addCleanup(shutil.rmtree, self.dest, True)

    def path(self, p):
        return os.path.join(self.dest, p.lstrip("/"))

    def test_install_and_uninstall(self):
        p = make("install", "DESTDIR=" + self.dest, "PREFIX=/opt/mx")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for f, mode in [("/opt/mx/sbin/mxacld", 0o755), ("/opt/mx/bin/mxacl", 0o755),
                        ("/opt/mx/share/man/man8/mxacld.8", 0o644),
                        ("/opt/mx/share/man/man1/mxacl.1", 0o644),
                        ("/opt/mx/share/man/man5/mxacl-policy.5", 0o644),
                        ("/opt/mx/lib/systemd/system/mxacld.service", 0o644),
                        ("/opt/mx/lib/sysusers.d/mxacl.conf", 0o644),
                        ("/opt/mx/lib/tmpfiles.d/mxacl.conf", 0o644),
                        ("/opt/mx/share/doc/mxacl/operations.md", 0o644),
                        ("/etc/mxacl/policy.conf", 0o644),
                        ("/etc/mxacl/lists/blocked_senders", 0o644),
                        ("/etc/default/mxacld", 0o644)]:
            with self.subTest(f=f):
                st = os.stat(self.path(f))
                self.assertEqual(st.st_mode & 0o7777, mode)
        with open(self.path("/opt/mx/lib/systemd/system/mxacld.service")) as f:
            unit = f.read()
        self.assertIn("ExecStart=/opt/mx/sbin/mxacld -c /etc/mxacl/policy.conf $MXACLD_OPTS",
                      unit)
        self.assertNotIn("@SBINDIR@", unit)
        self.assertNotIn("@SYSCONFDIR@", unit)
        # the installed binary and the installed policy work together
        p = subprocess.run([self.path("/opt/mx/bin/mxacl"), "check", "-c",
                            self.path("/etc/mxacl/policy.conf")], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)

        # a second install keeps the admin's policy
        with open(self.path("/etc/mxacl/policy.conf"), "w") as f:
            f.write("# mine\naccess DUNNO_all\n")
        p = make("install", "DESTDIR=" + self.dest, "PREFIX=/opt/mx")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("KEEP", p.stdout)
        with open(self.path("/etc/mxacl/policy.conf")) as f:
            self.assertEqual(f.read(), "# mine\naccess DUNNO_all\n")

        p = make("uninstall", "DESTDIR=" + self.dest, "PREFIX=/opt/mx")
        self.assertEqual(p.returncode, 0, p.stderr)
        left = sorted(os.path.relpath(os.path.join(d, f), self.dest)
                      for d, _, fs in os.walk(self.dest) for f in fs)
        self.assertEqual(left, ["etc/mxacl/policy.conf"])

    def test_unit_verifies(self):
        """systemd-analyze verify accepts the unit as installed (the
        binary it names must exist: the build's)."""
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze is not installed (scripts/deps installs systemd)")
        p = make("install", "DESTDIR=" + self.dest, "PREFIX=/usr")
        self.assertEqual(p.returncode, 0, p.stderr)
        unit = self.path("/usr/lib/systemd/system/mxacld.service")
        text = open(unit).read().replace("ExecStart=/usr/sbin/mxacld",
                                         "ExecStart=" + self.path("/usr/sbin/mxacld"))
        with open(unit, "w") as f:
            f.write(text)
        # --man=no: the man pages are in DESTDIR, not where man looks
        p = subprocess.run(["systemd-analyze", "verify", "--man=no", unit],
                           capture_output=True, text=True)
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        # and what systemd reads is what we mean
        for line in ["Type=notify", "User=mxacl", "ExecReload=/bin/kill -HUP $MAINPID",
                     "RuntimeDirectory=mxacld", "StateDirectory=mxacld",
                     "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes",
                     "CapabilityBoundingSet=\n",
                     "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"]:
            self.assertIn(line, text)


if __name__ == "__main__":
    unittest.main()
