"""Shared pytest fixtures: quiet TensorFlow, deterministic seeds, and the real MNIST test set."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _mnist_dir() -> pathlib.Path:
    env = os.environ.get("RDC_MNIST_DIR")
    if env:
        return pathlib.Path(env)
    return REPO_ROOT.parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def mnist_dir() -> pathlib.Path:
    """Directory with the real MNIST t10k IDX files (read-only; never copied into the repo).

    Skipped on a developer machine without the files; in CI (CI=true) their absence is an error.
    """
    path = _mnist_dir()
    if not (path / "t10k-images-idx3-ubyte.gz").exists():
        if os.environ.get("CI"):
            pytest.fail(f"real MNIST files missing in CI: {path}")
        pytest.skip(f"real MNIST files not found at {path} (set RDC_MNIST_DIR)")
    return path
