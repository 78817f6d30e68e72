"""The project's training wrappers around a batched environment.

:class:`AutoResetWrapper` replaces each finished env by a fresh random reset inside ``step`` (brax's own
auto-reset would swap in a cached first state, which reference-state initialisation must not do) and keeps
the bookkeeping the AMP trainer needs: the terminal state's AMP observation and the finished episode's
return and length; the env's push clock goes on across the reset. :class:`RandomInitialProgressWrapper`
staggers episode clocks at the first reset.
:func:`make_amp_training_env` assembles the A1 training env from a :class:`~amp_jax.config.Config`.

Every wrapper here takes and returns *batched* states: ``reset(keys [N, 2])``, ``step(state [N], action
[N, A])``, as produced by brax's ``VmapWrapper`` or ``DomainRandomizationVmapWrapper``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from brax.envs.base import Env, State, Wrapper
from brax.envs.wrappers.training import DomainRandomizationVmapWrapper, VmapWrapper

from amp_jax.envs.a1_amp import A1AmpEnv
from amp_jax.envs.push_clock import PUSH_COUNTDOWN

if TYPE_CHECKING:
    from amp_jax.config import Config

RNG = "autoreset_rng"
"""info key: per-env PRNG key the auto-reset draws fresh reset keys from, ``[N, 2]``."""
TERMINAL_AMP_OBS = "terminal_amp_obs"
"""info key: AMP observation of the state the step ended in, before any reset, ``[N, 43]``."""
EPISODE_RETURN = "episode_return"
"""info key: running sum of the task reward of the current episode, ``[N]``."""
EPISODE_LENGTH = "episode_length"
"""info key: control steps taken in the current episode, ``[N]`` int32."""
TERMINAL_EPISODE_RETURN = "terminal_episode_return"
"""info key: return of the last finished episode (valid where ``done``; kept from before elsewhere), ``[N]``."""
TERMINAL_EPISODE_LENGTH = "terminal_episode_length"
"""info key: length of the last finished episode (valid where ``done``; kept from before elsewhere), ``[N]``."""

_WRAPPER_KEYS = (RNG, TERMINAL_AMP_OBS, EPISODE_RETURN, EPISODE_LENGTH, TERMINAL_EPISODE_RETURN,
                 TERMINAL_EPISODE_LENGTH)
_KEPT_FROM_STEP = ("truncation", PUSH_COUNTDOWN)
"""Inner info keys that survive a reset: ``truncation`` describes the step just taken; the A1 env's push clock
(``push_countdown``) runs over the env's whole life, so a new episode goes on with the stepped countdown
instead of the fresh reset's draw. Keys the wrapped env lacks are skipped."""


def _select_where(done: jax.Array, on_done: Any, otherwise: Any) -> Any:
    """Leaf-wise ``where(done, on_done, otherwise)`` over batched pytrees; ``done [N]`` broadcasts on axis 0."""

    def select(a: jax.Array, b: jax.Array) -> jax.Array:
        if a.ndim == 0 or a.shape[0] != done.shape[0]:
            return b  # not batched over envs: nothing per-env to select
        mask = jnp.reshape(done, done.shape + (1,) * (a.ndim - 1))
        return jnp.where(mask, a, b)

    return jax.tree.map(select, on_done, otherwise)


def _scatter_rows(rows: jax.Array, values: Any, into: Any) -> Any:
    """``into`` with rows ``rows [K]`` of every batched leaf replaced by ``values`` (leaves ``[K, ...]``); a row
    index past the batch (the padding of :func:`jnp.nonzero`) writes nothing. Leaves not batched over the ``[N]``
    envs of ``into`` are kept."""
    num_envs = jax.tree.leaves(into)[0].shape[0]

    def scatter(value: jax.Array, target: jax.Array) -> jax.Array:
        if target.ndim == 0 or target.shape[0] != num_envs:
            return target
        return target.at[rows].set(value.astype(target.dtype), mode="drop")

    return jax.tree.map(scatter, values, into)


