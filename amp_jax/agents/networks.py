"""Actor, critic and discriminator of AMP-PPO (Flax linen), and the diagonal Gaussian policy.

* Actor: MLP (``cfg.actor_hidden``, ELU) from the policy observation ``obs["state"] [..., S]`` to the
  mean action ``[..., A]``; the action std is a separate, state-independent raw parameter ``[A]`` (not its
  log), initialised to ``cfg.init_std`` and floored at ``cfg.min_std`` after every optimiser step.
* Critic: MLP (``cfg.critic_hidden``, ELU) from the critic observation ``obs["privileged_state"] [..., P]``
  to the value ``[...]``.
* Discriminator: MLP (``cfg.disc_hidden``, LeakyReLU 0.01) from a normalised AMP transition
  ``concat(s, s_next) [..., 2F]`` to a linear score ``[...]``. Its hidden layers form the *trunk*, its last
  layer the *head* (they get different weight decay, see :mod:`amp_jax.agents.optimizer`).

Initialisation: PyTorch's default for linear layers, weights and biases ``U[±1/√fan_in]`` (the reference's),
not Flax's LeCun-normal / zero-bias default.

Mirror-equivariant networks (``symmetry.equivariant_networks``, networks made with ``mirror``): for the env's
mirror ``M`` (:class:`amp_jax.envs.mirror.MirrorMaps`) the mean action is ``μ(s) = ½ (f(s) + M_a f(M_s s))`` and
the value ``V(c) = ½ (g(c) + g(M_c c))`` of the same MLPs ``f`` (actor) and ``g`` (critic), so that
``μ(M_s s) = M_a μ(s)`` and ``V(M_c c) = V(c)`` for any parameters; the action std is kept equal for each pair of
mirror-partner joints (:func:`with_mirror_symmetric_std`, after every optimiser step). The policy is then
``π(M a | M s) = π(a | s)`` exactly: a sample and its mirror image give the same gradient, so the mirror image
of every rollout is learned from without doubling the minibatch (each network pass covers both). The parameters
are the plain MLPs' (same shapes, same files); the deterministic policy exported to ONNX computes both passes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from amp_jax.config import NetworkConfig

if TYPE_CHECKING:
    from amp_jax.envs.mirror import MirrorMaps

DISC_HEAD = "head"
"""Name of every MLP's output layer in its parameter dict; the discriminator's head (the rest is its trunk)."""

LEAKY_RELU_SLOPE = 0.01
"""Negative slope of the discriminator's LeakyReLU."""


