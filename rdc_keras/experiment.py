"""A whole study: reference classifier, E2E grid, universal heads, evaluation, report, figures.

The paper's protocol (arXiv:2504.13191 §4; digest §4.3): train end-to-end (E2E) models over a
grid of (lambda_c, lambda_p) points; freeze the encoder of one of them (the paper takes
lambda_c = 0.015 for RDC, lambda_p = 0.015 for RDP) and train a new head per point of a second
grid on it ("universal, paper base"; a head with lambda_p > 0 starts its critic from the base
model's, as the reference code does). Beyond the paper, a multi-head base encoder is trained
jointly with heads at every universal lambda_c and new heads are trained on it the same way
("universal, multi-head base"). Every model is scored by `evaluation.evaluate` with the same
frozen reference classifier, test split, dither seeds and realism judges (held-out W1, the
judge's Fréchet distance), and compared with E2E at matched lambda and at matched tradeoff
(`rdc_keras.study_report`).

Every training is an `rdc_keras.trainers.runner` run in its own directory (`rdc_keras.runs`), so
an interrupted study resumes where it stopped and finished models are never retrained; each
training runs under its claim (`files.claim`), so two processes never train one model. This module
owns the order of the steps (`run_study`) and one model of the plan at a time (`run_model`, for a
cluster's scheduler); the plan itself (model names, directories, dependencies) is
`rdc_keras.study_plan`, what a study trains (presets, `StudyConfig`) `rdc_keras.studies`, the
reference classifier `trainers.classifier.train_reference_classifier`, and the penalties,
results.csv and report.md are written by `rdc_keras.study_report`. (About 600 lines: one small
function per step of a study, read top to bottom in the order `run_study` calls them.)
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rdc_keras import data, remote, runs, study_plan, study_report
from rdc_keras.files import atomic_write, claim, read_json, write_json
from rdc_keras.layers import rate_bits
from rdc_keras.studies import BASES, PRESETS, StudyConfig, study_config
from rdc_keras.study_plan import CLASSIFIER, CLASSIFIER_DIR, REPORT, Job

__all__ = ["BASES", "PRESETS", "StudyConfig", "run_model", "run_study", "study_config"]


def _check_bases(bases: tuple[str, ...]) -> tuple[str, ...]:
    bases = tuple(dict.fromkeys(bases))
    if not bases or any(base not in BASES for base in bases):
        raise ValueError(f"bases must be one or more of {', '.join(BASES)}, got {list(bases)}")
    return bases


def _check_seeds(seeds: Sequence[int] | None, seed: int) -> tuple[int, ...]:
    """The study's seeds: `(seed,)` by default; otherwise distinct integers >= 0, whose first
    is the study's seed (its classifier, its directories, the seed study.json records)."""
    if seeds is None:
        return (seed,)
    seeds = tuple(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or any(int(s) != s or s < 0 for s in seeds):
        raise ValueError(f"--seeds: expected distinct integers >= 0, got {list(seeds)}")
    if seeds[0] != seed:
        raise ValueError(f"--seeds={','.join(map(str, seeds))}: the first must be --seed={seed}")
    return tuple(int(s) for s in seeds)


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
        # Settings added since a study was written take their defaults (older studies resume).
        added = {
            field.name: field.default
            for field in dataclasses.fields(StudyConfig)
            if field.default is not dataclasses.MISSING
        }
        previous = {**json.loads(json.dumps(added)), **read_json(study_file)["study"]}
        if previous != settings:
            changed = sorted(k for k in settings if previous.get(k) != settings.get(k))
            raise ValueError(
                f"{root} holds a study with other settings ({', '.join(changed)}); "
                "use another --workdir"
            )
    write_json(study_file, {"study": settings, "environment": runs.environment()})
    return settings


def _reference_classifier(
    root: pathlib.Path, config: StudyConfig, seed: int, log: Callable[[str], None]
) -> tuple[Any, dict[str, Any]]:
    """The single judge of every model: trained once on clean images (under its claim), then
    loaded."""
    from rdc_keras.trainers import classifier as classifier_lib

    directory = root / CLASSIFIER_DIR
    if not runs.is_saved_network(directory):
        with claim(study_plan.claim_path(root, CLASSIFIER), f"{CLASSIFIER} of {root}"):
            if not runs.is_saved_network(directory):  # another process may have finished it
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
    judge, description = runs.load_classifier(directory)
    log(f"[classifier] test accuracy {description['test_metrics']['accuracy']:.4f}")
    return judge, description


def _train(job: Job, config: StudyConfig, classifier_dir, extra, verbose) -> dict[str, Any]:
    """Runs (or, when finished, reports) one job's training, with the job's seed; returns its
    results.json."""
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
        schedule=config.schedule,
        mixed_precision=config.mixed_precision,
        seed=job.seed,
        verbose=verbose,
        head_name=job.head,
        **job.train,
        **extra,
    )
    return train_run(train_config)


