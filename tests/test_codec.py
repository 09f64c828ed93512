"""Tests for rdc_keras.codec and rdc-codec: container layout, range coding, robustness.

Fixed-length packing is tested in test_packing.py, the prior tables in test_prior.py and image
files in test_images.py. Golden values are independent: struct/zlib reads of the header layout,
numpy cross-entropies for the range coder, and the exported SavedModels called directly for the
in-memory reference. A trained digits export and an untrained "foreign" export (another encoder)
are built once per session.
"""

import copy
import json
import math
import os
import pathlib
import re
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from conftest import untrained_digits_export

from rdc_keras import codec, data, export, networks, prior, runs
from rdc_keras.config import TrainConfig
from rdc_keras.layers import dither
from rdc_keras.trainers.runner import train_run

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("RDC_TRACEBACK", None)
    return env


def _recrc(blob: bytes) -> bytes:
    """Recomputes the trailing CRC32 so that only the decoder's own checks can object."""
    body = blob[:-4]
    return body + struct.pack(">I", zlib.crc32(body))


_FIELDS = ("height", "width", "channels", "L", "d", "count", "seed", "payload_length")


def _uvarint(value: int) -> bytes:
    """Unsigned LEB128, written here independently of the codec."""
    out = b""
    while value >= 0x80:
        out += bytes([value & 0x7F | 0x80])
        value >>= 7
    return out + bytes([value])


