"""Tests for rdc_keras.losses against independent numpy / closed-form computations."""

import math

import numpy as np
import pytest
import tensorflow as tf

from rdc_keras import losses, networks
from rdc_keras.tfkeras import keras


@pytest.fixture()
def images():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3, 4, 4, 2)).astype(np.float32)
    x_hat = np.clip(x + rng.normal(scale=0.1, size=x.shape), 0, 1).astype(np.float32)
    return x, x_hat


@pytest.fixture()
def classification():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(6, 10)).astype(np.float32)
    labels = rng.integers(0, 10, size=6)
    return labels, logits


def _np_log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


# ------------------------------------------------------------------------------------------------
# Distortion and PSNR


def test_distortion_matches_numpy(images):
    x, x_hat = images
    per_example = ((x.astype(np.float64) - x_hat) ** 2).reshape(3, -1).mean(axis=1)
    np.testing.assert_allclose(losses.distortion(x, x_hat).numpy(), per_example.mean(), rtol=1e-6)
    np.testing.assert_allclose(
        losses.distortion(x, x_hat, reduction="none").numpy(), per_example, rtol=1e-6
    )
    np.testing.assert_allclose(
        losses.distortion(x, x_hat, reduction="sum").numpy(), per_example.sum(), rtol=1e-6
    )


def test_distortion_per_example_scaled_by_global_batch(images):
    x, x_hat = images
    per_example = losses.distortion(x, x_hat, reduction="none")
    scaled = tf.nn.compute_average_loss(per_example, global_batch_size=3)
    np.testing.assert_allclose(scaled.numpy(), losses.distortion(x, x_hat).numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float16])
def test_distortion_is_float32_for_low_precision_inputs(images, dtype):
    x, x_hat = (tf.cast(a, dtype) for a in images)
    value = losses.distortion(x, x_hat)
    assert value.dtype == tf.float32
    expected = np.mean((tf.cast(x, tf.float64).numpy() - tf.cast(x_hat, tf.float64).numpy()) ** 2)
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5)


def test_psnr_matches_numpy_and_tf_image(images):
    x, x_hat = images
    mse = ((x.astype(np.float64) - x_hat) ** 2).reshape(3, -1).mean(axis=1)
    expected = 10 * np.log10(1.0 / mse)
    got = losses.psnr(x, x_hat, reduction="none").numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(got, tf.image.psnr(x, x_hat, max_val=1.0).numpy(), rtol=1e-5)
    np.testing.assert_allclose(losses.psnr(x, x_hat).numpy(), expected.mean(), rtol=1e-5)


def test_psnr_max_val_scales(images):
    x, x_hat = images
    np.testing.assert_allclose(
        losses.psnr(255 * x, 255 * x_hat, max_val=255.0).numpy(),
        losses.psnr(x, x_hat).numpy(),
        rtol=1e-5,
    )


def test_psnr_of_perfect_reconstruction_is_inf(images):
    x, _ = images
    assert math.isinf(float(losses.psnr(x, x)))


# ------------------------------------------------------------------------------------------------
# Cross-entropy and accuracy


def test_cross_entropy_in_nats_matches_numpy(classification):
    labels, logits = classification
    per_example = -_np_log_softmax(logits)[np.arange(6), labels]
    np.testing.assert_allclose(
        losses.cross_entropy(labels, logits, reduction="none").numpy(), per_example, rtol=1e-5
    )
    np.testing.assert_allclose(
        losses.cross_entropy(labels, logits).numpy(), per_example.mean(), rtol=1e-5
    )


def test_cross_entropy_of_uniform_logits_is_ln_10():
    value = losses.cross_entropy(np.array([0, 3, 9]), np.zeros((3, 10), np.float32))
    np.testing.assert_allclose(value.numpy(), math.log(10), rtol=1e-6)  # nats, not bits


def test_cross_entropy_stable_and_float32(classification):
    labels, logits = classification
    big = tf.cast(1000.0 * logits, tf.bfloat16)
    value = losses.cross_entropy(labels.reshape(-1, 1), big)
    assert value.dtype == tf.float32 and np.isfinite(value.numpy())


def test_accuracy_matches_numpy(classification):
    labels, logits = classification
    correct = (logits.argmax(axis=1) == labels).astype(np.float32)
    labels = labels.copy()
    labels[0] = logits[0].argmax()  # at least one hit
    labels[1] = (logits[1].argmax() + 1) % 10  # at least one miss
    correct[0], correct[1] = 1.0, 0.0
    np.testing.assert_array_equal(
        losses.accuracy(labels, logits, reduction="none").numpy(), correct
    )
    np.testing.assert_allclose(losses.accuracy(labels, logits).numpy(), correct.mean())


