"""What a study writes about its models: results.json's contents, results.csv and report.md.

`rdc_keras.experiment.run_study` trains and scores the models; this module turns its rows (one
dict per model: family, rate, lambda_c, lambda_p, mse, ce_nats, accuracy, w1, judge_fd, ...) into
the comparisons the study is for: `penalties` (universal vs E2E at matched loss weights
(lambda_c, lambda_p), distortion penalty 100 * (MSE_universal - MSE_E2E) / MSE_E2E) and
`matched_tradeoff` (universal vs the E2E Pareto front at the same CE, or the same W1 / judge FD in
a perception study, its MSE interpolated there); then the results dict written to results.json
(`results`), the CSV table of every model (`write_csv`) and the Markdown report (`render`). Plain
Python and numpy, no TensorFlow: a report can be re-rendered from results.json without loading a
network. The comparisons themselves are computed by `rdc_keras.tradeoff` (re-exported here).

A study over several seeds has one row per model and seed; its penalties are computed per seed
(each seed's universal models against that seed's E2E models) and results.json adds a "summary":
every metric and penalty as mean ± std over seeds with n (`rdc_keras.spread.aggregate`) and the
report's findings as paired per-seed values (`rdc_keras.spread.paired`), which the report states
with whether they hold on every seed.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rdc_keras.files import atomic_write
from rdc_keras.spread import aggregate, mean_std, paired
from rdc_keras.tradeoff import (
    AXES,
    UNIVERSAL_FAMILIES,
    at_main_rate,
    axes,
    is_perception,
    matched_tradeoff,
    pareto_front,
    penalties,
    penalty_percent,
)

if TYPE_CHECKING:
    from rdc_keras.studies import StudyConfig

__all__ = [
    "UNITS",
    "matched_tradeoff",
    "pareto_front",
    "penalties",
    "render",
    "results",
    "write_csv",
]

Row = dict[str, Any]
# A model across seeds: the keys naming it and the metrics summarised over its seeds.
MODEL_KEYS = ("model", "family", "latent_dim", "num_levels", "rate_bits", "lambda_c", "lambda_p")
MODEL_FIELDS = ("mse", "psnr", "ce_nats", "accuracy", "w1", "judge_fd", "train_seconds")
PENALTY_FIELDS = (
    *("mse_e2e", "mse_universal", "distortion_penalty_percent", "ce_e2e", "ce_universal"),
    *("accuracy_e2e", "accuracy_universal", "w1_e2e", "w1_universal"),
    *("judge_fd_e2e", "judge_fd_universal"),
)
MATCHED_FIELDS = ("value", "mse_universal", "mse_front", "penalty_percent")
# The units of the model rows, recorded in results.json.
UNITS = {
    "mse": "per-pixel mean on [0, 1]",
    "psnr": "dB",
    "ce_nats": "nats",
    "accuracy": "fraction of test images in [0, 1]",
    "w1": "critic score difference E h(x) - E h(x_hat) of the held-out post-hoc WGAN-GP critic "
    "(null: not estimated)",
    "judge_fd": "Frechet distance between the reference classifier's penultimate-layer features "
    "of originals and reconstructions (squared feature units; not the Inception FID)",
    "rate_bits": "bits per image (d log2 L)",
    "train_seconds": "s",
}


def results(
    settings: dict[str, Any],
    bases: tuple[str, ...],
    rows: list[Row],
    config: StudyConfig,
    reference_classifier: dict[str, Any],
    wall_seconds: float,
    w1_judge_spread: dict[str, Any] | None = None,
    seeds: Sequence[int] = (),
) -> dict[str, Any]:
    """The study's results.json: settings, units, every model, penalties, judge, times.

    Args:
      settings: the recorded study settings (study.json "study").
      bases: the universal families that were trained.
      rows: one dict per model.
      config: the study.
      reference_classifier: the judge's test metrics.
      wall_seconds: time of this invocation (a resumed study excludes the runs it found finished).
      w1_judge_spread: W1 of one model by several judge seeds ({"model", "seeds", "values",
        "mean", "std"}); recorded as "w1_judge_spread" when given.
      seeds: the study's training seeds; with more than one, every row has a "seed", the
        penalties are per seed (each with its "seed") and "seeds" and "summary" are added.
    """
    several = len(seeds) > 1
    if several:
        by_seed = {seed: [row for row in rows if row["seed"] == seed] for seed in seeds}
        penalty_rows = [{"seed": s, **p} for s in seeds for p in penalties(by_seed[s], config)]
        matched = [{"seed": s, **m} for s in seeds for m in matched_tradeoff(by_seed[s], config)]
    else:
        penalty_rows, matched = penalties(rows, config), matched_tradeoff(rows, config)
    out = {
        "study": settings,
        "units": dict(UNITS),
        "bases": list(bases),
        "models": rows,
        "penalties": penalty_rows,
        "matched_tradeoff": matched,
        "reference_classifier": reference_classifier,
        "wall_seconds": wall_seconds,
        # A resumed study's wall time excludes the runs it found finished; this sum does not.
        "train_seconds_total": round(
            sum({row["workdir"]: row["train_seconds"] for row in rows}.values()), 1
        ),
    }
    if w1_judge_spread is not None:
        out["w1_judge_spread"] = w1_judge_spread
    if several:
        out["seeds"] = list(seeds)
        out["summary"] = {
            "models": aggregate(rows, MODEL_KEYS, MODEL_FIELDS),
            "penalties": aggregate(
                penalty_rows, ("family", "lambda_c", "lambda_p"), PENALTY_FIELDS
            ),
            "matched_tradeoff": aggregate(
                matched, ("family", "model", "lambda_c", "lambda_p", "axis"), MATCHED_FIELDS
            ),
            "findings": findings(by_seed, penalty_rows, matched, config),
        }
    return out


def findings(
    by_seed: dict[int, list[Row]], penalty_rows: list[Row], matched: list[Row], config: StudyConfig
) -> list[Row]:
    """The comparisons the report states, each as a paired per-seed quantity (`spread.paired`).

    Per universal family: its mean distortion penalty at matched λ, its lowest MSE against the
    lowest E2E MSE, its mean penalty on each matched axis; with both families, the multi-head
    base against the paper base (lowest MSE, and the difference of their mean penalties), each
    difference taken within a seed.
    """

    def percent(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else penalty_percent(a, b)

    def mean(values: list[float]) -> float | None:
        return mean_std(values)[0]

    def lowest(seed: int, family: str) -> float | None:
        values = [
            row["mse"]
            for row in by_seed[seed]
            if row["family"] == family and at_main_rate(row, config)
        ]
        return min(values) if values else None

    def matched_mean(seed: int, family: str) -> float | None:
        return mean(
            [
                p["distortion_penalty_percent"]
                for p in penalty_rows
                if p["seed"] == seed and p["family"] == family
            ]
        )

    present = {row["family"] for rows in by_seed.values() for row in rows}
    families = [family for family in UNIVERSAL_FAMILIES if family in present]
    out = []
    for family in families:
        out.append(
            paired(
                f"{family}: mean distortion penalty at matched λ",
                "%",
                {seed: matched_mean(seed, family) for seed in by_seed},
            )
        )
        out.append(
            paired(
                f"{family}: lowest MSE vs the lowest E2E MSE",
                "%",
                {seed: percent(lowest(seed, family), lowest(seed, "e2e")) for seed in by_seed},
            )
        )
        for axis in axes(config):
            values = {
                seed: mean(
                    [
                        m["penalty_percent"]
                        for m in matched
                        if m["seed"] == seed
                        and m["family"] == family
                        and m["axis"] == axis
                        and m["penalty_percent"] is not None
                    ]
                )
                for seed in by_seed
            }
            out.append(paired(f"{family}: mean penalty at matched {AXES[axis][0]}", "%", values))
    if len(families) == 2:
        paper, multihead = families
        lowest_pair = {
            seed: percent(lowest(seed, multihead), lowest(seed, paper)) for seed in by_seed
        }
        out.append(paired(f"{multihead} vs {paper}: lowest MSE", "%", lowest_pair))
        difference = {}
        for seed in by_seed:
            a, b = matched_mean(seed, multihead), matched_mean(seed, paper)
            difference[seed] = None if a is None or b is None else a - b
        out.append(
            paired(
                f"{multihead} minus {paper}: mean distortion penalty at matched λ",
                "percentage points",
                difference,
            )
        )
    return out


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
      results: the study's results (as written to results.json; one written before
        "matched_tradeoff" existed gets it computed from its models).
      config: the study.
      rate_bits: bits per image of the main rate (`rdc_keras.layers.rate_bits`; passed in so
        this module needs no TensorFlow).
    """
    families = {row["family"] for row in results["models"]}
    out = _summary(results, config, rate_bits)
    out += _training(results, config, families)
    out += _comparison(results, config, rate_bits)
    out += _matched(results, config, families)
    if "summary" in results:
        out += _across_seeds(results["summary"]["findings"])
    out += _models(results, config)
    out += _figures(config, families, results.get("compared_with", []))
    return "\n".join(out)


