"""Tests for rdc_keras.images: the image batches the codec accepts and rdc-codec's image files.

References are Pillow-written PNGs, numpy .npy files and the digits test images.
"""

import json
import pathlib
import shutil

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


def test_png_sets_are_staged_whole_and_replace_only_earlier_sets(tmp_path, images, monkeypatch):
    from PIL import Image

    out = tmp_path / "set"
    images_lib.write_images(images[:3], out)
    marker = out / images_lib.SET_MARKER
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [images_lib.SET_MARKER] + [f"image_0000{i}.png" for i in range(3)]
    )
    assert json.loads(marker.read_text())["count"] == 3
    # An earlier set is replaced whole: no image of the 3-image set survives a 2-image one.
    images_lib.write_images(images[:2], out)
    assert len(list(out.glob("*.png"))) == 2
    # A writer killed half-way (the 2nd PNG fails) leaves the previous set as it was, no partial
    # set, and no staging directory.
    real_save, calls = Image.Image.save, []

    def failing_save(self, fp, *args, **kwargs):
        calls.append(fp)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="No space"):
        images_lib.write_images(images[:5], tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
    calls.clear()
    with pytest.raises(OSError):
        images_lib.write_images(images[:5], out)
    assert len(list(out.glob("*.png"))) == 2
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    # A directory of other files (the user's own PNGs) is never replaced.
    mine = tmp_path / "mine"
    mine.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(mine / "7.png")
    for check in (images_lib.check_output, lambda p: images_lib.write_images(images[:1], p)):
        with pytest.raises(ValueError, match=r"--output=.*mine: directory holds other files"):
            check(mine)
    assert sorted(p.name for p in mine.iterdir()) == ["7.png"]
    images_lib.check_output(tmp_path / "new_set")
    images_lib.check_output(out)
    # An earlier set to which a user added a file is not replaced either.
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"earlier PNG set also holds other files \(notes\.txt"):
        images_lib.check_output(out)
    (out / "notes.txt").unlink()
    # Neither the working directory (nor one above it) nor a link is replaced whole.
    monkeypatch.chdir(out)
    for name in (".", "..", str(out)):
        with pytest.raises(ValueError, match="not the working directory or one above it"):
            images_lib.check_output(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link").symlink_to(out, target_is_directory=True)
    with pytest.raises(ValueError, match="is a symbolic link"):
        images_lib.check_output(tmp_path / "link")
    (tmp_path / "link").unlink()
    # A trailing separator always names a PNG set, even after a .npy-looking name.
    written = images_lib.write_images(images[:2], f"{tmp_path}/odd.npy/")
    assert (tmp_path / "odd.npy" / images_lib.SET_MARKER).is_file() and len(written) == 2
    shutil.rmtree(tmp_path / "odd.npy")
    (tmp_path / "d.npy").mkdir()
    with pytest.raises(ValueError, match="is a directory, expected a file name"):
        images_lib.check_output(tmp_path / "d.npy")


def test_unreadable_inputs_say_what_they_are(tmp_path):
    (tmp_path / "random.npy").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match=r"random\.npy: not a \.npy file \(no NumPy header\)"):
        images_lib.read_images([str(tmp_path / "random.npy")], (8, 8, 1))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="holds Python objects, not a numeric image array"):
        images_lib.read_images([str(tmp_path / "objects.npy")], (8, 8, 1))
    np.save(tmp_path / "short.npy", np.zeros((4, 8, 8, 1), np.float32))
    blob = (tmp_path / "short.npy").read_bytes()
    (tmp_path / "short.npy").write_bytes(blob[: len(blob) - 100])
    with pytest.raises(ValueError, match=r"short\.npy: damaged \.npy file"):
        images_lib.read_images([str(tmp_path / "short.npy")], (8, 8, 1))
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ValueError, match=r"folder\.png: is a directory"):
        images_lib.read_images([str(tmp_path / "*.png")], (8, 8, 1))


def test_source_names_are_file_stems_and_numbered_npy_members():
    sources = [
        {"file": "in/7.png", "count": 1},
        {"file": "in/chat-é 猫.png", "count": 1},
        {"file": "batch.npy", "count": 3},
        {"file": "one.npy", "count": 1},
    ]
    names = images_lib.source_names(sources)
    assert names == ["7", "chat-é 猫", "batch_00000", "batch_00001", "batch_00002", "one"]
    codec.check_names(names, len(names))  # storable as they are
    many = images_lib.source_names([{"file": "x.npy", "count": 123456}])
    assert many[0] == "x_000000" and many[-1] == "x_123455"


@pytest.mark.parametrize(
    "files", [["a/7.png", "b/7.png"], ["a/Cat.png", "b/cat.png"], ["x.npy", "x_00000.png"]]
)
def test_source_names_refuse_two_inputs_with_one_name(files):
    sources = [{"file": name, "count": 2 if name.endswith(".npy") else 1} for name in files]
    with pytest.raises(ValueError, match="give images the same name"):
        images_lib.source_names(sources)


def test_png_set_files_are_named_after_the_images(tmp_path, images):
    written = images_lib.write_images(images[:2], tmp_path / "out", names=["7", "chat-é"])
    assert sorted(pathlib.Path(p).name for p in written) == ["7.png", "chat-é.png"]
    marker = json.loads((tmp_path / "out" / images_lib.SET_MARKER).read_text())
    assert marker["files"] == ["7.png", "chat-é.png"]


def test_png_sets_and_npy_files_go_to_gfile_urls(images):
    import tensorflow as tf

    gfile = tf.io.gfile
    url = "ram://decoded/set"
    assert images_lib.check_output(url) == url
    written = images_lib.write_images(images[:2], url, ["seven", "chat"])
    assert written == [f"{url}/seven.png", f"{url}/chat.png"]
    assert sorted(gfile.listdir(url)) == sorted(["seven.png", "chat.png", images_lib.SET_MARKER])
    with gfile.GFile(f"{url}/seven.png", "rb") as handle:
        assert handle.read().startswith(b"\x89PNG")
    images_lib.write_images(images[2:3], url)  # an earlier set is replaced whole
    assert sorted(gfile.listdir(url)) == sorted(["image_00000.png", images_lib.SET_MARKER])
    with gfile.GFile("ram://decoded/mine/notes.txt", "w") as handle:
        handle.write("the user's own file")
    with pytest.raises(ValueError, match=r"^--output=ram://decoded/mine: directory holds other"):
        images_lib.check_output("ram://decoded/mine")
    with pytest.raises(ValueError, match=r"^--output=ram://decoded/mine: directory holds other"):
        images_lib.write_images(images[:1], "ram://decoded/mine")
    assert gfile.listdir("ram://decoded/mine") == ["notes.txt"]
    images_lib.write_images(images[:3], "ram://decoded/all.npy")
    with gfile.GFile("ram://decoded/all.npy", "rb") as handle:
        import io

        np.testing.assert_array_equal(np.load(io.BytesIO(handle.read())), images[:3])
