"""Tests for rdc_keras.prior: the integer CDF tables an export stores and the codec reads.

Numpy only (no TensorFlow): hand-worked CDF tables and dither bins, independent numpy counts of
synthetic latents for the marginal and dither-conditional priors, and hand-made lookups. The
priors of a real export are checked against its training split in test_export.py.
"""

import numpy as np
import pytest

from rdc_keras import prior

# ------------------------------------------------------------------------------------------------
# Integer CDF tables.


@pytest.mark.parametrize(
    ("counts", "precision", "expected"),
    [
        ([1, 1], 16, [0, 32768, 65536]),
        ([1, 2, 1], 2, [0, 1, 3, 4]),
        ([3, 3, 3], 4, [0, 6, 11, 16]),  # 16/3 each: the spare unit goes to the lowest symbol
        ([0, 100], 4, [0, 1, 16]),  # zero count still gets probability 1/16
        ([1000, 1, 1], 4, [0, 14, 15, 16]),  # minimum-1 bumps paid by the largest symbol
    ],
)
def test_quantized_cdf_hand_worked(counts, precision, expected):
    assert prior.quantized_cdf(counts, precision) == expected


def test_quantized_cdf_rejects_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        prior.quantized_cdf([1, -1])
    with pytest.raises(ValueError, match="cannot hold"):
        prior.quantized_cdf([1] * 5, precision=2)


def test_digest_depends_on_tables_and_precision():
    cdf = [[0, 30000, 65536], [0, 1, 65536]]
    assert len(prior.digest(cdf, 16)) == 16
    assert prior.digest(cdf, 16) == prior.digest(np.asarray(cdf), 16)  # ints, not their type
    assert prior.digest(cdf, 16) != prior.digest(cdf, 15)
    assert prior.digest(cdf, 16) != prior.digest([[0, 30001, 65536], [0, 1, 65536]], 16)


# ------------------------------------------------------------------------------------------------
# Building the priors (the export side).


def test_marginal_prior_counts_add_one():
    counts = np.array([[5, 0, 95], [40, 30, 30]])
    info = {"dataset": "digits", "split": "train", "num_images": 100, "seed": 0}
    stored = prior.marginal_prior(counts, info)
    assert {key: stored[key] for key in info} == info
    assert stored["counts"] == counts.tolist() and stored["precision"] == 16
    cdf = np.asarray(stored["cdf"])
    freq = np.diff(cdf, axis=1)
    assert (freq >= 1).all() and (cdf[:, -1] == 2**16).all()
    exact = (counts + 1) / (counts + 1).sum(axis=1, keepdims=True) * 2**16  # add-one smoothing
    assert np.abs(freq - exact).max() < 1.0  # largest-remainder rounding
    p = counts / counts.sum(axis=1, keepdims=True)
    bits = -(p * np.log2(freq / 2**16)).sum()
    assert stored["train_bits_per_image"] == pytest.approx(bits)
    assert stored["digest"] == prior.digest(stored["cdf"], 16)


@pytest.mark.parametrize(
    ("dithers", "num_levels", "bins", "expected"),
    [
        # L = 3: step 1, u in [-0.5, 0.5); bin = floor((u + 0.5) * bins).
        ([-0.5, -0.5 + 1 / 32, -0.0, 0.0, 0.25, 0.49999997], 3, 32, [0, 1, 16, 16, 24, 31]),
        # L = 5: step 0.5, u in [-0.25, 0.25); 4 bins of width 0.125.
        ([-0.25, -0.125, -1e-7, 0.125, 0.2499999], 5, 4, [0, 1, 1, 3, 3]),
        ([0.3, -0.3], 3, 1, [0, 0]),  # one bin; out-of-range values are clipped
    ],
)
def test_offset_bins_hand_worked(dithers, num_levels, bins, expected):
    dithers = np.asarray(dithers, np.float32)
    np.testing.assert_array_equal(prior.offset_bins(dithers, num_levels, bins), expected)


def test_bin_centres():
    np.testing.assert_allclose(prior.bin_centres(3, 4), [-0.375, -0.125, 0.125, 0.375])
    centres = prior.bin_centres(5)  # step 0.5: dither in [-0.25, 0.25)
    assert len(centres) == prior.DITHER_OFFSET_BINS == 32
    np.testing.assert_array_equal(prior.offset_bins(centres, 5, 32), np.arange(32))


