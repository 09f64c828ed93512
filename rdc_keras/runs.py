"""The run directory and saved networks: the one owner of their on-disk layout.

Every training run (`rdc-train`, an `rdc-universal` head, every model of an `rdc-experiment`
study) is a directory::

    config.json        {"config": TrainConfig.to_dict(), "environment": environment()}
    metrics.jsonl      one JSON line per finished epoch (train and validation metrics)
    backup/            Keras BackupAndRestore state: a re-run resumes after the last full epoch
    logs/              TensorBoard
    classifier/        the reference classifier, when this run had to train one
    encoder/           the encoder (network.json + weights.h5), with its fingerprint
    heads/<name>/      decoder/ (+ critic/) and head.json: lambdas, metrics, encoder fingerprint
    results.json       test metrics of the finished run (MSE per pixel on [0,1]; CE in nats)

`RunDir` names these paths, reads and writes them, and lists a run's heads; `find_runs` finds
the finished runs under a directory (a whole study). A saved network is a directory holding
`network.json` (the builder arguments and metadata) and `weights.h5`; loading rebuilds the network
from its preset with `rdc_keras.networks`, so no Python code is pickled. The encoder fingerprint
(a hash of its weights and quantizer settings) ties each decoder head to the encoder it was
trained on: `load_head` refuses any other. Writes are atomic (`rdc_keras.files`).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import pathlib
import platform
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rdc_keras.errors import meaningful_line
from rdc_keras.files import atomic_directory, read_json, write_json

if TYPE_CHECKING:
    from rdc_keras.config import TrainConfig

__all__ = [
    "Head",
    "RunDir",
    "cpu_flags",
    "cpu_model",
    "encoder_fingerprint",
    "environment",
    "find_runs",
    "is_saved_network",
    "load_classifier",
    "load_critic",
    "load_encoder",
    "load_head",
    "load_network",
    "save_classifier",
    "save_encoder",
    "save_head",
    "save_network",
]

NETWORK_FILE = "network.json"
WEIGHTS_FILE = "weights.h5"
HEAD_FILE = "head.json"
CONFIG_FILE = "config.json"
RESULTS_FILE = "results.json"
METRICS_FILE = "metrics.jsonl"


# ------------------------------------------------------------------------------------------------
# Saved networks.


def save_network(directory: str | os.PathLike, model: Any, description: dict[str, Any]) -> None:
    """Saves `model`'s weights and its JSON `description` atomically into `directory`.

    Args:
      directory: destination; replaced as a whole if it exists.
      model: a built `keras.Model`.
      description: JSON-serializable dict; must hold "kind" and "preset" (see `load_network`).
    """
    for key in ("kind", "preset"):
        if key not in description:
            raise ValueError(f"network description needs {key!r}")
    with atomic_directory(directory) as tmp:
        model.save_weights(str(tmp / WEIGHTS_FILE))
        write_json(tmp / NETWORK_FILE, description)


def load_network(
    directory: str | os.PathLike, builder: Callable[[dict[str, Any]], Any], kind: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """Rebuilds a network with `builder(description)` and loads its saved weights.

    Raises:
      ValueError: the directory is missing, incomplete, or holds another kind of network.
    """
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory}: no saved network (directory not found)")
    description = read_json(directory / NETWORK_FILE)
    if kind is not None and description.get("kind") != kind:
        raise ValueError(
            f"{directory}: holds a {description.get('kind')!r} network, expected {kind!r}"
        )
    weights = directory / WEIGHTS_FILE
    if not weights.exists():
        raise ValueError(f"{weights}: weights file not found")
    try:
        model = builder(description)
    except KeyError as error:
        raise ValueError(f"{directory / NETWORK_FILE}: damaged description (no {error})") from error
    try:
        model.load_weights(str(weights))
    except Exception as error:  # h5py/TF raise many types for a damaged or foreign file
        detail = meaningful_line(error) if str(error).strip() else type(error).__name__
        raise ValueError(f"{weights}: damaged or mismatched weights file ({detail})") from error
    return model, description


def encoder_fingerprint(encoder: Any, num_levels: int, temperature: float) -> str:
    """SHA-256 (hex, first 16 bytes) of the encoder's weights and quantizer settings.

    Every variable (trainable or not, so BatchNorm statistics count) is hashed in order with its
    shape and dtype, after L and the temperature. Variable names are left out: Keras numbers
    them per process, so the same weights would hash differently. A head records the fingerprint of
    the encoder it was trained on and refuses any other.
    """
    digest = hashlib.sha256()
    digest.update(f"L={int(num_levels)};temperature={float(temperature)!r};".encode())
    for index, variable in enumerate(encoder.weights):
        value = variable.numpy()
        digest.update(f"{index}:{value.shape}:{value.dtype};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()[:32]


def save_encoder(directory: str | os.PathLike, encoder: Any, description: dict[str, Any]) -> None:
    """Saves an encoder with `description` (preset, latent_dim, num_levels, temperature, ...)
    and the fingerprint of its weights."""
    fingerprint = encoder_fingerprint(
        encoder, description["num_levels"], description["temperature"]
    )
    save_network(directory, encoder, {**description, "kind": "encoder", "fingerprint": fingerprint})


def load_encoder(directory: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Loads a saved encoder (or a run's) and checks its fingerprint; returns (model, description).

    Raises:
      ValueError: missing files, or weights that do not match the recorded fingerprint.
    """
    from rdc_keras import networks

    directory = pathlib.Path(directory)
    if (directory / "encoder").is_dir():  # a run directory was given
        directory = directory / "encoder"
    encoder, description = load_network(
        directory, lambda d: networks.encoder(d["preset"], d["latent_dim"]), kind="encoder"
    )
    actual = encoder_fingerprint(encoder, description["num_levels"], description["temperature"])
    if actual != description["fingerprint"]:
        raise ValueError(f"{directory}: encoder weights do not match their recorded fingerprint")
    return encoder, description


