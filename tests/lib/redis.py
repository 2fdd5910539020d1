"""redis - a private redis-server for python tests (standard library only).

    from redis import RedisServer

    with RedisServer() as r:                 # a free port on 127.0.0.1
        d = Mxacld(conf, extra_args=["--store", r.url])
        r.kill()                             # SIGKILL by PID: an outage
        r.start()                            # again, on the same port
        r.cmd("HGET", "mxacl:a:192.0.2.0/24", "count")

    with SentinelSet() as ss:                # a master, a replica, three sentinels
        d = Mxacld(conf, extra_args=["--store", ss.url])
        ss.master.kill()                     # a failover follows

    with RedisCluster() as c:                # six nodes, three masters
        d = Mxacld(conf, extra_args=["--store", c.url])

The server runs without persistence (--save '' --appendonly no) in a
private temporary directory, bound to loopback only (or to a unix socket
only, with unix=True). It is stopped by PID, never by name, and dies with
the test process (PR_SET_PDEATHSIG) if a test is killed half-way.
"""
import ctypes
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from mxtest import Mxacld, Started, free_port

_PR_SET_PDEATHSIG = 1

# A store URL's options for a test whose exact counts must not hinge on a
# loaded two-core machine answering every Redis call within mxacld's 200 ms
# default: a call that misses it is an outage, answered per tempfail=.
PATIENT = "?timeout=2000"


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


class RedisServer(Started):
    """A redis-server on a free loopback port (or a unix socket)."""

    def __init__(self, unix=False, password=None, extra_args=(), bus_port=False):
        self.dir = tempfile.mkdtemp(prefix="mxacl-redis-")
        self.log_path = os.path.join(self.dir, "redis.log")
        self.sock_path = os.path.join(self.dir, "redis.sock") if unix else None
        self.bus_port = bus_port
        self.port = 0 if unix else self.pick_port()
        self.started_once = False
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

    def pick_port(self):
        """A free port (and, for a cluster node, a free bus port + 10000)."""
        return free_port(10000 if self.bus_port else None)

    def argv(self):
        a = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir,
             "--logfile", self.log_path]
        if self.sock_path:
            a += ["--unixsocket", self.sock_path, "--unixsocketperm", "700"]
        if self.password:
            a += ["--requirepass", self.password]
        return a + self.extra_args

    def log_tail(self, n=8):
        """The last lines of its log and of what it printed (a bad
        option is only printed)."""
        tail = ""
        for path in (self.log_path, self.log_path + ".out"):
            try:
                with open(path, errors="replace") as f:
                    tail += "".join(f.readlines()[-n:])
            except OSError:
                pass
        return tail or "(nothing)\n"

    def start(self, timeout=10.0, tries=5):
        """Start (or start again, on the same port) and wait for PING. A
        first start whose port was taken meanwhile (a port is only free
        until someone binds it) is tried again on other free ports."""
        assert not self.running(), "redis-server is already running"
        if self.sock_path and os.path.exists(self.sock_path):
            os.unlink(self.sock_path)
        argv = self.argv()
        with open(self.log_path + ".out", "ab") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT,
                                         preexec_fn=_die_with_parent)
        self.stalled = False
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                log = self.log_tail()
                status = self.proc.returncode
                self.proc = None
                if ("Address already in use" in log and not self.started_once
                        and not self.sock_path and tries > 1):
                    self.port = self.pick_port()
                    return self.start(timeout, tries - 1)
                raise AssertionError("%s exited with status %d at start-up; its log ends:\n%s"
                                     % (argv[0], status, log))
            try:
                self.cmd("PING", timeout=0.5)
                self.started_once = True
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


class RedisSentinel(RedisServer):
    """A redis-sentinel on a free loopback port, watching one master
    (quorum 2) with a short down-after-milliseconds."""

    def __init__(self, master_port, name="mymaster", down_after_ms=1000,
                 failover_timeout_ms=5000, password=None):
        super().__init__(password=password)
        self.conf_path = os.path.join(self.dir, "sentinel.conf")
        self.conf = ["sentinel monitor %s 127.0.0.1 %d 2" % (name, master_port),
                     "sentinel down-after-milliseconds %s %d" % (name, down_after_ms),
                     "sentinel failover-timeout %s %d" % (name, failover_timeout_ms),
                     "sentinel parallel-syncs %s 1" % name]
        if password:
            self.conf.append("requirepass %s" % password)

    def argv(self):
        # sentinel rewrites its config file: it must be its own, writable;
        # written afresh before the first start (the port may change then)
        if not self.started_once:
            with open(self.conf_path, "w") as f:
                f.write("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n%s\n"
                        % (self.port, self.dir, self.log_path, "\n".join(self.conf)))
        return ["redis-sentinel", self.conf_path]


