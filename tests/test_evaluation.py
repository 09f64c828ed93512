"""Tests for rdc_keras.evaluation: the deployed pipeline, dither, metrics, the realism judges."""

import math
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from rdc_keras import data, evaluation, networks, realism, runs
from rdc_keras.layers import dither
from rdc_keras.tfkeras import keras

LATENT_DIM, NUM_LEVELS = 3, 3


@pytest.fixture(scope="module")
def models():
    """Untrained digits encoder, decoder head and judge (fixed weights: seed 0)."""
    keras.utils.set_random_seed(0)
    encoder = networks.encoder("digits", LATENT_DIM)
    head = networks.decoder("digits", LATENT_DIM)
    judge = networks.classifier("digits")
    return encoder, head, judge


@pytest.fixture(scope="module")
def test_data():
    images, labels = data.load_arrays("digits", "test")
    return images[:120], labels[:120]


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def test_reconstruct_is_the_sender_receiver_pipeline(models, test_data):
    encoder, head, _ = models
    images = test_data[0][:40]
    seed = 11
    indices, x_hat = evaluation.reconstruct(encoder, head, images, NUM_LEVELS, seed=seed)
    # Independently: nearest centre to f(x) + u, then g(centre - u), u from seed + i.
    latents = encoder.predict(images, verbose=0).astype(np.float64)
    u = dither(np.arange(40, dtype=np.int64) + seed, LATENT_DIM, NUM_LEVELS).numpy()
    centers = np.linspace(-1.0, 1.0, NUM_LEVELS)
    expected = np.argmin(np.abs((latents + u)[..., None] - centers), axis=-1)
    np.testing.assert_array_equal(indices, expected)
    assert indices.dtype == np.int32 and indices.shape == (40, LATENT_DIM)
    decoded = (centers[expected] - u).astype(np.float32)
    np.testing.assert_allclose(x_hat, head.predict(decoded, verbose=0), atol=1e-6)
    assert x_hat.shape == images.shape


def test_same_seed_gives_identical_numbers(models, test_data):
    encoder, head, judge = models
    first = evaluation.evaluate(encoder, head, test_data, judge, num_levels=NUM_LEVELS, seed=5)
    second = evaluation.evaluate(encoder, head, test_data, judge, num_levels=NUM_LEVELS, seed=5)
    assert first == second


def test_different_seed_draws_a_different_dither(models, test_data):
    encoder, head, judge = models
    images = test_data[0]
    indices_a, x_hat_a = evaluation.reconstruct(encoder, head, images, NUM_LEVELS, seed=0)
    indices_b, x_hat_b = evaluation.reconstruct(encoder, head, images, NUM_LEVELS, seed=1000)
    assert not np.array_equal(indices_a, indices_b)
    assert not np.allclose(x_hat_a, x_hat_b)
    a = evaluation.evaluate(encoder, head, test_data, judge, num_levels=NUM_LEVELS, seed=0)
    b = evaluation.evaluate(encoder, head, test_data, judge, num_levels=NUM_LEVELS, seed=1000)
    assert a["mse"] != b["mse"]


def test_metrics_match_numpy(models, test_data):
    encoder, head, judge = models
    images, labels = test_data
    seed = 3
    metrics = evaluation.evaluate(encoder, head, test_data, judge, num_levels=NUM_LEVELS, seed=seed)
    _, x_hat = evaluation.reconstruct(encoder, head, images, NUM_LEVELS, seed=seed)
    logits = judge.predict(x_hat, verbose=0).astype(np.float64)
    per_image = ((images.astype(np.float64) - x_hat) ** 2).reshape(len(images), -1).mean(axis=1)
    log_probs = _log_softmax(logits)
    assert metrics["mse"] == pytest.approx(per_image.mean(), rel=1e-5)
    assert metrics["psnr"] == pytest.approx(np.mean(10 * np.log10(1.0 / per_image)), rel=1e-5)
    ce = -log_probs[np.arange(len(labels)), labels].mean()
    assert metrics["ce_nats"] == pytest.approx(ce, rel=1e-5)
    assert metrics["accuracy"] == pytest.approx(np.mean(logits.argmax(axis=1) == labels))
    assert metrics["rate_bits"] == pytest.approx(LATENT_DIM * math.log2(NUM_LEVELS))
    assert metrics["num_images"] == len(images)
    assert metrics["seed"] == seed
    assert metrics["protocol"] == evaluation.PROTOCOL_VERSION
    assert metrics["judge_fd"] >= 0.0 and math.isfinite(metrics["judge_fd"])
    assert "w1" not in metrics


def test_image_k_uses_seed_plus_k_whatever_its_batch(models, test_data):
    encoder, head, _ = models
    images = test_data[0][:50]
    seed, k = 7, 13
    indices, x_hat = evaluation.reconstruct(encoder, head, images, NUM_LEVELS, seed=seed)
    tail_indices, tail = evaluation.reconstruct(
        encoder, head, images[k:], NUM_LEVELS, seed=seed + k
    )
    np.testing.assert_array_equal(tail_indices, indices[k:])
    np.testing.assert_allclose(tail, x_hat[k:], atol=1e-6)


