"""A whole study: reference classifier, E2E grid, universal heads, evaluation, report, figures.

The paper's protocol (arXiv:2504.13191 §4; digest §4.3): train end-to-end (E2E) models over a
lambda_c grid; freeze the encoder of one of them (the paper takes lambda_c = 0.015) and train a new
head per lambda_c on it ("universal, paper base"). Beyond the paper, a multi-head base encoder is
trained jointly with heads at every grid point and new heads are trained on it the same way
("universal, multi-head base"). Every model is scored by `evaluation.evaluate` with the same
frozen reference classifier, test split and dither seeds, and compared at matched lambda_c: the
distortion penalty is 100 * (MSE_universal - MSE_E2E) / MSE_E2E.

Every training is an `rdc_keras.trainers.runner` run in its own directory, so an interrupted
study resumes where it stopped and finished models are never retrained.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import pathlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from rdc_keras import data, networks, runs

__all__ = ["BASES", "PRESETS", "StudyConfig", "run_study", "study_config"]

# Universal families a study can train: heads on the paper's single-lambda base encoder and heads
# on the multi-head base encoder (beyond the paper). Which ones run does not change any model, so
# the choice is not part of the recorded study settings.
BASES = {"paper": "universal-paper", "multihead": "universal-multihead"}


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """What a study trains. Rates are (latent_dim, num_levels) pairs; the first is the main one."""

    name: str
    dataset: str
    rates: tuple[tuple[int, int], ...]
    e2e_lambda_c: tuple[float, ...]
    universal_lambda_c: tuple[float, ...]
    base_lambda_c: float
    epochs: int | None = None
    steps_per_epoch: int | None = None
    batch_size: int | None = None
    classifier_epochs: int | None = None
    w1_steps: int = 0
    grid_images: int = 8
    data_dir: str | None = None


PRESETS: dict[str, StudyConfig] = {
    # The embedded demo: scikit-learn digits, small networks, <= 10 minutes on 2 CPU cores.
    "digits": StudyConfig(
        name="digits",
        dataset="digits",
        rates=((3, 3), (2, 3), (3, 4)),
        e2e_lambda_c=(0.0, 0.005, 0.01, 0.02, 0.04),
        universal_lambda_c=(0.0, 0.005, 0.01, 0.02, 0.04),
        base_lambda_c=0.04,
        epochs=20,
    ),
    # MNIST-10k (the 10,000 t10k images split 8,000/2,000) at the paper's 4.75 bits.
    "mnist10k": StudyConfig(
        name="mnist10k",
        dataset="mnist_idx",
        rates=((3, 3),),
        e2e_lambda_c=(0.0, 0.0033, 0.0066, 0.01, 0.015),
        universal_lambda_c=(0.0, 0.0033, 0.0066, 0.01, 0.015),
        base_lambda_c=0.015,
        epochs=30,
    ),
    # Full MNIST (TFDS), the paper's grids and rates; for users with the data and a GPU.
    "mnist": StudyConfig(
        name="mnist",
        dataset="mnist",
        rates=((3, 3), (3, 4), (4, 4)),
        e2e_lambda_c=(0.0, 0.001, 0.0033, 0.0066, 0.008, 0.011, 0.013, 0.015),
        universal_lambda_c=(0.0, 3e-5, 5e-5, 1e-4, 6e-4, 1e-3, 0.015),
        base_lambda_c=0.015,
        epochs=30,
    ),
    # SVHN (TFDS), 30 bits as in the uRDP code, lambda_c on the SVHN scale; GPU advised.
    "svhn": StudyConfig(
        name="svhn",
        dataset="svhn_cropped",
        rates=((10, 8),),
        e2e_lambda_c=(0.0, 0.00025, 0.0005, 0.001, 0.002),
        universal_lambda_c=(0.0, 0.00025, 0.0005, 0.001, 0.002),
        base_lambda_c=0.002,
        epochs=80,
    ),
}


def study_config(preset: str, **overrides: Any) -> StudyConfig:
    """The preset's study with `overrides` (None values are ignored)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown study preset {preset!r}; expected one of {', '.join(PRESETS)}")
    config = PRESETS[preset]
    overrides = {key: value for key, value in overrides.items() if value is not None}
    config = dataclasses.replace(config, **overrides)
    grids = {"e2e_lambda_c": config.e2e_lambda_c, "universal_lambda_c": config.universal_lambda_c}
    for name, values in grids.items():
        if not values or any(not value >= 0 for value in values):
            raise ValueError(f"{name} must be one or more values >= 0, got {list(values)}")
    if config.base_lambda_c not in config.e2e_lambda_c:
        raise ValueError(f"base_lambda_c={config.base_lambda_c} is not in the E2E grid")
    if not config.rates or any(d < 1 or levels < 2 for d, levels in config.rates):
        raise ValueError(f"rates must be (latent_dim >= 1, num_levels >= 2) pairs: {config.rates}")
    if config.data_dir is not None and not pathlib.Path(config.data_dir).is_dir():
        raise ValueError(f"--data_dir={config.data_dir}: directory not found")
    return config


