"""Tests for rdc_keras.data: splits, values and errors of every dataset, all offline.

Golden values come from independent readers (numpy over the raw IDX bytes, scikit-learn's own
arrays, the fake .mat/IDX files written here) and from the published MNIST t10k label histogram.
"""

import gzip
import socket
import struct

import numpy as np
import pytest
import scipy.io
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import gcs_utils

from rdc_keras import data

# Labels 0..9 of the official MNIST t10k set.
MNIST_T10K_HISTOGRAM = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
T10K_IMAGES, T10K_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"


# ----------------------------------------------------------------------------------- helpers


def idx_bytes(array) -> bytes:
    """Independent IDX writer: magic 0x0000 08 <ndim>, big-endian uint32 dims, raw uint8."""
    array = np.asarray(array, dtype=np.uint8)
    return (
        bytes([0, 0, 8, array.ndim])
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.tobytes()
    )


def write_idx(path, array, compress=True):
    payload = idx_bytes(array)
    path.write_bytes(gzip.compress(payload) if compress else payload)


def fake_mnist(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def read_t10k(directory):
    """Raw t10k arrays parsed directly with numpy (fixed 16/8-byte MNIST headers)."""
    images, labels = (
        np.frombuffer(
            gzip.decompress((directory / f"{stem}.gz").read_bytes()), np.uint8, offset=off
        )
        for stem, off in ((T10K_IMAGES, 16), (T10K_LABELS, 8))
    )
    return images.reshape(-1, 28, 28), labels


def dataset_arrays(ds):
    pairs = list(ds.as_numpy_iterator())
    return np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def example_set(images_uint8, labels):
    return {(img.tobytes(), int(lab)) for img, lab in zip(images_uint8, labels)}


def to_uint8(images):
    scaled = images * 255.0
    np.testing.assert_array_equal(scaled, np.round(scaled))  # exactly k / 255
    return np.round(scaled).astype(np.uint8)


@pytest.fixture
def network_guard(monkeypatch):
    """Records (and refuses) any socket connection, GCS probe or TFDS download attempt."""
    attempts = []

    def refuse(what):
        def guard(*args, **kwargs):
            attempts.append(what)
            raise OSError(f"network access attempted in an offline test: {what}")

        return guard

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    monkeypatch.setattr(gcs_utils, "exists", refuse("gcs_utils.exists"))
    return attempts


# ------------------------------------------------------------------------------- dataset info


@pytest.mark.parametrize(
    "name, shape, preset",
    [
        ("mnist", (28, 28, 1), "mnist"),
        ("mnist_idx", (28, 28, 1), "mnist"),
        ("svhn_cropped", (32, 32, 3), "svhn"),
        ("svhn", (32, 32, 3), "svhn"),
        ("digits", (8, 8, 1), "digits"),
    ],
)
def test_dataset_info(name, shape, preset):
    assert data.image_shape(name) == shape
    assert data.num_classes(name) == 10
    assert data.dataset_info(name).preset == preset
    assert data.dataset_info(name).splits == ("train", "test")


@pytest.mark.parametrize("name", ["cifar10", "MNIST", "", None, 3])
def test_dataset_info_unknown_name(name):
    with pytest.raises(ValueError, match="unknown dataset"):
        data.dataset_info(name)


@pytest.mark.parametrize("n, n_train", [(10000, 8000), (1797, 1437), (5, 4), (1, 0)])
def test_seeded_split_is_documented_permutation(n, n_train):
    perm = np.random.default_rng(0).permutation(n)
    train, test = data.seeded_split(n, "train"), data.seeded_split(n, "test")
    assert len(train) == n_train and len(test) == n - n_train
    np.testing.assert_array_equal(np.concatenate([train, test]), perm)


# ------------------------------------------------------------------------- real MNIST (t10k)


@pytest.fixture(scope="module")
def mnist10k(mnist_dir):
    return {split: data.load_arrays("mnist_idx", split, mnist_dir) for split in ("train", "test")}


def test_mnist10k_sizes_dtype_range(mnist10k):
    (x_train, y_train), (x_test, y_test) = mnist10k["train"], mnist10k["test"]
    assert x_train.shape == (8000, 28, 28, 1) and y_train.shape == (8000,)
    assert x_test.shape == (2000, 28, 28, 1) and y_test.shape == (2000,)
    for x, y in (mnist10k["train"], mnist10k["test"]):
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.min() == 0.0 and x.max() == 1.0
        to_uint8(x)


def test_mnist10k_label_histogram(mnist10k):
    labels = np.concatenate([mnist10k["train"][1], mnist10k["test"][1]])
    assert np.bincount(labels, minlength=10).tolist() == MNIST_T10K_HISTOGRAM


def test_mnist10k_matches_documented_split_and_is_disjoint(mnist_dir, mnist10k):
    raw_images, raw_labels = read_t10k(mnist_dir)
    perm = np.random.default_rng(0).permutation(10000)
    for split, index in (("train", perm[:8000]), ("test", perm[8000:])):
        x, y = mnist10k[split]
        np.testing.assert_array_equal(to_uint8(x)[..., 0], raw_images[index])
        np.testing.assert_array_equal(y, raw_labels[index])
    train = {img.tobytes() for img in mnist10k["train"][0]}
    test = {img.tobytes() for img in mnist10k["test"][0]}
    assert len(train) == 8000 and len(test) == 2000 and not train & test


def test_mnist10k_deterministic_and_dataset_matches_arrays(mnist_dir, mnist10k):
    x_again, y_again = data.load_arrays("mnist_idx", "test", mnist_dir)
    np.testing.assert_array_equal(x_again, mnist10k["test"][0])
    np.testing.assert_array_equal(y_again, mnist10k["test"][1])
    ds = data.load_dataset("mnist_idx", "test", str(mnist_dir))
    assert ds.element_spec == (
        tf.TensorSpec((28, 28, 1), tf.float32),
        tf.TensorSpec((), tf.int64),
    )
    x_ds, y_ds = dataset_arrays(ds)
    np.testing.assert_array_equal(x_ds, mnist10k["test"][0])
    np.testing.assert_array_equal(y_ds, mnist10k["test"][1])


def test_mnist10k_uncompressed_files(mnist_dir, mnist10k, tmp_path):
    for stem in (T10K_IMAGES, T10K_LABELS):
        (tmp_path / stem).write_bytes(gzip.decompress((mnist_dir / f"{stem}.gz").read_bytes()))
    x, y = data.load_arrays("mnist_idx", "train", tmp_path)
    np.testing.assert_array_equal(x, mnist10k["train"][0])
    np.testing.assert_array_equal(y, mnist10k["train"][1])


# --------------------------------------------------------------------- four-file IDX layout


def test_four_files_use_their_own_splits(tmp_path):
    train_images, train_labels = fake_mnist(50, seed=1)
    test_images, test_labels = fake_mnist(20, seed=2)
    write_idx(tmp_path / f"{TRAIN_IMAGES}.gz", train_images)
    write_idx(tmp_path / TRAIN_LABELS, train_labels, compress=False)  # mixed .gz / plain
    write_idx(tmp_path / f"{T10K_IMAGES}.gz", test_images)
    write_idx(tmp_path / f"{T10K_LABELS}.gz", test_labels)
    for split, images, labels in (
        ("train", train_images, train_labels),
        ("test", test_images, test_labels),
    ):
        x, y = data.load_arrays("mnist_idx", split, tmp_path)
        np.testing.assert_array_equal(x, images[..., None].astype(np.float32) / np.float32(255))
        np.testing.assert_array_equal(y, labels.astype(np.int64))
        x_ds, y_ds = dataset_arrays(data.load_dataset("mnist_idx", split, tmp_path))
        np.testing.assert_array_equal(x_ds, x)
        np.testing.assert_array_equal(y_ds, y)


# ---------------------------------------------------------------------------- bad IDX input


def _valid_t10k(directory, n=12):
    images, labels = fake_mnist(n, seed=3)
    write_idx(directory / f"{T10K_IMAGES}.gz", images)
    write_idx(directory / f"{T10K_LABELS}.gz", labels)
    return images, labels


def _corrupt(kind, directory):
    """Damages a valid t10k pair in place; returns (file name to be named, message fragment)."""
    images, labels = _valid_t10k(directory)
    img_gz, lbl_gz = f"{T10K_IMAGES}.gz", f"{T10K_LABELS}.gz"
    raw = idx_bytes(images)
    if kind == "labels_magic_in_images":
        (directory / img_gz).write_bytes(gzip.compress(idx_bytes(labels)))
        return img_gz, "bad IDX magic"
    if kind == "garbage_magic":
        (directory / img_gz).write_bytes(b"\x12\x34\x56\x78" + raw[4:])
        return img_gz, "bad IDX magic"
    if kind == "float_type":
        (directory / img_gz).write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + raw[4:]))
        return img_gz, "bad IDX magic"
    if kind == "short_header":
        (directory / img_gz).write_bytes(gzip.compress(raw[:10]))
        return img_gz, "truncated IDX header"
    if kind == "tiny_file":
        (directory / lbl_gz).write_bytes(gzip.compress(b"\x00\x00"))
        return lbl_gz, "truncated IDX header"
    if kind == "short_payload":
        (directory / img_gz).write_bytes(gzip.compress(raw[:-100]))
        return img_gz, "truncated IDX payload"
    if kind == "trailing_bytes":
        (directory / lbl_gz).write_bytes(gzip.compress(idx_bytes(labels) + b"\x00\x00"))
        return lbl_gz, "trailing bytes"
    if kind == "count_mismatch":
        write_idx(directory / lbl_gz, labels[:-1])
        return lbl_gz, "count mismatch"
    if kind == "label_out_of_range":
        write_idx(directory / lbl_gz, np.where(np.arange(len(labels)) == 0, 10, labels))
        return lbl_gz, "out of range"
    if kind == "wrong_image_size":
        write_idx(directory / img_gz, images[:, :27, :])
        return img_gz, "expected 28x28"
    if kind == "truncated_gzip":
        (directory / img_gz).write_bytes(gzip.compress(raw)[:-20])
        return img_gz, "corrupt gzip"
    if kind == "missing_labels":
        (directory / lbl_gz).unlink()
        return lbl_gz, "missing file"
    if kind == "lone_train_images":
        write_idx(directory / f"{TRAIN_IMAGES}.gz", images)
        return f"{TRAIN_LABELS}.gz", "missing file"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "labels_magic_in_images",
        "garbage_magic",
        "float_type",
        "short_header",
        "tiny_file",
        "short_payload",
        "trailing_bytes",
        "count_mismatch",
        "label_out_of_range",
        "wrong_image_size",
        "truncated_gzip",
        "missing_labels",
        "lone_train_images",
    ],
)
@pytest.mark.parametrize("loader", [data.load_arrays, data.load_dataset])
def test_bad_idx_files_raise_one_line_error_naming_file(kind, loader, tmp_path):
    file_name, fragment = _corrupt(kind, tmp_path)
    with pytest.raises(ValueError) as info:
        loader("mnist_idx", "train", tmp_path)
    message = str(info.value)
    assert file_name in message and fragment in message
    assert "\n" not in message