def _uniform_fan_in(fan_in: int) -> Callable[[jax.Array, Sequence[int], jnp.dtype], jax.Array]:
    bound = 1.0 / math.sqrt(fan_in)

    def init(key: jax.Array, shape: Sequence[int], dtype: jnp.dtype = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class TorchDense(nn.Module):
    """``y = x @ kernel + bias`` with PyTorch's default init (kernel and bias ``U[±1/√fan_in]``)."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        kernel = self.param("kernel", _uniform_fan_in(fan_in), (fan_in, self.features))
        bias = self.param("bias", _uniform_fan_in(fan_in), (self.features,))
        return x @ kernel + bias


class MLP(nn.Module):
    """Hidden layers with ``activation`` then a linear output layer: ``[..., in] -> [..., out_features]``."""

    hidden: Sequence[int]
    out_features: int
    activation: Callable[[jax.Array], jax.Array]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, width in enumerate(self.hidden):
            x = self.activation(TorchDense(width, name=f"hidden_{i}")(x))
        return TorchDense(self.out_features, name=DISC_HEAD)(x)


def leaky_relu(x: jax.Array) -> jax.Array:
    """LeakyReLU with the reference's slope 0.01."""
    return jax.nn.leaky_relu(x, LEAKY_RELU_SLOPE)


@struct.dataclass
class AgentParams:
    """Every trained parameter: one pytree for the one optimiser."""

    actor: dict
    """Actor MLP parameters (``obs["state"]`` → mean action)."""
    action_std: jax.Array
    """Raw, state-independent action standard deviation, ``[A]``."""
    critic: dict
    """Critic MLP parameters (``obs["privileged_state"]`` → value)."""
    discriminator: dict
    """Discriminator MLP parameters; ``discriminator["params"][DISC_HEAD]`` is the output layer."""


@dataclasses.dataclass(frozen=True)
class AgentNetworks:
    """The three modules and the fixed shapes around them (static; not a pytree)."""

    actor: MLP
    critic: MLP
    discriminator: MLP
    action_size: int
    init_std: float
    min_std: np.ndarray
    """Per-action std floor, ``[A]``."""
    mirror: MirrorMaps | None = None
    """The env's mirror maps when the actor and critic are mirror-equivariant (see the module docstring)."""


def make_networks(cfg: NetworkConfig, action_size: int, mirror: MirrorMaps | None = None) -> AgentNetworks:
    """The networks of ``cfg`` for ``action_size`` actions; mirror-equivariant under ``mirror`` when given.

    Raises:
      ValueError: if ``cfg.min_std`` has no entry per action.
    """
    min_std = np.asarray(cfg.min_std, dtype=np.float32)
    if min_std.shape != (action_size,):
        raise ValueError(f"networks.min_std_per_leg gives a std floor of shape {min_std.shape}; expected one "
                         f"entry per action ({action_size},)")
    return AgentNetworks(
        actor=MLP(tuple(cfg.actor_hidden), action_size, jax.nn.elu),
        critic=MLP(tuple(cfg.critic_hidden), 1, jax.nn.elu),
        discriminator=MLP(tuple(cfg.disc_hidden), 1, leaky_relu),
        action_size=action_size,
        init_std=cfg.init_std,
        min_std=min_std,
        mirror=mirror,
    )


def init_params(networks: AgentNetworks, key: jax.Array, state_size: int, privileged_size: int,
                amp_size: int) -> AgentParams:
    """Fresh parameters for observations of ``state_size`` / ``privileged_size`` and AMP features ``amp_size``."""
    k_actor, k_critic, k_disc = jax.random.split(key, 3)
    return AgentParams(
        actor=networks.actor.init(k_actor, jnp.zeros((1, state_size))),
        action_std=jnp.full((networks.action_size,), networks.init_std, jnp.float32),
        critic=networks.critic.init(k_critic, jnp.zeros((1, privileged_size))),
        discriminator=networks.discriminator.init(k_disc, jnp.zeros((1, 2 * amp_size))),
    )


def _with_mirror_pass(apply: Callable[[jax.Array], jax.Array], x: jax.Array, mirror_in: Callable,
                      mirror_out: Callable) -> jax.Array:
    """``½ (apply(x) + mirror_out(apply(mirror_in(x))))``, both passes as one batch."""
    both = apply(jnp.stack([x, mirror_in(x)]))
    return 0.5 * (both[0] + mirror_out(both[1]))


def policy_mean(networks: AgentNetworks, params: AgentParams, state_obs: jax.Array) -> jax.Array:
    """Mean (deterministic) action, ``state_obs [..., S] -> [..., A]``; mirror-equivariant when the networks are."""
    def actor(x: jax.Array) -> jax.Array:
        return networks.actor.apply(params.actor, x)

    if networks.mirror is None:
        return actor(state_obs)
    return _with_mirror_pass(actor, state_obs, networks.mirror.policy_obs, networks.mirror.action)


def with_mirror_symmetric_std(networks: AgentNetworks, params: AgentParams) -> AgentParams:
    """``params`` with each action std averaged with its mirror partner's when the networks are mirror-equivariant
    (the mirror permutes actions; the std has no sign), unchanged otherwise."""
    if networks.mirror is None:
        return params
    std = params.action_std
    return params.replace(action_std=0.5 * (std + jnp.abs(networks.mirror.action(std))))


def make_policy_fn(networks: AgentNetworks) -> Callable[[AgentParams, jax.Array], jax.Array]:
    """The deterministic policy as a pure ``fn(params, obs["state"] [..., S]) -> action [..., A]`` (export)."""

    def policy(params: AgentParams, state_obs: jax.Array) -> jax.Array:
        return policy_mean(networks, params, state_obs)

    return policy


def value(networks: AgentNetworks, params: AgentParams, privileged_obs: jax.Array) -> jax.Array:
    """State value, ``privileged_obs [..., P] -> [...]``; mirror-invariant when the networks are equivariant."""
    def critic(x: jax.Array) -> jax.Array:
        return networks.critic.apply(params.critic, x)[..., 0]

    if networks.mirror is None:
        return critic(privileged_obs)
    return _with_mirror_pass(critic, privileged_obs, networks.mirror.critic_obs, lambda v: v)


def discriminator_score(networks: AgentNetworks, disc_params: dict, transition: jax.Array) -> jax.Array:
    """Discriminator output ``D``, ``transition [..., 2F]`` (normalised ``concat(s, s_next)``) ``-> [...]``."""
    return networks.discriminator.apply(disc_params, transition)[..., 0]


def gaussian_log_prob(action: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
    """log N(action; mean, diag(std²)) summed over the last axis: ``[..., A] -> [...]``."""
    z = (action - mean) / std
    return jnp.sum(-0.5 * z * z - jnp.log(std) - 0.5 * math.log(2 * math.pi), axis=-1)


def gaussian_entropy(std: jax.Array) -> jax.Array:
    """Entropy of a diagonal Gaussian summed over the last axis: ``std [..., A] -> [...]``."""
    return jnp.sum(0.5 + 0.5 * math.log(2 * math.pi) + jnp.log(std), axis=-1)


def gaussian_kl(mean_old: jax.Array, std_old: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
    """The reference's KL(old ‖ new) summed over actions, ``[..., A] -> [...]``.

    ``Σ_a [log(σ/σ_old + 1e-5) + (σ_old² + (μ_old − μ)²) / (2σ²) − ½]``.
    """
    return jnp.sum(jnp.log(std / std_old + 1e-5)
                   + (jnp.square(std_old) + jnp.square(mean_old - mean)) / (2.0 * jnp.square(std)) - 0.5, axis=-1)
