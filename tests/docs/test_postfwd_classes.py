"""postfwd's sample answers Postfix restriction classes, and so can mxacl:
postfwd 1.35's own postfwd.cf.sample (tests/docs/fixtures/postfwd.cf.sample,
Debian package postfwd 1.35-8, /usr/share/doc/postfwd/examples/) answers
action=greylisting, a class of main.cf's smtpd_restriction_classes that
asks postgrey. docs/migration.md's translation greylists in mxacl itself
(a greylist acl); here the same translation declares the class (set
restriction_classes greylisting) and answers it, and is compared with
postfwd1 on the same requests: the class's name exactly as postfwd answers
it, access(5) words in any case."""
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from mxtest import mxacl_path
from test_migration import FIXTURES, UTC, answers, doc_blocks, postfwd1_for_sample, req


ACCESS_WORDS = ("OK", "DUNNO", "REJECT", "DEFER", "DEFER_IF_REJECT", "DEFER_IF_PERMIT",
                "DISCARD", "HOLD", "FILTER", "REDIRECT", "BCC", "PREPEND", "INFO", "WARN")


def class_translation():
    """docs/migration.md's postfwd.conf, answering the class itself."""
    body = [b for i, b, _ in doc_blocks() if i[:2] == ["mxacl", "postfwd.conf"]]
    assert len(body) == 1, "docs/migration.md has one ```mxacl postfwd.conf block"
    text = body[0]
    old_action = re.search(r"^action greylisting .*$", text, re.M)
    assert old_action, "postfwd.conf has its greylisting action"
    text = text.replace(old_action.group(0), "set restriction_classes greylisting\n"
                        "action greylisting  greylisting")
    text = re.sub(r"^acl new_triplet .*\n", "", text, flags=re.M)
    text = text.replace(" new_triplet greylisting", " greylisting")
    assert "new_triplet" not in text
    return text


class PostfwdClasses(unittest.TestCase):
    def test_sample_answers_the_class_as_postfwd_does(self):
        postfwd = postfwd1_for_sample(self)
        d = tempfile.mkdtemp(prefix="mxacl-postfwd-classes-")
        self.addCleanup(shutil.rmtree, d)
        conf = os.path.join(d, "postfwd-classes.conf")
        with open(conf, "w") as f:
            f.write(class_translation())
        check = subprocess.run([mxacl_path(), "check", "-c", conf], capture_output=True,
                               text=True, timeout=60)
        self.assertEqual((check.returncode, check.stderr), (0, ""))

        def u(i, **kw):
            a = dict(client_address="10.0.%d.9" % i, client_name="unknown",
                     recipient="r%d@example.net" % i)
            a.update(kw)
            return req(**a)
        reqs = [u(1, client_address="192.168.0.5"),              # WL_001
                u(4, client_name="a-b-c-d-e.domain1.net"),       # WL_002
                u(12, client_name="pool-12345.example.de"),      # DYNAMIC: GREY_004
                u(14),                                           # unknown: GREY_004, RATE_002
                u(14),                                           # over the rate
                u(15, client_name="c-1-2-3-4.pool.example.net"),
                u(16, client_name="dsl-host.example.net")]       # by the clock
        t0 = int(time.time())
        p = subprocess.run([postfwd, "-f", os.path.join(FIXTURES, "postfwd.cf.sample"), "-L",
                            "--nodns"], input="".join(reqs), capture_output=True, text=True,
                           timeout=120, env=UTC)
        theirs = answers(p.stdout)
        self.assertEqual(len(theirs), len(reqs), p.stdout + p.stderr)
        t = subprocess.run([mxacl_path(), "test", "-c", conf, "--now", str(t0), "--dns",
                            "127.0.0.1:9", "--dns-timeout", "100"], input="".join(reqs),
                           capture_output=True, text=True, timeout=120, env=UTC)
        self.assertEqual(t.returncode, 0, t.stderr)
        ours = answers(t.stdout)
        # access(5) words are read in any case (postfwd's sample writes
        # "dunno"); a restriction class's name is compared as written
        def norm(a):
            w = a.split(" ", 1)
            return " ".join([w[0].upper()] + w[1:]) if w[0].upper() in ACCESS_WORDS else a
        self.assertEqual([norm(a) for a in ours], [norm(a) for a in theirs], "\n".join(
            "%-3d postfwd %-30s mxacl %s" % (i, a, b) for i, (a, b) in enumerate(zip(theirs, ours))))
        self.assertIn("greylisting", ours)


if __name__ == "__main__":
    unittest.main()
