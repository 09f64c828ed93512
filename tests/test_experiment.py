"""A reduced `rdc-experiment` study end to end (rdc_keras.experiment): files and their contents.

The study runs once per module (tiny settings: two rates, two lambda_c, one epoch of two steps)
and every test reads what it wrote.
"""

import csv
import dataclasses
import json
import math
import pathlib
import re

import numpy as np
import pytest

from rdc_keras import data, evaluation, experiment, runs, study_plan, study_report
from rdc_keras.files import read_json
from rdc_keras.layers import rate_bits

MAIN, OTHER = (2, 3), (1, 3)
LAMBDAS = (0.0, 0.04)
METRICS = ("mse", "psnr", "ce_nats", "accuracy", "rate_bits", "w1")
UNIVERSAL = ("universal-paper", "universal-multihead")


def _tiny(**overrides) -> experiment.StudyConfig:
    """The digits study over LAMBDAS, one epoch of two steps per model."""
    settings = dict(
        e2e_lambda_c=LAMBDAS,
        universal_lambda_c=LAMBDAS,
        base_lambda_c=0.04,
        epochs=1,
        steps_per_epoch=2,
        batch_size=32,
        classifier_epochs=1,
    )
    return experiment.study_config("digits", **settings, **overrides)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    config = _tiny(rates=(MAIN, OTHER), grid_images=4)
    root = tmp_path_factory.mktemp("study")
    lines = []
    results = experiment.run_study(config, root, seed=3, export=True, log=lines.append, verbose=1)
    return {"config": config, "root": root, "results": results, "log": lines}


def _expected_models() -> set[str]:
    names = {f"e2e-d{d}-L{L}-c{c:g}" for d, L in (MAIN, OTHER) for c in LAMBDAS}
    names |= {f"multihead-c{c:g}" for c in LAMBDAS}
    names |= {f"{family}-c{c:g}" for family in UNIVERSAL for c in LAMBDAS}
    return names


def _by_model(results):
    return {row["model"]: row for row in results["models"]}


def test_results_json_has_every_model_every_metric_and_units(study):
    results = json.loads((study["root"] / "results.json").read_text())
    assert results == json.loads(json.dumps(study["results"]))  # the returned dict is the file
    rows = _by_model(results)
    assert set(rows) == _expected_models()
    for row in rows.values():
        for metric in METRICS:
            assert metric in row, (row["model"], metric)
        for metric in ("mse", "psnr", "ce_nats", "accuracy"):
            assert math.isfinite(row[metric]), (row["model"], metric)
        assert 0.0 <= row["accuracy"] <= 1.0
        assert row["rate_bits"] == pytest.approx(row["latent_dim"] * math.log2(row["num_levels"]))
        assert row["w1"] is None  # no post-hoc critic in this study
        assert row["train_seconds"] > 0
        assert (study["root"] / row["workdir"] / "heads" / row["model"] / "head.json").is_file()
    for metric in (*METRICS, "train_seconds"):
        assert results["units"][metric], metric
    assert results["units"]["ce_nats"] == "nats"
    assert results["study"]["seed"] == 3
    assert results["reference_classifier"]["accuracy"] > 0


def test_results_match_an_independent_evaluation(study):
    """Reload one universal head and score it again with the study's judge, data and seed."""
    root = study["root"]
    row = _by_model(study["results"])["universal-paper-c0.04"]
    head_dir = root / row["workdir"] / "heads" / row["model"]
    encoder, description = runs.load_encoder(read_json(head_dir / "head.json")["encoder_dir"])
    decoder, _ = runs.load_head(head_dir, description)
    judge, _ = runs.load_classifier(root / "classifier")
    metrics = evaluation.evaluate(
        encoder, decoder, data.load_arrays("digits", "test"), judge, num_levels=3, seed=3
    )
    for key in ("mse", "psnr", "ce_nats", "accuracy", "rate_bits"):
        assert metrics[key] == pytest.approx(row[key], rel=1e-5), key