def _layout(blob: bytes) -> dict:
    """A version 2 container split into its fields (the format's own description, re-read)."""
    magic, version, method, flags, fingerprint, prior_ = struct.unpack_from(">4sBBB4s4s", blob)
    layout = dict(magic=magic, version=version, method=method, flags=flags)
    layout.update(fingerprint=fingerprint, prior=prior_, raw={})
    position = 15
    for field in _FIELDS:
        value, shift = 0, 0
        while True:
            byte = blob[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        layout[field] = value
    layout["seed"] = layout["seed"] // 2 if layout["seed"] % 2 == 0 else -(layout["seed"] + 1) // 2
    names = None
    if flags & 1:
        names = []
        for _ in range(layout["count"]):
            size = blob[position]  # names of < 128 bytes in these tests
            names.append(blob[position + 1 : position + 1 + size])
            position += 1 + size
    layout.update(names=names, payload=blob[position:-4], payload_start=position)
    assert zlib.crc32(blob[:-4]) == struct.unpack(">I", blob[-4:])[0]
    return layout


def _build(layout: dict) -> bytes:
    """Reassembles a layout (every field as given, `raw` byte strings replacing varints)."""
    out = struct.pack(
        ">4sBBB4s4s",
        layout["magic"],
        layout["version"],
        layout["method"],
        layout["flags"],
        layout["fingerprint"],
        layout["prior"],
    )
    for field in _FIELDS:
        value = layout[field]
        if field == "seed":
            value = 2 * value if value >= 0 else -2 * value - 1
        out += layout["raw"].get(field, _uvarint(value))
    for name in layout["names"] or ():
        out += _uvarint(len(name)) + name
    out += layout["payload"]
    return out + struct.pack(">I", zlib.crc32(out))


def _with(blob: bytes, **changes) -> bytes:
    """`blob` with some fields changed and a valid CRC (payload_length follows the payload
    unless given)."""
    layout = _layout(blob)
    layout.update(changes)
    if "payload" in changes and "payload_length" not in changes:
        layout["payload_length"] = len(layout["payload"])
    return _build(layout)


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """Trained digits export (encoder, head) and its export directory."""
    root = tmp_path_factory.mktemp("codec")
    classifier = root / "classifier"  # an untrained judge: the codec does not depend on it
    runs.save_classifier(classifier, networks.classifier("digits"), "digits")
    train_run(
        TrainConfig(
            workdir=str(root / "run"),
            dataset="digits",
            epochs=1,
            steps_per_epoch=3,
            classifier_dir=str(classifier),
            verbose=0,
        )
    )
    export.export_run(root / "run", root / "saved_models", "digits")
    export_dir = root / "saved_models" / "digits"
    encoder = export.load_encoder(export_dir)
    head = export.load_head(next((export_dir / "heads").iterdir()), encoder)
    return encoder, head, export_dir


@pytest.fixture(scope="session")
def foreign(tmp_path_factory):
    """An export of another (untrained) digits encoder with one head."""
    export_dir = untrained_digits_export(tmp_path_factory.mktemp("foreign"), "foreign")
    encoder = export.load_encoder(export_dir)
    return encoder, export.load_head(export_dir / "heads" / "h", encoder)


@pytest.fixture(scope="session")
def images() -> np.ndarray:
    return data.load_arrays("digits", "test")[0]


@pytest.fixture(scope="session")
def files(models, images):
    """Valid containers: 1, 7 and 360 images, each range-coded and fixed-length."""
    encoder = models[0]
    return {
        (n, method): codec.compress(images[:n], encoder, seed=11, method=method)
        for n in (1, 7, 360)
        for method in ("dithered", "range", "fixed")
    }


def _reference(models, images, seed):
    encoder, head, _ = models
    seeds = seed + np.arange(len(images), dtype=np.int64)
    return head.decode(encoder.encode(images, seeds), seeds)


# ------------------------------------------------------------------------------------------------
# Range coding against stored tables.


def _metadata(cdf, fingerprint="ab" * 16):
    cdf = [list(map(int, row)) for row in cdf]
    return {
        "encoder_fingerprint": fingerprint,
        "image_shape": [8, 8, 1],
        "num_levels": len(cdf[0]) - 1,
        "latent_dim": len(cdf),
        "prior": {"precision": 16, "cdf": cdf, "digest": prior.digest(cdf, 16)},
    }


def test_range_coding_beats_fixed_on_a_skewed_source():
    cdf = [[0, 3000, 62000, 65536], [0, 60000, 63000, 65536]]
    p = np.diff(np.asarray(cdf), axis=1) / 65536
    rng = np.random.default_rng(0)
    n = 2000
    indices = np.stack([rng.choice(3, n, p=p[j]) for j in range(2)], axis=1).astype(np.int32)
    meta = _metadata(cdf)
    ranged = codec.encode_indices(indices, meta, seed=0, method="range")
    fixed = codec.encode_indices(indices, meta, seed=0, method="fixed")
    auto = codec.encode_indices(indices, meta, seed=0)
    assert auto == ranged and len(ranged) < len(fixed)
    info = codec.describe(ranged)
    ideal = -sum(np.log2(p[j][indices[:, j]]).sum() for j in range(2))  # code length in bits
    assert ideal - 64 <= 8 * info["payload_bytes"] <= ideal * 1.01 + 64
    # 15 fixed bytes + varints 8, 8, 1, 3, 2, 2000 (2 B), seed 0, 268 (2 B) + CRC 4 = 29 bytes.
    assert info["payload_bytes"] == 268
    assert info["container_overhead_bytes"] == info["file_bytes"] - info["payload_bytes"] == 29
    assert info["bound_bits_per_image"] == pytest.approx(2 * math.log2(3))
    assert info["payload_bits_per_image"] < 0.5 * info["bound_bits_per_image"]
    _, decoded = codec.decode_indices(ranged, meta)
    np.testing.assert_array_equal(decoded, indices)
    # A uniform source cannot be compressed: auto falls back to fixed-length packing.
    uniform = rng.integers(0, 3, (n, 2))
    flat = _metadata([[0, 21845, 43690, 65536]] * 2)
    chosen = codec.encode_indices(uniform, flat, seed=0)
    assert codec.parse(chosen)[0].method == "fixed"
    assert len(chosen) <= len(codec.encode_indices(uniform, flat, seed=0, method="range"))


@pytest.mark.parametrize("method", ["fixed", "range", "dithered"])
def test_an_edited_prior_table_is_refused_by_every_method(method):
    """One CDF entry changed in assets/rdc.json (still a valid table): a clear error, never
    different indices."""
    tables = [[[0, 3000, 62000, 65536], [0, 20000, 40000, 65536]]] * 2
    meta = _dithered_metadata(tables)
    rng = np.random.default_rng(1)
    indices = rng.integers(0, 3, (50, 2)).astype(np.int32)
    blob = codec.encode_indices(indices, meta, seed=4, method=method)
    np.testing.assert_array_equal(codec.decode_indices(blob, meta)[1], indices)
    edited = copy.deepcopy(meta)
    target = (
        edited["prior"]["dithered"]["cdf"][1][0]
        if method == "dithered"
        else (edited["prior"]["cdf"][1])
    )
    target[1] += 1  # still rises strictly from 0 to 2**16
    with pytest.raises(codec.BitstreamError, match="do not match their digest"):
        codec.decode_indices(blob, edited)
    with pytest.raises(ValueError, match="do not match their digest"):
        codec.encode_indices(indices, edited, seed=4, method=method)


def test_an_export_without_a_prior_is_one_clear_error():
    meta = _metadata([[0, 3000, 62000, 65536]] * 2)
    blob = codec.encode_indices(np.zeros((3, 2), np.int32), meta, seed=0, method="fixed")
    del meta["prior"]
    with pytest.raises(ValueError, match="has no entropy-coding prior"):
        codec.encode_indices(np.zeros((3, 2), np.int32), meta, seed=0, method="fixed")
    with pytest.raises(codec.BitstreamError, match="has no entropy-coding prior"):
        codec.decode_indices(blob, meta)


def _dithered_metadata(tables, fingerprint="ab" * 16):
    """Metadata with a dithered prior: tables [d][bins][L + 1] (no marginal prior use)."""
    tables = [[list(map(int, row)) for row in rows] for rows in tables]
    meta = _metadata([rows[0] for rows in tables], fingerprint)
    flat = [row for rows in tables for row in rows]
    meta["prior"]["dithered"] = {
        "offset_bins": len(tables[0]),
        "precision": 16,
        "cdf": tables,
        "digest": prior.digest(flat, 16),
    }
    return meta


def test_dithered_coding_reaches_the_conditional_code_length():
    """A source whose index is nearly fixed by the dither: P(k | u) codes it far below P(k)."""
    num_levels, bins, n = 3, 4, 3000
    # Bin b of dimension 0 makes symbol b % 3 likely; dimension 1 ignores the dither.
    likely = [[0, 62000, 64000, 65536], [0, 1000, 64000, 65536], [0, 1000, 2000, 65536]]
    tables = [[likely[b % 3] for b in range(bins)], [[0, 30000, 50000, 65536]] * bins]
    meta = _dithered_metadata(tables)
    seeds = 5 + np.arange(n, dtype=np.int64)
    u = dither(seeds, 2, num_levels).numpy()
    table_bins = prior.offset_bins(u, num_levels, bins)
    freq = np.diff(np.asarray(tables, np.float64), axis=-1) / 2**16  # [d, bins, L]
    rng = np.random.default_rng(1)
    indices = np.stack(
        [[rng.choice(num_levels, p=freq[j, table_bins[i, j]]) for i in range(n)] for j in range(2)],
        axis=1,
    ).astype(np.int32)
    blob = codec.encode_indices(indices, meta, seed=5, method="dithered")
    chosen = freq[np.arange(2)[None, :], table_bins, indices]
    ideal = -np.log2(chosen).sum()  # code length under the conditional tables, in bits
    info = codec.describe(blob)
    assert info["method"] == "dithered"
    assert ideal - 64 <= 8 * info["payload_bytes"] <= ideal * 1.01 + 64
    _, decoded = codec.decode_indices(blob, meta)
    np.testing.assert_array_equal(decoded, indices)
    # The marginal tables (bin 0 only) cost more; auto picks the dithered payload.
    ranged = codec.encode_indices(indices, meta, seed=5, method="range")
    assert len(blob) < 0.8 * len(ranged)
    assert codec.encode_indices(indices, meta, seed=5) == blob
    # Another base seed means other dithers: the same payload then decodes differently or fails.
    moved = _with(blob, seed=6)
    assert codec.parse(moved)[0].seed == 6
    try:
        _, other = codec.decode_indices(moved, meta)
        assert not np.array_equal(other, indices)
    except codec.BitstreamError:
        pass


def test_dithered_files_need_a_dithered_prior():
    tables = [[[0, 20000, 40000, 65536]] * 2]
    meta = _dithered_metadata(tables)
    indices = np.array([[0], [2], [1]], np.int32)
    blob = codec.encode_indices(indices, meta, seed=0, method="dithered")
    older = _metadata([[0, 20000, 40000, 65536]])  # an export without the conditional prior
    with pytest.raises(codec.BitstreamError, match="no dither-conditional prior"):
        codec.decode_indices(blob, older)
    with pytest.raises(ValueError, match="no dither-conditional prior"):
        codec.encode_indices(indices, older, seed=0, method="dithered")
    assert codec.parse(codec.encode_indices(indices, older, seed=0))[0].method != "dithered"
    bad = _dithered_metadata(tables)
    bad["prior"]["dithered"]["cdf"] = [[[0, 20000, 20000, 65536]] * 2]
    with pytest.raises(ValueError, match="rise strictly"):
        codec.encode_indices(indices, bad, seed=0, method="dithered")


def test_range_decoder_refuses_non_canonical_payloads():
    cdf = [[0, 60000, 63000, 65536]]
    indices = np.zeros((50, 1), np.int32)
    indices[::7] = 2
    meta = _metadata(cdf)
    blob = codec.encode_indices(indices, meta, seed=0, method="range")
    _, payload = codec.parse(blob)
    with pytest.raises(codec.BitstreamError, match="range-coded payload is corrupt"):
        lookup = np.array([[16, *cdf[0]]], np.int32)
        codec.range_decode(payload + b"\x00", lookup, 50)


# ------------------------------------------------------------------------------------------------
# Container layout and round trips.


def test_header_layout(models, files, images):
    encoder = models[0]
    blob = files[(7, "range")]
    assert blob[:4] == b"\x89RDC" and blob[4] == 2 and blob[5] == 1  # magic, version, range
    assert blob[6] == 0  # flags: no names
    assert blob[7:11] == bytes.fromhex(encoder.fingerprint)[:4]
    assert blob[11:15] == bytes.fromhex(encoder.metadata["prior"]["digest"])[:4]
    # varints: 8 x 8 x 1 images, L = 3, d = 3, 7 images, seed 11 (zigzag 22), payload length
    assert blob[15:23] == bytes([8, 8, 1, 3, 3, 7, 22, len(blob) - 27])
    assert struct.unpack(">I", blob[-4:])[0] == zlib.crc32(blob[:-4])
    assert files[(7, "fixed")][5] == 0
    dithered = files[(7, "dithered")]
    assert dithered[5] == 2
    assert dithered[11:15] == bytes.fromhex(encoder.metadata["prior"]["dithered"]["digest"])[:4]
    # One image: 27 bytes around its payload (version 1: 62).
    single = files[(1, "fixed")]
    assert len(single) - len(codec.parse(single)[1]) == 27 == codec.MIN_OVERHEAD_BYTES
    # Names: flag bit 0, then per image its UTF-8 length and bytes, before the payload.
    named = codec.compress(images[:2], encoder, seed=11, method="fixed", names=["7", "chat-é"])
    assert named[6] == 1
    start = 15 + 8
    assert named[start : start + 10] == b"\x017\x07chat-\xc3\xa9"
    assert named[start + 10 : -4] == codec.parse(named)[1]
    assert codec.parse(named)[0].names == ("7", "chat-é")


@pytest.mark.parametrize("method", ["dithered", "range", "fixed", "auto"])
def test_round_trip_matches_in_memory_path(models, images, method):
    encoder, head, _ = models
    blob = codec.compress(images[:50], encoder, seed=-3, method=method)
    decoded = codec.decompress(blob, encoder, head, batch_size=16)
    np.testing.assert_array_equal(decoded, _reference(models, images[:50], -3))
    header, _ = codec.parse(blob)
    assert header.count == 50 and header.seed == -3
    np.testing.assert_array_equal(header.seeds, np.arange(-3, 47))
    assert codec.decompress_named(blob, encoder, head)[1] is None  # no names stored


def test_decompress_named_returns_the_stored_names(models, images):
    encoder, head, _ = models
    blob = codec.compress(images[:3], encoder, seed=5, names=["a", "β", "c"])
    decoded, names = codec.decompress_named(blob, encoder, head)
    assert names == ("a", "β", "c")
    np.testing.assert_array_equal(decoded, _reference(models, images[:3], 5))


def test_auto_picks_the_smaller_payload(files, models, images):
    blob = codec.compress(images, models[0], seed=11)
    assert len(blob) == min(len(files[(360, m)]) for m in ("dithered", "range", "fixed"))
    fixed = codec.describe(files[(360, "fixed")])
    assert fixed["payload_bytes"] == math.ceil(360 * 3 * math.log2(3) / 8)


def test_compress_validates_images_and_seed(models, images):
    encoder = models[0]
    single = codec.compress(images[0], encoder)  # one [H, W, C] image
    assert codec.parse(single)[0].count == 1
    with pytest.raises(ValueError, match="shape"):
        codec.compress(np.zeros((2, 8, 9, 1), np.float32), encoder)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        codec.compress(images[:2] + 1.0, encoder)
    with pytest.raises(TypeError, match="float"):
        codec.compress((images[:2] * 255).astype(np.uint8), encoder)
    with pytest.raises(ValueError, match="need 1 to"):
        codec.compress(images[:0], encoder)
    with pytest.raises(ValueError, match="int64"):
        codec.compress(images[:2], encoder, seed=2**63 - 1)
    with pytest.raises(ValueError, match="method"):
        codec.compress(images[:2], encoder, method="zip")


# ------------------------------------------------------------------------------------------------
# Damaged and foreign files.


def _mutate(blob: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """One random damage of a container: "flip" 1-4 bytes anywhere, "truncate", "extend" with
    1-63 random bytes, or — with the CRC recomputed so that the decoder's own checks are
    reached — "flip+crc" 1-2 bytes of the header or payload, "insert+crc" 1-8 payload bytes."""
    out = bytearray(blob)
    if kind == "flip":
        for pos in rng.choice(len(out), size=rng.integers(1, 5), replace=False):
            out[pos] ^= int(rng.integers(1, 256))
    elif kind == "truncate":
        out = out[: rng.integers(0, len(out))]
    elif kind == "extend":
        out += rng.integers(0, 256, rng.integers(1, 64), dtype=np.uint8).tobytes()
    elif kind == "flip+crc":
        for pos in rng.choice(len(out) - 4, size=rng.integers(1, 3), replace=False):
            out[pos] ^= int(rng.integers(1, 256))
        out = bytearray(_recrc(bytes(out)))
    elif kind == "insert+crc":
        pos = int(rng.integers(_layout(blob)["payload_start"], len(out) - 3))
        extra = rng.integers(0, 256, rng.integers(1, 9), dtype=np.uint8).tobytes()
        out = bytearray(_recrc(bytes(out[:pos] + extra + out[pos:])))
    else:
        raise ValueError(kind)
    return bytes(out)


def _assert_one_line(error: Exception) -> None:
    message = str(error)
    assert message and "\n" not in message and len(message) < 300, message


def test_fuzzed_files_always_raise_bitstream_error(models, files):
    encoder, head, _ = models
    rng = np.random.default_rng(2024)
    blobs = list(files.values())
    kinds = {"flip": 0, "truncate": 0, "extend": 0}
    for trial in range(1200):
        kind = ("flip", "truncate", "extend")[trial % 3]
        blob = _mutate(blobs[trial % len(blobs)], kind, rng)
        with pytest.raises(codec.BitstreamError) as caught:
            codec.decompress(blob, encoder, head)
        _assert_one_line(caught.value)
        kinds[kind] += 1
    assert min(kinds.values()) >= 400


def _corruptions(files, names_file):
    """(description, corrupted file, expected message) with the CRC recomputed each time."""
    one, many = files[(7, "range")], files[(7, "fixed")]
    big = files[(360, "range")]
    body = bytes(many[:-4])
    payload = _layout(many)["payload"]
    names = _layout(names_file)["names"]
    return [
        ("magic", _with(one, magic=b"RDC\x00"), "not an .rdc file"),
        ("version", _with(one, version=3), "unsupported .rdc format version 3"),
        ("method byte", _with(one, method=7), "unknown coding method 7"),
        ("flags", _with(one, flags=2), "unknown header flags"),
        ("payload length +1", _with(one, payload_length=len(one) - 26), "truncated or extended"),
        ("payload length -1", _with(one, payload_length=len(one) - 28), "truncated or extended"),
        ("extra byte", _recrc(body + b"\x00" + many[-4:]), "truncated or extended"),
        ("height 0", _with(one, height=0), "image shape out of range"),
        ("width 5000", _with(one, width=5000), "image shape out of range"),
        ("L = 1", _with(one, L=1), "L (number of levels) out of range"),
        ("L = 300", _with(one, L=300), "L (number of levels) out of range"),
        ("d = 0", _with(one, d=0), "d (latent dimension) out of range"),
        ("count 0", _with(one, count=0), "image count out of range"),
        ("count 10^7 + 1", _with(one, count=10**7 + 1), "image count out of range"),
        ("count * d", _with(one, d=4096, count=20000), "count * d"),
        ("seed overflow", _with(one, seed=2**63 - 1), "seed out of range"),
        ("varint 2^64", _with(one, raw={"count": b"\xff" * 9 + b"\x02"}), "exceeds 64 bits"),
        ("varint 11 bytes", _with(one, raw={"count": b"\x81" * 10 + b"\x00"}), "longer than 10"),
        ("varint not shortest", _with(one, raw={"height": b"\x88\x00"}), "shortest form"),
        ("truncated varints", _recrc(one[:18] + one[-4:]), "truncated"),
        ("fingerprint", _with(one, fingerprint=b"\x00" * 4), "fingerprint mismatch"),
        ("L = 4 vs export", _with(one, L=4), "the encoder export has"),
        ("channels vs export", _with(one, channels=3), "the encoder export has"),
        ("prior digest", _with(one, prior=b"\x00" * 4), "prior"),
        ("fixed length", _with(many, count=9), "fixed-length payload has"),
        ("fixed padding", _with(many, payload=payload[:-1] + bytes([payload[-1] | 1])), "padding"),
        ("range count", _with(big, count=5_000_000), "cannot hold"),
        # The decoder reads past the end as zeros: a zero byte appended to a payload decodes to
        # the same indices, whose canonical encoding is the original (shorter) payload.
        (
            "range zero byte added",
            _with(one, payload=_layout(one)["payload"] + b"\x00"),
            "range-coded payload is corrupt",
        ),
        ("name not UTF-8", _with(names_file, names=[b"\xff", names[1]]), "is not UTF-8"),
        ("empty name", _with(names_file, names=[b"", names[1]]), "has 0 bytes"),
        ("same names", _with(names_file, names=[b"Cat", b"cat"]), "the same name"),
        ("name with /", _with(names_file, names=[b"a/b", names[1]]), "not a file name"),
        ("name '..'", _with(names_file, names=[b"..", names[1]]), "not a file name"),
        ("names without flag", _with(names_file, flags=0), "truncated or extended"),
        ("flag without names", _with(one, flags=1), "truncated"),
    ]


def test_decoder_checks_hold_with_recomputed_crc(models, files, images):
    encoder, head, _ = models
    names_file = codec.compress(images[:2], encoder, seed=11, names=["seven", "chat"])
    cases = _corruptions(files, names_file)
    for description, blob, message in cases:
        assert zlib.crc32(blob[:-4]) == struct.unpack(">I", blob[-4:])[0], description
        with pytest.raises(codec.BitstreamError, match=re.escape(message)):
            codec.decompress(blob, encoder, head)


def test_crc_catches_payload_damage(files, models):
    blob = bytearray(files[(360, "fixed")])
    blob[100] ^= 0x10
    with pytest.raises(codec.BitstreamError, match="CRC32 mismatch"):
        codec.decompress(bytes(blob), models[0], models[1])
    with pytest.raises(TypeError, match="bytes"):
        codec.parse("not bytes")


def test_foreign_encoder_export_is_refused(models, foreign, files, images):
    encoder, head, _ = models
    other_encoder, other_head = foreign
    assert other_encoder.fingerprint != encoder.fingerprint
    for blob in files.values():
        with pytest.raises(codec.BitstreamError, match="fingerprint mismatch"):
            codec.decompress(blob, other_encoder, other_head)
    with pytest.raises(ValueError, match="fingerprint mismatch"):
        codec.decompress(files[(7, "range")], encoder, other_head)
    theirs = codec.compress(images[:3], other_encoder)
    with pytest.raises(codec.BitstreamError, match="fingerprint mismatch"):
        codec.decompress(theirs, encoder, head)


def test_range_files_need_the_same_prior(models, files, tmp_path):
    encoder, head, _ = models
    run_dir = pathlib.Path(encoder.metadata["source"]).parent
    export.export_run(run_dir, tmp_path, "retabled", prior_split="test")
    other = export.load_encoder(tmp_path / "retabled")
    assert other.fingerprint == encoder.fingerprint
    assert other.metadata["prior"]["digest"] != encoder.metadata["prior"]["digest"]
    with pytest.raises(codec.BitstreamError, match="re-exported with another prior"):
        codec.decompress(files[(7, "range")], other, head)
    # Fixed-length files record the prior too (issue 16): another prior is refused, not ignored.
    with pytest.raises(codec.BitstreamError, match="re-exported with another prior"):
        codec.decompress(files[(7, "fixed")], other, head)


# ------------------------------------------------------------------------------------------------
# rdc-codec: compress / decompress in separate processes.


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "rdc_keras.cli.codec", *map(str, args)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )


def test_cli_compress_and_decompress_in_separate_processes(models, images, tmp_path):
    encoder, head, export_dir = models
    np.save(tmp_path / "x.npy", images[:40])
    compressed = _cli(
        "compress",
        f"--encoder={export_dir}",
        f"--input={tmp_path / 'x.npy'}",
        "--seed=5",
        f"--output={tmp_path / 'x.rdc'}",
        f"--json={tmp_path / 'c.json'}",
    )
    assert compressed.returncode == 0, compressed.stderr[-2000:]
    summary = json.loads(compressed.stdout.strip().splitlines()[-1])
    assert summary == json.loads((tmp_path / "c.json").read_text())
    blob = (tmp_path / "x.rdc").read_bytes()
    assert summary["file_bytes"] == len(blob) and summary["count"] == 40
    assert summary["bound_bits_per_image"] == pytest.approx(3 * math.log2(3))
    # The same bytes as in memory; the images of x.npy are named x_00000 ... x_00039.
    names = [f"x_{i:05d}" for i in range(40)]
    assert blob == codec.compress(images[:40], encoder, seed=5, names=names)
    decompressed = _cli(
        "decompress",
        f"--encoder={export_dir}",
        f"--head={head.metadata['head']}",
        f"--input={tmp_path / 'x.rdc'}",
        f"--output={tmp_path / 'y.npy'}",
    )
    assert decompressed.returncode == 0, decompressed.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), _reference(models, images[:40], 5))


