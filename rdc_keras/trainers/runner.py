"""A whole training run in a work directory: config, data, callbacks, resume, saved networks.

`train_run(config)` is what `rdc-train` (phase 1) and `rdc-universal` (phase 2, frozen encoder)
execute. The work directory holds::

    config.json        the run's configuration, seed and environment
    metrics.jsonl      one JSON line per finished epoch (train and validation metrics)
    backup/            Keras BackupAndRestore state: a re-run resumes after the last full epoch
    logs/              TensorBoard
    classifier/        the reference classifier, when this run had to train one
    encoder/           the encoder (network.json + weights.h5) with its fingerprint
    heads/<name>/      decoder/ (+ critic/) and head.json: lambdas, metrics, encoder fingerprint
    results.json       test metrics of the finished run (MSE per pixel on [0,1]; CE in nats)

Re-running an identical command resumes an interrupted run or reports the finished one; a
different configuration in the same directory is refused instead of being mixed in.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import shutil
import time
from typing import Any

import tensorflow as tf

from rdc_keras import data, networks, runs
from rdc_keras.trainers import classifier as classifier_lib
from rdc_keras.trainers.multihead import MultiHeadRDCTrainer
from rdc_keras.trainers.rdc import CLASSIFIER_MODES, SCHEDULES, RDCTrainer

__all__ = [
    "TrainConfig",
    "TrainingDivergedError",
    "build_trainer",
    "load_encoder",
    "load_head",
    "train_run",
]

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("default", "mirrored", "one_device")
# Fields that may differ when resuming a run without changing its result.
_VOLATILE = frozenset({"verbose", "workdir"})


class TrainingDivergedError(RuntimeError):
    """A loss or metric became NaN/Inf; the last good epoch's state is kept in backup/."""


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines one RDC training run (flags of `rdc-train` / `rdc-universal`).

    `None` means "the preset's default" (`networks.preset_defaults`).
    """

    workdir: str
    dataset: str = "digits"
    data_dir: str | None = None
    latent_dim: int = 3
    num_levels: int = 3
    temperature: float | None = None
    lambda_d: float = 1.0
    lambda_c: float = 0.0
    lambda_p: float = 0.0
    classifier_mode: str = "pretrained"
    classifier_dir: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    steps_per_epoch: int | None = None
    generator_learning_rate: float | None = None
    critic_learning_rate: float | None = None
    classifier_learning_rate: float | None = None
    lr_boundaries: tuple[int, ...] | None = None
    lr_factors: tuple[float, ...] | None = None
    n_critic: int | None = None
    gp_weight: float | None = None
    schedule: str = "joint"
    mixed_precision: str = "float32"
    jit_compile: bool = False
    strategy: str = "default"
    encoder_dir: str | None = None
    head_name: str | None = None
    multihead_lambda_c: tuple[float, ...] | None = None
    seed: int = 0
    verbose: int = 2

    @property
    def preset(self) -> str:
        return data.dataset_info(self.dataset).preset

    def validate(self) -> None:
        """Raises ValueError naming the first bad field (before anything is written)."""
        data.dataset_info(self.dataset)  # unknown dataset -> ValueError naming it
        checks = [
            ("latent_dim", self.latent_dim >= 1, "must be >= 1"),
            ("num_levels", self.num_levels >= 2, "must be >= 2"),
            ("lambda_d", self.lambda_d >= 0, "must be >= 0"),
            ("lambda_c", self.lambda_c >= 0, "must be >= 0"),
            ("lambda_p", self.lambda_p >= 0, "must be >= 0"),
            ("temperature", self.temperature is None or self.temperature > 0, "must be > 0"),
            ("epochs", self.epochs is None or self.epochs >= 1, "must be >= 1"),
            ("batch_size", self.batch_size is None or self.batch_size >= 1, "must be >= 1"),
            (
                "steps_per_epoch",
                self.steps_per_epoch is None or self.steps_per_epoch >= 1,
                "must be >= 1",
            ),
            ("n_critic", self.n_critic is None or self.n_critic >= 1, "must be >= 1"),
            ("gp_weight", self.gp_weight is None or self.gp_weight >= 0, "must be >= 0"),
            (
                "classifier_mode",
                self.classifier_mode in CLASSIFIER_MODES,
                f"not in {CLASSIFIER_MODES}",
            ),
            ("schedule", self.schedule in SCHEDULES, f"not in {SCHEDULES}"),
            ("mixed_precision", self.mixed_precision in PRECISIONS, f"not in {PRECISIONS}"),
            ("strategy", self.strategy in STRATEGIES, f"not in {STRATEGIES}"),
        ]
        for name, ok, problem in checks:
            if not ok:
                raise ValueError(f"--{name}={getattr(self, name)!r}: {problem}")
        if (self.lr_boundaries is None) != (self.lr_factors is None):
            raise ValueError("--lr_boundaries and --lr_factors must be given together")
        if self.lr_boundaries is not None and len(self.lr_factors) != len(self.lr_boundaries) + 1:
            raise ValueError("--lr_factors needs exactly one more entry than --lr_boundaries")
        if self.multihead_lambda_c is not None:
            if len(self.multihead_lambda_c) < 1 or min(self.multihead_lambda_c) < 0:
                raise ValueError("--multihead_lambda_c needs one or more weights >= 0")
            if self.lambda_p > 0 or self.classifier_mode != "pretrained" or self.encoder_dir:
                raise ValueError(
                    "a multi-head base needs --lambda_p=0, --classifier=pretrained and no "
                    "--encoder_dir"
                )
        if self.data_dir is None and data.dataset_info(self.dataset).source == "idx":
            raise ValueError(f"--data_dir is required for --dataset={self.dataset}")
        if self.data_dir is not None and not pathlib.Path(self.data_dir).is_dir():
            raise ValueError(f"--data_dir={self.data_dir}: directory not found")
        for name in ("classifier_dir", "encoder_dir"):
            value = getattr(self, name)
            if value is not None and not pathlib.Path(value).is_dir():
                raise ValueError(f"--{name}={value}: directory not found")

    def resolved(self) -> dict[str, Any]:
        """The config with every preset default filled in (what config.json records)."""
        defaults = networks.preset_defaults(self.preset)
        values = dataclasses.asdict(self)
        fill = {
            "temperature": defaults.quantizer_temperature(self.num_levels),
            "epochs": defaults.epochs,
            "batch_size": defaults.batch_size,
            "generator_learning_rate": defaults.generator_learning_rate,
            "critic_learning_rate": defaults.critic_learning_rate,
            "classifier_learning_rate": defaults.classifier_learning_rate,
            "lr_boundaries": list(defaults.lr_boundaries),
            "lr_factors": list(defaults.lr_factors),
            "n_critic": defaults.n_critic,
            "gp_weight": defaults.gp_weight,
        }
        for key, value in fill.items():
            if values[key] is None:
                values[key] = value
        for key in ("lr_boundaries", "lr_factors", "multihead_lambda_c"):
            if values[key] is not None:
                values[key] = list(values[key])
        values["preset"] = self.preset
        values["head_name"] = values["head_name"] or default_head_name(self)
        values["beta_1"], values["beta_2"] = defaults.beta_1, defaults.beta_2
        values["adam_epsilon"] = defaults.adam_epsilon
        return values


def default_head_name(config: TrainConfig) -> str:
    """A readable head name from its lambdas, e.g. `d1-c0.015-p0` (`multihead` for K heads)."""
    if config.multihead_lambda_c is not None:
        return "multihead"
    return f"d{config.lambda_d:g}-c{config.lambda_c:g}-p{config.lambda_p:g}"


def multihead_head_names(settings: dict[str, Any]) -> list[str]:
    """Names of the K heads of a multi-head base run, e.g. `multihead-c0.015`."""
    return [f"multihead-c{value:g}" for value in settings["multihead_lambda_c"]]


# ------------------------------------------------------------------------------------------------
# Building and loading networks.


def _encoder_builder(description: dict[str, Any]) -> tf.keras.Model:
    return networks.encoder(description["preset"], description["latent_dim"])


def load_encoder(directory: str | pathlib.Path) -> tuple[tf.keras.Model, dict[str, Any]]:
    """Loads a saved encoder and checks its fingerprint; returns (encoder, description)."""
    directory = pathlib.Path(directory)
    if (directory / "encoder").is_dir():  # a run directory was given
        directory = directory / "encoder"
    encoder, description = runs.load_network(directory, _encoder_builder, kind="encoder")
    actual = runs.encoder_fingerprint(
        encoder, description["num_levels"], description["temperature"]
    )
    if actual != description["fingerprint"]:
        raise ValueError(f"{directory}: encoder weights do not match their recorded fingerprint")
    return encoder, description


def load_head(
    directory: str | pathlib.Path, encoder_description: dict[str, Any] | None = None
) -> tuple[tf.keras.Model, dict[str, Any]]:
    """Loads a head's decoder; refuses it when it was trained on another encoder."""
    directory = pathlib.Path(directory)
    description = runs.read_json(directory / "head.json")
    if (
        encoder_description is not None
        and description["encoder_fingerprint"] != encoder_description["fingerprint"]
    ):
        raise ValueError(
            f"{directory}: head belongs to encoder {description['encoder_fingerprint'][:12]}, "
            f"not {encoder_description['fingerprint'][:12]}"
        )
    decoder, _ = runs.load_network(
        directory / "decoder",
        lambda d: networks.decoder(d["preset"], d["latent_dim"]),
        kind="decoder",
    )
    return decoder, description


