"""A whole training run in a work directory: resume, data, judge, fit, outputs.

`train_run(config)` is what `rdc-train` (phase 1), `rdc-universal` (phase 2, frozen encoder) and
every model of an `rdc-experiment` study execute. The work directory's layout is owned by
`rdc_keras.runs.RunDir`; the configuration by `rdc_keras.config.TrainConfig`; the trainer is built
by `rdc_keras.trainers.build` and watched by `rdc_keras.trainers.callbacks`.

Re-running an identical command resumes an interrupted run or reports the finished one; a
different configuration in the same directory is refused instead of being mixed in.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
from typing import Any

import tensorflow as tf

from rdc_keras import data, remote, runs
from rdc_keras.config import TrainConfig
from rdc_keras.files import read_json
from rdc_keras.layers import rate_bits
from rdc_keras.tfkeras import keras
from rdc_keras.trainers import callbacks as callbacks_lib
from rdc_keras.trainers.build import build_trainer, is_chief, make_strategy, sync_workers
from rdc_keras.trainers.callbacks import TrainingDivergedError
from rdc_keras.trainers.classifier import train_reference_classifier

__all__ = ["TrainConfig", "TrainingDivergedError", "build_trainer", "train_run"]

UNITS = {"mse": "per-pixel mean on [0, 1]", "ce": "nats", "psnr": "dB", "rate": "bits"}


def _check_saved(directory: str | None, kind: str, flag: str) -> None:
    """Refuses, before anything is written, a directory that holds no saved `kind` network."""
    if directory is None:
        return
    path = pathlib.Path(directory) / runs.NETWORK_FILE
    description = read_json(path) if path.exists() else {}
    if description.get("kind") != kind:
        found = f"a saved {description['kind']}" if "kind" in description else "no saved network"
        raise ValueError(f"--{flag}={directory}: holds {found}, expected a saved {kind}")


# Run in a child process by `bfloat16_kernels_run`: where kernels are missing, the step may abort
# the process instead of raising.
_BFLOAT16_PROBE = """
import tensorflow as tf
from rdc_keras import networks
from rdc_keras.tfkeras import keras
keras.mixed_precision.set_global_policy("mixed_bfloat16")
for preset, size in (("mnist", 28), ("digits", 8)):
    critic = networks.critic(preset)
    images = tf.zeros([2, size, size, 1])
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            score = tf.reduce_sum(critic(images))
        return tape.gradient(score, critic.trainable_variables)[0]
    step().numpy()
