"""Reading an export: the exported encoder and heads as TF Serving clients and the codec see them.

`rdc_keras.export` writes the layout of DESIGN.md (``<root>/<name>/encoder/<version>/``,
``heads/<head>/<version>/``, models.config, manifest.json); this module reads it back.
`load_encoder` / `load_head` return an `ExportedModel`: its `assets/rdc.json` metadata (L, d,
image shape, fingerprint and, for the encoder, the entropy-coding prior) read at once, its
SavedModel loaded on first use and, for an encoder, checked against the recorded fingerprint.
`rest_request` builds TF Serving REST bodies and `saved_model_ops` lists a SavedModel's ops
without loading it. The `.rdc` codec reads exports through this module only, so the serving
side (`export`, `serving`) never depends on the codec or on the trainers.
"""

from __future__ import annotations

import os
import pathlib
import types
from typing import Any

import numpy as np
import tensorflow as tf

from rdc_keras import remote, runs
from rdc_keras.errors import meaningful_line
from rdc_keras.files import read_json

__all__ = [
    "EXPORT_FORMAT",
    "MANIFEST_FILE",
    "METADATA_FILE",
    "MODELS_CONFIG_FILE",
    "SIGNATURE",
    "ExportedModel",
    "load_encoder",
    "load_head",
    "rest_request",
    "saved_model_ops",
]

EXPORT_FORMAT = "rdc_keras.export/1"
METADATA_FILE = "rdc.json"  # in every SavedModel's assets/
MANIFEST_FILE = "manifest.json"
MODELS_CONFIG_FILE = "models.config"
SIGNATURE = "serving_default"


# ------------------------------------------------------------------------------------------------
# Version directories.


