"""The settings table and what is made from it: docs/operations.md's table
of settings is the one `mxacld --settings-markdown` prints (so the docs and
the binary's table, engine/settings.c, cannot drift: `make docs` rewrites
it), and --help, the hidden flags and the flag errors come from the same
rows.
"""
import os
import re
import unittest

from mxtest import run_mxacld

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BEGIN = "<!-- settings table begin"
END = "<!-- settings table end -->"


def docs_table():
    """The generated block of docs/operations.md, without its markers."""
    with open(os.path.join(ROOT, "docs", "operations.md")) as f:
        lines = f.read().splitlines(True)
    begin = [i for i, l in enumerate(lines) if l.startswith(BEGIN)]
    end = [i for i, l in enumerate(lines) if l.startswith(END)]
    if len(begin) != 1 or len(end) != 1 or end[0] <= begin[0]:
        raise AssertionError("docs/operations.md: want one %r ... %r block" % (BEGIN, END))
    return "".join(lines[begin[0] + 1:end[0]])


class SettingsDocs(unittest.TestCase):
    def test_docs_table_is_the_binarys(self):
        r = run_mxacld(["--settings-markdown"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreater(r.stdout.count("\n| "), 10, r.stdout)
        self.assertEqual(docs_table(), r.stdout,
                         "docs/operations.md's table of settings differs from "
                         "engine/settings.c's: run `make docs`")

    def test_every_set_name_in_docs(self):
        # the "unknown setting" hint lists the names; each has a docs row
        names = []
        for line in docs_table().splitlines()[2:]:
            m = re.match(r"`set (\w+) ", line.split(" | ")[1])
            if m:
                names.append(m.group(1))
        self.assertEqual(names, ["listen", "user", "pidfile", "daemonize", "socket_mode",
                                 "socket_owner", "log", "syslog_facility", "store",
                                 "state_file", "control", "metrics", "tempfail", "dryrun",
                                 "restriction_classes", "geoip", "dns"])

    def test_help_lists_flags_not_hidden_ones(self):
        r = run_mxacld(["--help"])
        self.assertEqual(r.returncode, 0, r.stderr)
        table = docs_table()
        for flag in re.findall(r"`(--[a-z-]+)", table):
            self.assertRegex(r.stdout, r"(?m)^  (-., |    )%s\b" % re.escape(flag))
        for hidden in ["--idle-timeout", "--request-timeout", "--max-connections",
                       "--state-interval", "--settings-markdown"]:
            self.assertNotIn(hidden, r.stdout)
            self.assertNotIn(hidden, table)

    def test_flag_errors(self):
        cases = [
            (["--socket-mode", "rw"],
             'mxacld: --socket-mode: want an octal mode such as 0660, got "rw"\n'),
            (["--dns-timeout", "0"],
             'mxacld: --dns-timeout: want milliseconds 1..600000, got "0"\n'),
            (["--max-connections", "0"], 'mxacld: --max-connections: want 1..1000000, got "0"\n'),
            (["--idle-timeout", "x"], 'mxacld: --idle-timeout: want a number of seconds, got "x"\n'),
            (["--dns", "dns.example"],
             "mxacld: --dns: bad DNS server 'dns.example': 'dns.example' is not an IP address\n"),
            (["extra"], 'mxacld: unexpected argument "extra"\n'),
        ]
        for args, want in cases:
            r = run_mxacld(["-c", os.devnull] + args)
            self.assertEqual(r.returncode, 2, "%s: %s" % (args, r.stderr))
            self.assertEqual(r.stderr, want + "Try 'mxacld --help'.\n")


if __name__ == "__main__":
    unittest.main()
