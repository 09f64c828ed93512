"""Datasets: every model reads images the same way, as float32 in [0, 1] with int64 labels.

Four datasets, two splits each (``"train"`` and ``"test"``; SVHN's ``extra`` split is not exposed):

- ``mnist``, ``svhn_cropped``: TensorFlow Datasets, read from a *prepared* ``data_dir``. This module
  never downloads: when nothing is prepared it raises one ``ValueError`` that says how to prepare
  the data offline from the raw files (:func:`prepare_tfds`, see notes/ecosystem.md §4).
- ``mnist_idx``: the raw MNIST IDX files (``.gz`` or uncompressed) in ``data_dir``. With all four
  standard files the splits are the files' own train (60,000) / t10k (10,000) sets; other counts
  are accepted as found, which keeps synthetic test fixtures small. With only the two ``t10k-*``
  files ("MNIST-10k") the n = 10,000 examples are split by :func:`seeded_split`: 8,000 train /
  2,000 test.
- ``digits``: scikit-learn's bundled 8x8 digits (1,797 images, values 0..16 divided by 16), split
  by :func:`seeded_split`: 1,437 train / 360 test.

:func:`seeded_split` is ``perm = np.random.default_rng(0).permutation(n)``; test is the last
``ceil(n / 5)`` entries of ``perm``, train the first ``n - ceil(n / 5)``, both in ``perm`` order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import math
import os
import pathlib
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from rdc_keras import remote

__all__ = [
    "DATASETS",
    "IDX_FILES",
    "SPLITS",
    "SPLIT_SEED",
    "TFDS_MANUAL_FILES",
    "DatasetInfo",
    "dataset_info",
    "image_shape",
    "load_arrays",
    "load_dataset",
    "num_classes",
    "prepare",
    "prepare_tfds",
    "seeded_split",
]

SPLITS = ("train", "test")
SPLIT_SEED = 0

# Raw file names registered by the TFDS builders (mnist.txt, svhn_cropped/checksums.tsv).
TFDS_MANUAL_FILES: dict[str, tuple[str, ...]] = {
    "mnist": (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ),
    "svhn_cropped": ("train_32x32.mat", "test_32x32.mat", "extra_32x32.mat"),
}

# Standard MNIST IDX file stems; each may be present as `<stem>.gz` or uncompressed `<stem>`.
IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

_IDX_UBYTE = 0x08
_MNIST_SIDE = 28


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset that networks and evaluation need before loading it."""

    name: str
    image_shape: tuple[int, int, int]
    num_classes: int
    preset: str  # the `rdc_keras.networks` preset that fits these images
    source: str  # "tfds", "idx" or "sklearn"
    splits: tuple[str, ...] = SPLITS


_INFO: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", (28, 28, 1), 10, "mnist", "tfds"),
    "svhn_cropped": DatasetInfo("svhn_cropped", (32, 32, 3), 10, "svhn", "tfds"),
    "mnist_idx": DatasetInfo("mnist_idx", (28, 28, 1), 10, "mnist", "idx"),
    "digits": DatasetInfo("digits", (8, 8, 1), 10, "digits", "sklearn"),
}
DATASETS = tuple(_INFO)
# Network preset names accepted by `dataset_info` in addition to dataset names.
_PRESETS = {"svhn": "svhn_cropped"}


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or name not in _INFO:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return name


def _check_split(split: Any) -> str:
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return split


def dataset_info(name: str) -> DatasetInfo:
    """Returns image shape, class count and network preset of a dataset (or of a preset name)."""
    return _INFO[_check_name(_PRESETS.get(name, name) if isinstance(name, str) else name)]


def image_shape(name: str) -> tuple[int, int, int]:
    """Returns (H, W, C) of a dataset or network preset; ``image_shape("mnist") == (28, 28, 1)``."""
    return dataset_info(name).image_shape


def num_classes(name: str) -> int:
    """Returns the number of label classes of a dataset or network preset."""
    return dataset_info(name).num_classes


def seeded_split(n: int, split: str) -> np.ndarray:
    """Indices of ``split`` in a fixed 80/20 split of n examples (test gets ``ceil(n / 5)``).

    ``np.random.default_rng(SPLIT_SEED).permutation(n)``; train is its head, test its tail.
    """
    _check_split(split)
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_test = math.ceil(n / 5)
    return perm[: n - n_test] if split == "train" else perm[n - n_test :]


# --------------------------------------------------------------------------------------------
# IDX files (http://yann.lecun.com/exdb/mnist/: magic 0x0000 08 <ndim>, big-endian uint32 dims).


def _read_bytes(path: pathlib.Path) -> bytes:
    """Reads a file, gunzipping it when it starts with the gzip magic (whatever its name)."""
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        msg = str(err).replace("\n", " ")
        raise ValueError(f"{path}: corrupt gzip data ({msg})") from None


