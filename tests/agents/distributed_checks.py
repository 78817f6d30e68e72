"""Runs the data-parallel train step on forced CPU devices and saves what tests/agents/test_distributed.py asserts.

Run by that test in a subprocess (``XLA_FLAGS=--xla_force_host_platform_device_count=4`` must be set before
JAX starts): ``python tests/agents/distributed_checks.py OUT_DIR [--a1]``. Writes ``OUT_DIR/results.npz`` (arrays
named ``<check>/<what>``) and ``OUT_DIR/errors.json`` (the messages of the expected config errors).
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
from brax.envs.base import Wrapper
from brax.envs.wrappers.training import VmapWrapper
from jax.sharding import PartitionSpec as P

from amp_jax.agents import distributed, networks, optimizer
from amp_jax.agents import train_step as ts
from amp_jax.config import AMPConfig, Config, ConfigError, EnvConfig, NetworkConfig, PPOConfig
from amp_jax.envs import point_mass
from amp_jax.envs.wrappers import AutoResetWrapper
from amp_jax.training import checkpoint

NUM_DEVICES = 4
CFG = Config(env=EnvConfig(num_envs=8),
             networks=NetworkConfig(actor_hidden=(32, 32), critic_hidden=(32, 32), disc_hidden=(32,)),
             ppo=PPOConfig(num_steps=8, num_minibatches=2, num_epochs=2),
             amp=AMPConfig(replay_buffer_size=96))
"""8 envs (2 per device), 64 samples per iteration, a replay ring that wraps in the second iteration."""


def _host(tree):
    return jax.tree.map(np.asarray, jax.device_get(tree))


def _leaves(prefix: str, tree, out: dict) -> None:
    for i, leaf in enumerate(jax.tree.leaves(_host(tree))):
        out[f"{prefix}/{i}"] = leaf


def _run(step, state, iterations):
    history = []
    for _ in range(iterations):
        state, metrics = step(state)
        history.append(_host(metrics))
    return state, history


def make_steps(env, mesh) -> dict:
    """``name -> (mesh, init_fn, train_step)`` of the point-mass iteration on one, two and four devices, built once
    and shared by the checks (each build is traced and compiled on its first call)."""
    meshes = {"one": distributed.make_mesh(1), "two": distributed.make_mesh(2), "four": mesh}
    return {name: (m, *ts.make_train_step(env, CFG, point_mass.sample_expert_transitions, m))
            for name, m in meshes.items()}


def replicated_shards(out: dict, steps: dict) -> None:
    """Every device's copy of the replicated state after 5 iterations, stacked ``[D, ...]``."""
    _, init, step = steps["four"]
    state, history = _run(step, init(jax.random.PRNGKey(0)), 5)
    replicated = (state.params, state.opt_state, state.normalizer, state.key)
    for i, leaf in enumerate(jax.tree.leaves(replicated)):
        out[f"shards/{i}"] = np.stack([np.asarray(s.data) for s in leaf.addressable_shards])
    out["shards/losses"] = np.array([h["loss/total"] for h in history])


def one_iteration_both_ways(out: dict, steps: dict) -> None:
    """The first iteration on one device and on four: rollout metrics, env state and replay rows."""
    for name in ("one", "four"):
        m, init, step = steps[name]
        state, history = _run(step, init(jax.random.PRNGKey(3)), 1)
        for key in ("reward/task", "reward/amp", "episode/finished", "episode/return"):
            out[f"first/{name}/{key}"] = history[0][key]
        out[f"first/{name}/obs"] = np.asarray(state.env_state.obs["state"])
        stored = distributed.to_checkpoint_layout(state, m)
        out[f"first/{name}/buffer"] = np.asarray(stored.replay_buffer.states)
        out[f"first/{name}/buffer_size"] = np.asarray(stored.replay_buffer.size)


