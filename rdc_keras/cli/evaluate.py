"""rdc-evaluate: scores every head of finished runs on a dataset split, with one judge and seed.

Examples:

    rdc-evaluate --run=runs/mnist10k-c0.015
    rdc-evaluate --run=runs/mnist10k-c0.015 --run=runs/mnist10k-universal \
        --w1_steps=500 --output=runs/evaluation.json

`--run` takes an `rdc-train` run, an `rdc-universal` head run, or any directory above runs (an
`rdc-universal` work directory, a whole `rdc-experiment` study): every run below it. Each head is
decoded from the encoder it was trained on (the run's own, or the frozen one an `rdc-universal`
head records) and refused if the encoder's fingerprint differs from the one the head recorded. All
heads are scored by `rdc_keras.evaluation.evaluate` with the same reference classifier (the first
run's, unless `--classifier_dir`), the same split and the same dither seeds (image i: seed + i), so
their numbers are comparable. Prints one line per head and writes JSON (config, units, one record
per head) to `--output`, atomically.
"""

from __future__ import annotations

import pathlib
from typing import Any

import tensorflow as tf  # noqa: F401  (import before app.run: see cli/common.py)
from absl import app, flags

from rdc_keras.cli.common import main_wrapper, parse_flags

__all__ = ["UNITS", "evaluate_runs", "find_runs", "run"]

FLAGS = flags.FLAGS

UNITS = {
    "mse": "per-pixel mean on [0, 1]",
    "psnr": "dB (mean over images)",
    "ce_nats": "nats (reference classifier on the reconstruction)",
    "accuracy": "fraction (reference classifier on the reconstruction)",
    "rate_bits": "bits per image (d log2 L)",
    "w1": "post-hoc critic estimate of W1 (same budget for every head)",
}


def _define_flags() -> None:
    flags.DEFINE_multi_string(
        "run", [], "Run directory, or a directory above runs, e.g. a study (repeatable)."
    )
    flags.DEFINE_list("head", None, "Only these head names (default: every head).")
    flags.DEFINE_string("dataset", None, "Dataset (default: the first run's).")
    flags.DEFINE_string("data_dir", None, "Data directory (default: the first run's).")
    flags.DEFINE_enum("split", "test", ["train", "test"], "Split to score.")
    flags.DEFINE_string(
        "classifier_dir", None, "Reference classifier (default: the first run's judge)."
    )
    flags.DEFINE_integer("seed", 0, "Dither seed of image 0 (image i uses seed + i).")
    flags.DEFINE_integer("w1_steps", 0, "Post-hoc critic steps for a W1 estimate (0: none).")
    flags.DEFINE_integer("batch_size", 500, "Evaluation batch size (does not change results).")
    flags.DEFINE_string("output", None, "Write the JSON results here.")
    flags.DEFINE_integer("verbose", 1, "0: only the output file; 1: one line per head.")


def _is_run(path: pathlib.Path) -> bool:
    return all((path / name).exists() for name in ("config.json", "results.json", "heads"))


def find_runs(paths: list[str | pathlib.Path]) -> list[pathlib.Path]:
    """Expands each path to finished runs: itself, or every run below it (e.g. a whole study).

    A run is a directory with config.json, results.json and heads/ (what rdc-train,
    rdc-universal and rdc-experiment write for every model).

    Raises:
      ValueError: a path holds no finished run.
    """
    found = []
    for path in map(pathlib.Path, paths):
        if _is_run(path):
            found.append(path)
            continue
        below = sorted({p.parent for p in path.rglob("heads") if _is_run(p.parent)})
        if not below:
            raise ValueError(f"--run={path}: not a finished run (none in it or below)")
        found.extend(below)
    return found


def _existing(candidates: list[Any]) -> pathlib.Path | None:
    for candidate in candidates:
        if candidate and pathlib.Path(candidate).is_dir():
            return pathlib.Path(candidate)
    return None


def _encoder_dir(run_dir: pathlib.Path, config: dict[str, Any]) -> pathlib.Path:
    directory = _existing([config.get("encoder_dir"), run_dir / "encoder"])
    if directory is None:
        raise ValueError(
            f"{run_dir}: its encoder ({config.get('encoder_dir') or run_dir / 'encoder'}) "
            "is not there"
        )
    return directory


def _classifier_dir(run_dir: pathlib.Path, results: dict[str, Any]) -> pathlib.Path:
    directory = _existing([results.get("reference_classifier"), run_dir / "classifier"])
    if directory is None:
        raise ValueError(f"{run_dir}: no reference classifier found; give --classifier_dir")
    return directory


