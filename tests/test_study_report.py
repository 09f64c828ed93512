"""Tests for rdc_keras.study_report on hand-built model rows (no training, no TensorFlow).

The golden numbers below are worked out by hand from the rows: e.g. universal-paper at
lambda_c = 0 has MSE 0.022 against the E2E model's 0.020, a distortion penalty of
100 * 0.002 / 0.020 = +10 %. The classification study here is CONFIG with its rows `_rows`; the
perception study is PERCEPTION with its rows `_perception_rows`.
"""

import csv
import math
import subprocess
import sys
import types

import numpy as np
import pytest

from rdc_keras import study_report

# The main rate is (2, 3): 2 log2 3 = 3.1699... bits, shown as 3.17.
RATE_BITS = 2 * math.log2(3)
CONFIG = types.SimpleNamespace(
    name="demo",
    dataset="digits",
    rates=((2, 3), (1, 3)),
    e2e_lambda_c=(0.0, 0.04),
    universal_lambda_c=(0.0, 0.04),
    base_lambda_c=0.04,
    epochs=3,
    e2e_lambda_p=(0.0,),
    universal_lambda_p=(0.0,),
    base_lambda_p=0.0,
    schedule="joint",
    mixed_precision="float32",
    is_perception=False,
)


def _row(
    model,
    family,
    lambda_c,
    mse,
    ce,
    accuracy,
    rate=(2, 3),
    workdir=None,
    seconds=10.0,
    judge_fd=1.5,
):
    return {
        "model": model,
        "family": family,
        "latent_dim": rate[0],
        "num_levels": rate[1],
        "rate_bits": rate[0] * math.log2(rate[1]),
        "lambda_c": lambda_c,
        "lambda_p": 0.0,
        "base_lambda_c": 0.04 if family == "universal-paper" else None,
        "mse": mse,
        "psnr": 20.0,
        "ce_nats": ce,
        "accuracy": accuracy,
        "w1": None,
        "judge_fd": judge_fd,
        "train_seconds": seconds,
        "workdir": workdir or f"{family}/{model}",
        "base_lambda_p": 0.0 if family == "universal-paper" else None,
    }


def _rows():
    return [
        _row("e2e-d2-L3-c0", "e2e", 0.0, 0.020, 0.50, 0.80),
        _row("e2e-d2-L3-c0.04", "e2e", 0.04, 0.025, 0.30, 0.90),
        # Another rate at the same lambda_c: never the reference of a penalty.
        _row("e2e-d1-L3-c0", "e2e", 0.0, 0.040, 0.90, 0.60, rate=(1, 3)),
        # The multi-head base: two heads of one training (one workdir, one train time).
        _row("multihead-c0", "multihead-joint", 0.0, 0.019, 0.55, 0.79, workdir="mh", seconds=7.0),
        _row(
            "multihead-c0.04", "multihead-joint", 0.04, 0.024, 0.31, 0.88, workdir="mh", seconds=7.0
        ),
        _row("universal-paper-c0", "universal-paper", 0.0, 0.022, 0.52, 0.78),
        _row("universal-paper-c0.04", "universal-paper", 0.04, 0.030, 0.35, 0.86),
        _row("universal-multihead-c0", "universal-multihead", 0.0, 0.021, 0.51, 0.79),
        _row("universal-multihead-c0.04", "universal-multihead", 0.04, 0.0275, 0.33, 0.87),
        # Off the E2E grid: listed as a model, but no penalty.
        _row("universal-multihead-c0.01", "universal-multihead", 0.01, 0.030, 0.40, 0.85),
    ]


# (family, lambda_c, MSE E2E, MSE universal, penalty %), by hand from the rows above.
PENALTIES = [
    ("universal-paper", 0.0, 0.020, 0.022, 10.0),
    ("universal-paper", 0.04, 0.025, 0.030, 20.0),
    ("universal-multihead", 0.0, 0.020, 0.021, 5.0),
    ("universal-multihead", 0.04, 0.025, 0.0275, 10.0),
]


def _results(rows=None):
    rows = _rows() if rows is None else rows
    settings = {"seed": 7}
    return study_report.results(
        settings, ("paper", "multihead"), rows, CONFIG, {"accuracy": 0.9512}, 12.3
    )


def test_penalties_compare_universal_with_e2e_at_the_same_lambda_and_main_rate():
    penalties = study_report.penalties(_rows(), CONFIG)
    got = [(p["family"], p["lambda_c"], p["mse_e2e"], p["mse_universal"]) for p in penalties]
    assert got == [golden[:4] for golden in PENALTIES]
    for penalty, golden in zip(penalties, PENALTIES):
        assert penalty["distortion_penalty_percent"] == pytest.approx(golden[4], rel=1e-12)
    paper0 = penalties[0]
    assert (paper0["ce_e2e"], paper0["ce_universal"]) == (0.50, 0.52)
    assert (paper0["accuracy_e2e"], paper0["accuracy_universal"]) == (0.80, 0.78)
    assert paper0["lambda_p"] == 0.0
    assert (paper0["w1_e2e"], paper0["w1_universal"]) == (None, None)
    assert (paper0["judge_fd_e2e"], paper0["judge_fd_universal"]) == (1.5, 1.5)


def test_results_holds_rows_penalties_units_and_times():
    rows = _rows()
    results = _results(rows)
    assert results["models"] == rows
    assert results["penalties"] == study_report.penalties(rows, CONFIG)
    assert results["matched_tradeoff"] == study_report.matched_tradeoff(rows, CONFIG)
    assert "w1_judge_spread" not in results
    assert results["bases"] == ["paper", "multihead"]
    assert results["study"] == {"seed": 7}
    assert results["reference_classifier"] == {"accuracy": 0.9512}
    assert results["wall_seconds"] == 12.3
    # 8 trainings of 10 s and one multi-head training of 7 s that produced two rows.
    assert results["train_seconds_total"] == 87.0
    assert results["units"]["ce_nats"] == "nats"
    results["units"]["mse"] = "changed"
    assert study_report.UNITS["mse"] == "per-pixel mean on [0, 1]"


