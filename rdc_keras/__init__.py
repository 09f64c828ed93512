"""rdc_keras: universal rate-distortion-classification representations for lossy compression.

One learned encoder produces a dithered, L-level quantized representation; many decoder heads
reuse it, each tuned to its own tradeoff between distortion (MSE), classification (cross-entropy
of a classifier on the reconstruction) and perception (Wasserstein-1 via a WGAN-GP critic).
After Nguyen, Nguyen, Nguyen and Bose, "Universal Rate-Distortion-Classification Representations
for Lossy Compression" (IEEE ITW 2025, arXiv:2504.09025).

Importing this package is cheap: it imports neither TensorFlow nor tensorflow-compression;
submodules import what they need.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