def test_results_csv_has_the_same_rows(study):
    with open(study["root"] / "results.csv", newline="") as stream:
        csv_rows = list(csv.DictReader(stream))
    json_rows = study["results"]["models"]
    assert [row["model"] for row in csv_rows] == [row["model"] for row in json_rows]
    for csv_row, json_row in zip(csv_rows, json_rows):
        assert set(csv_row) == set(json_row)
        for key, value in json_row.items():
            if value is None:
                assert csv_row[key] == "", key
            elif isinstance(value, (int, float)):
                assert float(csv_row[key]) == pytest.approx(value, rel=1e-12), key
            else:
                assert csv_row[key] == value, key


def _penalty_table(report: str) -> list[list[str]]:
    section = report.split("## E2E vs universal", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| universal-")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_report_penalties_match_results(study):
    report = (study["root"] / "report.md").read_text()
    rows = study["results"]["models"]
    e2e = {
        row["lambda_c"]: row for row in rows if row["family"] == "e2e" and row["latent_dim"] == 2
    }
    universal = {(r["family"], r["lambda_c"]): r for r in rows if r["family"] in UNIVERSAL}
    table = _penalty_table(report)
    assert len(table) == len(UNIVERSAL) * len(LAMBDAS)
    seen = set()
    for family, lambda_c, mse_e2e, mse_uni, penalty, *_ in table:
        key = (family, float(lambda_c))
        seen.add(key)
        ref, row = e2e[key[1]], universal[key]
        assert float(mse_e2e) == pytest.approx(ref["mse"], abs=5e-6)
        assert float(mse_uni) == pytest.approx(row["mse"], abs=5e-6)
        expected = 100.0 * (row["mse"] - ref["mse"]) / ref["mse"]
        assert re.fullmatch(r"[+-]\d+\.\d%", penalty), penalty
        assert float(penalty[:-1]) == pytest.approx(expected, abs=0.05 + 1e-9)
    assert seen == set(universal)
    # The structured penalties agree with the models too.
    for penalty in study["results"]["penalties"]:
        ref = e2e[penalty["lambda_c"]]
        row = universal[(penalty["family"], penalty["lambda_c"])]
        expected = 100.0 * (row["mse"] - ref["mse"]) / ref["mse"]
        assert penalty["distortion_penalty_percent"] == pytest.approx(expected, rel=1e-9)


def test_report_describes_training_and_lists_every_model(study):
    report = (study["root"] / "report.md").read_text()
    assert "## How the models were trained" in report
    assert "Study wall time:" in report
    for name in _expected_models():
        assert f"| {name} |" in report, name


def test_report_is_rendered_from_the_results_file(study):
    """report.md is study_report.render of results.json: nothing in it comes from elsewhere."""
    root = study["root"]
    results = json.loads((root / "results.json").read_text())
    expected = study_report.render(results, study["config"], rate_bits(*MAIN))
    assert (root / "report.md").read_text() == expected


def test_figures_exist_and_the_report_links_them(study):
    root = study["root"]
    names = ["tradeoff", "accuracy", "rates"] + [
        f"reconstructions-{f}" for f in ("e2e", *UNIVERSAL)
    ]
    for name in names:
        path = root / "figures" / f"{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert path.stat().st_size > 2000, name
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (root / "report.md").read_text())
    assert sorted(links) == sorted(f"figures/{name}.png" for name in names)


def test_universal_heads_record_their_base_encoder(study):
    root = study["root"]
    tag = f"d{MAIN[0]}-L{MAIN[1]}"
    bases = {
        "universal-paper": root / "e2e" / tag / "c0.04" / "encoder",
        "universal-multihead": root / "multihead" / tag / "encoder",
    }
    fingerprints = {}
    for family, encoder_dir in bases.items():
        fingerprint = read_json(encoder_dir / "network.json")["fingerprint"]
        fingerprints[family] = fingerprint
        for lambda_c in LAMBDAS:
            head = root / family / tag / f"c{lambda_c:g}" / "heads" / f"{family}-c{lambda_c:g}"
            description = read_json(head / "head.json")
            assert description["encoder_fingerprint"] == fingerprint
            assert pathlib.Path(description["encoder_dir"]).resolve() == encoder_dir.resolve()
            assert description["lambda_c"] == lambda_c
            assert not (head.parent.parent / "encoder").exists()  # no encoder of its own
    assert fingerprints["universal-paper"] != fingerprints["universal-multihead"]


