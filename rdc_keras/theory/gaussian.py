"""Closed forms for the jointly Gaussian source under MSE, and the universal construction.

The source is X ~ N(mean_x, var_x) with a label S ~ N(mean_s, var_s), Cov(X, S) = cov_xs; the
classification constraint bounds the differential entropy h(S | X_hat), and S - X - X_hat is a
Markov chain (the encoder sees only X). Everything is in nats and ``math.inf`` marks what no finite
rate (or no decoder) achieves. Formulas: ``notes/paper-digest.md`` §2 (R(D, C) in §2.2, the
poster's D(C, R) and its discrepancy in §2.3, the universal construction in §2.4).

This module is pure numpy/scipy; it never imports TensorFlow. (About 480 lines: the closed forms,
the region Omega(R) and the universal construction with its Monte Carlo check are one source's
theory and share the argument checks at the top; `theory/binary.py` is the other source.)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy import optimize

__all__ = [
    "Decoder",
    "GaussianSource",
    "Samples",
    "UniversalRepresentation",
]

_TWO_PI_E = 2.0 * math.pi * math.e
# Relative slack when deciding that a target (D, C) sits on the boundary of a region: the rate
# r = sup R(D, C) is computed in floating point, so the boundary point is only met to rounding.
_BOUNDARY_RTOL = 1e-9


def _gaussian_entropy(var: Any) -> Any:
    """Differential entropy (nats) of a Gaussian with variance ``var``: ½ log(2πe var)."""
    return 0.5 * np.log(_TWO_PI_E * np.asarray(var, dtype=float))


def _finite_scalar(name: str, value: Any) -> float:
    """``value`` as a finite float, or a one-line ValueError/TypeError naming ``name``."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {result}")
    return result


def _as_array(name: str, value: Any) -> tuple[np.ndarray, bool]:
    """``value`` as a float array (NaN rejected) and whether the caller passed a scalar."""
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a real number or an array of them, got {value!r}"
        ) from None
    if np.isnan(array).any():
        raise ValueError(f"{name} must not be NaN")
    return array, array.ndim == 0


def _result(array: np.ndarray, scalar: bool) -> float | np.ndarray:
    """A Python float (``math.inf`` included) for scalar calls, else the array."""
    return float(array) if scalar else array


def _parse_points(points: Iterable[Sequence[float]]) -> list[tuple[float, float]]:
    """Validate an iterable of (D, C) pairs: D > 0 (may be inf), C real (may be ±inf)."""
    parsed = []
    for point in points:
        try:
            D, C = (float(v) for v in point)
        except (TypeError, ValueError):
            raise TypeError(f"each point must be a (D, C) pair of numbers, got {point!r}") from None
        if math.isnan(D) or math.isnan(C):
            raise ValueError(f"point (D, C) must not contain NaN, got {point!r}")
        if D <= 0.0:
            raise ValueError(f"point distortion D must be > 0, got {D}")
        parsed.append((D, C))
    if not parsed:
        raise ValueError("points must contain at least one (D, C) pair")
    return parsed


