"""Two mxacld gateways sharing a Redis Cluster (--store
redis-cluster://...): six redis-server nodes in cluster mode on loopback,
made into three masters with a replica each by redis-cli --cluster
create. The cross-gateway tests of test_redis_cluster.py (one Redis) pass
on the cluster; a resharding under load loses no answer and breaks no
check-and-update; a master killed under load fails over to its replica
and service resumes by itself; mxacl grey lists every master. A seed
that is not in cluster mode stops mxacld at start.
"""
import json
import os
import re
import subprocess
import threading
import time
import unittest

from mxtest import Mxacld, concurrent, control_stats, free_port, mxacl_path
from redis import RedisCluster, RedisServer

GREY = """
acl g greylist delay=%(delay)s tempfail=match
action grey DEFER_IF_PERMIT Greylisted
action pass PREPEND X-Greylist: delayed ${greylist_age} seconds
access g grey
access pass
"""

RATE = """
acl flood rate sender %d/1h tempfail=match
action slow DEFER_IF_PERMIT slow down
action ok OK
access flood slow
access ok
"""

# greylisting on every network, a rate on senders to rate@example.net;
# a failed check denies (tempfail=match), so a failure can never pass
# anything early or let a rate over its limit
MIXED = """
acl to_rate recipient rate@example.net
acl g greylist delay=1h tempfail=match
acl flood rate sender 10/1h tempfail=match
action grey DEFER_IF_PERMIT Greylisted
action slow DEFER_IF_PERMIT slow down
action ok OK
action pass DUNNO
access to_rate flood slow
access to_rate ok
access g grey
access pass
"""

GREYLISTED = "action=DEFER_IF_PERMIT Greylisted"
PASSED = re.compile(r"^action=PREPEND X-Greylist: delayed \d+ seconds$")


def req(sender="a@example.org", recipient="b@example.net", client="192.0.2.10"):
    return {"request": "smtpd_access_policy", "protocol_state": "RCPT",
            "client_address": client, "sender": sender, "recipient": recipient}




def store_lines(d):
    """mxacld's log without its decision lines."""
    return "\n".join(line for line in d.log_text().splitlines() if " decision " not in line)


class ClusterCase(unittest.TestCase):
    """A cluster per class; gateways per test."""
    cluster = None

    @classmethod
    def setUpClass(cls):
        cls.cluster = RedisCluster(6)
        try:
            cls.cluster.start()
        except BaseException:
            cls.cluster.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.cluster.cleanup()

    def gateways(self, conf, n=2, suffix=""):
        out = []
        for _ in range(n):
            d = Mxacld(conf, extra_args=["--store", self.cluster.url + suffix])
            d.control_path = os.path.join(d.tmpdir, "control.sock")
            d.extra_args += ["--control", d.control_path]
            self.addCleanup(d.cleanup)
            d.start()
            self.addCleanup(d.stop)
            d.wait_log(r"slot map from \S+: 3 masters")
            out.append(d)
        return out


