"""Tests for rdc_keras.files: atomic writes (text, bytes, writer functions), JSON, directories."""

import json
import pathlib

import numpy as np
import pytest

from rdc_keras import files


def _leftovers(directory: pathlib.Path) -> list[str]:
    """Hidden temporary files or directories left next to the outputs."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_atomic_write_text_bytes_and_writer(tmp_path):
    files.atomic_write(tmp_path / "a" / "t.txt", "text")
    files.atomic_write(tmp_path / "a" / "b.bin", b"\x00\x01")

    def save(tmp: pathlib.Path) -> None:
        with open(tmp, "wb") as stream:  # np.save(path) would append ".npy" to the temp name
            np.save(stream, np.eye(2))

    files.atomic_write(tmp_path / "a" / "n.npy", save)
    assert (tmp_path / "a" / "t.txt").read_text() == "text"
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"
    np.testing.assert_array_equal(np.load(tmp_path / "a" / "n.npy"), np.eye(2))
    assert _leftovers(tmp_path / "a") == []


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.txt"
    files.atomic_write(path, "old")

    def fail(tmp: pathlib.Path) -> None:
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        files.atomic_write(path, fail)
    assert path.read_text() == "old"
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------------
# JSON files


def test_write_json_round_trip_and_no_temporary_file(tmp_path):
    payload = {"b": [1, 2.5], "a": {"nested": None}, "path": pathlib.Path("x/y"), "arr": np.eye(2)}
    files.write_json(tmp_path / "sub" / "out.json", payload)
    loaded = json.loads((tmp_path / "sub" / "out.json").read_text())
    assert loaded == {"b": [1, 2.5], "a": {"nested": None}, "path": "x/y", "arr": [[1, 0], [0, 1]]}
    assert files.read_json(tmp_path / "sub" / "out.json") == loaded
    assert _leftovers(tmp_path / "sub") == []


def test_write_json_failure_keeps_previous_file(tmp_path):
    path = tmp_path / "out.json"
    files.write_json(path, {"v": 1})
    with pytest.raises(TypeError, match="not JSON serializable"):
        files.write_json(path, {"v": object()})
    assert files.read_json(path) == {"v": 1}
    assert _leftovers(tmp_path) == []


def test_read_json_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"missing\.json: file not found"):
        files.read_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON"):
        files.read_json(tmp_path / "bad.json")


# ------------------------------------------------------------------------------------------------
# atomic_directory


def test_atomic_directory_creates_on_success(tmp_path):
    target = tmp_path / "net"
    with files.atomic_directory(target) as tmp:
        assert tmp != target and tmp.parent == tmp_path
        (tmp / "a.txt").write_text("new")
        assert not target.exists()  # nothing visible before the block ends
    assert (target / "a.txt").read_text() == "new"
    assert _leftovers(tmp_path) == []


def test_atomic_directory_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "net"
    with pytest.raises(RuntimeError, match="boom"), files.atomic_directory(target) as tmp:
        (tmp / "half.txt").write_text("partial")
        raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_replaces_whole_or_keeps_old(tmp_path):
    target = tmp_path / "net"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), files.atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    with files.atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert _leftovers(tmp_path) == []