_SEE_ACROSS_SEEDS = (
    "- Each family's mean penalty, per seed and with its spread: see *What holds across seeds*."
)


def _seeds_text(seeds: Sequence[int]) -> str:
    return ", ".join(str(seed) for seed in seeds)


def _finding(finding: Row) -> str:
    """One finding as the report states it: mean ± std, n, per-seed values, consistency."""
    if finding["n"] == 0:
        return f"- {finding['name']}: no seed has a value."
    unit = "%" if finding["unit"] == "%" else f" {finding['unit']}"
    values = ", ".join(f"{value:+.1f}" for value in finding["values"])
    spread = f" ± {finding['std']:.1f}" if finding["std"] is not None else ""
    if finding["n"] < 2:
        verdict = "one seed only"
    elif finding["holds_on_every_seed"]:
        verdict = f"{'positive' if finding['sign'] > 0 else 'negative'} on every seed"
    else:
        verdict = "**the sign changes between seeds**"
    return (
        f"- {finding['name']}: {finding['mean']:+.1f}{spread}{unit} (n = {finding['n']}; seeds "
        f"{_seeds_text(finding['seeds'])}: {values}): {verdict}."
    )


def _across_seeds(found: list[Row]) -> list[str]:
    """Every comparison of the report as paired per-seed values, with whether it holds."""
    out = [
        "",
        "## What holds across seeds",
        "",
        "Each comparison below is taken within a seed (the universal models of a seed against "
        "the E2E models of the same seed), then summarised over seeds as mean ± sample standard "
        "deviation; a statement holds when its sign is the same on every seed.",
        "",
    ]
    return out + [_finding(finding) for finding in found]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value: Any, spec: str) -> str:
    """A table cell: "—" for None; a spec ending in "%" appends a percent sign."""
    if value is None:
        return "—"
    if spec.endswith("%"):
        return format(value, spec[:-1]) + "%"
    return format(value, spec)


