"""Deterministic rollouts of a policy in the evaluation env, and what is measured of them.

The evaluation env (:func:`evaluation_env_config`) is the run's env with noise, pushes, randomisation,
reference-state init, time-outs and command draws off. :func:`make_rollout` rolls out the mean action from
the default pose in one jitted ``lax.scan`` under a command per control step; the training probe, the
trot check, the speed sweep and the evaluation all use it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from amp_jax import a1
from amp_jax.analysis import upright
from amp_jax.config import EnvConfig
from amp_jax.envs import base as env_base
from amp_jax.envs import observations
from amp_jax.envs.a1_amp import A1AmpEnv, MotorWork

PREFERRED_CONTACT_REFERENCE = "trot0"
"""The gait diagram's and contact similarity's reference clip when the run uses it; else its first clip."""
EVAL_HORIZON_S = 1e6
"""Episode length and command period of the evaluation env (s): longer than any schedule, so neither a time-out
nor a command draw interferes; 3.3e7 control steps still fit the env's int32 step counter."""


def evaluation_env_config(env: EnvConfig) -> EnvConfig:
    """``env`` with noise, pushes, randomisation, reference-state init, time-outs and command draws off."""
    return dataclasses.replace(
        env, add_noise=False, push_robots=False, randomize_gains=False, randomize_friction=False,
        randomize_base_mass=False, rsi_probability=0.0, randomize_initial_episode_length=False,
        episode_length_s=EVAL_HORIZON_S, command_resample_s=EVAL_HORIZON_S)


@struct.dataclass
class Trajectory:
    """One deterministic rollout, one row per control step (the state after that step)."""

    qpos: jax.Array
    """``[T, 19]`` MuJoCo positions."""
    foot_heights: jax.Array
    """``[T, 4]`` foot-sphere centre heights above the floor (m), legs FL, FR, RL, RR."""
    base_lin_vel: jax.Array
    """``[T, 3]`` base linear velocity, base frame (m/s)."""
    base_ang_vel: jax.Array
    """``[T, 3]`` base angular velocity, base frame (rad/s)."""
    command: jax.Array
    """``[T, 3]`` the command the step's action was chosen for (v_x, v_y, yaw rate)."""
    amp_obs: jax.Array
    """``[T, 43]`` AMP observation."""
    terminated: jax.Array
    """``[T]`` bool: the env's termination test (trunk, thigh or calf on the floor) fired."""
    motor_work: MotorWork
    """``[T]`` leaves: the joint motors' work during the step (J)."""
    foot_forces: jax.Array
    """``[T, 4]`` normal force of the floor on each foot at the step's last physics step (N), legs FL, FR, RL, RR
    (:meth:`amp_jax.envs.a1_amp.A1AmpEnv.foot_normal_forces`; NaN with ``impl='warp'``, whose contacts it cannot
    read)."""

    @property
    def measured(self) -> jax.Array:
        """``[T, 3]`` measured (v_x, v_y, yaw rate), comparable with :attr:`command`."""
        return jnp.concatenate([self.base_lin_vel[..., :2], self.base_ang_vel[..., 2:3]], axis=-1)


def foot_heights(geometry: env_base.LegGeometry, qpos: jax.Array) -> jax.Array:
    """World heights ``[4]`` (m) of the foot-sphere centres of the pose ``qpos [19]``."""
    _, _, feet = env_base.leg_points(geometry, qpos[a1.QPOS_JOINTS])
    return qpos[2] + env_base.quat_rotate(env_base.base_quat(qpos), feet)[:, 2]


def make_rollout(env: A1AmpEnv, policy_fn: Callable[[Any, jax.Array], jax.Array], *,
                 initial_joint_noise: float = 0.0) -> Callable[[Any, jax.Array, jax.Array], Trajectory]:
    """A jitted ``rollout(params, commands [T, 3], key) -> Trajectory`` of the mean action from the default pose.

    ``env`` should have an :func:`evaluation_env_config`. Before each step the command of that step is written
    into the env state and the policy observation is rebuilt with it (noise off, so it equals the env's own).
    With ``initial_joint_noise > 0`` (rad) the start pose's joint angles are the default ones plus
    U[±initial_joint_noise] drawn from ``key``, so that rollouts of different keys differ.
    """
    geometry = env_base.leg_geometry(env.mj_model)
    qpos0, qvel0 = env.default_pose()

    def step(params, state, command):
        state = env.with_command(state, command)
        state, work = env.step_with_work(state, policy_fn(params, state.obs[observations.POLICY_OBS_KEY]))
        qpos, qvel = state.pipeline_state.qpos, state.pipeline_state.qvel
        terminated = (state.done > 0) & (state.info["truncation"] == 0)
        forces = (env.foot_normal_forces(state.pipeline_state) if env.cfg.impl == "jax"
                  else jnp.full((4,), jnp.nan))
        return state, Trajectory(qpos=qpos, foot_heights=foot_heights(geometry, qpos),
                                 base_lin_vel=env_base.base_lin_vel(qpos, qvel),
                                 base_ang_vel=env_base.base_ang_vel(qvel), command=command,
                                 amp_obs=state.info["amp_obs"], terminated=terminated, motor_work=work,
                                 foot_forces=forces)

    @jax.jit
    def rollout(params, commands: jax.Array, key: jax.Array) -> Trajectory:
        start = qpos0
        if initial_joint_noise > 0:
            key, k_start = jax.random.split(key)
            start = qpos0.at[a1.QPOS_JOINTS].add(jax.random.uniform(k_start, (12,), minval=-initial_joint_noise,
                                                        maxval=initial_joint_noise))
        state = env.reset_to(key, start, qvel0, gait_phase=0.0)  # a gait clock starts as a runner's does
        _, trajectory = jax.lax.scan(functools.partial(step, params), state, commands)
        return trajectory

    return rollout


def _first_time(flags: np.ndarray, control_dt: float) -> float | None:
    hits = np.flatnonzero(np.asarray(flags))
    return None if hits.size == 0 else float((hits[0] + 1) * control_dt)


def first_termination_s(trajectory: Trajectory, control_dt: float) -> float | None:
    """Time (s) at the end of the first step the training env would have ended (trunk, thigh or calf on the
    floor), else None."""
    return _first_time(trajectory.terminated, control_dt)


def first_fall_s(trajectory: Trajectory, control_dt: float) -> float | None:
    """Time (s) at the end of the first step at which the robot is not upright by the sim-to-sim check's test
    (:func:`amp_jax.analysis.upright.is_upright`: tilt and base height), else None."""
    return _first_time(np.array([not upright.is_upright(q) for q in np.asarray(trajectory.qpos)]), control_dt)


def tracking_rms(trajectory: Trajectory) -> dict[str, float]:
    """RMS of commanded − measured over the rollout per axis: ``vx``, ``vy`` (m/s), ``yaw_rate`` (rad/s)."""
    err = np.asarray(trajectory.command, np.float64) - np.asarray(trajectory.measured, np.float64)
    rms = np.sqrt(np.mean(err * err, axis=0))
    return {"vx": float(rms[0]), "vy": float(rms[1]), "yaw_rate": float(rms[2])}


def contact_reference_index(clip_names: Sequence[str]) -> int:
    """Index of :data:`PREFERRED_CONTACT_REFERENCE` among the run's clips, else 0 (the first clip)."""
    names = list(clip_names)
    return names.index(PREFERRED_CONTACT_REFERENCE) if PREFERRED_CONTACT_REFERENCE in names else 0
