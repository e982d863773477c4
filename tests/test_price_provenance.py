"""Prices as true as the physics (issue 19): sourced, scoped, dated, all-in.

Each check states its figure's source. The catalog's price points come from public pages named in their
``source`` strings; the rules that pick current values and normalise scopes are tokecon.economics.prices.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tokecon.catalogs.catalog import load_catalog
from tokecon.cli.main import app
from tokecon.economics import prices
from tokecon.economics.costs import CostModel, cost_model, gpu_hour_cost, scope_note
from tokecon.economics.crossover import crossover
from tokecon.economics.energy import energy_fields
from tokecon.errors import CatalogError, TokeconError
from tokecon.physics.specs import ALL_IN_OVER_BOARD

CATALOG = load_catalog(use_user_home=False)
HW = CATALOG.hardware.get


# --- scope normalisation --------------------------------------------------------------------------------------------

def test_a_chip_price_takes_the_server_overhead_and_a_rack_device_the_rack_overhead():
    """h100-sxm: Epoch AI's 2025 ASP 25,699.35 USD (chip) x 1.35 (SemiAnalysis DGX H100 BoM: 1.38 over GPUs and
    baseboard) = 34,694 USD server share; gb200: Epoch's Blackwell ASP 36,742 x 1.53 (NVIDIA's 5 M USD per NVL72 less
    Epoch's 19% cluster network, over that ASP) = 56,215; gh200: a retail node (scope system, Delta Computer
    46,675.10) is already a server share."""
    assert HW("h100-sxm").purchase_usd == pytest.approx(25_699.35 * 1.35)
    assert HW("gb200").purchase_usd == pytest.approx(36_742 * 1.53)
    assert HW("gh200").purchase_usd == pytest.approx(46_675.10)
    assert prices.RACK_OVERHEAD.factor == pytest.approx(5e6 / 72 * (1 - 0.19) / 36_742, abs=0.005)
    assert prices.overhead("server_share", True) is None and prices.overhead("chip", False) is prices.SERVER_OVERHEAD


def test_interpolation_runs_over_one_scope():
    """h100-sxm capital at 2024-06: between SemiAnalysis' 2023-05 baseboard share 24,375 x 1.35 and Epoch's
    2025-07 ASP x 1.35, both at server share (a chip price is never interpolated against a server price)."""
    points = prices.series(HW("h100-sxm"), "purchase")
    assert {p.scope for p in points} == {"server_share"}
    got = prices.price_at(HW("h100-sxm"), "purchase", prices.year_of("2024-06"))
    a, b = 24_375 * 1.35, 25_699.35 * 1.35
    t = (prices.year_of("2024-06") - prices.year_of("2023-05")) / (prices.year_of("2025-07") - prices.year_of("2023-05"))
    assert got.usd == pytest.approx(a * (b / a) ** t) and "interpolated between 2023-05" in got.how


# --- the published all-in ratio ---------------------------------------------------------------------------------------

def test_gb200_over_b200_all_in_gpu_hour_within_10_percent_of_semianalysis():
    """SemiAnalysis AI Cloud TCO Model, July 2026 survey (github.com/SemiAnalysisAI/InferenceX-app@e41635bf
    packages/constants/src/gpu-keys.ts, hyperscaler owning costh): B200 1.73, GB200 NVL72 1.86 USD/GPU-h, +7.5%.
    tokecon's own TCO (capital on one scope, facility 0.40, all-in power): 2.341 vs 2.613, +11.6%."""
    published = {k: prices.series(HW(k), "tco", "SemiAnalysis", "hyperscaler")[-1] for k in ("b200", "gb200")}
    assert (published["b200"].usd, published["gb200"].usd, published["b200"].date) == (1.73, 1.86, "2026-07")
    target = 1.86 / 1.73
    own = {k: gpu_hour_cost(HW(k), CostModel(method="tco")).usd_per_gpu_hour for k in ("b200", "gb200")}
    assert own["gb200"] / own["b200"] == pytest.approx(target, rel=0.10)
    assert own["gb200"] / own["b200"] == pytest.approx(1.116, abs=0.002)
    by_name = {k: gpu_hour_cost(HW(k), CostModel(method="tco-published")).usd_per_gpu_hour for k in ("b200", "gb200")}
    assert by_name == {"b200": 1.73, "gb200": 1.86}


