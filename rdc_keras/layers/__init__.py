"""Keras layers: the L-level soft-to-hard quantizers and the shared universal dither."""

from rdc_keras.layers.quantization import UniformQuantizer, UniversalQuantizer, dither

__all__ = ["UniformQuantizer", "UniversalQuantizer", "dither"]
