"""How far a mirrored rollout of the A1 drifts from the mirror image of the original: the approximation that
mirror-symmetric training makes on the real (not exactly symmetric) model.

For ``--states`` random states dropping onto their feet and random actions ``U[±--action]`` it steps the original
state under the actions and the mirrored state under the mirrored actions in MJX (vmapped, one jit), and reports
the largest and the median difference between the mirror image of the original and the mirrored rollout after 1,
2, 5, 10 and 25 control steps: joint angles and base position (qpos), joint and base velocities (qvel). Once on
the model as shipped, once on its symmetrised copy (:func:`amp_jax.envs.mirror.symmetrized_model`), whose
differences are float32 rounding.

    python benchmarks/mirror_drift.py [--states 32] [--action 0.5]
"""

from __future__ import annotations

import argparse
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from mujoco import mjx

from amp_jax.config import Config
from amp_jax.envs import mirror
from amp_jax.envs.a1_amp import A1AmpEnv

REPORTED_STEPS = (1, 2, 5, 10, 25)


def random_states(num: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(qpos [num, 19], qvel [num, 18])``: tilted a little, joints near the default pose, 0.33 m up."""
    rng = np.random.default_rng(seed)
    quat = np.concatenate([np.ones((num, 1)), rng.uniform(-0.1, 0.1, (num, 3))], axis=1)
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    qpos = np.concatenate([rng.uniform(-0.5, 0.5, (num, 2)), np.full((num, 1), 0.33), quat,
                           np.tile([0.0, 0.9, -1.8], (num, 4)) + rng.uniform(-0.2, 0.2, (num, 12))], axis=1)
    return qpos.astype(np.float32), rng.uniform(-0.5, 0.5, (num, 18)).astype(np.float32)


def drift(env: A1AmpEnv, model, qpos, qvel, actions) -> tuple[np.ndarray, np.ndarray]:
    """``|M s_t − s'_t|`` for qpos and qvel, ``[num, T, 19]`` and ``[num, T, 18]``."""
    env.sys = mjx.put_model(model, impl=env.cfg.impl)
    template = mjx.make_data(model, impl=env.cfg.impl)
    ones = jnp.ones(12)

    def rollout(q, v, a):
        def body(data, action):
            data = env.simulate(data, action, ones, ones)
            return data, (data.qpos, data.qvel)
        return jax.lax.scan(body, template.replace(qpos=q, qvel=v), a)[1]

    run = jax.jit(jax.vmap(rollout))
    q, v = run(qpos, qvel, actions)
    q_m, v_m = run(mirror.qpos_map()(qpos), mirror.qvel_map()(qvel), mirror.action_map()(actions))
    return np.abs(np.asarray(mirror.qpos_map()(q) - q_m)), np.abs(np.asarray(mirror.qvel_map()(v) - v_m))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--states", type=int, default=32)
    parser.add_argument("--action", type=float, default=0.5, help="actions are uniform in ±this")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    env = A1AmpEnv(dataclasses.replace(Config().env, rsi_probability=0.0), None)
    qpos, qvel = random_states(args.states, args.seed)
    actions = np.asarray(jax.random.uniform(jax.random.key(args.seed), (args.states, max(REPORTED_STEPS), 12),
                                            minval=-args.action, maxval=args.action))
    real = env.mj_model
    print(f"{args.states} states, actions U[±{args.action}], control step {env.cfg.control_dt} s; "
          "max (median) over states and entries")
    print(f"{'model':>12} {'steps':>5}  {'joint angle rad':>18}  {'base position m':>18}  {'joint vel rad/s':>18}"
          f"  {'base vel':>18}")
    for name, model in (("shipped", real), ("symmetrised", mirror.symmetrized_model(real))):
        dq, dv = drift(env, model, qpos, qvel, actions)
        for t in REPORTED_STEPS:
            parts = (dq[:, t - 1, 7:], dq[:, t - 1, 0:3], dv[:, t - 1, 6:], dv[:, t - 1, 0:6])
            cells = "  ".join(f"{np.max(p):8.2e} ({np.median(np.max(p, axis=1)):7.1e})" for p in parts)
            print(f"{name:>12} {t:>5}  {cells}")


if __name__ == "__main__":
    main()
