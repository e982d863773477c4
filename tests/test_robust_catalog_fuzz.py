"""Issue #20 item 10: generated catalog values, valid-looking and broken (integers beyond a float,
negative and zero counts, NaN and infinities, "nan" strings, wrong types, empty strings, unicode
names, missing fields), written into a --catalog file and run through the CLI: every command ends
with exit 0, 1 or 2, never an internal error, and its JSON holds no negative number and no NaN."""

from __future__ import annotations

import json
import math
import os
import tomllib

import tomli_w
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tokecon.catalogs.catalog import HARDWARE_FIELDS, MODEL_FIELDS, builtin_paths
from tokecon.cli.main import app

runner = CliRunner()


def builtin_entry(kind: str, key: str) -> dict:
    with open(builtin_paths()[kind], "rb") as fh:
        return tomllib.load(fh)[key]


H100 = {k: v for k, v in builtin_entry("hardware", "h100-sxm").items() if k not in ("aliases", "price_points")}
LLAMA = {k: v for k, v in builtin_entry("models", "llama3-8b").items() if k != "aliases"}
NUMERIC_HW = [k for k, spec in HARDWARE_FIELDS.items() if float in spec.types or int in spec.types]
NUMERIC_MODEL = [k for k, spec in MODEL_FIELDS.items() if int in spec.types or float in spec.types]
MISSING = object()

broken = st.sampled_from([
    10**400, -(10**400), 10**300, 2**63, -1, 0, 0.0, -0.5, -1e-300, 1e-300, math.nan, math.inf, -math.inf,
    "nan", "inf", "", " ", "80", "日本語", True, False, [], [1, 2], {}, {"a": 1}, MISSING,
])
# plausible but odd magnitudes: a valid entry far from any real device
plausible = st.one_of(
    st.integers(1, 64),
    st.floats(1e-6, 1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from([1, 2, 3, 7, 128, 4096, 65536]),
)
names = st.text(alphabet=st.sampled_from(list("abcXYZ019-_.é日ß ")), min_size=1, max_size=12)


def mutate(base: dict, fields: list[str], draw, values) -> dict:
    entry = dict(base)
    for name in draw(st.lists(st.sampled_from(fields), max_size=4, unique=True)):
        value = draw(values)
        if value is MISSING:
            entry.pop(name, None)
        else:
            entry[name] = value
    return entry


@st.composite
def catalogs(draw):
    hw_values = st.one_of(broken, plausible) if draw(st.booleans()) else plausible
    model_values = st.one_of(broken, plausible) if draw(st.booleans()) else plausible
    hw = mutate(H100, NUMERIC_HW + ["name", "vendor", "scaleup_link"], draw, hw_values)
    if draw(st.booleans()):
        hw["efficiency"] = mutate(H100["efficiency"], ["compute", "memory_bw", "link", "collective_latency_us"], draw,
                                  st.one_of(broken, st.floats(0.0, 1.5, allow_nan=False)))
    if draw(st.booleans()):
        hw["name"] = draw(names)
    model = mutate(LLAMA, NUMERIC_MODEL + ["name", "weight_dtype"], draw, model_values)
    return draw(names).strip() or "dev", hw, draw(names).strip() or "mod", model


def numbers(value, path="$"):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from numbers(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from numbers(v, f"{path}[{i}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path, value


def check(r, args: list[str]) -> None:
    out = r.output
    assert r.exit_code in (0, 1, 2), (args, r.exit_code, out[-2000:], r.exception)
    assert "internal error" not in out and "Traceback" not in out, (args, out[-2000:])
    if r.exit_code == 2:
        assert r.stderr.count("\n") == 1, (args, r.stderr)
    if "json" in args and r.exit_code in (0, 1):
        doc = json.loads(r.stdout)
        for path, v in numbers(doc):
            assert not math.isnan(v), (args, path)
            assert v >= 0, (args, path, v)


# FUZZ_EXAMPLES=500 pytest tests/test_robust_catalog_fuzz.py --hypothesis-show-statistics: a longer hunt
@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 20)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(catalogs())
def test_generated_catalog_values_never_make_an_internal_error(tmp_path_factory, generated):
    hw_key, hw, model_key, model = generated
    try:
        text = tomli_w.dumps({"hardware": {hw_key: hw}, "models": {model_key: model}})
    except (TypeError, ValueError):  # a value TOML cannot hold (an empty dict in an array is fine; None is not)
        return
    path = tmp_path_factory.mktemp("fuzz") / "cat.toml"
    path.write_text(text)
    cat = ["--catalog", str(path)]
    for args in (
        ["hardware", "list", *cat],
        ["hardware", "show", hw_key, *cat],
        ["models", "list", *cat],
        ["decode", "-m", model_key, "-g", f"1x{hw_key}", "--format", "json", *cat],
        ["decode", "-m", "llama3-8b", "-g", f"2x{hw_key}", "-b", "1,8", "--format", "json", *cat],
    ):
        r = runner.invoke(app, args)
        event(f"{' '.join(args[:3])}: exit {r.exit_code}")
        check(r, args)