def test_universal_encoders_and_heads_are_exported(study):
    """Each universal family is one export: its base encoder and one head per lambda_c."""
    root = study["root"]
    results = study["results"]
    for family in ("universal-paper", "universal-multihead"):
        manifest = json.loads((root / "saved_models" / family / "manifest.json").read_text())
        models = [row for row in results["models"] if row["family"] == family]
        assert sorted(manifest["heads"]) == sorted(row["model"] for row in models)
        encoder_dir = root / models[0]["workdir"] / "heads" / models[0]["model"]
        head = json.loads((encoder_dir / "head.json").read_text())
        assert manifest["encoder_fingerprint"] == head["encoder_fingerprint"]
        assert (root / "saved_models" / family / "encoder" / "1" / "saved_model.pb").exists()
    # A second run of the same study finds the exports up to date instead of adding versions.
    lines = []
    experiment.run_study(study["config"], root, seed=3, export=True, log=lines.append)
    assert sum("up to date" in line for line in lines) == 2
    assert not (root / "saved_models" / "universal-paper" / "encoder" / "2").exists()


def test_progress_lines_cover_every_training(study):
    jobs = [line for line in study["log"] if re.match(r"\[\d+/\d+\] ", line)]
    count = 2 * len(LAMBDAS) + 1 + len(UNIVERSAL) * len(LAMBDAS)
    # verbose=1: a line when each training starts (naming its directory) and when it ends.
    assert len(jobs) == 2 * count
    finished = [line for line in jobs if "mse=" in line]
    assert len(finished) == count
    assert all(str(study["root"]) in line for line in jobs if line not in finished)
    assert any("report.md" in line for line in study["log"])
    # Each finished model but the last says how many remain and when the study should end.
    for k, line in enumerate(finished):
        match = re.search(r"\((\d+) s(?:; (\d+) to train, ETA (\d+ (?:s|min \d\d s)))?\)$", line)
        assert match, line
        remaining = count - 1 - k
        assert (match.group(2) is None) == (remaining == 0), line
        if remaining:
            assert int(match.group(2)) == remaining, line


def _weights(root: pathlib.Path) -> dict[pathlib.Path, int]:
    return {path: path.stat().st_mtime_ns for path in root.rglob("*.h5")}


def test_rerun_reports_without_retraining(study):
    root = study["root"]
    before = _weights(root)
    # classifier; 4 E2E encoders + decoders; multi-head encoder + 2 decoders; 4 universal heads
    assert len(before) == 1 + 8 + 3 + 4
    logs = {path: path.read_text() for path in root.rglob("metrics.jsonl")}
    lines = []
    again = experiment.run_study(study["config"], root, seed=3, export=False, log=lines.append)
    assert not any("ETA" in line for line in lines)  # nothing left to train
    assert _weights(root) == before
    assert {path: path.read_text() for path in root.rglob("metrics.jsonl")} == logs
    assert again["models"] == json.loads(json.dumps(study["results"]["models"]))


def test_changed_settings_are_refused(study):
    root = study["root"]
    study_file = (root / "study.json").read_text()
    changed = dataclasses.replace(study["config"], epochs=2)
    with pytest.raises(ValueError, match="epochs"):
        experiment.run_study(changed, root, seed=3, export=False, log=lambda line: None)
    with pytest.raises(ValueError, match="seed"):
        experiment.run_study(study["config"], root, seed=4, export=False, log=lambda line: None)
    assert (root / "study.json").read_text() == study_file


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"base_lambda_c": 0.5}, "not in the E2E grid"),
        ({"rates": ((0, 3),)}, "rates"),
        ({"rates": ((2, 1),)}, "rates"),
        ({"data_dir": "/nonexistent/rdc"}, "data_dir"),
        ({"e2e_lambda_c": (0.0, -0.01), "base_lambda_c": 0.0}, "e2e_lambda_c"),
        ({"universal_lambda_c": ()}, "universal_lambda_c"),
        ({"multihead_lambda_c": (0.0, -0.01)}, "multihead_lambda_c"),
        ({"multihead_lambda_c": ()}, "multihead_lambda_c"),
    ],
)
def test_bad_study_settings_raise(overrides, match):
    with pytest.raises(ValueError, match=match):
        experiment.study_config("digits", **overrides)
    with pytest.raises(ValueError, match="unknown study preset"):
        experiment.study_config("cifar")


