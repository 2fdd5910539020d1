"""The Debian package, end to end on this machine (root, as in CI): `make
deb` builds build/deb/mxacl_VERSION_ARCH.deb from a copy of the tree,
lintian finds no error and no warning, `dpkg -i` creates the mxacl system
user and installs the unit without enabling or starting it, the installed
/usr/sbin/mxacld serves the installed example policy as the mxacl user on
a free loopback port (with the control socket and state file where the
unit puts them), and `dpkg --purge` leaves no file and no user behind.

Takes about a minute, most of it the package build (a full -O2 build on
the machine's cores) and lintian.
"""
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
import unittest

from mxtest import ROOT, PolicyConn, connect, free_port

PKG = "mxacl"
# Everything the package may put on the system; after a purge none is left.
PLACES = ["/etc", "/lib/systemd", "/usr/lib", "/usr/sbin", "/usr/bin", "/usr/share/man",
          "/usr/share/doc", "/var/lib", "/run"]


def run(*argv, **kw):
    return subprocess.run(list(argv), capture_output=True, text=True, **kw)


def installed(pkg=PKG):
    p = run("dpkg-query", "-W", "-f=${Status}", pkg)
    return p.returncode == 0 and "installed" in p.stdout and "not-installed" not in p.stdout


def traces():
    """Paths named like the package under PLACES (the build tree excluded)."""
    found = []
    for top in PLACES:
        for d, dirs, files in os.walk(top):
            if d.startswith(("/run/user", "/var/lib/docker")):
                dirs[:] = []
                continue
            for n in dirs + files:
                if n.startswith(("mxacl", "mxacld")):
                    found.append(os.path.join(d, n))
    return found


def running_installed():
    """PIDs running /usr/sbin/mxacld (other tests run their own builds)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink("/proc/%s/exe" % pid) == "/usr/sbin/mxacld":
                pids.append(int(pid))
        except OSError:
            pass
    return pids


@unittest.skipUnless(os.geteuid() == 0, "installing a package needs root")
class DebTest(unittest.TestCase):
    def setUp(self):
        for tool in ("dpkg-buildpackage", "dh", "lintian"):
            if not shutil.which(tool):
                self.fail("%s is missing: scripts/deps installs it" % tool)
        # never purge what an admin installed, nor delete their mxacl user
        if installed() or traces() or self.user_exists():
            self.skipTest("mxacl is already on this machine (package, user or files): "
                          "not touching it")

    def user_exists(self):
        try:
            pwd.getpwnam("mxacl")
            return True
        except KeyError:
            return False

    def test_package(self):
        t0 = time.monotonic()
        p = run("make", "deb", cwd=ROOT)
        build_s = time.monotonic() - t0
        self.assertEqual(p.returncode, 0, p.stdout[-4000:] + p.stderr[-4000:])
        arch = run("dpkg", "--print-architecture").stdout.strip()
        deb = os.path.join(ROOT, "build", "deb", "mxacl_0.1_%s.deb" % arch)
        self.assertTrue(os.path.isfile(deb), "no %s after make deb (%s)" % (deb, p.stdout))
        print("\n  make deb took %.0f s" % build_s)
        # the source tree stays clean: the build ran in build/deb/src
        for junk in ("debian/mxacl", "debian/files", "debian/.debhelper", "obj-x86_64-linux-gnu"):
            self.assertFalse(os.path.exists(os.path.join(ROOT, junk)), junk)

        # lintian: no error, and no warning (debian/rules and docs/operations.md say
        # why the one informational tag is kept)
        p = run("lintian", "--fail-on", "error,warning", deb)
        tags = [l for l in p.stdout.splitlines() if re.match(r"[EW]: ", l)]
        self.assertEqual((p.returncode, tags), (0, []), p.stdout + p.stderr)

        self.addCleanup(self.purge_quietly)
        p = run("dpkg", "-i", deb)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertTrue(installed())

        # the system user, made by sysusers
        u = pwd.getpwnam("mxacl")
        self.assertLess(u.pw_uid, 1000)
        self.assertIn(u.pw_shell, ("/usr/sbin/nologin", "/sbin/nologin"))
        # its directories, made by tmpfiles, and the files where they belong
        for d in ("/var/lib/mxacld", "/run/mxacld"):
            st = os.stat(d)
            self.assertEqual((st.st_uid, st.st_mode & 0o777), (u.pw_uid, 0o750), d)
        for f in ("/usr/sbin/mxacld", "/usr/bin/mxacl", "/etc/mxacl/policy.conf",
                  "/etc/default/mxacld", "/lib/systemd/system/mxacld.service",
                  "/usr/share/man/man8/mxacld.8.gz", "/usr/share/man/man5/mxacl-policy.5.gz",
                  "/usr/share/man/man1/mxacl.1.gz"):
            self.assertTrue(os.path.exists(f), f)
        # installed, not enabled, not started
        self.assertFalse(os.path.exists(
            "/etc/systemd/system/multi-user.target.wants/mxacld.service"))
        self.assertEqual(running_installed(), [])
        # systemd accepts the installed unit, man pages and all
        p = run("systemd-analyze", "verify", "/lib/systemd/system/mxacld.service")
        self.assertEqual((p.returncode, p.stderr), (0, ""))

        self.serve_as_mxacl(u)

        p = run("dpkg", "--purge", PKG)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertFalse(installed())
        self.assertFalse(self.user_exists(), "the mxacl user survived the purge")
        self.assertEqual(run("getent", "group", "mxacl").stdout, "")
        self.assertEqual(traces(), [])

    def serve_as_mxacl(self, u):
        """The installed daemon, the installed policy, the mxacl user, the
        unit's control socket and state file; one answer, a clean stop."""
        ep = "inet:127.0.0.1:%d" % free_port()
        argv = ["setpriv", "--reuid=mxacl", "--regid=mxacl", "--init-groups",
                "/usr/sbin/mxacld", "-c", "/etc/mxacl/policy.conf", "-l", ep, "--log", "stderr",
                "--control", "/run/mxacld/control", "--state-file", "/var/lib/mxacld/state"]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, cwd="/")
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    connect(ep, 1.0).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        self.fail("the installed mxacld does not serve: %s"
                                  % proc.communicate(timeout=5)[0])
                    time.sleep(0.05)
            with open("/proc/%d/status" % proc.pid) as f:
                uid = re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1)
            self.assertEqual(int(uid), u.pw_uid)
            with PolicyConn(ep) as c:
                # conf.d/lists/blocked_senders, installed as /etc/mxacl/lists/
                self.assertEqual(c.request({"request": "smtpd_access_policy",
                                            "client_address": "198.51.100.9",
                                            "sender": "spammer@example.biz"}),
                                 "action=REJECT sender <spammer@example.biz> is blocked here")
            p = run("mxacl", "grey", "--control", "/run/mxacld/control", "list")
            self.assertEqual(p.returncode, 0, p.stderr)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            out = proc.communicate(timeout=30)[0]
        self.assertEqual(proc.returncode, 0, out)
        st = os.stat("/var/lib/mxacld/state")
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (u.pw_uid, 0o600))

    def purge_quietly(self):
        if installed() or run("dpkg-query", "-W", PKG).returncode == 0:
            run("dpkg", "--purge", PKG)


if __name__ == "__main__":
    unittest.main()
