"""The README's shell lines paste as written: no placeholders, and every ``kernelphase`` line
is accepted by the CLI's own parser (options exist, values have the right types)."""
import os
import re
import shlex

from kernelphase.cli import build_parser

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def _shell_lines():
    with open(README) as fh:
        for line in fh:
            if re.match(r"^    (kernelphase|pip|python)\b", line):
                yield line.strip()


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