def test_the_multihead_base_grid_defaults_to_the_universal_one():
    grid = experiment.PRESETS["digits"].universal_lambda_c
    same = experiment.study_config("digits", multihead_lambda_c=grid)
    assert same == experiment.study_config("digits")  # recorded as the default's study
    assert same.multihead_heads == grid
    fewer = experiment.study_config("digits", universal_lambda_c=(0.0,), multihead_lambda_c=grid)
    assert fewer.multihead_lambda_c == grid and fewer.multihead_heads == grid


def test_presets_are_consistent():
    for name, config in experiment.PRESETS.items():
        assert config.name == name
        assert config.base_lambda_c in config.e2e_lambda_c
        assert experiment.study_config(name) == config
    assert experiment.PRESETS["mnist10k"].rates == ((3, 3),)  # 3 log2 3 = 4.75 bits
    assert experiment.PRESETS["mnist10k"].e2e_lambda_c == (0.0, 0.0033, 0.0066, 0.01, 0.015)
    assert np.all(np.diff(experiment.PRESETS["digits"].e2e_lambda_c) > 0)


@pytest.mark.parametrize("bases", [("paper",), ("multihead",), ("paper", "multihead")])
def test_base_selects_the_universal_families(study, bases):
    jobs = study_plan.jobs(study["config"], study["root"], bases)
    families = {job.family for job in jobs}
    expected = {"e2e"} | {experiment.BASES[base] for base in bases}
    if "multihead" in bases:
        expected.add("multihead-joint")
    assert families == expected
    # The report describes and shows only the families that were trained.
    results = json.loads((study["root"] / "results.json").read_text())
    results["models"] = [row for row in results["models"] if row["family"] in families]
    results["penalties"] = [p for p in results["penalties"] if p["family"] in families]
    report = study_report.render(results, study["config"], rate_bits(*MAIN))
    assert ("multi-head base" in report) == ("multihead" in bases)
    assert ("paper base" in report) == ("paper" in bases)
    assert ("reconstructions-universal-multihead.png" in report) == ("multihead" in bases)


def test_unknown_base_is_refused(tmp_path):
    config = experiment.study_config("digits")
    with pytest.raises(ValueError, match="bases must be"):
        experiment.run_study(config, tmp_path / "study", bases=("e2e",), log=lambda line: None)
    assert not (tmp_path / "study").exists()


def test_compare_draws_other_studies_beside_this_one(study, tmp_path):
    root = study["root"]  # re-reported without retraining (a copy would move its paths)
    other = json.loads((study["root"] / "results.json").read_text())
    other["study"] = {**other["study"], "name": "other-study", "epochs": 7}
    for row in other["models"]:
        row["lambda_p"] = 0.02
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match=r"no results\.json of a finished study"):
        experiment.run_study(
            study["config"], root, seed=3, export=False, compare=[tmp_path / "none"]
        )
    results = experiment.run_study(
        study["config"],
        root,
        seed=3,
        export=False,
        log=lambda line: None,
        compare=[tmp_path / "other.json"],
    )
    assert results["compared_with"] == [
        {
            "name": "other-study",
            "path": str(tmp_path / "other.json"),
            "epochs": 7,
            "lambda_p": [0.02],
        }
    ]
    figure = root / "figures" / "accuracy-compared.png"
    assert figure.stat().st_size > 10_000
    report = (root / "report.md").read_text()
    assert "![accuracy compared](figures/accuracy-compared.png)" in report
    assert "`other-study` (7 epochs)" in report
    assert json.loads((root / "results.json").read_text())["compared_with"][0]["epochs"] == 7
    # Re-reported without --compare, the study is as before.
    again = experiment.run_study(study["config"], root, seed=3, export=False, log=print)
    assert "compared_with" not in again
    assert "accuracy-compared" not in (root / "report.md").read_text()


