"""The Unitree A1: every fact about the robot that the model, the environment, the motion data, the networks
and the deployment share (names and order of legs, joints, bodies and sites, limits, geometry, model files).

Numbers come from the A1 URDF (MPL-2.0, see ``mjcf/LICENSE``). Legs are ordered FL, FR, RL, RR
everywhere in this project; each leg has the joints (hip ab/ad, thigh, calf) in that order.
"""

from __future__ import annotations

import pathlib

import numpy as np

LEG_NAMES: tuple[str, ...] = ("FL", "FR", "RL", "RR")
"""Leg order of every per-leg quantity in this project."""

JOINT_KINDS: tuple[str, ...] = ("hip", "thigh", "calf")
"""Joint order inside one leg."""

JOINT_NAMES: tuple[str, ...] = tuple(f"{leg}_{kind}_joint" for leg in LEG_NAMES for kind in JOINT_KINDS)
"""The 12 actuated joints, as named in the URDF and in ``mjcf/a1.xml``."""

FOOT_SITE_NAMES: tuple[str, ...] = tuple(f"{leg}_foot" for leg in LEG_NAMES)
"""Sites at the foot-sphere centres in ``mjcf/a1.xml``."""

MJCF_DIR = pathlib.Path(__file__).resolve().parent.parent / "mjcf"
"""The MuJoCo model of the A1 (derived from the URDF)."""
SCENE_XML = MJCF_DIR / "scene.xml"
"""The A1 on a flat floor (includes ``mjcf/a1.xml``)."""

TRUNK_BODY = "trunk"
"""The floating base; its origin is the URDF base origin."""
FOOT_GEOMS: tuple[str, ...] = FOOT_SITE_NAMES
"""The four foot spheres, the only colliding robot geoms (named like the foot sites)."""
HIP_BODIES: tuple[str, ...] = tuple(f"{leg}_hip" for leg in LEG_NAMES)
THIGH_BODIES: tuple[str, ...] = tuple(f"{leg}_thigh" for leg in LEG_NAMES)
CALF_BODIES: tuple[str, ...] = tuple(f"{leg}_calf" for leg in LEG_NAMES)

NUM_JOINTS = 12
NUM_LEGS = 4

# The free-floating A1's state vectors as MuJoCo orders them (the scene's one free joint, then the 12 hinges in
# JOINT_NAMES order): qpos [19] = base position (world, m), base quaternion (w, x, y, z), joint angles (rad);
# qvel [18] = base linear velocity (world, m/s), base angular velocity (base frame, rad/s), joint velocities.
QPOS_BASE_POS = slice(0, 3)
QPOS_BASE_HEIGHT = slice(2, 3)
QPOS_BASE_QUAT = slice(3, 7)
QPOS_JOINTS = slice(7, 19)
QVEL_BASE_LIN = slice(0, 3)
QVEL_BASE_ANG = slice(3, 6)
QVEL_JOINTS = slice(6, 18)

JOINT_LOWER_PER_LEG = np.array([-0.802851455917, -1.0471975512, -2.69653369433])
"""URDF lower joint limits (rad) of (hip, thigh, calf)."""

JOINT_UPPER_PER_LEG = np.array([0.802851455917, 4.18879020479, -0.916297857297])
"""URDF upper joint limits (rad) of (hip, thigh, calf)."""

EFFORT_LIMIT_PER_LEG = np.array([20.0, 55.0, 55.0])
"""URDF effort limits (N·m) of (hip, thigh, calf)."""

JOINT_LOWER = np.tile(JOINT_LOWER_PER_LEG, NUM_LEGS)
JOINT_UPPER = np.tile(JOINT_UPPER_PER_LEG, NUM_LEGS)
EFFORT_LIMIT = np.tile(EFFORT_LIMIT_PER_LEG, NUM_LEGS)

SOFT_JOINT_RANGE_FRACTION = 0.9
"""Fraction of the URDF joint range that the reference treats as the soft range (scales the std floor)."""

TRUNK_COM_OFFSET = np.array([0.012731, 0.002186, 0.000515])
"""Trunk centre of mass from the base origin, base axes (m). Foot features are measured from it."""

# Reference data (PyBullet order FR, FL, RR, RL) -> project order (FL, FR, RL, RR): per-leg permutation.
DATA_LEG_ORDER: tuple[str, ...] = ("FR", "FL", "RR", "RL")
"""Leg order of the motion-capture files."""

LEG_PERMUTATION_FROM_DATA = np.array([DATA_LEG_ORDER.index(leg) for leg in LEG_NAMES])
"""``project_leg[i] = data_leg[LEG_PERMUTATION_FROM_DATA[i]]``."""

JOINT_PERMUTATION_FROM_DATA = (3 * LEG_PERMUTATION_FROM_DATA[:, None] + np.arange(3)[None, :]).reshape(-1)
"""Index array over 12 per-joint (or 4 × xyz per-foot) values: ``project = data[JOINT_PERMUTATION_FROM_DATA]``."""


def soft_joint_range() -> np.ndarray:
    """Width of the soft joint range per joint, ``[12]`` rad: 0.9 × the URDF range."""
    return SOFT_JOINT_RANGE_FRACTION * (JOINT_UPPER - JOINT_LOWER)


TRUNK_BOX_HALF_EXTENTS = np.array([0.1335, 0.097, 0.057])
"""Half extents of the URDF's trunk collision box (0.267 × 0.194 × 0.114 m), centred at the base origin."""
TRUNK_CORNERS = TRUNK_BOX_HALF_EXTENTS * np.array(
    [[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
"""The 8 corners of the trunk box in base axes ``[8, 3]`` (m); the trunk touches the floor iff one does."""
LEG_LINK_CLEARANCE = float(np.hypot(0.034, 0.0245) / 2)
"""Distance (m) from a thigh's axis to the corners of its URDF box (0.034 × 0.0245 cross-section): a thigh
or calf touches the floor when its end point (thigh joint or knee) comes this close. The calf's lower end is
inside the foot sphere (radius 0.02 > the calf's 0.008 half-thickness), so it never touches first."""
