"""Pictures of a frontier: a text chart for the terminal, and a PNG/SVG/PDF file via matplotlib.

Both are views of a ``frontier`` :class:`~tokecon.results.Result` (rows on the frontier, grouped
by device). matplotlib is an optional extra (``pip install 'tokecon[plot]'``), imported only
inside :func:`save_plot`.
"""

from __future__ import annotations

from pathlib import Path

from tokecon.errors import TokeconError
from tokecon.results import Result

PLOT_SUFFIXES = (".png", ".svg", ".pdf")
MARKERS = "*o+x#@%&"
X_LABEL = "interactivity [tok/s per user]"
Y_LABEL = "output throughput [tok/s per GPU]"


def frontier_series(result: Result) -> dict[str, tuple[list[float], list[float]]]:
    """Device label -> (tok/s per user, output tok/s per GPU) of its frontier points, by interactivity."""
    series: dict[str, list[tuple[float, float]]] = {}
    for row in result.rows:
        if row.get("on_frontier") and row.get("tok_s_per_user") is not None:
            series.setdefault(row["device"], []).append((row["tok_s_per_user"], row["output_tok_s_per_gpu"]))
    return {k: ([p[0] for p in sorted(v)], [p[1] for p in sorted(v)]) for k, v in series.items()}


def _tick(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.3g}"


def text_chart(result: Result, width: int = 64, height: int = 16) -> str:
    """The frontier as characters: one marker per device, linear axes from zero."""
    series = frontier_series(result)
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
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise TokeconError("--plot needs matplotlib, an optional extra: pip install 'tokecon[plot]'") from None


def save_plot(result: Result, path: Path) -> Path:
    """Draw each device's frontier (and the SLO pick, if any) into ``path``; the type follows the suffix."""
    check_plot_path(path)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=120)
    ax = fig.add_subplot()
    for label, (xs, ys) in frontier_series(result).items():
        ax.plot(xs, ys, marker="o", markersize=3.5, linewidth=1.5, label=label)
    for i in result.highlight:
        row = result.rows[i]
        if row.get("tok_s_per_user") is not None:
            ax.scatter([row["tok_s_per_user"]], [row["output_tok_s_per_gpu"]], s=120, facecolors="none",
                       edgecolors="black", zorder=5, label=f"cheapest meeting SLO ({row['device']})")
    floor = result.inputs.get("slo", {}).get("min_tok_s_per_user")
    if floor:
        ax.axvline(floor, color="grey", linestyle="--", linewidth=1, label=f"{floor:g} tok/s per user")
    inputs = result.inputs
    ax.set_title(f"{inputs.get('model_name', inputs.get('model', ''))}: {inputs.get('input_tokens')} in / "
                 f"{inputs.get('output_tokens')} out tokens ({inputs.get('engine', '')}, "
                 f"{'ideal roofline' if inputs.get('ideal') else 'expected'})", fontsize=10)
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)