def _optimizer(learning_rate: float, settings: dict[str, Any], precision: str):
    optimizer = tf.keras.optimizers.Adam(
        learning_rate,
        beta_1=settings["beta_1"],
        beta_2=settings["beta_2"],
        epsilon=settings["adam_epsilon"],
    )
    if precision == "mixed_float16":
        optimizer = tf.keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer


def build_trainer(
    settings: dict[str, Any],
    reference_classifier: tf.keras.Model | None,
    encoder: tf.keras.Model | None = None,
    base_critic: tf.keras.Model | None = None,
) -> RDCTrainer:
    """Builds and compiles an `RDCTrainer` from resolved settings (see `TrainConfig.resolved`).

    In `pretrained` mode the reference classifier is also the training classifier; in `joint`
    mode a fresh classifier is trained on reconstructions while the reference stays the judge.
    No critic is built when lambda_p == 0.
    """
    preset = settings["preset"]
    precision = settings["mixed_precision"]
    if settings.get("multihead_lambda_c"):
        trainer = MultiHeadRDCTrainer(
            networks.encoder(preset, settings["latent_dim"]),
            [
                networks.decoder(preset, settings["latent_dim"])
                for _ in settings["multihead_lambda_c"]
            ],
            settings["num_levels"],
            reference_classifier,
            head_lambda_c=settings["multihead_lambda_c"],
            lambda_d=settings["lambda_d"],
            temperature=settings["temperature"],
            seed=settings["seed"],
        )
        trainer.compile(
            _optimizer(settings["generator_learning_rate"], settings, precision),
            jit_compile=settings["jit_compile"],
        )
        return trainer
    freeze = encoder is not None
    encoder = encoder or networks.encoder(preset, settings["latent_dim"])
    decoder = networks.decoder(preset, settings["latent_dim"])
    critic = None
    if settings["lambda_p"] > 0:
        critic = networks.critic(preset)
        if base_critic is not None:  # the paper initialises a head's critic from the base critic
            critic.set_weights(base_critic.get_weights())
    if settings["classifier_mode"] == "joint":
        training_classifier = networks.classifier(preset)
    else:
        training_classifier = reference_classifier
    trainer = RDCTrainer(
        encoder,
        decoder,
        settings["num_levels"],
        classifier=training_classifier,
        critic=critic,
        lambda_d=settings["lambda_d"],
        lambda_c=settings["lambda_c"],
        lambda_p=settings["lambda_p"],
        classifier_mode=settings["classifier_mode"],
        reference_classifier=reference_classifier,
        temperature=settings["temperature"],
        n_critic=settings["n_critic"],
        gp_weight=settings["gp_weight"],
        freeze_encoder=freeze,
        schedule=settings["schedule"],
        seed=settings["seed"],
    )
    trainer.compile(
        generator_optimizer=_optimizer(settings["generator_learning_rate"], settings, precision),
        critic_optimizer=(
            _optimizer(settings["critic_learning_rate"], settings, precision) if critic else None
        ),
        classifier_optimizer=(
            _optimizer(settings["classifier_learning_rate"], settings, precision)
            if settings["classifier_mode"] == "joint"
            else None
        ),
        jit_compile=settings["jit_compile"],
    )
    return trainer


