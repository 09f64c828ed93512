"""Reference classifier: trained on clean images, then frozen.

The paper bounds H(S | X_hat) by the cross-entropy of a pre-trained classifier on the
reconstruction (arXiv:2504.13191 §4). Every model is scored by the same frozen judge, so the
classifier is trained once per dataset. `train_reference_classifier` is the one path that trains,
scores and saves it (used by `rdc-classifier`, `rdc-train` and `rdc-experiment`): batch size,
epochs and optimizer from `config.preset_defaults` (MNIST: Adam 1e-3, the report's Table 2),
always in float32 whatever precision the caller trains in. Loading is `rdc_keras.runs`.
"""

from __future__ import annotations

import os
import time
from typing import Any

import tensorflow as tf

from rdc_keras import config, data, networks, runs
from rdc_keras.tfkeras import keras

__all__ = ["evaluate_classifier", "train_classifier", "train_reference_classifier"]

# Test-split batch of the classifier score (does not change the result).
_EVAL_BATCH = 1000


def train_classifier(
    preset: str,
    train_data: tf.data.Dataset,
    validation_data: tf.data.Dataset | None = None,
    *,
    epochs: int | None = None,
    learning_rate: float | None = None,
    seed: int = 0,
    verbose: int | str = 2,
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> keras.Model:
    """Trains `networks.classifier(preset)` on batched (image, label) data with sparse CE (nats).

    Returns:
      The trained classifier (logits), compiled with an `accuracy` metric.
    """
    defaults = config.preset_defaults(preset)
    epochs = defaults.classifier_epochs if epochs is None else int(epochs)
    learning_rate = defaults.classifier_learning_rate if learning_rate is None else learning_rate
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    keras.utils.set_random_seed(seed)
    model = networks.classifier(preset)
    if defaults.classifier_optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate, momentum=defaults.classifier_momentum)
    else:
        optimizer = keras.optimizers.Adam(learning_rate)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    model.fit(
        train_data,
        validation_data=validation_data,
        epochs=epochs,
        verbose=verbose,
        callbacks=callbacks,
    )
    return model


def evaluate_classifier(model: keras.Model, data: tf.data.Dataset) -> dict[str, float]:
    """Accuracy and mean cross-entropy (nats) of `model` on batched (image, label) data."""
    ce = keras.metrics.Mean()
    accuracy = keras.metrics.SparseCategoricalAccuracy()
    for images, labels in data:
        logits = tf.cast(model(images, training=False), tf.float32)
        ce.update_state(
            keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        )
        accuracy.update_state(labels, logits)
    return {"accuracy": float(accuracy.result()), "ce_nats": float(ce.result())}


def train_reference_classifier(
    directory: str | os.PathLike,
    dataset: str,
    data_dir: str | None = None,
    *,
    seed: int = 0,
    epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    verbose: int | str = 0,
) -> tuple[keras.Model, dict[str, Any]]:
    """Trains the frozen judge on clean `dataset` images, scores it and saves it in `directory`.

    The classifier is trained in float32 (the global precision policy is set for the call and
    restored), with the preset's classifier batch size unless `batch_size` is given, and saved
    with its test metrics (accuracy, ce_nats), train_seconds and batch_size in its network.json.

    Returns:
      (frozen classifier, its description), as `runs.load_classifier(directory)` returns them.
    """
    preset = data.dataset_info(dataset).preset
    batch_size = batch_size or config.preset_defaults(preset).classifier_batch_size
    train = data.prepare(
        data.load_dataset(dataset, "train", data_dir=data_dir), batch_size, shuffle=True, seed=seed
    )
    test = data.prepare(
        data.load_dataset(dataset, "test", data_dir=data_dir), _EVAL_BATCH, shuffle=False
    )
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        start = time.perf_counter()
        model = train_classifier(
            preset,
            train,
            epochs=epochs,
            learning_rate=learning_rate,
            seed=seed,
            verbose=verbose,
        )
        seconds = round(time.perf_counter() - start, 2)
        metrics = evaluate_classifier(model, test)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    runs.save_classifier(
        directory,
        model,
        preset,
        test_metrics=metrics,
        train_seconds=seconds,
        batch_size=batch_size,
    )
    return runs.load_classifier(directory)