def _label(value: float) -> str:
    return f"c{value:g}"


@dataclasses.dataclass
class _Job:
    family: str
    rate: tuple[int, int]
    lambda_c: float
    workdir: pathlib.Path
    head: str
    train: dict[str, Any]


def _jobs(
    config: StudyConfig, root: pathlib.Path, bases: tuple[str, ...] = tuple(BASES)
) -> list[_Job]:
    """All trainings in dependency order (bases before the heads that reuse their encoders)."""
    jobs = []
    main_rate = config.rates[0]
    for rate in config.rates:
        tag = f"d{rate[0]}-L{rate[1]}"
        for value in config.e2e_lambda_c:
            workdir = root / "e2e" / tag / _label(value)
            jobs.append(
                _Job("e2e", rate, value, workdir, f"e2e-{tag}-{_label(value)}", {"lambda_c": value})
            )
    tag = f"d{main_rate[0]}-L{main_rate[1]}"
    paper_base = root / "e2e" / tag / _label(config.base_lambda_c)
    multihead_base = root / "multihead" / tag
    if "multihead" in bases:
        jobs.append(
            _Job(
                "multihead-joint",
                main_rate,
                math.nan,
                multihead_base,
                "multihead",
                {"multihead_lambda_c": tuple(config.universal_lambda_c)},
            )
        )
    for base_name, base in (("paper", paper_base), ("multihead", multihead_base)):
        if base_name not in bases:
            continue
        family = BASES[base_name]
        for value in config.universal_lambda_c:
            workdir = root / family / tag / _label(value)
            jobs.append(
                _Job(
                    family,
                    main_rate,
                    value,
                    workdir,
                    f"{family}-{_label(value)}",
                    {"lambda_c": value, "encoder_dir": str(base / "encoder")},
                )
            )
    return jobs


def _train(
    job: _Job,
    config: StudyConfig,
    classifier_dir: pathlib.Path,
    seed: int,
    extra: dict[str, Any],
    verbose: int = 0,
) -> dict[str, Any]:
    from rdc_keras.trainers.runner import TrainConfig, train_run

    train_config = TrainConfig(
        workdir=str(job.workdir),
        dataset=config.dataset,
        data_dir=config.data_dir,
        latent_dim=job.rate[0],
        num_levels=job.rate[1],
        classifier_mode="pretrained",
        classifier_dir=str(classifier_dir),
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch,
        batch_size=config.batch_size,
        seed=seed,
        verbose=verbose,
        head_name=job.head,
        **job.train,
        **extra,
    )
    return train_run(train_config)


def _heads(job: _Job) -> list[tuple[str, pathlib.Path, float]]:
    """(name, head directory, lambda_c) of the heads a finished job produced."""
    heads_dir = job.workdir / "heads"
    out = []
    for head_dir in sorted(heads_dir.iterdir()):
        if head_dir.name.startswith("."):  # a temporary left by an interrupted save
            continue
        description = runs.read_json(head_dir / "head.json")
        out.append((description["name"], head_dir, float(description["lambda_c"])))
    return out


def _describe(job: _Job) -> str:
    point = "all heads" if math.isnan(job.lambda_c) else f"lambda_c={job.lambda_c:g}"
    return f"{job.family} d={job.rate[0]} L={job.rate[1]} {point}"


def _evaluate_head(encoder_dir, head_dir, arrays, judge, config, seed, cache) -> dict[str, Any]:
    from rdc_keras import evaluation
    from rdc_keras.trainers.runner import load_encoder, load_head

    if cache.exists():
        cached = runs.read_json(cache)
        if cached.get("seed") == seed and cached.get("w1_steps") == config.w1_steps:
            return cached
    encoder, encoder_description = load_encoder(encoder_dir)
    decoder, _ = load_head(head_dir, encoder_description)
    metrics = evaluation.evaluate(
        encoder,
        decoder,
        arrays,
        judge,
        num_levels=encoder_description["num_levels"],
        seed=seed,
        w1_steps=config.w1_steps,
        preset=encoder_description["preset"],
    )
    metrics["w1_steps"] = config.w1_steps
    runs.write_json(cache, metrics)
    return metrics


