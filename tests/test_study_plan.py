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


def test_the_multihead_base_keeps_its_heads_when_fewer_universal_heads_are_trained(tmp_path):
    full = study_config("digits", rates=((2, 3),), e2e_lambda_c=(0.0, 0.04), base_lambda_c=0.04)
    grid = full.universal_lambda_c
    few = study_config(
        "digits",
        rates=((2, 3),),
        e2e_lambda_c=(0.0, 0.04),
        base_lambda_c=0.04,
        universal_lambda_c=(0.0,),
        multihead_lambda_c=grid,
    )
    full_jobs = {job.name: job for job in study_plan.jobs(full, tmp_path)}
    few_jobs = {job.name: job for job in study_plan.jobs(few, tmp_path)}
    assert len(grid) > 1 and full_jobs["multihead"].train["multihead_lambda_c"] == grid
    assert few_jobs["multihead"] == full_jobs["multihead"]  # the same base encoder's training
    assert sorted(name for name in few_jobs if name.startswith("universal")) == [
        "universal-multihead-c0",
        "universal-paper-c0",
    ]
    assert few_jobs["universal-multihead-c0"] == full_jobs["universal-multihead-c0"]


def test_one_base_only_leaves_out_the_other_family(config, tmp_path):
    rows = study_plan.entries(study_plan.jobs(config, tmp_path, ("paper",)), tmp_path)
    families = {row["family"] for row in rows}
    assert families == {"classifier", "e2e", "universal-paper", "report"}


@pytest.mark.parametrize("seeds, sizes", [((0,), [1, 5, 4, 1]), ((0, 1), [1, 10, 8, 1])])
def test_waves_put_each_model_after_all_of_its_dependencies(config, tmp_path, seeds, sizes):
    rows = study_plan.entries(study_plan.jobs(config, tmp_path, seeds=seeds), tmp_path)
    waves = study_plan.waves(rows)
    # Several seeds train side by side: each wave holds every seed's models of its depth.
    assert [len(wave) for wave in waves] == sizes
    if len(seeds) > 1:
        assert "e2e-d2-L3-c0.04@seed1" in waves[1] and "universal-paper-c0@seed1" in waves[2]
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


# ------------------------------------------------------------------------------------------------
# A study over several seeds: the first seed's models keep their names and directories, a further
# seed's are `<head>@seed<S>` under `seed-<S>/`, each depending on its own seed's base.


def test_model_names_and_roots_of_further_seeds(tmp_path):
    assert study_plan.model_name("e2e-d2-L3-c0", 0, (0, 1)) == "e2e-d2-L3-c0"
    assert study_plan.model_name("e2e-d2-L3-c0", 1, (0, 1)) == "e2e-d2-L3-c0@seed1"
    assert study_plan.model_name("multihead", 0, (5, 0)) == "multihead@seed0"
    assert study_plan.seed_root(tmp_path, 0, (0, 1)) == tmp_path
    assert study_plan.seed_root(tmp_path, 1, (0, 1)) == tmp_path / "seed-1"
    assert study_plan.seed_root(str(tmp_path), 5, (5, 0)) == tmp_path


def test_entries_over_two_seeds_name_directories_and_dependencies(config, tmp_path):
    rows = study_plan.entries(study_plan.jobs(config, tmp_path, seeds=(0, 1)), tmp_path)
    names = [row["model"] for row in rows]
    assert names[0] == "classifier" and names[-1] == "report"
    assert len(names) == len(set(names)) == 1 + 2 * (4 + 1 + 2 + 2) + 1
    # The whole plan of seed 0, then seed 1's.
    assert [row.get("seed") for row in rows] == [None] + [0] * 9 + [1] * 9 + [None]
    assert names[10:] == [f"{name}@seed1" for name in names[1:10]] + ["report"]
    deps = {row["model"]: row["depends_on"] for row in rows}
    assert deps["e2e-d1-L3-c0@seed1"] == ["classifier"]  # one classifier for every seed
    assert deps["multihead@seed1"] == ["classifier"]
    assert deps["universal-paper-c0.02"] == ["classifier", "e2e-d2-L3-c0.04"]
    assert deps["universal-paper-c0.02@seed1"] == ["classifier", "e2e-d2-L3-c0.04@seed1"]
    assert deps["universal-multihead-c0@seed1"] == ["classifier", "multihead@seed1"]
    assert deps["report"] == names[:-1]
    for index, row in enumerate(rows):
        assert all(names.index(dep) < index for dep in row["depends_on"])
    workdirs = {row["model"]: row["workdir"] for row in rows}
    assert workdirs["universal-paper-c0.02"] == "universal-paper/d2-L3/c0.02"
    assert workdirs["universal-paper-c0.02@seed1"] == "seed-1/universal-paper/d2-L3/c0.02"
    assert workdirs["e2e-d1-L3-c0@seed1"] == "seed-1/e2e/d1-L3/c0"
    assert workdirs["multihead@seed1"] == "seed-1/multihead/d2-L3"
    assert workdirs["classifier"] == "classifier" and workdirs["report"] == "."
    assert len(set(workdirs.values())) == len(workdirs)


