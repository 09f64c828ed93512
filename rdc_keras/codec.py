"""The `.rdc` bitstream: many images' quantization indices in one checksummed file.

The sender runs the exported encoder (`rdc_keras.serving`) on N images with dither seeds
seed, seed + 1, ..., seed + N - 1 and stores the int32 [N, d] indices in a container; the
receiver rebuilds the same seeds, decodes the indices and runs an exported head. Layout of
format version 2 (big-endian; `varint`: unsigned LEB128 in its shortest form, at most 10 bytes;
the seed zigzag-coded), then the payload, then a CRC32 of everything before it::

    magic "\\x89RDC" | format version u8 (2) | method u8 | flags u8 (bit 0: names)
    encoder fingerprint, first 4 B | prior digest, first 4 B
    varint height | width | channels | L | d | count | seed | payload length
    names (flags bit 0): count x (varint byte length, UTF-8 name)
    payload | CRC32 u32

A single image costs 27 bytes of container besides its payload (version 1 spent 62). The 4-byte
prefixes identify the encoder and the prior; the receiver checks them against the export it is
given, whose full fingerprint and tables it uses. Names (each 1 to `MAX_NAME_BYTES` bytes of
UTF-8, no path separator, control character, "." or "..", unique in the file) are the images'
source names; `rdc-codec decompress` writes `<name>.png`. Version 1 files (58-byte fixed header:
magic, version, method, reserved u16, 16-byte fingerprint, 8-byte prior digest, height, width,
channels, L, d as u16, count u32, seed i64, payload length u32) are still read.

Payload methods (the smallest one is chosen unless forced):

* dithered (2): one range-coded stream of all N * d indices, image-major, index (i, j) coded
  with P(k | u_ij), the table of dimension j for the bin of its dither u_ij
  (`rdc_keras.prior.table_index`) in the encoder export's dither-conditional prior. The receiver
  regenerates u from the seeds, so conditioning costs nothing and codes at about H(K | U), the
  rate of universal quantization, instead of H(K).
* range (1): the same stream coded with the per-dimension table j of the export's marginal prior
  P(k). Both priors are integer CDF tables built once at export from the training split
  (ecosystem notes §1.3); coding uses tensorflow-compression's range coder in this process,
  never in a serving graph. This is the only module that imports tensorflow_compression (lazily).
* fixed (0): the indices as base-L digits, packed in chunks of 4,096 symbols, each chunk a
  ceil(4096 * log2 L)-bit big-endian integer (the last chunk shorter): ceil(N * d * log2 L) bits
  up to one bit per chunk, then zero bits up to a byte boundary. Needs only numpy.

Every damaged or foreign file raises `BitstreamError` with a one-line reason, never garbage: the
header is bounded before anything is allocated, the CRC covers header and payload, and both
payload decoders accept only canonical encodings (a range-coded payload must re-encode to the
same bytes; a packed chunk must be < L**n with zero padding), so even a payload altered with a
recomputed CRC is refused unless it is exactly the encoding of other valid indices.

This module owns the container and the range coding; it calls the owners of the rest:
`rdc_keras.prior` selects and validates the stored tables and picks each index's table,
`rdc_keras.packing` packs fixed-length payloads (and defines `BitstreamError`),
`rdc_keras.images.check_images` validates image batches (these names are re-exported here),
`rdc_keras.layers` gives the seeds, dithers and rate bound (imported lazily: parsing and
fixed-length files need no TensorFlow) and `rdc_keras.serving` loads exports given as paths.
(Length: about 490 lines, because the container layout, its bounds, the canonical-encoding
checks and both range-coded methods are one format, documented and checked in one file.)
"""

from __future__ import annotations

import dataclasses
import numbers
import os
import struct
import zlib
from typing import Any

import numpy as np

from rdc_keras import prior
from rdc_keras.images import check_images
from rdc_keras.packing import BitstreamError, fixed_length_bits, pack_fixed, unpack_fixed

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_NAME_BYTES",
    "METHODS",
    "MIN_OVERHEAD_BYTES",
    "V1_OVERHEAD_BYTES",
    "BitstreamError",
    "Header",
    "check_images",
    "check_names",
    "compress",
    "decode_indices",
    "decompress",
    "decompress_named",
    "describe",
    "encode_indices",
    "fixed_length_bits",
    "pack_fixed",
    "parse",
    "range_decode",
    "range_encode",
    "unpack_fixed",
]

