"""Closed-form R(D, C) for the symmetric binary source under Hamming distortion.

Model (``notes/paper-digest.md`` §3): X ~ Bern(p), label S = X ⊕ W with W ~ Bern(ε) independent of
X, distortion P(X ≠ X_hat), classification constraint H(S | X_hat) ≤ C, Markov chain S - X - X_hat.
Mrs Gerber's lemma gives the converse and a backward binary symmetric test channel attains it:

    R(D, C) = h_b(p) − min{h_b(D), h_b(a_C)},  a_C = (h_b⁻¹(C) − ε) / (1 − 2ε),

clipped at 0, and ``math.inf`` for C < h_b(ε) = H(S | X). Labels are symmetric, so p > ½ and ε > ½
are handled by relabelling. Entropies, C and rates are in ``units`` ("bits", the default, or
"nats"); D is a probability. Pure numpy/scipy; never imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import optimize

__all__ = ["BinarySource", "TestChannel", "binary_entropy", "inverse_binary_entropy"]

_UNITS = {"bits": 1.0, "nats": math.log(2.0)}


def binary_entropy(q: float) -> float:
    """h_b(q) = −q log₂ q − (1 − q) log₂(1 − q) in bits, with h_b(0) = h_b(1) = 0."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {q}")
    if q in (0.0, 1.0):
        return 0.0
    return float(-q * math.log2(q) - (1.0 - q) * math.log2(1.0 - q))


def inverse_binary_entropy(h: float) -> float:
    """The q in [0, ½] with h_b(q) = h (bits); h is clipped to [0, 1]."""
    if math.isnan(h):
        raise ValueError("entropy must not be NaN")
    if h <= 0.0:
        return 0.0
    if h >= 1.0:
        return 0.5
    return float(optimize.brentq(lambda q: binary_entropy(q) - h, 0.0, 0.5, xtol=1e-15))


def _convolve(a: float, eps: float) -> float:
    """a ∗ ε = a(1 − ε) + (1 − a)ε: crossover of two cascaded binary symmetric channels."""
    return a * (1.0 - eps) + (1.0 - a) * eps


@dataclasses.dataclass(frozen=True)
class TestChannel:
    """Optimal test channel at (D, C): X = X_hat ⊕ V with V ~ Bern(crossover) (backward BSC).

    Attributes:
        crossover: δ = min(D, a_C), the achieved distortion P(X ≠ X_hat) (= p when the rate is 0
            and X_hat is constant).
        forward: 2×2 array, forward[x, x_hat] = p(x_hat | x), in the caller's labelling.
    """

    crossover: float
    forward: np.ndarray


