"""rdc-universal: phase 2, new decoder heads on the frozen encoder of a finished rdc-train run.

Example: three heads at lambda_c = 0, 0.001 and 0.015 on the encoder of runs/base:
    rdc-universal --base=runs/base --lambda_c=0,0.001,0.015 --workdir=runs/universal

Each head is trained in `<workdir>/<head>/` (resumable like rdc-train) with the base run's
dataset, rate and reference classifier, and records the fingerprint of the encoder it belongs to.
A head with lambda_p > 0 starts its critic from the base run's critic, as the reference code does.
"""

from __future__ import annotations

import tensorflow as tf  # noqa: F401  (import before app.run: see cli/common.py)
from absl import app, flags

from rdc_keras import remote, runs
from rdc_keras.cli import training_flags
from rdc_keras.cli.common import main_wrapper, number_list, parse_flags
from rdc_keras.config import TrainConfig

__all__ = ["run"]

FLAGS = flags.FLAGS


def _define_flags() -> None:
    flags.DEFINE_string("base", None, "A finished rdc-train run directory (its encoder is reused).")
    flags.DEFINE_string("workdir", None, "Directory of the new heads.")
    flags.DEFINE_list("lambda_c", ["0"], "lambda_c of each new head.")
    flags.DEFINE_list("lambda_p", None, "lambda_p of each head (one value, or one per head).")
    training_flags.define(training_flags.UNIVERSAL)
    flags.mark_flags_as_required(["base", "workdir"])


def _head_configs(base: runs.RunDir) -> list[tuple[str, TrainConfig]]:
    """One validated config per new head: the base run's data and rate, the flags' lambdas."""
    if not runs.is_saved_network(base.encoder_dir) or not base.has_config():
        raise ValueError(
            f"--base={base.path}: not a finished rdc-train run (no encoder/ or config.json)"
        )
    base_config = base.config()
    lambda_c = list(number_list(FLAGS.lambda_c, float, "lambda_c"))
    if not lambda_c:
        raise ValueError("--lambda_c needs at least one value (one head per value)")
    lambda_p = list(number_list(FLAGS.lambda_p or ["0"], float, "lambda_p"))
    if len(lambda_p) == 1:
        lambda_p = lambda_p * len(lambda_c)
    if len(lambda_p) != len(lambda_c):
        raise ValueError("--lambda_p needs one value or one per --lambda_c value")
    shared = training_flags.config_values(training_flags.UNIVERSAL)
    # Heads with a perception term start their critic from the base's, as the reference code does.
    base_critics = [head.critic_dir for head in base.heads() if head.critic_dir.is_dir()]
    configs = []
    for c_value, p_value in zip(lambda_c, lambda_p, strict=True):
        name = f"d{shared['lambda_d']:g}-c{c_value:g}-p{p_value:g}"
        config = TrainConfig(
            workdir=remote.join(FLAGS.workdir, name),
            dataset=base_config.dataset,
            data_dir=base_config.data_dir,
            latent_dim=base_config.latent_dim,
            num_levels=base_config.num_levels,
            lambda_c=c_value,
            lambda_p=p_value,
            classifier_mode="pretrained",
            classifier_dir=base_config.classifier_dir or str(base.classifier_dir),
            encoder_dir=str(base.encoder_dir),
            base_critic_dir=str(base_critics[0]) if p_value > 0 and base_critics else None,
            head_name=name,
            **shared,
        )
        config.validate()  # every head is checked before the first one trains
        configs.append((name, config))
    return configs


def main(argv: list[str]) -> None:
    from rdc_keras.trainers.build import is_chief, make_strategy
    from rdc_keras.trainers.runner import TrainingDivergedError, train_run

    remote.check_output_dir(FLAGS.workdir, "--workdir")
    base = runs.RunDir(FLAGS.base)
    configs = _head_configs(base)
    summary = {"base": str(base.path), "heads": []}
    for name, config in configs:
        if FLAGS.verbose:
            print(f"head {name}: training on the frozen encoder of {base.path}", flush=True)
        try:
            results = train_run(config)
        except TrainingDivergedError as error:
            raise ValueError(f"head {name}: {error}") from error
        summary["heads"].append({"name": name, "workdir": config.workdir, **results})
    if is_chief(make_strategy(configs[0][1].strategy)):  # workers of a cluster write nothing
        remote.write_json(remote.join(FLAGS.workdir, "universal.json"), summary)


def run() -> None:
    """Console-script entry point."""
    _define_flags()
    app.run(main_wrapper(main), flags_parser=parse_flags)


if __name__ == "__main__":
    run()