# ------------------------------------------------------------------------------------------------
# WGAN critic and generator terms


def test_critic_and_generator_losses_match_numpy():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(5, 1)).astype(np.float32)
    fake = rng.normal(size=(5, 1)).astype(np.float32)
    np.testing.assert_allclose(
        losses.critic_loss(real, fake).numpy(), fake.mean() - real.mean(), rtol=1e-6
    )
    np.testing.assert_allclose(
        losses.critic_loss(real, fake, reduction="none").numpy(), (fake - real).ravel(), rtol=1e-6
    )
    np.testing.assert_allclose(
        losses.generator_adversarial_loss(fake).numpy(), -fake.mean(), rtol=1e-6
    )
    # Different batch sizes are fine for the mean.
    np.testing.assert_allclose(
        losses.critic_loss(real[:3], fake).numpy(), fake.mean() - real[:3].mean(), rtol=1e-6
    )
    assert losses.critic_loss(tf.cast(real, tf.bfloat16), fake).dtype == tf.float32


# ------------------------------------------------------------------------------------------------
# Gradient penalty


def _linear_critic(w: np.ndarray, shape: tuple[int, ...]) -> keras.Model:
    inputs = keras.Input(shape)
    flat = keras.layers.Flatten()(inputs)
    scores = keras.layers.Dense(1)(flat)
    model = keras.Model(inputs, scores)
    model.layers[-1].set_weights([w.reshape(-1, 1), np.array([0.3], np.float32)])
    return model


class _Quadratic(keras.layers.Layer):
    """h(x) = a/2 · ‖x‖², so ∇h(x) = a·x and ‖∇h‖ = a‖x‖ (a > 0)."""

    def build(self, input_shape):
        self.a = self.add_weight(name="a", shape=(), initializer=keras.initializers.Constant(0.7))

    def call(self, x):
        flat = tf.reshape(x, [tf.shape(x)[0], -1])
        return 0.5 * self.a * tf.reduce_sum(tf.square(flat), axis=1, keepdims=True)


def _quadratic_critic(shape):
    inputs = keras.Input(shape)
    return keras.Model(inputs, _Quadratic()(inputs))


def test_gp_of_linear_critic_is_closed_form(images):
    x, x_hat = images
    w = np.random.default_rng(3).normal(scale=0.05, size=32).astype(np.float32)
    critic = _linear_critic(w, x.shape[1:])
    norm = np.linalg.norm(w.astype(np.float64))
    eps = np.array([0.1, 0.5, 0.9], np.float32)
    per_example = losses.gradient_penalty(critic, x, x_hat, eps, reduction="none").numpy()
    np.testing.assert_allclose(per_example, [(norm - 1) ** 2] * 3, rtol=1e-5)
    value = losses.gradient_penalty(critic, x, x_hat)  # random ε: same value for a linear critic
    np.testing.assert_allclose(value.numpy(), (norm - 1) ** 2, rtol=1e-5)


def test_gp_gradient_wrt_linear_critic_weights_is_closed_form(images):
    x, x_hat = images
    w = np.random.default_rng(4).normal(scale=0.3, size=32).astype(np.float32)
    critic = _linear_critic(w, x.shape[1:])
    kernel = critic.layers[-1].kernel
    with tf.GradientTape() as tape:
        penalty = losses.gradient_penalty(critic, x, x_hat)
    grad = tape.gradient(penalty, kernel).numpy().ravel()
    norm = np.linalg.norm(w.astype(np.float64))
    np.testing.assert_allclose(grad, 2 * (norm - 1) * w / norm, rtol=1e-4, atol=1e-7)


def test_gp_interpolates_with_epsilon_on_real(images):
    x, x_hat = images
    critic = _quadratic_critic(x.shape[1:])
    a = 0.7
    eps = np.array([0.0, 0.25, 1.0], np.float32)
    tilde = eps[:, None, None, None] * x.astype(np.float64) + (1 - eps[:, None, None, None]) * x_hat
    norms = a * np.linalg.norm(tilde.reshape(3, -1), axis=1)
    expected = (norms - 1) ** 2
    for eps_in in (eps, eps.reshape(3, 1, 1, 1)):
        got = losses.gradient_penalty(critic, x, x_hat, eps_in, reduction="none").numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(
        losses.gradient_penalty(critic, x, x_hat, eps, reduction="sum").numpy(),
        expected.sum(),
        rtol=1e-5,
    )


def test_gp_double_backprop_matches_closed_form(images):
    x, x_hat = images
    critic = _quadratic_critic(x.shape[1:])
    eps = np.array([0.2, 0.6, 0.8], np.float32)
    tilde = eps[:, None, None, None] * x.astype(np.float64) + (1 - eps[:, None, None, None]) * x_hat
    n = np.linalg.norm(tilde.reshape(3, -1), axis=1)
    a = 0.7
    with tf.GradientTape() as tape:
        penalty = losses.gradient_penalty(critic, x, x_hat, eps)
    grad = tape.gradient(penalty, critic.trainable_weights[0])
    np.testing.assert_allclose(grad.numpy(), np.mean(2 * (a * n - 1) * n), rtol=1e-5)


