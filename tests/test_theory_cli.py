"""Tests for the rdc-theory binary (rdc_keras.cli.theory), run as a subprocess."""

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

from rdc_keras.theory.binary import BinarySource
from rdc_keras.theory.gaussian import GaussianSource

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run the binary in a fresh interpreter (its absl flags never touch this process)."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-m", "rdc_keras.cli.theory", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
    )


def as_float(value) -> float:
    return float(value)  # also parses the "inf" / "nan" strings the CLI writes


@pytest.fixture(scope="module")
def gaussian_plot_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("plots")
    result = run_cli(
        "gaussian",
        "--var_x=2.0",
        "--var_s=0.5",
        "--cov_xs=0.6",
        "--mean_x=1.0",
        "--points=0.5:0.95,1.0:0.9,3.0:1.2",
        "--num_samples=300000",
        "--seed=7",
        f"--plot={out}",
    )
    return result, out


def test_gaussian_json_matches_library(gaussian_plot_run):
    result, _ = gaussian_plot_run
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    src = GaussianSource(2.0, 0.5, 0.6, mean_x=1.0)
    points = [(0.5, 0.95), (1.0, 0.9), (3.0, 1.2)]
    assert report["seed"] == 7
    assert report["units"] == "nats"
    assert report["h_s_given_x"] == pytest.approx(src.h_s_given_x)
    rates = [row["rate"] for row in report["points"]]
    assert rates == pytest.approx([src.rate(D, C) for D, C in points])
    universal = report["universal"]
    assert universal["rate"] == pytest.approx(max(rates))
    assert abs(universal["rate_penalty"]) < 1e-9
    assert len(universal["decoders"]) == 3
    assert report["omega_boundary"]["D_min"] == pytest.approx(2.0 * math.exp(-2 * max(rates)))
    mc = report["monte_carlo"]
    assert mc["seed"] == 7 and mc["n"] == 300_000
    assert mc["rate_mc"] == pytest.approx(universal["rate"], abs=0.01)
    for row in mc["decoders"]:
        assert row["distortion_mc"] == pytest.approx(row["distortion"], rel=0.02)
    for row in report["distortion"]["at_points"]:
        assert as_float(row["D_paper_formula"]) <= as_float(row["D"])


def test_gaussian_plots_written(gaussian_plot_run):
    result, out = gaussian_plot_run
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    names = {pathlib.Path(p).name for p in report["figures"]}
    assert names == {
        "gaussian_rate_contours.png",
        "gaussian_omega.png",
        "gaussian_distortion.png",
        "theory_gaussian.png",
    }
    for name in names:
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) < 150_000


def test_summary_figure_only_and_output_file(tmp_path):
    json_path = tmp_path / "report.json"
    result = run_cli(
        "binary",
        "--units=nats",
        f"--plot={tmp_path}",
        "--figures=summary",
        f"--output={json_path}",
        "--rate=0.2",
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["theory_binary.png"]
    report = json.loads(json_path.read_text())
    assert report == json.loads(result.stdout)
    src = BinarySource(0.3, 0.1, units="nats")
    assert report["units"] == "nats"
    for row in report["points"]:
        assert row["rate"] == pytest.approx(src.rate(row["D"], row["C"]))
    assert report["at_rate"]["min_conditional_entropy"] == pytest.approx(
        src.min_conditional_entropy(0.2)
    )


def test_infinite_values_are_strings():
    result = run_cli("gaussian", "--points=0.5:0.1", "--num_samples=0")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["points"][0]["rate"] == "inf"
    assert report["universal"]["rate_penalty"] == "nan"
    assert report["monte_carlo"] is None


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["gaussian", "--var_x=-1"], "var_x must be > 0"),
        (["gaussian", "--cov_xs=2"], "correlation"),
        (["gaussian", "--points=0.5-1"], "D:C"),
        (["gaussian", "--points=0:1"], "D must be > 0"),
        (["gaussian", "--num_samples=-5"], "num_samples"),
        (["binary", "--p=1.5"], "p must be in"),
        (["gaussian", "--no_such_flag=1"], "no_such_flag"),
        (["gaussian", "--var_x=abc"], "var_x"),
        (["poisson"], "subcommand"),
        ([], "subcommand"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, needle):
    result = run_cli(*args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_theory_modules_do_not_import_tensorflow():
    code = (
        "import sys\n"
        "import rdc_keras.cli.theory, rdc_keras.theory.figures\n"
        "import rdc_keras.theory.gaussian, rdc_keras.theory.binary\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_output_into_a_reader_that_stopped_ends_quietly_with_status_0():
    # The read end is closed before the binary writes (as after `| head -1` has exited).
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "rdc_keras.cli.theory", "gaussian", "--num_samples=1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO_ROOT,
        env=env,
    )
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