# A study over seeds: one seed first (the one-seed layout and outputs), then a second seed added.
SEEDS = (3, 4)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    config = _tiny(rates=(MAIN,), grid_images=2)
    root = tmp_path_factory.mktemp("seeded")
    common = dict(export=False, bases=("paper",), log=lambda line: None)
    one = experiment.run_study(config, root, seed=SEEDS[0], **common)
    one_weights = _weights(root)
    lines = []
    both = experiment.run_study(
        config, root, seed=SEEDS[0], seeds=SEEDS, **{**common, "log": lines.append}
    )
    return {
        "config": config,
        "root": root,
        "one": one,
        "one_weights": one_weights,
        "both": both,
        "log": lines,
    }


def test_a_one_seed_study_keeps_its_outputs_shape(seeded):
    one = seeded["one"]
    assert "seeds" not in one and "summary" not in one
    assert all("seed" not in row for row in one["models"] + one["penalties"])
    assert set(_by_model(one)) == {
        *(f"e2e-d2-L3-c{c:g}" for c in LAMBDAS),
        *(f"universal-paper-c{c:g}" for c in LAMBDAS),
    }


def test_each_seed_trains_in_its_own_directories_with_its_own_seed(seeded):
    root, both = seeded["root"], seeded["both"]
    assert both["seeds"] == list(SEEDS)
    assert sorted({row["seed"] for row in both["models"]}) == list(SEEDS)
    for row in both["models"]:
        workdir = root / row["workdir"]
        assert workdir.is_relative_to(root / f"seed-{SEEDS[1]}") == (row["seed"] == SEEDS[1])
        assert read_json(workdir / "config.json")["config"]["seed"] == row["seed"]
        cached = read_json(workdir / f"evaluation-{row['model']}.json")
        assert cached["seed"] == row["seed"]  # the evaluation's dither follows the training seed
    assert not (root / f"seed-{SEEDS[0]}").exists()  # the first seed keeps the one-seed layout
    assert len(list(root.rglob("classifier.h5"))) <= 1  # one reference classifier for all seeds


def test_adding_a_seed_does_not_retrain_the_first(seeded):
    after = _weights(seeded["root"])
    assert {path: after[path] for path in seeded["one_weights"]} == seeded["one_weights"]
    first = [
        {key: value for key, value in row.items() if key != "seed"}
        for row in seeded["both"]["models"]
        if row["seed"] == SEEDS[0]
    ]
    assert first == json.loads(json.dumps(seeded["one"]["models"]))
    trained = [line for line in seeded["log"] if "ETA" in line or "to train" in line]
    assert all(f"seed={SEEDS[1]}" in line for line in trained), trained


def test_rerunning_the_seeds_trains_nothing(seeded):
    before = _weights(seeded["root"])
    lines = []
    again = experiment.run_study(
        seeded["config"],
        seeded["root"],
        seed=SEEDS[0],
        seeds=SEEDS,
        export=False,
        bases=("paper",),
        log=lines.append,
    )
    assert _weights(seeded["root"]) == before
    assert not any("ETA" in line for line in lines)
    assert again["summary"] == json.loads(json.dumps(seeded["both"]["summary"]))


def test_summary_is_the_mean_and_std_of_the_per_seed_rows(seeded):
    both = seeded["both"]
    summary = {row["model"]: row for row in both["summary"]["models"]}
    assert set(summary) == {row["model"] for row in both["models"]}
    for name, entry in summary.items():
        rows = [row for row in both["models"] if row["model"] == name]
        assert entry["n"] == len(rows) == 2 and entry["seeds"] == list(SEEDS)
        for metric in ("mse", "ce_nats", "accuracy", "judge_fd"):
            values = np.array([row[metric] for row in rows])
            assert entry[metric] == pytest.approx(values.mean(), rel=1e-12)
            assert entry[f"{metric}_std"] == pytest.approx(values.std(ddof=1), rel=1e-9)
            assert entry[f"{metric}_n"] == 2


