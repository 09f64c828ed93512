"""Tests for rdc_keras.folding: BatchNorm folded into the preceding Dense/conv layer.

Golden values are worked by hand (a 1x1 Dense); the package's networks are checked against
their unfolded selves with randomised BatchNorm statistics (untrained ones are the identity).
"""

import numpy as np
import pytest
import tensorflow as tf

from rdc_keras import networks
from rdc_keras.folding import fold_batch_norm
from rdc_keras.tfkeras import keras


def _randomise_batch_norm(model: keras.Model, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 0.3, shape).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.2, 2.0, shape).astype(np.float32))
            layer.gamma.assign(rng.uniform(0.5, 1.5, shape).astype(np.float32))
            layer.beta.assign(rng.normal(0, 0.1, shape).astype(np.float32))


def _count_batch_norms(model: keras.Model) -> int:
    return sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


def test_dense_golden_values():
    inputs = keras.Input(shape=(1,))
    dense = keras.layers.Dense(1, name="dense")
    norm = keras.layers.BatchNormalization(epsilon=1.0, name="bn")
    model = keras.Model(inputs, norm(dense(inputs)))
    dense.set_weights([np.array([[2.0]]), np.array([1.0])])
    # gamma 3, beta 0.5, mean 1, variance 3: s = 3 / sqrt(3 + 1) = 1.5.
    norm.set_weights([np.array([3.0]), np.array([0.5]), np.array([1.0]), np.array([3.0])])
    folded = fold_batch_norm(model)
    kernel, bias = folded.get_layer("dense").get_weights()
    np.testing.assert_allclose(kernel, [[3.0]])  # 2 * 1.5
    np.testing.assert_allclose(bias, [0.5])  # (1 - 1) * 1.5 + 0.5
    x = np.array([[0.0], [1.0], [-2.0]], np.float32)
    np.testing.assert_allclose(folded(x).numpy(), [[0.5], [3.5], [-5.5]], rtol=1e-6)
    np.testing.assert_allclose(model(x, training=False).numpy(), folded(x).numpy(), rtol=1e-6)


@pytest.mark.parametrize("preset", ["mnist", "svhn", "digits"])
@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_networks_fold_to_the_same_function(preset, kind):
    keras.utils.set_random_seed(1)
    model = getattr(networks, kind)(preset, 3)
    _randomise_batch_norm(model)
    before = [w.copy() for w in model.get_weights()]
    folded = fold_batch_norm(model)
    x = tf.random.stateless_uniform([16, *model.input_shape[1:]], (1, 2), -1.0, 1.0)
    np.testing.assert_allclose(
        folded(x, training=False).numpy(), model(x, training=False).numpy(), atol=2e-6
    )
    assert _count_batch_norms(folded) == 0
    assert len(folded.layers) == len(model.layers) - _count_batch_norms(model)
    for old, new in zip(before, model.get_weights()):  # the original is left as it was
        np.testing.assert_array_equal(old, new)


def test_transposed_conv_scales_its_output_channels():
    inputs = keras.Input(shape=(3, 3, 2))
    conv = keras.layers.Conv2DTranspose(3, 2, strides=2, use_bias=False, name="deconv")
    norm = keras.layers.BatchNormalization(name="bn")
    model = keras.Model(inputs, norm(conv(inputs)))
    _randomise_batch_norm(model, seed=3)
    folded = fold_batch_norm(model)
    assert folded.get_layer("deconv").use_bias  # a bias is added for the BatchNorm's shift
    x = tf.random.stateless_normal([4, 3, 3, 2], (3, 4))
    np.testing.assert_allclose(
        folded(x).numpy(), model(x, training=False).numpy(), rtol=1e-5, atol=1e-6
    )


def test_batch_norm_after_a_non_linear_layer_is_kept():
    inputs = keras.Input(shape=(4,))
    x = keras.layers.Dense(4)(inputs)
    x = keras.layers.LeakyReLU(0.2)(x)
    model = keras.Model(inputs, keras.layers.BatchNormalization()(x))
    _randomise_batch_norm(model, seed=5)
    folded = fold_batch_norm(model)
    assert _count_batch_norms(folded) == 1
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(folded(x).numpy(), model(x, training=False).numpy(), rtol=1e-6)


def test_a_model_that_is_not_a_chain_is_refused():
    inputs = keras.Input(shape=(4,))
    hidden = keras.layers.Dense(4)(inputs)
    model = keras.Model(inputs, keras.layers.Add()([inputs, hidden]), name="residual")
    with pytest.raises(ValueError, match="residual is not a chain of layers"):
        fold_batch_norm(model)
