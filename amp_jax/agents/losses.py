"""Pure loss and return functions of AMP-PPO, and the summed loss of one minibatch (:func:`amp_ppo_loss`) with the
sample structs it reads. Shapes: ``[B]`` a batch of samples, ``[T, N]`` time × envs.

Suffixes: ``_t`` at step ``t``, ``_tp1`` at ``t + 1``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from amp_jax.agents import networks, normalizer, symmetry
from amp_jax.agents.networks import AgentNetworks, AgentParams
from amp_jax.agents.normalizer import NormalizerState
from amp_jax.agents.symmetry import MirrorMaps
from amp_jax.config import Config


def clipped_surrogate_loss(log_prob: jax.Array, old_log_prob: jax.Array, advantage: jax.Array,
                           clip_epsilon: float) -> jax.Array:
    """PPO's clipped surrogate as a loss, ``[B] -> []``.

    ``ρ = exp(log π − log π_old)``; ``mean(max(−A·ρ, −A·clip(ρ, 1 − ε, 1 + ε)))``.
    """
    ratio = jnp.exp(log_prob - old_log_prob)
    return jnp.mean(jnp.maximum(-advantage * ratio, -advantage * jnp.clip(ratio, 1 - clip_epsilon, 1 + clip_epsilon)))


def clipped_value_loss(value: jax.Array, old_value: jax.Array, returns: jax.Array, value_clip: float) -> jax.Array:
    """Clipped value loss, ``[B] -> []``.

    ``V_c = V_old + clip(V − V_old, −c, c)``; ``mean(max((V − R)², (V_c − R)²))``.
    """
    clipped = old_value + jnp.clip(value - old_value, -value_clip, value_clip)
    return jnp.mean(jnp.maximum(jnp.square(value - returns), jnp.square(clipped - returns)))


def mean_entropy(entropy: jax.Array) -> jax.Array:
    """Entropy bonus term, ``[B] -> []``: the mean (the loss subtracts ``coef ·`` this)."""
    return jnp.mean(entropy)


def least_squares_discriminator_loss(d_expert: jax.Array, d_policy: jax.Array) -> jax.Array:
    """LSGAN discriminator loss, ``[B_e], [B_p] -> []``: ``½ (mean((D_e − 1)²) + mean((D_p + 1)²))``."""
    return 0.5 * (jnp.mean(jnp.square(d_expert - 1.0)) + jnp.mean(jnp.square(d_policy + 1.0)))


def score_and_input_gradient(score_fn: Callable[[jax.Array], jax.Array],
                             inputs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One forward pass giving both ``D(x) [B]`` and ``∇ₓ D(x) [B, X]`` for ``inputs x [B, X]``.

    ``score_fn`` maps ``[B, X] -> [B]`` row-wise, so the vector–Jacobian product with ones gives each row's
    own input gradient. Differentiable w.r.t. anything ``score_fn`` closes over (double backward).
    """
    scores, vjp = jax.vjp(score_fn, inputs)
    (grad_inputs,) = vjp(jnp.ones_like(scores))
    return scores, grad_inputs


def gradient_penalty(grad_inputs: jax.Array, coef: float) -> jax.Array:
    """``coef · mean_b ‖∇ₓ D(x_b)‖²`` from the input gradients ``[B, X] -> []`` (target norm 0)."""
    return coef * jnp.mean(jnp.sum(jnp.square(grad_inputs), axis=-1))


def amp_reward(d: jax.Array, reward_coef: float) -> jax.Array:
    """Style reward from the discriminator score: ``coef · max(0, 1 − ¼ (D − 1)²)``, elementwise."""
    return reward_coef * jnp.maximum(0.0, 1.0 - 0.25 * jnp.square(d - 1.0))


def mix_rewards(amp: jax.Array, task: jax.Array, task_reward_lerp: float) -> jax.Array:
    """``(1 − lerp) · r_amp + lerp · r_task``, elementwise."""
    return (1.0 - task_reward_lerp) * amp + task_reward_lerp * task


def bootstrap_time_outs(reward: jax.Array, value: jax.Array, truncation: jax.Array, gamma: float) -> jax.Array:
    """``r + γ · V(s_t) · truncation_t``: a time-out is not a real end, so its step keeps the value it cut off.

    ``V(s_t)`` is the value of the observation the action was taken from (the reference's choice).
    """
    return reward + gamma * value * truncation


