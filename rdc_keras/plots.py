"""Figures of a study: RDC tradeoff curves (E2E vs universal), several rates, reconstructions.

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

__all__ = ["rates_figure", "reconstruction_grid", "save_figure", "tradeoff_figure"]

# Family -> (label, marker, line style); families not listed fall back to their own name.
STYLES = {
    "e2e": ("end-to-end (E2E)", "o", "-"),
    "universal-paper": ("universal, paper base (E2E encoder)", "s", "--"),
    "universal-multihead": ("universal, multi-head base", "^", ":"),
}
METRIC_LABELS = {
    "mse": "distortion: MSE per pixel",
    "ce_nats": "classification: CE of the reference classifier [nats]",
    "accuracy": "accuracy of the reference classifier",
    "w1": "perception: W1 estimate",
}


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int = 110) -> pathlib.Path:
    """Writes a PNG through a temporary file and a rename."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    FigureCanvasAgg(figure)
    figure.savefig(tmp, dpi=dpi, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def _curve(axis, rows: Sequence[dict[str, Any]], x: str, y: str, label: str, marker: str, style):
    rows = sorted(rows, key=lambda row: row["lambda_c"])
    xs = [row[x] for row in rows]
    ys = [row[y] for row in rows]
    axis.plot(xs, ys, linestyle=style, marker=marker, label=label)
    for row, xv, yv in zip(rows, xs, ys):
        axis.annotate(
            f"{row['lambda_c']:g}",
            (xv, yv),
            fontsize=6,
            alpha=0.7,
            textcoords="offset points",
            xytext=(3, 3),
        )


def tradeoff_figure(rows: Sequence[dict[str, Any]], rate_bits: float, title: str = "") -> Figure:
    """Distortion vs CE and vs accuracy at one rate, one curve per family (E2E, universal...).

    Points are labelled with their lambda_c.
    """
    figure = Figure(figsize=(10, 4))
    axes = figure.subplots(1, 2)
    families = sorted(
        {row["family"] for row in rows},
        key=lambda f: list(STYLES).index(f) if f in STYLES else len(STYLES),
    )
    for axis, metric in zip(axes, ("ce_nats", "accuracy")):
        for family in families:
            label, marker, style = STYLES.get(family, (family, "x", "-."))
            subset = [row for row in rows if row["family"] == family]
            _curve(axis, subset, "mse", metric, label, marker, style)
        axis.set_xlabel(METRIC_LABELS["mse"])
        axis.set_ylabel(METRIC_LABELS[metric])
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle(title or f"RDC tradeoff at {rate_bits:.2f} bits per image")
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
