"""Tests for rdc_keras.trainers.runner: train_run's work directory, reruns, phase 2.

One small digits run (2 epochs of 3 steps, with a critic) is shared by the module; the
interrupted/diverged runs of the `rdc-train` binary are in test_cli_train.py.
"""

import json
import math
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO_ROOT

from rdc_keras import data, files, networks, runs
from rdc_keras.config import TrainConfig
from rdc_keras.tfkeras import keras
from rdc_keras.trainers import runner
from rdc_keras.trainers.rdc import RDCTrainer

SMALL = dict(epochs=2, steps_per_epoch=3, batch_size=16, verbose=0)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, classifier_dir):
    """A finished phase-1 run with a critic and a non-default quantizer temperature."""
    config = TrainConfig(
        workdir=str(tmp_path_factory.mktemp("runs") / "base"),
        classifier_dir=classifier_dir,
        lambda_c=0.01,
        lambda_p=0.01,
        temperature=0.5,
        **SMALL,
    )
    results = runner.train_run(config)
    return config, results


# ------------------------------------------------------------------------------------------------
# Bad configurations


@pytest.mark.parametrize(
    "overrides, flag",
    [
        (dict(latent_dim=0), "--latent_dim"),
        (dict(num_levels=1), "--num_levels"),
        (dict(lambda_d=-1.0), "--lambda_d"),
        (dict(lambda_c=-0.1), "--lambda_c"),
        (dict(lambda_p=-0.5), "--lambda_p"),
        (dict(batch_size=0), "--batch_size"),
        (dict(epochs=0), "--epochs"),
        (dict(steps_per_epoch=0), "--steps_per_epoch"),
        (dict(temperature=0.0), "--temperature"),
        (dict(n_critic=0), "--n_critic"),
        (dict(gp_weight=-1.0), "--gp_weight"),
        (dict(classifier_mode="frozen"), "--classifier_mode"),
        (dict(schedule="random"), "--schedule"),
        (dict(mixed_precision="float8"), "--mixed_precision"),
        (dict(strategy="tpu"), "--strategy"),
        (dict(dataset="cifar10"), "unknown dataset 'cifar10'"),
        (dict(dataset="mnist_idx"), "--data_dir is required for --dataset=mnist_idx"),
        (dict(data_dir="/nonexistent/rdc"), "--data_dir"),
        (dict(classifier_dir="/nonexistent/rdc"), "--classifier_dir"),
        (dict(lr_boundaries=(2,)), "--lr_boundaries and --lr_factors"),
        (dict(lr_boundaries=(2,), lr_factors=(1.0,)), "--lr_factors"),
        (dict(generator_learning_rate=-1.0), "--generator_learning_rate"),
        (dict(critic_learning_rate=0.0), "--critic_learning_rate"),
        (dict(classifier_learning_rate=math.nan), "--classifier_learning_rate"),
        (dict(lambda_d=math.inf), "--lambda_d"),
        (dict(lambda_c=math.nan), "--lambda_c"),
        (dict(lambda_p=math.inf), "--lambda_p"),
        (dict(lr_boundaries=(2,), lr_factors=(1.0, -0.5)), "--lr_factors"),
        (dict(lr_boundaries=(3, 2), lr_factors=(1.0, 0.5, 0.1)), "--lr_boundaries"),
        (dict(multihead_lambda_c=(0.0, math.inf)), "--multihead_lambda_c"),
    ],
)
def test_bad_config_names_the_flag_and_writes_nothing(tmp_path, overrides, flag):
    config = TrainConfig(workdir=str(tmp_path / "run"), **overrides)
    with pytest.raises(ValueError, match=flag) as error:
        runner.train_run(config)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------
# A finished run


def test_run_writes_the_work_directory(base_run):
    config, results = base_run
    workdir = pathlib.Path(config.workdir)
    names = {p.name for p in workdir.iterdir()}
    assert names == {"config.json", "metrics.jsonl", "logs", "encoder", "heads", "results.json"}
    stored = files.read_json(workdir / "config.json")
    assert stored["config"] == json.loads(json.dumps(config.resolved().to_dict()))
    assert stored["environment"]["tensorflow"] == tf.__version__

    lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    for line in lines:
        assert {"loss", "mse", "ce", "w1", "critic_loss", "val_mse", "val_ce", "val_w1"} <= set(
            line
        )
        assert all(np.isfinite(v) for v in line.values())

    assert results == files.read_json(workdir / "results.json")
    assert results["epochs"] == 2 and results["head"] == "d1-c0.01-p0.01"
    assert (
        results["units"]["mse"] == "per-pixel mean on [0, 1]" and results["units"]["ce"] == "nats"
    )
    assert results["rate_bits"] == pytest.approx(3 * np.log2(3))
    assert set(results["test"]) == {"loss", "mse", "psnr", "ce", "accuracy", "w1"}
    assert list((workdir / "logs" / "train").glob("events.out.tfevents.*"))


