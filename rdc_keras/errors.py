"""The one line of an exception that a user should see (standard library only).

Binaries print it after `<program>: error:` (`rdc_keras.cli.common`), and the load boundaries
(`runs.load_network`, `serving.ExportedModel`) quote it when they turn a backend's exception
into a ValueError naming the damaged file.
"""

from __future__ import annotations

__all__ = ["meaningful_line"]


def meaningful_line(message: object) -> str:
    """The line of an error message that says what went wrong.

    Usually the first line; an error raised inside a `tf.function` starts with "in user code:"
    and a stack of frames, and its last line is the error itself.
    """
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
    if not lines:
        return "failed"
    if lines[0].rstrip(":") == "in user code" and len(lines) > 1:
        return lines[-1]
    return lines[0]