def make_strategy(name: str) -> tf.distribute.Strategy:
    """`default`, `mirrored` (all local GPUs, else the CPU devices) or `one_device`."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name != "default":
        raise ValueError(f"--strategy must be one of {STRATEGIES}, got {name!r}")
    return tf.distribute.get_strategy()


# ------------------------------------------------------------------------------------------------
# Callbacks.


class _StopOnNonFinite(tf.keras.callbacks.Callback):
    """Raises `TrainingDivergedError` at the first non-finite batch or epoch metric.

    Raising (rather than setting `stop_training`, as TerminateOnNaN does) skips the rest of
    `on_epoch_end`; as the first callback, it runs before BackupAndRestore, which therefore never
    writes the diverged state over the last good epoch.
    """

    def __init__(self, check_every: int = 25) -> None:
        super().__init__()
        self.check_every = check_every
        self._supports_tf_logs = True  # no per-batch conversion of the logs to numpy

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def _check(self, logs: dict[str, Any] | None, where: str) -> None:
        for name, value in (logs or {}).items():
            if not math.isfinite(float(value)):
                raise TrainingDivergedError(
                    f"training diverged: {name} became {float(value)} in epoch "
                    f"{getattr(self, '_epoch', 0) + 1}{where}"
                )

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # Reading a metric waits for the step to finish, so batches are checked only every
        # `check_every` steps (and every epoch end); logs stay tensors in between.
        if (batch + 1) % self.check_every == 0:
            self._check(logs, f", batch {batch + 1}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._check(logs, "")


class _EpochLog(tf.keras.callbacks.Callback):
    """Appends one JSON line per epoch to metrics.jsonl and prints a short progress line."""

    def __init__(self, path: pathlib.Path, total_epochs: int, verbose: int) -> None:
        super().__init__()
        self.path = path
        self.total_epochs = total_epochs
        self.verbose = verbose

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        record = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - self._start, 3)}
        record.update({key: float(value) for key, value in (logs or {}).items()})
        lines = []
        if self.path.exists():  # a resumed run drops lines of epochs it is about to redo
            lines = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line)["epoch"] < epoch + 1
            ]
        lines.append(json.dumps(record, sort_keys=True))
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.path)
        if self.verbose:
            shown = " ".join(
                f"{key}={record[key]:.4g}"
                for key in (
                    "loss",
                    "mse",
                    "ce",
                    "accuracy",
                    "w1",
                    "val_mse",
                    "val_ce",
                    "val_accuracy",
                )
                if key in record
            )
            print(
                f"epoch {epoch + 1}/{self.total_epochs} {shown} ({record['seconds']:.1f} s)",
                flush=True,
            )


class _PiecewiseLearningRate(tf.keras.callbacks.Callback):
    """Multiplies every optimizer's base learning rate by the per-epoch factor (digest §3.1)."""

    def __init__(self, base_rates: dict[str, float], boundaries, factors) -> None:
        super().__init__()
        self.base_rates = base_rates
        self.boundaries = list(boundaries)
        self.factors = list(factors)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        factor = self.factors[sum(1 for b in self.boundaries if epoch >= b)]
        for attribute, rate in self.base_rates.items():
            optimizer = getattr(self.model, attribute, None)
            if optimizer is not None:
                optimizer.learning_rate.assign(rate * factor)


