"""A study as a plan: its models, where each is trained, what each depends on, how to run them.

One study (`rdc_keras.studies.StudyConfig`) is a set of independent trainings tied by two kinds
of dependency: every training is scored by (and the RDC ones are trained against) the reference
classifier, and a universal head is trained on the frozen encoder of its base model (the paper
base is one E2E model; the multi-head base is its own joint training). The report depends on
every model. This module owns the names of the models (`classifier`, the head name of each
training, `multihead` for the multi-head base, `report`; `<name>@seed<S>` on a study's further
seeds), their directories in the study (a further seed's under `seed-<S>/`) and their
dependencies, and writes the plan as JSON lines and as ready shell and Slurm scripts, so that a
cluster's own scheduler runs the models (`rdc-experiment --model=NAME`), not this package.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import shlex
from collections.abc import Sequence
from typing import Any

from rdc_keras import runs
from rdc_keras.studies import BASES, StudyConfig

__all__ = [
    "CLASSIFIER",
    "CLASSIFIER_DIR",
    "REPORT",
    "Job",
    "claim_path",
    "entries",
    "jobs",
    "json_lines",
    "label",
    "model_name",
    "seed_root",
    "shell_script",
    "slurm_script",
    "waves",
]

CLASSIFIER = "classifier"
"""Plan name of the reference classifier (trained once, the judge of every model)."""

CLASSIFIER_DIR = "classifier"
"""The reference classifier's directory in the study."""

REPORT = "report"
"""Plan name of the report step (results, report.md, figures, exports); depends on every model."""


def claim_path(root: str | pathlib.Path, model: str) -> pathlib.Path:
    """The claim file (`files.claim`) of a model of the study in `root`: `claims/<model>.lock`."""
    return pathlib.Path(root) / "claims" / f"{model}.lock"


def label(lambda_c: float, lambda_p: float = 0.0) -> str:
    """A grid point's directory and head-name suffix: `c0.015`, or `c0-p0.01` with a W1 term."""
    return f"c{lambda_c:g}" if lambda_p == 0 else f"c{lambda_c:g}-p{lambda_p:g}"


def _points(lambda_c: tuple[float, ...], lambda_p: tuple[float, ...]) -> list[tuple[float, float]]:
    """The grid (lambda_c, lambda_p) points, lambda_p major (RDC grids: lambda_c only)."""
    return [(c, p) for p in lambda_p for c in lambda_c]


@dataclasses.dataclass
class Job:
    """One training of the study: a runner run in `workdir` with the `train` TrainConfig fields.

    `name` is the model's name in the plan (`--model=NAME`); `depends_on` names the models that
    must be finished first.
    """

    family: str
    rate: tuple[int, int]
    lambda_c: float  # nan for the multi-head base (one head per universal lambda_c)
    lambda_p: float
    workdir: pathlib.Path
    head: str
    train: dict[str, Any]
    depends_on: tuple[str, ...] = (CLASSIFIER,)
    seed: int = 0  # of its training and its evaluation's dither
    tag: str = ""  # `@seed<S>` on a seed other than the study's first (`model_name`)

    @property
    def name(self) -> str:
        return self.head + self.tag

    def describe(self) -> str:
        """A short human description: family, rate and grid point."""
        point = "all heads" if math.isnan(self.lambda_c) else f"lambda_c={self.lambda_c:g}"
        if self.lambda_p > 0:
            point += f" lambda_p={self.lambda_p:g}"
        seed = f" seed={self.seed}" if self.tag else ""
        return f"{self.family} d={self.rate[0]} L={self.rate[1]} {point}{seed}"


def seed_root(root: str | pathlib.Path, seed: int, seeds: Sequence[int]) -> pathlib.Path:
    """Where the models of `seed` live: the study directory for its first seed (so a one-seed
    study keeps its layout and a study can add seeds later), `seed-<S>/` in it for the others."""
    root = pathlib.Path(root)
    return root if seed == seeds[0] else root / f"seed-{seed}"


