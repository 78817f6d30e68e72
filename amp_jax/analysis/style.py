"""Was the style learned? The run's own discriminator on the policy's motion, against its score on the clips.

The discriminator ``D`` of a run is trained to output +1 on clip transitions and −1 on the policy's (least
squares), and its style reward is ``reward_coef · max(0, 1 − ¼ (D − 1)²)``. Scored on an evaluation rollout (the
deterministic policy, no noise) and on transitions drawn from the run's clips as training draws them (the
clips' weights, ``s_next`` one control step after ``s``), the two means say how far the policy's motion is from
the clips in the discriminator's own eyes: a policy indistinguishable from the clips scores as they do.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def run_motion_library(cfg: Config) -> Any:
    """The run's clips (and their reversed copies, if it trained on them) as a motion library."""
    from amp_jax.motion import loader

    return loader.load_motion_library(cfg.motion.resolved_files(), dt_amp=cfg.env.control_dt,
                                      repair_threshold=cfg.motion.velocity_repair_threshold,
                                      reversed_weight=cfg.motion.reversed_clip_weight)


def clip_transitions(cfg: Config, key: jax.Array, count: int = EXPERT_SAMPLES) -> tuple[jax.Array, jax.Array]:
    """``count`` expert transitions of the run's clips, drawn as training draws them (one control step apart, with
    the env's AMP history window)."""
    from amp_jax.motion import library

    return library.sample_expert_transitions(run_motion_library(cfg), key, count, cfg.env.control_dt,
                                             cfg.env.amp_history_lags)


REPLAY_RATES = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
"""Replay rates (× the clip's own) :func:`replay_rate_scores` scores by default."""
SAMPLES_PER_CLIP = 512
"""Transitions per clip and rate, evenly spaced over the clip."""


def replay_rate_scores(nets: networks.AgentNetworks, params: networks.AgentParams, stats: NormalizerState,
                       cfg: Config, motion: Any, rates: Sequence[float] = REPLAY_RATES,
                       samples_per_clip: int = SAMPLES_PER_CLIP) -> np.ndarray:
    """The run's mean ``D`` on each clip of ``motion`` (a :class:`~amp_jax.motion.library.MotionLibrary`) replayed
    at each rate (:func:`amp_jax.motion.library.replayed_transitions`), ``[C, R]``: a discriminator that knows the
    clips' tempo scores rate 1 above the others; one that scores faster replays higher rewards a faster cadence.
    Each score averages ``samples_per_clip`` transitions evenly spaced over the part of the clip the replayed step
    (and the env's AMP history window, replayed alike) stays inside; one forward pass for every clip and rate."""
    from amp_jax.motion import library

    num_clips, num_rates, n = motion.num_clips, len(rates), samples_per_clip
    lags, dt = cfg.env.amp_history_lags, cfg.env.control_dt
    clip = np.repeat(np.arange(num_clips), num_rates * n)
    rate = np.tile(np.repeat(np.asarray(rates, np.float64), n), num_clips)
    reach = rate * max(lags, default=0) * dt
    span = np.maximum(np.asarray(motion.duration, np.float64)[clip] - rate * dt - reach, 0.0)
    time = reach + np.tile(np.linspace(0.0, 1.0, n), num_clips * num_rates) * span
    s, s_next = library.replayed_transitions(motion, jnp.asarray(clip, jnp.int32), jnp.asarray(time, jnp.float32),
                                             jnp.asarray(rate, jnp.float32), dt, lags)
    d = networks.discriminator_score(nets, params.discriminator, losses.normalized_transition(stats, s, s_next, cfg))
    return np.asarray(d, np.float64).reshape(num_clips, num_rates, n).mean(axis=-1)
