"""Regenerate the sample outputs in README.md from the real commands (docs that cannot drift).

Every ``<!-- sample: tokecon ARGS -->`` marker is followed by a fenced block; this script runs
``tokecon ARGS`` in-process and replaces the block with its output. ``--check`` exits 1 when the
README is out of date instead of writing it (tests/test_readme.py runs that).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
sys.path.insert(0, str(README.parent))  # document this checkout's code, not an installed copy
MARKER = re.compile(r"(?P<open><!-- sample: (?P<cmd>tokecon [^>]*?) -->\n```\w*\n)(?P<body>.*?)(?P<close>^```$)", re.S | re.M)


def run(cmd: str) -> str:
    from typer.testing import CliRunner

    from tokecon.cli.main import app

    args = shlex.split(cmd)[1:]
    result = CliRunner().invoke(app, args, env={"TOKECON_HOME": os.devnull + "-none", "NO_COLOR": "1"})
    text = result.stdout + (result.stderr if result.exit_code else "")
    lines = [ln.rstrip() for ln in text.rstrip("\n").splitlines()]
    return "\n".join(lines) + (f"\n$ echo $?\n{result.exit_code}" if result.exit_code else "")


def render(text: str) -> str:
    return MARKER.sub(lambda m: m.group("open") + f"$ {m.group('cmd')}\n" + run(m.group("cmd")) + "\n" + m.group("close"), text)


def main() -> int:
    old = README.read_text()
    new = render(old)
    if "--check" in sys.argv:
        if new != old:
            print("README.md samples are out of date: run python docs/update_readme.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
