"""Tests for rdc_keras.spread: mean ± sample std over seeds, summaries and paired claims.

The golden numbers are worked out by hand (closed forms) or with numpy on the values written out
in the test, never from the module's own output: e.g. 1, 3, 8 have mean 4 and squared deviations
9 + 1 + 16 = 26, a sample variance 26 / 2 = 13 and a std sqrt(13).
"""

import math

import numpy as np
import pytest

from rdc_keras import spread


def test_mean_std_ignores_none_and_nan():
    mean, std, n = spread.mean_std([1.0, None, 3.0, float("nan"), 8.0])
    assert n == 3
    assert mean == pytest.approx(4.0, rel=1e-12)
    assert std == pytest.approx(math.sqrt(13.0), rel=1e-12)
    assert std == pytest.approx(np.std([1.0, 3.0, 8.0], ddof=1), rel=1e-12)


def test_mean_std_uses_the_sample_std_not_the_population_std():
    # 2 and 4: mean 3, squared deviations 1 + 1 = 2; ddof=1 gives sqrt(2), ddof=0 would give 1.
    mean, std, n = spread.mean_std([2, 4])
    assert (mean, n) == (3.0, 2)
    assert std == pytest.approx(math.sqrt(2.0), rel=1e-12)
    assert isinstance(mean, float) and isinstance(std, float)


def test_mean_std_of_numpy_nan_is_ignored_too():
    mean, std, n = spread.mean_std([np.float64("nan"), 0.5, np.float64(1.5)])
    assert (mean, n) == (1.0, 2)
    assert std == pytest.approx(math.sqrt(0.5), rel=1e-12)


def test_mean_std_of_one_value_has_no_std():
    assert spread.mean_std([None, 0.25, float("nan")]) == (0.25, None, 1)


def test_mean_std_of_no_values():
    assert spread.mean_std([]) == (None, None, 0)
    assert spread.mean_std([None, float("nan")]) == (None, None, 0)


def _rows():
    """Two models over seeds, listed seed by seed; model "b" has no w1 on seed 1, "c" one seed."""
    return [
        {"seed": 2, "model": "b", "rate": 1, "mse": 0.030, "w1": 0.7},
        {"seed": 2, "model": "a", "rate": 1, "mse": 0.020, "w1": 0.5},
        {"seed": 0, "model": "a", "rate": 1, "mse": 0.022, "w1": 0.4},
        {"seed": 0, "model": "b", "rate": 1, "mse": 0.034, "w1": 0.9},
        {"seed": 1, "model": "a", "rate": 1, "mse": 0.027, "w1": 0.6},
        {"seed": 1, "model": "b", "rate": 1, "mse": 0.032, "w1": None},
        {"seed": 0, "model": "c", "rate": 2, "mse": 0.050},  # no w1 key at all
    ]


def test_aggregate_groups_by_key_in_order_of_first_appearance():
    summary = spread.aggregate(_rows(), ("model", "rate"), ("mse", "w1"))
    assert [(row["model"], row["rate"]) for row in summary] == [("b", 1), ("a", 1), ("c", 2)]
    assert [row["n"] for row in summary] == [3, 3, 1]
    assert [row["seeds"] for row in summary] == [[0, 1, 2], [0, 1, 2], [0]]
    b, a, c = summary
    fields = {"mse", "mse_std", "mse_n", "w1", "w1_std", "w1_n"}
    assert set(a) == {"model", "rate", "n", "seeds"} | fields
    # a: MSE 0.020, 0.022, 0.027 -> mean 0.023; W1 0.5, 0.4, 0.6 -> 0.5 ± 0.1.
    assert a["mse"] == pytest.approx(0.023, rel=1e-12)
    assert a["mse_std"] == pytest.approx(np.std([0.020, 0.022, 0.027], ddof=1), rel=1e-12)
    assert a["mse_n"] == 3
    assert (a["w1"], a["w1_n"]) == (pytest.approx(0.5, rel=1e-12), 3)
    assert a["w1_std"] == pytest.approx(0.1, rel=1e-9)
    # b: MSE 0.030, 0.034, 0.032 -> 0.032 ± 0.002; W1 on seeds 2 and 0 only: 0.8 ± sqrt(0.02).
    assert b["mse"] == pytest.approx(0.032, rel=1e-12)
    assert b["mse_std"] == pytest.approx(0.002, rel=1e-9)
    assert b["w1_n"] == 2 and b["mse_n"] == 3
    assert b["w1"] == pytest.approx(0.8, rel=1e-12)
    assert b["w1_std"] == pytest.approx(math.sqrt(0.02), rel=1e-9)
    # c: one seed; its missing w1 is no value.
    assert (c["mse"], c["mse_std"], c["mse_n"]) == (0.050, None, 1)
    assert (c["w1"], c["w1_std"], c["w1_n"]) == (None, None, 0)


