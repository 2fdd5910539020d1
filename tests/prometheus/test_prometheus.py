"""A real Prometheus (Debian's prometheus package) scrapes a real mxacld's
--metrics endpoint every second; policy requests are sent, and PromQL
queries through Prometheus's HTTP API (/api/v1/query) must answer what
was sent. Prometheus runs in the foreground on a free loopback port with a
private config and data directory, is stopped by PID, and dies with the
test process if a test is killed half-way."""
import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

from mxtest import Mxacld, free_port

CONF = """acl bad sender bad@example.com
action rej REJECT go away
access bad rej
"""


def _die_with_parent():
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except Exception:
        pass


def request(sender):
    return {"request": "smtpd_access_policy", "protocol_state": "RCPT",
            "client_address": "192.0.2.7", "sender": sender,
            "recipient": "bob@example.net"}


class Prometheus:
    def __init__(self, target):
        self.dir = tempfile.mkdtemp(prefix="mxacl-prom-")
        self.port = free_port()
        self.proc = None
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: mxacl\n    static_configs:\n"
                    "      - targets: ['%s']\n" % target)

    def start(self, timeout=60):
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            [shutil.which("prometheus"), "--config.file=" + os.path.join(self.dir, "prometheus.yml"),
             "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            preexec_fn=_die_with_parent, cwd=self.dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("prometheus exited: %s" % self.log_text())
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port,
                                            timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("prometheus not ready after %d s: %s" % (timeout, self.log_text()))

    def log_text(self):
        with open(os.path.join(self.dir, "prometheus.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-3000:]

    def query(self, promql):
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (
            self.port, urllib.parse.urlencode({"query": promql}))
        with urllib.request.urlopen(url, timeout=10) as r:
            got = json.load(r)
        assert got["status"] == "success", got
        return got["data"]["result"]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@unittest.skipUnless(shutil.which("prometheus"), "prometheus is not installed (scripts/deps)")
class PrometheusTest(unittest.TestCase):
    def test_prometheus_scrapes_and_answers_promql(self):
        mport = free_port()
        d = Mxacld(CONF, extra_args=["--metrics", "inet:127.0.0.1:%d" % mport])
        self.addCleanup(d.cleanup)
        d.start()
        prom = Prometheus("127.0.0.1:%d" % mport)
        self.addCleanup(prom.stop)
        prom.start()
        for s in ["bad@example.com"] * 4 + ["ok@example.com"] * 3:
            d.query(request(s))
        want = {"REJECT": 4, "DUNNO": 3}
        deadline = time.monotonic() + 60
        while True:
            res = prom.query('sum by (action) (mxacl_requests_total{job="mxacl"})')
            got = {r["metric"]["action"]: float(r["value"][1]) for r in res}
            if got == want:
                break
            self.assertLess(time.monotonic(), deadline,
                            "Prometheus answers %r, want %r\n%s" % (got, want, prom.log_text()))
            time.sleep(0.5)
        # the scrape was healthy, and the histogram and the line label are there
        up = prom.query('up{job="mxacl"}')
        self.assertEqual([float(r["value"][1]) for r in up], [1.0])
        res = prom.query('mxacl_rule_hits_total{rule="%s:3"}' % d.conf_path)
        self.assertEqual([float(r["value"][1]) for r in res], [4.0])
        res = prom.query("mxacl_request_duration_seconds_count")
        self.assertEqual([float(r["value"][1]) for r in res], [7.0])
        d.stop()


if __name__ == "__main__":
    unittest.main()
