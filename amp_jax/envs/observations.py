"""Sizes, keys and layouts of the A1 environment's observations (policy, critic, AMP) and its action size.

The robot itself (joints, bodies, model files, geometry) is described in :mod:`amp_jax.a1`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from amp_jax import a1

if TYPE_CHECKING:
    from amp_jax.config import EnvConfig

NUM_ACTIONS = a1.NUM_JOINTS
POLICY_OBS_SIZE = 42
"""One step's, without a gait clock or gyroscope (:func:`policy_obs_size` gives an env's, history included)."""
CRITIC_OBS_SIZE = 48
"""Without a gait clock (:func:`critic_obs_size` gives an env's)."""
GAIT_CLOCK_SIZE = 2
GYRO_SIZE = 3
"""The base's angular velocity, which a policy with ``env.policy_base_ang_vel`` also observes (an IMU's gyroscope)."""
LIN_VEL_SIZE = 3
"""The base's linear velocity, which a policy with ``env.policy_base_lin_vel`` also observes (a state estimate)."""
AMP_OBS_SIZE = 43
"""One state's AMP features (:func:`amp_obs_size` gives an env's, earlier states' included)."""
POLICY_OBS_KEY = "state"
CRITIC_OBS_KEY = "privileged_state"

# Critic observation layout (48, then the gait clock's 2 when the env has one); one step's policy observation is
# CRITIC[6:], or CRITIC[3:] when the policy also observes the base's angular velocity (:func:`policy_from_critic`).
CRITIC_BASE_LIN_VEL = slice(0, 3)
CRITIC_BASE_ANG_VEL = slice(3, 6)
CRITIC_GRAVITY = slice(6, 9)
CRITIC_COMMAND = slice(9, 12)
CRITIC_JOINT_POS = slice(12, 24)
CRITIC_JOINT_VEL = slice(24, 36)
CRITIC_LAST_ACTION = slice(36, 48)
CRITIC_GAIT_CLOCK = slice(48, 50)
"""``(sin 2πφ, cos 2πφ)`` of the gait clock's phase ``φ`` (cycles); only with ``env.gait_clock_hz`` > 0."""
POLICY_FROM_CRITIC = slice(6, None)
"""One step's policy observation in the critic's, without the gyroscope (the reference's)."""

# AMP observation layout (43), same as ``amp_jax.motion.amp_features``.
AMP_JOINT_POS = slice(0, 12)
AMP_FOOT_POS = slice(12, 24)
AMP_BASE_LIN_VEL = slice(24, 27)
AMP_BASE_ANG_VEL = slice(27, 30)
AMP_JOINT_VEL = slice(30, 42)
AMP_BASE_HEIGHT = 42


def gait_clock_size(cfg: EnvConfig) -> int:
    """Entries the gait clock adds to the policy and critic observations: 2, or 0 without a clock."""
    return GAIT_CLOCK_SIZE if cfg.gait_clock_hz > 0 else 0


def gyro_size(cfg: EnvConfig) -> int:
    """Entries the base's angular velocity adds to one step's policy observation: 3 with
    ``env.policy_base_ang_vel``, else 0."""
    return GYRO_SIZE if cfg.policy_base_ang_vel else 0


def lin_vel_size(cfg: EnvConfig) -> int:
    """Entries the base's linear velocity adds to one step's policy observation: 3 with
    ``env.policy_base_lin_vel``, else 0."""
    return LIN_VEL_SIZE if cfg.policy_base_lin_vel else 0


def policy_from_critic(cfg: EnvConfig) -> slice:
    """Where one step's policy observation lies in the critic's: ``[6:]``, ``[3:]`` (the base's angular velocity
    first) with ``env.policy_base_ang_vel``, ``[0:]`` (the linear velocity before it) with
    ``env.policy_base_lin_vel`` too."""
    if cfg.policy_base_lin_vel:
        return slice(CRITIC_BASE_LIN_VEL.start, None)
    return slice(CRITIC_BASE_ANG_VEL.start if cfg.policy_base_ang_vel else POLICY_FROM_CRITIC.start, None)


def policy_frame_size(cfg: EnvConfig) -> int:
    """One step's policy observation for the env ``cfg``: 42, 3 more with the gyroscope, 3 more with the linear
    velocity, 2 more with a gait clock."""
    return POLICY_OBS_SIZE + lin_vel_size(cfg) + gyro_size(cfg) + gait_clock_size(cfg)


def policy_frame_parts(cfg: EnvConfig) -> tuple[tuple[str, int], ...]:
    """One step's policy observation for the env ``cfg`` as ``(part, size)`` in order, the names of the exported
    ``observation_layout``: ``base_lin_vel`` (with the velocity estimate), ``base_ang_vel`` (with the gyroscope),
    ``projected_gravity``, ``commands``,
    ``joint_pos``, ``joint_vel``, ``last_action``, ``gait_clock`` (with a clock)."""
    parts = (("projected_gravity", 3), ("commands", 3), ("joint_pos", NUM_ACTIONS), ("joint_vel", NUM_ACTIONS),
             ("last_action", NUM_ACTIONS))
    lin_vel = (("base_lin_vel", LIN_VEL_SIZE),) if cfg.policy_base_lin_vel else ()
    gyro = (("base_ang_vel", GYRO_SIZE),) if cfg.policy_base_ang_vel else ()
    clock = (("gait_clock", GAIT_CLOCK_SIZE),) if gait_clock_size(cfg) else ()
    return lin_vel + gyro + parts + clock


def policy_obs_size(cfg: EnvConfig) -> int:
    """The policy observation's size for the env ``cfg``: one step's (:func:`policy_frame_size`) times
    ``1 + env.policy_history``."""
    return policy_frame_size(cfg) * (1 + cfg.policy_history)


def critic_obs_size(cfg: EnvConfig) -> int:
    """The critic observation's size for the env ``cfg``: 48, or 50 with a gait clock."""
    return CRITIC_OBS_SIZE + gait_clock_size(cfg)


def amp_obs_size(cfg: EnvConfig) -> int:
    """The AMP observation's size for the env ``cfg``: 43 per state, the current one and ``env.amp_history_lags``'."""
    return AMP_OBS_SIZE * (1 + len(cfg.amp_history_lags))
