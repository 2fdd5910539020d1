"""dnsserver - a private unbound for python tests (standard library only).

    from dnsserver import DnsServer

    with DnsServer(records=[
            '2.0.0.127.bl.mxacl.example. 300 IN A 127.0.0.2',
            '2.0.0.127.bl.mxacl.example. 300 IN TXT "listed"',
        ], zones=["bl.mxacl.example."]) as dns:
        Mxacld(conf, extra_args=["--dns", dns.server])   # "127.0.0.1:PORT"

Each zone in zones is a `static` local zone with an SOA (negative TTL 45),
so names under it that have no record answer NXDOMAIN; "never.mxacl.example."
is a `deny` zone: unbound drops those queries, so they never answer. Names
must avoid the zones libunbound answers itself (test., invalid., ...).

unbound runs in the foreground (-d) in a private temporary directory on a
free 127.0.0.1 port, is stopped by PID, never by name, and dies with the
test process (PR_SET_PDEATHSIG) if a test is killed half-way.
"""
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from mxtest import fmt_request, free_port, mxacl_path

_PR_SET_PDEATHSIG = 1
NEVER_ZONE = "never.mxacl.example."


def _die_with_parent():
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass


def unbound_path():
    for p in ("/usr/sbin/unbound", shutil.which("unbound") or ""):
        if p and os.access(p, os.X_OK):
            return p
    return None


def _quote(record):
    """A local-data value: single quotes when the record holds double ones."""
    return "'%s'" % record if '"' in record else '"%s"' % record


class DnsServer:
    def __init__(self, records=(), zones=()):
        self.records = list(records)
        self.zones = list(zones)
        self.dir = tempfile.mkdtemp(prefix="mxacl-dns-")
        self.port = None
        self.proc = None
        self.log_path = os.path.join(self.dir, "unbound.log")

    @property
    def server(self):
        return "127.0.0.1:%d" % self.port

    def config(self):
        lines = [
            "server:",
            "    interface: 127.0.0.1",
            "    port: %d" % self.port,
            "    do-daemonize: no",
            '    chroot: ""',
            '    username: ""',
            '    directory: "%s"' % self.dir,
            '    pidfile: ""',
            "    use-syslog: no",
            '    logfile: "%s"' % self.log_path,
            "    log-queries: yes",
            '    module-config: "iterator"',
        ]
        for z in self.zones:
            z = z if z.endswith(".") else z + "."
            lines.append('    local-zone: "%s" static' % z)
            lines.append('    local-data: "%s 3600 IN SOA ns.mxacl.example. '
                         'hostmaster.mxacl.example. 1 3600 600 86400 45"' % z)
        for r in self.records:
            lines.append("    local-data: %s" % _quote(r))
        lines.append('    local-zone: "%s" deny' % NEVER_ZONE)
        lines += ["remote-control:", "    control-enable: no", ""]
        return "\n".join(lines)

    def start(self, timeout=10.0):
        exe = unbound_path()
        if not exe:
            raise RuntimeError("unbound is not installed (scripts/deps)")
        self.port = free_port()
        conf = os.path.join(self.dir, "unbound.conf")
        with open(conf, "w") as f:
            f.write(self.config())
        self.proc = subprocess.Popen([exe, "-d", "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("unbound exited: %s" % self.proc.stderr.read().decode())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("unbound did not start on port %d" % self.port)

    def queries(self):
        """The query lines unbound logged (log-queries), for counting."""
        try:
            with open(self.log_path) as f:
                return [l for l in f if " query: " in l or "info: " in l]
        except OSError:
            return []

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


class DnsCase(unittest.TestCase):
    """Tests against one unbound per class serving RECORDS under ZONES (set
    them in the subclass), with a private folder for policies and
    `mxacl test --dns` to run requests."""
    RECORDS = ()
    ZONES = ()

    FRESH_SERVER = False   # True: a new server for each test (for counting queries)

    def _start(holder):
        holder.dns = DnsServer(records=holder.RECORDS, zones=holder.ZONES).start()
        holder.tmp = tempfile.mkdtemp(prefix="mxacl-dns-test-")

    def _stop(holder):
        holder.dns.cleanup()
        shutil.rmtree(holder.tmp, ignore_errors=True)

    @classmethod
    def setUpClass(cls):
        if not cls.FRESH_SERVER:
            DnsCase._start(cls)

    @classmethod
    def tearDownClass(cls):
        if not cls.FRESH_SERVER:
            DnsCase._stop(cls)

    def setUp(self):
        if self.FRESH_SERVER:
            DnsCase._start(self)

    def tearDown(self):
        if self.FRESH_SERVER:
            DnsCase._stop(self)

    def write_conf(self, conf):
        path = os.path.join(self.tmp, "policy.conf")
        with open(path, "w") as f:
            f.write(conf)
        return path

    def mxacl_test_run(self, conf, reqs, extra=()):
        """mxacl test on reqs (dicts); asserts exit 0 and no sanitizer
        report; returns the CompletedProcess."""
        p = subprocess.run([mxacl_path(), "test", "-c", self.write_conf(conf), "--dns",
                            self.dns.server] + list(extra),
                           input=b"".join(fmt_request(r) for r in reqs), capture_output=True,
                           timeout=60)
        p.stdout, p.stderr = p.stdout.decode(), p.stderr.decode()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn("Sanitizer", p.stderr)
        return p

    def mxacl_test(self, conf, reqs, extra=()):
        """The reply lines of mxacl test on reqs."""
        return [l for l in self.mxacl_test_run(conf, reqs, extra).stdout.split("\n") if l]
