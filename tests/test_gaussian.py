"""Tests for rdc_keras.theory.gaussian: closed forms, the universal construction, Monte Carlo."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdc_keras.theory.gaussian import GaussianSource

TWO_PI_E = 2 * math.pi * math.e


def random_source(rng: np.random.Generator, means: bool = False) -> GaussianSource:
    var_x, var_s = rng.uniform(0.2, 5.0, size=2)
    rho = rng.uniform(-0.95, 0.95)
    mean_x, mean_s = rng.normal(0, 3, size=2) if means else (0.0, 0.0)
    return GaussianSource(var_x, var_s, rho * math.sqrt(var_x * var_s), mean_x, mean_s)


def random_points(rng: np.random.Generator, src: GaussianSource, k: int) -> list:
    """k points with finite rate: D in (0.05 σ², 1.3 σ²), C in (h(S|X), h(S) + 0.2)."""
    d = rng.uniform(0.05, 1.3, size=k) * src.var_x
    span = src.h_s - src.h_s_given_x
    c = src.h_s_given_x + rng.uniform(0.02, 1.0, size=k) * span + rng.uniform(0, 0.2, size=k)
    return list(zip(d.tolist(), c.tolist()))


def conditional_variance(cov: np.ndarray, i: int, given: list) -> float:
    """Var(V_i | V_given) of a Gaussian vector by the Schur complement (numpy linear algebra)."""
    c_ig = cov[i, given]
    return float(cov[i, i] - c_ig @ np.linalg.solve(cov[np.ix_(given, given)], c_ig))


sources = st.builds(
    lambda vx, vs, rho: GaussianSource(vx, vs, rho * math.sqrt(vx * vs)),
    st.floats(0.1, 10.0),
    st.floats(0.1, 10.0),
    st.floats(-0.99, 0.99),
)


# ---------------------------------------------------------------------------------------------
# Closed forms against independent computations.
def test_entropies_match_log_determinants():
    rng = np.random.default_rng(0)
    for _ in range(20):
        src = random_source(rng)
        cov = np.array([[src.var_x, src.cov_xs], [src.cov_xs, src.var_s]])
        h_joint = 0.5 * np.linalg.slogdet(TWO_PI_E * cov)[1]
        h_x = 0.5 * math.log(TWO_PI_E * src.var_x)
        assert src.h_s == pytest.approx(0.5 * math.log(TWO_PI_E * src.var_s), rel=1e-12)
        assert src.h_s_given_x == pytest.approx(h_joint - h_x, rel=1e-10, abs=1e-12)


def test_min_conditional_entropy_matches_noisy_channel_covariances():
    rng = np.random.default_rng(1)
    for _ in range(20):
        src = random_source(rng)
        noise = src.var_x * 10 ** rng.uniform(-2, 2)
        # (X, S, Y = X + N): I(X;Y) = h(Y) - h(N), h(S|Y) from the Schur complement.
        cov = np.array(
            [
                [src.var_x, src.cov_xs, src.var_x],
                [src.cov_xs, src.var_s, src.cov_xs],
                [src.var_x, src.cov_xs, src.var_x + noise],
            ]
        )
        r = 0.5 * math.log(cov[2, 2] / noise)
        expected = 0.5 * math.log(TWO_PI_E * conditional_variance(cov, 1, [2]))
        assert src.min_conditional_entropy(r) == pytest.approx(expected, rel=1e-10)


def gaussian_channel_brute_force(src: GaussianSource, D: float, C: float) -> float:
    """Least I(X; X_hat) over X_hat = c (X + N) on a grid of (Var N, c); independent of the lib."""
    noise = src.var_x * np.logspace(-3.5, 3.0, 3001)[:, None]
    c = np.linspace(0.0, 1.3, 521)[None, :]
    var_y = src.var_x + noise
    info = 0.5 * np.log(var_y / noise)
    mse = src.var_x - 2 * c * src.var_x + c**2 * var_y
    h = 0.5 * np.log(TWO_PI_E * (src.var_s - src.cov_xs**2 / var_y))
    h = np.where(c == 0.0, 0.5 * math.log(TWO_PI_E * src.var_s), h)
    info = np.where(c == 0.0, 0.0, info)  # a constant X_hat carries no information
    feasible = (mse <= D) & (h <= C)
    return float(np.min(np.where(feasible, info, np.inf)))


def test_rate_matches_brute_force_over_gaussian_test_channels():
    rng = np.random.default_rng(2)
    checked = 0
    while checked < 8:
        src = random_source(rng)
        ((D, C),) = random_points(rng, src, 1)
        rate = src.rate(D, C)
        if rate > 3.0:
            continue
        brute = gaussian_channel_brute_force(src, D, C)
        assert brute >= rate - 1e-9  # no Gaussian channel beats the converse
        assert brute <= rate + 0.01  # and the grid gets close to the closed form
        checked += 1


def test_rate_classification_inverts_min_conditional_entropy():
    rng = np.random.default_rng(3)
    for _ in range(20):
        src = random_source(rng)
        r = rng.uniform(0.01, 4.0)
        assert src.rate_classification(src.min_conditional_entropy(r)) == pytest.approx(r, rel=1e-8)


def test_rate_forms_agree_with_theta_form_of_digest():
    # R_C in the θ₁ form of digest §2.2, written out independently.
    src = GaussianSource(2.0, 0.7, -0.9)
    for C in np.linspace(src.h_s_given_x + 0.01, src.h_s - 0.01, 7):
        t = src.cov_xs**2
        expected = 0.5 * math.log(
            t / (t - src.var_x * src.var_s + src.var_x * math.exp(2 * C) / TWO_PI_E)
        )
        assert src.rate(0.01 * src.var_x + 10.0, C) == pytest.approx(expected, rel=1e-10)
    assert src.rate(0.5, 10.0) == pytest.approx(0.5 * math.log(2.0 / 0.5))


def test_edge_cases():
    src = GaussianSource(1.0, 1.0, 0.8)
    assert src.rate(0.5, src.h_s_given_x) == math.inf
    assert src.rate(0.5, src.h_s_given_x - 1.0) == math.inf
    assert src.rate(2.0, src.h_s + 0.1) == 0.0
    assert src.rate(math.inf, math.inf) == 0.0
    assert src.min_conditional_entropy(0.0) == pytest.approx(src.h_s)
    assert src.min_conditional_entropy(math.inf) == pytest.approx(src.h_s_given_x)
    assert src.distortion(src.h_s_given_x, math.inf) == 0.0
    assert src.distortion(src.h_s_given_x - 0.1, 5.0) == math.inf
    independent = GaussianSource(1.0, 2.0, 0.0)
    assert independent.h_s_given_x == independent.h_s
    assert independent.rate(0.5, independent.h_s) == pytest.approx(0.5 * math.log(2.0))
    assert independent.rate(0.5, independent.h_s - 1e-6) == math.inf
    assert independent.distortion(independent.h_s, 1.0, paper_formula=True) == pytest.approx(
        math.exp(-2.0)
    )


def test_vectorised_calls_match_scalar_calls():
    src = GaussianSource(1.5, 0.5, 0.6)
    D = np.array([0.1, 0.5, 2.0])
    C = np.array([[src.h_s_given_x - 0.1], [1.0], [src.h_s + 1.0]])
    out = src.rate(D, C)
    assert out.shape == (3, 3)
    for i in range(3):
        for j in range(3):
            assert out[i, j] == src.rate(float(D[j]), float(C[i, 0]))
    R = np.array([0.0, 0.3, 2.0])
    assert np.allclose(src.distortion(1.0, R), [src.distortion(1.0, float(r)) for r in R])
    assert isinstance(src.rate(0.5, 1.0), float)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"var_x": 0.0, "var_s": 1.0, "cov_xs": 0.0}, "var_x must be > 0"),
        ({"var_x": 1.0, "var_s": -1.0, "cov_xs": 0.0}, "var_s must be > 0"),
        ({"var_x": 1.0, "var_s": 1.0, "cov_xs": 1.0}, "correlation"),
        ({"var_x": 1.0, "var_s": 4.0, "cov_xs": -2.5}, "correlation"),
        ({"var_x": math.nan, "var_s": 1.0, "cov_xs": 0.0}, "var_x must be finite"),
    ],
)
def test_source_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GaussianSource(**kwargs)


def test_source_type_error():
    with pytest.raises(TypeError, match="var_x must be a real number"):
        GaussianSource("one", 1.0, 0.0)


def test_argument_validation():
    src = GaussianSource(1.0, 1.0, 0.5)
    with pytest.raises(ValueError, match="D must be > 0"):
        src.rate(0.0, 1.0)
    with pytest.raises(ValueError, match="D must be > 0"):
        src.rate(np.array([0.5, -1.0]), 1.0)
    with pytest.raises(ValueError, match="R must be >= 0"):
        src.distortion(1.0, -0.1)
    with pytest.raises(ValueError, match="R must be >= 0"):
        src.min_conditional_entropy(-1.0)
    with pytest.raises(ValueError, match="NaN"):
        src.rate(0.5, math.nan)
    with pytest.raises(ValueError, match="at least one"):
        src.universal_rate([])
    with pytest.raises(ValueError, match="point distortion D must be > 0"):
        src.rate_penalty([(0.0, 1.0)])
    with pytest.raises(TypeError, match="pair"):
        src.universal_rate([(0.5,)])


# ---------------------------------------------------------------------------------------------
# D(C, R): corrected form and the poster's middle branch (digest §2.3).
def test_poster_formula_violates_shannon_bound_at_digest_example():
    src = GaussianSource(1.0, 1.0, 0.8)
    C, R = 0.99, 0.5
    h_s = 0.5 * math.log(TWO_PI_E)
    poster = 1.0 - (1.0 / 0.8**2) * (1.0 - math.exp(2 * (C - h_s)))  # Theorem 1, middle branch
    shannon = math.exp(-2 * R)
    assert src.distortion(C, R, paper_formula=True) == pytest.approx(poster, rel=1e-12)
    assert poster == pytest.approx(0.1001, abs=5e-4)  # the digest's "0.104" is a rounding slip
    assert shannon == pytest.approx(0.368, abs=5e-4)
    assert src.distortion(C, R, paper_formula=True) < shannon  # below what rate R allows
    assert src.distortion(C, R) == math.inf  # corrected: (D, C) unreachable at rate R


def test_poster_branch_is_mmse_at_higher_rate_and_continuous():
    rng = np.random.default_rng(4)
    for _ in range(10):
        src = random_source(rng)
        R = rng.uniform(0.05, 2.0)
        h_min = src.min_conditional_entropy(R)
        for t in np.linspace(0.02, 0.98, 5):
            C = src.h_s_given_x + t * (h_min - src.h_s_given_x)
            poster = src.distortion(C, R, paper_formula=True)
            assert poster == pytest.approx(src.var_x * math.exp(-2 * src.rate_classification(C)))
            assert poster < src.var_x * math.exp(-2 * R)
        assert src.distortion(h_min, R, paper_formula=True) == pytest.approx(
            src.distortion(h_min, R)
        )
        # continuity from below; the branch's slope in C scales like 1/ρ², so step by ρ²
        below = h_min - 1e-8 * src.rho_sq
        assert src.distortion(below, R, paper_formula=True) == pytest.approx(
            src.var_x * math.exp(-2 * R), rel=1e-5
        )


@settings(max_examples=60, deadline=None)
@given(src=sources, u=st.floats(0.0, 1.5), R=st.floats(0.0, 6.0))
def test_rate_of_distortion_roundtrip(src, u, R):
    C = src.h_s_given_x + u * (src.h_s - src.h_s_given_x + 0.1)
    D = src.distortion(C, R)
    if math.isfinite(D):
        assert src.rate(D, C) == pytest.approx(R, rel=1e-9, abs=1e-12)
        assert src.var_x * math.exp(-2 * R) * (1 - 1e-12) <= D  # never below Shannon
    else:
        assert src.rate_classification(C) > R


# ---------------------------------------------------------------------------------------------
# Monotonicity and convexity (digest §1).
@settings(max_examples=80, deadline=None)
@given(
    src=sources,
    d1=st.floats(1e-3, 3.0),
    d2=st.floats(1e-3, 3.0),
    u1=st.floats(1e-4, 1.3),
    u2=st.floats(1e-4, 1.3),
    lam=st.floats(0.0, 1.0),
)
def test_rate_is_monotone_and_convex(src, d1, d2, u1, u2, lam):
    span = src.h_s - src.h_s_given_x + 0.1
    c1, c2 = (src.h_s_given_x + u * span for u in (u1, u2))
    D1, D2 = d1 * src.var_x, d2 * src.var_x
    r = src.rate
    # non-increasing in each argument
    assert r(min(D1, D2), c1) >= r(max(D1, D2), c1)
    assert r(D1, min(c1, c2)) >= r(D1, max(c1, c2))
    # convex in D at fixed C, and jointly in (D, C)
    mid = r(lam * D1 + (1 - lam) * D2, c1)
    assert mid <= lam * r(D1, c1) + (1 - lam) * r(D2, c1) + 1e-9
    joint = r(lam * D1 + (1 - lam) * D2, lam * c1 + (1 - lam) * c2)
    assert joint <= lam * r(D1, c1) + (1 - lam) * r(D2, c2) + 1e-9


# ---------------------------------------------------------------------------------------------
# Universality (digest §2.4, poster Theorem 2).
def test_rate_penalty_is_zero_for_random_point_sets():
    rng = np.random.default_rng(5)
    for _ in range(25):
        src = random_source(rng)
        points = random_points(rng, src, int(rng.integers(1, 8)))
        sup = max(src.rate(D, C) for D, C in points)
        assert src.universal_rate(points) == pytest.approx(sup, rel=1e-9, abs=1e-12)
        assert abs(src.rate_penalty(points)) <= 1e-9


def test_rate_penalty_undefined_when_infeasible():
    src = GaussianSource(1.0, 1.0, 0.5)
    points = [(0.5, 1.2), (0.5, src.h_s_given_x)]
    assert src.universal_rate(points) == math.inf
    assert math.isnan(src.rate_penalty(points))
    with pytest.raises(ValueError, match="no finite-rate representation"):
        src.universal_representation(points)


def test_representation_region_matches_omega_boundary():
    rng = np.random.default_rng(6)
    for _ in range(10):
        src = random_source(rng)
        r = rng.uniform(0.0, 3.0)
        assert src.representation_region(r) == pytest.approx(src.omega_boundary(r), rel=1e-10)
        D_min, C_min = src.omega_boundary(r)
        assert src.in_omega(D_min * 1.001, C_min + 1e-6, r)
        assert not src.in_omega(D_min * 0.99, C_min + 1.0, r)
        assert not src.in_omega(D_min * 2.0, C_min - 1e-3, r)


def test_decoders_meet_every_point():
    rng = np.random.default_rng(7)
    for _ in range(20):
        src = random_source(rng, means=True)
        points = random_points(rng, src, 6)
        rep = src.universal_representation(points)
        assert rep.rate == pytest.approx(max(src.rate(D, C) for D, C in points))
        for dec, (D, C) in zip(rep.decoders, points):
            assert dec.distortion == pytest.approx(D, rel=1e-9)  # D is always met exactly
            assert dec.conditional_entropy <= C + 1e-9
            if dec.on_target:
                assert dec.conditional_entropy == pytest.approx(C, abs=1e-8)


def test_decoders_sit_exactly_on_boundary_points():
    src = GaussianSource(2.0, 0.5, 0.7, mean_x=1.0)
    r = 0.8
    D_min, C_min = src.omega_boundary(r)
    points = [(D_min, C_min), (D_min, C_min + 0.2), (1.5 * D_min, C_min), (3.0, C_min + 0.05)]
    rep = src.universal_representation(points)
    assert rep.rate == pytest.approx(r)
    corner, d_edge, c_edge, big_d = rep.decoders
    assert (corner.a, corner.noise_var) == (pytest.approx(1.0), 0.0)  # the MMSE decoder
    assert (d_edge.a, d_edge.noise_var) == (pytest.approx(1.0), 0.0)  # still E[X|Z], C slack
    assert corner.on_target and c_edge.on_target and big_d.on_target
    assert not d_edge.on_target
    assert c_edge.noise_var == 0.0 and 0.0 < c_edge.a < 1.0


def test_sample_moments_and_determinism():
    src = GaussianSource(2.0, 3.0, -1.2, mean_x=1.5, mean_s=-2.0)
    rep = src.universal_representation([(0.5, src.h_s - 0.05), (1.0, src.h_s + 0.1)])
    smp = rep.sample(400_000, seed=11)
    assert smp.x_hat.shape == (2, 400_000)
    cov = np.cov(np.stack([smp.x, smp.s, smp.z]))
    expected = np.array(
        [
            [2.0, -1.2, 2.0],
            [-1.2, 3.0, -1.2],
            [2.0, -1.2, 2.0 + rep.noise_var],
        ]
    )
    assert np.allclose(cov, expected, atol=0.03)
    assert smp.x.mean() == pytest.approx(1.5, abs=0.01)
    assert smp.s.mean() == pytest.approx(-2.0, abs=0.01)
    assert np.allclose(smp.x_hat.mean(axis=1), 1.5, atol=0.01)
    again = rep.sample(400_000, seed=11)
    assert np.array_equal(smp.x_hat, again.x_hat)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        rep.sample(0)


def test_monte_carlo_matches_closed_forms():
    rng = np.random.default_rng(8)
    src = random_source(rng, means=True)
    points = [*random_points(rng, src, 4), (1.2 * src.var_x, src.h_s + 0.1)]
    rep = src.universal_representation(points)
    report = rep.verify(n=10**6, seed=3)
    assert report["rate_mc"] == pytest.approx(rep.rate, abs=0.01)
    for row, (D, C) in zip(report["decoders"], points):
        assert row["distortion_mc"] == pytest.approx(D, rel=0.01)
        assert row["conditional_entropy_mc"] == pytest.approx(row["conditional_entropy"], abs=0.01)
        assert row["conditional_entropy_mc"] <= C + 0.01


def test_rate_zero_representation():
    src = GaussianSource(1.0, 1.0, 0.5)
    rep = src.universal_representation([(1.5, src.h_s + 0.5)])
    assert rep.rate == 0.0 and rep.noise_var == math.inf
    (dec,) = rep.decoders
    assert (dec.a, dec.noise_var) == (0.0, pytest.approx(0.5))
    report = rep.verify(n=200_000, seed=0)
    assert report["rate_mc"] == 0.0
    assert report["decoders"][0]["distortion_mc"] == pytest.approx(1.5, rel=0.01)