# ------------------------------------------------------------------------------------------------
# The run.


def _check_workdir(workdir: pathlib.Path, settings: dict[str, Any]) -> bool:
    """True when workdir holds the same finished run; raises when it holds a different one."""
    config_path = workdir / "config.json"
    if not config_path.exists():
        return False
    previous = runs.read_json(config_path)["config"]
    # Every difference is named: a derived field (head_name) alone would hide the changed flag.
    differences = [
        f"{key}={previous.get(key)!r} (not {settings.get(key)!r})"
        for key in sorted(set(previous) | set(settings))
        if key not in _VOLATILE and previous.get(key) != settings.get(key)
    ]
    if differences:
        raise ValueError(
            f"{workdir} holds a run with {', '.join(differences)}; use another --workdir"
        )
    return (workdir / "results.json").exists()


def _datasets(settings: dict[str, Any], global_batch: int):
    train = data.load_dataset(settings["dataset"], "train", data_dir=settings["data_dir"])
    test = data.load_dataset(settings["dataset"], "test", data_dir=settings["data_dir"])
    # drop_remainder: BatchNorm needs > 1 example and every replica needs a share.
    train = data.prepare(
        train, global_batch, shuffle=True, seed=settings["seed"], drop_remainder=True
    )
    test = data.prepare(test, global_batch, shuffle=False)
    return train, test


