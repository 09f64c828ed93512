"""Tests for rdc_keras.export, rdc_keras.serving and rdc-export: layout, signatures, stock ops,
versions, the prior tables an export stores.

One digits run (a phase-1 head plus a phase-2 head on its frozen encoder) is trained and
exported once per session. References are computed independently: the in-memory Keras
encoder/decoder with the quantizer layer, numpy counts for the prior (the prior's own unit tests
are in test_prior.py), and TensorFlow's own `saved_model_cli` in subprocesses that never import
tensorflow_compression.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from rdc_keras import data, export, files, layers, networks, prior, runs, serving
from rdc_keras.config import TrainConfig
from rdc_keras.layers import UniversalQuantizer, dither
from rdc_keras.trainers.runner import train_run

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SAVED_MODEL_CLI = pathlib.Path(sys.executable).parent / "saved_model_cli"
PHASE1_HEAD, PHASE2_HEAD = "d1-c0-p0", "x"


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("RDC_TRACEBACK", None)
    return env


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=_env(), timeout=300, **kwargs
    )


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory) -> pathlib.Path:
    """A digits phase-1 run `a` and a phase-2 run `b` (head "x") on a's frozen encoder.

    An untrained reference classifier stands in for the real one (30 epochs): exports do not
    depend on how good the judge is.
    """
    root = tmp_path_factory.mktemp("export_runs")
    classifier = root / "classifier"
    runs.save_classifier(classifier, networks.classifier("digits"), "digits")
    base = dict(
        dataset="digits", epochs=1, steps_per_epoch=3, verbose=0, classifier_dir=str(classifier)
    )
    train_run(TrainConfig(workdir=str(root / "a"), **base))
    train_run(
        TrainConfig(
            workdir=str(root / "b"),
            encoder_dir=str(root / "a" / "encoder"),
            head_name=PHASE2_HEAD,
            lambda_c=0.01,
            **base,
        )
    )
    return root


@pytest.fixture(scope="session")
def exported(runs_dir, tmp_path_factory):
    """(export dir, manifest) of both runs under the name "digits"."""
    root = tmp_path_factory.mktemp("saved_models")
    manifest = export.export_run([runs_dir / "a", runs_dir / "b"], root, "digits", seed=0)
    return root / "digits", manifest


@pytest.fixture(scope="session")
def sample_images() -> np.ndarray:
    return data.load_arrays("digits", "test")[0][:16]


def _in_memory(runs_dir, images, seeds):
    """Indices and per-head images from the saved Keras networks, without any export code."""
    encoder, description = runs.load_encoder(runs_dir / "a")
    quantizer = UniversalQuantizer(description["num_levels"])
    d, L = description["latent_dim"], description["num_levels"]
    u = dither(tf.constant(seeds, tf.int64), d, L)
    indices = quantizer.encode(encoder(images, training=False), u).numpy()
    decoded = {}
    for head_dir in (
        runs_dir / "a" / "heads" / PHASE1_HEAD,
        runs_dir / "b" / "heads" / PHASE2_HEAD,
    ):
        decoder, head = runs.load_head(head_dir, description)
        decoded[head["name"]] = decoder(quantizer.decode(indices, u), training=False).numpy()
    return indices, decoded


# ------------------------------------------------------------------------------------------------
# Layout, metadata, models.config and manifest.


def test_layout_metadata_and_manifest(exported, runs_dir):
    export_dir, manifest = exported
    description = files.read_json(runs_dir / "a" / "encoder" / runs.NETWORK_FILE)
    encoder_meta = files.read_json(export_dir / "encoder" / "1" / "assets" / "rdc.json")
    assert (export_dir / "encoder" / "1" / "saved_model.pb").exists()
    assert encoder_meta["kind"] == "encoder"
    assert encoder_meta["num_levels"] == 3 and encoder_meta["latent_dim"] == 3
    assert encoder_meta["image_shape"] == [8, 8, 1]
    assert encoder_meta["encoder_fingerprint"] == description["fingerprint"]
    assert encoder_meta["tensorflow"] == tf.__version__
    assert encoder_meta["dither"]["algorithm"] == "splitmix64-24bit"
    assert "base_seed + i" in encoder_meta["dither"]["seed_rule"]
    assert encoder_meta["lambdas"] == {"lambda_c": 0.0, "lambda_d": 1.0, "lambda_p": 0.0}
    for head_name, run in ((PHASE1_HEAD, "a"), (PHASE2_HEAD, "b")):
        head_json = files.read_json(runs_dir / run / "heads" / head_name / "head.json")
        meta = files.read_json(export_dir / "heads" / head_name / "1" / "assets" / "rdc.json")
        assert meta["kind"] == "head" and meta["head"] == head_name
        assert meta["encoder_fingerprint"] == description["fingerprint"]
        assert meta["lambdas"]["lambda_c"] == head_json["lambda_c"]
        assert meta["test"] == head_json["test"]
        assert manifest["heads"][head_name]["lambdas"] == meta["lambdas"]
        assert manifest["heads"][head_name]["test"] == head_json["test"]
    assert manifest == files.read_json(export_dir / "manifest.json")
    assert manifest["rate_bits"] == pytest.approx(3 * np.log2(3))
    assert manifest["prior"]["cdf"] == encoder_meta["prior"]["cdf"]
    hidden = [p for p in export_dir.rglob(".*")]
    assert hidden == [], f"temporary files left behind: {hidden}"


def test_models_config_lists_every_model(exported):
    export_dir, _ = exported
    text = (export_dir / "models.config").read_text()
    configs = re.findall(
        r'config \{\s*name: "([^"]+)"\s*base_path: "([^"]+)"\s*model_platform: "tensorflow"\s*'
        r"model_version_policy \{ specific \{ versions: (\d+) \} \}\s*\}",
        text,
    )
    assert text.startswith("model_config_list {") and text.count("config {") == 3
    names = {name: (pathlib.Path(path), int(v)) for name, path, v in configs}
    assert set(names) == {
        "digits-encoder",
        f"digits-head-{PHASE1_HEAD}",
        f"digits-head-{PHASE2_HEAD}",
    }
    for path, version in names.values():
        assert path.is_absolute() and (path / str(version) / "saved_model.pb").exists()


def test_export_reexports_the_reading_side():
    """export keeps its public names; serving and the quantization layer own them."""
    for name in ("EXPORT_FORMAT", "ExportedModel", "load_encoder", "load_head", "rest_request"):
        assert getattr(export, name) is getattr(serving, name), name
    assert export.saved_model_ops is serving.saved_model_ops
    assert export.DITHER_CONVENTION is layers.DITHER_CONVENTION
    assert {"load_encoder", "load_head", "DITHER_CONVENTION"} <= set(export.__all__)


def test_phase2_run_alone_exports_with_its_recorded_encoder(exported, runs_dir, tmp_path):
    """A run without an encoder/ exports its heads with the encoder its head.json records."""
    manifest = export.export_run(runs_dir / "b", tmp_path, "b")
    assert sorted(manifest["heads"]) == [PHASE2_HEAD]
    assert manifest["encoder_fingerprint"] == exported[1]["encoder_fingerprint"]
    assert manifest["prior"]["digest"] == exported[1]["prior"]["digest"]


def test_models_config_serving_base_path():
    text = export.models_config([("m-encoder", "/models/m/encoder", 4)])
    assert 'base_path: "/models/m/encoder"' in text
    assert "versions: 4" in text


# ------------------------------------------------------------------------------------------------
# Signatures and agreement with the in-memory networks.


def test_signatures_are_named_as_designed(exported):
    export_dir, _ = exported
    encoder = tf.saved_model.load(str(export_dir / "encoder" / "1"))
    signature = encoder.signatures["serving_default"]
    inputs = signature.structured_input_signature[1]
    assert {k: (v.dtype, v.shape.as_list()) for k, v in inputs.items()} == {
        "images": (tf.float32, [None, 8, 8, 1]),
        "seeds": (tf.int64, [None]),
    }
    assert {k: (v.dtype, v.shape.as_list()) for k, v in signature.structured_outputs.items()} == {
        "indices": (tf.int32, [None, 3])
    }
    head = tf.saved_model.load(str(export_dir / "heads" / PHASE2_HEAD / "1"))
    signature = head.signatures["serving_default"]
    inputs = signature.structured_input_signature[1]
    assert {k: (v.dtype, v.shape.as_list()) for k, v in inputs.items()} == {
        "indices": (tf.int32, [None, 3]),
        "seeds": (tf.int64, [None]),
    }
    assert {k: (v.dtype, v.shape.as_list()) for k, v in signature.structured_outputs.items()} == {
        "images": (tf.float32, [None, 8, 8, 1])
    }


def test_exports_match_in_memory_networks(exported, runs_dir, sample_images):
    export_dir, _ = exported
    seeds = np.arange(100, 116, dtype=np.int64)
    indices, decoded = _in_memory(runs_dir, sample_images, seeds)
    encoder = export.load_encoder(export_dir)
    np.testing.assert_array_equal(encoder.encode(sample_images, seeds), indices)
    for head_name, expected in decoded.items():
        head = export.load_head(export_dir / "heads" / head_name, encoder=encoder)
        images = head.decode(indices, seeds, batch_size=5)  # batching must not change results
        assert images.shape == (16, 8, 8, 1)
        np.testing.assert_allclose(images, expected, atol=1e-5, rtol=0)


def test_encoder_run_refuses_bad_inputs(exported):
    encoder = export.load_encoder(exported[0])
    with pytest.raises(ValueError, match="shared batch size"):
        encoder.encode(np.zeros((2, 8, 8, 1), np.float32), np.arange(3))
    with pytest.raises(ValueError, match="does not fit"):
        encoder.encode(np.zeros((2, 8, 9, 1), np.float32), np.arange(2))
    with pytest.raises(ValueError, match="decode needs a head"):
        encoder.decode(np.zeros((2, 3), np.int32), np.arange(2))


# ------------------------------------------------------------------------------------------------
# Prior tables.


def test_prior_counts_the_training_split(exported, runs_dir):
    _, manifest = exported
    stored = manifest["prior"]
    images = data.load_arrays("digits", "train")[0]
    seeds = np.arange(len(images), dtype=np.int64)  # export seed 0: image i gets 0 + i
    encoder, _ = runs.load_encoder(runs_dir / "a")
    quantizer = UniversalQuantizer(3)
    indices = quantizer.encode(encoder(images, training=False), dither(seeds, 3, 3)).numpy()
    counts = np.stack([np.bincount(indices[:, j], minlength=3) for j in range(3)])
    assert stored["counts"] == counts.tolist()
    assert stored["num_images"] == len(images) == 1437
    cdf = np.asarray(stored["cdf"])
    freq = np.diff(cdf, axis=1)
    assert (freq >= 1).all() and (cdf[:, -1] == 2**16).all()
    exact = (counts + 1) / (counts + 1).sum(axis=1, keepdims=True) * 2**16  # add-one smoothing
    assert np.abs(freq - exact).max() < 1.0  # largest-remainder rounding
    p = counts / counts.sum(axis=1, keepdims=True)
    bits = -(p * np.log2(freq / 2**16)).sum()
    assert stored["train_bits_per_image"] == pytest.approx(bits)


def test_dithered_prior_counts_shifted_training_latents(exported, runs_dir):
    """P(k | u) tables: every training latent shifted by each dither bin's centre, add-one."""
    _, manifest = exported
    stored = manifest["prior"]["dithered"]
    bins = stored["offset_bins"]
    assert bins == prior.DITHER_OFFSET_BINS
    images = data.load_arrays("digits", "train")[0]
    encoder, _ = runs.load_encoder(runs_dir / "a")
    latents = encoder(images, training=False).numpy().astype(np.float64)
    centres = -0.5 + (np.arange(bins) + 0.5) / bins  # L = 3: step 1, dither in [-0.5, 0.5)
    cdf = np.asarray(stored["cdf"])
    assert cdf.shape == (3, bins, 4)
    freq = np.diff(cdf, axis=-1)
    assert (freq >= 1).all() and (cdf[..., -1] == 2**16).all()
    for j in range(3):
        for b in range(bins):
            shifted = latents[:, j] + centres[b]
            # Nearest of the centres -1, 0, 1 (a tie would go to the higher one).
            k = np.argmin(
                np.abs(shifted[:, None] - np.array([-1.0, 0.0, 1.0])) - [0, 1e-12, 2e-12], 1
            )
            counts = np.bincount(k, minlength=3) + 1
            exact = counts / counts.sum() * 2**16
            assert np.abs(freq[j, b] - exact).max() <= 1.0 + 1e-9, (j, b)
    # Cross-entropy of the training indices (their own dithers) under the stored tables.
    seeds = np.arange(len(images), dtype=np.int64)
    u = dither(seeds, 3, 3).numpy()
    indices = UniversalQuantizer(3).encode(latents.astype(np.float32), u).numpy()
    table_bins = np.clip(np.floor((u.astype(np.float64) + 0.5) * bins), 0, bins - 1).astype(int)
    p = freq[np.arange(3)[None, :], table_bins, indices] / 2**16
    assert stored["train_bits_per_image"] == pytest.approx(-np.log2(p).sum(axis=1).mean())
    flat = [row for rows in stored["cdf"] for row in rows]
    assert stored["digest"] == prior.digest(flat, 16)
    # The dither is known to the receiver: conditioning on it never costs bits on average.
    assert stored["train_bits_per_image"] <= manifest["prior"]["train_bits_per_image"] + 0.05


