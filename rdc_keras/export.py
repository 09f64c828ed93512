"""SavedModel export of the encoder and every decoder head, for TF Serving and the `.rdc` codec.

`export_run` turns training runs (see `rdc_keras.trainers.runner`) into the layout of DESIGN.md::

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
prior: per-dimension integer CDF tables built once here from the training split and read
unchanged by both sides of `rdc_keras.codec` (ecosystem §1.3: tables shared as integers).
Heads are exported with their BatchNorm folded into the preceding layers (`rdc_keras.folding`).

Every export writes one new version number for the encoder and all its heads. Each version
directory is written under a temporary name and renamed into place, models.config and
manifest.json are rewritten last (atomically), so a half-written export never appears.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import pathlib
import re
import shutil
import tempfile
import types
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

import rdc_keras
from rdc_keras import data, folding, runs
from rdc_keras.layers import UniversalQuantizer, dither

__all__ = [
    "DITHER_CONVENTION",
    "DITHER_OFFSET_BINS",
    "EXPORT_FORMAT",
    "PRIOR_PRECISION",
    "ExportedModel",
    "dithered_prior",
    "export_run",
    "load_encoder",
    "load_head",
    "models_config",
    "prior_digest",
    "quantized_cdf",
    "rest_request",
    "saved_model_ops",
]

EXPORT_FORMAT = "rdc_keras.export/1"
METADATA_FILE = "rdc.json"
MANIFEST_FILE = "manifest.json"
MODELS_CONFIG_FILE = "models.config"
SIGNATURE = "serving_default"
# Bits of the integer CDF tables; tensorflow-compression's range coder accepts 1..16.
PRIOR_PRECISION = 16

# How sender and receiver derive the dither; recorded in every SavedModel's assets/rdc.json.
DITHER_CONVENTION: dict[str, Any] = {
    "function": "rdc_keras.layers.dither",
    "algorithm": "splitmix64-24bit",
    "version": 1,
    "description": (
        "u[i, j] = float32(k - 2**23) * float32(float32(2 / (L - 1)) * 2**-24), "
        "k = h[i, j] >> 40, h[i, j] = mix64(mix64(seed_i) + (j + 1) * 0x9E3779B97F4A7C15) "
        "(uint64 wrapping; mix64 = SplitMix64 finalizer); u in [-1/(L-1), 1/(L-1))"
    ),
    "seed_rule": "the seed of image i of a batch or .rdc file is base_seed + i (int64)",
    "quantizer": "index = clip(floor((y + u + 1) * (L - 1) / 2 + 0.5), 0, L - 1); "
    "decoder input = -1 + 2 * index / (L - 1) - u",
}

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PRIOR_BATCH = 512
# Dither bins of the dither-conditional prior: tables [d, bins, L + 1] (see `dithered_prior`).
DITHER_OFFSET_BINS = 32


# ------------------------------------------------------------------------------------------------
# Small helpers.


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"{what} {name!r} is not a valid name (letters, digits, '_', '.', '-'; "
            "no leading '.' or '-'; at most 128 characters)"
        )
    return name


def _write_text(path: pathlib.Path, text: str) -> None:
    """Writes text through a temporary file and a rename (readers never see a partial file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as stream:
            stream.write(text)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def _versions(model_dir: pathlib.Path) -> list[int]:
    """Numeric version subdirectories of a TF Serving model directory, ascending."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def _lambdas(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(record.items()) if "lambda" in k and v is not None}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------------
# The entropy-coding prior (integer CDF tables, built once).


def quantized_cdf(counts: Sequence[int], precision: int = PRIOR_PRECISION) -> list[int]:
    """Integer CDF [0, c_1, ..., 2**precision] with every symbol's frequency >= 1.

    Exact integer arithmetic (largest-remainder rounding of counts * 2**precision / total, ties
    to the lower symbol), so the table does not depend on floating point. Callers smooth the
    counts first; this only guarantees that no symbol gets probability zero after rounding.

    Args:
      counts: non-negative integer count per symbol, L >= 2 entries, positive total.
      precision: bits of the table, 1..16 (the range coder's limit); needs 2**precision >= L.

    Returns:
      L + 1 non-decreasing ints, strictly increasing, from 0 to 2**precision.
    """
    counts = [int(c) for c in counts]
    if len(counts) < 2 or min(counts) < 0 or sum(counts) <= 0:
        raise ValueError(f"counts must be >= 2 non-negative integers with a positive sum: {counts}")
    if not 1 <= precision <= 16 or 2**precision < len(counts):
        raise ValueError(f"precision {precision} cannot hold {len(counts)} symbols (1..16 bits)")
    total, scale = sum(counts), 2**precision
    quotients, remainders = zip(*(divmod(c * scale, total) for c in counts), strict=True)
    freq = [max(q, 1) for q in quotients]
    deficit = scale - sum(freq)
    if deficit > 0:  # hand the missing units to the largest remainders
        order = sorted(range(len(counts)), key=lambda i: (-remainders[i], i))
        for i in order[:deficit]:
            freq[i] += 1
    while deficit < 0:  # minimum-1 bumps overshot: take units from the largest frequencies
        i = max(range(len(freq)), key=lambda j: (freq[j], -j))
        freq[i] -= 1
        deficit += 1
    return [0, *np.cumsum(freq).tolist()]


def prior_digest(cdf: Sequence[Sequence[int]], precision: int) -> str:
    """16 hex digits identifying a prior's CDF tables (stored in `.rdc` headers)."""
    canonical = json.dumps({"precision": int(precision), "cdf": [list(map(int, r)) for r in cdf]})
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _prior(counts: np.ndarray, info: dict[str, Any]) -> dict[str, Any]:
    """Add-one smoothed per-dimension categorical prior with its integer CDF tables."""
    smoothed = counts.astype(np.int64) + 1
    cdf = [quantized_cdf(row, PRIOR_PRECISION) for row in smoothed]
    freq = np.diff(np.asarray(cdf, np.float64), axis=1) / 2.0**PRIOR_PRECISION
    empirical = counts / max(int(counts[0].sum()), 1)
    # Cross-entropy of the training indices under the stored tables: the ideal code length.
    bits = float(-(empirical * np.log2(freq)).sum())
    return {
        **info,
        "smoothing": "add-one (Laplace)",
        "precision": PRIOR_PRECISION,
        "counts": counts.astype(np.int64).tolist(),
        "cdf": cdf,
        "digest": prior_digest(cdf, PRIOR_PRECISION),
        "train_bits_per_image": bits,
    }


def dithered_prior(
    latents: np.ndarray,
    dithers: np.ndarray,
    indices: np.ndarray,
    num_levels: int,
    offset_bins: int = DITHER_OFFSET_BINS,
) -> dict[str, Any]:
    """Per-dimension prior of an index given its dither, P(k | u), as integer CDF tables.

    With subtractive dither the receiver knows u, so index k = Q(y + u) can be coded with
    P(k | u) instead of P(k); the expected length H(K | U) <= H(K) is the rate of universal
    quantization (Zhang et al. 2021; the universal entropy models of tensorflow-compression).
    The dither range [-1/(L-1), 1/(L-1)] is cut into `offset_bins` equal bins (see
    `rdc_keras.codec.offset_bins`); for bin b with centre u_b and dimension j, the table counts
    Q(y_nj + u_b) = k over all N latents y_n, add-one smoothed. Tables are integers, built once.

    Args:
      latents: float [N, d] encoder outputs f(x) of the prior split.
      dithers: float32 [N, d] the dither each image is coded with (seeds seed + i).
      indices: int [N, d] the served indices Q(f(x) + u) (for the training cross-entropy).
      num_levels: L.
      offset_bins: number of dither bins per dimension.

    Returns:
      {"offset_bins", "precision", "cdf" [d][offset_bins][L + 1], "digest",
      "train_bits_per_image"}.
    """
    from rdc_keras import codec

    latents = np.asarray(latents, np.float64)
    latent_dim = latents.shape[1]
    step = 2.0 / (num_levels - 1)
    centres = -step / 2 + (np.arange(offset_bins) + 0.5) * step / offset_bins
    cdf = []
    for j in range(latent_dim):
        shifted = latents[:, j, None] + centres[None, :]  # [N, bins]
        symbols = np.clip(np.floor((shifted + 1.0) / step + 0.5), 0, num_levels - 1)
        rows = []
        for b in range(offset_bins):
            counts = np.bincount(symbols[:, b].astype(np.int64), minlength=num_levels) + 1
            rows.append(quantized_cdf(counts, PRIOR_PRECISION))
        cdf.append(rows)
    tables = np.asarray(cdf, np.float64)  # [d, bins, L + 1]
    bins = codec.offset_bins(dithers, num_levels, offset_bins)  # [N, d]
    freq = np.diff(tables, axis=-1) / 2.0**PRIOR_PRECISION
    chosen = freq[np.arange(latent_dim)[None, :], bins, np.asarray(indices)]
    flat = [row for rows in cdf for row in rows]
    return {
        "offset_bins": int(offset_bins),
        "precision": PRIOR_PRECISION,
        "cdf": cdf,
        "digest": prior_digest(flat, PRIOR_PRECISION),
        "train_bits_per_image": float(-np.log2(chosen).sum(axis=1).mean()),
    }


def _code_prior_split(
    encoder: tf.keras.Model,
    serve,
    dataset: tf.data.Dataset,
    seed: int,
    num_levels: int,
    latent_dim: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(latents, dithers, served indices), each [N, d], of a dataset (image i gets seed + i)."""
    latents, dithers, indices = [], [], []
    offset = 0
    for images, _ in dataset.batch(_PRIOR_BATCH):
        n = int(images.shape[0])
        seeds = tf.range(seed + offset, seed + offset + n, dtype=tf.int64)
        images = tf.cast(images, tf.float32)
        indices.append(serve(images=images, seeds=seeds)["indices"].numpy())
        latents.append(tf.cast(encoder(images, training=False), tf.float32).numpy())
        dithers.append(dither(seeds, latent_dim, num_levels).numpy())
        offset += n
    if offset == 0:
        raise ValueError("the prior dataset is empty")
    return np.concatenate(latents), np.concatenate(dithers), np.concatenate(indices)


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
        model: tf.keras.Model,
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
            return {"indices": quantizer.encode(latents, dither(seeds, latent_dim, num_levels))}

        def decode(indices: tf.Tensor, seeds: tf.Tensor) -> dict[str, tf.Tensor]:
            latents = quantizer.decode(indices, dither(seeds, latent_dim, num_levels))
            return {"images": tf.cast(model(latents, training=False), tf.float32)}

        self.serve = tf.function(
            encode if kind == "encoder" else decode,
            input_signature=_signature_specs(kind, image_shape, latent_dim),
        )


def _stage(
    module: _ServingModule, metadata: dict[str, Any], model_dir: pathlib.Path, version: int
) -> pathlib.Path:
    """Saves a SavedModel into a hidden temporary sibling of model_dir/version; returns it."""
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(dir=model_dir, prefix=f".{version}.", suffix=".tmp"))
    try:
        tf.saved_model.save(
            module, str(tmp), signatures={SIGNATURE: module.serve.get_concrete_function()}
        )
        # The Asset copied the staging file; overwrite it with the final metadata.
        runs.write_json(tmp / "assets" / METADATA_FILE, metadata)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


# ------------------------------------------------------------------------------------------------
# Collecting runs.


def _read_optional_json(path: pathlib.Path) -> dict[str, Any] | None:
    return runs.read_json(path) if path.exists() else None


def _collect(
    run_dirs: Sequence[str | os.PathLike] | None,
    encoder_dir: str | os.PathLike | None,
    head_dirs: Sequence[str | os.PathLike] | None,
) -> tuple[pathlib.Path, list[pathlib.Path]]:
    """Resolves (encoder directory, head directories) from run dirs and/or explicit dirs."""
    heads = [pathlib.Path(h) for h in head_dirs or []]
    encoder = pathlib.Path(encoder_dir) if encoder_dir else None
    for run in [pathlib.Path(r) for r in run_dirs or []]:
        if not run.is_dir():
            raise ValueError(f"{run}: run directory not found")
        run_heads = sorted(p for p in (run / "heads").glob("*") if (p / "head.json").exists())
        if not run_heads:
            raise ValueError(f"{run}: no trained heads (expected heads/<name>/head.json)")
        heads.extend(run_heads)
        if encoder is None and (run / "encoder" / runs.NETWORK_FILE).exists():
            encoder = run / "encoder"
    if not heads:
        raise ValueError("nothing to export: give run directories or head directories")
    if encoder is None:  # phase-2 runs record the encoder they were trained on
        recorded = runs.read_json(heads[0] / "head.json").get("encoder_dir")
        if not recorded:
            raise ValueError(f"{heads[0]}: head.json names no encoder_dir; pass encoder_dir")
        encoder = pathlib.Path(recorded)
    if (encoder / "encoder").is_dir():
        encoder = encoder / "encoder"
    return encoder, heads


def _encoder_run_config(encoder_dir: pathlib.Path) -> dict[str, Any] | None:
    config = _read_optional_json(encoder_dir.parent / "config.json")
    return None if config is None else config.get("config")


# ------------------------------------------------------------------------------------------------
# Export.


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
      export_root: root of the export tree (DESIGN.md: `saved_models/`).
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
    encoder_path, head_paths = _collect(run_dirs, encoder_dir, head_dirs)
    if name is None:
        name = pathlib.Path((run_dirs or [encoder_path.parent])[0]).resolve().name
    _check_name(name, "export name")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an integer, got {seed!r}")

    from rdc_keras.trainers import runner  # Keras networks; kept out of `import export` cost

    encoder, description = runner.load_encoder(encoder_path)
    fingerprint = description["fingerprint"]
    num_levels, latent_dim = int(description["num_levels"]), int(description["latent_dim"])
    image_shape = [int(s) for s in description["image_shape"]]
    heads: dict[str, tuple[tf.keras.Model, dict[str, Any], pathlib.Path]] = {}
    for path in head_paths:
        decoder, head = runner.load_head(path, description)  # refuses another encoder's head
        head_name = _check_name(head.get("name") or path.name, "head name")
        if head_name in heads:
            raise ValueError(f"two heads named {head_name!r}: {heads[head_name][2]} and {path}")
        heads[head_name] = (decoder, head, path)

    run_config = _encoder_run_config(encoder_path) or {}
    prior_dataset = prior_dataset or run_config.get("dataset")
    if prior_dataset is None:
        raise ValueError(
            f"{encoder_path}: no run config.json next to the encoder; pass prior_dataset"
        )
    if data.dataset_info(prior_dataset).preset != description["preset"]:
        raise ValueError(
            f"prior dataset {prior_dataset!r} does not fit the {description['preset']!r} encoder"
        )
    if data_dir is None and prior_dataset == run_config.get("dataset"):
        data_dir = run_config.get("data_dir")

    root = pathlib.Path(export_root)
    export_dir = root / name
    existing = _versions(export_dir / "encoder") + [
        v for p in (export_dir / "heads").glob("*") for v in _versions(p)
    ]
    version = max(existing, default=0) + 1
    base = serving_base_path.rstrip("/") if serving_base_path else str(root.resolve())
    base = f"{base}/{name}"
    common = {
        "format": EXPORT_FORMAT,
        "export_name": name,
        "version": version,
        "preset": description["preset"],
        "num_levels": num_levels,
        "latent_dim": latent_dim,
        "image_shape": image_shape,
        "rate_bits": latent_dim * math.log2(num_levels),
        "encoder_fingerprint": fingerprint,
        "dither": DITHER_CONVENTION,
        "tensorflow": tf.__version__,
        "rdc_keras": rdc_keras.__version__,
        "created": _now(),
    }

    staged: list[tuple[pathlib.Path, pathlib.Path]] = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            placeholder = pathlib.Path(scratch) / METADATA_FILE
            placeholder.write_text("{}\n")
            module = _ServingModule(
                "encoder", encoder, num_levels, latent_dim, image_shape, placeholder
            )
            dataset = data.load_dataset(prior_dataset, prior_split, data_dir=data_dir)
            latents, dithers, indices = _code_prior_split(
                encoder, module.serve, dataset, int(seed), num_levels, latent_dim
            )
            counts = np.stack(
                [np.bincount(indices[:, j], minlength=num_levels) for j in range(latent_dim)]
            )
            prior = _prior(
                counts,
                {
                    "dataset": prior_dataset,
                    "split": prior_split,
                    "num_images": len(indices),
                    "seed": int(seed),
                },
            )
            prior["dithered"] = dithered_prior(latents, dithers, indices, num_levels)
            encoder_meta = {
                **common,
                "kind": "encoder",
                "temperature": description["temperature"],
                "lambdas": _lambdas(run_config),
                "signature": _signature_record("encoder", image_shape, latent_dim),
                "prior": prior,
                "source": str(encoder_path.resolve()),
            }
            model_dir = export_dir / "encoder"
            staged.append((_stage(module, encoder_meta, model_dir, version), model_dir))
            head_entries = {}
            for head_name, (decoder, head, path) in sorted(heads.items()):
                head_meta = {
                    **common,
                    "kind": "head",
                    "head": head_name,
                    "lambdas": _lambdas(head),
                    "classifier_mode": head.get("classifier_mode"),
                    "test": head.get("test", {}),
                    "signature": _signature_record("head", image_shape, latent_dim),
                    "batch_norm_folded": bool(fold_batch_norm),
                    "source": str(path.resolve()),
                }
                # BatchNorm folded into the preceding layers: faster heads, outputs equal up to
                # float rounding. (The encoder is exported as trained: its weights are
                # fingerprinted and its indices must match the training-time encoder's.)
                head_module = _ServingModule(
                    "head",
                    folding.fold_batch_norm(decoder) if fold_batch_norm else decoder,
                    num_levels,
                    latent_dim,
                    image_shape,
                    placeholder,
                )
                model_dir = export_dir / "heads" / head_name
                staged.append((_stage(head_module, head_meta, model_dir, version), model_dir))
                head_entries[head_name] = {
                    "path": f"heads/{head_name}/{version}",
                    "serving_name": f"{name}-head-{head_name}",
                    "lambdas": head_meta["lambdas"],
                    "classifier_mode": head_meta["classifier_mode"],
                    "test": head_meta["test"],
                }
            requests = _example_requests(module, head_entries, dataset, int(seed))
        for tmp, model_dir in staged:  # every SavedModel is complete: move them into place
            os.rename(tmp, model_dir / str(version))
            if verbose:
                print(f"wrote {model_dir / str(version)}", flush=True)
        staged = []
    finally:
        for tmp, _ in staged:
            shutil.rmtree(tmp, ignore_errors=True)

    (export_dir / "requests").mkdir(exist_ok=True)
    for file_name, body in requests.items():
        _write_text(export_dir / "requests" / file_name, json.dumps(body) + "\n")
    entries = [(f"{name}-encoder", f"{base}/encoder", version)] + [
        (entry["serving_name"], f"{base}/heads/{head_name}", version)
        for head_name, entry in head_entries.items()
    ]
    _write_text(export_dir / MODELS_CONFIG_FILE, models_config(entries))
    manifest = {
        **common,
        "encoder": {
            "path": f"encoder/{version}",
            "serving_name": f"{name}-encoder",
            "temperature": description["temperature"],
            "lambdas": encoder_meta["lambdas"],
        },
        "heads": head_entries,
        "prior": prior,
        "units": {"rate_bits": "bits per image (d * log2 L)", "mse": "per-pixel mean on [0, 1]"},
    }
    runs.write_json(export_dir / MANIFEST_FILE, manifest)
    return manifest


def _example_requests(encoder_module, head_entries, dataset, seed):
    """REST request bodies for one real image: the encoder's, then each head's on its indices."""
    images = next(iter(dataset.batch(1)))[0].numpy().astype(np.float32)
    seeds = np.array([seed], np.int64)
    indices = encoder_module.serve(images=tf.constant(images), seeds=tf.constant(seeds))
    indices = indices["indices"].numpy()
    bodies = {"encoder.json": rest_request({"images": images, "seeds": seeds})}
    for head_name in head_entries:
        bodies[f"{head_name}.json"] = rest_request({"indices": indices, "seeds": seeds})
    return bodies


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


# ------------------------------------------------------------------------------------------------
# Loading exports.


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


class ExportedModel:
    """An exported encoder or head: its `assets/rdc.json` metadata and its serving signature.

    The SavedModel itself is loaded on first use, so reading the metadata (for example the
    prior tables the codec needs on the receiving side) costs nothing.
    """

    def __init__(self, path: str | os.PathLike, kind: str) -> None:
        self.path = _version_dir(pathlib.Path(path), kind)
        metadata = runs.read_json(self.path / "assets" / METADATA_FILE)
        if not isinstance(metadata, dict) or metadata.get("format") != EXPORT_FORMAT:
            raise ValueError(f"{self.path}: not an rdc_keras export (format != {EXPORT_FORMAT})")
        if metadata.get("kind") != kind:
            raise ValueError(f"{self.path}: holds a {metadata.get('kind')!r}, expected {kind!r}")
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
            loaded = tf.saved_model.load(str(self.path))
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
    """Loads an exported encoder from `<root>/<name>`, its `encoder/` dir or a version dir.

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