def test_saved_networks_reproduce_the_test_metrics(base_run):
    """Encoder, head and critic reload and give the recorded test metrics again."""
    config, results = base_run
    workdir = pathlib.Path(config.workdir)
    encoder, encoder_description = runs.load_encoder(workdir)
    assert encoder_description["fingerprint"] == results["encoder_fingerprint"]
    assert encoder_description["temperature"] == 0.5
    assert encoder_description["image_shape"] == [8, 8, 1]
    head_dir = workdir / "heads" / results["head"]
    decoder, head = runs.load_head(head_dir, encoder_description)
    assert head["encoder_fingerprint"] == results["encoder_fingerprint"]
    assert (head["lambda_c"], head["lambda_p"]) == (0.01, 0.01)
    critic, _ = runs.load_network(
        head_dir / "critic", lambda d: networks.critic(d["preset"]), kind="critic"
    )
    judge, _ = runs.load_classifier(config.classifier_dir)
    trainer = RDCTrainer(
        encoder,
        decoder,
        3,
        classifier=judge,
        critic=critic,
        lambda_c=0.01,
        lambda_p=0.01,
        temperature=0.5,
        seed=config.seed,
    )
    trainer.compile(keras.optimizers.Adam(), keras.optimizers.Adam())
    test = data.prepare(data.load_dataset("digits", "test"), 16, shuffle=False)
    metrics = trainer.evaluate(test, verbose=0, return_dict=True)
    for key, value in results["test"].items():
        assert metrics[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_load_checks_fingerprints(base_run, tmp_path):
    config, results = base_run
    workdir = pathlib.Path(config.workdir)
    head_dir = workdir / "heads" / results["head"]
    with pytest.raises(ValueError, match="head belongs to encoder"):
        runs.load_head(head_dir, {"fingerprint": "0" * 32})
    # An encoder whose weights no longer match their recorded fingerprint is refused.
    copy = tmp_path / "encoder"
    shutil.copytree(workdir / "encoder", copy)
    description = files.read_json(copy / runs.NETWORK_FILE)
    files.write_json(copy / runs.NETWORK_FILE, dict(description, fingerprint="f" * 32))
    with pytest.raises(ValueError, match="do not match their recorded fingerprint"):
        runs.load_encoder(copy)


def test_rerun_reports_finished_run_without_training(base_run, capsys):
    config, results = base_run
    workdir = pathlib.Path(config.workdir)
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    again = runner.train_run(TrainConfig(**dict(vars(config), verbose=1)))
    assert again == results
    assert "run already finished" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before


def test_different_config_in_same_workdir_is_refused(base_run):
    config, _ = base_run
    workdir = pathlib.Path(config.workdir)
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=r"holds a run with .*lambda_c=0\.01 \(not 0\.5\)"):
        runner.train_run(TrainConfig(**dict(vars(config), lambda_c=0.5)))
    assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before


def test_phase_two_head_on_frozen_encoder(base_run, tmp_path):
    """encoder_dir: a new head on the frozen encoder; the encoder's temperature is reused."""
    config, results = base_run
    phase2 = TrainConfig(
        workdir=str(tmp_path / "head"),
        classifier_dir=config.classifier_dir,
        encoder_dir=str(pathlib.Path(config.workdir) / "encoder"),
        lambda_c=0.02,
        epochs=1,
        steps_per_epoch=2,
        batch_size=16,
        verbose=0,
    )
    head_results = runner.train_run(phase2)
    assert head_results["encoder_fingerprint"] == results["encoder_fingerprint"]
    assert not (tmp_path / "head" / "encoder").exists()  # the encoder is not copied
    head = files.read_json(tmp_path / "head" / "heads" / "d1-c0.02-p0" / "head.json")
    assert head["encoder_fingerprint"] == results["encoder_fingerprint"]
    assert files.read_json(tmp_path / "head" / "config.json")["config"]["temperature"] == 0.5
    # The same command again is recognised as finished (not refused over the temperature).
    assert runner.train_run(phase2) == head_results


