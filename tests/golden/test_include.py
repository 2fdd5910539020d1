"""Includes whose input is generated (many files, absolute paths, links):
each file is read at most once per load, told apart by device and inode;
a glob's matches that would close a cycle are skipped with a warning; a
glob in a missing directory is an error. The fixed cases are golden files
(tests/golden/diag/include_*.conf).
"""
import os
import time
import unittest

from test_golden import run_mxacl
from mxtest import ScratchDir


class Include(ScratchDir, unittest.TestCase):
    prefix = "mxacl-include-"

    def test_nine_files_that_each_include_the_others(self):
        """The report's conf.d: nine files, each "include *.conf". Each is
        read once (before: n^n reads, over a minute and 300 MB for nine),
        and each glob match that closes a cycle is a warning."""
        n = 9
        self.write("policy.conf", "include conf.d/*.conf\naccess catch_all default\n")
        for i in range(1, n + 1):
            self.write("conf.d/f%d.conf" % i,
                       "include *.conf\nacl a%d sender a%d@example.com\naccess a%d default\n"
                       % (i, i, i))
        self.write("conf.d/z.inc", "acl catch_all client_address 0.0.0.0/0\n")
        self.write("conf.d/zz.conf", "include z.inc\n")
        t0 = time.monotonic()
        p = run_mxacl(["check", "-c", "policy.conf"], self.dir)
        took = time.monotonic() - t0
        print("\n    nine files that each include *.conf: mxacl check took %.2f s" % took)
        # zz.conf defines catch_all before the access line of policy.conf;
        # its "include z.inc" is its own, not a cycle
        self.assertEqual(p.returncode, 0, p.stderr)
        warnings = [l for l in p.stderr.splitlines() if ": warning: " in l]
        # file k's glob matches f1..fk, all being read: k warnings, and
        # zz.conf's none
        self.assertEqual(len(warnings), n * (n + 1) // 2, p.stderr)
        self.assertIn("conf.d/f3.conf:1:9: warning: 'conf.d/f1.conf' includes itself "
                      "(through 'conf.d/f2.conf', 'conf.d/f3.conf'); skipped", p.stderr)
        self.assertIn("conf.d/f1.conf:1:9: warning: 'conf.d/f1.conf' includes itself; "
                      "skipped", p.stderr)
        self.assertTrue(p.stderr.endswith("policy.conf: %d warnings\n" % len(warnings)),
                        p.stderr)

        # every acl and access line once (read twice, an access line would
        # be there twice)
        p = run_mxacl(["dump", "-c", "policy.conf"], self.dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(": %d acls, 1 action, %d access lines, " % (n + 1, n + 1),
                      p.stdout.splitlines()[0])

    def test_same_file_by_other_names(self):
        """A symlink, a hard link and a "dir/../" path are the same file: read
        once. Two different files with the same contents are two files."""
        self.write("lists/common.inc", "acl c sender c@example.com\naction no REJECT c\n"
                                       "access c no\n")
        os.symlink("lists/common.inc", os.path.join(self.dir, "link.inc"))
        os.link(os.path.join(self.dir, "lists/common.inc"), os.path.join(self.dir, "hard.inc"))
        self.write("copy.inc", "acl d sender d@example.com\naccess d no\n")
        self.write("policy.conf", "include lists/common.inc\ninclude link.inc\n"
                                  "include hard.inc\ninclude lists/../lists/common.inc\n"
                                  "include %s/lists/common.inc\ninclude copy.inc\n" % self.dir)
        p = run_mxacl(["check", "-c", "policy.conf"], self.dir)
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        p = run_mxacl(["test", "-c", "policy.conf"], self.dir,
                      stdin="sender=c@example.com\n\nsender=d@example.com\n\n")
        self.assertEqual(p.stdout, "action=REJECT c\n\naction=REJECT c\n\n", p.stderr)

    def test_link_back_to_the_including_file_is_a_cycle(self):
        """A symlink that leads back to a file being read is that file."""
        self.write("policy.conf", "acl a sender a@example.com\ninclude sub/more.inc\n"
                                  "access a\n")
        os.makedirs(os.path.join(self.dir, "sub"))
        os.symlink("../policy.conf", os.path.join(self.dir, "sub/back.inc"))
        self.write("sub/more.inc", "include back.inc\n")
        p = run_mxacl(["check", "-c", "policy.conf"], self.dir)
        self.assertEqual(p.returncode, 1)
        self.assertIn("sub/more.inc:1:9: error: 'sub/back.inc' includes itself "
                      "(through 'sub/more.inc')", p.stderr)

    def test_glob_in_missing_absolute_directory(self):
        """The report's `include /nonexistent/*.conf` was accepted silently."""
        missing = os.path.join(self.dir, "nonexistent")
        self.write("policy.conf", "include %s/*.conf\nacl a sender a@x\naccess a default\n" % missing)
        p = run_mxacl(["check", "-c", "policy.conf"], self.dir)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("policy.conf:1:9: error: cannot read the files of '%s/*.conf': '%s': "
                      "No such file or directory" % (missing, missing), p.stderr)
        # an empty directory is fine: a glob that matches nothing
        os.mkdir(missing)
        p = run_mxacl(["check", "-c", "policy.conf"], self.dir)
        self.assertEqual((p.returncode, p.stderr), (0, ""))


if __name__ == "__main__":
    unittest.main()
