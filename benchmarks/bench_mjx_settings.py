"""MJX simulation settings of the A1: throughput and drift against a converged C MuJoCo reference.

Every candidate changes the scene's ``<option>`` (or, for ``trunk-collides``, lets the trunk box collide with
the floor) and runs ``A1AmpEnv.simulate`` (``decimation`` physics steps under the JAX PD law) vmapped over
``--envs`` envs and scanned over ``--control-steps`` control steps inside one jit call. Start states are the
env's default-pose resets (joint angles × U[0.5, 1.5], base velocity U[±0.5] m/s, dropped from the init
height); the actions are a trot-like sine on thighs and calves (diagonal legs in phase), the same for all envs.

Throughput: physics steps/s of all envs, median of ``--rounds`` timed calls after compile; the candidates are
interleaved (A B C A B C ...) so that load from other jobs spreads over all of them. Compile time: lowering
plus XLA compilation of the jitted rollout.

Accuracy: the first ``--reference-envs`` envs are replayed with C MuJoCo (``mj_step``, float64) from the same
start states under the same PD law and actions, with Newton, 50 iterations, 50 line-search iterations (a
converged solve) at the same time step. Errors are maxima over the rollout, then the median (and maximum)
over envs. "Standing" means no ground contact of trunk, thighs or calves (``base.ground_contact``) during
the rollout.

Also timed: ``base.ground_contact`` vmapped over the same envs and control steps, against the baseline rollout.

Usage: python benchmarks/bench_mjx_settings.py [--envs 256] [--control-steps 34] [--rounds 5]
       [--reference-envs 64] [--candidates NAME ...]
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from amp_jax import a1
from amp_jax.config import EnvConfig
from amp_jax.envs import base
from amp_jax.envs.a1_amp import A1AmpEnv

Solver = mujoco.mjtSolver
Disable = mujoco.mjtDisableBit

# name -> {MjOption field: value}, plus "disable"/"enable" flag bits and "trunk_collides"
CANDIDATES: dict[str, dict] = {
    "newton-1-5": {},  # the scene's settings when this benchmark was written
    "newton-1-3": {"ls_iterations": 3},
    "newton-1-1": {"ls_iterations": 1},
    "newton-2-5": {"iterations": 2},
    "newton-4-5": {"iterations": 4},
    "newton-2-3": {"iterations": 2, "ls_iterations": 3},
    "newton-3-5": {"iterations": 3},
    "newton-3-3": {"iterations": 3, "ls_iterations": 3},
    "newton-4-3": {"iterations": 4, "ls_iterations": 3},
    "cg-1-5": {"solver": Solver.mjSOL_CG},
    "cg-4-5": {"solver": Solver.mjSOL_CG, "iterations": 4},
    "newton-10-10": {"iterations": 10, "ls_iterations": 10},
    "elliptic": {"cone": mujoco.mjtCone.mjCONE_ELLIPTIC},
    "jacobian-sparse": {"jacobian": mujoco.mjtJacobian.mjJAC_SPARSE},
    "eulerdamp-on": {"enable_eulerdamp": True},
    "no-warmstart": {"disable": Disable.mjDSBL_WARMSTART},
    "no-joint-limits": {"disable": Disable.mjDSBL_LIMIT},
    "trunk-collides": {"trunk_collides": True},
    "implicitfast": {"integrator": mujoco.mjtIntegrator.mjINT_IMPLICITFAST},
}
HANG_PRONE = ("eulerdamp-on", "implicitfast")
"""Settings that factorise the mass matrix inside the step; vmapped on CPU their first call has hung (0 % CPU),
so they are left out of the default list: run each alone under ``timeout``."""
DEFAULT_CANDIDATES = [name for name in CANDIDATES if name not in HANG_PRONE]


def apply_settings(model: mujoco.MjModel, settings: dict) -> mujoco.MjModel:
    """Sets the candidate's options on ``model`` in place and returns it."""
    for key, value in settings.items():
        if key == "disable":
            model.opt.disableflags |= int(value)
        elif key == "enable_eulerdamp":
            model.opt.disableflags &= ~int(Disable.mjDSBL_EULERDAMP)
        elif key == "trunk_collides":
            model.geom_conaffinity[model.geom("trunk").id] = 1  # against the floor's contype 1
        else:
            setattr(model.opt, key, int(value))
    return model


