"""Figures of a study: RDC tradeoff curves (E2E vs universal), distortion vs realism (W1, judge
FD), accuracy vs distortion across series, several rates, reconstruction grids. Curves of a study
over several seeds are drawn through the means with ±1 std error bars.

Everything draws on `matplotlib.figure.Figure` with the Agg canvas (no pyplot), so importing this
module never changes the caller's matplotlib backend.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rdc_keras.files import atomic_write

__all__ = [
    "accuracy_figure",
    "perception_figure",
    "rates_figure",
    "reconstruction_grid",
    "save_figure",
    "tradeoff_figure",
]

# Family -> (label, marker, line style); families not listed fall back to their own name.
STYLES = {
    "e2e": ("end-to-end (E2E)", "o", "-"),
    "universal-paper": ("universal, paper base (E2E encoder)", "s", "--"),
    "universal-multihead": ("universal, multi-head base", "^", ":"),
}
# Family -> colour, the same in every figure (the default cycle's first three, in STYLES order).
COLOURS = {"e2e": "C0", "universal-paper": "C1", "universal-multihead": "C2"}
# Markers of series that are not one family each (accuracy_figure), in order.
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
METRIC_LABELS = {
    "mse": "distortion: MSE per pixel on [0, 1]",
    "ce_nats": "classification: CE of the reference classifier [nats]",
    "accuracy": "accuracy of the reference classifier [fraction]",
    "w1": "perception: W1 of the held-out critic [critic score difference]",
    "judge_fd": "perception: judge FD [squared judge-feature units]",
}


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int = 110) -> pathlib.Path:
    """Writes a PNG through a temporary file and a rename."""
    path = pathlib.Path(path)
    FigureCanvasAgg(figure)
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    return path


def _curve(
    axis,
    rows: Sequence[dict[str, Any]],
    x: str,
    y: str,
    label: str,
    marker: str,
    style,
    colour: str | None = None,
    order: str = "lambda_c",
    annotate: str = "lambda_c",
):
    """One line through `rows` in `order` (a row key; "lambda_c" orders by lambda_c, then
    lambda_p); points without an x or y value are left out. Rows summarising several seeds
    (`<x>_std`, `<y>_std`; `rdc_keras.spread.aggregate`) get ±1 std error bars."""

    def key(row):
        return (row["lambda_c"], row.get("lambda_p") or 0) if order == "lambda_c" else row[order]

    rows = sorted(
        (row for row in rows if row.get(x) is not None and row.get(y) is not None), key=key
    )
    if not rows:
        return
    xs = [row[x] for row in rows]
    ys = [row[y] for row in rows]
    (line,) = axis.plot(xs, ys, linestyle=style, marker=marker, label=label, color=colour)
    xerr = [row.get(f"{x}_std") or 0.0 for row in rows]
    yerr = [row.get(f"{y}_std") or 0.0 for row in rows]
    if any(xerr) or any(yerr):
        axis.errorbar(
            xs, ys, xerr=xerr, yerr=yerr, fmt="none", ecolor=line.get_color(), alpha=0.5, capsize=2
        )
    for row, xv, yv in zip(rows, xs, ys):
        axis.annotate(
            _point_label(row, annotate),
            (xv, yv),
            fontsize=6,
            alpha=0.7,
            textcoords="offset points",
            xytext=(3, 3),
        )


def _point_label(row: dict[str, Any], annotate: str) -> str:
    if annotate == "lambda_p":
        return f"{row.get('lambda_p') or 0:g}"
    if annotate == "both":
        return f"{row['lambda_c']:g}, {row.get('lambda_p') or 0:g}"
    return f"{row['lambda_c']:g}"


def _annotation(rows: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """How points are labelled: by lambda_c, by lambda_p (when lambda_c is one value and lambda_p
    is not), or by both; returns the `_curve` annotate key and the legend title."""
    lambda_c = {row["lambda_c"] for row in rows}
    lambda_p = {row.get("lambda_p") or 0 for row in rows}
    if len(lambda_p) == 1:
        return "lambda_c", "points: λc"
    if len(lambda_c) == 1:
        return "lambda_p", "points: λp"
    return "both", "points: λc, λp"


def _families(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The rows' families, those of STYLES first and in its order."""
    return sorted(
        {row["family"] for row in rows},
        key=lambda f: list(STYLES).index(f) if f in STYLES else len(STYLES),
    )


def tradeoff_figure(rows: Sequence[dict[str, Any]], rate_bits: float, title: str = "") -> Figure:
    """Distortion vs CE and vs accuracy at one rate, one curve per family (E2E, universal...).

    Points are labelled with their lambda_c (lambda_p, or both, in a perception study).
    """
    figure = Figure(figsize=(10, 4))
    axes = figure.subplots(1, 2)
    families = _families(rows)
    annotate, _ = _annotation(rows)
    for axis, metric in zip(axes, ("ce_nats", "accuracy")):
        for family in families:
            label, marker, style = STYLES.get(family, (family, "x", "-."))
            subset = [row for row in rows if row["family"] == family]
            colour = COLOURS.get(family)
            _curve(axis, subset, "mse", metric, label, marker, style, colour, annotate=annotate)
        axis.set_xlabel(METRIC_LABELS["mse"])
        axis.set_ylabel(METRIC_LABELS[metric])
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle(title or f"RDC tradeoff at {rate_bits:.2f} bits per image")
    figure.tight_layout()
    return figure


