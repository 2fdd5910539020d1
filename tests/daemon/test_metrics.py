"""The metrics endpoint (mxacld --metrics inet:HOST:PORT), the control
socket's status and stats, and `mxacl status` / `mxacl stats`: real
requests on a real mxacld, then a scrape over HTTP checked value by value;
`promtool check metrics` (Debian's prometheus package) on the scrape; a
real unbound for the DNS counters and a dead Redis port for the store's;
the Grafana dashboard in contrib/ checked against a scrape."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

from mxtest import ROOT, Mxacld, PolicyConn, free_port, mxacl_path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_control import ControlConn  # noqa: E402
from dnsserver import DnsServer, NEVER_ZONE, unbound_path  # noqa: E402

CONF = """acl bad sender bad@example.com
acl worse sender worse@example.com
action rej REJECT go away
action rej2 550 5.7.1 really not
access bad rej
access worse rej2
"""

DASHBOARD = os.path.join(ROOT, "contrib", "grafana", "mxacl.json")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def request(sender):
    return {"request": "smtpd_access_policy", "protocol_state": "RCPT",
            "client_address": "192.0.2.7", "sender": sender,
            "recipient": "bob@example.net"}


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        return r.headers.get("Content-Type"), r.read().decode()


def parse(text):
    """{(name, frozenset(labels)): value} of a scrape's samples."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


class MetricsCase(unittest.TestCase):
    def start(self, conf=CONF, extra=()):
        self.mport = free_port()
        d = Mxacld(conf)
        self.ctl = os.path.join(d.tmpdir, "control.sock")
        d.extra_args += ["--metrics", "inet:127.0.0.1:%d" % self.mport, "--control", self.ctl]
        d.extra_args += list(extra)
        d.start()
        self.addCleanup(d.cleanup)
        return d

    def samples(self):
        return parse(scrape(self.mport)[1])


class EndpointTest(MetricsCase):
    def test_requests_by_action_and_line_time_and_identity(self):
        d = self.start()
        rule = d.conf_path + ":5"
        accepted = value(self.samples(), "mxacl_connections_accepted_total")
        for s in ["bad@example.com"] * 3 + ["worse@example.com"] + ["ok@example.com"] * 2:
            d.query(request(s))
        ctype, text = scrape(self.mport)
        self.assertEqual(ctype, "text/plain; version=0.0.4; charset=utf-8")
        got = parse(text)
        self.assertEqual(value(got, "mxacl_requests_total", action="REJECT"), 3)
        self.assertEqual(value(got, "mxacl_requests_total", action="550"), 1)
        self.assertEqual(value(got, "mxacl_requests_total", action="DUNNO"), 2)
        self.assertEqual(value(got, "mxacl_rule_hits_total", rule=rule), 3)
        self.assertEqual(value(got, "mxacl_rule_hits_total", rule=d.conf_path + ":6"), 1)
        self.assertEqual(value(got, "mxacl_rule_hits_total", rule="default"), 2)
        self.assertEqual(value(got, "mxacl_request_duration_seconds_count"), 6)
        self.assertEqual(value(got, "mxacl_request_duration_seconds_bucket", le="+Inf"), 6)
        self.assertGreater(value(got, "mxacl_request_duration_seconds_sum"), 0)
        self.assertEqual(value(got, "mxacl_connections_accepted_total"), accepted + 6)
        with open(d.conf_path, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        self.assertEqual(value(got, "mxacl_policy_info", file=d.conf_path, sha256=sha), 1)
        self.assertAlmostEqual(value(got, "mxacl_policy_load_time_seconds"), time.time(),
                               delta=60)
        self.assertEqual(value(got, "mxacl_build_info", version="0.1"), 1)
        with PolicyConn(d.endpoint) as c:      # one open while scraping
            c.request(request("ok@example.com"))
            self.assertEqual(value(self.samples(), "mxacl_connections_open"), 1)

    def test_promtool_accepts_the_scrape(self):
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool is not installed (scripts/deps: prometheus)")
        d = self.start()
        for s in ["bad@example.com", "ok@example.com"]:
            d.query(request(s))
        text = scrape(self.mport)[1]
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout + p.stderr, "", "promtool has remarks")

    def test_other_paths_and_methods_are_refused(self):
        self.start()
        for url, method, code in [("/", "GET", 404), ("/metrics/x", "GET", 404),
                                  ("/metrics", "POST", 501)]:
            req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.mport, url),
                                         method=method, data=b"" if method == "POST" else None)
            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.urlopen(req, timeout=10)
            self.assertEqual(cm.exception.code, code, url)

    def test_counters_survive_a_reload_and_reloads_are_counted(self):
        d = self.start()
        d.query(request("bad@example.com"))
        self.assertTrue(d.reload("acl bad sender bad@example.com\naction rej REJECT no\n\n"
                                 "access bad rej\n"))
        d.query(request("bad@example.com"))
        self.assertFalse(d.reload("acl bad nosuchtype x\n"))
        got = self.samples()
        self.assertEqual(value(got, "mxacl_requests_total", action="REJECT"), 2)
        self.assertEqual(value(got, "mxacl_rule_hits_total", rule=d.conf_path + ":5"), 1)
        self.assertEqual(value(got, "mxacl_rule_hits_total", rule=d.conf_path + ":4"), 1)
        self.assertEqual(value(got, "mxacl_reloads_total"), 1)
        self.assertEqual(value(got, "mxacl_reloads_failed_total"), 1)
        # the identity is the policy serving: the one the good reload read
        want = hashlib.sha256(b"acl bad sender bad@example.com\naction rej REJECT no\n\n"
                              b"access bad rej\n").hexdigest()
        info = [k for k in got if k[0] == "mxacl_policy_info"]
        self.assertEqual(info, [("mxacl_policy_info",
                                 frozenset({("file", d.conf_path), ("sha256", want)}))])

    def test_bad_endpoint_is_a_start_up_error(self):
        for ep, msg in [("127.0.0.1:9", "use inet:HOST:PORT"),
                        ("inet:127.0.0.1:x", "the port must be a number"),
                        ("inet:192.0.2.1:%d" % free_port(), "cannot listen")]:
            d = Mxacld(CONF, extra_args=["--metrics", ep])
            self.addCleanup(d.cleanup)
            with self.assertRaises(AssertionError) as cm:
                d.start()
            self.assertIn(msg, str(cm.exception), ep)


