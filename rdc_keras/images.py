"""Image batches the codec accepts, and the PNG / .npy files `rdc-codec` reads and writes.

`check_images` defines a valid batch: float32 [N, H, W, C] (or one [H, W, C] image) of finite
values in [0, 1] with the encoder export's image shape; `rdc_keras.codec` applies it to every
input and re-exports it. `read_images` expands files, directories and glob patterns into such a
batch (PNG pixels / 255; .npy arrays checked with `check_images`), and `write_images` writes a
batch to one .npy file (`rdc_keras.files.atomic_write`) or to a PNG set: one PNG per image in a
directory that is staged whole and renamed into place (`atomic_directory`), so a killed run leaves
no partial set; the set carries a marker file (`SET_MARKER`) naming its images, and only an empty
directory or an earlier set is replaced. Needs numpy, and Pillow for PNGs (imported when a PNG
is read or written).
"""

from __future__ import annotations

import glob
import io
import os
import pathlib
import tempfile
from typing import Any

import numpy as np

from rdc_keras import remote
from rdc_keras.files import (
    atomic_directory,
    atomic_write,
    check_output_dir,
    check_output_file,
    read_json,
    write_json,
)

__all__ = [
    "SET_MARKER",
    "check_images",
    "check_output",
    "read_images",
    "source_names",
    "write_images",
]

# Written last into every PNG set: {"format", "count", "files"}.
SET_MARKER = ".rdc-images.json"
_SET_FORMAT = "rdc_keras.pngset/1"

_IMAGE_SUFFIXES = (".png", ".npy")


def check_images(images: Any, image_shape: tuple[int, ...]) -> np.ndarray:
    """float32 [N, H, W, C] in [0, 1] from one image or a batch; raises on dtype, shape or range."""
    images = np.asarray(images)
    if images.dtype.kind != "f":
        raise TypeError(f"images must be float arrays in [0, 1], got dtype {images.dtype}")
    if images.shape == image_shape:
        images = images[np.newaxis]
    if images.ndim != 4 or images.shape[1:] != image_shape:
        raise ValueError(
            f"images must have shape [N, {', '.join(map(str, image_shape))}] or "
            f"{list(image_shape)}, got {list(images.shape)}"
        )
    images = images.astype(np.float32)
    if not np.isfinite(images).all() or images.min(initial=0) < 0 or images.max(initial=0) > 1:
        raise ValueError("images must be finite values in [0, 1]")
    return images


# ------------------------------------------------------------------------------------------------
# Reading.


def _expand(patterns: list[str]) -> list[pathlib.Path]:
    """Files named by the patterns: a directory's sorted .png/.npy files, a glob's matches."""
    files: list[pathlib.Path] = []
    for pattern in patterns:
        path = pathlib.Path(pattern)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        elif any(ch in pattern for ch in "*?["):
            found = [pathlib.Path(p) for p in sorted(glob.glob(pattern))]
        else:
            found = [path]
        if not found:
            raise ValueError(f"--input={pattern}: no .png or .npy files found")
        files.extend(found)
    return files


def _read_png(path: pathlib.Path, image_shape: tuple[int, int, int]) -> np.ndarray:
    """One PNG (grayscale for 1 channel, RGB or palette for 3) as float32 [1, H, W, C] / 255."""
    from PIL import Image

    height, width, channels = image_shape
    modes = {1: ("L", {"1", "L"}), 3: ("RGB", {"RGB", "P"})}
    if channels not in modes:
        raise ValueError(f"{path}: PNG input needs a 1- or 3-channel encoder, not {channels}")
    target, accepted = modes[channels]
    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                raise ValueError(f"{path}: not a PNG file ({image.format})")
            if image.mode not in accepted:
                raise ValueError(
                    f"{path}: {image.mode} image, but the encoder expects {target} "
                    f"({channels} channel{'s' if channels > 1 else ''})"
                )
            array = np.asarray(image.convert(target), np.float32) / np.float32(255.0)
    except OSError as error:
        raise ValueError(f"{path}: cannot read the image ({error})") from error
    array = array.reshape(array.shape[0], array.shape[1], channels)
    if array.shape[:2] != (height, width):
        raise ValueError(
            f"{path}: {array.shape[0]}x{array.shape[1]} pixels, expected {height}x{width}"
        )
    return array[np.newaxis]