def reset_rows(env: Env, keys: jax.Array, rows: jax.Array) -> State:
    """The reset of envs ``rows [K]`` of a batched ``env`` with ``keys [K, 2]``: row ``k`` of the result is what
    ``env.reset`` of the whole batch gives env ``rows[k]`` from key ``keys[k]`` (its own row of a domain-randomised
    model table included). Indices past the batch are clipped to its last env.

    Raises:
      TypeError: ``env`` is neither brax's ``VmapWrapper`` nor its ``DomainRandomizationVmapWrapper``.
    """
    if isinstance(env, DomainRandomizationVmapWrapper):
        model_rows = jax.tree.map(lambda table, axis: table if axis is None else jnp.take(table, rows, 0, mode="clip"),
                                  env._sys_v, env._in_axes, is_leaf=lambda x: x is None)

        def reset(model, key):
            with env.v_env_fn(model) as one_env:
                return one_env.reset(key)

        return jax.vmap(reset, in_axes=[env._in_axes, 0])(model_rows, keys)
    if isinstance(env, VmapWrapper) and env.batch_size is None:
        return env.reset(keys)
    raise TypeError(f"{type(env).__name__}: a reset of some envs needs brax's VmapWrapper or "
                    "DomainRandomizationVmapWrapper underneath the auto-reset")


class AutoResetWrapper(Wrapper):
    """Resets each finished env with fresh randomness inside ``step``; keeps terminal AMP obs and returns.

    Requires of the wrapped (batched) env only the brax contract plus ``info["amp_obs"] [N, 43]``.
    After ``step``: ``reward``, ``done``, ``metrics`` and ``info["truncation"]`` describe the step just
    taken; ``pipeline_state``, ``obs`` and the other info entries describe the state the policy acts from
    next (a new episode's first state where ``done``), except ``info["push_countdown"]``, the env's push
    clock, which goes on from the step across the reset; ``info["terminal_amp_obs"]`` is the AMP observation
    of the state the step ended in, before the reset.

    Only what finished is reset: a step in which no env finished computes no reset; one in which at most
    ``reset_batch_size`` envs finished resets just those, as one batch of that size gathered from the finished
    envs' keys (and model rows) and scattered back (:func:`reset_rows`); a step in which more finished resets the
    whole batch and keeps the finished envs' rows. The three give every env the same state bit for bit: a
    finished env's new episode comes from its own reset key whichever path ran, and the other envs are left as
    stepped. ``reset_batch_size`` 0 always takes the whole-batch path.
    """

    def __init__(self, env: Env, reset_batch_size: int = 0):
        super().__init__(env)
        self.reset_batch_size = reset_batch_size

    def reset(self, rng: jax.Array) -> State:
        """``rng [N, 2]``: one key per env."""
        state = self.env.reset(rng)
        zeros = jnp.zeros(rng.shape[:1], jnp.float32)
        lengths = jnp.zeros(rng.shape[:1], jnp.int32)
        info = dict(state.info)
        info[RNG] = jax.vmap(lambda k: jax.random.fold_in(k, 0x5E7))(rng)
        info[TERMINAL_AMP_OBS] = state.info["amp_obs"]
        info[EPISODE_RETURN] = zeros
        info[EPISODE_LENGTH] = lengths
        info[TERMINAL_EPISODE_RETURN] = zeros
        info[TERMINAL_EPISODE_LENGTH] = lengths
        return state.replace(info=info)

    def step(self, state: State, action: jax.Array) -> State:
        """``state [N]``, ``action [N, A]`` → the next batched state, finished envs reset."""
        inner_info = {k: v for k, v in state.info.items() if k not in _WRAPPER_KEYS}
        stepped = self.env.step(state.replace(info=inner_info), action)
        done = stepped.done > 0
        num_envs = done.shape[0]

        keys = jax.vmap(jax.random.split)(state.info[RNG])  # [N, 2, 2]
        next_rng, reset_keys = keys[:, 0], keys[:, 1]
        carried = (stepped.pipeline_state, stepped.obs, stepped.info)

        def no_reset() -> tuple:
            return carried

        def reset_all() -> tuple:
            fresh = self.env.reset(reset_keys)
            return _select_where(done, (fresh.pipeline_state, fresh.obs, fresh.info), carried)

        def reset_finished() -> tuple:
            rows = jnp.nonzero(done, size=self.reset_batch_size, fill_value=num_envs)[0]
            fresh = reset_rows(self.env, jnp.take(reset_keys, rows, 0, mode="clip"), rows)
            return _scatter_rows(rows, (fresh.pipeline_state, fresh.obs, fresh.info), carried)

        finished = jnp.sum(done)
        if self.reset_batch_size > 0:
            path = jnp.where(finished == 0, 0, jnp.where(finished <= self.reset_batch_size, 1, 2))
            pipeline_state, obs, info = jax.lax.switch(path, (no_reset, reset_finished, reset_all))
        else:
            pipeline_state, obs, info = jax.lax.cond(finished > 0, reset_all, no_reset)
        info = dict(info)
        for key in _KEPT_FROM_STEP:
            if key in stepped.info:
                info[key] = stepped.info[key]
        episode_return = state.info[EPISODE_RETURN] + stepped.reward
        episode_length = state.info[EPISODE_LENGTH] + 1
        info[RNG] = next_rng
        info[TERMINAL_AMP_OBS] = stepped.info["amp_obs"]
        info[EPISODE_RETURN] = jnp.where(done, 0.0, episode_return)
        info[EPISODE_LENGTH] = jnp.where(done, 0, episode_length)
        info[TERMINAL_EPISODE_RETURN] = jnp.where(done, episode_return, state.info[TERMINAL_EPISODE_RETURN])
        info[TERMINAL_EPISODE_LENGTH] = jnp.where(done, episode_length, state.info[TERMINAL_EPISODE_LENGTH])
        return stepped.replace(pipeline_state=pipeline_state, obs=obs, info=info)