def test_csv_has_the_rows(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("an older table\n")
    rows = _rows()
    study_report.write_csv(path, rows)
    with open(path, newline="") as stream:
        read = list(csv.DictReader(stream))
    assert len(read) == len(rows)
    for csv_row, row in zip(read, rows):
        assert list(csv_row) == list(row)
        for key, value in row.items():
            if value is None:
                assert csv_row[key] == "", key
            elif isinstance(value, (int, float)):
                assert float(csv_row[key]) == value, key
            else:
                assert csv_row[key] == value, key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]  # no temporary left


def _lines(report: str) -> list[str]:
    return report.splitlines()


def test_render_states_the_settings_and_training():
    report = study_report.render(_results(), CONFIG, RATE_BITS)
    assert report.startswith("# RDC study `demo`\n")
    assert "Dataset `digits`; main rate d=2, L=3 (3.17 bits per image" in report
    assert "test accuracy on clean images 0.9512" in report
    assert "per-image dither seeds 7 + i" in report
    assert "## How the models were trained" in report
    assert "each λc in [0.0, 0.04] (λd = 1, λp = 0" in report
    assert "the E2E model at λc = 0.04 is frozen" in report
    assert "- **Universal, multi-head base**" in report
    assert "- Epochs per model: 3; seed 7." in report
    assert "## E2E vs universal at 3.17 bits" in report


def test_render_names_the_multihead_base_heads_when_they_are_not_the_universal_grid():
    line = "an encoder trained jointly with one head per λc"
    assert f"{line} (loss" in study_report.render(_results(), CONFIG, RATE_BITS)
    config = types.SimpleNamespace(**{**vars(CONFIG), "multihead_lambda_c": (0.0, 0.02, 0.04)})
    report = study_report.render(_results(), config, RATE_BITS)
    assert f"{line} in [0.0, 0.02, 0.04] (loss" in report


def _section(report: str, title: str) -> list[str]:
    """The lines of the report's section `## {title}...` up to the next `## ` heading."""
    return report.split(f"\n## {title}", 1)[1].split("\n## ", 1)[0].splitlines()


def test_render_penalty_table_and_summary_lines():
    report = study_report.render(_results(), CONFIG, RATE_BITS)
    lines = _lines(report)
    section = _section(report, "E2E vs universal")
    assert section[2] == (
        "| family | λc | MSE E2E | MSE universal | distortion penalty | CE E2E | CE universal "
        "| acc E2E | acc universal | W1 E2E | W1 universal | judge FD E2E | judge FD universal |"
    )
    table = [line for line in section if line.startswith("| universal-")]
    # W1 was not estimated (—); judge FD 1.5 for every model.
    new = " | — | — | 1.5 | 1.5 |"
    assert table == [
        "| universal-paper | 0 | 0.02000 | 0.02200 | +10.0% | 0.500 | 0.520 | 0.800 | 0.780" + new,
        "| universal-paper | 0.04 | 0.02500 | 0.03000 | +20.0% | 0.300 | 0.350 | 0.900 | 0.860"
        + new,
        "| universal-multihead | 0 | 0.02000 | 0.02100 | +5.0% | 0.500 | 0.510 | 0.800 | 0.790"
        + new,
        "| universal-multihead | 0.04 | 0.02500 | 0.02750 | +10.0% | 0.300 | 0.330 | 0.900 "
        "| 0.870" + new,
    ]
    # Mean penalty (10 + 20) / 2 = 15 % and (5 + 10) / 2 = 7.5 %; lowest MSE against the lowest
    # E2E MSE at the main rate, 0.020 (the other rate's 0.040 and the multi-head base's 0.019 do
    # not count): 0.022 -> +10 %, 0.021 -> +5 %.
    assert (
        "- universal-paper: mean distortion penalty +15.0% at matched λc; lowest MSE 0.02200 "
        "vs lowest E2E MSE 0.02000 (+10.0%)."
    ) in lines
    assert (
        "- universal-multihead: mean distortion penalty +7.5% at matched λc; lowest MSE "
        "0.02100 vs lowest E2E MSE 0.02000 (+5.0%)."
    ) in lines


def test_render_lists_every_model_times_and_figures():
    results = _results()
    report = study_report.render(results, CONFIG, RATE_BITS)
    lines = _lines(report)
    for row in results["models"]:
        assert any(line.startswith(f"| {row['model']} | {row['family']} |") for line in lines)
    header = "| model | family | bits | λc | MSE | PSNR dB | CE nats | accuracy | W1 | judge FD |"
    assert header + " train s |" in lines  # no λp column in a classification study
    assert (
        "| e2e-d1-L3-c0 | e2e | 1.58 | 0 | 0.04000 | 20.00 | 0.900 | 0.600 | — | 1.5 | 10 |"
        in lines
    )
    assert "| universal-multihead-c0.01 | universal-multihead | 3.17 | 0.01 |" in report
    assert "Study wall time: 12 s (this invocation;" in report
    assert "Training time of all models: 87 s." in report
    assert [line for line in lines if line.startswith("![")] == [
        "![tradeoff](figures/tradeoff.png)",
        "![accuracy](figures/accuracy.png)",
        "![rates](figures/rates.png)",
        "![e2e](figures/reconstructions-e2e.png)",
        "![universal-paper](figures/reconstructions-universal-paper.png)",
        "![universal-multihead](figures/reconstructions-universal-multihead.png)",
    ]


def test_render_describes_only_the_families_trained():
    rows = [row for row in _rows() if "multihead" not in row["family"]]
    config = types.SimpleNamespace(**{**vars(CONFIG), "rates": ((2, 3),), "epochs": None})
    report = study_report.render(_results(rows), config, RATE_BITS)
    assert "paper base" in report
    assert "multi-head base" not in report
    assert "universal-multihead" not in report
    assert "rates.png" not in report  # one rate: no rates figure
    assert "- Epochs per model: preset default; seed 7." in report


def test_importing_the_report_module_does_not_import_tensorflow():
    code = "import sys, rdc_keras.study_report; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------------------------
# Penalty at matched tradeoff (classification: CE axis)