def _read_npy(path: pathlib.Path, image_shape: tuple[int, int, int]) -> np.ndarray:
    """Loads a .npy file and validates it with `check_images`, naming the file."""
    with open(path, "rb") as stream:
        if stream.read(6) != b"\x93NUMPY":
            raise ValueError(f"{path}: not a .npy file (no NumPy header)")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:
        if "pickle" in str(error):
            raise ValueError(f"{path}: holds Python objects, not a numeric image array") from error
        raise ValueError(f"{path}: damaged .npy file ({error})") from error
    except (OSError, EOFError) as error:
        raise ValueError(f"{path}: damaged .npy file ({error})") from error
    try:
        return check_images(array, image_shape)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from error


def read_images(
    patterns: list[str], image_shape: tuple[int, int, int]
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Reads PNG/.npy inputs into float32 [N, H, W, C]; returns (images, [{file, count}])."""
    arrays, sources = [], []
    for path in _expand(patterns):
        if path.is_dir():
            raise ValueError(f"{path}: is a directory, expected a .png or .npy file")
        if not path.is_file():
            raise ValueError(f"{path}: file not found")
        suffix = path.suffix.lower()
        if suffix == ".png":
            array = _read_png(path, image_shape)
        elif suffix == ".npy":
            array = _read_npy(path, image_shape)
        else:
            raise ValueError(f"{path}: expected a .png or .npy file")
        arrays.append(array)
        sources.append({"file": str(path), "count": len(array)})
    return np.concatenate(arrays), sources


def source_names(sources: list[dict[str, Any]]) -> list[str]:
    """One name per image read by `read_images`: the file's stem, or `<stem>_<i>` (zero-padded)
    for the images of a multi-image .npy file. Stored in `.rdc` files by `rdc-codec compress`.

    Raises:
      ValueError: two inputs give the same name (e.g. `a/7.png` and `b/7.png`).
    """
    names, origin = [], {}
    for source in sources:
        path = pathlib.Path(source["file"])
        count = int(source["count"])
        if count == 1:
            stems = [path.stem]
        else:
            digits = max(5, len(str(count - 1)))
            stems = [f"{path.stem}_{i:0{digits}d}" for i in range(count)]
        for name in stems:
            key = name.casefold()
            if key in origin:
                raise ValueError(
                    f"--input: {origin[key]} and {path} give images the same name {name!r} "
                    "(names must differ beyond letter case); rename one of them"
                )
            origin[key] = path
            names.append(name)
    return names


# ------------------------------------------------------------------------------------------------
# Writing.


def _is_npy(output: str | os.PathLike) -> bool:
    """A .npy file name; a trailing separator always names a PNG-set directory."""
    return not str(output).endswith(os.sep) and pathlib.Path(output).suffix.lower() == ".npy"


def _replaceable(output: pathlib.Path, flag: str = "--output") -> None:
    """A PNG set replaces `output` whole: a new or empty directory, or an earlier set holding
    nothing but its own images and marker (never the working directory, never a link)."""
    absolute = pathlib.Path(os.path.abspath(output))
    if absolute == pathlib.Path(absolute.anchor) or absolute in [
        pathlib.Path.cwd(),
        *pathlib.Path.cwd().parents,
    ]:
        raise ValueError(
            f"{flag}={output}: a PNG set replaces its directory whole; name a new directory, "
            "not the working directory or one above it"
        )
    if output.is_symlink():
        raise ValueError(f"{flag}={output}: is a symbolic link; give the directory it points to")
    if not output.exists():
        return
    if not output.is_dir():
        raise ValueError(f"{flag}={output}: exists and is not a directory")
    entries = sorted(p.name for p in output.iterdir())
    if not entries:
        return
    marker = output / SET_MARKER
    if not marker.is_file():
        raise ValueError(
            f"{flag}={output}: directory holds other files ({entries[0]}, ...); "
            "a PNG set needs a new or empty directory, or one written by an earlier decompress"
        )
    try:
        record = read_json(marker)
        ok = record.get("format") == _SET_FORMAT
        own = {SET_MARKER, *record.get("files", [])}
    except (AttributeError, TypeError, ValueError):
        ok, own = False, set()
    if not ok:
        raise ValueError(f"{flag}={output}: {SET_MARKER} is not a PNG-set marker")
    foreign = [name for name in entries if name not in own]
    if foreign:
        raise ValueError(
            f"{flag}={output}: the earlier PNG set also holds other files ({foreign[0]}, ...); "
            "move them or name a new directory"
        )


def check_output(output: str | os.PathLike, flag: str = "--output") -> pathlib.Path | str:
    """Checks, before any work, that `write_images` can write to `output` (.npy or PNG set;
    local, or a `tf.io.gfile` URL)."""
    if remote.is_remote(output):
        return _check_remote_output(os.fspath(output), flag)
    if _is_npy(output):
        return check_output_file(output, flag)
    output = pathlib.Path(output)
    _replaceable(output, flag)
    # The set is staged beside `output` and renamed into place: its parent must be writable.
    check_output_dir(pathlib.Path(os.path.abspath(output)).parent, flag)
    return output


def _check_remote_output(output: str, flag: str) -> str:
    """`check_output` of a URL: a .npy file's location, or a PNG set's directory as it is now
    (pulled into a temporary copy and checked like a local one)."""
    if _is_npy(output):
        return remote.check_output_file(output, flag)
    remote.check_output_dir(output, flag)  # a file in the way, an unknown scheme
    with tempfile.TemporaryDirectory() as scratch:
        copy = pathlib.Path(scratch) / "images"
        remote.pull(output, copy)
        with remote.reported_as(copy, output):
            _replaceable(copy, flag)
    return output


def _write_remote(images: np.ndarray, output: str, names: list[str] | None) -> list[str]:
    """`write_images` to a URL: a .npy file written beside it and renamed; a PNG set written
    into a local copy of the directory and pushed (`rdc_keras.remote`)."""
    if _is_npy(output):
        buffer = io.BytesIO()
        np.save(buffer, images.astype(np.float32))
        remote.write_bytes(output, buffer.getvalue())
        return [output]
    with remote.staged(output, "images") as local, remote.reported_as(local, output):
        written = write_images(images, local, names)
    return [remote.join(output, pathlib.Path(path).name) for path in written]


def write_images(
    images: np.ndarray, output: str | os.PathLike, names: list[str] | None = None
) -> list[str]:
    """Writes float32 [N, H, W, C] images to a .npy file, or to a PNG set in a directory.

    PNG pixels are round(255 * value), clipped to [0, 255], in files `<name>.png` (`names`,
    e.g. those an `.rdc` file stores) or image_00000.png, ...; the set is built in a staging
    directory and renamed into place with its marker file. An output ending in a path separator
    is always a PNG set. A .npy output keeps the order and ignores the names.
    Returns the written paths.

    Raises:
      ValueError: two images would get the same file name (also up to letter case).
    """
    if remote.is_remote(output):
        return _write_remote(images, os.fspath(output), names)
    is_npy, output = _is_npy(output), pathlib.Path(output)
    if is_npy:

        def save(tmp: pathlib.Path) -> None:
            with open(tmp, "wb") as stream:
                np.save(stream, images.astype(np.float32))

        atomic_write(output, save)
        return [str(output)]
    from PIL import Image

    channels = images.shape[-1]
    if channels not in (1, 3):
        raise ValueError(f"PNG output needs 1 or 3 channels, got {channels}; use a .npy output")
    _replaceable(output)
    pixels = np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)
    if names is None:
        digits = max(5, len(str(len(images) - 1)))
        names = [f"image_{i:0{digits}d}.png" for i in range(len(images))]
    else:
        if len(names) != len(images):
            raise ValueError(f"{len(names)} names for {len(images)} images")
        names = [f"{name}.png" for name in names]
    taken: dict[str, str] = {}
    for name in names:
        if name.casefold() in taken or name == SET_MARKER:
            raise ValueError(
                f"--output={output}: two images would be written as {name} "
                f"({taken.get(name.casefold(), name)}); nothing was written"
            )
        taken[name.casefold()] = name
    with atomic_directory(output) as staging:
        for name, image in zip(names, pixels):
            picture = Image.fromarray(image[..., 0] if channels == 1 else image)
            picture.save(staging / name, format="PNG")
        write_json(
            staging / SET_MARKER, {"format": _SET_FORMAT, "count": len(names), "files": names}
        )
    return [str(output / name) for name in names]