def _read_idx(path: pathlib.Path, ndim: int) -> np.ndarray:
    """Parses an unsigned-byte IDX file with ``ndim`` dimensions; rejects any malformed file."""
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    if raw[:2] != b"\x00\x00" or raw[2] != _IDX_UBYTE or raw[3] != ndim:
        magic, expected = int.from_bytes(raw[:4], "big"), 0x800 | ndim
        raise ValueError(f"{path}: bad IDX magic 0x{magic:08x}, expected 0x{expected:08x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} of {header} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    size, payload = math.prod(dims), len(raw) - header
    if payload < size:
        raise ValueError(
            f"{path}: truncated IDX payload, {payload} bytes for shape {dims} (expected {size})"
        )
    if payload > size:
        raise ValueError(
            f"{path}: {payload - size} trailing bytes after IDX payload of shape {dims}"
        )
    return np.frombuffer(raw, dtype=np.uint8, count=size, offset=header).reshape(dims)


def _find_idx(directory: pathlib.Path, stem: str) -> pathlib.Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def _require_idx(directory: pathlib.Path, stem: str) -> pathlib.Path:
    path = _find_idx(directory, stem)
    if path is None:
        raise ValueError(f"{directory / (stem + '.gz')}: missing file (nor uncompressed {stem})")
    return path


def _read_idx_pair(images_path: pathlib.Path, labels_path: pathlib.Path):
    """Reads one MNIST images/labels pair as uint8 (N, 28, 28, 1) and int64 (N,)."""
    images = _read_idx(images_path, ndim=3)
    labels = _read_idx(labels_path, ndim=1)
    if images.shape[1:] != (_MNIST_SIDE, _MNIST_SIDE):
        rows, cols = images.shape[1:]
        raise ValueError(f"{images_path}: images are {rows}x{cols}, expected 28x28")
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path}, {labels_path}: image/label count mismatch "
            f"({len(images)} images, {len(labels)} labels)"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path}: label {int(labels.max())} out of range 0..9")
    return images[..., np.newaxis], labels.astype(np.int64)


def _load_mnist_idx(data_dir: str | os.PathLike | None, split: str):
    if data_dir is None:
        raise ValueError("mnist_idx needs data_dir: a directory holding the MNIST IDX files")
    if not remote.is_dir(data_dir):
        raise ValueError(f"{data_dir}: mnist_idx data_dir does not exist or is not a directory")
    directory = remote.local_copy(data_dir)  # a URL: copied once per process
    if any(_find_idx(directory, stem) for stem in IDX_FILES["train"]):
        # Four-file layout: the files' own splits; a lone train file is an error, not MNIST-10k.
        stems = IDX_FILES["train"] + IDX_FILES["test"]
        paths = {stem: _require_idx(directory, stem) for stem in stems}
        return _read_idx_pair(*(paths[stem] for stem in IDX_FILES[split]))
    # MNIST-10k: only the t10k pair, split 80/20 with a fixed seed (see `seeded_split`).
    images, labels = _read_idx_pair(*(_require_idx(directory, s) for s in IDX_FILES["test"]))
    index = seeded_split(len(labels), split)
    return images[index], labels[index]


