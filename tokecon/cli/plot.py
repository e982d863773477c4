"""Pictures of a frontier: a text chart for the terminal, and a PNG/SVG/PDF file via matplotlib.

Both are views of a ``frontier`` :class:`~tokecon.results.Result` (rows on the frontier, grouped
by device). matplotlib is an optional extra (``pip install 'tokecon[plot]'``), imported only
inside :func:`save_plot`.

A PNG carries the SHA-256 of what it draws (:func:`plot_data`: the points rounded to 4 significant
digits, the SLO picks and their prices, the title) as a ``tokecon-plot-sha256`` text chunk, so a
picture can be checked against today's numbers without matplotlib and without comparing pixels,
which differ between matplotlib versions (docs/update_readme.py --check).
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path
from typing import Any

from tokecon.errors import TokeconError
from tokecon.results import Result

PLOT_SUFFIXES = (".png", ".svg", ".pdf")
MARKERS = "*o+x#@%&"
X_LABEL = "interactivity [tok/s per user]"
Y_LABEL = "output throughput [tok/s per GPU]"


def frontier_series_rows(rows: list[dict[str, Any]]) -> dict[str, tuple[list[float], list[float]]]:
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        if row.get("on_frontier") and row.get("tok_s_per_user") is not None:
            series.setdefault(row["device"], []).append((row["tok_s_per_user"], row["output_tok_s_per_gpu"]))
    return {k: ([p[0] for p in sorted(v)], [p[1] for p in sorted(v)]) for k, v in series.items()}


PNG_DIGEST_KEY = "tokecon-plot-sha256"


def _r(value: float) -> float:
    return float(f"{value:.4g}")


def plot_data(inputs: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the picture shows, from a frontier's inputs and rows (a Result's, or its JSON document's):
    each device's frontier, the cheapest point meeting the SLO per device with its price, the floor."""
    series = {}
    for device, (xs, ys) in frontier_series_rows(rows).items():
        series[device] = [[_r(x), _r(y)] for x, y in zip(xs, ys)]
    picks = [{"device": r["device"], "x": _r(r["tok_s_per_user"]), "y": _r(r["output_tok_s_per_gpu"]),
              "usd_per_mtok": _r(r["usd_per_mtok"]), "usd_per_mtok_output": _r(r["usd_per_mtok_output"])}
             for r in rows if r.get("device_best") and r.get("tok_s_per_user") is not None]
    floor = (inputs.get("slo") or {}).get("min_tok_s_per_user")
    title = (f"{inputs.get('model_name', inputs.get('model', ''))}: {inputs.get('input_tokens')} in / "
             f"{inputs.get('output_tokens')} out tokens ({inputs.get('engine', '')}, "
             f"{'ideal roofline' if inputs.get('ideal') else 'expected'})")
    return {"title": title, "series": series, "picks": picks, "floor": floor}


