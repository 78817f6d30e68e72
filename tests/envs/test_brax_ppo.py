"""brax's own PPO trainer, with brax's own wrappers and domain randomisation, drives the env core unchanged (a heavy
check: `python -m pytest -m heavy`)."""

import dataclasses
import functools

import jax
import numpy as np
import pytest
from brax.training.agents.ppo import networks as ppo_networks
from brax.training.agents.ppo import train as ppo

from amp_jax.config import EnvConfig
from amp_jax.envs import observations
from amp_jax.envs.a1_amp import A1AmpEnv
from amp_jax.envs.randomize import domain_randomize

pytestmark = pytest.mark.heavy


def _removed(module, name):
    try:
        getattr(module, name)
    except AttributeError:
        return True
    return False


def _device_put_replicated(tree, devices):
    """``jax.device_put_replicated`` (which brax's trainer still calls) for this JAX, which dropped it."""
    return jax.device_put(jax.tree.map(lambda x: np.stack([np.asarray(x)] * len(devices)), tree), devices[0])


def test_brax_ppo_trains_a_few_iterations(monkeypatch):
    if not hasattr(jax, "device_put_replicated") or _removed(jax, "device_put_replicated"):
        monkeypatch.setattr(jax, "device_put_replicated", _device_put_replicated, raising=False)
    # Episodes of 20 control steps (0.6 s): brax evaluates a whole episode per evaluation, and the point is that
    # its trainer drives the env, not how long it is driven.
    env_cfg = dataclasses.replace(EnvConfig(), rsi_probability=0.0, episode_length_s=0.6)
    assert env_cfg.max_episode_steps == 20
    env = A1AmpEnv(env_cfg)
    network_factory = functools.partial(
        ppo_networks.make_ppo_networks, policy_hidden_layer_sizes=(8,), value_hidden_layer_sizes=(8,),
        policy_obs_key=observations.POLICY_OBS_KEY, value_obs_key=observations.CRITIC_OBS_KEY)
    progress = []
    make_policy, params, metrics = ppo.train(
        environment=env, num_timesteps=2 * 4 * 5 * 2, episode_length=env_cfg.max_episode_steps, num_envs=4,
        batch_size=4, num_minibatches=2, unroll_length=5, num_updates_per_batch=1, num_evals=2,
        num_eval_envs=4, network_factory=network_factory, seed=0,
        randomization_fn=functools.partial(domain_randomize, cfg=env_cfg),
        progress_fn=lambda step, m: progress.append((step, m)))
    assert progress and progress[-1][0] >= 40
    assert np.isfinite(progress[-1][1]["eval/episode_reward"])
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(params))
