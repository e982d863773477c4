"""Regenerate the sample outputs in README.md and docs/*.md from the real commands (docs that cannot drift).

Every ``<!-- sample: tokecon ARGS -->`` marker is followed by a fenced block; this script runs
``tokecon ARGS`` in-process and replaces the block with its output. Every ``$ tokecon frontier ...
--plot docs/NAME.png`` line is a picture: redrawn (matplotlib, the ``plot`` extra) when the PNG's
recorded digest of its data (tokecon.cli.plot.data_digest) differs from today's numbers; it is drawn
into a new file and then moved over the old one (``--plot`` never overwrites a tracked file).
``--check`` exits 1 when a sample or a picture is out of date instead of writing (tests/test_readme.py
runs it; checking needs no matplotlib).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
sys.path.insert(0, str(ROOT))  # document this checkout's code, not an installed copy
PICTURE = re.compile(r"^\$ (?P<cmd>tokecon frontier [^\n]*?) --plot (?P<png>docs/[\w.-]+\.png)$", re.M)
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


def stale_pictures(text: str) -> list[tuple[str, str]]:
    """(command, PNG path) of each picture whose recorded data digest is not today's."""
    import json

    from tokecon.cli.plot import PNG_DIGEST_KEY, data_digest, plot_data, png_text

    stale = []
    for m in PICTURE.finditer(text):
        doc = json.loads(run(m.group("cmd") + " -f json"))
        png = ROOT / m.group("png")
        recorded = png_text(png).get(PNG_DIGEST_KEY) if png.is_file() else None
        if recorded != data_digest(plot_data(doc, doc["rows"])):
            stale.append((m.group("cmd"), m.group("png")))
    return stale


def redraw(cmd: str, png: str) -> str:
    """Draw into a new file beside the picture, then move it over the old one."""
    target = ROOT / png
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=target.parent)
    os.close(fd)
    os.unlink(tmp)
    out = run(f"{cmd} --plot {tmp}")
    if Path(tmp).exists():
        os.replace(tmp, target)
    return out


def main() -> int:
    stale_docs, stale = [], []
    for doc in DOCS:
        old = doc.read_text()
        new = render(old)
        if new != old:
            stale_docs.append((doc, new))
        stale += stale_pictures(new)
    if "--check" in sys.argv:
        for doc, _ in stale_docs:
            print(f"{doc.relative_to(ROOT)} samples are out of date: run python docs/update_readme.py", file=sys.stderr)
        if stale:
            print(f"{', '.join(p for _, p in stale)} out of date: run python docs/update_readme.py "
                  "(needs pip install '.[plot]')", file=sys.stderr)
        return 1 if stale_docs or stale else 0
    for doc, new in stale_docs:
        doc.write_text(new)
    for cmd, png in stale:
        if "--plot needs matplotlib" in redraw(cmd, png):
            print(f"{png} not redrawn: pip install '.[plot]'", file=sys.stderr)
            return 1
    still = [p for doc in DOCS for p in stale_pictures(doc.read_text())]
    if still:
        print(f"{', '.join(p for _, p in still)}: redrawn but still not current", file=sys.stderr)
    return 1 if still else 0


if __name__ == "__main__":
    raise SystemExit(main())
