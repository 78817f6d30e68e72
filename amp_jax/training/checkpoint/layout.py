"""How a run's state is stored in a checkpoint (:class:`StateLayout`), given to a
:class:`~amp_jax.training.checkpoint.RunCheckpointer` so that its callers never convert."""

from __future__ import annotations

from typing import Any, Protocol


class StateLayout(Protocol):
    """How a run's state is stored: ``to_checkpoint`` maps the state as the run holds it to the state as a
    checkpoint holds it, ``from_checkpoint`` back (e.g. ``amp_jax.agents.distributed.DeviceLayout``: the replay
    buffer's per-device rings as one global ring, so any device count can resume it)."""

    def to_checkpoint(self, state: Any) -> Any: ...

    def from_checkpoint(self, state: Any) -> Any: ...


class _AsStored:
    """The layout of a state that is stored as it is held."""

    def to_checkpoint(self, state: Any) -> Any:
        return state

    def from_checkpoint(self, state: Any) -> Any:
        return state


AS_STORED: StateLayout = _AsStored()
"""The default :class:`StateLayout`: the state is saved and restored as it is."""