def learn_step_both_ways(out: dict, env, steps: dict) -> None:
    """One optimiser step on the same global samples: unsplit, and split in four with collectives."""
    nets = networks.make_networks(CFG.networks, env.action_size)
    opt = optimizer.make_optimizer(CFG.ppo, CFG.amp)
    _, init, _ = steps["one"]
    mesh = steps["four"][0]
    state = init(jax.random.PRNGKey(5))
    keys = iter(jax.random.split(jax.random.PRNGKey(6), 16))
    b, a = 32, env.action_size

    def normal(*shape, scale=1.0):
        return scale * jax.random.normal(next(keys), shape)

    ppo = ts.PPOSamples(state_obs=normal(b, 24), privileged_obs=normal(b, 36), action=normal(b, a),
                        action_mean=normal(b, a, scale=0.5), log_prob=normal(b), value=normal(b),
                        advantage=normal(b), returns=normal(b))
    expert_s, expert_next = point_mass.sample_expert_transitions(next(keys), b)
    policy_s, policy_next = point_mass.sample_expert_transitions(next(keys), b, velocity_noise=1.0,
                                                                 expert_velocity=jnp.zeros(12))
    amp = ts.AMPSamples(policy_state=policy_s, policy_next_state=policy_next, expert_state=expert_s,
                        expert_next_state=expert_next)
    learner = ts.Learner(params=state.params, opt_state=state.opt_state, normalizer=state.normalizer)
    old_std = state.params.action_std * 1.1

    single = jax.jit(distributed.on_one_device(ts.make_learn_step(nets, opt, CFG, distributed.DeviceAxis(1))))(
        learner, ppo, amp, old_std)
    # init_fn's state is committed to device 0: replicate it for the split step.
    replicated, replicated_std = jax.device_put((learner, old_std), distributed.shardings(mesh, P()))
    four = distributed.DeviceAxis(4)
    split = jax.jit(jax.shard_map(ts.make_learn_step(nets, opt, CFG, four), mesh=mesh,
                                  in_specs=(P(), P(distributed.AXIS), P(distributed.AXIS), P()),
                                  out_specs=P(), check_vma=False))(replicated, ppo, amp, replicated_std)
    _leaves("learn/one", single, out)
    _leaves("learn/four", split, out)

    advantages = normal(b, scale=3.0) + 1.0
    out["adv/one"] = np.asarray(jax.jit(distributed.on_one_device(distributed.normalize_advantages))(advantages))
    out["adv/four"] = np.asarray(jax.jit(jax.shard_map(distributed.normalize_advantages, mesh=mesh,
                                                       in_specs=P(distributed.AXIS),
                                                       out_specs=P(distributed.AXIS)))(advantages))


READERS = {"four": ("one", "two"), "one": ("four",)}
"""The device counts each writer's checkpoint is restored on."""


def checkpoints_across_device_counts(out: dict, steps: dict, folder: pathlib.Path) -> None:
    """Save after 2 iterations, resume on the same count and on the other ones."""
    for writer, readers in READERS.items():
        mesh_w, init, step = steps[writer]
        state, _ = _run(step, init(jax.random.PRNGKey(9)), 2)
        saved = distributed.to_checkpoint_layout(state, mesh_w)
        _leaves(f"ckpt/{writer}/saved", saved, out)
        checkpoint.save(folder / writer, 2, saved)
        straight, _ = _run(step, state, 2)
        _leaves(f"ckpt/{writer}/straight", straight, out)

        # Same device count: resume and go on.
        target = distributed.to_checkpoint_layout(init(jax.random.PRNGKey(0)), mesh_w)
        resumed = distributed.from_checkpoint_layout(checkpoint.restore(folder / writer, target).state, mesh_w)
        resumed, _ = _run(step, resumed, 2)
        _leaves(f"ckpt/{writer}/resumed", resumed, out)

        # Another count: restore, store again (must be what was saved), then train on.
        for reader in readers:
            mesh_r, init_r, step_r = steps[reader]
            target = distributed.to_checkpoint_layout(init_r(jax.random.PRNGKey(0)), mesh_r)
            restored = distributed.from_checkpoint_layout(checkpoint.restore(folder / writer, target).state, mesh_r)
            _leaves(f"ckpt/{writer}/on_{reader}", distributed.to_checkpoint_layout(restored, mesh_r), out)
            if reader == "four":  # device d's ring holds global rows d, d + 4, d + 8, ...
                shards = restored.replay_buffer.states.addressable_shards
                out["ckpt/one/device_rings"] = np.stack([np.asarray(s.data) for s in shards])
            _, history = _run(step_r, restored, 1)
            out[f"ckpt/{writer}/on_{reader}_loss"] = np.asarray(history[0]["loss/total"])


