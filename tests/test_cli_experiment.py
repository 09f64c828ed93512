"""Tests for the rdc-experiment binary (rdc_keras.cli.experiment).

The study itself is tested in-process by test_experiment.py; here the binary's flags are checked:
bad input fails with one line and a non-zero exit code, and good flags reach `run_study` intact.
Two cases run the console script itself; the other bad-flag cases run through the same
`app.run(main_wrapper(main), flags_parser=parse_flags)` in one driver process, so the suite
pays for one TensorFlow import instead of one per case. All processes start at once.
"""

import dataclasses
import json
import os
import pathlib
import random
import re
import socket
import subprocess
import sys

import pytest
from conftest import run_binary

from rdc_keras import experiment, files, study_plan
from rdc_keras.files import read_json

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PROGRAM = "rdc-experiment"

# Flags whose study differs from the one recorded in the work directory only by its epochs.
GOOD = [
    "--rates=2:3,1:4",
    "--e2e_lambda_c=0,0.02",
    "--universal_lambda_c=0,0.01,0.02",
    "--multihead_lambda_c=0,0.02",
    "--base_lambda_c=0.02",
    "--epochs=1",
    "--steps_per_epoch=2",
    "--classifier_epochs=1",
    "--w1_steps=5",
    "--seed=9",
    "--noexport",
]

BAD = {
    "rates_not_pairs": (["--rates=3"], "--rates"),
    "rates_not_numbers": (["--rates=a:b"], "--rates"),
    "unknown_preset": (["--preset=cifar"], "preset"),
    "unknown_base": (["--base=e2e"], "base"),
    "bad_verbose": (["--verbose=3"], "--verbose"),
    "base_not_in_grid": (["--base_lambda_c=0.5"], "not in the E2E grid"),
    "zero_epochs": (["--epochs=0"], "--epochs"),
    "lambda_not_number": (["--e2e_lambda_c=a,b"], "e2e_lambda_c"),
    "multihead_lambda_c_negative": (["--multihead_lambda_c=0,-1"], "multihead_lambda_c"),
    "mnist10k_without_data": (["--preset=mnist10k"], "--data_dir"),
    "list_and_model": (["--list", "--model=classifier"], "--list and --model: give only one"),
    "unknown_model": (["--model=e2e-d9-L9-c0"], "--model=e2e-d9-L9-c0: not a model of this"),
    "multi_worker_study": (["--strategy=multi_worker"], "use it with --model=NAME"),
    "seeds_repeated": (["--seeds=0,0"], "--seeds: expected distinct integers"),
    "seeds_not_numbers": (["--seeds=0,a"], "--seeds: not a list of numbers"),
    "seeds_not_first": (["--seed=1", "--seeds=0,2"], "--seeds=0,2: the first must be --seed=1"),
    "model_of_another_seed": (
        ["--seeds=0,1", "--model=e2e-d2-L3-c0@seed2"],
        "--model=e2e-d2-L3-c0@seed2: not a model of this",
    ),
    "multi_worker_classifier": (
        ["--strategy=multi_worker", "--model=classifier"],
        "--model=classifier is not a training",
    ),
}


def _recorded_study(workdir: pathlib.Path) -> None:
    """study.json as run_study writes it for GOOD, except epochs=99."""
    config = experiment.study_config(
        "digits",
        rates=((2, 3), (1, 4)),
        e2e_lambda_c=(0.0, 0.02),
        universal_lambda_c=(0.0, 0.01, 0.02),
        multihead_lambda_c=(0.0, 0.02),
        base_lambda_c=0.02,
        epochs=99,
        steps_per_epoch=2,
        classifier_epochs=1,
        w1_steps=5,
    )
    settings = {**dataclasses.asdict(config), "seed": 9}
    workdir.mkdir(parents=True)
    (workdir / "study.json").write_text(json.dumps({"study": settings}))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_experiment")
    _recorded_study(root / "recorded")
    cases = {name: [*flags, f"--workdir={root / name}"] for name, (flags, _) in BAD.items()}
    cases["missing_workdir"] = []
    commands = {
        # The console script itself: a flag-parsing error and a full pass through main().
        "unknown_preset": ["--preset=cifar", f"--workdir={root / 'unknown_preset'}"],
        "recorded": [*GOOD, f"--workdir={root / 'recorded'}"],
    }
    driver_cases = {k: v for k, v in cases.items() if k != "unknown_preset"}
    ran = run_binary(PROGRAM, "rdc_keras.cli.experiment", root, commands, driver_cases, 300)
    out = {name: (code, stderr, root / name) for name, (code, _, stderr) in ran.items()}
    return out


