"""Was the style learned? The run's own discriminator on the policy's motion, against its score on the clips.

The discriminator ``D`` of a run is trained to output +1 on clip transitions and −1 on the policy's (least
squares), and its style reward is ``reward_coef · max(0, 1 − ¼ (D − 1)²)``. Scored on an evaluation rollout (the
deterministic policy, no noise) and on transitions drawn from the run's clips as training draws them (the
clips' weights, ``s_next`` one control step after ``s``), the two means say how far the policy's motion is from
the clips in the discriminator's own eyes: a policy indistinguishable from the clips scores as they do.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from amp_jax.agents import losses, networks
from amp_jax.agents.normalizer import NormalizerState
from amp_jax.config import Config

EXPERT_SAMPLES = 4096
"""Clip transitions scored."""


def transitions(amp_obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive pairs ``(s [T−1, F], s_next [T−1, F])`` of a rollout's AMP observations ``[T, F]``."""
    amp_obs = np.asarray(amp_obs)
    return amp_obs[:-1], amp_obs[1:]


def discriminator_scores(nets: networks.AgentNetworks, params: networks.AgentParams, stats: NormalizerState,
                         cfg: Config, policy_transitions: tuple[Any, Any],
                         expert_transitions: tuple[Any, Any]) -> dict[str, float]:
    """Mean ``D`` and mean style reward on the policy's transitions and on the expert ones (each a pair of
    ``[B, F]`` arrays, un-normalised AMP features), through the run's AMP normaliser."""
    from amp_jax.agents.losses import normalized_transition

    def score(pair: tuple[Any, Any]) -> tuple[jax.Array, jax.Array]:
        s, s_next = (jnp.asarray(x, jnp.float32) for x in pair)
        d = networks.discriminator_score(nets, params.discriminator, normalized_transition(stats, s, s_next, cfg))
        return jnp.mean(d), jnp.mean(losses.amp_reward(d, cfg.amp.reward_coef))

    d_policy, reward_policy = score(policy_transitions)
    d_expert, reward_expert = score(expert_transitions)
    return {"d_policy": float(d_policy), "d_clips": float(d_expert), "style_reward_policy": float(reward_policy),
            "style_reward_clips": float(reward_expert), "reward_coef": cfg.amp.reward_coef}


def clip_transitions(cfg: Config, key: jax.Array, count: int = EXPERT_SAMPLES) -> tuple[jax.Array, jax.Array]:
    """``count`` expert transitions of the run's clips, drawn as training draws them (one control step apart)."""
    from amp_jax.motion import library, loader

    motion = loader.load_motion_library(cfg.motion.resolved_files(), dt_amp=cfg.env.control_dt,
                                        repair_threshold=cfg.motion.velocity_repair_threshold,
                                        reversed_weight=cfg.motion.reversed_clip_weight)
    return library.sample_expert_transitions(motion, key, count, cfg.env.control_dt)
