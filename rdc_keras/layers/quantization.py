"""L-level scalar quantizers with soft-to-hard gradients, and the shared universal dither.

The encoder ends in tanh, so its output y lies in (-1, 1)^d. Both layers quantize every
coordinate to the nearest of L uniformly spaced centres c_l = -1 + 2l/(L-1) (step
Delta = 2/(L-1)) in the forward pass, and back-propagate the gradient of the soft assignment
sum_l c_l softmax_l(-|y - c_l| / temperature) (Mentzer et al. 2018; Agustsson et al. 2017; see
notes/reference-code-digest.md §2: temperature = 1/sigma of the reference code, which used
sigma = 1 on MNIST and sigma = 2/L on SVHN).

Universal (subtractive-dither) quantization shares u ~ U[-Delta/2, Delta/2)^d between sender and
receiver: the sender transmits the index of the centre nearest to y + u and the receiver decodes
centre - u, so the error is uniform and independent of y. `dither` makes u reproducible from
integer seeds with stock TensorFlow integer ops only; its algorithm is part of the bitstream and
serving format and must not change.

Decisions shared by both layers:
  * Tie-breaking: index = clip(floor(t + 0.5), 0, L - 1) with t = (v + 1) * (L - 1) / 2 computed
    in float32 (v = y, or y + u). A value exactly half-way between two centres goes to the
    **higher** centre (round half up); values beyond +-1 go to the end centres.
  * Precision: the quantizer always computes in float32 (Keras input autocasting is disabled, so
    a float32 y is not rounded to float16 before quantizing). Floating-point outputs are cast to
    the layer's compute dtype (float32 by default, float16/bfloat16 under a mixed policy; pass
    ``dtype="float32"`` to keep float32 outputs). Indices are always int32.
  * The straight-through value is computed as hard + (soft - stop_gradient(soft)): the same
    gradient as soft + stop_gradient(hard - soft), but the forward value equals the centre
    exactly in float32.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import tensorflow as tf

from rdc_keras.tfkeras import keras

__all__ = [
    "DITHER_CONVENTION",
    "UniformQuantizer",
    "UniversalQuantizer",
    "centers",
    "dither",
    "image_seeds",
    "nearest_index",
    "rate_bits",
]

# SplitMix64 constants (Steele, Lea and Flood 2014; "mix13" finalizer by D. Stafford).
_GOLDEN_GAMMA = 0x9E3779B97F4A7C15
_MIX_MULT_1 = 0xBF58476D1CE4E5B9
_MIX_MULT_2 = 0x94D049BB133111EB
_DITHER_BITS = 24  # float32 has a 24-bit significand, so 24 random bits convert exactly.


# ------------------------------------------------------------------------------------------------
# The sender/receiver contract, for every module and for clients (numpy): the centres, the
# nearest-centre rule, the per-image seeds and the rate. The layers below are its TF side.

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


def centers(num_levels: int) -> np.ndarray:
    """float32 [L] centres c_l = -1 + 2 l / (L - 1) (the same values as the layers' `centers`)."""
    levels = np.arange(_check_num_levels(num_levels), dtype=np.float64)
    return (-1.0 + 2.0 * levels / (num_levels - 1)).astype(np.float32)


def nearest_index(v: Any, num_levels: int) -> np.ndarray:
    """int32 index of the centre nearest to v (numpy): clip(floor((v + 1)(L - 1)/2 + 0.5), 0, L-1).

    Ties go to the higher centre, values beyond +-1 to the end centres, as in the layers. Computed
    in v's float precision (float32 input: bit-identical to the layers' float32 rule).
    """
    num_levels = _check_num_levels(num_levels)
    v = np.asarray(v)
    dtype = v.dtype if v.dtype in (np.float32, np.float64) else np.float64
    t = (v.astype(dtype) + dtype.type(1.0)) * dtype.type((num_levels - 1) / 2.0)
    return np.clip(np.floor(t + dtype.type(0.5)), 0, num_levels - 1).astype(np.int32)


def image_seeds(seed: int, count: int, offset: int = 0) -> np.ndarray:
    """int64 [count] dither seeds of images offset .. offset + count - 1: image i uses seed + i.

    The one seed rule of training-time evaluation, exports, `.rdc` files and serving requests.
    """
    return np.int64(seed) + np.arange(offset, offset + count, dtype=np.int64)


def rate_bits(latent_dim: int, num_levels: int) -> float:
    """The fixed-rate bound d * log2 L bits per image."""
    return int(latent_dim) * math.log2(_check_num_levels(num_levels))


def _check_num_levels(num_levels: Any) -> int:
    """Returns num_levels as an int, or raises if it is not an integer >= 2."""
    if isinstance(num_levels, bool) or not isinstance(num_levels, numbers.Integral):
        raise TypeError(
            f"num_levels must be an integer >= 2, got {num_levels!r} "
            f"of type {type(num_levels).__name__}"
        )
    if num_levels < 2:
        raise ValueError(f"num_levels must be an integer >= 2, got {num_levels}")
    return int(num_levels)


def _check_temperature(temperature: Any) -> float:
    """Returns temperature as a float, or raises if it is not a finite number > 0."""
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(
            f"temperature must be a positive number, got {temperature!r} "
            f"of type {type(temperature).__name__}"
        )
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    return float(temperature)


def _check_float(x: tf.Tensor, what: str, owner: str) -> tf.Tensor:
    """Converts x to a tensor and raises TypeError unless it is floating point."""
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        raise TypeError(f"{owner}: {what} must be a floating-point tensor, got {x.dtype.name}")
    return x


def _check_same_shape(y: tf.Tensor, u: tf.Tensor, owner: str) -> list[tf.Operation]:
    """Raises ValueError if the static shapes of y and u differ; asserts at run time if unknown."""
    if not y.shape.is_compatible_with(u.shape):
        raise ValueError(
            f"{owner}: dither shape {u.shape} does not match y shape {y.shape} "
            "(one dither value per latent coordinate is required)"
        )
    if y.shape.is_fully_defined() and u.shape.is_fully_defined():
        return []
    return [
        tf.debugging.assert_equal(
            tf.shape(y),
            tf.shape(u),
            message=f"{owner}: dither shape does not match y shape",
        )
    ]


def _mix64(z: tf.Tensor) -> tf.Tensor:
    """SplitMix64 finalizer on uint64 (wrapping arithmetic, stock bitwise ops only)."""
    shift = tf.bitwise.right_shift
    z = tf.bitwise.bitwise_xor(z, shift(z, tf.constant(30, tf.uint64)))
    z = z * tf.constant(_MIX_MULT_1, tf.uint64)
    z = tf.bitwise.bitwise_xor(z, shift(z, tf.constant(27, tf.uint64)))
    z = z * tf.constant(_MIX_MULT_2, tf.uint64)
    return tf.bitwise.bitwise_xor(z, shift(z, tf.constant(31, tf.uint64)))


def dither(seeds: tf.Tensor, dim: int, num_levels: int) -> tf.Tensor:
    """Universal-quantization dither: a reproducible row of U[-Delta/2, Delta/2)^dim per seed.

    Delta = 2/(L-1) is the quantizer step, so the range is [-1/(L-1), +1/(L-1))
    (reference-code-digest §2). Row i depends only on seeds[i], so an image's dither does not
    depend on its batch. The algorithm is fixed here because bitstreams and served SavedModels
    depend on it; it uses only stock integer ops (no tensorflow_compression, no py_function, no
    TF RNG kernels, whose streams "may change between versions of TensorFlow"), so it can be
    re-implemented bit for bit in NumPy. With all arithmetic on uint64 modulo 2**64, seed_i
    reinterpreted as uint64 (two's complement) and j = 0..dim-1:

        mix64(z) = z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27;
                   z *= 0x94D049BB133111EB; z ^= z >> 31            (SplitMix64 finalizer)
        h[i, j]  = mix64(mix64(seed_i) + (j + 1) * 0x9E3779B97F4A7C15)
        k[i, j]  = h[i, j] >> 40                                     (top 24 bits)
        u[i, j]  = float32(k - 2**23) * float32(float32(2 / (L - 1)) * 2**-24)

    The last line is a single correctly rounded float32 product of exact operands, so the value
    is bit-identical in every process and on any IEEE-754 float32 hardware. Cost is O(N * dim)
    fully vectorized elementwise ops (about 3x faster than tf.map_fn over stateless_uniform).

    Args:
      seeds: integer tensor of shape [N] (int64 preferred; int32 is widened first).
      dim: latent dimension d, a Python int >= 1.
      num_levels: number of quantization levels L, a Python int >= 2.

    Returns:
      float32 tensor of shape [N, dim] with values in [-1/(L-1), 1/(L-1)).
    """
    num_levels = _check_num_levels(num_levels)
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 1:
        raise ValueError(f"dither: dim must be an integer >= 1, got {dim!r}")
    seeds = tf.convert_to_tensor(seeds)
    if not seeds.dtype.is_integer:
        raise TypeError(f"dither: seeds must be an integer tensor (int64), got {seeds.dtype.name}")
    if seeds.shape.rank is not None and seeds.shape.rank != 1:
        raise ValueError(f"dither: seeds must have shape [N], got {seeds.shape}")
    seeds = tf.bitcast(tf.cast(seeds, tf.int64), tf.uint64)
    key = _mix64(seeds)[:, tf.newaxis]  # [N, 1]
    # (j + 1) * gamma mod 2**64 for j < dim, folded into one [1, dim] constant.
    offsets = [((j + 1) * _GOLDEN_GAMMA) % 2**64 for j in range(int(dim))]
    h = _mix64(key + tf.constant([offsets], tf.uint64))
    k = tf.cast(tf.bitwise.right_shift(h, tf.constant(64 - _DITHER_BITS, tf.uint64)), tf.int32)
    centred = tf.cast(k - 2 ** (_DITHER_BITS - 1), tf.float32)  # exact: |k - 2**23| <= 2**23
    scale = np.float32(np.float32(2.0 / (num_levels - 1)) * np.float32(2.0**-_DITHER_BITS))
    return centred * tf.constant(scale, tf.float32)


class _Quantizer(keras.layers.Layer):
    """Shared machinery: centres, rounding rule, soft path, rate and Keras config."""

    def __init__(self, num_levels: int, temperature: float = 1.0, **kwargs: Any) -> None:
        num_levels = _check_num_levels(num_levels)
        temperature = _check_temperature(temperature)
        kwargs["autocast"] = False  # quantize the float32 value, not a float16-rounded copy
        super().__init__(**kwargs)
        self._num_levels = num_levels
        self._temperature = temperature
        self._centers_np = centers(num_levels)

    @property
    def num_levels(self) -> int:
        """Number of quantization levels L."""
        return self._num_levels

    @property
    def temperature(self) -> float:
        """Softmax temperature of the soft path (1/sigma in the reference code)."""
        return self._temperature

    @property
    def step(self) -> float:
        """Distance between neighbouring centres, Delta = 2/(L-1)."""
        return 2.0 / (self._num_levels - 1)

    @property
    def centers(self) -> tf.Tensor:
        """float32 [L] tensor of centres c_l = -1 + 2l/(L-1)."""
        return tf.constant(self._centers_np)

    @property
    def bits_per_dim(self) -> float:
        """Fixed-rate cost of one latent coordinate, log2 L bits."""
        return math.log2(self._num_levels)

    def rate_bits(self, latent_dim: int) -> float:
        """Fixed-rate bound latent_dim * log2 L bits per image (design card, "Rate bound")."""
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, numbers.Integral):
            raise TypeError(f"latent_dim must be an integer >= 1, got {latent_dim!r}")
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be an integer >= 1, got {latent_dim}")
        return rate_bits(latent_dim, self._num_levels)

    def _nearest(self, v: tf.Tensor) -> tf.Tensor:
        """int32 index of the centre nearest to float32 v; ties go to the higher centre."""
        half_span = (self._num_levels - 1) / 2.0
        t = (v + 1.0) * half_span
        top = float(self._num_levels - 1)
        # Clip in float first (keeps the cast in range), then in int (NaN casts to garbage).
        t = tf.clip_by_value(tf.floor(t + 0.5), 0.0, top)
        return tf.clip_by_value(tf.cast(t, tf.int32), 0, self._num_levels - 1)

    def _soft(self, v: tf.Tensor) -> tf.Tensor:
        """sum_l c_l softmax_l(-|v - c_l| / temperature), in float32."""
        centers = self.centers
        logits = -tf.abs(v[..., tf.newaxis] - centers) / self._temperature
        return tf.reduce_sum(tf.nn.softmax(logits, axis=-1) * centers, axis=-1)

    def _straight_through(self, v: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
        """Centre value forward, gradient of the soft assignment backward."""
        hard = tf.gather(self.centers, index)
        soft = self._soft(v)
        return hard + (soft - tf.stop_gradient(soft))

    def _checked_indices(self, indices: tf.Tensor) -> tf.Tensor:
        """Validates dtype and range of indices and returns them as int32."""
        indices = tf.convert_to_tensor(indices)
        if not indices.dtype.is_integer:
            raise TypeError(
                f"{type(self).__name__}: indices must be an integer tensor, "
                f"got {indices.dtype.name}"
            )
        indices = tf.cast(indices, tf.int32)
        name = type(self).__name__
        checks = [
            tf.debugging.assert_non_negative(indices, message=f"{name}: negative index"),
            tf.debugging.assert_less(
                indices, self._num_levels, message=f"{name}: index >= num_levels"
            ),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(indices)

    def _to_float32(self, x: tf.Tensor, what: str) -> tf.Tensor:
        x = _check_float(x, what, type(self).__name__)
        return tf.cast(x, tf.float32)

    def _check_finite(self, v: tf.Tensor) -> tf.Tensor:
        return tf.debugging.assert_all_finite(
            v, message=f"{type(self).__name__}: cannot quantize NaN or infinite values"
        )

    def _output(self, x: tf.Tensor) -> tf.Tensor:
        return tf.cast(x, self.compute_dtype)

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        return tf.TensorShape(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(num_levels=self._num_levels, temperature=self._temperature)
        return config


@keras.utils.register_keras_serializable(package="rdc_keras")
class UniformQuantizer(_Quantizer):
    """L-level quantizer on [-1, 1]: nearest centre forward, soft-assignment gradient backward.

    Used without dither (deterministic quantization). Calling the layer returns centre values
    whose gradient is that of sum_l c_l softmax_l(-|y - c_l| / temperature); see the module
    docstring for the tie-breaking rule and dtypes.

    Args:
      num_levels: number of levels L (int >= 2).
      temperature: softmax temperature of the soft path (> 0); the reference code's
        sigma = 1/temperature (MNIST: 1.0, SVHN: L/2).
      **kwargs: standard Keras layer arguments (name, dtype, ...).
    """

    def call(self, y: tf.Tensor) -> tf.Tensor:
        """Returns the nearest centre of each coordinate, carrying the soft gradient."""
        v = self._to_float32(y, "y")
        return self._output(self._straight_through(v, self._nearest(v)))

    def indices(self, y: tf.Tensor) -> tf.Tensor:
        """Returns int32 indices (same shape as y) of the nearest centres."""
        v = self._check_finite(self._to_float32(y, "y"))
        return self._nearest(v)

    def dequantize(self, indices: tf.Tensor) -> tf.Tensor:
        """Returns centers[indices] in the layer's compute dtype."""
        return self._output(tf.gather(self.centers, self._checked_indices(indices)))


@keras.utils.register_keras_serializable(package="rdc_keras")
class UniversalQuantizer(_Quantizer):
    """Universal (subtractive-dither) L-level quantizer shared by sender and receiver.

    encode(y, u) sends the index of the centre nearest to y + u, decode(indices, u) returns
    centre - u, so decode(encode(y, u), u) - y is uniform on [-Delta/2, Delta/2] and independent
    of y (reference-code-digest §2). Calling the layer returns that decoded value with the
    gradient of soft(y + u) - u, for training; u comes from `dither`.

    Args:
      num_levels: number of levels L (int >= 2).
      temperature: softmax temperature of the soft path (> 0); sigma = 1/temperature.
      **kwargs: standard Keras layer arguments (name, dtype, ...).
    """

    def _inputs(self, y: tf.Tensor, dither: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        name = type(self).__name__
        y = _check_float(y, "y", name)
        u = _check_float(dither, "dither", name)
        checks = _check_same_shape(y, u, name)
        y, u = tf.cast(y, tf.float32), tf.cast(u, tf.float32)
        if checks:
            with tf.control_dependencies(checks):
                y = tf.identity(y)
        return y, u

    def call(self, y: tf.Tensor, dither: tf.Tensor) -> tf.Tensor:
        """Returns decode(encode(y, dither), dither), with the soft gradient wrt y."""
        y, u = self._inputs(y, dither)
        v = y + u
        return self._output(self._straight_through(v, self._nearest(v)) - u)

    def encode(self, y: tf.Tensor, dither: tf.Tensor) -> tf.Tensor:
        """Returns int32 indices of the centres nearest to y + dither (the sender's symbols)."""
        y, u = self._inputs(y, dither)
        return self._nearest(self._check_finite(y + u))

    def decode(self, indices: tf.Tensor, dither: tf.Tensor) -> tf.Tensor:
        """Returns centers[indices] - dither (the receiver's decoder input)."""
        name = type(self).__name__
        indices = self._checked_indices(indices)
        u = tf.cast(_check_float(dither, "dither", name), tf.float32)
        checks = _check_same_shape(indices, u, name)
        with tf.control_dependencies(checks):
            return self._output(tf.gather(self.centers, indices) - u)

    def send(self, y: tf.Tensor, seeds: tf.Tensor) -> tf.Tensor:
        """The sender: int32 indices of y [N, d] + dither(seeds) (row i uses seeds[i]).

        `encode(y, dither(seeds, d, L))`: the one place that pairs latents with their seeds.
        """
        y = _check_float(y, "y", type(self).__name__)
        return self.encode(y, dither(seeds, int(y.shape[-1]), self._num_levels))

    def receive(self, indices: tf.Tensor, seeds: tf.Tensor) -> tf.Tensor:
        """The receiver: the decoder input centers[indices] - dither(seeds) for indices [N, d]."""
        indices = tf.convert_to_tensor(indices)
        return self.decode(indices, dither(seeds, int(indices.shape[-1]), self._num_levels))