# The E2E front of _rows at the main rate on (CE, MSE): (0.30, 0.025) and (0.50, 0.020); the
# other rate's E2E model (0.90, 0.040) is not on it. By hand:
#   universal-paper-c0.04 at CE 0.35: 0.025 - 0.005 * 0.05 / 0.20 = 0.02375,
#     penalty 100 * (0.030 - 0.02375) / 0.02375 = +26.3158 %;
#   universal-multihead-c0.04 at CE 0.33: 0.025 - 0.005 * 0.03 / 0.20 = 0.02425,
#     penalty 100 * 0.00325 / 0.02425 = +13.4021 %;
#   universal-multihead-c0.01 at CE 0.40: 0.0225, penalty 100 * 0.0075 / 0.0225 = +33.3333 %;
#   the lambda_c = 0 heads (CE 0.52 and 0.51) are above the front's CE range: no penalty.
MATCHED_CE = [
    ("universal-paper-c0", 0.52, 0.022, None, None),
    ("universal-paper-c0.04", 0.35, 0.030, 0.02375, 100 * 0.00625 / 0.02375),
    ("universal-multihead-c0", 0.51, 0.021, None, None),
    ("universal-multihead-c0.04", 0.33, 0.0275, 0.02425, 100 * 0.00325 / 0.02425),
    ("universal-multihead-c0.01", 0.40, 0.030, 0.0225, 100 * 0.0075 / 0.0225),
]


def _check_entries(entries, golden):
    assert [entry["model"] for entry in entries] == [g[0] for g in golden]
    for entry, (model, value, mse, front, penalty) in zip(entries, golden):
        assert entry["value"] == pytest.approx(value, rel=1e-12), model
        assert entry["mse_universal"] == mse, model
        if front is None:
            assert entry["mse_front"] is None and entry["penalty_percent"] is None, model
        else:
            assert entry["mse_front"] == pytest.approx(front, rel=1e-9), model
            assert entry["penalty_percent"] == pytest.approx(penalty, rel=1e-9), model


def test_matched_tradeoff_of_a_classification_study_is_at_the_same_ce():
    entries = study_report.matched_tradeoff(_rows(), CONFIG)
    assert {entry["axis"] for entry in entries} == {"ce_nats"}
    _check_entries(entries, MATCHED_CE)
    paper = entries[1]
    assert (paper["family"], paper["lambda_c"], paper["lambda_p"]) == ("universal-paper", 0.04, 0)
    assert set(paper) == {
        "family",
        "model",
        "lambda_c",
        "lambda_p",
        "axis",
        "value",
        "mse_universal",
        "mse_front",
        "penalty_percent",
    }


def test_matched_tradeoff_drops_dominated_e2e_points_and_never_extrapolates():
    # E2E (CE, MSE): C = (0.5, 0.035) is dominated by B = (0.4, 0.03); the front is A, B, D.
    rows = [
        _row("A", "e2e", 0.0, 0.05, 0.2, 0.5),
        _row("B", "e2e", 0.01, 0.03, 0.4, 0.7),
        _row("C", "e2e", 0.02, 0.035, 0.5, 0.7),
        _row("D", "e2e", 0.04, 0.02, 0.8, 0.6),
        # Another rate: it would extend the front to CE 0.9, but only the main rate counts.
        _row("E", "e2e", 0.0, 0.01, 0.9, 0.5, rate=(1, 3)),
        # Between B and D: 0.03 - 0.01 * 0.05 / 0.4 = 0.02875 (with C kept it would be
        # between B and C: 0.03 + 0.005 * 0.5 = 0.0325).
        _row("u-between", "universal-paper", 0.0, 0.0299, 0.45, 0.7),
        _row("u-below", "universal-paper", 0.01, 0.03, 0.1, 0.7),
        _row("u-above", "universal-paper", 0.02, 0.03, 0.9, 0.7),
        _row("u-at-end", "universal-paper", 0.04, 0.021, 0.8, 0.7),
        _row("u-at-a", "universal-multihead", 0.04, 0.055, 0.2, 0.7),
    ]
    entries = study_report.matched_tradeoff(rows, CONFIG)
    _check_entries(
        entries,
        [
            ("u-between", 0.45, 0.0299, 0.02875, 100 * (0.0299 - 0.02875) / 0.02875),
            ("u-below", 0.1, 0.03, None, None),
            ("u-above", 0.9, 0.03, None, None),
            ("u-at-end", 0.8, 0.021, 0.02, 5.0),
            ("u-at-a", 0.2, 0.055, 0.05, 10.0),
        ],
    )
    points = [(row["ce_nats"], row["mse"]) for row in rows if row["model"] in "ABCD"]
    assert study_report.pareto_front(points) == [(0.2, 0.05), (0.4, 0.03), (0.8, 0.02)]
    # Repeats are one point, a point equal in value but worse in MSE is dominated.
    assert study_report.pareto_front([(1.0, 2.0), (1.0, 2.0), (1.0, 3.0)]) == [(1.0, 2.0)]


# ------------------------------------------------------------------------------------------------
# A perception study: E2E over lambda_p at lambda_c = 0, universal heads on the lambda_p = 0.01
# encoder over the same lambda_p grid.

PERCEPTION = types.SimpleNamespace(
    **{
        **vars(CONFIG),
        "name": "rdp",
        "rates": ((2, 3),),
        "e2e_lambda_c": (0.0,),
        "universal_lambda_c": (0.0,),
        "base_lambda_c": 0.0,
        "e2e_lambda_p": (0.0, 0.005, 0.01),
        "universal_lambda_p": (0.0, 0.005, 0.01, 0.02),
        "base_lambda_p": 0.01,
        "schedule": "alternate",
        "is_perception": True,
    }
)


def _prow(model, family, lambda_p, mse, w1, judge_fd, ce=0.5, accuracy=0.8):
    row = _row(model, family, 0.0, mse, ce, accuracy, judge_fd=judge_fd)
    row.update(lambda_p=lambda_p, w1=w1)
    if family == "universal-paper":
        row.update(base_lambda_c=0.0, base_lambda_p=0.01)
    return row


