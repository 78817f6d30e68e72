"""Deterministic rollouts of a policy in the evaluation env, and what is measured of them.

The evaluation env (:func:`evaluation_env_config`) is the run's env with noise, pushes, randomisation,
reference-state init, time-outs and command draws off. :func:`make_rollout` rolls out the mean action from
the default pose in one jitted ``lax.scan`` under a command per control step (the training probe uses it);
:func:`run_rows` rolls out many such rows, of any lengths and start poses, in one call of one compiled program
(the evaluation's schedule, trot check, speed sweep and grid in MJX together).
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


def _rollout_from_start(env: A1AmpEnv, policy_fn: Callable[[Any, jax.Array], jax.Array]
                        ) -> Callable[[Any, jax.Array, jax.Array, jax.Array], Trajectory]:
    """``rollout(params, commands [T, 3], key, start_noise) -> Trajectory`` of one env (not jitted): the mean action
    from the default pose, its joint angles offset by U[±start_noise] (rad, a traced scalar) drawn from ``key``."""
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

    def rollout(params, commands: jax.Array, key: jax.Array, start_noise: jax.Array) -> Trajectory:
        key, k_start = jax.random.split(key)
        offsets = jax.random.uniform(k_start, (12,), minval=-start_noise, maxval=start_noise)  # zeros at 0 noise
        state = env.reset_to(key, qpos0.at[a1.QPOS_JOINTS].add(offsets), qvel0,
                             gait_phase=0.0)  # a gait clock starts as a runner's does
        _, trajectory = jax.lax.scan(functools.partial(step, params), state, commands)
        return trajectory

    return rollout


def make_rollout(env: A1AmpEnv, policy_fn: Callable[[Any, jax.Array], jax.Array]
                 ) -> Callable[[Any, jax.Array, jax.Array], Trajectory]:
    """A jitted ``rollout(params, commands [T, 3], key) -> Trajectory`` of the mean action from the default pose.

    ``env`` should have an :func:`evaluation_env_config`. Before each step the command of that step is written
    into the env state and the policy observation is rebuilt with it (noise off, so it equals the env's own).
    Several rollouts, also from perturbed start poses, go through :func:`run_rows`.
    """
    one = _rollout_from_start(env, policy_fn)

    @jax.jit
    def rollout(params, commands: jax.Array, key: jax.Array) -> Trajectory:
        return one(params, commands, key, jnp.float32(0.0))

    return rollout


@dataclasses.dataclass(frozen=True)
class RolloutRows:
    """Rows of a batched deterministic rollout (:func:`run_rows`): one env each."""

    commands: np.ndarray
    """``[K, T, 3]`` the command of each row at each control step."""
    key_data: np.ndarray
    """``[K, ...]`` uint32: each row's key (``jax.random.key_data``), which draws its start pose's offsets."""
    start_noise: np.ndarray
    """``[K]`` half-width (rad) of the uniform offsets added to the default joint angles at the start."""

    @classmethod
    def held(cls, commands: np.ndarray, key: jax.Array, start_noise: float = 0.0) -> RolloutRows:
        """Rows of ``commands [K, T, 3]``, every one from ``key`` and ``start_noise``."""
        commands = np.asarray(commands, np.float32)
        rows, data = commands.shape[0], np.asarray(jax.random.key_data(key))
        return cls(commands, np.tile(data, (rows, 1)), np.full(rows, start_noise, np.float32))


def run_rows(env: A1AmpEnv, policy_fn: Callable[[Any, jax.Array], jax.Array], params: Any,
             requests: Sequence[RolloutRows]) -> list[Trajectory]:
    """Every row of every request in one call of one compiled program; each request's trajectory back (NumPy
    leaves ``[K_i, T_i, ...]``).

    The evaluation's parts (its schedule, the trot check, the speed sweep, the grid in MJX) differ only in their
    commands, start poses and lengths, so they share one program instead of compiling one each: the rows are
    stacked, and a row shorter than the longest holds its last command to the end, where it is cut off again (a
    rollout's step depends only on the steps before it)."""
    steps = max(r.commands.shape[1] for r in requests)
    commands = np.concatenate([np.concatenate([r.commands, np.repeat(r.commands[:, -1:], steps - r.commands.shape[1],
                                                                     axis=1)], axis=1) for r in requests])
    key_data = np.concatenate([r.key_data for r in requests])
    start_noise = np.concatenate([r.start_noise for r in requests]).astype(np.float32)
    one = _rollout_from_start(env, policy_fn)

    @jax.jit
    def rollouts(params, commands, key_data, start_noise):
        return jax.vmap(lambda c, k, n: one(params, c, jax.random.wrap_key_data(k), n))(commands, key_data,
                                                                                      start_noise)

    batch = jax.tree.map(np.asarray, jax.device_get(rollouts(params, commands, key_data, start_noise)))
    out, first = [], 0
    for r in requests:
        rows, length = r.commands.shape[:2]
        out.append(jax.tree.map(lambda x, a=first, b=first + rows, n=length: x[a:b, :n], batch))
        first += rows
    return out


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