def _columns(perception: bool, *columns: tuple[str, str, str]) -> list[tuple[str, str, str]]:
    """(header, key, format) columns; the λp column only in a perception study."""
    return [column for column in columns if perception or column[1] != "lambda_p"]


def _cell(entry: Row, key: str, spec: str, seeds: int) -> str:
    """A table cell; a summary row over seeds (with `<key>_std`) shows mean ± std, and its count
    when fewer than the study's `seeds` have a value."""
    cell = _fmt(entry.get(key), spec)
    std = entry.get(f"{key}_std")
    if std is not None:
        cell += " ± " + _fmt(std, spec.lstrip("+"))
    count = entry.get(f"{key}_n")
    if count is not None and count < seeds and entry.get(key) is not None:
        cell += f" (n={count})"
    return cell


def _rows_table(columns: list[tuple[str, str, str]], entries: list[Row], seeds: int = 1) -> str:
    """A Markdown table of `entries`; `seeds`: the study's number of seeds."""
    cells = [[_cell(entry, key, spec, seeds) for _, key, spec in columns] for entry in entries]
    return _table([header for header, _, _ in columns], cells)


def _summary(results: dict[str, Any], config: StudyConfig, rate: float) -> list[str]:
    d, levels = config.rates[0]
    return [
        f"# RDC study `{config.name}`",
        "",
        f"Dataset `{config.dataset}`; main rate d={d}, L={levels} ({rate:.2f} bits per image, "
        f"fixed-rate bound d·log2 L). Every model is scored on the test split by the same frozen "
        f"reference classifier (test accuracy on clean images "
        f"{results['reference_classifier']['accuracy']:.4f}) with per-image dither seeds "
        f"{_dither(results)} + i. MSE is the per-pixel mean on [0, 1]; CE is in nats.",
        "",
        *_seeds_intro(results),
        "Realism is judged two ways, the same for every model. W1 is estimated by a held-out "
        "post-hoc WGAN-GP critic with one fixed budget and seed, trained on one half of the test "
        "split's originals and reconstructions and scored on the other half; W1 values from "
        "different critics (e.g. the paper's in-training critic) are not on one scale. Judge FD "
        "is the Fréchet distance between the reference classifier's penultimate-layer features "
        "of originals and of reconstructions (an FID in the judge's feature space, not the "
        "Inception FID); it needs no training and is deterministic. Lower is more realistic for "
        "both; — means not estimated.",
    ]