# ------------------------------------------------------------------------------------------------
# Versions, atomicity and fingerprints.


def test_reexport_adds_next_version(runs_dir, tmp_path):
    first = export.export_run(runs_dir / "a", tmp_path, "m")
    second = export.export_run(runs_dir / "a", tmp_path, "m")
    assert (first["version"], second["version"]) == (1, 2)
    for model in ("encoder", f"heads/{PHASE1_HEAD}"):
        assert sorted(p.name for p in (tmp_path / "m" / model).iterdir()) == ["1", "2"]
    assert "versions: 2" in (tmp_path / "m" / "models.config").read_text()
    assert second["prior"]["digest"] == first["prior"]["digest"]  # tables are deterministic
    assert export.load_encoder(tmp_path / "m").path.name == "2"


def test_export_to_a_gfile_url_pushes_the_same_export(runs_dir, tmp_path, sample_images):
    from rdc_keras import remote

    url = "ram://exports/models"
    first = export.export_run(runs_dir / "a", url, "m")
    second = export.export_run(runs_dir / "a", url, "m")
    assert (first["version"], second["version"]) == (1, 2)
    for model in ("encoder", f"heads/{PHASE1_HEAD}"):
        assert sorted(name.strip("/") for name in tf.io.gfile.listdir(f"{url}/m/{model}")) == [
            "1",
            "2",
        ]
    with tf.io.gfile.GFile(f"{url}/m/models.config") as handle:
        config = handle.read()
    assert f'base_path: "{url}/m/encoder"' in config and "versions: 2" in config
    assert "rdc-staged-" not in config
    # Pulled back, the export serves the same indices as one written locally.
    local = export.export_run(runs_dir / "a", tmp_path / "local", "m")
    remote.pull(f"{url}/m", tmp_path / "pulled" / "m")
    seeds = np.arange(len(sample_images), dtype=np.int64)
    pulled = export.load_encoder(tmp_path / "pulled" / "m").encode(sample_images, seeds)
    here = export.load_encoder(tmp_path / "local" / "m").encode(sample_images, seeds)
    np.testing.assert_array_equal(pulled, here)
    # serving reads the URL itself (a local copy once per process).
    served = export.load_encoder(f"{url}/m")
    assert served.path.name == "2" and served.path.is_relative_to(remote.local_copy(f"{url}/m"))
    np.testing.assert_array_equal(served.encode(sample_images, seeds), here)
    head = export.load_head(f"{url}/m/heads/{PHASE1_HEAD}", served)
    local_head = export.load_head(tmp_path / "local" / "m" / "heads" / PHASE1_HEAD)
    np.testing.assert_array_equal(head.decode(here, seeds), local_head.decode(here, seeds))
    assert local["prior"]["digest"] == second["prior"]["digest"]


