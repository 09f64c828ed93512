"""Tests for rdc_keras.realism: the held-out W1 judge and the judge's Fréchet distance."""

import math

import numpy as np
import pytest
import tensorflow as tf

from rdc_keras import data, realism, runs
from rdc_keras.tfkeras import keras


@pytest.fixture(scope="module")
def test_data():
    images, labels = data.load_arrays("digits", "test")
    return images[:120], labels[:120]


def test_w1_estimate_ranks_a_bad_reconstruction_above_a_good_one(test_data):
    real = test_data[0]
    rng = np.random.default_rng(0)
    good = np.clip(real + rng.normal(0.0, 0.01, real.shape), 0.0, 1.0).astype(np.float32)
    bad = np.zeros_like(real)
    kwargs = {"preset": "digits", "steps": 30, "batch_size": 32, "learning_rate": 1e-3}
    w1_good = realism.w1_estimate(real, good, seed=0, **kwargs)
    w1_bad = realism.w1_estimate(real, bad, seed=0, **kwargs)
    assert w1_bad > w1_good + 0.1
    assert w1_bad > 0.0


def test_w1_estimate_rejects_mismatched_images(test_data):
    real = test_data[0]
    with pytest.raises(ValueError, match="differ"):
        realism.w1_estimate(real, np.zeros((5, 4, 4, 1), np.float32), "digits", steps=1)
    with pytest.raises(ValueError, match="differ"):  # pairs: one reconstruction per original
        realism.w1_estimate(real, real[:-1], "digits", steps=1)
    with pytest.raises(ValueError, match="at least 2 images"):
        realism.w1_estimate(real[:1], real[:1], "digits", steps=1)
    with pytest.raises(ValueError, match="steps"):
        realism.w1_estimate(real, real, "digits", steps=0)


# ------------------------------------------------------------------------------------------------
# The held-out W1 judge.