@dataclasses.dataclass(frozen=True)
class GaussianSource:
    """Jointly Gaussian (X, S) with MSE distortion and the h(S | X_hat) classification constraint.

    Args:
        var_x: Var(X) = σ_X² > 0.
        var_s: Var(S) = σ_S² > 0.
        cov_xs: Cov(X, S) = θ₁, with correlation ρ = θ₁ / (σ_X σ_S) strictly inside (-1, 1)
            (|ρ| = 1 would make h(S | X) = -∞).
        mean_x: E[X]; only the universal construction's decoders and samples use it.
        mean_s: E[S]; only the samples use it.
    """

    var_x: float
    var_s: float
    cov_xs: float
    mean_x: float = 0.0
    mean_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("var_x", "var_s", "cov_xs", "mean_x", "mean_s"):
            object.__setattr__(self, name, _finite_scalar(name, getattr(self, name)))
        if self.var_x <= 0.0:
            raise ValueError(f"var_x must be > 0, got {self.var_x}")
        if self.var_s <= 0.0:
            raise ValueError(f"var_s must be > 0, got {self.var_s}")
        if self.cov_xs**2 >= self.var_x * self.var_s:
            raise ValueError(
                f"|correlation| must be < 1, got {self.cov_xs / math.sqrt(self.var_x * self.var_s)}"
                " (cov_xs² must be < var_x·var_s)"
            )

    # ----------------------------------------------------------------------------------------
    # Basic quantities (digest §2 setup).
    @property
    def correlation(self) -> float:
        """ρ = Cov(X, S) / (σ_X σ_S)."""
        return self.cov_xs / math.sqrt(self.var_x * self.var_s)

    @property
    def rho_sq(self) -> float:
        """ρ², the fraction of Var(S) explained by X."""
        return self.cov_xs**2 / (self.var_x * self.var_s)

    @property
    def h_s(self) -> float:
        """h(S) = ½ log(2πe σ_S²) in nats: the loosest useful classification level."""
        return float(_gaussian_entropy(self.var_s))

    @property
    def h_s_given_x(self) -> float:
        """h(S | X) = h(S) + ½ log(1 − ρ²): the classification level of X itself (infinite rate)."""
        return self.h_s + 0.5 * math.log1p(-self.rho_sq)

    # ----------------------------------------------------------------------------------------
    # Closed forms (digest §2.1–2.3).
    def min_conditional_entropy(self, R: Any) -> float | np.ndarray:
        """Smallest h(S | X_hat) over X_hat with I(X; X_hat) ≤ R (digest §2.1, Gaussian IB).

        h_min(R) = h(S) + ½ log(1 − ρ² (1 − e^{−2R})); attained by X_hat = E[X | X + N].

        Args:
            R: rate in nats, R ≥ 0 (``math.inf`` allowed, giving h(S | X)).
        """
        R, scalar = _as_array("R", R)
        if (R < 0).any():
            raise ValueError(f"rate R must be >= 0, got {R.min()}")
        out = self.h_s + 0.5 * np.log1p(-self.rho_sq * -np.expm1(-2.0 * R))
        return _result(out, scalar)

    def rate_distortion(self, D: Any) -> float | np.ndarray:
        """Shannon's R(D) = max(0, ½ log(σ_X² / D)) in nats, the distortion term of R(D, C)."""
        D, scalar = _as_array("D", D)
        if (D <= 0).any():
            raise ValueError(f"distortion D must be > 0 (a mean squared error), got {D.min()}")
        with np.errstate(divide="ignore"):
            out = np.maximum(0.0, 0.5 * np.log(self.var_x / D))
        return _result(out, scalar)

    def rate_classification(self, C: Any) -> float | np.ndarray:
        """R_C(C) = −½ log(1 − (1 − e^{2(C − h(S))}) / ρ²), the inverse of h_min (digest §2.2).

        0 for C ≥ h(S); else ``math.inf`` for C ≤ h(S | X) (C = h(S | X) needs X_hat = X).
        """
        C, scalar = _as_array("C", C)
        out = np.zeros(C.shape)
        inner = (self.h_s_given_x < C) & (self.h_s > C)
        out[(self.h_s_given_x >= C) & (self.h_s > C)] = math.inf  # ρ = 0: C = h(S) costs 0
        if inner.any():
            explained = -np.expm1(2.0 * (C[inner] - self.h_s))  # 1 − e^{2(C − h(S))} in (0, ρ²)
            out[inner] = -0.5 * np.log1p(-explained / self.rho_sq)
        return _result(out, scalar)

    def rate(self, D: Any, C: Any) -> float | np.ndarray:
        """R(D, C) = max(R(D), R_C(C)) in nats (digest §2.2); ``math.inf`` where infeasible.

        Broadcasts over numpy arrays; D must be > 0, C any real.
        """
        rd = np.asarray(self.rate_distortion(D))
        rc = np.asarray(self.rate_classification(C))
        scalar = rd.ndim == 0 and rc.ndim == 0
        return _result(np.maximum(rd, rc), scalar)

    def distortion(self, C: Any, R: Any, paper_formula: bool = False) -> float | np.ndarray:
        """D(C, R): the least MSE with I(X; X_hat) ≤ R and h(S | X_hat) ≤ C (poster Def. 1).

        Corrected form (default): σ_X² e^{−2R} if C ≥ h_min(R), else ``math.inf``. At a fixed rate
        the MMSE decoder is best for both constraints, so there is no D-C tradeoff (digest §2.2).

        ``paper_formula=True`` returns the poster's Theorem 1 instead, whose middle branch
        σ_X² − (σ_S² σ_X⁴ / θ₁²)(1 − e^{2(C − h(S))}) for h(S|X) ≤ C < h_min(R) equals
        σ_X² e^{−2 R_C(C)}: the MMSE at the *higher* rate R_C(C) > R. It therefore falls below the
        Shannon bound σ_X² e^{−2R}, which no decoder at rate R can beat (digest §2.3; e.g.
        σ² = 1, θ₁ = 0.8, R = 0.5, C = 0.99 gives 0.100 against the bound 0.368). It is kept only
        for comparison. The poster leaves C < h(S | X) undefined (``math.inf`` here) and its third
        branch (D = 0 "if C > h(S) and R > h(X)", transcribed sic) overlaps the first and is not
        reproduced.

        Args:
            C: classification level h(S | X_hat) in nats (any real).
            R: rate in nats, R ≥ 0 (``math.inf`` allowed).
            paper_formula: use the poster's middle branch (see above).
        """
        C, c_scalar = _as_array("C", C)
        R, r_scalar = _as_array("R", R)
        if (R < 0).any():
            raise ValueError(f"rate R must be >= 0, got {R.min()}")
        C, R = np.broadcast_arrays(C, R)
        h_min = np.asarray(self.min_conditional_entropy(R))
        out = np.where(h_min <= C, self.var_x * np.exp(-2.0 * R), math.inf)
        middle = (self.h_s_given_x <= C) & (h_min > C)
        if paper_formula and middle.any():  # empty when ρ = 0 (h(S|X) = h_min = h(S))
            explained = -np.expm1(2.0 * (C[middle] - self.h_s))
            out[middle] = self.var_x - self.var_s * self.var_x**2 / self.cov_xs**2 * explained
        return _result(out, c_scalar and r_scalar)

    # ----------------------------------------------------------------------------------------
    # Ω(R) and the universal rate (digest §1, §2.4).
    def omega_boundary(self, R: float) -> tuple[float, float]:
        """Corner (D_min, C_min) = (σ_X² e^{−2R}, h_min(R)) of Ω(R) = {(D, C): R(D, C) ≤ R}.

        Ω(R) is the quadrant {D ≥ D_min, C ≥ C_min} (digest §2.2), so the corner is its boundary.
        """
        R = float(R)
        if math.isnan(R) or R < 0:
            raise ValueError(f"rate R must be >= 0, got {R}")
        return self.var_x * math.exp(-2.0 * R), float(self.min_conditional_entropy(R))

    def in_omega(self, D: float, C: float, R: float) -> bool:
        """Whether (D, C) ∈ Ω(R), i.e. R(D, C) ≤ R."""
        return float(self.rate(D, C)) <= float(R)

    def representation_region(self, r: float) -> tuple[float, float]:
        """Corner (D, C) of the region Ω(p_Z|X) of Z = X + N with I(X; Z) = r (digest §1).

        Computed from the covariances of (X, S, Z) — Var(X | Z) and h(S | Z) — rather than from
        the R(D, C) closed form, so that ``universal_rate`` checks the theorem instead of
        restating it. Every decoder of Z has MSE ≥ Var(X | Z) and h(S | X_hat) ≥ h(S | Z).
        """
        r = float(r)
        if math.isnan(r) or r < 0:
            raise ValueError(f"rate r must be >= 0, got {r}")
        if r == 0.0:
            return self.var_x, self.h_s
        if math.isinf(r):
            return 0.0, self.h_s_given_x
        var_z = self.var_x + self.var_x / math.expm1(2.0 * r)  # Var(X) + Var(N)
        mmse = self.var_x - self.var_x**2 / var_z
        var_s_given_z = self.var_s - self.cov_xs**2 / var_z
        return mmse, float(_gaussian_entropy(var_s_given_z))

    def _min_rate_for(self, D: float, C: float) -> float:
        """Least I(X; Z) of a Gaussian Z = X + N whose region contains (D, C), by root finding."""
        if self.h_s_given_x >= C and self.h_s > C:
            return math.inf
        rates = [0.0]
        if self.var_x > D:
            rates.append(self._solve_rate(lambda r: math.log(self.representation_region(r)[0] / D)))
        if self.h_s > C:
            rates.append(self._solve_rate(lambda r: self.representation_region(r)[1] - C))
        return max(rates)

    @staticmethod
    def _solve_rate(excess: Any) -> float:
        """Root of a decreasing function of r on (0, ∞) that is positive at r = 0."""
        hi = 1.0
        while excess(hi) > 0.0:
            hi *= 2.0
            if hi > 1e6:
                raise ValueError("no finite rate meets the point (rate search diverged)")
        return optimize.brentq(excess, 0.0, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps)

    def universal_rate(self, points: Iterable[Sequence[float]]) -> float:
        """R(Θ): least I(X; Z) of a representation serving every (D, C) in ``points``.

        Searches Gaussian representations Z = X + N (digest §2.4); by the poster's Theorem 2 this
        equals sup_Θ R(D, C). ``math.inf`` if some point needs C ≤ h(S | X).
        """
        return max(self._min_rate_for(D, C) for D, C in _parse_points(points))

    def rate_penalty(self, points: Iterable[Sequence[float]]) -> float:
        """A(Θ) = R(Θ) − sup_Θ R(D, C) (poster Def. 3); 0 up to rounding for this source.

        NaN when R(Θ) = ∞ (∞ − ∞ is undefined).
        """
        parsed = _parse_points(points)
        universal = self.universal_rate(parsed)
        sup = max(float(self.rate(D, C)) for D, C in parsed)
        if math.isinf(universal) and math.isinf(sup):
            return math.nan
        return universal - sup

    def universal_representation(
        self, points: Iterable[Sequence[float]]
    ) -> UniversalRepresentation:
        """The construction of digest §2.4: one Z = X + N at r = sup R(D, C), a decoder per point.

        Each decoder X_hat = μ_X + a (E[X | Z] − μ_X) + N' meets its (D, C) with equality when
        some decoder of Z can; otherwise it meets D with equality and C with slack.

        Raises:
            ValueError: if a point needs infinite rate (C ≤ h(S | X)).
        """
        parsed = _parse_points(points)
        rate = max(float(self.rate(D, C)) for D, C in parsed)
        if math.isinf(rate):
            raise ValueError(
                f"no finite-rate representation: some point has C <= h(S|X) = {self.h_s_given_x}"
            )
        decoders = tuple(self._decoder(rate, D, C) for D, C in parsed)
        noise_var = math.inf if rate == 0.0 else self.var_x / math.expm1(2.0 * rate)
        return UniversalRepresentation(self, rate, noise_var, decoders)

    def _decoder(self, r: float, D: float, C: float) -> Decoder:
        """Decoder of Z at rate r meeting (D, C), exactly on it where possible (digest §2.4).

        With v = Var(E[X|Z]) = σ_X²(1 − e^{−2r}), X_hat = μ + a(X̃ − μ) + N' has
        MSE = σ_X² − 2a v + a² v + s² and explains the fraction f = a² v / (a² v + s²) of
        the variance of S that X̃ explains. Pick f from C, then a from D (quadratic in a√v);
        where both cannot hold with equality, take N' = 0 and a = 1 − √((D − D_min) / v).
        """
        d_r, c_r = self.omega_boundary(r)
        v = self.var_x - d_r
        if d_r * (1 - _BOUNDARY_RTOL) > D or c_r - _BOUNDARY_RTOL * max(1.0, abs(c_r)) > C:
            raise ValueError(f"point (D={D}, C={C}) lies outside the region of Z at rate {r}")
        target = (D, C)
        D, C = max(D, d_r), max(C, c_r)  # absorb rounding of points on the boundary
        kappa = self.rho_sq * self.var_s * v / self.var_x  # Var(S) explained by X̃
        if self.h_s <= C or kappa == 0.0:
            f = 0.0
        else:
            f = (self.var_s - math.exp(2.0 * C) / _TWO_PI_E) / kappa
            f = 1.0 if f > 1.0 - _BOUNDARY_RTOL else f  # on the C boundary up to rounding
        if self.var_x <= D and f == 0.0:
            a, noise_var = 0.0, D - self.var_x
        elif f > 0.0 and self.var_x - f * v <= D:
            # Two roots; take the shrinking one (a ≤ 1) unless D ≥ σ_X² would make it a ≤ 0.
            sign = -1.0 if self.var_x > D else 1.0
            u = f * (math.sqrt(v) + sign * math.sqrt(max(0.0, v - (self.var_x - D) / f)))
            a, noise_var = u / math.sqrt(v), u * u * (1.0 - f) / f
        else:  # cannot sit on C too: meet D exactly with N' = 0 and C with slack.
            a, noise_var = 1.0 - math.sqrt(max(0.0, D - d_r) / v), 0.0
        distortion, entropy = self._decoder_performance(v, a, noise_var)
        on_target = math.isclose(distortion, D, rel_tol=1e-7, abs_tol=1e-12) and math.isclose(
            entropy, C, rel_tol=1e-7, abs_tol=1e-9
        )
        return Decoder(*target, a, noise_var, distortion, entropy, on_target)

    def _decoder_performance(self, v: float, a: float, noise_var: float) -> tuple[float, float]:
        """MSE and h(S | X_hat) of X_hat = μ + a(X̃ − μ) + N' where Var(X̃) = Cov(X, X̃) = v."""
        distortion = self.var_x - 2.0 * a * v + a * a * v + noise_var
        var_hat = a * a * v + noise_var
        if var_hat == 0.0:
            return distortion, self.h_s
        cov_s_hat = a * self.cov_xs * v / self.var_x  # Cov(S, X̃) = θ₁ v / σ_X²
        return distortion, float(_gaussian_entropy(self.var_s - cov_s_hat**2 / var_hat))