class SentinelSet(Started):
    """A master, a replica of it and three sentinels, all on free loopback
    ports; url is the --store URL (redis-sentinel://...)."""

    def __init__(self, name="mymaster", down_after_ms=1000, sentinel_password=None):
        self.name = name
        self.master = RedisServer()
        self.replica = None
        self.sentinels = []
        self.down_after_ms = down_after_ms
        self.sentinel_password = sentinel_password

    @property
    def url(self):
        hosts = ",".join("127.0.0.1:%d" % s.port for s in self.sentinels)
        q = "?sentinel_password=%s" % self.sentinel_password if self.sentinel_password else ""
        return "redis-sentinel://%s/%s%s" % (hosts, self.name, q)

    def start(self, timeout=30.0):
        self.master.start()
        self.replica = RedisServer(extra_args=["--replicaof", "127.0.0.1",
                                               str(self.master.port)])
        self.replica.start()
        for _ in range(3):
            s = RedisSentinel(self.master.port, self.name, self.down_after_ms,
                              password=self.sentinel_password)
            self.sentinels.append(s)
            s.start()
        deadline = time.monotonic() + timeout
        # ready: the replica in sync, every sentinel knowing the replica and
        # the two other sentinels (so a quorum can agree on a failover)
        while True:
            try:
                ok = "master_link_status:up" in self.replica.cmd("INFO", "replication")
                for s in self.sentinels:
                    ok = ok and len(s.cmd("SENTINEL", "replicas", self.name)) == 1
                    ok = ok and len(s.cmd("SENTINEL", "sentinels", self.name)) == 2
            except (OSError, ConnectionError, RedisError):
                ok = False
            if ok:
                return self
            if time.monotonic() > deadline:
                raise AssertionError("the sentinels do not see each other and the replica "
                                     "after %.0f s" % timeout)
            time.sleep(0.1)

    def master_addr(self):
        """(host, port) of the master as the first sentinel that answers says."""
        for s in self.sentinels:
            try:
                h, p = s.cmd("SENTINEL", "get-master-addr-by-name", self.name)
                return h, int(p)
            except (OSError, ConnectionError, RedisError, TypeError, ValueError):
                continue
        return None

    def cleanup(self):
        for s in self.sentinels:
            s.cleanup()
        if self.replica:
            self.replica.cleanup()
        self.master.cleanup()