def load_head(
    directory: str | os.PathLike, encoder_description: dict[str, Any] | None = None
) -> tuple[Any, dict[str, Any]]:
    """Loads a head's decoder and its head.json; refuses it when it was trained on another encoder.

    Args:
      directory: the head directory (`<run>/heads/<name>`).
      encoder_description: the encoder's description (from `load_encoder`); None skips the check.
    """
    from rdc_keras import networks

    directory = pathlib.Path(directory)
    description = read_json(directory / HEAD_FILE)
    if (
        encoder_description is not None
        and description["encoder_fingerprint"] != encoder_description["fingerprint"]
    ):
        raise ValueError(
            f"{directory}: head belongs to encoder {description['encoder_fingerprint'][:12]}, "
            f"not {encoder_description['fingerprint'][:12]}"
        )
    decoder, _ = load_network(
        directory / "decoder",
        lambda d: networks.decoder(d["preset"], d["latent_dim"]),
        kind="decoder",
    )
    return decoder, description


def save_head(
    directory: str | os.PathLike, decoder: Any, critic: Any, description: dict[str, Any]
) -> None:
    """Saves one head atomically: decoder/, critic/ (when not None) and head.json."""
    preset = description["preset"]
    with atomic_directory(directory) as tmp:
        save_network(
            tmp / "decoder",
            decoder,
            {"kind": "decoder", "preset": preset, "latent_dim": description["latent_dim"]},
        )
        if critic is not None:
            save_network(tmp / "critic", critic, {"kind": "critic", "preset": preset})
        write_json(tmp / HEAD_FILE, description)


