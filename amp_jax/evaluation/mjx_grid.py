"""The full task's command grid in MJX: the run's own policy in the training simulator, beside the C MuJoCo grid of
its ONNX export (:mod:`amp_jax.deploy.command_grid`).

The same commands, conditions (0.5 s settling at the zero command from the default pose, then 8 s held, the last
75 % measured; no pushes, randomisation or observation noise), measures and goal criteria as the C MuJoCo grid:
every command is one row of a vmapped rollout (:func:`amp_jax.analysis.rollout.run_rows`), contacts come from
the MJX contact forces, and the motor work is the env's own count. A gap between the two grids is a sim-to-sim gap
of the policy, not of the measuring.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from amp_jax.analysis import rollout as rollout_lib
from amp_jax.analysis.report_json import json_ready
from amp_jax.deploy import command_grid
from amp_jax.deploy.mirror_check import held_commands
from amp_jax.envs.a1_amp import A1AmpEnv
from amp_jax.training.run_folder import RunPolicy

SIMULATOR = "MJX (the run's policy)"


def held_run(trajectory: rollout_lib.Trajectory, control_dt: float) -> command_grid.HeldRun:
    """One command's MJX rollout (NumPy leaves, ``[T, ...]``) as the grid measures runs."""
    fell_at = rollout_lib.first_fall_s(trajectory, control_dt)
    return command_grid.HeldRun(
        upright=fell_at is None, fell_at_s=fell_at, qpos=np.asarray(trajectory.qpos, np.float64),
        measured=np.asarray(trajectory.measured, np.float64),
        foot_forces=np.asarray(trajectory.foot_forces, np.float64),
        work_positive=np.asarray(trajectory.motor_work.positive, np.float64),
        work_absolute=np.asarray(trajectory.motor_work.absolute, np.float64))


def grid_rows(commands: Sequence[tuple[str, tuple[float, float, float]]], control_dt: float, seed: int = 0
              ) -> tuple[list, rollout_lib.RolloutRows]:
    """Each grid command's held schedule and measured window (:func:`amp_jax.deploy.mirror_check.held_commands`)
    and the grid's rollout rows, one per command, all from the default pose."""
    schedules = [held_commands(command, control_dt) for _, command in commands]
    batch = np.stack([schedule for schedule, _ in schedules]).astype(np.float32)  # [G, T, 3]
    return schedules, rollout_lib.RolloutRows.held(batch, jax.random.key(seed))


def grid_of(trajectories: rollout_lib.Trajectory, commands: Sequence[tuple[str, tuple[float, float, float]]],
            schedules: list, reference: command_grid.ClipReference, mass: float, control_dt: float
            ) -> dict[str, Any]:
    """The grid's report (as the C MuJoCo grid's, JSON-ready) of the rollout of :func:`grid_rows` (NumPy leaves
    ``[G, T, ...]``)."""
    results = {}
    for i, ((name, command), (_, window)) in enumerate(zip(commands, schedules)):
        trajectory = jax.tree.map(lambda x, i=i: np.asarray(x[i]), trajectories)
        results[name] = command_grid.measure_run(name, command, held_run(trajectory, control_dt), window, mass,
                                                 control_dt)
    return command_grid.grid_report(results, reference, mass, SIMULATOR)


def style_of_rows(policy: RunPolicy, trajectories: rollout_lib.Trajectory,
                  commands: Sequence[tuple[str, tuple[float, float, float]]], schedules: list) -> dict[str, Any] | None:
    """The run's own discriminator on each command's measured window (:mod:`amp_jax.analysis.style`): per command
    the mean ``D`` and style reward of its consecutive AMP observations, and the same on the run's clips; None for a
    run without a discriminator. Shows which commands the prior likes the policy's motion for, e.g. whether a
    command it stands still for scores above or below its walking."""
    from amp_jax.analysis import style

    if not policy.cfg.amp.enabled or policy.amp_normalizer is None:
        return None
    clips = style.clip_transitions(policy.cfg, jax.random.key(0))
    per_command, clip_scores = {}, None
    for i, ((name, _), (_, window)) in enumerate(zip(commands, schedules)):
        obs = np.asarray(trajectories.amp_obs[i])[window]
        scores = style.discriminator_scores(policy.networks, policy.params, policy.amp_normalizer, policy.cfg,
                                            style.transitions(obs), clips)
        per_command[name] = {"d_policy": scores["d_policy"], "style_reward": scores["style_reward_policy"]}
        clip_scores = {"d_clips": scores["d_clips"], "style_reward_clips": scores["style_reward_clips"]}
    return {"commands": per_command, **clip_scores, "reward_coef": policy.cfg.amp.reward_coef}


