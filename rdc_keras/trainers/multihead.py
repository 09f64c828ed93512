"""Multi-head base encoder: one encoder trained jointly with K decoder heads (beyond the paper).

The paper's universal encoder is the encoder of one end-to-end model (lambda_c = 0.015), and
reusing it costs about 10 % in MSE (report arXiv:2504.13191, Fig. 6). Theorem 4 of the poster
says the penalty shrinks when the representation serves the whole tradeoff, which suggests
training the base encoder for several tradeoffs at once: with heads k = 1..K at lambda_c[k],

    L = (1/K) sum_k [ lambda_d * MSE(x, g_k(z)) + lambda_c[k] * CE(s, c(g_k(z))) ],

all heads sharing the same quantized, dithered z. New universal heads are then trained on the
frozen encoder as usual. Heads have no critic here (lambda_p = 0 for every head).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from rdc_keras import losses
from rdc_keras.layers import dither
from rdc_keras.tfkeras import keras
from rdc_keras.trainers.rdc import _TEST_STREAM, _TRAIN_STREAM, RDCTrainer

__all__ = ["MultiHeadRDCTrainer"]


class MultiHeadRDCTrainer(RDCTrainer):
    """Trains an encoder with K heads at different lambda_c; loss = mean of the head losses.

    Args:
      encoder: image -> (N, d) in (-1, 1).
      decoders: K decoders, one per tradeoff point.
      num_levels: L.
      classifier: frozen pretrained classifier giving the CE terms.
      head_lambda_c: K classification weights, one per head.
      lambda_d: distortion weight shared by all heads.
      reference_classifier: judge for `test_step` metrics (default: `classifier`).
      temperature, seed: as for `RDCTrainer`.
    """

    def __init__(
        self,
        encoder: keras.Model,
        decoders: Sequence[keras.Model],
        num_levels: int,
        classifier: keras.Model,
        *,
        head_lambda_c: Sequence[float],
        lambda_d: float = 1.0,
        reference_classifier: keras.Model | None = None,
        temperature: float = 1.0,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        decoders = list(decoders)
        head_lambda_c = [float(value) for value in head_lambda_c]
        if len(decoders) < 1 or len(decoders) != len(head_lambda_c):
            raise ValueError(
                f"need one lambda_c per head: {len(decoders)} decoders, "
                f"{len(head_lambda_c)} weights"
            )
        if classifier is None:
            raise ValueError("MultiHeadRDCTrainer needs a classifier: every head has a CE term")
        if any(not value >= 0 for value in head_lambda_c):
            raise ValueError(f"head lambda_c must be >= 0, got {head_lambda_c}")
        super().__init__(
            encoder,
            decoders[0],
            num_levels,
            classifier=classifier,
            lambda_d=lambda_d,
            lambda_c=max(head_lambda_c),
            reference_classifier=reference_classifier,
            temperature=temperature,
            seed=seed,
            **kwargs,
        )
        self.decoders = decoders
        self.head_lambda_c = head_lambda_c

    @property
    def _generator_variables(self) -> list[tf.Variable]:
        variables = list(self.encoder.trainable_variables)
        for decoder in self.decoders:
            variables += decoder.trainable_variables
        return variables

    def compile(self, generator_optimizer: keras.optimizers.Optimizer, **kwargs: Any) -> None:
        """Like `RDCTrainer.compile`, plus per-head trackers mse_k and ce_k."""
        super().compile(generator_optimizer, **kwargs)
        for k in range(len(self.decoders)):
            for name in (f"mse_{k}", f"ce_{k}"):
                self._trackers[name] = keras.metrics.Mean(name=name)

    @property
    def _test_metric_names(self) -> list[str]:
        heads = [f"{name}_{k}" for k in range(len(self.decoders)) for name in ("mse", "ce")]
        return ["loss", "mse", "psnr", "ce", "accuracy", *heads]

    def _heads_forward(self, images, labels, seeds, training: bool):
        latents = self.encoder(images, training=training)
        u = dither(seeds, self.latent_dim, self.num_levels)
        decoded = self.quantizer(tf.cast(latents, tf.float32), u)
        total = tf.zeros(tf.shape(images)[:1], tf.float32)
        outputs = []
        for k, (decoder, weight) in enumerate(zip(self.decoders, self.head_lambda_c)):
            x_hat = tf.cast(decoder(decoded, training=training), tf.float32)
            mse = losses.distortion(images, x_hat, reduction="none")
            logits = self.classifiers[0](x_hat, training=False)
            ce = losses.cross_entropy(labels[0], logits, reduction="none")
            total += self.lambda_d * mse + weight * ce
            self._trackers[f"mse_{k}"].update_state(mse)
            self._trackers[f"ce_{k}"].update_state(ce)
            outputs.append(x_hat)
        return total / len(self.decoders), outputs

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        images, labels = self._split(data)
        seeds = self._seeds(tf.shape(images)[0], _TRAIN_STREAM, self._step)
        with tf.GradientTape() as tape:
            per_example, outputs = self._heads_forward(images, labels, seeds, training=True)
            loss = self._scaled(self.generator_optimizer, tf.nn.compute_average_loss(per_example))
        self._apply(self.generator_optimizer, tape, loss, self._generator_variables)
        self._trackers["loss"].update_state(per_example)
        self._track_reconstruction(images, outputs[0], labels, self.classifiers[0])
        return self._end_step()

    def test_step(self, data: Any) -> dict[str, tf.Tensor]:
        images, labels = self._split(data)
        seeds = self._seeds(tf.shape(images)[0], _TEST_STREAM, self._test_counter)
        per_example, outputs = self._heads_forward(images, labels, seeds, training=False)
        self._trackers["loss"].update_state(per_example)
        self._track_reconstruction(images, outputs[0], labels, self.reference_classifier)
        return {name: self._trackers[name].result() for name in self._test_metric_names}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "head_lambda_c": self.head_lambda_c}