BFLOAT16_RUN = """
import json, sys
import numpy as np
from rdc_keras import files
from rdc_keras.config import TrainConfig
from rdc_keras.tfkeras import keras
from rdc_keras.trainers import runner
workdir, classifier_dir = sys.argv[1:]
previous = keras.mixed_precision.global_policy().name
config = TrainConfig(workdir=workdir, classifier_dir=classifier_dir, epochs=1, steps_per_epoch=2,
                     batch_size=16, verbose=0, mixed_precision="mixed_bfloat16")
results = runner.train_run(config)
assert keras.mixed_precision.global_policy().name == previous
assert all(np.isfinite(v) for v in results["test"].values())
print(json.dumps(files.read_json(workdir + "/config.json")["config"]["mixed_precision"]))
"""


def test_mixed_bfloat16_run_restores_the_global_policy(tmp_path, classifier_dir):
    # In a process of its own: where oneDNN has no bfloat16 kernels (CPUs without AVX-512) the
    # run needs Eigen's, and TensorFlow reads TF_ENABLE_ONEDNN_OPTS only when it loads.
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    if not runner.bfloat16_kernels_run():
        env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    out = subprocess.run(
        [sys.executable, "-c", BFLOAT16_RUN, str(tmp_path / "bf16"), classifier_dir],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == '"mixed_bfloat16"'


BFLOAT16_CRITIC = """
import sys
import tensorflow as tf
from rdc_keras import networks
from rdc_keras.tfkeras import keras
keras.mixed_precision.set_global_policy("mixed_bfloat16")
preset, size = sys.argv[1], int(sys.argv[2])
critic = networks.critic(preset)
print(float(tf.function(critic)(tf.zeros([2, size, size, 1]))[0, 0]))
"""


@pytest.mark.parametrize("preset, size", [("mnist", 28), ("digits", 8)])
def test_the_bfloat16_probe_agrees_with_a_bfloat16_critic_forward(preset, size):
    # In a child process: where the kernels are missing, the step may abort the process.
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, "-c", BFLOAT16_CRITIC, preset, str(size)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert (out.returncode == 0) is runner.bfloat16_kernels_run(), out.stderr[-1000:]


def test_mixed_bfloat16_is_refused_where_its_kernels_cannot_run(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "bfloat16_kernels_run", lambda: False)
    config = TrainConfig(workdir=str(tmp_path / "run"), mixed_precision="mixed_bfloat16")
    with pytest.raises(ValueError, match=r"--mixed_precision=mixed_bfloat16: .*TF_ENABLE_ONEDNN"):
        runner.train_run(config)
    assert not (tmp_path / "run").exists()
    runner._check_precision(config.replace(mixed_precision="float32"))


def test_crash_while_saving_resumes_without_training_again(
    tmp_path, classifier_dir, monkeypatch, capsys
):
    """A kill after the last epoch (during the final evaluate/save) must not cost the training."""
    config = TrainConfig(workdir=str(tmp_path / "run"), classifier_dir=classifier_dir, **SMALL)
    save_outputs = runner._save_outputs

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(runner, "_save_outputs", crash)
    with pytest.raises(KeyboardInterrupt):
        runner.train_run(config)
    workdir = tmp_path / "run"
    assert list((workdir / "backup").rglob("*.index"))  # the last epoch's state survived
    logged = (workdir / "metrics.jsonl").read_text().splitlines()
    assert len(logged) == SMALL["epochs"]

    monkeypatch.setattr(runner, "_save_outputs", save_outputs)
    capsys.readouterr()
    results = runner.train_run(TrainConfig(**dict(vars(config), verbose=1)))
    printed = capsys.readouterr().out
    assert "epoch " not in printed, printed  # no epoch was trained again
    assert (workdir / "metrics.jsonl").read_text().splitlines() == logged
    assert results == files.read_json(workdir / "results.json")
    assert results["epochs"] == SMALL["epochs"]
    assert not (workdir / "backup").exists()  # removed once the results are written


def test_phase_two_critic_starts_from_the_base_critic(base_run, tmp_path, monkeypatch):
    """base_critic_dir: the new head's critic starts with the base head's critic weights."""
    config, results = base_run
    base_critic_dir = pathlib.Path(config.workdir) / "heads" / results["head"] / "critic"
    expected = [w.numpy() for w in runs.load_critic(base_critic_dir)[0].weights]
    built = []
    build = runner.build_trainer

    def spy(*args, **kwargs):
        trainer = build(*args, **kwargs)
        built.append([w.numpy() for w in trainer.critic.weights])
        return trainer

    monkeypatch.setattr(runner, "build_trainer", spy)
    phase2 = TrainConfig(
        workdir=str(tmp_path / "head"),
        classifier_dir=config.classifier_dir,
        encoder_dir=str(pathlib.Path(config.workdir) / "encoder"),
        base_critic_dir=str(base_critic_dir),
        lambda_p=0.02,
        epochs=1,
        steps_per_epoch=1,
        batch_size=16,
        verbose=0,
    )
    runner.train_run(phase2)
    (initial,) = built
    assert len(initial) == len(expected)
    for got, want in zip(initial, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    trained = runs.load_critic(tmp_path / "head" / "heads" / "d1-c0-p0.02" / "critic")[0]
    assert any((w.numpy() != e).any() for w, e in zip(trained.weights, expected, strict=True))
    with pytest.raises(ValueError, match="--base_critic_dir needs --lambda_p > 0"):
        TrainConfig(workdir="w", base_critic_dir=str(base_critic_dir)).validate()


def test_a_refused_run_leaves_its_workdir_as_it_found_it(base_run, tmp_path):
    """--classifier_dir at a run's encoder is refused before config.json is written, so the
    corrected command then runs (issue 16)."""
    config, _ = base_run
    encoder_dir = pathlib.Path(config.workdir) / "encoder"
    wrong = TrainConfig(workdir=str(tmp_path / "run"), classifier_dir=str(encoder_dir), **SMALL)
    with pytest.raises(ValueError, match="holds a saved encoder, expected a saved classifier"):
        runner.train_run(wrong)
    assert not (tmp_path / "run").exists()
    (tmp_path / "run").mkdir()  # an existing empty workdir stays empty too
    with pytest.raises(ValueError, match="expected a saved classifier"):
        runner.train_run(wrong)
    assert list((tmp_path / "run").iterdir()) == []


@pytest.mark.parametrize("classifier_mode", ["pretrained", "joint"])
def test_mixed_float16_trains_the_generator_critic_and_classifier(
    tmp_path, classifier_dir, classifier_mode
):
    """The usual GPU setting, on CPU: loss scaling inside the tape for every update (issue 16)."""
    previous = keras.mixed_precision.global_policy().name
    config = TrainConfig(
        workdir=str(tmp_path / "fp16"),
        classifier_dir=classifier_dir,
        mixed_precision="mixed_float16",
        classifier_mode=classifier_mode,
        lambda_c=0.01,
        lambda_p=0.01,
        epochs=1,
        steps_per_epoch=3,
        batch_size=16,
        verbose=0,
    )
    results = runner.train_run(config)
    assert keras.mixed_precision.global_policy().name == previous
    assert all(np.isfinite(v) for v in results["test"].values())
    lines = (tmp_path / "fp16" / "metrics.jsonl").read_text().splitlines()
    logged = json.loads(lines[-1])
    assert np.isfinite(logged["critic_loss"]) and np.isfinite(logged["loss"])


# ------------------------------------------------------------------------------------------------
# --strategy=multi_worker: MultiWorkerMirroredStrategy from TF_CONFIG (worker processes on
# 127.0.0.1), against MirroredStrategy over 2 logical CPUs in one process (the same 2 replicas,
# the same global batch: per-replica BatchNorm makes a 1-replica run a different computation).

_MULTI_WORKER = dict(
    dataset="digits",
    batch_size=32,
    steps_per_epoch=5,
    lambda_c=0.01,
    lambda_p=0.01,
    seed=1,
    verbose=1,
)

_MIRRORED_REFERENCE = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from rdc_keras.config import TrainConfig
from rdc_keras.trainers import runner
runner.make_strategy = lambda name: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
runner.train_run(TrainConfig(**json.loads(sys.argv[1])))
"""


def _free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _env(**extra: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3", **extra)


def _start_workers(workdir, classifier_dir, epochs, log_dir, tag):
    """Two `rdc-train --strategy=multi_worker` processes of one cluster; returns them."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    flags = [f"--{key}={value}" for key, value in _MULTI_WORKER.items()]
    script = str(pathlib.Path(sys.executable).parent / "rdc-train")
    workers = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        log = open(log_dir / f"{tag}-worker{index}.log", "w")  # noqa: SIM115 (closed by the OS)
        command = [script, *flags, f"--epochs={epochs}", f"--workdir={workdir}"]
        command += [f"--classifier_dir={classifier_dir}", "--strategy=multi_worker"]
        workers.append(
            subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=_env(TF_CONFIG=tf_config)
            )
        )
    return workers


def _weights(workdir: pathlib.Path) -> list[np.ndarray]:
    run = runs.RunDir(workdir)
    encoder, description = runs.load_encoder(run.encoder_dir)
    (head,) = run.heads()
    decoder, _ = head.load(description)
    return [v.numpy() for v in encoder.weights + decoder.weights]


def test_two_workers_train_like_two_replicas_of_one_process(tmp_path, classifier_dir):
    config = {**_MULTI_WORKER, "epochs": 2, "classifier_dir": classifier_dir}
    reference = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _MIRRORED_REFERENCE,
            json.dumps({**config, "workdir": str(tmp_path / "mirrored"), "strategy": "mirrored"}),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )
    workdir = tmp_path / "cluster"
    workers = _start_workers(workdir, classifier_dir, 2, tmp_path, "run")
    for index, worker in enumerate(workers):
        log = (tmp_path / f"run-worker{index}.log").read_text
        assert worker.wait(timeout=400) == 0, log()[-3000:]
    assert reference.wait(timeout=400) == 0, reference.stdout.read()[-3000:]

    cluster, single = read_results(workdir), read_results(tmp_path / "mirrored")
    # Test metrics are global means, not summed over the workers (Keras' default would).
    for key, value in single["test"].items():
        assert cluster["test"][key] == pytest.approx(value, rel=1e-3, abs=1e-4), key
    for a, b in zip(_weights(workdir), _weights(tmp_path / "mirrored"), strict=True):
        np.testing.assert_allclose(a, b, atol=2e-3)
    history = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    reference_history = [
        json.loads(line)
        for line in (tmp_path / "mirrored" / "metrics.jsonl").read_text().splitlines()
    ]
    for epoch, other in zip(history, reference_history, strict=True):
        assert epoch["loss"] == pytest.approx(other["loss"], rel=1e-4)
    # The chief wrote the run; the other worker wrote nothing outside backup/ (now removed).
    assert sorted(p.name for p in workdir.iterdir()) == sorted(
        ["config.json", "encoder", "heads", "logs", "metrics.jsonl", "results.json"]
    )
    worker_log = (tmp_path / "run-worker1.log").read_text()
    assert "epoch 1/2" not in worker_log  # per-epoch lines come from the chief only