def model_name(head: str, seed: int, seeds: Sequence[int]) -> str:
    """A model's plan name: its head name on the study's first seed, `<head>@seed<S>` else."""
    return head if seed == seeds[0] else f"{head}@seed{seed}"


def jobs(
    config: StudyConfig,
    root: str | pathlib.Path,
    bases: Sequence[str] = tuple(BASES),
    seeds: Sequence[int] = (0,),
) -> list[Job]:
    """All trainings in dependency order (bases before the heads that reuse their encoders), the
    whole plan of each seed in `seeds` after the previous seed's (see `seed_root`)."""
    planned = []
    for seed in seeds:
        tag = model_name("", seed, seeds)
        for job in _seed_jobs(config, seed_root(root, seed, seeds), bases):
            depends = tuple(d if d == CLASSIFIER else d + tag for d in job.depends_on)
            planned.append(dataclasses.replace(job, depends_on=depends, seed=seed, tag=tag))
    return planned


def _seed_jobs(config: StudyConfig, root: pathlib.Path, bases: Sequence[str]) -> list[Job]:
    """The trainings of one seed, their directories under `root`."""
    planned = []
    for rate in config.rates:
        tag = f"d{rate[0]}-L{rate[1]}"
        for c, p in _points(config.e2e_lambda_c, config.e2e_lambda_p):
            workdir, head = root / "e2e" / tag / label(c, p), f"e2e-{tag}-{label(c, p)}"
            planned.append(Job("e2e", rate, c, p, workdir, head, {"lambda_c": c, "lambda_p": p}))
    main_rate = config.rates[0]
    tag = f"d{main_rate[0]}-L{main_rate[1]}"
    base_point = label(config.base_lambda_c, config.base_lambda_p)
    paper_name = f"e2e-{tag}-{base_point}"
    paper_base = runs.RunDir(root / "e2e" / tag / base_point)
    paper_critic = paper_base.head_dir(paper_name) / "critic"
    base_dirs = {"paper": paper_base.path, "multihead": root / "multihead" / tag}
    base_names = {"paper": paper_name, "multihead": "multihead"}
    if "multihead" in bases:  # trained without a critic (one head per multihead_heads)
        train = {"multihead_lambda_c": config.multihead_heads}
        multihead = Job(
            "multihead-joint", main_rate, math.nan, 0.0, base_dirs["multihead"], "multihead", train
        )
        planned.append(multihead)
    for base in (base for base in BASES if base in bases):
        family = BASES[base]
        for c, p in _points(config.universal_lambda_c, config.universal_lambda_p):
            workdir, head = root / family / tag / label(c, p), f"{family}-{label(c, p)}"
            encoder_dir = str(runs.RunDir(base_dirs[base]).encoder_dir)
            train = {"lambda_c": c, "lambda_p": p, "encoder_dir": encoder_dir}
            if p > 0 and base == "paper" and config.base_lambda_p > 0:
                train["base_critic_dir"] = str(paper_critic)  # as the reference code does
            depends = (CLASSIFIER, base_names[base])
            planned.append(Job(family, main_rate, c, p, workdir, head, train, depends))
    return planned


def entries(planned: Sequence[Job], root: str | pathlib.Path) -> list[dict[str, Any]]:
    """The plan's models in dependency order, the classifier first and the report last.

    Each entry: `model` (its `--model` name), `family`, `depends_on` and `workdir` (relative to
    the study directory); the report's `workdir` is the study directory itself (".").
    """
    root = pathlib.Path(root)
    rows: list[dict[str, Any]] = [
        {"model": CLASSIFIER, "family": "classifier", "depends_on": [], "workdir": CLASSIFIER_DIR}
    ]
    several_seeds = len({job.seed for job in planned}) > 1
    for job in planned:
        row = {
            "model": job.name,
            "family": job.family,
            "depends_on": list(job.depends_on),
            "workdir": str(job.workdir.relative_to(root)),
        }
        if several_seeds:
            row["seed"] = job.seed
        rows.append(row)
    every = [row["model"] for row in rows]
    rows.append({"model": REPORT, "family": "report", "depends_on": every, "workdir": "."})
    return rows


