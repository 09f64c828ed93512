"""Tests for rdc_keras.theory.binary: R(D, C) against a brute-force search over test channels."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdc_keras.theory.binary import BinarySource, binary_entropy, inverse_binary_entropy


def hb(q):
    """Binary entropy in bits, elementwise, with 0 log 0 = 0 (independent of the library)."""
    q = np.clip(np.asarray(q, dtype=float), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -q * np.log2(q) - (1 - q) * np.log2(1 - q)
    return np.nan_to_num(h, nan=0.0)


def channel_metrics(p, eps, forward):
    """I(X; X_hat), P(X != X_hat) and H(S | X_hat) in bits for forward[x, x_hat] = p(x_hat | x).

    forward may carry trailing grid axes: forward[x, x_hat, ...].
    """
    px = np.array([1 - p, p]).reshape((2, 1) + (1,) * (np.ndim(forward) - 2))
    joint = px * forward  # p(x, x_hat)
    p_hat = joint.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = joint * np.log2(joint / (px * p_hat))
    info = np.nansum(np.where(joint > 0, terms, 0.0), axis=(0, 1))
    distortion = joint[0, 1] + joint[1, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        px1_given_hat = np.where(p_hat > 0, joint[1] / p_hat, 0.0)  # P(X = 1 | x_hat)
    ps1 = px1_given_hat * (1 - eps) + (1 - px1_given_hat) * eps  # P(S = 1 | x_hat)
    cond = (p_hat * hb(ps1)).sum(axis=0)
    return info, distortion, cond


def brute_force_rate(p, eps, D, C, n=701):
    """Least I(X; X_hat) over a grid of binary channels with P(X≠X_hat) ≤ D and H(S|X_hat) ≤ C."""
    a = np.linspace(0.0, 1.0, n)
    alpha, beta = np.meshgrid(a, a, indexing="ij")  # P(X_hat=1 | X=0), P(X_hat=1 | X=1)
    forward = np.stack([np.stack([1 - alpha, alpha]), np.stack([1 - beta, beta])])
    info, distortion, cond = channel_metrics(p, eps, forward)
    feasible = (distortion <= D) & (cond <= C)
    return float(np.min(np.where(feasible, info, np.inf)))


CASES = [
    (0.3, 0.1, 0.05, 0.6),
    (0.3, 0.1, 0.2, 0.55),
    (0.5, 0.05, 0.1, 0.9),
    (0.2, 0.2, 0.15, 0.8),
    (0.4, 0.0, 0.02, 0.5),
    (0.7, 0.85, 0.05, 0.75),  # p > ½ and ε > ½ (relabelled internally)
    (0.25, 0.15, 0.3, 0.95),  # rate 0
]


@pytest.mark.parametrize(("p", "eps", "D", "C"), CASES)
def test_rate_matches_brute_force_over_binary_channels(p, eps, D, C):
    src = BinarySource(p, eps)
    rate = src.rate(D, C)
    brute = brute_force_rate(p, eps, D, C)
    assert brute >= rate - 1e-9  # no grid channel beats the closed form (converse)
    assert brute <= rate + 0.005  # the grid comes close (achievability)


def test_rate_matches_brute_force_at_random_parameters():
    rng = np.random.default_rng(0)
    for _ in range(6):
        p, eps = rng.uniform(0.05, 0.95), rng.uniform(0.0, 0.45)
        src = BinarySource(p, eps)
        D = rng.uniform(0.0, 0.5) * min(p, 1 - p)
        C = src.h_s_given_x + rng.uniform(0.05, 1.0) * (src.h_s - src.h_s_given_x)
        rate = src.rate(D, C)
        brute = brute_force_rate(p, eps, D, C, n=501)
        assert rate - 1e-9 <= brute <= rate + 0.005


@pytest.mark.parametrize(("p", "eps", "D", "C"), CASES)
def test_test_channel_attains_the_rate(p, eps, D, C):
    src = BinarySource(p, eps)
    channel = src.test_channel(D, C)
    assert np.allclose(channel.forward.sum(axis=1), 1.0)
    assert (channel.forward >= -1e-12).all()
    info, distortion, cond = channel_metrics(p, eps, channel.forward)
    assert float(info) == pytest.approx(src.rate(D, C), abs=1e-9)
    assert float(distortion) <= D + 1e-9 or src.rate(D, C) == 0.0
    assert float(distortion) == pytest.approx(channel.crossover, abs=1e-9)
    assert float(cond) <= C + 1e-9


def test_entropies_and_units():
    src = BinarySource(0.3, 0.1)
    assert src.h_x == pytest.approx(float(hb(0.3)))
    assert src.h_s == pytest.approx(float(hb(0.3 * 0.9 + 0.7 * 0.1)))
    assert src.h_s_given_x == pytest.approx(float(hb(0.1)))
    nats = BinarySource(0.3, 0.1, units="nats")
    ln2 = math.log(2)
    assert nats.h_s == pytest.approx(src.h_s * ln2)
    for D, C in [(0.05, 0.6), (0.1, 0.8), (0.01, 0.5)]:
        assert nats.rate(D, C * ln2) == pytest.approx(src.rate(D, C) * ln2, rel=1e-9)


def test_symmetry_under_relabelling():
    for D, C in [(0.05, 0.7), (0.1, 0.9)]:
        base = BinarySource(0.3, 0.1).rate(D, C)
        assert BinarySource(0.7, 0.1).rate(D, C) == pytest.approx(base)
        assert BinarySource(0.3, 0.9).rate(D, C) == pytest.approx(base)


def test_edge_cases():
    src = BinarySource(0.3, 0.1)
    assert src.rate(0.05, src.h_s_given_x - 0.01) == math.inf
    assert src.rate(0.0, src.h_s_given_x) == pytest.approx(src.h_x)  # lossless
    assert src.rate(0.3, src.h_s) == 0.0
    assert src.rate(0.1, 5.0) == pytest.approx(float(hb(0.3) - hb(0.1)))  # Shannon's R(D)
    independent = BinarySource(0.3, 0.5)
    assert independent.rate(0.1, 1.0) == pytest.approx(float(hb(0.3) - hb(0.1)))
    assert independent.rate(0.1, 0.99) == math.inf
    with pytest.raises(ValueError, match="C must be >= H"):
        src.test_channel(0.1, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p": 0.0, "eps": 0.1}, "p must be in"),
        ({"p": 1.2, "eps": 0.1}, "p must be in"),
        ({"p": 0.3, "eps": -0.1}, "eps must be in"),
        ({"p": 0.3, "eps": 0.1, "units": "hartleys"}, "units must be"),
    ],
)
def test_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BinarySource(**kwargs)


def test_argument_validation():
    src = BinarySource(0.3, 0.1)
    with pytest.raises(ValueError, match="D must be >= 0"):
        src.rate(-0.1, 0.5)
    with pytest.raises(ValueError, match="NaN"):
        src.rate(0.1, math.nan)
    with pytest.raises(ValueError, match="R must be >= 0"):
        src.distortion(0.5, -1.0)
    with pytest.raises(TypeError, match="p must be a real number"):
        BinarySource("a", 0.1)


def test_binary_entropy_helpers():
    for q in [0.0, 0.01, 0.11, 0.3, 0.5]:
        assert binary_entropy(q) == pytest.approx(float(hb(q)), abs=1e-12)
        assert inverse_binary_entropy(binary_entropy(q)) == pytest.approx(q, abs=1e-9)
    assert inverse_binary_entropy(1.5) == 0.5
    with pytest.raises(ValueError, match="probability"):
        binary_entropy(1.5)


@settings(max_examples=40, deadline=None)
@given(
    p=st.floats(0.05, 0.95),
    eps=st.floats(0.0, 0.45),
    t=st.floats(0.0, 1.2),
    R=st.floats(0.0, 1.0),
)
def test_rate_of_distortion_roundtrip(p, eps, t, R):
    src = BinarySource(p, eps)
    C = src.h_s_given_x + t * (src.h_s - src.h_s_given_x)
    D = src.distortion(C, R)
    if math.isfinite(D) and src.h_x > R and D > 0:
        assert src.rate(D, C) == pytest.approx(R, abs=1e-9)
    elif not math.isfinite(D):
        assert src.rate_classification(C) > R - 1e-9


@settings(max_examples=40, deadline=None)
@given(
    p=st.floats(0.05, 0.5),
    eps=st.floats(0.0, 0.45),
    d1=st.floats(0.0, 0.6),
    d2=st.floats(0.0, 0.6),
    t=st.floats(0.0, 1.2),
    lam=st.floats(0.0, 1.0),
)
def test_rate_is_monotone_and_convex_in_distortion(p, eps, d1, d2, t, lam):
    src = BinarySource(p, eps)
    C = src.h_s_given_x + t * (src.h_s - src.h_s_given_x)
    lo, hi = sorted((d1, d2))
    assert src.rate(lo, C) >= src.rate(hi, C)
    mid = src.rate(lam * d1 + (1 - lam) * d2, C)
    assert mid <= lam * src.rate(d1, C) + (1 - lam) * src.rate(d2, C) + 1e-9
