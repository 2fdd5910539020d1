"""mxtest - drive a real mxacld from python tests (standard library only).

    from mxtest import Mxacld, PolicyConn, fmt_request

    with Mxacld("acl b sender @spam.example\\naccess b REJECT\\n") as d:
        assert d.query({"sender": "x@spam.example"}) == "action=REJECT"

Mxacld writes the config into a private temporary directory, starts
$MXACL_BUILD/mxacld (default build/asan) on a free loopback port with its
log on stderr captured to a file, waits until it accepts connections, and
on stop() sends SIGTERM to its PID and insists on exit status 0 and no
sanitizer report. Every daemon is stopped by PID; nothing listens beyond
loopback.

Endpoints are written as mxacld takes them: "inet:HOST:PORT",
"inet:[::1]:PORT", "unix:PATH".
"""
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What mxacld logs when a SIGHUP has been dealt with (see daemon/main.c).
RELOAD_DONE = re.compile(r"reload: (\S+ loaded|\S+ has errors; still serving)")
STARTED = re.compile(r"mxacld\[\d+\]: mxacld \S+ started: ")
SANITIZER = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:")


def build_dir(build=None):
    """The directory holding the binaries under test."""
    b = build or os.environ.get("MXACL_BUILD", "build/asan")
    return b if os.path.isabs(b) else os.path.join(ROOT, b)


def mxacld_path(build=None):
    return os.path.join(build_dir(build), "mxacld")


def mxacl_path(build=None):
    return os.path.join(build_dir(build), "mxacl")


def _ephemeral_low():
    """The lowest port the kernel gives an outgoing connection."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_given_ports = set()
_port_rng = random.Random(os.getpid() ^ time.monotonic_ns())


def _bindable(port):
    """Free for TCP and for UDP (a DNS server takes both)."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_port(offset=None):
    """A TCP port on 127.0.0.1 that was free a moment ago, for a server a
    test starts next. It lies below the kernel's ephemeral range, so no
    outgoing connection (of this test or any other process) can take it
    before the server binds it, and this process never hands it out
    twice. With offset, port + offset is free and below the range too
    (a Redis Cluster node's bus port is port + 10000)."""
    hi = _ephemeral_low() - (offset or 0)
    if hi - 10000 >= 1000:
        for _ in range(1000):
            p = _port_rng.randrange(10000, hi)
            pair = (p,) if offset is None else (p, p + offset)
            if any(q in _given_ports for q in pair) or not all(map(_bindable, pair)):
                continue
            _given_ports.update(pair)
            return p
    # an unusual ephemeral range: the kernel's choice, checked the same way
    for _ in range(1000):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        finally:
            s.close()
        pair = (p,) if offset is None else (p, p + offset)
        if pair[-1] <= 65535 and not any(q in _given_ports for q in pair) \
                and all(map(_bindable, pair)):
            _given_ports.update(pair)
            return p
    raise AssertionError("no free loopback port found")


def _b(v):
    return v if isinstance(v, bytes) else str(v).encode()


def fmt_request(attrs):
    """One policy request: "name=value" lines and an empty line."""
    return b"".join(_b(k) + b"=" + _b(v) + b"\n" for k, v in attrs.items()) + b"\n"


def parse_endpoint(endpoint):
    """(family, address) for socket.connect from an mxacld endpoint."""
    if endpoint.startswith("unix:"):
        return socket.AF_UNIX, endpoint[5:]
    if not endpoint.startswith("inet:"):
        raise ValueError("endpoint must start with inet: or unix: (%r)" % endpoint)
    rest = endpoint[5:]
    if rest.startswith("["):
        host, _, port = rest[1:].partition("]:")
        return socket.AF_INET6, (host, int(port))
    host, _, port = rest.rpartition(":")
    return socket.AF_INET, (host, int(port))


def connect(endpoint, timeout=10.0):
    fam, addr = parse_endpoint(endpoint)
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(addr)
    except BaseException:
        s.close()
        raise
    return s


