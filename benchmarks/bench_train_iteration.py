"""End-to-end training throughput of a config, split into rollout and update (where an iteration's time goes).

Builds the run exactly as ``train.py`` does (:func:`amp_jax.training.trainer.build`), compiles, then times
``--iterations`` whole iterations (rollout → AMP rewards → GAE → update, one jitted call each) and, separately,
the rollout alone (the same policy-and-env ``lax.scan`` of ``ppo.num_steps`` steps over ``env.num_envs`` envs,
jitted on its own). The update's share is the difference. Prints one JSON line per run, e.g.:

    python benchmarks/bench_train_iteration.py --config a1_trot_cpu.yaml
    python benchmarks/bench_train_iteration.py --config a1_trot_cpu.yaml --processes 1
    python benchmarks/bench_train_iteration.py --config a1_trot_cpu.yaml --set env.solver_iterations=4

The run is laid out as ``train.py`` lays it out: on a multi-core CPU as several processes of one device each
(``train.processes``, :mod:`amp_jax.training.processes`; ``--processes N`` sets it), each timing the same
iterations; process 0 prints. There the rollout alone is each process stepping its ``N/P`` envs in its own
jitted scan, all processes at once.

Each timing is the best of ``--repeats`` rounds of ``--iterations`` calls, so that load from other processes
hurts less; say in the results how loaded the machine was.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", default=[], help="config file(s), as train.py takes them")
    parser.add_argument("--set", action="append", default=[], dest="overrides", help="KEY=VALUE overrides")
    parser.add_argument("--iterations", type=int, default=4, help="iterations per timed round")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds (the best is kept)")
    parser.add_argument("--processes", type=int, help="processes (train.processes; default: as train.py chooses)")
    args = parser.parse_args()

    from amp_jax import config as config_lib
    from amp_jax.training import processes

    overrides = [*args.overrides, "train.probe_interval=0"]
    if args.processes is not None:
        overrides.append(f"train.processes={args.processes}")
    cfg = config_lib.load_config(args.config or ["a1_trot_cpu"], overrides)
    role = processes.join_from_environment()
    if role is None:
        count = processes.process_count(cfg)
        if count > 1:
            command = [sys.executable, os.path.abspath(__file__), *sys.argv[1:]]
            if args.processes is None:
                command += ["--processes", str(count)]
            sys.exit(processes.launch(command, count))

    from amp_jax.agents import networks
    from amp_jax.envs.wrappers import make_amp_training_env
    from amp_jax.training import trainer

    num_processes = jax.process_count()
    t0 = time.perf_counter()
    setup = trainer.build(cfg)
    state = trainer.initial_state(setup)
    state, metrics = setup.train_step(state)
    jax.block_until_ready(metrics)
    compile_train_s = time.perf_counter() - t0

    nets = networks.make_networks(cfg.networks, setup.env.action_size)
    local_envs = cfg.env.num_envs // num_processes
    if num_processes == 1:
        env, env_state, params = setup.env, state.env_state, None  # the state's own (train_step donates it)
    else:  # this process's envs, stepped in a program of its own
        local_cfg = config_lib.load_config(args.config or ["a1_trot_cpu"], [*overrides, f"env.num_envs={local_envs}"])
        env = make_amp_training_env(local_cfg, setup.motion_library, jax.random.key(jax.process_index()))
        env_state = jax.jit(env.reset)(jax.random.split(jax.random.key(0), local_envs))
        params = jax.device_get(state.params)

    @jax.jit
    def rollout(params, env_state, key):
        def step(env_state, k):
            mean = networks.policy_mean(nets, params, env_state.obs["state"])
            action = mean + params.action_std * jax.random.normal(k, mean.shape)
            return env.step(env_state, action), ()

        env_state, _ = jax.lax.scan(step, env_state, jax.random.split(key, cfg.ppo.num_steps))
        return env_state

    t0 = time.perf_counter()
    env_state = jax.block_until_ready(rollout(state.params if params is None else params, env_state, jax.random.key(0)))
    compile_rollout_s = time.perf_counter() - t0

    def best(fn) -> float:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) / args.iterations)
        return min(times)

    def train_round():
        nonlocal state
        for _ in range(args.iterations):
            state, m = setup.train_step(state)
        jax.block_until_ready(m)

    def rollout_round():
        nonlocal env_state
        for i in range(args.iterations):
            env_state = rollout(state.params if params is None else params, env_state, jax.random.key(i))
        jax.block_until_ready(env_state)

    def together():  # the processes start each timed round at the same time
        if num_processes > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("bench round")

    together()
    iteration_s = best(train_round)
    together()
    rollout_s = best(rollout_round)
    together()
    steps = cfg.batch_size
    if jax.process_index() != 0:
        return
    print(json.dumps({
        "config": args.config, "overrides": args.overrides, "num_envs": cfg.env.num_envs,
        "num_steps": cfg.ppo.num_steps, "solver_iterations": cfg.env.solver_iterations,
        "xla_flags": os.environ.get("XLA_FLAGS", ""), "backend": jax.default_backend(),
        "processes": num_processes, "devices": jax.device_count(), "pjrt_nproc": os.environ.get("PJRT_NPROC", ""),
        "compile_train_step_s": round(compile_train_s, 1), "compile_rollout_s": round(compile_rollout_s, 1),
        "iteration_s": round(iteration_s, 3), "rollout_s": round(rollout_s, 3),
        "update_s": round(iteration_s - rollout_s, 3), "rollout_share": round(rollout_s / iteration_s, 3),
        "env_steps_per_s": round(steps / iteration_s), "rollout_env_steps_per_s": round(steps / rollout_s),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