def _versions(model_dir: pathlib.Path) -> list[int]:
    """Numeric version subdirectories of a TF Serving model directory, ascending."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def _version_dir(path: pathlib.Path, kind: str) -> pathlib.Path:
    """Resolves a version directory from an export, model or version directory."""
    if (path / "saved_model.pb").exists():
        return path
    if kind == "encoder" and (path / "encoder").is_dir():
        path = path / "encoder"
    versions = [v for v in _versions(path) if (path / str(v) / "saved_model.pb").exists()]
    if not versions:
        raise ValueError(f"{path}: no exported {kind} SavedModel found")
    return path / str(versions[-1])


# ------------------------------------------------------------------------------------------------
# Exported models.


# Metadata fields every export of a kind carries, with a check of their type.
_REQUIRED = {
    "num_levels": lambda v: type(v) is int and v >= 2,
    "latent_dim": lambda v: type(v) is int and v >= 1,
    "image_shape": lambda v: (
        isinstance(v, list) and len(v) == 3 and all(type(s) is int and s >= 1 for s in v)
    ),
    "encoder_fingerprint": lambda v: isinstance(v, str) and len(v) == 32,
}
_REQUIRED_BY_KIND = {
    "encoder": {"temperature": lambda v: isinstance(v, int | float) and v > 0},
    "head": {},
}


def _check_metadata(path: pathlib.Path, metadata: dict[str, Any], kind: str) -> None:
    """One line naming the metadata file and the first missing or malformed field."""
    for key, valid in {**_REQUIRED, **_REQUIRED_BY_KIND[kind]}.items():
        if key not in metadata:
            raise ValueError(f"{path}: damaged export metadata (no {key!r} field)")
        if not valid(metadata[key]):
            raise ValueError(f"{path}: damaged export metadata ({key!r} = {metadata[key]!r})")


def _damaged_part(path: pathlib.Path) -> str:
    """Which file of a SavedModel that failed to load is damaged (a best-effort diagnosis)."""
    from tensorflow.core.protobuf import saved_model_pb2

    graph = path / "saved_model.pb"
    if not graph.is_file():
        return f"{graph} is missing"
    unreadable = [p for p in path.rglob("*") if p.is_file() and not os.access(p, os.R_OK)]
    if unreadable:
        return f"{unreadable[0]} cannot be read (permission denied)"
    try:
        saved_model_pb2.SavedModel().ParseFromString(graph.read_bytes())
    except Exception:
        return f"{graph} is damaged"
    prefix = path / "variables" / "variables"
    index = prefix.with_name("variables.index")
    if not index.is_file():
        return f"{index} is missing"
    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except Exception:
        return f"{index} is damaged"
    try:
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception:
        return f"{prefix.parent}/variables.data-* is damaged"
    return "its files do not fit together"


def _damage_report(path: pathlib.Path, error: Exception) -> str:
    detail = meaningful_line(error)
    detail = detail if len(detail) <= 160 else detail[:157] + "..."
    return f"{path}: damaged SavedModel, {_damaged_part(path)} ({type(error).__name__}: {detail})"


class ExportedModel:
    """An exported encoder or head: its `assets/rdc.json` metadata and its serving signature.

    The SavedModel itself is loaded on first use, so reading the metadata (for example the
    prior tables the codec needs on the receiving side) costs nothing.
    """

    def __init__(self, path: str | os.PathLike, kind: str) -> None:
        self.path = _version_dir(remote.local_copy(path), kind)  # a URL: pulled once
        metadata = read_json(self.path / "assets" / METADATA_FILE)
        if not isinstance(metadata, dict) or metadata.get("format") != EXPORT_FORMAT:
            raise ValueError(f"{self.path}: not an rdc_keras export (format != {EXPORT_FORMAT})")
        if metadata.get("kind") != kind:
            raise ValueError(f"{self.path}: holds a {metadata.get('kind')!r}, expected {kind!r}")
        _check_metadata(self.path / "assets" / METADATA_FILE, metadata, kind)
        self.kind = kind
        self.metadata = metadata
        self._loaded = None

    def __repr__(self) -> str:
        return f"ExportedModel({str(self.path)!r}, kind={self.kind!r})"

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the encoder (this one, or the one this head was trained on)."""
        return self.metadata["encoder_fingerprint"]

    @property
    def num_levels(self) -> int:
        return int(self.metadata["num_levels"])

    @property
    def latent_dim(self) -> int:
        return int(self.metadata["latent_dim"])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.metadata["image_shape"])

    @property
    def signature(self):
        """The `serving_default` concrete function (loads the SavedModel on first use)."""
        if self._loaded is None:
            try:
                loaded = tf.saved_model.load(str(self.path))
            except Exception as error:  # TF raises many types for a damaged SavedModel
                raise ValueError(_damage_report(self.path, error)) from error
            if self.kind == "encoder":
                actual = runs.encoder_fingerprint(
                    types.SimpleNamespace(weights=list(loaded.weights)),
                    self.num_levels,
                    self.metadata["temperature"],
                )
                if actual != self.fingerprint:
                    raise ValueError(
                        f"{self.path}: encoder weights do not match the recorded fingerprint "
                        f"{self.fingerprint[:12]} (got {actual[:12]})"
                    )
            self._loaded = loaded
        return self._loaded.signatures[SIGNATURE]

    def run(self, batch_size: int = 1024, **inputs: Any) -> dict[str, np.ndarray]:
        """Calls the signature in batches along axis 0; returns numpy outputs."""
        specs = self.signature.structured_input_signature[1]
        if set(inputs) != set(specs):
            raise ValueError(f"{self.kind} inputs are {sorted(specs)}, got {sorted(inputs)}")
        arrays = {key: np.asarray(value) for key, value in inputs.items()}
        sizes = {len(value) if value.ndim else -1 for value in arrays.values()}
        if len(sizes) != 1 or -1 in sizes:
            raise ValueError(f"{self.kind} inputs need one shared batch size, got {sorted(sizes)}")
        for key, spec in specs.items():
            value = arrays[key]
            if not spec.shape.is_compatible_with(value.shape):
                raise ValueError(f"{key}: shape {value.shape} does not fit {spec.shape}")
        n = sizes.pop()
        outputs: dict[str, list[np.ndarray]] = {}
        for start in range(0, max(n, 1), batch_size):
            batch = {
                key: tf.constant(value[start : start + batch_size], specs[key].dtype)
                for key, value in arrays.items()
            }
            for key, value in self.signature(**batch).items():
                outputs.setdefault(key, []).append(value.numpy())
        return {key: np.concatenate(parts) for key, parts in outputs.items()}

    def encode(self, images: Any, seeds: Any, batch_size: int = 1024) -> np.ndarray:
        """Encoder only: int32 [N, d] indices of float32 images [N, H, W, C] with seeds [N]."""
        if self.kind != "encoder":
            raise ValueError(f"{self.path}: encode needs an encoder export")
        return self.run(batch_size, images=images, seeds=seeds)["indices"]

    def decode(self, indices: Any, seeds: Any, batch_size: int = 1024) -> np.ndarray:
        """Head only: float32 [N, H, W, C] images from indices [N, d] with seeds [N]."""
        if self.kind != "head":
            raise ValueError(f"{self.path}: decode needs a head export")
        return self.run(batch_size, indices=indices, seeds=seeds)["images"]


