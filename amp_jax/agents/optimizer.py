"""The one optimiser over actor, critic and discriminator, and the rules applied around each step.

Gradient pipeline (optax), per parameter group, then one Adam for all:

* actor-critic (actor, action std, critic): global-norm clip at ``cfg.ppo.max_grad_norm``, norm taken over
  this group only;
* discriminator trunk: ``g + disc_trunk_weight_decay · θ``; discriminator head: ``g + disc_head_weight_decay · θ``
  (L2 added to the gradient before Adam, as PyTorch's Adam does, not decoupled AdamW); zero when
  ``amp.enabled`` is false;
* Adam (β 0.9, 0.999, ε 1e-8, PyTorch's defaults) scaled by the learning rate, which is an injected
  hyper-parameter so the adaptive rule can change it between steps without rebuilding anything.

Around each step: :func:`adapt_learning_rate` (before it, from that minibatch's KL) and
:func:`apply_std_floor` (after it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from amp_jax.agents.networks import DISC_HEAD, AgentParams
from amp_jax.config import AMPConfig, PPOConfig

ACTOR_CRITIC = "actor_critic"
DISC_TRUNK = "disc_trunk"
DISC_HEAD_GROUP = "disc_head"

ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8
"""PyTorch Adam's defaults (the reference's)."""

LR_DECREASE, LR_INCREASE = 1.5, 1.5
"""The adaptive rule divides / multiplies the learning rate by these."""


def param_labels(params: AgentParams) -> AgentParams:
    """The group of every parameter leaf: actor-critic, discriminator trunk or discriminator head."""

    def disc_label(path, _leaf) -> str:
        names = {getattr(entry, "key", None) for entry in path}
        return DISC_HEAD_GROUP if DISC_HEAD in names else DISC_TRUNK

    return AgentParams(
        actor=jax.tree.map(lambda _: ACTOR_CRITIC, params.actor),
        action_std=ACTOR_CRITIC,
        critic=jax.tree.map(lambda _: ACTOR_CRITIC, params.critic),
        discriminator=jax.tree_util.tree_map_with_path(disc_label, params.discriminator),
    )


def _chain(learning_rate: float, max_grad_norm: float, trunk_decay: float, head_decay: float,
           train_discriminator: bool) -> optax.GradientTransformation:
    if train_discriminator:
        trunk, head = optax.add_decayed_weights(trunk_decay), optax.add_decayed_weights(head_decay)
    else:  # zero updates: Adam's moments stay 0 and so does its step for these parameters
        trunk, head = optax.set_to_zero(), optax.set_to_zero()
    return optax.chain(
        optax.partition({ACTOR_CRITIC: optax.clip_by_global_norm(max_grad_norm),
                         DISC_TRUNK: trunk, DISC_HEAD_GROUP: head}, param_labels),
        optax.adam(learning_rate, b1=ADAM_B1, b2=ADAM_B2, eps=ADAM_EPS),
    )


def make_optimizer(ppo: PPOConfig, amp: AMPConfig) -> optax.GradientTransformation:
    """Clip / weight decay per group, then Adam; the learning rate lives in ``opt_state.hyperparams``. With
    ``amp.enabled`` false the discriminator's parameters get zero updates (no weight decay either)."""
    return optax.inject_hyperparams(
        _chain, static_args=("max_grad_norm", "trunk_decay", "head_decay", "train_discriminator"))(
        learning_rate=ppo.learning_rate, max_grad_norm=ppo.max_grad_norm,
        trunk_decay=amp.disc_trunk_weight_decay, head_decay=amp.disc_head_weight_decay,
        train_discriminator=amp.enabled)


def learning_rate(opt_state: optax.OptState) -> jax.Array:
    """The learning rate of ``opt_state``'s next step, float32 scalar: the adaptive rule's state, whose one home is
    optax's injected hyper-parameter."""
    return opt_state.hyperparams["learning_rate"]


def with_learning_rate(opt_state: optax.OptState, learning_rate: jax.Array) -> optax.OptState:
    """``opt_state`` whose next step uses ``learning_rate``."""
    hyperparams = dict(opt_state.hyperparams)
    hyperparams["learning_rate"] = jnp.asarray(learning_rate, hyperparams["learning_rate"].dtype)
    return opt_state._replace(hyperparams=hyperparams)


def adapt_learning_rate(learning_rate: jax.Array, kl: jax.Array, ppo: PPOConfig) -> jax.Array:
    """The reference's KL rule (identity when ``ppo.schedule == 'fixed'``).

    ``KL > 2·desired → max(lr / 1.5, lr_min)``; ``0 < KL < desired / 2 → min(lr · 1.5, lr_max)``; else ``lr``.
    """
    if ppo.schedule != "adaptive":
        return learning_rate
    lower = jnp.maximum(learning_rate / LR_DECREASE, ppo.learning_rate_min)
    raise_ = jnp.minimum(learning_rate * LR_INCREASE, ppo.learning_rate_max)
    return jnp.where(kl > 2.0 * ppo.desired_kl, lower,
                     jnp.where((kl > 0.0) & (kl < 0.5 * ppo.desired_kl), raise_, learning_rate))


def apply_std_floor(params: AgentParams, min_std: np.ndarray) -> AgentParams:
    """``std = max(std, min_std)`` on the raw action-std parameter ``[A]``."""
    return params.replace(action_std=jnp.maximum(params.action_std, jnp.asarray(min_std, params.action_std.dtype)))