def evaluate_runs(
    run_dirs: list[str | pathlib.Path],
    *,
    heads: list[str] | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    split: str = "test",
    classifier_dir: str | pathlib.Path | None = None,
    seed: int = 0,
    w1_steps: int = 0,
    batch_size: int = 500,
    log: Any = None,
) -> dict[str, Any]:
    """Scores every head of the given runs; returns {"config", "units", "heads": [records]}.

    Raises:
      ValueError: a run, head, encoder, classifier or dataset that cannot be used (one line).
    """
    from rdc_keras import data, evaluation, runs
    from rdc_keras.trainers import classifier as classifier_lib
    from rdc_keras.trainers.runner import load_encoder, load_head

    run_paths = find_runs(list(run_dirs))
    first_config = runs.read_json(run_paths[0] / "config.json")["config"]
    dataset = dataset or first_config["dataset"]
    data_dir = data_dir if data_dir is not None else first_config.get("data_dir")
    if dataset == "digits":
        data_dir = None
    info = data.dataset_info(dataset)  # unknown name -> ValueError naming it
    judge_dir = pathlib.Path(
        classifier_dir
        or _classifier_dir(run_paths[0], runs.read_json(run_paths[0] / "results.json"))
    )
    judge, _ = classifier_lib.load_classifier(judge_dir)
    images, labels = data.load_arrays(dataset, split, data_dir=data_dir)
    image_shape = list(images.shape[1:])

    selected = []
    for run_dir in run_paths:
        config = runs.read_json(run_dir / "config.json")["config"]
        for head_dir in sorted(p.parent for p in (run_dir / "heads").glob("*/head.json")):
            if heads is None or head_dir.name in heads:
                selected.append((run_dir, config, head_dir))
    missing = sorted(set(heads or ()) - {head_dir.name for _, _, head_dir in selected})
    if missing:
        raise ValueError(f"--head: no head named {', '.join(missing)} in the given runs")
    if not selected:
        raise ValueError("the given runs hold no heads")

    encoders: dict[pathlib.Path, tuple[Any, dict[str, Any]]] = {}
    records = []
    for run_dir, config, head_dir in selected:
        encoder_dir = _encoder_dir(run_dir, config).resolve()
        if encoder_dir not in encoders:
            encoders[encoder_dir] = load_encoder(encoder_dir)
        encoder, description = encoders[encoder_dir]
        if list(description["image_shape"]) != image_shape:
            raise ValueError(
                f"{dataset} images are {'x'.join(map(str, image_shape))} but the encoder of "
                f"{run_dir} takes {'x'.join(map(str, description['image_shape']))}"
            )
        decoder, head = load_head(head_dir, description)
        metrics = evaluation.evaluate(
            encoder,
            decoder,
            (images, labels),
            judge,
            num_levels=description["num_levels"],
            seed=seed,
            batch_size=batch_size,
            w1_steps=w1_steps,
            preset=info.preset,
        )
        record = {
            "run": str(run_dir),
            "head": head_dir.name,
            "encoder_fingerprint": description["fingerprint"],
            "lambda_d": head.get("lambda_d"),
            "lambda_c": head.get("lambda_c"),
            "lambda_p": head.get("lambda_p"),
            **metrics,
        }
        records.append(record)
        if log is not None:
            w1 = f" w1={metrics['w1']:.4g}" if "w1" in metrics else ""
            log(
                f"{run_dir} head {head_dir.name}: mse={metrics['mse']:.5f} "
                f"psnr={metrics['psnr']:.2f} ce={metrics['ce_nats']:.4f} "
                f"acc={metrics['accuracy']:.4f}{w1} rate={metrics['rate_bits']:.3f} bits"
            )
    return {
        "config": {
            "runs": [str(p) for p in run_paths],
            "dataset": dataset,
            "data_dir": data_dir,
            "split": split,
            "num_images": len(images),
            "reference_classifier": str(judge_dir),
            "seed": seed,
            "w1_steps": w1_steps,
        },
        "units": UNITS,
        "heads": records,
    }


def main(argv: list[str]) -> None:
    from rdc_keras import runs

    if not FLAGS.run:
        raise ValueError("give --run (a finished run, or a directory above runs such as a study)")
    if FLAGS.w1_steps < 0 or FLAGS.batch_size < 1:
        raise ValueError("--w1_steps must be >= 0 and --batch_size >= 1")
    results = evaluate_runs(
        FLAGS.run,
        heads=FLAGS.head,
        dataset=FLAGS.dataset,
        data_dir=FLAGS.data_dir,
        split=FLAGS.split,
        classifier_dir=FLAGS.classifier_dir,
        seed=FLAGS.seed,
        w1_steps=FLAGS.w1_steps,
        batch_size=FLAGS.batch_size,
        log=(lambda line: print(line, flush=True)) if FLAGS.verbose else None,
    )
    if FLAGS.output:
        runs.write_json(FLAGS.output, results)
        if FLAGS.verbose:
            print(f"wrote {FLAGS.output}", flush=True)


def run() -> None:
    """Console-script entry point."""
    _define_flags()
    app.run(main_wrapper(main), flags_parser=parse_flags)


if __name__ == "__main__":
    run()
