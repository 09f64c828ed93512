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
their numbers are comparable (`rdc_keras.evaluation.evaluate_runs`). Prints one line per head and
writes JSON (config, units, one record per head) to `--output`, atomically.
"""

from __future__ import annotations

import tensorflow as tf  # noqa: F401  (import before app.run: see cli/common.py)
from absl import app, flags

from rdc_keras import data
from rdc_keras.cli.common import main_wrapper, parse_flags

__all__ = ["run"]

FLAGS = flags.FLAGS


def _define_flags() -> None:
    flags.DEFINE_multi_string(
        "run", [], "Run directory, or a directory above runs, e.g. a study (repeatable)."
    )
    flags.DEFINE_list("head", None, "Only these head names (default: every head).")
    flags.DEFINE_string("dataset", None, "Dataset (default: the first run's).")
    flags.DEFINE_string("data_dir", None, "Data directory (default: the first run's).")
    flags.DEFINE_enum("split", "test", list(data.SPLITS), "Split to score.")
    flags.DEFINE_string(
        "classifier_dir", None, "Reference classifier (default: the first run's judge)."
    )
    flags.DEFINE_integer("seed", 0, "Dither seed of image 0 (image i uses seed + i).")
    flags.DEFINE_integer("w1_steps", 0, "Post-hoc critic steps for a W1 estimate (0: none).")
    flags.DEFINE_integer("batch_size", 500, "Evaluation batch size (does not change results).")
    flags.DEFINE_string("output", None, "Write the JSON results here.")
    flags.DEFINE_integer("verbose", 1, "0: only the output file; 1: one line per head.")


def main(argv: list[str]) -> None:
    from rdc_keras import remote
    from rdc_keras.evaluation import evaluate_runs

    if not FLAGS.run:
        raise ValueError("give --run (a finished run, or a directory above runs such as a study)")
    if FLAGS.w1_steps < 0 or FLAGS.batch_size < 1:
        raise ValueError("--w1_steps must be >= 0 and --batch_size >= 1")
    if FLAGS.output:
        remote.check_output_file(FLAGS.output, "--output")  # before the evaluation, not after it
    # Runs (and a judge) given as URLs are read from local copies, reported under their URLs.
    local = {}
    for flag, path in [
        *(("--run", run) for run in FLAGS.run),
        ("--classifier_dir", FLAGS.classifier_dir),
    ]:
        if remote.is_remote(path):
            if not remote.is_dir(path):
                raise ValueError(f"{flag}={path}: directory not found")
            local[path] = str(remote.local_copy(path))
    results = evaluate_runs(
        [local.get(run, run) for run in FLAGS.run],
        heads=FLAGS.head,
        dataset=FLAGS.dataset,
        data_dir=FLAGS.data_dir,
        split=FLAGS.split,
        classifier_dir=local.get(FLAGS.classifier_dir, FLAGS.classifier_dir),
        seed=FLAGS.seed,
        w1_steps=FLAGS.w1_steps,
        batch_size=FLAGS.batch_size,
        log=(lambda line: print(line, flush=True)) if FLAGS.verbose else None,
    )
    results = remote.renamed_paths(results, {path: url for url, path in local.items()})
    if FLAGS.output:
        remote.write_json(FLAGS.output, results)
        if FLAGS.verbose:
            print(f"wrote {FLAGS.output}", flush=True)


def run() -> None:
    """Console-script entry point."""
    _define_flags()
    app.run(main_wrapper(main), flags_parser=parse_flags)


if __name__ == "__main__":
    run()