def test_valid_synthetic_t10k_loads(tmp_path):
    images, labels = _valid_t10k(tmp_path)  # the baseline that every corruption above breaks
    x, y = data.load_arrays("mnist_idx", "test", tmp_path)
    index = np.random.default_rng(0).permutation(12)[-3:]
    np.testing.assert_array_equal(to_uint8(x)[..., 0], images[index])
    np.testing.assert_array_equal(y, labels[index])


@pytest.mark.parametrize("loader", [data.load_arrays, data.load_dataset])
def test_bad_directory(loader, tmp_path):
    with pytest.raises(ValueError, match="needs data_dir"):
        loader("mnist_idx", "train")
    with pytest.raises(ValueError, match="does not exist") as info:
        loader("mnist_idx", "train", tmp_path / "nowhere")
    assert "nowhere" in str(info.value)
    (tmp_path / "a_file").write_bytes(b"")
    with pytest.raises(ValueError, match="not a directory"):
        loader("mnist_idx", "train", tmp_path / "a_file")
    with pytest.raises(ValueError, match=f"{T10K_IMAGES}.gz: missing file"):
        loader("mnist_idx", "test", tmp_path)  # empty directory


@pytest.mark.parametrize("loader", [data.load_arrays, data.load_dataset])
@pytest.mark.parametrize("name", ["cifar10", "svhn", "Digits", None])
def test_unknown_name(loader, name):
    with pytest.raises(ValueError, match="unknown dataset"):
        loader(name, "train")