def test_jobs_of_a_further_seed_train_on_that_seeds_encoders(config, tmp_path):
    planned = {job.name: job for job in study_plan.jobs(config, tmp_path, seeds=(0, 1))}
    first, second = planned["universal-paper-c0"], planned["universal-paper-c0@seed1"]
    assert (first.seed, second.seed) == (0, 1)
    assert first.head == second.head == "universal-paper-c0"  # the head keeps its name
    assert first.workdir == tmp_path / "universal-paper" / "d2-L3" / "c0"
    assert second.workdir == tmp_path / "seed-1" / "universal-paper" / "d2-L3" / "c0"
    # Each head is trained on the frozen encoder of its own seed's base.
    base = pathlib.Path("e2e") / "d2-L3" / "c0.04"
    assert pathlib.Path(first.train["encoder_dir"]).is_relative_to(tmp_path / base)
    assert pathlib.Path(second.train["encoder_dir"]).is_relative_to(tmp_path / "seed-1" / base)
    multihead = planned["universal-multihead-c0.02@seed1"].train["encoder_dir"]
    assert pathlib.Path(multihead).is_relative_to(tmp_path / "seed-1" / "multihead" / "d2-L3")
    assert planned["e2e-d2-L3-c0@seed1"].train == planned["e2e-d2-L3-c0"].train
    assert planned["e2e-d2-L3-c0@seed1"].describe() == "e2e d=2 L=3 lambda_c=0 seed=1"
    assert planned["e2e-d2-L3-c0"].describe() == "e2e d=2 L=3 lambda_c=0"


def test_one_seed_gives_the_plan_of_a_one_seed_study(config, tmp_path):
    plain = study_plan.entries(study_plan.jobs(config, tmp_path), tmp_path)
    for seeds in ((0,), (3,)):
        planned = study_plan.jobs(config, tmp_path, seeds=seeds)
        assert {job.seed for job in planned} == {seeds[0]}
        rows = study_plan.entries(planned, tmp_path)
        assert rows == plain
        assert not any("seed" in row for row in rows)
        assert not any("@" in row["model"] or "seed-" in row["workdir"] for row in rows)
        assert [job.describe() for job in planned] == [
            job.describe() for job in study_plan.jobs(config, tmp_path)
        ]
    # The one-seed names and directories, as test_entries_name_every_model... lists them.
    workdirs = {row["model"]: row["workdir"] for row in plain}
    assert workdirs["universal-paper-c0.02"] == "universal-paper/d2-L3/c0.02"
    assert {row["model"]: row["depends_on"] for row in plain}["universal-multihead-c0"] == [
        "classifier",
        "multihead",
    ]


def test_shell_script_over_two_seeds_runs_every_model_once(config, tmp_path):
    rows = study_plan.entries(study_plan.jobs(config, tmp_path, seeds=(0, 1)), tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    _fake(bin_dir, "rdc-experiment", f'echo "$*" >> {log}\n')
    script = tmp_path / "plan.sh"
    script.write_text(study_plan.shell_script(rows, COMMAND))
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    subprocess.run(["bash", str(script)], check=True, env=env, timeout=60)
    called = [call.rsplit("--model=", 1)[1] for call in log.read_text().splitlines()]
    assert sorted(called) == sorted(row["model"] for row in rows)
    assert "universal-paper-c0.02@seed1" in called
    assert called.index("e2e-d2-L3-c0.04@seed1") < called.index("universal-paper-c0.02@seed1")


def test_paper_heads_of_a_further_seed_start_from_that_seeds_base_critic(tmp_path):
    config = study_config(
        "digits",
        rates=((2, 3),),
        e2e_lambda_c=(0.0,),
        universal_lambda_c=(0.0,),
        base_lambda_c=0.0,
        e2e_lambda_p=(0.0, 0.01),
        universal_lambda_p=(0.0, 0.01),
        base_lambda_p=0.01,
    )
    planned = {job.name: job for job in study_plan.jobs(config, tmp_path, seeds=(0, 2))}
    first, second = planned["universal-paper-c0-p0.01"], planned["universal-paper-c0-p0.01@seed2"]
    assert second.depends_on == ("classifier", "e2e-d2-L3-c0-p0.01@seed2")
    base = pathlib.Path("e2e") / "d2-L3" / "c0-p0.01"
    critic, critic2 = (pathlib.Path(job.train["base_critic_dir"]) for job in (first, second))
    assert critic.is_relative_to(tmp_path / base) and critic.name == "critic"
    assert critic2.is_relative_to(tmp_path / "seed-2" / base) and critic2.name == "critic"
    assert critic2.relative_to(tmp_path / "seed-2") == critic.relative_to(tmp_path)