def test_judge_split_is_two_disjoint_halves_fixed_by_the_seed():
    for n in (2, 3, 120, 121):
        train, score = realism.judge_split(n, seed=0)
        assert (len(train), len(score)) == (n // 2, n - n // 2)
        assert not set(train.tolist()) & set(score.tolist())
        np.testing.assert_array_equal(np.sort(np.concatenate([train, score])), np.arange(n))
    first, second = realism.judge_split(120, seed=3), realism.judge_split(120, seed=3)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    other = realism.judge_split(120, seed=4)
    assert not np.array_equal(first[0], other[0])
    # A permutation, not the first half of the images.
    assert not np.array_equal(first[0], np.arange(60))
    expected = np.sort(np.random.default_rng(3).permutation(120)[:60])
    np.testing.assert_array_equal(first[0], expected)
    with pytest.raises(ValueError, match="at least 2 images"):
        realism.judge_split(1)


def test_the_scoring_half_never_reaches_the_critic_training_step(monkeypatch):
    n, steps, scale = 40, 20, 256.0
    # Image i is the constant (i + 1) / 256 (real) or 1 - (i + 1) / 256 (fake): rows name images.
    values = (np.arange(n, dtype=np.float32) + 1.0) / scale
    real = np.broadcast_to(values[:, None, None, None], (n, 8, 8, 1)).copy()
    fake = 1.0 - real
    seen_real, seen_fake = [], []
    make_step = realism._critic_step

    def spying_critic_step(*args, **kwargs):
        step = make_step(*args, **kwargs)

        def spy(x, x_hat, epsilon):
            seen_real.append(np.rint(x.numpy()[:, 0, 0, 0] * scale).astype(int) - 1)
            seen_fake.append(np.rint((1.0 - x_hat.numpy()[:, 0, 0, 0]) * scale).astype(int) - 1)
            return step(x, x_hat, epsilon)

        return spy

    monkeypatch.setattr(realism, "_critic_step", spying_critic_step)
    value = realism.w1_estimate(real, fake, "digits", steps=steps, batch_size=16, seed=5)
    assert math.isfinite(value)
    assert len(seen_real) == len(seen_fake) == steps
    train, score = realism.judge_split(n, seed=5)
    trained_real, trained_fake = set(np.concatenate(seen_real)), set(np.concatenate(seen_fake))
    assert trained_real and trained_fake
    assert trained_real <= set(train.tolist()) and trained_fake <= set(train.tolist())
    assert not (trained_real | trained_fake) & set(score.tolist())


def test_w1_is_scored_on_the_held_out_half_only(test_data):
    real = test_data[0]
    train, _ = realism.judge_split(len(real), seed=0)
    # Bad reconstructions where the critic trains, perfect ones where it is scored: the held-out
    # gap is exactly 0 (the same images score the same), however well the critic learned.
    fake = real.copy()
    fake[train] = 0.0
    kwargs = {"preset": "digits", "steps": 30, "batch_size": 32, "learning_rate": 1e-3, "seed": 0}
    assert realism.w1_estimate(real, fake, **kwargs) == pytest.approx(0.0, abs=1e-6)
    # The same critic training on all-bad reconstructions scores a clear gap.
    assert realism.w1_estimate(real, np.zeros_like(real), **kwargs) > 0.1


def test_w1_judge_spread_over_three_seeds(test_data):
    real = test_data[0][:40]
    rng = np.random.default_rng(1)
    fake = np.clip(real + rng.normal(0.0, 0.2, real.shape), 0.0, 1.0).astype(np.float32)
    values = [
        realism.w1_estimate(real, fake, "digits", steps=20, batch_size=16, seed=seed)
        for seed in (0, 1, 2)
    ]
    assert all(math.isfinite(value) for value in values)
    assert len(set(values)) >= 2


# ------------------------------------------------------------------------------------------------
# The Fréchet distance in the reference classifier's feature space.


def _fd_by_eigendecomposition(a: np.ndarray, b: np.ndarray) -> float:
    """Independent FD: Tr((S_a S_b)^1/2) = Tr((S_a^1/2 S_b S_a^1/2)^1/2), both by eigh."""
    centred_a, centred_b = a - a.mean(axis=0), b - b.mean(axis=0)
    cov_a = centred_a.T @ centred_a / (len(a) - 1)
    cov_b = centred_b.T @ centred_b / (len(b) - 1)
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    inner = root_a @ cov_b @ root_a
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum()
    gap = a.mean(axis=0) - b.mean(axis=0)
    return float(gap @ gap + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root)


def test_frechet_distance_matches_an_eigendecomposition():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(250, 6)) @ rng.normal(size=(6, 6)) + rng.normal(size=6)
    expected = _fd_by_eigendecomposition(a, b)
    assert expected > 1.0
    assert realism.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert isinstance(realism.frechet_distance(a, b), float)


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(1)
    m1, m2 = np.array([0.0, 1.0, -1.0]), np.array([0.5, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
    n = 200_000
    a = m1 + rng.normal(size=(n, 3)) * np.sqrt(s1)
    b = m2 + rng.normal(size=(n, 3)) * np.sqrt(s2)
    closed_form = np.sum((m1 - m2) ** 2) + np.sum(s1 + s2 - 2.0 * np.sqrt(s1 * s2))
    assert realism.frechet_distance(a, b) == pytest.approx(closed_form, rel=0.02)


def test_frechet_distance_is_zero_symmetric_and_grows_with_a_shift():
    rng = np.random.default_rng(2)
    a = np.maximum(rng.normal(size=(200, 32)), 0.0)  # ReLU-like, as the judge's features
    a[:, :4] = 0.0  # dead units: singular covariances
    b = np.maximum(rng.normal(0.3, 1.0, size=(150, 32)), 0.0)
    assert realism.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert realism.frechet_distance(a, a[::-1]) == pytest.approx(0.0, abs=1e-8)
    ab, ba = realism.frechet_distance(a, b), realism.frechet_distance(b, a)
    assert ab > 0.1
    assert ab == pytest.approx(ba, rel=1e-9)
    # A shift moves only the means: FD = |shift|^2 exactly.
    shift = np.full(32, 0.5)
    assert realism.frechet_distance(a, a + shift) == pytest.approx(32 * 0.25, rel=1e-7)


@pytest.mark.parametrize(
    "a, b, match",
    [
        (np.zeros((5, 3)), np.zeros((5, 4)), "one F"),
        (np.zeros((5,)), np.zeros((5,)), "one F"),
        (np.zeros((1, 3)), np.zeros((5, 3)), "at least 2 rows"),
        (np.full((5, 3), np.nan), np.zeros((5, 3)), "NaN"),
    ],
)
def test_frechet_distance_rejects_bad_features(a, b, match):
    with pytest.raises(ValueError, match=match):
        realism.frechet_distance(a, b)


@pytest.fixture(scope="module")
def trained_judge(classifier_dir):
    judge, _ = runs.load_classifier(classifier_dir)
    return judge


def test_judge_features_are_the_penultimate_layer(trained_judge, test_data):
    images = test_data[0]
    features = realism.judge_features(trained_judge, images)
    assert features.shape == (len(images), 32) and features.dtype == np.float64
    # Manual forward, layer by layer, up to the FC32 ReLU of the digits classifier.
    x = tf.constant(images)
    for layer in trained_judge.layers[1:]:
        x = layer(x, training=False)
        if layer.name == "dense1_relu":
            break
    np.testing.assert_allclose(features, x.numpy(), rtol=1e-5, atol=1e-6)
    assert (features >= 0).all() and features.std() > 0
    small = realism.judge_features(trained_judge, images, batch_size=7)
    np.testing.assert_allclose(small, features, rtol=1e-5, atol=1e-6)
    no_features = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten()])
    with pytest.raises(ValueError, match="logits_dense"):
        realism.judge_features(no_features, images)