class ClusterSharedTest(ClusterCase):
    def test_triplet_seen_on_one_passes_on_the_other(self):
        a, b = self.gateways(GREY % {"delay": "2s"}, suffix="?prefix=t1:")
        self.assertEqual(a.query(req()), GREYLISTED)
        first = time.monotonic()    # mxacld's stamp of the triplet is no later
        self.assertEqual(b.query(req()), GREYLISTED)
        self.assertEqual(b.query(req(sender="other@example.org", client="198.51.100.7")),
                         GREYLISTED)
        time.sleep(max(0.0, first + 2.2 - time.monotonic()))
        self.assertRegex(b.query(req()), PASSED)
        self.assertRegex(a.query(req()), PASSED)
        # the documented layout: the client network's address is the hash
        # tag of the triplet and its AWL entry, which share one slot
        keys = self.cluster.keys("t1:*")
        self.assertEqual(keys, ["t1:a:{192.0.2.0}/24",
                                "t1:g:{192.0.2.0}/24/a@example.org/b@example.net",
                                "t1:g:{198.51.100.0}/24/other@example.org/b@example.net"])
        n1 = self.cluster.node_of_key(keys[0])
        self.assertEqual(n1.port, self.cluster.node_of_key(keys[1]).port)
        self.assertEqual(n1.cmd("HGET", keys[1], "passed"), "1")
        self.assertGreater(n1.cmd("TTL", keys[1]), 0)

    def test_racing_first_requests_none_pass_early(self):
        nodes = self.gateways(GREY % {"delay": "3s"}, suffix="?prefix=t2:")
        jobs = [(nodes[i % 2], req()) for i in range(24)]
        self.assertEqual(concurrent(jobs), [GREYLISTED] * 24)
        first = time.monotonic()    # mxacld's stamp of the triplet is no later
        time.sleep(max(0.0, first + 3.2 - time.monotonic()))
        for r in concurrent(jobs):
            self.assertRegex(r, PASSED)
        # the triplet's first pass counted once towards its network's AWL
        awl = self.cluster.keys("t2:a:*")
        self.assertEqual(awl, ["t2:a:{192.0.2.0}/24"])
        self.assertEqual(self.cluster.cmd_key(awl[0], "HGET", awl[0], "count"), "1")

    def test_racing_rate_exactly_limit_pass(self):
        nodes = self.gateways(RATE % 10, suffix="?prefix=t3:")
        replies = concurrent([(nodes[i % 2], req()) for i in range(30)])
        self.assertEqual(replies.count("action=OK"), 10, replies)
        self.assertEqual(replies.count("action=DEFER_IF_PERMIT slow down"), 20, replies)

    def test_grey_lists_every_master(self):
        (d,) = self.gateways(GREY % {"delay": "1h"}, n=1, suffix="?prefix=t4:")
        nets = ["10.%d.%d.1" % (i, i * 7 % 256) for i in range(40)]
        for c in nets:
            self.assertEqual(d.query(req(client=c)), GREYLISTED)
        # the keys are on every master
        on = {self.cluster.node_of_key(k).port for k in self.cluster.keys("t4:*")}
        self.assertEqual(len(on), 3, on)
        url = self.cluster.url + "?prefix=t4:"

        def grey(*args):
            p = subprocess.run([mxacl_path(), "grey", "--store", url] + list(args),
                               capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL)
            self.assertEqual(p.returncode, 0, p.stderr)
            return p.stdout

        listed = json.loads(grey("--json", "list"))
        want = sorted("%s.0/24/a@example.org/b@example.net" % c.rsplit(".", 1)[0]
                      for c in nets)
        self.assertEqual(sorted(e["key"] for e in listed), want)
        # edits find the tagged keys: pass one, forget another
        grey("pass", want[0])
        grey("forget", want[1])
        self.assertRegex(d.query(req(client=nets[0])), PASSED)
        self.assertEqual(len(json.loads(grey("--json", "list"))), 39)
        grey("flush")
        self.assertEqual(json.loads(grey("--json", "list")), [])


class ClusterReloadTest(ClusterCase):
    def test_reload_keeps_the_running_store(self):
        conf = "set store %s?prefix=t5:\n%s" % (self.cluster.url, GREY % {"delay": "1h"})
        d = Mxacld(conf)
        self.addCleanup(d.cleanup)
        d.start()
        self.assertEqual(d.query(req()), GREYLISTED)
        with RedisServer() as plain:
            # a seed that is not in cluster mode, in the reloaded policy:
            # the store is opened once; the running one stays
            bad = "redis-cluster://127.0.0.1:%d" % plain.port
            d.reload("set store %s\n%s" % (bad, GREY % {"delay": "1h"}))
            d.wait_log(r'reload: "set store" changed; it takes effect when mxacld is '
                       r'restarted')
            self.assertEqual(d.query(req(client="198.51.100.1")), GREYLISTED)
            self.assertEqual(self.cluster.keys("t5:*"),
                             ["t5:g:{192.0.2.0}/24/a@example.org/b@example.net",
                              "t5:g:{198.51.100.0}/24/a@example.org/b@example.net"])
            self.assertEqual(plain.cmd("DBSIZE"), 0)
        d.stop()


