"""rdc-codec: many images into one `.rdc` file and back, with exported SavedModels.

Examples:

    rdc-codec compress --encoder=saved_models/mnist10k --input=digits/ --output=batch.rdc
    rdc-codec decompress --encoder=saved_models/mnist10k --head=d1-c0.015-p0 \
        --input=batch.rdc --output=decoded/          # PNGs; or --output=decoded.npy

Inputs are PNG files (grayscale or RGB matching the encoder's image shape, values / 255) or
.npy arrays (float32 in [0, 1], N x H x W x C or one H x W x C image); directories and glob
patterns expand to their sorted .png/.npy files. Outputs are written through a temporary file
and a rename, so a partial file never appears. Both commands print a JSON summary (payload bits
per image vs the fixed-rate bound d * log2 L, container overhead) and `--json` saves it.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import pathlib
import sys
import tempfile
from typing import Any

import numpy as np
import tensorflow as tf  # noqa: F401  (import before app.run: see cli/common.py)
from absl import app, flags

from rdc_keras.cli.common import fail, main_wrapper, parse_flags

__all__ = ["COMMANDS", "read_images", "run", "write_images"]

FLAGS = flags.FLAGS
COMMANDS = ("compress", "decompress")
_IMAGE_SUFFIXES = (".png", ".npy")


def _define_flags() -> None:
    flags.DEFINE_string(
        "encoder", None, "Exported encoder: <root>/<name>, its encoder/ dir or a version dir."
    )
    flags.DEFINE_multi_string(
        "input", [], "compress: PNG/.npy files, directories or globs; decompress: one .rdc file."
    )
    flags.DEFINE_string(
        "output", None, "compress: the .rdc file; decompress: a .npy file or a PNG directory."
    )
    flags.DEFINE_string("head", None, "decompress: head name in the export, or a head directory.")
    flags.DEFINE_integer("seed", 0, "compress: base dither seed (image i uses seed + i).")
    flags.DEFINE_enum(
        "method",
        "auto",
        ["auto", "dithered", "range", "fixed"],
        "compress: payload coding method (auto: the smallest).",
    )
    flags.DEFINE_integer("batch_size", 1024, "Images per SavedModel call.")
    flags.DEFINE_string("json", None, "Also write the JSON summary to this file.")


# ------------------------------------------------------------------------------------------------
# Image files.


def _expand(patterns: list[str]) -> list[pathlib.Path]:
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
    """Loads a .npy file and validates it with the codec's own image check, naming the file."""
    from rdc_keras.codec import check_images

    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable .npy file ({error})") from error
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


def _atomic_write(path: pathlib.Path, write) -> None:
    """Calls write(tmp_path) on a temporary sibling of path, then renames it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(pathlib.Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def write_images(images: np.ndarray, output: str | os.PathLike) -> list[str]:
    """Writes float32 [N, H, W, C] images to a .npy file, or to PNGs in a directory."""
    output = pathlib.Path(output)
    if output.suffix.lower() == ".npy":

        def save(tmp: pathlib.Path) -> None:
            with open(tmp, "wb") as stream:
                np.save(stream, images.astype(np.float32))

        _atomic_write(output, save)
        return [str(output)]
    from PIL import Image

    channels = images.shape[-1]
    if channels not in (1, 3):
        raise ValueError(f"PNG output needs 1 or 3 channels, got {channels}; use a .npy output")
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output={output}: exists and is not a directory")
    output.mkdir(parents=True, exist_ok=True)
    pixels = np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)
    digits = max(5, len(str(len(images) - 1)))
    written = []
    for i, image in enumerate(pixels):
        path = output / f"image_{i:0{digits}d}.png"
        picture = Image.fromarray(image[..., 0] if channels == 1 else image)
        _atomic_write(path, lambda tmp, picture=picture: picture.save(tmp, format="PNG"))
        written.append(str(path))
    return written


# ------------------------------------------------------------------------------------------------
# Commands.


def _resolve_head(head: str, encoder) -> pathlib.Path:
    path = pathlib.Path(head)
    if path.is_dir():
        return path
    export_dir = encoder.path.parent.parent  # <root>/<name>/encoder/<version>
    candidate = export_dir / "heads" / head
    if not candidate.is_dir():
        available = sorted(p.name for p in (export_dir / "heads").glob("*") if p.is_dir())
        raise ValueError(
            f"--head={head}: no such head directory or head name in {export_dir} "
            f"(heads: {', '.join(available) or 'none'})"
        )
    return candidate


def _compress() -> dict[str, Any]:
    from rdc_keras import codec, export

    encoder = export.load_encoder(FLAGS.encoder)
    images, sources = read_images(FLAGS.input, encoder.image_shape)
    data = codec.compress(
        images, encoder, seed=FLAGS.seed, method=FLAGS.method, batch_size=FLAGS.batch_size
    )
    output = pathlib.Path(FLAGS.output)
    _atomic_write(output, lambda tmp: tmp.write_bytes(data))
    return {"command": "compress", "output": str(output), "inputs": sources, **codec.describe(data)}


def _decompress() -> dict[str, Any]:
    from rdc_keras import codec, export

    if FLAGS.head is None:
        raise ValueError("decompress needs --head (a head name in the export or a directory)")
    if len(FLAGS.input) != 1:
        raise ValueError("decompress needs exactly one --input .rdc file")
    source = pathlib.Path(FLAGS.input[0])
    if not source.is_file():
        raise ValueError(f"--input={source}: file not found")
    encoder = export.load_encoder(FLAGS.encoder)
    head = export.load_head(_resolve_head(FLAGS.head, encoder), encoder)
    data = source.read_bytes()
    images = codec.decompress(data, encoder, head, batch_size=FLAGS.batch_size)
    written = write_images(images, FLAGS.output)
    return {
        "command": "decompress",
        "input": str(source),
        "head": str(head.path),
        "output": str(FLAGS.output),
        "files_written": len(written),
        **codec.describe(data),
    }


def main(command: str, argv: list[str]) -> None:
    for name in ("encoder", "output"):
        if getattr(FLAGS, name) is None:
            raise ValueError(f"{command} needs --{name}")
    if not FLAGS.input:
        raise ValueError(f"{command} needs --input")
    if FLAGS.batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {FLAGS.batch_size}")
    summary = _compress() if command == "compress" else _decompress()
    text = json.dumps(summary, sort_keys=True)
    if FLAGS.json:
        _atomic_write(pathlib.Path(FLAGS.json), lambda tmp: tmp.write_text(text + "\n"))
    print(text, flush=True)


def run() -> None:
    """Console-script entry point: `rdc-codec {compress,decompress} --flags`."""
    _define_flags()
    argv = list(sys.argv)
    if len(argv) > 1 and argv[1] in COMMANDS:
        command = argv.pop(1)
    elif any(arg in ("--help", "-h", "--helpshort", "--helpfull") for arg in argv[1:]):
        command = COMMANDS[0]
    else:
        fail(f"usage: rdc-codec {{{','.join(COMMANDS)}}} --encoder=... --input=... --output=...")
    app.run(main_wrapper(functools.partial(main, command)), argv=argv, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
