"""Tests for rdc_keras.trainers.rdc.RDCTrainer on the 8x8 digits data (a few steps each).

Covers the issue-5 checklist for the trainer: output ranges, training lowers the loss, the
classification tradeoff (lambda_c > 0 lowers the judge's CE), no critic when lambda_p == 0, a
frozen encoder stays bit-identical, Keras callbacks, mixed_bfloat16, the alternate schedule,
joint classifiers, K = 2 classification targets and MirroredStrategy on 2 logical CPUs.
"""

import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from rdc_keras import data, networks
from rdc_keras.tfkeras import keras
from rdc_keras.trainers import classifier as classifier_lib
from rdc_keras.trainers.rdc import RDCTrainer

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
LATENT_DIM, NUM_LEVELS = 3, 3


@pytest.fixture(scope="module")
def arrays():
    x_train, y_train = data.load_arrays("digits", "train")
    x_test, y_test = data.load_arrays("digits", "test")
    return x_train, y_train, x_test, y_test


@pytest.fixture(scope="module")
def train_ds(arrays):
    x, y = arrays[:2]
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(32, drop_remainder=True).cache()


@pytest.fixture(scope="module")
def test_ds(arrays):
    x, y = arrays[2:]
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(360)


@pytest.fixture(scope="module")
def judge(arrays):
    """A frozen reference classifier pretrained on clean digits (the paper's `pretrained` mode)."""
    x, y = arrays[:2]
    train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(2000, seed=0).batch(64)
    model = classifier_lib.train_classifier("digits", train, epochs=8, seed=0, verbose=0)
    model.trainable = False
    return model


def _adam(learning_rate=1e-2):
    return keras.optimizers.Adam(learning_rate, beta_1=0.5, beta_2=0.9)


def _trainer(
    seed=0, init_seed=None, critic=False, classifier=None, compile_=True, **kwargs
) -> RDCTrainer:
    """A digits trainer (dither `seed`) with networks drawn from `init_seed`, compiled with Adam."""
    keras.utils.set_random_seed(seed if init_seed is None else init_seed)
    trainer = RDCTrainer(
        networks.encoder("digits", LATENT_DIM),
        networks.decoder("digits", LATENT_DIM),
        NUM_LEVELS,
        classifier=classifier,
        critic=networks.critic("digits") if critic else None,
        seed=seed,
        **kwargs,
    )
    if compile_:
        trainer.compile(
            _adam(),
            critic_optimizer=_adam(1e-3) if trainer.critic is not None else None,
            classifier_optimizer=_adam(1e-3) if kwargs.get("classifier_mode") == "joint" else None,
        )
    return trainer


def _values(variables) -> list[np.ndarray]:
    return [v.numpy().copy() for v in variables]


def _changed(before, variables) -> list[bool]:
    return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)]


def _refs(variables) -> set:
    return {v.ref() for v in variables}


# ------------------------------------------------------------------------------------------------
# Construction


