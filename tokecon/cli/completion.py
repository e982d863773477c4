"""Shell completion of catalog names (models, hardware, engines) and of ``COUNTxDEVICE``."""

from __future__ import annotations

import re

_COUNT_PREFIX = re.compile(r"^(\d+\s*[xX×*])(.*)$")


def complete_names(kind: str):
    """Catalog names and aliases of ``kind`` (built-in and user catalogs), matched case-insensitively;
    the typed prefix keeps its case so the shell accepts the match."""

    def complete(incomplete: str) -> list[str]:
        try:
            from tokecon.catalogs.catalog import load_catalog

            reg = load_catalog().registry(kind)
        except Exception:  # completion must never crash the shell
            return []
        names = sorted({*reg.entries, *(a for e in reg for a in e.aliases)})
        low = incomplete.lower()
        return list(dict.fromkeys(incomplete + n[len(incomplete):] for n in names if n.lower().startswith(low)))

    return complete


def complete_gpus(incomplete: str) -> list[str]:
    """``4xh`` -> ``4xh100``, ``4xh200``, ...; a bare count ``8`` -> ``8x<device>``."""
    if incomplete.isdigit():
        return [f"{incomplete}x{n}" for n in complete_names("hardware")("")]
    match = _COUNT_PREFIX.match(incomplete)
    prefix, name = (match.group(1), match.group(2)) if match else ("", incomplete)
    return [prefix + n for n in complete_names("hardware")(name)]
