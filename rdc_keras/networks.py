"""Network builders for the RDC presets: encoder f, decoder g, WGAN critic h and classifier c.

Presets (reference-code digest §1):

- ``mnist``: the paper's networks exactly (uRDP ``EncoderMNIST``/``DecoderMNIST``/
  ``DiscriminatorMNIST``; trainable parameters at d=3: 585,097 / 326,465 / 1,030,145) and the
  paper's reference CNN classifier (Conv10-k5, pool, Conv10-k5, pool, FC100, FC10: 19,880
  parameters).
- ``svhn``: the uRDP conv encoder (no BatchNorm), the decoder with ConvTranspose widths 64, 108,
  128, 3 (4→11→25→29→32) and the 3-channel critic; the reference classifier is ResNet-20 with
  1x1-conv projection shortcuts ("option B", 272,474 parameters, the [C] repo's SVHN classifier).
  ResNet-20 reaches about 95-96% test accuracy on SVHN in the literature; it is shape-tested only
  here.
- ``digits``: tiny networks for scikit-learn's 8x8x1 digits, for tests and CPU demos.

PyTorch conventions are reproduced where Keras differs: LeakyReLU slope 0.01, BatchNorm momentum
0.9 (PyTorch 0.1) and epsilon 1e-5, and PyTorch's default layer initialisation U(±1/√fan_in) for
kernels and biases (see :func:`torch_kernel_initializer`). Only stock Keras layers and initialisers
are used, plus one registered activation (:func:`portable_sigmoid`, the image output), so saved
models load with ``keras.models.load_model`` and no ``custom_objects``.

Outputs that feed losses (tanh latents, sigmoid images, critic scores, classifier logits) are
float32 ``Activation`` layers, so the models are safe under ``mixed_float16``/``mixed_bfloat16``.
Weights are random at build time: call ``keras.utils.set_random_seed`` first for reproducible
initial weights.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import tensorflow as tf

from rdc_keras.layers.convolution import TapsConv2DTranspose
from rdc_keras.tfkeras import keras

__all__ = [
    "BATCH_NORM_EPSILON",
    "BATCH_NORM_MOMENTUM",
    "LEAKY_RELU_SLOPE",
    "NUM_CLASSES",
    "PRESETS",
    "classifier",
    "critic",
    "decoder",
    "encoder",
    "image_shape",
    "torch_bias_initializer",
    "torch_kernel_initializer",
]

PRESETS: tuple[str, ...] = ("digits", "mnist", "svhn")
"""Names accepted by every builder in this module."""

NUM_CLASSES = 10
"""Number of classes of every preset's classifier (the digit class)."""

LEAKY_RELU_SLOPE = 0.01
"""PyTorch's ``nn.LeakyReLU`` default negative slope (Keras defaults to 0.3)."""

BATCH_NORM_MOMENTUM = 0.9
"""Keras momentum equal to PyTorch's BatchNorm ``momentum=0.1`` (the conventions are mirrored)."""

BATCH_NORM_EPSILON = 1e-5
"""PyTorch's BatchNorm epsilon (Keras defaults to 1e-3)."""

_IMAGE_SHAPES: dict[str, tuple[int, int, int]] = {
    "digits": (8, 8, 1),
    "mnist": (28, 28, 1),
    "svhn": (32, 32, 3),
}


# --------------------------------------------------------------------------------------------------
# Validation and preset information


def _check_preset(preset: object) -> str:
    if not isinstance(preset, str) or preset not in _IMAGE_SHAPES:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    return preset


def _check_latent_dim(latent_dim: object) -> int:
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, numbers.Integral):
        raise ValueError(f"latent_dim must be an integer >= 1, got {latent_dim!r}")
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be an integer >= 1, got {latent_dim}")
    return int(latent_dim)


def image_shape(preset: str) -> tuple[int, int, int]:
    """Returns the (height, width, channels) of the preset's images."""
    return _IMAGE_SHAPES[_check_preset(preset)]


# --------------------------------------------------------------------------------------------------
# PyTorch-default initialisers and layer helpers


def torch_kernel_initializer() -> keras.initializers.Initializer:
    """Returns PyTorch's default kernel init, kaiming-uniform(a=√5) = U(±1/√fan_in).

    VarianceScaling(scale=1/3, fan_in, uniform) has limit √(3·scale/fan_in) = 1/√fan_in. Keras
    computes fan_in of a Conv2DTranspose kernel (k, k, out, in) as k·k·out, which is exactly
    PyTorch's (quirky) fan_in of a ConvTranspose2d weight (in, out, k, k) taken from dim 1, so one
    initialiser fits Dense, Conv2D and Conv2DTranspose.
    A fresh instance is returned per layer (Keras warns when one unseeded instance is reused).
    """
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
    )


