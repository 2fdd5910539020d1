"""The distinct acl with the client's country as its value, on a real
MaxMind DB written by the test (tests/lib/mkmmdb.pl): an account seen from
more than LIMIT countries within DUR matches; the same country twice counts
once; an address the database does not know is not counted and does not
match; the window slides (policy_test_time)."""
import os
import shutil
import subprocess
import tempfile
import unittest

from mxtest import mxacl_path, ROOT

MKMMDB = os.path.join(ROOT, "tests", "lib", "mkmmdb.pl")
NETS = ["192.0.2.0/24=US:NA", "198.51.100.0/24=DE:EU", "2001:db8::/32=JP:AS",
        "203.0.113.0/24=BR:SA:registered", "100.64.0.0/24=FR:EU"]

CONF = """
set geoip geo.mmdb
acl roaming distinct sasl_username country 3/1h
action hold DEFER_IF_PERMIT ${sasl_username}: ${distinct_count} countries within an hour
access roaming hold
"""


def request(user, addr, t):
    return ("sasl_method=PLAIN\nsasl_username=%s\nclient_address=%s\n"
            "policy_test_time=%d\n\n" % (user, addr, t))


class DistinctCountryTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mxacl-geo-distinct-")
        subprocess.run(["perl", MKMMDB, os.path.join(self.dir, "geo.mmdb")] + NETS, check=True)
        with open(os.path.join(self.dir, "policy.conf"), "w") as f:
            f.write(CONF)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_countries(self):
        t0 = 1700000000
        cases = [
            ("alice", "198.51.100.3", t0, "action=DUNNO"),          # DE
            ("alice", "198.51.100.9", t0 + 1, "action=DUNNO"),      # DE again: one
            ("alice", "192.0.2.9", t0 + 2, "action=DUNNO"),         # US
            ("alice", "8.8.8.8", t0 + 3, "action=DUNNO"),           # unknown: not counted
            ("alice", "", t0 + 3, "action=DUNNO"),                  # no address
            ("alice", "2001:db8::5", t0 + 4, "action=DUNNO"),       # JP: three
            ("alice", "203.0.113.1", t0 + 5,                       # registered BR: four
             "action=DEFER_IF_PERMIT alice: 4 countries within an hour"),
            ("alice", "::ffff:198.51.100.3", t0 + 6, "action=DUNNO"),   # DE is known
            ("bob", "203.0.113.1", t0 + 7, "action=DUNNO"),         # his own set
            ("", "100.64.0.1", t0 + 8, "action=DUNNO"),             # no login: not counted
            # FR: DE (+6), US (+2) and JP (+4) are still in at +3601
            ("alice", "100.64.0.1", t0 + 3601,
             "action=DEFER_IF_PERMIT alice: 4 countries within an hour"),
            # US, last seen at +2, is out at +3602: room for FR
            ("alice", "100.64.0.1", t0 + 3602, "action=DUNNO"),
            ("alice", "192.0.2.1", t0 + 3603,
             "action=DEFER_IF_PERMIT alice: 4 countries within an hour"),
        ]
        p = subprocess.run([mxacl_path(), "test", "-c", "policy.conf"], cwd=self.dir,
                           input="".join(request(u, a, t) for u, a, t, _ in cases),
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        got = [r for r in p.stdout.split("\n\n") if r]
        self.assertEqual(got, [w for _, _, _, w in cases])

    def test_needs_a_database(self):
        with open(os.path.join(self.dir, "policy.conf"), "w") as f:
            f.write(CONF.replace("set geoip geo.mmdb\n", ""))
        p = subprocess.run([mxacl_path(), "check", "-c", "policy.conf"], cwd=self.dir,
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("distinct by country needs a GeoIP database", p.stderr)


if __name__ == "__main__":
    unittest.main()
