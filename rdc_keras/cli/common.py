"""Plumbing shared by the absl binaries: one-line failures and exit codes.

Binaries that use Keras import TensorFlow at module level, before `absl.app.run`: imported
inside `main`, Keras (2.14) builds graph-mode SymbolicTensors instead of KerasTensors and some
Functional models (e.g. with Flatten) fail to build.
"""

from __future__ import annotations

import os
import pathlib
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from rdc_keras.errors import meaningful_line

__all__ = [
    "UserError",
    "fail",
    "list_own_flags_in_help",
    "main_wrapper",
    "meaningful_line",
    "number_list",
    "os_error_line",
    "parse_flags",
    "quiet_python_logs",
    "quiet_when_piped_output_closes",
]


class UserError(ValueError):
    """Bad input from the user: reported as one line on stderr with exit code 2."""


def fail(message: str, program: str | None = None) -> NoReturn:
    """Prints `program: error: message` (one line) to stderr and exits with status 2."""
    program = program or pathlib.Path(sys.argv[0]).name or "rdc"
    print(f"{program}: error: {meaningful_line(message)}", file=sys.stderr)
    sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
    """`flags_parser` for `absl.app.run`: a bad flag value exits with one line and status 2.

    absl's default parser prints two lines ("FATAL Flags parsing error" plus a usage hint) and
    exits with status 1; this keeps every bad-input failure of the binaries in one format.
    """
    from absl import flags

    list_own_flags_in_help(flags.FLAGS)
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        fail(str(error))


def list_own_flags_in_help(flag_values: Any) -> None:
    """Makes `--help`/`--helpshort` list the binary's own flags (with defaults and choices).

    absl's short help lists the key flags of the main module, named by `sys.argv[0]`; the
    binaries define their flags at run time from their own modules (`rdc_keras.cli.*`, or
    `__main__` under `python -m`), which the console-script path never names. Registering those
    flags as key flags of `sys.argv[0]` puts them in the short help; `--helpfull` is unchanged.
    """
    main = sys.argv[0]
    for module, defined in flag_values.flags_by_module_dict().items():
        if module == "__main__" or module.startswith("rdc_keras."):
            for flag in defined:
                flag_values.register_key_flag_for_module(main, flag)


# tf.errors raised by a hostile environment, not by a bug (matched by name: no TF import here):
# a refused permission, a full disk, a damaged data file (e.g. a corrupted TFRecord of a TFDS
# directory, found only when training reads it).
_TF_ENVIRONMENT_ERRORS = ("PermissionDeniedError", "ResourceExhaustedError", "DataLossError")


def os_error_line(error: OSError) -> str:
    """`<path>: <problem>` for an OS error (the path first, as in every other message)."""
    problem = error.strerror or str(error)
    paths = [p for p in (error.filename, getattr(error, "filename2", None)) if p is not None]
    if not paths:
        return problem
    if len(problem) > 1 and problem[1].islower():
        problem = problem[0].lower() + problem[1:]  # "No such file" -> "no such file"; not "HDF5"
    return f"{' -> '.join(str(p) for p in paths)}: {problem}"


def quiet_when_piped_output_closes(main: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
    """Wraps `main` so that output piped into a reader that stopped early (`| head -1`, a `less`
    quit before the end) ends the program quietly with status 0 instead of a BrokenPipeError
    traceback. stdout is pointed at /dev/null first, so Python's flush at exit cannot fail again
    (the recipe of the Python docs' signal module, with status 0 as `head` intends).
    """

    def wrapped(argv: list[str]) -> Any:
        try:
            result = main(argv)
            sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at exit
            return result
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 0

    return wrapped


def quiet_python_logs() -> None:
    """TensorFlow's Python log lines once each, and only warnings unless `-v` was given.

    TensorFlow's logger has a handler of its own and also propagates to absl's on the root
    logger, so every line came twice (`INFO:tensorflow:...` and `I1201 ...`); its handlers are
    removed so absl prints each line once. At the default verbosity TensorFlow and absl log
    warnings and errors only (no "Assets written to ..." per SavedModel); `-v`/`--verbosity`
    leaves absl's verbosity, and TensorFlow's INFO lines, as the user asked. Warnings still
    show (e.g. Keras' mixed-precision check on a CPU), except retracing notices (`_NotForUsers`).
    """
    import logging

    from absl import flags
    from absl import logging as absl_logging

    tensorflow_logger = logging.getLogger("tensorflow")
    for handler in list(tensorflow_logger.handlers):
        tensorflow_logger.removeHandler(handler)
    tensorflow_logger.propagate = True
    if "verbosity" in flags.FLAGS and flags.FLAGS["verbosity"].present:
        return
    absl_logging.set_verbosity(absl_logging.WARNING)
    tensorflow_logger.setLevel(logging.WARNING)
    if not any(isinstance(f, _NotForUsers) for f in tensorflow_logger.filters):
        tensorflow_logger.addFilter(_NotForUsers())


class _NotForUsers:
    """Drops TensorFlow warnings about its own internals that a user can do nothing about:
    tf.function retracing (evaluation calls `predict` on batches of several sizes, by design)."""

    _MESSAGES = ("triggered tf.function retracing",)

    def filter(self, record: Any) -> bool:
        message = record.getMessage()
        return not any(text in message for text in self._MESSAGES)


def main_wrapper(main: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
    """Turns expected failures raised by `main` into one line on stderr and exit code 2.

    Expected failures are bad input and a hostile environment: `UserError`/`ValueError` (the
    library raises these, naming the path or flag, for bad flags, damaged files, SavedModels
    and metadata), `OSError` (a path that cannot be read or written, a full disk) and the
    tf.errors of `_TF_ENVIRONMENT_ERRORS`.
    Anything else is a bug and keeps its traceback; RDC_TRACEBACK=1 shows one for these too.
    Output piped into a reader that stops early ends quietly (`quiet_when_piped_output_closes`).
    """

    @quiet_when_piped_output_closes
    def wrapped(argv: list[str]) -> Any:
        quiet_python_logs()
        if len(argv) > 1:
            fail(f"unexpected positional arguments: {' '.join(argv[1:])}")
        try:
            return main(argv)
        except BrokenPipeError:
            raise  # the reader of stdout stopped: not a failure (see the decorator)
        except Exception as error:
            line = _expected_failure(error)
            if line is None or os.environ.get("RDC_TRACEBACK"):
                raise
            fail(line)

    return wrapped


def _expected_failure(error: Exception) -> str | None:
    """The message of an expected failure (see `main_wrapper`), None for a bug."""
    if isinstance(error, ValueError):  # UserError included
        return str(error)
    if isinstance(error, OSError):
        return os_error_line(error)
    if type(error).__name__ in _TF_ENVIRONMENT_ERRORS:
        return getattr(error, "message", None) or str(error)
    return None


def number_list(values: list[str] | None, kind: Callable[[str], Any], name: str) -> tuple | None:
    """Parses an absl list flag into a tuple of numbers (None stays None); errors name the flag."""
    if values is None:
        return None
    try:
        return tuple(kind(value) for value in values)
    except ValueError as error:
        raise ValueError(f"--{name}: not a list of numbers: {','.join(values)}") from error