def _dither(results: dict[str, Any]) -> str:
    return "S (each model's training seed)" if "seeds" in results else str(results["study"]["seed"])


def _seeds_intro(results: dict[str, Any]) -> list[str]:
    """A study over several seeds: how its tables read."""
    if "seeds" not in results:
        return []
    n = len(results["seeds"])
    return [
        f"Every model was trained once per seed ({_seeds_text(results['seeds'])}; n = {n} unless "
        "a cell says otherwise) with one reference classifier and one evaluation protocol. The "
        "tables give each value as mean ± sample standard deviation over seeds, each penalty "
        "computed within a seed; the per-seed values are in results.json and results.csv "
        "(results-summary.csv holds the means).",
        "",
    ]


def _grid(lambda_c, lambda_p, perception: bool) -> str:
    """A grid as the report names it: its λc values, and its λp values in a perception study."""
    if not perception:
        return f"λc in {list(lambda_c)}"
    return f"λc in {list(lambda_c)} and each λp in {list(lambda_p)}"


def _training(results: dict[str, Any], config: StudyConfig, families: set[str]) -> list[str]:
    perception = is_perception(config)
    e2e_p = getattr(config, "e2e_lambda_p", (0.0,))
    universal_p = getattr(config, "universal_lambda_p", (0.0,))
    out = ["", "## How the models were trained", ""]
    if perception:
        out.append(
            f"- **E2E**: encoder and decoder trained together for each "
            f"{_grid(config.e2e_lambda_c, e2e_p, True)} (λd = 1, frozen pretrained classifier in "
            "the loss; λp weights the W1 estimate of a WGAN-GP critic trained alongside)."
        )
    else:
        out.append(
            f"- **E2E**: encoder and decoder trained together for each λc in "
            f"{list(config.e2e_lambda_c)} (λd = 1, λp = 0, frozen pretrained classifier in the "
            "loss)."
        )
    universal_grid = _grid(config.universal_lambda_c, universal_p, perception)
    if "universal-paper" in families:
        base = f"λc = {config.base_lambda_c:g}"
        if perception:
            base += f", λp = {getattr(config, 'base_lambda_p', 0.0):g}"
        out.append(
            f"- **Universal, paper base**: the encoder of the E2E model at {base} is frozen "
            f"(BatchNorm statistics too) and a new decoder is trained for each {universal_grid}."
        )
    if "universal-multihead" in families:
        heads = "per universal grid point" if perception else "per λc"
        base_heads = getattr(config, "multihead_lambda_c", None)
        if base_heads:
            heads = f"per λc in {list(base_heads)}"
        out.append(
            f"- **Universal, multi-head base**: an encoder trained jointly with one head {heads} "
            "(loss = mean of the head losses), then frozen; a new decoder is trained on it for "
            f"each {universal_grid}."
        )

    def with_critic(family: str) -> bool:
        return any(
            row["family"] == family and (row.get("lambda_p") or 0) > 0 for row in results["models"]
        )

    if with_critic("universal-paper"):
        out.append(
            "- Each paper-base head's critic was initialised from the base model's critic, as in "
            "the reference code, and then trained with the head."
        )
    if with_critic("universal-multihead"):
        out.append(
            "- The multi-head base is trained without a critic (its heads have only MSE and CE "
            "terms), so each multi-head-base head with λp > 0 starts a fresh critic."
        )
    epochs = config.epochs if config.epochs is not None else "preset default"
    if "seeds" in results:
        seeds = (
            f"seeds {_seeds_text(results['seeds'])} (the classifier: {results['study']['seed']})"
        )
    else:
        seeds = f"seed {results['study']['seed']}"
    out.append(f"- Epochs per model: {epochs}; {seeds}.")
    schedule = getattr(config, "schedule", "joint")
    precision = getattr(config, "mixed_precision", "float32")
    if perception or (schedule, precision) != ("joint", "float32"):
        out.append(f"- Training schedule `{schedule}`; precision `{precision}`.")
    return out


