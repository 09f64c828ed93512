"""A stride-1 transposed convolution to few channels, computed as kernel taps plus shifted sums.

oneDNN (TensorFlow's CPU backend) runs `Conv2DBackpropInput`, the op behind
`keras.layers.Conv2DTranspose`, at a small fraction of the machine's FLOP rate when the output
has only one or a few channels, as in the last layer of the MNIST and SVHN decoders
(ConvTranspose2d(128 -> 1 or 3, k=4, s=1); reference-code digest §1.1). This layer computes the
same function as a Keras `Conv2DTranspose` with stride 1 and 'valid' padding:

    y[b, p + i, q + j, o] = bias[o] + sum_c x[b, p, q, c] * kernel[i, j, o, c],

as one matrix product onto the k*k*filters kernel taps, z = x @ kernel (a dense GEMM), followed
by a sum of the k*k taps each shifted into place (col2im with zero padding). Its gradient uses the
same ops TensorFlow uses for a transposed convolution (a Conv2D for the input, a
Conv2DBackpropFilter for the kernel). Weights, shapes and configuration are those of
`Conv2DTranspose`, so saved weights load unchanged; every op is a stock TensorFlow op.
"""

from __future__ import annotations

import tensorflow as tf

from rdc_keras.tfkeras import keras

__all__ = ["MAX_TAPS_FILTERS", "TapsConv2DTranspose", "transpose_conv_taps"]

# The taps path is used for at most this many output channels (beyond, oneDNN is efficient).
MAX_TAPS_FILTERS = 4


@tf.custom_gradient
def transpose_conv_taps(inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """Stride-1 'valid' transposed convolution of NHWC `inputs` with a (k, k, out, in) kernel.

    Equals `tf.nn.conv2d_transpose(inputs, kernel, output_shape, 1, "VALID")` up to the order
    of floating-point additions.
    """
    kernel_h, kernel_w, filters, channels = kernel.shape
    height, width = inputs.shape[1], inputs.shape[2]
    taps = tf.reshape(kernel, [kernel_h * kernel_w * filters, channels])
    projected = tf.matmul(tf.reshape(inputs, [-1, channels]), taps, transpose_b=True)
    projected = tf.reshape(projected, [-1, height, width, kernel_h, kernel_w, filters])
    shifted = [
        tf.pad(
            projected[:, :, :, i, j, :],
            [[0, 0], [i, kernel_h - 1 - i], [j, kernel_w - 1 - j], [0, 0]],
        )
        for i in range(kernel_h)
        for j in range(kernel_w)
    ]
    outputs = tf.add_n(shifted)

    def grad(upstream: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        # As TensorFlow differentiates Conv2DBackpropInput (the op of conv2d_transpose).
        d_inputs = tf.nn.conv2d(upstream, kernel, strides=1, padding="VALID")
        d_kernel = tf.raw_ops.Conv2DBackpropFilter(
            input=upstream,
            filter_sizes=tf.shape(kernel),
            out_backprop=inputs,
            strides=[1, 1, 1, 1],
            padding="VALID",
        )
        return d_inputs, d_kernel

    return outputs, grad


@keras.utils.register_keras_serializable(package="rdc_keras")
class TapsConv2DTranspose(keras.layers.Conv2DTranspose):
    """`Conv2DTranspose` that uses `transpose_conv_taps` when it applies, else Keras' own call.

    It applies with stride 1, 'valid' padding, no dilation, channels_last, a known input size
    and at most `MAX_TAPS_FILTERS` output channels; the layer is otherwise a plain
    `keras.layers.Conv2DTranspose` (same arguments, weights and config).
    """

    def _uses_taps(self, inputs: tf.Tensor) -> bool:
        return (
            tuple(self.strides) == (1, 1)
            and self.padding == "valid"
            and tuple(self.dilation_rate) == (1, 1)
            and self.data_format == "channels_last"
            and self.output_padding is None
            and self.filters <= MAX_TAPS_FILTERS
            and inputs.shape.rank == 4
            and inputs.shape[1] is not None
            and inputs.shape[2] is not None
        )

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        if not self._uses_taps(inputs):
            return super().call(inputs)
        outputs = transpose_conv_taps(inputs, tf.cast(self.kernel, inputs.dtype))
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, outputs.dtype))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs
