"""The velocity commands an env tracks: ``(v_x, v_y, yaw rate) [3]`` in the base frame (m/s, m/s, rad/s), drawn
at reset and again every ``command_resample_steps`` control steps."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from amp_jax.config import EnvConfig


def sample_command(cfg: EnvConfig, key: jax.Array) -> jax.Array:
    """A command ``[3]`` uniform in the configured ranges; an xy command below ``min_command_norm`` is zeroed;
    with ``standing_command_probability`` the whole command is (0, 0, 0) (that draw uses a key split off ``key``,
    so with probability 0 the commands are the reference's draws)."""
    if cfg.standing_command_probability > 0:
        key, k_stand = jax.random.split(key)
        stand = jax.random.bernoulli(k_stand, cfg.standing_command_probability)
        return jnp.where(stand, 0.0, _moving_command(cfg, key))
    return _moving_command(cfg, key)


def _bounds(cfg: EnvConfig) -> tuple[jax.Array, jax.Array]:
    """The command ranges' lower and upper ends, each ``[3]`` (v_x, v_y, yaw rate)."""
    ranges = (cfg.command_lin_vel_x, cfg.command_lin_vel_y, cfg.command_ang_vel_yaw)
    return jnp.array([r[0] for r in ranges]), jnp.array([r[1] for r in ranges])


def _moving_command(cfg: EnvConfig, key: jax.Array) -> jax.Array:
    low, high = _bounds(cfg)
    command = jax.random.uniform(key, (3,), minval=low, maxval=high)
    small = jnp.linalg.norm(command[:2]) < cfg.min_command_norm
    return command.at[:2].multiply(jnp.where(small, 0.0, 1.0))


def clip_to_ranges(cfg: EnvConfig, command: jax.Array) -> jax.Array:
    """``command [..., 3]`` clipped into the configured ranges, its xy zeroed below ``min_command_norm`` as a
    draw's would be."""
    command = jnp.clip(command, *_bounds(cfg))
    small = jnp.linalg.norm(command[..., :2], axis=-1, keepdims=True) < cfg.min_command_norm
    return jnp.concatenate([jnp.where(small, 0.0, command[..., :2]), command[..., 2:]], axis=-1)


def update_command(cfg: EnvConfig, command: jax.Array, step_count: jax.Array, key: jax.Array) -> jax.Array:
    """A fresh command when ``step_count`` (control steps taken) is a multiple of ``command_resample_steps``,
    else ``command``."""
    resample = step_count % cfg.command_resample_steps == 0
    return jnp.where(resample, sample_command(cfg, key), command)