def test_published_tco_by_name_tier_and_date():
    """SemiAnalysis (same file): B200 neocloud owning 2.07 (2026-07); 1.95 hyperscaler in the August 2025 survey."""
    b200 = HW("b200")
    assert gpu_hour_cost(b200, CostModel(method="tco-published", tier="neocloud")).usd_per_gpu_hour == 2.07
    then = gpu_hour_cost(b200, CostModel(method="tco-published", as_of="2025-08"))
    assert then.usd_per_gpu_hour == 1.95 and "at the first point (2025-08)" in then.price_note
    with pytest.raises(TokeconError, match="published: SemiAnalysis hyperscaler, SemiAnalysis neocloud"):
        gpu_hour_cost(b200, CostModel(method="tco-published", tco_source="Epoch"))
    with pytest.raises(TokeconError, match="no published TCO"):
        gpu_hour_cost(HW("l4"), CostModel(method="tco-published"))


# --- provenance of every current value ----------------------------------------------------------------------------

SEO = ("deploybase", "awesomeagents", "aiinframap", "mercatus-ai", "cliffcenter", "aimultiple", "neighborhoodsf",
       "chaincatcher", "compux", "codesota", "newgearhub", "gpu.blog", "lyceum", "kaelresearch", "datastorage.com",
       "rackmountnts", "huggingface.co/hardware", "aitooldiscovery", "briefbriefing", "newsbeep", "hndistilled")


@pytest.mark.parametrize("key", [hw.key for hw in CATALOG.hardware])
def test_every_current_price_is_traceable_to_a_dated_source(key):
    hw = HW(key)
    for kind in ("rental", "purchase"):
        now = prices.current(hw, kind)
        if now is None:
            assert kind == "purchase" and not [p for p in hw.price_points if p.kind == kind and p.source_class == "primary"]
            continue
        q = now.quote
        assert q is not None, f"{key} {kind} is a point of the catalog, not a typed-in value"
        p = q.point
        assert p.source.strip() and p.date <= prices.this_month() and p.scope and p.tier
        assert not any(s in p.source for s in SEO), p.source
        assert (p.source_class == "derived") == bool(p.derived_from)
    assert hw.price_date == prices.current(hw, "rental").quote.point.date


def test_no_point_cites_an_seo_or_aggregator_page():
    cited = [(hw.key, p.source) for hw in CATALOG.hardware for p in hw.price_points if any(s in p.source for s in SEO)]
    assert cited == []


def test_the_weak_current_values_are_these_and_no_more():
    """Of 46 current values (29 rentals, 17 capitals) 7 are secondary or derived (15%): five devices have no
    rental market or no found rental page (H20, TPU v5p, Gaudi 3, Groq, CS-3: derived), the RTX 5090 rental is a
    marketplace rate SemiAnalysis quotes, and GB200's capital takes the rack overhead derived from NVIDIA's figure."""
    weak, values = [], 0
    for hw in CATALOG.hardware:
        for kind in ("rental", "purchase"):
            now = prices.current(hw, kind)
            values += now is not None
            if now is not None and now.source_class != "primary":
                weak.append((hw.key, kind, now.source_class))
    assert values == 46
    assert sorted(weak) == [("cerebras-cs3", "rental", "derived"), ("gaudi3", "rental", "derived"),
                            ("gb200", "purchase", "derived"), ("groq-lpu", "rental", "derived"),
                            ("h20", "rental", "derived"), ("rtx-5090", "rental", "secondary"),
                            ("tpu-v5p", "rental", "derived")]


def test_a_stated_value_wins_and_says_so():
    stated = replace(HW("h200"), rental_usd_per_hour=3.0, price_date="2026-01")
    now = prices.current(stated, "rental")
    assert now.quote is None and now.source_class == "stated" and "rental_usd_per_hour" in now.note
    assert prices.series(stated, "rental")[0].usd == 3.0


# --- bad price data -------------------------------------------------------------------------------------------------

