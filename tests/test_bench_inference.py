"""Tests of the inference benchmark's contenders (bench/bench_inference.py), on stand-in models.

The serving signatures are replaced by tiny functions, so nothing is exported or timed for real.
"""

import argparse
import pathlib
import sys

import tensorflow as tf

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # bench/ is not part of the installed package
    sys.path.insert(0, str(REPO_ROOT))

from bench import bench_inference  # noqa: E402


def _encoder(images, seeds):
    return {"indices": tf.zeros([tf.shape(images)[0], 3], tf.int32)}


def _head(indices, seeds):
    return {"images": tf.zeros([tf.shape(indices)[0], 28, 28, 1])}


def test_contenders_cover_every_batch_the_head_ab_latency_and_the_matmul():
    args = argparse.Namespace(
        calls=2, warmup=0, block_seconds=0.0, latency_calls=4, repeats=2, matmul_size=4
    )
    contenders, sizes = bench_inference._contenders(
        _encoder, _head, (28, 28, 1), [1, 5], args, unfolded_head_fn=_head
    )
    names = ["batch=1", "batch=5", "head_folded", "head_unfolded", "latency", "matmul_f32"]
    assert list(contenders) == names
    assert sizes == {**{name: 2 for name in names}, "latency": 2}
    assert all(contenders[name]() > 0 for name in names if name != "latency")
    assert len(contenders["latency"]()) == 2
    args.calls = None  # block sizes from one timed call after the warm-up
    _, sizes = bench_inference._contenders(_encoder, _head, (28, 28, 1), [1], args)
    assert list(sizes) == ["batch=1", "latency", "matmul_f32"] and sizes["batch=1"] == 1
