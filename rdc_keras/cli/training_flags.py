"""The training flags of rdc-train and rdc-universal, defined once, and their TrainConfig fields.

Each flag is one row of `_FLAGS`: its name, the `rdc_keras.config.TrainConfig` field it sets,
its kind and default, and its help. Choice lists come from the library (`rdc_keras.config`), so a
new precision or schedule needs no change here. `define(names)` registers a subset with absl and
`config_values(names)` reads them back as TrainConfig keyword arguments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from absl import flags

from rdc_keras import config
from rdc_keras.cli.common import number_list

__all__ = ["ALL", "UNIVERSAL", "config_values", "define"]

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class _Flag:
    name: str
    field: str  # TrainConfig field
    kind: str  # string, integer, float, boolean, enum, int_list, float_list
    default: Any
    help: str
    choices: tuple[str, ...] = ()


_FLAGS = (
    _Flag("workdir", "workdir", "string", None, "Run directory (config, checkpoints, results)."),
    _Flag(
        "dataset",
        "dataset",
        "enum",
        "digits",
        "Dataset; picks the network preset (digits, mnist, svhn).",
        config.DATASETS,
    ),
    _Flag(
        "data_dir", "data_dir", "string", None, "Data directory (IDX files or a prepared TFDS dir)."
    ),
    _Flag("latent_dim", "latent_dim", "integer", 3, "d: latent dimensions."),
    _Flag("num_levels", "num_levels", "integer", 3, "L: quantization levels per dimension."),
    _Flag(
        "temperature",
        "temperature",
        "float",
        None,
        "Soft-quantizer temperature (1/sigma); preset default.",
    ),
    _Flag("lambda_d", "lambda_d", "float", 1.0, "Weight of the MSE distortion."),
    _Flag(
        "lambda_c", "lambda_c", "float", 0.0, "Weight of the classification cross-entropy (nats)."
    ),
    _Flag("lambda_p", "lambda_p", "float", 0.0, "Weight of the Wasserstein perception term."),
    _Flag(
        "classifier",
        "classifier_mode",
        "enum",
        "pretrained",
        "pretrained: frozen classifier trained on clean data; joint: trained on reconstructions.",
        config.CLASSIFIER_MODES,
    ),
    _Flag(
        "classifier_dir",
        "classifier_dir",
        "string",
        None,
        "Saved reference classifier (rdc-classifier); trained if absent.",
    ),
    _Flag("epochs", "epochs", "integer", None, "Epochs (preset default)."),
    _Flag("batch_size", "batch_size", "integer", None, "Global batch size (preset default)."),
    _Flag(
        "steps_per_epoch",
        "steps_per_epoch",
        "integer",
        None,
        "Limit the steps per epoch (default: all).",
    ),
    _Flag(
        "lr_generator",
        "generator_learning_rate",
        "float",
        None,
        "Encoder/decoder Adam learning rate.",
    ),
    _Flag("lr_critic", "critic_learning_rate", "float", None, "Critic Adam learning rate."),
    _Flag(
        "lr_classifier",
        "classifier_learning_rate",
        "float",
        None,
        "Joint classifier Adam learning rate.",
    ),
    _Flag(
        "lr_boundaries",
        "lr_boundaries",
        "int_list",
        None,
        "Epochs where the learning-rate factor changes.",
    ),
    _Flag(
        "lr_factors",
        "lr_factors",
        "float_list",
        None,
        "Learning-rate factor per piece (one more than above).",
    ),
    _Flag("n_critic", "n_critic", "integer", None, "Critic updates per generator update."),
    _Flag("gp_weight", "gp_weight", "float", None, "Gradient-penalty weight."),
    _Flag(
        "schedule",
        "schedule",
        "enum",
        "joint",
        "joint: critic and generator update on every batch; alternate: on different batches "
        "in turn, as the paper's code.",
        config.SCHEDULES,
    ),
    _Flag(
        "mixed_precision",
        "mixed_precision",
        "enum",
        "float32",
        "Keras precision policy.",
        config.PRECISIONS,
    ),
    _Flag(
        "jit_compile",
        "jit_compile",
        "boolean",
        False,
        "XLA-compile the train step (slower on CPU).",
    ),
    _Flag("strategy", "strategy", "enum", "default", "tf.distribute strategy.", config.STRATEGIES),
    _Flag(
        "seed", "seed", "integer", 0, "Seed of weights, data order, dither and gradient penalty."
    ),
    _Flag("verbose", "verbose", "integer", 1, "0: quiet; 1: one line per epoch."),
)
_BY_NAME = {flag.name: flag for flag in _FLAGS}

ALL: tuple[str, ...] = tuple(_BY_NAME)
"""Every training flag (rdc-train)."""

UNIVERSAL: tuple[str, ...] = (
    "lambda_d",
    "epochs",
    "batch_size",
    "steps_per_epoch",
    "lr_generator",
    "lr_critic",
    "mixed_precision",
    "jit_compile",
    "strategy",
    "seed",
    "verbose",
)
"""The training flags rdc-universal shares (the rest come from the base run)."""

_DEFINERS: dict[str, Callable[..., Any]] = {
    "string": flags.DEFINE_string,
    "integer": flags.DEFINE_integer,
    "float": flags.DEFINE_float,
    "boolean": flags.DEFINE_boolean,
    "int_list": flags.DEFINE_list,
    "float_list": flags.DEFINE_list,
}


def define(names: Iterable[str]) -> None:
    """Registers the named training flags with absl."""
    for name in names:
        flag = _BY_NAME[name]
        if flag.kind == "enum":
            flags.DEFINE_enum(flag.name, flag.default, list(flag.choices), flag.help)
        else:
            _DEFINERS[flag.kind](flag.name, flag.default, flag.help)


def config_values(names: Iterable[str]) -> dict[str, Any]:
    """The parsed values of the named flags as TrainConfig keyword arguments."""
    values = {}
    for name in names:
        flag = _BY_NAME[name]
        value = getattr(FLAGS, name)
        if flag.kind == "int_list":
            value = number_list(value, int, name)
        elif flag.kind == "float_list":
            value = number_list(value, float, name)
        values[flag.field] = value
    return values
