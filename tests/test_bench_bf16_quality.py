"""Tests of the bf16 training-quality benchmark's plumbing (bench/bench_bf16_quality.py).

Argument parsing, the float32 twin read back from a run directory, and the records built from
given MSEs; nothing is trained here.
"""

import pathlib
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # bench/ is not part of the installed package
    sys.path.insert(0, str(REPO_ROOT))

from bench import bench_bf16_quality as quality  # noqa: E402
from bench.bench_bf16_quality import Pair  # noqa: E402


def test_parse_args_quick_and_full():
    args = quality.parse_args(["--quick"])
    assert (args.seeds, args.epochs, args.steps_per_epoch) == ([0], 1, 2)
    assert args.untrained_classifier is True
    assert pathlib.Path(args.workdir) == REPO_ROOT / "bench/runs/quick/bf16_quality"
    args = quality.parse_args(["--seeds=3,4", "--classifier_dir=judge"])
    assert (args.seeds, args.epochs, args.untrained_classifier) == ([3, 4], None, False)
    assert pathlib.Path(args.workdir) == REPO_ROOT / "bench/runs/bf16_quality"
    assert quality.parse_args(["--float32_run=run"]).seeds == [None]


@pytest.mark.parametrize(
    "argv", [["--seeds=0,x"], ["--float32_run=run", "--seeds=1"], ["--epochs=0"], ["--repeats=3"]]
)
def test_parse_args_rejects(argv):
    with pytest.raises(SystemExit):
        quality.parse_args(argv)


def test_float32_config_and_its_bf16_twin():
    args = quality.parse_args(["--data_dir=data", "--epochs=2"])
    config = quality.float32_config(args, 1, pathlib.Path("w/seed1/float32"), "judge")
    assert (config.dataset, config.latent_dim, config.num_levels) == ("mnist_idx", 3, 3)
    assert (config.lambda_c, config.mixed_precision, config.seed, config.epochs) == (
        0.0,
        "float32",
        1,
        2,
    )
    twin = config.replace(mixed_precision="mixed_bfloat16")
    assert twin.differences(config) == ["mixed_precision='float32' (not 'mixed_bfloat16')"]


def _finished_run(path, config):
    from rdc_keras.runs import RunDir

    run = RunDir(path)
    run.heads_dir.mkdir(parents=True)
    run.write_config(config.resolved())
    run.write_results({"test": {"mse": 0.05}, "reference_classifier": "judge"})
    return run


def test_float32_run_config_reads_the_run_back(tmp_path):
    args = quality.parse_args(["--data_dir=data", "--steps_per_epoch=5"])
    config = quality.float32_config(args, 2, tmp_path / "f32", None)
    _finished_run(tmp_path / "f32", config)
    assert quality.float32_run_config(tmp_path / "f32") == config.resolved()
    with pytest.raises(SystemExit, match="not a finished run"):
        quality.float32_run_config(tmp_path / "missing")
    _finished_run(tmp_path / "bf16", config.replace(mixed_precision="mixed_bfloat16"))
    with pytest.raises(SystemExit, match="not a float32 lambda_c=0 run"):
        quality.float32_run_config(tmp_path / "bf16")


def test_one_pair_gives_one_record():
    (record,) = quality.build_records([Pair(7, 0.04, 0.041, 30)], "cmd")
    assert record["name"] == "train_bf16_test_mse[mnist10k,lambda_c=0,epochs=30,seed=7]"
    assert (record["value"], record["baseline"], record["command"]) == (0.041, 0.04, "cmd")
    assert record["ratio"] == pytest.approx(1.025)


def test_several_seeds_give_per_seed_records_and_the_mean(capsys):
    pairs = [Pair(0, 0.04, 0.042, 1, 2), Pair(1, 0.06, 0.060, 1, 2)]
    records = quality.build_records(pairs, "cmd")
    tag = "mnist10k,lambda_c=0,epochs=1,steps=2"
    assert [r["name"] for r in records] == [
        f"train_bf16_test_mse_per_seed[{tag},seed=0]",
        f"train_bf16_test_mse_per_seed[{tag},seed=1]",
        f"train_bf16_test_mse[{tag},mean of seeds 0,1]",
    ]
    mean = records[-1]
    assert mean["value"] == pytest.approx(0.051) and mean["baseline"] == pytest.approx(0.05)
    assert mean["unit"] == quality.MEAN_UNIT
    assert "mean over 2 seeds" in capsys.readouterr().out
