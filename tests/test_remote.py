"""Tests for rdc_keras.remote: gfile work directories staged locally (ram:// stands for gs://).

TensorFlow's in-memory file system (`ram://`) is a real gfile scheme of this process; a run
trained into it must leave the same files a local run leaves, with no staging path in them.
"""

import json
import pathlib

import pytest
import tensorflow as tf

from rdc_keras import remote
from rdc_keras.config import TrainConfig
from rdc_keras.trainers import runner

gfile = tf.io.gfile
SMALL = dict(epochs=2, steps_per_epoch=3, batch_size=16, verbose=0)


def _tree(url: str) -> dict[str, bytes]:
    """Every file under a gfile directory, by relative path."""
    out = {}
    for directory, _, names in gfile.walk(url):
        for name in names:
            path = f"{directory.rstrip('/')}/{name}"
            if not gfile.exists(path) or gfile.isdir(path):  # ram:// lists by name prefix
                continue
            with gfile.GFile(path, "rb") as handle:
                out[f"{directory[len(url) :].strip('/')}/{name}".strip("/")] = handle.read()
    return out


@pytest.mark.parametrize(
    "path, expected",
    [
        ("ram://bucket/run", True),
        ("gs://bucket/run", True),
        ("file:///tmp/run", False),
        ("/tmp/run", False),
        ("runs/a", False),
        (pathlib.Path("/tmp/x"), False),
        (None, False),
    ],
)
def test_is_remote(path, expected):
    assert remote.is_remote(path) is expected


def test_join_keeps_the_scheme_and_local_paths_stay_paths():
    assert remote.join("ram://b/run/", "heads", "h1") == "ram://b/run/heads/h1"
    assert remote.join("/tmp/x", "a") == "/tmp/x/a"


def test_push_then_pull_round_trips_files_and_maps_paths_in_json(tmp_path):
    local = tmp_path / "run"
    (local / "heads" / "h").mkdir(parents=True)
    (local / "weights.h5").write_bytes(b"\x00\x01binary")
    (local / "heads" / "h" / "head.json").write_text(json.dumps({"dir": f"{local}/heads/h"}))
    (local / "results.json").write_text(json.dumps({"workdir": str(local)}))
    url = "ram://push-pull/run"
    assert remote.push(local, url) == 3
    tree = _tree(url)
    assert set(tree) == {"weights.h5", "heads/h/head.json", "results.json"}
    assert tree["weights.h5"] == b"\x00\x01binary"
    assert json.loads(tree["results.json"]) == {"workdir": url}
    assert json.loads(tree["heads/h/head.json"]) == {"dir": f"{url}/heads/h"}
    assert not any(".push.tmp" in name for name in tree)
    back = tmp_path / "back"
    assert remote.pull(url, back) == 3
    assert json.loads((back / "results.json").read_text()) == {"workdir": str(back)}
    assert (back / "weights.h5").read_bytes() == b"\x00\x01binary"


def test_push_sends_results_last_and_removes_what_is_gone(tmp_path, monkeypatch):
    local = tmp_path / "run"
    (local / "backup").mkdir(parents=True)
    (local / "results.json").write_text("{}")
    (local / "backup" / "ckpt.index").write_text("x")
    (local / "z.txt").write_text("z")
    url = "ram://order/run"
    renamed = []
    original = gfile.rename

    def recording(source, target, overwrite=False):
        renamed.append(target)
        original(source, target, overwrite=overwrite)

    monkeypatch.setattr(gfile, "rename", recording)
    remote.push(local, url)
    assert renamed[-1] == f"{url}/results.json" and len(renamed) == 3
    (local / "backup" / "ckpt.index").unlink()
    (local / "backup").rmdir()
    remote.push(local, url)
    assert set(_tree(url)) == {"results.json", "z.txt"}
    assert not gfile.exists(f"{url}/backup")


def test_pull_of_a_missing_directory_pulls_nothing(tmp_path):
    assert remote.pull("ram://nothing/here", tmp_path / "empty") == 0
    assert (tmp_path / "empty").is_dir()


def test_check_output_dir_names_the_flag(tmp_path):
    with pytest.raises(ValueError, match=r"^--workdir=nosuch://x/run: "):
        remote.check_output_dir("nosuch://x/run", "--workdir")
    remote.write_json("ram://check/file", {"a": 1})
    with pytest.raises(ValueError, match="--workdir=ram://check/file: exists and is not a dir"):
        remote.check_output_dir("ram://check/file", "--workdir")
    assert remote.check_output_dir("ram://check/new", "--workdir") == "ram://check/new"
    assert gfile.isdir("ram://check/new")
    assert remote.read_json("ram://check/file") == {"a": 1}
    with pytest.raises(ValueError, match="--workdir"):  # local paths: files.check_output_dir
        (tmp_path / "f").write_text("x")
        remote.check_output_dir(tmp_path / "f", "--workdir")


@pytest.fixture(scope="module")
def ram_run(classifier_dir):
    url = "ram://runs/tiny"
    pushes = []
    original = remote.push

    def counting(local, target, *args, **kwargs):
        pushes.append(target)
        return original(local, target, *args, **kwargs)

    remote.push = counting
    try:
        config = TrainConfig(workdir=url, classifier_dir=classifier_dir, lambda_c=0.01, **SMALL)
        results = runner.train_run(config)
    finally:
        remote.push = original
    return {"url": url, "config": config, "results": results, "pushes": pushes}