@pytest.mark.parametrize("loader", [data.load_arrays, data.load_dataset])
@pytest.mark.parametrize("split", ["extra", "validation", "train[:10%]", "TEST", None])
def test_unknown_split(loader, split):
    with pytest.raises(ValueError, match="unknown split"):
        loader("digits", split)


# ----------------------------------------------------------------------------------- digits


def test_digits_split_values_and_determinism():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    perm = np.random.default_rng(0).permutation(1797)
    seen = []
    for split, index in (("train", perm[:1437]), ("test", perm[1437:])):
        x, y = data.load_arrays("digits", split)
        assert x.shape == (len(index), 8, 8, 1) and x.dtype == np.float32 and y.dtype == np.int64
        assert x.min() == 0.0 and x.max() == 1.0
        np.testing.assert_array_equal(x[..., 0], (bunch.images[index] / 16).astype(np.float32))
        np.testing.assert_array_equal(y, bunch.target[index])
        x_again, y_again = data.load_arrays("digits", split)
        np.testing.assert_array_equal(x_again, x)
        np.testing.assert_array_equal(y_again, y)
        x_ds, y_ds = dataset_arrays(data.load_dataset("digits", split, data_dir="/ignored"))
        np.testing.assert_array_equal(x_ds, x)
        np.testing.assert_array_equal(y_ds, y)
        seen.append(index)
    assert sorted(np.concatenate(seen).tolist()) == list(range(1797))


