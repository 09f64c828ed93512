"""A whole study: reference classifier, E2E grid, universal heads, evaluation, report, figures.

The paper's protocol (arXiv:2504.13191 §4; digest §4.3): train end-to-end (E2E) models over a
lambda_c grid; freeze the encoder of one of them (the paper takes lambda_c = 0.015) and train a new
head per lambda_c on it ("universal, paper base"). Beyond the paper, a multi-head base encoder is
trained jointly with heads at every grid point and new heads are trained on it the same way
("universal, multi-head base"). Every model is scored by `evaluation.evaluate` with the same
frozen reference classifier, test split and dither seeds, and compared at matched lambda_c: the
distortion penalty is 100 * (MSE_universal - MSE_E2E) / MSE_E2E.

Every training is an `rdc_keras.trainers.runner` run in its own directory (`rdc_keras.runs`), so
an interrupted study resumes where it stopped and finished models are never retrained. This module
owns the presets, the job plan and the order of the steps (`run_study`); the reference classifier
is `trainers.classifier.train_reference_classifier`, and the penalties, results.csv and report.md
are written by `rdc_keras.study_report`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time
from collections.abc import Callable
from typing import Any

from rdc_keras import data, runs, study_report
from rdc_keras.files import atomic_write, read_json, write_json
from rdc_keras.layers import rate_bits

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
    """One training of the study: a runner run in `workdir` with the `train` TrainConfig fields."""

    family: str
    rate: tuple[int, int]
    lambda_c: float  # nan for the multi-head base (one head per universal lambda_c)
    workdir: pathlib.Path
    head: str
    train: dict[str, Any]


def _jobs(
    config: StudyConfig, root: pathlib.Path, bases: tuple[str, ...] = tuple(BASES)
) -> list[_Job]:
    """All trainings in dependency order (bases before the heads that reuse their encoders)."""
    jobs = []
    for rate in config.rates:
        tag = f"d{rate[0]}-L{rate[1]}"
        for value in config.e2e_lambda_c:
            workdir, head = root / "e2e" / tag / _label(value), f"e2e-{tag}-{_label(value)}"
            jobs.append(_Job("e2e", rate, value, workdir, head, {"lambda_c": value}))
    main_rate = config.rates[0]
    tag = f"d{main_rate[0]}-L{main_rate[1]}"
    base_dirs = {
        "paper": root / "e2e" / tag / _label(config.base_lambda_c),
        "multihead": root / "multihead" / tag,
    }
    if "multihead" in bases:
        train = {"multihead_lambda_c": tuple(config.universal_lambda_c)}
        jobs.append(
            _Job("multihead-joint", main_rate, math.nan, base_dirs["multihead"], "multihead", train)
        )
    for base in (base for base in BASES if base in bases):
        family = BASES[base]
        for value in config.universal_lambda_c:
            workdir, head = root / family / tag / _label(value), f"{family}-{_label(value)}"
            encoder_dir = str(runs.RunDir(base_dirs[base]).encoder_dir)
            train = {"lambda_c": value, "encoder_dir": encoder_dir}
            jobs.append(_Job(family, main_rate, value, workdir, head, train))
    return jobs


def _check_bases(bases: tuple[str, ...]) -> tuple[str, ...]:
    bases = tuple(dict.fromkeys(bases))
    if not bases or any(base not in BASES for base in bases):
        raise ValueError(f"bases must be one or more of {', '.join(BASES)}, got {list(bases)}")
    return bases


def _record_settings(root: pathlib.Path, config: StudyConfig, seed: int) -> dict[str, Any]:
    """Writes study.json; refuses a directory that holds a study with other settings.

    Returns:
      The settings as JSON reads them back (tuples become lists).
    """
    root.mkdir(parents=True, exist_ok=True)
    study_file = root / "study.json"
    settings = {**dataclasses.asdict(config), "seed": seed}
    settings["rates"] = [list(rate) for rate in config.rates]
    settings = json.loads(json.dumps(settings))  # tuples -> lists, as read back from disk
    if study_file.exists():
        previous = read_json(study_file)["study"]
        if previous != settings:
            changed = sorted(k for k in settings if previous.get(k) != settings.get(k))
            raise ValueError(
                f"{root} holds a study with other settings ({', '.join(changed)}); "
                "use another --workdir"
            )
    write_json(study_file, {"study": settings, "environment": runs.environment()})
    return settings


def _reference_classifier(
    directory: pathlib.Path, config: StudyConfig, seed: int, log: Callable[[str], None]
) -> tuple[Any, dict[str, Any]]:
    """The single judge of every model: trained once on clean images, then loaded."""
    from rdc_keras.trainers import classifier as classifier_lib

    if runs.is_saved_network(directory):
        judge, description = runs.load_classifier(directory)
    else:
        log(f"[classifier] training the reference classifier on clean {config.dataset}")
        judge, description = classifier_lib.train_reference_classifier(
            directory,
            config.dataset,
            config.data_dir,
            seed=seed,
            epochs=config.classifier_epochs,
            verbose=0,
        )
    log(f"[classifier] test accuracy {description['test_metrics']['accuracy']:.4f}")
    return judge, description


def _train(job: _Job, config: StudyConfig, classifier_dir, seed, extra, verbose) -> dict[str, Any]:
    """Runs (or, when finished, reports) one job's training; returns its results.json."""
    from rdc_keras.config import TrainConfig
    from rdc_keras.trainers.runner import train_run

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


