"""A new run that starts from another run's policy file (``train.init_policy``) instead of fresh networks.

What carries over, and what does not:

- the actor, the action std and the critic, which must fit this run's observations and networks (the same
  ``networks`` sizes, gait clock and actions);
- the discriminator and the AMP normaliser, when both fit this run's AMP observation; a run whose AMP observation
  differs (another ``env.amp_history_lags``) starts them fresh and says so;
- the adaptive learning rate the file's run would have taken next.

The optimiser's moments, the replay buffer, the envs and the iteration count start as in a fresh run of the
config: the warm start is a new run (iteration 0), not a resume.
"""

from __future__ import annotations

import pathlib

import jax
import numpy as np

from amp_jax.agents import optimizer
from amp_jax.agents.train_step import TrainingState
from amp_jax.config import Config, ConfigError
from amp_jax.training import params_file, policy_file

CARRIED = ("actor", "action_std", "critic")
"""Parameter groups a warm start always takes from the file."""


def _shapes(tree) -> list[tuple[str, tuple[int, ...]]]:
    """Each leaf's path and shape."""
    return [(jax.tree_util.keystr(path), tuple(np.shape(leaf)))
            for path, leaf in jax.tree_util.tree_leaves_with_path(tree)]


def _placed_like(value, like: jax.Array) -> jax.Array:
    """``value`` (host or device array of ``like``'s shape) as an array with ``like``'s dtype and sharding (every
    process passes the same value)."""
    host = np.asarray(value, dtype=like.dtype)
    return jax.make_array_from_callback(like.shape, like.sharding, lambda index: host[index])


def _take(fresh, saved):
    """``saved``'s values placed as ``fresh``'s leaves are (same tree)."""
    return jax.tree.map(_placed_like, saved, fresh)


def start_from_policy_file(state: TrainingState, cfg: Config) -> tuple[TrainingState, str]:
    """``state`` (a fresh run's first state of ``cfg``) with what ``cfg.train.init_policy`` holds that fits it;
    returns it and one line saying what was taken.

    Raises:
      ConfigError: the file cannot be read (missing, corrupt, another format), or its actor, action std or critic
        does not fit this run (names the group and both shapes).
    """
    path = pathlib.Path(cfg.train.init_policy)
    try:
        saved = policy_file.read_policy_file(path)
    except params_file.ParamsFileError as err:
        raise ConfigError("config", "train.init_policy", str(path), f"a readable policy file ({err})") from None
    params = state.params
    for group in CARRIED:
        mine, theirs = _shapes(getattr(params, group)), _shapes(getattr(saved.params, group))
        if mine != theirs:
            raise ConfigError("config", "train.init_policy", str(path),
                              f"a policy whose {group} fits this run's: the file's is {theirs}, this run's {mine}")
    params = params.replace(**{group: _take(getattr(params, group), getattr(saved.params, group))
                               for group in CARRIED})
    fits = (_shapes(params.discriminator) == _shapes(saved.params.discriminator)
            and _shapes(state.normalizer) == _shapes(saved.amp_normalizer))
    normalizer = state.normalizer
    if fits:
        params = params.replace(discriminator=_take(params.discriminator, saved.params.discriminator))
        normalizer = _take(normalizer, saved.amp_normalizer)
    rate = optimizer.learning_rate(state.opt_state)
    opt_state = optimizer.with_learning_rate(state.opt_state, _placed_like(saved.learning_rate, rate))
    what = "actor, action std, critic" + (", discriminator and AMP normaliser" if fits else
                                          "; discriminator and AMP normaliser fresh (the AMP observation differs)")
    line = f"started from {path} (iteration {saved.step}): {what}; learning rate {saved.learning_rate:.2e}"
    return state.replace(params=params, normalizer=normalizer, opt_state=opt_state), line
