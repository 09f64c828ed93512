"""rdc-codec: many images into one `.rdc` file and back, with exported SavedModels.

Examples:

    rdc-codec compress --encoder=saved_models/mnist10k --input=digits/ --output=batch.rdc
    rdc-codec decompress --encoder=saved_models/mnist10k --head=d1-c0.015-p0 \
        --input=batch.rdc --output=decoded/          # PNGs; or --output=decoded.npy

Inputs are PNG files (grayscale or RGB matching the encoder's image shape, values / 255) or
.npy arrays (float32 in [0, 1], N x H x W x C or one H x W x C image); directories and glob
patterns expand to their sorted .png/.npy files (`rdc_keras.images` reads and writes them).
compress stores each image's name (its file's stem; `<stem>_00000`, ... for the images of a
multi-image .npy) unless --nonames, and decompress writes `<name>.png` (image_00000.png, ...
for files without names). Outputs are written through a temporary file and a rename
(`rdc_keras.files.atomic_write`), so a partial file never appears. --encoder, --head, the
compressed --output and the decompressed --input may be `tf.io.gfile` URLs (`gs://...`,
`rdc_keras.remote`). Both commands print a JSON
summary (payload bits per image vs the fixed-rate bound d * log2 L, container overhead) and
`--json` saves it.
"""

from __future__ import annotations

import functools
import json
import pathlib
import sys
from typing import Any

import tensorflow as tf  # noqa: F401  (import before app.run: see cli/common.py)
from absl import app, flags

from rdc_keras import codec, remote
from rdc_keras.cli.common import fail, main_wrapper, parse_flags
from rdc_keras.images import check_output, read_images, source_names, write_images

__all__ = ["COMMANDS", "run"]

FLAGS = flags.FLAGS
COMMANDS = ("compress", "decompress")


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
        ["auto", *sorted(codec.METHODS, key=codec.METHODS.get, reverse=True)],
        "compress: payload coding method (auto: the smallest).",
    )
    flags.DEFINE_boolean(
        "names",
        True,
        "compress: store each image's source name (file stem) so decompress writes <name>.png.",
    )
    flags.DEFINE_integer("batch_size", 1024, "Images per SavedModel call.")
    flags.DEFINE_string("json", None, "Also write the JSON summary to this file.")


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
    from rdc_keras import serving

    encoder = serving.load_encoder(FLAGS.encoder)
    images, sources = read_images(FLAGS.input, encoder.image_shape)
    names = source_names(sources) if FLAGS.names else None
    if names is not None:
        try:
            codec.check_names(names, len(images))
        except ValueError as error:
            raise ValueError(f"--input: {error} (or pass --nonames)") from None
    data = codec.compress(
        images,
        encoder,
        seed=FLAGS.seed,
        method=FLAGS.method,
        batch_size=FLAGS.batch_size,
        names=names,
    )
    remote.write_bytes(FLAGS.output, data)
    return {
        "command": "compress",
        "output": str(FLAGS.output),
        "inputs": sources,
        **codec.describe(data),
    }


def _decompress() -> dict[str, Any]:
    from rdc_keras import serving

    if FLAGS.head is None:
        raise ValueError("decompress needs --head (a head name in the export or a directory)")
    if len(FLAGS.input) != 1:
        raise ValueError("decompress needs exactly one --input .rdc file")
    source = FLAGS.input[0]
    if not remote.is_file(source):
        kind = "is a directory" if pathlib.Path(source).is_dir() else "file not found"
        raise ValueError(f"--input={source}: {kind}, expected one .rdc file")
    encoder = serving.load_encoder(FLAGS.encoder)
    head = serving.load_head(_resolve_head(FLAGS.head, encoder), encoder)
    data = remote.read_bytes(source)
    # names: the inputs' names, when compress stored them
    images, names = codec.decompress_named(data, encoder, head, batch_size=FLAGS.batch_size)
    written = write_images(images, FLAGS.output, None if names is None else list(names))
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
    # Output locations are checked before any model is loaded or image coded.
    if command == "compress":
        remote.check_output_file(FLAGS.output, "--output")
    else:
        check_output(FLAGS.output)
    if FLAGS.json:
        remote.check_output_file(FLAGS.json, "--json")
    summary = _compress() if command == "compress" else _decompress()
    text = json.dumps(summary, sort_keys=True)
    if FLAGS.json:
        remote.write_bytes(FLAGS.json, (text + "\n").encode())
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
