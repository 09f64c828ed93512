"""Fixed-length base-L packing: the `.rdc` "fixed" payload, in numpy and Python integers only.

L-ary symbols are read as base-L digits, most significant first, in chunks of 4,096 symbols;
each chunk is the ceil(n * log2 L)-bit big-endian integer those digits spell (the last chunk
holds the n < 4,096 remaining symbols). The chunks are concatenated and zero bits pad the end to
a byte boundary, so N symbols cost ceil(N log2 L) bits up to one bit per chunk, without any
entropy model. `unpack_fixed` accepts only `pack_fixed`'s own output (exact length, zero padding,
every chunk < L**n) and raises `BitstreamError` otherwise; `rdc_keras.codec` re-exports all three.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["BitstreamError", "fixed_length_bits", "pack_fixed", "unpack_fixed"]

_CHUNK = 4096  # symbols per fixed-length chunk


class BitstreamError(ValueError):
    """A damaged, truncated, foreign or unsupported `.rdc` file."""


@functools.lru_cache(maxsize=256)
def _chunk_bits(num_symbols: int, num_levels: int) -> int:
    """ceil(num_symbols * log2 L), exactly: the bit length of L**n - 1."""
    return (num_levels**num_symbols - 1).bit_length()


def fixed_length_bits(num_symbols: int, num_levels: int) -> int:
    """Payload bits of `num_symbols` L-ary symbols packed as fixed-length chunks."""
    full, rest = divmod(int(num_symbols), _CHUNK)
    bits = full * _chunk_bits(_CHUNK, num_levels)
    return bits + (_chunk_bits(rest, num_levels) if rest else 0)


@functools.lru_cache(maxsize=256)
def _block(num_levels: int) -> tuple[int, int]:
    """(k, L**k): the most base-L digits whose value fits below 2**63 (a numpy uint64 lane)."""
    k = 1
    while num_levels ** (k + 1) < 2**63:
        k += 1
    return k, num_levels**k


def _powers(num_levels: int, k: int) -> np.ndarray:
    return np.array([num_levels ** (k - 1 - i) for i in range(k)], np.uint64)


def _chunk_value(digits: np.ndarray, num_levels: int) -> int:
    """The integer whose base-L digits (most significant first) are `digits`."""
    k, base = _block(num_levels)
    head = len(digits) % k
    value = int(digits[:head].astype(np.uint64) @ _powers(num_levels, head)) if head else 0
    body = digits[head:].astype(np.uint64).reshape(-1, k) @ _powers(num_levels, k)
    for block in body.tolist():
        value = value * base + block
    return value


def _chunk_digits(value: int, n: int, num_levels: int) -> np.ndarray:
    """Inverse of `_chunk_value` for a value < L**n: n base-L digits, most significant first."""
    k, base = _block(num_levels)
    blocks = []
    for _ in range(n // k):
        value, block = divmod(value, base)
        blocks.append(block)
    head = n % k
    digits = []
    if head:
        digits.append((value // _powers(num_levels, head).astype(object)) % num_levels)
    if blocks:
        body = np.array(blocks[::-1], np.uint64)[:, None] // _powers(num_levels, k)[None, :]
        digits.append((body % np.uint64(num_levels)).ravel())
    return np.concatenate(digits).astype(np.int32) if digits else np.zeros(0, np.int32)


def _int_to_bits(value: int, num_bits: int) -> np.ndarray:
    raw = np.frombuffer(value.to_bytes((num_bits + 7) // 8, "big"), np.uint8)
    return np.unpackbits(raw)[-num_bits:] if num_bits else np.zeros(0, np.uint8)


def _bits_to_int(bits: np.ndarray) -> int:
    padded = np.concatenate([np.zeros((-len(bits)) % 8, np.uint8), bits])
    return int.from_bytes(np.packbits(padded).tobytes(), "big")


def pack_fixed(symbols: np.ndarray, num_levels: int) -> bytes:
    """Packs L-ary symbols (flat, values in [0, L)) into `fixed_length_bits` bits, zero-padded."""
    symbols = np.asarray(symbols).ravel()
    if symbols.size and (symbols.min() < 0 or symbols.max() >= num_levels):
        raise ValueError(f"symbols must lie in [0, {num_levels})")
    pieces = []
    for start in range(0, symbols.size, _CHUNK):
        chunk = symbols[start : start + _CHUNK]
        pieces.append(
            _int_to_bits(_chunk_value(chunk, num_levels), _chunk_bits(len(chunk), num_levels))
        )
    bits = np.concatenate(pieces) if pieces else np.zeros(0, np.uint8)
    return np.packbits(bits).tobytes()


def unpack_fixed(payload: bytes, num_symbols: int, num_levels: int) -> np.ndarray:
    """Inverse of `pack_fixed`; raises BitstreamError unless payload is its canonical output."""
    total = fixed_length_bits(num_symbols, num_levels)
    if len(payload) != (total + 7) // 8:
        raise BitstreamError(
            f"fixed-length payload has {len(payload)} bytes, expected {(total + 7) // 8}"
        )
    bits = np.unpackbits(np.frombuffer(payload, np.uint8))
    if bits[total:].any():
        raise BitstreamError("fixed-length payload has non-zero padding bits")
    out, offset = [], 0
    for start in range(0, num_symbols, _CHUNK):
        n = min(_CHUNK, num_symbols - start)
        width = _chunk_bits(n, num_levels)
        value = _bits_to_int(bits[offset : offset + width])
        if value >= num_levels**n:
            raise BitstreamError("fixed-length payload holds a value out of range for L levels")
        out.append(_chunk_digits(value, n, num_levels))
        offset += width
    return np.concatenate(out) if out else np.zeros(0, np.int32)
