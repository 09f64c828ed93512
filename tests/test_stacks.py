"""Files written on one supported stack read bit-identically on every other (issue 17).

tests/fixtures/stacks/<stack>/ holds what one stack wrote (`tf2.14-py3.11`: TensorFlow 2.14 with
tensorflow-compression; `tf2.17-py3.12`: TensorFlow 2.17 with tf-keras and
tensorflow-compression-ops): a SavedModel export (encoder + one head), `.rdc` files of six digits
images in each coding method, and the indices and reconstructions that stack computed. Every
stack the suite runs on must decode those files to the same integers and the same float32 bits,
load the exports and reproduce their outputs bit for bit, and compress the images to the same
bytes. Each supported stack has a fixture, so both directions are checked.

Regenerate the current stack's fixture (only when the formats change on purpose):
`python tests/test_stacks.py --write`.
"""

import pathlib
import shutil
import sys
import tempfile

import numpy as np
import pytest
import tensorflow as tf
from conftest import untrained_digits_export

from rdc_keras import codec, data, export
from rdc_keras.files import read_json, write_json
from rdc_keras.tfkeras import keras, keras_version, stack_name

STACKS_DIR = pathlib.Path(__file__).resolve().parent / "fixtures" / "stacks"
SUPPORTED = ("tf2.14-py3.11", "tf2.17-py3.12")
METHODS = ("fixed", "range", "dithered")
SEED = 11
NUM_IMAGES = 6


def _seeds() -> np.ndarray:
    return SEED + np.arange(NUM_IMAGES, dtype=np.int64)  # "image i uses seed + i"


def _bits(array: np.ndarray) -> np.ndarray:
    """float32 values as their bit patterns, so equality means bit-identical (NaN included)."""
    return np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)


def write_fixture(directory: pathlib.Path) -> None:
    """Writes the current stack's fixture into `directory` (which must not exist)."""
    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        export_dir = untrained_digits_export(pathlib.Path(scratch), "stack")
        directory.mkdir(parents=True)
        shutil.copytree(export_dir, directory / "saved_models" / "stack")
    encoder = export.load_encoder(directory / "saved_models" / "stack")
    head = export.load_head(directory / "saved_models" / "stack" / "heads" / "h", encoder)
    images = data.load_arrays("digits", "test")[0][:NUM_IMAGES]
    np.save(directory / "images.npy", images)
    indices = encoder.encode(images, _seeds())
    np.save(directory / "indices.npy", indices)
    np.save(directory / "decoded.npy", head.decode(indices, _seeds()))
    for method in METHODS:
        blob = codec.compress(images, encoder, seed=SEED, method=method)
        (directory / f"images-{method}.rdc").write_bytes(blob)
    range_coder = codec._tfc()
    write_json(
        directory / "stack.json",
        {
            "stack": stack_name(),
            "python": sys.version.split()[0],
            "tensorflow": tf.__version__,
            "keras": keras_version(),
            "range_coder": range_coder.__name__,
            "numpy": np.__version__,
        },
    )


def _fixtures() -> list[pathlib.Path]:
    if not STACKS_DIR.is_dir():
        return []
    return sorted(path for path in STACKS_DIR.iterdir() if path.is_dir())


@pytest.fixture(params=_fixtures(), ids=lambda path: path.name)
def fixture_dir(request) -> pathlib.Path:
    return request.param


@pytest.fixture()
def exported(fixture_dir):
    encoder = export.load_encoder(fixture_dir / "saved_models" / "stack")
    head = export.load_head(fixture_dir / "saved_models" / "stack" / "heads" / "h", encoder)
    return encoder, head


def test_every_supported_stack_has_a_fixture():
    names = [path.name for path in _fixtures()]
    assert set(SUPPORTED) <= set(names), names
    assert stack_name() in SUPPORTED, f"{stack_name()} is not a supported stack"
    for path in _fixtures():
        assert read_json(path / "stack.json")["stack"] == path.name


def test_bitstreams_decode_to_the_same_integers_and_float_bits(fixture_dir, exported):
    encoder, head = exported
    indices = np.load(fixture_dir / "indices.npy")
    decoded = np.load(fixture_dir / "decoded.npy")
    assert len(np.unique(indices)) > 1  # not a degenerate all-one-symbol fixture
    for method in METHODS:
        blob = (fixture_dir / f"images-{method}.rdc").read_bytes()
        header, got = codec.decode_indices(blob, encoder)
        assert header.method == method
        np.testing.assert_array_equal(got, indices)
        np.testing.assert_array_equal(_bits(codec.decompress(blob, encoder, head)), _bits(decoded))


def test_exports_load_and_reproduce_their_outputs_bit_for_bit(fixture_dir, exported):
    encoder, head = exported
    images = np.load(fixture_dir / "images.npy")
    indices = encoder.encode(images, _seeds())
    np.testing.assert_array_equal(indices, np.load(fixture_dir / "indices.npy"))
    decoded = head.decode(indices, _seeds())
    np.testing.assert_array_equal(_bits(decoded), _bits(np.load(fixture_dir / "decoded.npy")))


def test_images_compress_to_the_same_bytes(fixture_dir, exported):
    """The fixtures hold format version 1 files; this stack writes version 2 around the same
    payload bytes and header fields (the container is packed in pure Python)."""
    encoder, _ = exported
    images = np.load(fixture_dir / "images.npy")
    for method in METHODS:
        blob = codec.compress(images, encoder, seed=SEED, method=method)
        old_header, old_payload = codec.parse((fixture_dir / f"images-{method}.rdc").read_bytes())
        header, payload = codec.parse(blob)
        assert payload == old_payload, method
        assert old_header.fingerprint.startswith(header.fingerprint), method
        keep = ("method", "image_shape", "num_levels", "latent_dim", "count", "seed")
        assert [getattr(header, k) for k in keep] == [getattr(old_header, k) for k in keep]


def main() -> int:
    if sys.argv[1:] != ["--write"]:
        print(f"usage: python {pathlib.Path(__file__).name} --write", file=sys.stderr)
        return 2
    target = STACKS_DIR / stack_name()
    if target.exists():
        print(f"{target}: exists; remove it first to rewrite it on purpose", file=sys.stderr)
        return 2
    write_fixture(target)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
