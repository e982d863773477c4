"""Where two frontiers cross (tokecon.economics.crossover), on hand-made curves."""

from __future__ import annotations

import pytest

from tokecon.economics.crossover import crossover


def test_worked_number():
    # module docstring: a rises from 1.0 to 3.0 USD/Mtok between 10 and 50 tok/s per user, b stays at 2.0
    got = crossover([(10, 1.0), (50, 3.0)], [(10, 2.0), (50, 2.0)])
    assert got.tok_s_per_user == pytest.approx(30.0) and got.usd_per_mtok == pytest.approx(2.0)
    assert got.cheaper_above == "b"


def test_the_curves_are_read_where_both_exist_and_sorted():
    a = [(60, 9.0), (20, 1.0), (40, 2.0), (40, 5.0)]  # unsorted; the cheaper of two points at 40 counts
    b = [(30, 1.5), (50, 3.0)]  # overlap 30..50: a = 1.5, 2.0, 5.5 at 30, 40, 50 against b = 1.5, 2.25, 3.0
    got = crossover(a, b)
    assert got.tok_s_per_user == pytest.approx(40 + 0.25 * 10 / 2.75) and got.cheaper_above == "b"


def test_no_crossing_no_overlap_too_few_points():
    assert crossover([(10, 1.0), (50, 2.0)], [(10, 2.0), (50, 4.0)]) is None  # a cheaper throughout
    assert crossover([(10, 1.0), (20, 2.0)], [(30, 2.0), (40, 4.0)]) is None  # no common speeds
    assert crossover([(10, 1.0)], [(10, 2.0), (50, 4.0)]) is None
    assert crossover([(10, 1.0), (50, 2.0)], [(10, 1.0), (50, 2.0)]) is None  # equal curves never cross


def test_the_last_crossing_is_the_answer():
    """a is cheaper, then dearer, then cheaper again: above the last crossing (at 70) a stays cheaper."""
    a = [(10, 1.0), (50, 3.0), (90, 1.0)]
    b = [(10, 2.0), (90, 2.0)]
    got = crossover(a, b)
    assert got.tok_s_per_user == pytest.approx(70.0) and got.cheaper_above == "a"