MAGIC = b"\x89RDC"
FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)
METHODS = {"fixed": 0, "range": 1, "dithered": 2}
_METHOD_NAMES = {code: name for name, code in METHODS.items()}
_HEADER_V1 = struct.Struct(">4sBBH16s8sHHHHHIqI")  # 58 bytes
_FIXED_V2 = struct.Struct(">4sBBB4s4s")  # 15 bytes, then 8 varints
_CRC = struct.Struct(">I")
_FLAG_NAMES = 0x01
MIN_OVERHEAD_BYTES = _FIXED_V2.size + 8 + _CRC.size  # 27: one image, no names
V1_OVERHEAD_BYTES = _HEADER_V1.size + _CRC.size  # 62: every version 1 file
MAX_NAME_BYTES = 255
_MAX_VARINT_BYTES = 10

# Bounds checked on every header before anything is allocated.
MAX_COUNT = 10_000_000
MAX_SIDE = 4096  # height, width and channels
MAX_LEVELS = 256
MAX_LATENT_DIM = 4096
MAX_SYMBOLS = 2**26  # N * d: at most 256 MiB of int32 indices
_INT64_MAX = 2**63 - 1
# Slack of the range-coded length bound: the coder can end a stream a few bytes before the
# information content of its symbols (32-bit state plus flushing), never 64 bits before it.
_RANGE_SLACK_BITS = 64


@dataclasses.dataclass(frozen=True)
class Header:
    """An `.rdc` header (see the module docstring).

    `fingerprint` and `prior_digest` are hex prefixes of the encoder's fingerprint and of the
    prior's digest: 8 hex digits each in version 2, 32 and 16 in version 1 (the full values).
    """

    method: str
    fingerprint: str
    prior_digest: str
    image_shape: tuple[int, int, int]
    num_levels: int
    latent_dim: int
    count: int
    seed: int
    payload_length: int
    names: tuple[str, ...] | None = None
    version: int = FORMAT_VERSION

    @property
    def seeds(self) -> np.ndarray:
        """int64 dither seeds of the N images: seed + i."""
        from rdc_keras.layers import image_seeds

        return image_seeds(self.seed, self.count)


# ------------------------------------------------------------------------------------------------
# Range coding (tensorflow-compression, imported lazily).


def _tfc():
    """The range-coder ops: `tensorflow-compression-ops` (TF 2.17 and later), else the full
    `tensorflow-compression` (TF 2.14). Both expose the same eight ops at top level and write
    byte-identical payloads for the same symbols and tables."""
    try:
        import tensorflow_compression_ops as tfc
    except ImportError:
        try:
            import tensorflow_compression as tfc
        except ImportError as error:  # pragma: no cover - a pinned dependency
            raise ImportError(
                "range-coded .rdc payloads need tensorflow-compression==2.14.1 (TF 2.14) or "
                "tensorflow-compression-ops (TF 2.17)"
            ) from error
    return tfc


def range_encode(
    indices: np.ndarray, lookup: np.ndarray, table_index: np.ndarray | None = None
) -> bytes:
    """Range-codes int32 [N, d] indices in one stream.

    Index (i, j) uses the CDF in lookup[table_index[i, j]], or lookup[j] when table_index is None.
    """
    tfc = _tfc()
    indices = np.ascontiguousarray(indices, np.int32)
    handle = tfc.create_range_encoder([], lookup)
    if table_index is None:
        handle = tfc.entropy_encode_channel(handle, indices)
    else:
        table_index = np.ascontiguousarray(table_index, np.int32)
        handle = tfc.entropy_encode_index(handle, table_index, indices)
    return bytes(tfc.entropy_encode_finalize(handle).numpy())


