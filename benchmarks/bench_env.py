"""Physics and control steps per second of the A1 env: batched MJX against C MuJoCo on the same MJCF.

MJX: ``env.simulate`` (decimation physics steps under the PD law) vmapped over N envs and scanned over
control steps inside one jit call; also the full env step (observations, rewards, checks) the same way.
C MuJoCo: one thread stepping the scene with ``mj_step`` (``nstep`` = decimation) under small random torques,
and ``mujoco.rollout`` over N envs on all cores under the same kind of torques.

Usage: python benchmarks/bench_env.py [--envs 1 64 512 2048] [--control-steps 20]
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import mujoco
import numpy as np
from brax.envs.wrappers.training import VmapWrapper
from mujoco import rollout

from amp_jax.config import EnvConfig
from amp_jax.envs.a1_amp import A1AmpEnv


def bench_mjx(env: A1AmpEnv, num_envs: int, control_steps: int, full_step: bool) -> float:
    """Control steps per second (all envs together), compile excluded."""
    batched = VmapWrapper(env)
    state = jax.jit(batched.reset)(jax.random.split(jax.random.PRNGKey(0), num_envs))
    actions = 0.3 * jax.random.uniform(jax.random.PRNGKey(1), (control_steps, num_envs, 12), minval=-1, maxval=1)

    if full_step:
        @jax.jit
        def run(s, a):
            return jax.lax.scan(lambda c, x: (batched.step(c, x), None), s, a)[0]
    else:
        @jax.jit
        def run(s, a):
            def body(d, x):
                return jax.vmap(env.simulate)(d, x, s.info["kp_scale"], s.info["kd_scale"]), None
            return s.replace(pipeline_state=jax.lax.scan(body, s.pipeline_state, a)[0])

    jax.block_until_ready(run(state, actions))  # compile
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        jax.block_until_ready(run(state, actions))
        best = min(best, time.perf_counter() - start)
    return num_envs * control_steps / best


def bench_c_single(model: mujoco.MjModel, cfg: EnvConfig, control_steps: int) -> float:
    """Control steps per second of one thread: ``mj_step`` × decimation under small random torques (the same
    open-loop load as the rollout; a PD law held for a whole control step would be unstable)."""
    data = mujoco.MjData(model)
    data.qpos[:] = np.concatenate([[0, 0, 0.28, 1, 0, 0, 0], cfg.default_joint_pos])
    ctrl = np.random.default_rng(0).uniform(-2, 2, (control_steps, model.nu))
    start = time.perf_counter()
    for t in range(control_steps):
        data.ctrl[:] = ctrl[t]
        mujoco.mj_step(model, data, nstep=cfg.decimation)
    return control_steps / (time.perf_counter() - start)


def bench_c_rollout(model: mujoco.MjModel, cfg: EnvConfig, num_envs: int, control_steps: int, threads: int) -> float:
    """Control steps per second of ``mujoco.rollout`` over ``num_envs`` envs (open-loop torques) on ``threads``."""
    nstep = control_steps * cfg.decimation
    q0 = cfg.default_joint_pos
    state0 = np.zeros((num_envs, mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_FULLPHYSICS)))
    data = mujoco.MjData(model)
    data.qpos[:] = np.concatenate([[0, 0, 0.28, 1, 0, 0, 0], q0])
    mujoco.mj_getState(model, data, state0[0], mujoco.mjtState.mjSTATE_FULLPHYSICS)
    state0[:] = state0[0]
    ctrl = np.random.default_rng(0).uniform(-2, 2, (num_envs, nstep, model.nu))
    datas = [mujoco.MjData(model) for _ in range(threads)]
    with rollout.Rollout(nthread=threads) as runner:
        runner.rollout([model] * num_envs, datas, state0, ctrl)  # warm-up
        start = time.perf_counter()
        runner.rollout([model] * num_envs, datas, state0, ctrl)
        elapsed = time.perf_counter() - start
    return num_envs * control_steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 64, 512, 2048])
    parser.add_argument("--control-steps", type=int, default=20)
    args = parser.parse_args()
    cfg = EnvConfig(rsi_probability=0.0)
    env = A1AmpEnv(cfg)
    cores = os.cpu_count() or 1
    decim = cfg.decimation
    print(f"cores: {cores}, jax devices: {jax.devices()}, decimation {decim}")
    c_single = bench_c_single(env.mj_model, cfg, 2000)
    print(f"C MuJoCo, 1 thread, mj_step nstep={decim}: {c_single * decim:,.0f} physics/s, {c_single:,.0f} control/s")
    print("| envs | MJX physics/s | MJX control/s (physics only) | MJX control/s (full env step) "
          "| C rollout physics/s (all cores) | MJX/C per core |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n in args.envs:
        sim = bench_mjx(env, n, args.control_steps, full_step=False)
        full = bench_mjx(env, n, args.control_steps, full_step=True)
        c_roll = bench_c_rollout(env.mj_model, cfg, n, max(args.control_steps, 2000 // n), cores)
        ratio = (c_roll / cores) / (full / cores)
        print(f"| {n} | {sim * decim:,.0f} | {sim:,.0f} | {full:,.0f} | {c_roll * decim:,.0f} | {ratio:.1f}x |",
              flush=True)


if __name__ == "__main__":
    main()
