"""Claims over several training seeds: mean ± standard deviation and paired per-seed differences.

A study trained over seeds (`rdc-experiment --seeds=0,1,2`) has one row per model and seed; the
seed moves its numbers (digits: the paper base's matched-CE penalty spans −4.8 … +7.3 % over three
seeds) more than some of the effects a report states. This module turns per-seed rows into
summaries (`aggregate`: every numeric field as its mean, sample standard deviation and count) and a
comparison into a paired claim (`paired`: the per-seed values of one quantity, their mean and
spread, and whether the sign holds on every seed). Plain Python and numpy, no TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["aggregate", "mean_std", "paired"]

Row = dict[str, Any]


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """Mean, sample standard deviation (ddof = 1) and count of the values that are not None.

    The std of one value is None (undefined), not 0; no values give (None, None, 0).
    """
    present = [float(value) for value in values if value is not None and not _isnan(value)]
    if not present:
        return None, None, 0
    std = float(np.std(present, ddof=1)) if len(present) > 1 else None
    return float(np.mean(present)), std, len(present)


def _isnan(value: Any) -> bool:
    return isinstance(value, float | np.floating) and math.isnan(value)


def aggregate(rows: Sequence[Row], by: Sequence[str], fields: Sequence[str]) -> list[Row]:
    """One summary row per distinct `by` key: each of `fields` as mean, `<field>_std`, `<field>_n`.

    Args:
      rows: per-seed rows, each with a `seed` and the `by` and `fields` keys (a field may be
        None, e.g. a penalty outside the E2E front's range; it is left out of that field's count).
      by: the keys naming one quantity across seeds (e.g. family, lambda_c, lambda_p).
      fields: the numeric keys to summarise.

    Returns:
      The summary rows in order of first appearance, each with the `by` keys, `n` (rows of that
      key), `seeds` (theirs, sorted) and the summarised fields.
    """
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row[key] for key in by), []).append(row)
    out = []
    for key, members in groups.items():
        summary: Row = dict(zip(by, key))
        summary["n"] = len(members)
        summary["seeds"] = sorted(row["seed"] for row in members)
        for field in fields:
            mean, std, count = mean_std([row.get(field) for row in members])
            summary[field] = mean
            summary[f"{field}_std"] = std
            summary[f"{field}_n"] = count
        out.append(summary)
    return out


def paired(name: str, unit: str, by_seed: dict[int, float | None]) -> Row:
    """A claim about one per-seed quantity (e.g. a difference of two families on the same seed).

    Args:
      name: what the quantity is, as the report states it.
      unit: its unit ("%", "MSE", ...).
      by_seed: its value on each seed; None (or NaN) where a seed has no value (left out).

    Returns:
      `{"name", "unit", "seeds", "values", "mean", "std", "n", "holds_on_every_seed", "sign"}`:
      `sign` is that of the mean (+1, -1 or 0) and `holds_on_every_seed` whether every value has
      it (False for fewer than two seeds: one draw shows no consistency).
    """
    seeds = sorted(
        seed for seed, value in by_seed.items() if value is not None and not _isnan(value)
    )
    values = [float(by_seed[seed]) for seed in seeds]
    mean, std, n = mean_std(values)
    sign = 0 if mean is None or mean == 0 else (1 if mean > 0 else -1)
    holds = n > 1 and sign != 0 and all(np.sign(value) == sign for value in values)
    return {
        "name": name,
        "unit": unit,
        "seeds": seeds,
        "values": values,
        "mean": mean,
        "std": std,
        "n": n,
        "holds_on_every_seed": bool(holds),
        "sign": sign,
    }