def range_decode(
    payload: bytes, lookup: np.ndarray, count: int, table_index: np.ndarray | None = None
) -> np.ndarray:
    """Decodes `count` rows of range-coded indices; refuses any non-canonical payload.

    `table_index` must be the [count, d] table rows the payload was encoded with (None: d
    per-dimension tables).
    """
    import tensorflow as tf

    tfc = _tfc()
    handle = tfc.create_range_decoder(payload, lookup)
    if table_index is None:
        shape = tf.constant([count, lookup.shape[0]], tf.int32)
        handle, indices = tfc.entropy_decode_channel(handle, shape, tf.int32)
    else:
        table_index = np.ascontiguousarray(table_index, np.int32)
        shape = tf.constant(table_index.shape, tf.int32)
        handle, indices = tfc.entropy_decode_index(handle, table_index, shape, tf.int32)
    if not bool(tfc.entropy_decode_finalize(handle).numpy()):
        raise BitstreamError("range-coded payload is corrupt (the decoder did not finish cleanly)")
    indices = indices.numpy()
    # The decoder reads any bytes; only the encoder's own output is a valid payload.
    if range_encode(indices, lookup, table_index) != payload:
        raise BitstreamError("range-coded payload is corrupt (it is not a canonical encoding)")
    return indices


# ------------------------------------------------------------------------------------------------
# Container.


def _check_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _check_bounds(header: Header, error: type[Exception]) -> None:
    """Size limits shared by the writer (ValueError) and the reader (BitstreamError)."""
    height, width, channels = header.image_shape
    checks = [
        (1 <= min(header.image_shape) and max(header.image_shape) <= MAX_SIDE, "image shape"),
        (2 <= header.num_levels <= MAX_LEVELS, "L (number of levels)"),
        (1 <= header.latent_dim <= MAX_LATENT_DIM, "d (latent dimension)"),
        (1 <= header.count <= MAX_COUNT, "image count"),
        (header.count * header.latent_dim <= MAX_SYMBOLS, "number of indices (count * d)"),
        (-(2**63) <= header.seed and header.seed + header.count - 1 <= _INT64_MAX, "seed"),
    ]
    for ok, what in checks:
        if not ok:
            raise error(
                f"{what} out of range (image {height}x{width}x{channels}, L={header.num_levels}, "
                f"d={header.latent_dim}, count={header.count}, seed={header.seed}; limits: "
                f"sides <= {MAX_SIDE}, L <= {MAX_LEVELS}, d <= {MAX_LATENT_DIM}, "
                f"count <= {MAX_COUNT}, count * d <= {MAX_SYMBOLS})"
            )


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _zigzag(value: int) -> int:
    return 2 * value if value >= 0 else -2 * value - 1


def _unzigzag(value: int) -> int:
    return value // 2 if value % 2 == 0 else -(value + 1) // 2


def check_names(names: Any, count: int, error: type[Exception] = ValueError) -> tuple[str, ...]:
    """The images' names as stored: `count` strings, each 1 to MAX_NAME_BYTES bytes of UTF-8
    usable as a file name (no path separator, NUL or control character, not "." or ".."), no
    two equal up to letter case (they become `<name>.png` files on any file system).
    """
    names = tuple(names)
    if len(names) != count:
        raise error(f"{len(names)} names for {count} images")
    for index, name in enumerate(names):
        if not isinstance(name, str):
            raise error(f"name of image {index} must be a string, got {type(name).__name__}")
        size = len(name.encode("utf-8", "surrogatepass"))
        bad = [c for c in name if c in "/\\" or ord(c) < 32 or ord(c) == 127]
        if not 1 <= size <= MAX_NAME_BYTES or name in (".", "..") or bad:
            raise error(
                f"name of image {index} {name!r} is not a file name of 1 to {MAX_NAME_BYTES} "
                "UTF-8 bytes without path separators or control characters"
            )
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise error(f"name of image {index} {name!r} is not valid Unicode") from None
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        key = name.casefold()  # unique as file names on case-insensitive file systems too
        if key in seen:
            raise error(
                f"images {seen[key]} and {index} have the same name {names[seen[key]]!r} / "
                f"{name!r} (names must differ beyond letter case)"
            )
        seen[key] = index
    return names


def _pack(header: Header, payload: bytes) -> bytes:
    flags = _FLAG_NAMES if header.names is not None else 0
    fields = _FIXED_V2.pack(
        MAGIC,
        FORMAT_VERSION,
        METHODS[header.method],
        flags,
        bytes.fromhex(header.fingerprint)[:4],
        bytes.fromhex(header.prior_digest)[:4],
    )
    numbers_ = (*header.image_shape, header.num_levels, header.latent_dim, header.count)
    fields += b"".join(_varint(v) for v in (*numbers_, _zigzag(header.seed), len(payload)))
    for name in header.names or ():
        encoded = name.encode("utf-8")
        fields += _varint(len(encoded)) + encoded
    body = fields + payload
    return body + _CRC.pack(zlib.crc32(body))


