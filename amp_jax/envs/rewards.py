"""Task reward: a dict of small pure terms, each scaled by ``cfg.reward_scales`` and summed.

Every term reads the :class:`StepQuantities` of one control step of one env (unbatched) and the env's constant
:class:`RewardParams`, and returns an unscaled scalar; the sign lives in the scale. A term whose scale is 0 is
never called, and the quantities only it reads (the foot contacts and air times of ``feet_air_time``, the body
contacts of ``collision``) are then None: the env computes them only for a non-zero scale.

The terms are the velocity tracking of the AMP recipes, the same tracking with a narrower kernel (the ``_fine``
terms, this project's own), a still narrower one on the lateral velocity alone (``tracking_lin_vel_y``, also this
project's own), and the hand-designed terms of legged_gym's locomotion reward (the paper's "complex
reward" baseline), under legged_gym's names. The sum of every term but
``termination`` is clipped at 0 from below (the reference keeps only positive totals); ``termination`` is added
after the clip, as legged_gym does, so that the clip cannot hide the penalty of a fall.

The tracking terms compare the command with the step's base velocity, or, with ``env.tracking_average_s`` > 0,
with its exponential average over about that time (:func:`averaged_velocity`, kept in the env's info): the
average leaves out the velocity's swing within a stride, which the instantaneous kernels charge more for a long,
slow stride than for a short, quick one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

FOOT_CONTACT_FORCE = 1.0
"""A foot is in contact when the floor's normal force on it exceeds this (N), legged_gym's threshold."""
AIR_TIME_TARGET = 0.5
"""legged_gym's air-time target (s), the default of ``env.feet_air_time_target``: ``feet_air_time`` pays
(air time − target) at each touchdown, so flights shorter than the target cost."""
AIR_TIME_MIN_COMMAND = 0.1
"""``feet_air_time`` pays nothing while the xy command's norm is at most this (m/s): no steps asked for."""


@struct.dataclass
class StepQuantities:
    """What the reward terms read about one control step of one env (unbatched).

    Velocities and the command are those of the state the step ended in, in base axes (the command in the base
    frame); ``_before`` and ``last_`` quantities are those of the state the step started from. Optional fields
    are None when no term with a non-zero scale reads them.
    """

    command: jax.Array
    """``[3]`` the command (v_x m/s, v_y m/s, yaw rate rad/s) the step was taken under."""
    base_lin_vel: jax.Array
    """``[3]`` linear velocity of the base origin in base axes (m/s)."""
    base_ang_vel: jax.Array
    """``[3]`` angular velocity of the base in base axes (rad/s)."""
    joint_pos: jax.Array
    """``[12]`` joint angles (rad), legs FL, FR, RL, RR × (hip, thigh, calf)."""
    joint_vel: jax.Array
    """``[12]`` joint velocities at the end of the step (rad/s)."""
    joint_vel_before: jax.Array
    """``[12]`` joint velocities at the start of the step (rad/s): the end of the previous step, or the reset's."""
    torque: jax.Array
    """``[12]`` motor torques applied during the step's last physics step (N·m)."""
    action: jax.Array
    """``[12]`` the (clipped) action of this step."""
    last_action: jax.Array
    """``[12]`` the action of the previous step (zeros after a reset)."""
    fell: jax.Array
    """bool scalar: the step ended the episode by a fall (trunk, thigh or calf on the floor), not by time-out."""
    body_ground_contacts: jax.Array | None = None
    """bool ``[9]`` trunk, thighs, calves touching the floor at the end of the step (``base.body_ground_contacts``)."""
    foot_contact: jax.Array | None = None
    """bool ``[4]`` foot normal force > :data:`FOOT_CONTACT_FORCE` at the step's last physics step."""
    last_foot_contact: jax.Array | None = None
    """bool ``[4]`` ``foot_contact`` of the previous step (all False after a reset)."""
    feet_air_time: jax.Array | None = None
    """``[4]`` time each foot has been in the air before this step (s), as carried in the env's info."""
    tracked_velocity: jax.Array | None = None
    """``[3]`` (v_x m/s, v_y m/s, yaw rate rad/s), base axes: what the tracking terms compare with the command when
    the env averages the velocity (:func:`averaged_velocity`); None: the step's own base velocity."""


