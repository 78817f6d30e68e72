"""The ring buffer against a deque model, and its sampling."""

import collections

import jax
import numpy as np
import pytest

from amp_jax.agents import replay_buffer


def _contents(buffer):
    """Rows oldest first."""
    size, start = int(buffer.size), int(buffer.insert_index)
    states, nexts = np.asarray(buffer.states), np.asarray(buffer.next_states)
    if size < buffer.capacity:
        return states[:size], nexts[:size]
    order = (start + np.arange(size)) % buffer.capacity
    return states[order], nexts[order]


def test_insert_matches_deque_model_with_overflow():
    capacity, features = 37, 3
    buffer = replay_buffer.init(capacity, features)
    model = collections.deque(maxlen=capacity)
    counter = 0
    for size in (5, 1, 20, 11, 37, 3, 80, 2, 36, 50, 1):  # includes batches equal to and beyond the capacity
        rows = np.arange(counter, counter + size, dtype=np.float32)
        counter += size
        s = np.stack([rows, rows * 2, -rows], 1)
        s_next = s + 0.5
        buffer = replay_buffer.insert(buffer, s, s_next)
        model.extend(zip(s, s_next))
        got_s, got_next = _contents(buffer)
        assert int(buffer.size) == len(model)
        np.testing.assert_array_equal(got_s, np.array([m[0] for m in model]))
        np.testing.assert_array_equal(got_next, np.array([m[1] for m in model]))


def test_sampling_is_uniform_over_the_filled_part():
    buffer = replay_buffer.init(100, 1)
    rows = np.arange(40, dtype=np.float32)[:, None]
    buffer = replay_buffer.insert(buffer, rows, rows + 1000)
    s, s_next = replay_buffer.sample(buffer, jax.random.PRNGKey(0), 40_000)
    s, s_next = np.asarray(s)[:, 0], np.asarray(s_next)[:, 0]
    np.testing.assert_array_equal(s_next, s + 1000)  # pairs stay together
    counts = np.bincount(s.astype(int), minlength=40)
    assert counts.shape == (40,) and counts.min() > 0  # only filled slots, every one reachable
    chi2 = np.sum((counts - 1000.0) ** 2 / 1000.0)
    assert chi2 < 80.0  # 39 degrees of freedom: p ≈ 1e-4 at 80


def test_bad_capacity_is_rejected():
    with pytest.raises(ValueError, match="replay_buffer_size"):
        replay_buffer.init(0, 43)
