"""mxacld as a process: endpoints (IPv4, IPv6, unix sockets with mode and
owner), the pid file, detaching, logging to a file, SIGTERM, settings from
the config versus flags, and fatal start-up errors (exit 1 with the
config's FILE:LINE:COL diagnostics).
"""
import os
import re
import signal
import socket
import stat
import tempfile
import time
import unittest

from mxtest import Mxacld, PolicyConn, free_port, mxacld_path, run_mxacld

import daemon_policies as pol

VIP = {"recipient": pol.VIP}


def ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


class ProcessTest(unittest.TestCase):
    def tmpdir(self):
        d = tempfile.mkdtemp(prefix="mxacld-test-")
        self.addCleanup(lambda: __import__("shutil").rmtree(d, ignore_errors=True))
        return d

    def write(self, path, text):
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_sigterm_exits_0(self):
        d = Mxacld(pol.policy())
        self.addCleanup(d.cleanup)
        d.start()
        self.assertEqual(d.query(VIP), "action=OK")
        self.assertEqual(d.stop(), 0)
        log = d.log_text()
        self.assertRegex(log, r"mxacld\[%d\]: mxacld \S+ started: " % d.pid)
        self.assertIn("stopping on Terminated", log)
        self.assertRegex(log, r"mxacld\[%d\]: stopped\n" % d.pid)

    def test_sigint_exits_0(self):
        d = Mxacld(pol.policy())
        self.addCleanup(d.cleanup)
        d.start()
        d.signal(signal.SIGINT)
        d.proc.wait(30)
        self.assertEqual(d.proc.returncode, 0, d.log_text())

    def test_sigterm_with_open_connections(self):
        d = Mxacld(pol.policy())
        self.addCleanup(d.cleanup)
        d.start()
        conns = [d.conn() for _ in range(5)]
        for c in conns:
            self.addCleanup(c.close)
            self.assertEqual(c.request(VIP), "action=OK")
        conns[0].send_raw(b"sender=half@a.request\n")   # one half-sent request
        self.assertEqual(d.stop(), 0)
        for c in conns:
            self.assertEqual(c.recv_all(), b"")

    def test_unix_socket_mode_and_removal(self):
        tmp = self.tmpdir()
        path = os.path.join(tmp, "mxacl.sock")
        d = Mxacld(pol.policy(), listen="unix:" + path, extra_args=["--socket-mode", "0660"])
        self.addCleanup(d.cleanup)
        d.start()
        st = os.stat(path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        with d.conn() as c:
            for i in range(50):
                a = pol.request(i)
                self.assertEqual(c.request(a), pol.expect(a))
        d.stop()
        self.assertFalse(os.path.exists(path), "socket file left behind")

    @unittest.skipUnless(os.geteuid() == 0, "chown needs root")
    def test_unix_socket_owner(self):
        tmp = self.tmpdir()
        path = os.path.join(tmp, "mxacl.sock")
        import grp
        import pwd
        nobody = pwd.getpwnam("nobody")
        group = grp.getgrgid(nobody.pw_gid).gr_name
        d = Mxacld(pol.policy(), listen="unix:" + path,
                   extra_args=["--socket-mode", "0600", "--socket-owner", "nobody:" + group])
        self.addCleanup(d.cleanup)
        d.start()
        st = os.stat(path)
        self.assertEqual((st.st_uid, st.st_gid), (nobody.pw_uid, nobody.pw_gid))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        d.stop()

    def test_stale_unix_socket_replaced(self):
        tmp = self.tmpdir()
        path = os.path.join(tmp, "mxacl.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.close()           # the file stays, nobody listens: stale
        d = Mxacld(pol.policy(), listen="unix:" + path)
        self.addCleanup(d.cleanup)
        d.start()
        self.assertEqual(d.query(VIP), "action=OK")
        d.stop()

    def test_unix_socket_path_in_use(self):
        tmp = self.tmpdir()
        path = self.write(os.path.join(tmp, "not-a-socket"), "data\n")
        conf = self.write(os.path.join(tmp, "policy.conf"), pol.policy())
        r = run_mxacld(["-c", conf, "-l", "unix:" + path])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("exists and is not a socket", r.stderr)
        self.assertTrue(os.path.exists(path), "a regular file must not be removed")

        live = os.path.join(tmp, "live.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.bind(live)
        s.listen(1)
        r = run_mxacld(["-c", conf, "-l", "unix:" + live])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("another process is listening", r.stderr)

    def test_several_endpoints(self):
        tmp = self.tmpdir()
        path = os.path.join(tmp, "mxacl.sock")
        port = free_port()
        eps = ["inet:127.0.0.1:%d" % port, "unix:" + path]
        if ipv6_loopback():
            eps.append("inet:[::1]:%d" % free_port())
        d = Mxacld(pol.policy(), listen=eps)
        self.addCleanup(d.cleanup)
        d.start()
        for ep in eps:
            with PolicyConn(ep) as c:
                self.assertEqual(c.request(VIP), "action=OK", ep)
        d.stop()

    @unittest.skipUnless(ipv6_loopback(), "no IPv6 loopback")
    def test_ipv6(self):
        d = Mxacld(pol.policy(), listen="inet:[::1]:%d" % free_port())
        self.addCleanup(d.cleanup)
        d.start()
        a = {"sender": pol.SPAM_SENDER}
        self.assertEqual(d.query(a), "action=REJECT spam sender v1")
        d.stop()
        self.assertRegex(d.log_text(), r"listening on inet:\[::1\]:\d+")

    def test_pidfile_created_and_removed(self):
        d = Mxacld(pol.policy())
        self.addCleanup(d.cleanup)
        pidfile = os.path.join(d.tmpdir, "mxacld.pid")
        d.extra_args += ["--pidfile", pidfile]
        d.start()
        deadline = time.monotonic() + 20
        while not os.path.exists(pidfile):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        with open(pidfile) as f:
            self.assertEqual(f.read(), "%d\n" % d.pid)
        d.stop()
        self.assertFalse(os.path.exists(pidfile), "pid file left behind")

    def test_daemonize(self):
        tmp = self.tmpdir()
        conf = self.write(os.path.join(tmp, "policy.conf"), pol.policy())
        pidfile = os.path.join(tmp, "mxacld.pid")
        logfile = os.path.join(tmp, "mxacld.log")
        ep = "inet:127.0.0.1:%d" % free_port()
        r = run_mxacld(["-d", "-c", conf, "-l", ep, "--pidfile", pidfile, "--log", logfile])
        self.assertEqual(r.returncode, 0, r.stderr)
        # the parent returns once the child serves: the pid file is there
        with open(pidfile) as f:
            pid = int(f.read())
        self.addCleanup(lambda: pid_alive(pid) and os.kill(pid, signal.SIGKILL))
        with PolicyConn(ep) as c:
            self.assertEqual(c.request(VIP), "action=OK")
        # detached: its own session
        self.assertEqual(os.getsid(pid), pid)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while pid_alive(pid) or os.path.exists(pidfile):
            self.assertLess(time.monotonic(), deadline, "daemon did not stop")
            time.sleep(0.05)
        with open(logfile) as f:
            log = f.read()
        self.assertRegex(log, r"mxacld\[%d\]: decision .*action=OK" % pid)
        self.assertRegex(log, r"mxacld\[%d\]: stopped" % pid)
        self.assertNotRegex(log, r"AddressSanitizer|runtime error")

    def test_daemonize_startup_error_exit_1(self):
        tmp = self.tmpdir()
        conf = self.write(os.path.join(tmp, "policy.conf"), pol.policy())
        ro = os.path.join(tmp, "no-such-dir", "mxacld.pid")
        r = run_mxacld(["-d", "-c", conf, "-l", "inet:127.0.0.1:%d" % free_port(),
                        "--pidfile", ro, "--log", os.path.join(tmp, "log")])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("cannot create pid file", r.stderr)

    def test_log_file(self):
        d = Mxacld(pol.policy())
        self.addCleanup(d.cleanup)
        logfile = os.path.join(d.tmpdir, "file.log")
        d.log_mode = logfile
        d.start()
        self.assertEqual(d.query({"sender": pol.SPAM_SENDER}), "action=REJECT spam sender v1")
        d.stop()
        with open(logfile) as f:
            log = f.read()
        stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d "
        self.assertRegex(log, r"^%smxacld\[%d\]: mxacld \S+ started" % (stamp, d.pid))
        self.assertRegex(log, r"\n%smxacld\[%d\]: decision .*from=<%s>.* action=REJECT "
                         r"spam sender v1\n" % (stamp, d.pid, re.escape(pol.SPAM_SENDER)))
        self.assertEqual(d.log_text(), "", "nothing on stderr")

    def rotate_log(self, sig, line, before=None):
        """Start mxacld logging to a file, answer one request, rename the
        file as logrotate does (call before(d) then), send sig and wait for
        line in the new file. Returns (daemon, path of the new file)."""
        d = Mxacld(pol.policy())
        self.addCleanup(d.cleanup)
        logfile = os.path.join(d.tmpdir, "file.log")
        d.log_mode = logfile
        d.start()
        d.query(VIP)
        os.rename(logfile, logfile + ".1")
        if before:
            before(d)
        d.signal(sig)
        deadline = time.monotonic() + 20
        while not (os.path.exists(logfile) and line in open(logfile).read()):
            self.assertTrue(d.running(), "mxacld died of %s:\n%s" % (sig.name, d.log_text()))
            self.assertLess(time.monotonic(), deadline, "no %r line in the new file" % line)
            time.sleep(0.02)
        return d, logfile

    def test_log_file_reopened_on_sighup(self):
        d, logfile = self.rotate_log(signal.SIGHUP, "reload: ")
        d.query({"sender": pol.SPAM_SENDER})
        d.stop()
        self.assertIn("action=OK", open(logfile + ".1").read())
        self.assertIn("action=REJECT", open(logfile).read())

    def test_log_file_reopened_on_sigusr1(self):
        # logrotate's signal: reopen the log, log a line, go on serving;
        # the policy is not reloaded
        d, logfile = self.rotate_log(signal.SIGUSR1, "log reopened on SIGUSR1",
                                     before=lambda d: d.write_conf(pol.policy("v2")))
        self.assertEqual(d.query({"sender": pol.SPAM_SENDER}), "action=REJECT spam sender v1")
        d.stop()
        old, new = open(logfile + ".1").read(), open(logfile).read()
        self.assertIn("action=OK", old)
        self.assertNotIn("action=REJECT", old)
        self.assertIn("action=REJECT spam sender v1", new)
        self.assertNotIn("reload", old + new)

    def test_sigusr1_with_log_on_stderr(self):
        d = Mxacld(pol.policy())
        self.addCleanup(d.cleanup)
        d.start()
        for i in range(3):      # one at a time: pending signals merge
            d.signal(signal.SIGUSR1)
            d.wait_log("log reopened on SIGUSR1", count=i + 1)
        self.assertEqual(d.query(VIP), "action=OK")
        self.assertEqual(d.stop(), 0)

    def test_broken_config_at_startup(self):
        tmp = self.tmpdir()
        conf = self.write(os.path.join(tmp, "policy.conf"), pol.BROKEN)
        r = run_mxacld(["-c", conf, "-l", "inet:127.0.0.1:%d" % free_port()])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"%s:3:\d+: error: " % re.escape(conf))
        self.assertIn("nosuchacl", r.stderr)

    def test_missing_config_at_startup(self):
        tmp = self.tmpdir()
        r = run_mxacld(["-c", os.path.join(tmp, "nope.conf"),
                        "-l", "inet:127.0.0.1:%d" % free_port()])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("nope.conf", r.stderr)

    def test_bad_flags_and_endpoints(self):
        tmp = self.tmpdir()
        conf = self.write(os.path.join(tmp, "policy.conf"), pol.policy())
        r = run_mxacld(["-c", conf, "--no-such-flag"])
        self.assertEqual(r.returncode, 2, r.stderr)
        r = run_mxacld(["-c", conf, "--socket-mode", "rw"])
        self.assertEqual(r.returncode, 2, r.stderr)
        for ep in ["tcp:127.0.0.1:1", "inet:127.0.0.1", "inet:127.0.0.1:0",
                   "inet:127.0.0.1:99999", "inet:::1:5", "unix:"]:
            r = run_mxacld(["-c", conf, "-l", ep])
            self.assertEqual(r.returncode, 1, "%s: %s" % (ep, r.stderr))
            self.assertIn("cannot listen on %s" % ep, r.stderr)
        # a port in use
        s = socket.socket()
        self.addCleanup(s.close)
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        ep = "inet:127.0.0.1:%d" % s.getsockname()[1]
        r = run_mxacld(["-c", conf, "-l", ep])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("Address already in use", r.stderr)

    def test_version_and_help(self):
        r = run_mxacld(["-V"])
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^mxacld \S+\n$")
        r = run_mxacld(["-h"])
        self.assertEqual(r.returncode, 0)
        for flag in ["-c", "-l", "--user", "--pidfile", "-d", "--log", "--syslog-facility",
                     "--socket-mode", "--socket-owner"]:
            self.assertIn(flag, r.stdout)

    def test_settings_from_config(self):
        port = free_port()
        ep = "inet:127.0.0.1:%d" % port
        d = Mxacld('set listen %s\n' % ep + pol.policy(), listen=ep)
        self.addCleanup(d.cleanup)
        d.listen = []       # no -l: the config's "set listen" decides
        logfile = os.path.join(d.tmpdir, "from-config.log")
        d.log_mode = None   # no --log either
        d.write_conf('set listen %s\nset log %s\n' % (ep, logfile) + pol.policy())
        d.start()
        self.assertEqual(d.query(VIP), "action=OK")
        d.stop()
        with open(logfile) as f:
            self.assertIn("action=OK", f.read())

    def test_flags_override_config(self):
        cfg_port, flag_port = free_port(), free_port()
        conf = "set listen inet:127.0.0.1:%d\nset log syslog\n" % cfg_port + pol.policy()
        d = Mxacld(conf, listen="inet:127.0.0.1:%d" % flag_port)   # -l and --log stderr
        self.addCleanup(d.cleanup)
        d.start()
        self.assertEqual(d.query(VIP), "action=OK")
        with self.assertRaises(OSError):
            PolicyConn("inet:127.0.0.1:%d" % cfg_port, timeout=2)
        d.stop()
        self.assertIn("action=OK", d.log_text())

    def test_bad_settings_at_startup(self):
        tmp = self.tmpdir()
        conf = self.write(os.path.join(tmp, "policy.conf"),
                          "set syslog_facility nosuch\n" + pol.policy())
        r = run_mxacld(["-c", conf, "-l", "inet:127.0.0.1:%d" % free_port()])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("nosuch", r.stderr)
        self.write(conf, pol.policy())
        r = run_mxacld(["-c", conf, "-l", "inet:127.0.0.1:%d" % free_port(),
                        "--syslog-facility", "nosuch"])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("unknown syslog facility", r.stderr)
        r = run_mxacld(["-c", conf, "-l", "inet:127.0.0.1:%d" % free_port(),
                        "--syslog-facility", "local3", "--socket-owner", "no-such-user-x"])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("no-such-user-x", r.stderr)

    @unittest.skipUnless(os.geteuid() == 0, "switching users needs root")
    def test_user_drops_privileges(self):
        import pwd
        nobody = pwd.getpwnam("nobody")
        d = Mxacld(pol.policy(), extra_args=["--user", "nobody"])
        self.addCleanup(d.cleanup)
        # the config must stay readable for reloads as nobody
        os.chmod(d.tmpdir, 0o755)
        os.chmod(d.conf_path, 0o644)
        d.start()
        # answered: the loop runs, so the switch (made before it) is done
        self.assertEqual(d.query(VIP), "action=OK")
        with open("/proc/%d/status" % d.pid) as f:
            status = f.read()
        uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
        gids = re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()
        self.assertEqual(set(map(int, uids)), {nobody.pw_uid})
        self.assertEqual(set(map(int, gids)), {nobody.pw_gid})
        self.assertEqual(d.query(VIP), "action=OK")
        self.assertTrue(d.reload(pol.policy("v2")))
        self.assertEqual(d.query({"sender": pol.SPAM_SENDER}), "action=REJECT spam sender v2")
        d.stop()


if __name__ == "__main__":
    unittest.main()