def _perception_rows():
    return [
        _prow("e2e-p0", "e2e", 0.0, 0.030, 0.9, 12.0),
        _prow("e2e-p0.005", "e2e", 0.005, 0.034, 0.5, 6.0),
        _prow("e2e-p0.01", "e2e", 0.01, 0.040, 0.2, 3.0),
        _prow("paper-p0", "universal-paper", 0.0, 0.0328, 0.7, 8.0),
        _prow("paper-p0.005", "universal-paper", 0.005, 0.0369, 0.4, 5.0),
        _prow("paper-p0.01", "universal-paper", 0.01, 0.041, 0.25, 2.0),
        # Right lambda_c, a lambda_p not on the E2E grid: no matched-lambda penalty.
        _prow("paper-p0.02", "universal-paper", 0.02, 0.045, 0.1, 1.0),
        # W1 not estimated for this one: only its judge FD is matched.
        _prow("multihead-p0.005", "universal-multihead", 0.005, 0.035, None, 6.0),
    ]


# W1 front (0.2, 0.040), (0.5, 0.034), (0.9, 0.030); judge FD front (3, 0.040), (6, 0.034),
# (12, 0.030). By hand:
#   paper-p0: W1 0.7 -> 0.034 - 0.004 * 0.2 / 0.4 = 0.032, +2.5 %;
#             FD 8 -> 0.034 - 0.004 * 2 / 6 = 0.0326667, 100 * (0.0328 / 0.0326667 - 1) %;
#   paper-p0.005: W1 0.4 -> 0.040 - 0.006 * 0.2 / 0.3 = 0.036, +2.5 %; FD 5 -> 0.036, +2.5 %;
#   paper-p0.01: W1 0.25 -> 0.040 - 0.006 * 0.05 / 0.3 = 0.039, 100 * 0.002 / 0.039 %;
#                FD 2 below the front: none;
#   paper-p0.02: W1 0.1 and FD 1 below the front: none;
#   multihead-p0.005: FD 6 -> 0.034, 100 * 0.001 / 0.034 %.
FD_P0 = 0.034 - 0.004 * 2 / 6
MATCHED_W1 = [
    ("paper-p0", 0.7, 0.0328, 0.032, 2.5),
    ("paper-p0.005", 0.4, 0.0369, 0.036, 2.5),
    ("paper-p0.01", 0.25, 0.041, 0.039, 100 * 0.002 / 0.039),
    ("paper-p0.02", 0.1, 0.045, None, None),
]
MATCHED_FD = [
    ("paper-p0", 8.0, 0.0328, FD_P0, 100 * (0.0328 - FD_P0) / FD_P0),
    ("paper-p0.005", 5.0, 0.0369, 0.036, 2.5),
    ("paper-p0.01", 2.0, 0.041, None, None),
    ("paper-p0.02", 1.0, 0.045, None, None),
    ("multihead-p0.005", 6.0, 0.035, 0.034, 100 * 0.001 / 0.034),
]


def test_matched_tradeoff_of_a_perception_study_is_at_the_same_w1_and_judge_fd():
    entries = study_report.matched_tradeoff(_perception_rows(), PERCEPTION)
    assert {entry["axis"] for entry in entries} == {"w1", "judge_fd"}  # no CE axis
    _check_entries([e for e in entries if e["axis"] == "w1"], MATCHED_W1)
    _check_entries([e for e in entries if e["axis"] == "judge_fd"], MATCHED_FD)
    # Row order, then axis order.
    assert [(e["model"], e["axis"]) for e in entries[:3]] == [
        ("paper-p0", "w1"),
        ("paper-p0", "judge_fd"),
        ("paper-p0.005", "w1"),
    ]
    assert [e["lambda_p"] for e in entries if e["axis"] == "w1"] == [0.0, 0.005, 0.01, 0.02]


def test_matched_tradeoff_skips_an_axis_no_e2e_model_has():
    rows = _perception_rows()
    for row in rows:
        if row["family"] == "e2e":
            row["w1"] = None
    entries = study_report.matched_tradeoff(rows, PERCEPTION)
    assert {entry["axis"] for entry in entries} == {"judge_fd"}
    _check_entries(entries, MATCHED_FD)


def test_penalties_match_lambda_c_and_lambda_p():
    penalties = study_report.penalties(_perception_rows(), PERCEPTION)
    # paper-p0.02 has the E2E grid's lambda_c but not its lambda_p: no entry for it.
    got = [(p["family"], p["lambda_c"], p["lambda_p"], p["mse_e2e"]) for p in penalties]
    assert got == [
        ("universal-paper", 0.0, 0.0, 0.030),
        ("universal-paper", 0.0, 0.005, 0.034),
        ("universal-paper", 0.0, 0.01, 0.040),
        ("universal-multihead", 0.0, 0.005, 0.034),
    ]
    golden = [100 * 0.0028 / 0.030, 100 * 0.0029 / 0.034, 100 * 0.001 / 0.040, 100 * 0.001 / 0.034]
    for penalty, expected in zip(penalties, golden):
        assert penalty["distortion_penalty_percent"] == pytest.approx(expected, rel=1e-9)
    assert (penalties[1]["w1_e2e"], penalties[1]["w1_universal"]) == (0.5, 0.4)
    assert (penalties[1]["judge_fd_e2e"], penalties[1]["judge_fd_universal"]) == (6.0, 5.0)
    assert penalties[3]["w1_universal"] is None


SPREAD = {"model": "paper-p0.01", "seeds": [0, 1, 2], "values": [0.25, 0.27, 0.23]}


def _perception_results(spread=True):
    extra = {"w1_judge_spread": {**SPREAD, "mean": 0.25, "std": 0.0163}} if spread else {}
    return study_report.results(
        {"seed": 7},
        ("paper", "multihead"),
        _perception_rows(),
        PERCEPTION,
        {"accuracy": 0.9512},
        12.3,
        **extra,
    )