def perception_figure(rows: Sequence[dict[str, Any]], rate_bits: float, title: str = "") -> Figure:
    """Distortion vs realism at one rate: MSE against W1 and against judge FD, per family.

    One line per family (E2E, universal paper base, universal multi-head base; the multi-head
    base's own heads are left out), its points in the order of the realism value on the x axis
    and labelled with their lambda_p (or lambda_c, or both: whichever varies); points without a
    value are left out.
    """
    figure = Figure(figsize=(10, 4))
    axes = figure.subplots(1, 2)
    families = [family for family in _families(rows) if family != "multihead-joint"]
    annotate, legend = _annotation([row for row in rows if row["family"] in families])
    for axis, metric in zip(axes, ("w1", "judge_fd")):
        for family in families:
            label, marker, style = STYLES.get(family, (family, "x", "-."))
            subset = [row for row in rows if row["family"] == family]
            colour = COLOURS.get(family)
            _curve(axis, subset, metric, "mse", label, marker, style, colour, metric, annotate)
        if not axis.lines:
            axis.text(0.5, 0.5, "not estimated", ha="center", va="center", transform=axis.transAxes)
        axis.set_xlabel(METRIC_LABELS[metric])
        axis.set_ylabel(METRIC_LABELS["mse"])
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(fontsize=8, title=legend, title_fontsize=7)
    figure.suptitle(title or f"Distortion vs realism at {rate_bits:.2f} bits per image")
    figure.tight_layout()
    return figure


def accuracy_figure(series: dict[str, Sequence[dict[str, Any]]], title: str = "") -> Figure:
    """Accuracy vs MSE, one line per labelled series of rows, its points in order of MSE.

    E.g. {"E2E": e2e_rows, "universal, paper base": paper_rows}, or the same family across
    studies ({"E2E, λp = 0": ..., "E2E, λp = 0.01": ...}). When every series holds one family of
    its own, it is drawn in that family's colour and marker (as in `tradeoff_figure`); otherwise
    the series take the colour cycle in order. Points are labelled with their lambda_c (or
    lambda_p, or both: whichever varies); rows without an accuracy are left out, and so are empty
    series.
    """
    many = len(series) > 4  # e.g. several studies: the legend goes below the axes
    figure = Figure(figsize=(7, 5.5) if many else (5.5, 4))
    axis = figure.subplots()
    kinds = [{row["family"] for row in rows} for rows in series.values()]
    own = [next(iter(kind)) if len(kind) == 1 else None for kind in kinds]
    by_family = None not in own and len(set(own)) == len(own) and set(own) <= set(STYLES)
    annotate, legend = _annotation([row for rows in series.values() for row in rows])
    for number, (label, rows) in enumerate(series.items()):
        if by_family:
            _, marker, style = STYLES[own[number]]
            colour = COLOURS[own[number]]
        else:
            marker, style = MARKERS[number % len(MARKERS)], "-"
            colour = f"C{number % 10}"
        _curve(axis, rows, "mse", "accuracy", label, marker, style, colour, "mse", annotate)
    axis.set_xlabel(METRIC_LABELS["mse"])
    axis.set_ylabel(METRIC_LABELS["accuracy"])
    axis.grid(alpha=0.3)
    if axis.lines and many:
        axis.legend(
            fontsize=8,
            title=legend,
            title_fontsize=7,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.14),
            ncol=2,
        )
    elif axis.lines:
        axis.legend(fontsize=8, title=legend, title_fontsize=7)
    axis.set_title(title or "Accuracy vs distortion")
    figure.tight_layout()
    return figure


def rates_figure(rows: Sequence[dict[str, Any]], title: str = "") -> Figure:
    """E2E distortion-vs-CE curves at several rates (the seed figure's colour-coded rates)."""
    figure = Figure(figsize=(5.5, 4))
    axis = figure.subplots()
    for rate in sorted({row["rate_bits"] for row in rows}):
        subset = [row for row in rows if row["rate_bits"] == rate]
        _curve(axis, subset, "mse", "ce_nats", f"{rate:.2f} bits", "o", "-")
    axis.set_xlabel(METRIC_LABELS["mse"])
    axis.set_ylabel(METRIC_LABELS["ce_nats"])
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, title="rate")
    axis.set_title(title or "E2E RDC curves at several rates")
    figure.tight_layout()
    return figure


def reconstruction_grid(
    originals: np.ndarray, reconstructions: Sequence[tuple[str, np.ndarray]], title: str = ""
) -> Figure:
    """Originals in the top row, then one row per head (its label on the left)."""
    count = len(originals)
    if count == 0:
        raise ValueError("reconstruction_grid: no original images")
    for label, images in reconstructions:
        if np.shape(images) != np.shape(originals):
            raise ValueError(
                f"reconstruction_grid: {label!r} has shape {np.shape(images)}, "
                f"originals {np.shape(originals)}"
            )
    rows = 1 + len(reconstructions)
    figure = Figure(figsize=(0.8 * count + 1.6, 0.8 * rows + 0.4))
    axes = np.atleast_2d(figure.subplots(rows, count, squeeze=False))
    panels = [("original", originals), *reconstructions]
    for r, (label, images) in enumerate(panels):
        for c in range(count):
            axis = axes[r, c]
            image = np.clip(images[c], 0.0, 1.0)
            if image.shape[-1] == 1:
                axis.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
            else:
                axis.imshow(image)
            axis.set_xticks([])
            axis.set_yticks([])
            if c == 0:
                axis.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.subplots_adjust(wspace=0.05, hspace=0.05)
    return figure
