"""Tests for the rdc-experiment binary (rdc_keras.cli.experiment).

The study itself is tested in-process by test_experiment.py; here the binary's flags are checked:
bad input fails with one line and a non-zero exit code, and good flags reach `run_study` intact.
Two cases run the console script itself; the other bad-flag cases run through the same
`app.run(main_wrapper(main), flags_parser=parse_flags)` in one driver process, so the suite
pays for one TensorFlow import instead of one per case. All processes start at once.
"""

import dataclasses
import json
import pathlib

import pytest
from conftest import run_binary

from rdc_keras import experiment

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PROGRAM = "rdc-experiment"

# Flags whose study differs from the one recorded in the work directory only by its epochs.
GOOD = [
    "--rates=2:3,1:4",
    "--e2e_lambda_c=0,0.02",
    "--universal_lambda_c=0,0.01,0.02",
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
    "mnist10k_without_data": (["--preset=mnist10k"], "--data_dir"),
}


def _recorded_study(workdir: pathlib.Path) -> None:
    """study.json as run_study writes it for GOOD, except epochs=99."""
    config = experiment.study_config(
        "digits",
        rates=((2, 3), (1, 4)),
        e2e_lambda_c=(0.0, 0.02),
        universal_lambda_c=(0.0, 0.01, 0.02),
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
