"""On-disk form of trained networks: weights plus a JSON description, written atomically.

A saved network is a directory holding `network.json` (the builder arguments and metadata) and
`weights.h5`. Loading rebuilds the network from its preset with `rdc_keras.networks` and restores
the weights, so no Python code is pickled. Every directory is written under a temporary name and
renamed into place, so a half-written network never appears. The encoder fingerprint (a hash of
its weights and quantizer settings) ties each decoder head to the encoder it was trained on.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pathlib
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import Any

__all__ = [
    "atomic_directory",
    "encoder_fingerprint",
    "environment",
    "load_network",
    "read_json",
    "save_network",
    "write_json",
]

NETWORK_FILE = "network.json"
WEIGHTS_FILE = "weights.h5"


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Writes JSON through a temporary file and a rename: readers never see a partial file."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as stream:
            json.dump(payload, stream, indent=2, sort_keys=True, default=_json_default)
            stream.write("\n")
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | os.PathLike) -> Any:
    """Reads a JSON file, raising a one-line ValueError naming the file when it is bad."""
    path = pathlib.Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ValueError(f"{path}: file not found") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from error


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, pathlib.Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


class atomic_directory:  # noqa: N801 (used like a function: `with atomic_directory(path) as tmp`)
    """Context manager yielding a temporary sibling directory that is renamed to `path` on success.

    An existing `path` is replaced only after the new content is complete. On error the temporary
    directory is removed and `path` is left as it was.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = pathlib.Path(path)

    def __enter__(self) -> pathlib.Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = pathlib.Path(
            tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        )
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        if self.path.exists():
            old = self.path.with_name(f".{self.path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.path, old)
            os.replace(self.tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.tmp, self.path)


def save_network(directory: str | os.PathLike, model: Any, description: dict[str, Any]) -> None:
    """Saves `model`'s weights and its JSON `description` atomically into `directory`.

    Args:
      directory: destination; replaced as a whole if it exists.
      model: a built `tf.keras.Model`.
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
    model = builder(description)
    model.load_weights(str(weights))
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


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded next to every result."""
    import numpy as np
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpus": [device.name for device in tf.config.list_physical_devices("GPU")],
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "argv": list(sys.argv),
    }


def _cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
