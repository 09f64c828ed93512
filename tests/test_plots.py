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
        "rows = [dict(r, lambda_p=0.0, w1=r['mse'], judge_fd=r['mse']) for r in rows]\n"
        "plots.perception_figure(rows, 1.0)\n"
        "plots.accuracy_figure({'E2E': rows})\n"
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


def _perception_rows():
    """E2E and two universal families over lambda_p, with W1 and judge FD (some missing)."""
    rows = []
    for family, w1s, fds in (
        ("e2e", (0.9, 0.5, 0.2), (12.0, 6.0, 3.0)),
        ("universal-paper", (0.7, 0.4, 0.25), (8.0, None, 2.0)),
        ("universal-multihead", (None, 0.45, 0.3), (9.0, 5.0, 2.5)),
        ("multihead-joint", (0.8, 0.4, 0.2), (9.0, 5.0, 2.5)),
    ):
        for i, (lambda_p, w1, fd) in enumerate(zip((0.0, 0.005, 0.01), w1s, fds)):
            rows.append(
                {
                    "family": family,
                    "lambda_c": 0.0,
                    "lambda_p": lambda_p,
                    "rate_bits": 4.75,
                    # MSE rises with lambda_p; listed out of order below to test the sorting.
                    "mse": 0.03 + 0.005 * i,
                    "ce_nats": 0.5,
                    "accuracy": 0.8 - 0.05 * i,
                    "w1": w1,
                    "judge_fd": fd,
                }
            )
    return rows[::-1]


def _lines_by_label(axis):
    return {line.get_label(): line for line in axis.lines}


def test_perception_figure_draws_mse_against_w1_and_judge_fd(tmp_path):
    figure = plots.perception_figure(_perception_rows(), 4.75, title="rdp")
    assert len(figure.axes) == 2
    w1_axis, fd_axis = figure.axes
    assert "W1" in w1_axis.get_xlabel() and "judge FD" in fd_axis.get_xlabel()
    assert "MSE" in w1_axis.get_ylabel() and "MSE" in fd_axis.get_ylabel()
    labels = [plots.STYLES[f][0] for f in ("e2e", "universal-paper", "universal-multihead")]
    for axis in (w1_axis, fd_axis):
        # One line per family, the multi-head base's own heads left out; a legend.
        assert [line.get_label() for line in axis.lines] == labels
        assert axis.get_legend() is not None
    w1 = _lines_by_label(w1_axis)
    e2e = w1[labels[0]]
    # Points in order of W1 (the x axis): lambda_p 0.01, 0.005, 0.
    assert list(e2e.get_xdata()) == [0.2, 0.5, 0.9]
    assert list(e2e.get_ydata()) == pytest.approx([0.04, 0.035, 0.03])
    assert list(w1[labels[2]].get_xdata()) == [0.3, 0.45]  # its W1 None point is left out
    assert list(_lines_by_label(fd_axis)[labels[1]].get_xdata()) == [2.0, 8.0]
    # lambda_c is one value: points are labelled with their lambda_p.
    assert w1_axis.get_legend().get_title().get_text() == "points: λp"
    # E2E and the paper base at lambda_p 0, 0.005, 0.01; the multi-head base without its W1 None.
    expected = ["0", "0", "0.005", "0.005", "0.005", "0.01", "0.01", "0.01"]
    assert sorted(text.get_text() for text in w1_axis.texts) == expected
    # Colours as in tradeoff_figure: one colour per family in both figures.
    tradeoff = plots.tradeoff_figure([r for r in _rows() if r["rate_bits"] == 4.75], 4.75)
    for line in tradeoff.axes[0].lines:
        assert line.get_color() == w1[line.get_label()].get_color()
    assert len({line.get_color() for line in w1_axis.lines}) == 3
    path = plots.save_figure(figure, tmp_path / "perception.png", dpi=60)
    _assert_close_to(_png_size(path), (10, 4), 60)


def test_perception_figure_without_w1_still_draws_judge_fd(tmp_path):
    rows = [{**row, "w1": None} for row in _perception_rows()]
    figure = plots.perception_figure(rows, 4.75)
    assert len(figure.axes[0].lines) == 0 and len(figure.axes[0].texts) == 1  # "not estimated"
    assert len(figure.axes[1].lines) == 3
    assert plots.save_figure(figure, tmp_path / "p.png").is_file()


