"""Tests for rdc_keras.config: TrainConfig (validate, resolve, config.json round trip), presets."""

import dataclasses
import json

import pytest

from rdc_keras import config, networks
from rdc_keras.config import TrainConfig

# ------------------------------------------------------------------------------------------------
# TrainConfig


def test_resolved_fills_preset_defaults(tmp_path):
    resolved = TrainConfig(workdir=str(tmp_path), lambda_c=0.015).resolved().to_dict()
    assert resolved["preset"] == "digits"
    assert resolved["head_name"] == "d1-c0.015-p0"
    assert resolved["epochs"] == 30 and resolved["batch_size"] == 64
    assert resolved["temperature"] == 1.0
    assert resolved["lr_boundaries"] == [20, 40] and resolved["lr_factors"] == [1.0, 0.2, 0.02]
    explicit = (
        TrainConfig(
            workdir=str(tmp_path), epochs=3, batch_size=8, temperature=0.25, head_name="mine"
        )
        .resolved()
        .to_dict()
    )
    assert (explicit["epochs"], explicit["batch_size"], explicit["temperature"]) == (3, 8, 0.25)
    assert explicit["head_name"] == "mine"
    json.dumps(explicit)  # config.json must be able to hold it


def test_to_dict_from_dict_round_trip_through_json(tmp_path):
    resolved = TrainConfig(
        workdir=str(tmp_path),
        lambda_c=0.01,
        multihead_lambda_c=[0.0, 0.01],
        lr_boundaries=[3],
        lr_factors=[1.0, 0.5],
    ).resolved()
    stored = json.loads(json.dumps(resolved.to_dict()))
    assert stored["preset"] == "digits" and stored["multihead_lambda_c"] == [0.0, 0.01]
    back = TrainConfig.from_dict(stored)
    assert back == resolved  # lists come back as tuples, "preset" is derived
    assert back.multihead_lambda_c == (0.0, 0.01) and back.lr_boundaries == (3,)
    assert TrainConfig.from_dict({**stored, "future_key": 1}) == resolved  # unknown keys ignored


def test_config_is_frozen_and_hashable(tmp_path):
    cfg = TrainConfig(workdir=str(tmp_path), lr_boundaries=[1], lr_factors=[1.0, 0.1])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lambda_c = 1.0  # type: ignore[misc]
    assert hash(cfg) == hash(
        TrainConfig(workdir=str(tmp_path), lr_boundaries=(1,), lr_factors=(1.0, 0.1))
    )
    assert cfg.replace(lambda_c=0.5).lambda_c == 0.5 and cfg.lambda_c == 0.0


def test_differences_name_every_changed_field_but_not_volatile_ones(tmp_path):
    old = TrainConfig(workdir="a", lambda_c=0.01, verbose=0).resolved()
    new = TrainConfig(workdir="b", lambda_c=0.5, verbose=2).resolved()
    assert new.differences(old) == [
        "head_name='d1-c0.01-p0' (not 'd1-c0.5-p0')",
        "lambda_c=0.01 (not 0.5)",
    ]
    assert old.differences(old.replace(workdir="elsewhere", verbose=1)) == []


def test_head_names():
    assert TrainConfig(workdir="w", lambda_c=0.015).head_names == ["d1-c0.015-p0"]
    assert TrainConfig(workdir="w", head_name="mine").head_names == ["mine"]
    multi = TrainConfig(workdir="w", multihead_lambda_c=(0.0, 0.015))
    assert multi.is_multihead and multi.head_names == ["multihead-c0", "multihead-c0.015"]
    assert config.default_head_name(multi) == "multihead"


def test_choice_lists_are_the_trainers_and_datasets():
    from rdc_keras import data
    from rdc_keras.trainers import rdc

    assert config.CLASSIFIER_MODES is rdc.CLASSIFIER_MODES
    assert config.SCHEDULES is rdc.SCHEDULES
    assert set(config.DATASETS) == {"digits", "mnist", "mnist_idx", "svhn_cropped"}
    assert config.DATASETS == data.DATASETS


# ------------------------------------------------------------------------------------------------
# Preset defaults


def test_quantizer_temperature_per_preset():
    mnist, svhn = config.preset_defaults("mnist"), config.preset_defaults("svhn")
    for levels in (2, 3, 4, 8):
        assert mnist.quantizer_temperature(levels) == 1.0
        assert mnist.quantizer_sigma(levels) == 1.0
        assert svhn.quantizer_temperature(levels) == levels / 2
        assert svhn.quantizer_sigma(levels) == pytest.approx(2 / levels)
    assert svhn.quantizer_sigma(8) == pytest.approx(0.25)  # digest §2


def test_optimizer_defaults_match_digest():
    mnist, svhn = config.preset_defaults("mnist"), config.preset_defaults("svhn")
    assert (mnist.generator_learning_rate, mnist.critic_learning_rate) == (1e-2, 2e-4)
    assert (mnist.beta_1, mnist.beta_2) == (0.5, 0.9)
    assert (svhn.generator_learning_rate, svhn.critic_learning_rate) == (1e-4, 1e-4)
    assert (svhn.beta_1, svhn.beta_2) == (0.5, 0.999)
    assert (mnist.batch_size, mnist.epochs, svhn.batch_size, svhn.epochs) == (64, 30, 64, 80)
    assert mnist.gp_weight == svhn.gp_weight == 10.0
    assert mnist.n_critic == svhn.n_critic == 1
    factors = [mnist.learning_rate_factor(e) for e in (0, 19, 20, 39, 40, 100)]
    assert factors == pytest.approx([1, 1, 0.2, 0.2, 0.02, 0.02])
    factors = [svhn.learning_rate_factor(e) for e in (0, 24, 25, 79)]
    assert factors == pytest.approx([1, 1, 0.2, 0.2])
    for preset in networks.PRESETS:
        d = config.preset_defaults(preset)
        assert d.preset == preset
        assert len(d.lr_factors) == len(d.lr_boundaries) + 1
        assert d.classifier_optimizer in ("adam", "sgd")


def test_preset_defaults_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.preset_defaults("mnist").epochs = 1  # type: ignore[misc]


@pytest.mark.parametrize("preset", ["MNIST", "cifar10", "", None, 3])
def test_unknown_preset(preset):
    with pytest.raises(ValueError, match="unknown preset"):
        config.preset_defaults(preset)


@pytest.mark.parametrize("num_levels", [1, 0, 2.0, True])
def test_bad_num_levels(num_levels):
    with pytest.raises(ValueError, match="num_levels"):
        config.preset_defaults("svhn").quantizer_temperature(num_levels)


def test_bad_epoch():
    with pytest.raises(ValueError, match="epoch"):
        config.preset_defaults("mnist").learning_rate_factor(-1)
