"""rdc-experiment: a whole study, from the reference classifier to the report.

Trains the reference classifier, the E2E grid (at every rate of the preset), universal heads on
the paper's base encoder and on a multi-head base encoder, evaluates every model with the same
judge and dither seeds, and writes results.json/.csv, report.md, figures and SavedModels.

Examples:
    rdc-experiment --workdir=runs/digits                       # embedded demo, <= 10 min on CPU
    rdc-experiment --preset=mnist10k --data_dir=../shared/data/mnist --workdir=runs/mnist10k
    rdc-experiment --base=multihead --workdir=runs/digits-multihead   # one universal family
    rdc-experiment --seeds=0,1,2 --workdir=runs/digits              # mean ± std over 3 seeds

Re-running the same command resumes: finished models are reported, not retrained.

On a cluster, the study is a plan of models run by the cluster's own scheduler:
    rdc-experiment --workdir=runs/digits --list                     # JSON lines, one per model
    rdc-experiment --workdir=runs/digits --list --list_format=slurm > plan.slurm.sh
    rdc-experiment --workdir=runs/digits --model=e2e-d2-L3-c0       # exactly one model
    rdc-experiment --workdir=runs/digits --report_only              # once all are finished
Every process of one study takes the same study flags (the listed commands repeat them).
"""

from __future__ import annotations

import tensorflow as tf  # noqa: F401  (import before app.run: see cli/common.py)
from absl import app, flags

from rdc_keras import config as config_lib
from rdc_keras import data, experiment, remote, study_plan
from rdc_keras.cli.common import main_wrapper, number_list, parse_flags

__all__ = ["run"]

FLAGS = flags.FLAGS


def _define_flags() -> None:
    flags.DEFINE_enum("preset", "digits", list(experiment.PRESETS), "Study preset.")
    flags.DEFINE_string("workdir", None, "Study directory (runs, results, report, figures).")
    flags.DEFINE_string("data_dir", None, "Data directory (mnist10k: the MNIST t10k IDX files).")
    flags.DEFINE_integer("epochs", None, "Epochs per model (preset default).")
    flags.DEFINE_integer("steps_per_epoch", None, "Limit the steps per epoch (smoke runs).")
    flags.DEFINE_integer("classifier_epochs", None, "Reference classifier epochs.")
    flags.DEFINE_list("rates", None, "Rates as d:L pairs, the first being the main one.")
    flags.DEFINE_list("e2e_lambda_c", None, "E2E lambda_c grid.")
    flags.DEFINE_list("universal_lambda_c", None, "lambda_c of the universal heads.")
    flags.DEFINE_list(
        "multihead_lambda_c",
        None,
        "lambda_c of the multi-head base encoder's heads (default: --universal_lambda_c).",
    )
    flags.DEFINE_float("base_lambda_c", None, "lambda_c of the E2E model whose encoder is reused.")
    flags.DEFINE_list("e2e_lambda_p", None, "E2E lambda_p grid (the perception axis).")
    flags.DEFINE_list("universal_lambda_p", None, "lambda_p of the universal heads.")
    flags.DEFINE_float("base_lambda_p", None, "lambda_p of the E2E model whose encoder is reused.")
    flags.DEFINE_enum(
        "schedule", None, list(config_lib.SCHEDULES), "Critic schedule (preset default)."
    )
    flags.DEFINE_enum(
        "mixed_precision", None, list(config_lib.PRECISIONS), "Precision of every model (preset)."
    )
    flags.DEFINE_integer("w1_steps", None, "Post-hoc critic steps for a W1 estimate (0: none).")
    flags.DEFINE_enum(
        "base",
        "both",
        [*experiment.BASES, "both"],
        "Universal heads on the paper's single-lambda base encoder, on a multi-head base "
        "encoder trained with one head per lambda_c, or both (compared in the report).",
    )
    flags.DEFINE_enum(
        "strategy",
        "default",
        list(config_lib.STRATEGIES),
        "tf.distribute strategy of every training; multi_worker (TF_CONFIG) with --model only.",
    )
    flags.DEFINE_boolean("export", True, "Export the universal encoders and heads (SavedModel).")
    flags.DEFINE_integer(
        "verbose", 1, "0: one line per finished model; 1: also one line per training epoch."
    )
    flags.DEFINE_integer("seed", 0, "Seed of every training, the evaluation dither and plots.")
    flags.DEFINE_list(
        "seeds",
        None,
        "Train every model once per seed (e.g. 0,1,2; the first is --seed): the report gives "
        "mean ± std over seeds and says which findings hold on every seed. Seeds can be added "
        "to a finished study later; finished seeds are not retrained.",
    )
    flags.DEFINE_multi_string(
        "compare",
        [],
        "A finished study (directory or results.json) to draw beside this one in "
        "figures/accuracy-compared.png (repeatable).",
    )
    flags.DEFINE_boolean(
        "list",
        False,
        "Print the study's plan (every model, its dependencies, its command) and exit.",
    )
    flags.DEFINE_enum(
        "list_format",
        "json",
        ["json", "shell", "slurm"],
        "With --list: JSON lines, a bash script running the plan wave by wave (JOBS at a time), "
        "or a bash script submitting each wave as a Slurm job array.",
    )
    flags.DEFINE_string(
        "model", None, "Train (and score) exactly this model of the plan (see --list), then exit."
    )
    flags.DEFINE_boolean(
        "report_only",
        False,
        "Train nothing: build results, report, figures and exports from finished models.",
    )
    flags.mark_flag_as_required("workdir")


