"""Runs every benchmark of issue 9 in sequence and rewrites bench/BENCHMARKS.md (`make bench`).

Each benchmark runs as its own child process (`python -m bench.<script> ...`), one after the
other, never two at once. Afterwards the Markdown page is regenerated from every
`<results_dir>/*.json`: a table with one row per result the issue asks for ("not yet recorded"
until its JSON exists), the other recorded results, and a prose section per benchmark.

Order: the timing benchmarks first (train_step, inference, quantizer), then the study (item 6),
whose float32 lambda_c=0 model at 4.75 bits is reused by rate (item 5) when it exists, so it is
not trained again; bf16_quality (item 3) trains its own float32/bf16 twins for three seeds.

``--quick`` runs everything with tiny counts and a reduced study (a check of the scripts, a few
minutes) and writes into bench/runs/quick/ instead of bench/results/ and bench/BENCHMARKS.md,
so a check never passes for a recording.

Usage:
    python -m bench.run_all                       # everything (make bench)
    python -m bench.run_all --quick               # check every script
    python -m bench.run_all --only train_step,inference --scale 2
    python -m bench.run_all --markdown_only       # regenerate BENCHMARKS.md from the JSON
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

try:
    from bench import common
except ImportError:  # run as a script: python bench/run_all.py
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from bench import common

from rdc_keras.files import atomic_write
from rdc_keras.runs import RunDir

__all__ = ["BENCHMARKS", "EXPECTED_ROWS", "main", "render_markdown"]

RESULTS_DIR = common.REPO_ROOT / "bench" / "results"
MARKDOWN = common.REPO_ROOT / "bench" / "BENCHMARKS.md"
QUICK_DIR = common.REPO_ROOT / "bench" / "runs" / "quick"
STUDY_F32_RUN = pathlib.Path("e2e") / "d3-L3" / "c0"  # the study's float32 lambda_c=0 model
NOT_RECORDED = "not yet recorded"


@dataclasses.dataclass(frozen=True)
class Context:
    """Where one invocation of run_all writes, and how it scales repetitions."""

    quick: bool
    scale: float
    results_dir: pathlib.Path
    work_root: pathlib.Path
    data_dir: str

    def repeats(self, default: int) -> str:
        return str(max(1, math.ceil(default * self.scale)))

    @property
    def study_dir(self) -> pathlib.Path:
        return self.work_root / ("study-quick" if self.quick else "study")

    def study_run(self) -> pathlib.Path | None:
        run = self.study_dir / STUDY_F32_RUN  # relative to the repository root, as commands run
        return run if RunDir(common.REPO_ROOT / run).is_finished() else None


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """One script of the suite: its module, result file and arguments."""

    key: str
    module: str
    output: str
    title: str
    arguments: Callable[[Context], list[str]]

    def command(self, context: Context) -> list[str]:
        output = _relative(context.results_dir / self.output)
        return [sys.executable, "-m", self.module, *self.arguments(context), f"--output={output}"]


def _train_step_args(c: Context) -> list[str]:
    return ["--quick"] * c.quick + ["--repeats", c.repeats(2 if c.quick else 7)]


def _inference_args(c: Context) -> list[str]:
    return ["--quick"] * c.quick + [
        "--repeats",
        c.repeats(2 if c.quick else 7),
        f"--data_dir={c.data_dir}",
        f"--workdir={c.work_root / 'inference'}",
    ]


def _quantizer_args(c: Context) -> list[str]:
    return ["--repeats", c.repeats(3 if c.quick else 21), "--calls", "20" if c.quick else "200"]


def _study_args(c: Context) -> list[str]:
    return ["--quick"] * c.quick + [f"--data_dir={c.data_dir}", f"--workdir={c.study_dir}"]


def _perception_study_args(preset: str) -> Callable[[Context], list[str]]:
    """bench_study flags of a perception preset (paper base only: the 100-minute budget)."""

    def args(c: Context) -> list[str]:
        workdir = c.work_root / (f"study-{preset}-quick" if c.quick else f"study-{preset}")
        return ["--quick"] * c.quick + [
            f"--preset={preset}",
            "--base=paper",
            f"--data_dir={c.data_dir}",
            f"--workdir={workdir}",
        ]

    return args


def _rate_args(c: Context) -> list[str]:
    args = ["--configs=3x3", f"--data_dir={c.data_dir}", f"--workdir={c.work_root / 'rate'}"]
    run = c.study_run()
    if run is not None:
        return [*args, f"--run=3x3={run}"]
    return args + (["--epochs=1", "--steps_per_epoch=2"] if c.quick else [])


def _stacks_args(c: Context) -> list[str]:
    return ["--quick"] * c.quick + [
        f"--data_dir={c.data_dir}",
        f"--workdir={c.work_root / 'stacks'}",
    ]


GAN_STEP_CASES = (
    "tf_alternate,tf_alternate_eigen,tf_alternate_concat,tf_alternate_inter1,tf_alternate_bf16,"
    "tf_joint,tf_rdc,tf_rdc_eigen,tf_rdc_phase2,torch_alternate,torch_alternate_cl,"
    "matmul_f32,matmul_f32_eigen,matmul_bf16"
)


def _gan_step_args(c: Context) -> list[str]:
    return ["--quick"] * c.quick + [
        f"--cases={GAN_STEP_CASES}",
        "--repeats",
        c.repeats(2 if c.quick else 5),
        "--block_seconds=6",
        "--op_profile",
        "2" if c.quick else "20",
    ]


def _kernel_quality_args(c: Context) -> list[str]:
    args = [f"--data_dir={c.data_dir}", f"--workdir={c.work_root / 'kernel_quality'}"]
    return ["--quick"] * c.quick + args


def _bf16_quality_args(c: Context) -> list[str]:
    args = [f"--data_dir={c.data_dir}", f"--workdir={c.work_root / 'bf16_quality'}"]
    return ["--quick"] * c.quick + args


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        "train_step",
        "bench.bench_train_step",
        "train_step.json",
        "Training step vs PyTorch, FLOP utilization, bf16 and other levers (items 1-3)",
        _train_step_args,
    ),
    Benchmark(
        "gan_step",
        "bench.bench_train_step",
        "gan_step.json",
        "The GAN alternate step: peak, utilisation per step kind, levers, op profile (issue 18)",
        _gan_step_args,
    ),
    Benchmark(
        "kernel_quality",
        "bench.bench_kernel_quality",
        "kernel_quality.json",
        "Trained GAN models with oneDNN vs Eigen kernels (issue 18)",
        _kernel_quality_args,
    ),
    Benchmark(
        "inference",
        "bench.bench_inference",
        "inference.json",
        "Inference throughput and latency of the exported SavedModels (item 4)",
        _inference_args,
    ),
    Benchmark(
        "quantizer",
        "bench.bench_quantizer",
        "quantizer.json",
        "Quantizer forward+backward (issue 4)",
        _quantizer_args,
    ),
    Benchmark(
        "study",
        "bench.bench_study",
        "study.json",
        "Whole MNIST-10k study wall time (item 6)",
        _study_args,
    ),
    Benchmark(
        "study_rdp",
        "bench.bench_study",
        "study-mnist10k-rdp.json",
        "MNIST-10k perception study wall time (issue 15)",
        _perception_study_args("mnist10k-rdp"),
    ),
    Benchmark(
        "study_rdpc",
        "bench.bench_study",
        "study-mnist10k-rdpc.json",
        "MNIST-10k perception + classification study wall time (issue 15)",
        _perception_study_args("mnist10k-rdpc"),
    ),
    Benchmark(
        "rate",
        "bench.bench_rate",
        "rate.json",
        "Entropy coding saving (item 5)",
        _rate_args,
    ),
    Benchmark(
        "bf16_quality",
        "bench.bench_bf16_quality",
        "train_bf16_quality.json",
        "bf16 training quality (item 3)",
        _bf16_quality_args,
    ),
    Benchmark(
        "stacks",
        "bench.bench_stacks",
        "stacks.json",
        "Train-step and inference rows on each supported stack (issue 17)",
        _stacks_args,
    ),
)


# --------------------------------------------------------------------------------------------------
# The table.


@dataclasses.dataclass(frozen=True)
class ExpectedRow:
    """A result the issue asks for: matched by exact name, or by prefix when ending in '['."""

    item: str
    match: str
    target: str
    meets: Callable[[Mapping[str, Any]], bool] | None = None

    def matches(self, name: str) -> bool:
        return name == self.match or (self.match.endswith("[") and name.startswith(self.match))


def _ratio_at_least(bound: float) -> Callable[[Mapping[str, Any]], bool]:
    return lambda r: r["ratio"] is not None and r["ratio"] >= bound


EXPECTED_ROWS: tuple[ExpectedRow, ...] = (
    ExpectedRow("1", "train_step_vs_pytorch[joint]", "ratio >= 1.5", _ratio_at_least(1.5)),
    ExpectedRow("1", "train_step_vs_pytorch[alternate]", "ratio >= 1.5", _ratio_at_least(1.5)),
    ExpectedRow("2", "train_step_flop_utilization", "ratio >= 0.80", _ratio_at_least(0.80)),
    ExpectedRow("3", "train_step_bf16_speedup", "ratio >= 1.3", _ratio_at_least(1.3)),
    ExpectedRow(
        "3",
        "train_bf16_test_mse[",
        "ratio within 0.98-1.02",
        lambda r: r["ratio"] is not None and abs(r["ratio"] - 1.0) <= 0.02,
    ),
    ExpectedRow("3 (lever)", "train_step_jit_compile_speedup", "reported"),
    ExpectedRow("3 (lever)", "train_step_tfdata_prefetch_vs_in_memory", "reported"),
    ExpectedRow("3 (context)", "matmul_peak_bf16_vs_f32", "reported"),
    ExpectedRow("2 (context)", "train_step_flop_utilization[alternate]", "reported"),
    ExpectedRow("2 (context)", "train_step_flop_utilization[rdc]", "reported"),
    ExpectedRow("2 (context)", "train_step_flop_utilization[rdc_phase2]", "reported"),
    ExpectedRow("3 (lever)", "phase2_latent_cache_max_saving", "reported"),
    ExpectedRow("4", "inference_throughput[batch=1]", "ratio >= 0.70", _ratio_at_least(0.70)),
    ExpectedRow("4", "inference_throughput[batch=64]", "ratio >= 0.70", _ratio_at_least(0.70)),
    ExpectedRow("4", "inference_throughput[batch=1024]", "ratio >= 0.70", _ratio_at_least(0.70)),
    ExpectedRow("4", "inference_latency_p50[batch=1]", "ratio >= 0.70", _ratio_at_least(0.70)),
    ExpectedRow("4", "inference_latency_p99[batch=1]", "ratio >= 0.70", _ratio_at_least(0.70)),
    ExpectedRow("4 (lever)", "head_batch_norm_folding_speedup[batch=64]", "reported"),
    ExpectedRow(
        "5",
        "entropy_coding_saving[",
        "value >= 0.10",
        lambda r: r["value"] is not None and r["value"] >= 0.10,
    ),
    ExpectedRow(
        "6",
        "study_wall_time[mnist10k]",
        "value <= 20 min",
        lambda r: r["value"] is not None and r["value"] <= 20.0,
    ),
    ExpectedRow(
        "15",
        "study_wall_time[mnist10k-rdp]",
        "value <= 100 min",
        lambda r: r["value"] is not None and r["value"] <= 100.0,
    ),
    ExpectedRow(
        "15",
        "study_wall_time[mnist10k-rdpc]",
        "value <= 100 min",
        lambda r: r["value"] is not None and r["value"] <= 100.0,
    ),
    ExpectedRow("17", "stack[", "reported (ratio: new stack / old, same run)"),
    ExpectedRow(
        "18", "train_step_flop_utilization[alternate]", "ratio >= 0.75", _ratio_at_least(0.75)
    ),
    ExpectedRow("18", "train_step_vs_pytorch[alternate]", "ratio >= 1.4", _ratio_at_least(1.4)),
    ExpectedRow("18", "train_step_bf16_speedup[alternate]", "ratio >= 1.5", _ratio_at_least(1.5)),
    ExpectedRow(
        "18 (lever)",
        "gan_step_lever[",
        "kept if ratio > 1.02",
        lambda r: r["ratio"] is not None and r["ratio"] > 1.02,
    ),
    ExpectedRow("18 (lever)", "rdc_step_lever[", "reported"),
    ExpectedRow("18 (context)", "matmul_peak_f32_default_vs_eigen", "reported"),
    ExpectedRow(
        "18 (quality)",
        "kernel_quality_mse[",
        "reported per seed (a GAN diverges on any rounding change)",
    ),
    ExpectedRow("18 (quality)", "kernel_quality_mse_same_seed_spread[", "reported"),
    ExpectedRow("18 (quality)", "kernel_quality_mse_seed_spread[", "reported"),
    ExpectedRow(
        "18 (quality)",
        "kernel_quality_mse_mean[",
        "ratio within the seed spread",
    ),
    ExpectedRow(
        "18 (profile)",
        "gan_step_profile_op_time_vs_wall",
        "reported (table: where the GAN step's time goes)",
    ),
)


def _derived(results: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """entropy_coding_saving = 1 - payload bits / (d log2 L), from bench_rate's 4.75-bit rows:
    the smallest payload over the coding methods (what `codec.compress(method="auto")` picks)."""
    best: dict[str, Mapping[str, Any]] = {}
    for record in results.get("rate", []):
        name = record.get("name", "")
        if name.startswith("payload_bits_per_image[") and "-d3-L3," in name and record["ratio"]:
            config = name[len("payload_bits_per_image[") : -1].rsplit(",", 1)[0]
            if config not in best or record["ratio"] < best[config]["ratio"]:
                best[config] = record
    return [
        {
            **record,
            "name": f"entropy_coding_saving[{record['name'][len('payload_bits_per_image[') : -1]}]",
            "value": 1.0 - record["ratio"],
            "unit": "fraction of d*log2(L) saved (derived from rate.json)",
            "baseline": None,
            "ratio": None,
        }
        for record in best.values()
    ]


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _row(
    item: str,
    record: Mapping[str, Any] | None,
    name: str,
    target: str,
    meets,
    machine: str = "",
) -> str:
    if record is None:
        cells = [item, f"`{name}`", NOT_RECORDED, "", "", "", target, "", "", ""]
    else:
        status = "" if meets is None else ("met" if meets(record) else "missed")
        cells = [
            item,
            f"`{record['name']}`",
            _fmt(record["value"]),
            _cell(record["unit"] or ""),
            _fmt(record["baseline"]),
            _fmt(record["ratio"]),
            target + (f" ({status})" if status else ""),
            machine,
            record["date"] or "",
            f"`{_cell(record['command'] or '')}`",
        ]
    return "| " + " | ".join(cells) + " |"


_HEADER = (
    "| item | result | value | unit | baseline | ratio | target | machine | date | command |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)

_PROSE = """\
## How to read and reproduce

