"""Benchmark: wall time of a whole MNIST-10k study from scratch (issue 9 item 6, issue 15 item 5).

Runs ``rdc-experiment --preset=P --data_dir=... --workdir=... --seed=0`` as a child
process in an empty work directory (a previous directory made by this script is deleted first;
any other existing directory is refused), and records the wall time in minutes against the
preset's target (``ratio`` = minutes / target, at most 1 meets it): 20 minutes for the RDC study
``mnist10k`` (issue 9), 100 minutes for each perception study ``mnist10k-rdp`` /
``mnist10k-rdpc`` (issue 15). ``--base`` is passed on (``paper`` trains one universal family).
The study trains the reference classifier, the E2E grid, the multi-head base, the universal
heads, evaluates, plots and exports (rdc_keras/experiment.py).

``--quick`` runs a reduced study instead (1 epoch of 2 steps per model, 1 classifier epoch,
lambda_c grids {0, 0.015}) to check the script; its record is named
``study_wall_time[<preset>-reduced]`` so it can never pass for the real one.

Usage: python -m bench.bench_study [--quick] [--preset mnist10k-rdp --base paper]
    [--data_dir ../shared/data/mnist]
Writes bench/results/study.json (mnist10k) or study-<preset>.json (records: name, value, unit,
baseline, ratio, command, machine, date); with --quick into bench/runs/quick/results/ instead.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import subprocess
import sys
import time
from typing import Any

try:
    from bench import common
except ImportError:  # run as a script: python bench/bench_study.py
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from bench import common

__all__ = ["QUICK_FLAGS", "TARGET_MINUTES", "experiment_command", "main"]

TARGET_MINUTES = 20.0
# Wall-time target per preset (issue 15: each perception study within 100 minutes on 2 cores).
TARGETS = {"mnist10k": TARGET_MINUTES, "mnist10k-rdp": 100.0, "mnist10k-rdpc": 100.0}
QUICK_FLAGS = (
    "--epochs=1",
    "--steps_per_epoch=2",
    "--classifier_epochs=1",
    "--e2e_lambda_c=0,0.015",
    "--universal_lambda_c=0,0.015",
)
_MARKER = ".bench_study"


def experiment_command() -> list[str]:
    """`rdc-experiment` next to this interpreter (the installed console script), else the module."""
    script = pathlib.Path(sys.executable).parent / "rdc-experiment"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "rdc_keras.cli.experiment"]


def _fresh(workdir: pathlib.Path) -> None:
    """Empties a work directory this script made before; refuses to touch any other one."""
    if workdir.exists():
        if not (workdir / _MARKER).exists():
            raise SystemExit(
                f"--workdir={workdir} exists and was not made by bench_study; pass another one"
            )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / _MARKER).write_text("made by bench/bench_study.py; deleted on the next run\n")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Runs the study from scratch, prints its wall time and writes the JSON record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced study: checks the script")
    parser.add_argument("--data_dir", default=str(common.DEFAULT_DATA_DIR))
    parser.add_argument("--workdir", default=None, help="default bench/runs/study[-quick]")
    parser.add_argument("--output", default=None, help="default bench/results/study[-P].json")
    parser.add_argument("--preset", default="mnist10k", choices=sorted(TARGETS))
    parser.add_argument("--base", default="both", choices=("paper", "multihead", "both"))
    args = parser.parse_args(argv)
    if not (pathlib.Path(args.data_dir) / "t10k-images-idx3-ubyte.gz").exists():
        parser.error(f"--data_dir={args.data_dir}: no MNIST t10k IDX files there")
    suffix = "" if args.preset == "mnist10k" else f"-{args.preset}"
    default = f"bench/runs/study{suffix}-quick" if args.quick else f"bench/runs/study{suffix}"
    workdir = pathlib.Path(args.workdir or common.REPO_ROOT / default)
    _fresh(workdir)
    command = [
        *experiment_command(),
        f"--preset={args.preset}",
        f"--base={args.base}",
        f"--data_dir={args.data_dir}",
        f"--workdir={workdir}",
        "--seed=0",
        *(QUICK_FLAGS if args.quick else ()),
    ]
    print(" ".join(command), flush=True)
    start = time.perf_counter()
    completed = subprocess.run(command, check=False)
    minutes = (time.perf_counter() - start) / 60.0
    if completed.returncode:
        raise SystemExit(f"rdc-experiment failed with exit code {completed.returncode}")
    target = TARGETS[args.preset]
    name = f"study_wall_time[{args.preset}{'-reduced' if args.quick else ''}]"
    record = common.make_record(
        name,
        minutes,
        f"minutes (baseline: the {target:g}-minute target)",
        common.command_line("bench.bench_study", argv),
        target,
    )
    output = common.write_results(
        args.output or common.default_output(f"study{suffix}.json", args.quick), [record]
    )
    print(f"{name}: {minutes:.2f} minutes (target <= {target:g}); wrote {output}")
    return [record]


if __name__ == "__main__":
    main()
