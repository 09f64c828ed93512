"""Tests for rdc_keras.networks: parameter counts, shapes, ranges, PyTorch defaults, dtypes."""

import math

import numpy as np
import pytest
import tensorflow as tf

from rdc_keras import networks
from rdc_keras.tfkeras import keras


def _trainable(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def _layer(model: keras.Model, name: str) -> keras.layers.Layer:
    return model.get_layer(name)


@pytest.fixture(scope="module")
def mnist_models():
    keras.utils.set_random_seed(0)
    return {
        "encoder": networks.encoder("mnist", 3),
        "decoder": networks.decoder("mnist", 3),
        "critic": networks.critic("mnist"),
        "classifier": networks.classifier("mnist"),
    }


# ------------------------------------------------------------------------------------------------
# Parameter counts (reference-code digest §1; closed forms worked out by hand there)


def test_mnist_counts_at_paper_rate(mnist_models):
    assert _trainable(mnist_models["encoder"]) == 585_097
    assert _trainable(mnist_models["decoder"]) == 326_465
    assert _trainable(mnist_models["critic"]) == 1_030_145
    assert _trainable(mnist_models["classifier"]) == 19_880


@pytest.mark.parametrize("latent_dim", [3, 4])
def test_mnist_counts_closed_form(latent_dim):
    enc = networks.encoder("mnist", latent_dim)
    dec = networks.decoder("mnist", latent_dim)
    assert _trainable(enc) == 584_704 + 131 * latent_dim
    assert _trainable(dec) == 326_081 + 128 * latent_dim
    # BN running statistics (mean, variance) are non-trainable: 2 per BN feature.
    assert enc.count_params() - _trainable(enc) == 2 * (512 + 256 + 128 + 128 + latent_dim)
    assert dec.count_params() - _trainable(dec) == 2 * (128 + 512 + 64 + 128)


@pytest.mark.parametrize("latent_dim", [3, 4, 10])
def test_svhn_counts_closed_form(latent_dim):
    assert _trainable(networks.encoder("svhn", latent_dim)) == 1_029_248 + 4_097 * latent_dim
    assert _trainable(networks.decoder("svhn", latent_dim)) == 644_103 + 128 * latent_dim


def test_svhn_critic_and_classifier_counts():
    assert _trainable(networks.critic("svhn")) == 1_033_345
    assert _trainable(networks.classifier("svhn")) == 272_474  # ResNet-20, option B


# ------------------------------------------------------------------------------------------------
# Shapes and ranges


@pytest.mark.parametrize("preset", networks.PRESETS)
@pytest.mark.parametrize("latent_dim", [1, 5])
def test_shapes_and_ranges(preset, latent_dim):
    keras.utils.set_random_seed(1)
    shape = networks.image_shape(preset)
    images = tf.random.uniform((4, *shape))
    enc = networks.encoder(preset, latent_dim)
    dec = networks.decoder(preset, latent_dim)
    assert enc.name == "encoder" and dec.name == "decoder"
    for training in (True, False):
        latents = enc(images, training=training).numpy()
        assert latents.shape == (4, latent_dim)
        assert np.all(np.abs(latents) < 1.0)
    # Decoder input: any real vector (center - dither lies in (-1 - Δ/2, 1 + Δ/2)).
    z = tf.random.uniform((4, latent_dim), -1.5, 1.5)
    for training in (True, False):
        recon = dec(z, training=training).numpy()
        assert recon.shape == (4, *shape)
        assert recon.min() >= 0.0 and recon.max() <= 1.0


@pytest.mark.parametrize("preset", networks.PRESETS)
def test_critic_and_classifier_shapes(preset):
    keras.utils.set_random_seed(1)
    images = tf.random.uniform((4, *networks.image_shape(preset)))
    critic, clf = networks.critic(preset), networks.classifier(preset)
    assert (critic.name, clf.name) == ("critic", "classifier")
    scores = critic(images).numpy()
    assert scores.shape == (4, 1) and np.all(np.isfinite(scores))
    logits = clf(images, training=False).numpy()
    assert logits.shape == (4, networks.NUM_CLASSES) and np.all(np.isfinite(logits))


def test_image_shapes():
    assert networks.image_shape("mnist") == (28, 28, 1)
    assert networks.image_shape("svhn") == (32, 32, 3)
    assert networks.image_shape("digits") == (8, 8, 1)
    for preset in networks.PRESETS:
        assert tuple(networks.encoder(preset, 2).input_shape[1:]) == networks.image_shape(preset)


def test_model_names_and_uncompiled(mnist_models):
    for name, model in mnist_models.items():
        assert model.name == name
        assert model.optimizer is None


def test_mnist_decoder_spatial_sizes(mnist_models):
    dec = mnist_models["decoder"]
    sizes = [_layer(dec, n).output_shape[1] for n in ("deconv1", "deconv2", "deconv_out")]
    assert sizes == [11, 25, 28]


def test_svhn_decoder_spatial_sizes_and_widths():
    dec = networks.decoder("svhn", 10)
    names = ("deconv1", "deconv2", "deconv3", "deconv_out")
    assert [_layer(dec, n).output_shape[1] for n in names] == [11, 25, 29, 32]
    assert [_layer(dec, n).filters for n in names] == [64, 108, 128, 3]
    assert [_layer(dec, n).strides[0] for n in names] == [2, 2, 1, 1]


def test_critic_matches_pytorch_padding(mnist_models):
    critic = mnist_models["critic"]
    convs = [layer for layer in critic.layers if isinstance(layer, keras.layers.Conv2D)]
    pads = [layer for layer in critic.layers if isinstance(layer, keras.layers.ZeroPadding2D)]
    assert [c.output_shape[1] for c in convs] == [14, 7, 4]
    assert all(c.padding == "valid" and c.strides == (2, 2) for c in convs)
    assert [p.padding for p in pads] == [((2, 2), (2, 2))] * 3
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in critic.layers)


