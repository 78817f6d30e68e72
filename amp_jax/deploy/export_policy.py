"""The trained policy of a run folder: rebuilt from the folder alone, exported to ONNX with what a runner needs.

``python -m amp_jax.export_policy RUN_DIR [--out policy.onnx] [--step N]`` reads the policy file of the newest (or
the given) step of ``RUN_DIR`` (``policies/<step>.npz``: parameters and the run's config; the trainer is not
built), writes the deterministic policy (the mean action) with :func:`amp_jax.deploy.onnx_export.export_onnx`,
then runs the file with onnxruntime on random observations and checks it against the Flax network to
:data:`amp_jax.deploy.onnx_export.PARITY_TOLERANCE`, printing the largest difference. The model's metadata
(:func:`policy_metadata`) holds the observation layout with its scales, the action scale, default joint angles,
joint order, PD gains and effort limits, the control period and decimation, and the run's whole configuration.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import sys
import uuid
from typing import Any

import jax
import numpy as np

from amp_jax import a1
from amp_jax import config as config_lib
from amp_jax.agents import networks as networks_lib
from amp_jax.config import Config
from amp_jax.deploy import onnx_export
from amp_jax.envs import observations
from amp_jax.training.run_folder import RunFolderError, RunPolicy, load_run_policy

ONNX_FILE = "policy.onnx"
"""Default name of the exported policy inside the run folder."""

PARITY_SAMPLES = 256
"""Random observations of the parity check."""


# ----------------------------------------------------------------------------------------------------------
# Metadata


def observation_layout(cfg: Config) -> list[dict[str, Any]]:
    """One control step's policy observation (42; 3 more with the gyroscope, 3 more with the linear velocity, 2
    more with a gait clock) as ``[{name, start, stop, scale [n], formula}]`` in order.

    The policy observation is the critic observation (``amp_jax.envs.observations``) without its base
    velocities, without its linear velocity alone when the policy observes the base's angular velocity
    (``env.policy_base_ang_vel``), or all of it when the policy also observes the linear velocity
    (``env.policy_base_lin_vel``); each entry is ``scale · quantity`` (element-wise), then clipped to
    ``±clip_observations``.
    """
    env = cfg.env
    lin, ang = env.obs_scale_lin_vel, env.obs_scale_ang_vel
    lin_vel = (("base_lin_vel", observations.CRITIC_BASE_LIN_VEL, [lin] * 3,
                "linear velocity of the base in base axes (a state estimator's; training saw the true velocity "
                f"with uniform noise of ±{env.noise_lin_vel * env.noise_level:g} m/s), m/s"),)
    gyro = (("base_ang_vel", observations.CRITIC_BASE_ANG_VEL, [ang] * 3,
             "angular velocity of the base in base axes (the IMU's gyroscope), rad/s"),)
    parts = lin_vel * env.policy_base_lin_vel + gyro * env.policy_base_ang_vel + (
        ("projected_gravity", observations.CRITIC_GRAVITY, [1.0] * 3,
         "gravity direction (0, 0, -1) in base axes"),
        ("commands", observations.CRITIC_COMMAND, [lin, lin, ang],
         "commanded (v_x, v_y, yaw rate) in the base frame, m/s and rad/s"),
        ("joint_pos", observations.CRITIC_JOINT_POS, [env.obs_scale_dof_pos] * 12,
         "joint angle minus default_joint_angles, rad, joint_names order"),
        ("joint_vel", observations.CRITIC_JOINT_VEL, [env.obs_scale_dof_vel] * 12, "joint velocity, rad/s"),
        ("last_action", observations.CRITIC_LAST_ACTION, [1.0] * 12,
         "the filtered action of the last step (action_filter_hz)" if env.action_filter_hz > 0
         else "the clipped action applied last step"),
    )
    if observations.gait_clock_size(env):
        parts += (("gait_clock", observations.CRITIC_GAIT_CLOCK, [1.0] * 2,
                   "(sin 2πφ, cos 2πφ), φ = gait_clock_hz · t in cycles, t s since the policy started (any start "
                   "phase works: training draws it at random)"),)
    offset = observations.policy_from_critic(env).start
    layout = [{"name": name, "start": s.start - offset, "stop": s.stop - offset, "scale": scale, "formula": text}
              for name, s, scale, text in parts]
    if [(p["name"], p["stop"] - p["start"]) for p in layout] != list(observations.policy_frame_parts(env)) or \
            layout[-1]["stop"] != observations.policy_frame_size(env) or layout[0]["start"] != 0:
        raise AssertionError("policy observation layout does not cover the policy observation")
    return layout


def policy_metadata(cfg: Config, *, run_name: str = "", step: int | None = None) -> dict[str, Any]:
    """What a robot-side runner needs besides the network, JSON-ready (stored in the ONNX metadata)."""
    env = cfg.env
    return {
        "observation_size": observations.policy_obs_size(env),
        "action_size": observations.NUM_ACTIONS,
        "observation_layout": observation_layout(cfg),
        "gait_clock_hz": env.gait_clock_hz,
        "policy_history": env.policy_history,
        "observation_history": (
            f"the observation is this control step's observation_layout followed by those of the {env.policy_history} "
            "steps before it, newest first; at the start the first step's stands in for the steps before it"
            if env.policy_history else "none: the observation is this control step's observation_layout"),
        "clip_observations": env.clip_observations,
        "action_to_joint_target": (
            "a = clip(action, +-clip_actions); f <- f + alpha * (a - f), alpha = 1 - exp(-2 pi action_filter_hz "
            "control_dt), f starting at (q - default_joint_angles) / action_scale; q_target = default_joint_angles "
            "+ action_scale * f" if env.action_filter_hz > 0 else
            "q_target = default_joint_angles + action_scale * clip(action, +-clip_actions)"),
        "action_filter_hz": env.action_filter_hz,
        "action_scale": env.action_scale,
        "clip_actions": env.clip_actions,
        "joint_names": list(a1.JOINT_NAMES),
        "default_joint_angles": [float(x) for x in env.default_joint_pos],
        "pd_law": "torque = clip(kp * (q_target - q) - kd * qd, +-effort_limits)",
        "kp": env.kp,
        "kd": env.kd,
        "effort_limits": [float(x) for x in a1.EFFORT_LIMIT],
        "control_dt": env.control_dt,
        "physics_dt": env.physics_dt,
        "decimation": env.decimation,
        "config_name": run_name,
        "checkpoint_step": -1 if step is None else int(step),
        "config": config_lib.to_dict(cfg),
    }


# ----------------------------------------------------------------------------------------------------------
# Export


@dataclasses.dataclass(frozen=True)
class ExportResult:
    path: pathlib.Path
    """The ONNX file written."""
    max_abs_diff: float
    """Largest |onnxruntime − Flax| over the parity check's actions."""
    step: int
    """Checkpoint step exported."""


