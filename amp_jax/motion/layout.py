"""Layout of one stored motion frame (61 numbers) and of the 43-feature AMP observation.

Stored frames keep the slices of the motion files but in the project's orders: legs FL, FR, RL, RR and the root
quaternion as w, x, y, z. See ``docs/INTERFACES.md``.
"""

from __future__ import annotations

FRAME_WIDTH = 61
"""Numbers per frame, in the files and on the device."""

ROOT_POS = slice(0, 3)
"""Root position, world frame (m)."""
ROOT_HEIGHT = 2
"""Index of the root height (world z) inside a frame."""
ROOT_QUAT = slice(3, 7)
"""Root orientation: w, x, y, z on the device (x, y, z, w in the files)."""
JOINT_POS = slice(7, 19)
"""Joint positions (rad), legs FL, FR, RL, RR × (hip, thigh, calf)."""
FOOT_POS = slice(19, 31)
"""Foot positions (m), base axes, measured from the trunk's centre of mass; 4 × xyz."""
BASE_LIN_VEL = slice(31, 34)
"""Base linear velocity (m/s), base frame."""
BASE_ANG_VEL = slice(34, 37)
"""Base angular velocity (rad/s), base frame."""
JOINT_VEL = slice(37, 49)
"""Joint velocities (rad/s)."""
FOOT_VEL = slice(49, 61)
"""Foot velocities, base axes (unused by the pipeline)."""

PER_LEG_SLICES = (JOINT_POS, FOOT_POS, JOINT_VEL, FOOT_VEL)
"""Slices holding 4 legs × 3 numbers, reordered on load."""

AMP_FEATURE_SLICE = slice(7, 49)
"""Frame slice of the first 42 AMP features (joint pos, foot pos, base lin vel, base ang vel, joint vel)."""
AMP_OBS_SIZE = 43
"""AMP observation: frame slice 7:49, then the root height."""
AMP_RATES = slice(BASE_LIN_VEL.start - AMP_FEATURE_SLICE.start, JOINT_VEL.stop - AMP_FEATURE_SLICE.start)
"""AMP-observation slice of the features that are rates of change (base lin vel, base ang vel, joint vel): they
scale with the replay rate of a clip played faster or slower."""