@dataclasses.dataclass(frozen=True)
class RewardParams:
    """Constants of the reward terms, from the env's config and model."""

    tracking_sigma: float
    """Width of the exponential velocity-tracking kernels ((m/s)² and (rad/s)²)."""
    tracking_sigma_fine: float
    """Width of the narrower kernels of the ``_fine`` tracking terms ((m/s)² and (rad/s)²)."""
    tracking_sigma_lateral: float
    """Width of the kernel of ``tracking_lin_vel_y`` ((m/s)²)."""
    control_dt: float
    """Control period (s): the time one step adds to an air time and the divisor of ``dof_acc``."""
    soft_joint_lower: tuple[float, ...]
    """``[12]`` lower soft joint limits (rad), see :func:`soft_joint_limits`."""
    soft_joint_upper: tuple[float, ...]
    """``[12]`` upper soft joint limits (rad)."""
    air_time_target: float = AIR_TIME_TARGET
    """``feet_air_time`` pays (air time − this) at each touchdown (s)."""


def soft_joint_limits(joint_range: np.ndarray, fraction: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """legged_gym's soft joint limits: ``fraction`` of each joint's range, centred on the range's middle.

    Args:
      joint_range: ``[J, 2]`` (lower, upper) joint limits (rad), e.g. the MJCF's ``jnt_range`` of the leg joints.
      fraction: the soft range's share of the full range (0.9 for the A1).
    Returns:
      (lower ``J``, upper ``J``) as tuples of floats (rad).
    """
    joint_range = np.asarray(joint_range, np.float64)
    middle = joint_range.mean(axis=1)
    half = 0.5 * fraction * (joint_range[:, 1] - joint_range[:, 0])
    return tuple(float(x) for x in middle - half), tuple(float(x) for x in middle + half)


RewardTerm = Callable[[StepQuantities, RewardParams], jax.Array]


def base_velocity(base_lin_vel: jax.Array, base_ang_vel: jax.Array) -> jax.Array:
    """``[3]`` (v_x, v_y, yaw rate ω_z), base axes: the velocity a command asks for, from the base's linear
    ``[3]`` (m/s) and angular ``[3]`` (rad/s) velocities in base axes."""
    return jnp.concatenate([base_lin_vel[:2], base_ang_vel[2:3]])


def averaged_velocity(previous: jax.Array, velocity: jax.Array, alpha: float) -> jax.Array:
    """One step of the exponential average the tracking terms may read: ``previous + alpha · (velocity −
    previous)``, each ``[3]`` (v_x, v_y, ω_z), base axes; ``alpha`` the env's
    :attr:`~amp_jax.config.EnvConfig.tracking_average_alpha`."""
    return previous + alpha * (velocity - previous)


def _tracked(q: StepQuantities) -> jax.Array:
    """``[3]`` the velocity the tracking terms compare with the command: the averaged one where the env keeps it,
    else the step's own (:func:`base_velocity`)."""
    return base_velocity(q.base_lin_vel, q.base_ang_vel) if q.tracked_velocity is None else q.tracked_velocity


def _lin_vel_error_sq(q: StepQuantities) -> jax.Array:
    """‖cmd_xy − v_xy‖², base frame ((m/s)²)."""
    return jnp.sum(jnp.square(q.command[:2] - _tracked(q)[:2]))


def _ang_vel_error_sq(q: StepQuantities) -> jax.Array:
    """(cmd_yaw − ω_z)², base axes ((rad/s)²)."""
    return jnp.square(q.command[2] - _tracked(q)[2])


def tracking_lin_vel(q: StepQuantities, p: RewardParams) -> jax.Array:
    """exp(−‖cmd_xy − v_xy‖² / σ): tracking of the xy velocity command (base frame)."""
    return jnp.exp(-_lin_vel_error_sq(q) / p.tracking_sigma)


def tracking_ang_vel(q: StepQuantities, p: RewardParams) -> jax.Array:
    """exp(−(cmd_yaw − ω_z)² / σ): tracking of the yaw-rate command (base axes)."""
    return jnp.exp(-_ang_vel_error_sq(q) / p.tracking_sigma)


def tracking_lin_vel_fine(q: StepQuantities, p: RewardParams) -> jax.Array:
    """exp(−‖cmd_xy − v_xy‖² / σ_fine): :func:`tracking_lin_vel` with the narrower kernel. A narrow kernel pays
    little for a near miss, but its slope vanishes at large errors (for σ 0.1 against 0.25 it is the steeper one only
    below an error of 0.39 m/s or rad/s), so the two together keep a pull at every error."""
    return jnp.exp(-_lin_vel_error_sq(q) / p.tracking_sigma_fine)


def tracking_ang_vel_fine(q: StepQuantities, p: RewardParams) -> jax.Array:
    """exp(−(cmd_yaw − ω_z)² / σ_fine): :func:`tracking_ang_vel` with the narrower kernel."""
    return jnp.exp(-_ang_vel_error_sq(q) / p.tracking_sigma_fine)


def tracking_lin_vel_y(q: StepQuantities, p: RewardParams) -> jax.Array:
    """exp(−(cmd_y − v_y)² / σ_lateral): tracking of the lateral command alone (base frame). The xy kernels count a
    lateral error beside the forward one and pay 0.90–0.96 for a steady 0.1 m/s drift, so they hardly pull on it;
    this kernel, narrower and on v_y alone, pays 0.61 for it at σ_lateral 0.02."""
    return jnp.exp(-jnp.square(q.command[1] - _tracked(q)[1]) / p.tracking_sigma_lateral)


def lin_vel_z(q: StepQuantities, p: RewardParams) -> jax.Array:
    """v_z²: vertical velocity of the base origin along the base's z axis ((m/s)²)."""
    del p
    return jnp.square(q.base_lin_vel[2])


def ang_vel_xy(q: StepQuantities, p: RewardParams) -> jax.Array:
    """ω_x² + ω_y²: roll and pitch rates of the base, base axes ((rad/s)²)."""
    del p
    return jnp.sum(jnp.square(q.base_ang_vel[:2]))


def torques(q: StepQuantities, p: RewardParams) -> jax.Array:
    """Σ_j τ_j²: the 12 motor torques of the step's last physics step ((N·m)²)."""
    del p
    return jnp.sum(jnp.square(q.torque))


def dof_acc(q: StepQuantities, p: RewardParams) -> jax.Array:
    """Σ_j ((q̇_j − q̇_j,before) / control_dt)²: joint accelerations over the control step ((rad/s²)²)."""
    return jnp.sum(jnp.square((q.joint_vel - q.joint_vel_before) / p.control_dt))


def action_rate(q: StepQuantities, p: RewardParams) -> jax.Array:
    """Σ_j (a_last,j − a_j)²: change of the action from the previous step."""
    del p
    return jnp.sum(jnp.square(q.last_action - q.action))


def collision(q: StepQuantities, p: RewardParams) -> jax.Array:
    """Number of the trunk, thigh and calf bodies touching the floor (0 to 9).

    legged_gym counts the bodies whose contact force exceeds 0.1 N; in this env those bodies do not collide in
    MJX (their boxes cost half the simulation speed), so the per-body geometric check of
    ``base.body_ground_contacts`` (the one behind the env's termination) stands in for their contact forces.
    Since any such contact also ends the episode, the count is non-zero only on the step of a fall.
    """
    del p
    return jnp.sum(q.body_ground_contacts.astype(jnp.float32))


@struct.dataclass
class AirTimeStep:
    """One control step of legged_gym's foot air-time bookkeeping, per foot ``[4]``."""

    touchdown: jax.Array
    """bool: the foot lands on this step after a flight (``air_time > 0`` and filtered contact)."""
    air_time: jax.Array
    """Time in the air counted through this step (s): the air time before it plus ``control_dt``."""
    next_air_time: jax.Array
    """The air time carried to the next step (s): ``air_time``, reset to 0 where the filtered contact holds."""


def air_time_step(air_time: jax.Array, last_contact: jax.Array, contact: jax.Array, dt: float) -> AirTimeStep:
    """legged_gym's air-time rule for one step. The contact is filtered over two steps (``contact`` or
    ``last_contact``) so that one step of lost contact does not start a flight.

    Args:
      air_time: ``[4]`` time each foot has been in the air before this step (s).
      last_contact: bool ``[4]`` the previous step's contact.
      contact: bool ``[4]`` this step's contact.
      dt: the control period (s).
    """
    filtered = contact | last_contact
    touchdown = (air_time > 0.0) & filtered
    counted = air_time + dt
    return AirTimeStep(touchdown=touchdown, air_time=counted, next_air_time=jnp.where(filtered, 0.0, counted))


def feet_air_time(q: StepQuantities, p: RewardParams) -> jax.Array:
    """Σ_feet (air time − ``p.air_time_target``) at each foot's touchdown (s), 0 while the xy command's norm is at
    most :data:`AIR_TIME_MIN_COMMAND`: rewards flights longer than the target (:func:`air_time_step`)."""
    step = air_time_step(q.feet_air_time, q.last_foot_contact, q.foot_contact, p.control_dt)
    paid = jnp.sum(jnp.where(step.touchdown, step.air_time - p.air_time_target, 0.0))
    return jnp.where(jnp.linalg.norm(q.command[:2]) > AIR_TIME_MIN_COMMAND, paid, 0.0)


def termination(q: StepQuantities, p: RewardParams) -> jax.Array:
    """1 where the step ended the episode by a fall, 0 otherwise (also at a time-out). Added after the clip."""
    del p
    return q.fell.astype(jnp.float32)


def dof_pos_limits(q: StepQuantities, p: RewardParams) -> jax.Array:
    """Σ_j (max(lo_j − q_j, 0) + max(q_j − hi_j, 0)): how far the joints are outside the soft limits (rad)."""
    lower = jnp.asarray(p.soft_joint_lower, jnp.float32)
    upper = jnp.asarray(p.soft_joint_upper, jnp.float32)
    return jnp.sum(jnp.maximum(lower - q.joint_pos, 0.0) + jnp.maximum(q.joint_pos - upper, 0.0))


TERMS: dict[str, RewardTerm] = {
    "tracking_lin_vel": tracking_lin_vel,
    "tracking_ang_vel": tracking_ang_vel,
    "tracking_lin_vel_fine": tracking_lin_vel_fine,
    "tracking_ang_vel_fine": tracking_ang_vel_fine,
    "tracking_lin_vel_y": tracking_lin_vel_y,
    "lin_vel_z": lin_vel_z,
    "ang_vel_xy": ang_vel_xy,
    "torques": torques,
    "dof_acc": dof_acc,
    "action_rate": action_rate,
    "collision": collision,
    "feet_air_time": feet_air_time,
    "termination": termination,
    "dof_pos_limits": dof_pos_limits,
}
"""Every task-reward term by name (the names of ``RewardScales``' fields)."""

PROJECT_TERMS = ("tracking_lin_vel_fine", "tracking_ang_vel_fine", "tracking_lin_vel_y")
"""The tracking terms that are this project's own, in neither the reference nor legged_gym."""

LEGGED_GYM_TERMS = tuple(name for name in TERMS if name not in PROJECT_TERMS)
"""The terms of legged_gym's locomotion reward (the complex-reward baseline turns on every one)."""

AFTER_CLIP = ("termination",)
"""Terms added after the total is clipped at 0 (legged_gym's order)."""


def check_scales(scales: dict[str, float]) -> None:
    """Raises ValueError naming the first scale that is not a reward term."""
    for name in scales:
        if name not in TERMS:
            raise ValueError(f"env.reward_scales.{name}: not a reward term; expected one of {', '.join(TERMS)}")


def task_reward(scales: dict[str, float], quantities: StepQuantities,
                params: RewardParams) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Scaled terms and their sum: the terms but :data:`AFTER_CLIP` summed and clipped at 0 from below, then
    those added.

    Args:
      scales: term name → scale (per control step); terms with scale 0 are not computed.
      quantities: the step's :class:`StepQuantities` (the fields of every non-zero term present).
      params: the env's :class:`RewardParams`.
    Returns:
      (reward scalar, {name: scaled term scalar}) for the terms with a non-zero scale.
    """
    check_scales(scales)
    active = {name: scale for name, scale in scales.items() if scale != 0}
    terms = {name: scale * TERMS[name](quantities, params) for name, scale in active.items()
             if name not in AFTER_CLIP}
    reward = jnp.maximum(sum(terms.values(), jnp.zeros(())), 0.0)
    for name in AFTER_CLIP:
        if name in active:
            terms[name] = active[name] * TERMS[name](quantities, params)
            reward = reward + terms[name]
    return reward, terms
