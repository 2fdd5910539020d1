"""The man pages (docs/man/): they render with groff -man -ww without a
single warning, and they cannot drift from the programs: mxacld(8)'s
OPTIONS are what `mxacld --settings-man` prints from the settings table,
mxacl(1) has every subcommand and option the tool's --help texts name, and
mxacl-policy(5) every acl type and action word the compiler knows, and an
example policy that compiles.
"""
import os
import re
import subprocess
import tempfile
import unittest

from mxtest import ROOT, mxacl_path, mxacld_path

MAN = os.path.join(ROOT, "docs", "man")
PAGES = ["mxacld.8", "mxacl.1", "mxacl-policy.5"]


def read(name):
    with open(os.path.join(MAN, name)) as f:
        return f.read()


def unroff(text):
    """The words of roff source as they render: escapes undone."""
    return (text.replace("\\-", "-").replace("\\e", "\\").replace("\\fB", "")
            .replace("\\fI", "").replace("\\fR", "").replace("\\&", ""))


class ManTest(unittest.TestCase):
    def test_pages_render_without_warnings(self):
        for page in PAGES:
            for macros in ("-man", "-mandoc"):
                with self.subTest(page=page, macros=macros):
                    p = subprocess.run(["groff", macros, "-ww", "-Tutf8", "-z",
                                        os.path.join(MAN, page)],
                                       capture_output=True, text=True)
                    self.assertEqual((p.returncode, p.stderr), (0, ""))
                    out = subprocess.run(["groff", macros, "-Tutf8", "-P-cbou", os.path.join(MAN, page)],
                                         capture_output=True, text=True).stdout
                    self.assertIn("NAME", out)
                    self.assertGreater(len(out.splitlines()), 60)

    def test_mxacld_options_are_the_settings_table(self):
        gen = subprocess.run([mxacld_path(), "--settings-man"], capture_output=True,
                             text=True, check=True).stdout
        page = read("mxacld.8")
        m = re.search(r'^\.\\" settings begin[^\n]*\n(.*?)^\.\\" settings end', page,
                      re.S | re.M)
        self.assertIsNotNone(m, "no settings markers in docs/man/mxacld.8")
        self.assertEqual(m.group(1), gen,
                         "docs/man/mxacld.8's OPTIONS differ from the settings table: "
                         "run `make docs`")
        # and every flag --help shows is there
        help_text = subprocess.run([mxacld_path(), "--help"], capture_output=True,
                                   text=True).stdout
        flags = set(re.findall(r"--[a-z][a-z-]+", help_text))
        self.assertIn("--listen", flags)
        for flag in flags:
            self.assertIn(flag, unroff(page), flag)

    def test_mxacl_has_every_subcommand_and_option(self):
        page = unroff(read("mxacl.1"))
        texts = []
        for args in ([], ["grey"], ["replay"]):
            p = subprocess.run([mxacl_path()] + args + ["--help"], capture_output=True,
                               text=True)
            texts.append(p.stdout + p.stderr)
        subcommands = set()
        for words in re.findall(r"^(?:usage:|\s+)\s*mxacl (\w+(?:\|\w+)*)", texts[0], re.M):
            subcommands.update(words.split("|"))
        self.assertEqual(subcommands, {"check", "dump", "test", "grey", "replay", "status",
                                       "stats"})
        for sub in subcommands:
            self.assertRegex(page, r"(?m)^\.SS %s$" % sub)
        for opt in set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", "".join(texts))) - {"--help"}:
            self.assertIn(opt, page, "mxacl(1) lacks %s" % opt)
        for cmd in re.findall(r"^  (\w+)\s", texts[1], re.M):
            self.assertRegex(page, r"(?m)^\.BI? %s\b" % cmd, cmd)

    def test_policy_page_knows_the_language(self):
        page = unroff(read("mxacl-policy.5"))
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write("acl a zzzzzzzzzz x\naction b ZZZZZZZZ\n")
            f.flush()
            err = subprocess.run([mxacl_path(), "check", "-c", f.name], capture_output=True,
                                 text=True).stdout
            err += subprocess.run([mxacl_path(), "check", "-c", f.name], capture_output=True,
                                  text=True).stderr
        types = re.search(r"or (day, .*?) \(docs", err).group(1).split(", ")
        actions = re.search(r"valid actions are (.*?) and 4NN", err).group(1).split(", ")
        with open(os.path.join(ROOT, "docs", "language.md")) as f:
            lang = f.read()
        table = lang[lang.index("## Acl types"):lang.index("## String values")]
        for row in re.findall(r"^\| (?:string|address|numeric) \| (.*?) \|", table, re.M):
            types += re.findall(r"`(\w+)`", row)
        self.assertGreater(len(types), 40)
        for word in types + actions:
            self.assertRegex(page, r"\b%s\b" % re.escape(word), word)

    def test_policy_page_example_compiles(self):
        src = read("mxacl-policy.5")
        ex = src[src.index(".SH EXAMPLES"):]
        body = ex[ex.index(".EX\n") + 4:ex.index(".EE\n")]
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write(unroff(body))
            f.flush()
            p = subprocess.run([mxacl_path(), "check", "-c", f.name], capture_output=True,
                               text=True)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))


if __name__ == "__main__":
    unittest.main()