def _load_digits(split: str):
    """scikit-learn's 8x8 digits as uint8 0..16 (N, 8, 8, 1) and int64 labels, seeded split."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn; no download

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)[..., np.newaxis]
    labels = bunch.target.astype(np.int64)
    index = seeded_split(len(labels), split)
    return images[index], labels[index]


# Local datasets: name -> (loader(data_dir, split) -> (raw uint8 images, int64 labels), max value).
_LOCAL = {
    "mnist_idx": (_load_mnist_idx, 255.0),
    "digits": (lambda data_dir, split: _load_digits(split), 16.0),
}


# --------------------------------------------------------------------------------------------
# TensorFlow Datasets, strictly offline.


@contextlib.contextmanager
def _gcs_disabled() -> Iterator[None]:
    """Stops TFDS from probing gs://tfds-data while it builds a builder for unprepared data.

    `DatasetBuilder.__init__` calls `info.initialize_from_bucket()` when the data is not prepared,
    which makes a network request (and may hang offline; tensorflow/datasets#5719). TFDS 4.9.4's
    only switch for that is the module flag `gcs_utils._is_gcs_disabled`.
    """
    from tensorflow_datasets.core.utils import gcs_utils

    previous = gcs_utils._is_gcs_disabled
    gcs_utils._is_gcs_disabled = True
    try:
        yield
    finally:
        gcs_utils._is_gcs_disabled = previous


def _tfds_builder(name: str, data_dir: str | os.PathLike | None):
    import tensorflow_datasets as tfds

    with _gcs_disabled():
        return tfds.builder(
            name, data_dir=None if data_dir is None else os.fspath(data_dir), try_gcs=False
        )


def _not_prepared_error(name: str, data_dir_root: str) -> ValueError:
    files = ", ".join(TFDS_MANUAL_FILES[name])
    return ValueError(
        f"TFDS dataset {name!r} is not prepared under data_dir D={data_dir_root} and rdc_keras "
        f"never downloads: put the raw files {files} in a directory M, then run "
        f"rdc_keras.data.prepare_tfds({name!r}, manual_dir=M, data_dir=D) (it runs "
        f"tfds.builder({name!r}, data_dir=D).download_and_prepare(download_config="
        f"tfds.download.DownloadConfig(manual_dir=M))), or copy into D a data_dir prepared "
        f"online by tfds.load({name!r}, data_dir=D)"
    )


def _load_tfds(name: str, split: str, data_dir: str | os.PathLike | None) -> tf.data.Dataset:
    builder = _tfds_builder(name, data_dir)
    try:
        # `as_dataset` only reads local files; it never downloads (unlike `tfds.load`).
        return builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    except AssertionError as err:
        if "could not find data" not in str(err):
            raise
        raise _not_prepared_error(name, str(builder.data_dir_root)) from None


def prepare_tfds(
    name: str, manual_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None
) -> pathlib.Path:
    """Prepares a TFDS ``data_dir`` offline from raw files in ``manual_dir`` (ecosystem.md §4).

    ``manual_dir`` must hold ``TFDS_MANUAL_FILES[name]``. Nothing is downloaded and GCS is never
    contacted. Already prepared data is left as is. Returns the prepared version directory.
    """
    import tensorflow_datasets as tfds

    if name not in TFDS_MANUAL_FILES:
        raise ValueError(f"unknown TFDS dataset {name!r}; expected one of mnist, svhn_cropped")
    manual = pathlib.Path(manual_dir)
    if not manual.is_dir():
        raise ValueError(f"{manual}: manual_dir does not exist or is not a directory")
    missing = [f for f in TFDS_MANUAL_FILES[name] if not (manual / f).is_file()]
    if missing:
        raise ValueError(f"{manual}: missing file(s) {', '.join(missing)} needed for {name!r}")
    builder = _tfds_builder(name, data_dir)
    config = tfds.download.DownloadConfig(manual_dir=os.fspath(manual), try_download_gcs=False)
    with _gcs_disabled():
        builder.download_and_prepare(download_config=config)
    return pathlib.Path(builder.data_path)


# --------------------------------------------------------------------------------------------
# Public loaders.


def _to_unit_interval(max_value: float):
    def convert(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.cast(image, tf.float32) / max_value, tf.cast(label, tf.int64)

    return convert


def load_dataset(
    name: str, split: str, data_dir: str | os.PathLike | None = None
) -> tf.data.Dataset:
    """Loads a split as an unbatched ``tf.data.Dataset`` of ``(image, label)``.

    Args:
      name: one of ``DATASETS``.
      split: ``"train"`` or ``"test"``.
      data_dir: TFDS data_dir (``mnist``, ``svhn_cropped``; None means the TFDS default), or the
        directory of IDX files (``mnist_idx``, required). Ignored by ``digits``.

    Returns:
      Dataset of ``image`` float32 (H, W, C) in [0, 1] and ``label`` int64, in a fixed order.

    Raises:
      ValueError: unknown name or split, missing or malformed files, unprepared TFDS data.
    """
    _check_name(name)
    _check_split(split)
    if name in _LOCAL:
        loader, max_value = _LOCAL[name]
        images, labels = loader(data_dir, split)
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
    else:
        ds, max_value = _load_tfds(name, split, data_dir), 255.0
    return ds.map(_to_unit_interval(max_value), num_parallel_calls=tf.data.AUTOTUNE)


def load_arrays(
    name: str, split: str, data_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Loads a whole split into memory: images float32 (N, H, W, C) in [0, 1], labels int64 (N,).

    Same examples, order and values as :func:`load_dataset`. Meant for the small datasets; the
    SVHN train split alone is about 0.9 GB as float32.
    """
    _check_name(name)
    _check_split(split)
    if name in _LOCAL:
        loader, max_value = _LOCAL[name]
        images, labels = loader(data_dir, split)
        return images.astype(np.float32) / np.float32(max_value), labels
    batches = list(load_dataset(name, split, data_dir).batch(4096).as_numpy_iterator())
    if not batches:
        return np.zeros((0, *image_shape(name)), np.float32), np.zeros((0,), np.int64)
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def prepare(
    ds: tf.data.Dataset,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    drop_remainder: bool = False,
    cache: bool = True,
    repeat: bool = False,
    shuffle_buffer: int = 10_000,
) -> tf.data.Dataset:
    """Input pipeline for training and evaluation: cache, shuffle, repeat, batch, prefetch.

    The cache holds the unshuffled examples, so each epoch is reshuffled (deterministically from
    ``seed``); ``repeat=True`` makes the dataset infinite (use ``steps_per_epoch``).
    """
    if not isinstance(ds, tf.data.Dataset):
        raise TypeError(f"ds must be a tf.data.Dataset, got {type(ds).__name__}")
    for arg, value in (("batch_size", batch_size), ("shuffle_buffer", shuffle_buffer)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}")
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)