def test_batch_size_does_not_change_results(models, test_data):
    encoder, head, judge = models
    kwargs = {"num_levels": NUM_LEVELS, "seed": 2}
    small = evaluation.evaluate(encoder, head, test_data, judge, batch_size=7, **kwargs)
    large = evaluation.evaluate(encoder, head, test_data, judge, batch_size=500, **kwargs)
    assert small.keys() == large.keys()
    for key in small:
        assert small[key] == pytest.approx(large[key], rel=1e-5), key


def test_dataset_forms_agree(models, test_data):
    encoder, head, judge = models
    kwargs = {"num_levels": NUM_LEVELS, "seed": 4}
    from_arrays = evaluation.evaluate(encoder, head, test_data, judge, **kwargs)
    unbatched = tf.data.Dataset.from_tensor_slices(test_data)
    from_unbatched = evaluation.evaluate(encoder, head, unbatched, judge, **kwargs)
    from_batched = evaluation.evaluate(encoder, head, unbatched.batch(32), judge, **kwargs)
    for key in from_arrays:
        assert from_unbatched[key] == pytest.approx(from_arrays[key], rel=1e-6), key
        assert from_batched[key] == pytest.approx(from_arrays[key], rel=1e-6), key


def test_evaluate_reports_w1_when_asked(models, test_data):
    encoder, head, judge = models
    kwargs = {"num_levels": NUM_LEVELS, "w1_steps": 3, "preset": "digits", "seed": 1}
    metrics = evaluation.evaluate(encoder, head, test_data, judge, **kwargs)
    assert math.isfinite(metrics["w1"])
    # Same seed, same critic budget: the same estimate.
    assert evaluation.evaluate(encoder, head, test_data, judge, **kwargs) == metrics


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"w1_steps": 5}, ValueError, "preset"),
        ({"w1_steps": -1}, ValueError, "w1_steps"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"dataset": "digits"}, TypeError, "dataset"),
        ({"dataset": (np.zeros((4, 8, 8, 1)), np.zeros(3))}, ValueError, "labels"),
        ({"dataset": (np.zeros((0, 8, 8, 1)), np.zeros(0))}, ValueError, "non-empty"),
        ({"dataset": (np.zeros((4, 64)), np.zeros(4))}, ValueError, "H, W, C"),
    ],
)
def test_bad_input_raises_one_clear_error(models, test_data, change, error, match):
    encoder, head, judge = models
    kwargs = {"dataset": test_data, "num_levels": NUM_LEVELS, **change}
    dataset = kwargs.pop("dataset")
    with pytest.raises(error, match=match):
        evaluation.evaluate(encoder, head, dataset, judge, **kwargs)


def test_bad_input_needs_two_images_for_the_judges(models):
    encoder, head, judge = models
    one = (np.zeros((1, 8, 8, 1), np.float32), np.zeros(1))
    with pytest.raises(ValueError, match="at least 2 images"):
        evaluation.evaluate(encoder, head, one, judge, num_levels=NUM_LEVELS)


@pytest.fixture(scope="module")
def trained_judge(classifier_dir):
    judge, _ = runs.load_classifier(classifier_dir)
    return judge


def test_evaluate_reports_the_judge_fd(models, trained_judge, test_data):
    encoder, head, _ = models
    images = test_data[0]
    metrics = evaluation.evaluate(encoder, head, test_data, trained_judge, num_levels=3, seed=6)
    _, x_hat = evaluation.reconstruct(encoder, head, images, NUM_LEVELS, seed=6)
    expected = evaluation.frechet_distance(
        evaluation.judge_features(trained_judge, images),
        evaluation.judge_features(trained_judge, x_hat),
    )
    assert metrics["judge_fd"] == pytest.approx(expected, rel=1e-9)
    assert metrics["judge_fd"] > 0.0  # an untrained model does not reconstruct the digits
    # Originals judged against themselves: 0.
    same = evaluation.frechet_distance(
        evaluation.judge_features(trained_judge, images),
        evaluation.judge_features(trained_judge, images),
    )
    assert same == pytest.approx(0.0, abs=1e-8)


def test_units_and_docs_name_both_judges():
    assert "not Inception FID" in evaluation.UNITS["judge_fd"]
    assert "held-out" in evaluation.UNITS["w1"]
    for module in (evaluation, realism):
        source = pathlib.Path(module.__file__).read_text()
        assert source.count("FID") == source.count("Inception FID")  # never plain "FID"
        assert "held out" in module.__doc__ and "Fréchet distance" in module.__doc__


def test_evaluate_runs_records_and_logs_the_judges(tiny_run):
    lines = []
    result = evaluation.evaluate_runs([tiny_run], log=lines.append)
    (record,) = result["heads"]
    assert math.isfinite(record["judge_fd"]) and record["judge_fd"] >= 0.0
    assert record["protocol"] == result["config"]["protocol"] == evaluation.PROTOCOL_VERSION == 2
    assert result["units"]["judge_fd"] == evaluation.UNITS["judge_fd"]
    (line,) = lines
    assert f"fd={record['judge_fd']:.4g}" in line
