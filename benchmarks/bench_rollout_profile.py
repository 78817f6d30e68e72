"""Where a rollout's time goes: the training env's layers timed one by one, each as its own jitted scan.

Builds the run as ``train.py`` does (:func:`amp_jax.training.trainer.build`) and times ``ppo.num_steps`` control
steps over ``env.num_envs`` envs for each layer, adding one thing per row:

1. ``physics``: :meth:`A1AmpEnv.simulate` (``decimation`` MJX steps under the PD law), vmapped, nominal model;
2. ``env step``: the whole env step (pushes, physics, rewards, termination, commands, observations, AMP
   features), brax's ``VmapWrapper``, nominal model;
3. ``+ randomised model``: the same under brax's ``DomainRandomizationVmapWrapper`` (per-env friction and mass);
4. ``+ auto-reset``: the project's :class:`~amp_jax.envs.wrappers.AutoResetWrapper` (finished envs restart);
5. ``+ policy and noise``: actions from the policy network and Gaussian noise instead of fixed ones;
6. ``rollout``: the training rollout itself (:func:`amp_jax.agents.train_step.make_rollout`: values,
   log-probabilities, AMP transitions recorded);
7. ``iteration``: the whole training iteration (rollout, AMP rewards, GAE, update).

Rows 1–4 act with the same fixed actions (the initial policy's mean plus its noise, drawn once). Every call of
rows 1–6 starts from the run's first env state (episode clocks staggered, robots standing), so each row steps the
same states; the auto-reset rows report how many envs finished per step. Row ``+ auto-reset, carried`` carries
the env state from call to call instead, so envs fall and restart as in early training. Prints a Markdown table
and one JSON line:

    python benchmarks/bench_rollout_profile.py --config a1_trot_cpu.yaml

Each row is the best of ``--repeats`` rounds of ``--calls`` calls; say how loaded the machine was.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time

import jax
import jax.numpy as jnp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", default=[], help="config file(s), as train.py takes them")
    parser.add_argument("--set", action="append", default=[], dest="overrides", help="KEY=VALUE overrides")
    parser.add_argument("--calls", type=int, default=3, help="calls per timed round")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds (the best is kept)")
    args = parser.parse_args()

    from brax.envs.wrappers.training import DomainRandomizationVmapWrapper, VmapWrapper

    from amp_jax import config as config_lib
    from amp_jax.agents import networks
    from amp_jax.envs.wrappers import AutoResetWrapper
    from amp_jax.training import trainer

    cfg = config_lib.load_config(args.config or ["a1_trot_cpu"], [*args.overrides, "train.probe_interval=0"])
    setup = trainer.build(cfg)
    state = trainer.initial_state(setup)
    n, t = cfg.env.num_envs, cfg.ppo.num_steps

    autoreset = setup.env
    while not isinstance(autoreset, AutoResetWrapper):
        autoreset = autoreset.env
    randomised = autoreset.env
    if not isinstance(randomised, DomainRandomizationVmapWrapper):
        raise SystemExit("the config does not randomise the model: the profile's rows 3 and 4 need it")
    a1_env = randomised.unwrapped
    nominal = VmapWrapper(a1_env)
    nets = networks.make_networks(cfg.networks, a1_env.action_size)
    params = state.params
    env_state = state.env_state
    inner_info_keys = set(a1_env.reset(jax.random.key(0)).info)

    def inner(s):
        return s.replace(info={k: v for k, v in s.info.items() if k in inner_info_keys})

    mean = networks.policy_mean(nets, params, env_state.obs["state"])
    actions = mean + params.action_std * jax.random.normal(jax.random.key(1), (t, n, mean.shape[-1]))
    actions = jnp.clip(actions, -cfg.env.clip_actions, cfg.env.clip_actions)

    def scanned(step):
        @jax.jit
        def run(s, acts):
            return jax.lax.scan(lambda c, a: (step(c, a), None), s, acts)[0]
        return run

    def physics(data_and_gains, action):
        data, kp, kd = data_and_gains
        return jax.vmap(a1_env.simulate)(data, action, kp, kd), kp, kd

    rows = []

    def time_it(name, fn, first, *rest, carry_over=False, finished=None):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(first, *rest))
        compile_s = time.perf_counter() - start
        best, finished_per_step = float("inf"), []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for _ in range(args.calls):
                out = fn(out if carry_over else first, *rest)
                if finished is not None:
                    finished_per_step.append(finished(out))
            jax.block_until_ready(out)
            best = min(best, (time.perf_counter() - start) / args.calls)
        row = {"layer": name, "s_per_rollout": round(best, 4), "env_steps_per_s": round(n * t / best),
               "us_per_env_step": round(1e6 * best / (n * t), 1), "compile_s": round(compile_s, 1)}
        if finished_per_step:
            row["finished_per_step"] = round(float(sum(finished_per_step)) / (len(finished_per_step) * t), 2)
        rows.append(row)
        print(f"  {name}: {best:.3f} s", flush=True)
        return out

    info = env_state.info
    time_it("physics", scanned(physics),
            (env_state.pipeline_state, info["kp_scale"], info["kd_scale"]), actions)
    time_it("env step", scanned(nominal.step), inner(env_state), actions)
    time_it("+ randomised model", scanned(randomised.step), inner(env_state), actions)

    counted = jax.jit(lambda s: jnp.sum(s.info["episode_length"] < t))
    time_it("+ auto-reset", scanned(autoreset.step), env_state, actions, finished=counted)
    time_it("+ auto-reset, carried", scanned(autoreset.step), env_state, actions, carry_over=True,
            finished=counted)

    @jax.jit
    def policy_rollout(s, key):
        def step(c, k):
            m = networks.policy_mean(nets, params, c.obs["state"])
            return autoreset.step(c, m + params.action_std * jax.random.normal(k, m.shape)), None
        return jax.lax.scan(step, s, jax.random.split(key, t))[0]

    time_it("+ policy and noise", policy_rollout, env_state, jax.random.key(2), finished=counted)
    from amp_jax.agents import distributed, train_step

    if hasattr(distributed, "on_one_device"):  # the step's pieces run under shard_map, on one device too
        rollout = train_step.make_rollout(nets, n, t, distributed.DeviceAxis(1))
        training_rollout = jax.jit(distributed.on_one_device(
            lambda p, s, key: rollout(setup.env, p, s, key)[0]))
        time_it("rollout", functools.partial(training_rollout, params), env_state, jax.random.key(3),
                finished=counted)
    elif hasattr(train_step, "make_rollout"):  # (code older than the function has no such row)
        training_rollout = jax.jit(lambda s, key: train_step.make_rollout(nets, n, t)(setup.env, params, s, key)[0])
        time_it("rollout", training_rollout, env_state, jax.random.key(3), finished=counted)

    def iterations(train_state):
        return setup.train_step(train_state)[0]

    time_it("iteration", iterations, state, carry_over=True)

    base = rows[1]["s_per_rollout"]
    print(f"\n{n} envs × {t} steps, load average (1 min) {os.getloadavg()[0]:.2f}\n")
    print("| layer | s per rollout | env steps/s | µs per env step | vs env step | envs finished per step "
          "| compile (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['layer']} | {row['s_per_rollout']:.3f} | {row['env_steps_per_s']:,} | "
              f"{row['us_per_env_step']} | {row['s_per_rollout'] / base:.2f} | {row.get('finished_per_step', '')} "
              f"| {row['compile_s']} |")
    print(json.dumps({"config": args.config, "overrides": args.overrides, "num_envs": n, "num_steps": t,
                      "rows": rows, "load_average_1min": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
