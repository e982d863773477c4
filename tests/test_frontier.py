"""``tokecon frontier``: the Pareto set, its monotone shape, the SLO pick, speed, and --plot."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import tokecon
from tokecon.serving import batching as serving
from tokecon.catalogs.catalog import load_catalog
from tokecon.cli.main import app
from tokecon.serving.request import DeviceRequest, ServingRequest
from tokecon.serving.search import sweep
from tokecon.cli.plot import PNG_DIGEST_KEY, data_digest, plot_data, png_text, text_chart
from tokecon.results import Thresholds
from tokecon.serving.resolve import parse_gpus

runner = CliRunner()

points = st.lists(st.tuples(st.floats(0.0, 1e4), st.floats(0.0, 1e4)), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(points)
def test_pareto_mask_keeps_exactly_the_undominated(pts):
    x, y = (np.array(v) for v in zip(*pts))
    keep = serving.pareto_mask(x, y)
    for i in range(len(x)):
        dominated = np.any((x >= x[i]) & (y >= y[i]) & ((x > x[i]) | (y > y[i])))
        if keep[i]:
            assert not dominated
        else:  # dropped: dominated, or a duplicate of a kept point
            assert dominated or np.any(keep & (x == x[i]) & (y == y[i]))
    # along the kept points throughput never rises with interactivity
    order = np.argsort(x[keep], kind="stable")
    assert np.all(np.diff(y[keep][order]) <= 0)


def test_pareto_mask_ignores_nan():
    keep = serving.pareto_mask(np.array([1.0, np.nan, 2.0]), np.array([5.0, 9.0, 1.0]))
    assert list(keep) == [True, False, True]


def _opts(model: str, *gpus: str, **kw) -> ServingRequest:
    return ServingRequest(DeviceRequest(model, tuple(gpus)), **kw)


def run_frontier(model: str, gpus: tuple[str, ...], input_len: int, output_len: int, slo: Thresholds, mode: str = "agg"):
    """frontier through the Python API over aggregated layouts (what these tests sweep by hand)."""
    limits = {k: v for k, v in slo.__dict__.items() if v is not None}
    return tokecon.frontier(model=model, gpus=list(gpus), input_len=input_len, output_len=output_len, mode=mode, **limits)


@pytest.mark.parametrize(("model", "gpus"), [("llama3-70b", ("8xH100",)), ("deepseek-v3", ("8xH200", "72xGB200"))])
def test_throughput_per_gpu_never_rises_with_interactivity(model, gpus):
    result = run_frontier(model, gpus, 1024, 1024, Thresholds())
    for device in {r["device"] for r in result.rows}:
        rows = sorted((r for r in result.rows if r["device"] == device), key=lambda r: r["tok_s_per_user"])
        assert len(rows) >= 5 and all(r["on_frontier"] for r in rows)
        y = [r["output_tok_s_per_gpu"] for r in rows]
        assert all(b <= a for a, b in zip(y, y[1:]))


def test_frontier_points_are_not_beaten_by_any_swept_point():
    """Brute force over the sweep: no swept point beats a frontier point on both axes."""
    catalog = load_catalog(use_user_home=False)
    opts = _opts("llama3-70b", "8xH100")
    swept = sweep(opts, catalog, parse_gpus("8xH100", catalog), 1024, 1024)
    assert {d.layout.tp for d, _ in swept} == {2, 4, 8}  # TP1 cannot hold 141 GB of weights in 80 GB
    x = np.concatenate([s.tok_s_per_user for _, s in swept])
    y = np.concatenate([s.output_tok_s_per_gpu for _, s in swept])
    rows = run_frontier("llama3-70b", ("8xH100",), 1024, 1024, Thresholds()).rows
    for row in rows:
        beats = (x > row["tok_s_per_user"] * (1 + 1e-9)) & (y > row["output_tok_s_per_gpu"] * (1 + 1e-9))
        assert not beats.any()
    layouts = {r["layout"] for r in rows}
    assert "TP8" in layouts


def test_moe_frontier_sweeps_attention_dp_and_ep():
    result = run_frontier("deepseek-v3", ("72xGB200",), 1024, 8192, Thresholds())
    layouts = {r["layout"] for r in result.rows}
    # attention-DP with EP on the frontier; not EP72 itself without an expert load balancer, whose busiest
    # rank carries 3.5x the mean with 3.6 experts a rank (issue 18: imbalance grows with EP size)
    assert any("+ DP attention" in lay for lay in layouts)
    top = max(result.rows, key=lambda r: r["output_tok_s_per_gpu"])
    assert top["attention_dp"] and top["ep"] >= 8  # large EP wins on throughput per GPU


def test_slo_names_the_cheapest_point_that_meets_it():
    slo = Thresholds(min_tok_s_per_user=50.0, max_ttft_ms=500.0)
    result = run_frontier("llama3-70b", ("8xH100", "8xH200"), 1024, 1024, slo)
    (best,) = [result.rows[i] for i in result.highlight]
    assert best["tok_s_per_user"] >= 50 and best["ttft_s"] <= 0.5 and best["slo"] == "ok"
    catalog = load_catalog(use_user_home=False)
    cheapest = np.inf
    for g in ("8xH100", "8xH200"):
        for d, s in sweep(_opts("llama3-70b", g), catalog, parse_gpus(g, catalog), 1024, 1024):
            ok = (s.tok_s_per_user >= 50) & (s.ttft_s <= 0.5)
            usd = d.scenario.usd_per_hour / (s.total_tok_s * 3600) * 1e6
            cheapest = min(cheapest, float(np.min(usd[ok], initial=np.inf)))
    assert best["usd_per_mtok"] == pytest.approx(cheapest)
    assert result.notes[0].startswith(f"* {best['device']} {best['layout']} at concurrency {best['concurrency']}: "
                                      f"cheapest meeting the SLO, {best['usd_per_mtok']:.3g} USD/Mtok blended")
    assert not result.failed_rows


def test_unmeetable_slo_exits_1():
    r = runner.invoke(app, ["frontier", "-m", "llama3-70b", "-g", "8xH100", "--min-tok-s-per-user", "100000"])
    assert r.exit_code == 1
    assert "no configuration meets the SLO" in r.stderr


def test_sweep_of_several_devices():
    """Three device types in one sweep (the time it takes is in bench/bench.py)."""
    result = run_frontier("deepseek-v3", ("8xH200", "8xB200", "72xGB200"), 1024, 8192, Thresholds(min_tok_s_per_user=30))
    assert {r["device"] for r in result.rows} == {"8xh200", "8xb200", "72xgb200"}


def test_terminal_chart_and_table():
    r = runner.invoke(app, ["frontier", "-m", "llama3-70b", "-g", "8xH100", "-g", "8xB200"])
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "interactivity [tok/s per user]" in out and "output throughput [tok/s per GPU]" in out
    assert "* 8xh100-sxm" in out and "o 8xb200" in out
    for header in ("tok/s per user", "out tok/s per GPU", "USD/Mtok out", "TTFT [ms]"):
        assert header in out
    doc = json.loads(runner.invoke(app, ["frontier", "-m", "llama3-70b", "-g", "8xH100", "-f", "json"]).stdout)
    assert doc["command"] == "frontier" and all(r["on_frontier"] for r in doc["rows"])
    assert "interactivity" not in runner.invoke(app, ["frontier", "-m", "llama3-70b", "-g", "8xH100", "-f", "json"]).stdout


def test_text_chart_places_extremes_in_corners():
    result = run_frontier("llama3-70b", ("8xH100",), 1024, 1024, Thresholds())
    lines = text_chart(result, width=40, height=10).splitlines()
    grid = [line.split("|", 1)[1] for line in lines[1:11]]
    assert "*" in grid[0] and "*" in grid[-1]  # most throughput on top, least at the bottom
    assert grid[-1].rstrip().endswith("*")  # ... and that one is the most interactive (right edge)


def test_plot_without_matplotlib_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    r = runner.invoke(app, ["frontier", "-m", "llama3-70b", "-g", "8xH100", "--plot", str(tmp_path / "f.png")])
    assert r.exit_code == 2
    assert "--plot needs matplotlib" in r.stderr and "pip install matplotlib" in r.stderr
    assert "pip install '.[plot]'" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_plot_rejects_unknown_suffix(tmp_path):
    r = runner.invoke(app, ["frontier", "-m", "llama3-70b", "-g", "8xH100", "--plot", str(tmp_path / "f.gif")])
    assert r.exit_code == 2 and ".png" in r.stderr


def test_plot_writes_a_valid_png_and_svg(tmp_path):
    pytest.importorskip("matplotlib")
    png, svg = tmp_path / "frontier.png", tmp_path / "frontier.svg"
    env = {**os.environ, "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(tmp_path / "mpl")}
    for path in (png, svg):
        proc = subprocess.run(
            [sys.executable, "-m", "tokecon", "frontier", "-m", "llama3-70b", "-g", "8xH100", "-g", "8xH200",
             "--min-tok-s-per-user", "50", "--plot", str(path), "-f", "json"],
            capture_output=True, text=True, env=env, timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert f"wrote {path}" in proc.stderr
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (960, 600)
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()
    # the PNG records what it draws: the digest of today's frontier (JSON), each device's price at the SLO
    doc = json.loads(proc.stdout)
    assert png_text(png)[PNG_DIGEST_KEY] == data_digest(plot_data(doc, doc["rows"]))
    if "<text" in svg.read_text():  # text as text (not paths): the price labels are readable in the SVG
        assert "USD/Mtok blended" in svg.read_text()


def test_plot_data_is_the_same_from_the_result_and_its_json():
    """docs/update_readme.py --check digests the JSON; the PNG digests the Result: they must agree, and
    carry each device's cheapest point meeting the SLO with its price."""
    args = ["frontier", "-m", "llama3-70b", "-g", "8xH100", "-g", "8xH200", "--min-tok-s-per-user", "50"]
    seen: list = []
    import tokecon.cli.show as show_module  # the CLI shows a result through show.render

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(show_module, "render", lambda result, *a, **k: seen.append(result))
        runner.invoke(app, args)
    result = next(r for r in seen if r.command == "frontier")
    doc = json.loads(runner.invoke(app, [*args, "-f", "json"]).stdout)
    data = plot_data(result.inputs, result.rows)
    assert data == plot_data(doc, doc["rows"])
    assert {p["device"] for p in data["picks"]} == {"8xh100-sxm", "8xh200"}
    for pick in data["picks"]:
        row = next(r for r in doc["rows"] if r.get("device_best") and r["device"] == pick["device"])
        assert pick["usd_per_mtok"] == pytest.approx(row["usd_per_mtok"], rel=1e-3) and pick["x"] >= 50
    assert data["floor"] == 50
    changed = {**data, "picks": [{**data["picks"][0], "usd_per_mtok": data["picks"][0]["usd_per_mtok"] * 1.01}]}
    assert data_digest(changed) != data_digest(data)


