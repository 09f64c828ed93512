"""What a study writes about its models: results.json's contents, results.csv and report.md.

`rdc_keras.experiment.run_study` trains and scores the models; this module turns its rows (one
dict per model: family, rate, lambda_c, mse, ce_nats, accuracy, ...) into the comparison the study
is for (`penalties`: universal vs E2E at matched lambda_c, distortion penalty
100 * (MSE_universal - MSE_E2E) / MSE_E2E), the results dict written to results.json (`results`),
the CSV table of every model (`write_csv`) and the Markdown report (`render`). Plain Python and
numpy, no TensorFlow: a report can be re-rendered from results.json without loading a network.
"""

from __future__ import annotations

import csv
import io
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from rdc_keras.files import atomic_write

if TYPE_CHECKING:
    from rdc_keras.experiment import StudyConfig

__all__ = ["UNITS", "penalties", "render", "results", "write_csv"]

Row = dict[str, Any]
# The units of the model rows, recorded in results.json.
UNITS = {
    "mse": "per-pixel mean on [0, 1]",
    "psnr": "dB",
    "ce_nats": "nats",
    "accuracy": "fraction of test images in [0, 1]",
    "w1": "critic score difference E h(x) - E h(x_hat) (null: not estimated)",
    "rate_bits": "bits per image (d log2 L)",
    "train_seconds": "s",
}
# The universal families in the order the report shows them.
UNIVERSAL_FAMILIES = ("universal-paper", "universal-multihead")


def _at_main_rate(row: Row, config: StudyConfig) -> bool:
    return (row["latent_dim"], row["num_levels"]) == tuple(config.rates[0])


def penalties(rows: list[Row], config: StudyConfig) -> list[Row]:
    """Universal vs E2E at matched lambda_c (main rate): distortion penalty in %.

    Args:
      rows: the study's model rows (results.json "models").
      config: the study; its first rate is the main one.

    Returns:
      One dict per universal model whose lambda_c is on the E2E grid, in row order.
    """
    e2e = {
        row["lambda_c"]: row
        for row in rows
        if row["family"] == "e2e" and _at_main_rate(row, config)
    }
    out = []
    for row in rows:
        if not row["family"].startswith("universal") or row["lambda_c"] not in e2e:
            continue
        ref = e2e[row["lambda_c"]]
        out.append(
            {
                "family": row["family"],
                "lambda_c": row["lambda_c"],
                "mse_e2e": ref["mse"],
                "mse_universal": row["mse"],
                "distortion_penalty_percent": 100.0 * (row["mse"] - ref["mse"]) / ref["mse"],
                "ce_e2e": ref["ce_nats"],
                "ce_universal": row["ce_nats"],
                "accuracy_e2e": ref["accuracy"],
                "accuracy_universal": row["accuracy"],
            }
        )
    return out


def results(
    settings: dict[str, Any],
    bases: tuple[str, ...],
    rows: list[Row],
    config: StudyConfig,
    reference_classifier: dict[str, Any],
    wall_seconds: float,
) -> dict[str, Any]:
    """The study's results.json: settings, units, every model, penalties, judge, times.

    Args:
      settings: the recorded study settings (study.json "study").
      bases: the universal families that were trained.
      rows: one dict per model.
      config: the study.
      reference_classifier: the judge's test metrics.
      wall_seconds: time of this invocation (a resumed study excludes the runs it found finished).
    """
    return {
        "study": settings,
        "units": dict(UNITS),
        "bases": list(bases),
        "models": rows,
        "penalties": penalties(rows, config),
        "reference_classifier": reference_classifier,
        "wall_seconds": wall_seconds,
        # A resumed study's wall time excludes the runs it found finished; this sum does not.
        "train_seconds_total": round(
            sum({row["workdir"]: row["train_seconds"] for row in rows}.values()), 1
        ),
    }


