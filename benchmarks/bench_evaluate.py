"""Cost of a run's evaluation: MJX rollout, C MuJoCo sim-to-sim, policy inference, gait metrics.

``python benchmarks/bench_evaluate.py [--seconds 9]``: uses a freshly initialised policy of the reference size
(actor 512-256-128) on the a1_trot config, so no run folder is needed; the figures do not depend on the weights
except through how long the robot stays up (the contacts then differ, not the cost).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import tempfile
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from amp_jax.agents import networks  # noqa: E402
from amp_jax.analysis import command_schedule, gait  # noqa: E402
from amp_jax.analysis import rollout as rollout_lib
from amp_jax.config import load_config  # noqa: E402
from amp_jax.deploy import export_policy, onnx_export, sim2sim  # noqa: E402
from amp_jax.envs.a1_amp import A1AmpEnv  # noqa: E402
from amp_jax.motion.loader import load_clips  # noqa: E402
from amp_jax.training import run_folder  # noqa: E402


def timed(fn, repeat: int = 1):
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return out, (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=9.0, help="length of the command schedule (s)")
    args = parser.parse_args()
    cfg = load_config(["a1_trot"])
    nets = networks.make_networks(cfg.networks, 12)
    params = networks.init_params(nets, jax.random.key(0), 42, 48, 43)
    params = params.replace(actor=jax.tree.map(lambda x: 0.1 * x, params.actor))  # small actions: it stands
    tmp = pathlib.Path(tempfile.mkdtemp())
    policy = run_folder.RunPolicy(tmp, cfg, nets, params, 0)
    schedule = (command_schedule.CommandSegment(args.seconds, 0.5, 0.0, 0.0),)
    commands = command_schedule.commands_from_schedule(schedule, cfg.env.control_dt)
    steps = commands.shape[0]
    print(f"device: {jax.devices()[0]}, {steps} control steps ({args.seconds:g} s), decimation {cfg.env.decimation}")

    env = A1AmpEnv(rollout_lib.evaluation_env_config(cfg.env), None)
    rollout = rollout_lib.make_rollout(env, policy.policy_fn)
    key = jax.random.key(0)
    _, first = timed(lambda: jax.block_until_ready(rollout(params, commands, key)))
    trajectory, warm = timed(lambda: jax.block_until_ready(rollout(params, commands, key)), repeat=3)
    print(f"MJX rollout (1 env, lax.scan): first call {first:.1f} s (compile), then {warm:.2f} s = "
          f"{steps / warm:.0f} control steps/s")

    exported, t_export = timed(lambda: export_policy.export_policy(policy, tmp / "policy.onnx"))
    print(f"ONNX export + parity check: {t_export:.1f} s, max |diff| {exported.max_abs_diff:.2g}")
    result, t_sim = timed(lambda: sim2sim.run_sim2sim(exported.path, schedule))
    print(f"C MuJoCo sim-to-sim with onnxruntime: {t_sim:.2f} s = {steps / t_sim:.0f} control steps/s "
          f"(upright: {result.upright})")

    obs = np.random.default_rng(0).normal(size=(42,)).astype(np.float32)
    session = onnx_export.load_session(exported.path)
    _, t_onnx = timed(lambda: onnx_export.run_onnx(session, obs), repeat=2000)
    jitted = jax.jit(policy.policy_fn)
    jax.block_until_ready(jitted(params, obs))
    _, t_jax = timed(lambda: jax.block_until_ready(jitted(params, obs)), repeat=2000)
    print(f"one observation: onnxruntime {t_onnx * 1e6:.0f} us, jitted JAX {t_jax * 1e6:.0f} us")

    clips = load_clips(cfg.motion.resolved_files())
    trajectory = jax.tree.map(np.asarray, trajectory)
    contacts = gait.contacts_from_heights(trajectory.foot_heights)
    _, t_gait = timed(lambda: gait.gait_similarity(trajectory.amp_obs, contacts, [c.frames for c in clips],
                                                   clips[0].frames), repeat=20)
    print(f"gait similarity ({steps} policy frames vs {sum(len(c.frames) for c in clips)} reference frames): "
          f"{t_gait * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