@dataclasses.dataclass(frozen=True)
class BinarySource:
    """Symmetric binary source X ~ Bern(p), S = X ⊕ Bern(eps), Hamming distortion (digest §3).

    Args:
        p: P(X = 1), in (0, 1).
        eps: label noise P(S ≠ X), in [0, 1] (ε = ½ makes S independent of X).
        units: "bits" (log₂) or "nats" (ln) for C, entropies and rates.
    """

    p: float
    eps: float
    units: str = "bits"

    def __post_init__(self) -> None:
        for name in ("p", "eps"):
            value = getattr(self, name)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"{name} must be a real number, got {value!r}") from None
            object.__setattr__(self, name, value)
        if not 0.0 < self.p < 1.0:
            raise ValueError(f"p must be in (0, 1), got {self.p}")
        if not 0.0 <= self.eps <= 1.0:
            raise ValueError(f"eps must be in [0, 1], got {self.eps}")
        if self.units not in _UNITS:
            raise ValueError(f"units must be 'bits' or 'nats', got {self.units!r}")

    # Canonical parameters after relabelling: p, ε ≤ ½.
    @property
    def _p(self) -> float:
        return min(self.p, 1.0 - self.p)

    @property
    def _eps(self) -> float:
        return min(self.eps, 1.0 - self.eps)

    def _out(self, bits: float) -> float:
        return bits * _UNITS[self.units]

    def _in(self, name: str, value: float) -> float:
        value = float(value)
        if math.isnan(value):
            raise ValueError(f"{name} must not be NaN")
        return value / _UNITS[self.units]

    @staticmethod
    def _check_distortion(D: float) -> float:
        D = float(D)
        if math.isnan(D) or D < 0.0:
            raise ValueError(f"distortion D must be >= 0 (a probability of error), got {D}")
        return D

    @property
    def h_x(self) -> float:
        """H(X) = h_b(p): the lossless rate."""
        return self._out(binary_entropy(self._p))

    @property
    def h_s(self) -> float:
        """H(S) = h_b(p ∗ ε): the classification level of a constant X_hat."""
        return self._out(binary_entropy(_convolve(self._p, self._eps)))

    @property
    def h_s_given_x(self) -> float:
        """H(S | X) = h_b(ε): the classification level of X_hat = X."""
        return self._out(binary_entropy(self._eps))

    def _a_c(self, c_bits: float) -> float:
        """a_C = (h_b⁻¹(C) − ε)/(1 − 2ε): the largest crossover with H(S | X_hat) ≤ C."""
        if c_bits >= binary_entropy(_convolve(self._p, self._eps)) or self._eps == 0.5:
            return 0.5
        return (inverse_binary_entropy(c_bits) - self._eps) / (1.0 - 2.0 * self._eps)

    def rate_distortion(self, D: float) -> float:
        """Shannon's R(D) = max(0, h_b(p) − h_b(D)) for D < min(p, 1 − p)."""
        D = self._check_distortion(D)
        return self._out(max(0.0, binary_entropy(self._p) - binary_entropy(min(D, 0.5))))

    def rate_classification(self, C: float) -> float:
        """R_C(C) = h_b(p) − h_b(a_C); 0 for C ≥ H(S), ``math.inf`` for C < H(S | X)."""
        c_bits = self._in("C", C)
        if c_bits >= binary_entropy(_convolve(self._p, self._eps)):
            return 0.0
        if c_bits < binary_entropy(self._eps) - 1e-12:
            return math.inf
        a_c = self._a_c(c_bits)
        return self._out(max(0.0, binary_entropy(self._p) - binary_entropy(max(0.0, a_c))))

    def rate(self, D: float, C: float) -> float:
        """R(D, C) = max(R(D), R_C(C)) in ``units`` (digest §3); ``math.inf`` if C < H(S | X)."""
        return max(self.rate_distortion(D), self.rate_classification(C))

    def min_conditional_entropy(self, R: float) -> float:
        """Least H(S | X_hat) with I(X; X_hat) ≤ R: h_b(h_b⁻¹(h_b(p) − R) ∗ ε) (Mrs Gerber)."""
        r_bits = self._in("R", R)
        if r_bits < 0:
            raise ValueError(f"rate R must be >= 0, got {R}")
        delta = inverse_binary_entropy(binary_entropy(self._p) - r_bits)
        return self._out(binary_entropy(_convolve(min(delta, self._p), self._eps)))

    def distortion(self, C: float, R: float) -> float:
        """D(C, R) = h_b⁻¹(h_b(p) − R) if C ≥ the least H(S | X_hat) at rate R, else ``inf``."""
        r_bits = self._in("R", R)
        if r_bits < 0:
            raise ValueError(f"rate R must be >= 0, got {R}")
        if float(C) < self.min_conditional_entropy(R) - 1e-12:
            return math.inf
        return min(inverse_binary_entropy(binary_entropy(self._p) - r_bits), self._p)

    def test_channel(self, D: float, C: float) -> TestChannel:
        """The backward-BSC channel attaining R(D, C) (digest §3).

        Raises:
            ValueError: if C < H(S | X) (no channel meets the classification constraint).
        """
        D = self._check_distortion(D)
        if math.isinf(self.rate_classification(C)):
            raise ValueError(f"C must be >= H(S|X) = {self.h_s_given_x} {self.units}, got {C}")
        p = self._p
        delta = min(D, max(0.0, self._a_c(self._in("C", C))), p)
        if delta >= p:  # rate 0: X_hat = 0 always
            forward = np.array([[1.0, 0.0], [1.0, 0.0]])
            delta = p
        else:
            q = (p - delta) / (1.0 - 2.0 * delta)  # P(X_hat = 1), so that q ∗ δ = p
            p11 = q * (1.0 - delta) / p
            p01 = q * delta / (1.0 - p)
            forward = np.array([[1.0 - p01, p01], [1.0 - p11, p11]])
        if self.p > 0.5:  # undo the relabelling X -> 1 - X (and X_hat -> 1 - X_hat)
            forward = forward[::-1, ::-1].copy()
        return TestChannel(delta, forward)