# ---------------------------------------------------------------------------------- prepare


def _counting_dataset(n=100):
    values = np.arange(n)
    return tf.data.Dataset.from_tensor_slices((values.astype(np.float32), values.astype(np.int64)))


def _epoch_labels(ds):
    return np.concatenate([labels for _, labels in ds.as_numpy_iterator()])


def test_prepare_batches_without_shuffle():
    ds = data.prepare(_counting_dataset(), 32, shuffle=False)
    sizes = [len(labels) for _, labels in ds.as_numpy_iterator()]
    assert sizes == [32, 32, 32, 4]
    np.testing.assert_array_equal(_epoch_labels(ds), np.arange(100))
    dropped = data.prepare(_counting_dataset(), 32, shuffle=False, drop_remainder=True)
    assert [len(labels) for _, labels in dropped.as_numpy_iterator()] == [32, 32, 32]
    assert dropped.element_spec[0].shape.as_list() == [32]


def test_prepare_shuffle_is_seeded_and_reshuffles_each_epoch():
    ds = data.prepare(_counting_dataset(), 16, seed=7)
    first, second = _epoch_labels(ds), _epoch_labels(ds)
    assert sorted(first.tolist()) == list(range(100)) == sorted(second.tolist())
    assert not np.array_equal(first, np.arange(100))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(
        _epoch_labels(data.prepare(_counting_dataset(), 16, seed=7)), first
    )
    assert not np.array_equal(_epoch_labels(data.prepare(_counting_dataset(), 16, seed=8)), first)


def test_prepare_repeat_crosses_epochs():
    ds = data.prepare(_counting_dataset(), 64, shuffle=False, repeat=True)
    labels = np.concatenate([b[1] for b in ds.take(3).as_numpy_iterator()])
    np.testing.assert_array_equal(labels, np.arange(192) % 100)


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True, None])
def test_prepare_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        data.prepare(_counting_dataset(), batch_size)


