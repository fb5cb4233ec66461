"""Rewrite the generated parts of the docs from the code, so they cannot drift.

    python tools/refresh_docs.py          # rewrite README.md and docs/*.md in place
    python tools/refresh_docs.py --check  # exit 1 when a file is out of date (tests do this)

Two kinds of generated blocks:

* ``<!-- output: eksplain ARGS -->`` followed by a fenced block: the command's output at
  80 columns, as the CLI prints it;
* ``<!-- accuracy -->`` ... ``<!-- /accuracy -->``: the reference-set table.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from typer.testing import CliRunner

from eksplain.cli.main import app
from eksplain.validation import render_markdown, run

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OUTPUT = re.compile(r"(<!-- output: eksplain (?P<args>.+?) -->\n```text\n)(?P<body>.*?)(```)", re.S)
ACCURACY = re.compile(r"(<!-- accuracy -->\n)(?P<body>.*?)(<!-- /accuracy -->)", re.S)


def command_output(args: str) -> str:
    result = CliRunner().invoke(app, shlex.split(args), env={"COLUMNS": "80"})
    return "\n".join(line.rstrip() for line in result.output.splitlines()) + "\n"


def refresh(text: str) -> str:
    text = OUTPUT.sub(lambda m: m.group(1) + command_output(m.group("args")) + m.group(4), text)
    return ACCURACY.sub(lambda m: m.group(1) + render_markdown(run()) + m.group(3), text)


def main(check: bool) -> int:
    stale = []
    for path in FILES:
        old = path.read_text(encoding="utf-8")
        new = refresh(old)
        if new != old:
            stale.append(path.relative_to(ROOT))
            if not check:
                path.write_text(new, encoding="utf-8")
    if stale:
        print(("out of date: " if check else "rewrote: ") + ", ".join(map(str, stale)))
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv))
