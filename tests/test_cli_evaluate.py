"""Tests for the rdc-evaluate binary (rdc_keras.cli.evaluate): every head, one judge, one seed.

The runs: conftest's tiny rdc-train run, and a universal head run on its frozen encoder inside a
work directory laid out as rdc-universal's. The console script runs once on both; bad-flag
cases run through the binary's `app.run` in one driver process. Both processes start at once.
"""

import json
import pathlib
import shutil

import numpy as np
import pytest
from conftest import run_binary

from rdc_keras import data, evaluation, runs
from rdc_keras.config import TrainConfig
from rdc_keras.runs import load_encoder, load_head
from rdc_keras.trainers.runner import train_run

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PROGRAM = "rdc-evaluate"
HEAD = "d1-c0-p0"
SEED = 5


@pytest.fixture(scope="module")
def universal_dir(tiny_run, classifier_dir, tmp_path_factory) -> pathlib.Path:
    """A work directory holding one head run trained on tiny_run's frozen encoder."""
    root = tmp_path_factory.mktemp("universal")
    train_run(
        TrainConfig(
            workdir=str(root / HEAD),
            dataset="digits",
            latent_dim=2,
            num_levels=3,
            classifier_dir=classifier_dir,
            encoder_dir=str(tiny_run / "encoder"),
            head_name=HEAD,
            epochs=1,
            steps_per_epoch=2,
            batch_size=32,
            verbose=0,
        )
    )
    return root


def _bad_cases(run: pathlib.Path, root: pathlib.Path, mnist: pathlib.Path) -> dict:
    """name -> (flags, text the one-line error must contain)."""
    return {
        "no_run": ([], "give --run"),
        "not_a_run": ([f"--run={root / 'nonexistent'}"], "not a finished run"),
        "unknown_head": ([f"--run={run}", "--head=nope"], "no head named nope"),
        "unknown_dataset": ([f"--run={run}", "--dataset=cifar"], "cifar"),
        "wrong_image_shape": (
            [f"--run={run}", "--dataset=mnist_idx", f"--data_dir={mnist}"],
            "mnist_idx images are 28x28x1 but the encoder",
        ),
        "negative_w1": ([f"--run={run}", "--w1_steps=-1"], "--w1_steps"),
        "bad_split": ([f"--run={run}", "--split=val"], "--split"),
        "run_url_missing": (["--run=ram://runs/a"], "--run=ram://runs/a: directory not found"),
    }


@pytest.fixture(scope="module")
def results(tiny_run, universal_dir, mnist_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_evaluate")
    cases = _bad_cases(tiny_run, root, mnist_dir)
    bad = {name: [*flags, f"--output={root / name}.json"] for name, (flags, _) in cases.items()}
    both = [f"--run={tiny_run}", f"--run={universal_dir}", f"--seed={SEED}"]
    commands = {"both": [*both, f"--output={root / 'both.json'}"]}
    out = run_binary(PROGRAM, "rdc_keras.cli.evaluate", root, commands, bad)
    return {"root": root, "out": out}


@pytest.fixture(scope="module")
def written(results):
    code, _, stderr = results["out"]["both"]
    assert code == 0, stderr
    return json.loads((results["root"] / "both.json").read_text())


def test_scores_every_head_of_every_run_with_one_judge(written, tiny_run, universal_dir):
    heads = {(record["run"], record["head"]) for record in written["heads"]}
    assert heads == {(str(tiny_run), "d1-c0.04-p0"), (str(universal_dir / HEAD), HEAD)}
    fingerprints = {record["encoder_fingerprint"] for record in written["heads"]}
    assert len(fingerprints) == 1  # the universal head decodes the frozen encoder's bits
    config = written["config"]
    assert (config["dataset"], config["split"], config["seed"]) == ("digits", "test", SEED)
    assert config["num_images"] == len(data.load_arrays("digits", "test")[0])
    assert set(written["units"]) >= {"mse", "psnr", "ce_nats", "accuracy", "rate_bits"}


def test_metrics_equal_a_direct_evaluation(written, classifier_dir):
    images, labels = data.load_arrays("digits", "test")
    judge, _ = runs.load_classifier(classifier_dir)
    assert written["config"]["reference_classifier"] == classifier_dir
    for record in written["heads"]:
        run = pathlib.Path(record["run"])
        config = json.loads((run / "config.json").read_text())["config"]
        encoder, description = load_encoder(config["encoder_dir"] or run / "encoder")
        decoder, _ = load_head(run / "heads" / record["head"], description)
        expected = evaluation.evaluate(
            encoder, decoder, (images, labels), judge, num_levels=3, seed=SEED
        )
        for key in ("mse", "psnr", "ce_nats", "accuracy", "rate_bits", "num_images"):
            assert record[key] == pytest.approx(expected[key], rel=1e-6), key
        assert record["rate_bits"] == pytest.approx(2 * np.log2(3))


def test_prints_one_line_per_head(results, written):
    _, stdout, _ = results["out"]["both"]
    lines = [line for line in stdout.splitlines() if " mse=" in line]
    assert len(lines) == len(written["heads"]) == 2
    assert stdout.strip().endswith(f"wrote {results['root'] / 'both.json'}")


def test_head_filter_and_seed(tiny_run, universal_dir, written):
    one = evaluation.evaluate_runs([tiny_run, universal_dir], heads=[HEAD], seed=SEED)
    assert [record["head"] for record in one["heads"]] == [HEAD]
    same = next(record for record in written["heads"] if record["head"] == HEAD)
    assert one["heads"][0]["mse"] == same["mse"]  # same seed, same numbers
    other = evaluation.evaluate_runs([universal_dir], seed=SEED + 1)
    assert other["heads"][0]["mse"] != same["mse"]  # another dither


def test_find_runs_expands_directories_above_runs(tiny_run, universal_dir, tmp_path):
    found = runs.find_runs([tiny_run, universal_dir])
    assert [run.path for run in found] == [tiny_run, universal_dir / HEAD]
    study = tmp_path / "study"  # a study: nested runs, and results.json files that are not runs
    nested = study / "e2e" / "d2-L3" / "c0.04"
    shutil.copytree(tiny_run, nested)
    (study / "results.json").write_text("{}")
    (study / "saved_models" / "heads").mkdir(parents=True)  # an export tree is not a run
    assert [run.path for run in runs.find_runs([study])] == [nested]


@pytest.mark.parametrize(
    "name",
    [
        "no_run",
        "not_a_run",
        "unknown_head",
        "unknown_dataset",
        "wrong_image_shape",
        "negative_w1",
        "bad_split",
        "run_url_missing",
    ],
)
def test_bad_input_fails_with_one_line_and_writes_nothing(results, tiny_run, mnist_dir, name):
    code, _, stderr = results["out"][name]
    match = _bad_cases(tiny_run, results["root"], mnist_dir)[name][1]
    assert code != 0, stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith(f"{PROGRAM}: error:")]
    assert len(lines) == 1, stderr
    assert match in lines[0], lines[0]
    assert not (results["root"] / f"{name}.json").exists()
