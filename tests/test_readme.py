"""The README's shell lines paste as written: no placeholders, and every ``kernelphase`` line
is accepted by the CLI's own parser (options exist, values have the right types). The same holds
for the pages of measured numbers the README links to (``docs/validation/*.md``), which hold
the commands that produced them."""
import glob
import os
import re
import shlex

from kernelphase.cli import build_parser

ROOT = os.path.join(os.path.dirname(__file__), "..")
README = os.path.join(ROOT, "README.md")
PAGES = [README] + sorted(glob.glob(os.path.join(ROOT, "docs", "validation", "*.md")))


def _shell_lines():
    for page in PAGES:
        with open(page) as fh:
            for line in fh:
                if re.match(r"^    (kernelphase|pip|python)\b", line):
                    yield line.strip()


def test_pages_hold_commands():
    """Each page of measured numbers quotes the commands behind them."""
    for page in PAGES:
        with open(page) as fh:
            assert re.search(r"^    kernelphase ", fh.read(), flags=re.M) or \
                page.endswith("speed.md"), page


def test_no_placeholders():
    bad = [ln for ln in _shell_lines()
           if re.search(r"\[--|\.\.\.|<[A-Z]|\bHOST\b|\|\s*$", ln)]
    assert not bad, bad


def test_kernelphase_lines_parse():
    parser = build_parser()
    for line in _shell_lines():
        for part in line.split("&&"):
            words = shlex.split(part, comments=True)
            if words and words[0] == "kernelphase":
                try:
                    parser.parse_args(words[1:])
                except SystemExit as exc:  # argparse rejected the line
                    raise AssertionError(f"README line does not parse: {line}") from exc


def _inline_commands():
    """``kernelphase ...`` commands quoted inline (the "What I want to know" table)."""
    with open(README) as fh:
        text = fh.read()
    return re.findall(r"`(kernelphase [^`]+)`", text)


def test_inline_kernelphase_commands_parse():
    parser = build_parser()
    found = _inline_commands()
    assert len(found) >= 10, found          # the question table quotes a command per row
    for cmd in found:
        words = shlex.split(cmd)
        try:
            parser.parse_args(words[1:])
        except SystemExit as exc:
            raise AssertionError(f"README inline command does not parse: {cmd}") from exc


def test_links_point_to_files():
    """Every relative link of the README names a file of the repository (the docs pages)."""
    with open(README) as fh:
        text = fh.read()
    root = os.path.dirname(README)
    links = [t for t in re.findall(r"\]\(([^)#\s]+)\)", text) if "://" not in t]
    assert links
    missing = [t for t in links if not os.path.exists(os.path.join(root, t))]
    assert not missing, missing