class LoadMixin:
    """Greylisting and rate requests from both gateways on many networks,
    every answer recorded."""

    def start_load(self, gws, limit=10):
        self.stop_load = threading.Event()
        self.answers = []          # (kind, key, reply)
        self.load_errors = []

        def grey_load(d, tag):
            try:
                with d.conn() as c:
                    i = 0
                    while not self.stop_load.is_set():
                        i += 1
                        client = "10.%d.%d.1" % (i % 97, i % 89)
                        r = c.request(req(recipient="r-%s-%d@example.net" % (tag, i),
                                          client=client))
                        self.answers.append(("grey", tag, r))
            except Exception as e:
                self.load_errors.append("%s: %r" % (tag, e))

        def rate_load(d, tag):
            # each sender gets `limit + 5` requests from each of two threads
            try:
                with d.conn() as c:
                    k = 0
                    while not self.stop_load.is_set():
                        k += 1
                        for _ in range(limit + 5):
                            r = c.request(req(sender="s@rate-%d.example.org" % k,
                                              recipient="rate@example.net"))
                            self.answers.append(("rate", k, r))
            except Exception as e:
                self.load_errors.append("rate %s: %r" % (tag, e))

        self.threads = []
        for j, d in enumerate(gws):
            self.threads.append(threading.Thread(target=grey_load, args=(d, "g%d" % j)))
            self.threads.append(threading.Thread(target=rate_load, args=(d, "r%d" % j)))
        for t in self.threads:
            t.start()

    def end_load(self):
        self.stop_load.set()
        for t in self.threads:
            t.join(60)
        self.assertEqual(self.load_errors, [], "every request answered")


class ClusterReshardTest(ClusterCase, LoadMixin):
    def test_reshard_under_load(self):
        a, b = self.gateways(MIXED)
        masters = self.cluster.masters()
        src, dst = masters[0], masters[1]
        src_id, dst_id = src.cmd("CLUSTER", "MYID"), dst.cmd("CLUSTER", "MYID")
        self.start_load([a, b])
        time.sleep(0.5)
        try:
            t0 = time.monotonic()
            self.cluster.cli("--cluster", "reshard", "127.0.0.1:%d" % src.port,
                             "--cluster-from", src_id, "--cluster-to", dst_id,
                             "--cluster-slots", "1500", "--cluster-yes",
                             "--cluster-pipeline", "10")
            took = time.monotonic() - t0
            time.sleep(1.0)
        finally:
            self.end_load()
        grey = [r for k, _, r in self.answers if k == "grey"]
        self.assertTrue(grey)
        # greylisting: no new triplet ever passes (tempfail=match: a failed
        # check greylists too)
        self.assertEqual(set(grey), {GREYLISTED})
        # rates: per sender, never more than the limit let through
        per_sender = {}
        for kind, k, r in self.answers:
            if kind == "rate":
                per_sender.setdefault(k, []).append(r)
        for k, rs in per_sender.items():
            self.assertEqual(set(rs) - {"action=OK", "action=DEFER_IF_PERMIT slow down"},
                             set())
            self.assertLessEqual(rs.count("action=OK"), 10, (k, rs))
        self.assertIn("action=OK", [r for rs in per_sender.values() for r in rs])
        st = [control_stats(d) for d in (a, b)]
        print("\n  resharding 1500 slots took %.1f s under load: %d greylist and %d rate "
              "answers; per gateway: slot map changes %s, store calls %s, of which "
              "answered per tempfail= %s"
              % (took, len(grey), sum(len(v) for v in per_sender.values()),
                 [s["store_slot_map_changes"] for s in st], [s["store_calls"] for s in st],
                 [s["store_errors"] for s in st]))
        for s, d in zip(st, (a, b)):
            self.assertGreaterEqual(s["store_slot_map_changes"], 1, s)
            # a node may miss the 200 ms command timeout while it migrates
            # keys on a loaded machine: then it is an outage, logged once
            # and counted, and its requests answer per tempfail=
            lost = re.findall(r"node \S+: (?:connection lost|cannot connect): .*", d.log_text())
            self.assertEqual(len(lost), s["store_outages"], store_lines(d))
            if lost:
                print("  gateway %d: %s" % (d.pid, "; ".join(lost)))
        for d in (a, b):
            self.assertRegex(d.log_text(), r"slot map changed: \d+ of 16384 slots", store_lines(d))
            # service goes on afterwards, on the new owners
            self.assertEqual(d.query(req(recipient="after@example.net", client="10.1.1.1")),
                             GREYLISTED)


