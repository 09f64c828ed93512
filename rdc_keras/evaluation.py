"""One evaluation protocol for every model: the same data, dither seeds, judges and critic budget.

`evaluate` runs the sender/receiver pipeline exactly as deployed (indices of the centre nearest
f(x) + u, then g(centre - u)) with the dither of image i drawn from seed + i, and scores the
reconstructions with a frozen reference classifier. MSE is the per-pixel mean on [0, 1], CE is in
nats. Two realism judges, the same for every model:

- `judge_fd`, deterministic and training-free: the Fréchet distance in the reference classifier's
  feature space, between the penultimate-layer features (the input of its "logits_dense" layer)
  of the originals and of the reconstructions (`judge_features`, `frechet_distance`). It is not
  the Inception FID: the features are the reference classifier's, so values compare only under
  one judge.
- `w1` (optional): a fresh WGAN-GP critic trained post hoc on one half of the test images
  (originals vs reconstructions) and scored on the other half (held out, `judge_split`), with the
  same number of steps, learning rate and seed for every model, so estimates are comparable
  across models (unlike the in-training critics of the reference code, digest §8.1 item 10) and
  a model cannot win by the critic overfitting the images it is scored on.

`PROTOCOL_VERSION` names this protocol in every result (caches recompute when it changes).
`evaluate_runs` applies the protocol to every head of finished runs (`rdc-evaluate`). The judges
themselves live in `rdc_keras.realism` (re-exported here).
"""

from __future__ import annotations

import numbers
import os
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from rdc_keras import data, losses, runs
from rdc_keras.layers import UniversalQuantizer, image_seeds, rate_bits
from rdc_keras.realism import check_images as _check_images
from rdc_keras.realism import frechet_distance, judge_features, judge_split, w1_estimate
from rdc_keras.tfkeras import keras

__all__ = [
    "PROTOCOL_VERSION",
    "UNITS",
    "evaluate",
    "evaluate_runs",
    "frechet_distance",
    "judge_features",
    "judge_split",
    "reconstruct",
    "w1_estimate",
]

# Version of the protocol below (judges, split, metrics). 2: held-out W1, judge_fd.
PROTOCOL_VERSION = 2