def test_aggregate_of_no_rows_is_empty():
    assert spread.aggregate([], ("model",), ("mse",)) == []


def test_aggregate_keeps_different_keys_apart():
    rows = [
        {"seed": 0, "family": "e2e", "lambda_c": 0.0, "mse": 1.0},
        {"seed": 0, "family": "e2e", "lambda_c": 0.04, "mse": 2.0},
        {"seed": 1, "family": "e2e", "lambda_c": 0.0, "mse": 3.0},
    ]
    summary = spread.aggregate(rows, ("family", "lambda_c"), ("mse",))
    assert [(row["lambda_c"], row["mse"], row["n"]) for row in summary] == [
        (0.0, 2.0, 2),
        (0.04, 2.0, 1),
    ]


def test_paired_positive_on_every_seed():
    claim = spread.paired("paper penalty", "%", {1: 4.0, 0: 2.0, 2: 9.0})
    assert claim["name"] == "paper penalty" and claim["unit"] == "%"
    assert claim["seeds"] == [0, 1, 2]
    assert claim["values"] == [2.0, 4.0, 9.0]  # in seed order
    assert claim["mean"] == pytest.approx(5.0, rel=1e-12)
    # squared deviations 9 + 1 + 16 = 26: sample std sqrt(13)
    assert claim["std"] == pytest.approx(math.sqrt(13.0), rel=1e-12)
    assert claim["n"] == 3
    assert claim["sign"] == 1
    assert claim["holds_on_every_seed"] is True


def test_paired_negative_on_every_seed():
    claim = spread.paired("difference", "percentage points", {0: -1.0, 1: -3.0})
    assert (claim["mean"], claim["sign"], claim["holds_on_every_seed"]) == (-2.0, -1, True)
    assert claim["std"] == pytest.approx(math.sqrt(2.0), rel=1e-12)


def test_paired_sign_change_does_not_hold():
    # The digits paper base: -4.8 and +7.3 % -> mean +1.25 %, but not on every seed.
    claim = spread.paired("paper penalty", "%", {0: -4.8, 1: 7.3})
    assert claim["mean"] == pytest.approx(1.25, rel=1e-12)
    assert claim["sign"] == 1
    assert claim["holds_on_every_seed"] is False


def test_paired_a_zero_value_breaks_consistency():
    claim = spread.paired("x", "%", {0: 0.0, 1: 2.0})
    assert claim["sign"] == 1 and claim["holds_on_every_seed"] is False


def test_paired_zero_mean_has_no_sign():
    claim = spread.paired("x", "%", {0: -1.0, 1: 1.0})
    assert (claim["mean"], claim["sign"], claim["holds_on_every_seed"]) == (0.0, 0, False)


def test_paired_one_seed_never_holds():
    claim = spread.paired("x", "%", {3: 5.0})
    assert (claim["seeds"], claim["values"], claim["n"]) == ([3], [5.0], 1)
    assert (claim["mean"], claim["std"], claim["sign"]) == (5.0, None, 1)
    assert claim["holds_on_every_seed"] is False


def test_paired_drops_seeds_without_a_value():
    claim = spread.paired("x", "%", {0: 1.0, 1: None, 2: 3.0})
    assert (claim["seeds"], claim["values"], claim["n"]) == ([0, 2], [1.0, 3.0], 2)
    assert claim["mean"] == pytest.approx(2.0, rel=1e-12)
    assert claim["holds_on_every_seed"] is True
    # With only one seed left, nothing holds.
    assert spread.paired("x", "%", {0: None, 1: 3.0})["holds_on_every_seed"] is False


def test_paired_of_no_values():
    claim = spread.paired("x", "%", {0: None, 1: None})
    assert (claim["seeds"], claim["values"], claim["n"]) == ([], [], 0)
    assert (claim["mean"], claim["std"], claim["sign"]) == (None, None, 0)
    assert claim["holds_on_every_seed"] is False


def test_mean_std_ignores_numpy_float32_nan():
    assert spread.mean_std([np.float32("nan"), 1.0, 3.0]) == (2.0, pytest.approx(2**0.5), 2)


def test_paired_drops_nan_values_like_none():
    claim = spread.paired("x", "%", {0: float("nan"), 1: 1.0, 2: 2.0})
    assert claim["seeds"] == [1, 2] and claim["values"] == [1.0, 2.0] and claim["n"] == 2
    assert claim["holds_on_every_seed"]
