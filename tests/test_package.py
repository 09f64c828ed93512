"""Package-level promises: cheap top-level import, no tensorflow_compression outside the codec."""

import configparser
import subprocess
import sys

from conftest import REPO_ROOT

import rdc_keras

LIBRARY_MODULES = [
    "rdc_keras.data",
    "rdc_keras.networks",
    "rdc_keras.losses",
    "rdc_keras.layers",
    "rdc_keras.runs",
    "rdc_keras.evaluation",
    "rdc_keras.export",
    "rdc_keras.experiment",
    "rdc_keras.plots",
    "rdc_keras.trainers.rdc",
    "rdc_keras.trainers.runner",
    "rdc_keras.trainers.classifier",
    "rdc_keras.trainers.multihead",
    "rdc_keras.theory.gaussian",
    "rdc_keras.theory.binary",
]


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
