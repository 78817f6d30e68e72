"""Sizes, keys and layouts of the A1 environment's observations (policy, critic, AMP) and its action size.

The robot itself (joints, bodies, model files, geometry) is described in :mod:`amp_jax.a1`."""

from __future__ import annotations

from amp_jax import a1

NUM_ACTIONS = a1.NUM_JOINTS
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
