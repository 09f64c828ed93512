"""Universal vs E2E: the distortion penalty at matched loss weights and at matched tradeoff.

`penalties` pairs every universal model with the E2E model of the same (lambda_c, lambda_p) at
the main rate: penalty = 100 * (MSE_universal - MSE_E2E) / MSE_E2E. `matched_tradeoff` compares it
with the E2E Pareto front instead: the MSE the E2E models reach at the universal model's CE
(classification studies) or its W1 / judge FD (perception studies), interpolated piecewise
linearly between non-dominated E2E points (`pareto_front`), never extrapolated. Plain Python and
numpy: it reads the model rows of a study's results.json.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rdc_keras.studies import StudyConfig

__all__ = [
    "AXES",
    "UNIVERSAL_FAMILIES",
    "at_main_rate",
    "axes",
    "is_perception",
    "matched_tradeoff",
    "pareto_front",
    "penalties",
    "penalty_percent",
]

Row = dict[str, Any]

# The universal families in the order the report shows them.
UNIVERSAL_FAMILIES = ("universal-paper", "universal-multihead")
# Matched-tradeoff axis -> (its name in the report, the header and format of its values).
AXES = {
    "ce_nats": ("CE", "CE nats", ".3f"),
    "w1": ("W1", "W1", ".4f"),
    "judge_fd": ("judge FD", "judge FD", ".4g"),
}


def penalty_percent(mse: float, reference: float) -> float:
    """The distortion penalty of `mse` against a reference MSE, in %: 100 (mse - ref) / ref."""
    return 100.0 * (mse - reference) / reference


def at_main_rate(row: Row, config: StudyConfig) -> bool:
    return (row["latent_dim"], row["num_levels"]) == tuple(config.rates[0])


def is_perception(config: StudyConfig) -> bool:
    """`config.is_perception` (False for configs written before the perception axis)."""
    return bool(getattr(config, "is_perception", False))


def _point(row: Row) -> tuple[float, float]:
    """A model's loss weights (lambda_c, lambda_p); rows written before lambda_p count as 0."""
    return row["lambda_c"], row.get("lambda_p") or 0.0


def _value(row: Row, key: str) -> float | None:
    """row[key] as a float, None when absent, None or not finite."""
    value = row.get(key)
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def penalties(rows: list[Row], config: StudyConfig) -> list[Row]:
    """Universal vs E2E at matched (lambda_c, lambda_p) (main rate): distortion penalty in %.

    Args:
      rows: the study's model rows (results.json "models").
      config: the study; its first rate is the main one.

    Returns:
      One dict per universal model whose (lambda_c, lambda_p) is on the E2E grid, in row order.
    """
    e2e = {_point(row): row for row in rows if row["family"] == "e2e" and at_main_rate(row, config)}
    out = []
    for row in rows:
        if not row["family"].startswith("universal") or _point(row) not in e2e:
            continue
        ref = e2e[_point(row)]
        out.append(
            {
                "family": row["family"],
                "lambda_c": row["lambda_c"],
                "lambda_p": _point(row)[1],
                "mse_e2e": ref["mse"],
                "mse_universal": row["mse"],
                "distortion_penalty_percent": penalty_percent(row["mse"], ref["mse"]),
                "ce_e2e": ref["ce_nats"],
                "ce_universal": row["ce_nats"],
                "accuracy_e2e": ref["accuracy"],
                "accuracy_universal": row["accuracy"],
                "w1_e2e": ref.get("w1"),
                "w1_universal": row.get("w1"),
                "judge_fd_e2e": ref.get("judge_fd"),
                "judge_fd_universal": row.get("judge_fd"),
            }
        )
    return out


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-dominated (value, mse) points (lower is better in both), sorted by value.

    A point is dominated when another has value <= and mse <= with at least one strictly <.
    Repeated points are kept once. Along the front the value rises and the MSE falls.
    """
    unique = sorted(set(points))
    front = []
    for value, mse in unique:
        dominated = any(v <= value and m <= mse and (v < value or m < mse) for v, m in unique)
        if not dominated:
            front.append((value, mse))
    return front


def _interpolate(front: list[tuple[float, float]], value: float) -> float | None:
    """Piecewise-linear MSE of the front at `value`; None outside the front's value range."""
    if not front or value < front[0][0] or value > front[-1][0]:
        return None
    for (v0, m0), (v1, m1) in itertools.pairwise(front):
        if v0 <= value <= v1:
            return m0 + (m1 - m0) * (value - v0) / (v1 - v0)
    return front[0][1]  # a one-point front, at exactly its value


def axes(config: StudyConfig) -> tuple[str, ...]:
    return ("w1", "judge_fd") if is_perception(config) else ("ce_nats",)


def matched_tradeoff(rows: list[Row], config: StudyConfig) -> list[Row]:
    """Universal vs the E2E Pareto front at the same CE (or W1 / judge FD), main rate.

    The axes are CE for a classification study and W1 and judge FD for a perception study
    (`config.is_perception`). For each universal model and axis, the E2E models at the main rate
    give a Pareto front on (axis value, MSE) (`pareto_front`); its MSE is interpolated linearly at
    the universal model's value, with no extrapolation: outside the front's value range the front
    MSE and the penalty are None. An axis is skipped for a model without a value on it, and
    altogether when no E2E model has one (E2E models without a value are left off the front).

    Args:
      rows: the study's model rows (results.json "models").
      config: the study; its first rate is the main one.

    Returns:
      One dict per (universal model, axis), in row order then axis order: family, model,
      lambda_c, lambda_p, axis, value, mse_universal, mse_front, penalty_percent
      (100 * (mse_universal - mse_front) / mse_front).
    """
    e2e = [row for row in rows if row["family"] == "e2e" and at_main_rate(row, config)]
    fronts = {}
    for axis in axes(config):
        points = [(_value(row, axis), row["mse"]) for row in e2e]
        fronts[axis] = pareto_front([point for point in points if point[0] is not None])
    out = []
    for row in rows:
        if not row["family"].startswith("universal") or not at_main_rate(row, config):
            continue
        for axis, front in fronts.items():
            value = _value(row, axis)
            if value is None or not front:
                continue
            mse_front = _interpolate(front, value)
            penalty = None if mse_front is None else penalty_percent(row["mse"], mse_front)
            out.append(
                {
                    "family": row["family"],
                    "model": row["model"],
                    "lambda_c": row["lambda_c"],
                    "lambda_p": _point(row)[1],
                    "axis": axis,
                    "value": value,
                    "mse_universal": row["mse"],
                    "mse_front": mse_front,
                    "penalty_percent": penalty,
                }
            )
    return out