def generalized_advantages(reward_t: jax.Array, value_t: jax.Array, done_t: jax.Array, last_value: jax.Array,
                           gamma: float, gae_lambda: float) -> tuple[jax.Array, jax.Array]:
    """GAE over a rollout as a reverse scan: ``[T, N] ×3, [N] -> (advantages [T, N], returns [T, N])``.

    ``δ_t = r_t + γ (1 − d_t) V_{t+1} − V_t``, ``A_t = δ_t + γ λ (1 − d_t) A_{t+1}``, with ``V_T`` =
    ``last_value`` and ``A_T = 0``; ``returns = A + V``.
    """

    def backward_step(carry, xs):
        advantage_tp1, value_tp1 = carry
        r_t, v_t, d_t = xs
        not_done = 1.0 - d_t
        delta = r_t + gamma * not_done * value_tp1 - v_t
        advantage_t = delta + gamma * gae_lambda * not_done * advantage_tp1
        return (advantage_t, v_t), advantage_t

    _, advantages = jax.lax.scan(backward_step, (jnp.zeros_like(last_value), last_value),
                                 (reward_t, value_t, done_t), reverse=True)
    return advantages, advantages + value_t


# ----------------------------------------------------------------------------------------------------------
# The summed AMP-PPO loss of one minibatch

@struct.dataclass
class PPOSamples:
    """Flattened, shuffled PPO samples, ``[B or B/M, ...]``."""

    state_obs: jax.Array
    privileged_obs: jax.Array
    action: jax.Array
    action_mean: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantage: jax.Array
    """Normalised over the whole batch."""
    returns: jax.Array

    @classmethod
    def from_rollout(cls, rollout: Any, advantage: jax.Array, returns: jax.Array) -> PPOSamples:
        """The samples of a flattened rollout (any struct with this class's other fields, e.g. the train step's
        ``Rollout``): its fields of the same names, and ``advantage`` and ``returns``."""
        taken = {f.name: getattr(rollout, f.name) for f in dataclasses.fields(cls)
                 if f.name not in ("advantage", "returns")}
        return cls(**taken, advantage=advantage, returns=returns)


@struct.dataclass
class AMPSamples:
    """One discriminator minibatch: policy transitions from the buffer and as many expert ones, ``[B/M, F]``."""

    policy_state: jax.Array
    policy_next_state: jax.Array
    expert_state: jax.Array
    expert_next_state: jax.Array
    tempo_state: jax.Array | None = None
    """Clip transitions replayed at other rates, scored as the policy's (``amp.tempo_negative_weight`` > 0)."""
    tempo_next_state: jax.Array | None = None


@struct.dataclass
class LossTerms:
    """Scalars of one minibatch's loss, logged as averages over the update."""

    total: jax.Array
    surrogate: jax.Array
    value: jax.Array
    entropy: jax.Array
    kl: jax.Array
    discriminator: jax.Array | None = None
    """The discriminator's terms: None when ``amp.enabled`` is false."""
    grad_penalty: jax.Array | None = None
    d_expert: jax.Array | None = None
    d_policy: jax.Array | None = None
    tempo: jax.Array | None = None
    """The tempo term (weighted), when the minibatch holds replayed clip transitions."""
    d_tempo: jax.Array | None = None
    mirror: jax.Array | None = None
    """The mirror loss (before its weight), when ``symmetry.mirror_loss_coef`` > 0."""


def normalized_transition(stats: NormalizerState, state: jax.Array, next_state: jax.Array,
                          cfg: Config) -> jax.Array:
    """Discriminator input ``concat(norm(s), norm(s_next))``, ``[..., F] ×2 -> [..., 2F]``."""

    def norm(x: jax.Array) -> jax.Array:
        return normalizer.normalize(stats, x, cfg.amp.normalizer_epsilon, cfg.amp.normalizer_clip)

    return jnp.concatenate([norm(state), norm(next_state)], axis=-1)