def _reference_classifier(settings, workdir, train, test, verbose) -> tuple[Any, str]:
    """Loads the given classifier, or trains one on clean data into workdir/classifier."""
    if settings["classifier_dir"]:
        model, _ = classifier_lib.load_classifier(settings["classifier_dir"])
        return model, settings["classifier_dir"]
    directory = workdir / "classifier"
    if not (directory / runs.NETWORK_FILE).exists():
        if verbose:
            print(f"training the reference classifier into {directory}", flush=True)
        model = classifier_lib.train_classifier(
            settings["preset"], train, seed=settings["seed"], verbose=0
        )
        metrics = classifier_lib.evaluate_classifier(model, test)
        if verbose:
            print(f"reference classifier: test accuracy {metrics['accuracy']:.4f}", flush=True)
        classifier_lib.save_classifier(directory, model, settings["preset"], test_metrics=metrics)
    model, _ = classifier_lib.load_classifier(directory)
    return model, str(directory)


def train_run(config: TrainConfig) -> dict[str, Any]:
    """Runs (or resumes, or reports) one training run; returns the results dict.

    Raises:
      ValueError: a bad configuration, or a work directory holding a different run.
      TrainingDivergedError: the loss became non-finite (the last good epoch stays in backup/).
    """
    config.validate()
    settings = config.resolved()
    workdir = pathlib.Path(config.workdir)
    encoder_description = None
    if config.encoder_dir:
        _, encoder_description = load_encoder(config.encoder_dir)
        for key in ("latent_dim", "num_levels"):
            if encoder_description[key] != settings[key]:
                raise ValueError(
                    f"--{key}={settings[key]} but the encoder in {config.encoder_dir} has "
                    f"{key}={encoder_description[key]}"
                )
        if encoder_description["preset"] != settings["preset"]:
            raise ValueError(
                f"--dataset={config.dataset} uses preset {settings['preset']!r}, but the encoder "
                f"was trained with {encoder_description['preset']!r}"
            )
        settings["temperature"] = encoder_description["temperature"]
    if _check_workdir(workdir, settings):
        if config.verbose:
            print(f"{workdir}: run already finished; results.json is up to date", flush=True)
        return runs.read_json(workdir / "results.json")

    tf.keras.utils.set_random_seed(settings["seed"])
    strategy = make_strategy(settings["strategy"])
    global_batch = settings["batch_size"]
    train, test = _datasets(settings, global_batch)
    workdir.mkdir(parents=True, exist_ok=True)
    runs.write_json(
        workdir / "config.json", {"config": settings, "environment": runs.environment()}
    )

    start = time.perf_counter()
    # Layers take the global policy when built; the caller's policy is restored afterwards.
    previous_policy = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(settings["mixed_precision"])
    try:
        with strategy.scope():
            reference, reference_dir = _reference_classifier(
                settings, workdir, train, test, config.verbose
            )
            encoder = load_encoder(config.encoder_dir)[0] if config.encoder_dir else None
            trainer = build_trainer(settings, reference, encoder=encoder)
    finally:
        tf.keras.mixed_precision.set_global_policy(previous_policy)

    epochs = settings["epochs"]
    callbacks = [
        _StopOnNonFinite(),
        _PiecewiseLearningRate(
            {
                "generator_optimizer": settings["generator_learning_rate"],
                "critic_optimizer": settings["critic_learning_rate"],
                "classifier_optimizer": settings["classifier_learning_rate"],
            },
            settings["lr_boundaries"],
            settings["lr_factors"],
        ),
        # metrics.jsonl before the backup: a kill between the two redoes that epoch on resume
        # (its line is rewritten) instead of leaving the epoch out of metrics.jsonl.
        _EpochLog(workdir / "metrics.jsonl", epochs, config.verbose),
        # Kept after fit (removed once results.json exists): a kill during the final evaluate
        # and save resumes at the last epoch instead of training the run again.
        tf.keras.callbacks.BackupAndRestore(str(workdir / "backup"), delete_checkpoint=False),
        # No graph: writing it at the first batch cost ~0.3 s per run and tripped Keras'
        # "callback is slow" warning on small batches.
        tf.keras.callbacks.TensorBoard(
            str(workdir / "logs"), update_freq="epoch", write_graph=False
        ),
    ]
    trainer.fit(
        train,
        epochs=epochs,
        steps_per_epoch=settings["steps_per_epoch"],
        validation_data=test,
        callbacks=callbacks,
        verbose=0,
    )
    train_seconds = time.perf_counter() - start
    test_metrics = {
        key: float(value)
        for key, value in trainer.evaluate(test, verbose=0, return_dict=True).items()
    }
    results = _save_outputs(workdir, settings, trainer, test_metrics, train_seconds, reference_dir)
    shutil.rmtree(workdir / "backup", ignore_errors=True)
    if config.verbose:
        print(json.dumps(results["test"], sort_keys=True), flush=True)
    return results


