"""Tests for the rdc-universal binary (rdc_keras.cli.universal): heads on a frozen encoder.

A tiny rdc-train run (digits, one epoch of two steps) is made in-process; the binary then trains
two heads on its encoder. Bad-flag cases run through the binary's
`app.run(main_wrapper(main), flags_parser=parse_flags)` in one driver process (one TensorFlow
import), and one case runs the console script itself. All processes start at once.
"""

import hashlib
import json
import pathlib

import numpy as np
import pytest
from conftest import run_binary

from rdc_keras import files, runs

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PROGRAM = "rdc-universal"
LAMBDAS = ("0", "0.04")
TINY = ["--epochs=1", "--steps_per_epoch=2", "--batch_size=32"]


def _bad_cases(base: pathlib.Path, root: pathlib.Path) -> dict[str, tuple[list[str], str]]:
    """name -> (flags, text the one-line error must contain)."""
    good = [f"--base={base}", *TINY]
    return {
        "missing_flags": ([], "--base"),
        "not_a_run": ([f"--base={root / 'nonexistent'}"], "not a finished rdc-train run"),
        "lambda_not_number": ([*good, "--lambda_c=a"], "not a list of numbers"),
        "negative_lambda": ([*good, "--lambda_c=0,-1"], "--lambda_c=-1.0"),
        "lambda_p_count": ([*good, "--lambda_c=0,0.1", "--lambda_p=0,0,0"], "--lambda_p"),
        "empty_lambda": ([*good, "--lambda_c="], "at least one"),
        "zero_epochs": ([*good[:1], "--epochs=0"], "--epochs"),
    }


@pytest.fixture(scope="module")
def base(tiny_run) -> pathlib.Path:
    """A finished tiny rdc-train run with a reference classifier (conftest)."""
    return tiny_run


def _digest(path: pathlib.Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@pytest.fixture(scope="module")
def results(base, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_universal")
    weights = base / "encoder" / runs.WEIGHTS_FILE
    before = _digest(weights)
    bad = {
        name: [*flags, f"--workdir={root / name}"]
        for name, (flags, _) in _bad_cases(base, root).items()
    }
    commands = {
        "heads": [
            f"--base={base}",
            f"--workdir={root / 'heads'}",
            f"--lambda_c={','.join(LAMBDAS)}",
            *TINY,
        ],
        "bad_enum": [f"--base={base}", "--workdir=x", "--mixed_precision=float8"],
    }
    out = run_binary(PROGRAM, "rdc_keras.cli.universal", root, commands, bad)
    return {"root": root, "out": out, "weights_before": before, "weights": weights}


def _head_dirs(root: pathlib.Path) -> dict[str, pathlib.Path]:
    return {
        f"d1-c{c}-p0": root / "heads" / f"d1-c{c}-p0" / "heads" / f"d1-c{c}-p0" for c in LAMBDAS
    }


def test_trains_one_head_per_lambda_c_with_progress(results):
    code, stdout, stderr = results["out"]["heads"]
    assert code == 0, stderr
    for name in _head_dirs(results["root"]):
        assert f"head {name}: training on the frozen encoder" in stdout
    assert stdout.count("epoch 1/1") == len(LAMBDAS)
    summary = json.loads((results["root"] / "heads" / "universal.json").read_text())
    assert [head["name"] for head in summary["heads"]] == list(_head_dirs(results["root"]))
    for head in summary["heads"]:
        assert np.isfinite(head["test"]["mse"]) and head["rate_bits"] == pytest.approx(
            2 * np.log2(3)
        )


def test_encoder_is_frozen_and_heads_record_it(results, base):
    from rdc_keras.runs import load_encoder, load_head

    assert _digest(results["weights"]) == results["weights_before"]  # never rewritten
    _, description = load_encoder(base)  # the recorded fingerprint still matches the weights
    for name, head_dir in _head_dirs(results["root"]).items():
        head = files.read_json(head_dir / "head.json")
        assert head["encoder_fingerprint"] == description["fingerprint"]
        assert pathlib.Path(head["encoder_dir"]) == base / "encoder"
        assert head["lambda_c"] == float(name.split("-c")[1].split("-p")[0])
        assert not (head_dir.parent.parent / "encoder").exists()  # no encoder of its own
        assert (head_dir / "decoder" / runs.WEIGHTS_FILE).is_file()
        load_head(head_dir, description)
        with pytest.raises(ValueError, match="belongs to encoder"):
            load_head(head_dir, {**description, "fingerprint": "0" * 32})


def _one_line_error(result, match: str) -> None:
    code, _, stderr = result
    assert code != 0, stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith(f"{PROGRAM}: error:")]
    assert len(lines) == 1, stderr
    assert match in lines[0], lines[0]


def test_bad_enum_flag_fails_with_one_line(results):
    _one_line_error(results["out"]["bad_enum"], "--mixed_precision")


@pytest.mark.parametrize(
    "name",
    [
        "missing_flags",
        "not_a_run",
        "lambda_not_number",
        "negative_lambda",
        "lambda_p_count",
        "empty_lambda",
        "zero_epochs",
    ],
)
def test_bad_flags_fail_with_one_line(results, base, name):
    _, match = _bad_cases(base, results["root"])[name]
    _one_line_error(results["out"][name], match)
    assert not (results["root"] / name).exists()  # no head was trained before the error
