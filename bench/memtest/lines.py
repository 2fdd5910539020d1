#!/usr/bin/env python3
"""Memory per access line (issue 16): N access lines of one acl each, the
resident memory of mxacld after the start and after reloads.

    bench/memtest/lines.py [N ...] [--form literal|network|regex|onelist]
                           [--reloads K] [--bin PATH]
                                        (from the repository root; default
                                         N = 10000 100000, every form, 1
                                         reload, build/mxacld)

Each policy has N lines of the form the issue measured:

    acl sN sender userN@example.com        (literal; network: client_address
    action rejN REJECT ... N               10.x.y.z/32; regex: sender
    access sN rejN                         /^userN@example\\.com$/)

and "onelist", the same N literal values in one acl on one line, for the
size of what the lines say. mxacld (the optimised build) is started on it
with its log on stderr; VmRSS and VmHWM are read from /proc/PID/status
once it answers, then SIGHUP is sent K times, each time waiting for the log
line "reload: ... loaded" and reading again. Prints one line per form and
N: start, after the reloads, the peak, and bytes per line."""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
from mxtest import free_port  # noqa: E402

FORMS = ("literal", "network", "regex", "onelist")


def policy(form, n):
    """The policy text of n lines of form."""
    out = []
    if form == "onelist":
        out.append("acl many sender " + " ".join(
            "user%d@example.com" % i for i in range(n)) + "\n")
        out.append("action rej REJECT not here\naccess many rej\n")
        return "".join(out)
    for i in range(n):
        if form == "literal":
            out.append("acl s%d sender user%d@example.com\n" % (i, i))
        elif form == "network":
            out.append("acl s%d client_address 10.%d.%d.%d/32\n"
                       % (i, i >> 16 & 255, i >> 8 & 255, i & 255))
        else:
            out.append("acl s%d sender /^user%d@example\\.com$/\n" % (i, i))
        out.append("action rej%d REJECT not here %d\naccess s%d rej%d\n" % (i, i, i, i))
    return "".join(out)


def status(pid):
    """VmRSS and VmHWM of pid in bytes."""
    with open("/proc/%d/status" % pid) as f:
        st = f.read()
    return tuple(int(re.search(k + r":\s+(\d+)", st).group(1)) * 1024
                 for k in ("VmRSS", "VmHWM"))


class Daemon:
    """mxacld on conf, its stderr read by a thread counting "loaded" lines."""

    def __init__(self, binary, conf):
        self.port = free_port()
        self.loaded = 0
        self.cv = threading.Condition()
        self.p = subprocess.Popen([binary, "-c", conf, "-l", "inet:127.0.0.1:%d" % self.port],
                                  stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port)).close()
                return
            except OSError:
                if self.p.poll() is not None:
                    raise RuntimeError("mxacld exited with %d" % self.p.returncode)
                time.sleep(0.05)
        raise RuntimeError("mxacld did not start")

    def _read(self):
        for line in self.p.stderr:
            if b"reload:" in line and b" loaded" in line:
                with self.cv:
                    self.loaded += 1
                    self.cv.notify_all()
            elif b"has errors" in line:
                sys.stderr.write(line.decode(errors="replace"))

    def reload(self):
        """SIGHUP, and wait until the log says the new policy serves."""
        with self.cv:
            want = self.loaded + 1
            self.p.send_signal(signal.SIGHUP)
            if not self.cv.wait_for(lambda: self.loaded >= want, timeout=600):
                raise RuntimeError("reload did not finish")
        # the replaced program is dropped on the reload thread after the
        # swap: give it a moment before reading
        time.sleep(0.5)

    def stop(self):
        self.p.terminate()
        self.p.wait()


def measure(binary, form, n, reloads):
    """(start RSS, RSS after reloads, peak) for n lines of form."""
    d = tempfile.mkdtemp(prefix="mxacl-lines-")
    conf = os.path.join(d, "policy.conf")
    with open(conf, "w") as f:
        f.write(policy(form, n))
    dm = Daemon(binary, conf)
    try:
        time.sleep(0.3)
        start, _ = status(dm.p.pid)
        for _ in range(reloads):
            dm.reload()
        after, peak = status(dm.p.pid)
    finally:
        dm.stop()
        os.unlink(conf)
        os.rmdir(d)
    return start, after, peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="*", type=int, default=[10000, 100000])
    ap.add_argument("--form", action="append", choices=FORMS)
    ap.add_argument("--reloads", type=int, default=1)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "mxacld"))
    a = ap.parse_args()
    mb = 1 << 20
    for form in a.form or FORMS:
        for n in a.n:
            start, after, peak = measure(a.bin, form, n, a.reloads)
            print("%-8s %7d lines: VmRSS start %6.1f MB, after %d reload%s %6.1f MB, "
                  "VmHWM %6.1f MB; %5.0f bytes per line" % (
                      form, n, start / mb, a.reloads, "" if a.reloads == 1 else "s",
                      after / mb, peak / mb, start / n), flush=True)


if __name__ == "__main__":
    main()
