#!/usr/bin/env python3
"""bench/state.py - measure the memory store's big-state behaviour (issue 9
item 12); not a test, nothing is asserted. Figures in docs/store.md.

    bench/mkstate.py /tmp/s1m 1000000
    bench/state.py load  MXACLD STATEFILE     load time, peak RSS, answers meanwhile
    bench/state.py save  MXACLD STATEFILE     worst answer while periodic saves run,
                                              then the final save (SIGTERM to exit)
    bench/state.py grow  MXACLD N             worst answer while N new triplets
                                              go in (the table grows)
    bench/state.py list  MXACLD STATEFILE     worst answer during `grey list`

MXACLD is a binary (build/mxacld, the optimised build, for figures that
mean something). Each run starts a private mxacld on a free loopback port
with a copy of nothing: the state file is read, and written back by the
save section (use a scratch copy).
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests", "lib"))
from mxtest import free_port  # noqa: E402

CONF = """
acl grey greylist delay=1h tempfail=match
action wait DEFER_IF_PERMIT wait
access grey wait
"""


def req(i, client="10.%d.%d.1"):
    c = client % ((i >> 8) & 255, i & 255)
    return ("request=smtpd_access_policy\nclient_address=%s\nsender=s%d@bench.example\n"
            "recipient=r@bench.example\n\n" % (c, i)).encode()


class Daemon:
    def __init__(self, exe, args):
        self.dir = tempfile.mkdtemp(prefix="mxacl-bench-state-")
        conf = os.path.join(self.dir, "policy.conf")
        with open(conf, "w") as f:
            f.write(CONF)
        self.port = free_port()
        self.log = os.path.join(self.dir, "log")
        self.ctl = os.path.join(self.dir, "control")
        self.t0 = time.monotonic()
        self.p = subprocess.Popen([exe, "-c", conf, "-l", "inet:127.0.0.1:%d" % self.port,
                                   "--log", "stderr", "--control", self.ctl] + args,
                                  stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"))

    def logtext(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def wait(self, rx, timeout=3600):
        while time.monotonic() - self.t0 < timeout:
            if re.search(rx, self.logtext()):
                return time.monotonic() - self.t0
            if self.p.poll() is not None:
                raise SystemExit("mxacld exited:\n" + self.logtext())
            time.sleep(0.01)
        return None

    def status(self, field):
        with open("/proc/%d/status" % self.p.pid) as f:
            for ln in f:
                if ln.startswith(field + ":"):
                    return int(ln.split()[1]) // 1024   # MB
        return 0

    def conn(self):
        while True:
            try:
                return socket.create_connection(("127.0.0.1", self.port), timeout=3600)
            except OSError:
                time.sleep(0.01)

    def stop(self):
        t = time.monotonic()
        self.p.send_signal(signal.SIGTERM)
        self.p.wait()
        return time.monotonic() - t


def ask(s, data):
    s.sendall(data)
    buf = b""
    while buf.count(b"\n\n") < data.count(b"\n\n"):
        chunk = s.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


class Prober(threading.Thread):
    """One request at a time on one connection; the worst answer time."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.d, self.worst, self.n, self.stop = d, 0.0, 0, False

    def run(self):
        s = self.d.conn()
        while not self.stop:
            t = time.monotonic()
            ask(s, req(self.n, "192.0.%d.%d"))
            self.worst = max(self.worst, time.monotonic() - t)
            self.n += 1


def load(exe, path):
    d = Daemon(exe, ["--state-file", path])
    pr = Prober(d)
    pr.start()
    # new: "state: loaded"; old builds load before "started"
    t = d.wait(r"started: ")
    if "state: loading" in d.logtext():
        t = d.wait(r"state: loaded")
    rss = d.status("VmHWM")
    pr.stop = True
    print("load %s: %.2f s until loaded, peak RSS %d MB, %d answers during the load, "
          "the worst %.1f ms" % (os.path.basename(path), t, rss, pr.n, pr.worst * 1000))
    print("  " + "\n  ".join(ln for ln in d.logtext().splitlines() if "state:" in ln))
    print("stop: %.2f s (with the final save)" % d.stop())


def save(exe, path):
    d = Daemon(exe, ["--state-file", path, "--state-interval", "5"])
    d.wait(r"started: ")
    if "state: loading" in d.logtext():
        d.wait(r"state: loaded")
    pr = Prober(d)
    pr.start()
    time.sleep(12)        # two periodic saves
    pr.stop = True
    pr.join()
    print("periodic saves: %d answers in 12 s, the worst %.1f ms" % (pr.n, pr.worst * 1000))
    print("  " + "\n  ".join(ln for ln in d.logtext().splitlines() if "state: saved" in ln))
    print("stop: %.2f s (the final save)" % d.stop())


def grow(exe, n):
    d = Daemon(exe, [])
    d.wait(r"started: ")
    s = d.conn()
    batch, worst, at = 64, 0.0, 0
    times = []
    for i in range(0, n, batch):
        data = b"".join(req(j, "10.%d.%d.1") for j in range(i, i + batch))
        t = time.monotonic()
        ask(s, data)
        dt = time.monotonic() - t
        times.append(dt)
        if dt > worst:
            worst, at = dt, i
    times.sort()
    print("grow to %d triplets, batches of %d pipelined requests: median batch %.2f ms, "
          "99.9%% %.2f ms, worst %.1f ms (at %d entries); peak RSS %d MB"
          % (n, batch, times[len(times) // 2] * 1000, times[int(len(times) * 0.999)] * 1000,
             worst * 1000, at, d.status("VmHWM")))
    d.stop()


def listing(exe, path):
    d = Daemon(exe, ["--state-file", path])
    d.wait(r"started: ")
    if "state: loading" in d.logtext():
        d.wait(r"state: loaded")
    pr = Prober(d)
    pr.start()
    time.sleep(0.5)
    c = socket.socket(socket.AF_UNIX)
    c.connect(d.ctl)
    t = time.monotonic()
    c.sendall(b"grey list\n")
    tail, lines = b"", 0
    while not re.search(rb"(^|\n)(ok|error)[^\n]*\n$", tail):
        chunk = c.recv(1 << 20)
        if not chunk:
            break
        lines += chunk.count(b"\n")
        tail = (tail + chunk)[-300:]
    took = time.monotonic() - t
    pr.stop = True
    pr.join()
    print("grey list: %d lines in %.2f s; %d policy answers meanwhile, the worst %.1f ms"
          % (lines, took, pr.n, pr.worst * 1000))
    d.stop()


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("load", "save", "grow", "list"):
        sys.exit(__doc__)
    what, exe, arg = sys.argv[1:]
    {"load": load, "save": save, "grow": lambda e, a: grow(e, int(a)),
     "list": listing}[what](exe, arg)


if __name__ == "__main__":
    main()
