"""Tests for rdc_keras.images: the image batches the codec accepts and rdc-codec's image files.

References are Pillow-written PNGs, numpy .npy files and the digits test images.
"""

import pathlib

import numpy as np
import pytest

from rdc_keras import codec, data
from rdc_keras import images as images_lib


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return data.load_arrays("digits", "test")[0]


def test_check_images_accepts_one_image_or_a_batch(images):
    assert codec.check_images is images_lib.check_images
    one = images_lib.check_images(images[0].astype(np.float64), (8, 8, 1))
    assert one.shape == (1, 8, 8, 1) and one.dtype == np.float32
    with pytest.raises(TypeError, match="float"):
        images_lib.check_images(np.zeros((1, 8, 8, 1), np.uint8), (8, 8, 1))
    with pytest.raises(ValueError, match="shape"):
        images_lib.check_images(np.zeros((1, 8, 9, 1), np.float32), (8, 8, 1))
    with pytest.raises(ValueError, match="finite"):
        images_lib.check_images(np.full((1, 8, 8, 1), np.nan, np.float32), (8, 8, 1))


def test_read_and_write_images(tmp_path, images):
    from PIL import Image

    pixels = np.rint(images[:2] * 255).astype(np.uint8)
    Image.fromarray(pixels[0, ..., 0]).save(tmp_path / "a.png")
    Image.fromarray(pixels[1, ..., 0]).convert("RGB").save(tmp_path / "rgb.png")
    np.save(tmp_path / "b.npy", images[2:5])
    np.save(tmp_path / "one.npy", images[5])
    got, sources = images_lib.read_images(
        [str(tmp_path / "a.png"), str(tmp_path / "*.npy")], (8, 8, 1)
    )
    np.testing.assert_array_equal(got[0], pixels[0].astype(np.float32) / 255)
    np.testing.assert_array_equal(got[1:], images[2:6])
    assert [s["count"] for s in sources] == [1, 3, 1]
    with pytest.raises(ValueError, match="RGB image, but the encoder expects L"):
        images_lib.read_images([str(tmp_path / "rgb.png")], (8, 8, 1))
    with pytest.raises(ValueError, match="expected 16x16"):
        images_lib.read_images([str(tmp_path / "a.png")], (16, 16, 1))
    with pytest.raises(ValueError, match=r"no \.png or \.npy files"):
        images_lib.read_images([str(tmp_path / "*.jpg")], (8, 8, 1))
    written = images_lib.write_images(images[:3], tmp_path / "out")
    assert [pathlib.Path(p).name for p in written] == [f"image_0000{i}.png" for i in range(3)]
    back, _ = images_lib.read_images([str(tmp_path / "out")], (8, 8, 1))
    np.testing.assert_array_equal(back, np.rint(images[:3] * 255) / np.float32(255))
    images_lib.write_images(images[:3], tmp_path / "out.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), images[:3])
    assert not list(tmp_path.glob(".*"))  # no temporary files left
