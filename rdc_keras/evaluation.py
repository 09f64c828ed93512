"""One evaluation protocol for every model: the same data, dither seeds, judge and critic budget.

`evaluate` runs the sender/receiver pipeline exactly as deployed (indices of the centre nearest
f(x) + u, then g(centre - u)) with the dither of image i drawn from seed + i, and scores the
reconstructions with a frozen reference classifier. MSE is the per-pixel mean on [0, 1], CE is in
nats. The optional W1 estimate trains a fresh WGAN-GP critic post hoc on the test split (the same
number of steps, learning rate and seed for every model), so estimates are comparable across
models, unlike the in-training critics of the reference code (digest §8.1 item 10).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import tensorflow as tf

from rdc_keras import losses, networks
from rdc_keras.layers import UniversalQuantizer, dither

__all__ = ["evaluate", "reconstruct", "w1_estimate"]


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


def _check_images(images: np.ndarray) -> None:
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty [N, H, W, C] batch, got shape {images.shape}")


def reconstruct(
    encoder: tf.keras.Model,
    head: tf.keras.Model,
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
    latent_dim = int(encoder.output_shape[-1])

    def run(batch: tf.Tensor, seeds: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        u = dither(seeds, latent_dim, num_levels)
        indices = quantizer.encode(tf.cast(encoder(batch, training=False), tf.float32), u)
        decoded = quantizer.decode(indices, u)
        return indices, tf.cast(head(decoded, training=False), tf.float32)

    all_indices, outputs = [], []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        seeds = np.arange(start, start + len(batch), dtype=np.int64) + np.int64(seed)
        indices, x_hat = run(tf.constant(batch), tf.constant(seeds))
        all_indices.append(indices.numpy())
        outputs.append(x_hat.numpy())
    return np.concatenate(all_indices), np.concatenate(outputs)


def w1_estimate(
    real: np.ndarray,
    fake: np.ndarray,
    preset: str,
    steps: int = 500,
    batch_size: int = 64,
    learning_rate: float = 1e-4,
    gp_weight: float = 10.0,
    seed: int = 0,
) -> float:
    """Wasserstein-1 estimate E h(x) - E h(x_hat) with a fresh WGAN-GP critic trained post hoc.

    Every model gets the same critic architecture, budget and seed, so the numbers compare.
    """
    real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
    _check_images(real)
    if fake.shape[1:] != real.shape[1:] or len(fake) == 0:
        raise ValueError(f"w1_estimate: real {real.shape} and fake {fake.shape} images differ")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"w1_estimate: steps={steps} and batch_size={batch_size} must be >= 1")
    tf.keras.utils.set_random_seed(seed)
    critic = networks.critic(preset)
    optimizer = tf.keras.optimizers.Adam(learning_rate, beta_1=0.5, beta_2=0.9)
    rng = np.random.default_rng(seed)

    @tf.function
    def step(x: tf.Tensor, x_hat: tf.Tensor, epsilon: tf.Tensor) -> None:
        with tf.GradientTape() as tape:
            gap = tf.reduce_mean(critic(x_hat, training=True)) - tf.reduce_mean(
                critic(x, training=True)
            )
            loss = gap + gp_weight * losses.gradient_penalty(critic, x, x_hat, epsilon)
        grads = tape.gradient(loss, critic.trainable_variables)
        optimizer.apply_gradients(zip(grads, critic.trainable_variables))

    n = len(real)
    for _ in range(steps):
        idx = rng.integers(0, n, batch_size)
        jdx = rng.integers(0, n, batch_size)
        epsilon = rng.random(batch_size, dtype=np.float32)
        step(tf.constant(real[idx]), tf.constant(fake[jdx]), tf.constant(epsilon))
    score_real = np.mean(critic.predict(real, batch_size=1000, verbose=0))
    score_fake = np.mean(critic.predict(fake, batch_size=1000, verbose=0))
    return float(score_real - score_fake)


def evaluate(
    encoder: tf.keras.Model,
    head: tf.keras.Model,
    dataset: Any,
    reference_classifier: tf.keras.Model,
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
      w1_steps: train a post-hoc critic for this many steps and report `w1` (0: skip).
      preset: network preset of the post-hoc critic (needed when w1_steps > 0).

    Returns:
      mse (per pixel, [0, 1] scale), psnr (dB, mean over images), ce_nats, accuracy, rate_bits
      (d log2 L), num_images, and w1 when requested.
    """
    if w1_steps < 0:
        raise ValueError(f"evaluate: w1_steps must be >= 0, got {w1_steps}")
    if w1_steps > 0 and preset is None:
        raise ValueError("evaluate: w1_steps > 0 needs the critic preset")
    images, labels = _arrays(dataset)
    _, x_hat = reconstruct(encoder, head, images, num_levels, seed=seed, batch_size=batch_size)
    logits = reference_classifier.predict(x_hat, batch_size=batch_size, verbose=0)
    latent_dim = int(encoder.output_shape[-1])
    metrics = {
        "mse": float(losses.distortion(images, x_hat)),
        "psnr": float(losses.psnr(images, x_hat)),
        "ce_nats": float(losses.cross_entropy(labels, logits)),
        "accuracy": float(losses.accuracy(labels, logits)),
        "rate_bits": latent_dim * math.log2(num_levels),
        "num_images": len(images),
        "seed": int(seed),
    }
    if w1_steps > 0:
        metrics["w1"] = w1_estimate(images, x_hat, preset, steps=w1_steps, seed=seed)
    return metrics