def _evaluate_head(head: runs.Head, arrays, judge, config, seed, cache) -> dict[str, Any]:
    """`evaluation.evaluate` of one head, cached in `cache` for the same seed and w1_steps."""
    from rdc_keras import evaluation

    if cache.exists():
        cached = read_json(cache)
        same = (cached.get("seed"), cached.get("w1_steps"), cached.get("protocol"))
        if same == (seed, config.w1_steps, evaluation.PROTOCOL_VERSION):
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


def _row(job: Job, head: runs.Head, metrics, train_seconds, config, root, seeds) -> dict[str, Any]:
    """One model's line of results.json and results.csv (with its seed when the study has
    several)."""
    row = {} if len(seeds) == 1 else {"seed": job.seed}
    return row | {
        "model": head.name,
        "family": job.family,
        "latent_dim": job.rate[0],
        "num_levels": job.rate[1],
        "rate_bits": metrics["rate_bits"],
        "lambda_c": float(head.description["lambda_c"]),
        "lambda_p": float(head.description.get("lambda_p") or 0.0),
        "base_lambda_c": config.base_lambda_c if job.family == "universal-paper" else None,
        "base_lambda_p": config.base_lambda_p if job.family == "universal-paper" else None,
        "mse": metrics["mse"],
        "psnr": metrics["psnr"],
        "ce_nats": metrics["ce_nats"],
        "accuracy": metrics["accuracy"],
        "w1": metrics.get("w1"),
        "judge_fd": metrics.get("judge_fd"),
        "train_seconds": train_seconds,
        "workdir": str(job.workdir.relative_to(root)),
    }


def _train_and_evaluate(
    numbered: list[tuple[int, Job]],
    total: int,
    config,
    root,
    judge,
    test_arrays,
    seeds,
    extra,
    verbose,
    log,
) -> list[dict[str, Any]]:
    """Trains every (plan number, job) in order under its claim (finished runs are reported,
    not retrained) and scores its heads with the job's seed; returns one row per head."""
    from rdc_keras.trainers.callbacks import format_duration

    rows = []
    trained_seconds: list[float] = []  # models trained by this call (not reported as finished)
    # Which models are left to train, read once (for the ETA; another process may finish some).
    pending = [not runs.RunDir(job.workdir).is_finished() for _, job in numbered]
    for index, (number, job) in enumerate(numbered):
        tick = time.perf_counter()
        if verbose:
            log(f"[{number}/{total}] {job.describe()}: {job.workdir}")
        with claim(study_plan.claim_path(root, job.name), f"{job.name} of {root}"):
            result = _train(job, config, root / CLASSIFIER_DIR, extra, verbose)
        train_seconds = result.get("train_seconds", 0.0)
        for head in runs.RunDir(job.workdir).heads():
            cache = job.workdir / f"evaluation-{head.name}.json"
            metrics = _evaluate_head(head, test_arrays, judge, config, job.seed, cache)
            rows.append(_row(job, head, metrics, train_seconds, config, root, seeds))
        last = rows[-1]
        realism = f" fd={last['judge_fd']:.3f}" if last.get("judge_fd") is not None else ""
        if last.get("w1") is not None:
            realism += f" w1={last['w1']:.4f}"
        seconds = time.perf_counter() - tick
        if pending[index]:
            trained_seconds.append(seconds)
        left = sum(pending[index + 1 :])
        timing = f"{seconds:.0f} s"
        if left and trained_seconds:  # from the measured times of this call's trainings
            eta = format_duration(left * sum(trained_seconds) / len(trained_seconds))
            timing += f"; {left} to train, ETA {eta}"
        log(
            f"[{number}/{total}] {job.describe()}: mse={last['mse']:.5f} "
            f"ce={last['ce_nats']:.3f} acc={last['accuracy']:.3f}{realism} ({timing})"
        )
    return rows


