"""Typed, frozen run configuration and the presets' training hyperparameters.

`TrainConfig` is everything that defines one RDC training run (the flags of `rdc-train` and
`rdc-universal`); `None` fields mean "the preset's default" and `resolved()` fills them from
`PresetDefaults`. A run directory records the resolved config in its config.json; `to_dict` and
`from_dict` are the one pair that writes and reads it (`rdc_keras.runs.RunDir.write_config` and
`RunDir.config`). The choice lists (classifier modes, schedules, precisions, strategies,
datasets) live here and are imported by the trainers and the binaries.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import pathlib
from typing import Any

from rdc_keras import data, remote

__all__ = [
    "CLASSIFIER_MODES",
    "DATASETS",
    "PRECISIONS",
    "SCHEDULES",
    "STRATEGIES",
    "PresetDefaults",
    "TrainConfig",
    "default_head_name",
    "multihead_head_names",
    "preset_defaults",
]

DATASETS: tuple[str, ...] = data.DATASETS
# "pretrained": the frozen reference classifier is in the loss (the paper's code); "joint": a
# classifier is trained on reconstructions alongside the critic (the seed slides).
CLASSIFIER_MODES = ("pretrained", "joint")
# "joint": critic and generator update on every batch; "alternate": on different batches in turn.
SCHEDULES = ("joint", "alternate")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("default", "mirrored", "one_device", "multi_worker")
# Fields that may differ when resuming a run without changing its result.
VOLATILE_FIELDS = frozenset({"verbose", "workdir"})


@dataclasses.dataclass(frozen=True)
class PresetDefaults:
    """Recommended training settings of one preset (reference-code digest §0, §2, §3.1).

    The trainer and the binaries take their defaults from here so the numbers live in one place.

    Attributes:
      preset: preset name.
      temperature_coefficient: quantizer softmax temperature T (soft assignment
        softmax_l(-|y - c_l| / T), i.e. T = 1/sigma of the digest); multiplied by num_levels when
        ``temperature_scales_with_levels`` (SVHN: T = L/2, sigma = 2/L).
      temperature_scales_with_levels: see above.
      generator_learning_rate: Adam learning rate of the encoder and decoder.
      critic_learning_rate: Adam learning rate of the WGAN-GP critic.
      beta_1, beta_2, adam_epsilon: Adam hyper-parameters (epsilon is PyTorch's 1e-8).
      lr_boundaries: epochs at which the learning-rate factor changes (piecewise per epoch).
      lr_factors: factor for each piece; ``len(lr_factors) == len(lr_boundaries) + 1``.
      batch_size, epochs: phase-1/phase-2 batch size and number of epochs.
      n_critic: critic steps per generator step.
      gp_weight: gradient-penalty weight of the WGAN-GP critic loss.
      classifier_optimizer: ``"adam"`` or ``"sgd"`` (with ``classifier_momentum``) for the reference
        classifier trained on clean data.
      classifier_learning_rate, classifier_momentum, classifier_batch_size, classifier_epochs:
        reference-classifier training settings.
    """

    preset: str
    temperature_coefficient: float
    temperature_scales_with_levels: bool
    generator_learning_rate: float
    critic_learning_rate: float
    beta_1: float
    beta_2: float
    adam_epsilon: float
    lr_boundaries: tuple[int, ...]
    lr_factors: tuple[float, ...]
    batch_size: int
    epochs: int
    n_critic: int
    gp_weight: float
    classifier_optimizer: str
    classifier_learning_rate: float
    classifier_momentum: float
    classifier_batch_size: int
    classifier_epochs: int

    def quantizer_temperature(self, num_levels: int) -> float:
        """Returns the soft-quantizer temperature T = 1/sigma for ``num_levels`` (digest §2)."""
        if isinstance(num_levels, bool) or not isinstance(num_levels, numbers.Integral):
            raise ValueError(f"num_levels must be an integer >= 2, got {num_levels!r}")
        if num_levels < 2:
            raise ValueError(f"num_levels must be an integer >= 2, got {num_levels}")
        if self.temperature_scales_with_levels:
            return float(self.temperature_coefficient * int(num_levels))
        return float(self.temperature_coefficient)

    def quantizer_sigma(self, num_levels: int) -> float:
        """Returns the digest's sigma = 1/T, the factor multiplying |y - c_l| in the soft path."""
        return 1.0 / self.quantizer_temperature(num_levels)

    def learning_rate_factor(self, epoch: int) -> float:
        """Returns the multiplier of the base learning rates at 0-based ``epoch`` (digest §3.1)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        pieces = sum(1 for boundary in self.lr_boundaries if epoch >= boundary)
        return float(self.lr_factors[pieces])


_DEFAULTS: dict[str, PresetDefaults] = {
    # [U] MNIST: Adam 1e-2 (enc/dec), 2e-4 (critic), betas (0.5, 0.9); x1, x1/5 from epoch 20,
    # x1/50 from 40; batch 64, 30 epochs; sigma = 1. Classifier: Adam 1e-3 (paper Tab. 2),
    # batch 100 ([S7]); 15 epochs (97.3% on MNIST-10k; 10 in [S7], which trains on 60k).
    "mnist": PresetDefaults(
        preset="mnist",
        temperature_coefficient=1.0,
        temperature_scales_with_levels=False,
        generator_learning_rate=1e-2,
        critic_learning_rate=2e-4,
        beta_1=0.5,
        beta_2=0.9,
        adam_epsilon=1e-8,
        lr_boundaries=(20, 40),
        lr_factors=(1.0, 0.2, 0.02),
        batch_size=64,
        epochs=30,
        n_critic=1,
        gp_weight=10.0,
        classifier_optimizer="adam",
        classifier_learning_rate=1e-3,
        classifier_momentum=0.0,
        classifier_batch_size=100,
        classifier_epochs=15,
    ),
    # [U] SVHN: Adam 1e-4 for all, betas (0.5, 0.999); x1, x1/5 from epoch 25; batch 64, 80 epochs;
    # sigma = 2/L. Classifier: ResNet-20 with [C]'s SGD (lr 1e-2, momentum 0.9), batch 64.
    "svhn": PresetDefaults(
        preset="svhn",
        temperature_coefficient=0.5,
        temperature_scales_with_levels=True,
        generator_learning_rate=1e-4,
        critic_learning_rate=1e-4,
        beta_1=0.5,
        beta_2=0.999,
        adam_epsilon=1e-8,
        lr_boundaries=(25,),
        lr_factors=(1.0, 0.2),
        batch_size=64,
        epochs=80,
        n_critic=1,
        gp_weight=10.0,
        classifier_optimizer="sgd",
        classifier_learning_rate=1e-2,
        classifier_momentum=0.9,
        classifier_batch_size=64,
        classifier_epochs=20,
    ),
    # digits (not in the paper): MNIST's settings, with a faster critic for short CPU runs.
    "digits": PresetDefaults(
        preset="digits",
        temperature_coefficient=1.0,
        temperature_scales_with_levels=False,
        generator_learning_rate=1e-2,
        critic_learning_rate=1e-3,
        beta_1=0.5,
        beta_2=0.9,
        adam_epsilon=1e-8,
        lr_boundaries=(20, 40),
        lr_factors=(1.0, 0.2, 0.02),
        batch_size=64,
        epochs=30,
        n_critic=1,
        gp_weight=10.0,
        classifier_optimizer="adam",
        classifier_learning_rate=3e-3,
        classifier_momentum=0.0,
        classifier_batch_size=64,
        classifier_epochs=30,
    ),
}


def preset_defaults(preset: str) -> PresetDefaults:
    """Returns the preset's recommended quantizer temperature and optimiser settings."""
    if not isinstance(preset, str) or preset not in _DEFAULTS:
        raise ValueError(
            f"unknown preset {preset!r}; expected one of {', '.join(sorted(_DEFAULTS))}"
        )
    return _DEFAULTS[preset]


# ------------------------------------------------------------------------------------------------
# The run configuration.

_TUPLE_FIELDS = ("lr_boundaries", "lr_factors", "multihead_lambda_c")
# Filled by `resolved()` from the preset's defaults when None.
_PRESET_FIELDS = {
    "epochs": "epochs",
    "batch_size": "batch_size",
    "generator_learning_rate": "generator_learning_rate",
    "critic_learning_rate": "critic_learning_rate",
    "classifier_learning_rate": "classifier_learning_rate",
    "lr_boundaries": "lr_boundaries",
    "lr_factors": "lr_factors",
    "n_critic": "n_critic",
    "gp_weight": "gp_weight",
    "beta_1": "beta_1",
    "beta_2": "beta_2",
    "adam_epsilon": "adam_epsilon",
}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one RDC training run (flags of `rdc-train` / `rdc-universal`).

    `None` means "the preset's default" (`preset_defaults`); `resolved()` fills every default in.
    """

    workdir: str
    dataset: str = "digits"
    data_dir: str | None = None
    latent_dim: int = 3
    num_levels: int = 3
    temperature: float | None = None
    lambda_d: float = 1.0
    lambda_c: float = 0.0
    lambda_p: float = 0.0
    classifier_mode: str = "pretrained"
    classifier_dir: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    steps_per_epoch: int | None = None
    generator_learning_rate: float | None = None
    critic_learning_rate: float | None = None
    classifier_learning_rate: float | None = None
    lr_boundaries: tuple[int, ...] | None = None
    lr_factors: tuple[float, ...] | None = None
    n_critic: int | None = None
    gp_weight: float | None = None
    schedule: str = "joint"
    mixed_precision: str = "float32"
    jit_compile: bool = False
    strategy: str = "default"
    encoder_dir: str | None = None
    # A saved critic (a head's critic/) whose weights the new critic starts from (phase 2 with
    # lambda_p > 0: the reference code initialises each universal head's critic from the base's).
    base_critic_dir: str | None = None
    head_name: str | None = None
    multihead_lambda_c: tuple[float, ...] | None = None
    seed: int = 0
    verbose: int = 2
    beta_1: float | None = None
    beta_2: float | None = None
    adam_epsilon: float | None = None

    def __post_init__(self) -> None:
        for name in _TUPLE_FIELDS:  # lists (from JSON or flags) become tuples: hashable, frozen
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))

    @property
    def preset(self) -> str:
        """The network preset of the dataset (`data.dataset_info(dataset).preset`)."""
        return data.dataset_info(self.dataset).preset

    @property
    def is_multihead(self) -> bool:
        """True for a multi-head base run (K heads trained with one encoder)."""
        return self.multihead_lambda_c is not None

    @property
    def head_names(self) -> list[str]:
        """Names of the heads this run saves (one, or K for a multi-head base)."""
        if self.is_multihead:
            return multihead_head_names(self.multihead_lambda_c)
        return [self.head_name or default_head_name(self)]

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with `changes` applied."""
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Raises ValueError naming the first bad field (before anything is written)."""
        data.dataset_info(self.dataset)  # unknown dataset -> ValueError naming it
        checks = [
            ("latent_dim", self.latent_dim >= 1, "must be >= 1"),
            ("num_levels", self.num_levels >= 2, "must be >= 2"),
            ("lambda_d", self.lambda_d >= 0, "must be >= 0"),
            ("lambda_c", self.lambda_c >= 0, "must be >= 0"),
            ("lambda_p", self.lambda_p >= 0, "must be >= 0"),
            ("temperature", self.temperature is None or self.temperature > 0, "must be > 0"),
            ("epochs", self.epochs is None or self.epochs >= 1, "must be >= 1"),
            ("batch_size", self.batch_size is None or self.batch_size >= 1, "must be >= 1"),
            (
                "steps_per_epoch",
                self.steps_per_epoch is None or self.steps_per_epoch >= 1,
                "must be >= 1",
            ),
            ("n_critic", self.n_critic is None or self.n_critic >= 1, "must be >= 1"),
            ("gp_weight", self.gp_weight is None or self.gp_weight >= 0, "must be >= 0"),
            (
                "classifier_mode",
                self.classifier_mode in CLASSIFIER_MODES,
                f"not in {CLASSIFIER_MODES}",
            ),
            ("schedule", self.schedule in SCHEDULES, f"not in {SCHEDULES}"),
            ("mixed_precision", self.mixed_precision in PRECISIONS, f"not in {PRECISIONS}"),
            ("strategy", self.strategy in STRATEGIES, f"not in {STRATEGIES}"),
        ]
        for name in ("lambda_d", "lambda_c", "lambda_p", "temperature", "gp_weight"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"--{name}={value!r}: must be a finite number")
        for name in ("generator_learning_rate", "critic_learning_rate", "classifier_learning_rate"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"--{name}={value!r}: must be a finite number > 0")
        for name, ok, problem in checks:
            if not ok:
                raise ValueError(f"--{name}={getattr(self, name)!r}: {problem}")
        if self.lr_factors is not None and not all(
            math.isfinite(f) and f > 0 for f in self.lr_factors
        ):
            raise ValueError(f"--lr_factors={list(self.lr_factors)}: must be finite numbers > 0")
        if self.lr_boundaries is not None and (
            any(b < 0 for b in self.lr_boundaries)
            or list(self.lr_boundaries) != sorted(set(self.lr_boundaries))
        ):
            raise ValueError(
                f"--lr_boundaries={list(self.lr_boundaries)}: must be increasing epochs >= 0"
            )
        if (self.lr_boundaries is None) != (self.lr_factors is None):
            raise ValueError("--lr_boundaries and --lr_factors must be given together")
        if self.lr_boundaries is not None and len(self.lr_factors) != len(self.lr_boundaries) + 1:
            raise ValueError("--lr_factors needs exactly one more entry than --lr_boundaries")
        if self.multihead_lambda_c is not None:
            values = self.multihead_lambda_c
            if not values or not all(math.isfinite(v) and v >= 0 for v in values):
                raise ValueError("--multihead_lambda_c needs one or more weights >= 0")
            if self.lambda_p > 0 or self.classifier_mode != "pretrained" or self.encoder_dir:
                raise ValueError(
                    "a multi-head base needs --lambda_p=0, --classifier=pretrained and no "
                    "--encoder_dir"
                )
        if self.data_dir is None and data.dataset_info(self.dataset).source == "idx":
            raise ValueError(f"--data_dir is required for --dataset={self.dataset}")
        if self.data_dir is not None and not remote.is_dir(self.data_dir):
            raise ValueError(f"--data_dir={self.data_dir}: directory not found")
        if self.base_critic_dir is not None and self.lambda_p <= 0:
            raise ValueError("--base_critic_dir needs --lambda_p > 0 (no critic is built at 0)")
        for name in ("classifier_dir", "encoder_dir", "base_critic_dir"):
            value = getattr(self, name)
            if value is not None and not pathlib.Path(value).is_dir():
                raise ValueError(f"--{name}={value}: directory not found")

    def resolved(self) -> TrainConfig:
        """The config with every preset default filled in (what config.json records)."""
        defaults = preset_defaults(self.preset)
        fill: dict[str, Any] = {
            field: getattr(defaults, attribute)
            for field, attribute in _PRESET_FIELDS.items()
            if getattr(self, field) is None
        }
        if self.temperature is None:
            fill["temperature"] = defaults.quantizer_temperature(self.num_levels)
        if self.head_name is None:
            fill["head_name"] = default_head_name(self)
        return self.replace(**fill)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored under "config" in config.json (tuples as lists, plus "preset")."""
        values = dataclasses.asdict(self)
        for name in _TUPLE_FIELDS:
            if values[name] is not None:
                values[name] = list(values[name])
        values["preset"] = self.preset
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict`; derived keys ("preset") and unknown keys are ignored."""
        fields = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in fields})

    def differences(self, previous: TrainConfig) -> list[str]:
        """`field=previous (not this)` for every field that changes a run's result.

        Every difference is named (not only the first): a derived field such as head_name alone
        would hide the flag that changed it. `VOLATILE_FIELDS` (verbose, workdir) are ignored.
        """
        old, new = previous.to_dict(), self.to_dict()
        return [
            f"{key}={old.get(key)!r} (not {new.get(key)!r})"
            for key in sorted(set(old) | set(new))
            if key not in VOLATILE_FIELDS and old.get(key) != new.get(key)
        ]


def default_head_name(config: TrainConfig) -> str:
    """A readable head name from its lambdas, e.g. `d1-c0.015-p0` (`multihead` for K heads)."""
    if config.multihead_lambda_c is not None:
        return "multihead"
    return f"d{config.lambda_d:g}-c{config.lambda_c:g}-p{config.lambda_p:g}"


def multihead_head_names(lambda_c: tuple[float, ...] | list[float]) -> list[str]:
    """Names of the K heads of a multi-head base run, e.g. `multihead-c0.015`."""
    return [f"multihead-c{value:g}" for value in lambda_c]