`make bench` installs the `bench` extra (torch 2.13.0, CPU) and runs `python -m bench.run_all`:
every benchmark below as its own process, one after the other, then this page is regenerated
from `bench/results/*.json`. Each record has the keys `name, value, unit, baseline, ratio,
command, machine, date`; `ratio` is value / baseline unless the unit says otherwise (latency:
baseline / value, so 1.0 is the ceiling everywhere). Timings interleave their contenders in
rotated rounds (no contender always runs first) and report medians; the machine is shared, so
run it when it is quiet. `python -m bench.run_all --quick` checks every script in a few minutes
and writes into `bench/runs/quick/` instead of here. `--only`/`--skip` select benchmarks and
`--scale` multiplies the repetitions; `--markdown_only` only regenerates this page.

## Training step vs PyTorch (items 1-3): `python -m bench.bench_train_step`

*Measured*: images/s of our phase-1 MNIST step (`RDCTrainer.train_step`, `schedule="joint"`,
built by `rdc_keras.trainers.build.build_trainer` from the mnist preset: batch 64, d=3, L=3,
Adam lrs/betas from `rdc_keras.config.preset_defaults("mnist")`, GP weight 10, lambda_c =
lambda_p = 0.015): one encoder/decoder forward reused by one critic update with gradient
penalty, one joint-classifier update and one generator update. The baseline is the same networks
and step in PyTorch (`bench/torch_reference.py`, written from the reference-code digest
§1.1/§1.4/§3.1; parameter counts 585,097 / 326,465 / 1,030,145 / 19,880). The paper's schedule
(critic and generator on alternate batches, no classifier) is measured the same way. Both run
float32 on the same 16 fixed random batches, each framework in its own worker process
(`bench/train_step_workers.py`; their thread pools never compete); TF keeps its default intra-op
pool (the schedulable cores) and PyTorch gets `torch.set_num_threads` of the same number.
Contenders run in blocks of about 8 s, 7 rotated rounds, median. The PyTorch baseline is the
faster of its default NCHW layout and `channels_last` (named in the unit).