def _comparison(results: dict[str, Any], config: StudyConfig, rate: float) -> list[str]:
    """The penalty table and, per universal family, its mean penalty and best MSE vs E2E."""
    perception = is_perception(config)
    columns = _columns(
        perception,
        *[("family", "family", "s"), ("λc", "lambda_c", "g"), ("λp", "lambda_p", "g")],
        *[("MSE E2E", "mse_e2e", ".5f"), ("MSE universal", "mse_universal", ".5f")],
        ("distortion penalty", "distortion_penalty_percent", "+.1f%"),
        *[("CE E2E", "ce_e2e", ".3f"), ("CE universal", "ce_universal", ".3f")],
        *[("acc E2E", "accuracy_e2e", ".3f"), ("acc universal", "accuracy_universal", ".3f")],
        *[("W1 E2E", "w1_e2e", ".4f"), ("W1 universal", "w1_universal", ".4f")],
        *[("judge FD E2E", "judge_fd_e2e", ".4g")],
        *[("judge FD universal", "judge_fd_universal", ".4g")],
    )
    summary = results.get("summary")
    entries = summary["penalties"] if summary else results["penalties"]
    table = _rows_table(columns, entries, len(results.get("seeds", [0])))
    out = ["", f"## E2E vs universal at {rate:.2f} bits", "", table]
    rows = results["models"]
    matched = "λc, λp" if perception else "λc"
    if summary:  # the family statements, per seed: see "What holds across seeds"
        return [*out, "", _SEE_ACROSS_SEEDS]
    for family in UNIVERSAL_FAMILIES:
        values = [
            p["distortion_penalty_percent"] for p in results["penalties"] if p["family"] == family
        ]
        if not values:
            continue
        best_e2e = min(
            row["mse"] for row in rows if row["family"] == "e2e" and at_main_rate(row, config)
        )
        best_universal = min(row["mse"] for row in rows if row["family"] == family)
        out.append("")
        out.append(
            f"- {family}: mean distortion penalty {np.mean(values):+.1f}% at matched {matched}; "
            f"lowest MSE {best_universal:.5f} vs lowest E2E MSE {best_e2e:.5f} "
            f"({penalty_percent(best_universal, best_e2e):+.1f}%)."
        )
    return out


