"""Benchmark: does turning oneDNN on change what a trained GAN model reaches? (issue 18, item 4)

`import rdc_keras` turns TensorFlow's oneDNN CPU kernels on where TensorFlow would pick Eigen
(CPUs without AVX-512 VNNI). Kernels sum in another order, so a speed lever must not move the
numbers a trained model reaches beyond the float32 run-to-run spread. A GAN's trajectory
diverges on any change of rounding, so the comparison is over several seeds, next to each
kernel set's seed-to-seed spread. This script trains the
MNIST-10k perception model of the paper's schedule (d=3, L=3, lambda_p = ``--lambda_p``,
``schedule=alternate``, ``--epochs`` epochs) with ``rdc-train`` once per seed and kernel set
(``TF_ENABLE_ONEDNN_OPTS=1`` and ``=0``, each in its own process: TensorFlow reads the variable
when it loads), plus a second oneDNN run of the first seed: the same-seed spread. One reference
classifier judges every run. Finished runs are reused.

Usage: python -m bench.bench_kernel_quality --data_dir=../shared/data/mnist [--seeds 0,1,2,3]
Writes bench/results/kernel_quality.json (with --quick: 1 epoch of 2 steps, into bench/runs/quick/).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
from typing import Any

try:
    from bench import common
except ImportError:  # run as a script: python bench/bench_kernel_quality.py
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from bench import common

__all__ = ["build_records", "main", "parse_args", "run_names"]

RESULT_FILE = "kernel_quality.json"
KERNELS = {"onednn": "1", "eigen": "0"}
METRICS = ("mse", "w1")


def run_names(seeds: list[int]) -> list[tuple[str, int, str]]:
    """(run directory name, seed, kernels) of every training run, the repeat last."""
    runs = [(f"{kernels}-seed{seed}", seed, kernels) for seed in seeds for kernels in KERNELS]
    return [*runs, (f"onednn-seed{seeds[0]}-repeat", seeds[0], "onednn")]


def _run(module: str, flags: list[str], kernels: str) -> None:
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=KERNELS[kernels], TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", module, *flags]
    print("$", " ".join(command), f"(TF_ENABLE_ONEDNN_OPTS={KERNELS[kernels]})", flush=True)
    subprocess.run(command, check=True, cwd=common.REPO_ROOT, env=env)


def train_runs(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Trains (or reuses) the judge and every run; returns {run name: results.json's test}."""
    workdir = pathlib.Path(args.workdir)
    limits = ["--epochs=1", "--steps_per_epoch=2"] if args.quick else [f"--epochs={args.epochs}"]
    data = ["--dataset=mnist_idx", f"--data_dir={args.data_dir}"]
    judge = workdir / "classifier"
    if not (judge / "results.json").exists():
        quick = ["--epochs=1"] if args.quick else []
        _run(
            "rdc_keras.cli.classifier",
            [*data, f"--workdir={judge}", "--seed=0", *quick],
            "onednn",
        )
    tests = {}
    for name, seed, kernels in run_names(args.seeds):
        run = workdir / name
        if not (run / "results.json").exists():
            flags = [*data, *limits, f"--workdir={run}", f"--seed={seed}"]
            flags += ["--latent_dim=3", "--num_levels=3", "--lambda_c=0"]
            flags += [f"--lambda_p={args.lambda_p}", "--schedule=alternate", "--verbose=1"]
            _run("rdc_keras.cli.train", [*flags, f"--classifier_dir={judge}"], kernels)
        tests[name] = json.loads((run / "results.json").read_text())["test"]
    return tests


def build_records(
    tests: dict[str, dict[str, Any]], seeds: list[int], command: str, epochs: int
) -> list[dict[str, Any]]:
    """Per seed: oneDNN / Eigen test MSE and W1; the same-seed repeat's; the means over seeds."""
    records = common.Records(command)
    setting = f"mnist10k,alternate,epochs={epochs}"
    for metric in METRICS:
        unit = f"test {metric} (baseline: the Eigen-kernel run of the same seed)"
        for seed in seeds:
            records.add(
                f"kernel_quality_{metric}[{setting},seed={seed}]",
                tests[f"onednn-seed{seed}"][metric],
                unit,
                tests[f"eigen-seed{seed}"][metric],
            )
        first = seeds[0]
        records.add(
            f"kernel_quality_{metric}_same_seed_spread[{setting},seed={first}]",
            tests[f"onednn-seed{first}-repeat"][metric],
            f"test {metric} (baseline: the first oneDNN run of the same seed)",
            tests[f"onednn-seed{first}"][metric],
        )
        for kernels in KERNELS:  # the seed-to-seed spread of each kernel set, for scale
            values = [tests[f"{kernels}-seed{s}"][metric] for s in seeds]
            records.add(
                f"kernel_quality_{metric}_seed_spread[{setting},{kernels}]",
                max(values),
                f"largest test {metric} over the seeds (baseline: the smallest)",
                min(values),
            )
        records.add(
            f"kernel_quality_{metric}_mean[{setting},seeds={','.join(map(str, seeds))}]",
            statistics.fmean(tests[f"onednn-seed{s}"][metric] for s in seeds),
            f"mean test {metric} of the oneDNN runs (baseline: mean of the Eigen runs)",
            statistics.fmean(tests[f"eigen-seed{s}"][metric] for s in seeds),
        )
    return records.records


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch of 2 steps: a script check")
    parser.add_argument(
        "--data_dir", default=str(common.DEFAULT_DATA_DIR), help="MNIST IDX directory"
    )
    parser.add_argument("--workdir", default=None, help="default bench/runs/kernel_quality")
    parser.add_argument("--seeds", default="0,1,2,3", help="comma-separated seeds")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run")
    parser.add_argument("--lambda_p", type=float, default=0.015, help="Wasserstein weight")
    parser.add_argument("--output", default=None, help=f"default bench/results/{RESULT_FILE}")
    args = parser.parse_args(argv)
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    if not args.seeds:
        parser.error("--seeds must name at least one seed")
    common.check_minimum(parser, args, 1, "epochs")
    if args.workdir is None:
        runs = common.REPO_ROOT / "bench" / "runs"
        args.workdir = str((runs / "quick" if args.quick else runs) / "kernel_quality")
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    arguments = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(arguments)
    tests = train_runs(args)
    command = common.command_line("bench.bench_kernel_quality", arguments)
    records = build_records(tests, args.seeds, command, 1 if args.quick else args.epochs)
    common.report(args.output or common.default_output(RESULT_FILE, args.quick), records)
    return records


if __name__ == "__main__":
    main()
