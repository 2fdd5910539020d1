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

    def start(self, timeout=10.0, tries=5):
        """Start on a free port; a port taken meanwhile (a port is only free
        until someone binds it: libunbound's queries leave from random UDP
        ports anywhere) is tried again on another."""
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
                err = self.proc.stderr.read().decode(errors="replace")
                if "address already in use" in err.lower() and tries > 1:
                    self.proc.stderr.close()
                    return self.start(timeout, tries - 1)
                raise RuntimeError("unbound exited: %s" % err)
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

    def query_count(self, name):
        """How many queries for a name unbound has logged so far."""
        name = name.rstrip(".").lower() + "."
        return sum(1 for l in self.queries() if (" %s " % name) in l.lower())

    def wait_query(self, name, after=0, timeout=10.0):
        """Until unbound has logged more than `after` queries for name: a
        lookup has left mxacld (a barrier better than a sleep)."""
        deadline = time.monotonic() + timeout
        while self.query_count(name) <= after:
            if time.monotonic() > deadline:
                raise AssertionError("no query for %s reached the DNS server in %.0f s"
                                     % (name, timeout))
            time.sleep(0.01)

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


# ---- ZoneServer: exact zone data, timeouts and malformed records -----------
#
# unbound's local-data cannot serve everything the RFC 7208 test suite asks
# for: a TXT record with no strings (`SPF: []`), a name that answers one
# type and never answers another (`spftimeout.example.net`: its TXT, then
# TIMEOUT), and NXDOMAIN for names under a name that times out. ZoneServer
# is a small authoritative server of its own, in a thread of the test
# process, speaking real DNS over UDP and TCP on 127.0.0.1, so the resolver
# under test (libunbound) sees exactly these answers on the wire.

import socketserver
import struct

ZONE_QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16,
          "AAAA": 28, "SPF": 99}


def _wire_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            b = label.encode("utf-8")
            out += bytes([min(len(b), 63)]) + b[:63]
    return out + b"\0"


def _rdata(rtype, value):
    if rtype == "A":
        return socket.inet_pton(socket.AF_INET, value)
    if rtype == "AAAA":
        return socket.inet_pton(socket.AF_INET6, value)
    if rtype in ("CNAME", "PTR", "NS"):
        return _wire_name(value)
    if rtype == "MX":
        return struct.pack("!H", int(value[0])) + _wire_name(value[1])
    if rtype in ("TXT", "SPF"):
        out = b""
        for s in ([value] if isinstance(value, str) else value):
            b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
            while True:      # a character-string holds at most 255 bytes
                out += bytes([min(len(b), 255)]) + b[:255]
                b = b[255:]
                if not b:
                    break
        return out
    raise ValueError("ZoneServer: cannot serve type %s" % rtype)