def test_prepare_bad_input():
    with pytest.raises(TypeError, match=r"tf\.data\.Dataset"):
        data.prepare(np.zeros(3), 2)
    with pytest.raises(ValueError, match="shuffle_buffer"):
        data.prepare(_counting_dataset(), 2, shuffle_buffer=0)


# ------------------------------------------------------------------------------ TFDS (mocked)


@pytest.mark.parametrize("name, shape", [("mnist", (28, 28, 1)), ("svhn_cropped", (32, 32, 3))])
def test_tfds_mock_random(name, shape):
    with tfds.testing.mock_data(num_examples=5):
        ds = data.load_dataset(name, "train")
        assert ds.element_spec == (tf.TensorSpec(shape, tf.float32), tf.TensorSpec((), tf.int64))
        x, y = dataset_arrays(ds)
        x_np, y_np = data.load_arrays(name, "test")
    assert x.shape == (5, *shape) and x_np.shape == (5, *shape)
    for images, labels in ((x, y), (x_np, y_np)):
        assert images.dtype == np.float32 and labels.dtype == np.int64
        assert images.min() >= 0.0 and images.max() <= 1.0
        assert images.max() > 0.5  # scaled from uint8, not left as 0..255 or squashed
        to_uint8(images)
        assert set(labels.tolist()) <= set(range(10))


