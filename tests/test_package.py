"""Package-level promises: cheap top-level import, no tensorflow_compression outside the codec."""

import configparser
import subprocess
import sys

from conftest import REPO_ROOT

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
    assert "tensorflow_compression" not in modules


def test_only_the_codec_imports_tensorflow_compression():
    statement = "; ".join(f"import {name}" for name in LIBRARY_MODULES)
    modules = _imported_after(statement)
    assert "tensorflow" in modules  # the statement really imported the library
    assert "tensorflow_compression" not in modules


def test_version_matches_setup_cfg():
    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "setup.cfg")
    assert parser["metadata"]["version"] == rdc_keras.__version__


def test_pins_of_the_fixed_stack():
    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "setup.cfg")
    requires = parser["options"]["install_requires"].split()
    for pin in (
        "tensorflow==2.14.1",
        "tensorflow-compression==2.14.1",
        "tensorflow-datasets==4.9.4",
        "tensorflow-metadata<1.16",
    ):
        assert pin in requires
