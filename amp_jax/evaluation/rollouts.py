"""An evaluation's MJX rollouts, all rows of one compiled program.

The schedule's rollout, the trot check (:func:`amp_jax.analysis.speed.trot_rows`), the speed sweep
(:func:`amp_jax.analysis.sweep.sweep_rows`) and the command grid in MJX (:func:`amp_jax.evaluation.mjx_grid.grid_rows`)
differ only in their commands, start poses and lengths, so :func:`run_rollouts` stacks them into one batched call
(:func:`amp_jax.analysis.rollout.run_rows`): one compilation per evaluation instead of one per part. Every env is
the run's evaluation env (:func:`amp_jax.analysis.rollout.evaluation_env_config`), starting from the default pose
(the sweep's from perturbed ones).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from amp_jax.analysis import command_schedule, speed
from amp_jax.analysis import sweep as sweep_lib
from amp_jax.analysis.command_schedule import CommandSegment
from amp_jax.analysis.rollout import RolloutRows, Trajectory, evaluation_env_config, run_rows
from amp_jax.envs.a1_amp import A1AmpEnv
from amp_jax.training.run_folder import RunPolicy


def rollout_policy(policy: RunPolicy, commands: np.ndarray, seed: int = 0) -> Trajectory:
    """The deterministic rollout of ``policy`` under ``commands [T, 3]`` (NumPy arrays out)."""
    env = A1AmpEnv(evaluation_env_config(policy.cfg.env), None)
    (trajectory,) = run_rows(env, policy.policy_fn, policy.params,
                             [RolloutRows.held(np.asarray(commands)[None], jax.random.key(seed))])
    return jax.tree.map(lambda x: x[0], trajectory)


@dataclasses.dataclass(frozen=True)
class GridPlan:
    """The grid's commands in MJX, the clip reference they are judged against, and their rollout rows."""

    commands: tuple
    reference: Any
    schedules: list
    """Each command's held schedule and measured window at the env's control step."""
    rows: RolloutRows


@dataclasses.dataclass(frozen=True)
class Rollouts:
    """An evaluation's MJX rollouts (NumPy leaves), all from one call of one compiled program."""

    schedule: Trajectory
    """``[T, ...]`` the command schedule's."""
    trot: Trajectory
    """``[1, T, ...]`` the trot check's (:func:`amp_jax.analysis.speed.trot_rows`)."""
    sweep: Trajectory | None = None
    """``[K · S, T, ...]`` the speed sweep's (:func:`amp_jax.analysis.sweep.sweep_rows`), when asked for."""
    sweep_speeds: np.ndarray | None = None
    grid: Trajectory | None = None
    """``[G, T, ...]`` the grid's in MJX (:func:`amp_jax.evaluation.mjx_grid.grid_rows`), when asked for."""
    grid_plan: GridPlan | None = None
    robot_mass: float = 0.0
    """The evaluation env's robot mass (kg), for the costs of transport."""
    control_dt: float = 0.0
    """The evaluation env's control step (s)."""


def plan_grid(control_dt: float) -> GridPlan:
    """The command grid's commands (:mod:`amp_jax.deploy.command_grid`), schedules and rows for the MJX rollout."""
    from amp_jax.deploy import command_grid
    from amp_jax.evaluation import mjx_grid

    reference = command_grid.clip_reference()
    commands = command_grid.grid_commands(reference)
    schedules, rows = mjx_grid.grid_rows(commands, control_dt)
    return GridPlan(commands=commands, reference=reference, schedules=schedules, rows=rows)


def run_rollouts(policy: RunPolicy, schedule: Sequence[CommandSegment],
                 sweep: sweep_lib.SweepSettings | None = None, grid: GridPlan | None = None) -> Rollouts:
    """The schedule's rollout, the trot check's and, when asked for, the speed sweep's and the grid's, as rows of
    one batched rollout (:func:`amp_jax.analysis.rollout.run_rows`): one compilation for the whole evaluation."""
    env = A1AmpEnv(evaluation_env_config(policy.cfg.env), None)
    dt = env.cfg.control_dt
    requests = [RolloutRows.held(command_schedule.commands_from_schedule(schedule, dt)[None], jax.random.key(0)),
                speed.trot_rows(dt)]
    speeds = None
    if sweep is not None:
        speeds, rows = sweep_lib.sweep_rows(env.cfg, sweep)
        requests.append(rows)
    if grid is not None:
        requests.append(grid.rows)
    out = iter(run_rows(env, policy.policy_fn, policy.params, requests))
    main, trot = next(out), next(out)
    return Rollouts(schedule=jax.tree.map(lambda x: x[0], main), trot=trot,
                    sweep=next(out) if sweep is not None else None, sweep_speeds=speeds,
                    grid=next(out) if grid is not None else None, grid_plan=grid, robot_mass=env.robot_mass,
                    control_dt=dt)
