"""Keras callbacks of a training run: divergence guard, per-epoch log, piecewise learning rate.

`rdc_keras.trainers.runner.train_run` installs them in this order: `StopOnNonFinite` first (so a
diverged epoch never reaches BackupAndRestore), `PiecewiseLearningRate`, then `EpochLog` (one
JSON line per epoch in metrics.jsonl and a progress line; on a terminal, also a progress bar
with rate and ETA within each epoch).
"""

from __future__ import annotations

import json
import math
import pathlib
import sys
import time
from typing import Any

from rdc_keras.files import atomic_write
from rdc_keras.tfkeras import keras

__all__ = [
    "EpochLog",
    "PiecewiseLearningRate",
    "StopOnNonFinite",
    "TrainingDivergedError",
    "format_duration",
]

# Metrics shown on the per-epoch progress line (when present), in this order.
_SHOWN = ("loss", "mse", "ce", "accuracy", "w1", "val_mse", "val_ce", "val_accuracy")


def format_duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `2 h 07 min`: a remaining time as a person reads it."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


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
    """Appends one JSON line per epoch to metrics.jsonl and prints a short progress line.

    With `verbose` on a terminal (`progress=None`: stdout is a tty), a progress bar with the
    step rate and the epoch's ETA is redrawn in place (carriage return) within each epoch and
    replaced by the epoch's line at its end; logs and pipes get the epoch lines only.
    """

    _REDRAW_SECONDS = 0.25
    _BAR_WIDTH = 20

    def __init__(
        self, path: pathlib.Path, total_epochs: int, verbose: int, progress: bool | None = None
    ) -> None:
        super().__init__()
        self.path = path
        self.total_epochs = total_epochs
        self.verbose = verbose
        if progress is None:
            progress = bool(verbose) and sys.stdout.isatty()
        self.progress = progress
        self._supports_tf_logs = True  # the bar reads no metric: no per-batch numpy conversion

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._start = time.perf_counter()
        self._drawn = 0.0
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if not self.progress:
            return
        now = time.perf_counter()
        total = (self.params or {}).get("steps") or 0
        done = batch + 1
        if now - self._drawn < self._REDRAW_SECONDS and done != total:
            return
        self._drawn = now
        rate = done / max(now - self._start, 1e-9)
        if total:
            filled = self._BAR_WIDTH * done // total
            bar = f"[{'=' * filled}{'.' * (self._BAR_WIDTH - filled)}] {done}/{total}"
            eta = f" ETA {format_duration((total - done) / rate)}"
        else:
            bar, eta = f"{done} steps", ""
        line = f"epoch {self._epoch + 1}/{self.total_epochs} {bar} {rate:.1f} steps/s{eta}"
        sys.stdout.write(f"\r{line}\033[K")
        sys.stdout.flush()

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
            if self.progress:
                sys.stdout.write("\r\033[K")  # the bar's line becomes the epoch's line
            shown = " ".join(f"{key}={record[key]:.4g}" for key in _SHOWN if key in record)
            print(
                f"epoch {epoch + 1}/{self.total_epochs} {shown} ({record['seconds']:.1f} s)",
                flush=True,
            )


class PushEachEpoch(keras.callbacks.Callback):
    """Copies a run's local staging directory to its remote work directory after every epoch
    (placed after BackupAndRestore, so the epoch's checkpoint goes too): a run killed with its
    machine resumes from the remote copy (`rdc_keras.remote`)."""

    def __init__(self, local: str | pathlib.Path, remote: str):
        super().__init__()
        self.local, self.remote = pathlib.Path(local), remote

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        from rdc_keras import remote

        remote.push(self.local, self.remote)


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
