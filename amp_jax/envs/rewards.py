"""Task reward: a dict of small pure terms, each scaled by ``cfg.reward_scales`` and summed.

Every term takes the command ``[3]`` (v_x, v_y, yaw rate; base frame), the base velocities in base axes
and the kernel width, and returns an unscaled scalar.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

RewardTerm = Callable[[jax.Array, jax.Array, jax.Array, float], jax.Array]


def tracking_lin_vel(command: jax.Array, lin_vel: jax.Array, ang_vel: jax.Array, sigma: float) -> jax.Array:
    """exp(−‖cmd_xy − v_xy‖² / σ): tracking of the xy velocity command (base frame)."""
    del ang_vel
    return jnp.exp(-jnp.sum(jnp.square(command[:2] - lin_vel[:2])) / sigma)


def tracking_ang_vel(command: jax.Array, lin_vel: jax.Array, ang_vel: jax.Array, sigma: float) -> jax.Array:
    """exp(−(cmd_yaw − ω_z)² / σ): tracking of the yaw-rate command."""
    del lin_vel
    return jnp.exp(-jnp.square(command[2] - ang_vel[2]) / sigma)


TERMS: dict[str, RewardTerm] = {"tracking_lin_vel": tracking_lin_vel, "tracking_ang_vel": tracking_ang_vel}
"""Every task-reward term by name (the names of ``RewardScales``' fields)."""


def task_reward(scales: dict[str, float], command: jax.Array, lin_vel: jax.Array, ang_vel: jax.Array,
                sigma: float) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Scaled terms and their sum, clipped at 0 from below (the reference keeps only positive totals).

    Returns:
      (reward scalar, {name: scaled term}) for the terms with a non-zero scale.
    """
    unknown = set(scales) - set(TERMS)
    if unknown:
        raise ValueError(f"env.reward_scales: unknown terms {sorted(unknown)}; expected some of {sorted(TERMS)}")
    terms = {name: scale * TERMS[name](command, lin_vel, ang_vel, sigma) for name, scale in scales.items()
             if scale != 0}
    total = sum(terms.values(), jnp.zeros(()))
    return jnp.maximum(total, 0.0), terms