def test_mnist_encoder_has_bn_before_tanh(mnist_models):
    enc = mnist_models["encoder"]
    names = [layer.name for layer in enc.layers]
    assert names[-3:] == ["latent_dense", "latent_bn", "latents"]
    assert _layer(enc, "latents").activation is keras.activations.tanh
    assert sum(isinstance(x, keras.layers.BatchNormalization) for x in enc.layers) == 5


def test_svhn_encoder_has_no_batch_norm():
    enc = networks.encoder("svhn", 4)
    assert not any(isinstance(x, keras.layers.BatchNormalization) for x in enc.layers)


def test_classifier_outputs_logits_not_probabilities(mnist_models):
    clf = mnist_models["classifier"]
    assert clf.layers[-1].activation is keras.activations.linear
    keras.utils.set_random_seed(2)
    logits = clf(tf.random.uniform((8, 28, 28, 1))).numpy()
    assert not np.allclose(logits.sum(axis=1), 1.0)


def test_svhn_classifier_on_mock_batch():
    keras.utils.set_random_seed(3)
    clf = networks.classifier("svhn")
    logits = clf(tf.random.uniform((2, 32, 32, 3)), training=True)
    assert logits.shape == (2, 10) and logits.dtype == tf.float32
    # Two stride-2 stages: 32 -> 16 -> 8 before global average pooling.
    assert _layer(clf, "stage3_block3_add").output_shape[1:] == (8, 8, 64)
    assert _layer(clf, "stage2_block1_proj").kernel_size == (1, 1)


# ------------------------------------------------------------------------------------------------
# PyTorch defaults: init, BatchNorm, LeakyReLU


def _check_uniform(values: np.ndarray, fan_in: int) -> None:
    bound = 1.0 / math.sqrt(fan_in)
    values = np.abs(values.ravel())
    assert values.max() <= bound * (1 + 1e-6)
    assert values.max() >= 0.7 * bound
    assert np.any(values > 0)


def test_dense_and_conv_init_is_pytorch_default(mnist_models):
    keras.utils.set_random_seed(0)
    enc, critic = mnist_models["encoder"], mnist_models["critic"]
    kernel, bias = _layer(enc, "block1_dense").get_weights()
    _check_uniform(kernel, 784)
    _check_uniform(bias, 784)
    # U(±b) has std b/√3; glorot would have std √(2/(784+512)) = 0.039 vs 0.0206 here.
    np.testing.assert_allclose(kernel.std(), 1 / math.sqrt(784) / math.sqrt(3), rtol=0.02)
    kernel, bias = _layer(critic, "conv2").get_weights()
    _check_uniform(kernel, 64 * 5 * 5)
    _check_uniform(bias, 64 * 5 * 5)


def test_conv_transpose_init_uses_pytorch_fan_in(mnist_models):
    # PyTorch's ConvTranspose2d fan_in is out_channels·k·k (weight dim 1), here 64·25, not 32·25.
    kernel, bias = _layer(mnist_models["decoder"], "deconv1").get_weights()
    assert kernel.shape == (5, 5, 64, 32)
    _check_uniform(kernel, 64 * 25)
    assert np.abs(kernel).max() >= 0.95 / math.sqrt(64 * 25)
    _check_uniform(bias, 64 * 25)


def test_resnet_conv_init_is_kaiming_normal():
    keras.utils.set_random_seed(0)
    kernel = _layer(networks.classifier("svhn"), "stage3_block2_conv1").get_weights()[0]
    std = math.sqrt(2.0 / (64 * 9))
    np.testing.assert_allclose(kernel.std(), std, rtol=0.03)
    assert np.abs(kernel).max() > 3.0 * std  # not truncated at 2 std


