"""Country acls on a real MaxMind DB written by the test (Debian's
libmaxmind-db-writer-perl): IPv4 and IPv6 lookups, continents, registered
country, unknown addresses, errors, and mxacld reopening the database on
SIGHUP."""
import os
import shutil
import subprocess
import tempfile
import unittest

from mxtest import Mxacld, mxacl_path, ROOT

MKMMDB = os.path.join(ROOT, "tests", "lib", "mkmmdb.pl")
NETS = ["192.0.2.0/24=US:NA", "198.51.100.0/24=DE:EU", "2001:db8::/32=JP:AS",
        "203.0.113.0/24=BR:SA:registered"]

CONF = """
set geoip geo.mmdb
acl usual country DE FR continent:na
acl far country jp BR
action far_away REJECT far away: ${client_address}
action welcome OK
access usual welcome
access far far_away
"""


def mkmmdb(path, nets):
    subprocess.run(["perl", MKMMDB, path] + nets, check=True)


def request(addr):
    return "client_address=%s\nsender=a@b.example\nrecipient=c@d.example\n\n" % addr


class CountryTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mxacl-geo-")
        mkmmdb(os.path.join(self.dir, "geo.mmdb"), NETS)
        self.conf = os.path.join(self.dir, "policy.conf")
        with open(self.conf, "w") as f:
            f.write(CONF)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def mxacl(self, *args, stdin=""):
        return subprocess.run([mxacl_path()] + list(args), input=stdin, capture_output=True,
                              text=True, cwd=self.dir)

    def test_lookups(self):
        cases = [("198.51.100.3", "action=OK"),          # DE
                 ("192.0.2.9", "action=OK"),             # US, continent NA
                 ("::ffff:198.51.100.3", "action=OK"),   # IPv4-mapped IPv6
                 ("2001:db8::5", "action=REJECT far away: 2001:db8::5"),   # JP
                 ("203.0.113.1", "action=REJECT far away: 203.0.113.1"),   # registered BR
                 ("8.8.8.8", "action=DUNNO"),            # not in the database
                 ("2001:db9::1", "action=DUNNO"),
                 ("", "action=DUNNO")]
        p = self.mxacl("test", "-c", self.conf, stdin="".join(request(a) for a, _ in cases))
        self.assertEqual(p.returncode, 0, p.stderr)
        got = [r for r in p.stdout.split("\n\n") if r]
        self.assertEqual(got, [w for _, w in cases])

    def test_flag_overrides_setting(self):
        other = os.path.join(self.dir, "other.mmdb")
        mkmmdb(other, ["198.51.100.0/24=JP:AS"])
        p = self.mxacl("test", "-c", self.conf, "--geoip", other, stdin=request("198.51.100.3"))
        self.assertEqual(p.stdout, "action=REJECT far away: 198.51.100.3\n\n", p.stderr)

    def test_errors(self):
        p = self.mxacl("check", "-c", self.conf, "--geoip", os.path.join(self.dir, "none"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot open GeoIP database", p.stderr)
        self.assertIn("No such file or directory", p.stderr)
        with open(self.conf, "w") as f:
            f.write("acl c country DE\naccess c\n")
        p = self.mxacl("check", "-c", self.conf)
        self.assertEqual(p.returncode, 1)
        self.assertIn("policy.conf:1:5: error: country acls need a GeoIP database", p.stderr)
        notdb = os.path.join(self.dir, "not.mmdb")
        with open(notdb, "w") as f:
            f.write("not a database\n")
        p = self.mxacl("check", "-c", self.conf, "--geoip", notdb)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot open GeoIP database", p.stderr)

    def test_daemon_reopens_database_on_reload(self):
        db = os.path.join(self.dir, "geo.mmdb")
        conf = CONF.replace("set geoip geo.mmdb", "")
        with Mxacld(conf, extra_args=["--geoip", db]) as d:
            self.assertEqual(d.query({"client_address": "198.51.100.3"}), "action=OK")
            # next week's database: the network moved
            mkmmdb(db + ".new", ["198.51.100.0/24=BR:SA"])
            os.rename(db + ".new", db)
            d.reload()
            self.assertEqual(d.query({"client_address": "198.51.100.3"}),
                             "action=REJECT far away: 198.51.100.3")
            # a broken database on reload keeps the old one serving
            with open(db + ".bad", "w") as f:
                f.write("garbage")
            os.rename(db + ".bad", db)
            d.reload()
            self.assertIn("cannot open GeoIP database", d.log_text())
            self.assertEqual(d.query({"client_address": "198.51.100.3"}),
                             "action=REJECT far away: 198.51.100.3")


if __name__ == "__main__":
    unittest.main()
