"""Builds a compiled trainer and a distribution strategy from a resolved `TrainConfig`.

`build_trainer` is what a run (`rdc_keras.trainers.runner`), the benchmarks and notebooks call to
get the trainer a configuration describes: an `RDCTrainer` for phase 1 or phase 2 (frozen
encoder), or a `MultiHeadRDCTrainer` for a multi-head base. Adam settings, learning rates, the
critic's gradient-penalty weight and n_critic come from the config (see `TrainConfig.resolved`).
"""

from __future__ import annotations

import functools
import json
import os

import tensorflow as tf

from rdc_keras import networks
from rdc_keras.config import STRATEGIES, TrainConfig
from rdc_keras.tfkeras import keras
from rdc_keras.trainers.multihead import MultiHeadRDCTrainer
from rdc_keras.trainers.rdc import RDCTrainer

__all__ = ["build_trainer", "is_chief", "make_strategy", "sync_workers"]


def _optimizer(learning_rate: float, config: TrainConfig) -> keras.optimizers.Optimizer:
    optimizer = keras.optimizers.Adam(
        learning_rate,
        beta_1=config.beta_1,
        beta_2=config.beta_2,
        epsilon=config.adam_epsilon,
    )
    if config.mixed_precision == "mixed_float16":
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer


def _check_resolved(config: TrainConfig) -> None:
    missing = [
        name
        for name in ("temperature", "generator_learning_rate", "beta_1", "n_critic", "gp_weight")
        if getattr(config, name) is None
    ]
    if missing:
        raise ValueError(f"build_trainer needs a resolved config (None: {', '.join(missing)})")


def build_trainer(
    config: TrainConfig,
    reference_classifier: keras.Model | None,
    encoder: keras.Model | None = None,
    base_critic: keras.Model | None = None,
) -> RDCTrainer:
    """Builds and compiles the trainer of a resolved config (`TrainConfig.resolved()`).

    In `pretrained` mode the reference classifier is also the training classifier; in `joint`
    mode a fresh classifier is trained on reconstructions while the reference stays the judge.
    No critic is built when lambda_p == 0. Passing `encoder` freezes it (phase 2); a head's
    critic starts from `base_critic`'s weights when given, as in the paper's code.
    """
    _check_resolved(config)
    preset = config.preset
    if config.is_multihead:
        trainer = MultiHeadRDCTrainer(
            networks.encoder(preset, config.latent_dim),
            [networks.decoder(preset, config.latent_dim) for _ in config.multihead_lambda_c],
            config.num_levels,
            reference_classifier,
            head_lambda_c=config.multihead_lambda_c,
            lambda_d=config.lambda_d,
            temperature=config.temperature,
            seed=config.seed,
        )
        trainer.compile(
            _optimizer(config.generator_learning_rate, config), jit_compile=config.jit_compile
        )
        return trainer
    freeze = encoder is not None
    encoder = encoder or networks.encoder(preset, config.latent_dim)
    decoder = networks.decoder(preset, config.latent_dim)
    critic = None
    if config.lambda_p > 0:
        critic = networks.critic(preset)
        if base_critic is not None:
            critic.set_weights(base_critic.get_weights())
    joint = config.classifier_mode == "joint"
    trainer = RDCTrainer(
        encoder,
        decoder,
        config.num_levels,
        classifier=networks.classifier(preset) if joint else reference_classifier,
        critic=critic,
        lambda_d=config.lambda_d,
        lambda_c=config.lambda_c,
        lambda_p=config.lambda_p,
        classifier_mode=config.classifier_mode,
        reference_classifier=reference_classifier,
        temperature=config.temperature,
        n_critic=config.n_critic,
        gp_weight=config.gp_weight,
        freeze_encoder=freeze,
        schedule=config.schedule,
        seed=config.seed,
    )
    trainer.compile(
        generator_optimizer=_optimizer(config.generator_learning_rate, config),
        critic_optimizer=_optimizer(config.critic_learning_rate, config) if critic else None,
        classifier_optimizer=(
            _optimizer(config.classifier_learning_rate, config) if joint else None
        ),
        jit_compile=config.jit_compile,
    )
    return trainer


def make_strategy(name: str) -> tf.distribute.Strategy:
    """`default`, `mirrored` (all local GPUs, else the CPU devices), `one_device`, or
    `multi_worker` (MultiWorkerMirroredStrategy over the cluster in `TF_CONFIG`).

    `multi_worker` must be created before any other TensorFlow op of the process (collective
    ops are configured at start-up), so `train_run` makes the strategy first; it is made once
    per process (one cluster per process) and reused by later runs of the same process.

    Raises:
      ValueError: an unknown name, or `multi_worker` without a usable `TF_CONFIG`.
    """
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "multi_worker":
        _check_tf_config()
        return _multi_worker_strategy()
    if name != "default":
        raise ValueError(f"--strategy must be one of {STRATEGIES}, got {name!r}")
    return tf.distribute.get_strategy()


@functools.lru_cache(maxsize=1)
def _multi_worker_strategy() -> tf.distribute.Strategy:
    return tf.distribute.MultiWorkerMirroredStrategy()


_TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}'
)


def _check_tf_config() -> None:
    """One line naming TF_CONFIG when it is missing or is not a cluster spec with this task."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError(
            f"--strategy=multi_worker: TF_CONFIG is not set (e.g. TF_CONFIG='{_TF_CONFIG_EXAMPLE}')"
        )
    try:
        spec = json.loads(raw)
        task, cluster = spec["task"], spec["cluster"]
        members = cluster[task["type"]]
        if not 0 <= int(task["index"]) < len(members):
            raise IndexError(f"task index {task['index']} of {len(members)} {task['type']}s")
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise ValueError(
            f"--strategy=multi_worker: TF_CONFIG is not a cluster spec with this task ({error}); "
            f"expected e.g. {_TF_CONFIG_EXAMPLE}"
        ) from None


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes a run's outputs: always, except a non-chief multi-worker task.

    The chief of a MultiWorkerMirroredStrategy cluster is task `chief`, or `worker` 0 when the
    cluster has no chief; the other workers train and evaluate with it but write nothing outside
    their own backup directory.
    """
    return bool(strategy.extended.should_checkpoint)


def sync_workers(strategy: tf.distribute.Strategy) -> None:
    """Returns once every worker of a multi-worker cluster has called it (a no-op elsewhere).

    A collective all-reduce of one number: the chief calls it before removing `backup/`, so it
    cannot delete a directory a slower worker is still saving its scratch outputs into.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    ones = strategy.run(lambda: tf.constant(1.0))
    strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)