def _is_finished(root: pathlib.Path, name: str, planned: dict[str, Job]) -> bool:
    """Whether the plan's model `name` is finished (the classifier saved, a run's results)."""
    if name == CLASSIFIER:
        return runs.is_saved_network(root / CLASSIFIER_DIR)
    return runs.RunDir(planned[name].workdir).is_finished()


def _refuse_unfinished(root, names, planned, what: str) -> None:
    """Raises one line naming the models of `names` that are not finished yet."""
    missing = [name for name in names if not _is_finished(root, name, planned)]
    if missing:
        shown = ", ".join(missing[:8]) + (
            f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        )
        raise ValueError(
            f"{what} needs {len(missing)} unfinished model(s) of {root}: {shown} "
            "(run them with --model=NAME; --list shows the plan)"
        )


def run_study(
    config: StudyConfig,
    workdir: str | pathlib.Path,
    seed: int = 0,
    export: bool = True,
    log: Callable[[str], None] = print,
    train_overrides: dict[str, Any] | None = None,
    bases: tuple[str, ...] = tuple(BASES),
    verbose: int = 0,
    compare: Sequence[str | pathlib.Path] = (),
    report_only: bool = False,
    seeds: Sequence[int] | None = None,
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
      compare: finished studies (their directories or results.json files) whose models are
        drawn beside this study's in `figures/accuracy-compared.png` (e.g. accuracy vs MSE with
        and without lambda_p).
      report_only: train nothing: refuse unless every model of the first seed is finished, then
        evaluate (cached per model) and write the results, report, figures and exports; models
        of further seeds that are not finished yet are left out (the report's n says so).
      seeds: train every model once per seed (default: `(seed,)`; the first must be `seed`). The
        first seed's models keep the one-seed layout, a further seed's go under `seed-<S>/`; one
        reference classifier (trained with `seed`) and one evaluation protocol score them all,
        each model's dither seeded by its own training seed. With several seeds, results.json
        also holds each metric and penalty as mean ± std over seeds and paired per-seed findings
        (`rdc_keras.study_report`, `rdc_keras.spread`).

    Returns:
      The results dict also written to `results.json`.

    Raises:
      ValueError: bad settings, a study with other settings in `workdir`, a model claimed by
        another process, or (`report_only`) unfinished models.
    """
    bases = _check_bases(bases)
    if (train_overrides or {}).get("strategy") == "multi_worker":
        raise ValueError(
            "--strategy=multi_worker trains one model over a cluster: use it with --model=NAME "
            "(every worker runs the same command with its own TF_CONFIG)"
        )
    if remote.is_remote(workdir):
        return _run_remote_study(
            config,
            str(workdir),
            dict(
                seed=seed,
                export=export,
                train_overrides=train_overrides,
                bases=bases,
                verbose=verbose,
                compare=compare,
                report_only=report_only,
                seeds=seeds,
            ),
            log,
        )
    compared = [compared_study(path) for path in compare]  # checked before any training
    seeds = _check_seeds(seeds, seed)
    root = pathlib.Path(workdir)
    settings = _record_settings(root, config, seed)
    jobs = study_plan.jobs(config, root, bases, seeds)
    numbered = list(enumerate(jobs, 1))
    if report_only:
        planned = {job.name: job for job in jobs}
        first = [job.name for job in jobs if job.seed == seed]
        _refuse_unfinished(root, [CLASSIFIER, *first], planned, "--report_only")
        numbered = [(n, job) for n, job in numbered if runs.RunDir(job.workdir).is_finished()]
        if len(numbered) < len(jobs):
            log(
                f"[report] {len(jobs) - len(numbered)} model(s) of further seeds are not "
                "finished; they are left out (see n in the report)"
            )
    start = time.perf_counter()
    test_arrays = data.load_arrays(config.dataset, "test", data_dir=config.data_dir)
    judge, judge_description = _reference_classifier(root, config, seed, log)
    rows = _train_and_evaluate(
        numbered,
        len(jobs),
        config,
        root,
        judge,
        test_arrays,
        seeds,
        train_overrides or {},
        verbose,
        log,
    )
    first_rows = [row for row in rows if row.get("seed", seed) == seed]
    spread = _w1_judge_spread(root, first_rows, config, test_arrays, seed, log)
    wall_seconds = round(time.perf_counter() - start, 1)
    # results.json records the judge's test metrics with its training time, as it always has.
    judge_record = {"train_seconds": judge_description.get("train_seconds")}
    judge_record.update(judge_description["test_metrics"])
    results = study_report.results(
        settings, bases, rows, config, judge_record, wall_seconds, seeds=seeds
    )
    if spread is not None:
        results["w1_judge_spread"] = spread
    if compared:
        results["compared_with"] = [
            {key: study[key] for key in ("name", "path", "epochs", "lambda_p")}
            for study in compared
        ]
    with claim(study_plan.claim_path(root, REPORT), f"{REPORT} of {root}"):
        first_jobs = [job for job in jobs if job.seed == seed]
        _write_outputs(root, results, first_jobs, config, test_arrays, seed, export, log, compared)
    return results


def _run_remote_study(config: StudyConfig, url: str, options: dict, log) -> dict[str, Any]:
    """`run_study` into a `tf.io.gfile` URL by one process: the study is staged in a local
    directory (pulled first, so it resumes), pushed after every finished model and at the end
    (`rdc_keras.remote`); its results name the URL. No claims reach the URL: one process per
    URL study (a cluster's `--model` processes need a shared local or NFS directory)."""
    with remote.staged(url) as local:

        def pushing(line: str) -> None:
            log(line.replace(str(local), url))
            if line.startswith("["):  # a model, the classifier or the judge finished
                remote.push(local, url)

        with remote.reported_as(local, url):
            results = run_study(config, local, log=pushing, **options)
        return remote.renamed_paths(results, {str(local): url})


def run_model(
    config: StudyConfig,
    workdir: str | pathlib.Path,
    model: str,
    seed: int = 0,
    export: bool = True,
    log: Callable[[str], None] = print,
    train_overrides: dict[str, Any] | None = None,
    bases: tuple[str, ...] = tuple(BASES),
    verbose: int = 0,
    compare: Sequence[str | pathlib.Path] = (),
    seeds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Trains (and scores) exactly one model of the study's plan (`rdc_keras.study_plan`).

    The unit of work for a cluster scheduler: any order the plan's dependencies allow, in
    separate processes, gives the results of `run_study`. A model claimed by a running process
    is refused; a finished one is reported, not retrained. `model="report"` is `run_study(...,
    report_only=True)`.

    Args:
      config, workdir, seed, export, log, train_overrides, bases, verbose, compare, seeds: as
        `run_study` (the study's settings, recorded in and checked against `workdir`).
      model: a name from the plan (`classifier`, a head name such as `e2e-d3-L3-c0.015`,
        `multihead`, `universal-paper-c0.01`, ..., `e2e-d3-L3-c0@seed1` on a further seed, or
        `report`). With `train_overrides`
        `{"strategy": "multi_worker"}` every worker of the `TF_CONFIG` cluster runs this call;
        the chief claims, records, saves and scores, the others only train.

    Returns:
      `{"model": model}` with `rows` (the model's result rows) for a training, the classifier's
      description for `classifier`, or the study results for `report`.

    Raises:
      ValueError: an unknown model name, unfinished dependencies, a claim held elsewhere.
    """
    bases = _check_bases(bases)
    seeds = _check_seeds(seeds, seed)
    remote.check_local(workdir, "--workdir", "--model claims its model with a file lock")
    root = pathlib.Path(workdir)
    jobs = study_plan.jobs(config, root, bases, seeds)
    names = [row["model"] for row in study_plan.entries(jobs, root)]
    if model not in names:
        raise ValueError(
            f"--model={model}: not a model of this study (its models: {', '.join(names)})"
        )
    planned = {job.name: job for job in jobs}
    extra = train_overrides or {}
    if extra.get("strategy") == "multi_worker":
        if model in (CLASSIFIER, REPORT):
            raise ValueError(
                f"--strategy=multi_worker: --model={model} is not a training of the plan's grid; "
                "run it as one process"
            )
        from rdc_keras.trainers.build import is_chief, make_strategy

        # First, before any TensorFlow op: the cluster's strategy (see make_strategy).
        if not is_chief(make_strategy("multi_worker")):
            # A worker trains with the chief and writes nothing: the chief claims the model,
            # records the study, saves the run and scores it.
            job = planned[model]
            _refuse_unfinished(root, job.depends_on, planned, f"--model={model}")
            _train(job, config, root / CLASSIFIER_DIR, extra, 0)
            return {"model": model, "rows": []}
    if model == REPORT:
        return run_study(
            config,
            root,
            seed,
            export,
            log,
            train_overrides,
            bases,
            verbose,
            compare,
            report_only=True,
            seeds=seeds,
        )
    _record_settings(root, config, seed)
    if model == CLASSIFIER:
        _, description = _reference_classifier(root, config, seed, log)
        return {"model": model, "classifier": description}
    job = planned[model]
    _refuse_unfinished(root, job.depends_on, planned, f"--model={model}")
    test_arrays = data.load_arrays(config.dataset, "test", data_dir=config.data_dir)
    judge, _ = runs.load_classifier(root / CLASSIFIER_DIR)
    number = 1 + [j.name for j in jobs].index(model)
    rows = _train_and_evaluate(
        [(number, job)],
        len(jobs),
        config,
        root,
        judge,
        test_arrays,
        seeds,
        train_overrides or {},
        verbose,
        log,
    )
    return {"model": model, "rows": rows}


def compared_study(path: str | pathlib.Path) -> dict[str, Any]:
    """A finished study's name, settings and model rows, from its directory or results.json.

    Raises:
      ValueError: the path holds no study results.
    """
    path = pathlib.Path(path)
    results_path = path / "results.json" if path.is_dir() else path
    if not results_path.is_file():
        raise ValueError(f"--compare={path}: no results.json of a finished study")
    results = read_json(results_path)
    try:
        study, models = results["study"], list(results["models"])
        if "summary" in results:  # a study over several seeds: each model's mean over seeds
            models = list(results["summary"]["models"])
        keys = ("family", "model", "mse", "latent_dim", "num_levels")
        for row in models:
            missing = [key for key in keys if key not in row]
            if missing:
                raise KeyError(missing[0])
        compared = {
            "name": str(study["name"]),
            "path": str(path),
            "epochs": study.get("epochs"),
            "lambda_p": _lambda_p_values(models),
            "models": models,
        }
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{results_path}: not the results.json of a study ({error})") from error
    return compared


def _lambda_p_values(models: list[dict[str, Any]]) -> list[float]:
    """The λp values of a study's models, sorted (rows of older studies may have none: 0)."""
    return sorted({float(row.get("lambda_p") or 0.0) for row in models})


def _w1_judge_spread(root, rows, config, test_arrays, seed, log) -> dict[str, Any] | None:
    """W1 of the paper base model by the post-hoc judge with 3 judge seeds (the judge's own
    spread, cached in w1_judge_spread.json); None when the study estimates no W1."""
    from rdc_keras import evaluation

    if config.w1_steps <= 0:
        return None
    d, levels = config.rates[0]
    point = study_plan.label(config.base_lambda_c, config.base_lambda_p)
    base = next(row for row in rows if row["model"] == f"e2e-d{d}-L{levels}-{point}")
    seeds = [seed, seed + 1, seed + 2]
    cache = root / "w1_judge_spread.json"
    key = {"model": base["model"], "seeds": seeds, "w1_steps": config.w1_steps}
    key["protocol"] = evaluation.PROTOCOL_VERSION
    cached = read_json(cache) if cache.exists() else {}
    if {k: cached.get(k) for k in key} == key:
        return cached
    head = {h.name: h for h in runs.RunDir(root / base["workdir"]).heads()}[base["model"]]
    encoder, description = runs.load_encoder(head.encoder_dir)
    decoder, _ = head.load(description)
    images = test_arrays[0]
    _, x_hat = evaluation.reconstruct(encoder, decoder, images, levels, seed=seed)
    values = [
        evaluation.w1_estimate(images, x_hat, description["preset"], config.w1_steps, seed=s)
        for s in seeds
    ]
    spread = {**key, "values": values, "mean": float(np.mean(values))}
    spread["std"] = float(np.std(values, ddof=1))
    write_json(cache, spread)
    log(f"[judge] W1 of {base['model']} over judge seeds {seeds}: {values}")
    return spread


def _write_outputs(root, results, jobs, config, test_arrays, seed, export, log, compared) -> None:
    """results.json and .csv, the figures, the SavedModels (`export`) and, last, report.md."""
    write_json(root / "results.json", results)
    rows = results["models"]
    study_report.write_csv(root / "results.csv", rows)  # every model on every seed
    curves = rows  # one seed: its models; several: each model's mean and std over seeds
    if "summary" in results:
        curves = results["summary"]["models"]
        study_report.write_csv(root / "results-summary.csv", curves)
    first = [row for row in rows if row.get("seed", seed) == seed]  # reconstructions: one seed
    _figures(root, curves, first, config, test_arrays, seed, log)
    if compared:
        _compared_figure(root, curves, config, compared)
    else:  # a figure of an earlier comparison would no longer be linked or true
        (root / "figures" / "accuracy-compared.png").unlink(missing_ok=True)
    if export:
        _export(root, jobs, config, seed, log)
    report = study_report.render(results, config, rate_bits(*config.rates[0]))
    atomic_write(root / "report.md", report)
    log(f"report: {root / 'report.md'}")


def _figures(root, rows, grid_rows, config, test_arrays, seed, log) -> None:
    """Trade-off and rate figures of `rows` (with error bars where a row has `<metric>_std`), and
    reconstruction grids of each family at the main rate from the trained models of `grid_rows`."""
    from rdc_keras import evaluation, plots

    figures = root / "figures"
    d, levels = config.rates[0]

    def at_main(members):
        return [
            row
            for row in members
            if (row["latent_dim"], row["num_levels"]) == (d, levels)
            and row["family"] != "multihead-joint"
        ]

    main = at_main(rows)
    rate = rate_bits(d, levels)
    seeds = max((row.get("n", 1) for row in rows), default=1)
    over = f", mean ± std over {seeds} seeds" if seeds > 1 else ""
    plots.save_figure(
        plots.tradeoff_figure(
            main, rate, f"{config.name}: E2E vs universal at {rate:.2f} bits{over}"
        ),
        figures / "tradeoff.png",
    )
    if config.is_perception:
        title = f"{config.name}: distortion vs realism at {rate:.2f} bits{over}"
        plots.save_figure(plots.perception_figure(main, rate, title), figures / "perception.png")
    series = {
        _FAMILY_LABELS[family]: [row for row in main if row["family"] == family]
        for family in _FAMILY_LABELS
    }
    plots.save_figure(
        plots.accuracy_figure(
            {label: rows for label, rows in series.items() if rows},
            f"{config.name}: accuracy of the reference classifier vs MSE at {rate:.2f} bits" + over,
        ),
        figures / "accuracy.png",
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
        members = (r for r in at_main(grid_rows) if r["family"] == family)
        for row in sorted(members, key=lambda r: (r["lambda_p"], r["lambda_c"])):
            heads = {head.name: head for head in runs.RunDir(root / row["workdir"]).heads()}
            head = heads[row["model"]]
            encoder, description = runs.load_encoder(head.encoder_dir)
            decoder, _ = head.load(description)
            _, x_hat = evaluation.reconstruct(
                encoder, decoder, originals, description["num_levels"], seed=seed
            )
            label = f"λc={row['lambda_c']:g}"
            if config.is_perception:
                label = (
                    f"λp={row['lambda_p']:g}"
                    if len(config.e2e_lambda_c) == 1
                    else (f"{label} λp={row['lambda_p']:g}")
                )
            panels.append((label, x_hat))
        if panels:
            plots.save_figure(
                plots.reconstruction_grid(originals, panels, family),
                figures / f"reconstructions-{family}.png",
            )
    log(f"figures: {figures}")


def _compared_figure(root, rows, config, compared) -> None:
    """Accuracy vs MSE of this study's families beside those of other studies (main rate)."""
    from rdc_keras import plots

    d, levels = config.rates[0]

    def series_of(name, epochs, models):
        lambda_p = "/".join(f"{v:g}" for v in _lambda_p_values(models))
        tag = f"{name}, λp = {lambda_p}, {epochs} ep"
        main = [r for r in models if (r["latent_dim"], r["num_levels"]) == (d, levels)]
        return {
            f"{label} · {tag}": [r for r in main if r["family"] == family]
            for family, label in _FAMILY_LABELS.items()
        }

    series = series_of(config.name, config.epochs, rows)
    for study in compared:
        series.update(series_of(study["name"], study["epochs"], study["models"]))
    rate = rate_bits(d, levels)
    plots.save_figure(
        plots.accuracy_figure(
            {label: members for label, members in series.items() if members},
            f"Accuracy vs MSE at {rate:.2f} bits: {config.name} and "
            + ", ".join(study["name"] for study in compared),
        ),
        root / "figures" / "accuracy-compared.png",
    )


_FAMILY_LABELS = {
    "e2e": "E2E",
    "universal-paper": "universal, paper base",
    "universal-multihead": "universal, multi-head base",
}


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