def test_dithered_prior_counts_shifted_latents():
    """P(k | u) tables: every latent shifted by each dither bin's centre, add-one smoothed."""
    rng = np.random.default_rng(3)
    n, d, num_levels, bins = 500, 2, 3, 8
    latents = np.tanh(rng.normal(0.3, 0.8, (n, d)))
    dithers = rng.uniform(-0.5, 0.5, (n, d)).astype(np.float32)
    centres = -0.5 + (np.arange(bins) + 0.5) / bins  # L = 3: step 1, dither in [-0.5, 0.5)
    levels = np.array([-1.0, 0.0, 1.0])
    # Nearest of the centres -1, 0, 1 (a tie would go to the higher one).
    bin_indices = np.argmin(
        np.abs(latents[:, :, None, None] + centres[None, None, :, None] - levels)
        - [0, 1e-12, 2e-12],
        axis=-1,
    )  # [N, d, bins]
    indices = np.argmin(np.abs(latents[:, :, None] + dithers[:, :, None] - levels), axis=-1)
    stored = prior.dithered_prior(bin_indices, dithers, indices, num_levels)
    assert stored["offset_bins"] == bins and stored["precision"] == 16
    cdf = np.asarray(stored["cdf"])
    assert cdf.shape == (d, bins, num_levels + 1)
    freq = np.diff(cdf, axis=-1)
    assert (freq >= 1).all() and (cdf[..., -1] == 2**16).all()
    for j in range(d):
        for b in range(bins):
            counts = np.bincount(bin_indices[:, j, b], minlength=3) + 1
            exact = counts / counts.sum() * 2**16
            assert np.abs(freq[j, b] - exact).max() <= 1.0 + 1e-9, (j, b)
    # Cross-entropy of the indices (their own dithers) under the stored tables.
    table_bins = np.clip(np.floor((dithers.astype(np.float64) + 0.5) * bins), 0, bins - 1)
    p = freq[np.arange(d)[None, :], table_bins.astype(int), indices] / 2**16
    assert stored["train_bits_per_image"] == pytest.approx(-np.log2(p).sum(axis=1).mean())
    flat = [row for rows in stored["cdf"] for row in rows]
    assert stored["digest"] == prior.digest(flat, 16)


# ------------------------------------------------------------------------------------------------
# Reading stored priors (the codec side).


def _stored(cdf, bins=None):
    """A stored prior with its digest (over the tables' rows, as the export computes it)."""
    rows = np.asarray(cdf).reshape(-1, np.asarray(cdf).shape[-1]).tolist()
    table = {"precision": 16, "cdf": cdf, "digest": prior.digest(rows, 16)}
    return table if bins is None else {**table, "offset_bins": bins}


def test_select_picks_the_method_prior():
    dithered = _stored([[[0, 1, 2, 65536]] * 2], bins=2)
    metadata = {"prior": {**_stored([[0, 1, 2, 65536]]), "dithered": dithered}}
    assert prior.select(metadata, "range") is metadata["prior"]
    assert prior.select(metadata, "dithered") is dithered
    with pytest.raises(ValueError, match="no dither-conditional prior"):
        prior.select({"prior": _stored([[0, 1, 2, 65536]])}, "dithered")
    for method in ("range", "dithered"):
        with pytest.raises(ValueError, match="has no entropy-coding prior; export it again"):
            prior.select({"num_levels": 3}, method)


def test_lookup_validates_and_lays_out_rows():
    cdf = [[0, 100, 65536], [0, 65000, 65536]]
    np.testing.assert_array_equal(
        prior.lookup(_stored(cdf), 2, 2, "range"), [[16, 0, 100, 65536], [16, 0, 65000, 65536]]
    )
    tables = [[[0, 1, 65536], [0, 2, 65536], [0, 3, 65536]]]  # d = 1, 3 bins
    table = prior.lookup(_stored(tables, bins=3), 2, 1, "dithered")
    assert table.dtype == np.int32 and table[:, 2].tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="expected CDF tables of shape"):
        prior.lookup(_stored(cdf), 3, 2, "range")
    with pytest.raises(ValueError, match="rise strictly"):
        prior.lookup(_stored([[0, 0, 65536]]), 2, 1, "range")
    with pytest.raises(ValueError, match="no usable prior tables"):
        prior.lookup({"cdf": cdf}, 2, 2, "range")
    with pytest.raises(ValueError, match="do not match their digest"):
        prior.lookup({**_stored(cdf), "digest": "0" * 16}, 2, 2, "range")


def test_table_index_and_min_bits():
    dithers = np.array([[-0.5, 0.0], [0.49, -0.26]], np.float32)  # L = 3, 4 bins
    np.testing.assert_array_equal(prior.table_index(dithers, 3, 4), [[0, 6], [3, 4]])
    # Rows j * bins + b; the cheapest table of each dimension sets its minimum cost.
    table = np.array(
        [
            [16, 0, 32768, 65536],  # dimension 0: largest probability 1/2 (1 bit)
            [16, 0, 16384, 65536],  # dimension 0: 3/4
            [16, 0, 32768, 65536],  # dimension 1: 1/2
            [16, 0, 8192, 65536],  # dimension 1: 7/8
        ]
    )
    expected = np.log2(4 / 3) + np.log2(8 / 7)
    assert prior.min_bits_per_image(table, 2) == pytest.approx(expected)
