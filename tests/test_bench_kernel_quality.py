"""Tests of the oneDNN-vs-Eigen training-quality benchmark (bench/bench_kernel_quality.py).

The runs it asks for (each in a process with its kernel setting), the reuse of finished runs and
the records from given test metrics; no model is trained.
"""

import json
import pathlib
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # bench/ is not part of the installed package
    sys.path.insert(0, str(REPO_ROOT))

from bench import bench_kernel_quality  # noqa: E402


def test_run_names_pair_the_kernels_per_seed_and_repeat_the_first_seed():
    assert bench_kernel_quality.run_names([3, 5]) == [
        ("onednn-seed3", 3, "onednn"),
        ("eigen-seed3", 3, "eigen"),
        ("onednn-seed5", 5, "onednn"),
        ("eigen-seed5", 5, "eigen"),
        ("onednn-seed3-repeat", 3, "onednn"),
    ]


@pytest.mark.parametrize("argv", [["--seeds=a,b"], ["--seeds=,"], ["--epochs=0"]])
def test_parse_args_rejects_bad_values(argv, capsys):
    with pytest.raises(SystemExit):
        bench_kernel_quality.parse_args(argv)
    assert "error" in capsys.readouterr().err


def test_train_runs_sets_the_kernel_variable_per_run_and_reuses_finished_runs(
    tmp_path, monkeypatch
):
    calls = []

    def fake_run(module, flags, kernels):
        workdir = pathlib.Path(next(f for f in flags if f.startswith("--workdir="))[10:])
        calls.append((module, workdir.name, kernels, bench_kernel_quality.KERNELS[kernels]))
        workdir.mkdir(parents=True)
        test = {"mse": 0.05 if kernels == "onednn" else 0.04, "w1": 1.0}
        (workdir / "results.json").write_text(json.dumps({"test": test}))

    monkeypatch.setattr(bench_kernel_quality, "_run", fake_run)
    args = bench_kernel_quality.parse_args([f"--workdir={tmp_path}", "--seeds=0"])
    tests = bench_kernel_quality.train_runs(args)
    assert [c[1:] for c in calls] == [
        ("classifier", "onednn", "1"),
        ("onednn-seed0", "onednn", "1"),
        ("eigen-seed0", "eigen", "0"),
        ("onednn-seed0-repeat", "onednn", "1"),
    ]
    assert tests["eigen-seed0"]["mse"] == 0.04
    calls.clear()
    assert bench_kernel_quality.train_runs(args) == tests and calls == []


def test_build_records_compare_kernels_per_seed_the_spread_and_the_means():
    tests = {
        "onednn-seed0": {"mse": 0.050, "w1": 2.0},
        "eigen-seed0": {"mse": 0.040, "w1": 4.0},
        "onednn-seed1": {"mse": 0.030, "w1": 1.0},
        "eigen-seed1": {"mse": 0.060, "w1": 1.0},
        "onednn-seed0-repeat": {"mse": 0.055, "w1": 3.0},
    }
    records = {
        r["name"]: r for r in bench_kernel_quality.build_records(tests, [0, 1], "cmd", epochs=3)
    }
    setting = "mnist10k,alternate,epochs=3"
    assert records[f"kernel_quality_mse[{setting},seed=0]"]["ratio"] == pytest.approx(1.25)
    assert records[f"kernel_quality_w1[{setting},seed=1]"]["ratio"] == pytest.approx(1.0)
    spread = records[f"kernel_quality_mse_same_seed_spread[{setting},seed=0]"]
    assert (spread["value"], spread["baseline"]) == (0.055, 0.050)
    mean = records[f"kernel_quality_mse_mean[{setting},seeds=0,1]"]
    assert mean["value"] == pytest.approx(0.04) and mean["baseline"] == pytest.approx(0.05)
    seeds = records[f"kernel_quality_mse_seed_spread[{setting},eigen]"]
    assert (seeds["value"], seeds["baseline"]) == (0.060, 0.040)
    assert len(records) == 12
