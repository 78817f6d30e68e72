"""Mirror-symmetric learning: the env's mirror maps as the training step sees them, and the mirrored halves of
PPO and discriminator minibatches.

For a task symmetric under a mirror ``M`` (a mirrored state under a mirrored action is a valid transition with
the same reward), what is exact and what is approximated:

* **PPO augmentation** (:func:`with_mirrored_samples`): the mirrored half pairs ``(M s, M a)`` with the original
  sample's advantage, return, value and old log-probability. The advantage and return of ``(M s, M a)`` equal
  the original's when the rewards, the dynamics and the value function are mirror-symmetric (the task reward
  is; the AMP reward is when the discriminator is, which its own augmentation encourages; the A1 model is
  symmetric only to ~2 mm of its trunk's centre of mass). The old log-probability ``log π_old(a | s)`` stands
  for ``log π_old(M a | M s)``, which it equals only for a mirror-equivariant old policy: the ratio of the
  mirrored half measures the step and the policy's asymmetry together. The KL that adapts the learning rate is
  therefore taken on the original half only.
* **Mirror loss** (:func:`mirror_loss`): ``mean ‖μ(M s) − M μ(s)‖²`` with the target ``M μ(s)`` held fixed, a
  direct push towards an equivariant mean.
* **Discriminator** (:func:`with_mirror_image`): a minibatch of policy transitions is joined by their mirror
  images and its expert transitions likewise, which is sampling from the clips and their mirrored copies at the
  same weights, pair by pair. Both halves enter the AMP normaliser.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from amp_jax.envs.mirror import Map, MirrorMaps

__all__ = ["Map", "MirrorMaps", "mirror_loss", "with_mirror_image", "with_mirrored_samples"]

def with_mirror_image(x: jax.Array, mirror: Map) -> jax.Array:
    """``[b, D] -> [2b, D]``: the rows, then their mirror images in the same order."""
    return jnp.concatenate([x, mirror(x)], axis=0)


def with_mirrored_samples(samples, maps: MirrorMaps):
    """PPO samples ``[b]`` → ``[2b]``: the originals, then ``(M s, M s_critic, M a, M μ_old)`` with the original
    advantages, returns, values and log-probabilities (see the module docstring for what that approximates).
    ``samples`` is any struct with the fields of ``amp_jax.agents.losses.PPOSamples``."""
    mirrored = samples.replace(state_obs=maps.policy_obs(samples.state_obs),
                               privileged_obs=maps.critic_obs(samples.privileged_obs),
                               action=maps.action(samples.action), action_mean=maps.action(samples.action_mean))
    return jax.tree.map(lambda a, b: jnp.concatenate([a, b], axis=0), samples, mirrored)


def mirror_loss(mean_of_mirrored: jax.Array, mean: jax.Array, maps: MirrorMaps) -> jax.Array:
    """``mean ‖μ(M s) − M μ(s)‖²`` over rows and action entries, ``[b, A] ×2 -> []``; no gradient through the
    target ``M μ(s)``."""
    target = jax.lax.stop_gradient(maps.action(mean))
    return jnp.mean(jnp.square(mean_of_mirrored - target))
