"""Package-level promises: cheap top-level import, no tensorflow-compression outside the codec,
and the pins of both supported stacks."""

import configparser
import os
import platform
import subprocess
import sys
from importlib import metadata

import pytest
from conftest import REPO_ROOT
from packaging.requirements import Requirement

import rdc_keras


def _library_modules() -> list[str]:
    """Every module of the package except the binaries and the codec (found on disk, so a new
    module is covered without editing this list)."""
    package = REPO_ROOT / "rdc_keras"
    names = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        if name != "rdc_keras.codec" and not name.startswith("rdc_keras.cli"):
            names.append(name)
    return names


LIBRARY_MODULES = _library_modules()
ENTROPY_CODING = {"tensorflow_compression", "tensorflow_compression_ops"}
assert {"rdc_keras.runs", "rdc_keras.export", "rdc_keras.trainers.runner"} <= set(LIBRARY_MODULES)


def _imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    return set(out.stdout.split())


def test_import_rdc_keras_imports_neither_tensorflow_nor_tfc():
    modules = _imported_after("import rdc_keras")
    assert "tensorflow" not in modules
    assert not ENTROPY_CODING & modules


def _onednn_after_import(env_value: str | None) -> list[str]:
    """TF_ENABLE_ONEDNN_OPTS after `import rdc_keras`, and whether TensorFlow then runs oneDNN."""
    code = (
        "import os, rdc_keras; print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'));"
        "from tensorflow.python.util import _pywrap_util_port as p; print(p.IsMklEnabled())"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if env_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = env_value
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return out.stdout.split()


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="the default is x86-64 only"
)
def test_import_rdc_keras_turns_onednn_on_unless_the_user_chose():
    # Issue 18: on AVX2 CPUs TensorFlow would pick Eigen kernels (the GAN step 1.3x slower).
    assert _onednn_after_import(None) == ["1", "True"]
    assert _onednn_after_import("0") == ["0", "False"]


def test_only_the_codec_imports_tensorflow_compression():
    statement = "; ".join(f"import {name}" for name in LIBRARY_MODULES)
    modules = _imported_after(statement)
    assert "tensorflow" in modules  # the statement really imported the library
    assert not ENTROPY_CODING & modules


def test_version_matches_setup_cfg():
    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "setup.cfg")
    assert parser["metadata"]["version"] == rdc_keras.__version__


def _requirements(python: str) -> dict[str, Requirement]:
    """setup.cfg's install_requires that apply on `python` ("3.11"), by distribution name."""
    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "setup.cfg")
    lines = parser["options"]["install_requires"].strip().splitlines()
    requirements = [Requirement(line) for line in lines if not line.strip().startswith("#")]
    return {
        r.name: r
        for r in requirements
        if r.marker is None or r.marker.evaluate({"python_version": python})
    }


STACK_PINS = {
    "3.11": {
        "tensorflow": "==2.14.1",
        "tensorflow-compression": "==2.14.1",
        "tensorflow-datasets": "==4.9.4",
        "tensorflow-metadata": "<1.16",
    },
    "3.12": {
        "tensorflow": "~=2.17.1",
        "tf-keras": "~=2.17.0",
        "tensorflow-compression-ops": "==2.17.0",
        "tensorflow-datasets": "==4.9.4",
        "tensorflow-metadata": "<=1.17.3",
    },
}


@pytest.mark.parametrize("python", sorted(STACK_PINS))
def test_pins_of_each_stack(python):
    requirements = _requirements(python)
    for name, specifier in STACK_PINS[python].items():
        assert str(requirements[name].specifier) == specifier, (python, name)
    other = {"tensorflow-compression", "tensorflow-compression-ops"} - set(STACK_PINS[python])
    assert not other & set(requirements), (python, "one range-coder package per stack")


def test_installed_packages_satisfy_this_pythons_pins():
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for name, requirement in _requirements(python).items():
        installed = metadata.version(name)
        assert requirement.specifier.contains(installed, prereleases=True), (name, installed)
