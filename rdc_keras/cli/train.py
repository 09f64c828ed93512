"""rdc-train: phase 1, end-to-end training of an encoder and one decoder head.

Example (the paper's MNIST rate, 4.75 bits, on the 10k MNIST test files):

    rdc-train --dataset=mnist_idx --data_dir=../shared/data/mnist --latent_dim=3 --num_levels=3 \
        --lambda_c=0.015 --classifier=pretrained --workdir=runs/mnist10k-c0.015

Re-running the same command after an interruption resumes after the last finished epoch.
"""

from __future__ import annotations

import pathlib

import tensorflow as tf  # noqa: F401  (import before app.run: see cli/common.py)
from absl import app, flags

from rdc_keras.cli.common import main_wrapper, number_list, parse_flags

__all__ = ["define_training_flags", "run", "training_config"]

FLAGS = flags.FLAGS


def define_training_flags() -> None:
    """Flags shared by rdc-train and rdc-universal."""
    flags.DEFINE_string("workdir", None, "Run directory (config, checkpoints, results).")
    flags.DEFINE_enum(
        "dataset",
        "digits",
        ["digits", "mnist_idx", "mnist", "svhn_cropped"],
        "Dataset; picks the network preset (digits, mnist, svhn).",
    )
    flags.DEFINE_string("data_dir", None, "Data directory (IDX files or a prepared TFDS dir).")
    flags.DEFINE_integer("latent_dim", 3, "d: latent dimensions.")
    flags.DEFINE_integer("num_levels", 3, "L: quantization levels per dimension.")
    flags.DEFINE_float("temperature", None, "Soft-quantizer temperature (1/sigma); preset default.")
    flags.DEFINE_float("lambda_d", 1.0, "Weight of the MSE distortion.")
    flags.DEFINE_float("lambda_c", 0.0, "Weight of the classification cross-entropy (nats).")
    flags.DEFINE_float("lambda_p", 0.0, "Weight of the Wasserstein perception term.")
    flags.DEFINE_enum(
        "classifier",
        "pretrained",
        ["pretrained", "joint"],
        "pretrained: frozen classifier trained on clean data; joint: trained on reconstructions.",
    )
    flags.DEFINE_string(
        "classifier_dir", None, "Saved reference classifier (rdc-classifier); trained if absent."
    )
    flags.DEFINE_integer("epochs", None, "Epochs (preset default).")
    flags.DEFINE_integer("batch_size", None, "Global batch size (preset default).")
    flags.DEFINE_integer("steps_per_epoch", None, "Limit the steps per epoch (default: all).")
    flags.DEFINE_float("lr_generator", None, "Encoder/decoder Adam learning rate.")
    flags.DEFINE_float("lr_critic", None, "Critic Adam learning rate.")
    flags.DEFINE_float("lr_classifier", None, "Joint classifier Adam learning rate.")
    flags.DEFINE_list("lr_boundaries", None, "Epochs where the learning-rate factor changes.")
    flags.DEFINE_list("lr_factors", None, "Learning-rate factor per piece (one more than above).")
    flags.DEFINE_integer("n_critic", None, "Critic updates per generator update.")
    flags.DEFINE_float("gp_weight", None, "Gradient-penalty weight.")
    flags.DEFINE_enum(
        "schedule",
        "joint",
        ["joint", "alternate"],
        "joint: critic and generator update on every batch; alternate: on different batches "
        "in turn, as the paper's code.",
    )
    flags.DEFINE_enum(
        "mixed_precision",
        "float32",
        ["float32", "mixed_bfloat16", "mixed_float16"],
        "Keras precision policy.",
    )
    flags.DEFINE_boolean("jit_compile", False, "XLA-compile the train step (slower on CPU).")
    flags.DEFINE_enum(
        "strategy", "default", ["default", "mirrored", "one_device"], "tf.distribute strategy."
    )
    flags.DEFINE_integer("seed", 0, "Seed of weights, data order, dither and gradient penalty.")
    flags.DEFINE_integer("verbose", 1, "0: quiet; 1: one line per epoch.")
    flags.mark_flag_as_required("workdir")


def training_config(**overrides):
    """Builds a `TrainConfig` from the parsed flags (plus keyword overrides)."""
    from rdc_keras.trainers.runner import TrainConfig

    values = dict(
        workdir=FLAGS.workdir,
        dataset=FLAGS.dataset,
        data_dir=FLAGS.data_dir,
        latent_dim=FLAGS.latent_dim,
        num_levels=FLAGS.num_levels,
        temperature=FLAGS.temperature,
        lambda_d=FLAGS.lambda_d,
        lambda_c=FLAGS.lambda_c,
        lambda_p=FLAGS.lambda_p,
        classifier_mode=FLAGS.classifier,
        classifier_dir=FLAGS.classifier_dir,
        epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size,
        steps_per_epoch=FLAGS.steps_per_epoch,
        generator_learning_rate=FLAGS.lr_generator,
        critic_learning_rate=FLAGS.lr_critic,
        classifier_learning_rate=FLAGS.lr_classifier,
        lr_boundaries=number_list(FLAGS.lr_boundaries, int, "lr_boundaries"),
        lr_factors=number_list(FLAGS.lr_factors, float, "lr_factors"),
        n_critic=FLAGS.n_critic,
        gp_weight=FLAGS.gp_weight,
        schedule=FLAGS.schedule,
        mixed_precision=FLAGS.mixed_precision,
        jit_compile=FLAGS.jit_compile,
        strategy=FLAGS.strategy,
        seed=FLAGS.seed,
        verbose=FLAGS.verbose,
    )
    values.update(overrides)
    config = TrainConfig(**values)
    config.validate()
    return config


def main(argv: list[str]) -> None:
    from rdc_keras.trainers.runner import TrainingDivergedError, train_run

    config = training_config()
    try:
        train_run(config)
    except TrainingDivergedError as error:
        backup = pathlib.Path(config.workdir) / "backup"
        if any(backup.rglob("*.index")):
            raise ValueError(f"{error}; the last good epoch is kept in {backup}") from error
        raise ValueError(f"{error}; no epoch had finished (nothing was kept)") from error


def run() -> None:
    """Console-script entry point."""
    define_training_flags()
    app.run(main_wrapper(main), flags_parser=parse_flags)


if __name__ == "__main__":
    run()
