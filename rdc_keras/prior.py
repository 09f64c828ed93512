"""Entropy-coding priors: integer CDF tables built once at export, read unchanged by the codec.

The encoder export (`rdc_keras.export`) counts the quantization indices of the training split
and stores two priors in its `assets/rdc.json` (ecosystem notes §1.3: tables shared as integers):

* the marginal prior P(k): one table per latent dimension j, `cdf` [d][L + 1];
* the dither-conditional prior P(k | u) (`dithered`): the dither range [-1/(L-1), 1/(L-1)) is
  cut into `offset_bins` equal bins; `cdf` [d][bins][L + 1] holds one table per dimension and bin.
  With subtractive dither the receiver knows u, so coding with P(k | u) costs about H(K | U), the
  rate of universal quantization (Zhang et al. 2021), instead of H(K).

The `.rdc` codec (`rdc_keras.codec`) turns a stored prior into the range coder's lookup with
`lookup` and picks the table of every index with `table_index`. This module needs only numpy, so
both sides (and any client) compute exactly the same integers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "DITHER_OFFSET_BINS",
    "PRECISION",
    "bin_centres",
    "digest",
    "dithered_prior",
    "lookup",
    "marginal_prior",
    "min_bits_per_image",
    "offset_bins",
    "quantized_cdf",
    "select",
    "table_index",
]

# Bits of the integer CDF tables; tensorflow-compression's range coder accepts 1..16.
PRECISION = 16
# Dither bins of the dither-conditional prior: tables [d, bins, L + 1].
DITHER_OFFSET_BINS = 32


def quantized_cdf(counts: Sequence[int], precision: int = PRECISION) -> list[int]:
    """Integer CDF [0, c_1, ..., 2**precision] with every symbol's frequency >= 1.

    Exact integer arithmetic (largest-remainder rounding of counts * 2**precision / total, ties
    to the lower symbol), so the table does not depend on floating point. Callers smooth the
    counts first; this only guarantees that no symbol gets probability zero after rounding.

    Args:
      counts: non-negative integer count per symbol, L >= 2 entries, positive total.
      precision: bits of the table, 1..16 (the range coder's limit); needs 2**precision >= L.

    Returns:
      L + 1 non-decreasing ints, strictly increasing, from 0 to 2**precision.
    """
    counts = [int(c) for c in counts]
    if len(counts) < 2 or min(counts) < 0 or sum(counts) <= 0:
        raise ValueError(f"counts must be >= 2 non-negative integers with a positive sum: {counts}")
    if not 1 <= precision <= 16 or 2**precision < len(counts):
        raise ValueError(f"precision {precision} cannot hold {len(counts)} symbols (1..16 bits)")
    total, scale = sum(counts), 2**precision
    quotients, remainders = zip(*(divmod(c * scale, total) for c in counts), strict=True)
    freq = [max(q, 1) for q in quotients]
    deficit = scale - sum(freq)
    if deficit > 0:  # hand the missing units to the largest remainders
        order = sorted(range(len(counts)), key=lambda i: (-remainders[i], i))
        for i in order[:deficit]:
            freq[i] += 1
    while deficit < 0:  # minimum-1 bumps overshot: take units from the largest frequencies
        i = max(range(len(freq)), key=lambda j: (freq[j], -j))
        freq[i] -= 1
        deficit += 1
    return [0, *np.cumsum(freq).tolist()]


def digest(cdf: Sequence[Sequence[int]], precision: int) -> str:
    """16 hex digits identifying a prior's CDF tables (stored in `.rdc` headers)."""
    canonical = json.dumps({"precision": int(precision), "cdf": [list(map(int, r)) for r in cdf]})
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def marginal_prior(counts: np.ndarray, info: dict[str, Any]) -> dict[str, Any]:
    """Add-one smoothed per-dimension categorical prior P(k) with its integer CDF tables.

    Args:
      counts: int [d, L] index counts per dimension on the prior split.
      info: provenance recorded with the tables (dataset, split, num_images, seed).
    """
    smoothed = counts.astype(np.int64) + 1
    cdf = [quantized_cdf(row, PRECISION) for row in smoothed]
    freq = np.diff(np.asarray(cdf, np.float64), axis=1) / 2.0**PRECISION
    empirical = counts / max(int(counts[0].sum()), 1)
    # Cross-entropy of the training indices under the stored tables: the ideal code length.
    bits = float(-(empirical * np.log2(freq)).sum())
    return {
        **info,
        "smoothing": "add-one (Laplace)",
        "precision": PRECISION,
        "counts": counts.astype(np.int64).tolist(),
        "cdf": cdf,
        "digest": digest(cdf, PRECISION),
        "train_bits_per_image": bits,
    }


def offset_bins(dithers: np.ndarray, num_levels: int, bins: int) -> np.ndarray:
    """int32 bin b of each dither u in [-1/(L-1), 1/(L-1)): floor((u + step/2) / step * bins).

    Computed in float64 from the exact float32 dither (basic IEEE operations only), so sender
    and receiver agree on every bin in every process.
    """
    step = 2.0 / (num_levels - 1)
    position = (np.asarray(dithers, np.float32).astype(np.float64) + step / 2) / step * bins
    return np.clip(np.floor(position), 0, bins - 1).astype(np.int32)


def bin_centres(num_levels: int, bins: int = DITHER_OFFSET_BINS) -> np.ndarray:
    """float64 [bins] centre u_b of each dither bin of [-1/(L-1), 1/(L-1))."""
    step = 2.0 / (num_levels - 1)
    return -step / 2 + (np.arange(bins) + 0.5) * step / bins


def dithered_prior(
    bin_indices: np.ndarray, dithers: np.ndarray, indices: np.ndarray, num_levels: int
) -> dict[str, Any]:
    """Per-dimension prior of an index given its dither, P(k | u), as integer CDF tables.

    For bin b with centre u_b (`bin_centres`) and dimension j, the table counts
    Q(y_nj + u_b) = k over all N latents y_n, add-one smoothed.

    Args:
      bin_indices: int [N, d, bins] Q(y_nj + u_b), the sender's nearest-centre rule
        (`rdc_keras.layers.nearest_index`) applied to every latent shifted by every bin centre.
      dithers: float32 [N, d] the dither each image is coded with (seeds seed + i).
      indices: int [N, d] the served indices Q(f(x) + u) (for the training cross-entropy).
      num_levels: L.

    Returns:
      {"offset_bins", "precision", "cdf" [d][bins][L + 1], "digest", "train_bits_per_image"}.
    """
    bin_indices = np.asarray(bin_indices, np.int64)
    _, latent_dim, bins = bin_indices.shape
    cdf = [
        [
            quantized_cdf(np.bincount(bin_indices[:, j, b], minlength=num_levels) + 1, PRECISION)
            for b in range(bins)
        ]
        for j in range(latent_dim)
    ]
    tables = np.asarray(cdf, np.float64)  # [d, bins, L + 1]
    chosen_bins = offset_bins(dithers, num_levels, bins)  # [N, d]
    freq = np.diff(tables, axis=-1) / 2.0**PRECISION
    chosen = freq[np.arange(latent_dim)[None, :], chosen_bins, np.asarray(indices)]
    flat = [row for rows in cdf for row in rows]
    return {
        "offset_bins": int(bins),
        "precision": PRECISION,
        "cdf": cdf,
        "digest": digest(flat, PRECISION),
        "train_bits_per_image": float(-np.log2(chosen).sum(axis=1).mean()),
    }


# ------------------------------------------------------------------------------------------------
# Reading stored priors (the codec side).


def select(metadata: dict[str, Any], method: str) -> dict[str, Any]:
    """The export's prior for a range-coded method: "range" (marginal) or "dithered".

    Raises:
      ValueError: the export has no such prior.
    """
    prior = metadata.get("prior") or {}
    if not prior:
        raise ValueError(
            "the encoder export's assets/rdc.json has no entropy-coding prior; export it again"
        )
    if method == "dithered":
        prior = prior.get("dithered")
        if not prior:
            raise ValueError(
                "the encoder export has no dither-conditional prior (exported by an older "
                "rdc_keras; export it again)"
            )
    return prior


def lookup(prior: dict[str, Any], num_levels: int, latent_dim: int, method: str) -> np.ndarray:
    """Validates stored CDF tables; returns the range coder's lookup [tables, L + 2] int32.

    "range": d tables (row j for dimension j); "dithered": d * bins tables (row j * bins + b).

    Raises:
      ValueError: tables of the wrong shape or precision, rows that do not rise strictly, or
        tables that do not match their recorded digest (an edited or damaged export).
    """
    try:
        precision = int(prior["precision"])
        cdf = np.asarray(prior["cdf"], np.int64)
        bins = int(prior["offset_bins"]) if method == "dithered" else None
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"encoder export has no usable prior tables ({error})") from error
    expected = (latent_dim, num_levels + 1) if bins is None else (latent_dim, bins, num_levels + 1)
    if not 1 <= precision <= 16 or cdf.shape != expected or (bins is not None and bins < 1):
        raise ValueError(
            f"encoder export prior: expected CDF tables of shape {expected} at 1..16 bits, got "
            f"shape {cdf.shape} at {precision} bits"
        )
    cdf = cdf.reshape(-1, num_levels + 1)
    if (cdf[:, 0] != 0).any() or (cdf[:, -1] != 2**precision).any() or (np.diff(cdf) < 1).any():
        raise ValueError("encoder export prior: CDF rows must rise strictly from 0 to 2**precision")
    if digest(cdf.tolist(), precision) != prior.get("digest"):
        raise ValueError(
            "encoder export prior: its CDF tables do not match their digest "
            f"{prior.get('digest')!r} (assets/rdc.json edited or damaged)"
        )
    table = np.concatenate([np.full((len(cdf), 1), precision), cdf], axis=1)
    return table.astype(np.int32)


def table_index(dithers: np.ndarray, num_levels: int, bins: int) -> np.ndarray:
    """Row of the dithered lookup for every index [N, d]: j * bins + offset bin of u_ij."""
    latent_dim = np.asarray(dithers).shape[1]
    return np.arange(latent_dim, dtype=np.int32) * bins + offset_bins(dithers, num_levels, bins)


def min_bits_per_image(table: np.ndarray, latent_dim: int) -> float:
    """Fewest bits any image can cost under a lookup: sum over dimensions j of the minimum over
    j's tables of -log2 (largest probability in the table)."""
    precision = table[:, 0].astype(np.float64)
    top = np.diff(table[:, 1:], axis=1).max(axis=1).astype(np.float64)
    return float(np.sum(np.min((precision - np.log2(top)).reshape(latent_dim, -1), axis=1)))
