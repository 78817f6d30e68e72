"""Data parallelism over a 1-D device mesh: what changes when one iteration runs on ``D`` devices at once.

The train step runs under ``jax.shard_map`` over the mesh axis :data:`AXIS`. Each device steps its
``N/D`` envs (a contiguous block of the global env axis), keeps its own replay buffer of capacity
``C/D`` and its own slice of every rollout and minibatch; parameters, optimiser state, learning rate,
normaliser, PRNG key and iteration count are replicated and stay identical on every device because every
device applies the same update:

* gradients and loss terms (the KL that adapts the learning rate included) are averaged over devices
  (:func:`jax.lax.pmean`); every device's minibatch has ``B/(M·D)`` samples, so the mean of the device
  means is the mean over the global minibatch;
* the AMP normaliser merges the *global* minibatch: :func:`merge_normalizer` sums counts, sums and
  squared deviations over devices, so the result equals :func:`amp_jax.agents.normalizer.update` on the
  concatenation of every device's batch;
* advantages are normalised by the global batch's mean and unbiased std (:func:`normalize_advantages`);
* random draws that must differ between devices (replay and expert samples, minibatch order) fold the
  device index into the replicated key (:func:`device_key`); the rollout's action noise is drawn for the
  global env axis and sliced, so env ``i`` sees the same noise whatever ``D`` is.

The train step is written once and always runs under ``shard_map``, on a mesh of one device too: it reaches
every one of these through :class:`DeviceAxis`. On one device the collectives are all-reduces of a single
participant (XLA keeps them in the compiled program), and the iteration is as fast as the unsplit one was
(docs/BENCHMARKS.md, "One program for any device count").

Layouts (what a checkpoint holds, :func:`to_checkpoint_layout` / :func:`from_checkpoint_layout`):

* env state: the global ``[N, ...]`` arrays; env ``i`` lives on device ``i // (N/D)``. Its
  domain-randomised model (row ``i`` of brax's ``DomainRandomizationVmapWrapper`` table) goes with it
  (:func:`localize_env`).
* replay buffer: on the devices, block ``d`` of the ``[C, F]`` arrays is device ``d``'s ring and
  ``insert_index`` / ``size`` are the (equal) per-device counters. In a checkpoint the buffer is one
  global ring of capacity ``C``: local slot ``j`` of device ``d`` is global row ``j·D + d``, and the
  counters are ``D ×`` the local ones. Every iteration every device inserts ``B/D`` rows, so each
  iteration's rows fill a contiguous range of the global ring whatever ``D`` is, and the global ring reads
  back on ``D'`` devices by the same rule (device ``d'`` gets rows ``d', d' + D', ...``). For ``D = 1``
  both layouts are the single-device buffer itself.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from brax.envs.base import Env, Wrapper
from brax.envs.wrappers.training import DomainRandomizationVmapWrapper
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from amp_jax.agents import normalizer
from amp_jax.agents.normalizer import NormalizerState
from amp_jax.agents.replay_buffer import ReplayBuffer
from amp_jax.config import Config, ConfigError

AXIS = "devices"
"""Name of the mesh axis the envs, rollouts, minibatches and replay buffers are split over."""
DEVICES_SOURCE = "<devices>"
"""``ConfigError`` source of a config that does not split over the devices."""


def make_mesh(num_devices: int = 0, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh over the first ``num_devices`` of ``devices`` (default ``jax.devices()``: every process's).

    ``num_devices = 0`` takes them all.
    """
    devices = list(jax.devices() if devices is None else devices)
    if num_devices < 0 or num_devices > len(devices):
        raise ConfigError(DEVICES_SOURCE, "train.num_devices", num_devices,
                          f"0 (all) or at most the {len(devices)} devices JAX sees")
    return Mesh(np.asarray(devices[:num_devices or len(devices)]), (AXIS,))


def check_divisible(cfg: Config, num_devices: int, source: str = DEVICES_SOURCE) -> None:
    """Raises :class:`ConfigError` unless envs, minibatches and replay buffer split evenly over ``num_devices``."""
    if cfg.env.num_envs % num_devices:
        raise ConfigError(source, "env.num_envs", cfg.env.num_envs,
                          f"a multiple of the device count {num_devices} (every device steps as many envs)")
    if cfg.minibatch_size % num_devices:
        raise ConfigError(source, "ppo.num_minibatches", cfg.ppo.num_minibatches,
                          f"a count whose minibatch (env.num_envs × ppo.num_steps / ppo.num_minibatches = "
                          f"{cfg.minibatch_size}) is a multiple of the device count {num_devices}")
    if cfg.amp.replay_buffer_size % num_devices:
        raise ConfigError(source, "amp.replay_buffer_size", cfg.amp.replay_buffer_size,
                          f"a multiple of the device count {num_devices} (every device keeps an equal share)")