class _Reader:
    """Reads varints and byte strings from a header, refusing truncated or overlong fields."""

    def __init__(self, data: bytes, position: int, end: int) -> None:
        self.data, self.position, self.end = data, position, end

    def varint(self, what: str) -> int:
        value, shift = 0, 0
        for count in range(1, _MAX_VARINT_BYTES + 1):
            if self.position >= self.end:
                raise BitstreamError(f"truncated header (in the {what} field)")
            byte = self.data[self.position]
            self.position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                if byte == 0 and count > 1:
                    raise BitstreamError(f"{what} field is not in its shortest form")
                if value >= 2**64:
                    raise BitstreamError(f"{what} field exceeds 64 bits")
                return value
        raise BitstreamError(f"{what} field is longer than {_MAX_VARINT_BYTES} bytes")

    def take(self, size: int, what: str) -> bytes:
        if self.position + size > self.end:
            raise BitstreamError(f"truncated header (in {what})")
        chunk = self.data[self.position : self.position + size]
        self.position += size
        return chunk


def _parse_v1(data: bytes) -> tuple[Header, int, int]:
    """Version 1: the fixed 58-byte header; returns (header, payload start)."""
    if len(data) < _HEADER_V1.size + _CRC.size:
        raise BitstreamError(
            f"truncated file: {len(data)} bytes, a version 1 .rdc file has at least "
            f"{_HEADER_V1.size + _CRC.size}"
        )
    fields = _HEADER_V1.unpack_from(data)
    _, _, method, reserved, fingerprint, prior_digest = fields[:6]
    height, width, channels, num_levels, latent_dim, count, seed, payload_length = fields[6:]
    actual = len(data) - _HEADER_V1.size - _CRC.size
    if payload_length != actual:
        raise BitstreamError(
            f"the header declares a {payload_length}-byte payload but the file holds {actual} "
            "(truncated or extended file)"
        )
    _check_crc(data)
    if reserved != 0:
        raise BitstreamError(f"reserved header field is {reserved}, expected 0")
    header = Header(
        method=_method_name(method),
        fingerprint=fingerprint.hex(),
        prior_digest=prior_digest.hex(),
        image_shape=(height, width, channels),
        num_levels=num_levels,
        latent_dim=latent_dim,
        count=count,
        seed=seed,
        payload_length=payload_length,
        version=1,
    )
    _check_bounds(header, BitstreamError)
    return header, _HEADER_V1.size


def _parse_v2(data: bytes) -> tuple[Header, int]:
    """Version 2: fixed fields, varints, optional names; returns (header, payload start)."""
    if len(data) < MIN_OVERHEAD_BYTES:
        raise BitstreamError(
            f"truncated file: {len(data)} bytes, an .rdc file has at least {MIN_OVERHEAD_BYTES}"
        )
    _, _, method, flags, fingerprint, prior_digest = _FIXED_V2.unpack_from(data)
    end = len(data) - _CRC.size
    reader = _Reader(data, _FIXED_V2.size, end)
    fields = ("height", "width", "channels", "L", "d", "count", "seed", "payload length")
    values = [reader.varint(what) for what in fields]
    height, width, channels, num_levels, latent_dim, count, seed, payload_length = values
    seed = _unzigzag(seed)
    # Before anything is allocated for names: the sizes are bounded and the CRC holds.
    if flags & ~_FLAG_NAMES:
        raise BitstreamError(f"unknown header flags {flags:#04x} (expected 0 or 1)")
    if payload_length > end - reader.position:
        raise BitstreamError(
            f"the header declares a {payload_length}-byte payload but the file holds at most "
            f"{end - reader.position} (truncated or extended file)"
        )
    _check_crc(data)
    header = Header(
        method=_method_name(method),
        fingerprint=fingerprint.hex(),
        prior_digest=prior_digest.hex(),
        image_shape=(height, width, channels),
        num_levels=num_levels,
        latent_dim=latent_dim,
        count=count,
        seed=seed,
        payload_length=payload_length,
    )
    _check_bounds(header, BitstreamError)
    names = None
    if flags & _FLAG_NAMES:
        raw = []
        for index in range(count):
            size = reader.varint(f"length of name {index}")
            if not 1 <= size <= MAX_NAME_BYTES:
                raise BitstreamError(f"name {index} has {size} bytes (1 to {MAX_NAME_BYTES})")
            chunk = reader.take(size, f"name {index}")
            try:
                raw.append(chunk.decode("utf-8"))
            except UnicodeDecodeError:
                raise BitstreamError(f"name {index} is not UTF-8") from None
        names = check_names(raw, count, BitstreamError)
    if end - reader.position != payload_length:
        raise BitstreamError(
            f"the header declares a {payload_length}-byte payload but the file holds "
            f"{end - reader.position} (truncated or extended file)"
        )
    return dataclasses.replace(header, names=names), reader.position