def _one_line_error(result, match: str) -> str:
    returncode, stderr, _ = result
    assert returncode != 0, stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith(f"{PROGRAM}: error:")]
    assert len(lines) == 1, stderr
    assert match in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_flags_fail_with_one_line(results, name):
    _one_line_error(results[name], BAD[name][1])
    assert not (results[name][2] / "study.json").exists()  # nothing was started


def test_choices_are_the_library_presets_and_bases(results):
    line = _one_line_error(results["unknown_preset"], "preset")
    assert "<" + "|".join(experiment.PRESETS) + ">" in line, line
    line = _one_line_error(results["unknown_base"], "base")
    assert "<" + "|".join([*experiment.BASES, "both"]) + ">" in line, line


def test_workdir_is_required(results):
    _one_line_error(results["missing_workdir"], "workdir")


def test_every_flag_reaches_the_study(results):
    """Only epochs differs from the recorded study: every other flag was passed on unchanged."""
    line = _one_line_error(results["recorded"], "other settings")
    assert line.endswith("(epochs); use another --workdir"), line


# ------------------------------------------------------------------------------------------------
# The study as a plan: separate processes, one model each, in any order the dependencies allow

PLAN = [
    "--rates=2:3",
    "--e2e_lambda_c=0,0.04",
    "--universal_lambda_c=0,0.04",
    "--base_lambda_c=0.04",
    "--epochs=1",
    "--steps_per_epoch=2",
    "--classifier_epochs=1",
    "--noexport",
    "--verbose=0",
    "--seed=5",
]


