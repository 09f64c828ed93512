"""RDC losses and metrics: distortion (MSE), PSNR, cross-entropy (nats), accuracy, WGAN-GP terms.

Generator loss (DESIGN.md, paper eq. for L = λd·D + λc·CE + λp·W1):
``lambda_d * distortion + lambda_c * cross_entropy + lambda_p * generator_adversarial_loss``.
Critic loss: ``critic_loss + gp_weight * gradient_penalty`` (Gulrajani et al. 2017; digest §3.1).

Every function computes in float32, whatever the inputs' dtype (bfloat16/float16 under mixed
precision), and takes ``reduction``: ``"mean"`` (default, a scalar), ``"sum"``, or ``"none"``
(one value per example). Under ``tf.distribute`` use ``"none"`` and
``tf.nn.compute_average_loss(per_example, global_batch_size=...)`` so replicas average correctly.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

__all__ = [
    "GRADIENT_PENALTY_SCOPE",
    "REDUCTIONS",
    "accuracy",
    "critic_loss",
    "cross_entropy",
    "distortion",
    "generator_adversarial_loss",
    "gradient_penalty",
    "psnr",
]

REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")
"""Accepted values of every ``reduction`` argument."""

_GP_NORM_EPSILON = 1e-12  # keeps d‖g‖/dg finite at g = 0 (tf.norm's gradient there is NaN)

GRADIENT_PENALTY_SCOPE = "gradient_penalty"
"""Name scope of the penalty's ops (interpolate, critic forward, input gradient), for profiles."""


def _reduce(per_example: tf.Tensor, reduction: str) -> tf.Tensor:
    if reduction == "mean":
        return tf.reduce_mean(per_example)
    if reduction == "sum":
        return tf.reduce_sum(per_example)
    return per_example


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")


def _float32(x: tf.Tensor, name: str) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    if not (x.dtype.is_floating or x.dtype.is_integer):
        raise ValueError(f"{name} must be a real tensor, got dtype {x.dtype.name}")
    return tf.cast(x, tf.float32)


def _check_same_shape(a: tf.Tensor, b: tf.Tensor, names: str) -> None:
    if not a.shape.is_compatible_with(b.shape):
        raise ValueError(f"{names} must have the same shape, got {a.shape} and {b.shape}")


def _per_example_mse(x: tf.Tensor, x_hat: tf.Tensor) -> tf.Tensor:
    x = _float32(x, "x")
    x_hat = _float32(x_hat, "x_hat")
    _check_same_shape(x, x_hat, "x and x_hat")
    if x.shape.rank is not None and x.shape.rank < 2:
        raise ValueError(f"x must be batched with rank >= 2, got shape {x.shape}")
    squared = tf.math.squared_difference(x, x_hat)
    return tf.reduce_mean(tf.reshape(squared, [tf.shape(squared)[0], -1]), axis=1)


def distortion(x: tf.Tensor, x_hat: tf.Tensor, reduction: str = "mean") -> tf.Tensor:
    """Mean squared error per pixel and channel on [0, 1] images (``nn.MSELoss``; digest §1.5).

    Args:
      x: original images [N, ...].
      x_hat: reconstructions, same shape.
      reduction: "mean" over the batch (scalar), "sum", or "none" for the per-example MSE [N].
    """
    _check_reduction(reduction)
    return _reduce(_per_example_mse(x, x_hat), reduction)


def psnr(
    x: tf.Tensor, x_hat: tf.Tensor, max_val: float = 1.0, reduction: str = "mean"
) -> tf.Tensor:
    """Peak signal-to-noise ratio in dB, 10·log10(max_val² / MSE), per example then reduced.

    "mean" averages the per-image PSNR (the CompressAI convention), which differs from the PSNR of
    the mean MSE. A perfect reconstruction gives +inf, like ``tf.image.psnr``.
    """
    _check_reduction(reduction)
    if max_val <= 0:
        raise ValueError(f"max_val must be > 0, got {max_val}")
    mse = _per_example_mse(x, x_hat)
    ten_over_ln10 = 10.0 / tf.math.log(tf.constant(10.0, tf.float32))
    per_example = ten_over_ln10 * (
        2.0 * tf.math.log(tf.constant(max_val, tf.float32)) - tf.math.log(mse)
    )
    return _reduce(per_example, reduction)


def _labels_and_logits(labels: tf.Tensor, logits: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    labels = tf.convert_to_tensor(labels)
    if not labels.dtype.is_integer:
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype.name}")
    logits = _float32(logits, "logits")
    if logits.shape.rank is not None and logits.shape.rank != 2:
        raise ValueError(f"logits must have shape [N, num_classes], got {logits.shape}")
    labels = tf.reshape(tf.cast(labels, tf.int64), [-1])
    return labels, logits


