"""Benchmark: serving throughput and latency of an exported encoder + head (issue 9, item 4).

Loads the two SavedModels of an `rdc-export` tree with `tf.saved_model.load` (through
`rdc_keras.export.load_encoder`/`load_head`) and times the full serving path, image -> encoder
signature -> int32 indices -> head signature -> image, on in-memory tf tensors:

* images/s at batch 1, 64 and 1024 (blocks of back-to-back calls, median over rounds);
* p50/p99 latency of one image (each call timed alone; all rounds pooled);
* the head alone at batch 64, exported with its BatchNorm folded (the default) and as trained
  (`export_run(fold_batch_norm=False)`), when the script makes its own export;
* the FLOP-limited ceiling: the median float32 `tf.linalg.matmul` FLOP/s measured in the same
  run divided by the analytic forward FLOPs per image of encoder + decoder
  (`bench.common.inference_flops`). ``ratio`` is measured / ceiling for throughput and
  ceiling latency / measured latency for the latency rows (1.0 = at the ceiling).

All contenders (the three batch sizes, the latency sample and the matmul) are interleaved in
rotated rounds (`bench.common.interleave`). The weights do not change the cost (no
data-dependent control flow), so without ``--export``/``--run`` the script trains a one-step
MNIST-10k run into ``--workdir`` and exports it.

Usage: python -m bench.bench_inference [--quick] [--export saved_models/NAME] [--repeats 7]
Writes bench/results/inference.json (records: name, value, unit, baseline, ratio, command,
machine, date); with --quick into bench/runs/quick/results/ instead.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

try:
    from bench import common
except ImportError:  # run as a script: python bench/bench_inference.py
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from bench import common

from rdc_keras import export, networks

__all__ = ["main", "make_export"]

SEED = 0
FOLDING_BATCH = 64


def make_export(
    workdir: pathlib.Path,
    data_dir: str,
    run_dir: str | None = None,
    name: str = "inference",
    fold_batch_norm: bool = True,
) -> pathlib.Path:
    """Exports `run_dir` (default: a fresh one-step MNIST-10k run) under workdir; returns it."""
    from rdc_keras import runs, serving
    from rdc_keras.config import TrainConfig
    from rdc_keras.trainers.runner import train_run

    root = workdir / "exports" / name
    if (root / serving.MANIFEST_FILE).exists() and run_dir is None:
        return root  # the one-step run is only a carrier of the architecture: reuse it
    if run_dir is None:
        run_dir = str(workdir / "run")
    if not runs.RunDir(run_dir).is_finished():
        judge = common.untrained_classifier(workdir / "classifier", seed=SEED)  # never decides
        train_run(
            TrainConfig(
                workdir=run_dir,
                dataset="mnist_idx",
                data_dir=data_dir,
                latent_dim=3,
                num_levels=3,
                classifier_dir=str(judge),
                epochs=1,
                steps_per_epoch=1,
                seed=SEED,
                verbose=0,
            )
        )
    export.export_run(run_dir, workdir / "exports", name, fold_batch_norm=fold_batch_norm)
    return root


def _throughput(call, calls: int, units: float):
    """A contender: `calls` back-to-back calls; returns units per second."""

    def throughput() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            call()
        return units * calls / (time.perf_counter() - start)

    return throughput


def _contenders(
    encoder_fn, head_fn, image_shape, batches, args, unfolded_head_fn=None
) -> tuple[dict, dict]:
    """{name: contender} and {name: calls per block} of the timed cases."""
    rng = np.random.RandomState(SEED)
    contenders, sizes = {}, {}

    def inputs(n: int):
        images = tf.constant(rng.uniform(size=(n, *image_shape)).astype("float32"))
        return images, tf.range(n, dtype=tf.int64)

    def serve(images, seeds):
        indices = encoder_fn(images=images, seeds=seeds)["indices"]
        return head_fn(indices=indices, seeds=seeds)["images"]

    def add(label: str, call, units: float) -> None:
        """Times `call` in blocks of --calls, or of about --block_seconds after a warm-up."""
        calls = args.calls
        if not calls:
            for _ in range(args.warmup):
                call()
            start = time.perf_counter()
            call()
            per_call = time.perf_counter() - start
            calls = max(1, min(10_000, round(args.block_seconds / max(per_call, 1e-9))))
        sizes[label] = calls
        contenders[label] = _throughput(call, calls, units)

    for batch in batches:
        images, seeds = inputs(batch)
        add(f"batch={batch}", lambda i=images, s=seeds: serve(i, s).numpy(), batch)

    if unfolded_head_fn is not None:  # the head alone, BatchNorm folded or not (A/B)
        indices = tf.constant(rng.randint(0, 3, (FOLDING_BATCH, 3)).astype("int32"))
        seeds = tf.range(FOLDING_BATCH, dtype=tf.int64)
        for label, fn in (("head_folded", head_fn), ("head_unfolded", unfolded_head_fn)):
            call = lambda fn=fn: fn(indices=indices, seeds=seeds)["images"].numpy()  # noqa: E731
            add(label, call, FOLDING_BATCH)

    one_image, one_seed = inputs(1)
    per_round = max(1, args.latency_calls // args.repeats)
    sizes["latency"] = per_round

    def latency() -> list[float]:
        out = []
        for _ in range(per_round):
            start = time.perf_counter()
            serve(one_image, one_seed).numpy()
            out.append(time.perf_counter() - start)
        return out

    contenders["latency"] = latency

    n = args.matmul_size
    a = tf.random.stateless_uniform([n, n], (1, 2))
    b = tf.random.stateless_uniform([n, n], (3, 4))
    matmul = tf.function(tf.linalg.matmul)
    add("matmul_f32", lambda: float(matmul(a, b)[0, 0]), 2.0 * n**3)  # FLOP/s
    return contenders, sizes


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Runs the benchmark, prints it and writes the JSON records."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks the script only")
    parser.add_argument("--export", default=None, help="export dir <root>/<name> (rdc-export)")
    parser.add_argument("--head", default=None, help="head name (default: the first)")
    parser.add_argument("--run", default=None, help="training run to export instead")
    parser.add_argument("--data_dir", default=str(common.DEFAULT_DATA_DIR))
    parser.add_argument("--workdir", default=str(common.REPO_ROOT / "bench/runs/inference"))
    parser.add_argument("--batches", default="1,64,1024")
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default 7; quick 2)")
    parser.add_argument("--calls", type=int, default=None, help="calls per block (default auto)")
    parser.add_argument("--block_seconds", type=float, default=None, help="default 3; quick 0")
    parser.add_argument("--latency_calls", type=int, default=None, help="default 2000; quick 40")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--matmul_size", type=int, default=None, help="default 4096; quick 1024")
    parser.add_argument("--output", default=None, help="default bench/results/inference.json")
    args = parser.parse_args(argv)
    quick = args.quick
    common.fill_defaults(
        args,
        quick,
        {
            "repeats": (7, 2),
            "block_seconds": (3.0, 0.0),
            "latency_calls": (2000, 40),
            "matmul_size": (4096, 1024),
        },
    )
    try:
        batches = [int(b) for b in args.batches.split(",") if b]
    except ValueError:
        parser.error(f"--batches must be comma-separated integers, got {args.batches!r}")
    if not batches or min(batches) < 1:
        parser.error("--batches must be integers >= 1")
    common.check_minimum(parser, args, 1, "repeats", "latency_calls", "matmul_size", "calls")

    root = pathlib.Path(args.export) if args.export else None
    unfolded_root = None  # the same run exported with the heads as trained (own exports only)
    if root is None:
        workdir = pathlib.Path(args.workdir)
        root = make_export(workdir, args.data_dir, args.run)
        unfolded_root = make_export(
            workdir, args.data_dir, args.run, name="inference-unfolded", fold_batch_norm=False
        )
    encoder = export.load_encoder(root)
    heads = common.export_head_paths(root)
    if not heads:
        raise SystemExit(f"{root}: no heads exported")
    head_name = args.head or next(iter(heads))
    if head_name not in heads:
        raise SystemExit(f"--head={head_name}: not in {root} (exported: {', '.join(heads)})")
    head = export.load_head(heads[head_name], encoder)
    unfolded_head = None
    if unfolded_root is not None:
        unfolded_head = export.load_head(
            common.export_head_paths(unfolded_root)[head_name], encoder
        )
    preset = encoder.metadata["preset"]
    flops = common.inference_flops(
        common.model_flops(networks.encoder(preset, encoder.latent_dim)),
        common.model_flops(networks.decoder(preset, encoder.latent_dim)),
    )
    contenders, sizes = _contenders(
        encoder.signature,
        head.signature,
        encoder.image_shape,
        batches,
        args,
        unfolded_head.signature if unfolded_head else None,
    )
    print(
        f"{root} (head {head_name}): {flops / 1e6:.1f} MFLOP/image forward; calls per "
        f"block {sizes}; {args.repeats} interleaved rounds",
        flush=True,
    )
    results = common.interleave(contenders, args.repeats)

    peak = common.median(results["matmul_f32"])
    ceiling = peak / flops
    latencies = [t for chunk in results["latency"] for t in chunk]
    p50, p99 = common.percentile(latencies, 50), common.percentile(latencies, 99)
    ceiling_ms = 1e3 / ceiling
    records = common.Records(common.command_line("bench.bench_inference", argv))
    print(f"float32 matmul peak {peak / 1e9:.2f} GFLOP/s -> ceiling {ceiling:.0f} images/s")
    for batch in batches:
        rate = common.median(results[f"batch={batch}"])
        print(f"  batch {batch:5d}: {rate:10.1f} images/s ({rate / ceiling:.1%} of the ceiling)")
        records.add(
            f"inference_throughput[batch={batch}]",
            rate,
            "images/s (baseline: FLOP-limited ceiling)",
            ceiling,
        )
    print(
        f"  one image: p50 {p50 * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms over {len(latencies)} "
        f"calls (ceiling {ceiling_ms:.4f} ms)"
    )
    for label, value in (("p50", p50), ("p99", p99)):
        records.add(
            f"inference_latency_{label}[batch=1]",
            value * 1e3,
            "ms (baseline: FLOP-limited latency; ratio = baseline / value)",
            ceiling_ms,
            ratio=ceiling_ms / (value * 1e3),
        )
    if unfolded_head is not None:
        folded, unfolded = (common.median(results[k]) for k in ("head_folded", "head_unfolded"))
        print(
            f"  head alone at batch {FOLDING_BATCH}: BatchNorm folded {folded:.1f} images/s, "
            f"as trained {unfolded:.1f} images/s ({folded / unfolded:.3f}x)"
        )
        records.add(
            f"head_batch_norm_folding_speedup[batch={FOLDING_BATCH}]",
            folded,
            "images/s through the head alone (baseline: the head exported unfolded)",
            unfolded,
        )
    output = common.write_results(
        args.output or common.default_output("inference.json", quick), records.records
    )
    print(f"wrote {output}")
    return records.records


if __name__ == "__main__":
    main()