def _png(path: pathlib.Path, image: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.rint(image[..., 0] * 255).astype(np.uint8)).save(path)


def test_cli_keeps_the_names_of_the_inputs(models, images, tmp_path):
    _, head, export_dir = models
    sources = ["7", "chat-é 猫", "Zebra"]
    for index, name in enumerate(sources):
        _png(tmp_path / "in" / f"{name}.png", images[index])
    common = [f"--encoder={export_dir}"]
    decode = [*common, f"--head={head.metadata['head']}"]
    ran = _cli("compress", *common, f"--input={tmp_path / 'in'}", f"--output={tmp_path / 'a.rdc'}")
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert codec.parse((tmp_path / "a.rdc").read_bytes())[0].names == tuple(sorted(sources))
    ran = _cli(
        "decompress", *decode, f"--input={tmp_path / 'a.rdc'}", f"--output={tmp_path / 'o'}/"
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    written = sorted(p.name for p in (tmp_path / "o").iterdir() if not p.name.startswith("."))
    assert written == sorted(f"{name}.png" for name in sources)
    # --nonames: the index names, as for files written before names existed.
    flags = ["--nonames", f"--input={tmp_path / 'in'}", f"--output={tmp_path / 'b.rdc'}"]
    assert _cli("compress", *common, *flags).returncode == 0
    assert codec.parse((tmp_path / "b.rdc").read_bytes())[0].names is None
    ran = _cli(
        "decompress", *decode, f"--input={tmp_path / 'b.rdc'}", f"--output={tmp_path / 'p'}/"
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "p").glob("*.png"))[0] == "image_00000.png"
    # Two inputs with one name (here up to letter case) are refused before anything is written.
    _png(tmp_path / "twins" / "a" / "cat.png", images[0])
    _png(tmp_path / "twins" / "b" / "Cat.png", images[1])
    inputs = [f"--input={tmp_path / 'twins' / 'a'}", f"--input={tmp_path / 'twins' / 'b'}"]
    ran = _cli("compress", *common, *inputs, f"--output={tmp_path / 'c.rdc'}")
    assert ran.returncode == 2 and not (tmp_path / "c.rdc").exists(), ran.stderr
    (line,) = [line for line in ran.stderr.splitlines() if "error:" in line]
    assert "give images the same name 'Cat'" in line and "Traceback" not in ran.stderr