def waves(rows: Sequence[dict[str, Any]]) -> list[list[str]]:
    """The models grouped by dependency depth: a wave needs only the waves before it."""
    depth: dict[str, int] = {}
    for row in rows:  # rows are in dependency order
        depth[row["model"]] = 1 + max((depth[d] for d in row["depends_on"]), default=-1)
    grouped: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
    for row in rows:
        grouped[depth[row["model"]]].append(row["model"])
    return grouped


def json_lines(rows: Sequence[dict[str, Any]], command: Sequence[str]) -> str:
    """One JSON object per model, each with the command line that trains (or reports) it."""
    lines = []
    for row in rows:
        line = {**row, "command": shlex.join([*command, f"--model={row['model']}"])}
        lines.append(json.dumps(line, sort_keys=False))
    return "\n".join(lines) + "\n"


def shell_script(rows: Sequence[dict[str, Any]], command: Sequence[str]) -> str:
    """A bash script running the plan wave by wave, `JOBS` models at a time (default 1)."""
    study = shlex.join(command)
    lines = [
        "#!/usr/bin/env bash",
        "# The study's models, wave by wave: a wave needs only the ones before it. Models of one",
        "# wave run JOBS at a time (JOBS=4 bash plan.sh); a rerun skips finished models.",
        "set -euo pipefail",
        f"study=({study})",
    ]
    for number, wave in enumerate(waves(rows)):
        models = " ".join(shlex.quote(model) for model in wave)
        lines.append(f"# wave {number}: {len(wave)} model(s)")
        lines.append(
            f"printf '%s\\n' {models} | "
            'xargs -P "${JOBS:-1}" -I{} "${study[@]}" --model={}'
        )
    return "\n".join(lines) + "\n"


def slurm_script(rows: Sequence[dict[str, Any]], command: Sequence[str], name: str) -> str:
    """A bash script submitting each wave as one Slurm job array after the previous wave.

    `sbatch --parsable` returns the array's job id; the next wave waits for it with
    `--dependency=afterok:<id>` (every task of the array finished successfully). Resources are
    left to the user's `#SBATCH` defaults or `SBATCH_*` environment variables.
    """
    study = shlex.join(command)
    lines = [
        "#!/usr/bin/env bash",
        f"# Submits the study {name} to Slurm: one job array per wave of the plan, each wave",
        "# after the previous one (afterok). Set resources with SBATCH_* variables or edit the",
        "# sbatch line, e.g. SBATCH_TIMELIMIT=04:00:00 SBATCH_PARTITION=cpu bash plan.slurm.sh",
        "set -euo pipefail",
        f"study={shlex.quote(study)}",
        "submit() {  # submit DEPENDENCY MODEL...: one array task per model; prints the job id",
        "  local dependency=$1; shift",
        '  local models="$*"',
        "  sbatch --parsable --job-name=" + shlex.quote(f"rdc-{name}") + " \\",
        "    ${dependency:+--dependency=afterok:$dependency} --array=0-$(($# - 1)) \\",
        '    --wrap "models=($models); $study --model=\\${models[\\$SLURM_ARRAY_TASK_ID]}"',
        "}",
        'previous=""',
    ]
    for number, wave in enumerate(waves(rows)):
        models = " ".join(shlex.quote(model) for model in wave)
        lines.append(f'previous=$(submit "$previous" {models})  # wave {number}')
        lines.append(f'echo "wave {number}: job $previous ({len(wave)} model(s))"')
    return "\n".join(lines) + "\n"