def test_render_of_a_perception_study():
    results = _perception_results()
    assert results["w1_judge_spread"]["model"] == "paper-p0.01"
    report = study_report.render(results, PERCEPTION, RATE_BITS)
    lines = _lines(report)
    # How the models were trained: both grids name lambda_p, the base names its point.
    assert "each λc in [0.0] and each λp in [0.0, 0.005, 0.01] (λd = 1" in report
    assert "the E2E model at λc = 0, λp = 0.01 is frozen" in report
    assert "each λc in [0.0] and each λp in [0.0, 0.005, 0.01, 0.02]." in report
    assert (
        "- Each paper-base head's critic was initialised from the base model's critic, as in "
        "the reference code"
    ) in report
    assert "so each multi-head-base head with λp > 0 starts a fresh critic" in report
    assert "- Training schedule `alternate`; precision `float32`." in lines
    assert "held-out post-hoc WGAN-GP critic" in report
    assert "are not on one scale" in report
    # The matched-lambda table: lambda_p, W1 and judge FD columns.
    section = _section(report, "E2E vs universal")
    assert section[2].startswith("| family | λc | λp | MSE E2E | MSE universal |")
    assert section[2].endswith("| W1 E2E | W1 universal | judge FD E2E | judge FD universal |")
    assert (
        "| universal-paper | 0 | 0.005 | 0.03400 | 0.03690 | +8.5% | 0.500 | 0.500 | 0.800 "
        "| 0.800 | 0.5000 | 0.4000 | 6 | 5 |"
    ) in section
    assert "| universal-multihead | 0 | 0.005 | 0.03400 | 0.03500 | +2.9% |" in report
    assert not any(line.startswith("| universal-paper | 0 | 0.02 |") for line in section)
    assert "mean distortion penalty" in report and "at matched λc, λp;" in report
    # The matched-tradeoff tables, one per realism axis.
    matched = _section(report, "Penalty at matched tradeoff")
    assert "matched λ" in matched[2] and "matched tradeoff" in matched[2]
    assert "the same realism (W1, judge FD)" in matched[2]
    w1 = matched[matched.index("### At matched W1") :]
    assert w1[2] == (
        "| family | λc | λp | W1 | MSE universal | MSE E2E front at that W1 | penalty |"
    )
    assert w1[4:8] == [
        "| universal-paper | 0 | 0 | 0.7000 | 0.03280 | 0.03200 | +2.5% |",
        "| universal-paper | 0 | 0.005 | 0.4000 | 0.03690 | 0.03600 | +2.5% |",
        "| universal-paper | 0 | 0.01 | 0.2500 | 0.04100 | 0.03900 | +5.1% |",
        "| universal-paper | 0 | 0.02 | 0.1000 | 0.04500 | — | — |",
    ]
    # (2.5 + 2.5 + 5.128) / 3 = +3.4 %
    assert (
        "- universal-paper: mean penalty +3.4% at matched W1 (3 of 4 models inside the E2E "
        "front's range)."
    ) in matched
    fd = matched[matched.index("### At matched judge FD") :]
    assert "| universal-paper | 0 | 0 | 8 | 0.03280 | 0.03267 | +0.4% |" in fd
    assert "| universal-multihead | 0 | 0.005 | 6 | 0.03500 | 0.03400 | +2.9% |" in fd
    assert "### At matched CE" not in report
    # Every model: lambda_p, W1, judge FD.
    assert (
        "| model | family | bits | λc | λp | MSE | PSNR dB | CE nats | accuracy | W1 | judge FD "
        "| train s |"
    ) in lines
    assert (
        "| multihead-p0.005 | universal-multihead | 3.17 | 0 | 0.005 | 0.03500 | 20.00 | 0.500 "
        "| 0.800 | — | 6 | 10 |"
    ) in lines
    assert (
        "Spread of the W1 judge: `paper-p0.01` scored by 3 critics with seeds [0, 1, 2]: "
        "0.2500, 0.2700, 0.2300 (mean 0.2500, std 0.0163)."
    ) in lines
    assert [line for line in lines if line.startswith("![")] == [
        "![tradeoff](figures/tradeoff.png)",
        "![perception](figures/perception.png)",
        "![accuracy](figures/accuracy.png)",
        "![e2e](figures/reconstructions-e2e.png)",
        "![universal-paper](figures/reconstructions-universal-paper.png)",
        "![universal-multihead](figures/reconstructions-universal-multihead.png)",
    ]


def test_render_of_a_classification_study_has_the_ce_table_and_no_perception_lines():
    report = study_report.render(_results(), CONFIG, RATE_BITS)
    matched = _section(report, "Penalty at matched tradeoff")
    assert "the same CE" in matched[2]
    ce = matched[matched.index("### At matched CE") :]
    assert ce[2] == (
        "| family | λc | CE nats | MSE universal | MSE E2E front at that CE | penalty |"
    )
    assert ce[4:9] == [
        "| universal-paper | 0 | 0.520 | 0.02200 | — | — |",
        "| universal-paper | 0.04 | 0.350 | 0.03000 | 0.02375 | +26.3% |",
        "| universal-multihead | 0 | 0.510 | 0.02100 | — | — |",
        "| universal-multihead | 0.04 | 0.330 | 0.02750 | 0.02425 | +13.4% |",
        "| universal-multihead | 0.01 | 0.400 | 0.03000 | 0.02250 | +33.3% |",
    ]
    assert "### At matched W1" not in report
    assert "critic was initialised" not in report
    assert "Training schedule" not in report
    assert "Spread of the W1 judge" not in report
    assert "λp" not in report.split("## How the models were trained")[1].replace("λp = 0", "")


def test_render_computes_matched_tradeoff_for_results_written_before_it():
    results = _results()
    older = {key: value for key, value in results.items() if key != "matched_tradeoff"}
    assert study_report.render(older, CONFIG, RATE_BITS) == study_report.render(
        results, CONFIG, RATE_BITS
    )
    # Only the families of the models are shown (a results dict cut down to the paper base).
    results["models"] = [row for row in results["models"] if "multihead" not in row["family"]]
    results["penalties"] = [p for p in results["penalties"] if "multihead" not in p["family"]]
    assert "universal-multihead" not in study_report.render(results, CONFIG, RATE_BITS)


