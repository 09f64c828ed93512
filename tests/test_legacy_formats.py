"""Files written before the issue-14 refactor still load: run directories, exports, `.rdc` files.

The fixture (tests/fixtures/legacy_v1, see its README) was written by rdc_keras at commit 89525e9.
Every check compares against values that older code recorded, not against today's code.
"""

import pathlib
import shutil

import numpy as np
import pytest

from rdc_keras import codec, data, evaluation, export, runs

FIXTURE = pathlib.Path(__file__).resolve().parent / "fixtures" / "legacy_v1"
METHODS = ("fixed", "range", "dithered")


@pytest.fixture()
def legacy(tmp_path, monkeypatch) -> pathlib.Path:
    """A copy of the fixture as the working directory (its recorded paths are relative)."""
    root = tmp_path / "legacy"
    shutil.copytree(FIXTURE, root)
    monkeypatch.chdir(root)
    return root


@pytest.fixture(scope="module")
def expected() -> dict:
    return runs.read_json(FIXTURE / "expected.json")


def test_old_runs_load_and_score_as_recorded(legacy, expected):
    arrays = data.load_arrays("digits", "test")
    judge, _ = runs.load_classifier("run/classifier")
    for run in (runs.RunDir("run"), runs.RunDir("universal/d1-c0-p0")):
        (head,) = run.heads()
        encoder, description = runs.load_encoder(head.encoder_dir)
        assert description["fingerprint"] == expected["encoder_fingerprint"]
        decoder, _ = runs.load_head(head.path, description)
        metrics = evaluation.evaluate(encoder, decoder, arrays, judge, num_levels=3, seed=3)
        recorded = expected[str(head.path)]
        for key in ("mse", "psnr", "ce_nats", "accuracy", "rate_bits", "num_images"):
            assert metrics[key] == pytest.approx(recorded[key], rel=1e-5), (head.path, key)


def test_old_config_json_reads_back_as_a_config(legacy):
    config = runs.RunDir("run").config()
    assert (config.dataset, config.latent_dim, config.num_levels) == ("digits", 2, 3)
    assert config.lambda_c == 0.04 and config.epochs == 1 and config.seed == 0
    phase2 = runs.RunDir("universal/d1-c0-p0").config()
    assert phase2.encoder_dir == "run/encoder" and phase2.head_name == "d1-c0-p0"


def test_old_bitstreams_decode_to_the_recorded_images(legacy):
    encoder = export.load_encoder("saved_models/legacy")
    (head_dir,) = sorted((legacy / "saved_models" / "legacy" / "heads").iterdir())
    head = export.load_head(head_dir, encoder)
    indices = np.load("indices.npy")
    for method in METHODS:
        blob = pathlib.Path(f"images-{method}.rdc").read_bytes()
        header, decoded_indices = codec.decode_indices(blob, encoder)
        assert header.method == method
        np.testing.assert_array_equal(decoded_indices, indices)
        images = codec.decompress(blob, encoder, head)
        np.testing.assert_allclose(images, np.load(f"decoded-{method}.npy"), atol=1e-6)


def test_old_export_compresses_to_the_same_payloads_in_the_new_container(legacy):
    """Format version 2 changed the header only: the same payload bytes, the same fields."""
    encoder = export.load_encoder("saved_models/legacy")
    images = np.load("images.npy")
    for method in METHODS:
        blob = codec.compress(images, encoder, seed=7, method=method)
        old_header, old_payload = codec.parse(pathlib.Path(f"images-{method}.rdc").read_bytes())
        header, payload = codec.parse(blob)
        assert (old_header.version, header.version) == (1, 2)
        assert payload == old_payload, method
        assert old_header.fingerprint.startswith(header.fingerprint)
        assert old_header.prior_digest.startswith(header.prior_digest)
        keep = ("method", "image_shape", "num_levels", "latent_dim", "count", "seed")
        assert [getattr(header, k) for k in keep] == [getattr(old_header, k) for k in keep]
        assert len(blob) == len(payload) + 27 < len(old_payload) + 62
