"""Work directories and export roots on any file system `tf.io.gfile` knows (gs://, s3://, hdfs://,
ram://...): staged in a local directory and synchronised with gfile.

Training writes Keras checkpoints, HDF5 weights and SavedModels through libraries that need a
local file system (h5py), and every other module of the package works on local paths through
`rdc_keras.files` (atomic renames). So a remote location is never written in place: `staged`
pulls it into a local staging directory, the work happens there, and `push` copies the result
back; a training pushes after every epoch too (`trainers.callbacks.PushEachEpoch`), so a run
killed with its machine resumes from the remote copy. This module is the only one that reads or
writes remote paths; readers of exports (`serving`) and the binaries' single files (`rdc-codec`,
`rdc-evaluate --output`) go through `local_copy`, `read_bytes`, `write_bytes` and `write_json`.

What is atomic: each file is copied to a hidden `.<name>.push.tmp` beside its destination and
renamed over it, so on file systems with an atomic rename (local, ram://, HDFS) a reader sees the
old or the new file, never half of one; `last` files (a run's results.json) are pushed after
everything else, so a run counts as finished only once all its files are there. Object stores
(gs://, s3://) have no atomic rename: gfile's rename there is a copy and a delete, so a reader
may briefly see a file missing while it is replaced; and they have no locks, so a study directory
(which needs `files.claim`) cannot be on one.

Paths recorded inside the run's JSON files (its own directory, its classifier's) are written
against the staging directory and mapped back to the remote path on push (and forth on pull).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence

from rdc_keras.files import atomic_write
from rdc_keras.files import check_output_dir as check_output_dir_locally
from rdc_keras.files import check_output_file as check_output_file_locally
from rdc_keras.files import write_json as write_json_locally

__all__ = [
    "check_local",
    "check_output_dir",
    "check_output_file",
    "is_dir",
    "is_file",
    "is_remote",
    "join",
    "local_copy",
    "pull",
    "push",
    "read_bytes",
    "read_json",
    "renamed_paths",
    "reported_as",
    "staged",
    "write_bytes",
    "write_json",
]

_LOCAL_SCHEMES = ("file://",)


def is_remote(path: str | os.PathLike | None) -> bool:
    """Whether `path` is a URL of a gfile file system (`scheme://...`) other than `file://`."""
    if path is None or isinstance(path, pathlib.PurePath):
        return False
    text = os.fspath(path)
    return "://" in text and not text.startswith(_LOCAL_SCHEMES)


def check_local(path: str | os.PathLike | None, flag: str, why: str) -> None:
    """Refuses a remote URL where only a local (or NFS) path works, with one line saying why."""
    if is_remote(path):
        raise ValueError(f"{flag}={path}: must be a local or NFS path ({why})")


def join(root: str | os.PathLike, *parts: str) -> str:
    """`root/part/...`, local or remote (pathlib would fold a URL's `//`)."""
    if not is_remote(root):
        return str(pathlib.Path(root, *parts))
    return "/".join([os.fspath(root).rstrip("/"), *(part.strip("/") for part in parts)])


def write_json(path: str | os.PathLike, payload: object) -> None:
    """`files.write_json` for a local path; remote: written beside it and renamed into place."""
    if not is_remote(path):
        write_json_locally(path, payload)
        return
    import json

    write_bytes(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """`files.atomic_write` for a local path; remote: a staged name beside it, then a rename."""
    if not is_remote(path):
        atomic_write(path, data)
        return
    gfile, path = _gfile(), os.fspath(path)
    parent, name = path.rsplit("/", 1)
    gfile.makedirs(parent)
    staging = join(parent, f".{name}.push.tmp")
    with gfile.GFile(staging, "wb") as handle:
        handle.write(data)
    gfile.rename(staging, path, overwrite=True)


def read_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of a local or remote file."""
    if not is_remote(path):
        return pathlib.Path(path).read_bytes()
    with _gfile().GFile(os.fspath(path), "rb") as handle:
        return handle.read()


def is_dir(path: str | os.PathLike) -> bool:
    """Whether a local or remote path is an existing directory."""
    if not is_remote(path):
        return pathlib.Path(path).is_dir()
    return bool(_gfile().isdir(os.fspath(path)))


def is_file(path: str | os.PathLike) -> bool:
    """Whether a local or remote path is an existing file."""
    if not is_remote(path):
        return pathlib.Path(path).is_file()
    gfile = _gfile()
    return gfile.exists(os.fspath(path)) and not gfile.isdir(os.fspath(path))


def renamed_paths(payload: object, mapping: dict[str, str]) -> object:
    """`payload` (JSON-like) with every string's `local` prefixes replaced by their URLs: the
    results of work done on `local_copy` directories, reported under the paths the user gave."""
    import json

    text = json.dumps(payload)
    for local, url in mapping.items():
        text = text.replace(json.dumps(local)[1:-1], json.dumps(url)[1:-1])
    return json.loads(text)


_COPIES: dict[str, pathlib.Path] = {}


def local_copy(path: str | os.PathLike) -> pathlib.Path:
    """A local path with the contents of `path`: `path` itself when local; a remote directory
    or file is pulled once per process into a temporary directory removed at exit (for readers
    such as `serving.load_encoder`, which need local files)."""
    if not is_remote(path):
        return pathlib.Path(path)
    url = os.fspath(path).rstrip("/")
    if url not in _COPIES:
        scratch = pathlib.Path(tempfile.mkdtemp(prefix="rdc-copy-"))
        atexit.register(shutil.rmtree, scratch, True)
        name = url.rsplit("/", 1)[-1]
        if _gfile().isdir(url):
            pull(url, scratch / name)
        else:
            (scratch / name).write_bytes(read_bytes(url))
        _COPIES[url] = scratch / name
    return _COPIES[url]


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def read_json(path: str) -> object:
    """The JSON document at a remote path."""
    import json

    with _gfile().GFile(path, "r") as handle:
        return json.loads(handle.read())


def _files(local: pathlib.Path) -> list[pathlib.Path]:
    return sorted(path for path in local.rglob("*") if path.is_file())


def _mapped(data: bytes, old: str, new: str) -> bytes:
    return data.replace(old.encode(), new.encode())


def _remote_files(remote: str) -> Iterator[tuple[str, str]]:
    """(relative path, URL) of every file under the remote directory `remote`.

    Some file systems list a directory's children by name prefix (ram:// lists c0.04's files
    under c0, as ".04"), so a listed name counts only if it is a file of that directory.
    """
    gfile, root = _gfile(), remote.rstrip("/")
    for directory, _, names in list(gfile.walk(remote)):
        relative = directory[len(root) :].strip("/")
        for name in names:
            url = join(directory, name)
            if gfile.exists(url) and not gfile.isdir(url):
                yield f"{relative}/{name}".strip("/"), url


def pull(remote: str, local: str | os.PathLike) -> int:
    """Copies every file under `remote` into `local` (created); returns the number of files.

    A missing `remote` pulls nothing. Paths of the remote directory inside JSON files become
    the local one's.
    """
    gfile, local = _gfile(), pathlib.Path(local)
    local.mkdir(parents=True, exist_ok=True)
    if not gfile.isdir(remote):
        return 0
    count = 0
    for relative, url in _remote_files(remote):
        target = local / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        data = read_bytes(url)
        if target.suffix == ".json":
            data = _mapped(data, remote.rstrip("/"), str(local))
        target.write_bytes(data)
        count += 1
    return count


# (local dir, remote dir, relative path) -> (mtime_ns, size) of the file as this process pushed it.
_PUSHED: dict[tuple[str, str, str], tuple[int, int]] = {}


def push(local: str | os.PathLike, remote: str, last: Sequence[str] = ("results.json",)) -> int:
    """Copies every file under `local` to `remote`, each through a staged name and a rename.

    Files named in `last` go after all others (a reader that sees them sees the rest); remote
    files and directories that no longer exist locally are removed (a finished run's backup/).
    Paths of `local` inside JSON files become the remote directory's. A file this process already
    pushed from `local` and has not changed since is not copied again. Returns the files copied.
    """
    local = pathlib.Path(local)
    files = _files(local)
    files.sort(key=lambda path: path.name in last)
    wanted = {path.relative_to(local).as_posix() for path in files}
    copied = 0
    for path in files:
        relative = path.relative_to(local).as_posix()
        stat = path.stat()
        key, stamp = (str(local), remote, relative), (stat.st_mtime_ns, stat.st_size)
        if _PUSHED.get(key) == stamp:  # unchanged since this process pushed it
            continue
        data = path.read_bytes()
        if path.suffix == ".json":
            data = _mapped(data, str(local), remote.rstrip("/"))
        write_bytes(join(remote, relative), data)
        _PUSHED[key] = stamp
        copied += 1
    _remove_absent(remote, wanted)
    return copied


def _remove_absent(remote: str, wanted: set[str]) -> None:
    """Removes remote files not in `wanted` (relative paths), then emptied directories."""
    gfile = _gfile()
    if not gfile.isdir(remote):
        return
    root = remote.rstrip("/")
    for relative, url in list(_remote_files(remote)):
        if relative not in wanted:
            gfile.remove(url)
    kept = {"/".join(path.split("/")[:depth]) for path in wanted for depth in range(1, 99)}
    for directory, _, _ in sorted(gfile.walk(remote), key=lambda entry: -len(entry[0])):
        relative = directory[len(root) :].strip("/")
        if relative and relative not in kept and gfile.isdir(directory):
            gfile.rmtree(directory)


@contextlib.contextmanager
def staged(path: str | os.PathLike, name: str | None = None) -> Iterator[pathlib.Path]:
    """A local directory standing for `path`: `path` itself when local; for a remote path, a
    temporary copy pulled on entry and pushed back on exit (also when the work failed, so its
    checkpoints survive for a resume), then removed. `name`: the local directory's own name
    (for writers that take a root and a name, such as an export)."""
    if not is_remote(path):
        yield pathlib.Path(path)
        return
    remote = os.fspath(path)
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="rdc-staged-"))
    local = scratch / name if name else scratch
    try:
        pull(remote, local)
        try:
            yield local
        finally:
            push(local, remote)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def check_output_file(path: str | os.PathLike, flag: str) -> str:
    """Checks that a file can be written at `path`, local (`files.check_output_file`) or remote
    (not a directory; its parent exists or is made).

    Raises:
      ValueError: one line naming the flag.
    """
    if not is_remote(path):
        return str(check_output_file_locally(path, flag))
    gfile, path = _gfile(), os.fspath(path)
    with _one_line(flag, path):
        if path.endswith("/") or gfile.isdir(path):
            raise ValueError(f"{flag}={path}: names a directory, expected a file")
        gfile.makedirs(path.rsplit("/", 1)[0])
    return path


def check_output_dir(path: str | os.PathLike, flag: str) -> str:
    """Checks that `path`, local (`files.check_output_dir`) or remote, is or can be made a
    writable directory (before long work); a remote one is created.

    Raises:
      ValueError: one line naming the flag (an unknown scheme, a file in the way, no access).
    """
    if not is_remote(path):
        return str(check_output_dir_locally(path, flag))
    gfile, path = _gfile(), os.fspath(path)
    with _one_line(flag, path):
        if gfile.exists(path) and not gfile.isdir(path):
            raise ValueError(f"{flag}={path}: exists and is not a directory")
        gfile.makedirs(path)
    return path


@contextlib.contextmanager
def _one_line(flag: str, path: str) -> Iterator[None]:
    """A file system's error (unknown scheme, no access) as one line naming the flag."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.OpError as error:
        raise ValueError(f"{flag}={path}: {error.message.splitlines()[0]}") from None


@contextlib.contextmanager
def reported_as(local: str | os.PathLike, url: str) -> Iterator[None]:
    """Re-raises a ValueError about work done in the local stand-in `local` of `url` (a staged
    or pulled copy) naming `url` instead, the path the user gave."""
    try:
        yield
    except ValueError as error:
        raise ValueError(str(error).replace(str(local), url)) from None