"""


@functools.lru_cache(maxsize=1)
def bfloat16_kernels_run() -> bool:
    """Whether bfloat16 Conv2D and Dense layers train here (a probe in a child process).

    TensorFlow 2.14 with oneDNN on (`import rdc_keras` turns it on on x86-64) has no bfloat16
    kernels on CPUs without AVX-512 ("oneDNN BFloat16 support are only on platforms with
    AVX512"): grappler fuses MatMul/Conv2D + BiasAdd into kernels that do not exist, and a
    mixed_bfloat16 step fails or aborts the process; TensorFlow 2.17 runs them. Eigen
    (TF_ENABLE_ONEDNN_OPTS=0) runs them everywhere, emulated and many times slower than float32
    without native bf16. The child inherits this process's environment.
    """
    package_root = str(pathlib.Path(__file__).resolve().parents[2])  # rdc_keras importable
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=path)
    probe = subprocess.run(
        [sys.executable, "-c", _BFLOAT16_PROBE], capture_output=True, env=env, timeout=600
    )
    return probe.returncode == 0


def _check_precision(config: TrainConfig) -> None:
    """Refuses mixed_bfloat16 where its kernels cannot run, before any work."""
    if config.mixed_precision == "mixed_bfloat16" and not bfloat16_kernels_run():
        raise ValueError(
            "--mixed_precision=mixed_bfloat16: this TensorFlow's oneDNN kernels cannot run "
            "bfloat16 layers on this CPU (no AVX-512); train in float32, or set "
            "TF_ENABLE_ONEDNN_OPTS=0 for Eigen's emulated bfloat16 (many times slower)"
        )


def _check_multi_worker(config: TrainConfig) -> None:
    """Refuses what a multi-worker run cannot do, before the cluster is joined."""
    if config.strategy != "multi_worker":
        return
    if config.classifier_mode == "pretrained" and not config.classifier_dir:
        raise ValueError(
            "--strategy=multi_worker needs --classifier_dir (train the reference classifier "
            "first with rdc-classifier; workers must not each train one)"
        )


def _resolve(config: TrainConfig) -> TrainConfig:
    """Checks and resolves a validated config; a phase-2 run takes the frozen encoder's
    temperature."""
    _check_precision(config)
    _check_saved(config.classifier_dir, "classifier", "classifier_dir")
    _check_saved(config.base_critic_dir, "critic", "base_critic_dir")
    settings = config.resolved()
    if config.encoder_dir is None:
        return settings
    _, encoder = runs.load_encoder(config.encoder_dir)
    for key in ("latent_dim", "num_levels"):
        if encoder[key] != getattr(settings, key):
            raise ValueError(
                f"--{key}={getattr(settings, key)} but the encoder in {config.encoder_dir} has "
                f"{key}={encoder[key]}"
            )
    if encoder["preset"] != settings.preset:
        raise ValueError(
            f"--dataset={config.dataset} uses preset {settings.preset!r}, but the encoder "
            f"was trained with {encoder['preset']!r}"
        )
    return settings.replace(temperature=encoder["temperature"])


def _is_finished(run: runs.RunDir, settings: TrainConfig) -> bool:
    """True when `run` holds the same finished run; raises when it holds a different one."""
    if not run.has_config():
        return False
    differences = settings.differences(TrainConfig.from_dict(run.raw_config()))
    if differences:
        raise ValueError(
            f"{run.path} holds a run with {', '.join(differences)}; use another --workdir"
        )
    return run.results_path.exists()


def _datasets(settings: TrainConfig) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    train = data.load_dataset(settings.dataset, "train", data_dir=settings.data_dir)
    test = data.load_dataset(settings.dataset, "test", data_dir=settings.data_dir)
    # drop_remainder: BatchNorm needs > 1 example and every replica needs a share.
    batch = settings.batch_size
    train = data.prepare(train, batch, shuffle=True, seed=settings.seed, drop_remainder=True)
    test = data.prepare(test, batch, shuffle=False)
    if settings.strategy == "multi_worker":
        # Every worker builds the same (seeded) pipeline and takes its share of each global
        # batch, as the replicas of one machine do; in-memory data has no files to shard.
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        train, test = train.with_options(options), test.with_options(options)
    return train, test


def _reference_classifier(settings: TrainConfig, run: runs.RunDir) -> tuple[Any, str]:
    """Loads the given judge, or trains one on clean data into the run's classifier/."""
    if settings.classifier_dir:
        return runs.load_classifier(settings.classifier_dir)[0], settings.classifier_dir
    directory = run.classifier_dir
    if not runs.is_saved_network(directory):
        if settings.verbose:
            print(f"training the reference classifier into {directory}", flush=True)
        _, description = train_reference_classifier(
            directory, settings.dataset, settings.data_dir, seed=settings.seed
        )
        if settings.verbose:
            accuracy = description["test_metrics"]["accuracy"]
            print(f"reference classifier: test accuracy {accuracy:.4f}", flush=True)
    return runs.load_classifier(directory)[0], str(directory)


def _callbacks(
    settings: TrainConfig, run: runs.RunDir, chief: bool, remote_dir: str | None = None
) -> list[keras.callbacks.Callback]:
    """The run's callbacks; a non-chief worker keeps only those that write nothing (and its
    backup, which Keras puts in a `workertemp_<task>` directory inside `backup/`). A run staged
    for a remote work directory pushes it there after every epoch."""
    chief_only = (callbacks_lib.EpochLog, keras.callbacks.TensorBoard)
    every = [
        callbacks_lib.StopOnNonFinite(),
        callbacks_lib.PiecewiseLearningRate(
            {
                "generator_optimizer": settings.generator_learning_rate,
                "critic_optimizer": settings.critic_learning_rate,
                "classifier_optimizer": settings.classifier_learning_rate,
            },
            settings.lr_boundaries,
            settings.lr_factors,
        ),
        # metrics.jsonl before the backup: a kill between the two redoes that epoch on resume
        # (its line is rewritten) instead of leaving the epoch out of metrics.jsonl.
        callbacks_lib.EpochLog(run.metrics_path, settings.epochs, settings.verbose),
        # Kept after fit (removed once results.json exists): a kill during the final evaluate
        # and save resumes at the last epoch instead of training the run again.
        keras.callbacks.BackupAndRestore(str(run.backup_dir), delete_checkpoint=False),
        # No graph: writing it at the first batch cost ~0.3 s per run and tripped Keras'
        # "callback is slow" warning on small batches.
        keras.callbacks.TensorBoard(str(run.logs_dir), update_freq="epoch", write_graph=False),
    ]
    if remote_dir is not None:
        every.append(callbacks_lib.PushEachEpoch(run.path, remote_dir))
    return [callback for callback in every if chief or not isinstance(callback, chief_only)]


def train_run(config: TrainConfig) -> dict[str, Any]:
    """Runs (or resumes, or reports) one training run; returns the results dict.

    The work directory may be any path `tf.io.gfile` knows (`gs://`, `ram://`, ...): the run is
    staged in a local directory, pulled from it first (to resume) and pushed to it after every
    epoch and at the end (`rdc_keras.remote`).

    Raises:
      ValueError: a bad configuration, or a work directory holding a different run.
      TrainingDivergedError: the loss became non-finite (the last good epoch stays in backup/).
    """
    if not remote.is_remote(config.workdir):
        config.validate()
        return _train_run(config, None)
    if config.strategy == "multi_worker":
        raise ValueError(
            f"--workdir={config.workdir}: --strategy=multi_worker needs a shared local or NFS "
            "work directory, not a remote URL"
        )
    for name in ("classifier_dir", "encoder_dir", "base_critic_dir"):
        if remote.is_remote(getattr(config, name)):
            raise ValueError(
                f"--{name}={getattr(config, name)}: only --workdir may be a remote URL; copy "
                "it to a local directory"
            )
    config.validate()
    with remote.staged(config.workdir) as local, remote.reported_as(local, config.workdir):
        _train_run(dataclasses.replace(config, workdir=str(local)), config.workdir)
    return remote.read_json(remote.join(config.workdir, "results.json"))


def _train_run(config: TrainConfig, remote_dir: str | None) -> dict[str, Any]:
    """`train_run` of a validated config in a local work directory; `remote_dir`: where it is
    pushed after each epoch."""
    _check_multi_worker(config)
    # First: a MultiWorkerMirroredStrategy must exist before any other TensorFlow op.
    strategy = make_strategy(config.strategy)
    chief = is_chief(strategy)
    settings = _resolve(config)
    run = runs.RunDir(config.workdir)
    if _is_finished(run, settings):
        if config.verbose and chief:
            print(f"{run.path}: run already finished; results.json is up to date", flush=True)
        return run.results()

    keras.utils.set_random_seed(settings.seed)
    train, test = _datasets(settings)
    if chief:  # after every check: a refused run leaves its workdir as it was
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config(settings)

    start = time.perf_counter()
    # Layers take the global policy when built; the caller's policy is restored afterwards.
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(settings.mixed_precision)
    try:
        with strategy.scope():
            reference, reference_dir = _reference_classifier(settings, run)
            encoder = runs.load_encoder(config.encoder_dir)[0] if config.encoder_dir else None
            base_critic = None
            if settings.base_critic_dir:
                base_critic = runs.load_critic(settings.base_critic_dir)[0]
            trainer = build_trainer(settings, reference, encoder=encoder, base_critic=base_critic)
            if settings.strategy == "multi_worker":
                # Metric results are already global; Keras' default ("sum" off TPUs) adds them
                # up once more over the workers (twice the test MSE with two workers).
                trainer.distribute_reduction_method = "first"
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    trainer.fit(
        train,
        epochs=settings.epochs,
        steps_per_epoch=settings.steps_per_epoch,
        validation_data=test,
        callbacks=_callbacks(settings, run, chief, remote_dir),
        verbose=0,
    )
    train_seconds = time.perf_counter() - start
    test_metrics = {
        key: float(value)
        for key, value in trainer.evaluate(test, verbose=0, return_dict=True).items()
    }
    if not chief:
        # Reading synchronised variables is a collective op every worker must join, so a
        # non-chief saves the same outputs, in the same order, into its own directory inside
        # backup/ and removes them (the Keras multi-worker pattern).
        task = getattr(strategy.cluster_resolver, "task_id", 0)
        scratch = runs.RunDir(run.backup_dir / f"worker{task}-outputs")
        results = _save_outputs(scratch, settings, trainer, test_metrics, train_seconds, "")
        # Its Keras backup (workertemp_<task>) is scratch too: restores read the chief's.
        for own in (scratch.path, run.backup_dir / f"workertemp_{task}"):
            shutil.rmtree(own, ignore_errors=True)
        sync_workers(strategy)  # the chief removes backup/ only after this
        return results
    results = _save_outputs(run, settings, trainer, test_metrics, train_seconds, reference_dir)
    sync_workers(strategy)  # every worker is done with its scratch inside backup/
    shutil.rmtree(run.backup_dir, ignore_errors=True)
    if config.verbose:
        print(json.dumps(results["test"], sort_keys=True), flush=True)
    return results


def _save_outputs(
    run: runs.RunDir,
    settings: TrainConfig,
    trainer: Any,
    test_metrics: dict[str, float],
    train_seconds: float,
    reference_dir: str,
) -> dict[str, Any]:
    """Saves the encoder (phase 1), every head and results.json; returns the results."""
    fingerprint = runs.encoder_fingerprint(
        trainer.encoder, settings.num_levels, settings.temperature
    )
    results = {
        "test": test_metrics,
        "units": UNITS,
        "rate_bits": rate_bits(settings.latent_dim, settings.num_levels),
        "train_seconds": round(train_seconds, 2),
        "epochs": settings.epochs,
        "seed": settings.seed,
        "head": settings.head_name,
        "encoder_fingerprint": fingerprint,
        "reference_classifier": reference_dir,
    }
    if settings.encoder_dir is None:
        runs.save_encoder(
            run.encoder_dir,
            trainer.encoder,
            {
                "preset": settings.preset,
                "latent_dim": settings.latent_dim,
                "num_levels": settings.num_levels,
                "temperature": settings.temperature,
                "image_shape": list(data.image_shape(settings.dataset)),
                "rate_bits": trainer.rate_bits,
            },
        )
    if settings.is_multihead:
        heads = list(
            zip(
                settings.head_names,
                trainer.decoders,
                [None] * len(trainer.decoders),
                settings.multihead_lambda_c,
            )
        )
    else:
        heads = [(settings.head_name, trainer.decoder, trainer.critic, settings.lambda_c)]
    for name, decoder, critic, lambda_c in heads:
        runs.save_head(
            run.head_dir(name),
            decoder,
            critic,
            {
                "name": name,
                "preset": settings.preset,
                "latent_dim": settings.latent_dim,
                "num_levels": settings.num_levels,
                "lambda_d": settings.lambda_d,
                "lambda_c": lambda_c,
                "lambda_p": settings.lambda_p,
                "classifier_mode": settings.classifier_mode,
                "encoder_fingerprint": fingerprint,
                "encoder_dir": settings.encoder_dir or str(run.encoder_dir),
                "test": test_metrics,
            },
        )
    run.write_results(results)
    return results
