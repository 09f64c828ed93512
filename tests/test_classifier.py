"""Tests for rdc_keras.trainers.classifier and the rdc-classifier binary, on the digits data."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from rdc_keras import config, data, files, runs
from rdc_keras.tfkeras import keras
from rdc_keras.trainers import classifier as classifier_lib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits():
    train = data.prepare(data.load_dataset("digits", "train"), 64, shuffle=True, seed=0)
    test = data.prepare(data.load_dataset("digits", "test"), 128, shuffle=False)
    return train, test


@pytest.fixture(scope="module")
def trained(digits):
    train, _ = digits
    return classifier_lib.train_classifier("digits", train, epochs=6, seed=0, verbose=0)


def _numpy_metrics(model, test):
    """Accuracy and mean CE in nats from logits with a log-sum-exp in float64."""
    logits, labels = [], []
    for images, batch_labels in test:
        logits.append(model(images, training=False).numpy().astype(np.float64))
        labels.append(batch_labels.numpy())
    logits, labels = np.concatenate(logits), np.concatenate(labels)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    ce = -log_probs[np.arange(len(labels)), labels].mean()
    return float((logits.argmax(axis=1) == labels).mean()), float(ce), len(labels)


def test_train_classifier_well_above_chance(trained, digits):
    _, test = digits
    accuracy, ce, count = _numpy_metrics(trained, test)
    assert count == 360
    assert accuracy > 0.85  # chance is 0.1
    assert ce < 0.6 < np.log(10)  # well below the CE of a uniform guess (ln 10 nats)


def test_evaluate_classifier_matches_numpy(trained, digits):
    _, test = digits
    metrics = classifier_lib.evaluate_classifier(trained, test)
    accuracy, ce, _ = _numpy_metrics(trained, test)
    assert set(metrics) == {"accuracy", "ce_nats"}
    assert metrics["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert metrics["ce_nats"] == pytest.approx(ce, rel=1e-4)


def test_save_load_round_trip_frozen(trained, digits, tmp_path):
    _, test = digits
    runs.save_classifier(tmp_path / "clf", trained, "digits", note="digits test")
    model, description = runs.load_classifier(tmp_path / "clf")
    assert description == {"kind": "classifier", "preset": "digits", "note": "digits test"}
    assert model.trainable is False and model.trainable_weights == []
    images = next(iter(test))[0]
    np.testing.assert_array_equal(model(images).numpy(), trained(images).numpy())
    assert classifier_lib.evaluate_classifier(model, test) == classifier_lib.evaluate_classifier(
        trained, test
    )


def test_load_classifier_refuses_other_networks(tmp_path, trained):
    runs.save_network(tmp_path / "enc", trained, {"kind": "encoder", "preset": "digits"})
    with pytest.raises(ValueError, match="expected 'classifier'"):
        runs.load_classifier(tmp_path / "enc")


def test_train_classifier_rejects_bad_epochs(digits):
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        classifier_lib.train_classifier("digits", digits[0], epochs=0)
    with pytest.raises(ValueError, match="unknown preset"):
        classifier_lib.train_classifier("cifar", digits[0], epochs=1)


def test_train_classifier_is_seeded():
    # Unshuffled input, so only the seed decides the initial weights.
    small = data.prepare(data.load_dataset("digits", "train").take(96), 32, shuffle=False)
    first = classifier_lib.train_classifier("digits", small, epochs=1, seed=3, verbose=0)
    second = classifier_lib.train_classifier("digits", small, epochs=1, seed=3, verbose=0)
    for a, b in zip(first.weights, second.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


def test_reference_classifier_is_float32_whatever_the_callers_policy(tmp_path, monkeypatch):
    """The one judge path: float32 training, preset batch size, metrics saved with the weights."""
    seen = []
    train = classifier_lib.train_classifier

    def spy(*args, **kwargs):
        model = train(*args, **kwargs)
        seen.append({layer.compute_dtype for layer in model.layers if layer.weights})
        seen.append(next(iter(args[1]))[0].shape[0])  # the training batch size
        return model

    monkeypatch.setattr(classifier_lib, "train_classifier", spy)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        _, description = classifier_lib.train_reference_classifier(
            tmp_path / "judge", "digits", epochs=1, seed=0
        )
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"  # restored
    finally:
        keras.mixed_precision.set_global_policy("float32")
    batch = config.preset_defaults("digits").classifier_batch_size
    assert seen == [{"float32"}, batch]
    saved = files.read_json(tmp_path / "judge" / runs.NETWORK_FILE)
    assert saved == description
    assert description["batch_size"] == batch
    assert set(description["test_metrics"]) == {"accuracy", "ce_nats"}
    assert description["train_seconds"] > 0
    reloaded, _ = runs.load_classifier(tmp_path / "judge")
    test = data.prepare(data.load_dataset("digits", "test"), 1000, shuffle=False)
    metrics = classifier_lib.evaluate_classifier(reloaded, test)
    assert metrics["accuracy"] == pytest.approx(description["test_metrics"]["accuracy"], abs=1e-6)


# ------------------------------------------------------------------------------------------------
# rdc-classifier


def _run_cli(*args, timeout=180):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "rdc_keras.cli.classifier", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": error: " in line]


def test_cli_writes_results_and_loadable_classifier(tmp_path):
    workdir = tmp_path / "clf"
    result = _run_cli(f"--workdir={workdir}", "--epochs=4", "--verbose=0")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((workdir / "results.json").read_text())
    assert results["dataset"] == "digits" and results["units"] == {"ce_nats": "nats"}
    assert results["test"]["accuracy"] > 0.7  # chance is 0.1
    assert results["environment"]["tensorflow"] == tf.__version__
    model, description = runs.load_classifier(workdir)
    assert description["test_metrics"] == results["test"]
    test = data.prepare(data.load_dataset("digits", "test"), 1000, shuffle=False)
    metrics = classifier_lib.evaluate_classifier(model, test)
    assert metrics["accuracy"] == pytest.approx(results["test"]["accuracy"], abs=1e-6)
    assert f"test accuracy {results['test']['accuracy']:.4f}" in result.stdout


def test_cli_bad_input_one_line_and_nothing_written(tmp_path):
    unrelated = tmp_path / "runs"
    unrelated.mkdir()
    (unrelated / "keep.txt").write_text("precious")
    cases = {
        "--dataset": [f"--workdir={tmp_path / 'b'}", "--dataset=cifar"],
        "--workdir": [f"--workdir={unrelated}", "--epochs=1"],
    }
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    processes = {  # concurrently: each process spends seconds importing TensorFlow
        flag: subprocess.Popen(
            [sys.executable, "-m", "rdc_keras.cli.classifier", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for flag, args in cases.items()
    }
    for flag, process in processes.items():
        _, stderr = process.communicate(timeout=180)
        assert process.returncode == 2, (flag, stderr[-2000:])
        assert "Traceback" not in stderr
        errors = _error_lines(stderr)
        assert len(errors) == 1 and flag in errors[0], (flag, stderr[-2000:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert [p.name for p in unrelated.iterdir()] == ["keep.txt"]