def test_constructor_rejects_bad_arguments():
    enc, dec = networks.encoder("digits", 3), networks.decoder("digits", 3)
    clf, critic = networks.classifier("digits"), networks.critic("digits")
    cases = [
        (dict(lambda_d=-1.0), "lambda_d must be >= 0"),
        (dict(classifier=clf, lambda_c=-0.1), "lambda_c must be >= 0"),
        (dict(critic=critic, lambda_p=-1.0), "lambda_p must be >= 0"),
        (dict(lambda_p=0.1), "lambda_p > 0 needs a critic"),
        (dict(lambda_c=0.1), "lambda_c > 0 needs a classifier"),
        (dict(classifier=[clf, clf], lambda_c=[0.1, 0.2, 0.3]), "3 weights for 2 classifiers"),
        (dict(classifier_mode="frozen"), "classifier_mode must be one of"),
        (dict(schedule="random"), "schedule must be one of"),
        (dict(critic=critic, lambda_p=1.0, n_critic=0), "n_critic must be >= 1"),
        (dict(critic=critic, lambda_p=1.0, gp_weight=-1.0), "gp_weight must be >= 0"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            RDCTrainer(enc, dec, 3, **kwargs)


def test_compile_requires_the_optimizers_it_uses():
    trainer = _trainer(critic=True, lambda_p=0.1, compile_=False)
    with pytest.raises(ValueError, match="critic_optimizer"):
        trainer.compile(_adam())
    joint = _trainer(
        classifier=networks.classifier("digits"), classifier_mode="joint", compile_=False
    )
    with pytest.raises(ValueError, match="classifier_optimizer"):
        joint.compile(_adam())


# ------------------------------------------------------------------------------------------------
# Outputs, fit, evaluate, predict


def test_output_ranges_and_shapes(arrays, judge):
    x = arrays[2][:50]
    trainer = _trainer(critic=True, classifier=judge, lambda_c=0.01, lambda_p=0.01)
    assert trainer.rate_bits == pytest.approx(LATENT_DIM * math.log2(NUM_LEVELS))
    recon = trainer.predict(x, batch_size=16, verbose=0)
    assert recon.shape == (50, 8, 8, 1) and recon.dtype == np.float32
    assert np.all((recon >= 0.0) & (recon <= 1.0))
    # Prediction dither restarts with every predict call: the same call gives the same images.
    np.testing.assert_array_equal(trainer.predict(x, batch_size=16, verbose=0), recon)
    called = trainer(x).numpy()
    assert called.shape == (50, 8, 8, 1) and np.all((called >= 0) & (called <= 1))
    # reconstruct() is a function of (images, seeds): same seeds, same images; others differ.
    seeds = tf.range(50, dtype=tf.int64)
    first = trainer.reconstruct(x, seeds).numpy()
    np.testing.assert_array_equal(trainer.reconstruct(x, seeds).numpy(), first)
    assert not np.array_equal(trainer.reconstruct(x, seeds + 1000).numpy(), first)

    metrics = trainer.evaluate(x, arrays[3][:50], batch_size=25, verbose=0, return_dict=True)
    assert set(metrics) == {"loss", "mse", "psnr", "ce", "accuracy", "w1"}
    assert 0.0 < metrics["mse"] < 1.0
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["ce"] > 0.0
    # Mean per-image PSNR >= PSNR of the mean MSE (Jensen: -log10 is convex).
    assert metrics["psnr"] >= 10.0 * math.log10(1.0 / metrics["mse"]) - 1e-4
    # loss = lambda_d MSE + lambda_c CE + lambda_p (-critic score): not just the MSE.
    assert metrics["loss"] != pytest.approx(metrics["mse"])


def test_one_fit_epoch_lowers_the_loss(train_ds, test_ds, judge):
    trainer = _trainer(classifier=judge)
    before = trainer.evaluate(test_ds, verbose=0, return_dict=True)
    history = trainer.fit(train_ds, epochs=1, verbose=0).history
    after = trainer.evaluate(test_ds, verbose=0, return_dict=True)
    assert set(history) == {"loss", "mse", "psnr", "ce", "accuracy"}
    assert set(after) == set(history)  # no critic, no w1
    assert np.isfinite(history["loss"][0])
    assert after["loss"] < 0.8 * before["loss"]
    assert after["mse"] == pytest.approx(after["loss"])  # lambda_c = lambda_p = 0


def test_classification_term_lowers_cross_entropy(train_ds, test_ds, judge):
    """Same data, seed and networks: lambda_c > 0 trades MSE for a much lower judge CE."""
    judge_before = _values(judge.weights)
    results = {}
    for lambda_c in (0.0, 0.05):
        trainer = _trainer(seed=0, classifier=judge, lambda_c=lambda_c)
        history = trainer.fit(train_ds, epochs=3, verbose=0).history
        assert "classifier_loss" not in history
        results[lambda_c] = trainer.evaluate(test_ds, verbose=0, return_dict=True)
    assert not any(_changed(judge_before, judge.weights))  # `pretrained`: the judge is frozen
    plain, classified = results[0.0], results[0.05]
    assert classified["ce"] < 0.7 * plain["ce"], results
    assert classified["accuracy"] > plain["accuracy"] + 0.1, results
    assert classified["mse"] > plain["mse"], results  # the tradeoff: distortion pays


# ------------------------------------------------------------------------------------------------
# Critic


def test_no_critic_when_lambda_p_is_zero(train_ds):
    critic = networks.critic("digits")
    critic_before = _values(critic.weights)
    trainer = RDCTrainer(
        networks.encoder("digits", 3), networks.decoder("digits", 3), 3, critic=critic
    )
    assert trainer.critic is None
    trainer.compile(_adam(), critic_optimizer=_adam())
    assert trainer.critic_optimizer is None
    history = trainer.fit(train_ds, epochs=1, steps_per_epoch=2, verbose=0).history
    assert not {"critic_loss", "gradient_penalty", "w1"} & set(history)
    assert not {"critic_loss", "gradient_penalty", "w1"} & {m.name for m in trainer.metrics}
    assert not _refs(critic.weights) & _refs(trainer.variables)
    assert not any(_changed(critic_before, critic.weights))

    # Control: with lambda_p > 0 the critic is tracked, trained and reported.
    with_critic = _trainer(critic=True, lambda_p=0.1)
    assert with_critic.critic is not None
    critic_weights = with_critic.critic.trainable_variables
    before = _values(critic_weights)
    decoder_before = _values(with_critic.decoder.trainable_variables)
    history = with_critic.fit(train_ds, epochs=1, steps_per_epoch=2, verbose=0).history
    # The default "joint" schedule updates critic and generator on every batch.
    assert any(_changed(decoder_before, with_critic.decoder.trainable_variables))
    assert {"critic_loss", "gradient_penalty", "w1"} <= set(history)
    assert _refs(critic_weights) <= _refs(with_critic.trainable_variables)
    assert any(_changed(before, critic_weights))  # (the score bias cancels in E h(x̂) - E h(x))


# ------------------------------------------------------------------------------------------------
# Phase 2: frozen encoder


@pytest.mark.parametrize("freeze", [True, False])
def test_frozen_encoder_weights_and_batchnorm_statistics(train_ds, freeze):
    trainer = _trainer(freeze_encoder=freeze)
    encoder_weights = trainer.encoder.weights  # trainable and BatchNorm moving statistics
    moving = [w for w in encoder_weights if "moving" in w.name]
    assert len(moving) == 2 * 3  # mean and variance of 3 BatchNorm layers
    before = _values(encoder_weights)
    decoder_before = _values(trainer.decoder.trainable_variables)
    trainer.fit(train_ds, epochs=1, steps_per_epoch=5, verbose=0)
    assert any(_changed(decoder_before, trainer.decoder.trainable_variables))
    if freeze:
        assert not any(_changed(before, encoder_weights))  # bit-identical
        assert not _refs(encoder_weights) & _refs(trainer.trainable_variables)
    else:  # control: the same epoch moves the encoder's BatchNorm statistics
        changed = _changed(before, encoder_weights)
        assert all(c for w, c in zip(encoder_weights, changed) if "moving" in w.name)


# ------------------------------------------------------------------------------------------------
# Keras integration


class _Poison(keras.layers.Layer):
    """Multiplies its input by a non-trainable scale; set the scale to NaN to inject NaNs."""

    def build(self, input_shape):
        self.scale = self.add_weight("scale", shape=(), initializer="ones", trainable=False)

    def call(self, inputs):
        return inputs * self.scale


class _Recorder(keras.callbacks.Callback):
    """Records epochs, batches and states; can fail at an epoch or poison a batch with NaN."""

    def __init__(self, fail_at_epoch=None, poison=None, poison_at_batch=None):
        super().__init__()
        self.fail_at_epoch = fail_at_epoch
        self.poison = poison
        self.poison_at_batch = poison_at_batch
        self.epochs = []
        self.batches = 0
        self.epoch_start_weights = {}
        self.epoch_end_weights = {}

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.fail_at_epoch:
            raise RuntimeError("simulated interruption")
        self.epochs.append(epoch)
        self.epoch_start_weights[epoch] = self._state()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_end_weights[epoch] = self._state()

    def _state(self):
        """Network weights (BatchNorm statistics included) and the generator step count."""
        model = self.model
        variables = model.encoder.weights + model.decoder.weights
        return [*_values(variables), model.generator_optimizer.iterations.numpy()]

    def on_train_batch_begin(self, batch, logs=None):
        if self.poison is not None and batch == self.poison_at_batch:
            self.poison.scale.assign(float("nan"))

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def test_keras_callbacks_tensorboard_checkpoint(train_ds, arrays, tmp_path):
    trainer = _trainer(critic=True, lambda_p=0.01)
    callbacks = [
        keras.callbacks.TensorBoard(str(tmp_path / "logs")),
        keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt" / "weights"), save_weights_only=True),
    ]
    history = trainer.fit(train_ds, epochs=2, steps_per_epoch=3, verbose=0, callbacks=callbacks)
    assert len(history.history["loss"]) == 2
    assert list((tmp_path / "logs" / "train").glob("events.out.tfevents.*"))
    assert (tmp_path / "ckpt" / "weights.index").exists()
    assert not list((tmp_path / "backup").rglob("*.index"))  # deleted after a finished fit

    restored = _trainer(init_seed=5, critic=True, lambda_p=0.01)  # same dither, other weights
    x = arrays[2][:20]
    assert not np.array_equal(restored.predict(x, verbose=0), trainer.predict(x, verbose=0))
    restored.load_weights(str(tmp_path / "ckpt" / "weights")).expect_partial()
    np.testing.assert_array_equal(restored.predict(x, verbose=0), trainer.predict(x, verbose=0))


def test_backup_and_restore_resumes_after_interruption(train_ds, tmp_path):
    backup = str(tmp_path / "backup")
    first = _trainer(seed=0)
    interrupted = _Recorder(fail_at_epoch=1)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        first.fit(
            train_ds,
            epochs=3,
            steps_per_epoch=2,
            verbose=0,
            callbacks=[keras.callbacks.BackupAndRestore(backup), interrupted],
        )
    assert interrupted.epochs == [0]
    second = _trainer(init_seed=7)  # other initial weights: the backup must overwrite them
    resumed = _Recorder()
    history = second.fit(
        train_ds,
        epochs=3,
        steps_per_epoch=2,
        verbose=0,
        callbacks=[keras.callbacks.BackupAndRestore(backup), resumed],
    )
    assert resumed.epochs == [1, 2] and len(history.history["loss"]) == 2
    assert resumed.epoch_start_weights[1][-1] == 2  # two generator steps were restored
    for saved, restored in zip(interrupted.epoch_end_weights[0], resumed.epoch_start_weights[1]):
        np.testing.assert_array_equal(saved, restored)


def test_terminate_on_nan_stops_at_the_poisoned_batch(train_ds):
    keras.utils.set_random_seed(0)
    poison = _Poison()
    base = networks.decoder("digits", 3)
    decoder = keras.Sequential([keras.Input((3,)), base, poison])
    trainer = RDCTrainer(networks.encoder("digits", 3), decoder, 3)
    trainer.compile(_adam())
    recorder = _Recorder(poison=poison, poison_at_batch=2)
    history = trainer.fit(
        train_ds.repeat(),
        epochs=3,
        steps_per_epoch=10,
        verbose=0,
        callbacks=[recorder, keras.callbacks.TerminateOnNaN()],
    )
    assert recorder.batches == 3  # batches 0 and 1 fine, batch 2 NaN, then stop
    assert trainer.stop_training
    assert np.isnan(history.history["loss"][-1])


def bfloat16_step_check() -> None:
    """One mixed_bfloat16 epoch of a trainer with critic and classifier term (child process)."""
    x, y = data.load_arrays("digits", "train")
    x, y = x[:32], y[:32]
    keras.utils.set_random_seed(0)
    judge = networks.classifier("digits")  # float32, frozen: only its CE term is trained through
    judge.trainable = False
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        trainer = _trainer(critic=True, classifier=judge, lambda_c=0.01, lambda_p=0.01)
        assert trainer.decoder.get_layer("block1_dense").compute_dtype == "bfloat16"
        assert trainer.encoder.get_layer("block1_dense").compute_dtype == "bfloat16"
        before = _values(trainer.decoder.trainable_variables)
        history = trainer.fit(x, y, batch_size=32, epochs=1, verbose=0).history
        assert all(np.isfinite(v[0]) for v in history.values()), history
        assert all(_changed(before, trainer.decoder.trainable_variables))
        recon = trainer.predict(x, verbose=0)
        assert recon.dtype == np.float32 and np.all((recon >= 0) & (recon <= 1))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert keras.mixed_precision.global_policy().name == previous.name


def test_mixed_bfloat16_trains_one_step():
    # In a child process: where TensorFlow's oneDNN kernels have no bfloat16 (TF 2.14 on CPUs
    # without AVX-512) a bfloat16 step aborts the process, so the child then runs Eigen's.
    from rdc_keras.trainers import runner

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "tests"), str(REPO_ROOT)])
    if not runner.bfloat16_kernels_run():
        env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    code = "import test_rdc; test_rdc.bfloat16_step_check(); print('checked')"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0 and out.stdout.split()[-1] == "checked", out.stderr[-2000:]