def _matched(results: dict[str, Any], config: StudyConfig, families: set[str]) -> list[str]:
    """One table per axis: each universal model against the E2E front at the same value."""
    summary = results.get("summary")
    entries = summary["matched_tradeoff"] if summary else results.get("matched_tradeoff")
    if entries is None:  # results.json written before matched_tradeoff existed
        entries = matched_tradeoff(results["models"], config)
    entries = [entry for entry in entries if entry["family"] in families]
    perception = is_perception(config)
    same = "the same realism (W1, judge FD)" if perception else "the same CE"
    out = [
        "",
        "## Penalty at matched tradeoff",
        "",
        "The table above compares at matched λ: each universal model against the E2E model "
        "trained with the same loss weights. The tables below compare at matched tradeoff: each "
        f"universal model against the E2E Pareto front at {same}, the front's MSE interpolated "
        "linearly between the neighbouring non-dominated E2E models at the universal model's "
        "value, and left empty (—) when the value is outside the range the E2E front spans (no "
        "extrapolation).",
    ]
    if not entries:
        out += ["", "No universal model has a value on the matched axes."]
    for axis in axes(config):
        subset = [entry for entry in entries if entry["axis"] == axis]
        if not subset:
            continue
        name, values_header, spec = AXES[axis]
        columns = _columns(
            perception,
            *[("family", "family", "s"), ("λc", "lambda_c", "g"), ("λp", "lambda_p", "g")],
            *[(values_header, "value", spec), ("MSE universal", "mse_universal", ".5f")],
            *[(f"MSE E2E front at that {name}", "mse_front", ".5f")],
            ("penalty", "penalty_percent", "+.1f%"),
        )
        out += [
            "",
            f"### At matched {name}",
            "",
            _rows_table(columns, subset, len(results.get("seeds", [0]))),
        ]
        if summary:
            out += ["", _SEE_ACROSS_SEEDS]
            continue
        for family in UNIVERSAL_FAMILIES:
            members = [entry for entry in subset if entry["family"] == family]
            values = [e["penalty_percent"] for e in members if e["penalty_percent"] is not None]
            if not members:
                continue
            mean = f"mean penalty {np.mean(values):+.1f}%" if values else "no penalty"
            out += [
                "",
                f"- {family}: {mean} at matched {name} ({len(values)} of {len(members)} models "
                "inside the E2E front's range).",
            ]
    return out


def _models(results: dict[str, Any], config: StudyConfig) -> list[str]:
    """The table of every model, the judge's spread and the study's wall and training times."""
    columns = _columns(
        is_perception(config),
        *[("model", "model", "s"), ("family", "family", "s"), ("bits", "rate_bits", ".2f")],
        *[("λc", "lambda_c", "g"), ("λp", "lambda_p", "g"), ("MSE", "mse", ".5f")],
        *[("PSNR dB", "psnr", ".2f"), ("CE nats", "ce_nats", ".3f")],
        *[("accuracy", "accuracy", ".3f"), ("W1", "w1", ".4f"), ("judge FD", "judge_fd", ".4g")],
        ("train s", "train_seconds", ".0f"),
    )
    summary = results.get("summary")
    models = summary["models"] if summary else results["models"]
    out = [
        "",
        "## Every model",
        "",
        _rows_table(columns, models, len(results.get("seeds", [0]))),
        "",
    ]
    spread = results.get("w1_judge_spread")
    if spread:
        values = ", ".join(f"{value:.4f}" for value in spread["values"])
        out += [
            f"Spread of the W1 judge: `{spread['model']}` scored by {len(spread['values'])} "
            f"critics with seeds {list(spread['seeds'])}: {values} (mean {spread['mean']:.4f}, "
            f"std {spread['std']:.4f}).",
            "",
        ]
    out += [
        f"Study wall time: {results['wall_seconds']:.0f} s (this invocation; finished models "
        f"are not retrained on a re-run). Training time of all models: "
        f"{results['train_seconds_total']:.0f} s.",
        "",
    ]
    return out


def _figures(config: StudyConfig, families: set[str], compared: list[dict[str, Any]]) -> list[str]:
    out = ["## Figures", "", "![tradeoff](figures/tradeoff.png)", ""]
    if is_perception(config):
        out += ["![perception](figures/perception.png)", ""]
    out += ["![accuracy](figures/accuracy.png)", ""]
    if compared:
        names = ", ".join(f"`{study['name']}` ({study['epochs']} epochs)" for study in compared)
        out += [
            f"Accuracy vs MSE beside {names}: the legend gives each study's λp values and epochs.",
            "",
            "![accuracy compared](figures/accuracy-compared.png)",
            "",
        ]
    if len(config.rates) > 1:
        out += ["![rates](figures/rates.png)", ""]
    for family in ("e2e", *UNIVERSAL_FAMILIES):
        if family in families:
            out += [f"![{family}](figures/reconstructions-{family}.png)", ""]
    return out
