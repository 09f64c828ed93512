"""absl-flag command-line binaries (see setup.cfg console_scripts).

Every binary imports this package before TensorFlow, so it keeps TensorFlow's C++ start-up
banner off the terminal (the oneDNN notice, the CUDA probing errors of a machine without a GPU,
the CPU-feature and TF-TRT notices): `TF_CPP_MIN_LOG_LEVEL=3` unless the user set it or asked for
logs with absl's `-v`/`--verbosity`, read here from the command line because TensorFlow reads
the variable when it loads, before any flag is parsed. The Python side (TensorFlow's INFO
messages, each printed twice) is quieted by `cli.common.main_wrapper`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

__all__ = ["asks_for_logs"]


def asks_for_logs(argv: Sequence[str]) -> bool:
    """Whether a command line sets absl's verbosity (`-v N`, `-v=N`, `--verbosity=N`, ...)."""
    for arg in argv[1:]:
        if arg == "--":
            break
        name = arg.split("=", 1)[0]
        if name in ("-v", "--v", "--verbosity", "-verbosity"):
            return True
    return False


if not asks_for_logs(sys.argv):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