# ------------------------------------------------------------------------------------------------
# Schedules and classifiers


def test_alternate_schedule_alternates(arrays):
    x, y = arrays[0][:32], arrays[1][:32]
    trainer = _trainer(critic=True, lambda_p=0.1, n_critic=2, schedule="alternate")
    critic_vars = trainer.critic.trainable_variables
    generator_vars = trainer.encoder.trainable_variables + trainer.decoder.trainable_variables
    turns = []
    for _ in range(6):
        critic_before, generator_before = _values(critic_vars), _values(generator_vars)
        trainer.train_on_batch(x, y)
        critic_moved = any(_changed(critic_before, critic_vars))
        generator_moved = any(_changed(generator_before, generator_vars))
        assert critic_moved != generator_moved, turns
        turns.append("C" if critic_moved else "G")
    assert "".join(turns) == "CCGCCG"  # n_critic critic steps, then one generator step


def test_alternate_schedule_with_several_steps_per_execution(arrays):
    """steps_per_execution = 3 runs three turns per call (C, C, G with n_critic = 2) and the
    same weights as three calls of one step."""
    x, y = arrays[0][:96], arrays[1][:96]
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    final = {}
    for steps in (1, 3):
        trainer = _trainer(
            critic=True, lambda_p=0.1, n_critic=2, schedule="alternate", compile_=False
        )
        trainer.compile(_adam(), critic_optimizer=_adam(1e-3), steps_per_execution=steps)
        trainer.fit(ds, epochs=1, verbose=0)
        assert int(trainer._step.numpy()) == 3
        final[steps] = _values(trainer.critic.trainable_variables + trainer.decoder.weights)
    for a, b in zip(final[1], final[3]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)  # graph rounding only


