"""Velocity-command schedules for evaluating a policy: segments of (seconds, v_x, v_y, yaw rate).

Shared by the MJX evaluation (:mod:`amp_jax.evaluation.evaluate`) and the C MuJoCo check
(:mod:`amp_jax.deploy.sim2sim`), so both
drive the policy with the same commands. Commands are in the base frame: m/s, m/s, rad/s.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class CommandSegment:
    """Hold one command for ``seconds``."""

    seconds: float
    vx: float
    vy: float
    yaw_rate: float

    def __post_init__(self):
        values = (self.seconds, self.vx, self.vy, self.yaw_rate)
        if not all(math.isfinite(v) for v in values) or self.seconds <= 0:
            raise ValueError(f"command segment {values}: expected finite numbers and a positive duration (s)")


DEFAULT_SCHEDULE: tuple[CommandSegment, ...] = (
    CommandSegment(3.0, 0.5, 0.0, 0.0),
    CommandSegment(3.0, 1.0, 0.0, 0.0),
    CommandSegment(3.0, 0.5, 0.0, 1.0),
)
"""Forward at 0.5 m/s, then 1.0 m/s, then a left turn at 1 rad/s while walking at 0.5 m/s (9 s)."""


def parse_segment(text: str) -> CommandSegment:
    """``'SECONDS,VX,VY,YAW'`` (e.g. ``'3,0.5,0,0'``) → a segment; raises ValueError naming the text."""
    parts = [p for p in text.replace(" ", "").split(",") if p != ""]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4:
        raise ValueError(f"command segment {text!r}: expected four numbers SECONDS,VX,VY,YAW (e.g. 3,0.5,0,0)")
    return CommandSegment(*values)


def commands_from_schedule(schedule: Sequence[CommandSegment], control_dt: float) -> np.ndarray:
    """Per-control-step commands ``[T, 3]`` float32; segment ``i`` lasts ``round(seconds / control_dt)`` steps."""
    if not schedule:
        raise ValueError("the command schedule is empty: expected at least one segment")
    if control_dt <= 0:
        raise ValueError(f"control_dt = {control_dt}: expected a positive control period (s)")
    rows = [np.tile([s.vx, s.vy, s.yaw_rate], (max(1, int(round(s.seconds / control_dt))), 1)) for s in schedule]
    return np.concatenate(rows, axis=0).astype(np.float32)


def schedule_to_list(schedule: Sequence[CommandSegment]) -> list[list[float]]:
    """JSON-ready ``[[seconds, vx, vy, yaw_rate], ...]``."""
    return [[s.seconds, s.vx, s.vy, s.yaw_rate] for s in schedule]
