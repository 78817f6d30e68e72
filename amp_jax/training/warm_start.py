"""A new run that starts from another run's policy file (``train.init_policy``) instead of fresh networks.

What carries over, and what does not:

- the actor, the action std and the critic, which must fit this run's observations and networks (the same
  ``networks`` sizes, gait clock and actions); an actor goes into a run whose policy also observes more
  (earlier steps, ``env.policy_history``; the base's angular and linear velocity, ``env.policy_base_ang_vel``,
  ``env.policy_base_lin_vel``) with zero
  weights from what it did not observe, so it acts as the file's policy until training finds a use for those;
- the discriminator and the AMP normaliser, when both fit this run's AMP observation; a run whose AMP observation
  differs (another ``env.amp_history_lags``) starts them fresh and says so;
- the adaptive learning rate the file's run would have taken next.

Into a run with ``symmetry.equivariant_networks`` from a file without, the weights go in as they are, so the
run's actor and critic are the file's averaged with their mirror images; each action std is averaged with its
mirror partner's at once, as every optimiser step of such a run does. The other way round, the weights go in as
they are too, and the line says that the run's policy no longer averages them.

The optimiser's moments, the replay buffer, the envs and the iteration count start as in a fresh run of the
config: the warm start is a new run (iteration 0), not a resume.
"""

from __future__ import annotations

import pathlib

import jax
import numpy as np

from amp_jax.agents import networks as networks_lib
from amp_jax.agents import optimizer
from amp_jax.agents.train_step import TrainingState
from amp_jax.config import Config, ConfigError
from amp_jax.envs import observations
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


def _observation_entries(env) -> list[tuple[int, str, int]]:
    """Each entry of the policy observation of an env ``env`` (an ``EnvConfig``) as ``(step back, part, index in
    the part)``, in order."""
    return [(step, name, i) for step in range(1 + env.policy_history)
            for name, size in observations.policy_frame_parts(env) for i in range(size)]


def _widened_input(saved_actor, fresh_actor, saved_env, env) -> tuple[object, tuple[str, ...]]:
    """``saved_actor`` (the file's, whose policy observed as ``saved_env``) with its first layer's kernel
    ``[n, hidden]`` spread over this run's ``[m, hidden]`` (observing as ``env``): each of the file's input rows
    goes to the row of this run's observation that holds the same entry, and the rows of entries the file's policy
    did not observe (earlier steps, the base's velocities) are zero. Returns it and what was added, or
    ``saved_actor`` unchanged and ``()`` when the two do not differ in just that way (the shape check that follows
    names the misfit)."""
    saved_leaves, tree = jax.tree_util.tree_flatten(saved_actor)
    fresh_leaves = jax.tree_util.tree_leaves(fresh_actor)
    if len(saved_leaves) != len(fresh_leaves):
        return saved_actor, ()
    mismatched = [i for i, (a, b) in enumerate(zip(saved_leaves, fresh_leaves)) if np.shape(a) != np.shape(b)]
    if len(mismatched) != 1:
        return saved_actor, ()
    kernel, fresh = np.asarray(saved_leaves[mismatched[0]]), fresh_leaves[mismatched[0]]
    old, new = _observation_entries(saved_env), _observation_entries(env)
    row_of = {entry: row for row, entry in enumerate(new)}
    if (kernel.ndim != 2 or fresh.ndim != 2 or kernel.shape != (len(old), fresh.shape[1])
            or fresh.shape[0] != len(new) or not all(entry in row_of for entry in old)):
        return saved_actor, ()
    widened = np.zeros(fresh.shape, kernel.dtype)
    widened[[row_of[entry] for entry in old]] = kernel
    saved_leaves[mismatched[0]] = widened
    known = set(old)
    added = []
    if env.policy_history > saved_env.policy_history:
        added.append("the earlier steps' observations")
    added += [name for name, _ in observations.policy_frame_parts(env)
              if (0, name, 0) not in known]
    return jax.tree_util.tree_unflatten(tree, saved_leaves), tuple(added)


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
    carried = {group: getattr(saved.params, group) for group in CARRIED}
    carried["actor"], added = _widened_input(carried["actor"], params.actor, saved.cfg.env, cfg.env)
    for group in CARRIED:
        mine, theirs = _shapes(getattr(params, group)), _shapes(carried[group])
        if mine != theirs:
            raise ConfigError("config", "train.init_policy", str(path),
                              f"a policy whose {group} fits this run's: the file's is {theirs}, this run's {mine}")
    equivariant = cfg.symmetry.equivariant_networks and not saved.cfg.symmetry.equivariant_networks
    if equivariant:  # the first rollout samples mirror-equivariantly too, as every later one does
        nets = policy_file.run_networks(cfg)
        carried["action_std"] = np.asarray(
            networks_lib.with_mirror_symmetric_std(nets, saved.params.replace(action_std=carried["action_std"]))
            .action_std)
    params = params.replace(**{group: _take(getattr(params, group), carried[group]) for group in CARRIED})
    fits = (_shapes(params.discriminator) == _shapes(saved.params.discriminator)
            and _shapes(state.normalizer) == _shapes(saved.amp_normalizer))
    normalizer = state.normalizer
    if fits:
        params = params.replace(discriminator=_take(params.discriminator, saved.params.discriminator))
        normalizer = _take(normalizer, saved.amp_normalizer)
    rate = optimizer.learning_rate(state.opt_state)
    opt_state = optimizer.with_learning_rate(state.opt_state, _placed_like(saved.learning_rate, rate))
    actor = f"actor (zero weights from {' and '.join(added)})" if added else "actor"
    what = f"{actor}, action std, critic" + (", discriminator and AMP normaliser" if fits else
                                             "; discriminator and AMP normaliser fresh (the AMP observation differs)")
    line = f"started from {path} (iteration {saved.step}): {what}; learning rate {saved.learning_rate:.2e}"
    if equivariant:
        line += ("; its actor and critic averaged with their mirror images and each action std with its mirror"
                 " partner's (symmetry.equivariant_networks)")
    elif saved.cfg.symmetry.equivariant_networks and not cfg.symmetry.equivariant_networks:
        line += ("; the file's policy averaged its actor and critic with their mirror images"
                 " (symmetry.equivariant_networks) and this run's does not, so it acts otherwise until trained")
    return state.replace(params=params, normalizer=normalizer, opt_state=opt_state), line
