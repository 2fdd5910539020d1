"""systemd's notification protocol (sd_notify, daemon/notify.h), for real:
the test owns a unix datagram socket, passes it to mxacld as
$NOTIFY_SOCKET, as systemd does for a Type=notify unit, and reads what
mxacld says on it: READY=1 only once the policy socket answers, STATUS=
naming the policy, RELOADING=1 and READY=1 around a SIGHUP (also one that
fails), STOPPING=1 at SIGTERM; each message from mxacld's own PID (systemd's
NotifyAccess=main drops others).
"""
import os
import re
import signal
import socket
import struct
import subprocess
import tempfile
import unittest

from mxtest import Mxacld, PolicyConn, STARTED

import daemon_policies as pol

SPAM = {"request": "smtpd_access_policy", "sender": pol.SPAM_SENDER,
        "client_address": "192.0.2.7"}


class Notifier:
    """The socket systemd would listen on: datagrams with the sender's
    credentials (SO_PASSCRED)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mxacl-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.path)

    def recv(self, timeout=20.0):
        """(fields as a dict, the sender's pid) of the next message."""
        self.sock.settimeout(timeout)
        data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, _, _ = struct.unpack("iII", payload[:12])
        fields = {}
        for line in data.decode().split("\n"):
            k, _, v = line.partition("=")
            fields[k] = v
        return fields, pid

    def close(self):
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


class NotifyTest(unittest.TestCase):
    def start(self, notify_socket, conf=None, extra_env=None):
        """mxacld with NOTIFY_SOCKET set, started without waiting for it:
        the test itself must learn from the socket when it is ready."""
        d = Mxacld(conf or pol.policy("v1"))
        self.addCleanup(d.cleanup)
        env = dict(os.environ, NOTIFY_SOCKET=notify_socket, **(extra_env or {}))
        with open(d.log_path, "ab") as log:
            d.proc = subprocess.Popen(d.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=log, cwd=d.tmpdir, env=env)
        d.pid = d.proc.pid
        return d

    def notifier(self):
        n = Notifier()
        self.addCleanup(n.close)
        return n

    def recv(self, n, d):
        try:
            return n.recv()
        except socket.timeout:
            self.fail("no message on NOTIFY_SOCKET within 20 s; mxacld's log:\n"
                      + d.log_text())

    def test_ready_means_serving(self):
        n = self.notifier()
        d = self.start(n.path)
        msg, pid = self.recv(n, d)
        self.assertEqual(pid, d.pid, "the message must come from the main PID")
        self.assertEqual(msg.get("READY"), "1", msg)
        self.assertRegex(msg.get("STATUS", ""),
                         r"^serving %s, loaded \d{4}-\d\d-\d\d \d\d:\d\d:\d\d; listening on %s$"
                         % (re.escape(d.conf_path), re.escape(d.endpoint)))
        # READY=1 promises a socket that answers now: one try, no retries
        self.assertEqual(d.query(SPAM), "action=REJECT spam sender v1")
        self.assertRegex(d.log_text(), STARTED)
        d.signal(signal.SIGTERM)
        msg, pid = self.recv(n, d)
        self.assertEqual((msg.get("STOPPING"), pid), ("1", d.pid), msg)
        d.proc.wait(30)     # not a second SIGTERM: that one would kill it
        d.stop()

    def test_reload_is_bracketed(self):
        n = self.notifier()
        # test builds: each compile takes 300 ms longer, so the old policy
        # visibly serves between RELOADING=1 and READY=1
        d = self.start(n.path, extra_env={"MXACL_TEST_RELOAD_MS": "300"})
        msg, _ = self.recv(n, d)
        self.assertEqual(msg.get("READY"), "1", msg)
        with PolicyConn(d.endpoint) as c:
            d.write_conf(pol.policy("v2"))
            d.signal(signal.SIGHUP)
            msg, pid = self.recv(n, d)
            self.assertEqual((msg.get("RELOADING"), pid), ("1", d.pid), msg)
            self.assertRegex(msg.get("MONOTONIC_USEC", ""), r"^\d+$")
            self.assertEqual(msg.get("STATUS"), "reloading %s" % d.conf_path)
            msg, _ = self.recv(n, d)
            self.assertEqual(msg.get("READY"), "1", msg)
            self.assertRegex(msg.get("STATUS", ""), r"^serving %s, loaded [-0-9]+ [:0-9]+$"
                             % re.escape(d.conf_path))
            # READY=1 after a reload: the new policy serves, on an old
            # connection too
            self.assertEqual(c.request(SPAM), "action=REJECT spam sender v2")

            # a reload that fails: READY=1 all the same, and the status says so
            d.write_conf(pol.BROKEN)
            d.signal(signal.SIGHUP)
            msg, _ = self.recv(n, d)
            self.assertEqual(msg.get("RELOADING"), "1", msg)
            msg, _ = self.recv(n, d)
            self.assertEqual(msg.get("READY"), "1", msg)
            self.assertRegex(msg.get("STATUS", ""),
                             r"^serving %s as loaded [-0-9]+ [:0-9]+; the reload failed with "
                             r"1 error \(see the log\)$" % re.escape(d.conf_path))
            self.assertEqual(c.request(SPAM), "action=REJECT spam sender v2")
        self.assertIn("reload: %s has errors" % d.conf_path, d.log_text())
        d.stop()

    def test_burst_of_sighups_ends_with_one_ready(self):
        """Two SIGHUPs during a compile make two compiles: RELOADING=1 for
        each, READY=1 once, after the last, when the newest file serves."""
        n = self.notifier()
        d = self.start(n.path, extra_env={"MXACL_TEST_RELOAD_MS": "2000"})
        self.assertEqual(self.recv(n, d)[0].get("READY"), "1")
        d.write_conf(pol.policy("v2"))
        d.signal(signal.SIGHUP)
        self.assertEqual(self.recv(n, d)[0].get("RELOADING"), "1")
        d.write_conf(pol.policy("v3"))
        d.signal(signal.SIGHUP)
        d.wait_log(r"a reload of \S+ is running")
        self.assertEqual(self.recv(n, d)[0].get("RELOADING"), "1")
        msg, _ = self.recv(n, d)
        self.assertEqual(msg.get("READY"), "1", msg)
        self.assertEqual(d.query(SPAM), "action=REJECT spam sender v3")
        self.assertEqual(len(re.findall(r"reload: \S+ loaded", d.log_text())), 2)
        d.stop()

    def test_unreachable_notify_socket_is_not_fatal(self):
        """A NOTIFY_SOCKET nobody listens on: one warning, and mxacld serves."""
        d = self.start(os.path.join(tempfile.gettempdir(), "mxacl-no-such-notify-socket"))
        d.wait_log(STARTED.pattern)
        self.assertEqual(d.query(SPAM), "action=REJECT spam sender v1")
        self.assertTrue(d.reload(pol.policy("v2")))
        self.assertEqual(d.query(SPAM), "action=REJECT spam sender v2")
        log = d.log_text()
        self.assertEqual(log.count("warning: systemd: cannot notify $NOTIFY_SOCKET"), 1, log)
        d.stop()

    def test_without_notify_socket_nothing_is_said(self):
        """No NOTIFY_SOCKET (no systemd): no warning; the daemon serves."""
        d = Mxacld(pol.policy("v1"))
        self.addCleanup(d.cleanup)
        saved = os.environ.pop("NOTIFY_SOCKET", None)
        try:
            d.start()
        finally:
            if saved is not None:
                os.environ["NOTIFY_SOCKET"] = saved
        self.assertEqual(d.query(SPAM), "action=REJECT spam sender v1")
        self.assertTrue(d.reload(pol.policy("v2")))
        self.assertNotIn("systemd", d.log_text())
        d.stop()


if __name__ == "__main__":
    unittest.main()
