"""mxacl replay of a policy on derived attributes and attribute values.

The decision line lists the request attributes a policy reads, so a replay
can rebuild the request; derived attributes (sender_domain, helo_domain,
sender_org_domain, ...) are not request attributes and must not be listed:
the replay computes them again from their sources (sender, helo_name, ...),
which are. An attribute read only through a ${name} value
(reverse_client_name below) must be listed too. The decision lines here are
those `mxacl test --explain` prints (vm_log_line, as mxacld logs them);
replayed under the same policy, every request must get the same line and
action.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from mxtest import mxacl_path

POLICY = """\
acl org_listed  sender_org_domain example.co.uk
acl helo_org    helo_domain example.net
acl client_org  client_domain example.org dyn.example
acl to_own      recipient_domain @.${sender_org_domain}
acl helo_rev    helo_name ${reverse_client_name}
acl local_admin sender_localpart postmaster abuse
acl flood       rate sender_domain 2/1h
action r_org    REJECT org ${sender_org_domain}
action r_helo   REJECT helo in ${helo_domain}
action r_client REJECT client in ${client_domain}
action r_own    REJECT own ${recipient_domain}
action r_rev    REJECT helo is the reverse name
action r_admin  REJECT admin ${sender_localpart}
action r_flood  DEFER_IF_PERMIT ${sender_domain} ${rate_count}
access org_listed r_org
access helo_org r_helo
access client_org r_client
access to_own r_own
access helo_rev r_rev
access local_admin r_admin
access flood r_flood
"""

REQUESTS = [
    {"sender": "a@mail.Example.co.uk", "recipient": "x@y.example"},
    {"sender": "a@q.example", "helo_name": "mx.EXAMPLE.net"},
    {"sender": "a@q.example", "client_name": "mx.dyn.example"},
    {"sender": "a@q.example", "client_name": "host.a.b.example.org"},
    {"sender": "a@a.other.example", "recipient": "b@b.other.example"},
    {"sender": "a@q.example", "helo_name": "rev.example",
     "reverse_client_name": "Rev.Example", "client_name": "unknown"},
    {"sender": "postmaster@z.example"},
    {"sender": "b@z.example"},
    {"sender": "c@z.example"},
    {"sender": "d@z.example", "recipient": "r@z.example"},
    {"sender": "", "recipient": "r@z.example"},
]

DERIVED = ("sender_domain", "sender_localpart", "recipient_domain", "recipient_localpart",
           "client_domain", "helo_domain", "sender_org_domain")


class ReplayDerived(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mxacl-replay-derived-")
        with open(os.path.join(self.dir, "policy.conf"), "w") as f:
            f.write(POLICY)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_mxacl(self, *args, stdin=None):
        p = subprocess.run([mxacl_path()] + list(args), input=stdin, capture_output=True,
                           text=True, cwd=self.dir, env=dict(os.environ, TZ="UTC"),
                           timeout=120)
        self.assertEqual(p.returncode, 0, "mxacl %s: %s" % (" ".join(args), p.stderr))
        self.assertNotIn("Sanitizer", p.stderr)
        return p

    def test_derived_policy_replays_identically(self):
        reqs = "".join("request=smtpd_access_policy\nprotocol_state=RCPT\n" +
                       "".join("%s=%s\n" % kv for kv in r.items()) + "\n" for r in REQUESTS)
        p = self.run_mxacl("test", "--explain", "--now", "1732256701", "-c", "policy.conf",
                           stdin=reqs)
        lines = re.findall(r"^  => (decision .*)$", p.stderr, re.M)
        self.assertEqual(len(lines), len(REQUESTS), p.stderr)
        # what decided: every line of the policy; the rate on the third
        # sender of z.example (postmaster@ was decided before it counts)
        rules = [re.search(r" rule=(\S+)", l).group(1) for l in lines]
        self.assertEqual(rules, ["policy.conf:15", "policy.conf:16", "policy.conf:17",
                                 "policy.conf:17", "policy.conf:18", "policy.conf:19",
                                 "policy.conf:20", "default", "default",
                                 "policy.conf:21", "default"], "\n".join(lines))
        for l in lines:
            for d in DERIVED:
                self.assertNotIn(" %s=" % d, l)
            # the source of a ${name} value is listed, so a replay has it
            self.assertIn(" reverse_client_name=<", l)
        self.assertIn("reverse_client_name=<Rev.Example>", lines[5])
        with open(os.path.join(self.dir, "mxacld.log"), "w") as f:
            f.writelines("2024-11-22T06:25:01 mxacld[7]: %s\n" % l for l in lines)
        out = self.run_mxacl("replay", "--format", "json", "-c", "policy.conf",
                             "mxacld.log").stdout
        doc = json.loads(out)
        got = doc["requests"]
        self.assertEqual(len(got), len(lines))
        for l, r in zip(lines, got):
            want_action = l.split(" action=", 1)[1]
            self.assertEqual(r["decision"]["rule"], r["was_rule"], (l, r))
            self.assertEqual(r["decision"]["action"], want_action, (l, r))


if __name__ == "__main__":
    unittest.main()