def torch_bias_initializer(fan_in: int) -> keras.initializers.Initializer:
    """Returns PyTorch's default bias init U(±1/√fan_in) (the bias shape cannot give fan_in)."""
    if fan_in < 1:
        raise ValueError(f"fan_in must be >= 1, got {fan_in}")
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(minval=-bound, maxval=bound)


def _kaiming_normal() -> keras.initializers.Initializer:
    """PyTorch ``kaiming_normal_`` (fan_in, ReLU gain √2, not truncated), used by ResNet-20."""
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_in", distribution="untruncated_normal"
    )


def _dense(x: tf.Tensor, units: int, name: str) -> tf.Tensor:
    fan_in = int(x.shape[-1])
    return keras.layers.Dense(
        units,
        kernel_initializer=torch_kernel_initializer(),
        bias_initializer=torch_bias_initializer(fan_in),
        name=name,
    )(x)


def _conv(
    x: tf.Tensor, filters: int, kernel_size: int, strides: int, padding: int, name: str
) -> tf.Tensor:
    """PyTorch ``Conv2d(k, s, p)`` as ZeroPadding2D(p) + 'valid' ('same' pads asymmetrically)."""
    if padding:
        x = keras.layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    fan_in = int(x.shape[-1]) * kernel_size * kernel_size
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="valid",
        kernel_initializer=torch_kernel_initializer(),
        bias_initializer=torch_bias_initializer(fan_in),
        name=name,
    )(x)


def _conv_transpose(
    x: tf.Tensor, filters: int, kernel_size: int, strides: int, name: str
) -> tf.Tensor:
    """PyTorch ``ConvTranspose2d(k, s, p=0)`` = Conv2DTranspose 'valid': size (n-1)·s + k.

    PyTorch's bias bound uses fan_in from weight dim 1, i.e. out_channels·k·k (not in_channels).
    """
    fan_in = filters * kernel_size * kernel_size
    # A Conv2DTranspose whose stride-1 few-channel case (the output layers) runs ~2x faster.
    return TapsConv2DTranspose(
        filters,
        kernel_size,
        strides=strides,
        padding="valid",
        kernel_initializer=torch_kernel_initializer(),
        bias_initializer=torch_bias_initializer(fan_in),
        name=name,
    )(x)


def _batch_norm(x: tf.Tensor, name: str) -> tf.Tensor:
    return keras.layers.BatchNormalization(
        momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON, name=name
    )(x)


def _leaky_relu(x: tf.Tensor, name: str) -> tf.Tensor:
    return keras.layers.LeakyReLU(alpha=LEAKY_RELU_SLOPE, name=name)(x)


@keras.utils.register_keras_serializable(package="rdc_keras")
def portable_sigmoid(x: tf.Tensor) -> tf.Tensor:
    """The logistic sigmoid as 0.5·tanh(x/2) + 0.5: the same float32 bits on every stack.

    TensorFlow's fused Sigmoid kernel changed between 2.14 and 2.17 (measured up to 6 ulp apart
    on the same inputs and CPU) while Tanh, Mul and Add did not, so with this form an image
    decoded from one bitstream is bit-identical on both supported stacks (tests/test_stacks.py).
    Equal to σ(x) in exact arithmetic, with gradient σ(1 − σ), finite for every x. In float32 it
    is exactly 0 (gradient 0) below x ≈ −15.8, where σ < 2e-7: absolute errors of value and
    gradient stay below 2e-7 (tf.sigmoid: 9e-8), far below one 8-bit pixel level (4e-3).
    """
    return 0.5 * tf.tanh(0.5 * x) + 0.5


def _float32_activation(x: tf.Tensor, activation: Any, name: str) -> tf.Tensor:
    """Final activation in float32 whatever the global policy (Keras mixed-precision guide)."""
    return keras.layers.Activation(activation, dtype="float32", name=name)(x)


def _dense_bn_lrelu(x: tf.Tensor, units: int, name: str) -> tf.Tensor:
    x = _dense(x, units, f"{name}_dense")
    x = _batch_norm(x, f"{name}_bn")
    return _leaky_relu(x, f"{name}_lrelu")


# --------------------------------------------------------------------------------------------------
# Encoders


def _mlp_encoder(images: tf.Tensor, widths: tuple[int, ...], latent_dim: int) -> tf.Tensor:
    """Linear+BN+LReLU stack, then Linear→d, BN1d(d), tanh (uRDP EncoderMNIST, digest §1.1)."""
    x = keras.layers.Flatten(name="flatten")(images)
    for i, units in enumerate(widths, start=1):
        x = _dense_bn_lrelu(x, units, f"block{i}")
    x = _dense(x, latent_dim, "latent_dense")
    x = _batch_norm(x, "latent_bn")
    return _float32_activation(x, "tanh", "latents")