@pytest.mark.parametrize("name, shape", [("mnist", (28, 28, 1)), ("svhn_cropped", (32, 32, 3))])
def test_tfds_mock_exact_values(name, shape):
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (6, *shape), dtype=np.uint8)
    images[0] = 255
    images[1] = 0
    labels = np.arange(6) % 10

    def as_dataset(self, *args, **kwargs):
        return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        x, y = dataset_arrays(data.load_dataset(name, "test"))
    np.testing.assert_array_equal(x, images.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(y, labels)
    assert x.min() == 0.0 and x.max() == 1.0


# ------------------------------------------------------------------- TFDS (prepared offline)


@pytest.mark.parametrize("name", ["mnist", "svhn_cropped"])
def test_tfds_not_prepared_error(name, tmp_path, network_guard, monkeypatch):
    downloads = []
    monkeypatch.setattr(
        tfds.core.DatasetBuilder, "download_and_prepare", lambda *a, **k: downloads.append(a)
    )
    for loader in (data.load_dataset, data.load_arrays):
        with pytest.raises(ValueError) as info:
            loader(name, "train", tmp_path)
        message = str(info.value)
        assert "\n" not in message
        assert "not prepared" in message and str(tmp_path) in message
        assert "prepare_tfds" in message and "DownloadConfig(manual_dir=M)" in message
        for file_name in data.TFDS_MANUAL_FILES[name]:
            assert file_name in message
    assert network_guard == [] and downloads == []


def _write_svhn_mat(path, n, rng):
    images = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    labels = rng.integers(1, 11, (n, 1)).astype(np.uint8)  # SVHN: 10 means digit 0
    scipy.io.savemat(path, {"X": images, "y": labels})
    return np.moveaxis(images, -1, 0), labels[:, 0].astype(np.int64) % 10


@pytest.fixture(scope="module")
def prepared_svhn(tmp_path_factory):
    manual = tmp_path_factory.mktemp("svhn_manual")
    data_dir = tmp_path_factory.mktemp("svhn_data")
    rng = np.random.default_rng(5)
    expected = {
        split: _write_svhn_mat(manual / f"{split}_32x32.mat", n, rng)
        for split, n in (("train", 7), ("test", 4), ("extra", 2))
    }
    with pytest.MonkeyPatch.context() as patch:
        refused = []
        patch.setattr(gcs_utils, "exists", lambda *a: refused.append(a))
        patch.setattr(socket.socket, "connect", lambda *a: refused.append(a))
        prepared = data.prepare_tfds("svhn_cropped", manual, data_dir)
    assert refused == []
    return data_dir, prepared, expected


def test_prepare_tfds_svhn_layout(prepared_svhn):
    data_dir, prepared, _ = prepared_svhn
    assert prepared.parent.parent == data_dir and prepared.parent.name == "svhn_cropped"
    assert (prepared / "dataset_info.json").is_file()


@pytest.mark.parametrize("split", ["train", "test"])
def test_prepared_svhn_round_trip(prepared_svhn, split, network_guard):
    data_dir, _, expected = prepared_svhn
    ds = data.load_dataset("svhn_cropped", split, data_dir)
    assert ds.element_spec == (tf.TensorSpec((32, 32, 3), tf.float32), tf.TensorSpec((), tf.int64))
    x, y = dataset_arrays(ds)
    x_np, y_np = data.load_arrays("svhn_cropped", split, str(data_dir))
    np.testing.assert_array_equal(x_np, x)
    np.testing.assert_array_equal(y_np, y)
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.min() >= 0 and x.max() <= 1
    # TFDS reorders examples when it writes them, so compare as sets of (image, label).
    assert example_set(to_uint8(x), y) == example_set(*expected[split])
    assert network_guard == []


def test_prepare_tfds_bad_input(tmp_path):
    with pytest.raises(ValueError, match="unknown TFDS dataset"):
        data.prepare_tfds("digits", tmp_path, tmp_path)
    with pytest.raises(ValueError, match="manual_dir does not exist"):
        data.prepare_tfds("mnist", tmp_path / "nowhere", tmp_path)
    manual = tmp_path / "manual"
    manual.mkdir()
    _valid_t10k(manual)
    with pytest.raises(ValueError) as info:
        data.prepare_tfds("mnist", manual, tmp_path / "tfds")
    message = str(info.value)
    assert f"{TRAIN_IMAGES}.gz" in message and f"{TRAIN_LABELS}.gz" in message
    assert T10K_IMAGES not in message and "\n" not in message
    assert not (tmp_path / "tfds").exists()


@pytest.mark.slow
def test_prepared_tfds_mnist_full_size(tmp_path, network_guard):
    """The TFDS MNIST builder hard-codes 60000/10000 examples, so fake files must be full size."""
    manual = tmp_path / "manual"
    manual.mkdir()
    expected = {}
    for split, prefix, n in (("train", "train", 60000), ("test", "t10k", 10000)):
        index = np.arange(n)
        images = np.zeros((n, 28, 28), np.uint8)  # sparse, so the .gz files stay small
        images[:, 0, 0], images[:, 0, 1] = index % 256, index // 256
        images[:, 5, 7] = 1 if split == "test" else 2
        labels = (index * 7 % 10).astype(np.uint8)
        write_idx(manual / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(manual / f"{prefix}-labels-idx1-ubyte.gz", labels)
        expected[split] = (images[..., None], labels)
    data.prepare_tfds("mnist", manual, tmp_path / "tfds")
    for split in ("train", "test"):
        x, y = data.load_arrays("mnist", split, tmp_path / "tfds")
        assert x.shape == (len(expected[split][1]), 28, 28, 1) and y.dtype == np.int64
        assert example_set(to_uint8(x), y) == example_set(*expected[split])
        # The same raw files read as IDX (four-file layout) give the same examples.
        x_idx, y_idx = data.load_arrays("mnist_idx", split, manual)
        np.testing.assert_array_equal(to_uint8(x_idx), expected[split][0])
        np.testing.assert_array_equal(y_idx, expected[split][1])
    assert network_guard == []


def test_mnist_idx_data_dir_may_be_a_gfile_url(mnist_dir, mnist10k):
    from rdc_keras import remote
    from rdc_keras.config import TrainConfig

    url = "ram://data/mnist"
    for path in mnist_dir.glob("t10k-*"):
        remote.write_bytes(f"{url}/{path.name}", path.read_bytes())
    images, labels = data.load_arrays("mnist_idx", "test", url)
    np.testing.assert_array_equal(images, mnist10k["test"][0])
    np.testing.assert_array_equal(labels, mnist10k["test"][1])
    TrainConfig(workdir="w", dataset="mnist_idx", data_dir=url).validate()  # accepted
    with pytest.raises(ValueError, match="--data_dir=ram://data/none: directory not found"):
        TrainConfig(workdir="w", dataset="mnist_idx", data_dir="ram://data/none").validate()