def test_penalties_are_taken_within_each_seed(seeded):
    both = seeded["both"]
    rows = {(row["seed"], row["model"]): row for row in both["models"]}
    assert len(both["penalties"]) == 2 * len(LAMBDAS)
    for penalty in both["penalties"]:
        seed, c = penalty["seed"], penalty["lambda_c"]
        universal = rows[(seed, f"universal-paper-c{c:g}")]["mse"]
        e2e = rows[(seed, f"e2e-d2-L3-c{c:g}")]["mse"]
        assert penalty["distortion_penalty_percent"] == pytest.approx(100 * (universal - e2e) / e2e)
    for entry in both["summary"]["penalties"]:
        values = [
            p["distortion_penalty_percent"]
            for p in both["penalties"]
            if p["lambda_c"] == entry["lambda_c"]
        ]
        assert entry["distortion_penalty_percent"] == pytest.approx(np.mean(values))
    finding = next(
        f for f in both["summary"]["findings"] if f["name"].endswith("penalty at matched λ")
    )
    for seed, value in zip(finding["seeds"], finding["values"]):
        mine = [p["distortion_penalty_percent"] for p in both["penalties"] if p["seed"] == seed]
        assert value == pytest.approx(np.mean(mine))
    assert finding["holds_on_every_seed"] == (len({np.sign(v) for v in finding["values"]}) == 1)


def test_the_report_and_tables_show_the_spread_over_seeds(seeded):
    root = seeded["root"]
    report = (root / "report.md").read_text()
    assert "n = 2" in report and "±" in report and "## What holds across seeds" in report
    assert f"seeds {SEEDS[0]}, {SEEDS[1]}" in report
    with (root / "results.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert sorted({int(row["seed"]) for row in table}) == list(SEEDS)
    assert len(table) == len(seeded["both"]["models"])
    with (root / "results-summary.csv").open() as handle:
        summary = list(csv.DictReader(handle))
    assert {row["model"] for row in summary} == {row["model"] for row in table}
    assert all(row["n"] == "2" for row in summary)


def test_seeds_must_be_distinct_and_start_with_the_study_seed(seeded):
    for seeds, match in (((3, 3), "distinct"), ((4, 3), "first must be"), ((), "distinct")):
        with pytest.raises(ValueError, match=match):
            experiment.run_study(
                seeded["config"], seeded["root"], seed=3, seeds=seeds, log=lambda line: None
            )


def test_report_only_leaves_out_unfinished_models_of_further_seeds(seeded):
    # Last in this module: it rewrites the seeded study's results for three seeds.
    before = _weights(seeded["root"])
    lines = []
    results = experiment.run_study(
        seeded["config"],
        seeded["root"],
        seed=SEEDS[0],
        seeds=(*SEEDS, 9),
        export=False,
        bases=("paper",),
        log=lines.append,
        report_only=True,
    )
    assert _weights(seeded["root"]) == before  # nothing trained
    assert any("4 model(s) of further seeds are not finished" in line for line in lines), lines
    assert results["seeds"] == [*SEEDS, 9]
    assert {row["seed"] for row in results["models"]} == set(SEEDS)
    assert all(entry["n"] == 2 for entry in results["summary"]["models"])
    report = (seeded["root"] / "report.md").read_text()
    assert "n = 3 unless a cell says otherwise" in report and "(n=2)" in report
    assert not (seeded["root"] / "seed-9").exists()


def test_a_study_runs_into_a_gfile_url_by_one_process():
    import tensorflow as tf

    url, config = "ram://studies/tiny", _tiny(rates=(MAIN,), grid_images=2)
    common = dict(seed=3, export=False, bases=("paper",))
    lines = []
    results = experiment.run_study(config, url, log=lines.append, **common)
    tree = {}
    for directory, _, names in tf.io.gfile.walk(url):
        for name in names:
            path = f"{directory.rstrip('/')}/{name}"
            if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):  # ram:// lists by prefix
                with tf.io.gfile.GFile(path, "rb") as handle:
                    tree[f"{directory[len(url) :].strip('/')}/{name}".strip("/")] = handle.read()
    assert json.loads(tree["results.json"]) == json.loads(json.dumps(results))
    assert {"report.md", "results.csv", "study.json", "figures/tradeoff.png"} <= set(tree)
    assert len([name for name in tree if name.endswith("/results.json")]) == 4  # the trainings
    assert not any(b"rdc-staged-" in data for data in tree.values())
    assert not any("rdc-staged-" in line for line in lines)
    again = []
    experiment.run_study(config, url, log=again.append, **common)
    assert not any("ETA" in line for line in again)  # resumed from the URL: nothing to train
    with pytest.raises(ValueError, match="--workdir=ram://studies/tiny: must be a local or NFS"):
        experiment.run_model(config, url, "e2e-d2-L3-c0", **common)
