"""Per-op profile of the GAN training step: where the time of a critic + generator pair goes.

The paper's alternate schedule runs a critic turn (generator forward, critic forward on real and
fake images, the WGAN-GP gradient penalty with its double backward, an Adam update of the critic)
and a generator turn (generator forward, critic forward on the reconstruction, backward through
critic, decoder and encoder, an Adam update). `RDCTrainer` and `losses.gradient_penalty` put each
piece under its own name scope, so the TF profiler's op names say which piece an op belongs to:

* ``gradient_tape/`` opens the name of every op the outer tape created (a backward op);
* ``gradient_penalty/`` marks the penalty's interpolate, critic forward and input gradient, and
  a backward op of those is part of the penalty's double backward (second order);
* ``critic_scores/``, ``generator_critic/`` and ``reconstruct/`` mark the critic's forward on
  real/fake images, the critic's forward in the generator loss, and the encoder/decoder forward;
* ``Adam/`` (the optimizers' name) marks the parameter updates.

`op_events` reads a profiler trace (``*.xplane.pb``) into (name, type, duration) triples and
`profile_rows` sums them per `category`. Op durations come from the executor threads; ops that
run side by side overlap, so the worker profiles with one inter-op thread, where the durations
add up to about the step's wall time (the remainder is dispatch). TensorFlow is imported only by
`op_events`.
"""

from __future__ import annotations

import collections
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "CATEGORIES",
    "CRITIC",
    "GENERATOR",
    "category",
    "op_events",
    "profile_rows",
    "top_ops",
]

CRITIC, GENERATOR = "critic turn", "generator turn"
_GENERATOR_FORWARD = "generator forward (encoder, quantizer, decoder)"
_OTHER = "other (dither, metrics, casts)"
_CRITIC_FORWARD = "critic forward on real and fake images"
_PENALTY_FORWARD = "gradient penalty: interpolate, critic forward, input gradient"
_CRITIC_BACKWARD = "critic backward of the real/fake scores"
_PENALTY_BACKWARD = "gradient penalty: double backward"
_CRITIC_UPDATE = "Adam update of the critic"
_FAKE_FORWARD = "critic forward on the reconstruction"
_FAKE_BACKWARD = "backward through the critic to the reconstruction"
_GENERATOR_BACKWARD = "backward through decoder, quantizer, encoder"
_GENERATOR_UPDATE = "Adam update of encoder and decoder"

CATEGORIES: tuple[tuple[str, str], ...] = tuple(
    [(CRITIC, piece) for piece in (_GENERATOR_FORWARD, _CRITIC_FORWARD, _PENALTY_FORWARD)]
    + [(CRITIC, piece) for piece in (_CRITIC_BACKWARD, _PENALTY_BACKWARD, _CRITIC_UPDATE, _OTHER)]
    + [(GENERATOR, piece) for piece in (_GENERATOR_FORWARD, _FAKE_FORWARD, _FAKE_BACKWARD)]
    + [(GENERATOR, piece) for piece in (_GENERATOR_BACKWARD, _GENERATOR_UPDATE, _OTHER)]
)
"""Every (turn, piece) of the profile, in the order of its table."""


