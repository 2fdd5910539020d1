"""mxacld --cache-dir: the Vectorscan database of a regex acl is kept in a
file, and a start or reload whose patterns did not change reads it instead
of compiling again (asserted by the log line, not by the time). A file
that is corrupt, truncated, garbage, foreign, or a symlink is never
trusted: it is logged, rebuilt, and the answers stay right.
"""
import hashlib
import os
import stat
import struct
import unittest

from mxtest import Mxacld

# 40 anchored rDNS-like patterns (Vectorscan, exact), one with a
# back-reference (prefilter + PCRE2) and one lookbehind (PCRE2 alone).
PATTERNS = [r"^dyn-%d\.example%d\.net$" % (i, i) for i in range(40)] + [r"(a)\1x", r"(?<=foo)bar"]


def policy(patterns, tag="dynamic"):
    return ("acl dyn helo_name %s\n"
            "action rej REJECT %s\n"
            "access dyn rej\n" % (" ".join("/%s/" % p for p in patterns), tag))


def helo(name):
    return {"request": "smtpd_access_policy", "protocol_state": "RCPT",
            "helo_name": name, "client_address": "192.0.2.1"}


# subject -> whether the acl matches it
SUBJECTS = {
    "dyn-17.example17.net": True,
    "DYN-39.EXAMPLE39.NET": True,         # caseless
    "dyn-17.example18.net": False,
    "xaax": True,                          # back-reference, confirmed by PCRE2
    "xabx": False,
    "foobar": True,                        # lookbehind, PCRE2 alone
    "bar": False,
    "mail.example.org": False,
}

BUILT = r"regex databases: 1 built in [\d.]+ s \(cache %s\)"
READ = r"regex databases: 1 read from the cache in [\d.]+ s \(cache %s\)"


