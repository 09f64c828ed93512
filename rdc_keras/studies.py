"""What a study trains: `StudyConfig`, the presets, and `study_config` (validated overrides).

A study (`rdc_keras.experiment.run_study`) trains an E2E grid over (lambda_c, lambda_p) at one or
more rates, universal heads on frozen base encoders over a second grid, and scores every model by
one protocol. RDC presets (`digits`, `mnist10k`, `mnist`, `svhn`) keep lambda_p = 0; perception
presets (`digits-rdp`, `mnist10k-rdp`, `mnist10k-rdpc`) add the W1 term (digest §4.3-§4.4).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rdc_keras import remote
from rdc_keras.config import PRECISIONS, SCHEDULES

__all__ = ["BASES", "PRESETS", "StudyConfig", "study_config"]

# Universal families a study can train: heads on the paper's single-lambda base encoder and heads
# on the multi-head base encoder (beyond the paper). Which ones run does not change any model, so
# the choice is not part of the recorded study settings.
BASES = {"paper": "universal-paper", "multihead": "universal-multihead"}


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """What a study trains. Rates are (latent_dim, num_levels) pairs; the first is the main one."""

    name: str
    dataset: str
    rates: tuple[tuple[int, int], ...]
    e2e_lambda_c: tuple[float, ...]
    universal_lambda_c: tuple[float, ...]
    base_lambda_c: float
    epochs: int | None = None
    steps_per_epoch: int | None = None
    batch_size: int | None = None
    classifier_epochs: int | None = None
    w1_steps: int = 0
    grid_images: int = 8
    data_dir: str | None = None
    # The perception axis: every grid is the product of its lambda_c and lambda_p values, and the
    # paper's base encoder is the E2E model at (base_lambda_c, base_lambda_p). RDC studies keep 0.
    e2e_lambda_p: tuple[float, ...] = (0.0,)
    universal_lambda_p: tuple[float, ...] = (0.0,)
    base_lambda_p: float = 0.0
    # Training settings of every model (TrainConfig fields); "alternate" is the paper's schedule.
    schedule: str = "joint"
    mixed_precision: str = "float32"
    # The multi-head base's heads (None: one per universal lambda_c). A study of a few universal
    # heads (e.g. lambda_c = 0 over several seeds) keeps the same base encoder as the full grid.
    multihead_lambda_c: tuple[float, ...] | None = None

    @property
    def multihead_heads(self) -> tuple[float, ...]:
        """lambda_c of each head of the multi-head base encoder."""
        return tuple(self.multihead_lambda_c or self.universal_lambda_c)

    @property
    def is_perception(self) -> bool:
        """True when any model has a perception (W1) term: a realism-vs-distortion study."""
        values = (*self.e2e_lambda_p, *self.universal_lambda_p, self.base_lambda_p)
        return any(value > 0 for value in values)


PRESETS: dict[str, StudyConfig] = {
    # The embedded demo: scikit-learn digits, small networks, <= 10 minutes on 2 CPU cores.
    "digits": StudyConfig(
        name="digits",
        dataset="digits",
        rates=((3, 3), (2, 3), (3, 4)),
        e2e_lambda_c=(0.0, 0.005, 0.01, 0.02, 0.04),
        universal_lambda_c=(0.0, 0.005, 0.01, 0.02, 0.04),
        base_lambda_c=0.04,
        epochs=20,
    ),
    # MNIST-10k (the 10,000 t10k images split 8,000/2,000) at the paper's 4.75 bits.
    "mnist10k": StudyConfig(
        name="mnist10k",
        dataset="mnist_idx",
        rates=((3, 3),),
        e2e_lambda_c=(0.0, 0.0033, 0.0066, 0.01, 0.015),
        universal_lambda_c=(0.0, 0.0033, 0.0066, 0.01, 0.015),
        base_lambda_c=0.015,
        epochs=30,
    ),
    # The perception axis on the embedded data (minutes): E2E over a lambda_p grid, universal heads
    # on the frozen lambda_p = 0.02 encoder, the paper's alternating critic/generator schedule.
    "digits-rdp": StudyConfig(
        name="digits-rdp",
        dataset="digits",
        rates=((3, 3),),
        e2e_lambda_c=(0.0,),
        universal_lambda_c=(0.0,),
        base_lambda_c=0.0,
        e2e_lambda_p=(0.0, 0.005, 0.01, 0.02),
        universal_lambda_p=(0.0, 0.005, 0.01, 0.02),
        base_lambda_p=0.02,
        epochs=20,
        w1_steps=200,
        schedule="alternate",
    ),
    # The uRDP protocol at 4.75 bits on MNIST-10k (digest §4.4): E2E over lambda_p in [0, 0.015],
    # universal heads (critics initialised from the base critic) on the lambda_p = 0.015 encoder.
    "mnist10k-rdp": StudyConfig(
        name="mnist10k-rdp",
        dataset="mnist_idx",
        rates=((3, 3),),
        e2e_lambda_c=(0.0,),
        universal_lambda_c=(0.0,),
        base_lambda_c=0.0,
        e2e_lambda_p=(0.0, 0.005, 0.01, 0.015),
        universal_lambda_p=(0.0, 0.005, 0.01),
        base_lambda_p=0.015,
        # 8 epochs (the paper: 30) and float32 keep the study within 100 minutes on 2 cores:
        # 60 s per epoch on this project's slower EPYC, where bf16 is emulated (9x slower).
        epochs=8,
        w1_steps=300,
        schedule="alternate",
    ),
    # The poster's "with Wasserstein regularisation" slice: a fixed lambda_p with a lambda_c grid,
    # to set accuracy vs MSE beside the RDC study (mnist10k, lambda_p = 0).
    "mnist10k-rdpc": StudyConfig(
        name="mnist10k-rdpc",
        dataset="mnist_idx",
        rates=((3, 3),),
        e2e_lambda_c=(0.0, 0.0066, 0.015),
        universal_lambda_c=(0.0, 0.0066, 0.015),
        base_lambda_c=0.015,
        e2e_lambda_p=(0.01,),
        universal_lambda_p=(0.01,),
        base_lambda_p=0.01,
        epochs=8,
        w1_steps=300,
        schedule="alternate",
    ),
    # Full MNIST (TFDS), the paper's grids and rates; for users with the data and a GPU.
    "mnist": StudyConfig(
        name="mnist",
        dataset="mnist",
        rates=((3, 3), (3, 4), (4, 4)),
        e2e_lambda_c=(0.0, 0.001, 0.0033, 0.0066, 0.008, 0.011, 0.013, 0.015),
        universal_lambda_c=(0.0, 3e-5, 5e-5, 1e-4, 6e-4, 1e-3, 0.015),
        base_lambda_c=0.015,
        epochs=30,
    ),
    # SVHN (TFDS), 30 bits as in the uRDP code, lambda_c on the SVHN scale; GPU advised.
    "svhn": StudyConfig(
        name="svhn",
        dataset="svhn_cropped",
        rates=((10, 8),),
        e2e_lambda_c=(0.0, 0.00025, 0.0005, 0.001, 0.002),
        universal_lambda_c=(0.0, 0.00025, 0.0005, 0.001, 0.002),
        base_lambda_c=0.002,
        epochs=80,
    ),
}


def study_config(preset: str, **overrides: Any) -> StudyConfig:
    """The preset's study with `overrides` (None values are ignored)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown study preset {preset!r}; expected one of {', '.join(PRESETS)}")
    config = PRESETS[preset]
    overrides = {key: value for key, value in overrides.items() if value is not None}
    config = dataclasses.replace(config, **overrides)
    grids = {
        name: getattr(config, name)
        for name in ("e2e_lambda_c", "universal_lambda_c", "e2e_lambda_p", "universal_lambda_p")
    }
    if config.multihead_lambda_c is not None:
        grids["multihead_lambda_c"] = config.multihead_lambda_c
        if tuple(config.multihead_lambda_c) == tuple(config.universal_lambda_c):
            config = dataclasses.replace(config, multihead_lambda_c=None)  # the default's study
    for name, values in grids.items():
        if not values or any(not value >= 0 for value in values):
            raise ValueError(f"{name} must be one or more values >= 0, got {list(values)}")
    if config.base_lambda_c not in config.e2e_lambda_c:
        raise ValueError(f"base_lambda_c={config.base_lambda_c} is not in the E2E grid")
    if config.base_lambda_p not in config.e2e_lambda_p:
        raise ValueError(f"base_lambda_p={config.base_lambda_p} is not in the E2E grid")
    if config.schedule not in SCHEDULES or config.mixed_precision not in PRECISIONS:
        raise ValueError(
            f"schedule {config.schedule!r} / precision {config.mixed_precision!r}: expected one "
            f"of {SCHEDULES} / {PRECISIONS}"
        )
    if not config.rates or any(d < 1 or levels < 2 for d, levels in config.rates):
        raise ValueError(f"rates must be (latent_dim >= 1, num_levels >= 2) pairs: {config.rates}")
    if config.data_dir is not None and not remote.is_dir(config.data_dir):
        raise ValueError(f"--data_dir={config.data_dir}: directory not found")
    return config
