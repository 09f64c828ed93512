"""Matplotlib figures for ``rdc-theory``: R(D, C) contours, Ω(R) with decoders, D(C, R) curves.

Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas, never ``pyplot``, so this
module neither needs a display nor changes the caller's global backend. Panel functions draw on a
given ``Axes``; ``write_*_figures`` save PNG files and return their paths.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rdc_keras.theory.binary import BinarySource
from rdc_keras.theory.gaussian import GaussianSource, UniversalRepresentation

__all__ = [
    "binary_rate_contours",
    "binary_rate_curves",
    "gaussian_distortion_curve",
    "gaussian_omega_region",
    "gaussian_rate_contours",
    "write_binary_figures",
    "write_gaussian_figures",
]

_DPI = 90
_INFEASIBLE = {"facecolor": "0.85", "hatch": "//", "edgecolor": "0.6", "linewidth": 0.0}


def _c_range(low: float, high: float) -> tuple[float, float]:
    """A plotting range for C around [h(S|X), h(S)] with a margin on both sides."""
    span = high - low if high > low else 0.5
    return low - 0.15 * span, high + 0.15 * span


def _new_figure(ncols: int, width: float = 4.4, height: float = 3.6) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(width * ncols, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def gaussian_rate_contours(
    ax: Axes, source: GaussianSource, points: Sequence[tuple[float, float]] = ()
) -> None:
    """Filled contours of R(D, C) (nats) with the infeasible band C ≤ h(S|X) hatched."""
    d = np.linspace(0.02 * source.var_x, 1.2 * source.var_x, 160)
    c_lo, c_hi = _c_range(source.h_s_given_x, source.h_s)
    c = np.linspace(c_lo, c_hi, 160)
    DD, CC = np.meshgrid(d, c)
    rates = np.ma.masked_invalid(np.where(np.isinf(R := source.rate(DD, CC)), np.nan, R))
    top = math.ceil(4.0 * max(0.5, min(float(rates.max()), 3.0))) / 4.0  # a multiple of 0.25
    levels = np.linspace(0.0, top, 13)
    levels[0] = -1e-9  # so that the R = 0 region is filled too
    filled = ax.contourf(DD, CC, np.minimum(rates, top), levels=levels, cmap="viridis")
    ax.contour(DD, CC, rates, levels=levels[1::2], colors="white", linewidths=0.5)
    colorbar = ax.figure.colorbar(filled, ax=ax, label="R(D, C) [nats]", format="%.2f")
    colorbar.set_ticks(np.linspace(0.0, top, 7))
    ax.axhspan(c_lo, source.h_s_given_x, **_INFEASIBLE, label="infeasible: C ≤ h(S|X)")
    ax.axhline(source.h_s, color="k", ls=":", lw=0.8)
    ax.axvline(source.var_x, color="k", ls=":", lw=0.8)
    if points:
        pts = np.asarray(points, dtype=float)
        ax.plot(pts[:, 0], pts[:, 1], "o", mfc="none", mec="red", label="(D, C) points")
    ax.set(xlabel="D (MSE)", ylabel="C = h(S | X̂) [nats]", title="Gaussian R(D, C)")
    ax.set_xlim(0.0, d[-1])
    ax.set_ylim(c_lo, c_hi)
    ax.legend(loc="lower right", fontsize="small")


def gaussian_omega_region(ax: Axes, representation: UniversalRepresentation) -> None:
    """Ω(R) at the universal rate (a quadrant), the corner locus, targets and decoders' points."""
    source = representation.source
    r = representation.rate
    d_min, c_min = source.omega_boundary(r)
    d_hi = 1.2 * max(source.var_x, max(dec.D for dec in representation.decoders))
    c_lo, c_hi = _c_range(source.h_s_given_x, source.h_s)
    c_hi = max(c_hi, max(dec.C for dec in representation.decoders) + 0.05)
    ax.fill_between([d_min, d_hi], c_min, c_hi, color="tab:blue", alpha=0.15, lw=0)
    ax.plot([d_min, d_hi], [c_min, c_min], color="tab:blue", lw=1.5)
    ax.plot([d_min, d_min], [c_min, c_hi], color="tab:blue", lw=1.5, label=f"Ω(R), R = {r:.3f}")
    rates = np.linspace(0.0, max(3.0, 1.5 * r), 200)
    ax.plot(
        source.var_x * np.exp(-2.0 * rates),
        source.min_conditional_entropy(rates),
        color="0.4",
        ls="--",
        lw=1.0,
        label="corners of Ω(R'), all R'",
    )
    ax.axhspan(c_lo, source.h_s_given_x, **_INFEASIBLE)
    targets = np.array([(dec.D, dec.C) for dec in representation.decoders])
    achieved = np.array(
        [(dec.distortion, dec.conditional_entropy) for dec in representation.decoders]
    )
    ax.plot(targets[:, 0], targets[:, 1], "o", mfc="none", mec="red", ms=8, label="targets (D, C)")
    ax.plot(achieved[:, 0], achieved[:, 1], "x", color="k", label="decoders of one Z")
    ax.plot([d_min], [c_min], "*", color="tab:orange", ms=12, label="E[X | Z]")
    ax.set(xlabel="D (MSE)", ylabel="C = h(S | X̂) [nats]", title="One encoder serves Ω(R)")
    ax.set_xlim(0.0, d_hi)
    ax.set_ylim(c_lo, c_hi)
    ax.legend(loc="lower right", fontsize="small")


