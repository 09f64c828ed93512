"""Tests for the `rdc-train` binary in subprocesses: bad flags, SIGKILL and resume, reruns, NaN.

Every run uses the digits data, a reference classifier trained once by a module fixture
(`--classifier_dir`) and small batches, so each process lives for a few seconds.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
COMMAND = [sys.executable, "-m", "rdc_keras.cli.train"]
TIMEOUT = 300


def _run(args, timeout=TIMEOUT):
    return subprocess.run(
        COMMAND + list(args), capture_output=True, text=True, env=ENV, timeout=timeout
    )


def _error_lines(stderr: str) -> list[str]:
    """The binary's own messages (`<program>: error: ...`), without TF's C++/absl logging."""
    return [line for line in stderr.splitlines() if ": error: " in line]


def _epochs(workdir: pathlib.Path) -> list[int]:
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------------
# Bad flags: one line naming the flag, exit code 2, no traceback, nothing written.

BAD_FLAGS = {
    "num_levels": ["--num_levels=1"],
    "latent_dim": ["--latent_dim=0"],
    "lambda_c": ["--lambda_c=-0.5"],
    "lambda_p": ["--lambda_p=-1"],
    "dataset": ["--dataset=cifar10"],
    "batch_size": ["--batch_size=0"],
    "data_dir": ["--dataset=mnist_idx"],  # mnist_idx reads IDX files from --data_dir
    "workdir": None,  # missing --workdir
}


# Importing TensorFlow costs ~5 CPU-seconds per process, so one driver process imports the binary
# once and forks a child per command line. Each child runs the console-script entry point
# `run()` with its own argv, stdout and stderr, and ends as the interpreter would: SystemExit's
# code, or the traceback and status 1 for any other exception.
_FORK_DRIVER = r"""
import json, os, sys, traceback
from rdc_keras.cli import train