def _start(workdir: pathlib.Path, *flags: str, **environment: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3", **environment)
    script = str(pathlib.Path(sys.executable).parent / PROGRAM)
    return subprocess.Popen(
        [script, *PLAN, f"--workdir={workdir}", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finish(process: subprocess.Popen) -> tuple[int, str]:
    stdout, stderr = process.communicate(timeout=400)
    return process.returncode, stdout + stderr


def _comparable(results: dict) -> dict:
    """results.json without what depends on the clock or the machine."""
    models = [{k: v for k, v in row.items() if k != "train_seconds"} for row in results["models"]]
    kept = {k: v for k, v in results.items() if k not in ("wall_seconds", "train_seconds_total")}
    kept["models"] = models
    kept["reference_classifier"] = {
        k: v for k, v in results["reference_classifier"].items() if k != "train_seconds"
    }
    return kept


def test_a_study_run_model_by_model_equals_the_one_process_run(tmp_path):
    one, many = tmp_path / "one", tmp_path / "many"
    reference = _start(one)  # the whole study in one process, meanwhile
    code, out = _finish(_start(many, "--list"))
    assert code == 0, out
    plan = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert not many.exists()  # listing writes nothing
    names = [row["model"] for row in plan]
    assert names[0] == "classifier" and names[-1] == "report" and len(names) == 9
    assert all(row["command"].endswith(f"--model={row['model']}") for row in plan)
    depends = {row["model"]: set(row["depends_on"]) for row in plan}

    # Two processes at once on one model: only one trains it.
    pair = [_start(many, "--model=classifier") for _ in range(2)]
    outcomes = [_finish(process) for process in pair]
    trained = [out for code, out in outcomes if "training the reference classifier" in out]
    assert len(trained) == 1, outcomes
    for code, out in outcomes:
        if "training the reference classifier" not in out:
            assert (code != 0 and "claimed by" in out) or code == 0, out
    assert (many / "classifier" / "weights.h5").exists()

    # Refusals: a model held by another process, a head before its base, a report too early.
    base = "e2e-d2-L3-c0.04"
    with files.claim(study_plan.claim_path(many, base), base):
        refused = {
            "claimed": _start(many, f"--model={base}"),
            "base_unfinished": _start(many, "--model=universal-paper-c0"),
            "report_early": _start(many, "--report_only"),
        }
        refused = {name: _finish(process) for name, process in refused.items()}
    expected = {
        "claimed": f"claimed by {socket.gethostname()} pid {os.getpid()} since",
        "base_unfinished": f"--model=universal-paper-c0 needs 1 unfinished model(s) of {many}: "
        f"{base}",
        "report_early": "--report_only needs 7 unfinished model(s)",
    }
    for name, (code, out) in refused.items():
        assert code == 2 and expected[name] in out and "Traceback" not in out, (name, out)

    # The rest in a random order the dependencies allow, two processes at a time.
    rng = random.Random(0)
    done, running, order = {"classifier"}, {}, []
    pending = [name for name in names[1:-1]]
    while pending or running:
        ready = [name for name in pending if depends[name] <= done]
        rng.shuffle(ready)
        for name in ready[: 2 - len(running)]:
            pending.remove(name)
            running[name] = _start(many, f"--model={name}")
            order.append(name)
        name = next(iter(running))
        code, out = _finish(running.pop(name))
        assert code == 0, out
        done.add(name)
    code, out = _finish(_start(many, "--report_only"))
    assert code == 0, out

    code, out = _finish(reference)
    assert code == 0, out
    # What a user sees of a whole study at --verbose=0 (the demo's setting), not a terminal:
    # one line per model (with the models left and the ETA) plus at most 6 (judge, W1 spread,
    # figures, report), no TensorFlow banner or log lines, no carriage-return progress.
    lines = out.splitlines()
    trainings = [line for line in lines if re.match(r"\[\d+/7\] ", line)]
    assert len(trainings) == 7 and len(lines) <= 7 + 6, out
    assert all("ETA" in line for line in trainings[:-1]) and "ETA" not in trainings[-1], out
    assert "\r" not in out and "tensorflow" not in out.lower(), out
    assert read_json(one / "study.json")["study"] == read_json(many / "study.json")["study"]
    assert _comparable(read_json(many / "results.json")) == _comparable(
        read_json(one / "results.json")
    ), order


def test_one_model_of_the_plan_trains_over_two_workers(tmp_path):
    study = tmp_path / "study"
    code, out = _finish(_start(study, "--model=classifier"))
    assert code == 0, out
    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    model = "e2e-d2-L3-c0"
    workers = [
        _start(
            study,
            f"--model={model}",
            "--strategy=multi_worker",
            "--verbose=1",
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
        )
        for i in range(2)
    ]
    (chief_code, chief), (worker_code, worker) = [_finish(process) for process in workers]
    assert chief_code == 0 and worker_code == 0, (chief[-3000:], worker[-3000:])
    # The chief trains, saves and scores the model; the worker only trains with it.
    assert "e2e d=2 L=3 lambda_c=0: mse=" in chief, chief[-3000:]
    assert "mse=" not in worker and "epoch 1/1" not in worker, worker[-3000:]
    run = study / "e2e" / "d2-L3" / "c0"
    assert read_json(run / "config.json")["config"]["strategy"] == "multi_worker"
    assert read_json(run / "results.json")["epochs"] == 1
    assert (run / f"evaluation-{model}.json").exists() and not (run / "backup").exists()
