"""Atomic file writes and JSON reading: the one place that stages a file and renames it.

Every output of the package (JSON results, configs, `.rdc` files, PNGs, CSV, export metadata) is
written under a hidden temporary name beside its destination and renamed into place, so a reader
never sees a half-written file and a failed write leaves the previous file as it was. Directories
(saved networks, heads) are staged the same way with `atomic_directory`. Standard library only.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

__all__ = ["atomic_directory", "atomic_write", "read_json", "write_json"]

Content = str | bytes | Callable[[pathlib.Path], None]


def atomic_write(path: str | os.PathLike, content: Content) -> None:
    """Writes `content` to `path` through a temporary sibling and a rename.

    Args:
      path: destination; its parent directories are created.
      content: text, bytes, or a function that writes the file at the path it is given (for
        writers such as `np.save` or PIL that want a file name).
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if isinstance(content, str):
            pathlib.Path(tmp).write_text(content)
        elif isinstance(content, bytes | bytearray | memoryview):
            pathlib.Path(tmp).write_bytes(bytes(content))
        else:
            content(pathlib.Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


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
        return json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ValueError(f"{path}: file not found") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from error


class atomic_directory:  # noqa: N801 (used like a function: `with atomic_directory(path) as tmp`)
    """Context manager yielding a temporary sibling directory that is renamed to `path` on success.

    An existing `path` is replaced only after the new content is complete. On error the temporary
    directory is removed and `path` is left as it was.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = pathlib.Path(path)

    def __enter__(self) -> pathlib.Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = pathlib.Path(
            tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        )
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
