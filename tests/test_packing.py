"""Tests for rdc_keras.packing: the fixed-length base-L payload of `.rdc` files.

Golden values are hand-packed base-L bit strings and lengths computed with math.log2.
"""

import math

import numpy as np
import pytest

from rdc_keras import codec, packing


@pytest.mark.parametrize(
    ("symbols", "num_levels", "expected"),
    [
        ([2, 1, 0], 3, bytes([0b10101000])),  # 2*9 + 1*3 + 0 = 21 in ceil(3 log2 3) = 5 bits
        ([3, 0, 1], 4, bytes([0b11000100])),  # 110001 in 6 bits
        ([1], 2, bytes([0b10000000])),
        ([2, 2, 2, 2, 2, 2], 3, bytes([0b10110110, 0b00000000])),  # 728 in 10 bits
        ([255, 0], 256, bytes([255, 0])),
    ],
)
def test_pack_fixed_hand_worked(symbols, num_levels, expected):
    assert packing.pack_fixed(np.array(symbols), num_levels) == expected
    np.testing.assert_array_equal(
        packing.unpack_fixed(expected, len(symbols), num_levels), np.array(symbols)
    )


@pytest.mark.parametrize("num_levels", [2, 3, 4, 5, 7, 16, 255, 256])
def test_pack_fixed_round_trip_and_length(num_levels):
    rng = np.random.default_rng(num_levels)
    for n in (1, 2, 39, 40, 41, 4095, 4096, 4097, 9001):
        symbols = rng.integers(0, num_levels, n)
        packed = packing.pack_fixed(symbols, num_levels)
        full, rest = divmod(n, 4096)
        bits = full * math.ceil(4096 * math.log2(num_levels) - 1e-9)
        bits += math.ceil(rest * math.log2(num_levels) - 1e-9) if rest else 0
        assert packing.fixed_length_bits(n, num_levels) == bits
        assert len(packed) == math.ceil(bits / 8)
        np.testing.assert_array_equal(packing.unpack_fixed(packed, n, num_levels), symbols)


def test_unpack_fixed_accepts_only_canonical_payloads():
    with pytest.raises(packing.BitstreamError, match="out of range"):
        packing.unpack_fixed(bytes([0b11000000]), 1, 3)  # 2 bits hold 3 >= L
    with pytest.raises(packing.BitstreamError, match="padding"):
        packing.unpack_fixed(bytes([0b10000001]), 1, 3)
    with pytest.raises(packing.BitstreamError, match="expected 1"):
        packing.unpack_fixed(bytes(2), 1, 3)


def test_codec_reexports_packing():
    """One BitstreamError class and one packer, reachable under their old codec names."""
    assert codec.BitstreamError is packing.BitstreamError
    assert issubclass(packing.BitstreamError, ValueError)
    for name in ("pack_fixed", "unpack_fixed", "fixed_length_bits"):
        assert getattr(codec, name) is getattr(packing, name)
        assert name in codec.__all__


def test_pack_fixed_refuses_symbols_out_of_range():
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        packing.pack_fixed(np.array([0, 3]), 3)
    assert packing.pack_fixed(np.zeros(0, np.int32), 3) == b""
    assert packing.unpack_fixed(b"", 0, 3).shape == (0,)