def _save_outputs(workdir, settings, trainer, test_metrics, train_seconds, reference_dir):
    fingerprint = runs.encoder_fingerprint(
        trainer.encoder, settings["num_levels"], settings["temperature"]
    )
    encoder_description = {
        "kind": "encoder",
        "preset": settings["preset"],
        "latent_dim": settings["latent_dim"],
        "num_levels": settings["num_levels"],
        "temperature": settings["temperature"],
        "image_shape": list(data.image_shape(settings["dataset"])),
        "fingerprint": fingerprint,
        "rate_bits": trainer.rate_bits,
    }
    if settings["encoder_dir"] is None:
        runs.save_network(workdir / "encoder", trainer.encoder, encoder_description)
    if settings.get("multihead_lambda_c"):
        heads = [
            (name, decoder, None, value)
            for name, decoder, value in zip(
                multihead_head_names(settings), trainer.decoders, settings["multihead_lambda_c"]
            )
        ]
    else:
        heads = [(settings["head_name"], trainer.decoder, trainer.critic, settings["lambda_c"])]
    for name, decoder, critic, lambda_c in heads:
        _save_head(
            workdir / "heads" / name,
            decoder,
            critic,
            {
                "name": name,
                "preset": settings["preset"],
                "latent_dim": settings["latent_dim"],
                "num_levels": settings["num_levels"],
                "lambda_d": settings["lambda_d"],
                "lambda_c": lambda_c,
                "lambda_p": settings["lambda_p"],
                "classifier_mode": settings["classifier_mode"],
                "encoder_fingerprint": fingerprint,
                "encoder_dir": settings["encoder_dir"] or str(workdir / "encoder"),
                "test": test_metrics,
            },
        )
    results = {
        "test": test_metrics,
        "units": {"mse": "per-pixel mean on [0, 1]", "ce": "nats", "psnr": "dB", "rate": "bits"},
        "rate_bits": trainer.rate_bits,
        "train_seconds": round(train_seconds, 2),
        "epochs": settings["epochs"],
        "seed": settings["seed"],
        "head": settings["head_name"],
        "encoder_fingerprint": fingerprint,
        "reference_classifier": reference_dir,
    }
    runs.write_json(workdir / "results.json", results)
    return results


def _save_head(directory, decoder, critic, description: dict[str, Any]) -> None:
    """Saves one head atomically: decoder/, optional critic/ and head.json."""
    preset = description["preset"]
    with runs.atomic_directory(directory) as tmp:
        runs.save_network(
            tmp / "decoder",
            decoder,
            {"kind": "decoder", "preset": preset, "latent_dim": description["latent_dim"]},
        )
        if critic is not None:
            runs.save_network(tmp / "critic", critic, {"kind": "critic", "preset": preset})
        runs.write_json(tmp / "head.json", description)