def write_csv(path: str | os.PathLike, rows: list[Row]) -> None:
    """Writes `rows` as CSV (columns of the first row; None becomes ""), atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buffer.getvalue())


def render(results: dict[str, Any], config: StudyConfig, rate_bits: float) -> str:
    """The study's report.md: settings, training protocol, penalties, every model, figures.

    Args:
      results: the study's results (as written to results.json).
      config: the study.
      rate_bits: bits per image of the main rate (`rdc_keras.layers.rate_bits`; passed in so
        this module needs no TensorFlow).
    """
    families = {row["family"] for row in results["models"]}
    out = _summary(results, config, rate_bits)
    out += _training(config, families, results["study"]["seed"])
    out += _comparison(results, config, rate_bits)
    out += _models(results)
    out += _figures(config, families)
    return "\n".join(out)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _summary(results: dict[str, Any], config: StudyConfig, rate: float) -> list[str]:
    d, levels = config.rates[0]
    return [
        f"# RDC study `{config.name}`",
        "",
        f"Dataset `{config.dataset}`; main rate d={d}, L={levels} ({rate:.2f} bits per image, "
        f"fixed-rate bound d·log2 L). Every model is scored on the test split by the same frozen "
        f"reference classifier (test accuracy on clean images "
        f"{results['reference_classifier']['accuracy']:.4f}) with per-image dither seeds "
        f"{results['study']['seed']} + i. MSE is the per-pixel mean on [0, 1]; CE is in nats.",
    ]


def _training(config: StudyConfig, families: set[str], seed: int) -> list[str]:
    out = ["", "## How the models were trained", ""]
    out.append(
        f"- **E2E**: encoder and decoder trained together for each λc in "
        f"{list(config.e2e_lambda_c)} (λd = 1, λp = 0, frozen pretrained classifier in the loss)."
    )
    if "universal-paper" in families:
        out.append(
            f"- **Universal, paper base**: the encoder of the E2E model at "
            f"λc = {config.base_lambda_c:g} is frozen (BatchNorm statistics too) and a new "
            f"decoder is trained for each λc in "
            f"{list(config.universal_lambda_c)}."
        )
    if "universal-multihead" in families:
        out.append(
            "- **Universal, multi-head base**: an encoder trained jointly with one head per λc "
            "(loss = mean of the head losses), then frozen; a new decoder is trained on it for "
            f"each λc in {list(config.universal_lambda_c)}."
        )
    epochs = config.epochs if config.epochs is not None else "preset default"
    out.append(f"- Epochs per model: {epochs}; seed {seed}.")
    return out


def _comparison(results: dict[str, Any], config: StudyConfig, rate: float) -> list[str]:
    """The penalty table and, per universal family, its mean penalty and best MSE vs E2E."""
    header = [
        "family",
        "λc",
        "MSE E2E",
        "MSE universal",
        "distortion penalty",
        "CE E2E",
        "CE universal",
        "acc E2E",
        "acc universal",
    ]
    table = [
        [
            p["family"],
            f"{p['lambda_c']:g}",
            f"{p['mse_e2e']:.5f}",
            f"{p['mse_universal']:.5f}",
            f"{p['distortion_penalty_percent']:+.1f}%",
            f"{p['ce_e2e']:.3f}",
            f"{p['ce_universal']:.3f}",
            f"{p['accuracy_e2e']:.3f}",
            f"{p['accuracy_universal']:.3f}",
        ]
        for p in results["penalties"]
    ]
    out = ["", f"## E2E vs universal at {rate:.2f} bits", "", _table(header, table)]
    rows = results["models"]
    for family in UNIVERSAL_FAMILIES:
        values = [
            p["distortion_penalty_percent"] for p in results["penalties"] if p["family"] == family
        ]
        if not values:
            continue
        best_e2e = min(
            row["mse"] for row in rows if row["family"] == "e2e" and _at_main_rate(row, config)
        )
        best_universal = min(row["mse"] for row in rows if row["family"] == family)
        out.append("")
        out.append(
            f"- {family}: mean distortion penalty {np.mean(values):+.1f}% at matched λc; "
            f"lowest MSE {best_universal:.5f} vs lowest E2E MSE {best_e2e:.5f} "
            f"({100 * (best_universal - best_e2e) / best_e2e:+.1f}%)."
        )
    return out


def _models(results: dict[str, Any]) -> list[str]:
    """The table of every model and the study's wall and training times."""
    header = ["model", "family", "bits", "λc", "MSE", "PSNR dB", "CE nats", "accuracy", "train s"]
    table = [
        [
            row["model"],
            row["family"],
            f"{row['rate_bits']:.2f}",
            f"{row['lambda_c']:g}",
            f"{row['mse']:.5f}",
            f"{row['psnr']:.2f}",
            f"{row['ce_nats']:.3f}",
            f"{row['accuracy']:.3f}",
            f"{row['train_seconds']:.0f}",
        ]
        for row in results["models"]
    ]
    return [
        "",
        "## Every model",
        "",
        _table(header, table),
        "",
        f"Study wall time: {results['wall_seconds']:.0f} s (this invocation; finished models "
        f"are not retrained on a re-run). Training time of all models: "
        f"{results['train_seconds_total']:.0f} s.",
        "",
    ]


def _figures(config: StudyConfig, families: set[str]) -> list[str]:
    out = ["## Figures", "", "![tradeoff](figures/tradeoff.png)", ""]
    if len(config.rates) > 1:
        out += ["![rates](figures/rates.png)", ""]
    for family in ("e2e", *UNIVERSAL_FAMILIES):
        if family in families:
            out += [f"![{family}](figures/reconstructions-{family}.png)", ""]
    return out