# ------------------------------------------------------------------------------------------------
# A study over several seeds: the rows of `_rows` once per seed, a few MSEs (and one CE) moved by
# the seed. By hand, the matched-λ penalties 100 * (MSE universal - MSE E2E) / MSE E2E per seed,
# in the order of PENALTIES (paper c0, paper c0.04, multi-head c0, multi-head c0.04):
#   seed 0: as PENALTIES: +10, +20, +5, +10;
#   seed 1: paper c0 0.024 vs 0.020 -> +20; multi-head c0 0.0205 vs 0.020 -> +2.5;
#   seed 2: E2E c0 0.021; paper c0 0.0189 -> -10; multi-head c0 0.0231 -> +10.
SEED_MSE = {
    0: {},
    1: {"universal-paper-c0": 0.024, "universal-multihead-c0": 0.0205},
    2: {"e2e-d2-L3-c0": 0.021, "universal-paper-c0": 0.0189, "universal-multihead-c0": 0.0231},
}
# Seed 1's paper c0 head has CE 0.45, inside the E2E front's CE range (0.30 ... 0.50), so it has a
# matched-CE penalty on that seed only.
SEED_CE = {1: {"universal-paper-c0": 0.45}}
PENALTIES_BY_SEED = {0: [10.0, 20.0, 5.0, 10.0], 1: [20.0, 20.0, 2.5, 10.0], 2: [-10, 20, 10, 10]}


def _seed_rows(seed):
    """`_rows` as trained with `seed` (a further seed's directories under seed-<S>/)."""
    rows = []
    for row in _rows():
        row = {"seed": seed, **row}
        row["mse"] = SEED_MSE[seed].get(row["model"], row["mse"])
        row["ce_nats"] = SEED_CE.get(seed, {}).get(row["model"], row["ce_nats"])
        if seed != 0:
            row["workdir"] = f"seed-{seed}/{row['workdir']}"
        rows.append(row)
    return rows


def _seeds_results(seeds=(0, 1, 2)):
    rows = [row for seed in seeds for row in _seed_rows(seed)]
    return study_report.results(
        {"seed": seeds[0]},
        ("paper", "multihead"),
        rows,
        CONFIG,
        {"accuracy": 0.9512},
        12.3,
        seeds=seeds,
    )


def _by_model(rows):
    return {row["model"]: row for row in rows}


def test_results_over_seeds_has_the_penalties_of_each_seed():
    results = _seeds_results()
    assert results["seeds"] == [0, 1, 2]
    assert all("seed" in row for row in results["models"]) and len(results["models"]) == 30
    penalties = results["penalties"]
    assert [p["seed"] for p in penalties] == [0] * 4 + [1] * 4 + [2] * 4
    for seed in (0, 1, 2):
        mine = [p for p in penalties if p["seed"] == seed]
        models = _by_model(_seed_rows(seed))
        got = [(p["family"], p["lambda_c"]) for p in mine]
        assert got == [golden[:2] for golden in PENALTIES]
        for penalty, golden in zip(mine, PENALTIES_BY_SEED[seed]):
            family, c = penalty["family"], penalty["lambda_c"]
            e2e = models[f"e2e-d2-L3-c{c:g}"]["mse"]
            universal = models[f"{family}-c{c:g}"]["mse"]
            assert (penalty["mse_e2e"], penalty["mse_universal"]) == (e2e, universal)
            by_hand = 100 * (universal - e2e) / e2e
            assert penalty["distortion_penalty_percent"] == pytest.approx(by_hand, rel=1e-12)
            assert penalty["distortion_penalty_percent"] == pytest.approx(golden, rel=1e-9)
    # Matched tradeoff per seed too: seed 1's paper c0 head is inside the front there only,
    # at CE 0.45 -> 0.025 - 0.005 * 0.15 / 0.20 = 0.02125.
    paper0 = [m for m in results["matched_tradeoff"] if m["model"] == "universal-paper-c0"]
    assert [(m["seed"], m["mse_front"]) for m in paper0] == [
        (0, None),
        (1, pytest.approx(0.02125, rel=1e-9)),
        (2, None),
    ]
    # Every training counted once: 87 s per seed (see test_results_holds_rows...), 3 seeds.
    assert results["train_seconds_total"] == 261.0


def test_results_summary_models_are_mean_and_std_over_seeds():
    rows = [row for seed in (0, 1, 2) for row in _seed_rows(seed)]
    summary = _seeds_results()["summary"]
    assert set(summary) == {"models", "penalties", "matched_tradeoff", "findings"}
    models = summary["models"]
    assert [row["model"] for row in models] == [row["model"] for row in _rows()]
    for entry in models:
        assert (entry["n"], entry["seeds"]) == (3, [0, 1, 2])
        for field in ("mse", "ce_nats", "accuracy"):
            values = [row[field] for row in rows if row["model"] == entry["model"]]
            assert entry[field] == pytest.approx(np.mean(values), rel=1e-12), entry["model"]
            assert entry[f"{field}_std"] == pytest.approx(np.std(values, ddof=1), abs=1e-15)
            assert entry[f"{field}_n"] == 3
        assert (entry["w1"], entry["w1_std"], entry["w1_n"]) == (None, None, 0)
    paper0 = _by_model(models)["universal-paper-c0"]
    # MSE 0.022, 0.024, 0.0189: mean 0.0216333; CE 0.52, 0.45, 0.52: std 0.07 / sqrt(3).
    assert paper0["mse"] == pytest.approx(0.0649 / 3, rel=1e-12)
    assert paper0["ce_nats_std"] == pytest.approx(0.07 / math.sqrt(3), rel=1e-9)
    assert paper0["judge_fd_std"] == 0.0
    assert [paper0[key] for key in ("family", "lambda_c", "latent_dim")] == [
        "universal-paper",
        0,
        2,
    ]


def test_results_summary_penalties_are_over_each_seeds_penalty():
    summary = _seeds_results()["summary"]
    got = [(p["family"], p["lambda_c"], p["n"]) for p in summary["penalties"]]
    assert got == [(family, c, 3) for family, c, *_ in PENALTIES]
    for index, entry in enumerate(summary["penalties"]):
        values = [PENALTIES_BY_SEED[seed][index] for seed in (0, 1, 2)]
        assert entry["distortion_penalty_percent"] == pytest.approx(np.mean(values), rel=1e-9)
        std = np.std(values, ddof=1)
        assert entry["distortion_penalty_percent_std"] == pytest.approx(std, rel=1e-9)
    paper0 = summary["penalties"][0]
    assert paper0["mse_e2e"] == pytest.approx((0.020 + 0.020 + 0.021) / 3, rel=1e-12)
    # The matched-CE penalty of paper c0: on seed 1 only.
    matched = [m for m in summary["matched_tradeoff"] if m["model"] == "universal-paper-c0"]
    assert len(matched) == 1
    assert (matched[0]["penalty_percent_n"], matched[0]["value_n"]) == (1, 3)
    assert matched[0]["penalty_percent"] == pytest.approx(100 * 0.00275 / 0.02125, rel=1e-9)
    assert matched[0]["penalty_percent_std"] is None


