"""Benchmark: phase-1 MNIST training step vs PyTorch, FLOP utilization, bf16 (issue 9, items 1-3).

What runs (batch 64, d=3, L=3, lambda_c = lambda_p = 0.015, float32 unless named):

* ``tf_joint``: our phase-1 step, `RDCTrainer.train_step` with ``schedule="joint"`` built by
  `rdc_keras.trainers.build.build_trainer` from the mnist preset (Adam lrs/betas from
  `rdc_keras.config.preset_defaults("mnist")`, GP weight 10): one encoder/decoder forward, one
  critic update with gradient penalty, one joint-classifier update, one generator update.
* ``torch_joint``: the same networks and step in PyTorch (bench/torch_reference.py).
* ``tf_alternate`` / ``torch_alternate``: the paper's schedule, critic and generator on
  alternate batches, no classifier (lambda_c = 0).
* ``torch_joint_cl`` / ``torch_alternate_cl``: the PyTorch steps with channels_last weights and
  images; the ``train_step_vs_pytorch`` baseline is the faster PyTorch variant (named in the
  record's unit).
* ``tf_joint_bf16``: ``tf_joint`` built under the ``mixed_bfloat16`` policy.
* ``tf_joint_xla``: ``tf_joint`` with ``jit_compile=True``.
* ``tf_joint_tfdata``: ``tf_joint`` fed by Keras' train function from a tf.data pipeline
  (in-memory tensors, batch, repeat, prefetch(AUTOTUNE)) instead of pre-made in-memory batches.
* ``tf_rdc`` / ``tf_rdc_phase2``: the RDC-only step of every `rdc-experiment` model (lambda_p = 0,
  frozen pretrained classifier), on a trained and on a frozen encoder (a universal head).
* ``tf_encoder_forward``: the frozen encoder's inference forward pass alone.
* ``matmul_f32`` / ``matmul_bf16``: a large square ``tf.linalg.matmul`` (the measured peak).

Every contender lives in one of two worker processes (bench/train_step_workers.py: TF and
PyTorch never share a process, so their thread pools never compete), is built and warmed up
once, and then runs timed blocks of steps in rounds: each round runs every contender once, one
at a time, in a rotated order (`bench.common.interleave`). Values are medians over rounds.
Block lengths are chosen from the warm-up step time so that a block lasts about
``--block_seconds`` (or fixed with ``--steps``).
The TF pool uses TF's default intra-op threads (the schedulable cores, or ``--threads``) and
PyTorch gets ``torch.set_num_threads`` of the same number; inter-op pools keep their defaults.
Both sides train on the same 16 fixed batches of uniform random images and random labels (the
step does not depend on pixel values).

FLOPs are counted analytically (`bench.common.train_step_flops`): utilization = FLOPs per image
x images/s / median float32 matmul FLOP/s of the same run.

The bf16 training-quality study is bench/bench_bf16_quality.py; the older command
``python -m bench.bench_train_step --bf16_quality ...`` forwards to it.

Usage: python -m bench.bench_train_step [--quick] [--repeats 7] [--cases tf_joint,torch_joint]
Writes bench/results/train_step.json, records with keys name, value, unit, baseline, ratio,
command, machine, date (with --quick: into bench/runs/quick/results/).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

try:
    from bench import common
    from bench.train_step_workers import CASES, WORKERS, WorkerClient, worker_env
except ImportError:  # run as a script: python bench/bench_train_step.py
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from bench import common
    from bench.train_step_workers import CASES, WORKERS, WorkerClient, worker_env

__all__ = ["CASES", "build_records", "main", "parse_args"]

QUALITY_FLAG = "--bf16_quality"  # moved to bench.bench_bf16_quality; forwarded there
RESULT_FILE = "train_step.json"


# --------------------------------------------------------------------------------------------------
# Setting up and timing the contenders (parent process: no TF, no torch imported here).


def _block_steps(case: str, setup: dict[str, Any], args: argparse.Namespace) -> int:
    """Calls per timed block: --steps, or about --block_seconds of warm calls (at most 200)."""
    if args.steps:
        steps = args.steps
    else:
        per_call = setup["warm_seconds_per_call"] or setup["trace_seconds"]
        steps = max(1, min(200, round(args.block_seconds / max(per_call, 1e-9))))
    if "alternate" in case and steps % 2:
        steps += 1  # whole critic/generator pairs
    return steps


def _set_up(
    workers: dict[str, WorkerClient], cases: list[str], args: argparse.Namespace
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], dict[str, int]]:
    """Starts the workers and sets up every case; returns (infos, setups, steps per block).

    A case whose setup fails is reported and left out.
    """
    threads = args.threads or common.thread_count()
    infos: dict[str, dict[str, Any]] = {}
    setups: dict[str, dict[str, Any]] = {}
    steps: dict[str, int] = {}
    for worker, (kind, overrides, inter_op) in WORKERS.items():
        kind_cases = [c for c in cases if CASES[c][0] == worker]
        # The "tf" worker always runs (FLOP counts, preset settings); others only when needed.
        if not kind_cases and worker != "tf" and not (worker == "tf_inter1" and args.op_profile):
            continue
        # TF keeps its default intra-op pool unless --threads; torch always matches it.
        workers[worker] = WorkerClient(
            kind,
            args.threads if kind == "tf" else threads,
            worker_env(overrides),
            inter_op_threads=inter_op,
        )
        infos[worker] = workers[worker].call("info")
        for case in kind_cases:
            print(f"setting up {case} ({CASES[case][1]}) ...", flush=True)
            try:
                setups[case] = workers[worker].call(
                    "setup",
                    case=case,
                    warmup=args.warmup,
                    matmul_size=args.matmul_size,
                    profile_dir=args.profile_dir,
                    preset=infos["tf"]["preset"],
                )
            except RuntimeError as error:
                print(f"  {case} FAILED: {error}", flush=True)
                continue
            steps[case] = _block_steps(case, setups[case], args)
            warm = setups[case]["warm_seconds_per_call"]
            print(
                f"  traced in {setups[case]['trace_seconds']:.1f} s"
                + (f", warm call {warm:.3f} s" if warm else "")
                + f"; {steps[case]} calls per block",
                flush=True,
            )
    if "torch" in infos and infos["torch"]["threads"] != infos["tf"]["intra_op_threads"]:
        print(
            f"warning: torch threads {infos['torch']['threads']} != TF intra-op threads "
            f"{infos['tf']['intra_op_threads']}",
            flush=True,
        )
    return infos, setups, steps


def _contender(worker: WorkerClient, case: str, steps: int, units_per_call: float):
    """One timed block of `case` in its worker, with its rates (units per wall / CPU second)."""

    def block() -> dict[str, Any]:
        result = worker.call("run", case=case, steps=steps)
        result["rate"] = steps * units_per_call / result["wall"]
        result["cpu_rate"] = steps * units_per_call / result["cpu"]
        return result

    return block


def _speed(args: argparse.Namespace, argv: list[str] | None) -> list[dict[str, Any]]:
    workers: dict[str, WorkerClient] = {}
    try:
        infos, setups, steps = _set_up(workers, args.cases, args)
        contenders = {
            case: _contender(
                workers[CASES[case][0]], case, steps[case], setups[case]["units_per_call"]
            )
            for case in args.cases
            if case in steps
        }
        print(
            f"timing {len(contenders)} contenders x {args.repeats} interleaved rounds", flush=True
        )
        runs = common.interleave(contenders, args.repeats) if contenders else {}
        profile = None
        if args.op_profile:
            print(f"profiling {args.op_profile} alternate-step pairs (one inter-op thread) ...")
            profile = workers["tf_inter1"].call("profile_gan", pairs=args.op_profile)
    finally:
        for worker in workers.values():
            worker.close()

    rates = {c: common.median(r["rate"] for r in results) for c, results in runs.items()}
    _print_table(runs, rates, infos)
    if profile:
        _print_profile(profile)
    command = common.command_line("bench.bench_train_step", argv)
    return build_records(rates, infos, command, profile)


def _print_profile(profile: dict[str, Any]) -> None:
    print(
        f"\nper-op profile: {profile['op_ms_per_pair']:.1f} ms of ops per pair, "
        f"{profile['wall_ms_per_pair']:.1f} ms wall per pair untraced"
    )
    for row in profile["rows"]:
        print(
            f"  {row['turn']:15s} {row['piece']:62s} {row['ms_per_pair']:8.1f} ms "
            f"{100 * row['share']:5.1f} %  ({row['ops_per_pair']:.0f} ops)"
        )
    print("  longest ops per pair:")
    for op in profile["top_ops"]:
        print(f"    {op['ms_per_pair']:7.1f} ms  {op['type']:36s} {op['name']}")


def _print_table(runs, rates, infos) -> None:
    print(f"\nmedians over rounds (1-min load average now {common.load_average():.2f}):")
    for case, results in runs.items():
        unit = "GFLOP/s" if case.startswith("matmul") else "images/s"
        scale = 1e-9 if case.startswith("matmul") else 1.0
        values = sorted(r["rate"] * scale for r in results)
        cpu = common.median(r["cpu_rate"] for r in results) * scale
        traces = results[-1].get("traces")
        print(
            f"  {case:18s} {rates[case] * scale:10.2f} {unit:9s} (min {values[0]:.2f}, "
            f"max {values[-1]:.2f}; per CPU-second {cpu:.2f}"
            + (f"; traces {traces}" if traces is not None else "")
            + ")"
        )
    print(f"  TF: {json.dumps(infos.get('tf', {}))}")
    if "torch" in infos:
        print(f"  torch: {json.dumps(infos['torch'])}")


def build_records(
    rates: dict[str, float],
    infos: dict[str, dict[str, Any]],
    command: str,
    profile: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The result records from the median rates per case, the workers' `info` replies and the
    GAN step's op profile (`profile_gan`'s reply)."""
    records = common.Records(command)
    add = records.add
    for schedule in ("joint", "alternate"):
        # The baseline is the faster PyTorch variant (default NCHW or channels_last).
        variants = {
            c: rates[c] for c in (f"torch_{schedule}", f"torch_{schedule}_cl") if c in rates
        }
        ours = rates.get(f"tf_{schedule}")
        if ours and variants:
            best = max(variants, key=variants.get)
            unit = f"images/s (baseline: {best})"
            add(f"train_step_vs_pytorch[{schedule}]", ours, unit, variants[best])
    flops = infos.get("tf", {}).get("step_flops_per_image", {})
    # The float32 peak is the faster of the matmul kernels this TensorFlow has (oneDNN, Eigen).
    peak = max((rates[c] for c in ("matmul_f32", "matmul_f32_eigen") if rates.get(c)), default=0)
    if peak:
        for schedule in ("joint", "alternate"):
            if rates.get(f"tf_{schedule}"):
                achieved = flops[schedule] * rates[f"tf_{schedule}"]
                suffix = "" if schedule == "joint" else "[alternate]"
                name = f"train_step_flop_utilization{suffix}"
                add(name, achieved / 1e9, "GFLOP/s", peak / 1e9)
    if rates.get("tf_joint"):
        base = rates["tf_joint"]
        for case, name in (
            ("tf_joint_bf16", "train_step_bf16_speedup"),
            ("tf_joint_xla", "train_step_jit_compile_speedup"),
            ("tf_joint_tfdata", "train_step_tfdata_prefetch_vs_in_memory"),
        ):
            if rates.get(case):
                add(name, rates[case], "images/s", base)
    if peak:
        for case, key in (("tf_rdc", "rdc"), ("tf_rdc_phase2", "rdc_phase2")):
            if rates.get(case) and key in flops:
                add(
                    f"train_step_flop_utilization[{key}]",
                    flops[key] * rates[case] / 1e9,
                    "GFLOP/s",
                    peak / 1e9,
                )
    if rates.get("tf_rdc_phase2") and rates.get("tf_encoder_forward"):
        # Per batch: encoder forward seconds / phase-2 step seconds = what caching saves at most.
        add(
            "phase2_latent_cache_max_saving",
            rates["tf_rdc_phase2"] / rates["tf_encoder_forward"],
            "fraction of a universal-head step spent in the frozen encoder's forward pass",
        )
    if rates.get("matmul_bf16") and peak:
        add("matmul_peak_bf16_vs_f32", rates["matmul_bf16"] / 1e9, "GFLOP/s", peak / 1e9)
    _gan_records(rates, infos, add)
    for row in (profile or {}).get("rows", []):
        add(
            f"gan_step_profile[{row['turn']}: {row['piece']}]",
            row["ms_per_pair"],
            "ms per critic+generator pair (ratio: share of all op time)",
            profile["op_ms_per_pair"],
        )
    if profile:
        add(
            "gan_step_profile_op_time_vs_wall",
            profile["op_ms_per_pair"],
            "ms of ops per pair (baseline: wall ms per pair, untraced, one inter-op thread)",
            profile["wall_ms_per_pair"],
        )
    return records.records