class RegexCacheTest(unittest.TestCase):
    def setUp(self):
        self.d = Mxacld(policy(PATTERNS), extra_args=["--cache-dir", "cache"])
        self.addCleanup(self.d.cleanup)
        self.cache = os.path.join(self.d.tmpdir, "cache")
        os.mkdir(self.cache, 0o700)
        self.d.extra_args = ["--cache-dir", self.cache]

    def files(self):
        return sorted(f for f in os.listdir(self.cache))

    def the_file(self):
        f = [x for x in self.files() if x.endswith(".hsdb")]
        self.assertEqual(len(f), 1, self.files())
        return os.path.join(self.cache, f[0])

    def assert_answers(self, tag="dynamic"):
        for subject, match in SUBJECTS.items():
            want = "action=REJECT %s" % tag if match else "action=DUNNO"
            self.assertEqual(self.d.query(helo(subject)), want, subject)

    def count(self, rx):
        import re
        return len(re.findall(rx, self.d.log_text()))

    def test_start_builds_reload_reads(self):
        d = self.d
        d.start()
        d.wait_log(BUILT % self.cache)
        path = self.the_file()
        st = os.lstat(path)
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(open(path, "rb").read(8), b"MXACLRE1")
        self.assert_answers()
        before = open(path, "rb").read()
        self.assertTrue(d.reload())
        d.wait_log(READ % self.cache)
        self.assertEqual(self.count(BUILT % self.cache), 1)
        self.assertEqual(open(path, "rb").read(), before)
        self.assert_answers()
        # a restart reads it too
        d.stop()
        d.start()
        d.wait_log(READ % self.cache, count=2)
        self.assert_answers()
        d.stop()

    def test_changed_patterns_rebuild_and_old_file_goes(self):
        d = self.d
        d.start()
        d.wait_log(BUILT % self.cache)
        old = self.the_file()
        self.assertTrue(d.reload(policy(PATTERNS + [r"^static\.example$"], "dyn2")))
        d.wait_log(BUILT % self.cache, count=2)
        d.wait_log(r"regex cache: removed 1 file the policy no longer uses from %s" % self.cache)
        new = self.the_file()
        self.assertNotEqual(old, new)
        self.assert_answers("dyn2")
        self.assertEqual(d.query(helo("static.example")), "action=REJECT dyn2")
        # a policy with errors removes nothing
        self.assertFalse(d.reload("acl dyn helo_name /a/ /b/ /c/ /d/\naccess nosuch rej\n"))
        self.assertEqual(len([f for f in self.files() if f.endswith(".hsdb")]), 2)
        d.stop()

    def corrupt_and_restart(self, damage, why):
        """Build, stop, damage the file, start: the damage is logged with
        why, the database rebuilt and stored again, the answers right."""
        d = self.d
        d.start()
        d.wait_log(BUILT % self.cache)
        path = self.the_file()
        good = open(path, "rb").read()
        d.stop()
        damage(path, good)
        d.start()
        d.wait_log(r"warning: regex cache: %s %s; building it again" % (path, why))
        d.wait_log(BUILT % self.cache, count=2)
        self.assert_answers()
        st = os.lstat(path)
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(open(path, "rb").read(), good)
        # and the rebuilt file serves the next reload
        self.assertTrue(d.reload())
        d.wait_log(READ % self.cache)
        self.assert_answers()
        d.stop()

    def test_flipped_byte_in_database(self):
        def flip(path, good):
            b = bytearray(good)
            b[len(b) - 100] ^= 0x01
            open(path, "wb").write(bytes(b))
        self.corrupt_and_restart(flip, r"does not match its checksum \(corrupt\)")

    def test_flipped_byte_in_header(self):
        def flip(path, good):
            b = bytearray(good)
            b[20] ^= 0x01       # in the key
            open(path, "wb").write(bytes(b))
        self.corrupt_and_restart(flip, r"holds another database \(its key differs\)")

    def test_truncated(self):
        def cut(path, good):
            open(path, "wb").write(good[:len(good) // 2])
        self.corrupt_and_restart(cut, r"has the wrong length \(truncated or grown\)")

    def test_truncated_in_header(self):
        def cut(path, good):
            open(path, "wb").write(good[:100])
        self.corrupt_and_restart(cut, r"is shorter than its header \(truncated\)")

    def test_garbage(self):
        def garbage(path, good):
            open(path, "wb").write(os.urandom(len(good)))
        self.corrupt_and_restart(garbage, r"is not a cache file of this format")

    def test_sound_header_over_a_foreign_body(self):
        # A file whose header is right (key, length, checksum) around a
        # body that is not one: multire's own checks refuse it.
        def forge(path, good):
            body = b"\x07" * 64 + os.urandom(4096)
            h = (b"MXACLRE1" + good[8:72] + hashlib.sha256(body).hexdigest().encode()
                 + struct.pack("<Q", len(body)))
            open(path, "wb").write(h + body)
        self.corrupt_and_restart(forge, r"holds another number of patterns")

    def test_symlink_in_its_place(self):
        target = os.path.join(self.d.tmpdir, "target")

        def link(path, good):
            open(target, "wb").write(good)
            os.unlink(path)
            os.symlink(target, path)
        self.corrupt_and_restart(link, r"is a symbolic link")
        # the symlink was replaced, its target left alone
        self.assertEqual(open(target, "rb").read()[:8], b"MXACLRE1")
        self.assertFalse(os.path.islink(self.the_file()))

    def test_directory_writable_by_others_is_not_used(self):
        os.chmod(self.cache, 0o777)
        d = self.d
        d.start()
        d.wait_log(r"regex databases: 1 built in [\d.]+ s \(no cache: %s is writable by "
                   r"group or others \(mode 0777\)\)" % self.cache)
        self.assertEqual(self.files(), [])
        self.assert_answers()
        d.stop()

    def test_no_cache_dir_still_says_how_long(self):
        d = self.d
        d.extra_args = []
        d.start()
        d.wait_log(r"regex databases: 1 built in [\d.]+ s \(no cache: no --cache-dir\)")
        self.assert_answers()
        self.assertTrue(d.reload())
        d.wait_log(r"regex databases: 1 built in [\d.]+ s \(no cache: no --cache-dir\)",
                   count=2)
        self.assertEqual(self.files(), [])
        d.stop()


if __name__ == "__main__":
    unittest.main()