def _method_name(code: int) -> str:
    if code not in _METHOD_NAMES:
        raise BitstreamError(
            f"unknown coding method {code} (expected 0 fixed, 1 range or 2 dithered)"
        )
    return _METHOD_NAMES[code]


def _check_crc(data: bytes) -> None:
    (stored_crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[: -_CRC.size]) != stored_crc:
        raise BitstreamError("CRC32 mismatch: the file is damaged")


def parse(data: bytes) -> tuple[Header, bytes]:
    """Checks a container's structure and CRC; returns (header, payload). Needs no export.

    Reads format versions 1 and 2.

    Raises:
      BitstreamError: truncated, extended, damaged, foreign or out-of-bounds file.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f".rdc data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < len(MAGIC) + 1:
        raise BitstreamError(f"truncated file: {len(data)} bytes")
    if data[: len(MAGIC)] != MAGIC:
        raise BitstreamError(f"not an .rdc file (magic {data[:4]!r}, expected {MAGIC!r})")
    version = data[len(MAGIC)]
    if version not in READ_VERSIONS:
        raise BitstreamError(
            f"unsupported .rdc format version {version} (this reader handles "
            f"{', '.join(map(str, READ_VERSIONS))})"
        )
    header, start = _parse_v1(data) if version == 1 else _parse_v2(data)  # each checks bounds
    if header.method == "fixed":
        expected = (fixed_length_bits(header.count * header.latent_dim, header.num_levels) + 7) // 8
        if header.payload_length != expected:
            raise BitstreamError(
                f"fixed-length payload has {header.payload_length} bytes, expected {expected} "
                f"for {header.count} images of {header.latent_dim} {header.num_levels}-level "
                "indices"
            )
    return header, data[start : -_CRC.size]


def describe(data: bytes) -> dict[str, Any]:
    """Sizes of a container: payload bits per image vs the fixed-rate bound d * log2 L."""
    header, payload = parse(data)
    from rdc_keras.layers import rate_bits

    bound = rate_bits(header.latent_dim, header.num_levels)
    bits = 8 * len(payload) / header.count
    return {
        "count": header.count,
        "method": header.method,
        "num_levels": header.num_levels,
        "latent_dim": header.latent_dim,
        "image_shape": list(header.image_shape),
        "seed": header.seed,
        "format_version": header.version,
        "names": header.names is not None,
        "file_bytes": len(data),
        "payload_bytes": len(payload),
        "container_overhead_bytes": len(data) - len(payload),
        "payload_bits_per_image": bits,
        "file_bytes_per_image": len(data) / header.count,
        "bound_bits_per_image": bound,
        "fixed_bits_per_image": fixed_length_bits(
            header.count * header.latent_dim, header.num_levels
        )
        / header.count,
        "saving_vs_bound": 1.0 - bits / bound,
    }


# ------------------------------------------------------------------------------------------------
# Indices <-> container (needs only the encoder export's metadata).


def _metadata(encoder: Any) -> dict[str, Any]:
    return encoder.metadata if hasattr(encoder, "metadata") else dict(encoder)


def _table_rows(header: Header, stored: dict[str, Any]) -> np.ndarray:
    """Row of the dithered lookup for every index [N, d], from the dithers of the header's seeds."""
    from rdc_keras.layers import dither

    dithers = dither(header.seeds, header.latent_dim, header.num_levels).numpy()
    return prior.table_index(dithers, header.num_levels, int(stored["offset_bins"]))


