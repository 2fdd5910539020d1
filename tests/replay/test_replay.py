"""mxacl replay on hand-written logs (tests/replay/fixtures): every Postfix
line format it reads (NOQUEUE reject/defer/warn/hold/discard/reject_warning,
queue-ID rejects, client= with SASL, qmgr from=, delivery to= with orig_to,
short and long queue IDs, IPv6, unknown[addr]), classic and RFC 3339
stamps, mxacld's decision lines in file and syslog form, gzip and stdin,
unparsable lines, greylisting on the log's clock, --diff and
--fail-on-change, JSON, --offline with an rbl acl, the window's bound.

The fixtures are in UTC; every run sets TZ=UTC.
"""
import gzip
import json
import os
import re
import subprocess
import unittest

from mxtest import ScratchDir, Mxacld, free_port, mxacl_path, ROOT

FIX = os.path.join(ROOT, "tests", "replay", "fixtures")

# (source, client_name, client_address, sender, recipient, was, rule, action)
# for fixtures/postfix.log under fixtures/policy.conf, in order
POSTFIX_WANT = [
    ("reject", "mail.example.com", "192.0.2.1", "alice@example.com", "nobody@example.org",
     "reject", "policy.conf:15", "REJECT no such user"),
    ("reject", "unknown", "198.51.100.9", "", "bob@example.org",
     "defer", "policy.conf:17", "REJECT bad HELO"),
    ("reject", "v6.example.net", "2001:db8::25", "carol@example.net", "warn@example.org",
     "warn", "policy.conf:16", "REJECT no IPv6 here"),
    ("reject", "unknown", "203.0.113.7", "dave@example.net", "hold@example.org",
     "hold", "policy.conf:18", "WARN no client name"),
    ("reject", "client.example.org", "192.0.2.50", "erin@example.org", "discard@example.org",
     "discard", "default", "DUNNO"),
    ("reject", "client.example.org", "192.0.2.50", "erin@example.org", "maybe@example.org",
     "reject_warning", "default", "DUNNO"),
    # accepted with SASL; the recipient is orig_to; deferred, retried: once
    ("queue", "submit.example.org", "192.0.2.60", "alice@example.org",
     "Frank.Alias@example.org", "accept", "policy.conf:14", "OK"),
    ("queue", "submit.example.org", "192.0.2.60", "alice@example.org", "grace@dest.example",
     "accept", "policy.conf:14", "OK"),
    # long queue ID, IPv6 unknown client: a rejected and an accepted recipient
    ("reject", "unknown", "2001:db8:1::77", "heidi@example.net", "nobody@example.org",
     "reject", "policy.conf:15", "REJECT no such user"),
    ("queue", "unknown", "2001:db8:1::77", "heidi@example.net", "ivan@example.org",
     "accept", "policy.conf:16", "REJECT no IPv6 here"),
]