# Flags that choose what to do with the study rather than define it (not repeated in --list).
_ACTION_FLAGS = ("list", "list_format", "model", "report_only")


def _study_command() -> list[str]:
    """The command line of this study: the program and the study flags the user gave."""
    command = ["rdc-experiment"]
    for flag in FLAGS.flags_by_module_dict().get(__name__, []):
        if flag.present and flag.name not in _ACTION_FLAGS:
            command.extend(line for line in flag.serialize().splitlines() if line)
    return command


def _rates(values):
    if values is None:
        return None
    try:
        return tuple(tuple(int(part) for part in value.split(":")) for value in values)
    except ValueError as error:
        raise ValueError(f"--rates: expected d:L pairs, got {','.join(values)}") from error


def main(argv: list[str]) -> None:
    for name in ("epochs", "steps_per_epoch", "classifier_epochs"):
        value = getattr(FLAGS, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name}={value}: must be >= 1")
    if FLAGS.verbose not in (0, 1):
        raise ValueError(f"--verbose={FLAGS.verbose}: must be 0 or 1")
    if FLAGS.w1_steps is not None and FLAGS.w1_steps < 0:
        raise ValueError(f"--w1_steps={FLAGS.w1_steps}: must be >= 0")
    rates = _rates(FLAGS.rates)
    if rates is not None and any(len(rate) != 2 for rate in rates):
        raise ValueError(f"--rates: expected d:L pairs, got {','.join(FLAGS.rates)}")
    preset_dataset = experiment.PRESETS[FLAGS.preset].dataset
    if data.dataset_info(preset_dataset).source == "idx" and FLAGS.data_dir is None:
        raise ValueError(
            f"--data_dir is required for --preset={FLAGS.preset} (the MNIST t10k IDX files)"
        )
    config = experiment.study_config(
        FLAGS.preset,
        data_dir=FLAGS.data_dir,
        epochs=FLAGS.epochs,
        steps_per_epoch=FLAGS.steps_per_epoch,
        classifier_epochs=FLAGS.classifier_epochs,
        rates=rates,
        e2e_lambda_c=number_list(FLAGS.e2e_lambda_c, float, "e2e_lambda_c"),
        universal_lambda_c=number_list(FLAGS.universal_lambda_c, float, "universal_lambda_c"),
        multihead_lambda_c=number_list(FLAGS.multihead_lambda_c, float, "multihead_lambda_c"),
        base_lambda_c=FLAGS.base_lambda_c,
        e2e_lambda_p=number_list(FLAGS.e2e_lambda_p, float, "e2e_lambda_p"),
        universal_lambda_p=number_list(FLAGS.universal_lambda_p, float, "universal_lambda_p"),
        base_lambda_p=FLAGS.base_lambda_p,
        schedule=FLAGS.schedule,
        mixed_precision=FLAGS.mixed_precision,
        w1_steps=FLAGS.w1_steps,
    )
    bases = tuple(experiment.BASES) if FLAGS.base == "both" else (FLAGS.base,)
    seeds = number_list(FLAGS.seeds, int, "seeds")
    seed = FLAGS.seed
    if seeds:
        if FLAGS["seed"].present and seeds[0] != FLAGS.seed:
            raise ValueError(f"--seeds={','.join(FLAGS.seeds)}: the first must be --seed={seed}")
        seed = seeds[0]
    chosen = [
        name
        for name, given in (
            ("--list", FLAGS.list),
            ("--model", FLAGS.model is not None),
            ("--report_only", FLAGS.report_only),
        )
        if given
    ]
    if len(chosen) > 1:
        raise ValueError(f"{' and '.join(chosen)}: give only one of them")
    if FLAGS.list:
        planned = study_plan.jobs(config, FLAGS.workdir, bases, seeds or (seed,))
        rows = study_plan.entries(planned, FLAGS.workdir)
        command = _study_command()
        if FLAGS.list_format == "json":
            text = study_plan.json_lines(rows, command)
        elif FLAGS.list_format == "shell":
            text = study_plan.shell_script(rows, command)
        else:
            text = study_plan.slurm_script(rows, command, config.name)
        print(text, end="")
        return
    if FLAGS.model:
        remote.check_local(FLAGS.workdir, "--workdir", "--model claims its model with a file lock")
    remote.check_output_dir(FLAGS.workdir, "--workdir")
    common = dict(
        train_overrides={"strategy": FLAGS.strategy} if FLAGS.strategy != "default" else None,
        seed=seed,
        seeds=seeds,
        export=FLAGS.export,
        bases=bases,
        verbose=FLAGS.verbose,
        compare=FLAGS.compare,
    )
    if FLAGS.model:
        experiment.run_model(config, FLAGS.workdir, FLAGS.model, **common)
    else:
        experiment.run_study(config, FLAGS.workdir, report_only=FLAGS.report_only, **common)


def run() -> None:
    """Console-script entry point."""
    _define_flags()
    app.run(main_wrapper(main), flags_parser=parse_flags)


if __name__ == "__main__":
    run()
