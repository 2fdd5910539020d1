"""redis - a private redis-server for python tests (standard library only).

    from redis import RedisServer

    with RedisServer() as r:                 # a free port on 127.0.0.1
        d = Mxacld(conf, extra_args=["--store", r.url])
        r.kill()                             # SIGKILL by PID: an outage
        r.start()                            # again, on the same port
        r.cmd("HGET", "mxacl:a:192.0.2.0/24", "count")

The server runs without persistence (--save '' --appendonly no) in a
private temporary directory, bound to loopback only (or to a unix socket
only, with unix=True). It is stopped by PID, never by name, and dies with
the test process (PR_SET_PDEATHSIG) if a test is killed half-way.
"""
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from mxtest import free_port

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass


class RedisError(Exception):
    """An error reply (-ERR ...) from the server."""


def _encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class _Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis-server closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis-server closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ConnectionError("bad reply line %r" % line)


class RedisServer:
    """A redis-server on a free loopback port (or a unix socket)."""

    def __init__(self, unix=False, password=None, extra_args=()):
        self.dir = tempfile.mkdtemp(prefix="mxacl-redis-")
        self.sock_path = os.path.join(self.dir, "redis.sock") if unix else None
        self.port = 0 if unix else free_port()
        self.password = password
        self.extra_args = list(extra_args)
        self.proc = None
        self.stalled = False

    # -- addresses

    @property
    def url(self):
        """The store URL for mxacld's --store."""
        auth = ":%s@" % self.password if self.password else ""
        if self.sock_path:
            return "redis+unix://%s%s" % (auth, self.sock_path)
        return "redis://%s127.0.0.1:%d" % (auth, self.port)

    # -- process

    def argv(self):
        a = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir]
        if self.sock_path:
            a += ["--unixsocket", self.sock_path, "--unixsocketperm", "700"]
        if self.password:
            a += ["--requirepass", self.password]
        return a + self.extra_args

    def start(self, timeout=10.0):
        """Start (or start again, on the same port) and wait for PING."""
        assert not self.running(), "redis-server is already running"
        if self.sock_path and os.path.exists(self.sock_path):
            os.unlink(self.sock_path)
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent)
        self.stalled = False
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited with status %d at start-up"
                                     % self.proc.returncode)
            try:
                self.cmd("PING", timeout=0.5)
                return self
            except (OSError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("redis-server does not answer after %.0f s" % timeout)
            time.sleep(0.01)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stall(self):
        """SIGSTOP: the server keeps its sockets but answers nothing."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.stalled = True

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)
        self.stalled = False

    def kill(self):
        """SIGKILL by PID and wait: an outage, sockets closed at once."""
        if self.running():
            if self.stalled:
                self.resume()
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()
        self.proc = None

    def stop(self, timeout=10.0):
        """SIGTERM by PID and wait."""
        if self.running():
            if self.stalled:
                self.resume()
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc):
        try:
            self.stop()
        finally:
            self.cleanup()

    # -- a minimal client

    def _connect(self, timeout):
        if self.sock_path:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            addr = self.sock_path
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            addr = ("127.0.0.1", self.port)
        s.settimeout(timeout)
        try:
            s.connect(addr)
        except BaseException:
            s.close()
            raise
        return s

    def cmds(self, *commands, timeout=5.0, db=0):
        """Send commands (tuples of arguments) on one fresh connection,
        after AUTH and SELECT; return their replies (RedisError for an
        error reply)."""
        s = self._connect(timeout)
        try:
            pre = []
            if self.password:
                pre.append(("AUTH", self.password))
            if db:
                pre.append(("SELECT", db))
            s.sendall(b"".join(_encode(c) for c in pre + list(commands)))
            r = _Reader(s)
            replies = [r.reply() for _ in pre + list(commands)]
            return replies[len(pre):]
        finally:
            s.close()

    def cmd(self, *args, timeout=5.0, db=0):
        """One command; its reply. Raises RedisError for an error reply."""
        reply = self.cmds(tuple(args), timeout=timeout, db=db)[0]
        if isinstance(reply, RedisError) and args[0].upper() != "PING":
            raise reply
        return reply