class RandomInitialProgressWrapper(Wrapper):
    """At the first reset only, starts each env at a uniform step of its episode (staggers time-outs).

    The wrapped env counts its episode steps in ``info[step_key]`` and times out when that count reaches
    ``max_episode_steps``; this wrapper redraws the count uniformly in ``[0, max_episode_steps)`` after the
    first reset. Place it *outside* :class:`AutoResetWrapper` so later resets start at step 0. It changes
    nothing else (the A1 env's push clock, drawn at that reset, is independent of the episode clock).
    """

    def __init__(self, env: Env, max_episode_steps: int, step_key: str = "episode_step"):
        super().__init__(env)
        self.max_episode_steps = max_episode_steps
        self.step_key = step_key

    def reset(self, rng: jax.Array) -> State:
        """``rng [N, 2]``."""
        state = self.env.reset(rng)
        draw = jax.vmap(lambda k: jax.random.randint(jax.random.fold_in(k, 0x57E9), (), 0,
                                                     self.max_episode_steps))
        info = dict(state.info)
        info[self.step_key] = draw(rng).astype(state.info[self.step_key].dtype)
        return state.replace(info=info)


def make_amp_training_env(cfg: Config, motion_library: Any, key: jax.Array, num_devices: int = 1) -> Env:
    """The A1 AMP env batched over ``cfg.env.num_envs``, domain-randomised, with the project's auto-reset.

    Args:
      cfg: the run configuration (``cfg.env`` is used).
      motion_library: a ``MotionLibrary`` for reference-state initialisation, or None when
        ``cfg.env.rsi_probability`` is 0.
      key: PRNG key of the per-env model randomisation (friction, base mass), drawn once here.
      num_devices: devices (or processes) the envs are split over: each resets at most
        ``min(env.reset_batch_size, num_envs / num_devices)`` envs per step by a gathered batch.
    Returns:
      An env whose ``reset`` takes ``keys [num_envs, 2]`` and whose ``step`` takes ``[num_envs, 12]`` actions.
    """
    from amp_jax.envs.randomize import domain_randomize

    env: Env = A1AmpEnv(cfg.env, motion_library)
    if cfg.env.randomize_friction or cfg.env.randomize_base_mass:
        randomizer = functools.partial(domain_randomize, cfg=cfg.env,
                                       rng=jax.random.split(key, cfg.env.num_envs))
        env = DomainRandomizationVmapWrapper(env, randomizer)
    else:
        env = VmapWrapper(env)
    env = AutoResetWrapper(env, min(cfg.env.reset_batch_size, cfg.env.num_envs // num_devices))
    if cfg.env.randomize_initial_episode_length:
        env = RandomInitialProgressWrapper(env, cfg.env.max_episode_steps)
    return env