class ClusterFailoverTest(ClusterCase, LoadMixin):
    def test_master_killed_fails_over(self):
        a, b = self.gateways(MIXED)
        victim = self.cluster.node_of_key("{192.0.2.0}")
        self.assertEqual(a.query(req()), GREYLISTED)
        self.start_load([a, b])
        time.sleep(0.5)
        try:
            killed = time.monotonic()
            victim.kill()
            # service resumes by itself for the victim's slots
            deadline = time.monotonic() + 30
            for d in (a, b):
                while True:
                    r = d.query(req(recipient="after-%f@example.net" % time.monotonic()))
                    if r == GREYLISTED and re.search(r"slot map changed", d.log_text()):
                        break
                    self.assertLess(time.monotonic(), deadline, store_lines(d))
                    time.sleep(0.1)
            back = time.monotonic() - killed
            time.sleep(0.5)
        finally:
            self.end_load()
        self.assertEqual({r for _, _, r in self.answers if _ == "grey"} - {GREYLISTED},
                         set())
        print("\n  master %d killed: service on its slots back after %.1f s"
              % (victim.port, back))
        for d in (a, b):
            log = d.log_text()
            self.assertEqual(len(re.findall(r"node 127\.0\.0\.1:%d: connection lost"
                                            % victim.port, log)), 1, store_lines(d))
            self.assertRegex(log, r"slot map changed: 5461 of 16384 slots have a new master")
            st = control_stats(d)
            # the victim's outage; another node may miss the 200 ms command
            # timeout on a loaded machine meanwhile (every node writes its
            # nodes.conf during a failover): that one is logged and counted too
            lost = re.findall(r"node \S+: (?:connection lost|cannot connect): .*", log)
            self.assertEqual(len(lost), st["store_outages"], store_lines(d))
            self.assertGreaterEqual(st["store_outages"], 1, st)
            self.assertGreaterEqual(st["store_slot_map_changes"], 1, st)


class ClusterBadInputTest(unittest.TestCase):
    def run_mxacld(self, url):
        d = Mxacld(GREY % {"delay": "2s"})
        self.addCleanup(d.cleanup)
        p = subprocess.run(d.argv() + ["--store", url], capture_output=True, text=True,
                           timeout=60, stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout + p.stderr

    def test_seed_not_in_cluster_mode(self):
        with RedisServer() as r:
            rc, out = self.run_mxacld("redis-cluster://127.0.0.1:%d" % r.port)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("127.0.0.1:%d is not in cluster mode (cluster-enabled no): use redis://"
                      % r.port, out)

    def test_no_seed_answers(self):
        port = free_port()
        rc, out = self.run_mxacld("redis-cluster://127.0.0.1:%d" % port)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("no cluster seed answers (127.0.0.1:%d: Connection refused)" % port, out)


if __name__ == "__main__":
    unittest.main()
