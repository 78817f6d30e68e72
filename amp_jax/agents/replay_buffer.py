"""Ring buffer of the policy's AMP transitions ``(s, s_next)`` on the device.

Capacity is the static leading size of the arrays. :func:`insert` takes a batch of any size, larger than the
capacity included (then only its last ``capacity`` rows survive, as in a ring that overwrote the rest);
:func:`sample` draws uniformly with replacement from the filled part.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class ReplayBuffer:
    """``capacity`` slots of AMP transitions; slot ``insert_index`` is written next."""

    states: jax.Array
    """``s``, ``[capacity, F]``."""
    next_states: jax.Array
    """``s_next``, ``[capacity, F]``."""
    insert_index: jax.Array
    """Slot the next inserted row goes to, int32 scalar in ``[0, capacity)``."""
    size: jax.Array
    """Filled slots, int32 scalar in ``[0, capacity]``."""

    @property
    def capacity(self) -> int:
        return self.states.shape[0]


def init(capacity: int, num_features: int) -> ReplayBuffer:
    """An empty buffer of ``capacity`` transitions of ``num_features`` each."""
    if capacity < 1:
        raise ValueError(f"amp.replay_buffer_size = {capacity}: expected an integer >= 1")
    zeros = jnp.zeros((capacity, num_features), jnp.float32)
    return ReplayBuffer(states=zeros, next_states=zeros, insert_index=jnp.zeros((), jnp.int32),
                        size=jnp.zeros((), jnp.int32))


def insert(buffer: ReplayBuffer, states: jax.Array, next_states: jax.Array) -> ReplayBuffer:
    """Appends ``states, next_states [B, F]`` in order, overwriting the oldest rows when full; any ``B``."""
    batch, capacity = states.shape[0], buffer.capacity
    kept = min(batch, capacity)  # rows of this batch that survive (static)
    skipped = batch - kept
    slots = (buffer.insert_index + skipped + jnp.arange(kept, dtype=jnp.int32)) % capacity  # distinct slots
    return ReplayBuffer(
        states=buffer.states.at[slots].set(states[skipped:], unique_indices=True),
        next_states=buffer.next_states.at[slots].set(next_states[skipped:], unique_indices=True),
        insert_index=((buffer.insert_index + batch) % capacity).astype(jnp.int32),
        size=jnp.minimum(buffer.size + batch, capacity).astype(jnp.int32),
    )


def sample(buffer: ReplayBuffer, key: jax.Array, batch: int) -> tuple[jax.Array, jax.Array]:
    """``batch`` transitions drawn uniformly with replacement from the filled slots: ``([batch, F], [batch, F])``.

    The buffer must hold at least one transition (the trainer inserts a rollout before sampling).
    """
    index = jax.random.randint(key, (batch,), 0, jnp.maximum(buffer.size, 1))
    return buffer.states[index], buffer.next_states[index]
