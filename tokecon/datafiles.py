"""Where shipped data lives: ``tokecon/data/`` inside a wheel (pyproject's force-include), the
repository itself in a checkout (the catalogs at its root, measurements under ``validation/``)."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def data_file(name: str, folder: str = "") -> Path:
    """``tokecon/data/NAME`` when installed from a wheel, else ``<checkout>/<folder>/NAME``."""
    packaged = PACKAGE / "data" / name
    if packaged.exists():
        return packaged
    return PACKAGE.parent / folder / name if folder else PACKAGE.parent / name