@dataclasses.dataclass(frozen=True)
class Decoder:
    """One decoder X_hat = μ_X + a (E[X | Z] − μ_X) + N', N' ~ N(0, noise_var), of the construction.

    Attributes:
        D, C: the target point.
        a: gain on the MMSE estimate.
        noise_var: Var(N'), independent noise that raises h(S | X_hat) toward C.
        distortion: achieved E(X − X_hat)² (closed form), ≤ D.
        conditional_entropy: achieved h(S | X_hat) in nats (closed form), ≤ C.
        on_target: both achieved values equal (D, C); False when no decoder of Z sits on the point
            (e.g. C > h(S)), in which case D is met exactly and C with slack.
    """

    D: float
    C: float
    a: float
    noise_var: float
    distortion: float
    conditional_entropy: float
    on_target: bool


@dataclasses.dataclass(frozen=True)
class Samples:
    """Draws from the universal construction; ``x_hat[i]`` belongs to ``decoders[i]``."""

    x: np.ndarray
    s: np.ndarray
    z: np.ndarray
    x_tilde: np.ndarray
    x_hat: np.ndarray


@dataclasses.dataclass(frozen=True)
class UniversalRepresentation:
    """Z = X + N with I(X; Z) = ``rate`` and one decoder per (D, C) point (digest §2.4).

    At rate 0 (every point trivial) Z is independent of X: ``noise_var`` is ∞ and ``sample``
    draws Z as independent N(μ_X, σ_X²) noise.
    """

    source: GaussianSource
    rate: float
    noise_var: float
    decoders: tuple[Decoder, ...]

    @property
    def mmse_gain(self) -> float:
        """b in E[X | Z] = μ_X + b (Z − μ_X); b = 1 − e^{−2 rate}."""
        return -math.expm1(-2.0 * self.rate)

    def sample(self, n: int, seed: int | None = None) -> Samples:
        """Draw n i.i.d. (X, S, Z, E[X|Z]) and every decoder's X_hat with numpy's Generator."""
        if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        src = self.source
        rng = np.random.default_rng(seed)
        x = src.mean_x + math.sqrt(src.var_x) * rng.standard_normal(n)
        slope = src.cov_xs / src.var_x
        resid_sd = math.sqrt(src.var_s * (1.0 - src.rho_sq))
        s = src.mean_s + slope * (x - src.mean_x) + resid_sd * rng.standard_normal(n)
        if math.isinf(self.noise_var):
            z = src.mean_x + math.sqrt(src.var_x) * rng.standard_normal(n)
        else:
            z = x + math.sqrt(self.noise_var) * rng.standard_normal(n)
        x_tilde = src.mean_x + self.mmse_gain * (z - src.mean_x)
        x_hat = np.empty((len(self.decoders), n))
        for i, dec in enumerate(self.decoders):
            x_hat[i] = src.mean_x + dec.a * (x_tilde - src.mean_x)
            if dec.noise_var > 0.0:
                x_hat[i] += math.sqrt(dec.noise_var) * rng.standard_normal(n)
        return Samples(x, s, z, x_tilde, x_hat)

    def verify(self, n: int = 10**6, seed: int | None = 0) -> dict[str, Any]:
        """Monte Carlo estimates next to the closed forms (digest §2.4).

        I(X; Z) and h(S | X_hat) use the Gaussian formulas on empirical moments
        (−½ log(1 − corr²) and ½ log(2πe Var(S | X_hat))); distortion is the sample MSE.
        """
        smp = self.sample(n, seed)
        src = self.source
        if math.isinf(self.noise_var):
            mi = 0.0
        else:
            corr = np.corrcoef(smp.x, smp.z)[0, 1]
            mi = float(-0.5 * math.log1p(-(corr**2)))
        decoders = []
        for dec, x_hat in zip(self.decoders, smp.x_hat):
            mse = float(np.mean((smp.x - x_hat) ** 2))
            var_s = float(np.var(smp.s))
            var_hat = float(np.var(x_hat))
            if var_hat == 0.0:
                entropy = float(_gaussian_entropy(var_s))
            else:
                cov = float(np.mean((smp.s - smp.s.mean()) * (x_hat - x_hat.mean())))
                entropy = float(_gaussian_entropy(var_s - cov**2 / var_hat))
            decoders.append(
                {
                    "D": dec.D,
                    "C": dec.C,
                    "distortion": dec.distortion,
                    "distortion_mc": mse,
                    "conditional_entropy": dec.conditional_entropy,
                    "conditional_entropy_mc": entropy,
                }
            )
        return {
            "n": n,
            "seed": seed,
            "rate": self.rate,
            "rate_mc": mi,
            "h_s": src.h_s,
            "decoders": decoders,
        }
