"""Tests of the training-step benchmark (bench/bench_train_step.py, bench/train_step_workers.py).

Argument parsing, record building from given rates, the `--bf16_quality` forwarding, the worker's
setup/run bookkeeping and the TF worker's contender builders; nothing is timed and no training
step is traced except a tiny matmul.
"""

import pathlib
import sys

import pytest
from conftest import digits_gan_trainer

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # bench/ is not part of the installed package
    sys.path.insert(0, str(REPO_ROOT))

from bench import bench_bf16_quality, bench_train_step, train_step_workers  # noqa: E402
from bench.train_step_workers import CASES, WORKERS, Contender, Worker, base_case  # noqa: E402


def test_parse_args_fills_quick_and_full_defaults():
    quick = bench_train_step.parse_args(["--quick", "--cases", "tf_joint, matmul_f32"])
    assert (quick.repeats, quick.block_seconds, quick.warmup, quick.matmul_size) == (2, 0, 0, 1024)
    assert quick.cases == ["tf_joint", "matmul_f32"]
    full = bench_train_step.parse_args(["--repeats", "3"])
    assert (full.repeats, full.block_seconds, full.warmup, full.matmul_size) == (3, 8, 3, 4096)
    assert full.cases == list(CASES)


@pytest.mark.parametrize(
    "argv", [["--cases", "tf_joint,nope"], ["--repeats", "0"], ["--steps", "0"], ["--warmup=-1"]]
)
def test_parse_args_rejects_bad_values(argv, capsys):
    with pytest.raises(SystemExit):
        bench_train_step.parse_args(argv)
    assert "error" in capsys.readouterr().err


def test_block_steps_uses_whole_critic_generator_pairs():
    args = bench_train_step.parse_args(["--block_seconds", "1"])
    setup = {"warm_seconds_per_call": 0.2, "trace_seconds": 9.0}
    assert bench_train_step._block_steps("tf_joint", setup, args) == 5
    assert bench_train_step._block_steps("tf_alternate", setup, args) == 6
    args = bench_train_step.parse_args(["--steps", "3"])
    assert bench_train_step._block_steps("torch_alternate", setup, args) == 4


def test_build_records_names_baselines_and_ratios():
    rates = {
        "tf_joint": 300.0,
        "torch_joint": 100.0,
        "torch_joint_cl": 150.0,
        "tf_alternate": 400.0,
        "torch_alternate": 200.0,
        "tf_joint_bf16": 150.0,
        "tf_rdc_phase2": 500.0,
        "tf_encoder_forward": 5000.0,
        "matmul_f32": 100e9,
        "matmul_bf16": 50e9,
    }
    infos = {"tf": {"step_flops_per_image": {"joint": 1e8, "alternate": 5e7, "rdc_phase2": 2e7}}}
    records = {r["name"]: r for r in bench_train_step.build_records(rates, infos, "cmd")}
    joint = records["train_step_vs_pytorch[joint]"]
    assert (joint["value"], joint["baseline"], joint["ratio"]) == (300.0, 150.0, 2.0)
    assert "torch_joint_cl" in joint["unit"]
    assert records["train_step_vs_pytorch[alternate]"]["ratio"] == 2.0
    utilization = records["train_step_flop_utilization"]
    assert utilization["value"] == pytest.approx(30.0) and utilization["ratio"] == 0.3
    assert records["train_step_flop_utilization[alternate]"]["value"] == pytest.approx(20.0)
    assert records["train_step_flop_utilization[rdc_phase2]"]["value"] == pytest.approx(10.0)
    assert "train_step_flop_utilization[rdc]" not in records  # tf_rdc was not timed
    assert records["train_step_bf16_speedup"]["ratio"] == 0.5
    assert records["phase2_latent_cache_max_saving"]["value"] == 0.1
    assert records["matmul_peak_bf16_vs_f32"]["ratio"] == 0.5
    assert {r["command"] for r in records.values()} == {"cmd"}


