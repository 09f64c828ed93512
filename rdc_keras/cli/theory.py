"""rdc-theory: closed-form rate-distortion-classification quantities, printed as JSON.

Usage:
  rdc-theory gaussian [--var_x=1 --var_s=1 --cov_xs=0.8] [--points=D:C,D:C,...] [--rate=R]
                      [--num_samples=1000000 --seed=0] [--plot=DIR --figures=all|summary]
  rdc-theory binary [--p=0.3 --eps=0.1 --units=bits] [--points=D:C,...] [--rate=R] [--plot=DIR]

`gaussian` reports h(S), h(S|X), R(D, C) at each point, the universal construction at
R = sup R(D, C) with its rate penalty, the corner of Omega(R), D(C, R) (corrected and the poster's
formula) and Monte Carlo checks; everything in nats. `binary` reports R(D, C) and the optimal test
channel for the symmetric binary source, in --units. Non-finite numbers appear as the strings
"inf", "-inf" and "nan". Bad input prints one line on stderr and exits with status 2.
"""

from __future__ import annotations

import json
import math
import pathlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from absl import app, flags

from rdc_keras.cli.common import (
    UserError,
    fail,
    list_own_flags_in_help,
    quiet_when_piped_output_closes,
)
from rdc_keras.theory.binary import BinarySource
from rdc_keras.theory.gaussian import GaussianSource

__all__ = ["main", "run"]

_GAUSSIAN_POINTS = ["0.3679:1.3", "0.45:1.2", "0.6:1.1597", "0.8:1.3", "1.1:1.45"]
_BINARY_POINTS = ["0.05:0.6", "0.1:0.8", "0.2:0.5", "0.25:0.9"]
FLAGS = flags.FLAGS


def _define_flags() -> None:
    """Register the flags (at run time, so importing this module leaves absl's FLAGS alone)."""
    if "var_x" in FLAGS:  # already registered in this process
        return
    flags.DEFINE_float("var_x", 1.0, "gaussian: Var(X).")
    flags.DEFINE_float("var_s", 1.0, "gaussian: Var(S).")
    flags.DEFINE_float("cov_xs", 0.8, "gaussian: Cov(X, S); |correlation| must be < 1.")
    flags.DEFINE_float("mean_x", 0.0, "gaussian: E[X].")
    flags.DEFINE_float("mean_s", 0.0, "gaussian: E[S].")
    flags.DEFINE_float("p", 0.3, "binary: P(X = 1), in (0, 1).")
    flags.DEFINE_float("eps", 0.1, "binary: label noise P(S != X), in [0, 1].")
    flags.DEFINE_enum("units", "bits", ["bits", "nats"], "binary: units of C and of rates.")
    flags.DEFINE_list("points", None, "Comma-separated D:C pairs (default: a demo set per source).")
    flags.DEFINE_float(
        "rate", None, "Rate R for D(C, R) and Omega(R) (gaussian default: the universal rate)."
    )
    flags.DEFINE_integer("num_samples", 10**6, "gaussian: Monte Carlo sample size; 0 skips it.")
    flags.DEFINE_integer("seed", 0, "Seed of numpy's Generator for the Monte Carlo draws.")
    flags.DEFINE_string("plot", None, "Directory to write PNG figures into.")
    flags.DEFINE_enum(
        "figures", "all", ["all", "summary"], "With --plot: every panel, or only the summary."
    )
    flags.DEFINE_string("output", None, "Also write the JSON to this file.")


def _parse_points(items: Sequence[str]) -> list[tuple[float, float]]:
    points = []
    for item in items:
        parts = item.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            points.append((float(parts[0]), float(parts[1])))
        except ValueError:
            raise UserError(
                f"--points entries must look like D:C (two numbers), got {item!r}"
            ) from None
    if not points:
        raise UserError("--points must list at least one D:C pair")
    return points