ENTRY = """[hardware.x1]
name = "x"
vendor = "v"
family = "hopper"
memory_gb = 80.0
memory_bw_tb_s = 3.0
bf16_tflop_s = 900.0
scaleup_link = "l"
scaleup_bw_gb_s = 400.0
scaleup_domain = 8
scaleout_bw_gb_s = 50.0
power_w = 700
source = "s"
[hardware.x1.efficiency]
compute = 0.7
memory_bw = 0.8
link = 0.8
collective_latency_us = 8.0
"""
GOOD = {"date": '"2025-03"', "kind": '"rental"', "usd_per_hour": "2.0", "scope": '"server_share"',
        "source_class": '"primary"', "tier": '"neocloud"', "rental_kind": '"on_demand"', "source": '"a page"'}


def _load(tmp_path: Path, **changes: str | None):
    point = {k: v for k, v in {**GOOD, **changes}.items() if v is not None}
    path = tmp_path / "bad.toml"
    path.write_text(ENTRY + "[[hardware.x1.price_points]]\n" + "".join(f"{k} = {v}\n" for k, v in point.items()))
    return load_catalog([path], use_user_home=False), str(path)


def test_a_good_point_prices_the_device(tmp_path):
    cat, _ = _load(tmp_path)
    assert cat.hardware.get("x1").rental_usd_per_hour == 2.0 and cat.hardware.get("x1").purchase_usd is None


@pytest.mark.parametrize(("changes", "message"), [
    ({"scope": '"pallet"'}, "field 'scope' must be one of chip, card"),
    ({"usd_per_hour": "-2.0"}, "field 'usd_per_hour' must be > 0"),
    ({"date": '"2099-01"'}, "field 'date' '2099-01' is in the future"),
    ({"source_class": '"derived"'}, "a derived point names its inputs in 'derived_from'"),
    ({"rental_kind": None}, "field 'rental_kind' (on_demand, reserved, spot) is required for a rental"),
    ({"kind": '"tco"', "rental_kind": None}, "scope 'all_in' is for a published TCO"),
    ({"unit": '"instance"'}, "field 'gpus_per_unit' goes with unit = 'instance'"),
    ({"unit": '"instance"', "gpus_per_unit": "8", "unit_usd_per_hour": "20.0"}, "is not the quoted unit price 20.0 / 8 GPUs"),
    ({"tier": '"whale"'}, "field 'tier' must be one of hyperscaler, neocloud, retail"),
    ({"kind": '"purchase"', "usd_per_hour": None, "usd": "1e4", "scope": '"all_in"', "rental_kind": None}, "scope 'all_in'"),
])
def test_bad_price_data_is_one_line_naming_the_entry(tmp_path, changes, message):
    with pytest.raises(CatalogError) as err:
        _load(tmp_path, **changes)
    text = str(err.value)
    assert message in text and "[x1.price_points[0]]" in text and "bad.toml" in text and "\n" not in text


def test_a_device_without_any_rental_is_refused(tmp_path):
    path = tmp_path / "none.toml"
    path.write_text(ENTRY)
    with pytest.raises(CatalogError, match=r"\[x1\]: needs a rental price"):
        load_catalog([path], use_user_home=False)