def load_critic(directory: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Loads a head's saved critic (`<head>/critic`); returns (critic, description)."""
    from rdc_keras import networks

    return load_network(directory, lambda d: networks.critic(d["preset"]), kind="critic")


def save_classifier(directory: str | os.PathLike, model: Any, preset: str, **metadata: Any) -> None:
    """Saves a reference classifier atomically (weights + `network.json` with `metadata`)."""
    save_network(directory, model, {"kind": "classifier", "preset": preset, **metadata})


def load_classifier(directory: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Loads a frozen classifier saved by `save_classifier`; returns (model, description)."""
    from rdc_keras import networks

    model, description = load_network(
        directory, lambda d: networks.classifier(d["preset"]), kind="classifier"
    )
    model.trainable = False
    return model, description


def is_saved_network(directory: str | os.PathLike) -> bool:
    """True when `directory` holds a saved network (its network.json is written last)."""
    return (pathlib.Path(directory) / NETWORK_FILE).exists()


# ------------------------------------------------------------------------------------------------
# Run directories.


@dataclasses.dataclass(frozen=True)
class Head:
    """One trained head of a run: `heads/<name>/` and its head.json."""

    path: pathlib.Path
    description: dict[str, Any]

    @classmethod
    def at(cls, path: str | os.PathLike) -> Head:
        """The head saved in directory `path` (reads its head.json)."""
        path = pathlib.Path(path)
        return cls(path, read_json(path / HEAD_FILE))

    @property
    def name(self) -> str:
        return self.description.get("name") or self.path.name

    @property
    def encoder_fingerprint(self) -> str:
        return self.description["encoder_fingerprint"]

    @property
    def encoder_dir(self) -> pathlib.Path:
        """The encoder this head decodes for (recorded when it was trained)."""
        return pathlib.Path(self.description["encoder_dir"])

    @property
    def critic_dir(self) -> pathlib.Path:
        """The head's critic (saved when it was trained with lambda_p > 0)."""
        return self.path / "critic"

    @property
    def lambdas(self) -> dict[str, float]:
        """The head's loss weights (lambda_d, lambda_c, lambda_p) as recorded."""
        return {
            key: value
            for key, value in sorted(self.description.items())
            if key.startswith("lambda") and value is not None
        }

    def load(self, encoder_description: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """(decoder, head.json) via `load_head`, checked against the encoder when given."""
        return load_head(self.path, encoder_description)


class RunDir:
    """The files of one training run (see the module docstring for the layout)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = pathlib.Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    config_path = property(lambda self: self.path / CONFIG_FILE)
    results_path = property(lambda self: self.path / RESULTS_FILE)
    metrics_path = property(lambda self: self.path / METRICS_FILE)
    backup_dir = property(lambda self: self.path / "backup")
    logs_dir = property(lambda self: self.path / "logs")
    classifier_dir = property(lambda self: self.path / "classifier")
    encoder_dir = property(lambda self: self.path / "encoder")
    heads_dir = property(lambda self: self.path / "heads")

    def head_dir(self, name: str) -> pathlib.Path:
        return self.heads_dir / name

    def has_config(self) -> bool:
        return self.config_path.exists()

    def is_finished(self) -> bool:
        """A finished run has config.json, results.json and heads/."""
        return self.has_config() and self.results_path.exists() and self.heads_dir.is_dir()

    def config(self) -> TrainConfig:
        """The run's configuration, read back from config.json (the inverse of write_config)."""
        from rdc_keras.config import TrainConfig

        return TrainConfig.from_dict(self.raw_config())

    def raw_config(self) -> dict[str, Any]:
        """config.json's "config" dict as stored (includes derived keys such as "preset")."""
        return read_json(self.config_path)["config"]

    def write_config(self, config: TrainConfig) -> None:
        """Records a resolved config with the environment (versions, machine, argv)."""
        write_json(self.config_path, {"config": config.to_dict(), "environment": environment()})

    def results(self) -> dict[str, Any]:
        return read_json(self.results_path)

    def write_results(self, results: dict[str, Any]) -> None:
        write_json(self.results_path, results)

    def heads(self) -> list[Head]:
        """Every saved head, sorted by directory name (temporaries of a failed save skipped)."""
        if not self.heads_dir.is_dir():
            return []
        return [
            Head.at(path)
            for path in sorted(self.heads_dir.iterdir())
            if not path.name.startswith(".") and (path / HEAD_FILE).exists()
        ]

    def encoder_source(self) -> pathlib.Path:
        """The encoder the run's heads decode for: its own encoder/, or the frozen one a
        phase-2 run recorded (config encoder_dir)."""
        if is_saved_network(self.encoder_dir):
            return self.encoder_dir
        recorded = self.raw_config().get("encoder_dir") if self.has_config() else None
        if recorded:
            return pathlib.Path(recorded)
        heads = self.heads()
        if heads:
            return heads[0].encoder_dir
        raise ValueError(f"{self.path}: no encoder/ and no recorded encoder_dir")


def find_runs(paths: list[str | os.PathLike]) -> list[RunDir]:
    """Expands each path to finished runs: itself, or every run below it (e.g. a whole study).

    Raises:
      ValueError: a path holds no finished run.
    """
    found = []
    for path in map(pathlib.Path, paths):
        if RunDir(path).is_finished():
            found.append(RunDir(path))
            continue
        below = sorted({p.parent for p in path.rglob("heads") if RunDir(p.parent).is_finished()})
        if not below:
            raise ValueError(f"--run={path}: not a finished run (none in it or below)")
        found.extend(RunDir(p) for p in below)
    return found


# ------------------------------------------------------------------------------------------------
# The environment recorded next to every result.


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded next to every result."""
    import numpy as np
    import tensorflow as tf

    from rdc_keras.tfkeras import keras_version

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpus": [device.name for device in tf.config.list_physical_devices("GPU")],
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "argv": list(sys.argv),
    }


def cpu_flags() -> set[str]:
    """The CPU's ISA flags from /proc/cpuinfo (empty when unavailable, e.g. not Linux)."""
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def cpu_model() -> str:
    """The CPU model name (/proc/cpuinfo; recorded with every result and benchmark)."""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