def _arrays(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) numpy arrays from a tuple of arrays or an unbatched/batched tf.data."""
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        images, labels = np.asarray(dataset[0], np.float32), np.asarray(dataset[1], np.int64)
    elif isinstance(dataset, tf.data.Dataset):
        images, labels = [], []
        batched = len(dataset.element_spec[0].shape) == 4
        for x, y in dataset.as_numpy_iterator():
            images.append(x if batched else x[None])
            labels.append(y if batched else np.asarray(y)[None])
        if not images:
            raise ValueError("evaluate: the dataset is empty")
        images = np.concatenate(images).astype(np.float32)
        labels = np.concatenate(labels).astype(np.int64)
    else:
        raise TypeError("dataset must be a tf.data.Dataset of (image, label) or a tuple of arrays")
    _check_images(images)
    if labels.shape != (len(images),):
        raise ValueError(f"evaluate: {len(images)} images but labels of shape {labels.shape}")
    return images, labels


def reconstruct(
    encoder: keras.Model,
    head: keras.Model,
    images: np.ndarray,
    num_levels: int,
    seed: int = 0,
    batch_size: int = 500,
) -> tuple[np.ndarray, np.ndarray]:
    """Encodes and decodes `images` with per-image dither seeds seed + i.

    Returns:
      (indices int32 [N, d], reconstructions float32 [N, H, W, C]).
    """
    images = np.asarray(images, np.float32)
    _check_images(images)
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, numbers.Integral)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    quantizer = UniversalQuantizer(num_levels)

    def run(batch: tf.Tensor, seeds: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        indices = quantizer.send(tf.cast(encoder(batch, training=False), tf.float32), seeds)
        decoded = quantizer.receive(indices, seeds)
        return indices, tf.cast(head(decoded, training=False), tf.float32)

    all_indices, outputs = [], []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        seeds = image_seeds(seed, len(batch), offset=start)
        indices, x_hat = run(tf.constant(batch), tf.constant(seeds))
        all_indices.append(indices.numpy())
        outputs.append(x_hat.numpy())
    return np.concatenate(all_indices), np.concatenate(outputs)


def evaluate(
    encoder: keras.Model,
    head: keras.Model,
    dataset: Any,
    reference_classifier: keras.Model,
    *,
    num_levels: int,
    seed: int = 0,
    batch_size: int = 500,
    w1_steps: int = 0,
    preset: str | None = None,
) -> dict[str, float]:
    """Scores one encoder + head on a test set with the frozen reference classifier.

    Args:
      encoder, head: the networks (head = decoder taking centre - dither).
      dataset: (image, label) data: tf.data (batched or not) or a tuple of numpy arrays.
      reference_classifier: the frozen judge (logits).
      num_levels: L of the encoder's quantizer.
      seed: dither seed of image i is seed + i; the same seed gives the same numbers.
      batch_size: evaluation batch size (does not change the result).
      w1_steps: train a post-hoc critic for this many steps and report the held-out `w1`
        (`w1_estimate` with seed `seed`; 0: skip).
      preset: network preset of the post-hoc critic (needed when w1_steps > 0).

    Returns:
      mse (per pixel, [0, 1] scale), psnr (dB, mean over images), ce_nats, accuracy, judge_fd
      (Fréchet distance in the reference classifier's feature space, originals vs
      reconstructions), rate_bits (d log2 L), num_images, seed, protocol (`PROTOCOL_VERSION`),
      and w1 when requested.

    Raises:
      ValueError: bad arguments or data, or fewer than 2 images (the judges need two).
    """
    if w1_steps < 0:
        raise ValueError(f"evaluate: w1_steps must be >= 0, got {w1_steps}")
    if w1_steps > 0 and preset is None:
        raise ValueError("evaluate: w1_steps > 0 needs the critic preset")
    images, labels = _arrays(dataset)
    if len(images) < 2:
        raise ValueError(f"evaluate: the realism judges need at least 2 images, got {len(images)}")
    _, x_hat = reconstruct(encoder, head, images, num_levels, seed=seed, batch_size=batch_size)
    logits = reference_classifier.predict(x_hat, batch_size=batch_size, verbose=0)
    latent_dim = int(encoder.output_shape[-1])
    metrics = {
        "mse": float(losses.distortion(images, x_hat)),
        "psnr": float(losses.psnr(images, x_hat)),
        "ce_nats": float(losses.cross_entropy(labels, logits)),
        "accuracy": float(losses.accuracy(labels, logits)),
        "judge_fd": frechet_distance(
            judge_features(reference_classifier, images, batch_size),
            judge_features(reference_classifier, x_hat, batch_size),
        ),
        "rate_bits": rate_bits(latent_dim, num_levels),
        "num_images": len(images),
        "seed": int(seed),
        "protocol": PROTOCOL_VERSION,
    }
    if w1_steps > 0:
        metrics["w1"] = w1_estimate(images, x_hat, preset, steps=w1_steps, seed=seed)
    return metrics


# ------------------------------------------------------------------------------------------------
# Scoring finished runs (rdc-evaluate).

UNITS = {
    "mse": "per-pixel mean on [0, 1]",
    "psnr": "dB (mean over images)",
    "ce_nats": "nats (reference classifier on the reconstruction)",
    "accuracy": "fraction (reference classifier on the reconstruction)",
    "rate_bits": "bits per image (d log2 L)",
    "judge_fd": (
        "Fréchet distance between the reference classifier's penultimate features of originals "
        "and reconstructions (not Inception FID)"
    ),
    "w1": (
        "held-out post-hoc WGAN-GP critic estimate of W1: trained on one half of the images, "
        "scored on the other (same budget and seed for every head)"
    ),
}


def _judge_dir(run: runs.RunDir, classifier_dir: str | os.PathLike | None) -> pathlib.Path:
    """The given judge, else the first run's (recorded in its results, or its classifier/)."""
    candidates = [classifier_dir, run.results().get("reference_classifier"), run.classifier_dir]
    for candidate in candidates:
        if candidate and pathlib.Path(candidate).is_dir():
            return pathlib.Path(candidate)
    raise ValueError(f"{run.path}: no reference classifier found; give --classifier_dir")