def test_bad_price_data_exits_2_through_the_cli(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(ENTRY + "[[hardware.x1.price_points]]\n" + "".join(
        f"{k} = {v}\n" for k, v in {**GOOD, "scope": '"pallet"'}.items()))
    r = CliRunner().invoke(app, ["hardware", "list", "--catalog", str(path)])
    assert r.exit_code == 2 and "scope" in r.stderr and len(r.stderr.strip().splitlines()) == 1


# --- all-in power ---------------------------------------------------------------------------------------------------

def test_all_in_power_is_published_or_the_median_published_ratio():
    """SemiAnalysis AI Cloud TCO Model 'All-In (W)' (gpu-keys.ts @e41635bf): H100 1,370 W, B200 1,710, GB200 1,870;
    the default ratio is the median of the catalog's published all-in / board power."""
    published = [hw for hw in CATALOG.hardware if not hw.all_in_power_source.startswith("derived")]
    assert {hw.key: hw.all_in_power_w for hw in published if hw.key in ("h100-sxm", "b200", "gb200")} == \
        {"h100-sxm": 1370, "b200": 1710, "gb200": 1870}
    assert len(published) == 10 and all("SemiAnalysis" in hw.all_in_power_source for hw in published)
    assert ALL_IN_OVER_BOARD == round(statistics.median(hw.all_in_power_w / hw.power_w for hw in published), 2)
    assert HW("l4").all_in_power_w == pytest.approx(72 * ALL_IN_OVER_BOARD)


def test_energy_is_paid_on_all_in_power_and_both_powers_are_named():
    tco = gpu_hour_cost(HW("h100-sxm"), CostModel(method="tco"))
    assert tco.all_in_power_w == 1370 and tco.energy_usd_per_hour == pytest.approx(1.37 * 1.3 * 0.10)
    f = energy_fields(700.0, 1.3, 0.10, 1000.0, 500.0, 2.0, all_in_w=1370.0)
    assert float(f["joules_per_token"]) == pytest.approx(1.37) and float(f["joules_per_token_board"]) == pytest.approx(0.7)
    assert float(f["tok_s_per_mw"]) * 1370 == pytest.approx(float(f["tok_s_per_mw_board"]) * 700)


def test_facility_ratio_default_follows_from_its_source():
    """Cushman & Wakefield, Data Center Development Cost Guide 2025: 11.7 M USD per MW of critical load (average of
    19 US markets); at B200's all-in 1.71 kW over its server-share capital: 0.40."""
    b200 = HW("b200")
    assert CostModel().other_capital_ratio == pytest.approx(11.7 * b200.all_in_power_w / b200.purchase_usd, abs=0.005)


# --- rows for `prices list` / `prices show`, pricing as of a date ----------------------------------------------------

def test_list_rows_carry_current_prices_with_provenance():
    rows = {r["device"]: r for r in prices.list_rows(CATALOG.hardware, as_of="2026-12")}
    assert len(rows) == len(CATALOG.hardware)
    h100 = rows["h100-sxm"]
    assert h100["rental_usd_per_gpu_hour"] == 2.45 and h100["rental_date"] == "2025-03" and h100["rental_stale"]
    assert (h100["rental_tier"], h100["rental_kind"], h100["rental_scope"], h100["rental_source_class"]) == \
        ("neocloud", "on_demand", "server_share", "primary")
    assert h100["capital_quoted_scope"] == "chip" and h100["capital_overhead"] == 1.35 and h100["capital_scope"] == "server_share"
    assert h100["tco_usd_per_gpu_hour"] == 1.17 and h100["all_in_power_w"] == 1370 and h100["board_power_w"] == 700
    assert rows["b200"]["rental_stale"] is False  # packet.ai 2026-06 is within a year of 2026-12
    assert rows["gb300"]["capital_usd_per_gpu"] is None and rows["gb200"]["capital_source_class"] == "derived"
    json.dumps(list(rows.values()))  # plain data


def test_show_rows_are_every_point_with_its_provenance():
    rows = prices.show_rows(HW("b300"), as_of="2026-12")
    assert len(rows) == len(HW("b300").price_points)
    derived = [r for r in rows if r["derived"]]
    assert derived and all(r["derived_from"] and r["source_class"] == "derived" for r in derived)
    current = [r for r in rows if r["current"]]
    assert [(r["kind"], r["date"]) for r in current] == [("purchase", "2025-07"), ("rental", "2026-07")]
    purchase = next(r for r in rows if r["kind"] == "purchase")
    assert purchase["usd_per_gpu"] == pytest.approx(43_150.9) and purchase["usd_per_gpu_hour"] is None
    assert purchase["server_share_usd_per_gpu"] == pytest.approx(43_150.9 * 1.35) and purchase["stale"]  # 2025-07


def test_the_cost_model_prices_as_of_a_date_and_says_how():
    """h100-sxm neocloud on-demand: RunPod 3.99 (2024-07) and Lambda 2.99 (2024-09) -> 3.45 at 2024-08."""
    b = gpu_hour_cost(HW("h100-sxm"), CostModel(as_of="2024-08"))
    assert b.usd_per_gpu_hour == pytest.approx(3.99 * (2.99 / 3.99) ** 0.5) and b.as_of == "2024-08"
    assert "as of 2024-08" in b.price_note and "interpolated between 2024-07" in b.price_note
    assert cost_model({"as_of": "2024-08", "tier": "neocloud", "method": "tco-published"}).as_of == "2024-08"
    with pytest.raises(TokeconError, match="as-of"):
        cost_model({"as_of": "August"})
    with pytest.raises(TokeconError, match="--tier must be one of"):
        cost_model({"tier": "whale"})


def test_a_comparison_that_mixes_scopes_says_so():
    note = scope_note([HW("h100-sxm"), HW("gb200")], CostModel(method="tco"))
    assert note is not None and "h100-sxm from a hyperscaler chip price x 1.35 server overhead" in note
    assert "gb200 from a hyperscaler chip price x 1.53 rack-scale overhead" in note
    assert scope_note([HW("h100-sxm"), HW("b200")], CostModel(method="tco")) is None  # both chip ASPs x 1.35
    rentals = scope_note([HW("b200"), HW("mi300x")], CostModel())  # each price names its kind beside it
    assert "neocloud on-demand, neocloud reserved" in rentals and "--cost tco-published" in rentals
    from tokecon.commands.common import catalog_price_source

    assert catalog_price_source(HW("mi300x")).startswith("(catalog: neocloud reserved, ")
    assert scope_note([HW("b200"), HW("mi300x")], CostModel(method="tco-published")) is None


# --- InferenceMAX's conclusion --------------------------------------------------------------------------------------

def test_inferencemax_rack_wins_throughput_b200_wins_interactivity():
    """InferenceMAX v1 (SemiAnalysis, 2025-10-09), DeepSeek-R1 FP4 1k/1k at SemiAnalysis' TCO: a GB200 NVL72 rack is
    cheaper per Mtok at the throughput end, one 8xB200 node at high interactivity. tokecon at its own TCO: the rack's
    cheapest point 0.047 USD/Mtok against 0.049, and the curves cross near 114 tok/s per user, B200 cheaper above.
    Like with like: InferenceMAX charts its MTP runs as series of their own, so this compares the plain ones
    (``--speculative none``); frontier prints the crossing."""
    r = CliRunner().invoke(app, ["frontier", "-m", "deepseek-r1", "-g", "8xB200", "-g", "72xGB200", "--dtype", "fp4",
                                 "--cost", "tco", "--speculative", "none", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert any("8xb200 cheaper above" in n for n in json.loads(r.stdout)["notes"])
    curves: dict[str, list[tuple[float, float]]] = {}
    for row in json.loads(r.stdout)["rows"]:
        curves.setdefault(row["device"], []).append((row["tok_s_per_user"], row["usd_per_mtok"]))
    assert min(c for _, c in curves["72xgb200"]) < min(c for _, c in curves["8xb200"])
    cross = crossover(curves["8xb200"], curves["72xgb200"])
    assert cross is not None and cross.cheaper_above == "a" and 60 < cross.tok_s_per_user < 160


def test_mtp_takes_the_rack_past_200_tok_s_per_user():
    """Public DeepSeek-R1 runs on GB200 NVL72 with MTP pass 200 tok/s per user (issue 19); frontier explores the
    model's MTP module where the engine serves it (engines.toml ``speculative``), and without it stops near 166."""
    def fastest(*extra: str) -> float:
        r = CliRunner().invoke(app, ["frontier", "-m", "deepseek-r1", "-g", "72xGB200", "--dtype", "fp4", *extra, "-f", "json"])
        assert r.exit_code == 0, r.output
        return max(row["tok_s_per_user"] for row in json.loads(r.stdout)["rows"])

    assert fastest() > 200 > fastest("--speculative", "none")
    r = CliRunner().invoke(app, ["frontier", "-m", "deepseek-r1", "-g", "72xGB200", "--engine", "trtllm@0.9", "-f", "json"])
    assert r.exit_code == 0 and not any("MTP" in row["layout"] for row in json.loads(r.stdout)["rows"])  # 2024: no MTP