def candidate_env(cfg: EnvConfig, settings: dict) -> A1AmpEnv:
    """An env whose MJX model carries the candidate's settings."""
    env = A1AmpEnv(cfg)
    apply_settings(env.mj_model, settings)
    env.sys = mjx.put_model(env.mj_model)
    return env


def trot_actions(cfg: EnvConfig, control_steps: int, amplitude: float = 0.5, frequency: float = 2.0) -> np.ndarray:
    """Trot-like actions ``[control_steps, 12]``: a sine on thighs and calves, FL/RR against FR/RL."""
    t = np.arange(control_steps)[:, None] * cfg.control_dt
    leg_phase = np.repeat(np.array([0.0, np.pi, np.pi, 0.0]), 3)
    on_joint = np.tile(np.array([0.0, 1.0, -1.0]), 4)
    return (amplitude * on_joint * np.sin(2 * np.pi * frequency * t + leg_phase)).astype(np.float32)


def start_states(cfg: EnvConfig, num_envs: int) -> tuple[np.ndarray, np.ndarray]:
    """``qpos [N, 19]``, ``qvel [N, 18]`` of the env's default-pose resets."""
    env = A1AmpEnv(cfg)
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), num_envs))
    return np.asarray(state.pipeline_state.qpos), np.asarray(state.pipeline_state.qvel)


def mjx_rollout(env: A1AmpEnv) -> Callable:
    """Jitted ``(qpos [N, 19], qvel [N, 18], actions [T, 12]) -> qpos after each control step [T, N, 19]``."""
    ones = jnp.ones(12)
    simulate = jax.vmap(env.simulate, in_axes=(0, None, None, None))
    template = mjx.make_data(env.mj_model)

    def run(qpos, qvel, actions):
        data = jax.vmap(lambda q, v: template.replace(qpos=q, qvel=v))(qpos, qvel)

        def body(d, action):
            d = simulate(d, action, ones, ones)
            return d, d.qpos

        return jax.lax.scan(body, data, actions)[1]

    return jax.jit(run)


