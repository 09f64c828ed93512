"""Tests for rdc_keras.trainers.multihead: one encoder, K heads, loss = mean of the head losses."""

import numpy as np
import pytest
import tensorflow as tf

from rdc_keras import data, networks
from rdc_keras.layers import dither
from rdc_keras.tfkeras import keras
from rdc_keras.trainers.multihead import MultiHeadRDCTrainer

LATENT_DIM, NUM_LEVELS = 3, 3
HEAD_LAMBDA_C = (0.0, 0.1, 0.5)
LAMBDA_D = 2.0


def _trainer(seed: int = 0) -> MultiHeadRDCTrainer:
    keras.utils.set_random_seed(seed)
    trainer = MultiHeadRDCTrainer(
        networks.encoder("digits", LATENT_DIM),
        [networks.decoder("digits", LATENT_DIM) for _ in HEAD_LAMBDA_C],
        NUM_LEVELS,
        networks.classifier("digits"),
        head_lambda_c=HEAD_LAMBDA_C,
        lambda_d=LAMBDA_D,
        seed=seed,
    )
    trainer.compile(keras.optimizers.Adam(1e-2))
    return trainer


@pytest.fixture(scope="module")
def batch():
    images, labels = data.load_arrays("digits", "train")
    return images[:64], labels[:64]


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def test_loss_is_the_mean_of_the_head_losses(batch):
    trainer = _trainer()
    images, labels = batch
    seeds = np.arange(len(images), dtype=np.int64) + 100
    per_example, outputs = trainer._heads_forward(
        tf.constant(images), [tf.constant(labels)], tf.constant(seeds), training=False
    )
    # Independently: dithered quantization of f(x), each decoder, the frozen classifier's CE.
    latents = trainer.encoder.predict(images, verbose=0).astype(np.float64)
    u = dither(seeds, LATENT_DIM, NUM_LEVELS).numpy().astype(np.float64)
    centers = np.linspace(-1.0, 1.0, NUM_LEVELS)
    indices = np.argmin(np.abs((latents + u)[..., None] - centers), axis=-1)
    decoded = (centers[indices] - u).astype(np.float32)
    head_losses = []
    for decoder, weight, output in zip(trainer.decoders, HEAD_LAMBDA_C, outputs):
        x_hat = decoder.predict(decoded, verbose=0)
        np.testing.assert_allclose(output.numpy(), x_hat, atol=1e-5)
        mse = ((images - x_hat.astype(np.float64)) ** 2).reshape(len(images), -1).mean(axis=1)
        logits = trainer.classifiers[0].predict(x_hat, verbose=0).astype(np.float64)
        ce = -_log_softmax(logits)[np.arange(len(labels)), labels]
        head_losses.append(LAMBDA_D * mse + weight * ce)
    expected = np.mean(head_losses, axis=0)
    np.testing.assert_allclose(per_example.numpy(), expected, rtol=1e-4, atol=1e-6)
    assert len(outputs) == len(HEAD_LAMBDA_C)


def test_evaluate_loss_is_the_mean_of_the_reported_head_terms(batch):
    trainer = _trainer()
    metrics = trainer.evaluate(*batch, batch_size=64, verbose=0, return_dict=True)
    heads = [
        LAMBDA_D * metrics[f"mse_{k}"] + weight * metrics[f"ce_{k}"]
        for k, weight in enumerate(HEAD_LAMBDA_C)
    ]
    assert metrics["loss"] == pytest.approx(np.mean(heads), rel=1e-5)
    assert metrics["mse"] == pytest.approx(metrics["mse_0"], rel=1e-6)  # head 0 is tracked
    assert len({round(metrics[f"mse_{k}"], 6) for k in range(len(HEAD_LAMBDA_C))}) == 3


def test_encoder_and_every_decoder_get_gradients(batch):
    trainer = _trainer()
    images, labels = batch
    seeds = tf.range(len(images), dtype=tf.int64)
    with tf.GradientTape() as tape:
        per_example, _ = trainer._heads_forward(
            tf.constant(images), [tf.constant(labels)], seeds, training=True
        )
        loss = tf.reduce_mean(per_example)
    models = [trainer.encoder, *trainer.decoders]
    grads = tape.gradient(loss, [m.trainable_variables for m in models])
    for model, model_grads in zip(models, grads):
        assert all(g is not None for g in model_grads), model.name
        assert sum(float(tf.norm(g)) for g in model_grads) > 0, model.name
    assert not trainer.classifiers[0].trainable_variables  # the frozen judge is not trained


def test_fit_updates_encoder_and_all_heads_and_reports_per_head_metrics(batch):
    trainer = _trainer()
    models = [trainer.encoder, *trainer.decoders]
    before = [[w.copy() for w in m.get_weights()] for m in models]
    classifier_before = trainer.classifiers[0].get_weights()
    history = trainer.fit(*batch, batch_size=32, epochs=1, verbose=0)
    for model, old in zip(models, before):
        changed = [not np.array_equal(a, b) for a, b in zip(old, model.get_weights())]
        assert sum(changed) >= len(model.trainable_variables) // 2, model.name
    for a, b in zip(classifier_before, trainer.classifiers[0].get_weights()):
        np.testing.assert_array_equal(a, b)
    for k in range(len(HEAD_LAMBDA_C)):
        for name in (f"mse_{k}", f"ce_{k}"):
            assert np.isfinite(history.history[name][0]), name
    assert np.isfinite(history.history["loss"][0])
    assert trainer.get_config()["head_lambda_c"] == list(HEAD_LAMBDA_C)


@pytest.mark.parametrize(
    "decoders, weights, classifier, match",
    [
        (2, (0.0,), True, "one lambda_c per head"),
        (0, (), True, "one lambda_c per head"),
        (2, (0.0, -0.1), True, ">= 0"),
        (2, (0.0, 0.1), False, "classifier"),
    ],
)
def test_bad_arguments_raise(decoders, weights, classifier, match):
    with pytest.raises(ValueError, match=match):
        MultiHeadRDCTrainer(
            networks.encoder("digits", LATENT_DIM),
            [networks.decoder("digits", LATENT_DIM) for _ in range(decoders)],
            NUM_LEVELS,
            networks.classifier("digits") if classifier else None,
            head_lambda_c=weights,
        )
