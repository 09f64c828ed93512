"""Tests for rdc_keras.serving: damaged exports are refused with one line naming what is damaged.

The happy paths of serving (signatures, REST bodies, loading) are tested with the export writer in
test_export.py; here an untrained digits export is damaged the ways a disk, a copy or an editor
damages files: truncated or bit-flipped `saved_model.pb`, `variables.index`, `variables.data`,
and missing or malformed fields in `assets/rdc.json`.
"""

import json
import pathlib
import shutil

import numpy as np
import pytest
from conftest import untrained_digits_export

from rdc_keras import serving


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> pathlib.Path:
    """An export of an untrained digits encoder (d=3, L=3) with one head."""
    return untrained_digits_export(tmp_path_factory.mktemp("serving"), "digits")


def _copy(export_dir: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    target = tmp_path / "digits"
    shutil.copytree(export_dir, target)
    return target / "encoder" / "1"


def _flip(path: pathlib.Path, offset: int) -> None:
    blob = bytearray(path.read_bytes())
    blob[offset] ^= 0xFF
    path.write_bytes(bytes(blob))


def _truncate(path: pathlib.Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _data_file(version: pathlib.Path) -> pathlib.Path:
    return next((version / "variables").glob("variables.data-*"))


_DAMAGES = {
    "saved_model.pb truncated": (lambda v: _truncate(v / "saved_model.pb"), "saved_model.pb"),
    "saved_model.pb bit flip": (lambda v: _flip(v / "saved_model.pb", 3), "saved_model.pb"),
    "variables.index truncated": (
        lambda v: _truncate(v / "variables" / "variables.index"),
        "variables.index",
    ),
    "variables.data truncated": (lambda v: _truncate(_data_file(v)), "variables.data-*"),
    "variables.data bit flip": (
        lambda v: _flip(_data_file(v), _data_file(v).stat().st_size // 2),
        "variables.data-*",
    ),
}


@pytest.mark.parametrize("damage", sorted(_DAMAGES))
def test_a_damaged_saved_model_is_one_line_naming_the_file(export_dir, tmp_path, damage):
    version = _copy(export_dir, tmp_path)
    apply, part = _DAMAGES[damage]
    apply(version)
    encoder = serving.load_encoder(version)  # metadata only: the SavedModel loads on first use
    with pytest.raises(ValueError) as caught:
        encoder.encode(np.zeros((1, 8, 8, 1), np.float32), np.zeros([1], np.int64))
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400, message
    assert message.startswith(f"{version}: damaged SavedModel, "), message
    assert f"{part} is damaged" in message, message


def test_the_intact_copy_loads(export_dir, tmp_path):
    encoder = serving.load_encoder(_copy(export_dir, tmp_path))
    out = encoder.encode(np.zeros((2, 8, 8, 1), np.float32), np.arange(2, dtype=np.int64))
    assert out.shape == (2, 3)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("num_levels", None, "no 'num_levels' field"),
        ("latent_dim", None, "no 'latent_dim' field"),
        ("image_shape", [8, 8], "'image_shape' = [8, 8]"),
        ("encoder_fingerprint", 17, "'encoder_fingerprint' = 17"),
        ("temperature", None, "no 'temperature' field"),
        ("num_levels", "3", "'num_levels' = '3'"),
    ],
)
def test_damaged_metadata_is_one_line_naming_the_field(export_dir, tmp_path, field, value, message):
    version = _copy(export_dir, tmp_path)
    path = version / "assets" / serving.METADATA_FILE
    metadata = json.loads(path.read_text())
    if value is None:
        del metadata[field]
    else:
        metadata[field] = value
    path.write_text(json.dumps(metadata))
    with pytest.raises(ValueError) as caught:
        serving.load_encoder(version)
    assert str(caught.value) == f"{path}: damaged export metadata ({message})"


def test_unreadable_metadata_is_one_line(export_dir, tmp_path):
    version = _copy(export_dir, tmp_path)
    path = version / "assets" / serving.METADATA_FILE
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match=r"rdc\.json: not valid JSON"):
        serving.load_encoder(version)
    path.unlink()
    with pytest.raises(ValueError, match=r"rdc\.json: file not found"):
        serving.load_encoder(version)
