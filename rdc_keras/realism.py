"""Realism judges of the evaluation protocol: held-out post-hoc W1, the judge's Fréchet distance.

- `w1_estimate`: a fresh WGAN-GP critic trained post hoc on one half of the test images (originals
  vs reconstructions, `judge_split`) and scored on the other, held out, with one budget and seed for
  every model, so a model cannot win by the critic overfitting the images it is scored on.
- `frechet_distance` of `judge_features`: the Fréchet distance in the reference classifier's
  feature space (the input of its "logits_dense" layer), deterministic and training-free. It is
  not the Inception FID: values compare only under one reference classifier.

`rdc_keras.evaluation` applies both to every model; this module only measures.
"""

from __future__ import annotations

import contextlib
import io
import numbers
from collections.abc import Callable

import numpy as np
import scipy.linalg
import tensorflow as tf

from rdc_keras import losses, networks
from rdc_keras.tfkeras import keras

__all__ = ["check_images", "frechet_distance", "judge_features", "judge_split", "w1_estimate"]

# The reference classifier's output layer: its input is the judge's feature vector.
FEATURE_LAYER = "logits_dense"


def check_images(images: np.ndarray) -> None:
    """Raises ValueError unless `images` is a non-empty [N, H, W, C] batch."""
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty [N, H, W, C] batch, got shape {images.shape}")


def judge_split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The held-out split of the W1 judge: (train_idx, score_idx), sorted int64 index arrays.

    A fixed permutation of range(n) from `np.random.default_rng(seed)`: its first n // 2 entries
    train the critic, the other n - n // 2 score it. Disjoint, together all of range(n); the same
    indices split originals and reconstructions, so image i and its reconstruction fall in the same
    half.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2:
        raise ValueError(f"the held-out W1 judge needs at least 2 images, got {n!r}")
    permutation = np.random.default_rng(seed).permutation(int(n))
    half = int(n) // 2
    return np.sort(permutation[:half]), np.sort(permutation[half:])


def _critic_step(
    critic: keras.Model, optimizer: keras.optimizers.Optimizer, gp_weight: float
) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], None]:
    """One WGAN-GP update of `critic` on (real x, fake x_hat, epsilon); the only training path."""

    @tf.function
    def step(x: tf.Tensor, x_hat: tf.Tensor, epsilon: tf.Tensor) -> None:
        with tf.GradientTape() as tape:
            gap = tf.reduce_mean(critic(x_hat, training=True)) - tf.reduce_mean(
                critic(x, training=True)
            )
            loss = gap + gp_weight * losses.gradient_penalty(critic, x, x_hat, epsilon)
        grads = tape.gradient(loss, critic.trainable_variables)
        optimizer.apply_gradients(zip(grads, critic.trainable_variables))

    return step


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
    """Held-out Wasserstein-1 estimate E h(x) - E h(x_hat) by a fresh WGAN-GP critic h.

    `judge_split(N, seed)` splits the N image pairs (real[i], fake[i]) in two halves: the critic
    trains `steps` steps only on minibatches of the training half (real and fake drawn
    independently), and the estimate is the critic's mean score gap on the scoring half, which the
    critic never saw. Every model gets the same critic architecture (`networks.critic(preset)`),
    Adam(learning_rate, 0.5, 0.9), gradient-penalty weight, budget and seed, so the numbers
    compare across models.

    Raises:
      ValueError: real and fake of different shapes, fewer than 2 images, steps or batch_size < 1.
    """
    real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
    check_images(real)
    if fake.shape != real.shape:
        raise ValueError(f"w1_estimate: real {real.shape} and fake {fake.shape} images differ")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"w1_estimate: steps={steps} and batch_size={batch_size} must be >= 1")
    train_idx, score_idx = judge_split(len(real), seed)
    real_train, fake_train = real[train_idx], fake[train_idx]
    keras.utils.set_random_seed(seed)
    critic = networks.critic(preset)
    optimizer = keras.optimizers.Adam(learning_rate, beta_1=0.5, beta_2=0.9)
    step = _critic_step(critic, optimizer, gp_weight)
    rng = np.random.default_rng([seed, 1])  # the minibatch stream, apart from the split's

    n = len(train_idx)
    for _ in range(steps):
        idx = rng.integers(0, n, batch_size)
        jdx = rng.integers(0, n, batch_size)
        epsilon = rng.random(batch_size, dtype=np.float32)
        step(tf.constant(real_train[idx]), tf.constant(fake_train[jdx]), tf.constant(epsilon))
    score_real = np.mean(critic.predict(real[score_idx], batch_size=1000, verbose=0))
    score_fake = np.mean(critic.predict(fake[score_idx], batch_size=1000, verbose=0))
    return float(score_real - score_fake)


def judge_features(
    classifier: keras.Model, images: np.ndarray, batch_size: int = 500
) -> np.ndarray:
    """The reference classifier's penultimate-layer features: float64 [N, F].

    The input of the classifier's "logits_dense" layer (every preset's classifier ends with it):
    F = 32 for digits, 100 for mnist, 64 for svhn.
    """
    images = np.asarray(images, np.float32)
    check_images(images)
    try:
        layer = classifier.get_layer(FEATURE_LAYER)
    except ValueError:
        raise ValueError(
            f"judge_features: the reference classifier has no layer named {FEATURE_LAYER!r}"
        ) from None
    features = keras.Model(classifier.inputs, layer.input, name="judge_features")
    out = features.predict(images, batch_size=batch_size, verbose=0)
    return np.asarray(out).astype(np.float64).reshape(len(images), -1)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N_a, F] and [N_b, F].

    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}), means and covariances (ddof = 1) in
    float64, the matrix square root by `scipy.linalg.sqrtm` (its real part: the imaginary part
    and tiny negative values are rounding). Applied to `judge_features`, it is the Fréchet
    distance in the reference classifier's feature space (not the Inception FID). Symmetric, 0
    for identical sets, never negative (clipped at 0).

    Raises:
      ValueError: not two 2-D arrays with the same F, fewer than 2 rows, or non-finite values.
    """
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"frechet_distance: need two [N, F] arrays with one F, got {a.shape} and {b.shape}"
        )
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"frechet_distance: need at least 2 rows each, got {len(a)} and {len(b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("frechet_distance: the features hold NaN or infinite values")
    mean_gap = a.mean(axis=0) - b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False, ddof=1))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False, ddof=1))
    trace_sqrt = _trace_sqrt_product(cov_a, cov_b)
    distance = mean_gap @ mean_gap + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt
    return float(max(distance, 0.0))


def _trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """Tr((S_a S_b)^{1/2}); a failed square root (singular product) retries with S + 1e-6 I."""
    for offset in (0.0, 1e-6):
        shift = offset * np.eye(len(cov_a))
        with contextlib.redirect_stdout(io.StringIO()):  # sqrtm prints when it fails
            root = scipy.linalg.sqrtm((cov_a + shift) @ (cov_b + shift))
        if np.isfinite(root).all():
            return float(np.trace(np.real(root)))
    raise ValueError("frechet_distance: no matrix square root of the covariance product")