def encode_indices(
    indices: np.ndarray,
    encoder: Any,
    seed: int,
    method: str = "auto",
    names: Any = None,
) -> bytes:
    """Wraps int32 [N, d] indices (made with seeds seed + i) in an `.rdc` container.

    Args:
      indices: the exported encoder's output for N images.
      encoder: the encoder export (`rdc_keras.serving.ExportedModel`) or its metadata dict.
      seed: base dither seed the indices were made with.
      method: "auto" (the smallest payload), "dithered", "range" or "fixed". "auto" tries
        "dithered" only when the export has a dither-conditional prior.
      names: None, or one name per image (`check_names`), stored with the images.
    """
    meta = _metadata(encoder)
    if method not in ("auto", *METHODS):
        raise ValueError(f"method must be 'auto', 'dithered', 'range' or 'fixed', got {method!r}")
    num_levels, latent_dim = int(meta["num_levels"]), int(meta["latent_dim"])
    indices = np.asarray(indices)
    if indices.ndim != 2 or indices.shape[1] != latent_dim or indices.dtype.kind not in "iu":
        raise ValueError(
            f"indices must be integers of shape [N, {latent_dim}], got {indices.shape}"
        )
    if indices.size and (indices.min() < 0 or indices.max() >= num_levels):
        raise ValueError(f"indices must lie in [0, {num_levels})")
    marginal = prior.select(meta, "range")
    marginal_lookup = prior.lookup(marginal, num_levels, latent_dim, "range")  # checks its digest
    header = Header(
        method="fixed",
        fingerprint=meta["encoder_fingerprint"],
        prior_digest=marginal["digest"],
        image_shape=tuple(int(s) for s in meta["image_shape"]),
        num_levels=num_levels,
        latent_dim=latent_dim,
        count=len(indices),
        seed=_check_int(seed, "seed"),
        payload_length=0,
        names=None if names is None else check_names(names, len(indices)),
    )
    _check_bounds(header, ValueError)
    payloads, digests = {}, {}
    if method in ("auto", "fixed"):
        payloads["fixed"] = pack_fixed(indices, num_levels)
    if method in ("auto", "range"):
        payloads["range"] = range_encode(indices.astype(np.int32), marginal_lookup)
        digests["range"] = marginal["digest"]
    if method == "dithered" or (method == "auto" and meta.get("prior", {}).get("dithered")):
        stored = prior.select(meta, "dithered")
        lookup = prior.lookup(stored, num_levels, latent_dim, "dithered")
        rows = _table_rows(header, stored)
        payloads["dithered"] = range_encode(indices.astype(np.int32), lookup, rows)
        digests["dithered"] = stored["digest"]
    chosen = min(payloads, key=lambda name: (len(payloads[name]), METHODS[name]))
    payload = payloads[chosen]
    header = dataclasses.replace(
        header,
        method=chosen,
        prior_digest=digests.get(chosen, header.prior_digest),
        payload_length=len(payload),
    )
    return _pack(header, payload)