def test_accuracy_figure_has_one_line_per_series_sorted_by_mse(tmp_path):
    rows = _perception_rows()
    series = {
        "E2E": [row for row in rows if row["family"] == "e2e"],
        "universal, paper base": [row for row in rows if row["family"] == "universal-paper"],
        "empty": [],
    }
    figure = plots.accuracy_figure(series, "accuracy")
    (axis,) = figure.axes
    assert [line.get_label() for line in axis.lines] == ["E2E", "universal, paper base"]
    for line in axis.lines:
        assert list(line.get_xdata()) == pytest.approx([0.03, 0.035, 0.04])
        assert list(line.get_ydata()) == pytest.approx([0.8, 0.75, 0.7])
    # One family per series: the family's colours, as in tradeoff_figure.
    assert [line.get_color() for line in axis.lines] == ["C0", "C1"]
    assert "accuracy" in axis.get_ylabel() and "MSE" in axis.get_xlabel()
    assert axis.get_legend() is not None
    path = plots.save_figure(figure, tmp_path / "accuracy.png", dpi=80)
    _assert_close_to(_png_size(path), (5.5, 4), 80)


def test_accuracy_figure_across_studies_of_one_family_uses_distinct_colours():
    e2e = [row for row in _rows() if row["family"] == "e2e" and row["rate_bits"] == 4.75]
    shifted = [
        {**row, "mse": row["mse"] + 0.001, "accuracy": row["accuracy"] + 0.05} for row in e2e
    ]
    figure = plots.accuracy_figure({"E2E, λp = 0": e2e, "E2E, λp = 0.01": shifted})
    lines = figure.axes[0].lines
    assert len(lines) == 2 and lines[0].get_color() != lines[1].get_color()
    assert list(lines[1].get_xdata()) == pytest.approx([0.031, 0.041, 0.051])
    assert list(lines[1].get_ydata()) == pytest.approx([0.65, 0.75, 0.85])


# ------------------------------------------------------------------------------------------------
# A study over several seeds: rows are means with `<metric>_std` (rdc_keras.spread.aggregate).


def _std_rows(families=("e2e", "universal-paper", "universal-multihead")):
    """`_rows` at the main rate, the given families with a std per point (growing with λc)."""
    rows = []
    for row in _rows():
        if row["rate_bits"] != 4.75:
            continue
        if row["family"] in families:
            i = (0.0, 0.01, 0.04).index(row["lambda_c"])
            row = {
                **row,
                "mse_std": 0.001 * (i + 1),
                "ce_nats_std": 0.05 * (i + 1),
                "accuracy_std": 0.02,
            }
        rows.append(row)
    return rows


def _bars(container):
    """An error bar container's (horizontal, vertical) segments as ((x0, y0), (x1, y1)) tuples."""
    horizontal, vertical = [], []
    for collection in container.lines[2]:
        for (x0, y0), (x1, y1) in collection.get_segments():
            segment = ((x0, y0), (x1, y1))
            (horizontal if y0 == y1 else vertical).append(segment)
    return horizontal, vertical


