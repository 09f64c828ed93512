"""Keras layers: the L-level soft-to-hard quantizers, the shared universal dither, and a fast
transposed convolution for the decoders' few-channel output layers."""

from rdc_keras.layers.convolution import TapsConv2DTranspose
from rdc_keras.layers.quantization import UniformQuantizer, UniversalQuantizer, dither

__all__ = ["TapsConv2DTranspose", "UniformQuantizer", "UniversalQuantizer", "dither"]