def test_write_images_refuses_colliding_names(tmp_path, images):
    from rdc_keras.images import write_images

    with pytest.raises(ValueError, match="two images would be written as"):
        write_images(images[:2], tmp_path / "out", names=["Cat", "cat"])
    assert not (tmp_path / "out").exists()


def test_names_are_validated_when_compressing(models, images):
    encoder = models[0]
    for names, message in [
        (["a"], "1 names for 2 images"),
        (["a", "A"], "the same name"),
        (["a", "b/c"], "not a file name"),
        (["a", "x" * 256], "not a file name"),
        (["a", "\x07"], "not a file name"),
        (["a", 3], "must be a string"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            codec.compress(images[:2], encoder, names=names)
    blob = codec.compress(images[:2], encoder, names=["é" * 127, "b"])  # 254 bytes: allowed
    assert codec.parse(blob)[0].names[0] == "é" * 127


def test_cli_refuses_a_damaged_file_with_one_line(models, files, tmp_path):
    _, head, export_dir = models
    (tmp_path / "bad.rdc").write_bytes(files[(7, "range")][:-1])
    failed = _cli(
        "decompress",
        f"--encoder={export_dir}",
        f"--head={head.path}",
        f"--input={tmp_path / 'bad.rdc'}",
        f"--output={tmp_path / 'z.npy'}",
    )
    assert failed.returncode == 2
    assert "error: the header declares" in failed.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "z.npy").exists()


def test_cli_checks_outputs_and_inputs_before_any_coding(models, files, tmp_path):
    _, head, export_dir = models
    (tmp_path / "a.rdc").write_bytes(files[(7, "range")])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "7.png").write_bytes(b"the user's own file")
    damaged = tmp_path / "damaged"
    shutil.copytree(export_dir, damaged)
    pb = damaged / "encoder" / "1" / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[:100])
    missing = tmp_path / "no_export"
    np.save(tmp_path / "x.npy", np.zeros((2, 8, 8, 1), np.float32))
    cases = {
        # The output is checked before the (missing) encoder export is even looked at.
        "compress to a directory": (
            ["compress", f"--encoder={missing}", "--input=x.npy", f"--output={tmp_path}"],
            f"--output={tmp_path}: is a directory, expected a file name",
        ),
        "decompress into the user's folder": (
            ["decompress", f"--encoder={missing}", "--head=h", "--input=a.rdc", f"--output={mine}"],
            f"--output={mine}: directory holds other files (7.png, ...)",
        ),
        "decompress a directory": (
            [
                "decompress",
                f"--encoder={export_dir}",
                f"--head={head.path}",
                f"--input={tmp_path}",
                f"--output={tmp_path / 'out.npy'}",
            ],
            f"--input={tmp_path}: is a directory, expected one .rdc file",
        ),
        "compress to a URL of an unknown file system": (
            ["compress", f"--encoder={missing}", "--input=x.npy", "--output=nosuch://b/a.rdc"],
            "--output=nosuch://b/a.rdc: ",
        ),
        "decompress a missing URL": (
            [
                "decompress",
                f"--encoder={export_dir}",
                f"--head={head.path}",
                "--input=ram://none/a.rdc",
                f"--output={tmp_path / 'out.npy'}",
            ],
            "--input=ram://none/a.rdc: file not found, expected one .rdc file",
        ),
        "decompress to a URL of an unknown file system": (
            ["decompress", f"--encoder={missing}", "--head=h", "--input=a.rdc", "--output=no://o/"],
            "--output=no://o/: ",
        ),
        # (decompress reads only the encoder's metadata; compress runs its SavedModel)
        "damaged export": (
            [
                "compress",
                f"--encoder={damaged}",
                f"--input={tmp_path / 'x.npy'}",
                f"--output={tmp_path / 'out.rdc'}",
            ],
            f"{pb.parent}: damaged SavedModel, {pb} is damaged",
        ),
    }
    for name, (args, message) in cases.items():
        result = _cli(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (name, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, (name, result.stderr[-2000:])
        assert message in lines[-1], (name, lines[-1])
    assert (mine / "7.png").read_bytes() == b"the user's own file"
    assert not (tmp_path / "out.npy").exists() and not (tmp_path / "out.rdc").exists()


@pytest.mark.slow
def test_ten_thousand_mutations_never_crash_hang_or_decode_garbage(models, files):
    """10,400 mutated containers. Without a valid CRC every one is refused with a one-line
    BitstreamError; with the CRC recomputed (so that the decoder's own checks are reached) each
    is refused the same way, or is a valid container and decodes to finite images of the
    export's shape (e.g. another seed: no check can tell an edited field from a real one)."""
    encoder, head, _ = models
    rng = np.random.default_rng(20261201)
    sources = list(files.values())
    outcomes = {"refused": 0, "refused after CRC fix": 0, "valid after CRC fix": 0}
    for trial in range(10_400):
        kind = ("flip", "truncate", "flip+crc", "insert+crc")[trial % 4]
        blob = _mutate(sources[trial % len(sources)], kind, rng)
        crc_fixed = kind.endswith("+crc")
        try:
            images = codec.decompress(blob, encoder, head)
        except codec.BitstreamError as error:
            _assert_one_line(error)
            outcomes["refused after CRC fix" if crc_fixed else "refused"] += 1
            continue
        assert crc_fixed, f"trial {trial}: a file with a wrong CRC decoded"
        assert images.shape[1:] == (8, 8, 1) and len(images) >= 1, trial
        assert np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1, trial
        outcomes["valid after CRC fix"] += 1
    assert outcomes["refused"] == 5_200, outcomes
    assert outcomes["refused after CRC fix"] >= 2_600, outcomes


def test_range_coder_ops_come_from_whichever_package_is_installed(monkeypatch):
    import types

    # TF 2.17+: tensorflow-compression-ops is preferred when present.
    ops = types.ModuleType("tensorflow_compression_ops")
    monkeypatch.setitem(sys.modules, "tensorflow_compression_ops", ops)
    assert codec._tfc() is ops
    # TF 2.14: without it, the full tensorflow-compression.
    monkeypatch.setitem(sys.modules, "tensorflow_compression_ops", None)  # import fails
    full = types.ModuleType("tensorflow_compression")
    monkeypatch.setitem(sys.modules, "tensorflow_compression", full)
    assert codec._tfc() is full
    monkeypatch.setitem(sys.modules, "tensorflow_compression", None)
    with pytest.raises(ImportError, match="tensorflow-compression-ops"):
        codec._tfc()