def test_joint_mode_two_classifiers_train_but_never_the_judge(train_ds, judge):
    """classifier_mode="joint" with K = 2 targets: digit class and parity (a dataset map)."""
    two_labels = train_ds.map(lambda x, y: (x, (y, y % 2)))
    judge_before = _values(judge.weights)
    digit, parity = networks.classifier("digits"), networks.classifier("digits")
    trainer = _trainer(
        classifier=[digit, parity],
        reference_classifier=judge,
        classifier_mode="joint",
        lambda_c=[0.01, 0.02],
    )
    assert trainer.lambda_c == [0.01, 0.02] and trainer.reference_classifier is judge
    assert not _refs(judge.weights) & _refs(trainer.trainable_variables)
    before = [_values(digit.trainable_variables), _values(parity.trainable_variables)]
    history = trainer.fit(two_labels, epochs=1, steps_per_epoch=4, verbose=0).history
    assert "classifier_loss" in history
    assert all(np.isfinite(v[0]) for v in history.values()), history
    assert all(_changed(before[0], digit.trainable_variables))
    assert all(_changed(before[1], parity.trainable_variables))
    assert not any(_changed(judge_before, judge.weights))  # bit-identical judge


def test_two_classifier_terms_add_with_their_weights(test_ds, judge):
    """With the same judge twice and labels (y, y): loss = lambda_d MSE + (a + b) CE exactly."""
    doubled = test_ds.map(lambda x, y: (x, (y, y)))
    lambda_d, a, b = 2.0, 0.3, 0.7
    trainer = _trainer(classifier=[judge, judge], lambda_d=lambda_d, lambda_c=[a, b])
    metrics = trainer.evaluate(doubled, verbose=0, return_dict=True)
    expected = lambda_d * metrics["mse"] + (a + b) * metrics["ce"]
    assert metrics["loss"] == pytest.approx(expected, rel=1e-5)
    single = _trainer(classifier=judge, lambda_d=lambda_d, lambda_c=a)
    single_metrics = single.evaluate(test_ds, verbose=0, return_dict=True)
    assert single_metrics["mse"] == pytest.approx(metrics["mse"], rel=1e-6)  # same seed, weights
    assert metrics["loss"] - single_metrics["loss"] == pytest.approx(b * metrics["ce"], rel=1e-4)