def run_study(
    config: StudyConfig,
    workdir: str | pathlib.Path,
    seed: int = 0,
    export: bool = True,
    log: Callable[[str], None] = print,
    train_overrides: dict[str, Any] | None = None,
    bases: tuple[str, ...] = tuple(BASES),
    verbose: int = 0,
) -> dict[str, Any]:
    """Trains and evaluates every model of the study; writes results, report and figures.

    Args:
      config: the study (see `study_config`).
      workdir: study directory; an interrupted study resumes from it.
      seed: seed of every training, the evaluation dither and the plots.
      export: write the SavedModels of each universal family.
      log: receives one line per finished model and step of the study.
      train_overrides: extra `TrainConfig` fields for every training (tests, precision).
      bases: universal families to train, a subset of `BASES` ("paper", "multihead").
      verbose: 1 also logs a line when each training starts and prints one line per epoch.

    Returns:
      The results dict also written to `results.json`.
    """
    import tensorflow as tf

    from rdc_keras.trainers import classifier as classifier_lib

    bases = tuple(dict.fromkeys(bases))
    if not bases or any(base not in BASES for base in bases):
        raise ValueError(f"bases must be one or more of {', '.join(BASES)}, got {list(bases)}")
    root = pathlib.Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    study_file = root / "study.json"
    settings = {**dataclasses.asdict(config), "seed": seed}
    settings["rates"] = [list(rate) for rate in config.rates]
    settings = json.loads(json.dumps(settings))  # tuples -> lists, as read back from disk
    if study_file.exists():
        previous = runs.read_json(study_file)["study"]
        if previous != settings:
            changed = sorted(k for k in settings if previous.get(k) != settings.get(k))
            raise ValueError(
                f"{root} holds a study with other settings ({', '.join(changed)}); "
                "use another --workdir"
            )
    runs.write_json(study_file, {"study": settings, "environment": runs.environment()})
    start = time.perf_counter()

    # 1. The reference classifier: the single judge of every model.
    classifier_dir = root / "classifier"
    test_arrays = data.load_arrays(config.dataset, "test", data_dir=config.data_dir)
    if not (classifier_dir / runs.NETWORK_FILE).exists():
        log(f"[classifier] training the reference classifier on clean {config.dataset}")
        tick = time.perf_counter()
        preset = data.dataset_info(config.dataset).preset
        train_ds = data.prepare(
            data.load_dataset(config.dataset, "train", data_dir=config.data_dir),
            networks.preset_defaults(preset).classifier_batch_size,
            shuffle=True,
            seed=seed,
        )
        model = classifier_lib.train_classifier(
            preset,
            train_ds,
            epochs=config.classifier_epochs,
            seed=seed,
            verbose=0,
        )
        test_ds = data.prepare(tf.data.Dataset.from_tensor_slices(test_arrays), 1000, shuffle=False)
        metrics = classifier_lib.evaluate_classifier(model, test_ds)
        metrics["train_seconds"] = round(time.perf_counter() - tick, 2)
        classifier_lib.save_classifier(
            classifier_dir, model, data.dataset_info(config.dataset).preset, test_metrics=metrics
        )
    judge, judge_description = classifier_lib.load_classifier(classifier_dir)
    log(f"[classifier] test accuracy {judge_description['test_metrics']['accuracy']:.4f}")

    # 2. Train everything (finished runs are reported, not retrained), then evaluate.
    jobs = _jobs(config, root, bases)
    rows = []
    for number, job in enumerate(jobs, 1):
        tick = time.perf_counter()
        if verbose:
            log(f"[{number}/{len(jobs)}] {_describe(job)}: {job.workdir}")
        result = _train(job, config, classifier_dir, seed, train_overrides or {}, verbose)
        train_seconds = result.get("train_seconds", 0.0)
        encoder_dir = job.train.get("encoder_dir") or str(job.workdir / "encoder")
        for head_name, head_dir, lambda_c in _heads(job):
            metrics = _evaluate_head(
                encoder_dir,
                head_dir,
                test_arrays,
                judge,
                config,
                seed,
                head_dir.parent.parent / f"evaluation-{head_name}.json",
            )
            rows.append(
                {
                    "model": head_name,
                    "family": job.family,
                    "latent_dim": job.rate[0],
                    "num_levels": job.rate[1],
                    "rate_bits": metrics["rate_bits"],
                    "lambda_c": lambda_c,
                    "lambda_p": 0.0,
                    "base_lambda_c": (
                        config.base_lambda_c if job.family == "universal-paper" else None
                    ),
                    "mse": metrics["mse"],
                    "psnr": metrics["psnr"],
                    "ce_nats": metrics["ce_nats"],
                    "accuracy": metrics["accuracy"],
                    "w1": metrics.get("w1"),
                    "train_seconds": train_seconds,
                    "workdir": str(job.workdir.relative_to(root)),
                }
            )
        last = rows[-1]
        log(
            f"[{number}/{len(jobs)}] {_describe(job)}: mse={last['mse']:.5f} "
            f"ce={last['ce_nats']:.3f} "
            f"acc={last['accuracy']:.3f} ({time.perf_counter() - tick:.0f} s)"
        )

    results = {
        "study": settings,
        "units": {
            "mse": "per-pixel mean on [0, 1]",
            "psnr": "dB",
            "ce_nats": "nats",
            "accuracy": "fraction of test images in [0, 1]",
            "w1": "critic score difference E h(x) - E h(x_hat) (null: not estimated)",
            "rate_bits": "bits per image (d log2 L)",
            "train_seconds": "s",
        },
        "bases": list(bases),
        "models": rows,
        "penalties": _penalties(rows, config),
        "reference_classifier": judge_description["test_metrics"],
        "wall_seconds": round(time.perf_counter() - start, 1),
        # A resumed study's wall time excludes the runs it found finished; this sum does not.
        "train_seconds_total": round(
            sum({row["workdir"]: row["train_seconds"] for row in rows}.values()), 1
        ),
    }
    runs.write_json(root / "results.json", results)
    _write_csv(root / "results.csv", rows)
    _figures(root, rows, config, test_arrays, seed, log)
    if export:
        _export(root, jobs, config, seed, log)
    (root / "report.md").write_text(_report(results, config))
    log(f"report: {root / 'report.md'}")
    return results


