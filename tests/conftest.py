"""Shared pytest fixtures: quiet TensorFlow, deterministic seeds, and the real MNIST test set."""

import json
import os
import pathlib
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

import rdc_keras  # noqa: F401  (before any test imports TensorFlow: the library's oneDNN default)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# Source of a subprocess that runs many bad-flag cases of one binary in one process (TensorFlow is
# imported once), resetting the flags between cases. argv: module, program, JSON {case: [args]},
# output path; writes JSON {case: [exit code, stderr]}.
FLAG_CASES_DRIVER = """
import contextlib, io, json, sys
import tensorflow  # noqa: F401  (imported before absl, as the binaries do)
from absl import app, flags
from rdc_keras.cli import common
module = __import__(sys.argv[1], fromlist=["main"])
program, cases, out_path = sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
sys.argv = [program]
module._define_flags()
results = {}
for name, args in cases.items():
    flags.FLAGS.unparse_flags()
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            app.run(
                common.main_wrapper(module.main),
                argv=[program, *args],
                flags_parser=common.parse_flags,
            )
            code = 0
        except SystemExit as exit:
            code = exit.code or 0
    results[name] = [code, stderr.getvalue()]
with open(out_path, "w") as stream:
    json.dump(results, stream)
"""


def run_binary(
    program: str,
    module: str,
    root: pathlib.Path,
    commands: dict[str, list[str]],
    cases: dict[str, list[str]],
    timeout: float = 400,
) -> dict[str, tuple[int, str, str]]:
    """Runs the console-script `commands` and the bad-flag `cases` of one binary, all at once.

    `commands` are flag lists for the installed console script `program`; `cases` run through
    FLAG_CASES_DRIVER (one process, `module`'s flags). Every process runs in `root`.

    Returns:
      {name: (exit code, stdout, stderr)}; driver cases have an empty stdout.
    """
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    script = str(pathlib.Path(sys.executable).parent / program)
    argvs = {name: [script, *flags] for name, flags in commands.items()}
    driver_out = root / "driver.json"
    argvs["driver"] = [
        sys.executable,
        "-c",
        FLAG_CASES_DRIVER,
        module,
        program,
        json.dumps(cases),
        str(driver_out),
    ]
    processes = {
        name: subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=root
        )
        for name, argv in argvs.items()
    }
    out = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=timeout)
        out[name] = (process.returncode, stdout, stderr)
    code, _, stderr = out.pop("driver")
    assert code == 0, stderr
    for name, (code, stderr) in json.loads(driver_out.read_text()).items():
        out[name] = (code, "", stderr)
    return out


def digits_gan_trainer(seed: int):
    """A compiled digits RDCTrainer with a WGAN-GP critic (d=2, L=3, lambda_p=0.1, alternate)."""
    from rdc_keras import networks
    from rdc_keras.tfkeras import keras
    from rdc_keras.trainers.rdc import RDCTrainer

    keras.utils.set_random_seed(seed)
    trainer = RDCTrainer(
        networks.encoder("digits", 2),
        networks.decoder("digits", 2),
        num_levels=3,
        critic=networks.critic("digits"),
        lambda_p=0.1,
        schedule="alternate",
    )
    trainer.compile(keras.optimizers.Adam(1e-3), critic_optimizer=keras.optimizers.Adam(1e-3))
    return trainer


def untrained_digits_export(root: pathlib.Path, name: str) -> pathlib.Path:
    """Exports an untrained digits encoder (d=3, L=3) with one head "h"; returns the export dir.

    Cheap (no training): for tests of what reading an export does with damaged or foreign files.
    """
    import math

    from rdc_keras import export, networks, runs
    from rdc_keras.files import write_json

    encoder = networks.encoder("digits", 3)
    fingerprint = runs.encoder_fingerprint(encoder, 3, 1.0)
    runs.save_network(
        root / "run" / "encoder",
        encoder,
        {
            "kind": "encoder",
            "preset": "digits",
            "latent_dim": 3,
            "num_levels": 3,
            "temperature": 1.0,
            "image_shape": [8, 8, 1],
            "fingerprint": fingerprint,
            "rate_bits": 3 * math.log2(3),
        },
    )
    head_dir = root / "run" / "heads" / "h"
    runs.save_network(
        head_dir / "decoder",
        networks.decoder("digits", 3),
        {"kind": "decoder", "preset": "digits", "latent_dim": 3},
    )
    write_json(
        head_dir / "head.json",
        {"name": "h", "encoder_fingerprint": fingerprint, "lambda_d": 1.0, "lambda_c": 0.0},
    )
    export.export_run(root / "run", root / "saved_models", name, prior_dataset="digits", verbose=0)
    return root / "saved_models" / name


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


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory) -> str:
    """A small digits reference classifier saved once per session (3 epochs, seed 0)."""
    from rdc_keras import data, runs
    from rdc_keras.trainers import classifier as classifier_lib

    directory = tmp_path_factory.mktemp("classifier") / "clf"
    train = data.prepare(data.load_dataset("digits", "train"), 64, seed=0)
    model = classifier_lib.train_classifier("digits", train, epochs=3, seed=0, verbose=0)
    runs.save_classifier(directory, model, "digits")
    return str(directory)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, classifier_dir) -> pathlib.Path:
    """A finished tiny rdc-train run: digits, d=2, L=3, lambda_c=0.04, one epoch of two steps."""
    from rdc_keras.config import TrainConfig
    from rdc_keras.trainers.runner import train_run

    workdir = tmp_path_factory.mktemp("tiny_run") / "run"
    train_run(
        TrainConfig(
            workdir=str(workdir),
            dataset="digits",
            latent_dim=2,
            num_levels=3,
            lambda_c=0.04,
            classifier_dir=classifier_dir,
            epochs=1,
            steps_per_epoch=2,
            batch_size=32,
            verbose=0,
        )
    )
    return workdir
