"""rdc-universal: phase 2, new decoder heads on the frozen encoder of a finished rdc-train run.

Example: three heads at lambda_c = 0, 0.001 and 0.015 on the encoder of runs/base:
    rdc-universal --base=runs/base --lambda_c=0,0.001,0.015 --workdir=runs/universal

Each head is trained in `<workdir>/<head>/` (resumable like rdc-train) with the base run's
dataset, rate and reference classifier, and records the fingerprint of the encoder it belongs to.
"""

from __future__ import annotations

import pathlib

import tensorflow as tf  # noqa: F401  (import before app.run: see cli/common.py)
from absl import app, flags

from rdc_keras.cli.common import main_wrapper, number_list, parse_flags

__all__ = ["run"]

FLAGS = flags.FLAGS


def _define_flags() -> None:
    flags.DEFINE_string("base", None, "A finished rdc-train run directory (its encoder is reused).")
    flags.DEFINE_string("workdir", None, "Directory of the new heads.")
    flags.DEFINE_list("lambda_c", ["0"], "lambda_c of each new head.")
    flags.DEFINE_list("lambda_p", None, "lambda_p of each head (one value, or one per head).")
    flags.DEFINE_float("lambda_d", 1.0, "Weight of the MSE distortion.")
    flags.DEFINE_integer("epochs", None, "Epochs per head (preset default).")
    flags.DEFINE_integer("batch_size", None, "Global batch size (preset default).")
    flags.DEFINE_integer("steps_per_epoch", None, "Limit the steps per epoch (default: all).")
    flags.DEFINE_float("lr_generator", None, "Decoder Adam learning rate.")
    flags.DEFINE_float("lr_critic", None, "Critic Adam learning rate.")
    flags.DEFINE_enum(
        "mixed_precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"], "Policy."
    )
    flags.DEFINE_boolean("jit_compile", False, "XLA-compile the train step (slower on CPU).")
    flags.DEFINE_enum(
        "strategy", "default", ["default", "mirrored", "one_device"], "tf.distribute strategy."
    )
    flags.DEFINE_integer("seed", 0, "Seed of weights, data order and dither.")
    flags.DEFINE_integer("verbose", 1, "0: quiet; 1: one line per epoch.")
    flags.mark_flags_as_required(["base", "workdir"])


def main(argv: list[str]) -> None:
    from rdc_keras import runs
    from rdc_keras.trainers.runner import TrainConfig, TrainingDivergedError, train_run

    base = pathlib.Path(FLAGS.base)
    if not (base / "encoder").is_dir() or not (base / "config.json").exists():
        raise ValueError(
            f"--base={base}: not a finished rdc-train run (no encoder/ or config.json)"
        )
    base_config = runs.read_json(base / "config.json")["config"]
    lambda_c = list(number_list(FLAGS.lambda_c, float, "lambda_c"))
    if not lambda_c:
        raise ValueError("--lambda_c needs at least one value (one head per value)")
    lambda_p = list(number_list(FLAGS.lambda_p or ["0"], float, "lambda_p"))
    if len(lambda_p) == 1:
        lambda_p = lambda_p * len(lambda_c)
    if len(lambda_p) != len(lambda_c):
        raise ValueError("--lambda_p needs one value or one per --lambda_c value")
    classifier_dir = base_config.get("classifier_dir") or str(base / "classifier")
    configs = []
    for c_value, p_value in zip(lambda_c, lambda_p):
        name = f"d{FLAGS.lambda_d:g}-c{c_value:g}-p{p_value:g}"
        config = TrainConfig(
            workdir=str(pathlib.Path(FLAGS.workdir) / name),
            dataset=base_config["dataset"],
            data_dir=base_config["data_dir"],
            latent_dim=base_config["latent_dim"],
            num_levels=base_config["num_levels"],
            lambda_d=FLAGS.lambda_d,
            lambda_c=c_value,
            lambda_p=p_value,
            classifier_mode="pretrained",
            classifier_dir=classifier_dir,
            epochs=FLAGS.epochs,
            batch_size=FLAGS.batch_size,
            steps_per_epoch=FLAGS.steps_per_epoch,
            generator_learning_rate=FLAGS.lr_generator,
            critic_learning_rate=FLAGS.lr_critic,
            mixed_precision=FLAGS.mixed_precision,
            jit_compile=FLAGS.jit_compile,
            strategy=FLAGS.strategy,
            encoder_dir=str(base / "encoder"),
            head_name=name,
            seed=FLAGS.seed,
            verbose=FLAGS.verbose,
        )
        config.validate()  # every head is checked before the first one trains
        configs.append((name, config))
    summary = {"base": str(base), "heads": []}
    for name, config in configs:
        if FLAGS.verbose:
            print(f"head {name}: training on the frozen encoder of {base}", flush=True)
        try:
            results = train_run(config)
        except TrainingDivergedError as error:
            raise ValueError(f"head {name}: {error}") from error
        summary["heads"].append({"name": name, "workdir": config.workdir, **results})
    runs.write_json(pathlib.Path(FLAGS.workdir) / "universal.json", summary)


def run() -> None:
    """Console-script entry point."""
    _define_flags()
    app.run(main_wrapper(main), flags_parser=parse_flags)


if __name__ == "__main__":
    run()