def data_digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def png_text(path: Path) -> dict[str, str]:
    """The tEXt chunks of a PNG file (keyword -> text), read with the standard library."""
    data = Path(path).read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise TokeconError(f"{path}: not a PNG file")
    out, at = {}, 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        if kind == b"tEXt" and b"\0" in body:
            key, text = body.split(b"\0", 1)
            out[key.decode("latin-1")] = text.decode("latin-1")
        elif kind == b"zTXt" and b"\0" in body:
            key, rest = body.split(b"\0", 1)
            out[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        at += 12 + length
    return out


def _tick(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.3g}"


def text_chart(result: Result, width: int = 64, height: int = 16) -> str:
    """The frontier as characters: one marker per device, linear axes from zero."""
    series = frontier_series_rows(result.rows)
    if not series:
        return ""
    xmax = max(max(xs) for xs, _ in series.values()) or 1.0
    ymax = max(max(ys) for _, ys in series.values()) or 1.0
    grid = [[" "] * width for _ in range(height)]
    for k, (xs, ys) in enumerate(series.values()):
        mark = MARKERS[k % len(MARKERS)]
        for x, y in zip(xs, ys):
            col = min(int(round(x / xmax * (width - 1))), width - 1)
            row = height - 1 - min(int(round(y / ymax * (height - 1))), height - 1)
            grid[row][col] = mark
    labels = {0: _tick(ymax), (height - 1) // 2: _tick(ymax / 2), height - 1: "0"}
    pad = max(len(v) for v in labels.values())
    lines = [f"{Y_LABEL}"]
    for i, cells in enumerate(grid):
        lines.append(f"{labels.get(i, ''):>{pad}} |" + "".join(cells).rstrip())
    lines.append(" " * pad + " +" + "-" * width)
    ticks = [("0", 0), (_tick(xmax / 2), width // 2), (_tick(xmax), width)]
    axis = [" "] * (width + 12)
    for text, at in ticks:
        start = max(0, min(at - len(text) // 2, len(axis) - len(text)))
        axis[start:start + len(text)] = list(text)
    lines.append(" " * (pad + 2) + "".join(axis).rstrip())
    lines.append(" " * (pad + 2) + f"{X_LABEL:>{width}}")
    legend = "   ".join(f"{MARKERS[k % len(MARKERS)]} {name}" for k, name in enumerate(series))
    lines.append(" " * (pad + 2) + legend)
    return "\n".join(lines)


def check_plot_path(path: Path) -> None:
    """Fail early (before any sweep) on a file type we cannot write or a missing matplotlib."""
    if Path(path).suffix.lower() not in PLOT_SUFFIXES:
        raise TokeconError(f"--plot {path}: the file name must end in {', '.join(PLOT_SUFFIXES)}")
    try:
        folder = Path(path).parent.is_dir()
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise TokeconError(f"--plot {path}: {exc.strerror or exc}") from None
    if not folder:
        raise TokeconError(f"--plot {path}: folder {Path(path).parent} does not exist")
    if Path(path).exists() and tracked(Path(path)):
        raise TokeconError(f"--plot {path}: a file under version control; tokecon never overwrites one, name a new file")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise TokeconError("--plot needs matplotlib, an optional extra: pip install matplotlib (or, in the tokecon "
                           "checkout, pip install '.[plot]')") from None


def tracked(path: Path) -> bool:
    """Whether git tracks ``path`` (False where there is no git or no repository)."""
    import subprocess

    try:
        proc = subprocess.run(["git", "ls-files", "--error-unmatch", "--", path.name], cwd=path.resolve().parent,
                              capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def save_plot(result: Result, path: Path) -> Path:
    """Draw each device's frontier and, with an SLO, each device's cheapest point meeting it labelled
    with its price (the cheapest of all in bold) into ``path``; the type follows the suffix. A PNG
    records :func:`data_digest` of what it draws."""
    check_plot_path(path)
    from matplotlib.figure import Figure

    data = plot_data(result.inputs, result.rows)
    fig = Figure(figsize=(8, 5), dpi=120)
    ax = fig.add_subplot()
    for label, points in data["series"].items():
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3.5, linewidth=1.5, label=label)
    cheapest = min((p["usd_per_mtok"] for p in data["picks"]), default=None)
    for rank, pick in enumerate(sorted(data["picks"], key=lambda p: p["y"])):  # labels stacked, lowest point first
        best = pick["usd_per_mtok"] == cheapest
        ax.scatter([pick["x"]], [pick["y"]], s=120, facecolors="none", edgecolors="black", linewidths=2.0 if best else 1.0,
                   zorder=5, label="cheapest meeting the SLO, per device" if best else None)
        price = f"{pick['usd_per_mtok']:.3g} USD/Mtok blended, {pick['usd_per_mtok_output']:.3g} out"
        ax.annotate(price, (pick["x"], pick["y"]), xytext=(10, 8 + 16 * rank), textcoords="offset points", fontsize=8,
                    fontweight="bold" if best else "normal", arrowprops={"arrowstyle": "-", "linewidth": 0.5})
    if data["floor"]:
        ax.axvline(data["floor"], color="grey", linestyle="--", linewidth=1, label=f"{data['floor']:g} tok/s per user")
    ax.set_title(data["title"], fontsize=10)
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = Path(path).suffix.lower() == ".png"
    fig.savefig(path, metadata={PNG_DIGEST_KEY: data_digest(data)} if png else None)
    return Path(path)