class ZoneServer:
    """Serves ZONE: {name: [(type, value) | "TIMEOUT", ...]} (names without
    the trailing dot, any case). A query for a name gets its records of
    that type; a CNAME is answered for every type, with the chain followed
    inside ZONE. "TIMEOUT" in a name's list: a query of a type the name has
    no record of (listed before the marker) is never answered. A name not
    in ZONE is NXDOMAIN, or never answered when it starts with a label in
    TIMEOUT_PREFIXES. A name whose list is ["SERVFAIL"] answers SERVFAIL to
    every type. Every answer has TTL ttl.

    host and port choose where it listens: 127.0.0.1 and a free port by
    default. A client that can only ask port 53 (policyd-weight's DNS list
    lookups) gets a server on port 53 of another loopback address
    (host="127.0.0.N", port=53: needs root); never a non-loopback address."""

    def __init__(self, zone, timeout_prefixes=(), ttl=300, host="127.0.0.1", port=None):
        if not host.startswith("127."):
            raise ValueError("ZoneServer listens on loopback only, not %s" % host)
        self.zone = {k.lower().rstrip("."): v for k, v in zone.items()}
        self.timeout_prefixes = tuple(timeout_prefixes)
        self.ttl = ttl
        self.host = host
        self.want_port = port
        self.port = None
        self.servers = []
        self.queries = []     # (name, type number) of every query seen

    @property
    def server(self):
        return "%s:%d" % (self.host, self.port)

    def _records(self, name, qtype):
        """(rcode, [(owner, type, value)]) or None: do not answer."""
        answers = []
        seen = set()
        while True:
            entries = self.zone.get(name.lower())
            if entries is None:
                if answers:
                    return 0, answers          # a CNAME to outside: its end
                if name.lower().split(".")[0] in self.timeout_prefixes:
                    return None
                return 3, []
            if entries == ["SERVFAIL"]:
                return 2, []                   # the name's server failed
            found = False
            cname = None
            for e in entries:
                if e == "TIMEOUT":
                    if not found and cname is None:
                        return None if not answers else (0, answers)
                    break
                t, v = e
                if t == "CNAME" and qtype != ZONE_QTYPES["CNAME"]:
                    cname = v
                    answers.append((name, t, v))
                elif ZONE_QTYPES.get(t) == qtype:
                    found = True
                    answers.append((name, t, v))
            if cname is None or found:
                return 0, answers
            key = cname.lower().rstrip(".")
            if key in seen or len(seen) > 8:
                return 0, answers              # a loop: the resolver sees it
            seen.add(key)
            name = cname.rstrip(".")

    def answer(self, query, limit):
        if len(query) < 12:
            return None
        qid, flags, qd = struct.unpack("!HHH", query[:6])
        if qd != 1 or flags & 0x8000:
            return None
        pos, labels = 12, []
        while pos < len(query) and query[pos]:
            n = query[pos]
            labels.append(query[pos + 1:pos + 1 + n].decode("latin-1"))
            pos += 1 + n
        pos += 1
        qtype, qclass = struct.unpack("!HH", query[pos:pos + 4])
        question = query[12:pos + 4]
        name = ".".join(labels)
        self.queries.append((name, qtype))
        got = self._records(name, qtype)
        if got is None:
            return None
        rcode, rrs = got
        body = b""
        for owner, t, v in rrs:
            rd = _rdata(t, v)
            body += _wire_name(owner) + struct.pack("!HHIH", ZONE_QTYPES[t], 1, self.ttl, len(rd)) + rd
        edns = len(query) > pos + 4     # an OPT record follows the question
        opt = b"\0" + struct.pack("!HHIH", 41, 1232, 0, 0) if edns else b""
        flags = 0x8400 | (flags & 0x0100) | rcode          # QR AA, RD copied
        msg = struct.pack("!HHHHHH", qid, flags, 1, len(rrs), 0, 1 if edns else 0) \
            + question + body + opt
        if limit and len(msg) > (1232 if edns else 512):
            msg = struct.pack("!HHHHHH", qid, flags | 0x0200, 1, 0, 0, 0) + question
        return msg

    def start(self):
        owner = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                reply = owner.answer(data, True)
                if reply:
                    sock.sendto(reply, self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self):
                try:
                    while True:
                        head = self.request.recv(2, socket.MSG_WAITALL)
                        if len(head) < 2:
                            return
                        (n,) = struct.unpack("!H", head)
                        reply = owner.answer(self.request.recv(n, socket.MSG_WAITALL), False)
                        if reply:
                            self.request.sendall(struct.pack("!H", len(reply)) + reply)
                except OSError:
                    return

        class UdpServer(socketserver.ThreadingUDPServer):
            daemon_threads = True

        class TcpServer(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        for _ in range(1 if self.want_port else 20):
            port = self.want_port or free_port()
            try:
                u = UdpServer((self.host, port), Udp)
            except OSError:
                if self.want_port:
                    raise
                continue
            try:
                t = TcpServer((self.host, port), Tcp)
            except OSError:
                u.server_close()
                if self.want_port:
                    raise
                continue
            self.port, self.servers = port, [u, t]
            break
        else:
            raise RuntimeError("ZoneServer: no free port")
        for s in self.servers:
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05},
                             daemon=True).start()
        return self

    def stop(self):
        for s in self.servers:
            s.shutdown()
            s.server_close()
        self.servers = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
