"""Tests for rdc_keras.files: atomic writes (text, bytes, writer functions), JSON, directories,
claims."""

import json
import os
import pathlib
import subprocess
import sys

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


# ------------------------------------------------------------------------------------------------
# Leftovers of killed writers, permissions, output checks.


def _dead_pid() -> int:
    """A process id no process can have (above the kernel's pid_max; never reused)."""
    return int(pathlib.Path("/proc/sys/kernel/pid_max").read_text()) + 1


def test_stale_staging_of_a_dead_writer_is_removed_by_the_next_write(tmp_path):
    dead = _dead_pid()
    target = tmp_path / "out.rdc"
    stale_file = tmp_path / f".out.rdc.{dead}.abc123.tmp"
    stale_file.write_bytes(b"half")
    stale_dir = tmp_path / f".out.rdc.{dead}.def456.tmp"
    stale_dir.mkdir()
    (stale_dir / "part.png").write_bytes(b"x")
    live = tmp_path / f".out.rdc.{1}.ghi789.tmp"  # pid 1 is alive: a live writer is kept
    live.write_bytes(b"in flight")
    other = tmp_path / f".other.{dead}.jkl.tmp"  # another destination's staging is not ours
    other.write_bytes(b"x")
    files.atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert _leftovers(tmp_path) == sorted([live.name, other.name])


def test_killed_directory_replacement_is_settled(tmp_path):
    target = tmp_path / "net"
    old = tmp_path / ".net.old"
    old.mkdir()
    (old / "a.txt").write_text("previous complete version")
    # Killed between the two renames: the target is gone, the old version is restored.
    assert files.remove_stale(target) == [old]
    assert (target / "a.txt").read_text() == "previous complete version"
    # Killed after the second rename: the old copy is dropped.
    old.mkdir()
    files.remove_stale(target)
    assert not old.exists() and target.is_dir()


def test_outputs_honour_the_umask(tmp_path):
    import os

    previous = os.umask(0o027)
    try:
        files.atomic_write(tmp_path / "a.json", "{}")
        with files.atomic_directory(tmp_path / "d") as tmp:
            (tmp / "x").write_text("x")
        staged = files.staging_directory(tmp_path / "e")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640  # mkstemp alone gives 0600
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o750  # mkdtemp alone gives 0700
    assert staged.stat().st_mode & 0o777 == 0o750


def test_check_output_file_and_dir(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    ok = files.check_output_file(tmp_path / "new" / "deeper" / "a.rdc", "--output")
    assert ok == tmp_path / "new" / "deeper" / "a.rdc" and not (tmp_path / "new").exists()
    files.check_output_file(tmp_path / "file", "--output")  # replaced by the rename
    files.check_output_dir(tmp_path / "dir", "--workdir")
    files.check_output_dir(tmp_path / "new" / "run", "--workdir")
    with pytest.raises(ValueError, match=r"names a directory \(trailing /\), expected a file"):
        files.check_output_file(f"{tmp_path}/res/", "--output")
    cases = [
        (files.check_output_file, tmp_path / "dir", "is a directory, expected a file name"),
        (files.check_output_file, tmp_path / "file" / "a.rdc", "file is not a directory"),
        (files.check_output_dir, tmp_path / "file", "exists and is not a directory"),
        (files.check_output_dir, tmp_path / "file" / "run", "file is not a directory"),
    ]
    for check, path, message in cases:
        with pytest.raises(ValueError, match=message) as caught:
            check(path, "--flag")
        assert str(caught.value).startswith(f"--flag={path}: ")
    # Read-only locations (os.access is what a non-root user's write would meet).
    read_only = {str(tmp_path / "dir")}
    real_access = files.os.access
    monkeypatch.setattr(
        files.os, "access", lambda p, mode: str(p) not in read_only and real_access(p, mode)
    )
    with pytest.raises(ValueError, match="directory is not writable"):
        files.check_output_dir(tmp_path / "dir", "--workdir")
    with pytest.raises(ValueError, match=r"dir is not writable \(permission denied\)"):
        files.check_output_file(tmp_path / "dir" / "sub" / "a.rdc", "--output")


def test_read_json_names_unreadable_files(tmp_path):
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(ValueError, match=r"dir\.json: cannot read \(Is a directory\)"):
        files.read_json(tmp_path / "dir.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="not UTF-8"):
        files.read_json(tmp_path / "bin.json")


# ------------------------------------------------------------------------------------------------
# claim: one holder at a time, released when the holder dies


_HOLD_CLAIM = """
import sys, time
from rdc_keras.files import claim
with claim(sys.argv[1], "job"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_claim_is_exclusive_names_the_holder_and_is_released(tmp_path):
    path = tmp_path / "claims" / "job.lock"
    with files.claim(path, "job") as record:
        assert record["pid"] == os.getpid()
        # A second claim, even from this process (another open file), is refused with the holder.
        refused = rf"job: claimed by .* pid {os.getpid()} since "
        with pytest.raises(ValueError, match=refused), files.claim(path, "job"):
            pass
    with files.claim(path, "job"):  # released at the end of the block
        pass
    assert path.exists() and path.read_text() == ""  # kept, emptied: no record of a holder


def test_claim_of_a_killed_holder_is_free_at_once(tmp_path):
    path = tmp_path / "job.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_CLAIM, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(pathlib.Path(__file__).resolve().parents[1])),
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = rf"claimed by .* pid {holder.pid} "
        with pytest.raises(ValueError, match=refused), files.claim(path, "job"):
            pass
    finally:
        holder.kill()
        holder.wait()
    with files.claim(path, "job") as record:  # no stale claim after SIGKILL
        assert record["pid"] == os.getpid()


def test_claim_releases_when_the_block_raises(tmp_path):
    path = tmp_path / "job.lock"
    with pytest.raises(RuntimeError), files.claim(path, "job"):
        raise RuntimeError("training failed")
    with files.claim(path, "job"):
        pass
