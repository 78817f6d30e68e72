"""The memory check before a run allocates anything: the replay buffer and one rollout against what the device
(or, on a CPU, the host) can still give."""

from __future__ import annotations

import os

import jax

from amp_jax import config as config_lib
from amp_jax.config import Config
from amp_jax.envs import observations

BYTES_PER_FLOAT = 4
MEMORY_HEADROOM = 0.8
"""Share of the available memory the replay buffer and rollout may take."""


def estimated_bytes(cfg: Config) -> dict[str, int]:
    """Device memory of the large arrays of a run (bytes): the replay buffer (two AMP observations of 43 floats
    per state of their window per transition) and one iteration's rollout (observations, actions, AMP
    transitions per env and step)."""
    amp_features = observations.amp_obs_size(cfg.env)
    per_step = (observations.policy_obs_size(cfg.env) + observations.critic_obs_size(cfg.env)  # obs, critic obs,
                + 3 * observations.NUM_ACTIONS + 2 * amp_features + 8)  # action/mean/noise, AMP s and s', scalars
    return {"replay_buffer": cfg.amp.replay_buffer_size * 2 * amp_features * BYTES_PER_FLOAT,
            "rollout": cfg.batch_size * per_step * BYTES_PER_FLOAT}


def available_bytes() -> int | None:
    """Memory the first device can still give (bytes): its allocator's limit on an accelerator, the host's
    available memory on a CPU; None when unknown."""
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
        return None
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(cfg: Config) -> None:
    """Refuses, before anything is allocated, a run whose replay buffer and rollout cannot fit.

    Raises:
      ConfigError: naming the field, the estimate and what is available.
    """
    need = estimated_bytes(cfg)
    have = available_bytes()
    if have is None:
        return
    devices = max(1, cfg.train.num_devices or len(jax.devices()))
    per_device = (need["replay_buffer"] + need["rollout"]) / devices
    if per_device > MEMORY_HEADROOM * have:
        field = "amp.replay_buffer_size" if need["replay_buffer"] >= need["rollout"] else "env.num_envs"
        value = cfg.amp.replay_buffer_size if field == "amp.replay_buffer_size" else cfg.env.num_envs
        raise config_lib.ConfigError(
            "<memory check>", field, value,
            f"a size that fits: the replay buffer needs {need['replay_buffer'] / 1e9:.3g} GB and one rollout "
            f"{need['rollout'] / 1e9:.3g} GB ({per_device / 1e9:.3g} GB per device), {have / 1e9:.3g} GB are "
            f"available on {jax.devices()[0].platform}")