def load_encoder(path: str | os.PathLike) -> ExportedModel:
    """Loads an exported encoder from `<root>/<name>`, its `encoder/` dir or a version dir
    (local, or a `tf.io.gfile` URL: copied to a local temporary directory once per process).

    A model directory resolves to its highest version. On first use the SavedModel's weights
    are hashed and must match the fingerprint recorded in its metadata.
    """
    return ExportedModel(path, "encoder")


def load_head(
    path: str | os.PathLike, encoder: ExportedModel | str | dict[str, Any] | None = None
) -> ExportedModel:
    """Loads an exported head (`heads/<head>` dir or a version dir) and checks its encoder.

    Args:
      path: the head's model directory (highest version) or one version directory.
      encoder: the encoder it will decode for (an `ExportedModel`, a fingerprint string or an
        export's metadata/manifest dict); None skips the check.

    Raises:
      ValueError: not a head export, or the head was trained on another encoder.
    """
    head = ExportedModel(path, "head")
    if encoder is not None:
        if isinstance(encoder, ExportedModel):
            expected = encoder.fingerprint
        elif isinstance(encoder, dict):
            expected = encoder.get("encoder_fingerprint") or encoder.get("fingerprint")
        else:
            expected = str(encoder)
        if head.fingerprint != expected:
            raise ValueError(
                f"{head.path}: head was trained on encoder {head.fingerprint[:12]}, "
                f"not on {str(expected)[:12]} (encoder fingerprint mismatch)"
            )
    return head


# ------------------------------------------------------------------------------------------------
# REST requests and op inspection.


def _shortest_float32(value: float) -> float:
    # The shortest decimal that reads back as the same float32 (what TF Serving parses into).
    return float(np.format_float_positional(np.float32(value), unique=True, trim="-"))


def rest_request(inputs: dict[str, Any]) -> dict[str, Any]:
    """A TF Serving REST `:predict` body in the columnar ("inputs") format.

    Args:
      inputs: signature input name -> array (images float32 [N,H,W,C], seeds int64 [N], ...).

    Returns:
      {"signature_name": "serving_default", "inputs": {name: nested lists}}; floats are written
      as the shortest decimal that reads back as the same float32.
    """
    body = {}
    for key, value in inputs.items():
        array = np.asarray(value)
        if array.dtype.kind in "iu":
            body[key] = array.astype(np.int64).tolist()
        elif array.dtype.kind == "f":
            body[key] = np.vectorize(_shortest_float32, otypes=[object])(array).tolist()
        else:
            raise TypeError(
                f"{key}: REST inputs must be integer or float arrays, got {array.dtype}"
            )
    return {"signature_name": SIGNATURE, "inputs": body}


def saved_model_ops(path: str | os.PathLike) -> list[str]:
    """Sorted op types used anywhere in a SavedModel (graph nodes and every library function).

    Parses saved_model.pb without loading the model, so it works on models whose ops are not
    registered in this process. Check each name with
    `tensorflow.python.framework.op_def_registry.get(name)` in a process without
    tensorflow_compression to prove a model is servable by the stock server.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    pb = pathlib.Path(path) / "saved_model.pb"
    try:
        proto.ParseFromString(pb.read_bytes())
    except FileNotFoundError as error:
        raise ValueError(f"{pb}: not a SavedModel (file not found)") from error
    ops = set()
    for meta_graph in proto.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return sorted(ops)
