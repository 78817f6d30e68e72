"""Training throughput against device count: env steps per second of whole iterations on 1, 2, 4 devices.

Usage: ``python benchmarks/bench_devices.py [--env point_mass|a1] [--num-envs 64] [--iterations 10]``.

Each device count runs in its own subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``
(JAX fixes its devices at start-up) and ``train.num_devices`` set to the count; the global batch is the same
for every count. On a CPU the forced devices share the machine's cores, so the ratios measure what the
split costs (collectives, per-device dispatch), not a speed-up; on a multi-GPU host drop the flag.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def measure(env_name: str, num_envs: int, num_devices: int, iterations: int) -> dict:
    """One device count, in this process (JAX already started with enough devices)."""
    import jax
    from brax.envs.wrappers.training import VmapWrapper

    from amp_jax.agents import distributed
    from amp_jax.agents import train_step as ts
    from amp_jax.config import load_config

    overrides = [f"env.num_envs={num_envs}", "ppo.num_steps=16", "ppo.num_minibatches=4",
                 "networks.actor_hidden=[128, 128]", "networks.critic_hidden=[128, 128]",
                 "networks.disc_hidden=[128, 64]", "amp.replay_buffer_size=8192", f"train.num_devices={num_devices}"]
    cfg = load_config(["a1_trot", "cpu.yaml"], overrides)
    mesh = distributed.make_mesh(num_devices)
    if env_name == "a1":
        from amp_jax.training import trainer

        setup = trainer.build(cfg)
        init_fn, step = setup.init_fn, setup.train_step
        state = trainer.initial_state(setup)
    else:
        from amp_jax.envs import point_mass
        from amp_jax.envs.wrappers import AutoResetWrapper

        env = AutoResetWrapper(VmapWrapper(point_mass.PointMassEnv()))
        init_fn, step = ts.make_train_step(env, cfg, point_mass.sample_expert_transitions, mesh)
        state = init_fn(jax.random.PRNGKey(0))
    start = time.perf_counter()
    state, metrics = step(state)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(iterations):
        state, metrics = step(state)
    jax.block_until_ready(metrics)
    seconds = time.perf_counter() - start
    return {"devices": num_devices, "env": env_name, "num_envs": num_envs, "first_iteration_s": compile_s,
            "iteration_s": seconds / iterations, "env_steps_per_s": iterations * cfg.batch_size / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", choices=("point_mass", "a1"), default="point_mass")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.env, args.num_envs, args.child, args.iterations)))
        return
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu"),
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={max(args.devices)}"}
    rows = []
    for count in args.devices:
        proc = subprocess.run([sys.executable, __file__, "--env", args.env, "--num-envs", str(args.num_envs),
                               "--iterations", str(args.iterations), "--child", str(count)],
                              env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"{count} devices failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    base = rows[0]["env_steps_per_s"]
    print(f"| devices | env steps/s | s/iteration | vs {rows[0]['devices']} device(s) | first iteration (compile) s |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['devices']} | {r['env_steps_per_s']:.0f} | {r['iteration_s']:.3f} | "
              f"{r['env_steps_per_s'] / base:.2f} | {r['first_iteration_s']:.1f} |")


if __name__ == "__main__":
    main()