def evaluate_grid_mjx(policy: RunPolicy, reference: command_grid.ClipReference | None = None,
                      commands: Sequence[tuple[str, tuple[float, float, float]]] | None = None,
                      seed: int = 0) -> dict[str, Any]:
    """Every command of the grid (default :func:`amp_jax.deploy.command_grid.grid_commands`) held by ``policy``'s
    deterministic action in MJX, all commands in one vmapped rollout; the report as the C MuJoCo grid's
    (:func:`amp_jax.deploy.command_grid.grid_report`, JSON-ready), with the run's discriminator per command under
    ``"style"`` (:func:`style_of_rows`) when it has one."""
    reference = command_grid.clip_reference() if reference is None else reference
    commands = command_grid.grid_commands(reference) if commands is None else tuple(commands)
    env = A1AmpEnv(rollout_lib.evaluation_env_config(policy.cfg.env), None)
    schedules, rows = grid_rows(commands, env.cfg.control_dt, seed)
    (trajectories,) = rollout_lib.run_rows(env, policy.policy_fn, policy.params, [rows])
    return policy_grid_of(policy, trajectories, commands, schedules, reference, env.robot_mass, env.cfg.control_dt)


def policy_grid_of(policy: RunPolicy, trajectories: rollout_lib.Trajectory,
                   commands: Sequence[tuple[str, tuple[float, float, float]]], schedules: list,
                   reference: command_grid.ClipReference, mass: float, control_dt: float) -> dict[str, Any]:
    """:func:`grid_of` with the run's discriminator per command under ``"style"`` (:func:`style_of_rows`) when
    ``policy`` has one."""
    report = grid_of(trajectories, commands, schedules, reference, mass, control_dt)
    style_scores = style_of_rows(policy, trajectories, commands, schedules)
    return report if style_scores is None else {**report, "style": style_scores}


def parse_command(text: str) -> tuple[str, tuple[float, float, float]]:
    """``"NAME=VX,VY,YAW"`` -> ``(NAME, (vx, vy, yaw))``; ValueError naming what was expected."""
    name, sep, values = text.partition("=")
    parts = values.split(",")
    try:
        command = tuple(float(v) for v in parts)
    except ValueError:
        command = ()
    if not sep or not name.strip() or len(command) != 3:
        raise ValueError(f"--command {text!r}: expected NAME=VX,VY,YAW (m/s, m/s, rad/s), e.g. backward=-0.5,0,0")
    return name.strip(), command


def main(argv: list[str] | None = None) -> int:
    from amp_jax.training import run_folder

    parser = argparse.ArgumentParser(prog="python -m amp_jax.evaluation.mjx_grid",
                                     description="The full task's command grid in MJX with a run's own policy, and "
                                                 "its discriminator's score of each command's motion.")
    parser.add_argument("run_dir", help="a run folder (or a packaged one under pretrained/)")
    parser.add_argument("--step", type=int, help="the checkpoint step (default: the newest)")
    parser.add_argument("--command", action="append", default=[], metavar="NAME=VX,VY,YAW",
                        help="a command to hold instead of the goal's grid (repeat for several)")
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args(argv)
    try:
        commands = tuple(parse_command(text) for text in args.command) or None
    except ValueError as err:
        parser.error(str(err))
    policy = run_folder.load_run_policy(args.run_dir, step=args.step)
    report = evaluate_grid_mjx(policy, commands=commands)
    print(f"{args.run_dir} at step {policy.step}")
    print(command_grid.format_report(report))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(json_ready(report), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