def category(name: str, turn: str) -> tuple[str, str]:
    """The (turn, piece) of one op of `turn` (`CRITIC` or `GENERATOR`) by its name."""
    from rdc_keras.losses import GRADIENT_PENALTY_SCOPE
    from rdc_keras.trainers.rdc import (
        CRITIC_SCORES_SCOPE,
        GENERATOR_CRITIC_SCOPE,
        RECONSTRUCT_SCOPE,
    )

    if turn not in (CRITIC, GENERATOR):
        raise ValueError(f"turn must be {CRITIC!r} or {GENERATOR!r}, got {turn!r}")
    scopes = name.split(":", 1)[0].split("/")
    backward = "gradient_tape" in scopes
    if turn == CRITIC:
        if "Adam" in scopes:
            piece = _CRITIC_UPDATE
        elif GRADIENT_PENALTY_SCOPE in scopes:
            # The penalty's own input gradient is "gradient_penalty/gradient_tape/..."; the outer
            # tape's ops (the double backward) are "gradient_tape/gradient_penalty/...".
            outer = backward and scopes.index("gradient_tape") < scopes.index(
                GRADIENT_PENALTY_SCOPE
            )
            piece = _PENALTY_BACKWARD if outer else _PENALTY_FORWARD
        elif CRITIC_SCORES_SCOPE in scopes:
            piece = _CRITIC_BACKWARD if backward else _CRITIC_FORWARD
        elif RECONSTRUCT_SCOPE in scopes and not backward:
            piece = _GENERATOR_FORWARD
        else:
            piece = _OTHER
    elif "Adam" in scopes:
        piece = _GENERATOR_UPDATE
    elif GENERATOR_CRITIC_SCOPE in scopes:
        piece = _FAKE_BACKWARD if backward else _FAKE_FORWARD
    elif RECONSTRUCT_SCOPE in scopes:
        piece = _GENERATOR_BACKWARD if backward else _GENERATOR_FORWARD
    else:
        piece = _OTHER
    return turn, piece


def op_events(trace_dir: str | pathlib.Path) -> list[tuple[str, str, float]]:
    """(op name, op type, seconds) of every TF op the newest trace under `trace_dir` ran.

    Reads the host plane's executor threads (``tf_Compute*``) of ``*.xplane.pb``; the executor's
    own bookkeeping events (no ``name:type`` form) are left out.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = sorted(pathlib.Path(trace_dir).rglob("*.xplane.pb"), key=lambda p: p.stat().st_mtime)
    if not paths:
        raise FileNotFoundError(f"{trace_dir}: no *.xplane.pb trace found")
    space = xplane_pb2.XSpace()
    space.ParseFromString(paths[-1].read_bytes())
    events = []
    for plane in space.planes:
        metadata = plane.event_metadata
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                label = metadata[event.metadata_id].name
                if ":" not in label or label.startswith("Executor"):
                    continue
                name, op_type = label.rsplit(":", 1)
                events.append((name, op_type, event.duration_ps * 1e-12))
    return events


def profile_rows(
    turns: Iterable[tuple[str, Sequence[tuple[str, str, float]]]], pairs: int
) -> list[dict[str, Any]]:
    """One row per category: ms per (critic + generator) pair, share of all op time, op count.

    Args:
      turns: (`CRITIC` or `GENERATOR`, op events of that turn's traced calls).
      pairs: how many critic + generator pairs the traces cover.
    """
    seconds: dict[tuple[str, str], float] = collections.defaultdict(float)
    counts: dict[tuple[str, str], int] = collections.Counter()
    for turn, events in turns:
        for name, _, duration in events:
            key = category(name, turn)
            seconds[key] += duration
            counts[key] += 1
    total = sum(seconds.values())
    return [
        {
            "turn": turn,
            "piece": piece,
            "ms_per_pair": 1e3 * seconds[(turn, piece)] / pairs,
            "share": seconds[(turn, piece)] / total if total else 0.0,
            "ops_per_pair": counts[(turn, piece)] / pairs,
        }
        for turn, piece in CATEGORIES
    ]


def top_ops(
    turns: Iterable[tuple[str, Sequence[tuple[str, str, float]]]], pairs: int, count: int
) -> list[dict[str, Any]]:
    """The `count` ops that took longest per pair, summed over calls: name, type, turn, ms."""
    seconds: dict[tuple[str, str, str], float] = collections.defaultdict(float)
    for turn, events in turns:
        for name, op_type, duration in events:
            seconds[(turn, name, op_type)] += duration
    ranked = sorted(seconds.items(), key=lambda item: -item[1])[:count]
    return [
        {"turn": turn, "name": name, "type": op_type, "ms_per_pair": 1e3 * total / pairs}
        for (turn, name, op_type), total in ranked
    ]
