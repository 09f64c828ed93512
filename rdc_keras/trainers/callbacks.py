"""Keras callbacks of a training run: divergence guard, per-epoch log, piecewise learning rate.

`rdc_keras.trainers.runner.train_run` installs them in this order: `StopOnNonFinite` first (so a
diverged epoch never reaches BackupAndRestore), `PiecewiseLearningRate`, then `EpochLog` (one
JSON line per epoch in metrics.jsonl and a progress line).
"""

from __future__ import annotations

import json
import math
import pathlib
import time
from typing import Any

from rdc_keras.files import atomic_write
from rdc_keras.tfkeras import keras

__all__ = ["EpochLog", "PiecewiseLearningRate", "StopOnNonFinite", "TrainingDivergedError"]

# Metrics shown on the per-epoch progress line (when present), in this order.
_SHOWN = ("loss", "mse", "ce", "accuracy", "w1", "val_mse", "val_ce", "val_accuracy")


class TrainingDivergedError(RuntimeError):
    """A loss or metric became NaN/Inf; the last good epoch's state is kept in backup/."""


class StopOnNonFinite(keras.callbacks.Callback):
    """Raises `TrainingDivergedError` at the first non-finite batch or epoch metric.

    Raising (rather than setting `stop_training`, as TerminateOnNaN does) skips the rest of
    `on_epoch_end`; as the first callback, it runs before BackupAndRestore, which therefore never
    writes the diverged state over the last good epoch.
    """

    def __init__(self, check_every: int = 25) -> None:
        super().__init__()
        self.check_every = check_every
        self._supports_tf_logs = True  # no per-batch conversion of the logs to numpy

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def _check(self, logs: dict[str, Any] | None, where: str) -> None:
        for name, value in (logs or {}).items():
            if not math.isfinite(float(value)):
                raise TrainingDivergedError(
                    f"training diverged: {name} became {float(value)} in epoch "
                    f"{getattr(self, '_epoch', 0) + 1}{where}"
                )

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # Reading a metric waits for the step to finish, so batches are checked only every
        # `check_every` steps (and every epoch end); logs stay tensors in between.
        if (batch + 1) % self.check_every == 0:
            self._check(logs, f", batch {batch + 1}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._check(logs, "")


class EpochLog(keras.callbacks.Callback):
    """Appends one JSON line per epoch to metrics.jsonl and prints a short progress line."""

    def __init__(self, path: pathlib.Path, total_epochs: int, verbose: int) -> None:
        super().__init__()
        self.path = path
        self.total_epochs = total_epochs
        self.verbose = verbose

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        record = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - self._start, 3)}
        record.update({key: float(value) for key, value in (logs or {}).items()})
        lines = []
        if self.path.exists():  # a resumed run drops lines of epochs it is about to redo
            lines = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line)["epoch"] < epoch + 1
            ]
        lines.append(json.dumps(record, sort_keys=True))
        atomic_write(self.path, "\n".join(lines) + "\n")
        if self.verbose:
            shown = " ".join(f"{key}={record[key]:.4g}" for key in _SHOWN if key in record)
            print(
                f"epoch {epoch + 1}/{self.total_epochs} {shown} ({record['seconds']:.1f} s)",
                flush=True,
            )


class PiecewiseLearningRate(keras.callbacks.Callback):
    """Multiplies every optimizer's base learning rate by the per-epoch factor (digest §3.1)."""

    def __init__(self, base_rates: dict[str, float], boundaries, factors) -> None:
        super().__init__()
        self.base_rates = base_rates
        self.boundaries = list(boundaries)
        self.factors = list(factors)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        factor = self.factors[sum(1 for b in self.boundaries if epoch >= b)]
        for attribute, rate in self.base_rates.items():
            optimizer = getattr(self.model, attribute, None)
            if optimizer is not None:
                optimizer.learning_rate.assign(rate * factor)