class PolicyConn:
    """One client connection speaking the policy protocol."""

    def __init__(self, endpoint, timeout=10.0):
        self.endpoint = endpoint
        self.sock = connect(endpoint, timeout)
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        self.sock.sendall(_b(data))

    def send(self, attrs):
        self.send_raw(fmt_request(attrs))

    def recv_reply(self):
        """The next reply's lines joined by "\\n" (normally one action line),
        or None when the server closed the connection first."""
        while b"\n\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk
        reply, _, self.buf = self.buf.partition(b"\n\n")
        return reply.decode("utf-8", "replace")

    def request(self, attrs):
        """Send one request; return its reply ("action=REJECT text").
        Raises ConnectionError when the server closes instead."""
        self.send(attrs)
        r = self.recv_reply()
        if r is None:
            raise ConnectionError("mxacld closed the connection without a reply")
        return r

    def recv_all(self):
        """Everything the server sends until it closes (b"" if nothing).
        Raises socket.timeout if it does not close in time."""
        data, self.buf = self.buf, b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        return data

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def run_mxacld(args, timeout=30, build=None):
    """Run mxacld to completion (start-up failures); a CompletedProcess."""
    return subprocess.run([mxacld_path(build)] + list(args), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


class Started:
    """A context manager for a helper with start() and cleanup(): entering
    starts it (and cleans up what a failed start left), leaving cleans up.
    A class whose leaving does more overrides __exit__."""

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc):
        self.cleanup()


class Mxacld(Started):
    """A private mxacld on loopback; a context manager (start/stop)."""

    def __init__(self, conf_text, listen=None, extra_args=(), build=None, log_mode="stderr"):
        self.tmpdir = tempfile.mkdtemp(prefix="mxacld-")
        self.conf_path = os.path.join(self.tmpdir, "policy.conf")
        self.write_conf(conf_text)
        if listen is None:
            listen = ["inet:127.0.0.1:%d" % free_port()]
        elif isinstance(listen, str):
            listen = [listen]
        self.listen = list(listen)
        self.endpoint = self.listen[0]
        fam, addr = parse_endpoint(self.endpoint)
        self.port = addr[1] if fam != socket.AF_UNIX else None
        self.extra_args = list(extra_args)
        self.build = build
        self.log_path = os.path.join(self.tmpdir, "mxacld.log")
        self.log_mode = log_mode
        self.proc = None
        self.pid = None
        self.returncode = None
        self._reloads_seen = 0

    # -- files

    def write_conf(self, text, path=None):
        with open(path or self.conf_path, "w") as f:
            f.write(text)

    def log_text(self):
        """What the daemon wrote on stderr so far (its log with --log stderr)."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=10.0, count=1):
        """Wait until pattern (a regex) occurs count times in the log."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            if len(rx.findall(text)) >= count:
                return text
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError("mxacld exited (%s) while waiting for %r:\n%s"
                                     % (self.proc.returncode, pattern, text))
            if time.monotonic() > deadline:
                raise AssertionError("no %r in mxacld's log after %.0f s:\n%s"
                                     % (pattern, timeout, text))
            time.sleep(0.02)

    # -- process

    def argv(self):
        a = [mxacld_path(self.build), "-c", self.conf_path]
        for ep in self.listen:
            a += ["-l", ep]
        if self.log_mode is not None:
            a += ["--log", self.log_mode]
        return a + self.extra_args

    def start(self, timeout=20.0):
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, cwd=self.tmpdir)
        finally:
            log.close()
        self.pid = self.proc.pid
        try:
            return self._wait_started(time.monotonic() + timeout)
        except BaseException:
            self.kill()     # a daemon that did not start right is not left running
            raise

    def _wait_started(self, deadline):
        while True:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise AssertionError("mxacld exited with status %d at start-up:\n%s"
                                     % (self.proc.returncode, self.log_text()))
            try:
                connect(self.endpoint, timeout=1.0).close()
                # Sockets listen before the daemon is done starting (it
                # drops privileges after binding); its "started" line comes
                # from the running loop, when the log is ours to read.
                if self.log_mode == "stderr":
                    self.wait_log(STARTED.pattern, max(1.0, deadline - time.monotonic()))
                elif self.log_mode and self.log_mode.startswith("/"):
                    self.wait_file(self.log_mode, STARTED, deadline)
                return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("mxacld does not accept connections on %s:\n%s"
                                     % (self.endpoint, self.log_text()))
            time.sleep(0.02)

    def wait_file(self, path, rx, deadline):
        """Wait for rx in a log file mxacld writes itself (--log FILE)."""
        while True:
            try:
                with open(path, errors="replace") as f:
                    if rx.search(f.read()):
                        return
            except FileNotFoundError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("no %r in %s:\n%s" % (rx.pattern, path, self.log_text()))
            time.sleep(0.02)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        os.kill(self.pid, sig)

    def reload(self, conf_text=None, timeout=20.0):
        """Optionally rewrite the config, send SIGHUP, wait for the result.
        Returns True when the new config was loaded, False when it was
        refused (the old one keeps serving)."""
        if conf_text is not None:
            self.write_conf(conf_text)
        self._reloads_seen = len(RELOAD_DONE.findall(self.log_text()))
        self.signal(signal.SIGHUP)
        text = self.wait_log(RELOAD_DONE.pattern, timeout, self._reloads_seen + 1)
        last = RELOAD_DONE.findall(text)[self._reloads_seen]
        return last.endswith("loaded")

    def stop(self, timeout=30.0, expect_status=0):
        """SIGTERM by PID; wait; assert the exit status and a clean log."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("mxacld ignored SIGTERM for %.0f s:\n%s"
                                     % (timeout, self.log_text()))
        self.returncode = self.proc.returncode
        self.proc = None
        text = self.log_text()
        if expect_status is not None and self.returncode != expect_status:
            raise AssertionError("mxacld exited with status %s, want %s:\n%s"
                                 % (self.returncode, expect_status, text))
        if SANITIZER.search(text):
            raise AssertionError("sanitizer report from mxacld:\n%s" % text)
        return self.returncode

    def kill(self):
        """SIGKILL by PID, for cleaning up after a failure."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            self.returncode = self.proc.returncode
        self.proc = None

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.stop()
        finally:
            self.cleanup()

    # -- clients

    def conn(self, timeout=10.0):
        return PolicyConn(self.endpoint, timeout)

    def query(self, attrs, timeout=10.0):
        """One request on a fresh connection; the reply's action line."""
        with PolicyConn(self.endpoint, timeout) as c:
            return c.request(attrs)