class RedisCluster(Started):
    """n redis-server nodes in cluster mode on free loopback ports, made
    into a cluster with one replica per master (redis-cli --cluster
    create); url is the --store URL (redis-cluster://...)."""

    def __init__(self, n=6, node_timeout_ms=1000):
        self.nodes = []
        for _ in range(n):
            node = RedisServer(
                bus_port=True,
                extra_args=["--cluster-enabled", "yes",
                            "--cluster-node-timeout", str(node_timeout_ms),
                            "--cluster-config-file", "nodes.conf",
                            # a replica may always take over: redis 7.0.15
                            # otherwise refuses ("disconnected from master for
                            # longer than allowed") seconds after its master
                            # was killed
                            "--cluster-replica-validity-factor", "0"])
            self.nodes.append(node)

    @property
    def url(self):
        return "redis-cluster://%s" % ",".join("127.0.0.1:%d" % n.port for n in self.nodes[:3])

    def cli(self, *args, timeout=120):
        p = subprocess.run(["redis-cli"] + [str(a) for a in args], capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if p.returncode:
            raise AssertionError("redis-cli %s: exit %d\n%s%s" % (" ".join(map(str, args)),
                                                                  p.returncode, p.stdout,
                                                                  p.stderr))
        return p.stdout

    def start(self, timeout=60.0):
        for n in self.nodes:
            n.start()
        self.cli("--cluster", "create",
                 *["127.0.0.1:%d" % n.port for n in self.nodes],
                 "--cluster-replicas", "1", "--cluster-yes")
        self.wait_ok(timeout)
        return self

    def wait_ok(self, timeout=60.0):
        """Until every running node says cluster_state:ok and agrees on
        the slots (redis-cli --cluster check passes)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                ok = all("cluster_state:ok" in n.cmd("CLUSTER", "INFO")
                         for n in self.nodes if n.running())
                if ok:
                    self.cli("--cluster", "check", "127.0.0.1:%d" % self.any_master().port)
                    return
            except (OSError, ConnectionError, RedisError, AssertionError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the cluster is not ok after %.0f s" % timeout)
            time.sleep(0.2)

    def masters(self):
        """The running nodes that are masters owning slots, as each says
        of itself (CLUSTER NODES, its "myself" line)."""
        out = []
        for n in self.nodes:
            if not n.running():
                continue
            try:
                for line in n.cmd("CLUSTER", "NODES").splitlines():
                    f = line.split()
                    if "myself" in f[2] and "master" in f[2] and len(f) > 8:
                        out.append(n)
            except (OSError, ConnectionError, RedisError):
                pass
        return out

    def any_master(self):
        m = self.masters()
        if not m:
            raise AssertionError("no master in the cluster")
        return m[0]

    def node_of_key(self, key):
        """The master node that owns key's slot."""
        slot = self.any_master().cmd("CLUSTER", "KEYSLOT", key)
        for n in self.masters():
            for r in n.cmd("CLUSTER", "SLOTS"):
                if r[0] <= slot <= r[1] and int(r[2][1]) == n.port:
                    return n
        raise AssertionError("no master owns slot %d" % slot)

    def keys(self, pattern):
        """Every key matching pattern on every master."""
        out = []
        for n in self.masters():
            out += n.cmd("KEYS", pattern)
        return sorted(out)

    def cmd_key(self, key, *args):
        """A command on the master that owns key."""
        return self.node_of_key(key).cmd(*args)

    def cleanup(self):
        for n in self.nodes:
            n.cleanup()


class DelayProxy:
    """A TCP proxy on a free loopback port in front of a Redis (or any TCP
    server): every chunk read from either side is passed on `delay`
    seconds later, in order, so a round trip takes at least 2 * delay.
    chunks_up counts the chunks read from the clients (a write of several
    commands at once is one chunk on loopback). A context manager; it runs
    on threads of the test process.

        with DelayProxy(r.port, 0.1) as px:
            d = Mxacld(conf, extra_args=["--store", px.url])   # ?timeout=5000
    """

    def __init__(self, upstream_port, delay):
        self.upstream = ("127.0.0.1", upstream_port)
        self.delay = delay
        self.chunks_up = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socks = []
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind(("127.0.0.1", 0))
        self._lsock.listen(16)
        self.port = self._lsock.getsockname()[1]
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    @property
    def url(self):
        return "redis://127.0.0.1:%d?timeout=5000" % self.port

    def _accept(self):
        while not self._stop.is_set():
            try:
                c, _ = self._lsock.accept()
            except OSError:
                return
            u = socket.create_connection(self.upstream, 5)
            for x in (c, u):
                x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._socks += [c, u]
            for src, dst, up in ((c, u, True), (u, c, False)):
                q = queue.Queue()
                threading.Thread(target=self._read, args=(src, q, up), daemon=True).start()
                threading.Thread(target=self._write, args=(dst, q), daemon=True).start()

    def _read(self, src, q, up):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if up and data:
                with self._lock:
                    self.chunks_up += 1
            q.put((time.monotonic() + self.delay, data))
            if not data:
                return

    def _write(self, dst, q):
        while True:
            due, data = q.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
            except OSError:
                return

    def close(self):
        self._stop.set()
        self._lsock.close()
        with self._lock:
            for x in self._socks:
                try:
                    x.close()
                except OSError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def eom_request(user="alice", helo="a.example", rcpts=1, size=1000):
    """An END-OF-MESSAGE request of a SASL login: what the quota tests send
    through GatewaysCase."""
    return {"request": "smtpd_access_policy", "protocol_state": "END-OF-MESSAGE",
            "sasl_username": user, "helo_name": helo, "recipient_count": str(rcpts),
            "size": str(size)}


class GatewaysCase:
    """A unittest.TestCase mixin: gateways (mxacld) on one policy, each on
    its own store URL (None: the memory store), and Redis servers, all
    stopped after the test."""

    def start(self, conf, store_urls):
        nodes = []
        for url in store_urls:
            d = Mxacld(conf, extra_args=["--store", url] if url else [])
            self.addCleanup(d.cleanup)
            d.start()
            nodes.append(d)
        self.nodes = nodes
        return nodes

    def redis(self):
        r = RedisServer()
        r.start()
        self.addCleanup(r.cleanup)
        return r

    def tearDown(self):
        for d in getattr(self, "nodes", []):
            d.stop()