# Seed 2's E2E front on (CE, MSE): (0.30, 0.025), (0.50, 0.021); by hand:
#   paper c0.04 at CE 0.35: 0.025 - 0.004 * 0.05 / 0.2 = 0.024 -> +25 %;
#   multi-head c0.04 at 0.33: 0.0244 -> 100 * 0.0031 / 0.0244; c0.01 at 0.40: 0.023 -> 100 * 0.007
#   / 0.023. Seeds 0 and 1 have the front of MATCHED_CE; seed 1 adds paper c0 (+12.94 %).
MULTIHEAD_CE_2 = (100 * 0.0031 / 0.0244 + 100 * 0.007 / 0.023) / 2
MULTIHEAD_CE_01 = (100 * 0.00325 / 0.02425 + 100 * 0.0075 / 0.0225) / 2
# (name, per-seed values 0, 1, 2, holds on every seed)
FINDINGS = [
    ("universal-paper: mean distortion penalty at matched λ", [15.0, 20.0, 5.0], True),
    # The paper base's lowest MSE 0.022, 0.024, 0.0189 against E2E's 0.020, 0.020, 0.021.
    ("universal-paper: lowest MSE vs the lowest E2E MSE", [10.0, 20.0, -10.0], False),
    (
        "universal-paper: mean penalty at matched CE",
        [100 * 0.00625 / 0.02375, (100 * 0.00275 / 0.02125 + 100 * 0.00625 / 0.02375) / 2, 25.0],
        True,
    ),
    ("universal-multihead: mean distortion penalty at matched λ", [7.5, 6.25, 10.0], True),
    # The multi-head base's lowest MSE 0.021, 0.0205, 0.0231.
    ("universal-multihead: lowest MSE vs the lowest E2E MSE", [5.0, 2.5, 10.0], True),
    (
        "universal-multihead: mean penalty at matched CE",
        [MULTIHEAD_CE_01, MULTIHEAD_CE_01, MULTIHEAD_CE_2],
        True,
    ),
    (
        "universal-multihead vs universal-paper: lowest MSE",
        [100 * (0.021 - 0.022) / 0.022, 100 * (0.0205 - 0.024) / 0.024, 100 * 0.0042 / 0.0189],
        False,
    ),
    (
        "universal-multihead minus universal-paper: mean distortion penalty at matched λ",
        [7.5 - 15.0, 6.25 - 20.0, 10.0 - 5.0],
        False,
    ),
]


def test_findings_are_paired_per_seed_values():
    found = _seeds_results()["summary"]["findings"]
    assert [f["name"] for f in found] == [name for name, _, _ in FINDINGS]
    for finding, (name, values, holds) in zip(found, FINDINGS):
        assert finding["seeds"] == [0, 1, 2], name
        assert finding["values"] == pytest.approx(values, rel=1e-9), name
        assert finding["mean"] == pytest.approx(np.mean(values), rel=1e-9), name
        assert finding["std"] == pytest.approx(np.std(values, ddof=1), rel=1e-9), name
        assert finding["holds_on_every_seed"] is holds, name
        assert finding["sign"] == (1 if np.mean(values) > 0 else -1), name
    assert found[-1]["unit"] == "percentage points"
    assert {f["unit"] for f in found[:-1]} == {"%"}


def test_findings_on_two_seeds_hold_where_three_do_not():
    found = {f["name"]: f for f in _seeds_results((0, 1))["summary"]["findings"]}
    # Seeds 0 and 1: the multi-head base's lowest MSE is below the paper base's on both.
    lowest = found["universal-multihead vs universal-paper: lowest MSE"]
    assert lowest["values"] == pytest.approx([-100 / 22, -100 * 0.0035 / 0.024], rel=1e-9)
    assert (lowest["sign"], lowest["holds_on_every_seed"], lowest["n"]) == (-1, True, 2)
    difference = found[
        "universal-multihead minus universal-paper: mean distortion penalty at matched λ"
    ]
    assert difference["values"] == pytest.approx([-7.5, -13.75], rel=1e-9)
    assert difference["holds_on_every_seed"] is True


def test_findings_of_a_seed_without_a_family_leave_that_seed_out():
    rows = _seed_rows(0) + [row for row in _seed_rows(1) if row["family"] != "universal-paper"]
    by_seed = {seed: [row for row in rows if row["seed"] == seed] for seed in (0, 1)}
    penalties = [
        {"seed": seed, **p}
        for seed in (0, 1)
        for p in study_report.penalties(by_seed[seed], CONFIG)
    ]
    matched = [
        {"seed": seed, **m}
        for seed in (0, 1)
        for m in study_report.matched_tradeoff(by_seed[seed], CONFIG)
    ]
    found = {f["name"]: f for f in study_report.findings(by_seed, penalties, matched, CONFIG)}
    paper = found["universal-paper: mean distortion penalty at matched λ"]
    assert (paper["seeds"], paper["values"], paper["n"]) == ([0], [pytest.approx(15.0)], 1)
    assert paper["holds_on_every_seed"] is False  # one seed shows no consistency
    lowest = found["universal-multihead vs universal-paper: lowest MSE"]
    assert lowest["seeds"] == [0] and lowest["n"] == 1
    assert found["universal-multihead: lowest MSE vs the lowest E2E MSE"]["n"] == 2


def test_results_of_one_seed_have_no_seed_keys():
    rows = _rows()
    plain = _results(rows)
    one = study_report.results(
        {"seed": 7}, ("paper", "multihead"), rows, CONFIG, {"accuracy": 0.9512}, 12.3, seeds=(7,)
    )
    assert one == plain
    assert "seeds" not in one and "summary" not in one
    assert not any("seed" in row for key in ("penalties", "matched_tradeoff") for row in one[key])
    assert study_report.render(one, CONFIG, RATE_BITS) == study_report.render(
        plain, CONFIG, RATE_BITS
    )


