"""Tests of the benchmark helpers (bench/common.py) and the BENCHMARKS.md table (bench/run_all.py).

Only pure helpers are tested: statistics, interleaving, records, analytic FLOP counts (against
hand counts), the command-line and run/export helpers, run_all's commands and the "not yet
recorded" rows. No benchmark is timed here.
"""

import json
import math
import pathlib
import sys

import numpy as np
import pytest

from rdc_keras import networks
from rdc_keras.tfkeras import keras

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # bench/ is not part of the installed package
    sys.path.insert(0, str(REPO_ROOT))

from bench import common, run_all  # noqa: E402


def test_median_odd_even_and_errors():
    assert common.median([3.0, 1.0, 2.0]) == 2.0
    assert common.median([4, 1, 3, 2]) == 2.5
    assert common.median([7]) == 7.0
    with pytest.raises(ValueError, match="empty"):
        common.median([])
    with pytest.raises(ValueError, match="NaN"):
        common.median([1.0, math.nan])


@pytest.mark.parametrize("q", [0, 1, 37.5, 50, 99, 100])
def test_percentile_matches_numpy_linear(q):
    values = np.random.RandomState(0).exponential(size=101).tolist()[:57]
    assert common.percentile(values, q) == pytest.approx(np.percentile(values, q), rel=1e-12)


def test_percentile_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        common.percentile([], 50)
    with pytest.raises(ValueError, match="q must be"):
        common.percentile([1.0], 101)


def test_interleave_rotates_the_order_and_never_overlaps():
    calls = []
    contenders = {name: (lambda name=name: calls.append(name) or len(calls)) for name in "abc"}
    results = common.interleave(contenders, repeats=4)
    assert calls == list("abcbcacababc")
    assert results == {"a": [1, 6, 8, 10], "b": [2, 4, 9, 11], "c": [3, 5, 7, 12]}
    with pytest.raises(ValueError, match="repeats"):
        common.interleave(contenders, 0)


def test_make_record_keys_and_default_ratio():
    record = common.make_record("x[a]", 3.0, "images/s", "python -m bench.x", baseline=2.0)
    assert tuple(record) == common.RECORD_KEYS
    assert record["ratio"] == 1.5
    assert "cores" in record["machine"] and "TF " in record["machine"]
    assert common.make_record("y", 1.0, "ms", "c", baseline=4.0, ratio=4.0)["ratio"] == 4.0
    assert common.make_record("z", 1.0, "ms", "c")["ratio"] is None
    with pytest.raises(ValueError, match="name"):
        common.make_record("", 1.0, "ms", "c")


def test_write_and_read_results_round_trip(tmp_path):
    record = common.make_record("a", 1.0, "u", "c", machine_text="m", date="d")
    common.write_results(tmp_path / "one.json", [record])
    (tmp_path / "single.json").write_text(json.dumps({**record, "name": "b"}))  # older format
    results = common.read_results(tmp_path)
    assert results == {"one": [record], "single": [{**record, "name": "b"}]}
    with pytest.raises(ValueError, match="record keys"):
        common.write_results(tmp_path / "bad.json", [{"name": "a"}])
    assert common.read_results(tmp_path / "missing") == {}


def _small_model():
    images = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(3, 3, name="conv")(images)  # -> 4x4x3
    x = keras.layers.BatchNormalization(name="bn")(x)  # not counted
    x = keras.layers.Conv2DTranspose(2, 2, strides=2, name="deconv")(x)  # -> 8x8x2
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5, name="dense")(x)
    return keras.Model(images, x, name="small")


def test_layer_flops_against_hand_count():
    counts = common.model_flops(_small_model())
    conv = 2 * (4 * 4 * 3) * (3 * 3 * 2)  # outputs x (kernel taps x input channels)
    deconv = 2 * (4 * 4 * 3) * (2 * 2 * 2)  # inputs x (kernel taps x output channels)
    dense = 2 * 128 * 5
    assert [(layer.name, layer.forward) for layer in counts.layers] == [
        ("conv", conv),
        ("deconv", deconv),
        ("dense", dense),
    ]
    assert (counts.forward, counts.first, counts.last) == (conv + deconv + dense, conv, dense)


def test_dense_on_a_sequence_counts_every_position():
    inputs = keras.Input((4, 7))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    assert common.model_flops(model).forward == 2 * 4 * 7 * 3