*FLOP utilization*: FLOPs per image counted analytically per Dense/Conv2D/Conv2DTranspose layer
(2 x MACs; `bench.common.train_step_flops` documents the formula: forward f, weight gradient f,
input gradient f per layer, the first layer's input gradient only when needed; the critic update
costs 10F - 2 first - last per image, because the gradient penalty adds a forward at the
interpolate, its input gradient and a double backward of 2F - last) times images/s, over the
median float32 `tf.linalg.matmul` FLOP/s (4096 x 4096) measured in the same rounds. The TF
profiler's float_operation count is not used (it overstates conv backward passes).

*Levers tried*, each a contender of the same run: `mixed_bfloat16` (the bf16 speedup row;
`matmul_peak_bf16_vs_f32` tells whether the CPU has fast bf16 at all: check `machine` for
avx512_bf16), `jit_compile=True`, tf.data (`from_tensor_slices`, batch, repeat,
`prefetch(AUTOTUNE)` through Keras' train function) vs pre-made in-memory batches; retracing is
checked (every printed trace count must be 1); the generator forward is reused between the
critic and generator updates by design in the joint schedule; the networks are channels-last
(NHWC) already. `--profile_dir DIR` writes TF profiler traces of every TF contender for finding
where the time goes. Caching the frozen encoder's latents for universal heads can save at most
the encoder's forward pass: `phase2_latent_cache_max_saving` is the frozen encoder's inference
forward time over the time of a whole phase-2 step (`tf_encoder_forward` vs `tf_rdc_phase2`,
same rounds). `tf_rdc` and `tf_rdc_phase2` are the RDC-only steps (lambda_p = 0, frozen
pretrained classifier, lambda_c = 0.015) that every model of `rdc-experiment` trains with; their
FLOP utilizations (`bench.common.rdc_step_flops`) explain the study's wall time.

## The GAN step near the peak (issue 18): `python -m bench.run_all --only gan_step`

The same benchmark (`bench.bench_train_step`) with the issue-18 contenders, each TensorFlow
setting in its own worker process: `tf` runs the library's defaults (`import rdc_keras` before
TensorFlow, so oneDNN is on; `onednn` in the worker info says what TensorFlow really runs),
`tf_eigen` the same cases with `TF_ENABLE_ONEDNN_OPTS=0`, `tf_inter1` with one inter-op thread.
The float32 peak is the faster of the oneDNN and Eigen 4096² matmuls of the same rounds
(`matmul_peak_f32_default_vs_eigen` shows both), so the utilisation rows of every step kind (GAN
joint, GAN alternate, RDC, phase-2 head) are over the best matmul this TensorFlow has on this
machine. Levers, each a contender of the same rounds (`gan_step_lever[...]`, ratio = speedup):
oneDNN vs Eigen kernels (also on the RDC step), one critic call on the concatenated
real/fake/interpolate batch (`train_step_workers._concatenated_critic_update`: the same
update, tested against the trainer's), one inter-op thread, and `mixed_bfloat16`. `--op_profile N`
profiles N alternate pairs in the `tf_inter1` worker: the critic and generator turns run as two
`tf.function`s under the TF profiler, and `bench/gan_profile.py` sums the executor threads' op
durations by the name scopes the trainer puts on each piece (`reconstruct`, `critic_scores`,
`gradient_penalty`, `generator_critic`, the optimizers' `Adam`); with one inter-op thread the op
durations add up to the wall time (`gan_step_profile_op_time_vs_wall`), so the shares are of
the step. `python -m bench.bench_kernel_quality` trains the MNIST-10k perception model
(alternate, lambda_p = 0.015, 3 epochs) with oneDNN and with Eigen kernels for four seeds, plus a
second oneDNN run of seed 0 (the same-seed spread), with one judge.

## bf16 training quality (item 3): `python -m bench.bench_bf16_quality`

`python -m bench.bench_bf16_quality --seeds=0,1,2` trains the MNIST-10k
lambda_c=0 model (30 epochs, the study's E2E settings) in float32 and in `mixed_bfloat16` for each
seed, with one judge; the row compares the mean test MSEs (target within 2%) and each seed's pair is
listed under the other results. Several seeds, because two float32 runs with the same settings and
seed ended 1.1% apart on this CPU (0.04690 in the study, 0.04640 in this benchmark; threaded oneDNN
reductions are not bitwise reproducible). `--float32_run=DIR` compares one bf16 twin with a finished
float32 run instead (its configuration read back from its config.json). On a CPU without native
bf16 this training is many times slower than float32. The older command
`python -m bench.bench_train_step --bf16_quality ...` (recorded in the table) forwards here.

## Inference (item 4): `python -m bench.bench_inference`

*Measured*: an exported encoder and head (`rdc-export` layout) loaded with
`tf.saved_model.load` and called through their `serving_default` signatures, image -> indices ->
image (output fetched as numpy), on in-memory tensors: images/s at batch 1, 64 and 1024 and the
p50/p99 latency of one image. The ceiling is the float32 matmul FLOP/s measured in the same
rounds divided by the encoder + decoder forward FLOPs per image. Without `--export` the script
exports a one-step MNIST-10k run (the weights do not change the cost), twice: with each head's
BatchNorm folded into the preceding layer (the `rdc-export` default) and as trained; the head
alone is timed both ways at batch 64 in the same rounds (`head_batch_norm_folding_speedup`).

## Quantizer (issue 4): `python -m bench.bench_quantizer`

Forward + backward of UniformQuantizer(3) on a 64 x 3 batch (issue 4), with the universal
quantizer plus dither, an identity straight-through estimator and an empty `tf.function` (the
per-call dispatch floor) printed for context.

## Entropy coding saving (item 5): `python -m bench.bench_rate --configs=3x3`

1 - payload bits / (d log2 L) of the whole MNIST-10k test split compressed into one `.rdc` file
at d=3, L=3 (4.75 bits), derived from `bench_rate.py`'s `payload_bits_per_image` row (its file
rows are listed below). `run_all` passes the study's float32 lambda_c=0 run with `--run` when it
exists, so nothing is trained twice.

## Study wall time (item 6): `python -m bench.bench_study`

`rdc-experiment --preset=mnist10k` from an empty work directory, wall time in minutes against
the 20-minute target. `--quick` runs a reduced study (1 epoch of 2 steps per model) whose row is
named `study_wall_time[mnist10k-reduced]`.

## Perception study wall time (issue 15): `python -m bench.bench_study --preset=mnist10k-rdp`

`rdc-experiment --preset=mnist10k-rdp --base=paper` (E2E over lambda_p in {0, .005, .01, .015},
universal heads on the lambda_p = .015 encoder at {0, .005, .01}; 8 epochs, float32, the paper's
alternating critic/generator schedule, a 300-step held-out W1 judge) from an empty work
directory, against the 100-minute budget. float32 because mixed_bfloat16 was measured 9x slower
on the machine it ran on (an EPYC without avx512_bf16, where bf16 is emulated).

`--preset=mnist10k-rdpc` (the poster's "with Wasserstein regularisation" slice): E2E and
universal heads over lambda_c in {0, .0066, .015} at a fixed lambda_p = .01 (universal heads on
the lambda_c = .015, lambda_p = .01 encoder), same settings, same budget.

## Stacks (issue 17): `python -m bench.bench_stacks`

The train-step rows (float32 joint/alternate/RDC/phase-2 steps, mixed_bfloat16, both matmul
peaks; 3 rounds per run) and the inference rows (3 rounds) once per supported stack
(`.venv`: Python 3.11 + TF 2.14; `.venv-3.12`: Python 3.12 + TF 2.17 + tf-keras), each in its
own interpreter, the stacks' order rotated between rounds (2 rounds by default). A
`stack[<row>]@<stack>` row gives that stack's median as value and the Python 3.11 stack's median
as baseline: ratio > 1 is faster for rates and utilisation (slower for latency rows). Both stacks
load the same export, written by the first run.
"""


def render_markdown(
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    source: str = "bench/results",
    quick: bool = False,
) -> str:
    """BENCHMARKS.md from {file stem: records}: expected rows, other rows, machines, prose."""
    records = [r for stem in sorted(results) for r in results[stem]] + _derived(results)
    lines = ["# Benchmarks", ""]
    lines.append(
        f"Generated by `python -m bench.run_all` from `{source}/*.json`; do not edit by "
        f'hand. Rows marked "{NOT_RECORDED}" have no result file yet.'
    )
    if quick:
        lines += [
            "",
            "**Check run (`--quick`): tiny repetition counts and a reduced study. These numbers "
            "only show that the scripts work; they are not recordings.**",
        ]
    machines = sorted({r.get("machine") or "" for r in records} - {""})
    label = {m: f"M{i}" for i, m in enumerate(machines, 1)}

    def machine_of(record: Mapping[str, Any]) -> str:
        return label.get(record.get("machine") or "", "")

    lines += ["", "## Results (issue 9)", "", _HEADER]
    used: set[int] = set()
    for row in EXPECTED_ROWS:
        found = [r for r in records if row.matches(r.get("name", ""))]
        used.update(id(r) for r in found)
        if not found:
            lines.append(_row(row.item, None, row.match.rstrip("["), row.target, None))
        for record in found:
            lines.append(
                _row(row.item, record, record["name"], row.target, row.meets, machine_of(record))
            )
    # The profile's rows have a table of their own (`_profile_table`).
    others = [r for r in records if id(r) not in used and not r["name"].startswith(PROFILE_PREFIX)]
    if others:
        lines += ["", "## Other recorded results", "", _HEADER]
        lines += [_row("", r, r["name"], "", None, machine_of(r)) for r in others]
    lines += _profile_table(records, machine_of)
    if machines:
        lines += ["", "Machines (the CPU differs between sessions: compare ratios, not times):", ""]
        lines += [f"- {label[m]}: {m}" for m in machines]
    lines += ["", _PROSE]
    return "\n".join(lines).rstrip() + "\n"


PROFILE_PREFIX = "gan_step_profile["


def _profile_table(records: Sequence[Mapping[str, Any]], machine_of) -> list[str]:
    """The GAN step's per-op profile (issue 18) as a short table: piece, ms per pair, share."""
    rows = [r for r in records if r.get("name", "").startswith(PROFILE_PREFIX)]
    if not rows:
        return []
    lines = [
        "",
        "## Where the GAN step's time goes (issue 18)",
        "",
        f"One critic + generator pair of the alternate step, float32, batch 64, profiled op by op "
        f"(`bench/gan_profile.py`; machine {machine_of(rows[0])}, {rows[0]['date']}; "
        f"`{_cell(rows[0]['command'] or '')}`):",
        "",
        "| turn | piece | ms per pair | share of op time |",
        "|---|---|---|---|",
    ]
    for record in rows:
        turn, _, piece = record["name"][len(PROFILE_PREFIX) : -1].partition(": ")
        lines.append(
            f"| {turn} | {_cell(piece)} | {record['value']:.1f} | {100 * record['ratio']:.1f} % |"
        )
    total = rows[0]["baseline"]
    lines.append(f"| | all ops | {total:.1f} | 100 % |")
    return lines


def _relative(path: str | pathlib.Path) -> str:
    """path relative to the repository root when that is shorter (commands stay portable)."""
    absolute = pathlib.Path(path).resolve()
    try:
        relative = os.path.relpath(absolute, common.REPO_ROOT)
    except ValueError:  # another drive (Windows)
        return str(path)
    return relative if len(relative) < len(str(absolute)) else str(absolute)


def write_markdown(results_dir: pathlib.Path, path: pathlib.Path, quick: bool) -> pathlib.Path:
    """Regenerates the Markdown page from the JSON results in results_dir."""
    results = common.read_results(results_dir)
    atomic_write(path, render_markdown(results, _relative(results_dir), quick))
    return path


# --------------------------------------------------------------------------------------------------
# Command line.


def _select(only: str | None, skip: str | None) -> list[Benchmark]:
    keys = [b.key for b in BENCHMARKS]
    chosen = [k.strip() for k in only.split(",") if k.strip()] if only else list(keys)
    skipped = [k.strip() for k in skip.split(",") if k.strip()] if skip else []
    unknown = [k for k in chosen + skipped if k not in keys]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; expected some of {keys}")
    return [b for b in BENCHMARKS if b.key in chosen and b.key not in skipped]


def main(argv: list[str] | None = None) -> int:
    """Runs the selected benchmarks one at a time, then rewrites the Markdown page."""
    keys = ", ".join(b.key for b in BENCHMARKS)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts, output in runs/quick")
    parser.add_argument("--only", default=None, help=f"comma-separated subset of: {keys}")
    parser.add_argument("--skip", default=None, help="comma-separated benchmarks to leave out")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the repetitions")
    parser.add_argument("--data_dir", default=str(common.DEFAULT_DATA_DIR))
    parser.add_argument("--results_dir", default=None, help="default bench/results")
    parser.add_argument("--markdown", default=None, help="default bench/BENCHMARKS.md")
    parser.add_argument("--markdown_only", action="store_true", help="only rewrite the page")
    args = parser.parse_args(argv)
    if not args.scale > 0:
        parser.error(f"--scale must be > 0, got {args.scale}")
    results_dir = pathlib.Path(
        args.results_dir or (QUICK_DIR / "results" if args.quick else RESULTS_DIR)
    )
    markdown = pathlib.Path(
        args.markdown or (QUICK_DIR / "BENCHMARKS.md" if args.quick else MARKDOWN)
    )
    context = Context(
        quick=args.quick,
        scale=args.scale,
        results_dir=results_dir,
        work_root=pathlib.Path(
            _relative(QUICK_DIR if args.quick else common.REPO_ROOT / "bench" / "runs")
        ),
        data_dir=_relative(args.data_dir),
    )
    failed = []
    if not args.markdown_only:
        selected = _select(args.only, args.skip)
        print(f"machine: {common.machine()}", flush=True)
        for benchmark in selected:
            command = benchmark.command(context)  # built now: it may depend on earlier results
            print(f"\n=== {benchmark.key}: {' '.join(command)}", flush=True)
            start = time.perf_counter()
            code = subprocess.run(command, cwd=common.REPO_ROOT, check=False).returncode
            minutes = (time.perf_counter() - start) / 60.0
            print(f"=== {benchmark.key}: exit code {code} after {minutes:.1f} min", flush=True)
            if code:
                failed.append(benchmark.key)
    path = write_markdown(results_dir, markdown, args.quick)
    print(f"\nwrote {path}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