def _jsonable(value: Any) -> Any:
    """Replace non-finite floats with strings and numpy types with Python ones, recursively."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _gaussian_report() -> dict[str, Any]:
    source = GaussianSource(FLAGS.var_x, FLAGS.var_s, FLAGS.cov_xs, FLAGS.mean_x, FLAGS.mean_s)
    points = _parse_points(FLAGS.points or _GAUSSIAN_POINTS)
    if FLAGS.num_samples < 0:
        raise UserError(f"--num_samples must be >= 0, got {FLAGS.num_samples}")
    rates = [source.rate(D, C) for D, C in points]
    sup_rate = max(rates)
    representation = None if math.isinf(sup_rate) else source.universal_representation(points)
    R = FLAGS.rate if FLAGS.rate is not None else sup_rate
    if math.isnan(R) or R < 0:
        raise UserError(f"--rate must be >= 0, got {R}")
    d_min, c_min = source.omega_boundary(R)
    report: dict[str, Any] = {
        "command": "gaussian",
        "units": "nats",
        "seed": FLAGS.seed,
        "source": {
            "var_x": source.var_x,
            "var_s": source.var_s,
            "cov_xs": source.cov_xs,
            "mean_x": source.mean_x,
            "mean_s": source.mean_s,
            "correlation": source.correlation,
        },
        "h_s": source.h_s,
        "h_s_given_x": source.h_s_given_x,
        "points": [
            {
                "D": D,
                "C": C,
                "rate": rate,
                "rate_distortion": source.rate_distortion(D),
                "rate_classification": source.rate_classification(C),
            }
            for (D, C), rate in zip(points, rates)
        ],
        "universal": {
            "rate": source.universal_rate(points),
            "sup_rate": sup_rate,
            "rate_penalty": source.rate_penalty(points),
            "noise_var": representation.noise_var if representation else math.inf,
            "decoders": [
                {
                    "D": dec.D,
                    "C": dec.C,
                    "a": dec.a,
                    "noise_var": dec.noise_var,
                    "distortion": dec.distortion,
                    "conditional_entropy": dec.conditional_entropy,
                    "on_target": dec.on_target,
                }
                for dec in (representation.decoders if representation else ())
            ],
        },
        "omega_boundary": {"R": R, "D_min": d_min, "C_min": c_min},
        "distortion": {
            "R": R,
            "shannon_bound": source.var_x * math.exp(-2.0 * R),
            "at_points": [
                {
                    "C": C,
                    "D": source.distortion(C, R),
                    "D_paper_formula": source.distortion(C, R, paper_formula=True),
                }
                for _, C in points
            ],
        },
        "monte_carlo": None,
    }
    if representation is not None and FLAGS.num_samples > 0:
        report["monte_carlo"] = representation.verify(FLAGS.num_samples, FLAGS.seed)
    if FLAGS.plot:
        if representation is None:
            raise UserError("--plot needs points with finite rate (every C > h(S|X))")
        from rdc_keras.theory import figures  # matplotlib only when plotting

        written = figures.write_gaussian_figures(representation, R, FLAGS.plot, FLAGS.figures)
        report["figures"] = [str(path) for path in written]
    return report


def _binary_report() -> dict[str, Any]:
    source = BinarySource(FLAGS.p, FLAGS.eps, FLAGS.units)
    points = _parse_points(FLAGS.points or _BINARY_POINTS)
    rows = []
    for D, C in points:
        rate = source.rate(D, C)
        channel = None if math.isinf(rate) else source.test_channel(D, C)
        rows.append(
            {
                "D": D,
                "C": C,
                "rate": rate,
                "rate_distortion": source.rate_distortion(D),
                "rate_classification": source.rate_classification(C),
                "test_channel": None
                if channel is None
                else {"crossover": channel.crossover, "forward": channel.forward},
            }
        )
    report: dict[str, Any] = {
        "command": "binary",
        "units": source.units,
        "seed": FLAGS.seed,
        "source": {"p": source.p, "eps": source.eps},
        "h_x": source.h_x,
        "h_s": source.h_s,
        "h_s_given_x": source.h_s_given_x,
        "points": rows,
    }
    if FLAGS.rate is not None:
        report["at_rate"] = {
            "R": FLAGS.rate,
            "min_conditional_entropy": source.min_conditional_entropy(FLAGS.rate),
            "min_distortion": source.distortion(math.inf, FLAGS.rate),
        }
    if FLAGS.plot:
        from rdc_keras.theory import figures

        written = figures.write_binary_figures(source, points, FLAGS.plot, FLAGS.figures)
        report["figures"] = [str(path) for path in written]
    return report


def _fail(message: str) -> NoReturn:
    fail(message, program="rdc-theory")


def main(argv: Sequence[str]) -> None:
    """Run one subcommand (``gaussian`` or ``binary``) and print its JSON report."""
    commands = {"gaussian": _gaussian_report, "binary": _binary_report}
    args = list(argv[1:])
    if len(args) != 1 or args[0] not in commands:
        _fail(f"expected one subcommand, 'gaussian' or 'binary', got {args or 'none'}")
    try:
        report = commands[args[0]]()
    except (ValueError, TypeError, OSError) as error:  # UserError is a ValueError
        _fail(str(error).splitlines()[0] if str(error) else type(error).__name__)
    text = json.dumps(_jsonable(report), indent=2, allow_nan=False)
    if FLAGS.output:
        try:
            pathlib.Path(FLAGS.output).write_text(text + "\n")
        except OSError as error:
            _fail(f"cannot write --output {FLAGS.output}: {error.strerror}")
    print(text)


def _parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing, but a bad flag costs one line on stderr (no usage dump)."""
    list_own_flags_in_help(FLAGS)
    try:
        return FLAGS(argv)
    except flags.Error as error:
        _fail(str(error).splitlines()[0])


def run() -> None:
    """Console-script entry point: ``rdc-theory = rdc_keras.cli.theory:run``."""
    entry = sys.modules.get("__main__")
    if entry is not None and not getattr(entry, "__doc__", None):
        entry.__doc__ = __doc__  # absl's --help prints __main__'s docstring
    _define_flags()
    app.run(quiet_when_piped_output_closes(main), flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