def test_batch_norm_and_leaky_relu_match_pytorch():
    checked_bn = checked_lrelu = 0
    for preset in networks.PRESETS:
        models = [
            networks.encoder(preset, 3),
            networks.decoder(preset, 3),
            networks.critic(preset),
            networks.classifier(preset),
        ]
        for model in models:
            for layer in model.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    assert layer.momentum == pytest.approx(0.9)
                    assert layer.epsilon == pytest.approx(1e-5)
                    checked_bn += 1
                if isinstance(layer, keras.layers.LeakyReLU):
                    assert layer.alpha == pytest.approx(0.01)
                    checked_lrelu += 1
    assert checked_bn > 20 and checked_lrelu > 20


def test_leaky_relu_slope_in_forward_pass(mnist_models):
    layer = _layer(mnist_models["critic"], "conv1_lrelu")
    np.testing.assert_allclose(layer(tf.constant([-2.0, 3.0])).numpy(), [-0.02, 3.0], rtol=1e-6)


def test_seeded_builds_are_reproducible():
    def weights(seed):
        keras.utils.set_random_seed(seed)
        return networks.encoder("digits", 3).get_weights()

    first, again, other = weights(5), weights(5), weights(6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])


def test_save_and_load_without_custom_objects(tmp_path):
    keras.utils.set_random_seed(7)
    dec = networks.decoder("digits", 3)
    path = tmp_path / "decoder.keras"
    dec.save(path)
    loaded = keras.models.load_model(path)
    z = tf.random.uniform((3, 3), -1, 1)
    np.testing.assert_array_equal(dec(z).numpy(), loaded(z).numpy())


# ------------------------------------------------------------------------------------------------
# Mixed precision


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("preset", ["digits", "mnist"])
def test_outputs_are_float32_under_mixed_precision(policy, preset):
    low = policy.split("_")[1]
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(8)
        enc, dec = networks.encoder(preset, 3), networks.decoder(preset, 3)
        critic, clf = networks.critic(preset), networks.classifier(preset)
        images = tf.random.uniform((2, *networks.image_shape(preset)))
        latents = enc(images, training=True)
        recon = dec(latents, training=True)
        for out in (latents, recon, critic(recon), clf(recon)):
            assert out.dtype == tf.float32
        for model in (enc, dec, critic, clf):
            assert model.layers[-1].compute_dtype == "float32"
            assert any(layer.compute_dtype == low for layer in model.layers)
        assert np.all(np.abs(latents.numpy()) <= 1.0)
        assert recon.numpy().min() >= 0.0 and recon.numpy().max() <= 1.0
    finally:
        keras.mixed_precision.set_global_policy("float32")


# ------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("preset", ["MNIST", "cifar10", "", None, 3])
def test_unknown_preset(preset):
    for build in (networks.critic, networks.classifier, networks.image_shape):
        with pytest.raises(ValueError, match="unknown preset"):
            build(preset)
    with pytest.raises(ValueError, match="unknown preset"):
        networks.encoder(preset, 3)


@pytest.mark.parametrize("latent_dim", [0, -2, 2.5, 3.0, "3", True, None])
def test_bad_latent_dim(latent_dim):
    with pytest.raises(ValueError, match="latent_dim"):
        networks.encoder("digits", latent_dim)
    with pytest.raises(ValueError, match="latent_dim"):
        networks.decoder("digits", latent_dim)


def test_numpy_integer_latent_dim_accepted():
    assert networks.encoder("digits", np.int64(2)).output_shape == (None, 2)


# ------------------------------------------------------------------------------------------------
# The image activation


def test_portable_sigmoid_is_the_sigmoid_with_a_finite_gradient():
    x = tf.constant(np.linspace(-90.0, 90.0, 20001), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = networks.portable_sigmoid(x)
    gradient = tape.gradient(y, x).numpy()
    exact = 1.0 / (1.0 + np.exp(-x.numpy().astype(np.float64)))  # float64 reference
    np.testing.assert_allclose(y.numpy(), exact, rtol=0, atol=2e-7)
    assert np.isfinite(gradient).all() and (gradient >= 0).all()
    np.testing.assert_allclose(gradient, exact * (1 - exact), rtol=0, atol=2e-7)
    assert float(networks.portable_sigmoid(tf.constant(0.0))) == 0.5


@pytest.mark.parametrize("preset", ["digits", "mnist", "svhn"])
def test_decoders_end_in_the_portable_sigmoid(preset):
    decoder = networks.decoder(preset, 3)
    assert decoder.layers[-1].activation is networks.portable_sigmoid
