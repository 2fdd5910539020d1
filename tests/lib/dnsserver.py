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
import threading
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
    def __init__(self, records=(), zones=(), options=()):
        self.records = list(records)
        self.zones = list(zones)
        self.options = list(options)   # more "server:" lines ("rrset-roundrobin: no")
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
        lines += ["    " + o for o in self.options]
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
    SERVER_OPTIONS = ()    # more unbound "server:" lines for the test server

    FRESH_SERVER = False   # True: a new server for each test (for counting queries)

    def _start(holder):
        holder.dns = DnsServer(records=holder.RECORDS, zones=holder.ZONES,
                               options=holder.SERVER_OPTIONS).start()
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


def _read_name(pkt, off):
    """A (possibly compressed) domain name at off: (name, offset after it)."""
    labels, end, jumps = [], None, 0
    while True:
        n = pkt[off]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | pkt[off + 1]
            jumps += 1
            if jumps > 64:
                raise ValueError("name compression loop")
            continue
        off += 1
        if n == 0:
            break
        labels.append(pkt[off:off + n].decode("ascii", "replace"))
        off += n
    return ".".join(labels), (end if end is not None else off)


QTYPES = {1: "A", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA"}


def parse_question(pkt):
    """(qname without trailing dot, type name) of a query packet."""
    name, off = _read_name(pkt, 12)
    qtype = int.from_bytes(pkt[off:off + 2], "big")
    return name, QTYPES.get(qtype, str(qtype))


def query(server_port, name, qtype, timeout=5.0):
    """Ask 127.0.0.1:server_port for name's records of qtype ("MX", "A",
    "TXT", ...) once, recursion desired; the answer section in the order
    served, as [(type, rdata)]: MX rdata is (pref, host), A a dotted quad,
    TXT the bytes of its strings joined, others the raw bytes."""
    num = {v: k for k, v in QTYPES.items()}[qtype]
    qid = os.getpid() & 0xFFFF
    q = qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode("ascii")
    q += b"\x00" + num.to_bytes(2, "big") + b"\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, ("127.0.0.1", server_port))
        pkt = s.recv(65535)
    ancount = int.from_bytes(pkt[6:8], "big")
    _, off = _read_name(pkt, 12)
    off += 4
    out = []
    for _ in range(ancount):
        _, off = _read_name(pkt, off)
        rtype = int.from_bytes(pkt[off:off + 2], "big")
        rdlen = int.from_bytes(pkt[off + 8:off + 10], "big")
        rd = off + 10
        if rtype == 15:
            data = (int.from_bytes(pkt[rd:rd + 2], "big"), _read_name(pkt, rd + 2)[0])
        elif rtype == 1:
            data = ".".join(str(b) for b in pkt[rd:rd + 4])
        elif rtype == 16:
            data, i = b"", rd
            while i < rd + rdlen:
                data += pkt[i + 1:i + 1 + pkt[i]]
                i += 1 + pkt[i]
        else:
            data = pkt[rd:rd + rdlen]
        out.append((QTYPES.get(rtype, str(rtype)), data))
        off = rd + rdlen
    return out


class DelayProxy:
    """A UDP forwarder on a free 127.0.0.1 port that passes each query to
    127.0.0.1:upstream_port and sends the answer back `delay` seconds after
    the query arrived: a DNS server `delay` away. It records, for counting
    round trips, each query's arrival and the moment its answer left:
    events() gives [(arrived, answered, qname, qtype)] (time.monotonic()
    seconds; answered is None while the answer is held).

        with DnsServer(...) as dns, DelayProxy(dns.port, 0.2) as slow:
            Mxacld(conf, extra_args=["--dns", slow.server])

    Standard library only; its threads are daemon threads, and stop()
    closes the socket and joins the receiver."""

    def __init__(self, upstream_port, delay):
        self.upstream = ("127.0.0.1", upstream_port)
        self.delay = delay
        self.sock = None
        self.port = None
        self.lock = threading.Lock()
        self.log = []
        self.thread = None
        self.stopping = False

    @property
    def server(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)       # so that the receiver sees stop()
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def _serve(self):
        while not self.stopping:
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            arrived = time.monotonic()
            try:
                qname, qtype = parse_question(data)
            except (IndexError, ValueError):
                qname, qtype = "?", "?"
            with self.lock:
                entry = [arrived, None, qname, qtype]
                self.log.append(entry)
            threading.Thread(target=self._answer, args=(data, peer, entry),
                             daemon=True).start()

    def _answer(self, data, peer, entry):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
            up.settimeout(5)
            try:
                up.sendto(data, self.upstream)
                reply = up.recv(65535)
            except OSError:
                return
        left = entry[0] + self.delay - time.monotonic()
        if left > 0:
            time.sleep(left)
        with self.lock:
            entry[1] = time.monotonic()
        try:
            self.sock.sendto(reply, peer)
        except OSError:
            pass

    def events(self):
        with self.lock:
            return [tuple(e) for e in self.log]

    def reset(self):
        with self.lock:
            self.log = []

    def stop(self):
        self.stopping = True
        if self.thread:
            self.thread.join(timeout=5)
        if self.sock:
            self.sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