def read_results(workdir: pathlib.Path) -> dict:
    return json.loads((workdir / "results.json").read_text())


def test_a_killed_worker_resumes_when_both_restart(tmp_path, classifier_dir):
    import time

    workdir = tmp_path / "cluster"
    epochs = 5
    workers = _start_workers(workdir, classifier_dir, epochs, tmp_path, "first")
    metrics = workdir / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
        assert all(w.poll() is None for w in workers), (tmp_path / "first-worker0.log").read_text()
        assert time.monotonic() < deadline, "no epoch finished in 300 s"
        time.sleep(0.1)
    workers[1].kill()  # a worker dies; the chief cannot go on without it
    workers[0].kill()
    for worker in workers:
        worker.wait(timeout=60)
    assert not (workdir / "results.json").exists()
    assert any((workdir / "backup").rglob("*.index"))

    workers = _start_workers(workdir, classifier_dir, epochs, tmp_path, "second")
    for index, worker in enumerate(workers):
        log = (tmp_path / f"second-worker{index}.log").read_text
        assert worker.wait(timeout=400) == 0, log()[-3000:]
    chief_log = (tmp_path / "second-worker0.log").read_text()
    resumed = [
        int(line.split()[1].split("/")[0])
        for line in chief_log.splitlines()
        if line.startswith("epoch ")
    ]
    assert resumed and resumed[0] > 1 and resumed[-1] == epochs, resumed  # not from epoch 1
    epochs_logged = [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()]
    assert epochs_logged == list(range(1, epochs + 1))
    assert read_results(workdir)["epochs"] == epochs and not (workdir / "backup").exists()


def test_multi_worker_needs_a_tf_config(monkeypatch):
    from rdc_keras.trainers.build import make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="--strategy=multi_worker: TF_CONFIG is not set"):
        make_strategy("multi_worker")
    for bad, problem in [
        ("{not json", "Expecting property name"),
        ('{"cluster": {"worker": ["a:1"]}}', "'task'"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "index 3"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "'chief'"),
    ]:
        monkeypatch.setenv("TF_CONFIG", bad)
        with pytest.raises(ValueError, match="TF_CONFIG is not a cluster spec") as error:
            make_strategy("multi_worker")
        assert problem in str(error.value), (bad, str(error.value))


def test_multi_worker_needs_a_saved_classifier(tmp_path):
    config = TrainConfig(workdir=str(tmp_path / "run"), dataset="digits", strategy="multi_worker")
    with pytest.raises(ValueError, match="--strategy=multi_worker needs --classifier_dir"):
        runner.train_run(config)
    assert not (tmp_path / "run").exists()