class _EmptyFieldEnv(Wrapper):
    """The point mass with a zero-size per-env field, as MJX data has (e.g. ``act [N, 0]`` without actuators)."""

    def reset(self, rng):
        state = self.env.reset(rng)
        return state.replace(info={**state.info, "empty": jnp.zeros((0,))})


def layout_survives_iterations(out: dict, steps: dict) -> None:
    """Every leaf's sharding (zero-size leaves included) before and after two split iterations."""
    _, init, step = steps["four"]
    state = init(jax.random.PRNGKey(4))
    before = [leaf.sharding for leaf in jax.tree.leaves(state)]
    out["layout/empty_leaves"] = np.array(sum(leaf.size == 0 for leaf in jax.tree.leaves(state)))
    state, _ = _run(step, state, 2)
    out["layout/same"] = np.array([leaf.sharding == sharding
                                   for leaf, sharding in zip(jax.tree.leaves(state), before, strict=True)])


def config_errors(env, mesh) -> dict[str, str]:
    import dataclasses

    bad = {
        "env.num_envs": dataclasses.replace(CFG, env=EnvConfig(num_envs=6)),
        "ppo.num_minibatches": dataclasses.replace(CFG, ppo=dataclasses.replace(CFG.ppo, num_minibatches=32)),
        "amp.replay_buffer_size": dataclasses.replace(CFG, amp=AMPConfig(replay_buffer_size=90)),
    }
    messages = {}
    for field, cfg in bad.items():
        try:
            ts.make_train_step(env, cfg, point_mass.sample_expert_transitions, mesh)
            messages[field] = "no error"
        except ConfigError as err:
            messages[field] = str(err)
    return messages


def a1_smoke(out: dict, folder: pathlib.Path) -> None:
    """The real A1 run through the trainer at the suite's tiny size: 4 iterations on 2 of the devices into
    ``folder/a1`` (test_distributed.py resumes it on its one device, with the build the rest of the suite uses, and
    compares it with the same run as two processes of one device each)."""
    from amp_jax.config import load_config
    from amp_jax.training import trainer

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
    from conftest import TINY_RUN_OVERRIDES

    cfg2 = load_config(["a1_trot", "cpu.yaml"], [*TINY_RUN_OVERRIDES, "train.num_devices=2",
                                                 "train.num_iterations=4"])
    run = trainer.train(cfg2, run_dir=folder / "a1", progress=False)
    setup = trainer.build(cfg2)
    with checkpoint.RunCheckpointer(run, heavy_keys=trainer.HEAVY_KEYS) as ckpt:
        state = ckpt.restore(setup.devices.to_checkpoint(trainer.initial_state(setup))).state
    _leaves("a1/saved_params", state.params, out)
    out["a1/saved_buffer"] = np.asarray(state.replay_buffer.states)
    out["a1/saved_size"] = np.asarray(state.replay_buffer.size)


def main() -> None:
    folder = pathlib.Path(sys.argv[1])
    cache = os.environ.get("AMP_JAX_TEST_CACHE", pathlib.Path.home() / ".cache" / "amp_jax_jit")
    jax.config.update("jax_compilation_cache_dir", str(cache))  # as tests/conftest.py
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    assert jax.device_count() == NUM_DEVICES, (jax.devices(), os.environ.get("XLA_FLAGS"))
    # Every check runs the point mass with a zero-size field, as MJX data has: one build per device count.
    env = AutoResetWrapper(VmapWrapper(_EmptyFieldEnv(point_mass.PointMassEnv())))
    mesh = distributed.make_mesh()
    steps = make_steps(env, mesh)
    out: dict[str, np.ndarray] = {}
    replicated_shards(out, steps)
    one_iteration_both_ways(out, steps)
    learn_step_both_ways(out, env, steps)
    checkpoints_across_device_counts(out, steps, folder / "checkpoints")
    layout_survives_iterations(out, steps)
    if "--a1" in sys.argv:
        a1_smoke(out, folder)
    (folder / "errors.json").write_text(json.dumps(config_errors(env, mesh)))
    np.savez(folder / "results.npz", **out)


if __name__ == "__main__":
    main()
