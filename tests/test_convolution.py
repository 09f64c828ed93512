"""Tests for rdc_keras.layers.convolution: the taps transposed convolution equals Conv2DTranspose.

References are TensorFlow's own `tf.nn.conv2d_transpose` / `keras.layers.Conv2DTranspose`
and a direct numpy sum over kernel taps.
"""

import numpy as np
import pytest
import tensorflow as tf

from rdc_keras import networks
from rdc_keras.layers import TapsConv2DTranspose
from rdc_keras.layers.convolution import transpose_conv_taps
from rdc_keras.tfkeras import keras


def _numpy_transpose_conv(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """y[b, p + i, q + j, o] = sum_c x[b, p, q, c] kernel[i, j, o, c], one tap at a time."""
    kh, kw, filters, _ = kernel.shape
    batch, height, width, _ = x.shape
    y = np.zeros((batch, height + kh - 1, width + kw - 1, filters))
    for i in range(kh):
        for j in range(kw):
            y[:, i : i + height, j : j + width, :] += x @ kernel[i, j].T
    return y


@pytest.mark.parametrize(("filters", "kernel_size", "size"), [(1, 4, 5), (3, 4, 6), (2, 3, 4)])
def test_forward_matches_numpy_and_tensorflow(filters, kernel_size, size):
    rng = np.random.default_rng(filters)
    x = rng.normal(size=(2, size, size, 7)).astype(np.float32)
    kernel = rng.normal(size=(kernel_size, kernel_size, filters, 7)).astype(np.float32)
    y = transpose_conv_taps(tf.constant(x), tf.constant(kernel)).numpy()
    np.testing.assert_allclose(y, _numpy_transpose_conv(x, kernel), rtol=1e-5, atol=1e-5)
    out = size + kernel_size - 1
    reference = tf.nn.conv2d_transpose(x, kernel, [2, out, out, filters], 1, "VALID").numpy()
    np.testing.assert_allclose(y, reference, rtol=1e-5, atol=1e-5)


def _pair(filters: int, input_shape, **kwargs):
    keras.utils.set_random_seed(0)
    stock = keras.layers.Conv2DTranspose(filters, 4, **kwargs)
    stock.build(input_shape)
    taps = TapsConv2DTranspose(filters, 4, **kwargs)
    taps.build(input_shape)
    taps.set_weights([w + 0.1 for w in stock.get_weights()])  # a non-zero bias too
    stock.set_weights(taps.get_weights())
    return stock, taps


def _gradients(layer, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.sin(layer(x)))
    return tape.gradient(loss, [x, *layer.trainable_variables])


@pytest.mark.parametrize("filters", [1, 3])
def test_layer_and_gradients_match_conv2d_transpose(filters):
    x = tf.random.stateless_uniform([3, 9, 9, 16], seed=(1, 2))
    stock, taps = _pair(filters, x.shape, activation="sigmoid")
    assert taps._uses_taps(x)
    np.testing.assert_allclose(taps(x), stock(x), rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(_gradients(taps, x), _gradients(stock, x), strict=True):
        scale = float(tf.reduce_max(tf.abs(theirs)))
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5 * max(scale, 1.0))


@pytest.mark.parametrize(
    "kwargs, filters",
    [({"strides": 2}, 1), ({"padding": "same"}, 1), ({}, 8), ({"dilation_rate": 2}, 1)],
)
def test_other_configurations_use_the_keras_op(kwargs, filters):
    x = tf.random.stateless_uniform([2, 6, 6, 4], seed=(3, 4))
    stock, taps = _pair(filters, x.shape, **kwargs)
    assert not taps._uses_taps(x)
    np.testing.assert_allclose(taps(x), stock(x), rtol=1e-6, atol=1e-6)


def test_graph_holds_no_conv2d_backprop_input_and_config_round_trips():
    x = tf.random.stateless_uniform([2, 6, 6, 4], seed=(5, 6))
    _, taps = _pair(1, x.shape)
    graph = tf.function(taps).get_concrete_function(tf.TensorSpec([None, 6, 6, 4])).graph
    ops = {op.type for op in graph.get_operations()}
    assert "Conv2DBackpropInput" not in ops and "MatMul" in ops
    again = TapsConv2DTranspose.from_config(taps.get_config())
    assert again.get_config() == taps.get_config()
    assert keras.layers.deserialize(keras.layers.serialize(taps)).__class__ is (TapsConv2DTranspose)


def test_mixed_bfloat16_keeps_the_compute_dtype():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        layer = TapsConv2DTranspose(1, 4)
        y = layer(tf.random.stateless_uniform([2, 5, 5, 8], seed=(7, 8)))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert y.dtype == tf.bfloat16 and layer.kernel.dtype == tf.float32


@pytest.mark.parametrize("preset", ["mnist", "svhn"])
def test_decoder_output_layers_take_the_taps_path(preset):
    decoder = networks.decoder(preset, 3)
    last = decoder.get_layer("deconv_out")
    assert isinstance(last, TapsConv2DTranspose)
    assert last._uses_taps(tf.zeros([1, *last.input_shape[1:]]))
