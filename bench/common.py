"""Shared helpers of the benchmark scripts: result records, statistics, interleaving, FLOP counts.

Every benchmark writes a JSON list of records with the keys of issue 9,
``{"name", "value", "unit", "baseline", "ratio", "command", "machine", "date"}``; `machine`
names the CPU model, its cores and ISA extensions that matter here, and the TF/torch versions.
`Records` collects one run's records (one command, machine line and date for all of them).
The command-line helpers (`fill_defaults`, `check_minimum`) give the scripts their `--quick`
defaults and bounds; `untrained_classifier` and `export_head_paths` are the small pieces of
library plumbing several scripts need. Importing this module imports neither TensorFlow nor torch
(the training-step benchmark's parent process stays free of both).

The FLOP counts are analytic (``2 * multiply-accumulates`` of every Dense, Conv2D and
Conv2DTranspose layer); the TF profiler's ``float_operation`` count is not used because it
overstates the backward passes of convolutions (issue 9, item 2). `train_step_flops` documents
how a training step's forward, backward and double-backward passes are counted.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import math
import os
import pathlib
import platform
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rdc_keras import runs
from rdc_keras.files import atomic_write, read_json

__all__ = [
    "DEFAULT_DATA_DIR",
    "RECORD_KEYS",
    "REPO_ROOT",
    "LayerFlops",
    "ModelFlops",
    "Records",
    "check_minimum",
    "command_line",
    "cpu_flags",
    "default_output",
    "export_head_paths",
    "fill_defaults",
    "inference_flops",
    "interleave",
    "layer_flops",
    "load_average",
    "machine",
    "make_record",
    "median",
    "model_flops",
    "percentile",
    "rdc_step_flops",
    "read_results",
    "report",
    "thread_count",
    "train_step_flops",
    "untrained_classifier",
    "utc_now",
    "write_results",
]

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# The MNIST IDX files beside the checkout (every script's --data_dir default).
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "mnist"
RECORD_KEYS = ("name", "value", "unit", "baseline", "ratio", "command", "machine", "date")
_INTERESTING_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni")


# --------------------------------------------------------------------------------------------------
# Machine description and records.


def cpu_flags() -> set[str]:
    """The CPU's ISA flags (`rdc_keras.runs.cpu_flags`: empty when unavailable)."""
    return runs.cpu_flags()


def thread_count() -> int:
    """Number of CPUs this process may run on (what TF's default intra-op pool uses)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine() -> str:
    """CPU model, cores, relevant ISA flags, and the Python/TF/torch versions, on one line."""
    flags = cpu_flags()
    shown = [flag for flag in _INTERESTING_FLAGS if flag in flags]
    missing = [flag for flag in ("avx512f", "avx512_bf16") if flag not in flags]
    isa = ", ".join(shown + [f"no {flag}" for flag in missing]) if flags else "flags unknown"
    return (
        f"{runs.cpu_model()}, {thread_count()} cores ({isa}), {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, "
        f"TF {_version('tensorflow')}, torch {_version('torch')}"
    )


def load_average() -> float:
    """The 1-minute load average (NaN where the OS has none), printed beside timings."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """The command that reproduces a run: `python -m <script> <args>` (argv None: sys.argv)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join(["python", "-m", script, *args])