def gaussian_distortion_curve(ax: Axes, source: GaussianSource, R: float) -> None:
    """D(C, R) against C at a fixed rate: corrected form, the poster's branch, the Shannon bound."""
    c_lo, c_hi = _c_range(source.h_s_given_x, source.h_s)
    c = np.linspace(c_lo, c_hi, 400)
    corrected = np.asarray(source.distortion(c, R))
    paper = np.asarray(source.distortion(c, R, paper_formula=True))
    bound = source.var_x * math.exp(-2.0 * R)
    h_min = float(source.min_conditional_entropy(R))
    ax.axvspan(c_lo, h_min, color="0.92", lw=0, label="infeasible at rate R")
    ax.plot(
        c, np.where(np.isinf(paper), np.nan, paper), "--", color="tab:red", label="poster Thm 1"
    )
    ax.plot(c, np.where(np.isinf(corrected), np.nan, corrected), lw=2.5, label="corrected D(C, R)")
    ax.axhline(bound, color="k", ls=":", lw=1.0, label=r"Shannon bound $\sigma_X^2 e^{-2R}$")
    ax.axvline(h_min, color="0.5", lw=0.8)
    ax.set(
        xlabel="C = h(S | X̂) [nats]",
        ylabel="D (MSE)",
        title=f"D(C, R) at R = {R:.3f} nats",
        xlim=(c_lo, c_hi),
        ylim=(0.0, 1.1 * max(bound, float(np.nanmax(np.where(np.isinf(paper), np.nan, paper))))),
    )
    ax.legend(loc="lower right", fontsize="small")


def binary_rate_contours(
    ax: Axes, source: BinarySource, points: Sequence[tuple[float, float]] = ()
) -> None:
    """Filled contours of the binary R(D, C) in the source's units."""
    p = min(source.p, 1.0 - source.p)
    d = np.linspace(0.0, 1.1 * p, 90)
    c_lo, c_hi = _c_range(source.h_s_given_x, source.h_s)
    c = np.linspace(c_lo, c_hi, 90)
    # R(D, C) = max(R(D), R_C(C)): one scalar call per grid line instead of per grid point.
    r_d = np.array([source.rate_distortion(di) for di in d])
    r_c = np.array([source.rate_classification(ci) for ci in c])
    rates = np.maximum(r_d[None, :], r_c[:, None])
    rates = np.ma.masked_invalid(np.where(np.isinf(rates), np.nan, rates))
    levels = np.linspace(0.0, max(float(rates.max()), 1e-3), 12)
    levels[0] = -1e-9
    filled = ax.contourf(d, c, rates, levels=levels, cmap="viridis")
    colorbar = ax.figure.colorbar(filled, ax=ax, label=f"R(D, C) [{source.units}]", format="%.2f")
    colorbar.set_ticks(np.linspace(0.0, levels[-1], 6))
    ax.axhspan(c_lo, source.h_s_given_x, **_INFEASIBLE, label="infeasible: C < H(S|X)")
    if points:
        pts = np.asarray(points, dtype=float)
        ax.plot(pts[:, 0], pts[:, 1], "o", mfc="none", mec="red", label="(D, C) points")
    ax.set(
        xlabel="D = P(X ≠ X̂)",
        ylabel=f"C = H(S | X̂) [{source.units}]",
        title=f"Binary R(D, C), p = {source.p:g}, ε = {source.eps:g}",
    )
    ax.set_ylim(c_lo, c_hi)
    ax.legend(loc="lower right", fontsize="small")


