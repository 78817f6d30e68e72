"""Names, sizes and fixed geometry of the A1 environment (model files, bodies, observation layouts)."""

from __future__ import annotations

import numpy as np

from amp_jax import a1_constants
from amp_jax.config import PROJECT_ROOT

MJCF_DIR = PROJECT_ROOT / "mjcf"
SCENE_XML = MJCF_DIR / "scene.xml"
"""The A1 on a flat floor (includes ``mjcf/a1.xml``)."""

TRUNK_BODY = "trunk"
"""The floating base; its origin is the URDF base origin."""
FOOT_GEOMS: tuple[str, ...] = a1_constants.FOOT_SITE_NAMES
"""The four foot spheres, the only colliding robot geoms (named like the foot sites)."""
HIP_BODIES: tuple[str, ...] = tuple(f"{leg}_hip" for leg in a1_constants.LEG_NAMES)
THIGH_BODIES: tuple[str, ...] = tuple(f"{leg}_thigh" for leg in a1_constants.LEG_NAMES)
CALF_BODIES: tuple[str, ...] = tuple(f"{leg}_calf" for leg in a1_constants.LEG_NAMES)

NUM_ACTIONS = a1_constants.NUM_JOINTS
POLICY_OBS_SIZE = 42
CRITIC_OBS_SIZE = 48
AMP_OBS_SIZE = 43
POLICY_OBS_KEY = "state"
CRITIC_OBS_KEY = "privileged_state"

# Critic observation layout (48); the policy observation is CRITIC[6:].
CRITIC_BASE_LIN_VEL = slice(0, 3)
CRITIC_BASE_ANG_VEL = slice(3, 6)
CRITIC_GRAVITY = slice(6, 9)
CRITIC_COMMAND = slice(9, 12)
CRITIC_JOINT_POS = slice(12, 24)
CRITIC_JOINT_VEL = slice(24, 36)
CRITIC_LAST_ACTION = slice(36, 48)
POLICY_FROM_CRITIC = slice(6, 48)

# AMP observation layout (43), same as ``amp_jax.motion.amp_features``.
AMP_JOINT_POS = slice(0, 12)
AMP_FOOT_POS = slice(12, 24)
AMP_BASE_LIN_VEL = slice(24, 27)
AMP_BASE_ANG_VEL = slice(27, 30)
AMP_JOINT_VEL = slice(30, 42)
AMP_BASE_HEIGHT = 42

TRUNK_BOX_HALF_EXTENTS = np.array([0.1335, 0.097, 0.057])
"""Half extents of the URDF's trunk collision box (0.267 × 0.194 × 0.114 m), centred at the base origin."""
TRUNK_CORNERS = TRUNK_BOX_HALF_EXTENTS * np.array(
    [[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
"""The 8 corners of the trunk box in base axes ``[8, 3]`` (m); the trunk touches the floor iff one does."""
LEG_LINK_CLEARANCE = float(np.hypot(0.034, 0.0245) / 2)
"""Distance (m) from a thigh's axis to the corners of its URDF box (0.034 × 0.0245 cross-section): a thigh
or calf touches the floor when its end point (thigh joint or knee) comes this close. The calf's lower end is
inside the foot sphere (radius 0.02 > the calf's 0.008 half-thickness), so it never touches first."""
