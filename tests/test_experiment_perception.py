"""A reduced perception study (`digits-rdp`, tiny epochs) end to end, and the RDC presets' plans.

The study runs once per module: E2E at lambda_p in {0, 0.02}, universal heads on the frozen
lambda_p = 0.02 encoder at lambda_p in {0, 0.02}, a held-out W1 judge with a small budget.
"""

import json
import math
import pathlib

import numpy as np
import pytest

from rdc_keras import experiment, runs, study_plan
from rdc_keras.config import TrainConfig
from rdc_keras.files import read_json

LAMBDA_P = (0.0, 0.02)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    config = experiment.study_config(
        "digits-rdp",
        e2e_lambda_p=LAMBDA_P,
        universal_lambda_p=LAMBDA_P,
        base_lambda_p=0.02,
        epochs=1,
        steps_per_epoch=2,
        batch_size=32,
        classifier_epochs=1,
        grid_images=4,
        w1_steps=8,
    )
    root = tmp_path_factory.mktemp("rdp")
    lines = []
    results = experiment.run_study(
        config, root, seed=1, export=True, log=lines.append, bases=("paper",)
    )
    return {"config": config, "root": root, "results": results, "log": lines}


def test_every_output_file_is_written(study):
    root = study["root"]
    for name in ("results.json", "results.csv", "report.md", "study.json", "w1_judge_spread.json"):
        assert (root / name).is_file(), name
    for figure in (
        "tradeoff",
        "perception",
        "accuracy",
        "reconstructions-e2e",
        "reconstructions-universal-paper",
    ):
        assert (root / "figures" / f"{figure}.png").stat().st_size > 1000, figure
    manifest = read_json(root / "saved_models" / "universal-paper" / "manifest.json")
    assert sorted(manifest["heads"]) == ["universal-paper-c0", "universal-paper-c0-p0.02"]
    report = (root / "report.md").read_text()
    assert "figures/perception.png" in report and "initialised from the base" in report


def test_w1_and_the_judge_distance_are_present_and_finite(study):
    rows = study["results"]["models"]
    assert {row["model"] for row in rows} == {
        "e2e-d3-L3-c0",
        "e2e-d3-L3-c0-p0.02",
        "universal-paper-c0",
        "universal-paper-c0-p0.02",
    }
    for row in rows:
        assert math.isfinite(row["w1"]) and math.isfinite(row["judge_fd"]), row["model"]
        assert row["judge_fd"] >= 0
    spread = study["results"]["w1_judge_spread"]
    assert spread["model"] == "e2e-d3-L3-c0-p0.02" and spread["seeds"] == [1, 2, 3]
    assert len(spread["values"]) == 3 and all(math.isfinite(v) for v in spread["values"])
    assert spread["std"] == pytest.approx(np.std(spread["values"], ddof=1))
    csv_header = (study["root"] / "results.csv").read_text().splitlines()[0].split(",")
    assert {"w1", "judge_fd", "lambda_p"} <= set(csv_header)


def test_universal_heads_start_from_the_base_critic(study):
    root = study["root"]
    base_critic = root / "e2e" / "d3-L3" / "c0-p0.02" / "heads" / "e2e-d3-L3-c0-p0.02" / "critic"
    assert (base_critic / runs.NETWORK_FILE).is_file()
    with_p = runs.RunDir(root / "universal-paper" / "d3-L3" / "c0-p0.02").config()
    without_p = runs.RunDir(root / "universal-paper" / "d3-L3" / "c0").config()
    assert pathlib.Path(with_p.base_critic_dir) == base_critic and with_p.lambda_p == 0.02
    assert without_p.base_critic_dir is None  # no critic at lambda_p = 0
    assert with_p.schedule == "alternate"  # the paper's schedule, from the preset


def _front_mse(points, x):
    """MSE of the Pareto front of (axis, mse) points at x by linear interpolation (or None)."""
    front = [
        (a, m)
        for a, m in points
        if not any(b <= a and n <= m and (b, n) != (a, m) for b, n in points)
    ]
    front.sort()
    xs, ys = [a for a, _ in front], [m for _, m in front]
    if not xs or x < xs[0] or x > xs[-1]:
        return None
    return float(np.interp(x, xs, ys))


def test_matched_tradeoff_penalty_recomputes_from_results_json(study):
    results = json.loads((study["root"] / "results.json").read_text())
    rows = results["models"]
    e2e = [row for row in rows if row["family"] == "e2e"]
    entries = results["matched_tradeoff"]
    assert {entry["axis"] for entry in entries} <= {"w1", "judge_fd"}
    assert entries, "a perception study reports penalties at matched realism"
    for entry in entries:
        row = next(r for r in rows if r["model"] == entry["model"])
        axis = entry["axis"]
        assert entry["value"] == row[axis]
        front = _front_mse([(r[axis], r["mse"]) for r in e2e], row[axis])
        if front is None:
            assert entry["mse_front"] is None and entry["penalty_percent"] is None
        else:
            assert entry["mse_front"] == pytest.approx(front)
            assert entry["penalty_percent"] == pytest.approx(100 * (row["mse"] - front) / front)


# ------------------------------------------------------------------------------------------------
# The RDC presets train exactly what they trained before the perception axis existed.


@pytest.mark.parametrize("preset", ["digits", "mnist10k", "mnist", "svhn"])
def test_rdc_presets_plan_the_same_trainings_as_before(preset, tmp_path):
    config = experiment.PRESETS[preset]
    assert not config.is_perception
    assert config.e2e_lambda_p == config.universal_lambda_p == (0.0,) and config.base_lambda_p == 0
    jobs = study_plan.jobs(config, tmp_path)
    d, levels = config.rates[0]
    expected_e2e = {
        f"e2e-d{r[0]}-L{r[1]}-c{c:g}": tmp_path / "e2e" / f"d{r[0]}-L{r[1]}" / f"c{c:g}"
        for r in config.rates
        for c in config.e2e_lambda_c
    }
    got = {job.head: job.workdir for job in jobs if job.family == "e2e"}
    assert got == expected_e2e
    for job in jobs:
        assert job.train.get("lambda_p", 0.0) == 0.0 and "base_critic_dir" not in job.train
        if job.family.startswith("universal"):
            tag = f"d{d}-L{levels}"
            assert job.workdir == tmp_path / job.family / tag / f"c{job.lambda_c:g}"
    # The resolved training config is the one the old plan (lambda_c only) gave.
    job = next(job for job in jobs if job.family == "universal-paper")
    old = TrainConfig(workdir=str(job.workdir), dataset=config.dataset, lambda_c=job.lambda_c)
    new = TrainConfig(
        workdir=str(job.workdir),
        dataset=config.dataset,
        schedule=config.schedule,
        mixed_precision=config.mixed_precision,
        **{k: v for k, v in job.train.items() if k != "encoder_dir"},
    )
    assert new.resolved().to_dict() == old.resolved().to_dict()
