#!/usr/bin/env python3
"""Memory per distinct-counter key (docs/store.md, "Sizing"): N keys with
three values each, on mxacld's memory store and in Redis.

    bench/memtest/distinct.py [N] [VALUES]     (from the repository root;
                                                default 1000000 de,fr,us)

Memory store: the optimised mxacld (in $MXACL_BENCH_BUILD, default build/)
with one distinct acl keyed on
sasl_username, fed N users x 3 HELO names (values of the length given) on
one connection, pipelined; its VmRSS before and after, per key. Redis: a
private redis-server (tests/lib/redis.py) given the same keys in the
layout the distinct script writes (a sorted set per key, with a TTL);
used_memory before and after, per key, and MEMORY USAGE of one key."""
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
from mxtest import free_port  # noqa: E402
from redis import RedisServer  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
VALS = (sys.argv[2] if len(sys.argv) > 2 else "de,fr,us").split(",")
SPEC = "sasl_username|helo_name|3/3600|"


def memory_store():
    d = tempfile.mkdtemp(prefix="mxacl-distinct-mem-")
    conf = os.path.join(d, "policy.conf")
    with open(conf, "w") as f:
        f.write("acl many distinct sasl_username helo_name 3/1h\n"
                "action hold DEFER_IF_PERMIT x\naccess many hold\n")
    port = free_port()
    build = os.environ.get("MXACL_BENCH_BUILD", os.path.join(ROOT, "build"))
    p = subprocess.Popen([os.path.join(build, "mxacld"), "-c", conf,
                          "-l", "inet:127.0.0.1:%d" % port], stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                s = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.05)

        def rss():
            with open("/proc/%d/status" % p.pid) as st:
                return int(re.search(r"VmRSS:\s+(\d+)", st.read()).group(1)) * 1024
        before = rss()
        f = s.makefile("rb")
        for base in range(0, N, 500):
            buf = ["request=smtpd_access_policy\nprotocol_state=RCPT\n"
                   "sasl_username=user%07d@example.org\nhelo_name=%s\n\n" % (i, v)
                   for i in range(base, min(N, base + 500)) for v in VALS]
            s.sendall("".join(buf).encode())
            n = 0
            while n < len(buf):
                n += f.readline() == b"\n"
        after = rss()
        print("memory store: %d keys x %d values %s: VmRSS %d -> %d: %.0f bytes per key"
              % (N, len(VALS), ",".join(VALS), before, after, (after - before) / N))
    finally:
        p.terminate()
        p.wait()
        os.unlink(conf)
        os.rmdir(d)


def redis_store():
    r = RedisServer()
    r.start()
    try:
        def used():
            info = r.cmd("INFO", "memory")
            return int(re.search(r"used_memory:(\d+)", info).group(1))
        before = used()
        lua = ("local o = tonumber(ARGV[1]) for i = o + 1, o + tonumber(ARGV[2]) do "
               "local k = string.format('mxacl:d:" + SPEC + "user%07d@example.org', i) "
               "for j = 3, #ARGV do redis.call('ZADD', k, 1700000000 + j, ARGV[j]) end "
               "redis.call('EXPIRE', k, 3600) end return 1")
        for b in range(0, N, 100000):
            r.cmd("EVAL", lua, "0", str(b), str(min(100000, N - b)), *VALS, timeout=120)
        after = used()
        one = r.cmd("MEMORY", "USAGE", "mxacl:d:" + SPEC + "user0000001@example.org")
        print("redis: %d keys x %d values %s: used_memory %d -> %d: %.0f bytes per key "
              "(MEMORY USAGE of one key: %s)"
              % (N, len(VALS), ",".join(VALS), before, after, (after - before) / N, one))
    finally:
        r.cleanup()


if __name__ == "__main__":
    memory_store()
    redis_store()