def decode_indices(data: bytes, encoder: Any) -> tuple[Header, np.ndarray]:
    """Parses a container and returns (header, int32 [N, d] indices).

    Raises:
      BitstreamError: damaged or foreign file, or one written with another encoder or prior.
    """
    header, payload = parse(data)
    meta = _metadata(encoder)
    if not str(meta["encoder_fingerprint"]).startswith(header.fingerprint):
        raise BitstreamError(
            f"file was written by encoder {header.fingerprint[:12]}, not by this export's "
            f"encoder {meta['encoder_fingerprint'][:12]} (fingerprint mismatch)"
        )
    expected = (tuple(meta["image_shape"]), int(meta["num_levels"]), int(meta["latent_dim"]))
    if (tuple(header.image_shape), header.num_levels, header.latent_dim) != expected:
        raise BitstreamError(
            f"file holds {header.image_shape} images with L={header.num_levels}, "
            f"d={header.latent_dim}; the encoder export has {expected}"
        )
    num_symbols = header.count * header.latent_dim
    # Every method records the digest of the prior it was written with (fixed: the marginal's).
    method = "range" if header.method == "fixed" else header.method
    try:
        stored = prior.select(meta, method)
    except ValueError as error:
        raise BitstreamError(f"file is coded with method {header.method!r}, but {error}") from None
    if not str(stored.get("digest")).startswith(header.prior_digest):
        raise BitstreamError(
            f"file was coded with prior {header.prior_digest}, the encoder export has "
            f"{stored.get('digest')} (re-exported with another prior?)"
        )
    try:  # the stored tables must match their digest (an edited export is refused)
        lookup = prior.lookup(stored, header.num_levels, header.latent_dim, method)
    except ValueError as error:
        raise BitstreamError(str(error)) from None
    if header.method == "fixed":
        symbols = unpack_fixed(payload, num_symbols, header.num_levels)
        return header, symbols.reshape(header.count, header.latent_dim)
    min_bits = prior.min_bits_per_image(lookup, header.latent_dim)
    if header.count * min_bits > 8 * len(payload) + _RANGE_SLACK_BITS:
        raise BitstreamError(
            f"a {len(payload)}-byte range-coded payload cannot hold {header.count} images"
        )
    table_index = _table_rows(header, stored) if header.method == "dithered" else None
    return header, range_decode(payload, lookup, header.count, table_index)


# ------------------------------------------------------------------------------------------------
# Images <-> container.


def _load(model: Any, kind: str, encoder: Any = None) -> Any:
    if not isinstance(model, str | os.PathLike):
        return model
    from rdc_keras import serving

    return serving.load_encoder(model) if kind == "encoder" else serving.load_head(model, encoder)


def compress(
    images: Any,
    encoder: Any,
    seed: int = 0,
    method: str = "auto",
    batch_size: int = 1024,
    names: Any = None,
) -> bytes:
    """Encodes float32 images [N, H, W, C] (or one [H, W, C]) in [0, 1] into `.rdc` bytes.

    Args:
      images: the images, shaped like the encoder export's image shape.
      encoder: an exported encoder (`rdc_keras.serving.load_encoder`) or its directory.
      seed: base dither seed; image i uses seed + i.
      method: "auto" (smallest payload), "dithered", "range" or "fixed".
      batch_size: images per encoder call.
      names: None, or one name per image (e.g. its source file's stem; see `check_names`).
    """
    encoder = _load(encoder, "encoder")
    images = check_images(images, encoder.image_shape)
    seed = _check_int(seed, "seed")
    if not 1 <= len(images) <= MAX_COUNT:
        raise ValueError(f"need 1 to {MAX_COUNT} images, got {len(images)}")
    if not -(2**63) <= seed <= _INT64_MAX - (len(images) - 1):
        raise ValueError(f"seed {seed} + image index must fit in int64")
    from rdc_keras.layers import image_seeds

    if names is not None:
        check_names(names, len(images))  # before the encoder runs
    indices = encoder.encode(images, image_seeds(seed, len(images)), batch_size=batch_size)
    return encode_indices(indices, encoder, seed, method, names)


def decompress(data: bytes, encoder: Any, head: Any, batch_size: int = 1024) -> np.ndarray:
    """Decodes `.rdc` bytes into float32 images [N, H, W, C] with an exported head.

    `decompress_named` also returns the images' stored names.

    Args:
      data: the file's bytes.
      encoder: the encoder export the file was written with (only its metadata is read: the
        fingerprint and the prior tables), or its directory.
      head: an exported head trained on that encoder, or its directory.
      batch_size: images per head call.

    Raises:
      BitstreamError: damaged or foreign file.
      ValueError: the head belongs to another encoder.
    """
    return decompress_named(data, encoder, head, batch_size)[0]


def decompress_named(
    data: bytes, encoder: Any, head: Any, batch_size: int = 1024
) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """`decompress`, and the images' names as compress stored them (None when it stored none)."""
    encoder = _load(encoder, "encoder")
    head = _load(head, "head", encoder)
    if head.fingerprint != encoder.fingerprint:
        raise ValueError(
            f"head {head.path} was trained on encoder {head.fingerprint[:12]}, not on "
            f"{encoder.fingerprint[:12]} (encoder fingerprint mismatch)"
        )
    header, indices = decode_indices(data, encoder)
    return head.decode(indices, header.seeds, batch_size=batch_size), header.names
