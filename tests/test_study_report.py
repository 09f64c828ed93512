"""Tests for rdc_keras.study_report on hand-built model rows (no training, no TensorFlow).

The golden numbers below are worked out by hand from the rows: e.g. universal-paper at
lambda_c = 0 has MSE 0.022 against the E2E model's 0.020, a distortion penalty of
100 * 0.002 / 0.020 = +10 %.
"""

import csv
import math
import subprocess
import sys
import types

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
)


def _row(model, family, lambda_c, mse, ce, accuracy, rate=(2, 3), workdir=None, seconds=10.0):
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
        "train_seconds": seconds,
        "workdir": workdir or f"{family}/{model}",
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


def test_results_holds_rows_penalties_units_and_times():
    rows = _rows()
    results = _results(rows)
    assert results["models"] == rows
    assert results["penalties"] == study_report.penalties(rows, CONFIG)
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


def test_render_penalty_table_and_summary_lines():
    lines = _lines(study_report.render(_results(), CONFIG, RATE_BITS))
    table = [line for line in lines if line.startswith("| universal-") and "%" in line]
    assert table == [
        "| universal-paper | 0 | 0.02000 | 0.02200 | +10.0% | 0.500 | 0.520 | 0.800 | 0.780 |",
        "| universal-paper | 0.04 | 0.02500 | 0.03000 | +20.0% | 0.300 | 0.350 | 0.900 | 0.860 |",
        "| universal-multihead | 0 | 0.02000 | 0.02100 | +5.0% | 0.500 | 0.510 | 0.800 | 0.790 |",
        "| universal-multihead | 0.04 | 0.02500 | 0.02750 | +10.0% | 0.300 | 0.330 | 0.900 "
        "| 0.870 |",
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
    assert "| e2e-d1-L3-c0 | e2e | 1.58 | 0 | 0.04000 | 20.00 | 0.900 | 0.600 | 10 |" in lines
    assert "| universal-multihead-c0.01 | universal-multihead | 3.17 | 0.01 |" in report
    assert "Study wall time: 12 s (this invocation;" in report
    assert "Training time of all models: 87 s." in report
    assert [line for line in lines if line.startswith("![")] == [
        "![tradeoff](figures/tradeoff.png)",
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