# ------------------------------------------------------------------------------------------------
# MirroredStrategy on 2 logical CPU devices (a fresh process: devices are fixed at TF start-up)

_MIRRORED_SCRIPT = r"""
import json
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from rdc_keras import data, networks
from rdc_keras.tfkeras import keras
from rdc_keras.trainers.rdc import RDCTrainer

x, y = data.load_arrays("digits", "train")
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {"replicas": strategy.num_replicas_in_sync}

# 1. The full digits setup (critic, joint classifier) trains under the strategy, with either
# schedule; "alternate" takes its critic turn (only the critic and classifier move), then its
# generator turn (only encoder/decoder move).
def full_setup(schedule):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        trainer = RDCTrainer(
            networks.encoder("digits", 3), networks.decoder("digits", 3), 3,
            classifier=networks.classifier("digits"), critic=networks.critic("digits"),
            lambda_c=0.01, lambda_p=0.01, classifier_mode="joint", schedule=schedule,
        )
        trainer.compile(
            keras.optimizers.Adam(1e-2), keras.optimizers.Adam(1e-3),
            keras.optimizers.Adam(1e-3),
        )
    return trainer


def weights(trainer):
    networks_ = {
        "encoder": trainer.encoder, "decoder": trainer.decoder, "critic": trainer.critic,
        "classifier": trainer.classifiers[0],
    }
    return {k: [v.numpy().copy() for v in m.trainable_variables] for k, m in networks_.items()}


def changed(before, after):
    return {k: any(not np.array_equal(b, a) for b, a in zip(before[k], after[k])) for k in before}


ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32, drop_remainder=True)
out["history"], out["changed"], out["turns"] = {}, {}, []
for schedule in ("joint", "alternate"):
    trainer = full_setup(schedule)
    before = weights(trainer)
    history = trainer.fit(ds, epochs=1, steps_per_epoch=4, verbose=0).history
    out["history"][schedule] = {k: float(v[-1]) for k, v in history.items()}
    out["changed"][schedule] = changed(before, weights(trainer))
    out.setdefault("steps", {})[schedule] = int(trainer._step.numpy())
    if schedule == "alternate":
        for _ in range(2):
            before = weights(trainer)
            trainer.fit(ds.take(1), epochs=1, verbose=0)
            out["turns"].append(changed(before, weights(trainer)))

# 2. Loss scaling: one SGD(1) step on a fixed batch moves the weights by -gradient of the mean
# over the global batch under both strategies. BatchNorm-free networks and one shared dither
# row, so the two replicas compute exactly the terms of the single-device batch.
class SharedDither(RDCTrainer):
    def _seeds(self, batch_size, stream, counter):
        return tf.zeros([batch_size], tf.int64)


def build():
    layers = keras.layers
    enc = keras.Sequential([
        keras.Input((8, 8, 1)), layers.Flatten(), layers.Dense(16, "tanh"),
        layers.Dense(3, "tanh"),
    ])
    dec = keras.Sequential([
        keras.Input((3,)), layers.Dense(16, "tanh"), layers.Dense(64, "sigmoid"),
        layers.Reshape((8, 8, 1)),
    ])
    trainer = SharedDither(enc, dec, 3, classifier=networks.classifier("digits"), lambda_c=0.5)
    trainer.compile(keras.optimizers.SGD(1.0))
    return trainer


keras.utils.set_random_seed(1)
single = build()
initial = [w.copy() for w in single.get_weights()]
with strategy.scope():
    mirrored = build()
mirrored.set_weights(initial)
batch = tf.data.Dataset.from_tensor_slices((x[:16], y[:16])).batch(16)
deltas = {}
for name, model in (("single", single), ("mirrored", mirrored)):
    start = [v.numpy().copy() for v in model.encoder.trainable_variables
             + model.decoder.trainable_variables]
    model.fit(batch, epochs=1, verbose=0)
    end = [v.numpy() for v in model.encoder.trainable_variables
           + model.decoder.trainable_variables]
    deltas[name] = np.concatenate([(s - e).ravel() for s, e in zip(start, end)])
out["max_abs_gradient"] = float(np.abs(deltas["single"]).max())
out["max_abs_difference"] = float(np.abs(deltas["single"] - deltas["mirrored"]).max())
out["ratio"] = float(np.abs(deltas["mirrored"]).sum() / np.abs(deltas["single"]).sum())
print("RESULT " + json.dumps(out))
"""


