"""Running mean/variance normaliser of the AMP features (the reference's, with its constants).

State: mean ``[F]`` (initially 0), population variance ``[F]`` (initially 1) and a count (initially ε =
``cfg.amp.normalizer_epsilon``, 1e-4): the prior acts as ε pseudo-samples of mean 0 and variance 1.
:func:`update` merges a batch's mean and population variance with the parallel (pairwise) rule, so the state
after any stream equals the statistics of the prior plus the whole stream. :func:`normalize` maps
``x -> clip((x − μ) / √(σ² + ε), ±clip)``.

brax's ``running_statistics`` is not used: it starts from count 0 (no variance-1 prior), keeps the summed
squared deviations and normalises by ``1 / clip(std, std_min, std_max)`` rather than ``1/√(σ² + ε)``, and
its clipping and weighting options differ, so it would not reproduce the reference's numbers.

Precision: float32 on the device (the reference keeps float64 on the host). Both sides of the merge are
weighted by counts, so the relative error stays at float32 rounding of the batch statistics.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class NormalizerState:
    """Running statistics over a feature axis."""

    mean: jax.Array
    """Running mean, ``[F]``."""
    var: jax.Array
    """Running population variance, ``[F]``."""
    count: jax.Array
    """Number of samples merged so far plus the prior's ε, scalar float32."""


def init(num_features: int, epsilon: float) -> NormalizerState:
    """The prior: mean 0, variance 1, count ``epsilon``."""
    return NormalizerState(mean=jnp.zeros((num_features,), jnp.float32),
                           var=jnp.ones((num_features,), jnp.float32),
                           count=jnp.asarray(epsilon, jnp.float32))


def update(state: NormalizerState, batch: jax.Array) -> NormalizerState:
    """Merges ``batch [B, F]`` into the statistics (parallel rule; batch variance with ``ddof = 0``)."""
    batch_mean = jnp.mean(batch, axis=0)
    batch_var = jnp.mean(jnp.square(batch - batch_mean), axis=0)
    return merge_moments(state, batch.shape[0], batch_mean, batch_var)


def merge_moments(state: NormalizerState, batch_count: int | jax.Array, batch_mean: jax.Array,
                  batch_var: jax.Array) -> NormalizerState:
    """Merges a batch given by its size, mean ``[F]`` and population variance ``[F]`` (the parallel rule)."""
    total = state.count + batch_count
    delta = batch_mean - state.mean
    mean = state.mean + delta * (batch_count / total)
    m2 = state.var * state.count + batch_var * batch_count + jnp.square(delta) * (state.count * batch_count / total)
    return NormalizerState(mean=mean, var=m2 / total, count=total)


def normalize(state: NormalizerState, x: jax.Array, epsilon: float, clip: float) -> jax.Array:
    """``clip((x − μ) / √(σ² + ε), −clip, clip)``, ``x [..., F] -> [..., F]``."""
    return jnp.clip((x - state.mean) / jnp.sqrt(state.var + epsilon), -clip, clip)