def concurrent(jobs):
    """Send each (server, request) on its own connection, all released
    together (a barrier), as racing smtpd processes would; the replies in
    the order of jobs. server is anything with conn() (Mxacld)."""
    replies = [None] * len(jobs)
    errors = []
    barrier = threading.Barrier(len(jobs))
    conns = [server.conn() for server, _ in jobs]

    def one(i):
        try:
            barrier.wait(10)
            replies[i] = conns[i].request(jobs[i][1])
        except BaseException as e:
            errors.append("job %d: %r" % (i, e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for c in conns:
        c.close()
    if errors or any(t.is_alive() for t in threads):
        raise AssertionError("concurrent requests failed: %s"
                             % ("; ".join(errors) or "a request got no reply in 30 s"))
    return replies


def control_stats(d):
    """A running mxacld's counters, from its control socket's "stats"
    (d.control_path): {name: value}."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(d.control_path)
    s.sendall(b"stats\n")
    buf = b""
    while not re.search(rb"^(ok|error) .*\n", buf, re.M):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    out = {}
    for line in buf.decode().splitlines():
        k, _, v = line.partition(" ")
        if k not in ("ok", "error") and v.isdigit():
            out[k] = int(v)
    return out


class ScratchDir:
    """A unittest mixin: self.dir, a fresh directory per test, filled with
    the files of the folders in copy_from and removed afterwards."""

    prefix = "mxacl-test-"
    copy_from = ()

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix=self.prefix)
        for d in self.copy_from:
            for f in os.listdir(d):
                shutil.copy(os.path.join(d, f), self.dir)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text):
        """Write text to name (subfolders made as needed); returns name."""
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return name

    def read(self, name):
        with open(os.path.join(self.dir, name)) as f:
            return f.read()

