"""Benchmark: forward+backward cost of the L=3 quantizer on a 64x3 batch (issue 4 closing note).

Times a `tf.function` called from eager Python that runs UniformQuantizer(3) forward and takes
the gradient of its output with respect to the input, on a float32 [64, 3] batch. After a
warm-up, each repeat times `--calls` back-to-back calls; the reported value is the median over
repeats of the mean time per call, in microseconds. It also prints, for context only, the same
harness with the universal quantizer plus dither generation, with an identity straight-through
estimator, and with an empty function (the per-call dispatch floor).

Usage: python -m bench.bench_quantizer [--repeats 21] [--calls 200] [--output PATH]
Writes bench/results/quantizer.json: a list of one record with keys name, value, unit, baseline,
ratio, command, machine, date.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

try:
    from bench import common
except ImportError:  # run as a script: python bench/bench_quantizer.py
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from bench import common

from rdc_keras.layers import UniformQuantizer, UniversalQuantizer, dither

__all__ = ["main", "run", "time_call"]

BATCH, LATENT_DIM, NUM_LEVELS = 64, 3, 3


def time_call(
    fn: Callable[[], Any], repeats: int, calls: int, warmup: int = 50
) -> tuple[float, float]:
    """Returns medians over `repeats` of the mean wall and process-CPU time of `fn()`, in µs.

    The CPU time (all threads of this process) is printed as a cross-check: on a shared machine
    it is far less sensitive to other processes than the wall time.
    """
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            fn()
        wall.append((time.perf_counter() - start) / calls * 1e6)
        cpu.append((time.process_time() - start_cpu) / calls * 1e6)
    return statistics.median(wall), statistics.median(cpu)


def run(repeats: int = 21, calls: int = 200) -> dict[str, tuple[float, float]]:
    """Times the quantizer harnesses; returns {case: (wall µs, CPU µs) per call}."""
    y = tf.random.stateless_uniform([BATCH, LATENT_DIM], (0, 0), -1.0, 1.0)
    seeds = tf.range(BATCH, dtype=tf.int64)
    uniform = UniformQuantizer(NUM_LEVELS)
    universal = UniversalQuantizer(NUM_LEVELS)

    @tf.function
    def uniform_step(y):
        with tf.GradientTape() as tape:
            tape.watch(y)
            out = uniform(y)
        return out, tape.gradient(out, y)

    @tf.function
    def universal_step(y, seeds):
        u = dither(seeds, LATENT_DIM, NUM_LEVELS)
        with tf.GradientTape() as tape:
            tape.watch(y)
            out = universal(y, u)
        return out, tape.gradient(out, y)

    @tf.function
    def identity_ste_step(y):
        with tf.GradientTape() as tape:
            tape.watch(y)
            out = y + tf.stop_gradient(tf.round(y) - y)
        return out, tape.gradient(out, y)

    @tf.function
    def empty(y):
        return y

    return {
        "uniform_fwd_bwd": time_call(lambda: uniform_step(y), repeats, calls),
        "universal_with_dither_fwd_bwd": time_call(
            lambda: universal_step(y, seeds), repeats, calls
        ),
        "identity_ste_fwd_bwd": time_call(lambda: identity_ste_step(y), repeats, calls),
        "empty_function": time_call(lambda: empty(y), repeats, calls),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Runs the benchmark, prints every case and writes the JSON record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument(
        "--output", type=pathlib.Path, default=common.default_output("quantizer.json", quick=False)
    )
    args = parser.parse_args(argv)
    common.check_minimum(parser, args, 1, "repeats", "calls")
    cases = run(args.repeats, args.calls)
    print(f"per {BATCH}x{LATENT_DIM} batch (1-min load average {common.load_average():.2f}):")
    for case, (wall, cpu) in cases.items():
        print(f"  {case:32s} wall {wall:8.1f} us   cpu {cpu:8.1f} us")
    record = common.make_record(
        f"quantizer_forward_backward_{BATCH}x{LATENT_DIM}_L{NUM_LEVELS}",
        round(cases["uniform_fwd_bwd"][0], 1),
        "us/batch",
        common.command_line("bench.bench_quantizer", argv),
    )
    common.write_results(args.output, [record])
    print(f"wrote {args.output}")
    return record


if __name__ == "__main__":
    main()
