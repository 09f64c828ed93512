"""Benchmark: the same benchmarks on each supported stack, in rotated rounds (issue 17, item 5).

Runs a benchmark script (`bench.bench_train_step`, `bench.bench_inference`) once per stack and
round, each run in its own interpreter (`--python`, one per stack; the first is the baseline),
the stacks' order rotated from round to round so that neither always runs first. Every run
measures its own float32 matmul peak, so utilisation rows compare within a run; the rates compare
across stacks through the median over rounds. Output records, one per row of the inner
benchmark present on every stack: `stack[<row>]@<stack>`, value = that stack's median, baseline =
the baseline stack's median, ratio = value / baseline (for latency rows lower is better).

Usage: python -m bench.bench_stacks [--quick] [--rounds 2] [--python .venv/bin/python ...]
Writes bench/results/stacks.json (with --quick into bench/runs/quick/results/).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

try:
    from bench import common
except ImportError:  # run as a script: python bench/bench_stacks.py
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from bench import common
from bench.train_step_workers import worker_env  # quiet TF, the repository on PYTHONPATH

__all__ = ["BENCHMARKS", "build_records", "main", "stack_name"]

RESULT_FILE = "stacks.json"
DEFAULT_PYTHONS = (".venv/bin/python", ".venv-3.12/bin/python")
# benchmark -> (module, arguments of a full run, arguments of a --quick run)
TRAIN_CASES = "tf_joint,tf_alternate,tf_rdc,tf_rdc_phase2,tf_joint_bf16,matmul_f32,matmul_bf16"
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "train_step": (
        "bench.bench_train_step",
        [f"--cases={TRAIN_CASES}", "--repeats=3"],
        ["--quick", "--cases=tf_joint,matmul_f32"],
    ),
    "inference": ("bench.bench_inference", ["--repeats=3"], ["--quick", "--batches=1,64"]),
}


def stack_name(python: str) -> str:
    """`rdc_keras.tfkeras.stack_name()` as seen by another interpreter (run in a subprocess)."""
    code = "from rdc_keras.tfkeras import stack_name; print(stack_name())"
    try:
        result = subprocess.run(
            [python, "-c", code],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=common.REPO_ROOT,
            env=worker_env(),
        )
    except OSError as error:
        raise SystemExit(f"--python={python}: does not run ({error.strerror})") from None
    if result.returncode != 0:
        raise SystemExit(f"--python={python}: does not run ({result.stderr.strip()[-200:]})")
    return result.stdout.strip().splitlines()[-1]


def _run(python: str, module: str, args: Sequence[str], output: pathlib.Path) -> list[dict]:
    command = [python, "-m", module, *args, f"--output={output}"]
    print(f"$ {' '.join(command)}", flush=True)
    subprocess.run(command, check=True, cwd=common.REPO_ROOT, env=worker_env())
    return json.loads(output.read_text())


def _unit(inner_unit: str, name: str, baseline_stack: str, benchmark: str) -> str:
    """The inner row's unit without its own baseline note, plus this comparison's baseline."""
    unit = re.sub(r"\s*\(baseline:[^)]*\)", "", inner_unit).strip()
    better = "; lower is better" if "latency" in name else ""
    return f"{unit} (baseline: {baseline_stack}; {benchmark}{better})"


def build_records(
    runs: dict[str, dict[str, list[list[dict[str, Any]]]]], stacks: Sequence[str], command: str
) -> list[dict[str, Any]]:
    """{benchmark: {stack: [records of each round]}} -> the `stack[...]` records."""
    records = common.Records(command)
    baseline_stack = stacks[0]
    for benchmark, by_stack in runs.items():
        medians: dict[str, dict[str, float]] = {}
        units: dict[str, str] = {}
        for stack in stacks:
            values: dict[str, list[float]] = {}
            for round_records in by_stack[stack]:
                for record in round_records:
                    if record["value"] is not None:
                        values.setdefault(record["name"], []).append(record["value"])
                        units[record["name"]] = record["unit"]
            medians[stack] = {name: common.median(v) for name, v in values.items()}
        shared = [n for n in medians[baseline_stack] if all(n in medians[s] for s in stacks)]
        for name in shared:
            for stack in stacks[1:]:
                records.add(
                    f"stack[{name}]@{stack}",
                    medians[stack][name],
                    _unit(units[name], name, baseline_stack, benchmark),
                    medians[baseline_stack][name],
                )
    return records.records


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks the script only")
    parser.add_argument("--python", action="append", help="one interpreter per stack (repeat)")
    parser.add_argument("--benchmarks", default=",".join(BENCHMARKS))
    parser.add_argument("--rounds", type=int, default=None, help="default 2; quick 1")
    parser.add_argument("--data_dir", default=str(common.DEFAULT_DATA_DIR))
    parser.add_argument("--workdir", default=str(common.REPO_ROOT / "bench/runs/stacks"))
    parser.add_argument("--output", default=None, help=f"default bench/results/{RESULT_FILE}")
    arguments = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(arguments)
    common.fill_defaults(args, args.quick, {"rounds": (2, 1)})
    common.check_minimum(parser, args, 1, "rounds")
    benchmarks = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    unknown = sorted(set(benchmarks) - set(BENCHMARKS))
    if unknown:
        parser.error(f"--benchmarks: unknown {unknown}; expected some of {sorted(BENCHMARKS)}")
    pythons = args.python or [str(common.REPO_ROOT / p) for p in DEFAULT_PYTHONS]
    if len(pythons) < 2:
        parser.error("--python: give one interpreter per stack, at least two")
    stacks = [stack_name(python) for python in pythons]
    if len(set(stacks)) != len(stacks):
        parser.error(f"--python: two interpreters run the same stack {stacks}")
    output = pathlib.Path(args.output or common.default_output(RESULT_FILE, args.quick))
    workdir = pathlib.Path(args.workdir)
    runs: dict[str, dict[str, list[list[dict[str, Any]]]]] = {
        b: {s: [] for s in stacks} for b in benchmarks
    }
    raw = workdir / "runs"  # every inner run's records, kept beside the work (not committed)
    raw.mkdir(parents=True, exist_ok=True)
    for round_index in range(args.rounds):
        shift = round_index % len(pythons)
        order = list(range(len(pythons)))[shift:] + list(range(len(pythons)))[:shift]
        for benchmark in benchmarks:
            module, full, quick = BENCHMARKS[benchmark]
            inner = list(quick if args.quick else full)
            if benchmark == "inference":  # one export, written by the first run, for all
                inner += [f"--data_dir={args.data_dir}", f"--workdir={workdir / 'inference'}"]
            for i in order:
                path = raw / f"{benchmark}-{round_index}-{stacks[i]}.json"
                runs[benchmark][stacks[i]].append(_run(pythons[i], module, inner, path))
    records = build_records(runs, stacks, common.command_line("bench.bench_stacks", argv))
    common.report(output, records)
    return records


if __name__ == "__main__":
    main()