class StatusTest(MetricsCase):
    def ctl_cmd(self, cmd):
        with ControlConn(self.ctl) as c:
            return c.command(cmd)

    def test_status_over_the_socket_and_mxacl_status(self):
        d = self.start()
        with PolicyConn(d.endpoint) as c:
            c.request(request("bad@example.com"))
            lines, final = self.ctl_cmd("status")
        self.assertEqual(final, "ok %d" % len(lines))
        got = dict(ln.split(" ", 1) for ln in lines)
        with open(d.conf_path, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        self.assertEqual(got["version"], "0.1")
        self.assertEqual(got["pid"], str(d.pid))
        self.assertEqual(got["policy"], d.conf_path)
        self.assertEqual(got["policy_sha256"], sha)
        self.assertEqual(got["connections"], "1")
        self.assertEqual((got["store"], got["store_state"]), ("memory", "up"))
        self.assertEqual(got["dns_cache_entries"], "0")
        self.assertLess(int(got["uptime"]), 600)
        self.assertEqual(self.ctl_cmd("status now"), ([], "error status takes no argument"))

        p = subprocess.run([mxacl_path(), "status", "--control", self.ctl, "--json"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        j = json.loads(p.stdout)
        self.assertEqual((j["policy"], j["policy_sha256"], j["connections"]),
                         (d.conf_path, sha, 0))
        p = subprocess.run([mxacl_path(), "status", "--control", self.ctl],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"(?m)^policy_sha256 +%s$" % sha)
        self.assertRegex(p.stdout, r"(?m)^uptime +\d+ s \(0d 00:\d\d:\d\d\)$")

    def test_stats_has_what_the_endpoint_has(self):
        d = self.start()
        for s in ["bad@example.com", "bad@example.com", "ok@example.com"]:
            d.query(request(s))
        lines, final = self.ctl_cmd("stats")
        self.assertEqual(final, "ok %d" % len(lines))
        got = {ln.rsplit(" ", 1)[0]: int(ln.rsplit(" ", 1)[1]) for ln in lines}
        self.assertEqual(lines[0], "requests 3", "the old rows come first, in order")
        self.assertEqual(got['requests{action="REJECT"}'], 2)
        self.assertEqual(got['rule_hits{rule="%s:5"}' % d.conf_path], 2)
        self.assertEqual(got["request_duration_count"], 3)
        # every counter of the endpoint is in stats, by the same name
        ep = self.samples()
        for (name, labels), v in ep.items():
            m = re.match(r"mxacl_(\w+?)(_total)?$", name)
            if m and not labels and m.group(1) in got:
                self.assertEqual(got[m.group(1)], v, name)
        p = subprocess.run([mxacl_path(), "stats", "--control", self.ctl, "--json"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        j = json.loads(p.stdout)
        self.assertEqual(j["requests"], 3)
        self.assertEqual(j["requests_tempfail"], 0)
        self.assertEqual(j["requests"], 3)
        # every action of the policy has its counter from the start
        self.assertEqual(j["requests_by_action"], {"REJECT": 2, "DUNNO": 1, "550": 0})
        self.assertEqual(j["rule_hits_by_rule"], {d.conf_path + ":5": 2, d.conf_path + ":6": 0,
                                            "default": 1, "tempfail": 0})
        p = subprocess.run([mxacl_path(), "stats", "--control", self.ctl],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('requests{action="DUNNO"} 1\n', p.stdout)
        p = subprocess.run([mxacl_path(), "stats", "--control", d.tmpdir + "/nothing"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot connect", p.stderr)


class BackendsTest(MetricsCase):
    def test_dead_store_counts_errors_and_outage(self):
        conf = ("acl grey greylist delay=1s tempfail=default\naction wait DEFER_IF_PERMIT "
                "wait\naccess grey wait\n")
        d = self.start(conf, ["--store", "redis://127.0.0.1:%d" % free_port()])
        deadline = time.monotonic() + 20
        while True:
            got = self.samples()
            if value(got, "mxacl_store_down") == 1 and \
                    value(got, "mxacl_store_reconnects_total") >= 1:
                break
            self.assertLess(time.monotonic(), deadline, "no outage or reconnect counted")
            time.sleep(0.2)
        with PolicyConn(d.endpoint) as c:
            for _ in range(2):
                c.request(request("a@example.com"))
        got = self.samples()
        self.assertEqual(value(got, "mxacl_store_calls_total"), 2)
        self.assertEqual(value(got, "mxacl_store_errors_total"), 2)
        self.assertEqual(value(got, "mxacl_requests_tempfail_total"), 2)
        self.assertEqual(value(got, "mxacl_rule_hits_total", rule="tempfail"), 2)
        self.assertEqual(value(got, "mxacl_lookup_duration_seconds_count", kind="redis"), 2)

    @unittest.skipUnless(unbound_path(), "unbound is not installed (scripts/deps)")
    def test_dns_queries_hits_misses_failures_and_time(self):
        with DnsServer(records=["2.0.0.127.bl.mxacl.example. 300 IN A 127.0.0.2"],
                       zones=["bl.mxacl.example."]) as dns:
            conf = ("acl listed rbl bl.mxacl.example\nacl dead rbl %s tempfail=nomatch\n"
                    "action rej REJECT listed\naccess listed rej\naccess dead rej\n"
                    % NEVER_ZONE.rstrip("."))
            d = self.start(conf, ["--dns", dns.server, "--dns-timeout", "300"])
            req = dict(request("a@example.com"), client_address="127.0.0.2")
            self.assertEqual(d.query(req), "action=REJECT listed")     # miss
            self.assertEqual(d.query(req), "action=REJECT listed")     # hit
            req["client_address"] = "127.0.0.3"                        # not listed, then
            self.assertEqual(d.query(req), "action=DUNNO")             # a timeout
            got = self.samples()
            # lookups started ahead (the dead acl's, at the first wait) and
            # the TXT of a listing are lookups too: count by relations
            queries = value(got, "mxacl_dns_queries_total")
            hits = value(got, "mxacl_dns_cache_hits_total")
            misses = value(got, "mxacl_dns_cache_misses_total")
            self.assertGreaterEqual(hits, 1, "the second request's")
            self.assertGreaterEqual(misses, 3, "the first A, the timeout, the NXDOMAIN")
            self.assertEqual(queries, hits + misses)
            self.assertGreaterEqual(value(got, "mxacl_dns_failures_total", kind="timeout"), 1)
            self.assertEqual(value(got, "mxacl_dns_failures_total", kind="timeout"),
                             value(self.samples(), "mxacl_dns_failures_total", kind="timeout"))
            self.assertEqual(value(got, "mxacl_lookup_duration_seconds_count", kind="dns"),
                             misses, "every query sent is timed when it ends")
            self.assertGreaterEqual(value(got, "mxacl_dns_cache_entries"), 2)
            self.assertEqual(value(got, "mxacl_dnslist_checks_total"), 4)


class DashboardTest(MetricsCase):
    def test_dashboard_uses_only_metrics_that_exist(self):
        with open(DASHBOARD) as f:
            dash = json.load(f)
        exprs = []

        def walk(x):
            if isinstance(x, dict):
                for k, v in x.items():
                    if k in ("expr", "query") and isinstance(v, str):
                        exprs.append(v)
                    else:
                        walk(v)
            elif isinstance(x, list):
                for v in x:
                    walk(v)
        walk(dash)
        self.assertGreaterEqual(len(exprs), 10, "the dashboard's queries")
        used = set()
        for e in exprs:
            used.update(re.findall(r"\bmxacl_[a-z0-9_]+", e))
        self.start()
        text = scrape(self.mport)[1]
        have = set(re.findall(r"(?m)^(mxacl_[a-z0-9_]+)", text))
        # a labelled counter with no value yet (no DNS failure) has its
        # HELP and TYPE lines only
        have |= set(re.findall(r"(?m)^# TYPE (mxacl_[a-z0-9_]+) counter$", text))
        missing = sorted(used - have)
        self.assertEqual(missing, [], "dashboard metrics not in a scrape")
        self.assertGreaterEqual(len(used), 15)


if __name__ == "__main__":
    unittest.main()
