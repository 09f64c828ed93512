"""Tests for rdc_keras.study_plan: model names, dependencies, waves and the generated scripts.

The shell and Slurm scripts are run for real with stand-ins for `rdc-experiment` and `sbatch`
on PATH that record how they were called.
"""

import json
import os
import pathlib
import subprocess

import pytest

from rdc_keras import study_plan
from rdc_keras.studies import study_config

COMMAND = ["rdc-experiment", "--workdir=runs/a b", "--epochs=1"]


@pytest.fixture
def config():
    return study_config(
        "digits",
        rates=((2, 3), (1, 3)),
        e2e_lambda_c=(0.0, 0.04),
        universal_lambda_c=(0.0, 0.02),
        base_lambda_c=0.04,
    )


def test_entries_name_every_model_with_its_dependencies(config, tmp_path):
    rows = study_plan.entries(study_plan.jobs(config, tmp_path), tmp_path)
    names = [row["model"] for row in rows]
    assert names[0] == "classifier" and names[-1] == "report"
    assert len(names) == len(set(names)) == 1 + 4 + 1 + 2 + 2 + 1
    deps = {row["model"]: row["depends_on"] for row in rows}
    assert deps["classifier"] == []
    assert deps["e2e-d1-L3-c0"] == ["classifier"]
    assert deps["multihead"] == ["classifier"]
    assert deps["universal-paper-c0.02"] == ["classifier", "e2e-d2-L3-c0.04"]
    assert deps["universal-multihead-c0"] == ["classifier", "multihead"]
    assert deps["report"] == names[:-1]
    # Dependency order: every dependency is listed before the model that needs it.
    for index, row in enumerate(rows):
        assert all(names.index(dep) < index for dep in row["depends_on"])
    workdirs = {row["model"]: row["workdir"] for row in rows}
    assert workdirs["universal-paper-c0.02"] == "universal-paper/d2-L3/c0.02"
    assert workdirs["report"] == "." and workdirs["classifier"] == "classifier"


def test_one_base_only_leaves_out_the_other_family(config, tmp_path):
    rows = study_plan.entries(study_plan.jobs(config, tmp_path, ("paper",)), tmp_path)
    families = {row["family"] for row in rows}
    assert families == {"classifier", "e2e", "universal-paper", "report"}


def test_waves_put_each_model_after_all_of_its_dependencies(config, tmp_path):
    rows = study_plan.entries(study_plan.jobs(config, tmp_path), tmp_path)
    waves = study_plan.waves(rows)
    assert [len(wave) for wave in waves] == [1, 5, 4, 1]
    wave_of = {model: number for number, wave in enumerate(waves) for model in wave}
    for row in rows:
        assert all(wave_of[dep] < wave_of[row["model"]] for dep in row["depends_on"])
    assert sorted(wave_of) == sorted(row["model"] for row in rows)


def test_json_lines_carry_the_command_of_each_model(config, tmp_path):
    rows = study_plan.entries(study_plan.jobs(config, tmp_path), tmp_path)
    lines = study_plan.json_lines(rows, COMMAND).splitlines()
    assert len(lines) == len(rows)
    parsed = [json.loads(line) for line in lines]
    assert [p["model"] for p in parsed] == [row["model"] for row in rows]
    assert parsed[1]["command"] == (
        f"rdc-experiment '--workdir=runs/a b' --epochs=1 --model={rows[1]['model']}"
    )


def _fake(bin_dir: pathlib.Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


def test_shell_script_runs_every_model_once_wave_by_wave(config, tmp_path):
    rows = study_plan.entries(study_plan.jobs(config, tmp_path), tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    _fake(bin_dir, "rdc-experiment", f'echo "$*" >> {log}\n')
    script = tmp_path / "plan.sh"
    script.write_text(study_plan.shell_script(rows, COMMAND))
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", JOBS="2")
    subprocess.run(["bash", str(script)], check=True, env=env, timeout=60)
    calls = log.read_text().splitlines()
    assert all(call.startswith("--workdir=runs/a b --epochs=1 --model=") for call in calls)
    called = [call.rsplit("--model=", 1)[1] for call in calls]
    assert sorted(called) == sorted(row["model"] for row in rows)
    wave_of = {m: n for n, wave in enumerate(study_plan.waves(rows)) for m in wave}
    assert [wave_of[m] for m in called] == sorted(wave_of[m] for m in called)


def test_shell_script_stops_at_a_failed_wave(config, tmp_path):
    rows = study_plan.entries(study_plan.jobs(config, tmp_path), tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    _fake(bin_dir, "rdc-experiment", f'echo "$*" >> {log}\nexit 2\n')
    script = tmp_path / "plan.sh"
    script.write_text(study_plan.shell_script(rows, COMMAND))
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    done = subprocess.run(["bash", str(script)], env=env, timeout=60, capture_output=True)
    assert done.returncode != 0
    assert log.read_text().splitlines() == ["--workdir=runs/a b --epochs=1 --model=classifier"]


def test_slurm_script_submits_one_array_per_wave_after_the_previous(config, tmp_path):
    rows = study_plan.entries(study_plan.jobs(config, tmp_path), tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "sbatch.jsonl"
    counter = tmp_path / "counter"
    # A stand-in sbatch: records its arguments as a JSON list and prints a new job id.
    _fake(
        bin_dir,
        "sbatch",
        f"n=$(( $(cat {counter} 2>/dev/null || echo 100) + 1 )); echo $n > {counter}\n"
        f"python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' \"$@\" >> {log}\n"
        'echo "$n"\n',
    )
    script = tmp_path / "plan.slurm.sh"
    script.write_text(study_plan.slurm_script(rows, COMMAND, "digits"))
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    done = subprocess.run(
        ["bash", str(script)], env=env, timeout=60, capture_output=True, text=True, check=True
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    waves = study_plan.waves(rows)
    assert len(calls) == len(waves)
    for number, (call, wave) in enumerate(zip(calls, waves, strict=True)):
        assert "--parsable" in call and "--job-name=rdc-digits" in call
        assert f"--array=0-{len(wave) - 1}" in call
        dependency = [arg for arg in call if arg.startswith("--dependency=")]
        assert dependency == ([] if number == 0 else [f"--dependency=afterok:{100 + number}"])
        wrap = call[call.index("--wrap") + 1]
        # The wrapped command, run as a task of the array, picks its model by the task id.
        for task, model in enumerate(wave):
            out = subprocess.run(
                ["bash", "-c", wrap.replace("rdc-experiment", "printf '%s\\n' rdc-experiment", 1)],
                env=dict(env, SLURM_ARRAY_TASK_ID=str(task)),
                capture_output=True,
                text=True,
                check=True,
            )
            assert out.stdout.splitlines() == [*COMMAND, f"--model={model}"]
    assert "wave 3: job 104 (1 model(s))" in done.stdout


def test_claim_path_is_per_model(tmp_path):
    assert study_plan.claim_path(tmp_path, "e2e-d2-L3-c0") == tmp_path / "claims" / (
        "e2e-d2-L3-c0.lock"
    )