def _conv_stack(x: tf.Tensor, widths: tuple[int, ...]) -> tf.Tensor:
    """Conv k5 s2 p2 + LReLU per width, no normalisation (uRDP SVHN encoder and critic)."""
    for i, filters in enumerate(widths, start=1):
        x = _conv(x, filters, 5, 2, 2, f"conv{i}")
        x = _leaky_relu(x, f"conv{i}_lrelu")
    return x


def encoder(preset: str, latent_dim: int) -> keras.Model:
    """Builds the encoder f: image in [0, 1] -> (-1, 1)^latent_dim (tanh output, float32).

    Args:
      preset: one of ``PRESETS``.
      latent_dim: d >= 1, the number of quantized latent dimensions.

    Returns:
      An uncompiled Functional model named "encoder" mapping [N, H, W, C] to [N, d].
    """
    preset = _check_preset(preset)
    latent_dim = _check_latent_dim(latent_dim)
    images = keras.Input(shape=_IMAGE_SHAPES[preset], name="images")
    if preset == "mnist":
        latents = _mlp_encoder(images, (512, 256, 128, 128), latent_dim)
    elif preset == "digits":
        latents = _mlp_encoder(images, (64, 32), latent_dim)
    else:  # svhn: conv 64-128-256, Linear 4096 -> d, tanh; no BatchNorm (digest §1.2).
        x = _conv_stack(images, (64, 128, 256))
        x = keras.layers.Flatten(name="flatten")(x)
        x = _dense(x, latent_dim, "latent_dense")
        latents = _float32_activation(x, "tanh", "latents")
    return keras.Model(images, latents, name="encoder")


# --------------------------------------------------------------------------------------------------
# Decoders


def _conv_decoder(
    latents: tf.Tensor,
    hidden: tuple[tuple[int, int, int], ...],
    output: tuple[int, int, int],
) -> tf.Tensor:
    """uRDP decoder: Linear d→128→512 (BN, LReLU), reshape 4x4x32, ConvT stack, sigmoid.

    Keras reshapes the 512 vector channels-last; PyTorch's view is channels-first. The two are the
    same function class (a permutation of the Dense weights): all that matters from scratch.
    """
    x = _dense_bn_lrelu(latents, 128, "block1")
    x = _dense_bn_lrelu(x, 512, "block2")
    x = keras.layers.Reshape((4, 4, 32), name="reshape")(x)
    for i, (filters, kernel_size, strides) in enumerate(hidden, start=1):
        x = _conv_transpose(x, filters, kernel_size, strides, f"deconv{i}")
        x = _batch_norm(x, f"deconv{i}_bn")
        x = _leaky_relu(x, f"deconv{i}_lrelu")
    filters, kernel_size, strides = output
    x = _conv_transpose(x, filters, kernel_size, strides, "deconv_out")
    return _float32_activation(x, portable_sigmoid, "images")


def decoder(preset: str, latent_dim: int) -> keras.Model:
    """Builds the decoder g: dequantized latent (center - dither) in R^d -> image in [0, 1].

    Args:
      preset: one of ``PRESETS``.
      latent_dim: d >= 1; the decoder's input is the d-dim dequantized latent.

    Returns:
      An uncompiled Functional model named "decoder" mapping [N, d] to [N, H, W, C] in [0, 1]
      (sigmoid, float32).
    """
    preset = _check_preset(preset)
    latent_dim = _check_latent_dim(latent_dim)
    latents = keras.Input(shape=(latent_dim,), name="latents")
    if preset == "mnist":  # 4 -> 11 -> 25 -> 28 (digest §1.1)
        images = _conv_decoder(latents, ((64, 5, 2), (128, 5, 2)), (1, 4, 1))
    elif preset == "svhn":  # 4 -> 11 -> 25 -> 29 -> 32 (digest §1.2)
        images = _conv_decoder(latents, ((64, 5, 2), (108, 5, 2), (128, 5, 1)), (3, 4, 1))
    else:  # digits: small MLP mirroring the MNIST decoder's Linear+BN+LReLU blocks.
        x = _dense_bn_lrelu(latents, 32, "block1")
        x = _dense_bn_lrelu(x, 64, "block2")
        x = _dense(x, 64, "dense_out")
        # Reshape before the float32 activation: a mixed-policy Reshape would cast back to 16 bits.
        x = keras.layers.Reshape(_IMAGE_SHAPES["digits"], name="reshape")(x)
        images = _float32_activation(x, portable_sigmoid, "images")
    return keras.Model(latents, images, name="decoder")


# --------------------------------------------------------------------------------------------------
# Critics


