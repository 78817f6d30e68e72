"""The per-env push clock and the push it triggers: the env's random shoves of the trunk.

Pushes follow the push clock, not the episode clock: the first reset draws the countdown uniformly in
``[1, push_interval_steps]`` (:func:`initial_countdown`), every step counts it down by one (:func:`tick`), and the
step on which it reaches 0 pushes the env (:func:`push`) and sets it back to ``push_interval_steps``. A reset
draws a countdown too, but a wrapper that resets finished envs keeps the stepped one (the project's
``AutoResetWrapper`` does): each env is then pushed once every ``push_interval_steps`` control steps of its life,
at any step of its episodes, and the envs of a batch are spread over the interval. The reference gives each env
the same schedule with one global step counter (its episodes start at random times), though it pushes all its
envs on the same step. With ``push_robots`` off the clock still runs (the state keeps its structure) but no push
happens.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from amp_jax.config import EnvConfig

PUSH_COUNTDOWN = "push_countdown"
"""info key: control steps left until the env's next push, int32 scalar per env (``[N]`` batched), in
``[1, push_interval_steps]``; it survives episode ends (see the module docstring)."""
RESET_KEY_SALT = 0x9C5
"""Folded into a reset key to draw the initial countdown (leaves the reset's other draws unchanged)."""


def tick(countdown: jax.Array, interval: int) -> tuple[jax.Array, jax.Array]:
    """One control step of a push clock: ``countdown`` int32 (any shape) → ``(due, next_countdown)``.

    ``due`` (bool, same shape) is true where the countdown reaches 0 on this step (a step from countdown 1;
    a countdown already at 0 or below, as in a state filled with zeros, fires too); there the next countdown
    is ``interval``, elsewhere ``countdown − 1``. A clock started at ``c`` in ``[1, interval]`` is due on
    steps ``c, c + interval, c + 2·interval, ...`` (counted from 1).
    """
    remaining = countdown - 1
    due = remaining <= 0
    return due, jnp.where(due, jnp.asarray(interval, countdown.dtype), remaining)


def initial_countdown(cfg: EnvConfig, key: jax.Array) -> jax.Array:
    """A countdown drawn uniformly in ``[1, cfg.push_interval_steps]``, int32 scalar."""
    return jax.random.randint(key, (), 1, cfg.push_interval_steps + 1, dtype=jnp.int32)


def push(cfg: EnvConfig, qvel: jax.Array, push_now: jax.Array, key: jax.Array) -> jax.Array:
    """``qvel [18]`` with the base's world-frame xy velocity set to U[±max_push_vel_xy] (drawn from ``key``)
    where ``push_now`` (bool scalar: the clock is due, :func:`tick`) and ``cfg.push_robots`` is on; otherwise
    ``qvel`` unchanged."""
    if not cfg.push_robots:
        return qvel
    push_vel = jax.random.uniform(key, (2,), minval=-cfg.max_push_vel_xy, maxval=cfg.max_push_vel_xy)
    return jnp.where(push_now, qvel.at[0:2].set(push_vel), qvel)
