"""rdc-classifier: trains the frozen reference classifier on clean images and saves it.

Example: rdc-classifier --dataset=mnist_idx --data_dir=../shared/data/mnist --workdir=runs/clf
"""

from __future__ import annotations

import pathlib

import tensorflow as tf  # noqa: F401  (import before app.run: see cli/common.py)
from absl import app, flags

from rdc_keras import config, remote, runs
from rdc_keras.cli.common import main_wrapper, parse_flags
from rdc_keras.files import check_output_dir, write_json
from rdc_keras.trainers.classifier import train_reference_classifier

__all__ = ["run"]

FLAGS = flags.FLAGS


def _define_flags() -> None:
    flags.DEFINE_string("workdir", None, "Output directory (the saved classifier and results).")
    flags.DEFINE_enum("dataset", "digits", list(config.DATASETS), "Dataset.")
    flags.DEFINE_string("data_dir", None, "Data directory (IDX files or a prepared TFDS dir).")
    flags.DEFINE_integer("epochs", None, "Epochs (preset default).")
    flags.DEFINE_integer("batch_size", None, "Batch size (preset default).")
    flags.DEFINE_float("learning_rate", None, "Learning rate (preset default).")
    flags.DEFINE_integer("seed", 0, "Seed of weights and data order.")
    flags.DEFINE_integer("verbose", 2, "Keras fit verbosity (0, 1 or 2).")
    flags.mark_flag_as_required("workdir")


def main(argv: list[str]) -> None:
    if FLAGS.data_dir is not None and not remote.is_dir(FLAGS.data_dir):
        raise ValueError(f"--data_dir={FLAGS.data_dir}: directory not found")
    for name in ("epochs", "batch_size"):
        if getattr(FLAGS, name) is not None and getattr(FLAGS, name) < 1:
            raise ValueError(f"--{name}={getattr(FLAGS, name)}: must be >= 1")
    if FLAGS.learning_rate is not None and FLAGS.learning_rate <= 0:
        raise ValueError(f"--learning_rate={FLAGS.learning_rate}: must be > 0")
    remote.check_local(FLAGS.workdir, "--workdir", "the classifier is saved as HDF5")
    workdir = pathlib.Path(FLAGS.workdir)
    # The saved classifier replaces --workdir as a whole: never an unrelated directory.
    if workdir.exists() and (
        not workdir.is_dir() or (any(workdir.iterdir()) and not runs.is_saved_network(workdir))
    ):
        raise ValueError(f"--workdir={workdir}: exists and holds no saved classifier")
    check_output_dir(workdir, "--workdir")

    _, description = train_reference_classifier(
        workdir,
        FLAGS.dataset,
        FLAGS.data_dir,
        seed=FLAGS.seed,
        epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate,
        verbose=FLAGS.verbose,
    )
    metrics = description["test_metrics"]
    write_json(
        workdir / "results.json",
        {
            "test": metrics,
            "units": {"ce_nats": "nats"},
            "train_seconds": description["train_seconds"],
            "dataset": FLAGS.dataset,
            "seed": FLAGS.seed,
            "batch_size": description["batch_size"],
            "environment": runs.environment(),
        },
    )
    print(f"test accuracy {metrics['accuracy']:.4f}, CE {metrics['ce_nats']:.4f} nats -> {workdir}")


def run() -> None:
    """Console-script entry point."""
    _define_flags()
    app.run(main_wrapper(main), flags_parser=parse_flags)


if __name__ == "__main__":
    run()