def test_failed_export_leaves_nothing_behind(runs_dir, tmp_path, monkeypatch):
    export.export_run(runs_dir / "a", tmp_path, "m")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    manifest = (tmp_path / "m" / "manifest.json").read_text()
    calls = []
    original = tf.saved_model.save

    def flaky_save(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the encoder is staged, the head fails
            raise OSError("disk full")
        return original(*args, **kwargs)

    monkeypatch.setattr(tf.saved_model, "save", flaky_save)
    with pytest.raises(OSError, match="disk full"):
        export.export_run(runs_dir / "a", tmp_path, "m")
    after = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert after == before
    assert (tmp_path / "m" / "manifest.json").read_text() == manifest


def test_load_head_refuses_another_encoder(exported):
    export_dir, _ = exported
    head_dir = export_dir / "heads" / PHASE2_HEAD
    with pytest.raises(ValueError, match="fingerprint mismatch"):
        export.load_head(head_dir, encoder="0" * 32)
    with pytest.raises(ValueError, match="fingerprint mismatch"):
        export.load_head(head_dir, encoder={"encoder_fingerprint": "f" * 32})
    encoder = export.load_encoder(export_dir)
    assert export.load_head(head_dir, encoder=encoder).fingerprint == encoder.fingerprint
    with pytest.raises(ValueError, match="expected 'head'"):
        export.load_head(export_dir / "encoder")
    with pytest.raises(ValueError, match="no exported encoder"):
        export.load_encoder(export_dir / "heads")


def test_load_encoder_checks_weights_against_fingerprint(exported, tmp_path):
    export_dir, _ = exported
    copy = tmp_path / "1"
    shutil.copytree(export_dir / "encoder" / "1", copy)
    meta = files.read_json(copy / "assets" / "rdc.json")
    meta["encoder_fingerprint"] = "0" * 32
    files.write_json(copy / "assets" / "rdc.json", meta)
    encoder = export.load_encoder(copy)
    with pytest.raises(ValueError, match="do not match the recorded fingerprint"):
        encoder.encode(np.zeros((1, 8, 8, 1), np.float32), np.zeros(1, np.int64))


def test_export_refuses_head_of_another_encoder(runs_dir, tmp_path):
    head = tmp_path / "heads" / "alien"
    shutil.copytree(runs_dir / "b" / "heads" / PHASE2_HEAD, head)
    record = files.read_json(head / "head.json")
    record["encoder_fingerprint"] = "0" * 32
    files.write_json(head / "head.json", record)
    with pytest.raises(ValueError, match="head belongs to encoder"):
        export.export_run(
            None, tmp_path / "out", "m", encoder_dir=runs_dir / "a" / "encoder", head_dirs=[head]
        )
    assert not (tmp_path / "out" / "m").exists()


def test_export_rejects_bad_names_and_datasets(runs_dir, tmp_path):
    with pytest.raises(ValueError, match="not a valid name"):
        export.export_run(runs_dir / "a", tmp_path, "../escape")
    with pytest.raises(ValueError, match="does not fit"):
        export.export_run(runs_dir / "a", tmp_path, "m", prior_dataset="mnist_idx")
    with pytest.raises(ValueError, match="nothing to export"):
        export.export_run(None, tmp_path, "m")


# ------------------------------------------------------------------------------------------------
# Stock ops only, checked where neither tensorflow-compression package was ever imported.

_OP_CHECK = textwrap.dedent(
    """
    import json, pathlib, sys
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import op_def_registry
    import rdc_keras.codec, rdc_keras.export  # neither may import tensorflow_compression

    report = {}
    for path in sys.argv[1:]:
        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString(pathlib.Path(path, "saved_model.pb").read_bytes())
        ops = set()
        for graph in proto.meta_graphs:
            ops.update(node.op for node in graph.graph_def.node)
            for function in graph.graph_def.library.function:
                ops.update(node.op for node in function.node_def)
        missing = sorted(op for op in ops if op_def_registry.get(op) is None)
        entry = {"ops": len(ops), "unregistered": missing}
        if not missing:
            signature = tf.saved_model.load(path).signatures["serving_default"]
            inputs = signature.structured_input_signature[1]
            feed = {k: tf.zeros([2] + v.shape.as_list()[1:], v.dtype) for k, v in inputs.items()}
            entry["outputs"] = {k: v.shape.as_list() for k, v in signature(**feed).items()}
        report[path] = entry
    tfc = {"tensorflow_compression", "tensorflow_compression_ops"}
    report["tfc_imported"] = bool(tfc & set(sys.modules))
    print(json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def tfc_saved_model(tmp_path_factory) -> pathlib.Path:
    """A control SavedModel that does use a tensorflow-compression op (from either package)."""
    from rdc_keras import codec

    tfc = codec._tfc()

    class Control(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="pmf")])
        def serve(self, pmf):
            return {"cdf": tfc.pmf_to_quantized_cdf(pmf, precision=8)}

    path = tmp_path_factory.mktemp("control") / "1"
    module = Control()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def test_serving_graphs_use_only_stock_ops(exported, tfc_saved_model):
    export_dir, _ = exported
    models = [export_dir / "encoder" / "1", *sorted(export_dir.glob("heads/*/1"))]
    result = _run([sys.executable, "-c", _OP_CHECK, *models, tfc_saved_model])
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report.pop("tfc_imported") is False
    control = report.pop(str(tfc_saved_model))
    assert control["unregistered"] == ["PmfToQuantizedCdf"]  # the check can fail
    assert len(report) == 3
    for path, entry in report.items():
        assert entry["unregistered"] == [], path
        assert entry["ops"] > 10
    assert report[str(export_dir / "encoder" / "1")]["outputs"] == {"indices": [2, 3]}
    assert report[str(export_dir / "heads" / PHASE2_HEAD / "1")]["outputs"] == {
        "images": [2, 8, 8, 1]
    }
    assert "CreateRangeEncoder" not in export.saved_model_ops(export_dir / "encoder" / "1")


def test_heads_are_exported_with_batch_norm_folded(exported):
    export_dir, _ = exported
    # Inference BatchNorm is Rsqrt/Mul in Keras' dense path and FusedBatchNorm in the conv path.
    batch_norm_ops = {"Rsqrt", "FusedBatchNorm", "FusedBatchNormV3"}
    for head_dir in sorted(export_dir.glob("heads/*/1")):
        assert not batch_norm_ops & set(export.saved_model_ops(head_dir)), head_dir
        metadata = json.loads((head_dir / "assets" / serving.METADATA_FILE).read_text())
        assert metadata["batch_norm_folded"] is True
    # The encoder keeps its trained layers (its weights are fingerprinted): the check can fail.
    assert batch_norm_ops & set(export.saved_model_ops(export_dir / "encoder" / "1"))


def test_heads_can_be_exported_as_trained(runs_dir, tmp_path, sample_images):
    export.export_run(runs_dir / "a", tmp_path, "plain", fold_batch_norm=False)
    folded_root = tmp_path / "folded"
    export.export_run(runs_dir / "a", folded_root, "folded")
    seeds = np.arange(len(sample_images), dtype=np.int64)
    outputs = []
    for root in (tmp_path / "plain", folded_root / "folded"):
        (head_dir,) = sorted(root.glob("heads/*/1"))
        metadata = json.loads((head_dir / "assets" / serving.METADATA_FILE).read_text())
        assert metadata["batch_norm_folded"] is (root.name == "folded")
        encoder = export.load_encoder(root)
        head = export.load_head(head_dir.parent, encoder)
        outputs.append(head.decode(encoder.encode(sample_images, seeds), seeds))
    assert "Rsqrt" in export.saved_model_ops(sorted((tmp_path / "plain").glob("heads/*/1"))[0])
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-6)


# ------------------------------------------------------------------------------------------------
# saved_model_cli show / run.


def test_saved_model_cli_show(exported):
    encoder_dir = exported[0] / "encoder" / "1"
    shown = _run([SAVED_MODEL_CLI, "show", "--dir", encoder_dir, "--all"])
    assert shown.returncode == 0, shown.stderr[-2000:]
    text = shown.stdout
    assert "signature_def['serving_default']" in text
    for fragment in (
        "inputs['images'] tensor_info",
        "dtype: DT_FLOAT",
        "shape: (-1, 8, 8, 1)",
        "inputs['seeds'] tensor_info",
        "dtype: DT_INT64",
        "outputs['indices'] tensor_info",
        "dtype: DT_INT32",
        "shape: (-1, 3)",
    ):
        assert fragment in text, fragment


def test_saved_model_cli_run_matches_in_memory(exported, runs_dir, sample_images, tmp_path):
    export_dir, _ = exported
    encoder_dir = export_dir / "encoder" / "1"
    head_dir = export_dir / "heads" / PHASE1_HEAD / "1"
    seeds = np.arange(7, 7 + len(sample_images), dtype=np.int64)
    indices, decoded = _in_memory(runs_dir, sample_images, seeds)
    np.save(tmp_path / "x.npy", sample_images)
    np.save(tmp_path / "s.npy", seeds)
    np.save(tmp_path / "i.npy", indices)
    for model, inputs, out in (
        (encoder_dir, "images=x.npy;seeds=s.npy", "enc"),
        (head_dir, "indices=i.npy;seeds=s.npy", "head"),
    ):
        ran = _run(
            [
                SAVED_MODEL_CLI,
                "run",
                "--dir",
                model,
                "--tag_set",
                "serve",
                "--signature_def",
                "serving_default",
                "--inputs",
                inputs,
                "--outdir",
                tmp_path / out,
            ],
            cwd=tmp_path,
        )
        assert ran.returncode == 0, ran.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "enc" / "indices.npy"), indices)
    images = np.load(tmp_path / "head" / "images.npy")
    assert np.abs(images - decoded[PHASE1_HEAD]).max() <= 1e-5


# ------------------------------------------------------------------------------------------------
# REST request examples (export's requests/ and docs/serving.md).


def _check_request(body, signature):
    inputs = signature.structured_input_signature[1]
    assert body["signature_name"] == "serving_default"
    assert set(body["inputs"]) == set(inputs)
    feed = {}
    for name, spec in inputs.items():
        value = np.asarray(body["inputs"][name])
        kind = "f" if spec.dtype.is_floating else "i"
        assert value.dtype.kind == kind, (name, value.dtype)
        assert spec.shape.is_compatible_with(value.shape), (name, value.shape)
        feed[name] = tf.constant(value, spec.dtype)
        if kind == "f":  # written as float32 round-trip decimals
            np.testing.assert_array_equal(np.asarray(body["inputs"][name], np.float32), value)
    return signature(**feed)


def test_rest_requests_fit_signatures(exported):
    export_dir, _ = exported
    encoder = export.load_encoder(export_dir)
    body = files.read_json(export_dir / "requests" / "encoder.json")
    outputs = _check_request(body, encoder.signature)
    image = data.load_arrays("digits", "train")[0][:1]
    assert body == export.rest_request({"images": image, "seeds": np.array([0])})
    for head_name in (PHASE1_HEAD, PHASE2_HEAD):
        head_body = files.read_json(export_dir / "requests" / f"{head_name}.json")
        assert head_body["inputs"]["indices"] == outputs["indices"].numpy().tolist()
        head = export.load_head(export_dir / "heads" / head_name, encoder)
        assert _check_request(head_body, head.signature)["images"].shape == (1, 8, 8, 1)


def test_docs_serving_examples_fit_signatures(exported):
    text = (REPO_ROOT / "docs" / "serving.md").read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.S)]
    requests = [b for b in blocks if "signature_name" in b]
    assert len(requests) == 2
    encoder = export.load_encoder(exported[0])
    head = export.load_head(exported[0] / "heads" / PHASE1_HEAD, encoder)
    outputs = _check_request(requests[0], encoder.signature)
    assert outputs["indices"].shape == (1, 3)
    image = data.load_arrays("digits", "train")[0][:1]  # what requests/encoder.json holds
    assert requests[0] == export.rest_request({"images": image, "seeds": np.array([0])})
    assert _check_request(requests[1], head.signature)["images"].shape == (1, 8, 8, 1)
    responses = [b for b in blocks if "outputs" in b]
    assert {tuple(r["outputs"]) for r in responses} == {("indices",), ("images",)}


# ------------------------------------------------------------------------------------------------
# rdc-export.


def test_cli_export(runs_dir, tmp_path):
    ok = _run(
        [
            sys.executable,
            "-m",
            "rdc_keras.cli.export",
            f"--run={runs_dir / 'a'}",
            f"--run={runs_dir / 'b'}",
            f"--export_root={tmp_path}",
            "--name=cli",
            "--serving_base_path=/models",
            "--verbose=0",
        ]
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    summary = json.loads(ok.stdout.strip().splitlines()[-1])
    assert summary["version"] == 1 and summary["heads"] == [PHASE1_HEAD, PHASE2_HEAD]
    assert summary["prior_bits_per_image"] <= summary["rate_bits"] + 1
    config = (tmp_path / "cli" / "models.config").read_text()
    assert 'base_path: "/models/cli/encoder"' in config


def test_cli_export_fails_with_one_line(tmp_path):
    bad = _run(
        [
            sys.executable,
            "-m",
            "rdc_keras.cli.export",
            f"--run={tmp_path / 'missing'}",
            f"--export_root={tmp_path}",
        ]
    )
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert "error: " in lines[-1] and "run directory not found" in lines[-1]
