"""The README's sample outputs are the real outputs of today's code (docs/update_readme.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.xfail(reason="samples regenerated on main after merge", strict=False)
def test_readme_samples_are_current():
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "update_readme.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_readme_states_the_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    assert "pip install . && tokecon decode --model llama3-70b --gpus 4xH100" in text
    assert 'pip install ".[test]" && pytest' in text