def test_unknown_kernel_layer_is_refused():
    inputs = keras.Input((10, 2))
    model = keras.Model(inputs, keras.layers.Conv1D(2, 3, name="c1")(inputs))
    with pytest.raises(TypeError, match="c1"):
        common.layer_flops(model)


def test_mnist_critic_forward_flops_by_hand():
    # conv k5 s2 p2: 28 -> 14 -> 7 -> 4 with 1 -> 64 -> 128 -> 256 channels, then Dense 4096 -> 1.
    expected = 2 * (14 * 14 * 64 * 25 * 1 + 7 * 7 * 128 * 25 * 64 + 4 * 4 * 256 * 25 * 128 + 4096)
    assert common.model_flops(networks.critic("mnist")).forward == expected


def _toy(name, flops):
    return common.ModelFlops(
        name, tuple(common.LayerFlops(f"l{i}", "dense", f) for i, f in enumerate(flops))
    )


def _count(layers, forward=True, weights=False, inputs=False, first_input=True, last_grad=True):
    """Sums per-layer pass costs one layer at a time (independent of the closed form)."""
    total = 0
    for i, f in enumerate(layers):
        total += f * forward + f * weights
        if inputs and (first_input or i > 0):
            total += f
        if not last_grad and i == len(layers) - 1:
            total -= f  # no gradient w.r.t. the constant incoming gradient of the top layer
    return total


def test_train_step_flops_matches_a_per_layer_enumeration():
    E, D, C, K = [4, 6], [20, 30], [100, 200, 7], [3, 5]
    models = [_toy(n, f) for n, f in zip("EDCK", (E, D, C, K))]
    real_or_fake = _count(C, weights=True, inputs=True, first_input=False)
    penalty = (
        _count(C)  # forward at the interpolate
        + _count(C, forward=False, inputs=True)  # its input gradient, down to the image
        + _count(C, forward=False, weights=True)  # double backward: weight gradients
        + _count(C, forward=False, inputs=True, last_grad=False)  # and incoming gradients
    )
    critic_update = 2 * real_or_fake + penalty
    generator = (
        _count(E, weights=True, inputs=True, first_input=False)
        + _count(D, weights=True, inputs=True)
        + _count(C, inputs=True)
    )
    classifier_update = _count(K, weights=True, inputs=True, first_input=False)
    joint = critic_update + classifier_update + generator + _count(K, inputs=True)
    assert common.train_step_flops(*models, "joint") == joint
    critic_turn = _count(E) + _count(D) + critic_update
    assert common.train_step_flops(*models, "alternate") == (critic_turn + generator) / 2
    with pytest.raises(ValueError, match="schedule"):
        common.train_step_flops(*models, "other")
    with pytest.raises(ValueError, match="classifier"):
        common.train_step_flops(*models[:3], None, "joint")


def test_rdc_step_flops_matches_a_per_layer_enumeration():
    E, D, K = [4, 6], [20, 30], [3, 5]
    models = [_toy(n, f) for n, f in zip("EDK", (E, D, K))]
    phase1 = (
        _count(E, weights=True, inputs=True, first_input=False)
        + _count(D, weights=True, inputs=True)
        + _count(K, inputs=True)  # classifier forward on x_hat and back to x_hat
    )
    phase2 = (
        _count(E) + _count(D, weights=True, inputs=True, first_input=False) + _count(K, inputs=True)
    )
    assert (
        common.rdc_step_flops(*models, frozen_encoder=False) == phase1 == 4 * 2 + 6 * 3 + 150 + 16
    )
    assert common.rdc_step_flops(*models, frozen_encoder=True) == phase2 == 10 + 130 + 16


def test_inference_flops_is_encoder_plus_decoder_forward():
    assert common.inference_flops(_toy("e", [1, 2]), _toy("d", [30])) == 33


def test_benchmarks_md_marks_missing_rows_and_derives_the_saving():
    rate = common.make_record(
        "payload_bits_per_image[mnist_idx-d3-L3,n=2000,range]",
        3.8,
        "bits/image",
        "c",
        baseline=4.0,
        machine_text="m",
        date="d",
    )
    worse = dict(rate, name=rate["name"].replace(",range]", ",fixed]"), value=3.9, ratio=0.975)
    text = run_all.render_markdown({"rate": [worse, rate]})
    assert text.count(f"| {run_all.NOT_RECORDED} |") == len(run_all.EXPECTED_ROWS) - 1
    savings = [line for line in text.splitlines() if "entropy_coding_saving[" in line]
    # One saving per configuration, from the smallest payload over the coding methods.
    assert len(savings) == 1 and ",range]" in savings[0]
    assert "| 0.05 |" in savings[0] and "(missed)" in savings[0]  # 1 - 3.8/4 = 0.05 < 0.10
    assert "| M1 |" in savings[0] and "- M1: m" in text  # each row names its machine


