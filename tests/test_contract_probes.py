"""Targeted probes from issue 11's hostile-input list: each was an internal error or a silent,
misleading answer, and must be one clear line with exit 2 (or a correct answer)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tokecon.cli.main import app

runner = CliRunner()
LONG = "x" * 300  # longer than a file name may be (255 bytes on Linux): stat() raises ENAMETOOLONG


@pytest.mark.parametrize("args", [
    ["models", "import", LONG, "--name", "n"],
    ["frontier", "-m", "llama3-8b", "-g", "1xH100", "--plot", f"/{LONG}/a.png"],
])
def test_a_file_name_too_long_is_bad_input(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 2
    assert "internal error" not in r.stderr and "File name too long" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
