"""rdc-train: phase 1, end-to-end training of an encoder and one decoder head.

Example (the paper's MNIST rate, 4.75 bits, on the 10k MNIST test files):

    rdc-train --dataset=mnist_idx --data_dir=../shared/data/mnist --latent_dim=3 --num_levels=3 \
        --lambda_c=0.015 --classifier=pretrained --workdir=runs/mnist10k-c0.015

Re-running the same command after an interruption resumes after the last finished epoch.
"""

from __future__ import annotations

import tensorflow as tf  # noqa: F401  (import before app.run: see cli/common.py)
from absl import app, flags

from rdc_keras.cli import training_flags
from rdc_keras.cli.common import main_wrapper, parse_flags

__all__ = ["run", "training_config"]

FLAGS = flags.FLAGS


def training_config(**overrides):
    """Builds a validated `TrainConfig` from the parsed flags (plus keyword overrides)."""
    from rdc_keras.config import TrainConfig

    config = TrainConfig(**{**training_flags.config_values(training_flags.ALL), **overrides})
    config.validate()
    return config


def main(argv: list[str]) -> None:
    from rdc_keras import remote, runs
    from rdc_keras.trainers.runner import TrainingDivergedError, train_run

    config = training_config()
    remote.check_output_dir(config.workdir, "--workdir")
    try:
        train_run(config)
    except TrainingDivergedError as error:
        if remote.is_remote(config.workdir):
            raise ValueError(f"{error}; finished epochs are kept in {config.workdir}") from error
        backup = runs.RunDir(config.workdir).backup_dir
        if any(backup.rglob("*.index")):
            raise ValueError(f"{error}; the last good epoch is kept in {backup}") from error
        raise ValueError(f"{error}; no epoch had finished (nothing was kept)") from error


def run() -> None:
    """Console-script entry point."""
    training_flags.define(training_flags.ALL)
    flags.mark_flag_as_required("workdir")
    app.run(main_wrapper(main), flags_parser=parse_flags)


if __name__ == "__main__":
    run()