def cross_entropy(labels: tf.Tensor, logits: tf.Tensor, reduction: str = "mean") -> tf.Tensor:
    """Sparse softmax cross-entropy from logits in **nats** (``nn.CrossEntropyLoss``).

    CE(s, c(x̂)) upper-bounds the conditional entropy H(S | X̂) of the classification constraint.

    Args:
      labels: integer classes [N] (or [N, 1]).
      logits: unnormalised scores [N, num_classes].
      reduction: "mean", "sum" or "none" ([N]).
    """
    _check_reduction(reduction)
    labels, logits = _labels_and_logits(labels, logits)
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return _reduce(per_example, reduction)


def accuracy(labels: tf.Tensor, logits: tf.Tensor, reduction: str = "mean") -> tf.Tensor:
    """Top-1 accuracy: the fraction of examples whose argmax logit is the label ("none": 0/1)."""
    _check_reduction(reduction)
    labels, logits = _labels_and_logits(labels, logits)
    correct = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int64), labels)
    return _reduce(tf.cast(correct, tf.float32), reduction)


def _scores(scores: tf.Tensor, name: str) -> tf.Tensor:
    return tf.reshape(_float32(scores, name), [-1])


def critic_loss(
    real_scores: tf.Tensor, fake_scores: tf.Tensor, reduction: str = "mean"
) -> tf.Tensor:
    """WGAN critic loss mean h(x̂) − mean h(x), the negative of the critic's W1 estimate.

    "none" returns fake_i − real_i per example (needs equal batch sizes), whose mean is the same.
    """
    _check_reduction(reduction)
    real = _scores(real_scores, "real_scores")
    fake = _scores(fake_scores, "fake_scores")
    if reduction == "mean":
        return tf.reduce_mean(fake) - tf.reduce_mean(real)
    _check_same_shape(real, fake, "real_scores and fake_scores")
    return _reduce(fake - real, reduction)


def generator_adversarial_loss(fake_scores: tf.Tensor, reduction: str = "mean") -> tf.Tensor:
    """Generator's perception term −mean h(x̂) (the W1 estimate minus a term constant in g)."""
    _check_reduction(reduction)
    return _reduce(-_scores(fake_scores, "fake_scores"), reduction)


def gradient_penalty(
    critic: Callable[..., tf.Tensor],
    real: tf.Tensor,
    fake: tf.Tensor,
    epsilon: tf.Tensor | None = None,
    reduction: str = "mean",
    training: bool = True,
) -> tf.Tensor:
    """WGAN-GP penalty (‖∇x̃ h(x̃)‖₂ − 1)² at x̃ = εx + (1−ε)x̂ (Gulrajani et al. 2017; digest §3.1).

    The input gradient is taken with an inner tape, so an outer tape differentiates the penalty
    with respect to the critic's weights (double backprop). Per-example gradients come from the
    gradient of the summed scores, which is exact because the critic has no batch coupling (no
    BatchNorm).

    Args:
      critic: model mapping images [N, ...] to scores [N, 1] or [N].
      real: real images x [N, ...] (treated as constants).
      fake: generated images x̂, same shape (treated as constants).
      epsilon: mixing weights of shape [N] or [N, 1, ..., 1] in [0, 1]; drawn U[0, 1) per example
        with ``tf.random.uniform`` when None.
      reduction: "mean" over the batch, "sum" or "none" ([N]).
      training: passed to the critic.
    """
    _check_reduction(reduction)
    real = tf.stop_gradient(_float32(real, "real"))
    fake = tf.stop_gradient(_float32(fake, "fake"))
    _check_same_shape(real, fake, "real and fake")
    rank = real.shape.rank
    if rank is None or rank < 2:
        raise ValueError(f"real must be batched with a known rank >= 2, got shape {real.shape}")
    batch = tf.shape(real)[0]
    mix_shape = tf.concat([[batch], tf.ones([rank - 1], tf.int32)], axis=0)
    if epsilon is None:
        epsilon = tf.random.uniform(mix_shape, dtype=tf.float32)
    else:
        epsilon = tf.reshape(_float32(epsilon, "epsilon"), mix_shape)
    with tf.name_scope(GRADIENT_PENALTY_SCOPE):
        interpolates = epsilon * real + (1.0 - epsilon) * fake
        with tf.GradientTape() as tape:
            tape.watch(interpolates)
            scores = tf.cast(critic(interpolates, training=training), tf.float32)
        gradients = tf.cast(tape.gradient(scores, interpolates), tf.float32)
        squared = tf.reduce_sum(tf.square(tf.reshape(gradients, [batch, -1])), axis=1)
        norms = tf.sqrt(squared + _GP_NORM_EPSILON)
        return _reduce(tf.square(norms - 1.0), reduction)