def _encoder_dir(run: runs.RunDir) -> pathlib.Path:
    recorded = run.raw_config().get("encoder_dir")
    for candidate in (recorded, run.encoder_dir):
        if candidate and pathlib.Path(candidate).is_dir():
            return pathlib.Path(candidate)
    raise ValueError(f"{run.path}: its encoder ({recorded or run.encoder_dir}) is not there")


def evaluate_runs(
    run_dirs: list[str | os.PathLike],
    *,
    heads: list[str] | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    split: str = "test",
    classifier_dir: str | os.PathLike | None = None,
    seed: int = 0,
    w1_steps: int = 0,
    batch_size: int = 500,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Scores every head of finished runs with one judge, split and seed (`evaluate`).

    Args:
      run_dirs: finished runs, or directories above runs (a study): `runs.find_runs`.
      heads: only these head names (default: all).
      dataset, data_dir: data to score on (default: the first run's).
      split: "train" or "test".
      classifier_dir: the judge (default: the first run's reference classifier).
      seed, w1_steps, batch_size: as in `evaluate`.
      log: receives one line per scored head.

    Returns:
      {"config", "units", "heads": [one record per head: run, head, fingerprint, lambdas,
      metrics]}.

    Raises:
      ValueError: a run, head, encoder, classifier or dataset that cannot be used (one line).
    """
    found = runs.find_runs(list(run_dirs))
    first_config = found[0].raw_config()
    dataset = dataset or first_config["dataset"]
    data_dir = data_dir if data_dir is not None else first_config.get("data_dir")
    if dataset == "digits":
        data_dir = None
    info = data.dataset_info(dataset)  # unknown name -> ValueError naming it
    judge_dir = _judge_dir(found[0], classifier_dir)
    judge, _ = runs.load_classifier(judge_dir)
    images, labels = data.load_arrays(dataset, split, data_dir=data_dir)
    image_shape = list(images.shape[1:])

    selected = [
        (run, head)
        for run in found
        for head in run.heads()
        if heads is None or head.path.name in heads
    ]
    missing = sorted(set(heads or ()) - {head.path.name for _, head in selected})
    if missing:
        raise ValueError(f"--head: no head named {', '.join(missing)} in the given runs")
    if not selected:
        raise ValueError("the given runs hold no heads")

    encoders: dict[pathlib.Path, tuple[Any, dict[str, Any]]] = {}
    records = []
    for run, head in selected:
        encoder_dir = _encoder_dir(run).resolve()
        if encoder_dir not in encoders:
            encoders[encoder_dir] = runs.load_encoder(encoder_dir)
        encoder, description = encoders[encoder_dir]
        if list(description["image_shape"]) != image_shape:
            raise ValueError(
                f"{dataset} images are {'x'.join(map(str, image_shape))} but the encoder of "
                f"{run.path} takes {'x'.join(map(str, description['image_shape']))}"
            )
        decoder, head_description = head.load(description)
        metrics = evaluate(
            encoder,
            decoder,
            (images, labels),
            judge,
            num_levels=description["num_levels"],
            seed=seed,
            batch_size=batch_size,
            w1_steps=w1_steps,
            preset=info.preset,
        )
        records.append(
            {
                "run": str(run.path),
                "head": head.path.name,
                "encoder_fingerprint": description["fingerprint"],
                **{key: head_description.get(key) for key in ("lambda_d", "lambda_c", "lambda_p")},
                **metrics,
            }
        )
        if log is not None:
            w1 = f" w1={metrics['w1']:.4g}" if "w1" in metrics else ""
            log(
                f"{run.path} head {head.path.name}: mse={metrics['mse']:.5f} "
                f"psnr={metrics['psnr']:.2f} ce={metrics['ce_nats']:.4f} "
                f"acc={metrics['accuracy']:.4f} fd={metrics['judge_fd']:.4g}{w1} "
                f"rate={metrics['rate_bits']:.3f} bits"
            )
    return {
        "config": {
            "runs": [str(run.path) for run in found],
            "dataset": dataset,
            "data_dir": data_dir,
            "split": split,
            "num_images": len(images),
            "reference_classifier": str(judge_dir),
            "seed": seed,
            "w1_steps": w1_steps,
            "protocol": PROTOCOL_VERSION,
        },
        "units": UNITS,
        "heads": records,
    }
