#!/usr/bin/env python3
"""bench/mkstate.py - write a big memory-store state file (--state-file) for
measuring loads, saves and listings; tests use it with small counts.

    bench/mkstate.py FILE N [--passed FRACTION] [--now EPOCH]

N greylist triplets "NET/SENDER/RECIPIENT" of typical length (about 55
bytes), a FRACTION of them passed (default 0.3), every one alive for a day
from --now (default: the current time), and one auto-whitelisted network
per 100 triplets. Lines come in key order, not in the store's order, which
does not matter to the loader. 10 million triplets make a file of about
900 MB in about a minute.
"""
import argparse
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("n", type=int)
    ap.add_argument("--passed", type=float, default=0.3)
    ap.add_argument("--now", type=int, default=int(time.time()))
    a = ap.parse_args()
    now = a.now
    first, exp = now - 600, now + 86400
    every = max(1, int(round(1 / a.passed))) if a.passed > 0 else 0
    with open(a.file, "w", buffering=1 << 20) as f:
        f.write("mxacl-state 1\n")
        out = []
        for i in range(a.n):
            net = "%d.%d.%d.0/24" % (10 + (i >> 16) % 200, (i >> 8) & 255, i & 255)
            passed = 1 if every and i % every == 0 else 0
            out.append("g %d %d %d %d %s/sender%d@example%d.org/rcpt%d@example.net\n"
                       % (first, now - 60, exp, passed, net, i, i % 997, i % 5003))
            if i % 100 == 0:
                out.append("a %d %d %d 5 %s\n" % (first, now - 60, exp, net))
            if len(out) >= 10000:
                f.write("".join(out))
                out = []
        f.write("".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