def c_reference(cfg: EnvConfig, qpos0: np.ndarray, qvel0: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """C MuJoCo, converged Newton solve, same PD law: qpos after each control step ``[T, N, 19]``."""
    model = base.load_mj_model()
    model.opt.timestep = cfg.physics_dt
    model.opt.solver, model.opt.iterations, model.opt.ls_iterations = Solver.mjSOL_NEWTON, 50, 50
    data = mujoco.MjData(model)
    default_q = np.asarray(cfg.default_joint_pos)
    out = np.zeros((len(actions), len(qpos0), model.nq))
    for i in range(len(qpos0)):
        mujoco.mj_resetData(model, data)
        data.qpos[:], data.qvel[:] = qpos0[i], qvel0[i]
        for t, action in enumerate(actions):
            target = default_q + cfg.action_scale * action
            for _ in range(cfg.decimation):
                data.ctrl[:] = np.clip(cfg.kp * (target - data.qpos[7:]) - cfg.kd * data.qvel[6:],
                                       -a1.EFFORT_LIMIT, a1.EFFORT_LIMIT)
                mujoco.mj_step(model, data)
            out[t, i] = data.qpos
    return out


def drift(cfg: EnvConfig, qpos: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Errors of ``qpos [T, K, 19]`` against ``ref [T, K, 19]``; maxima over time, median/max over envs."""
    pos = np.linalg.norm(qpos[..., :3] - ref[..., :3], axis=-1).max(0)
    dot = np.abs(np.sum(qpos[..., 3:7] / np.linalg.norm(qpos[..., 3:7], axis=-1, keepdims=True) * ref[..., 3:7],
                        axis=-1))
    angle = np.degrees(2 * np.arccos(np.clip(dot, 0.0, 1.0))).max(0)
    joint = np.abs(qpos[..., 7:] - ref[..., 7:]).max((0, 2))
    geometry = base.leg_geometry(base.load_mj_model())
    contact = jax.jit(jax.vmap(jax.vmap(functools.partial(base.ground_contact, geometry))))
    standing = ~np.asarray(contact(jnp.asarray(qpos, jnp.float32))).any(0)
    standing_ref = ~np.asarray(contact(jnp.asarray(ref, jnp.float32))).any(0)
    return {"pos_med": np.median(pos), "pos_max": pos.max(), "rot_med": np.median(angle), "rot_max": angle.max(),
            "joint_med": np.median(joint), "joint_max": joint.max(), "standing": standing.mean(),
            "standing_ref": standing_ref.mean(), "agree": (standing == standing_ref).mean()}


def timed(fn: Callable, *args) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=256)
    parser.add_argument("--control-steps", type=int, default=34)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reference-envs", type=int, default=64)
    parser.add_argument("--candidates", nargs="+", default=DEFAULT_CANDIDATES, choices=list(CANDIDATES))
    args = parser.parse_args()
    cfg = EnvConfig(rsi_probability=0.0)
    n, steps, k = args.envs, args.control_steps, min(args.reference_envs, args.envs)
    print(f"cores {os.cpu_count()}, {jax.devices()}, {n} envs, {steps} control steps × {cfg.decimation} physics "
          f"steps of {cfg.physics_dt} s; load average at start {os.getloadavg()}", flush=True)

    qpos0, qvel0 = start_states(cfg, n)
    actions = trot_actions(cfg, steps)
    inputs = (jnp.asarray(qpos0), jnp.asarray(qvel0), jnp.asarray(actions))
    start = time.perf_counter()
    ref = c_reference(cfg, qpos0[:k], qvel0[:k], actions)
    print(f"C reference: {k} envs in {time.perf_counter() - start:.1f} s", flush=True)

    compiled, compile_s, trajectories = {}, {}, {}
    for name in args.candidates:
        start = time.perf_counter()
        try:
            compiled[name] = mjx_rollout(candidate_env(cfg, CANDIDATES[name])).lower(*inputs).compile()
        except NotImplementedError as err:
            print(f"{name}: not supported by MJX ({err})", flush=True)
            continue
        compile_s[name] = time.perf_counter() - start
        trajectories[name] = np.asarray(compiled[name](*inputs))
        print(f"{name}: compiled in {compile_s[name]:.1f} s", flush=True)

    geometry = base.leg_geometry(base.load_mj_model())
    check = jax.jit(jax.vmap(jax.vmap(functools.partial(base.ground_contact, geometry))))
    check_input = jnp.asarray(next(iter(trajectories.values())))
    jax.block_until_ready(check(check_input))

    times: dict[str, list[float]] = {name: [] for name in compiled}
    times["ground_contact"] = []
    loads = []
    for _ in range(args.rounds):
        loads.append(os.getloadavg()[0])
        for name, fn in compiled.items():
            times[name].append(timed(fn, *inputs))
        times["ground_contact"].append(timed(check, check_input))
    print(f"load average (1 min) during the rounds: {min(loads):.1f} to {max(loads):.1f}")

    physics_steps = n * steps * cfg.decimation
    print("| setting | physics steps/s | vs newton-1-5 | compile s | base pos err mm (median / max) "
          "| base rot err deg (median / max) | joint err rad (median / max) | standing (ref) | same outcome |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    baseline = np.median(times.get("newton-1-5", times[next(iter(compiled))]))
    for name in compiled:
        med = np.median(times[name])
        e = drift(cfg, trajectories[name][:, :k], ref)
        print(f"| {name} | {physics_steps / med:,.0f} | {baseline / med:.2f} | {compile_s[name]:.0f} "
              f"| {1e3 * e['pos_med']:.2f} / {1e3 * e['pos_max']:.1f} | {e['rot_med']:.3f} / {e['rot_max']:.2f} "
              f"| {e['joint_med']:.4f} / {e['joint_max']:.3f} | {e['standing']:.2f} ({e['standing_ref']:.2f}) "
              f"| {e['agree']:.2f} |", flush=True)
    check_s = np.median(times["ground_contact"])
    print(f"ground_contact, {n} envs × {steps} control steps: {1e3 * check_s:.2f} ms, "
          f"{100 * check_s / baseline:.2f} % of the baseline physics rollout "
          f"({1e9 * check_s / (n * steps):.0f} ns per env and control step)")


if __name__ == "__main__":
    main()