# Issue 18's levers: record name -> (contender, baseline contender); ratio = speedup.
GAN_LEVERS: dict[str, tuple[str, str]] = {
    "gan_step_lever[onednn_vs_eigen]": ("tf_alternate", "tf_alternate_eigen"),
    "gan_step_lever[concatenated_critic_call]": ("tf_alternate_concat", "tf_alternate"),
    "gan_step_lever[inter_op_threads=1]": ("tf_alternate_inter1", "tf_alternate"),
    "rdc_step_lever[onednn_vs_eigen]": ("tf_rdc", "tf_rdc_eigen"),
}


def _gan_records(rates: dict[str, float], infos: dict[str, dict[str, Any]], add) -> None:
    """Issue 18: bf16 over float32 on the alternate step, the levers, the matmul kernels."""
    if rates.get("tf_alternate_bf16") and rates.get("tf_alternate"):
        add(
            "train_step_bf16_speedup[alternate]",
            rates["tf_alternate_bf16"],
            "images/s (baseline: tf_alternate, float32)",
            rates["tf_alternate"],
        )
    for name, (case, baseline) in GAN_LEVERS.items():
        if rates.get(case) and rates.get(baseline):
            add(name, rates[case], f"images/s (baseline: {baseline})", rates[baseline])
    if rates.get("matmul_f32") and rates.get("matmul_f32_eigen"):
        onednn = infos.get("tf", {}).get("onednn")
        add(
            "matmul_peak_f32_default_vs_eigen",
            rates["matmul_f32"] / 1e9,
            f"GFLOP/s with the library's default kernels (oneDNN {'on' if onednn else 'off'}; "
            "baseline: oneDNN off)",
            rates["matmul_f32_eigen"] / 1e9,
        )