def _penalties(rows: list[dict[str, Any]], config: StudyConfig) -> list[dict[str, Any]]:
    """Universal vs E2E at matched lambda_c (main rate): distortion penalty in %."""
    d, levels = config.rates[0]
    e2e = {
        row["lambda_c"]: row
        for row in rows
        if row["family"] == "e2e" and (row["latent_dim"], row["num_levels"]) == (d, levels)
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


def _write_csv(path: pathlib.Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(buffer.getvalue())
    tmp.replace(path)


def _figures(root, rows, config, test_arrays, seed, log) -> None:
    from rdc_keras import evaluation, plots
    from rdc_keras.trainers.runner import load_encoder, load_head

    figures = root / "figures"
    d, levels = config.rates[0]
    main = [
        row
        for row in rows
        if (row["latent_dim"], row["num_levels"]) == (d, levels)
        and row["family"] != "multihead-joint"
    ]
    rate = d * math.log2(levels)
    plots.save_figure(
        plots.tradeoff_figure(main, rate, f"{config.name}: E2E vs universal at {rate:.2f} bits"),
        figures / "tradeoff.png",
    )
    e2e = [row for row in rows if row["family"] == "e2e"]
    if len({row["rate_bits"] for row in e2e}) > 1:
        plots.save_figure(
            plots.rates_figure(e2e, f"{config.name}: E2E at several rates"), figures / "rates.png"
        )
    # Reconstruction grids: originals above each head's output, per family at the main rate.
    originals = test_arrays[0][: config.grid_images]
    for family in ("e2e", "universal-paper", "universal-multihead"):
        panels = []
        for row in sorted((r for r in main if r["family"] == family), key=lambda r: r["lambda_c"]):
            job_dir = root / row["workdir"]
            head_dir = job_dir / "heads" / row["model"]
            encoder_dir = runs.read_json(head_dir / "head.json")["encoder_dir"]
            encoder, description = load_encoder(encoder_dir)
            decoder, _ = load_head(head_dir, description)
            _, x_hat = evaluation.reconstruct(
                encoder, decoder, originals, description["num_levels"], seed=seed
            )
            panels.append((f"λc={row['lambda_c']:g}", x_hat))
        if panels:
            plots.save_figure(
                plots.reconstruction_grid(originals, panels, family),
                figures / f"reconstructions-{family}.png",
            )
    log(f"figures: {figures}")


def _export(root, jobs, config, seed, log) -> None:
    """SavedModels of each universal encoder with its heads (rdc_keras.export, DESIGN layout).

    A family already exported with the same encoder and heads is not exported again, so a
    resumed study does not add a SavedModel version per run.
    """
    from rdc_keras import export

    for family in ("universal-paper", "universal-multihead"):
        members = [job for job in jobs if job.family == family]
        if not members:
            continue
        encoder_dir = members[0].train["encoder_dir"]
        head_dirs = [head_dir for job in members for _, head_dir, _ in _heads(job)]
        manifest_path = root / "saved_models" / family / "manifest.json"
        fingerprint = runs.read_json(pathlib.Path(encoder_dir) / runs.NETWORK_FILE)["fingerprint"]
        if manifest_path.exists():
            manifest = runs.read_json(manifest_path)
            exported = sorted(manifest.get("heads", {}))
            wanted = sorted(head_dir.name for head_dir in head_dirs)
            if manifest.get("encoder_fingerprint") == fingerprint and exported == wanted:
                log(f"export: {manifest_path.parent} is up to date")
                continue
        export.export_run(
            None,
            root / "saved_models",
            family,
            encoder_dir=encoder_dir,
            head_dirs=head_dirs,
            prior_dataset=config.dataset,
            data_dir=config.data_dir,
            seed=seed,
        )
        log(f"export: {manifest_path.parent}")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _report(results: dict[str, Any], config: StudyConfig) -> str:
    rows = results["models"]
    d, levels = config.rates[0]
    rate = d * math.log2(levels)
    out = [f"# RDC study `{config.name}`", ""]
    out.append(
        f"Dataset `{config.dataset}`; main rate d={d}, L={levels} ({rate:.2f} bits per image, "
        f"fixed-rate bound d·log2 L). Every model is scored on the test split by the same frozen "
        f"reference classifier (test accuracy on clean images "
        f"{results['reference_classifier']['accuracy']:.4f}) with per-image dither seeds "
        f"{results['study']['seed']} + i. MSE is the per-pixel mean on [0, 1]; CE is in nats."
    )
    out += ["", "## How the models were trained", ""]
    out.append(
        f"- **E2E**: encoder and decoder trained together for each λc in "
        f"{list(config.e2e_lambda_c)} (λd = 1, λp = 0, frozen pretrained classifier in the loss)."
    )
    families = {row["family"] for row in rows}
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
    out.append(f"- Epochs per model: {epochs}; seed {results['study']['seed']}.")
    out += ["", f"## E2E vs universal at {rate:.2f} bits", ""]
    penalty_rows = []
    for p in results["penalties"]:
        penalty_rows.append(
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
        )
    out.append(
        _table(
            [
                "family",
                "λc",
                "MSE E2E",
                "MSE universal",
                "distortion penalty",
                "CE E2E",
                "CE universal",
                "acc E2E",
                "acc universal",
            ],
            penalty_rows,
        )
    )
    for family in ("universal-paper", "universal-multihead"):
        values = [
            p["distortion_penalty_percent"] for p in results["penalties"] if p["family"] == family
        ]
        if values:
            best_e2e = min(
                row["mse"]
                for row in rows
                if row["family"] == "e2e" and (row["latent_dim"], row["num_levels"]) == (d, levels)
            )
            best_universal = min(row["mse"] for row in rows if row["family"] == family)
            out.append("")
            out.append(
                f"- {family}: mean distortion penalty {np.mean(values):+.1f}% at matched λc; "
                f"lowest MSE {best_universal:.5f} vs lowest E2E MSE {best_e2e:.5f} "
                f"({100 * (best_universal - best_e2e) / best_e2e:+.1f}%)."
            )
    out += ["", "## Every model", ""]
    model_rows = [
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
        for row in rows
    ]
    out.append(
        _table(
            ["model", "family", "bits", "λc", "MSE", "PSNR dB", "CE nats", "accuracy", "train s"],
            model_rows,
        )
    )
    out += [
        "",
        f"Study wall time: {results['wall_seconds']:.0f} s (this invocation; finished models "
        f"are not retrained on a re-run). Training time of all models: "
        f"{results['train_seconds_total']:.0f} s.",
        "",
    ]
    out += ["## Figures", "", "![tradeoff](figures/tradeoff.png)", ""]
    if len(config.rates) > 1:
        out += ["![rates](figures/rates.png)", ""]
    for family in ("e2e", "universal-paper", "universal-multihead"):
        if family in families:
            out += [f"![{family}](figures/reconstructions-{family}.png)", ""]
    return "\n".join(out)
