"""rdc_keras: universal rate-distortion-classification representations for lossy compression.

One learned encoder produces a dithered, L-level quantized representation; many decoder heads
reuse it, each tuned to its own tradeoff between distortion (MSE), classification (cross-entropy
of a classifier on the reconstruction) and perception (Wasserstein-1 via a WGAN-GP critic).
After Nguyen, Nguyen, Nguyen and Bose, "Universal Rate-Distortion-Classification Representations
for Lossy Compression" (IEEE ITW 2025, arXiv:2504.09025).

Importing this package is cheap: it imports neither TensorFlow nor tensorflow-compression;
submodules import what they need. It does set one default for TensorFlow, read when TensorFlow
loads (so only when this package is imported first): ``TF_ENABLE_ONEDNN_OPTS=1`` on x86-64 unless
the variable is set already. TensorFlow turns its oneDNN CPU kernels on by itself only on CPUs with
AVX-512 VNNI/BF16, AVX-VNNI or AMX; elsewhere (AVX2) it runs Eigen kernels, whose strided
convolution backward passes made the GAN training step 1.3x slower and the float32 matmul 2x
slower (bench/BENCHMARKS.md, issue 18). ``TF_ENABLE_ONEDNN_OPTS=0`` keeps Eigen.
"""

import os as _os
import platform as _platform

__version__ = "0.1.0"

_ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
if _platform.machine().lower() in ("x86_64", "amd64"):
    _os.environ.setdefault(_ONEDNN_VARIABLE, "1")

__all__ = ["__version__"]