def parity_error(path: str | pathlib.Path, policy: RunPolicy, *, samples: int = PARITY_SAMPLES,
                 seed: int = 0) -> float:
    """Largest |onnxruntime − Flax mean action| over ``samples`` random observations ``[samples, S]`` (``S`` the
    policy observation's size, one step's times 1 + ``env.policy_history``).

    Observations are standard normal scaled by 3 (wider than any scaled observation of a walking robot), so
    every ELU branch is exercised.
    """
    obs = (3.0 * np.random.default_rng(seed).normal(size=(samples, observations.policy_obs_size(policy.cfg.env)))
           ).astype(np.float32)
    flax_actions = np.asarray(networks_lib.policy_mean(policy.networks, policy.params, obs))
    return float(np.max(np.abs(onnx_export.run_onnx(path, obs) - flax_actions)))


def export_policy(policy: RunPolicy, out: str | pathlib.Path | None = None) -> ExportResult:
    """Writes ``policy`` to ONNX (default ``<run_dir>/policy.onnx``) and checks it against Flax.

    Raises:
      amp_jax.deploy.onnx_export.ExportError: the conversion failed, or onnxruntime differs by more than
        :data:`amp_jax.deploy.onnx_export.PARITY_TOLERANCE`.
    """
    out = pathlib.Path(out) if out is not None else policy.run_dir / ONNX_FILE
    bad = [jax.tree_util.keystr(k) for k, v in jax.tree_util.tree_flatten_with_path(policy.params.actor)[0]
           if not np.all(np.isfinite(np.asarray(v)))]
    if bad:
        raise onnx_export.ExportError(f"{policy.run_dir}: checkpoint step {policy.step} holds non-finite actor "
                                      f"parameters ({', '.join(bad[:3])}): nothing exported")
    metadata = policy_metadata(policy.cfg, run_name=policy.run_dir.name, step=policy.step)
    # Written under a temporary name and renamed only once it passed the parity check: a failed export leaves
    # no file behind, and never replaces a good one.
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    try:
        onnx_export.export_onnx(policy.policy_fn, policy.params, observations.policy_obs_size(policy.cfg.env), tmp,
                                metadata, check=False)
        error = parity_error(tmp, policy)
        if not error <= onnx_export.PARITY_TOLERANCE:
            raise onnx_export.ExportError(f"{out}: onnxruntime differs from the Flax policy by {error:.3g} "
                                          f"(expected at most {onnx_export.PARITY_TOLERANCE}); nothing written")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(path=out, max_abs_diff=error, step=policy.step)


def export_run(run_dir: str | pathlib.Path, out: str | pathlib.Path | None = None,
               step: int | None = None) -> ExportResult:
    """:func:`load_run_policy` then :func:`export_policy`."""
    return export_policy(load_run_policy(run_dir, step), out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amp_jax.export_policy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=pathlib.Path, metavar="RUN_DIR", help="a run folder made by train.py")
    parser.add_argument("--out", type=pathlib.Path, help=f"the ONNX file (default RUN_DIR/{ONNX_FILE})")
    parser.add_argument("--step", type=int, help="checkpoint step (default: the newest)")
    args = parser.parse_args(argv)
    from amp_jax.training.checkpoint import CheckpointError
    from amp_jax.training.params_file import ParamsFileError

    try:
        result = export_run(args.run_dir, args.out, args.step)
    except (RunFolderError, CheckpointError, ParamsFileError, config_lib.ConfigError,
            onnx_export.ExportError) as err:
        print(f"export_policy: {err}", file=sys.stderr)
        return 1
    print(f"wrote {result.path} (checkpoint step {result.step}); onnxruntime vs Flax: max |difference| "
          f"{result.max_abs_diff:.3g} <= {onnx_export.PARITY_TOLERANCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
