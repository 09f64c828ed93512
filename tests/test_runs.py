"""Tests for rdc_keras.runs: atomic JSON and directories, network round trips, fingerprints."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from rdc_keras import networks, runs

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _encoder_builder(description):
    return networks.encoder(description["preset"], description["latent_dim"])


@pytest.fixture()
def encoder():
    tf.keras.utils.set_random_seed(0)
    return networks.encoder("digits", 3)


def _leftovers(directory: pathlib.Path) -> list[str]:
    """Hidden temporary files or directories left next to the outputs."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


# ------------------------------------------------------------------------------------------------
# JSON files


def test_write_json_round_trip_and_no_temporary_file(tmp_path):
    payload = {"b": [1, 2.5], "a": {"nested": None}, "path": pathlib.Path("x/y"), "arr": np.eye(2)}
    runs.write_json(tmp_path / "sub" / "out.json", payload)
    loaded = json.loads((tmp_path / "sub" / "out.json").read_text())
    assert loaded == {"b": [1, 2.5], "a": {"nested": None}, "path": "x/y", "arr": [[1, 0], [0, 1]]}
    assert runs.read_json(tmp_path / "sub" / "out.json") == loaded
    assert _leftovers(tmp_path / "sub") == []


def test_write_json_failure_keeps_previous_file(tmp_path):
    path = tmp_path / "out.json"
    runs.write_json(path, {"v": 1})
    with pytest.raises(TypeError, match="not JSON serializable"):
        runs.write_json(path, {"v": object()})
    assert runs.read_json(path) == {"v": 1}
    assert _leftovers(tmp_path) == []


def test_read_json_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"missing\.json: file not found"):
        runs.read_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON"):
        runs.read_json(tmp_path / "bad.json")


# ------------------------------------------------------------------------------------------------
# atomic_directory


def test_atomic_directory_creates_on_success(tmp_path):
    target = tmp_path / "net"
    with runs.atomic_directory(target) as tmp:
        assert tmp != target and tmp.parent == tmp_path
        (tmp / "a.txt").write_text("new")
        assert not target.exists()  # nothing visible before the block ends
    assert (target / "a.txt").read_text() == "new"
    assert _leftovers(tmp_path) == []


def test_atomic_directory_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "net"
    with pytest.raises(RuntimeError, match="boom"), runs.atomic_directory(target) as tmp:
        (tmp / "half.txt").write_text("partial")
        raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_replaces_whole_or_keeps_old(tmp_path):
    target = tmp_path / "net"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), runs.atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    with runs.atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------------
# save_network / load_network


def test_save_load_network_round_trip(tmp_path, encoder):
    images = np.random.default_rng(0).uniform(size=(5, 8, 8, 1)).astype(np.float32)
    description = {"kind": "encoder", "preset": "digits", "latent_dim": 3, "extra": [1, 2]}
    runs.save_network(tmp_path / "encoder", encoder, description)
    assert sorted(p.name for p in (tmp_path / "encoder").iterdir()) == [
        runs.NETWORK_FILE,
        runs.WEIGHTS_FILE,
    ]
    tf.keras.utils.set_random_seed(1)  # the rebuilt network starts from other weights
    loaded, loaded_description = runs.load_network(
        tmp_path / "encoder", _encoder_builder, "encoder"
    )
    assert loaded_description == description
    assert loaded is not encoder
    for saved, restored in zip(encoder.weights, loaded.weights):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())
    np.testing.assert_array_equal(
        encoder(images, training=False).numpy(), loaded(images, training=False).numpy()
    )


def test_save_network_needs_kind_and_preset(tmp_path, encoder):
    with pytest.raises(ValueError, match="'preset'"):
        runs.save_network(tmp_path / "e", encoder, {"kind": "encoder"})
    with pytest.raises(ValueError, match="'kind'"):
        runs.save_network(tmp_path / "e", encoder, {"preset": "digits"})
    assert not (tmp_path / "e").exists()


def test_load_network_errors(tmp_path, encoder):
    with pytest.raises(ValueError, match="directory not found"):
        runs.load_network(tmp_path / "nothing", _encoder_builder)
    runs.save_network(
        tmp_path / "e", encoder, {"kind": "encoder", "preset": "digits", "latent_dim": 3}
    )
    with pytest.raises(ValueError, match="holds a 'encoder' network, expected 'decoder'"):
        runs.load_network(tmp_path / "e", _encoder_builder, kind="decoder")
    (tmp_path / "e" / runs.WEIGHTS_FILE).unlink()
    with pytest.raises(ValueError, match="weights file not found"):
        runs.load_network(tmp_path / "e", _encoder_builder, kind="encoder")


# ------------------------------------------------------------------------------------------------
# encoder_fingerprint

_FINGERPRINT_SCRIPT = """
import sys
from rdc_keras import networks, runs
encoder, _ = runs.load_network(
    sys.argv[1], lambda d: networks.encoder(d["preset"], d["latent_dim"]), kind="encoder"
)
print("FINGERPRINT", runs.encoder_fingerprint(encoder, 3, 1.0))
"""


def test_encoder_fingerprint_stable_across_processes(tmp_path, encoder):
    fingerprint = runs.encoder_fingerprint(encoder, 3, 1.0)
    assert len(fingerprint) == 32 and int(fingerprint, 16) >= 0
    assert runs.encoder_fingerprint(encoder, 3, 1.0) == fingerprint
    runs.save_network(
        tmp_path / "e", encoder, {"kind": "encoder", "preset": "digits", "latent_dim": 3}
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    # Another process numbers its Keras variables differently; the fingerprint must not care.
    result = subprocess.run(
        [sys.executable, "-c", _FINGERPRINT_SCRIPT, str(tmp_path / "e")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("FINGERPRINT")]
    assert lines == [f"FINGERPRINT {fingerprint}"]


def test_encoder_fingerprint_changes_with_weights_and_quantizer(encoder):
    fingerprint = runs.encoder_fingerprint(encoder, 3, 1.0)
    assert runs.encoder_fingerprint(encoder, 5, 1.0) != fingerprint
    assert runs.encoder_fingerprint(encoder, 3, 0.5) != fingerprint
    kernel = encoder.get_layer("latent_dense").kernel
    original = kernel.numpy()
    changed = original.copy()
    changed[0, 0] = np.nextafter(changed[0, 0], np.float32(np.inf))  # one ulp of one weight
    kernel.assign(changed)
    assert runs.encoder_fingerprint(encoder, 3, 1.0) != fingerprint
    kernel.assign(original)
    assert runs.encoder_fingerprint(encoder, 3, 1.0) == fingerprint
    # Non-trainable BatchNorm statistics are part of the encoder too.
    moving_mean = encoder.get_layer("latent_bn").moving_mean
    moving_mean.assign(moving_mean + 1e-3)
    assert runs.encoder_fingerprint(encoder, 3, 1.0) != fingerprint


def test_environment_records_versions():
    env = runs.environment()
    assert env["tensorflow"] == tf.__version__
    assert env["numpy"] == np.__version__
    assert env["cpu_count"] == os.cpu_count()
    assert isinstance(env["argv"], list) and env["date"]