def test_the_old_bf16_quality_command_forwards_to_its_module(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(bench_bf16_quality, "main", lambda argv: seen.append(argv) or ["r"])
    argv = ["--bf16_quality", "--data_dir=../shared/data/mnist", "--workdir=w", "--output=o.json"]
    assert bench_train_step.main(argv) == ["r"]
    assert seen == [["--data_dir=../shared/data/mnist", "--workdir=w", "--output=o.json"]]
    assert "bench.bench_bf16_quality" in capsys.readouterr().out
    # The recorded command of train_bf16_quality.json still parses in the new module.
    args = bench_bf16_quality.parse_args(seen[0])
    assert (args.workdir, args.output, args.seeds) == ("w", "o.json", [0, 1, 2])


class _FakeWorker(Worker):
    kind = "tf"

    def build(self, case, **options):
        calls = []
        return Contender(lambda: calls.append(1) or len(calls), float, 4.0, extra=options)


def test_worker_setup_and_run_bookkeeping():
    worker = _FakeWorker()
    reply = worker.setup("tf_joint", warmup=2, note="x")
    assert reply["units_per_call"] == 4.0 and reply["note"] == "x"
    assert reply["warm_seconds_per_call"] >= 0 and reply["trace_seconds"] >= 0
    result = worker.run("tf_joint", steps=3)
    assert set(result) == {"wall", "cpu", "traces"} and result["traces"] is None
    assert worker.setup("matmul_f32", warmup=0)["warm_seconds_per_call"] is None
    with pytest.raises(ValueError, match="not a tf case"):
        worker.setup("torch_joint", warmup=0)


def test_every_case_has_a_worker_that_builds_it():
    special = {"tf_rdc", "tf_rdc_phase2", "tf_encoder_forward", "matmul_f32", "matmul_bf16"}
    special.add("tf_alternate_concat")
    assert {worker for worker, _ in CASES.values()} == set(WORKERS)
    tf_bases = {base_case(c) for c, (w, _) in CASES.items() if WORKERS[w][0] == "tf"}
    assert tf_bases == special | set(train_step_workers.TF_STEP_CASES)
    for case, (worker, _) in CASES.items():  # a suffixed case is its base case in another worker
        if base_case(case) != case:
            assert base_case(case) in CASES and worker != CASES[base_case(case)][0]
    assert WORKERS["tf_eigen"][1] == {"TF_ENABLE_ONEDNN_OPTS": "0"}
    assert WORKERS["tf_inter1"][2] == 1


def test_build_records_of_issue_18_levers_peak_and_profile():
    rates = {
        "tf_alternate": 200.0,
        "tf_alternate_eigen": 160.0,
        "tf_alternate_concat": 150.0,
        "tf_alternate_inter1": 210.0,
        "tf_alternate_bf16": 20.0,
        "tf_rdc": 400.0,
        "tf_rdc_eigen": 380.0,
        "matmul_f32": 100e9,
        "matmul_f32_eigen": 125e9,
    }
    infos = {"tf": {"onednn": True, "step_flops_per_image": {"alternate": 2.5e8, "rdc": 1e8}}}
    rows = [{"turn": "critic turn", "piece": "p", "ms_per_pair": 30.0, "share": 0.25}]
    profile = {"rows": rows, "op_ms_per_pair": 120.0, "wall_ms_per_pair": 125.0}
    records = {r["name"]: r for r in bench_train_step.build_records(rates, infos, "cmd", profile)}
    # The peak is the faster matmul kernel: here Eigen's.
    alternate = records["train_step_flop_utilization[alternate]"]
    assert alternate["baseline"] == 125.0 and alternate["ratio"] == pytest.approx(0.4)
    assert records["gan_step_lever[onednn_vs_eigen]"]["ratio"] == pytest.approx(1.25)
    assert records["gan_step_lever[concatenated_critic_call]"]["ratio"] == pytest.approx(0.75)
    assert records["gan_step_lever[inter_op_threads=1]"]["ratio"] == pytest.approx(1.05)
    assert records["rdc_step_lever[onednn_vs_eigen]"]["baseline"] == 380.0
    assert records["train_step_bf16_speedup[alternate]"]["ratio"] == pytest.approx(0.1)
    peak = records["matmul_peak_f32_default_vs_eigen"]
    assert peak["ratio"] == pytest.approx(0.8) and "oneDNN on" in peak["unit"]
    piece = records["gan_step_profile[critic turn: p]"]
    assert (piece["value"], piece["baseline"], piece["ratio"]) == (30.0, 120.0, 0.25)
    assert records["gan_step_profile_op_time_vs_wall"]["ratio"] == pytest.approx(0.96)


def test_the_concatenated_critic_lever_computes_the_same_critic_update():
    import types

    import numpy as np
    import tensorflow as tf

    batch = (tf.random.stateless_uniform([16, 8, 8, 1], (4, 5)), tf.zeros([16], tf.int64))
    results = []
    for concatenated in (False, True):
        trainer = digits_gan_trainer(seed=3)
        if concatenated:
            trainer._critic_update = types.MethodType(
                train_step_workers._concatenated_critic_update, trainer
            )
        logs = tf.function(trainer._critic_turn)(batch)
        weights = [v.numpy() for v in trainer.critic.trainable_variables]
        results.append(({k: float(v) for k, v in logs.items()}, weights))
    (logs, weights), (lever_logs, lever_weights) = results
    for name in ("critic_loss", "gradient_penalty", "w1"):
        assert lever_logs[name] == pytest.approx(logs[name], rel=1e-5, abs=1e-6), name
    for a, b in zip(weights, lever_weights):
        # Adam's first step is about lr * sign(g): compare to 1 % of the 1e-3 learning rate.
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_tf_worker_times_a_tiny_matmul_and_builds_the_steps():
    worker = train_step_workers.TFWorker(threads=None)
    reply = worker.setup("matmul_f32", warmup=1, matmul_size=8)
    assert reply["units_per_call"] == 2.0 * 8**3
    assert worker.run("matmul_f32", steps=2)["traces"] == 1
    for case in ("tf_joint", "tf_rdc_phase2"):  # built (trainer compiled), not traced
        contender = worker.build(case)
        assert contender.units == train_step_workers.BATCH and callable(contender.call)


def test_tf_worker_info_has_the_preset_and_flop_counts():
    info = train_step_workers.TFWorker(threads=None).info()
    assert info["preset"]["batch_size"] == 64 and info["preset"]["gp_weight"] == 10.0
    assert set(info["step_flops_per_image"]) == {"joint", "alternate", "rdc", "rdc_phase2"}


def test_worker_client_reports_a_worker_that_cannot_start_or_answers():
    client = train_step_workers.WorkerClient("torch", threads=1)
    try:
        reply = client.call("info")
    except RuntimeError as error:  # torch not installed: the worker dies on import
        assert "torch worker died" in str(error)
    else:
        assert "torch" in reply and reply["threads"] == 1
    finally:
        client.close()


def test_speed_drives_a_tf_worker_process_end_to_end(capsys):
    # The whole parent/worker path on the smallest case: one 8x8 matmul call per round.
    args = bench_train_step.parse_args(
        ["--cases=matmul_f32,matmul_bf16", "--matmul_size=8", "--repeats=1", "--steps=1"]
    )
    args.warmup = 0
    records = bench_train_step._speed(args, ["--cases=matmul_f32,matmul_bf16"])
    assert [r["name"] for r in records] == ["matmul_peak_bf16_vs_f32"]
    assert (
        records[0]["command"] == "python -m bench.bench_train_step --cases=matmul_f32,matmul_bf16"
    )
    out = capsys.readouterr().out
    assert "timing 2 contenders x 1 interleaved rounds" in out and "traces 1" in out