def _describe(job: _Job) -> str:
    point = "all heads" if math.isnan(job.lambda_c) else f"lambda_c={job.lambda_c:g}"
    return f"{job.family} d={job.rate[0]} L={job.rate[1]} {point}"


def _evaluate_head(head: runs.Head, arrays, judge, config, seed, cache) -> dict[str, Any]:
    """`evaluation.evaluate` of one head, cached in `cache` for the same seed and w1_steps."""
    from rdc_keras import evaluation

    if cache.exists():
        cached = read_json(cache)
        if cached.get("seed") == seed and cached.get("w1_steps") == config.w1_steps:
            return cached
    encoder, encoder_description = runs.load_encoder(head.encoder_dir)
    decoder, _ = head.load(encoder_description)
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
    write_json(cache, metrics)
    return metrics


def _row(job: _Job, head: runs.Head, metrics, train_seconds, config, root) -> dict[str, Any]:
    """One model's line of results.json and results.csv."""
    return {
        "model": head.name,
        "family": job.family,
        "latent_dim": job.rate[0],
        "num_levels": job.rate[1],
        "rate_bits": metrics["rate_bits"],
        "lambda_c": float(head.description["lambda_c"]),
        "lambda_p": 0.0,
        "base_lambda_c": config.base_lambda_c if job.family == "universal-paper" else None,
        "mse": metrics["mse"],
        "psnr": metrics["psnr"],
        "ce_nats": metrics["ce_nats"],
        "accuracy": metrics["accuracy"],
        "w1": metrics.get("w1"),
        "train_seconds": train_seconds,
        "workdir": str(job.workdir.relative_to(root)),
    }


def _train_and_evaluate(
    jobs: list[_Job], config, root, judge, test_arrays, seed, extra, verbose, log
) -> list[dict[str, Any]]:
    """Trains every job in order (finished runs are reported, not retrained) and scores its
    heads; returns one row per head."""
    rows = []
    for number, job in enumerate(jobs, 1):
        tick = time.perf_counter()
        if verbose:
            log(f"[{number}/{len(jobs)}] {_describe(job)}: {job.workdir}")
        result = _train(job, config, root / "classifier", seed, extra, verbose)
        train_seconds = result.get("train_seconds", 0.0)
        for head in runs.RunDir(job.workdir).heads():
            cache = job.workdir / f"evaluation-{head.name}.json"
            metrics = _evaluate_head(head, test_arrays, judge, config, seed, cache)
            rows.append(_row(job, head, metrics, train_seconds, config, root))
        last = rows[-1]
        log(
            f"[{number}/{len(jobs)}] {_describe(job)}: mse={last['mse']:.5f} "
            f"ce={last['ce_nats']:.3f} "
            f"acc={last['accuracy']:.3f} ({time.perf_counter() - tick:.0f} s)"
        )
    return rows


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
    bases = _check_bases(bases)
    root = pathlib.Path(workdir)
    settings = _record_settings(root, config, seed)
    start = time.perf_counter()
    test_arrays = data.load_arrays(config.dataset, "test", data_dir=config.data_dir)
    judge, judge_description = _reference_classifier(root / "classifier", config, seed, log)
    jobs = _jobs(config, root, bases)
    rows = _train_and_evaluate(
        jobs, config, root, judge, test_arrays, seed, train_overrides or {}, verbose, log
    )
    wall_seconds = round(time.perf_counter() - start, 1)
    # results.json records the judge's test metrics with its training time, as it always has.
    judge_record = {"train_seconds": judge_description.get("train_seconds")}
    judge_record.update(judge_description["test_metrics"])
    results = study_report.results(settings, bases, rows, config, judge_record, wall_seconds)
    _write_outputs(root, results, jobs, config, test_arrays, seed, export, log)
    return results


def _write_outputs(root, results, jobs, config, test_arrays, seed, export, log) -> None:
    """results.json and .csv, the figures, the SavedModels (`export`) and, last, report.md."""
    write_json(root / "results.json", results)
    study_report.write_csv(root / "results.csv", results["models"])
    _figures(root, results["models"], config, test_arrays, seed, log)
    if export:
        _export(root, jobs, config, seed, log)
    report = study_report.render(results, config, rate_bits(*config.rates[0]))
    atomic_write(root / "report.md", report)
    log(f"report: {root / 'report.md'}")


def _figures(root, rows, config, test_arrays, seed, log) -> None:
    """Trade-off and rate figures, and reconstruction grids of each family at the main rate."""
    from rdc_keras import evaluation, plots

    figures = root / "figures"
    d, levels = config.rates[0]
    main = [
        row
        for row in rows
        if (row["latent_dim"], row["num_levels"]) == (d, levels)
        and row["family"] != "multihead-joint"
    ]
    rate = rate_bits(d, levels)
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
            heads = {head.name: head for head in runs.RunDir(root / row["workdir"]).heads()}
            head = heads[row["model"]]
            encoder, description = runs.load_encoder(head.encoder_dir)
            decoder, _ = head.load(description)
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
        head_dirs = [head.path for job in members for head in runs.RunDir(job.workdir).heads()]
        manifest_path = root / "saved_models" / family / "manifest.json"
        if manifest_path.exists():
            manifest = read_json(manifest_path)
            exported = sorted(manifest.get("heads", {}))
            wanted = sorted(head_dir.name for head_dir in head_dirs)
            fingerprint = runs.load_encoder(encoder_dir)[1]["fingerprint"]
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
