"""Tests for rdc_keras.plots: PNG files of the right size, drawn without touching pyplot."""

import os
import pathlib
import subprocess
import sys

import matplotlib
import numpy as np
import pytest
from PIL import Image

from rdc_keras import plots

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _rows():
    """Synthetic study rows: three families at one rate, E2E also at a second rate."""
    rows = []
    for family, offset in (
        ("e2e", 0.0),
        ("universal-paper", 0.002),
        ("universal-multihead", 0.001),
    ):
        for i, lambda_c in enumerate((0.0, 0.01, 0.04)):
            rows.append(
                {
                    "family": family,
                    "lambda_c": lambda_c,
                    "rate_bits": 4.75,
                    "mse": 0.03 + 0.01 * i + offset,
                    "ce_nats": 1.0 - 0.3 * i,
                    "accuracy": 0.6 + 0.1 * i,
                }
            )
    for i, lambda_c in enumerate((0.0, 0.04)):
        rows.append(
            {
                "family": "e2e",
                "lambda_c": lambda_c,
                "rate_bits": 3.17,
                "mse": 0.05 + 0.02 * i,
                "ce_nats": 1.4 - 0.4 * i,
                "accuracy": 0.5 + 0.1 * i,
            }
        )
    return rows


def _png_size(path: pathlib.Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        return image.size


def _assert_close_to(size, inches, dpi, tolerance=0.25):
    """Tight bounding boxes trim or pad margins a little; the shape must stay the figure's."""
    width, height = size
    assert abs(width - inches[0] * dpi) <= tolerance * inches[0] * dpi, size
    assert abs(height - inches[1] * dpi) <= tolerance * inches[1] * dpi, size
    assert width / height == pytest.approx(inches[0] / inches[1], rel=tolerance)


def test_tradeoff_figure_is_written_as_png(tmp_path):
    rows = [row for row in _rows() if row["rate_bits"] == 4.75]
    path = plots.save_figure(plots.tradeoff_figure(rows, 4.75), tmp_path / "sub" / "t.png", dpi=80)
    assert path == tmp_path / "sub" / "t.png" and path.is_file()
    _assert_close_to(_png_size(path), (10, 4), 80)
    assert sorted(p.name for p in path.parent.iterdir()) == ["t.png"]  # no temporary left


def test_dpi_scales_the_pixel_size(tmp_path):
    figure = plots.rates_figure([row for row in _rows() if row["family"] == "e2e"])
    small = _png_size(plots.save_figure(figure, tmp_path / "small.png", dpi=50))
    large = _png_size(plots.save_figure(figure, tmp_path / "large.png", dpi=100))
    _assert_close_to(large, (5.5, 4), 100)
    assert large[0] / small[0] == pytest.approx(2.0, rel=0.05)
    assert large[1] / small[1] == pytest.approx(2.0, rel=0.05)


def test_reconstruction_grid_has_one_row_per_head(tmp_path):
    rng = np.random.default_rng(0)
    originals = rng.random((6, 8, 8, 1)).astype(np.float32)
    panels = [("head a", originals * 0.5), ("head b", np.ones_like(originals))]
    path = plots.save_figure(plots.reconstruction_grid(originals, panels), tmp_path / "g.png")
    # 6 columns by 3 rows of 0.8-inch panels: wider than tall, unlike a 3x6 transposed grid.
    _assert_close_to(_png_size(path), (0.8 * 6 + 1.6, 0.8 * 3 + 0.4), 110, tolerance=0.3)
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"), np.float32)
    assert pixels.std() > 10  # images were drawn, not a blank canvas


def test_colour_images_are_drawn(tmp_path):
    originals = np.random.default_rng(1).random((3, 8, 8, 3)).astype(np.float32)
    figure = plots.reconstruction_grid(originals, [("h", originals)], title="rgb")
    assert _png_size(plots.save_figure(figure, tmp_path / "rgb.png"))[0] > 0


def test_reconstruction_grid_rejects_mismatched_panels():
    originals = np.zeros((4, 8, 8, 1), np.float32)
    with pytest.raises(ValueError, match="head"):
        plots.reconstruction_grid(originals, [("head", np.zeros((3, 8, 8, 1)))])
    with pytest.raises(ValueError, match="no original"):
        plots.reconstruction_grid(originals[:0], [])


def test_plots_leave_pyplot_and_the_backend_alone(tmp_path):
    backend = matplotlib.get_backend()
    figure = plots.tradeoff_figure(_rows(), 4.75, title="t")
    plots.save_figure(figure, tmp_path / "t.png")
    assert matplotlib.get_backend() == backend
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


def test_plots_never_import_pyplot(tmp_path):
    script = (
        "import sys, numpy as np\n"
        "from rdc_keras import plots\n"
        "rows = [dict(family='e2e', lambda_c=c, rate_bits=1.0, mse=c, ce_nats=1 - c, accuracy=c)"
        " for c in (0.1, 0.2)]\n"
        f"plots.save_figure(plots.tradeoff_figure(rows, 1.0), {str(tmp_path / 'a.png')!r})\n"
        "x = np.zeros((2, 8, 8, 1))\n"
        "grid = plots.reconstruction_grid(x, [('h', x)])\n"
        f"plots.save_figure(grid, {str(tmp_path / 'b.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "MPLBACKEND"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "a.png").is_file() and (tmp_path / "b.png").is_file()
