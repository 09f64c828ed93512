"""Keras layers: the L-level soft-to-hard quantizers, the shared universal dither, and a fast
transposed convolution for the decoders' few-channel output layers. `quantization` also holds the
sender/receiver contract (centres, nearest-centre rule, per-image seeds, rate) in numpy."""

from rdc_keras.layers.convolution import TapsConv2DTranspose
from rdc_keras.layers.quantization import (
    DITHER_CONVENTION,
    UniformQuantizer,
    UniversalQuantizer,
    centers,
    dither,
    image_seeds,
    nearest_index,
    rate_bits,
)

__all__ = [
    "DITHER_CONVENTION",
    "TapsConv2DTranspose",
    "UniformQuantizer",
    "UniversalQuantizer",
    "centers",
    "dither",
    "image_seeds",
    "nearest_index",
    "rate_bits",
]