def amp_ppo_loss(params: AgentParams, nets: AgentNetworks, cfg: Config, ppo: PPOSamples,
                 amp: AMPSamples | None, stats: NormalizerState, old_std: jax.Array,
                 mirror: MirrorMaps | None = None) -> tuple[jax.Array, LossTerms]:
    """surrogate + c_v · value − c_e · entropy + LSGAN discriminator loss + gradient penalty (one backward pass),
    + the weighted mirror loss when ``cfg.symmetry.mirror_loss_coef`` > 0. With ``amp`` None (``amp.enabled``
    false) the loss has no discriminator terms.

    The expert transitions go through the discriminator once: the same forward gives ``D(x_e)`` for the loss
    and, by its vector–Jacobian product, ``∇ₓD(x_e)`` for the penalty. With ``cfg.symmetry.ppo_augmentation``
    (and ``mirror``) the surrogate and value losses also cover the mirrored samples
    (:func:`amp_jax.agents.symmetry.with_mirrored_samples`); the KL is the original half's. When ``amp`` holds
    clip transitions replayed at other rates (``tempo_state``), the tempo term
    ``amp.tempo_negative_weight · ½ · mean (D(x_r) + 1)²`` teaches the discriminator to score them as the policy's.
    """
    num_original = ppo.advantage.shape[0]
    augment = mirror is not None and cfg.symmetry.ppo_augmentation
    if augment:
        ppo = symmetry.with_mirrored_samples(ppo, mirror)
    mean = networks.policy_mean(nets, params, ppo.state_obs)
    std = params.action_std
    log_prob = networks.gaussian_log_prob(ppo.action, mean, std)
    surrogate = clipped_surrogate_loss(log_prob, ppo.log_prob, ppo.advantage, cfg.ppo.clip_epsilon)
    value = networks.value(nets, params, ppo.privileged_obs)
    value_loss = clipped_value_loss(value, ppo.value, ppo.returns, cfg.ppo.value_clip)
    entropy = mean_entropy(jnp.broadcast_to(networks.gaussian_entropy(std), log_prob.shape))
    original_mean = mean[:num_original] if augment else mean
    old_mean = ppo.action_mean[:num_original] if augment else ppo.action_mean
    kl = jnp.mean(networks.gaussian_kl(old_mean, old_std,
                                       jax.lax.stop_gradient(original_mean), jax.lax.stop_gradient(std)))
    mirror_term = None
    if mirror is not None and cfg.symmetry.mirror_loss_coef > 0:
        mean_of_mirrored = (mean[num_original:] if augment else
                            networks.policy_mean(nets, params, mirror.policy_obs(ppo.state_obs)))
        mirror_term = symmetry.mirror_loss(mean_of_mirrored, original_mean, mirror)

    total = surrogate + cfg.ppo.value_coef * value_loss - cfg.ppo.entropy_coef * entropy
    disc_terms = {}
    if amp is not None:
        def score(x: jax.Array) -> jax.Array:
            return networks.discriminator_score(nets, params.discriminator, x)

        d_policy = score(normalized_transition(stats, amp.policy_state, amp.policy_next_state, cfg))
        d_expert, grad_expert = score_and_input_gradient(
            score, normalized_transition(stats, amp.expert_state, amp.expert_next_state, cfg))
        disc_terms = {"discriminator": least_squares_discriminator_loss(d_expert, d_policy),
                      "grad_penalty": gradient_penalty(grad_expert, cfg.amp.grad_penalty_coef),
                      "d_expert": jnp.mean(d_expert), "d_policy": jnp.mean(d_policy)}
        total = total + disc_terms["discriminator"] + disc_terms["grad_penalty"]
        if amp.tempo_state is not None:
            d_tempo = score(normalized_transition(stats, amp.tempo_state, amp.tempo_next_state, cfg))
            disc_terms["tempo"] = cfg.amp.tempo_negative_weight * 0.5 * jnp.mean(jnp.square(d_tempo + 1.0))
            disc_terms["d_tempo"] = jnp.mean(d_tempo)
            total = total + disc_terms["tempo"]
    if mirror_term is not None:
        total = total + cfg.symmetry.mirror_loss_coef * mirror_term
    return total, LossTerms(total=total, surrogate=surrogate, value=value_loss, entropy=entropy, kl=kl,
                            mirror=mirror_term, **disc_terms)
