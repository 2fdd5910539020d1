"""mxacl replay on a policy with a "dryrun access" line: replay shows what
the line would have done, as if it were live (it decides), marked as a dry
run in the per-request lines, the summary and --diff (text: "LINE (dry
run)", JSON: "dryrun": true beside the rule); and it reads the dryrun=<>
field and the "dryrun ..." lines of mxacld's log without taking them for
request attributes. The log is fixtures/postfix.log (hand-written; see
test_replay.py)."""
import json
import os
import subprocess
import unittest

from mxtest import ScratchDir, mxacl_path, ROOT

FIX = os.path.join(ROOT, "tests", "replay", "fixtures")

HEAD = ("acl v6 client_address 2001:db8::/32\n"
        "acl nobody recipient nobody@example.org\n"
        "action no_user REJECT no such user\n"
        "action no_v6 REJECT no IPv6 here\n")


class ReplayDryRunTest(ScratchDir, unittest.TestCase):
    prefix = "mxacl-replay-dryrun-"
    copy_from = (FIX,)

    def replay(self, *args):
        p = subprocess.run([mxacl_path(), "replay", "--year", "2024"] + list(args),
                           capture_output=True, cwd=self.dir, env=dict(os.environ, TZ="UTC"),
                           timeout=120, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn("Sanitizer", p.stderr)
        return p.stdout

    def test_dry_run_line_reported_as_what_it_would_do(self):
        self.write("live.conf", HEAD + "access no_such_user: nobody no_user\n")
        self.write("trial.conf", HEAD + "dryrun access no_ipv6: v6 no_v6\n"
                   "access no_such_user: nobody no_user\n")
        doc = json.loads(self.replay("--format", "json", "-c", "trial.conf", "postfix.log"))
        lines = {c["rule"]: (c["count"], c.get("dryrun", False))
                 for c in doc["summary"]["rulesets"][0]["lines"]}
        # heidi (IPv6) to nobody: the dry-run line comes first and decides
        self.assertEqual(lines, {"no_ipv6": (3, True), "no_such_user": (1, False)})
        v6 = [r["decision"] for r in doc["requests"] if r["decision"]["rule"] == "no_ipv6"]
        self.assertEqual(len(v6), 3)
        self.assertTrue(all(d["dryrun"] is True and d["action"] == "REJECT no IPv6 here"
                            for d in v6), v6)
        out = self.replay("-c", "trial.conf", "postfix.log").splitlines()
        self.assertTrue(any(l.endswith(" rule=no_ipv6 (dry run) action=REJECT no IPv6 here")
                            for l in out), out)
        self.assertTrue(any(l.startswith("    no_ipv6 (dry run) ") and l.endswith(" 3")
                            for l in out), out)
        # --diff: what turning the line on would change
        out = self.replay("-c", "live.conf", "--diff", "trial.conf", "postfix.log")
        self.assertIn("  default -> no_ipv6 (dry run): 2", out.splitlines())
        self.assertIn("  no_such_user -> no_ipv6 (dry run): 1", out.splitlines())

    def test_dryrun_fields_of_mxacld_lines_are_not_attributes(self):
        self.write("p.conf", "acl a sender a@example.com\naction r REJECT\naccess a r\n")
        self.write("mxacld.log",
                   "2024-11-22T06:25:00.000000+00:00 mx mxacld[1]: dryrun client=unknown[192.0.2.1] "
                   "helo=<> from=<a@example.com> to=<b@example.org> rule=x would=REJECT\n"
                   "2024-11-22T06:25:00.000000+00:00 mx mxacld[1]: decision "
                   "client=unknown[192.0.2.1] helo=<> from=<a@example.com> to=<b@example.org> "
                   "dryrun=<x:REJECT,p.conf:3:REJECT> rule=default action=DUNNO\n")
        doc = json.loads(self.replay("--format", "json", "-c", "p.conf", "mxacld.log"))
        self.assertEqual(len(doc["requests"]), 1, doc)
        r = doc["requests"][0]
        self.assertNotIn("dryrun", r["attributes"])
        self.assertEqual(r["decision"]["action"], "REJECT")
        self.assertEqual(doc["summary"]["unparsable"], 0)


if __name__ == "__main__":
    unittest.main()