def test_gp_matches_per_example_input_gradients():
    keras.utils.set_random_seed(5)
    critic = networks.critic("digits")
    x = tf.random.uniform((4, 8, 8, 1))
    x_hat = tf.random.uniform((4, 8, 8, 1))
    eps = tf.constant([0.3, 0.1, 0.7, 0.5])
    got = losses.gradient_penalty(critic, x, x_hat, eps, reduction="none").numpy()
    expected = []
    for i in range(4):  # one example at a time: no reliance on the summed-scores trick
        tilde = eps[i] * x[i : i + 1] + (1 - eps[i]) * x_hat[i : i + 1]
        with tf.GradientTape() as tape:
            tape.watch(tilde)
            score = critic(tilde)
        g = tape.gradient(score, tilde).numpy().astype(np.float64)
        expected.append((np.sqrt((g**2).sum()) - 1) ** 2)
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_gp_gradient_wrt_conv_critic_is_finite_and_nonzero():
    keras.utils.set_random_seed(6)
    critic = networks.critic("mnist")
    x = tf.random.uniform((2, 28, 28, 1))
    x_hat = tf.random.uniform((2, 28, 28, 1))
    with tf.GradientTape() as tape:
        penalty = losses.gradient_penalty(critic, x, x_hat)
    grads = tape.gradient(penalty, critic.trainable_weights)
    kernels = [g for g, v in zip(grads, critic.trainable_weights) if "kernel" in v.name]
    assert all(g is not None for g in kernels) and len(kernels) == 4
    assert all(np.all(np.isfinite(g.numpy())) for g in kernels)
    assert all(np.abs(g.numpy()).max() > 0 for g in kernels)


def test_gp_in_tf_function_equals_eager(images):
    x, x_hat = images
    critic = _quadratic_critic(x.shape[1:])
    eps = np.array([0.2, 0.6, 0.8], np.float32)
    eager = losses.gradient_penalty(critic, x, x_hat, eps)
    graph = tf.function(lambda: losses.gradient_penalty(critic, x, x_hat, eps))()
    np.testing.assert_allclose(graph.numpy(), eager.numpy(), rtol=1e-6)


def test_gp_is_float32_under_mixed_precision():
    keras.utils.set_random_seed(7)
    reference = networks.critic("digits")
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        critic = networks.critic("digits")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    critic.set_weights(reference.get_weights())
    x = tf.random.uniform((4, 8, 8, 1))
    x_hat = tf.random.uniform((4, 8, 8, 1))
    eps = tf.constant([0.3, 0.1, 0.7, 0.5])
    low = losses.gradient_penalty(critic, tf.cast(x, tf.bfloat16), tf.cast(x_hat, tf.bfloat16), eps)
    full = losses.gradient_penalty(reference, x, x_hat, eps)
    assert low.dtype == tf.float32
    np.testing.assert_allclose(low.numpy(), full.numpy(), rtol=0.05)


# ------------------------------------------------------------------------------------------------
# Bad input


def test_bad_reduction(images, classification):
    x, x_hat = images
    labels, logits = classification
    with pytest.raises(ValueError, match="reduction"):
        losses.distortion(x, x_hat, reduction="avg")
    with pytest.raises(ValueError, match="reduction"):
        losses.cross_entropy(labels, logits, reduction="batch")
    with pytest.raises(ValueError, match="reduction"):
        losses.gradient_penalty(_quadratic_critic(x.shape[1:]), x, x_hat, reduction="")


def test_shape_mismatch(images):
    x, x_hat = images
    with pytest.raises(ValueError, match="same shape"):
        losses.distortion(x, x_hat[:, :2])
    with pytest.raises(ValueError, match="same shape"):
        losses.critic_loss(np.zeros(3), np.zeros(4), reduction="none")
    with pytest.raises(ValueError, match="same shape"):
        losses.gradient_penalty(_quadratic_critic(x.shape[1:]), x, x_hat[:2])


def test_bad_labels_logits_and_max_val(images, classification):
    x, x_hat = images
    labels, logits = classification
    with pytest.raises(ValueError, match="labels"):
        losses.cross_entropy(labels.astype(np.float32), logits)
    with pytest.raises(ValueError, match="logits"):
        losses.accuracy(labels, logits[:, :, None])
    with pytest.raises(ValueError, match="max_val"):
        losses.psnr(x, x_hat, max_val=0.0)
