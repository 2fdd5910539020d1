"""Every document a file of the tree names exists: the user's documentation
in docs/, the design records in docs/dev/ (issue 12: "split the user's
documentation from the design records").

- In docs/*.md and docs/dev/*.md, a name like `language.md`, `dev/design.md`
  or `../store.md` (backquoted or a markdown link) is read relative to the
  page, and one like `docs/replay.md` relative to the top of the tree.
- In the code, the tests, the Makefile, the man pages and the README,
  every docs/...md path exists.
- The README's "Documentation" list names every user page and every design
  record, and nothing else; `make install` installs the user pages only.
"""
import os
import re
import subprocess
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = os.path.join(ROOT, "docs")
DEV = os.path.join(DOCS, "dev")

# `name.md`, `dev/name.md`, `../name.md`, `docs/.../name.md`, [text](name.md)
PAGE_REF = re.compile(r"(?:`|\]\()((?:\.\./|[\w-]+/)*[\w-]+\.md)(?:#[\w-]*)?(?:`|\))")
TREE_REF = re.compile(r"\bdocs/(?:[\w-]+/)*[\w-]+\.md\b")
# names of other projects' files, quoted in the records
FOREIGN = ("peers/README.md", "README.md")


def md_pages():
    out = []
    for d in (DOCS, DEV):
        out += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".md")]
    return out


def tracked_files():
    p = subprocess.run(["git", "-C", ROOT, "ls-files"], capture_output=True, text=True,
                       check=True)
    return [f for f in p.stdout.splitlines() if os.path.isfile(os.path.join(ROOT, f))]


class DocLinks(unittest.TestCase):

    def test_split(self):
        """The design records are in docs/dev/, the user's pages in docs/."""
        for f in ("design.md", "performance.md", "dns.md"):
            self.assertTrue(os.path.isfile(os.path.join(DEV, f)), "docs/dev/" + f)
        for f in ("language.md", "operations.md", "protocol.md", "replay.md", "store.md",
                  "migration.md", "dns.md"):
            self.assertTrue(os.path.isfile(os.path.join(DOCS, f)), "docs/" + f)
        for f in ("design.md", "performance.md"):
            self.assertFalse(os.path.exists(os.path.join(DOCS, f)), "docs/%s: moved" % f)

    def test_pages_name_pages_that_exist(self):
        seen = 0
        for page in md_pages():
            with open(page) as f:
                text = f.read()
            for m in PAGE_REF.finditer(text):
                ref = m.group(1)
                if ref in FOREIGN or ref.startswith("peers/"):
                    continue
                seen += 1
                line = text.count("\n", 0, m.start()) + 1
                base = ROOT if ref.startswith("docs/") else os.path.dirname(page)
                with self.subTest(page=os.path.relpath(page, ROOT), line=line, ref=ref):
                    self.assertTrue(os.path.isfile(os.path.normpath(os.path.join(base, ref))),
                                    "%s:%d: %s does not exist" % (
                                        os.path.relpath(page, ROOT), line, ref))
        self.assertGreater(seen, 50, "the pattern found too few references to check")

    def test_tree_names_docs_that_exist(self):
        seen = 0
        for rel in tracked_files():
            if rel.startswith("tests/golden/") or rel.endswith((".png", ".gz", ".mmdb")):
                continue
            try:
                with open(os.path.join(ROOT, rel), errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            for m in TREE_REF.finditer(text):
                seen += 1
                line = text.count("\n", 0, m.start()) + 1
                with self.subTest(file=rel, line=line, ref=m.group(0)):
                    self.assertTrue(os.path.isfile(os.path.join(ROOT, m.group(0))),
                                    "%s:%d: %s does not exist" % (rel, line, m.group(0)))
        self.assertGreater(seen, 30, "the pattern found too few references to check")

    def test_readme_lists_every_page(self):
        with open(os.path.join(ROOT, "README")) as f:
            readme = f.read()
        section = readme.split("\nDocumentation\n", 1)[1].split("\nLayout\n", 1)[0]
        listed = set(re.findall(r"^\s+(docs/\S+\.md)\s", section, re.M))
        want = {os.path.relpath(p, ROOT) for p in md_pages()}
        self.assertEqual(listed, want, "README's Documentation list vs docs/ and docs/dev/")

    def test_install_ships_user_pages_only(self):
        """make -n install: the docs it copies are docs/*.md, not docs/dev/."""
        with tempfile.TemporaryDirectory() as dest:
            p = subprocess.run(["make", "-C", ROOT, "-n", "install", "DESTDIR=" + dest],
                               capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        doc_lines = [l for l in p.stdout.splitlines() if "share/doc/mxacl" in l and ".md" in l]
        self.assertTrue(doc_lines, p.stdout)
        cmd = " ".join(doc_lines)
        for f in ("language.md", "operations.md", "dns.md", "migration.md"):
            self.assertIn("docs/" + f, cmd)
        self.assertNotIn("docs/dev/", cmd)
        # the sample requests the example policy's header points to
        self.assertIn("conf.d/request.txt", cmd)
        # the example policies, as documentation
        ex = [l for l in p.stdout.splitlines() if "share/doc/mxacl/examples" in l]
        self.assertTrue(any("conf.d/examples/policyd-weight.conf" in l
                            and "conf.d/examples/postscreen-weights.conf" in l for l in ex),
                        p.stdout)


if __name__ == "__main__":
    unittest.main()
