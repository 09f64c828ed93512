"""Atomic file writes and JSON reading: the one place that stages a file and renames it.

Every output of the package (JSON results, configs, `.rdc` files, PNGs, CSV, export metadata) is
written under a hidden temporary name beside its destination and renamed into place, so a reader
never sees a half-written file and a failed write leaves the previous file as it was. Directories
(saved networks, heads, PNG sets) are staged the same way with `atomic_directory`.

Staging names are `.<name>.<pid>.<random>.tmp`: the next write of the same destination removes
those left by processes that no longer run (a killed run's leftovers), never a live writer's.
Staged files and directories get the permissions the umask gives (`mkstemp` alone gives 0600).
`check_output_file`/`check_output_dir` let a binary refuse an unwritable output location before
long work starts. `claim` gives one process at a time a piece of work (a model of a study) through
an advisory lock the kernel releases when the holder dies. Standard library only.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import pathlib
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "atomic_directory",
    "atomic_write",
    "check_output_dir",
    "check_output_file",
    "claim",
    "read_json",
    "remove_stale",
    "staging_directory",
    "write_json",
]

Content = str | bytes | Callable[[pathlib.Path], None]


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (thread-safe)."""
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _staging_prefix(path: pathlib.Path) -> str:
    return f".{path.name}.{os.getpid()}."


def remove_stale(path: str | os.PathLike) -> list[pathlib.Path]:
    """Removes staging leftovers of `path` whose writing process is gone; returns them.

    Also settles an `atomic_directory` replacement killed between its two renames: the old
    version (`.<name>.old`) is restored when `path` is missing, else removed.
    """
    path = pathlib.Path(path)
    removed: list[pathlib.Path] = []
    # Best effort: a leftover that cannot be removed (another user's) never fails the write.
    # Pids are compared on this host only: writers on another host sharing the directory are not
    # told apart (keep one writer per destination there).
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[A-Za-z0-9_]+\.tmp")
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or _alive(int(match.group(1))):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)
        except OSError:
            continue
        removed.append(entry)
    old = path.with_name(f".{path.name}.old")
    try:
        if old.is_dir() and not old.is_symlink():
            if path.exists() or path.is_symlink():
                shutil.rmtree(old)
            else:
                os.replace(old, path)
            removed.append(old)
    except OSError:
        pass
    return removed


def atomic_write(path: str | os.PathLike, content: Content) -> None:
    """Writes `content` to `path` through a temporary sibling and a rename.

    Args:
      path: destination; its parent directories are created.
      content: text, bytes, or a function that writes the file at the path it is given (for
        writers such as `np.save` or PIL that want a file name).
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_staging_prefix(path), suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        if isinstance(content, str):
            pathlib.Path(tmp).write_text(content, encoding="utf-8")
        elif isinstance(content, bytes | bytearray | memoryview):
            pathlib.Path(tmp).write_bytes(bytes(content))
        else:
            content(pathlib.Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def staging_directory(path: str | os.PathLike) -> pathlib.Path:
    """A new, empty hidden sibling directory in which to build `path` before renaming it.

    Stale staging leftovers of `path` are removed first; the directory honours the umask.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    tmp = pathlib.Path(
        tempfile.mkdtemp(dir=path.parent, prefix=_staging_prefix(path), suffix=".tmp")
    )
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp


def _nearest_existing(path: pathlib.Path) -> pathlib.Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_creatable(path: pathlib.Path, flag: str) -> None:
    """The directory that will hold `path` exists or can be made, and can be written."""
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        raise ValueError(f"{flag}={path}: {base} is not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"{flag}={path}: {base} is not writable (permission denied)")


def check_output_file(path: str | os.PathLike, flag: str) -> pathlib.Path:
    """Checks that a file can be written at `path` (before the work that produces it).

    Raises:
      ValueError: one line naming the flag and the problem (a directory in the way, a parent
        that is a file, a directory that cannot be written).
    """
    if str(path).endswith(os.sep):
        raise ValueError(f"{flag}={path}: names a directory (trailing {os.sep}), expected a file")
    path = pathlib.Path(path)
    if path.is_dir():
        raise ValueError(f"{flag}={path}: is a directory, expected a file name")
    _check_creatable(path, flag)
    return path


def check_output_dir(path: str | os.PathLike, flag: str) -> pathlib.Path:
    """Checks that `path` is, or can be made, a writable directory (before long work)."""
    path = pathlib.Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag}={path}: exists and is not a directory")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"{flag}={path}: directory is not writable (permission denied)")
    else:
        _check_creatable(path, flag)
    return path


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, pathlib.Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Writes `payload` as indented, key-sorted JSON, atomically (numpy values become lists)."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=_json_default) + "\n"
    atomic_write(path, text)


def read_json(path: str | os.PathLike) -> Any:
    """Reads a JSON file, raising a one-line ValueError naming the file when it is bad."""
    path = pathlib.Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ValueError(f"{path}: file not found") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from error
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not valid JSON (not UTF-8 text)") from error
    except OSError as error:
        raise ValueError(f"{path}: cannot read ({error.strerror or error})") from error


class atomic_directory:  # noqa: N801 (used like a function: `with atomic_directory(path) as tmp`)
    """Context manager yielding a temporary sibling directory that is renamed to `path` on success.

    An existing `path` is replaced only after the new content is complete. On error the temporary
    directory is removed and `path` is left as it was.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = pathlib.Path(path)

    def __enter__(self) -> pathlib.Path:
        self.tmp = staging_directory(self.path)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        if self.path.exists():
            old = self.path.with_name(f".{self.path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.path, old)
            os.replace(self.tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.tmp, self.path)


@contextlib.contextmanager
def claim(path: str | os.PathLike, what: str) -> Iterator[dict[str, Any]]:
    """Holds `path` as an exclusive claim on `what` while the block runs; one holder at a time.

    The claim is an advisory `flock` on `path` (created if needed, never removed): the kernel
    drops it when the holder exits or is killed, so a crashed holder leaves no stale claim. The
    holder's host, pid and start time are written into the file for the message of whoever is
    refused. Local file systems and NFS (Linux emulates flock with POSIX locks there) honour it;
    object stores have no locks, so claim in a local or NFS directory there.

    Yields:
      The holder record written to the file.

    Raises:
      ValueError: another process holds the claim (one line: what, who, since when, the file).
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            raise ValueError(
                f"{what}: claimed by {holder} (claim file {path}); it is being trained by another "
                "process: wait for it, or stop that process"
            ) from None
        record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        try:
            yield record
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_holder(fd: int) -> str:
    """`host pid N since T` from a claim file's record, or a placeholder while it is written."""
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode())
        return f"{record['host']} pid {record['pid']} since {record['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (its record is being written)"