# ----------------------------------------------------------------------------------------------------------
# Inside the shard_map body.


@dataclasses.dataclass(frozen=True)
class DeviceAxis:
    """The devices one iteration is split over, as the iteration's body (inside ``shard_map``) sees them.

    Every collective and per-device draw of the train step goes through this, so the step is written once for
    any device count, one device included: there the collectives are all-reduces of one participant, and a
    block of one device is the whole array. The one exception is :meth:`per_device_key`.
    """

    size: int = 1
    """Devices on the mesh axis."""
    name: str = AXIS
    """The mesh axis."""

    def per_device_key(self, key: jax.Array) -> jax.Array:
        """``key`` made distinct per device (:func:`device_key`).

        One device keeps ``key`` itself, so a one-device run draws what it drew before runs could be split
        (its replay, expert and minibatch samples; shipped runs stay reproducible): the only branch on the
        device count in the train step.
        """
        return key if self.size == 1 else device_key(key, self.name)

    def own_rows(self, x: jax.Array) -> jax.Array:
        """This device's contiguous block of a replicated ``x [D·n, ...]``, ``[n, ...]`` (:func:`local_block`)."""
        return local_block(x, x.shape[0] // self.size, self.name)

    def mean(self, tree: Any) -> Any:
        """The device mean of every leaf (:func:`jax.lax.pmean`)."""
        return jax.lax.pmean(tree, self.name)

    def sum(self, tree: Any) -> Any:
        """The device sum of every leaf (:func:`jax.lax.psum`)."""
        return jax.lax.psum(tree, self.name)

    def normalize_advantages(self, advantages: jax.Array) -> jax.Array:
        """Advantages normalised by the global batch's mean and unbiased std, ``[B/D] -> [B/D]``."""
        return normalize_advantages(advantages, self.name)

    def reduce_and_merge(self, tree: Any, state: NormalizerState, batches: Sequence[jax.Array]
                         ) -> tuple[Any, NormalizerState]:
        """The device mean of ``tree`` and every device's ``batches`` merged in order into ``state``
        (:func:`reduce_and_merge`)."""
        if not batches:  # nothing to merge: the mean alone
            return self.mean(tree), state
        return reduce_and_merge(tree, state, batches, self.name)

    def local_env(self, env: Env, num_local_envs: int) -> Env:
        """``env`` with this device's rows of its domain-randomisation table (:func:`localize_env`)."""
        return localize_env(env, num_local_envs, self.name)


def on_one_device(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, a body written for ``DeviceAxis(1)`` (its collectives need the mesh axis), callable outside
    ``shard_map``: every argument and result whole on the first device. For benchmarks and tests of the pieces
    of the step; the step itself is sharded by :func:`amp_jax.agents.train_step.make_train_step`."""
    return jax.shard_map(fn, mesh=make_mesh(1), in_specs=P(), out_specs=P(), check_vma=False)


def device_index(axis_name: str = AXIS) -> jax.Array:
    """This device's position on the mesh axis, int32 scalar (inside ``shard_map`` only)."""
    return jax.lax.axis_index(axis_name)


def device_key(key: jax.Array, axis_name: str = AXIS) -> jax.Array:
    """``key`` made distinct per device by folding in the device index."""
    return jax.random.fold_in(key, device_index(axis_name))


def local_block(x: jax.Array, block: int, axis_name: str = AXIS) -> jax.Array:
    """This device's rows ``[d·block, (d+1)·block)`` of a replicated ``x [D·block, ...]``."""
    return jax.lax.dynamic_slice_in_dim(x, device_index(axis_name) * block, block, axis=0)


def normalize_advantages(advantages: jax.Array, axis_name: str = AXIS) -> jax.Array:
    """``(A − mean) / (std + 1e-8)`` with mean and unbiased std of the global batch, local ``[B/D] -> [B/D]``."""
    total = jax.lax.psum(advantages.size, axis_name)
    mean = jax.lax.psum(jnp.sum(advantages), axis_name) / total
    squares = jax.lax.psum(jnp.sum(jnp.square(advantages - mean)), axis_name)
    return (advantages - mean) / (jnp.sqrt(squares / (total - 1)) + 1e-8)


def merge_normalizer(state: NormalizerState, batch: jax.Array, axis_name: str = AXIS) -> NormalizerState:
    """Merges every device's ``batch [b, F]`` into the replicated statistics (the parallel rule).

    Equals :func:`amp_jax.agents.normalizer.update` of the concatenated ``[D·b, F]`` batch up to float
    summation order: the global batch mean and population variance come from summed counts, sums and
    squared deviations from the global mean.
    """
    return reduce_and_merge(None, state, (batch,), axis_name)[1]


def reduce_and_merge(tree: Any, state: NormalizerState, batches: Sequence[jax.Array], axis_name: str = AXIS
                     ) -> tuple[Any, NormalizerState]:
    """The collectives of one optimiser step, as two all-reduces: the device mean of ``tree`` (gradients and loss
    terms) and the merge of every device's ``batches`` (each ``[b, F]``, merged in order) into ``state``.

    The first all-reduce sums ``tree`` and the batches' feature sums in one flat vector; the second sums the
    squared deviations from the global means. Each value equals what :func:`jax.lax.pmean` of ``tree`` and
    :func:`merge_normalizer` of each batch in turn give (the same sums, divided the same way); the fewer, larger
    all-reduces matter across processes, where each one costs a round trip.
    """
    num_devices = jax.lax.axis_size(axis_name)
    sums = [jnp.sum(batch, axis=0) for batch in batches]
    flat, unflatten = ravel_pytree((tree, sums))
    tree_sum, sums = unflatten(jax.lax.psum(flat, axis_name))
    tree_mean = jax.tree.map(lambda x: x / num_devices, tree_sum)
    counts = [batch.shape[0] * num_devices for batch in batches]
    means = [total / count for total, count in zip(sums, counts)]
    deviations = jax.lax.psum(jnp.stack([jnp.sum(jnp.square(batch - mean), axis=0)
                                         for batch, mean in zip(batches, means)]), axis_name)
    for count, mean, squares in zip(counts, means, deviations):
        state = normalizer.merge_moments(state, count, mean, squares / count)
    return tree_mean, state


def localize_env(env: Env, num_local_envs: int, axis_name: str = AXIS) -> Env:
    """A shallow copy of ``env`` whose domain-randomisation table holds this device's ``num_local_envs`` rows.

    brax's ``DomainRandomizationVmapWrapper`` keeps the randomised model fields with a leading axis of the
    *global* env count; on device ``d`` the batch is envs ``[d·n, (d+1)·n)``, so those rows are sliced out
    (inside ``shard_map``). Envs without such a wrapper come back unchanged.
    """
    if isinstance(env, DomainRandomizationVmapWrapper):
        local = copy.copy(env)

        def slice_rows(table, in_axis):
            return table if in_axis is None else local_block(table, num_local_envs, axis_name)

        local._sys_v = jax.tree.map(slice_rows, env._sys_v, env._in_axes, is_leaf=lambda x: x is None)
        return local
    if isinstance(env, Wrapper):
        local = copy.copy(env)
        local.env = localize_env(env.env, num_local_envs, axis_name)
        return local
    return env


# ----------------------------------------------------------------------------------------------------------
# Shardings of the train state.


REPLAY_BUFFER_SPECS = ReplayBuffer(states=P(AXIS), next_states=P(AXIS), insert_index=P(), size=P())
"""The replay buffer's rows split over the devices, its counters replicated."""


def state_specs(state: Any) -> Any:
    """``PartitionSpec`` prefix tree of a ``TrainingState``: env state and replay rows split, the rest replicated."""
    env_specs = jax.tree.map(lambda _: P(AXIS), state.env_state)
    return state.replace(params=P(), opt_state=P(), normalizer=P(), replay_buffer=REPLAY_BUFFER_SPECS,
                         env_state=env_specs, key=P(), iteration=P())


def shardings(mesh: Mesh, specs: Any) -> Any:
    """``NamedSharding`` of every spec of ``specs``."""
    return jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs, is_leaf=lambda x: isinstance(x, P))


# ----------------------------------------------------------------------------------------------------------
# Checkpoint layout (device-count independent) of the replay buffer.


def _interleave(rows: jax.Array, num_devices: int) -> jax.Array:
    """Device blocks ``[D·c, ...]`` → global ring order (local slot ``j`` of device ``d`` at row ``j·D + d``)."""
    blocks = rows.reshape((num_devices, -1) + rows.shape[1:])
    return jnp.swapaxes(blocks, 0, 1).reshape(rows.shape)


def _deinterleave(rows: jax.Array, num_devices: int) -> jax.Array:
    """Inverse of :func:`_interleave`."""
    slots = rows.reshape((-1, num_devices) + rows.shape[1:])
    return jnp.swapaxes(slots, 0, 1).reshape(rows.shape)


def buffer_to_global(buffer: ReplayBuffer, num_devices: int) -> ReplayBuffer:
    """Per-device rings (device blocks, local counters) → one global ring of the same capacity."""
    return ReplayBuffer(states=_interleave(buffer.states, num_devices),
                        next_states=_interleave(buffer.next_states, num_devices),
                        insert_index=(buffer.insert_index * num_devices).astype(jnp.int32),
                        size=(buffer.size * num_devices).astype(jnp.int32))


def buffer_from_global(buffer: ReplayBuffer, num_devices: int) -> ReplayBuffer:
    """One global ring → ``num_devices`` per-device rings (inverse of :func:`buffer_to_global`).

    The global counters are multiples of the device count whenever the ring was written by whole
    iterations of a config that splits over it (``B`` and ``C`` multiples of ``D``); otherwise the few
    newest rows that do not fill a whole row of devices are dropped (``insert_index`` rounds down).
    """
    return ReplayBuffer(states=_deinterleave(buffer.states, num_devices),
                        next_states=_deinterleave(buffer.next_states, num_devices),
                        insert_index=(buffer.insert_index // num_devices).astype(jnp.int32),
                        size=(buffer.size // num_devices).astype(jnp.int32))


@dataclasses.dataclass(frozen=True)
class DeviceLayout:
    """Where a run's train state lives, and how a checkpoint stores it: the one object the rest of a run asks
    about devices (the trainer builds it, the train step is compiled for its mesh, and the run's checkpointer
    stores the state through :meth:`to_checkpoint` / :meth:`from_checkpoint`: an
    ``amp_jax.training.checkpoint.StateLayout``)."""

    mesh: Mesh
    """The 1-D mesh the iteration is split over (one device: a mesh of one)."""

    @classmethod
    def for_config(cls, cfg: Config) -> DeviceLayout:
        """The first ``train.num_devices`` devices (0: all).

        Raises:
          ConfigError: more devices asked for than exist, or the config does not split evenly over them.
        """
        mesh = make_mesh(cfg.train.num_devices)
        check_divisible(cfg, mesh.size)
        return cls(mesh)

    @property
    def num_devices(self) -> int:
        return self.mesh.size

    def to_checkpoint(self, state: Any) -> Any:
        """:func:`to_checkpoint_layout` for this layout."""
        return to_checkpoint_layout(state, self.mesh)

    def from_checkpoint(self, state: Any) -> Any:
        """:func:`from_checkpoint_layout` for this layout."""
        return from_checkpoint_layout(state, self.mesh)


def to_checkpoint_layout(state: Any, mesh: Mesh) -> Any:
    """``TrainingState`` as stored: the replay buffer as one global ring (see the module docstring)."""
    return _convert_buffer(state, mesh, buffer_to_global)


def from_checkpoint_layout(state: Any, mesh: Mesh) -> Any:
    """Inverse of :func:`to_checkpoint_layout` for ``mesh``'s device count (any count that splits the config)."""
    return _convert_buffer(state, mesh, buffer_from_global)


def _convert_buffer(state: Any, mesh: Mesh, convert: Callable[[ReplayBuffer, int], ReplayBuffer]) -> Any:
    if mesh.size == 1:  # the two layouts are the same arrays: no copy of the buffer
        return state
    return state.replace(replay_buffer=_buffer_converter(mesh, convert)(state.replay_buffer))


@functools.lru_cache(maxsize=8)
def _buffer_converter(mesh: Mesh, convert: Callable[[ReplayBuffer, int], ReplayBuffer]
                      ) -> Callable[[ReplayBuffer], ReplayBuffer]:
    """``convert`` for ``mesh``, jitted once per mesh (a run converts at every checkpoint)."""
    return jax.jit(functools.partial(convert, num_devices=mesh.size),
                   out_shardings=shardings(mesh, REPLAY_BUFFER_SPECS))