def test_write_results_is_atomic_and_keeps_the_record_key_order(tmp_path):
    record = common.make_record("a", 1.0, "u", "c", baseline=2.0, machine_text="m", date="d")
    path = common.write_results(tmp_path / "sub" / "out.json", [record])
    assert list(json.loads(path.read_text())[0]) == list(common.RECORD_KEYS)
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.json"]  # no temporary left


def test_records_share_command_machine_and_date():
    records = common.Records("python -m bench.x", machine_text="m", date="d")
    first = records.add("a", 3.0, "images/s", 2.0)
    records.add("b", 1.0, "ms", 4.0, ratio=4.0)
    assert records.records[0] is first and first["ratio"] == 1.5
    assert {(r["command"], r["machine"], r["date"]) for r in records.records} == {
        ("python -m bench.x", "m", "d")
    }
    assert records.records[1]["ratio"] == 4.0


def test_fill_defaults_and_check_minimum():
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--calls", type=int, default=None)
    args = parser.parse_args(["--calls", "5"])
    common.fill_defaults(args, True, {"repeats": (7, 2), "calls": (200, 20)})
    assert (args.repeats, args.calls) == (2, 5)
    args = parser.parse_args([])
    common.fill_defaults(args, False, {"repeats": (7, 2)})
    assert (args.repeats, args.calls) == (7, None)
    common.check_minimum(parser, args, 1, "repeats", "calls")  # None is not checked
    args.repeats = 0
    with pytest.raises(SystemExit):
        common.check_minimum(parser, args, 1, "repeats")


def test_export_head_paths_come_from_the_manifest(tmp_path):
    from rdc_keras.files import write_json
    from rdc_keras.serving import MANIFEST_FILE

    manifest = {"heads": {"z": {"path": "heads/z/3"}, "a": {"path": "heads/a/3"}}}
    write_json(tmp_path / MANIFEST_FILE, manifest)
    expected = {"a": tmp_path / "heads/a/3", "z": tmp_path / "heads/z/3"}
    assert common.export_head_paths(tmp_path) == expected
    assert list(common.export_head_paths(tmp_path, manifest)) == ["a", "z"]


def test_untrained_classifier_is_saved_once(tmp_path):
    from rdc_keras import runs

    directory = common.untrained_classifier(tmp_path / "judge")
    model, description = runs.load_classifier(directory)
    assert model.trainable is False
    assert description["untrained"] is True and description["preset"] == "mnist"
    weights = directory / runs.WEIGHTS_FILE
    stamp = weights.stat().st_mtime_ns
    assert common.untrained_classifier(directory) == directory
    assert weights.stat().st_mtime_ns == stamp  # reused, not rewritten


def test_run_all_runs_the_bf16_study_from_its_own_module(tmp_path):
    benchmarks = {b.key: b for b in run_all.BENCHMARKS}
    context = run_all.Context(
        quick=True, scale=1.0, results_dir=tmp_path, work_root=tmp_path, data_dir="data"
    )
    command = benchmarks["bf16_quality"].command(context)
    assert command[1:3] == ["-m", "bench.bench_bf16_quality"]
    assert "--bf16_quality" not in command and "--quick" in command
    assert command[-1].endswith("train_bf16_quality.json")
    assert benchmarks["train_step"].module == "bench.bench_train_step"


def test_run_all_reuses_the_study_run_only_when_finished(tmp_path):
    from rdc_keras.runs import RunDir

    context = run_all.Context(
        quick=False, scale=1.0, results_dir=tmp_path, work_root=tmp_path, data_dir="data"
    )
    assert context.study_run() is None
    run = RunDir(tmp_path / "study" / run_all.STUDY_F32_RUN)
    run.heads_dir.mkdir(parents=True)
    run.write_results({"test": {}})
    assert context.study_run() is None  # no config.json: not finished
    run.config_path.write_text(json.dumps({"config": {"workdir": str(run.path)}}))
    assert context.study_run() == tmp_path / "study" / run_all.STUDY_F32_RUN
