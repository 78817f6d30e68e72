"""Whether the A1 has fallen: the test shared by the evaluation rollouts and the C MuJoCo sim-to-sim runner."""

from __future__ import annotations

import math

import numpy as np

from amp_jax import a1

MAX_TILT_RAD = math.radians(60.0)
"""The robot counts as fallen once the trunk's z axis is tilted more than this from vertical."""
MIN_BASE_HEIGHT = 0.15
"""... or once the base origin is lower than this (m; the A1 stands at about 0.3 m). Only the feet collide
with the floor in ``mjcf/a1.xml``, so a collapsed robot sinks below it."""


def trunk_up_z(quat: np.ndarray) -> float:
    """World z component of the trunk's z axis for the base quaternion ``quat [4]`` (w, x, y, z; any norm)."""
    w, x, y, z = np.asarray(quat, np.float64) / np.linalg.norm(quat)
    return float(1.0 - 2.0 * (x * x + y * y))


def is_upright(qpos: np.ndarray) -> bool:
    """Trunk tilt below :data:`MAX_TILT_RAD` and base height above :data:`MIN_BASE_HEIGHT`, of a MuJoCo
    ``qpos [19]`` (base position, base quaternion, joints)."""
    return bool(trunk_up_z(qpos[a1.QPOS_BASE_QUAT]) > math.cos(MAX_TILT_RAD) and qpos[2] > MIN_BASE_HEIGHT)
