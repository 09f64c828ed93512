"""Tests for rdc_keras.runs: saved networks, fingerprints, run directories and their heads."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from rdc_keras import files, networks, runs
from rdc_keras.tfkeras import keras

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _encoder_builder(description):
    return networks.encoder(description["preset"], description["latent_dim"])


@pytest.fixture()
def encoder():
    keras.utils.set_random_seed(0)
    return networks.encoder("digits", 3)


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
    keras.utils.set_random_seed(1)  # the rebuilt network starts from other weights
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
from rdc_keras import files, networks, runs
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


# ------------------------------------------------------------------------------------------------
# RunDir, heads and find_runs


def _fake_run(
    root: pathlib.Path, heads: dict[str, dict], config: dict | None = None
) -> runs.RunDir:
    """A run directory with config.json, results.json and head.json files (no weights)."""
    run = runs.RunDir(root)
    files.write_json(run.config_path, {"config": config or {"dataset": "digits"}})
    files.write_json(run.results_path, {"test": {}})
    for name, description in heads.items():
        files.write_json(run.head_dir(name) / runs.HEAD_FILE, {"name": name, **description})
    return run


def test_run_dir_names_the_layout(tmp_path):
    run = runs.RunDir(tmp_path / "r")
    assert run.config_path == tmp_path / "r" / "config.json"
    assert run.results_path == tmp_path / "r" / "results.json"
    assert run.metrics_path == tmp_path / "r" / "metrics.jsonl"
    assert (run.encoder_dir, run.heads_dir) == (
        tmp_path / "r" / "encoder",
        tmp_path / "r" / "heads",
    )
    assert run.classifier_dir == tmp_path / "r" / "classifier"
    assert run.head_dir("h") == tmp_path / "r" / "heads" / "h"
    assert not run.is_finished() and run.heads() == []


def test_heads_are_sorted_and_skip_temporaries(tmp_path):
    run = _fake_run(
        tmp_path / "r",
        {"b": {"lambda_c": 0.1, "encoder_dir": "enc", "encoder_fingerprint": "f"}, "a": {}},
    )
    (run.heads_dir / ".b.x.tmp").mkdir()  # an interrupted save
    (run.heads_dir / "c").mkdir()  # no head.json: not a head
    heads = run.heads()
    assert [head.name for head in heads] == ["a", "b"]
    b = heads[1]
    assert b.path == run.head_dir("b") and b.encoder_dir == pathlib.Path("enc")
    assert b.encoder_fingerprint == "f" and b.lambdas == {"lambda_c": 0.1}
    assert run.is_finished()


def test_encoder_source_own_or_recorded(tmp_path):
    phase2 = _fake_run(tmp_path / "p2", {}, {"encoder_dir": "base/encoder"})
    assert phase2.encoder_source() == pathlib.Path("base/encoder")
    own = _fake_run(tmp_path / "p1", {}, {"encoder_dir": None})
    files.write_json(own.encoder_dir / runs.NETWORK_FILE, {"kind": "encoder"})
    assert own.encoder_source() == own.encoder_dir
    with pytest.raises(ValueError, match="no encoder/ and no recorded encoder_dir"):
        _fake_run(tmp_path / "none", {}, {"encoder_dir": None}).encoder_source()


def test_config_round_trip_through_the_run_dir(tmp_path):
    from rdc_keras.config import TrainConfig

    config = TrainConfig(
        workdir=str(tmp_path / "r"), lambda_c=0.02, lr_boundaries=[2], lr_factors=[1.0, 0.1]
    ).resolved()
    run = runs.RunDir(config.workdir)
    run.write_config(config)
    assert run.config() == config
    stored = files.read_json(run.config_path)
    assert stored["config"] == json.loads(json.dumps(config.to_dict()))
    assert stored["environment"]["tensorflow"] == tf.__version__


def test_find_runs_expands_directories_above_runs(tmp_path):
    one = _fake_run(tmp_path / "study" / "e2e" / "c0", {"h": {}})
    two = _fake_run(tmp_path / "study" / "e2e" / "c1", {"h": {}})
    found = runs.find_runs([tmp_path / "study"])
    assert [run.path for run in found] == [one.path, two.path]
    assert [run.path for run in runs.find_runs([one.path])] == [one.path]
    with pytest.raises(ValueError, match="not a finished run"):
        runs.find_runs([tmp_path / "empty"])


def test_damaged_weights_and_descriptions_are_one_line_errors(tmp_path, encoder):
    directory = tmp_path / "e"
    runs.save_network(directory, encoder, {"kind": "encoder", "preset": "digits", "latent_dim": 3})
    weights = directory / runs.WEIGHTS_FILE
    blob = weights.read_bytes()
    for name, damaged in (
        ("truncated", blob[: len(blob) // 2]),
        ("zeroed header", bytes(64) + blob[64:]),
        ("empty", b""),
    ):
        weights.write_bytes(damaged)
        with pytest.raises(ValueError) as caught:
            runs.load_network(directory, _encoder_builder, kind="encoder")
        message = str(caught.value)
        assert message.startswith(f"{weights}: damaged or mismatched weights file ("), name
        assert "\n" not in message, name
    weights.write_bytes(blob)
    runs.load_network(directory, _encoder_builder, kind="encoder")  # intact again
    description = json.loads((directory / runs.NETWORK_FILE).read_text())
    del description["latent_dim"]
    (directory / runs.NETWORK_FILE).write_text(json.dumps(description))
    with pytest.raises(ValueError, match=r"network\.json: damaged description \(no 'latent_dim'\)"):
        runs.load_network(directory, _encoder_builder, kind="encoder")