def test_render_of_two_seeds_gives_mean_and_std_and_what_holds():
    results = _seeds_results((0, 1))
    report = study_report.render(results, CONFIG, RATE_BITS)
    lines = _lines(report)
    assert "±" in report
    assert "per-image dither seeds S (each model's training seed) + i" in report
    assert "Every model was trained once per seed (0, 1; n = 2 unless a cell says otherwise)" in (
        report
    )
    assert "- Epochs per model: 3; seeds 0, 1 (the classifier: 0)." in lines
    # The penalty table: each cell mean ± std; the family lines point to the seeds section.
    section = _section(report, "E2E vs universal")
    assert (
        "| universal-paper | 0 | 0.02000 ± 0.00000 | 0.02300 ± 0.00141 | +15.0% ± 7.1% "
        "| 0.500 ± 0.000 | 0.485 ± 0.049 |"
    ) in "\n".join(section)
    assert "- universal-paper: mean distortion penalty +" not in report
    assert "see *What holds across seeds*" in report
    # Paper c0 is inside the front on seed 1 only: its front MSE and penalty say n=1.
    matched = _section(report, "Penalty at matched tradeoff")
    assert (
        "| universal-paper | 0 | 0.485 ± 0.049 | 0.02300 ± 0.00141 | 0.02125 (n=1) | +12.9% (n=1) |"
    ) in matched
    # Paper c0.04 has a value on both seeds: no count.
    assert (
        "| universal-paper | 0.04 | 0.350 ± 0.000 | 0.03000 ± 0.00000 | 0.02375 ± 0.00000 "
        "| +26.3% ± 0.0% |"
    ) in matched
    holds = _section(report, "What holds across seeds")
    assert holds[0] == "" and "mean ± sample standard deviation" in holds[2]
    # 15 and 20: mean 17.5, std 5 / sqrt(2) = 3.54.
    assert (
        "- universal-paper: mean distortion penalty at matched λ: +17.5 ± 3.5% (n = 2; seeds "
        "0, 1: +15.0, +20.0): positive on every seed."
    ) in holds
    # -4.545 and -14.583: mean -9.56, std 10.04 / sqrt(2) = 7.10.
    assert (
        "- universal-multihead vs universal-paper: lowest MSE: -9.6 ± 7.1% (n = 2; seeds 0, 1: "
        "-4.5, -14.6): negative on every seed."
    ) in holds
    # -7.5 and -13.75 (at a rounding edge in floating point): mean -10.6, std 6.25 / sqrt(2).
    (difference,) = [line for line in holds if line.startswith("- universal-multihead minus")]
    assert difference.startswith(
        "- universal-multihead minus universal-paper: mean distortion penalty at matched λ: "
        "-10.6 ± 4.4 percentage points (n = 2; seeds 0, 1: -7.5, -13."
    )
    assert difference.endswith("): negative on every seed.")
    # The section comes after the matched tables and before the table of every model.
    assert report.index("## Penalty at matched") < report.index("## What holds across seeds")
    assert report.index("## What holds across seeds") < report.index("## Every model")
    # Every model: one row per model (its mean over seeds), not one per seed.
    assert (
        "| universal-paper-c0 | universal-paper | 3.17 | 0 | 0.02300 ± 0.00141 | 20.00 ± 0.00 "
        "| 0.485 ± 0.049 | 0.780 ± 0.000 | — | 1.5 ± 0 | 10 ± 0 |"
    ) in lines
    assert sum(line.startswith("| universal-paper-c0 |") for line in lines) == 1


def test_render_of_three_seeds_states_a_sign_change():
    report = study_report.render(_seeds_results(), CONFIG, RATE_BITS)
    assert "(0, 1, 2; n = 3 unless" in report
    holds = _section(report, "What holds across seeds")
    # 10, 20, -10: mean 6.67, std sqrt(700 / 3) = 15.28.
    assert (
        "- universal-paper: lowest MSE vs the lowest E2E MSE: +6.7 ± 15.3% (n = 3; seeds 0, 1, "
        "2: +10.0, +20.0, -10.0): **the sign changes between seeds**."
    ) in holds
    matched = _section(report, "Penalty at matched tradeoff")
    paper0 = [line for line in matched if line.startswith("| universal-paper | 0 |")]
    assert paper0 == [
        "| universal-paper | 0 | 0.497 ± 0.040 | 0.02163 ± 0.00257 | 0.02125 (n=1) | +12.9% (n=1) |"
    ]
    # A value no seed has (W1) is "—", without a count.
    assert "(n=0)" not in report
    assert "| universal-paper-c0 | universal-paper | 3.17 | 0 | 0.02163 ± 0.00257 |" in report


def test_render_counts_the_seeds_of_a_model_missing_on_one():
    # E.g. `--report_only` before seed 2's last model finished: it is left out on that seed.
    rows = [
        row
        for seed in (0, 1, 2)
        for row in _seed_rows(seed)
        if (seed, row["model"]) != (2, "universal-multihead-c0.01")
    ]
    settings, judge = {"seed": 0}, {"accuracy": 0.9512}
    bases = ("paper", "multihead")
    results = study_report.results(settings, bases, rows, CONFIG, judge, 12.3, seeds=(0, 1, 2))
    entry = _by_model(results["summary"]["models"])["universal-multihead-c0.01"]
    assert (entry["n"], entry["seeds"], entry["mse_n"]) == (2, [0, 1], 2)
    report = study_report.render(results, CONFIG, RATE_BITS)
    # MSE 0.030 on both seeds: std 0; every cell with a value says n=2.
    assert (
        "| universal-multihead-c0.01 | universal-multihead | 3.17 | 0.01 | 0.03000 ± 0.00000 (n=2) "
        "| 20.00 ± 0.00 (n=2) | 0.400 ± 0.000 (n=2) | 0.850 ± 0.000 (n=2) | — "
        "| 1.5 ± 0 (n=2) | 10 ± 0 (n=2) |"
    ) in _lines(report)
    assert "| universal-multihead-c0 | universal-multihead | 3.17 | 0 | 0.02153 ± 0.00138 |" in (
        report
    )