def test_tradeoff_figure_draws_one_std_error_bars():
    figure = plots.tradeoff_figure(_std_rows(), 4.75)
    ce_axis, accuracy_axis = figure.axes
    labels = [plots.STYLES[f][0] for f in ("e2e", "universal-paper", "universal-multihead")]
    for axis in (ce_axis, accuracy_axis):
        assert len(axis.containers) == 3  # one errorbar per family
        # The error bars add no legend entry: the legend is the families'.
        labelled = [line.get_label() for line in axis.lines if not line.get_label().startswith("_")]
        assert labelled == labels
    assert [text.get_text() for text in ce_axis.get_legend().get_texts()] == labels
    # E2E on the CE axis: MSE 0.03, 0.04, 0.05 ± 0.001, 0.002, 0.003 and CE 1.0, 0.7, 0.4
    # ± 0.05, 0.10, 0.15, in order of λc.
    horizontal, vertical = _bars(ce_axis.containers[0])
    assert np.allclose(
        horizontal,
        [[(0.029, 1.0), (0.031, 1.0)], [(0.038, 0.7), (0.042, 0.7)], [(0.047, 0.4), (0.053, 0.4)]],
        rtol=0,
        atol=1e-12,
    )
    assert np.allclose(
        vertical,
        [[(0.03, 0.95), (0.03, 1.05)], [(0.04, 0.6), (0.04, 0.8)], [(0.05, 0.25), (0.05, 0.55)]],
        rtol=0,
        atol=1e-12,
    )
    # Accuracy 0.6, 0.7, 0.8 ± 0.02 on the other axis.
    _, vertical = _bars(accuracy_axis.containers[0])
    spans = [[y0, y1] for (_, y0), (_, y1) in vertical]
    assert np.allclose(spans, [[0.58, 0.62], [0.68, 0.72], [0.78, 0.82]], rtol=0, atol=1e-12)
    # Each family's bars in its line's colour.
    for container, family in zip(
        ce_axis.containers, ("e2e", "universal-paper", "universal-multihead")
    ):
        for collection in container.lines[2]:
            colour = matplotlib.colors.to_rgb(collection.get_colors()[0])
            assert colour == matplotlib.colors.to_rgb(plots.COLOURS[family])


def test_tradeoff_figure_without_std_draws_no_error_bars():
    rows = [row for row in _rows() if row["rate_bits"] == 4.75]
    # A summary of one seed has a std of None: no bar either.
    one_seed = [{**row, "mse_std": None, "ce_nats_std": None, "accuracy_std": None} for row in rows]
    for figure in (plots.tradeoff_figure(rows, 4.75), plots.tradeoff_figure(one_seed, 4.75)):
        for axis in figure.axes:
            assert len(axis.containers) == 0 and len(axis.collections) == 0
            assert len(axis.lines) == 3


def test_tradeoff_figure_draws_error_bars_only_for_rows_with_a_std():
    figure = plots.tradeoff_figure(_std_rows(families=("universal-paper",)), 4.75)
    for axis in figure.axes:
        (container,) = axis.containers
        colours = {matplotlib.colors.to_rgb(c.get_colors()[0]) for c in container.lines[2]}
        assert colours == {matplotlib.colors.to_rgb(plots.COLOURS["universal-paper"])}
    # The paper base's MSE 0.032, 0.042, 0.052: horizontal bars ± 0.001, 0.002, 0.003.
    horizontal, _ = _bars(figure.axes[0].containers[0])
    widths = [x1 - x0 for (x0, _), (x1, _) in horizontal]
    assert widths == pytest.approx([0.002, 0.004, 0.006], abs=1e-12)
    assert [x0 for (x0, _), _ in horizontal] == pytest.approx([0.031, 0.040, 0.049], abs=1e-12)


def test_perception_figure_draws_error_bars_on_the_realism_axes():
    rows = [
        {**row, "w1_std": 0.05, "mse_std": 0.002} if row["family"] == "e2e" else row
        for row in _perception_rows()
    ]
    figure = plots.perception_figure(rows, 4.75)
    w1_axis, fd_axis = figure.axes
    (container,) = w1_axis.containers
    horizontal, vertical = _bars(container)
    # E2E in order of W1: 0.2, 0.5, 0.9 ± 0.05 at MSE 0.04, 0.035, 0.03 ± 0.002.
    assert [x0 for (x0, _), _ in horizontal] == pytest.approx([0.15, 0.45, 0.85], abs=1e-12)
    assert [y1 - y0 for (_, y0), (_, y1) in vertical] == pytest.approx([0.004] * 3, abs=1e-12)
    # No judge FD std: only the MSE std, as vertical bars (and zero-width horizontal ones).
    (container,) = fd_axis.containers
    horizontal, vertical = _bars(container)
    assert all(x1 - x0 == 0 for (x0, _), (x1, _) in horizontal)
    assert [y0 for (_, y0), _ in vertical] == pytest.approx([0.038, 0.033, 0.028], abs=1e-12)
