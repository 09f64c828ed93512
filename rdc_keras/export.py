"""Writing exports: SavedModels of the encoder and every decoder head, for TF Serving and the codec.

`export_run` turns training runs (`rdc_keras.runs`) into the layout of DESIGN.md::

    <root>/<name>/
      encoder/<version>/        serving_default(images float32[N,H,W,C], seeds int64[N])
                                  -> {"indices": int32[N,d]}
      heads/<head>/<version>/   serving_default(indices int32[N,d], seeds int64[N])
                                  -> {"images": float32[N,H,W,C]}
      models.config             TF Serving model_config_list, every model pinned to its version
      manifest.json             L, d, rate, prior, heads with lambdas and metrics, fingerprint
      requests/                 example TF Serving REST request bodies (docs/serving.md)

Each SavedModel is a `tf.Module` with one `tf.function` signature built from stock TensorFlow
ops only (Keras layers, `rdc_keras.layers.dither`, the quantizer's rounding), so the stock
`tensorflow_model_server` loads it (notes/ecosystem.md §2); this module never imports
tensorflow_compression. The SavedModel carries `assets/rdc.json`: L, d, image shape, the dither
convention, the encoder fingerprint, lambdas, TF version and, for the encoder, the entropy-coding
prior: integer CDF tables (`rdc_keras.prior`) counted once here on the indices the exported
encoder serves for the training split, and read unchanged by both sides of `rdc_keras.codec`.
Heads are exported with their BatchNorm folded into the preceding layers (`rdc_keras.folding`).

Every export writes one new version number for the encoder and all its heads. Each version
directory is written under a temporary name and renamed into place once all are complete;
models.config and manifest.json are rewritten last (atomically), so a half-written export never
appears. Reading an export is `rdc_keras.serving`'s job; its public names (`load_encoder`,
`load_head`, `ExportedModel`, `rest_request`, `saved_model_ops`) are re-exported here. This
module imports neither the codec nor the trainers: networks are loaded with `rdc_keras.runs`.
(Length: about 600 lines, one writer split into small steps: serving modules and staging,
collecting and loading runs, counting the prior, metadata and index files, then `export_run`.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import pathlib
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

import rdc_keras
from rdc_keras import data, folding, prior, remote, runs
from rdc_keras.files import atomic_write, staging_directory, write_json
from rdc_keras.layers import (
    DITHER_CONVENTION,
    UniversalQuantizer,
    dither,
    image_seeds,
    nearest_index,
    rate_bits,
)
from rdc_keras.serving import (
    EXPORT_FORMAT,
    MANIFEST_FILE,
    METADATA_FILE,
    MODELS_CONFIG_FILE,
    SIGNATURE,
    ExportedModel,
    _versions,
    load_encoder,
    load_head,
    rest_request,
    saved_model_ops,
)
from rdc_keras.tfkeras import keras

__all__ = [
    "DITHER_CONVENTION",
    "EXPORT_FORMAT",
    "ExportedModel",
    "export_run",
    "load_encoder",
    "load_head",
    "models_config",
    "rest_request",
    "saved_model_ops",
]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PRIOR_BATCH = 512
_UNITS = {"rate_bits": "bits per image (d * log2 L)", "mse": "per-pixel mean on [0, 1]"}


# ------------------------------------------------------------------------------------------------
# Small helpers.


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"{what} {name!r} is not a valid name (letters, digits, '_', '.', '-'; "
            "no leading '.' or '-'; at most 128 characters)"
        )
    return name


def _lambdas(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(record.items()) if "lambda" in k and v is not None}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------------
# Serving modules.


def _signature_specs(kind: str, image_shape: Sequence[int], latent_dim: int) -> list[tf.TensorSpec]:
    seeds = tf.TensorSpec([None], tf.int64, name="seeds")
    if kind == "encoder":
        return [tf.TensorSpec([None, *image_shape], tf.float32, name="images"), seeds]
    return [tf.TensorSpec([None, latent_dim], tf.int32, name="indices"), seeds]


def _signature_record(kind: str, image_shape: Sequence[int], latent_dim: int) -> dict[str, Any]:
    images = {"dtype": "float32", "shape": [-1, *image_shape]}
    indices = {"dtype": "int32", "shape": [-1, latent_dim]}
    seeds = {"dtype": "int64", "shape": [-1]}
    if kind == "encoder":
        inputs, outputs = {"images": images, "seeds": seeds}, {"indices": indices}
    else:
        inputs, outputs = {"indices": indices, "seeds": seeds}, {"images": images}
    return {"name": SIGNATURE, "inputs": inputs, "outputs": outputs}


class _ServingModule(tf.Module):
    """One network plus the universal quantizer behind a `serving_default` tf.function.

    The Keras model is held only by the function's closure: its variables are tracked through
    `weights` (in `model.weights` order, so loaders can recompute the encoder fingerprint),
    which keeps Keras' own SavedModel tracing (and its extra functions) out of the export.
    """

    def __init__(
        self,
        kind: str,
        model: keras.Model,
        num_levels: int,
        latent_dim: int,
        image_shape: Sequence[int],
        metadata_path: pathlib.Path,
    ) -> None:
        super().__init__(name=f"rdc_{kind}")
        self.weights = list(model.weights)
        self.metadata = tf.saved_model.Asset(str(metadata_path))
        quantizer = UniversalQuantizer(num_levels, name="quantizer")

        def encode(images: tf.Tensor, seeds: tf.Tensor) -> dict[str, tf.Tensor]:
            latents = tf.cast(model(images, training=False), tf.float32)
            return {"indices": quantizer.send(latents, seeds)}

        def decode(indices: tf.Tensor, seeds: tf.Tensor) -> dict[str, tf.Tensor]:
            latents = quantizer.receive(indices, seeds)
            return {"images": tf.cast(model(latents, training=False), tf.float32)}

        self.serve = tf.function(
            encode if kind == "encoder" else decode,
            input_signature=_signature_specs(kind, image_shape, latent_dim),
        )


def _stage(
    module: _ServingModule, metadata: dict[str, Any], model_dir: pathlib.Path, version: int
) -> pathlib.Path:
    """Saves a SavedModel into a hidden temporary sibling of model_dir/version; returns it.

    Not `files.atomic_directory`: every model of an export is staged before any is renamed.
    """
    tmp = staging_directory(model_dir / str(version))
    try:
        tf.saved_model.save(
            module, str(tmp), signatures={SIGNATURE: module.serve.get_concrete_function()}
        )
        # The Asset copied the staging file; overwrite it with the final metadata.
        write_json(tmp / "assets" / METADATA_FILE, metadata)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


@contextlib.contextmanager
def _staging() -> Iterator[list[tuple[pathlib.Path, pathlib.Path]]]:
    """A list of (staged SavedModel, model dir); whatever is still staged on exit is deleted."""
    staged: list[tuple[pathlib.Path, pathlib.Path]] = []
    try:
        yield staged
    finally:
        for tmp, _ in staged:
            shutil.rmtree(tmp, ignore_errors=True)


def _publish(staged: list[tuple[pathlib.Path, pathlib.Path]], version: int, verbose: int) -> None:
    """Renames every staged SavedModel (all complete) to its model_dir/version."""
    while staged:
        tmp, model_dir = staged[0]
        os.rename(tmp, model_dir / str(version))
        staged.pop(0)
        if verbose:
            print(f"wrote {model_dir / str(version)}", flush=True)


# ------------------------------------------------------------------------------------------------
# Collecting and loading the networks of an export.


@dataclasses.dataclass
class _Networks:
    """The loaded encoder and heads of one export, heads checked against the encoder."""

    encoder: keras.Model
    description: dict[str, Any]  # the encoder's network.json (fingerprint, L, d, preset, ...)
    path: pathlib.Path  # the encoder directory
    # head name -> (decoder, head.json, head directory)
    heads: dict[str, tuple[keras.Model, dict[str, Any], pathlib.Path]]
    run_config: dict[str, Any]  # the encoder run's config.json "config" ({} when there is none)

    @property
    def num_levels(self) -> int:
        return int(self.description["num_levels"])

    @property
    def latent_dim(self) -> int:
        return int(self.description["latent_dim"])

    @property
    def image_shape(self) -> list[int]:
        return [int(s) for s in self.description["image_shape"]]


def _collect(
    run_dirs: Sequence[str | os.PathLike] | None,
    encoder_dir: str | os.PathLike | None,
    head_dirs: Sequence[str | os.PathLike] | None,
) -> tuple[pathlib.Path, list[runs.Head]]:
    """Resolves (encoder directory, heads) from run dirs and/or explicit dirs.

    The encoder is `encoder_dir`, else the first run's own encoder, else the one the first head
    records (phase-2 runs are trained on another run's frozen encoder).
    """
    heads = [runs.Head.at(path) for path in head_dirs or []]
    encoder = pathlib.Path(encoder_dir) if encoder_dir else None
    for run in map(runs.RunDir, run_dirs or []):
        if not run.path.is_dir():
            raise ValueError(f"{run.path}: run directory not found")
        run_heads = run.heads()
        if not run_heads:
            raise ValueError(f"{run.path}: no trained heads (expected heads/<name>/head.json)")
        heads.extend(run_heads)
        if encoder is None and runs.is_saved_network(run.encoder_dir):
            encoder = run.encoder_dir
    if not heads:
        raise ValueError("nothing to export: give run directories or head directories")
    if encoder is None:
        recorded = heads[0].description.get("encoder_dir")
        if not recorded:
            raise ValueError(f"{heads[0].path}: head.json names no encoder_dir; pass encoder_dir")
        encoder = pathlib.Path(recorded)
    if (encoder / "encoder").is_dir():
        encoder = encoder / "encoder"
    return encoder, heads


def _load_networks(encoder_path: pathlib.Path, heads: Sequence[runs.Head]) -> _Networks:
    """Loads the encoder (fingerprint checked) and every head; refuses another encoder's head."""
    encoder, description = runs.load_encoder(encoder_path)
    loaded: dict[str, tuple[keras.Model, dict[str, Any], pathlib.Path]] = {}
    for head in heads:
        decoder, record = head.load(description)  # refuses another encoder's head
        head_name = _check_name(record.get("name") or head.path.name, "head name")
        if head_name in loaded:
            raise ValueError(
                f"two heads named {head_name!r}: {loaded[head_name][2]} and {head.path}"
            )
        loaded[head_name] = (decoder, record, head.path)
    run = runs.RunDir(encoder_path.parent)
    run_config = run.raw_config() if run.has_config() else {}
    return _Networks(encoder, description, encoder_path, loaded, run_config)


def _prior_data(
    networks: _Networks, prior_dataset: str | None, data_dir: str | os.PathLike | None
) -> tuple[str, str | os.PathLike | None]:
    """(dataset, data_dir) of the prior: the given ones, else the encoder run's."""
    run_config = networks.run_config
    prior_dataset = prior_dataset or run_config.get("dataset")
    if prior_dataset is None:
        raise ValueError(
            f"{networks.path}: no run config.json next to the encoder; pass prior_dataset"
        )
    preset = networks.description["preset"]
    if data.dataset_info(prior_dataset).preset != preset:
        raise ValueError(f"prior dataset {prior_dataset!r} does not fit the {preset!r} encoder")
    if data_dir is None and prior_dataset == run_config.get("dataset"):
        data_dir = run_config.get("data_dir")
    return prior_dataset, data_dir


# ------------------------------------------------------------------------------------------------
# The entropy-coding prior, counted on what the exported encoder serves.


def _code_prior_split(
    networks: _Networks, serve, dataset: tf.data.Dataset, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(latents, dithers, served indices), each [N, d], of a dataset (image i gets seed + i)."""
    num_levels, latent_dim = networks.num_levels, networks.latent_dim
    latents, dithers, indices = [], [], []
    offset = 0
    for images, _ in dataset.batch(_PRIOR_BATCH):
        n = int(images.shape[0])
        seeds = tf.constant(image_seeds(seed, n, offset))
        images = tf.cast(images, tf.float32)
        indices.append(serve(images=images, seeds=seeds)["indices"].numpy())
        latents.append(tf.cast(networks.encoder(images, training=False), tf.float32).numpy())
        dithers.append(dither(seeds, latent_dim, num_levels).numpy())
        offset += n
    if offset == 0:
        raise ValueError("the prior dataset is empty")
    return np.concatenate(latents), np.concatenate(dithers), np.concatenate(indices)


def _build_prior(
    networks: _Networks, serve, dataset: tf.data.Dataset, info: dict[str, Any], seed: int
) -> dict[str, Any]:
    """The marginal prior P(k) with the dither-conditional one P(k | u) under "dithered"."""
    num_levels, latent_dim = networks.num_levels, networks.latent_dim
    latents, dithers, indices = _code_prior_split(networks, serve, dataset, seed)
    counts = np.stack([np.bincount(indices[:, j], minlength=num_levels) for j in range(latent_dim)])
    tables = prior.marginal_prior(counts, {**info, "num_images": len(indices), "seed": seed})
    # Q(y_nj + u_b) for every latent and dither-bin centre, one dimension at a time (memory).
    latents = latents.astype(np.float64)
    centres = prior.bin_centres(num_levels)
    bin_indices = np.stack(
        [
            nearest_index(latents[:, j, None] + centres[None, :], num_levels)
            for j in range(latent_dim)
        ],
        axis=1,
    )
    tables["dithered"] = prior.dithered_prior(bin_indices, dithers, indices, num_levels)
    return tables


# ------------------------------------------------------------------------------------------------
# Metadata (assets/rdc.json) and the export's index files.


def _common_metadata(name: str, version: int, networks: _Networks) -> dict[str, Any]:
    """The rdc.json fields shared by the encoder, every head and the manifest."""
    return {
        "format": EXPORT_FORMAT,
        "export_name": name,
        "version": version,
        "preset": networks.description["preset"],
        "num_levels": networks.num_levels,
        "latent_dim": networks.latent_dim,
        "image_shape": networks.image_shape,
        "rate_bits": rate_bits(networks.latent_dim, networks.num_levels),
        "encoder_fingerprint": networks.description["fingerprint"],
        "dither": DITHER_CONVENTION,
        "tensorflow": tf.__version__,
        "rdc_keras": rdc_keras.__version__,
        "created": _now(),
    }


def _encoder_metadata(
    common: dict[str, Any], networks: _Networks, tables: dict[str, Any]
) -> dict[str, Any]:
    return {
        **common,
        "kind": "encoder",
        "temperature": networks.description["temperature"],
        "lambdas": _lambdas(networks.run_config),
        "signature": _signature_record("encoder", networks.image_shape, networks.latent_dim),
        "prior": tables,
        "source": str(networks.path.resolve()),
    }


def _head_metadata(
    common: dict[str, Any],
    head_name: str,
    record: dict[str, Any],
    path: pathlib.Path,
    fold_batch_norm: bool,
) -> dict[str, Any]:
    return {
        **common,
        "kind": "head",
        "head": head_name,
        "lambdas": _lambdas(record),
        "classifier_mode": record.get("classifier_mode"),
        "test": record.get("test", {}),
        "signature": _signature_record("head", common["image_shape"], common["latent_dim"]),
        "batch_norm_folded": bool(fold_batch_norm),
        "source": str(path.resolve()),
    }


def _head_entry(name: str, version: int, head_meta: dict[str, Any]) -> dict[str, Any]:
    """A head's entry in manifest.json."""
    head_name = head_meta["head"]
    return {
        "path": f"heads/{head_name}/{version}",
        "serving_name": f"{name}-head-{head_name}",
        "lambdas": head_meta["lambdas"],
        "classifier_mode": head_meta["classifier_mode"],
        "test": head_meta["test"],
    }


def _manifest(
    common: dict[str, Any],
    encoder_meta: dict[str, Any],
    head_entries: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    name, version = common["export_name"], common["version"]
    return {
        **common,
        "encoder": {
            "path": f"encoder/{version}",
            "serving_name": f"{name}-encoder",
            "temperature": encoder_meta["temperature"],
            "lambdas": encoder_meta["lambdas"],
        },
        "heads": head_entries,
        "prior": encoder_meta["prior"],
        "units": _UNITS,
    }


def models_config(entries: Iterable[tuple[str, str, int]]) -> str:
    """TF Serving `model_config_list` text proto; entries are (name, base_path, version).

    Every model is pinned (`model_version_policy.specific`) to the version of the latest
    export, so the server never pairs an encoder with a head trained on another encoder.
    """
    lines = ["model_config_list {"]
    for name, base_path, version in entries:
        lines += [
            "  config {",
            f"    name: {json.dumps(name)}",
            f"    base_path: {json.dumps(base_path)}",
            '    model_platform: "tensorflow"',
            f"    model_version_policy {{ specific {{ versions: {int(version)} }} }}",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _example_requests(
    encoder_module: _ServingModule,
    head_entries: dict[str, Any],
    dataset: tf.data.Dataset,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """REST request bodies for one real image: the encoder's, then each head's on its indices."""
    images = next(iter(dataset.batch(1)))[0].numpy().astype(np.float32)
    seeds = image_seeds(seed, 1)
    indices = encoder_module.serve(images=tf.constant(images), seeds=tf.constant(seeds))
    indices = indices["indices"].numpy()
    bodies = {"encoder.json": rest_request({"images": images, "seeds": seeds})}
    for head_name in head_entries:
        bodies[f"{head_name}.json"] = rest_request({"indices": indices, "seeds": seeds})
    return bodies


def _write_index(
    export_dir: pathlib.Path,
    base: str,
    manifest: dict[str, Any],
    requests: dict[str, dict[str, Any]],
) -> None:
    """Writes requests/, models.config and, last, manifest.json (each atomically)."""
    for file_name, body in requests.items():
        atomic_write(export_dir / "requests" / file_name, json.dumps(body) + "\n")
    name, version = manifest["export_name"], manifest["version"]
    entries = [(f"{name}-encoder", f"{base}/encoder", version)] + [
        (entry["serving_name"], f"{base}/heads/{head_name}", version)
        for head_name, entry in manifest["heads"].items()
    ]
    atomic_write(export_dir / MODELS_CONFIG_FILE, models_config(entries))
    write_json(export_dir / MANIFEST_FILE, manifest)


# ------------------------------------------------------------------------------------------------
# Export.


def _next_version(export_dir: pathlib.Path) -> int:
    """One more than the highest version of the encoder or any head already exported."""
    existing = _versions(export_dir / "encoder") + [
        v for p in (export_dir / "heads").glob("*") for v in _versions(p)
    ]
    return max(existing, default=0) + 1


def export_run(
    run_dirs: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    export_root: str | os.PathLike = "saved_models",
    name: str | None = None,
    *,
    encoder_dir: str | os.PathLike | None = None,
    head_dirs: Sequence[str | os.PathLike] | None = None,
    prior_dataset: str | None = None,
    data_dir: str | os.PathLike | None = None,
    prior_split: str = "train",
    seed: int = 0,
    serving_base_path: str | None = None,
    fold_batch_norm: bool = True,
    verbose: int = 0,
) -> dict[str, Any]:
    """Exports an encoder and its heads as TF Serving SavedModels; returns the manifest.

    Args:
      run_dirs: training run directories (`rdc-train` / `rdc-universal` workdirs); every head
        under `<run>/heads/` is exported, the encoder comes from the first run that has one
        (phase-2 runs name theirs in head.json).
      export_root: root of the export tree (DESIGN.md: `saved_models/`); a `tf.io.gfile` URL
        (`gs://bucket/models`) too: `<root>/<name>` is pulled into a local staging directory,
        exported there and pushed back (`rdc_keras.remote`), and TF Serving's base path
        defaults to the URL.
      name: export name (default: the first run directory's name).
      encoder_dir: an encoder directory (`<run>/encoder`), instead of or besides run_dirs.
      head_dirs: head directories (`<run>/heads/<head>`), besides those of run_dirs.
      prior_dataset: dataset whose `prior_split` estimates the entropy-coding prior (default:
        the encoder run's dataset, from its config.json).
      data_dir: data directory of prior_dataset (default: the encoder run's).
      prior_split: split for the prior ("train": never the data the codec is measured on).
      seed: base dither seed of the prior estimate (image i gets seed + i, as in the codec).
      serving_base_path: directory under which TF Serving sees `<name>` (e.g. "/models" in a
        container); default: the absolute export path on this machine.
      fold_batch_norm: fold each head's BatchNorm into the preceding layer (faster serving,
        outputs equal up to float rounding); False exports the heads' layers as trained.
      verbose: 1 prints one line per written model.

    Returns:
      The manifest dict also written to `<export_root>/<name>/manifest.json`.

    Raises:
      ValueError: missing or inconsistent runs (a head trained on another encoder), bad names,
        unknown dataset.
    """
    if isinstance(run_dirs, str | os.PathLike):
        run_dirs = [run_dirs]
    encoder_path, heads = _collect(run_dirs, encoder_dir, head_dirs)
    if name is None:
        name = pathlib.Path((run_dirs or [encoder_path.parent])[0]).resolve().name
    _check_name(name, "export name")
    if remote.is_remote(export_root):  # exported locally, then pushed (rdc_keras.remote)
        target = remote.join(export_root, name)
        with remote.staged(target, name) as local:
            export_run(
                run_dirs,
                local.parent,
                name,
                encoder_dir=encoder_dir,
                head_dirs=head_dirs,
                prior_dataset=prior_dataset,
                data_dir=data_dir,
                prior_split=prior_split,
                seed=seed,
                serving_base_path=serving_base_path or export_root,
                fold_batch_norm=fold_batch_norm,
                verbose=verbose,
            )
        return remote.read_json(remote.join(target, MANIFEST_FILE))
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    seed = int(seed)
    networks = _load_networks(encoder_path, heads)
    prior_dataset, data_dir = _prior_data(networks, prior_dataset, data_dir)

    root = pathlib.Path(export_root)
    export_dir = root / name
    version = _next_version(export_dir)
    base = serving_base_path.rstrip("/") if serving_base_path else str(root.resolve())
    base = f"{base}/{name}"
    common = _common_metadata(name, version, networks)
    shape = (networks.num_levels, networks.latent_dim, networks.image_shape)

    with _staging() as staged, tempfile.TemporaryDirectory() as scratch:
        placeholder = pathlib.Path(scratch) / METADATA_FILE  # the Asset each module carries
        placeholder.write_text("{}\n")
        module = _ServingModule("encoder", networks.encoder, *shape, placeholder)
        dataset = data.load_dataset(prior_dataset, prior_split, data_dir=data_dir)
        info = {"dataset": prior_dataset, "split": prior_split}
        encoder_meta = _encoder_metadata(
            common, networks, _build_prior(networks, module.serve, dataset, info, seed)
        )
        model_dir = export_dir / "encoder"
        staged.append((_stage(module, encoder_meta, model_dir, version), model_dir))
        head_entries = {}
        for head_name, (decoder, record, path) in sorted(networks.heads.items()):
            head_meta = _head_metadata(common, head_name, record, path, fold_batch_norm)
            # BatchNorm folded into the preceding layers: faster heads, outputs equal up to
            # float rounding. (The encoder is exported as trained: its weights are
            # fingerprinted and its indices must match the training-time encoder's.)
            network = folding.fold_batch_norm(decoder) if fold_batch_norm else decoder
            head_module = _ServingModule("head", network, *shape, placeholder)
            model_dir = export_dir / "heads" / head_name
            staged.append((_stage(head_module, head_meta, model_dir, version), model_dir))
            head_entries[head_name] = _head_entry(name, version, head_meta)
        requests = _example_requests(module, head_entries, dataset, seed)
        _publish(staged, version, verbose)

    manifest = _manifest(common, encoder_meta, head_entries)
    _write_index(export_dir, base, manifest, requests)
    return manifest