def test_mirrored_strategy_two_logical_cpus():
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, result.stdout[-2000:]
    out = json.loads(lines[0][len("RESULT ") :])
    assert out["replicas"] == 2
    everything = dict.fromkeys(["encoder", "decoder", "critic", "classifier"], True)
    for schedule in ("joint", "alternate"):
        history = out["history"][schedule]
        assert all(np.isfinite(v) for v in history.values()), (schedule, history)
        assert {"critic_loss", "classifier_loss", "w1"} <= set(history), schedule
        assert out["changed"][schedule] == everything, schedule
        assert out["steps"][schedule] == 4, schedule
    # After 4 steps the alternate cycle (critic, generator) starts again with a critic turn.
    critic_turn, generator_turn = out["turns"]
    assert critic_turn == {"encoder": False, "decoder": False, "critic": True, "classifier": True}
    assert generator_turn == {
        "encoder": True,
        "decoder": True,
        "critic": False,
        "classifier": False,
    }
    # Per-replica losses are scaled by the global batch: the summed replica gradients equal the
    # single-device gradient (a per-replica mean would double it: ratio 2).
    assert out["max_abs_gradient"] > 1e-4, out
    assert out["max_abs_difference"] <= 1e-5 + 1e-4 * out["max_abs_gradient"], out
    assert out["ratio"] == pytest.approx(1.0, abs=1e-3), out