# --------------------------------------------------------------------------------------------------
# Command line.


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks the script only")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated contenders")
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default 7; quick 2)")
    parser.add_argument("--steps", type=int, default=None, help="calls per block (default: auto)")
    parser.add_argument("--block_seconds", type=float, default=None, help="default 8; quick 0")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up calls (default 3)")
    parser.add_argument("--matmul_size", type=int, default=None, help="default 4096; quick 1024")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (both)")
    parser.add_argument("--profile_dir", default=None, help="write TF profiler traces here")
    parser.add_argument(
        "--op_profile",
        type=int,
        default=0,
        help="also profile this many alternate-step pairs op by op (0: no profile)",
    )
    parser.add_argument("--output", default=None, help=f"default bench/results/{RESULT_FILE}")
    parser.add_argument(
        QUALITY_FLAG,
        action="store_true",
        help="moved: runs `python -m bench.bench_bf16_quality` with the other arguments",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The speed benchmark's arguments with the --quick defaults filled in and checked."""
    parser = _parser()
    args = parser.parse_args(argv)
    common.fill_defaults(
        args,
        args.quick,
        {
            "repeats": (7, 2),
            "block_seconds": (8.0, 0.0),
            "warmup": (3, 0),
            "matmul_size": (4096, 1024),
        },
    )
    common.check_minimum(parser, args, 1, "repeats", "matmul_size", "steps")
    common.check_minimum(parser, args, 0, "warmup", "block_seconds", "op_profile")
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; expected some of {list(CASES)}")
    return args


def _forward_to_bf16_quality(argv: list[str]) -> list[dict[str, Any]]:
    """The old `--bf16_quality` command: runs bench.bench_bf16_quality with the other arguments."""
    from bench import bench_bf16_quality

    rest = [arg for arg in argv if arg != QUALITY_FLAG]
    print(f"note: {QUALITY_FLAG} moved to `python -m bench.bench_bf16_quality`; running that")
    return bench_bf16_quality.main(rest)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Runs the speed benchmark, prints it and writes the JSON records."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if QUALITY_FLAG in arguments:
        return _forward_to_bf16_quality(arguments)
    args = parse_args(arguments)
    records = _speed(args, arguments)
    common.report(args.output or common.default_output(RESULT_FILE, args.quick), records)
    return records


if __name__ == "__main__":
    main()