def test_a_run_trains_into_a_ram_work_directory(ram_run):
    url, tree = ram_run["url"], _tree(ram_run["url"])
    assert "results.json" in tree and "config.json" in tree and "metrics.jsonl" in tree
    assert any(name.startswith("encoder/") for name in tree)
    assert any(name.startswith("heads/") for name in tree)
    assert not any(name.startswith("backup/") for name in tree)  # removed once finished
    assert json.loads(tree["config.json"])["config"]["workdir"] == url
    assert ram_run["results"] == json.loads(tree["results.json"])
    assert len(tree["metrics.jsonl"].splitlines()) == SMALL["epochs"]
    for name, data in tree.items():  # no path of the local staging directory is left
        assert b"rdc-staged-" not in data, name
    # Pushed after every epoch (the backup goes with it) and once at the end.
    assert ram_run["pushes"] == [url] * (SMALL["epochs"] + 1)


def test_a_finished_ram_run_is_reported_not_retrained(ram_run):
    before = _tree(ram_run["url"])
    again = runner.train_run(ram_run["config"])
    assert again == ram_run["results"]
    assert _tree(ram_run["url"])["metrics.jsonl"] == before["metrics.jsonl"]
    with pytest.raises(ValueError, match=r"^ram://runs/tiny holds a run with .*lambda_c=0\.01"):
        runner.train_run(TrainConfig(**{**vars(ram_run["config"]), "lambda_c": 0.5}))


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"strategy": "multi_worker"}, "multi_worker needs a shared local or NFS"),
        ({"classifier_dir": "ram://elsewhere/clf"}, "--classifier_dir=ram://elsewhere/clf: only"),
    ],
)
def test_remote_runs_refuse_what_they_cannot_stage(classifier_dir, overrides, match):
    config = TrainConfig(
        workdir="ram://refused/run", **{"classifier_dir": classifier_dir, **SMALL, **overrides}
    )
    with pytest.raises(ValueError, match=match):
        runner.train_run(config)
    assert not gfile.exists("ram://refused/run")


def test_check_local_refuses_a_url_with_the_reason():
    remote.check_local("/tmp/study", "--workdir", "claims")
    remote.check_local(None, "--workdir", "claims")
    with pytest.raises(ValueError, match=r"^--workdir=gs://b/s: must be a local or NFS path \(c"):
        remote.check_local("gs://b/s", "--workdir", "claims need flock")


def test_single_files_round_trip_through_urls_and_local_paths(tmp_path):
    for path in ("ram://files/a/b.rdc", str(tmp_path / "a" / "b.rdc")):
        assert not remote.is_file(path)
        (tmp_path / "a").mkdir(exist_ok=True)
        remote.write_bytes(path, b"\x89RDC\x02")
        assert remote.is_file(path) and remote.read_bytes(path) == b"\x89RDC\x02"
        assert not any(".push.tmp" in name for name in gfile.listdir(path.rsplit("/", 1)[0]))
    assert remote.check_output_file("ram://files/c/d.json", "--json") == "ram://files/c/d.json"
    with pytest.raises(ValueError, match=r"^--output=ram://files/a: names a directory"):
        remote.check_output_file("ram://files/a", "--output")
    with pytest.raises(ValueError, match=r"^--output=nosuch://x/y: "):
        remote.check_output_file("nosuch://x/y", "--output")


def test_local_copy_pulls_a_url_once_and_keeps_local_paths(tmp_path):
    assert remote.local_copy(tmp_path) == tmp_path
    remote.write_bytes("ram://copy/model/assets/rdc.json", b"{}")
    remote.write_bytes("ram://copy/single.bin", b"xyz")
    copy = remote.local_copy("ram://copy/model")
    assert copy.name == "model" and (copy / "assets" / "rdc.json").read_bytes() == b"{}"
    remote.write_bytes("ram://copy/model/assets/rdc.json", b"changed")
    assert remote.local_copy("ram://copy/model/") == copy  # cached: pulled once per process
    assert remote.local_copy("ram://copy/single.bin").read_bytes() == b"xyz"


def test_renamed_paths_report_local_copies_under_their_urls():
    payload = {"runs": [{"run": "/tmp/rdc-copy-x/run", "head": "/tmp/rdc-copy-x/run/heads/h"}]}
    mapping = {"/tmp/rdc-copy-x/run": "gs://b/run"}
    assert remote.renamed_paths(payload, mapping) == {
        "runs": [{"run": "gs://b/run", "head": "gs://b/run/heads/h"}]
    }


def test_pull_and_push_survive_listings_by_name_prefix(tmp_path):
    # ram:// lists c0.04's files under c0 (as ".04"); neither side may trip over it.
    local = tmp_path / "run"
    for relative in ("c0/x.txt", "c0.04/y.txt"):
        (local / relative).parent.mkdir(parents=True, exist_ok=True)
        (local / relative).write_text(relative)
    url = "ram://prefix/run"
    remote.push(local, url)
    remote.push(local, url)
    assert set(_tree(url)) == {"c0/x.txt", "c0.04/y.txt"}
    assert remote.pull(url, tmp_path / "back") == 2
    assert (tmp_path / "back" / "c0.04" / "y.txt").read_text() == "c0.04/y.txt"