def binary_rate_curves(ax: Axes, source: BinarySource, num_curves: int = 5) -> None:
    """R(D, C) against D for a few C between H(S|X) and H(S); C = H(S) is Shannon's R(D)."""
    p = min(source.p, 1.0 - source.p)
    d = np.linspace(0.0, 1.1 * p, 200)
    r_d = np.array([source.rate_distortion(di) for di in d])
    for c in np.linspace(source.h_s_given_x, source.h_s, num_curves):
        ax.plot(d, np.maximum(r_d, source.rate_classification(c)), label=f"C = {c:.3f}")
    ax.set(
        xlabel="D = P(X ≠ X̂)",
        ylabel=f"R(D, C) [{source.units}]",
        title="Classification floors the rate",
    )
    ax.legend(loc="upper right", fontsize="small")


def _save(fig: Figure, path: pathlib.Path) -> pathlib.Path:
    fig.savefig(path, dpi=_DPI)
    return path


def write_gaussian_figures(
    representation: UniversalRepresentation,
    R: float,
    out_dir: str | pathlib.Path,
    which: str = "all",
) -> list[pathlib.Path]:
    """Write the Gaussian panels; ``which`` is "all" (three PNGs + summary) or "summary".

    Files: gaussian_rate_contours.png, gaussian_omega.png, gaussian_distortion.png and the
    three-panel theory_gaussian.png.
    """
    if which not in ("all", "summary"):
        raise ValueError(f"which must be 'all' or 'summary', got {which!r}")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = representation.source
    points = [(dec.D, dec.C) for dec in representation.decoders]
    panels = [
        ("gaussian_rate_contours.png", lambda ax: gaussian_rate_contours(ax, source, points)),
        ("gaussian_omega.png", lambda ax: gaussian_omega_region(ax, representation)),
        ("gaussian_distortion.png", lambda ax: gaussian_distortion_curve(ax, source, R)),
    ]
    return _write(panels, out, "theory_gaussian.png", which)


def write_binary_figures(
    source: BinarySource,
    points: Sequence[tuple[float, float]],
    out_dir: str | pathlib.Path,
    which: str = "all",
) -> list[pathlib.Path]:
    """Write binary_rate_contours.png, binary_rate_curves.png and theory_binary.png (summary)."""
    if which not in ("all", "summary"):
        raise ValueError(f"which must be 'all' or 'summary', got {which!r}")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    panels = [
        ("binary_rate_contours.png", lambda ax: binary_rate_contours(ax, source, points)),
        ("binary_rate_curves.png", lambda ax: binary_rate_curves(ax, source)),
    ]
    return _write(panels, out, "theory_binary.png", which)


def _write(panels: list, out: pathlib.Path, summary_name: str, which: str) -> list[pathlib.Path]:
    written = []
    if which == "all":
        for name, draw in panels:
            fig, (ax,) = _new_figure(1)
            draw(ax)
            written.append(_save(fig, out / name))
    fig, axes = _new_figure(len(panels))
    for (_, draw), ax in zip(panels, axes):
        draw(ax)
    written.append(_save(fig, out / summary_name))
    return written