def make_record(
    name: str,
    value: float | None,
    unit: str,
    command: str,
    baseline: float | None = None,
    ratio: float | None = None,
    machine_text: str | None = None,
    date: str | None = None,
) -> dict[str, Any]:
    """One result record with exactly the keys of `RECORD_KEYS`.

    `ratio` defaults to value / baseline when both are given (each benchmark documents which
    direction is good).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"record name must be a non-empty string, got {name!r}")
    if ratio is None and value is not None and baseline not in (None, 0):
        ratio = value / baseline
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "ratio": ratio,
        "command": command,
        "machine": machine() if machine_text is None else machine_text,
        "date": utc_now() if date is None else date,
    }


class Records:
    """The records of one benchmark run: one command, machine line and date shared by all."""

    def __init__(
        self, command: str, machine_text: str | None = None, date: str | None = None
    ) -> None:
        self.command = command
        self.machine = machine() if machine_text is None else machine_text
        self.date = utc_now() if date is None else date
        self.records: list[dict[str, Any]] = []

    def add(
        self,
        name: str,
        value: float | None,
        unit: str,
        baseline: float | None = None,
        ratio: float | None = None,
    ) -> dict[str, Any]:
        """Appends and returns `make_record(name, value, unit, ...)` with the shared fields."""
        record = make_record(
            name, value, unit, self.command, baseline, ratio, self.machine, self.date
        )
        self.records.append(record)
        return record


def default_output(file_name: str, quick: bool) -> pathlib.Path:
    """bench/results/<file_name>, or bench/runs/quick/results/<file_name> for `--quick` checks.

    Check runs never write into bench/results, so they cannot pass for recordings.
    """
    if quick:
        return REPO_ROOT / "bench" / "runs" / "quick" / "results" / file_name
    return REPO_ROOT / "bench" / "results" / file_name


def write_results(path: str | os.PathLike, records: Sequence[Mapping[str, Any]]) -> pathlib.Path:
    """Writes records as a JSON list, atomically (`rdc_keras.files.atomic_write`)."""
    for record in records:
        if tuple(record) != RECORD_KEYS:
            raise ValueError(f"record keys must be {RECORD_KEYS}, got {tuple(record)}")
    path = pathlib.Path(path)
    atomic_write(path, json.dumps(list(records), indent=2, allow_nan=True) + "\n")
    return path


def report(path: str | os.PathLike, records: Sequence[Mapping[str, Any]]) -> pathlib.Path:
    """`write_results`, then prints one line per record and the file written."""
    path = write_results(path, records)
    for record in records:
        ratio = "" if record["ratio"] is None else f" ratio {record['ratio']:.3f}"
        print(f"{record['name']}: {record['value']:.4g} {record['unit']}{ratio}")
    print(f"wrote {path}")
    return path


def read_results(directory: str | os.PathLike) -> dict[str, list[dict[str, Any]]]:
    """Reads every `*.json` in directory; returns {file stem: list of records}.

    A file holds a list of records (a single dict, the older format, is accepted too).
    """
    out: dict[str, list[dict[str, Any]]] = {}
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return out
    for path in sorted(directory.glob("*.json")):
        content = read_json(path)
        records = [content] if isinstance(content, dict) else list(content)
        out[path.stem] = [record for record in records if isinstance(record, dict)]
    return out


# --------------------------------------------------------------------------------------------------
# Command-line helpers and library plumbing shared by the scripts.


def fill_defaults(
    args: argparse.Namespace, quick: bool, defaults: Mapping[str, tuple[Any, Any]]
) -> None:
    """Sets every option still None to its (full run, --quick) default from `defaults`."""
    for key, (full, small) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, small if quick else full)


def check_minimum(
    parser: argparse.ArgumentParser, args: argparse.Namespace, minimum: float, *keys: str
) -> None:
    """`parser.error` naming the first option among `keys` that is set and below `minimum`."""
    for key in keys:
        value = getattr(args, key)
        if value is not None and value < minimum:
            parser.error(f"--{key} must be >= {minimum:g}, got {value}")


def untrained_classifier(
    directory: str | os.PathLike, preset: str = "mnist", seed: int = 0
) -> pathlib.Path:
    """Saves a randomly initialised judge in `directory` once (`runs.save_classifier`).

    For runs whose judge never decides anything (lambda_c = 0, or a carrier of the architecture
    whose weights do not change a timing); a recording that needs a real judge trains one with
    `rdc_keras.trainers.classifier.train_reference_classifier`.
    """
    from rdc_keras import networks
    from rdc_keras.tfkeras import keras

    directory = pathlib.Path(directory)
    if not runs.is_saved_network(directory):
        keras.utils.set_random_seed(seed)
        runs.save_classifier(directory, networks.classifier(preset), preset, untrained=True)
    return directory


def export_head_paths(
    root: str | os.PathLike, manifest: Mapping[str, Any] | None = None
) -> dict[str, pathlib.Path]:
    """{head name: version directory} of an `rdc-export` tree, sorted by name, from its manifest.

    `manifest` is `export_run`'s return value; None reads the tree's manifest file.
    """
    from rdc_keras import serving

    root = pathlib.Path(root)
    if manifest is None:
        manifest = read_json(root / serving.MANIFEST_FILE)
    return {name: root / entry["path"] for name, entry in sorted(manifest["heads"].items())}


# --------------------------------------------------------------------------------------------------
# Statistics and interleaving.


def median(values: Iterable[float]) -> float:
    """The median (mean of the two middle values for an even count); ValueError when empty."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        raise ValueError("median of an empty sequence")
    if any(math.isnan(v) for v in ordered):
        raise ValueError("median of a sequence containing NaN")
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2.0


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation (numpy's default method)."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in [0, 100], got {q}")
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def interleave(contenders: Mapping[str, Callable[[], Any]], repeats: int) -> dict[str, list[Any]]:
    """Calls every contender once per round, `repeats` rounds; returns {name: [results]}.

    Round r starts with contender r mod n (a rotation), so on a noisy machine no contender is
    always first or always after the same neighbour; contenders never run at the same time.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    names = list(contenders)
    if not names:
        raise ValueError("interleave needs at least one contender")
    results: dict[str, list[Any]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(contenders[name]())
    return results


# --------------------------------------------------------------------------------------------------
# Analytic FLOP counts.


@dataclasses.dataclass(frozen=True)
class LayerFlops:
    """Forward FLOPs (2 x multiply-accumulates) of one layer for one example."""

    name: str
    kind: str
    forward: int


@dataclasses.dataclass(frozen=True)
class ModelFlops:
    """Per-example forward FLOPs of a chain of layers, with its first and last counted layer.

    The first layer's input gradient is only needed when the model's input needs a gradient,
    and the last layer's output gradient is a constant in the gradient penalty, so the step
    formulas need those two terms separately.
    """

    name: str
    layers: tuple[LayerFlops, ...]

    @property
    def forward(self) -> int:
        return sum(layer.forward for layer in self.layers)

    @property
    def first(self) -> int:
        return self.layers[0].forward if self.layers else 0

    @property
    def last(self) -> int:
        return self.layers[-1].forward if self.layers else 0


def _shape(tensor_shape: Any) -> tuple[int, ...]:
    shape = tuple(tensor_shape)
    if any(dim is None for dim in shape[1:]):
        raise ValueError(f"layer shapes must be static apart from the batch, got {shape}")
    return tuple(int(dim) for dim in shape[1:])


def _iter_layers(model: Any) -> Iterable[Any]:
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:  # nested model or Sequential
            yield from _iter_layers(layer)
        else:
            yield layer


def layer_flops(model: Any) -> list[LayerFlops]:
    """Forward FLOPs per example of every Dense, Conv2D and Conv2DTranspose layer, in order.

    Dense: 2 * (positions) * in * units. Conv2D: 2 * H_out * W_out * C_out * k_h * k_w * C_in /
    groups. Conv2DTranspose: 2 * H_in * W_in * C_in * k_h * k_w * C_out (every input pixel is
    scattered through the kernel). Biases, BatchNorm, activations and pooling are elementwise
    (memory-bound, < 1% of the step here) and are not counted.

    Raises:
      TypeError: a layer type with a kernel that this counter does not know (so nothing is
        silently left out).
    """
    from rdc_keras.tfkeras import keras

    out = []
    for layer in _iter_layers(model):
        if isinstance(layer, keras.layers.Conv2DTranspose):  # subclass of Conv2D: first
            in_h, in_w, in_c = _shape(layer.input_shape)
            k_h, k_w = layer.kernel_size
            flops = 2 * in_h * in_w * in_c * k_h * k_w * layer.filters
            kind = "conv2d_transpose"
        elif isinstance(layer, keras.layers.Conv2D):
            in_c = _shape(layer.input_shape)[-1]
            out_h, out_w, out_c = _shape(layer.output_shape)
            k_h, k_w = layer.kernel_size
            flops = 2 * out_h * out_w * out_c * k_h * k_w * in_c // layer.groups
            kind = "conv2d"
        elif isinstance(layer, keras.layers.Dense):
            in_shape = _shape(layer.input_shape)
            positions = math.prod(in_shape[:-1])
            flops = 2 * positions * in_shape[-1] * layer.units
            kind = "dense"
        elif any("kernel" in w.name.split("/")[-1] for w in getattr(layer, "weights", [])):
            raise TypeError(f"layer {layer.name!r} ({type(layer).__name__}) is not counted")
        else:
            continue
        out.append(LayerFlops(layer.name, kind, int(flops)))
    return out


def model_flops(model: Any) -> ModelFlops:
    """`layer_flops` of a model wrapped with its name (see `ModelFlops`)."""
    return ModelFlops(model.name, tuple(layer_flops(model)))


def train_step_flops(
    encoder: ModelFlops,
    decoder: ModelFlops,
    critic: ModelFlops,
    classifier: ModelFlops | None,
    schedule: str,
) -> float:
    """Required FLOPs per image of one phase-1 training step (issue 9, item 2).

    Per counted layer with forward cost f: forward f, weight gradient f, input gradient f (so a
    full forward+backward is 3f); a model whose input needs no gradient skips its first layer's
    input gradient (F - first). For a model M with F = sum of f:

    * critic update (WGAN-GP), per image: real and fake scores 2 * (3F - first); the gradient
      penalty: forward at the interpolate F, its input gradient F (every layer, down to the
      image), and the double backward through that gradient: a weight gradient F plus the
      gradient with respect to the incoming gradient at every layer but the top one, whose
      incoming gradient is the constant 1 (F - last). LeakyReLU's derivative is piecewise
      constant, so nothing flows back into the interpolate's forward pass. Total
      10F - 2 first - last.
    * joint classifier update on the detached reconstruction: 3F - first.
    * generator update: encoder forward + backward 3F - first, decoder 3F; the critic (and the
      classifier when lambda_c > 0) run forward on x_hat and back to x_hat only: 2F each.

    schedule "joint" (our phase-1 step: one forward of encoder+decoder shared by the critic,
    classifier and generator updates) sums all of the above per batch. schedule "alternate"
    (the paper's code, no classifier) spends one batch on a critic turn (encoder+decoder
    forward without gradients, then the critic update) and the next on a generator turn; the
    value returned is the mean per image over the two turns. Adam updates (~10 FLOPs per
    parameter per step, < 0.1% here) and elementwise layers are not counted.
    """
    E, D, C = encoder, decoder, critic
    critic_update = 10 * C.forward - 2 * C.first - C.last
    generator_update = (3 * E.forward - E.first) + 3 * D.forward + 2 * C.forward
    if schedule == "joint":
        if classifier is None:
            raise ValueError("the joint schedule needs the classifier's FLOPs")
        K = classifier
        classifier_update = 3 * K.forward - K.first
        return critic_update + classifier_update + generator_update + 2 * K.forward
    if schedule == "alternate":
        critic_turn = E.forward + D.forward + critic_update
        return (critic_turn + generator_update) / 2.0
    raise ValueError(f"schedule must be 'joint' or 'alternate', got {schedule!r}")


def rdc_step_flops(
    encoder: ModelFlops, decoder: ModelFlops, classifier: ModelFlops, frozen_encoder: bool
) -> float:
    """Required FLOPs per image of one RDC-only step (lambda_p = 0, frozen pretrained classifier).

    The step every `rdc-experiment` model trains with. Phase 1: encoder forward + backward
    3F - first, decoder 3F, classifier forward on x_hat and back to x_hat 2F. Phase 2 (frozen
    encoder, universal heads): encoder forward only F, and the decoder's first layer needs no
    input gradient (3F - first). Same counting rules as `train_step_flops`.
    """
    E, D, K = encoder, decoder, classifier
    if frozen_encoder:
        return E.forward + (3 * D.forward - D.first) + 2 * K.forward
    return (3 * E.forward - E.first) + 3 * D.forward + 2 * K.forward


def inference_flops(encoder: ModelFlops, decoder: ModelFlops) -> int:
    """Forward FLOPs per image of encoder + head (quantization and dither are elementwise)."""
    return encoder.forward + decoder.forward