def test_png_text_reads_the_recorded_digest(tmp_path):
    """Read back without matplotlib: a minimal PNG with one tEXt chunk."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = tmp_path / "tiny.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
                    + chunk(b"tEXt", PNG_DIGEST_KEY.encode() + b"\0abc123")
                    + chunk(b"IDAT", zlib.compress(b"\0\0")) + chunk(b"IEND", b""))
    assert png_text(png) == {PNG_DIGEST_KEY: "abc123"}


def test_the_slo_screen_never_drops_a_point_whose_row_meets_the_slo():
    """frontier/compare build rows only for frontier points and those Thresholds.may_pass keeps: every
    point whose full row meets the SLO must be among them (the screen reads the same figures)."""
    from tokecon.results import Thresholds
    from tokecon.serving.deploy import sized
    from tokecon.serving.points import COMMON, aggregated, point_rows
    from tokecon.serving.resolve import parse_gpus
    from tokecon.serving.search import sweep
    from tokecon.api.commands import BY_NAME
    from tokecon.api.declare import parse
    from tokecon.commands.common import serving_request

    catalog = load_catalog(use_user_home=False)
    o, _ = parse(BY_NAME["frontier"], {"model": "llama3-70b", "gpus": ["8xH100"]}, "api")
    opts = serving_request(o, o.mode)
    spec = sized(catalog, opts, parse_gpus("8xH100", catalog), 2048)
    slo = Thresholds(min_tok_s_per_user=30.0, max_ttft_ms=800.0, max_tpot_ms=40.0, min_tok_s_per_gpu=200.0)
    checked = 0
    for d, times in sweep(opts, catalog, spec, 1024, 1024):
        pts = aggregated(d, times)
        figures = {k: getattr(times, k) for k in COMMON} | {"tok_s_per_gpu": times.output_tok_s_per_gpu}
        kept = slo.may_pass(figures, times.concurrency.size)
        for i, row in enumerate(point_rows(pts)):
            if row["fits"] and not slo.check(row):
                assert kept[i], (d.label, row["concurrency"])
                checked += 1
        assert not kept.all() or np.all([not slo.check(r) for r in point_rows(pts)])
    assert checked > 0


@pytest.mark.parametrize("rank_by", ["usd-per-mtok", "tok-s-per-mw"])
def test_the_best_point_meeting_the_slo_is_the_one_every_row_would_give(rank_by):
    """sweep_device ranks on arrays and builds only the rows it shows: its best point meeting the SLO
    is the one found by building every point's row, checking it and taking the best (the first of
    equals), over aggregated and disaggregated layouts."""
    from tokecon.api.commands import BY_NAME
    from tokecon.api.declare import parse
    from tokecon.commands.common import serving_request
    from tokecon.commands.frontier import RANK_BY, sweep_device
    from tokecon.results import Thresholds
    from tokecon.serving.deploy import sized
    from tokecon.serving.points import aggregated, disaggregated, point_rows
    from tokecon.serving.resolve import parse_gpus
    from tokecon.serving.search import pool_pairs, sweep

    catalog = load_catalog(use_user_home=False)
    o, _ = parse(BY_NAME["frontier"], {"model": "llama3-70b", "gpus": ["8xH100"], "mode": "both"}, "api")
    opts = serving_request(o, o.mode)
    slo = Thresholds(min_tok_s_per_user=25.0, max_ttft_ms=1500.0, max_usd_per_mtok=5.0)
    found = sweep_device(catalog, opts, "8xH100", 1024, 1024, slo, rank_by)
    spec = sized(catalog, opts, parse_gpus("8xH100", catalog), 2048)
    every = [aggregated(d, st) for d, st in sweep(opts, catalog, spec, 1024, 1024)]
    every += [disaggregated(p, d, st, opts.modes.prefix_hit, opts.modes.length_mix)
              for p, d, st in pool_pairs(catalog, opts, spec, 1024, 1024)]
    rows = [r for pts in every for r in point_rows(pts, opts.price_split if pts.mode == "agg" else None, None, opts.modes.prices)
            if r["fits"] and not slo.check(r)]
    key, smaller = RANK_BY[rank_by]
    want = (min if smaller else max)(rows, key=lambda r: r[key])
    got = found.best
    assert (got["layout"], got["concurrency"], got[key]) == (want["layout"], want["concurrency"], want[key])