outcomes = []
for index, argv in enumerate(json.loads(sys.argv[1])):
    out_path, err_path = f"{sys.argv[2]}/{index}.out", f"{sys.argv[2]}/{index}.err"
    pid = os.fork()
    if pid == 0:
        with open(out_path, "w") as out, open(err_path, "w") as err:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
        sys.argv = ["rdc-train", *argv]
        try:
            train.run()
            code = 0
        except SystemExit as exit_:
            code = exit_.code
            if code is None:
                code = 0
            elif not isinstance(code, int):
                print(code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    outcomes.append(
        [os.waitstatus_to_exitcode(status), open(out_path).read(), open(err_path).read()]
    )
print("OUTCOMES " + json.dumps(outcomes))
"""


def _fork_runs(argvs: list[list[str]], logs: pathlib.Path) -> list[tuple[int, str, str]]:
    """(exit code, stdout, stderr) of `rdc-train` for each argv, via the fork driver."""
    logs.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-c", _FORK_DRIVER, json.dumps(argvs), str(logs)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = [x for x in result.stdout.splitlines() if x.startswith("OUTCOMES ")][-1]
    return [tuple(outcome) for outcome in json.loads(line[len("OUTCOMES ") :])]


@pytest.fixture(scope="module")
def bad_flag_runs(tmp_path_factory):
    """Outcome (exit code, stdout, stderr, workdir created) of every bad command line."""
    root = tmp_path_factory.mktemp("bad_flags")
    flags = sorted(BAD_FLAGS)
    argvs = [
        [f"--workdir={root / flag}", *BAD_FLAGS[flag]] if BAD_FLAGS[flag] is not None else []
        for flag in flags
    ]
    outcomes = _fork_runs(argvs, root / "logs")
    return {flag: (*outcome, (root / flag).exists()) for flag, outcome in zip(flags, outcomes)}


@pytest.mark.parametrize("flag", sorted(BAD_FLAGS))
def test_bad_flag_fails_with_one_line(bad_flag_runs, flag):
    returncode, stdout, stderr, created = bad_flag_runs[flag]
    assert returncode == 2, stderr[-2000:]
    assert "Traceback" not in stderr and "Traceback" not in stdout
    errors = _error_lines(stderr)
    assert len(errors) == 1, stderr[-2000:]
    assert f"--{flag}" in errors[0], errors
    assert not created, "the work directory must not be created"
    assert errors[0].startswith("rdc-train: error: ")


def test_a_workdir_url_of_an_unknown_file_system_fails_with_one_line(tmp_path, classifier_dir):
    argvs = [
        ["--workdir=nosuch://bucket/run", f"--classifier_dir={classifier_dir}"],
        ["--workdir=ram://bucket/run", "--classifier_dir=ram://bucket/clf"],
    ]
    for (returncode, stdout, stderr), flag in zip(
        _fork_runs(argvs, tmp_path / "logs"), ("--workdir=nosuch://", "--classifier_dir=ram://")
    ):
        assert returncode == 2, stderr[-2000:]
        assert "Traceback" not in stderr + stdout
        errors = _error_lines(stderr)
        assert len(errors) == 1 and errors[0].startswith(f"rdc-train: error: {flag}"), errors
    assert not any(tmp_path.glob("nosuch*")) and not pathlib.Path("nosuch:").exists()


# ------------------------------------------------------------------------------------------------
# SIGKILL mid-run, then the same command resumes; a third run reports the finished run.


def test_sigkill_then_resume_finishes_every_epoch_once(tmp_path, classifier_dir):
    workdir = tmp_path / "run"
    epochs = 6
    args = [
        f"--workdir={workdir}",
        f"--classifier_dir={classifier_dir}",
        f"--epochs={epochs}",
        "--batch_size=16",  # 89 steps per epoch: the kill lands well before the end
        "--lambda_c=0.01",
    ]
    process = subprocess.Popen(
        COMMAND + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while 2 not in _epochs(workdir):
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no second epoch in time"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    killed_at = _epochs(workdir)
    assert killed_at[:2] == [1, 2] and len(killed_at) < epochs, killed_at
    assert not (workdir / "results.json").exists()
    assert (workdir / "backup").is_dir()

    resumed = _run(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _epochs(workdir) == list(range(1, epochs + 1))  # each epoch exactly once
    progress = [line for line in resumed.stdout.splitlines() if line.startswith("epoch ")]
    first = int(progress[0].split()[1].split("/")[0])
    # Resumed after the last backup (epoch 2, or epoch 1 when the kill fell between writing
    # line 2 of metrics.jsonl and its backup), not restarted from epoch 1.
    assert 2 <= first <= len(killed_at) + 1, progress
    assert progress[-1].startswith(f"epoch {epochs}/{epochs}"), progress
    assert len(progress) == epochs - first + 1
    results = json.loads((workdir / "results.json").read_text())
    assert results["epochs"] == epochs and np.isfinite(results["test"]["mse"])
    assert not (workdir / "backup").exists()
    assert (workdir / "encoder" / "weights.h5").exists()
    assert (workdir / "heads" / "d1-c0.01-p0" / "head.json").exists()

    # The same command reports the finished run; another config in the workdir is refused.
    files = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    (code, stdout, _), (other_code, _, other_stderr) = _fork_runs(
        [args, [*args[:-1], "--lambda_c=0.5"]], tmp_path / "logs"
    )
    assert code == 0 and "already finished" in stdout, stdout
    assert not any(line.startswith("epoch ") for line in stdout.splitlines())
    assert other_code == 2 and "Traceback" not in other_stderr
    errors = _error_lines(other_stderr)
    assert len(errors) == 1 and "lambda_c=0.01 (not 0.5)" in errors[0], other_stderr[-2000:]
    assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == files


# ------------------------------------------------------------------------------------------------
# NaN: a huge learning rate from epoch 3 on (--lr_boundaries/--lr_factors) makes the loss NaN.


def test_nan_stops_with_one_line_and_keeps_last_good_backup(tmp_path, classifier_dir):
    workdir = tmp_path / "nan"
    result = _run(
        [
            f"--workdir={workdir}",
            f"--classifier_dir={classifier_dir}",
            "--epochs=4",
            "--steps_per_epoch=10",
            "--batch_size=16",
            "--lr_boundaries=2",
            "--lr_factors=1,1e36",
        ]
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr[-2000:]
    assert "training diverged" in errors[0] and "in epoch 3" in errors[0], errors
    assert f"{workdir}/backup" in errors[0]
    assert _epochs(workdir) == [1, 2]
    assert not (workdir / "results.json").exists()
    assert not (workdir / "encoder").exists()

    checkpoint = tf.train.latest_checkpoint(str(workdir / "backup" / "chief"))
    assert checkpoint is not None
    reader = tf.train.load_checkpoint(checkpoint)
    assert reader.get_tensor("ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE") == 1  # epoch 2
    floats = [
        reader.get_tensor(name)
        for name, dtype in reader.get_variable_to_dtype_map().items()
        if dtype.is_floating
    ]
    assert len(floats) > 20
    assert all(np.all(np.isfinite(value)) for value in floats)


def test_nan_in_the_first_epoch_says_nothing_was_kept(tmp_path, classifier_dir):
    workdir = tmp_path / "nan1"
    result = _run(
        [
            f"--workdir={workdir}",
            f"--classifier_dir={classifier_dir}",
            "--epochs=2",
            "--steps_per_epoch=10",
            "--batch_size=16",
            "--lr_generator=1e36",
            "--lr_critic=1e36",
        ]
    )
    assert result.returncode == 2, result.stderr[-3000:]
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr[-2000:]
    assert "in epoch 1" in errors[0] and "no epoch had finished" in errors[0], errors
    assert "backup" not in errors[0]