class ReplayTest(ScratchDir, unittest.TestCase):
    prefix = "mxacl-replay-"
    copy_from = (FIX,)

    def replay(self, *args, stdin=None, year="2024", want_rc=0):
        argv = [mxacl_path(), "replay"] + (["--year", year] if year else []) + list(args)
        env = dict(os.environ, TZ="UTC")
        p = subprocess.run(argv, input=stdin, capture_output=True, cwd=self.dir, env=env,
                           timeout=120)
        out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, want_rc, "mxacl %s: exit %d, want %d\nstdout:\n%s\n"
                         "stderr:\n%s" % (" ".join(args), p.returncode, want_rc, out, err))
        self.assertNotIn("Sanitizer", err)
        self.assertNotIn("runtime error:", err)
        return out, err

    def replay_json(self, *args, **kw):
        out, err = self.replay("--format", "json", *args, **kw)
        try:
            return json.loads(out), err
        except ValueError as e:
            self.fail("output is not JSON (%s):\n%s" % (e, out))

    @staticmethod
    def rows(doc):
        return [(r["source"], r.get("client_name"), r.get("client_address", ""),
                 r.get("sender"), r.get("recipient"), r["was"], r["decision"]["rule"],
                 r["decision"]["action"]) for r in doc["requests"]]

    def assert_rows(self, got, want):
        self.assertEqual(len(got), len(want), "got %d requests, want %d:\n%s" % (
            len(got), len(want), "\n".join(map(str, got))))
        for i, (g, w) in enumerate(zip(got, want)):
            self.assertEqual(g, w, "request %d: got %s, want %s" % (i + 1, g, w))

    # -- line formats

    def test_every_postfix_line_format(self):
        doc, _ = self.replay_json("-c", "policy.conf", "postfix.log")
        self.assert_rows(self.rows(doc), POSTFIX_WANT)
        s = doc["summary"]
        want = {"lines": 43, "requests": 10, "from_reject": 7, "from_queue": 3,
                "unparsable": 2, "other_stage": 1, "messages": 4, "incomplete": 0,
                "orphans": 1, "duplicates": 1}
        self.assertEqual({k: s[k] for k in want}, want)
        # times come from the lines; accepted mail has its client= line's time
        self.assertEqual([r["time"] for r in doc["requests"]][6:8],
                         ["2024-11-22T06:25:07", "2024-11-22T06:25:07"])
        self.assertEqual(doc["requests"][0]["epoch"], 1732256701)
        # the HELO a NOQUEUE line showed goes with the message queued after it
        self.assertEqual(doc["requests"][2]["helo_name"], "v6.example.net")
        self.assertEqual(doc["requests"][6]["sasl_username"], "alice@example.org")
        self.assertNotIn("helo_name", doc["requests"][6])   # not logged for accepted mail
        rs = doc["summary"]["rulesets"][0]
        self.assertEqual(rs["never_matched"], ["policy.conf:19"])
        self.assertEqual(rs["actions"], {"REJECT": 5, "WARN": 1, "DUNNO": 2, "OK": 2})
        self.assertEqual(rs["default"], 2)
        self.assertEqual([(x["rule"], x["count"]) for x in rs["lines"]],
                         [("policy.conf:14", 2), ("policy.conf:15", 2), ("policy.conf:16", 2),
                          ("policy.conf:17", 1), ("policy.conf:18", 1), ("policy.conf:19", 0)])

    def test_text_output(self):
        out, err = self.replay("-c", "policy.conf", "postfix.log")
        lines = out.splitlines()
        self.assertEqual(lines[0], "2024-11-22T06:25:01 client=mail.example.com[192.0.2.1] "
                         "from=<alice@example.com> to=<nobody@example.org> was=reject "
                         "rule=policy.conf:15 action=REJECT no such user")
        self.assertEqual(lines[9], "2024-11-22T06:36:00 client=unknown[2001:db8:1::77] "
                         "from=<heidi@example.net> to=<ivan@example.org> was=accept "
                         "rule=policy.conf:16 action=REJECT no IPv6 here")
        self.assertEqual(lines[10], "")
        self.assertTrue(lines[11].startswith("summary: 43 lines, 10 requests (7 from smtpd"),
                        lines[11])
        self.assertIn("  actions: REJECT 5, WARN 1, DUNNO 2, OK 2", lines)
        self.assertIn("  never matched: 1 line: policy.conf:19", lines)
        self.assertEqual(err, "")          # unparsable lines are shown only with -v

    def test_rfc3339_stamps_give_the_same_requests(self):
        classic, _ = self.replay_json("-c", "policy.conf", "postfix.log")
        rfc, _ = self.replay_json("-c", "policy.conf", "postfix-rfc3339.log", year=None)
        self.assertEqual(rfc["requests"], classic["requests"])

    def test_classic_stamps_take_the_year(self):
        doc, _ = self.replay_json("-c", "policy.conf", "postfix.log", year="2019")
        self.assertEqual(doc["requests"][0]["time"], "2019-11-22T06:25:01")

    def test_mxacld_decision_lines_file_and_syslog(self):
        for log, year in (("mxacld-file.log", None), ("mxacld-syslog.log", "2024")):
            doc, _ = self.replay_json("-c", "policy.conf", log, year=year)
            reqs = doc["requests"]
            self.assertEqual(len(reqs), 5, log)
            self.assertEqual(doc["summary"]["from_mxacld"], 5)
            self.assertEqual(doc["summary"]["unparsable"], 0, log)
            for r in reqs:
                # the same policy decides as mxacld did: same line, same action
                self.assertEqual(r["source"], "mxacld")
                self.assertEqual(r["decision"]["rule"], r["was_rule"], (log, r))
                self.assertEqual(r["decision"]["word"], r["was"], (log, r))
            self.assertEqual(reqs[0]["time"], "2024-11-22T06:25:01")
            self.assertEqual(reqs[3]["sasl_username"], "alice@example.org")
            # the log's escapes are undone (a tab became '?': no control bytes)
            self.assertEqual(reqs[4]["sender"], "o>dd\\name@example.org")
            self.assertEqual(reqs[4]["recipient"], "x?y@example.org")

    def test_named_lines_greylist_and_tempfail_fields_from_a_real_mxacld(self):
        # A real mxacld logs decision lines with line names, greylist=<...>
        # and tempfail=<...>; a replay of its log rebuilds the requests it
        # saw (the two fields are not attributes) and the same policy
        # decides the same lines, by name.
        policy = ("acl internal client_address 10.0.0.0/8\n"
                  "acl strict_rcpt recipient strict@example.org\n"
                  "acl soft_rcpt recipient soft@example.org\n"
                  "acl hard rbl hard.example.invalid tempfail=default\n"
                  "acl soft rbl soft.example.invalid tempfail=match\n"
                  "acl open rbl open.example.invalid\n"
                  "acl grey greylist delay=5m\n"
                  "action accept OK\n"
                  "action blocked REJECT listed\n"
                  "action wait DEFER_IF_PERMIT greylisted (${greylist_reason})\n"
                  "access relay_clients: internal accept\n"
                  "access strict: strict_rcpt hard blocked\n"
                  "access soft_listed: soft_rcpt soft blocked\n"
                  "access open_listed: open blocked\n"
                  "access greylisting: grey wait\n"
                  "access default\n")
        self.write("named.conf", policy)
        logfile = os.path.join(self.dir, "decisions.log")
        # a DNS server that never answers: every rbl lookup fails
        silent = free_port()
        with Mxacld(policy, log_mode=logfile,
                    extra_args=["--dns", "127.0.0.1:%d" % silent,
                                "--dns-timeout", "300"]) as d:
            base = {"request": "smtpd_access_policy", "protocol_state": "RCPT",
                    "client_address": "192.0.2.7", "sender": "s@example.net"}
            got = [d.query(dict(base, client_address="10.1.2.3", recipient="a@example.org")),
                   d.query(dict(base, recipient="strict@example.org")),
                   d.query(dict(base, recipient="soft@example.org")),
                   d.query(dict(base, recipient="r@example.org")),
                   d.query(dict(base, recipient="r@example.org"))]
        self.assertEqual(got[:3], ["action=OK", "action=DUNNO", "action=REJECT listed"])
        self.assertEqual(got[3], "action=DEFER_IF_PERMIT greylisted (new)")
        m = re.match(r"^action=DEFER_IF_PERMIT greylisted \(early retry, (\d+) s missing\)$",
                     got[4])
        self.assertTrue(m and 280 <= int(m.group(1)) <= 300, got[4])
        log = [l for l in open(logfile).read().splitlines() if " decision " in l]
        self.assertEqual(len(log), 5, log)
        self.assertIn(" rule=relay_clients action=OK", log[0])
        self.assertNotIn("tempfail=", log[0])
        self.assertIn(" tempfail=<hard:default> rule=tempfail action=DUNNO", log[1])
        self.assertIn(" tempfail=<soft:match> rule=soft_listed action=REJECT listed", log[2])
        # open's failure (nomatch) ended its line; greylisting decided
        self.assertIn(" greylist=<new> tempfail=<open:nomatch> rule=greylisting ", log[3])
        self.assertRegex(log[4], r" greylist=<early retry, \d+ s missing> "
                                 r"tempfail=<open:nomatch> rule=greylisting ")

        doc, _ = self.replay_json("-c", "named.conf", "--offline", "decisions.log", year=None)
        self.assertEqual(doc["summary"]["from_mxacld"], 5)
        self.assertEqual(doc["summary"]["unparsable"], 0)
        reqs = doc["requests"]
        self.assertEqual([r["was_rule"] for r in reqs],
                         ["relay_clients", "tempfail", "soft_listed", "greylisting",
                          "greylisting"])
        for r in reqs:
            self.assertEqual(r["decision"]["rule"], r["was_rule"], r)
            self.assertNotIn("greylist", r)
            self.assertNotIn("tempfail", r)
            self.assertEqual(r["sender"], "s@example.net")
        self.assertEqual([r["recipient"] for r in reqs],
                         ["a@example.org", "strict@example.org", "soft@example.org",
                          "r@example.org", "r@example.org"])
        self.assertEqual(reqs[3]["decision"]["action"], "DEFER_IF_PERMIT greylisted (new)")
        counts = {c["rule"]: c["count"] for c in doc["summary"]["rulesets"][0]["lines"]}
        self.assertEqual(counts, {"relay_clients": 1, "strict": 0, "soft_listed": 1,
                                  "open_listed": 0, "greylisting": 2, "named.conf:16": 0})

    def test_diff_of_a_reordered_policy_keeps_line_names(self):
        # Lines moved, and one changed: the groups name the lines, not
        # where they happen to be in each file.
        head = ("acl v6 client_address 2001:db8::/32\n"
                "acl nobody recipient nobody@example.org\n"
                "action no_user REJECT no such user\n"
                "action no_v6 REJECT no IPv6 here\n")
        self.write("old.conf", head + "access no_such_user: nobody no_user\n"
                   "access no_ipv6: v6 no_v6\n")
        self.write("new.conf", "# re-ordered, with a comment on top\n\n" + head +
                   "access no_ipv6: v6 default\n"
                   "access no_such_user: nobody no_user\n")
        doc, _ = self.replay_json("-c", "old.conf", "--diff", "new.conf", "postfix.log")
        groups = {(g["old_rule"], g["new_rule"]): g["count"] for g in doc["summary"]["changes"]}
        # heidi is IPv6 and writes to nobody: no_ipv6 comes first now
        self.assertEqual(groups, {("no_ipv6", "no_ipv6"): 2, ("no_such_user", "no_ipv6"): 1})
        lines = [{c["rule"]: c["count"] for c in rs["lines"]}
                 for rs in doc["summary"]["rulesets"]]
        self.assertEqual(lines[0], {"no_such_user": 2, "no_ipv6": 2})
        self.assertEqual(lines[1], {"no_ipv6": 3, "no_such_user": 1})
        out, _ = self.replay("-c", "old.conf", "--diff", "new.conf", "postfix.log")
        self.assertIn("  no_ipv6 -> no_ipv6: 2", out.splitlines())

    # -- inputs

    def test_gzip_and_stdin(self):
        plain, _ = self.replay_json("-c", "policy.conf", "postfix.log")
        with open(os.path.join(self.dir, "postfix.log"), "rb") as f:
            data = f.read()
        with gzip.open(os.path.join(self.dir, "postfix.log.gz"), "wb") as f:
            f.write(data)
        gz, _ = self.replay_json("-c", "policy.conf", "postfix.log.gz")
        self.assertEqual(gz, plain)
        for args, stdin in ((("-",), data), ((), data), (("-",), gzip.compress(data))):
            got, _ = self.replay_json("-c", "policy.conf", *args, stdin=stdin)
            self.assertEqual(got, plain, "stdin %r" % (args,))
        # several logs are one stream: a message may start in one and end in the next
        lines = data.decode().splitlines(True)
        self.write("a.log", "".join(lines[:29]))
        self.write("b.log", "".join(lines[29:]))
        both, _ = self.replay_json("-c", "policy.conf", "a.log", "b.log")
        self.assertEqual(both["requests"], plain["requests"])

    def test_unparsable_lines_are_counted_and_shown_with_v(self):
        text = ("not a log line\n"
                "Nov 22 06:25:01 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[192.0.2.1]: "
                "554 no; from=<s@x> to=<r@y> proto=ESMTP helo=<h>\n"
                "Nov 22 06:25:02 mx mxacld[3]: decision client=broken\n"
                + "x" * 20000 + "\n"
                "Nov 22 06:25:03 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[192.0.2.1]: "
                "554 no; from=<s@x> to=<r2@y> proto=ESMTP helo=<h>")   # no final newline
        self.write("bad.log", text)
        doc, err = self.replay_json("-c", "policy.conf", "bad.log")
        self.assertEqual(doc["summary"]["unparsable"], 3)
        self.assertEqual(len(doc["requests"]), 2)
        self.assertEqual(err, "")
        doc, err = self.replay_json("-v", "-c", "policy.conf", "bad.log")
        shown = [line for line in err.splitlines() if "cannot parse" in line]
        self.assertEqual(len(shown), 3, err)
        self.assertIn("bad.log:1: cannot parse: not a log line", shown[0])
        self.assertIn("bad.log:3: cannot parse:", shown[1])
        self.assertIn("bad.log:4: cannot parse: xxxx", shown[2])
        self.assertEqual(len(doc["requests"]), 2)

    def test_content_filter_reinjection_is_not_replayed_twice(self):
        self.write("filter.log",
                   "Nov 22 06:25:01 mx postfix/smtpd[7]: 5A5A5A5A5A: client=c[198.51.100.7]\n"
                   "Nov 22 06:25:02 mx postfix/qmgr[9]: 5A5A5A5A5A: from=<s@example.org>, size=9, "
                   "nrcpt=1 (queue active)\n"
                   "Nov 22 06:25:03 mx postfix/smtp[10]: 5A5A5A5A5A: to=<r@example.org>, "
                   "relay=127.0.0.1[127.0.0.1]:10024, status=sent (250 2.0.0 Ok: queued as "
                   "6B6B6B6B6B)\n"
                   "Nov 22 06:25:03 mx postfix/smtpd[11]: 6B6B6B6B6B: client=localhost[127.0.0.1], "
                   "orig_queue_id=5A5A5A5A5A, orig_client=c[198.51.100.7]\n"
                   "Nov 22 06:25:03 mx postfix/qmgr[9]: 6B6B6B6B6B: from=<s@example.org>, size=99, "
                   "nrcpt=1 (queue active)\n"
                   "Nov 22 06:25:04 mx postfix/local[12]: 6B6B6B6B6B: to=<r@example.org>, "
                   "relay=local, status=sent (delivered to mailbox)\n")
        doc, _ = self.replay_json("-c", "policy.conf", "filter.log")
        self.assertEqual([r["client_address"] for r in doc["requests"]], ["198.51.100.7"])
        s = doc["summary"]
        self.assertEqual((s["messages"], s["reinjected"], s["incomplete"], s["orphans"]),
                         (2, 1, 0, 0))
        out, _ = self.replay("-c", "policy.conf", "filter.log")
        self.assertIn("1 re-injected by a content filter (not replayed again)", out)

    def test_long_attribute_name_in_a_decision_line(self):
        # a name longer than a request line may be: unparsable, never a crash
        self.write("longkey.log", "2024-11-22T06:25:01 mxacld[1]: decision client=a[192.0.2.1] "
                   "helo=<> from=<> to=<r> " + "k" * 9000 + "=<v> rule=r action=DUNNO\n"
                   "2024-11-22T06:25:02 mxacld[1]: decision client=a[192.0.2.1] "
                   "helo=<> from=<> to=<r> rule=r action=DUNNO\n")
        doc, _ = self.replay_json("-c", "policy.conf", "longkey.log", year=None)
        self.assertEqual((doc["summary"]["unparsable"], len(doc["requests"])), (1, 1))

    def test_truncated_gzip_is_an_error(self):
        # a log cut short (a copy still being written, a full disk) is exit 1
        # with a message; the lines before the cut are replayed
        with open(os.path.join(self.dir, "postfix.log"), "rb") as f:
            data = f.read()
        gz = gzip.compress(data * 50)
        with open(os.path.join(self.dir, "cut.log.gz"), "wb") as f:
            f.write(gz[:len(gz) // 2])
        out, err = self.replay("--format", "json", "-c", "policy.conf", "cut.log.gz",
                               "postfix.log", want_rc=1)
        self.assertIn("cut.log.gz: unexpected end of file", err)
        self.assertGreater(len(json.loads(out)["requests"]), 10)
        _, err = self.replay("-c", "policy.conf", "-", stdin=gz[:len(gz) // 2], want_rc=1)
        self.assertIn("(stdin): unexpected end of file", err)

    def test_missing_log_is_an_error_but_the_others_run(self):
        out, err = self.replay("--format", "json", "-c", "policy.conf", "nosuch.log",
                               "postfix.log", want_rc=1)
        self.assertIn("cannot read nosuch.log", err)
        self.assertEqual(len(json.loads(out)["requests"]), 10)

    def test_usage_errors(self):
        _, err = self.replay("-c", "policy.conf", "--fail-on-change", "postfix.log",
                             want_rc=2)
        self.assertIn("needs --diff", err)
        self.replay("-c", "policy.conf", "--format", "xml", want_rc=2)
        self.replay("-c", "policy.conf", "--year", "abc", want_rc=2)
        self.write("broken.conf", "access nothing\n")
        self.replay("-c", "broken.conf", "postfix.log", want_rc=1)

    # -- state on the log's clock

    def test_greylisting_replays_in_log_time(self):
        self.write("grey.conf", "acl grey greylist delay=5m\n"
                   "action wait DEFER_IF_PERMIT Greylisted, retry in ${greylist_remaining}s\n"
                   "access grey wait\n")
        rej = ("Nov 22 %s mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a.example[192.0.2.1]:"
               " 450 4.7.1 <r@example.org>: Recipient address rejected: Greylisted; "
               "from=<s@example.net> to=<r@example.org> proto=ESMTP helo=<a.example>\n")
        log = (rej % "10:00:00" + rej % "10:02:00" +
               "Nov 22 10:06:00 mx postfix/smtpd[1]: 0A1B2C3D4E: client=a.example[192.0.2.1]\n"
               "Nov 22 10:06:01 mx postfix/qmgr[2]: 0A1B2C3D4E: from=<s@example.net>, size=1,"
               " nrcpt=1 (queue active)\n"
               "Nov 22 10:06:01 mx postfix/lmtp[3]: 0A1B2C3D4E: to=<r@example.org>, relay=x,"
               " status=sent (ok)\n" +
               # another triplet, seen first an hour later: greylisted afresh
               (rej % "11:06:00").replace("r@example.org", "q@example.org"))
        self.write("grey.log", log)
        # twice: the store is private and starts empty every run
        for _ in range(2):
            doc, _ = self.replay_json("-c", "grey.conf", "grey.log")
            got = [(r["time"][11:], r["was"], r["decision"]["action"])
                   for r in doc["requests"]]
            self.assertEqual(got, [
                ("10:00:00", "defer", "DEFER_IF_PERMIT Greylisted, retry in 300s"),
                ("10:02:00", "defer", "DEFER_IF_PERMIT Greylisted, retry in 180s"),
                ("10:06:00", "accept", "DUNNO"),
                ("11:06:00", "defer", "DEFER_IF_PERMIT Greylisted, retry in 300s")])

    def test_rate_replays_in_log_time(self):
        self.write("rate.conf", "acl flood rate client_address 2/1m\n"
                   "action slow DEFER_IF_PERMIT slow down (${rate_count})\n"
                   "access flood slow\n")
        rej = ("Nov 22 %s mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[192.0.2.1]: "
               "554 no; from=<s> to=<r> proto=ESMTP helo=<h>\n")
        self.write("rate.log", "".join(rej % t for t in (
            "10:00:00", "10:00:10", "10:00:20", "10:00:59", "10:01:15", "10:02:30")))
        doc, _ = self.replay_json("-c", "rate.conf", "rate.log")
        self.assertEqual([r["decision"]["word"] for r in doc["requests"]],
                         ["DUNNO", "DUNNO", "DEFER_IF_PERMIT", "DEFER_IF_PERMIT",
                          "DUNNO", "DUNNO"])
        # the refused 10:00:20 and 10:00:59 are not counted: 10:01:15 sees
        # none within its minute (10:00:00 and 10:00:10 have left), and
        # 10:02:30 sees none either

    # -- two policies

    def test_diff_groups_changes_and_fail_on_change(self):
        doc, err = self.replay_json("-c", "policy.conf", "--diff", "policy-new.conf",
                                    "postfix.log")
        s = doc["summary"]
        self.assertEqual((s["compared"], s["changed"]), (10, 3))
        groups = {(g["old_rule"], g["new_rule"]): g for g in s["changes"]}
        self.assertEqual({k: g["count"] for k, g in groups.items()},
                         {("policy.conf:16", "default"): 1,
                          ("policy.conf:18", "policy-new.conf:16"): 1,
                          ("policy.conf:16", "policy-new.conf:16"): 1})
        ex = groups[("policy.conf:18", "policy-new.conf:16")]["examples"]
        self.assertEqual(ex, ["2024-11-22T06:25:04 client=unknown[203.0.113.7] "
                              "from=<dave@example.net> to=<hold@example.org> was=hold: "
                              "WARN no client name -> REJECT no client name"])
        changed = doc["changed_requests"]
        self.assertEqual([(r["recipient"], r["old"]["action"], r["new"]["action"])
                          for r in changed],
                         [("warn@example.org", "REJECT no IPv6 here", "DUNNO"),
                          ("hold@example.org", "WARN no client name", "REJECT no client name"),
                          ("ivan@example.org", "REJECT no IPv6 here", "REJECT no client name")])
        self.assertEqual([rs["config"] for rs in s["rulesets"]],
                         ["policy.conf", "policy-new.conf"])
        # a deploy pipeline: 3 when anything changed, 0 when nothing did
        self.replay("-c", "policy.conf", "--diff", "policy-new.conf", "--fail-on-change",
                    "postfix.log", want_rc=3)
        out, _ = self.replay("-c", "policy.conf", "--diff", "policy.conf", "--fail-on-change",
                             "postfix.log")
        self.assertIn("changes: 0 of 10 requests decided differently", out)
        self.assertFalse(out.startswith("2024"), "unchanged requests must not be listed")

    def test_diff_text_lists_only_changes(self):
        out, _ = self.replay("-c", "policy.conf", "--diff", "policy-new.conf", "postfix.log")
        lines = out.splitlines()
        listed = [line for line in lines if line.startswith("2024-")]
        self.assertEqual(len(listed), 3)
        self.assertEqual(listed[0], "2024-11-22T06:25:03 client=v6.example.net[2001:db8::25] "
                         "from=<carol@example.net> to=<warn@example.org> was=warn "
                         "old rule=policy.conf:16 action=REJECT no IPv6 here => "
                         "new rule=default action=DUNNO")
        self.assertIn("changes: 3 of 10 requests decided differently", lines)
        self.assertIn("  policy.conf:18 -> policy-new.conf:16: 1", lines)

    # -- DNS

    def test_offline_rbl_is_a_temporary_failure(self):
        self.write("rbl.conf", "acl listed rbl zen.example.invalid\n"
                   "acl strict rbl zen.example.invalid tempfail=default\n"
                   "acl nobody recipient nobody@example.org\n"
                   "action blocked REJECT listed\n"
                   "access listed blocked\n"
                   "access nobody strict blocked\n")
        doc, _ = self.replay_json("--offline", "-c", "rbl.conf", "postfix.log")
        got = [(r["recipient"], r["decision"]["rule"], r["decision"]["action"])
               for r in doc["requests"]]
        # fail open on the first line; the second asks for the default at once
        self.assertEqual(got[0], ("nobody@example.org", "tempfail", "DUNNO"))
        self.assertEqual(got[1], ("bob@example.org", "default", "DUNNO"))
        self.assertEqual(doc["summary"]["rulesets"][0]["tempfail"], 2)
        self.assertEqual(doc["summary"]["rulesets"][0]["never_matched"],
                         ["rbl.conf:5", "rbl.conf:6"])
        self.replay("--offline", "--dns", "127.0.0.1:53", "-c", "rbl.conf", want_rc=2)

    # -- the window

    def test_years_follow_the_log_forward(self):
        # issue 11 item 5 (docs/replay.md, "Years"): a log runs forward, a
        # gap does not turn it back a year, one stray stamp shifts nothing
        def dec(stamp, rcpt):
            return ("%s mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[192.0.2.1]: 554 no; "
                    "from=<s@x> to=<%s> proto=ESMTP helo=<h>\n" % (stamp, rcpt))
        stamps = ["Mar 22 06:25:01", "Dec 31 06:25:01", "Jan  1 01:00:00",   # after Mar, Dec
                  "Aug  1 06:25:01", "Aug  2 06:25:01",                       # a 7-month gap
                  "Feb  3 06:25:01",                                          # one stray stamp
                  "Aug  3 06:25:01", "Dec 31 23:59:59", "Jan  1 00:00:01"]
        self.write("years.log", "".join(dec(st, "r%d@y" % i) for i, st in enumerate(stamps)))
        doc, _ = self.replay_json("-c", "policy.conf", "years.log")
        self.assertEqual([r["time"] for r in doc["requests"]], [
            "2024-03-22T06:25:01", "2024-12-31T06:25:01", "2025-01-01T01:00:00",
            "2025-08-01T06:25:01", "2025-08-02T06:25:01",
            "2026-02-03T06:25:01",
            "2025-08-03T06:25:01", "2025-12-31T23:59:59", "2026-01-01T00:00:01"])
        self.assertEqual(doc["summary"]["stray"], 1)

    def test_a_stray_stamp_does_not_move_the_replay_clock(self):
        # greylisting at 10:00, a line stamped months off (Feb 3: taken as
        # next year's, then found stray), the retry at 10:02: still too early
        self.write("grey.conf", "acl grey greylist delay=5m\n"
                   "action wait DEFER_IF_PERMIT Greylisted, retry in ${greylist_remaining}s\n"
                   "access grey wait\n")
        rej = ("%s mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a.example[192.0.2.1]:"
               " 450 4.7.1 <r@example.org>: Recipient address rejected: Greylisted; "
               "from=<s@example.net> to=<%s> proto=ESMTP helo=<a.example>\n")
        self.write("stray.log", rej % ("Nov 22 10:00:00", "r@example.org") +
                   rej % ("Feb  3 10:01:00", "q@example.org") +
                   rej % ("Nov 22 10:02:00", "r@example.org"))
        doc, _ = self.replay_json("-c", "grey.conf", "stray.log")
        got = [(r["time"], r["decision"]["action"]) for r in doc["requests"]]
        self.assertEqual(got, [
            ("2024-11-22T10:00:00", "DEFER_IF_PERMIT Greylisted, retry in 300s"),
            ("2025-02-03T10:01:00", "DEFER_IF_PERMIT Greylisted, retry in 300s"),
            ("2024-11-22T10:02:00", "DEFER_IF_PERMIT Greylisted, retry in 180s")])
        self.assertEqual(doc["summary"]["stray"], 1)

    def test_blank_lines_and_addresses_without_brackets(self):
        # issue 11 item 6
        self.write("blank.log",
                   "\n"
                   "Nov 22 06:25:01 mx postfix/smtpd[7]: 5A5A5A5A5A: client=c[198.51.100.7]\n"
                   "   \n"
                   "Nov 22 06:25:02 mx postfix/qmgr[9]: 5A5A5A5A5A: from=<s@example.org>, size=9, "
                   "nrcpt=2 (queue active)\n"
                   "Nov 22 06:25:03 mx postfix/local[12]: 5A5A5A5A5A: to=r@example.org, "
                   "relay=local, status=sent (delivered to mailbox)\n"
                   "Nov 22 06:25:03 mx postfix/local[12]: 5A5A5A5A5A: to=<t@example.org>, "
                   "orig_to=o@example.org, relay=local, status=sent (delivered to mailbox)\n")
        doc, err = self.replay_json("-v", "-c", "policy.conf", "blank.log")
        self.assertEqual([r["recipient"] for r in doc["requests"]],
                         ["r@example.org", "o@example.org"])
        s = doc["summary"]
        self.assertEqual((s["lines"], s["blank"], s["unparsable"], s["not_needed"]),
                         (6, 2, 0, 2))
        self.assertNotIn("cannot parse", err)
        out, _ = self.replay("-c", "policy.conf", "--summary", "blank.log")
        self.assertIn("0 unparsable, 2 not needed, 2 blank\n", out)

    def test_window_bound(self):
        lines = []
        for i in range(5):
            lines.append("Nov 22 10:00:0%d mx postfix/smtpd[1]: QQQQQ%d: client=a[192.0.2.1]"
                         % (i, i))
        for i in range(5):
            lines += ["Nov 22 10:00:1%d mx postfix/qmgr[2]: QQQQQ%d: from=<s>, size=1, nrcpt=1 "
                      "(queue active)" % (i, i),
                      "Nov 22 10:00:1%d mx postfix/smtp[3]: QQQQQ%d: to=<r%d@x>, relay=x, "
                      "status=sent (ok)" % (i, i, i)]
        self.write("win.log", "\n".join(lines) + "\n")
        doc, _ = self.replay_json("-c", "policy.conf", "--window", "3", "win.log")
        s = doc["summary"]
        self.assertEqual((len(doc["requests"]), s["evicted"], s["incomplete"], s["window_peak"],
                          s["orphans"]), (3, 2, 2, 3, 4))
        self.assertEqual([r["recipient"] for r in doc["requests"]], ["r2@x", "r3@x", "r4@x"])
        # by idle log time: a message silent for longer than the age is dropped
        doc, _ = self.replay_json("-c", "policy.conf", "--window-age", "5", "win.log")
        self.assertEqual(doc["summary"]["evicted"], 5)
        self.assertEqual(doc["requests"], [])


if __name__ == "__main__":
    unittest.main()