def critic(preset: str) -> keras.Model:
    """Builds the WGAN-GP critic h: image -> unbounded score (linear, float32), no normalisation.

    No BatchNorm anywhere, so per-example input gradients (gradient penalty) are well defined.

    Returns:
      An uncompiled Functional model named "critic" mapping [N, H, W, C] to [N, 1].
    """
    preset = _check_preset(preset)
    images = keras.Input(shape=_IMAGE_SHAPES[preset], name="images")
    if preset == "digits":
        x = keras.layers.Flatten(name="flatten")(images)
        x = _leaky_relu(_dense(x, 64, "dense1"), "dense1_lrelu")
        x = _leaky_relu(_dense(x, 32, "dense2"), "dense2_lrelu")
    else:  # mnist 28→14→7→4, svhn 32→16→8→4: 4x4x256 = 4096 features (digest §1.1-1.2)
        x = _conv_stack(images, (64, 128, 256))
        x = keras.layers.Flatten(name="flatten")(x)
    x = _dense(x, 1, "score_dense")
    scores = _float32_activation(x, "linear", "scores")
    return keras.Model(images, scores, name="critic")


# --------------------------------------------------------------------------------------------------
# Classifiers


def _resnet_conv(
    x: tf.Tensor, filters: int, kernel_size: int, strides: int, name: str
) -> tf.Tensor:
    """Bias-free conv with PyTorch padding (k-1)/2; stride 2 pads symmetrically like PyTorch."""
    pad = (kernel_size - 1) // 2
    padding = "same"
    if strides > 1 and pad:
        x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        padding = "valid"
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer=_kaiming_normal(),
        name=name,
    )(x)


def _basic_block(x: tf.Tensor, filters: int, strides: int, name: str) -> tf.Tensor:
    """ResNet BasicBlock: conv3-BN-ReLU-conv3-BN + shortcut (1x1 conv + BN projection), ReLU."""
    shortcut = x
    y = _resnet_conv(x, filters, 3, strides, f"{name}_conv1")
    y = _batch_norm(y, f"{name}_bn1")
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = _resnet_conv(y, filters, 3, 1, f"{name}_conv2")
    y = _batch_norm(y, f"{name}_bn2")
    if strides != 1 or int(x.shape[-1]) != filters:
        shortcut = _resnet_conv(x, filters, 1, strides, f"{name}_proj")
        shortcut = _batch_norm(shortcut, f"{name}_proj_bn")
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_relu2")(y)


def _resnet20(images: tf.Tensor) -> tf.Tensor:
    """ResNet-20 (He et al. 2016, CIFAR variant, option-B shortcuts): 272,474 parameters."""
    x = _resnet_conv(images, 16, 3, 1, "stem_conv")
    x = _batch_norm(x, "stem_bn")
    x = keras.layers.ReLU(name="stem_relu")(x)
    for stage, filters in enumerate((16, 32, 64), start=1):
        for block in range(3):
            strides = 2 if stage > 1 and block == 0 else 1
            x = _basic_block(x, filters, strides, f"stage{stage}_block{block + 1}")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return _dense(x, NUM_CLASSES, "logits_dense")


def _small_cnn(
    images: tf.Tensor, filters: int, kernel_size: int, padding: int, units: int
) -> tf.Tensor:
    """Conv-ReLU-MaxPool2 twice, FC-ReLU, FC (the paper's MNIST CNN with 10/5/0/100)."""
    x = images
    for i in (1, 2):
        x = _conv(x, filters, kernel_size, 1, padding, f"conv{i}")
        x = keras.layers.ReLU(name=f"conv{i}_relu")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = _dense(x, units, "dense1")
    x = keras.layers.ReLU(name="dense1_relu")(x)
    return _dense(x, NUM_CLASSES, "logits_dense")


def classifier(preset: str) -> keras.Model:
    """Builds the reference classifier c: image -> 10 logits (no softmax, float32).

    mnist: the paper's CNN (Conv10-k5, ReLU, MaxPool2, Conv10-k5, ReLU, MaxPool2, FC100, FC10;
    19,880 parameters). svhn: ResNet-20 with projection shortcuts (272,474 parameters; typically
    ≥ 95% SVHN test accuracy when trained, untested here). digits: a tiny CNN (Conv16-k3-p1 twice,
    FC32).

    Returns:
      An uncompiled Functional model named "classifier" mapping [N, H, W, C] to [N, 10] logits.
    """
    preset = _check_preset(preset)
    images = keras.Input(shape=_IMAGE_SHAPES[preset], name="images")
    if preset == "mnist":  # 28 -> 24 -> 12 -> 8 -> 4: 160 features
        x = _small_cnn(images, filters=10, kernel_size=5, padding=0, units=100)
    elif preset == "digits":  # 8 -> 8 -> 4 -> 4 -> 2: 64 features
        x = _small_cnn(images, filters=16, kernel_size=3, padding=1, units=32)
    else:
        x = _resnet20(images)
    logits = _float32_activation(x, "linear", "logits")
    return keras.Model(images, logits, name="classifier")
