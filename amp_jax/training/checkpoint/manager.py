"""The checkpointer of one run folder (:class:`RunCheckpointer`) and one-call helpers; see the package docstring."""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import orbax.checkpoint as ocp

from amp_jax.training.checkpoint import tree
from amp_jax.training.checkpoint.digest import DIGEST_FILE, verify_step, write_digest
from amp_jax.training.checkpoint.errors import CheckpointError, CorruptCheckpointError
from amp_jax.training.checkpoint.layout import AS_STORED, StateLayout

logger = logging.getLogger(__name__)

CHECKPOINT_SUBDIR = "checkpoints"
"""Folder of the step folders inside a run folder."""
_TRASH_SUBDIR = ".checkpoint_trash"
"""Where pruned heavy items are moved (atomically) before they are deleted."""
_ITEMS = ("state", "heavy", "config")
DEFAULT_HEAVY_KEYS = ("replay_buffer",)
"""Subtrees kept in the newest checkpoints only."""
DEFAULT_HEAVY_KEEP = 2
"""Newest checkpoints that keep their heavy subtrees."""
SET_ASIDE_SUBDIR = "set_aside"
"""Folder of the run folder that receives checkpoints a resume stepped past (corrupt ones, or newer ones than
the step a resume was asked to start from)."""


@dataclasses.dataclass(frozen=True)
class Restored:
    """What :func:`restore` returns.

    Attributes:
      state: the restored pytree, same structure, shapes and dtypes as the target.
      step: the step that was restored.
      missing: heavy keys that the checkpoint no longer holds; these subtrees are the target's own.
      config: the run configuration saved with the step (``{}`` when none was given).
      verified: whether the step's files were checked against its digest (False: it has none).
      skipped: newer steps passed over as corrupt, ``(step, why)``, newest first
        (:meth:`RunCheckpointer.restore_newest_intact`).
      filled: leaves the checkpoint predates (``history.added``): taken from the target (zeros where the
        target is abstract), so the state is not the one saved there.
      dropped: leaves of the checkpoint the state no longer has (``history.dropped``): not read.
    """

    state: Any
    step: int
    missing: tuple[str, ...]
    config: dict
    verified: bool = True
    skipped: tuple[tuple[int, str], ...] = ()
    filled: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """True when every subtree came from the checkpoint (the only kind of checkpoint for an exact resume)."""
        return not self.missing


def sync_processes(name: str) -> None:
    """Waits until every process of the run has reached the point called ``name`` (the same on each); returns at
    once in a one-process run."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


# ----------------------------------------------------------------------------------------------------------
# The checkpointer of one run.


class RunCheckpointer:
    """Saves and restores the checkpoints of one run folder (one instance per run; close it before exit).

    Args:
      run_dir: the run folder; ``checkpoints/`` is created under it.
      keep: checkpoints kept (``cfg.train.keep_checkpoints``); older ones are deleted.
      heavy_keys: dotted paths (through mappings and dataclass fields) of subtrees kept in the newest
        checkpoints only.
      heavy_keep: how many of the newest checkpoints keep them.
      async_save: write in a background thread (the arrays are copied to host memory before ``save``
        returns, so the caller may go on changing or donating them).
      layout: how the state is stored (:class:`StateLayout`): :meth:`save` takes and :meth:`restore` returns
        the state as the run holds it; ``heavy_keys`` and the restore's ``history`` name paths of the stored
        state.
    """

    def __init__(self, run_dir: str | os.PathLike, *, keep: int = 5,
                 heavy_keys: Sequence[str] = DEFAULT_HEAVY_KEYS, async_save: bool = True,
                 heavy_keep: int = DEFAULT_HEAVY_KEEP, layout: StateLayout = AS_STORED):
        if keep < 1 or heavy_keep < 1:
            raise ValueError(f"keep = {keep}, heavy_keep = {heavy_keep}: expected integers >= 1")
        self.heavy_keep = heavy_keep
        self.layout = layout
        self._to_seal: set[int] = set()  # steps this checkpointer saved and has not sealed yet
        self.run_dir = pathlib.Path(run_dir).resolve()
        self.directory = self.run_dir / CHECKPOINT_SUBDIR
        self.heavy_keys = tuple(heavy_keys)
        options = ocp.CheckpointManagerOptions(
            preservation_policy=ocp.checkpoint_managers.LatestN(keep),
            cleanup_tmp_directories=True,
            enable_async_checkpointing=async_save,
            create=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=_ITEMS,
                                              item_handlers=_item_handlers())
        # Orbax removes leftover temporary folders in the background; finish that before anything reads the
        # folder (the method is internal, hence the guard: without it the next save waits for it instead).
        getattr(self._manager, "_maybe_await_cleanup_tmp_directory", lambda: None)()
        self._empty_trash()

    # -- saving -----------------------------------------------------------------------------------------

    def save(self, step: int, state: Any, *, config_dict: Mapping[str, Any] | None = None) -> bool:
        """Starts writing checkpoint ``step`` of ``state`` (any pytree); False if that step already exists.

        Waits for the previous save first and seals it (:func:`write_digest`), then removes the heavy item of
        every complete step but the newest ``heavy_keep``. Call :meth:`wait` before reading the checkpoint back
        or exiting.
        """
        self._manager.wait_until_finished()
        self._seal()
        self._prune_heavy()
        if step in self._manager.all_steps():
            logger.info("checkpoint %d already exists in %s; not saved again", step, self.directory)
            return False
        stored = self.layout.to_checkpoint(state)
        light, heavy = tree.split_heavy(tree.keys_to_data(stored), self.heavy_keys, str(self.directory))
        items = {"state": ocp.args.StandardSave(light), "config": ocp.args.JsonSave(dict(config_dict or {}))}
        if heavy:
            items["heavy"] = ocp.args.StandardSave(heavy)
        saved = bool(self._manager.save(int(step), args=ocp.args.Composite(**items), force=True))
        if saved:
            self._to_seal.add(int(step))
        return saved

    def wait(self) -> None:
        """Blocks until the last save is complete on disk, seals it, then prunes heavy items of older steps."""
        self._manager.wait_until_finished()
        self._seal()
        self._prune_heavy()

    def close(self) -> None:
        """Waits for the last save and releases the manager's threads."""
        self.wait()
        self._manager.close()

    def __enter__(self) -> RunCheckpointer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------------------------

    def steps(self) -> list[int]:
        """Steps of the complete checkpoints, ascending."""
        self._manager.reload()  # the folder may have changed behind the manager (another process, a prune)
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest complete step, or None."""
        steps = self.steps()
        return steps[-1] if steps else None

    def has_heavy(self, step: int) -> bool:
        """Whether checkpoint ``step`` still holds its heavy subtrees."""
        return (self.directory / str(step) / "heavy").is_dir()

    def restore(self, target_state: Any, step: int | None = None, *, warn_missing: bool = True,
                history: tree.StateHistory = tree.UNCHANGED) -> Restored:
        """Restores ``step`` (default: the newest) into the structure, shapes and dtypes of ``target_state``
        (held as the run holds it: the checkpointer's ``layout`` maps it to the stored form and the restored
        state back), after checking its files against its digest.

        ``warn_missing``: log a warning when the step lacks its heavy item (a resume that needs it); readers
        that never use those subtrees (evaluation, export) pass False.
        ``history``: leaves the state gained after older checkpoints were written (where the checkpoint lacks
        them they come from the target, with a warning, and are listed in :attr:`Restored.filled`) and leaves
        it lost (read past, listed in :attr:`Restored.dropped`).

        Raises:
          CorruptCheckpointError: the step's files differ from its digest, or cannot be decoded.
          CheckpointError: no checkpoint, no such step, or one that does not match the target.
        """
        self._manager.wait_until_finished()
        steps = self.steps()
        if not steps:
            raise CheckpointError(f"{self.directory}: no checkpoint found (expected step folders written by save)")
        if step is None:
            step = steps[-1]
        if step not in steps:
            raise CheckpointError(f"{self.directory}: no checkpoint for step {step} (available: {steps})")
        where = str(self.directory / str(step))
        stored_target = self.layout.to_checkpoint(target_state)
        target = tree.keys_to_data(stored_target)
        light_target, heavy_target = tree.split_heavy(target, self.heavy_keys, where)
        step_has_heavy = self.has_heavy(step)
        with_heavy = step_has_heavy and bool(heavy_target)
        verified = verify_step(self.directory / str(step), skip=() if step_has_heavy else ("heavy",))
        if not verified:
            logger.warning("%s: no %s (written before digests, or the process stopped before sealing it): "
                           "restored without verifying its files", where, DIGEST_FILE)
        try:
            meta = self._manager.item_metadata(step)
            filled, dropped = tree.check_matches(meta["state"], light_target, where + "/state", history)
            if with_heavy:
                tree.check_matches(meta["heavy"], heavy_target, where + "/heavy")
            # An older checkpoint of another tree is read in its own structure, then mapped onto the target.
            state_target = _abstract(jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), meta["state"])
                                     if filled or dropped else light_target)
            items = {
                "state": ocp.args.StandardRestore(state_target),
                "config": ocp.args.JsonRestore(),
            }
            if with_heavy:
                items["heavy"] = ocp.args.StandardRestore(_abstract(heavy_target))
            restored = self._manager.restore(step, args=ocp.args.Composite(**items))
            if filled or dropped:
                restored = {**restored, "state": tree.fill_from_target(restored["state"], light_target)}
            # Per-step outputs the config added are zeros until the first step writes them: nothing is lost.
            filled = [p for p in filled if not tree.under(p, history.rewritten)]
            if filled:
                (logger.warning if warn_missing else logger.debug)(
                    "%s predates %s: taken from the new state instead", where, ", ".join(filled))
        except CheckpointError:
            raise
        except Exception as err:  # orbax/tensorstore raise many types on damaged files
            raise CorruptCheckpointError(f"{where}: the checkpoint is unreadable or corrupt "
                                         f"(expected a complete checkpoint written by save): "
                                         f"{type(err).__name__}: {_first_line(err)}") from err
        state = restored["state"]
        heavy = restored["heavy"] if with_heavy else heavy_target
        for path in self.heavy_keys:
            state = tree.replace_path(state, path, heavy[tree.heavy_item_key(path)])
        missing = () if with_heavy else tuple(self.heavy_keys)
        if missing and warn_missing:
            logger.warning("%s: restored without %s (kept in the newest checkpoints only); those subtrees are "
                           "the target's own", where, ", ".join(missing))
        return Restored(state=self.layout.from_checkpoint(tree.data_to_keys(state, stored_target)), step=step,
                        missing=missing, config=dict(restored["config"] or {}), verified=verified,
                        filled=tuple(filled), dropped=tuple(dropped))

    def restore_newest_intact(self, target_state: Any, *, warn_missing: bool = True,
                              history: tree.StateHistory = tree.UNCHANGED) -> Restored:
        """:meth:`restore` of the newest step that is not corrupt; the steps passed over are in ``skipped``.

        Raises:
          CheckpointError: no checkpoint, every step corrupt (the newest one's error, with the count), or the
            newest intact step does not match the target (not a corruption: no fallback).
        """
        skipped: list[tuple[int, str]] = []
        steps = self.steps()
        for step in reversed(steps):
            try:
                restored = self.restore(target_state, step, warn_missing=warn_missing, history=history)
            except CorruptCheckpointError as err:
                skipped.append((step, str(err)))
                logger.warning("checkpoint %d is corrupt, trying the one before it: %s", step, err)
                continue
            return dataclasses.replace(restored, skipped=tuple(skipped))
        if skipped:
            raise CorruptCheckpointError(f"{self.directory}: all {len(skipped)} checkpoints are corrupt; the "
                                         f"newest: {skipped[0][1]}")
        return self.restore(target_state, history=history)  # raises: no checkpoint

    def set_aside(self, steps: Sequence[int], reason: str) -> pathlib.Path | None:
        """Moves the folders of ``steps`` into ``<run_dir>/set_aside/<time>-<reason>/`` (renames: nothing is
        copied or deleted); returns that folder on process 0, or None when there was nothing to move.

        Every process of a run calls it: process 0 moves the folders once each process has finished reading the
        checkpoints (a step renamed while another process lists the folder makes that process fail), and each
        returns only after the move."""
        steps = [s for s in steps if (self.directory / str(s)).is_dir()]
        self._manager.wait_until_finished()
        sync_processes("amp_jax set_aside: every process has read the checkpoints")
        dest = None
        if steps and jax.process_index() == 0:
            dest = self.run_dir / SET_ASIDE_SUBDIR / f"{time.strftime('%Y%m%d-%H%M%S')}-{reason}"
            dest.mkdir(parents=True, exist_ok=True)
            for step in steps:
                (self.directory / str(step)).rename(dest / str(step))
        sync_processes("amp_jax set_aside: the steps are moved")
        self._manager.reload()
        return dest

    # -- housekeeping -----------------------------------------------------------------------------------

    def _seal(self) -> None:
        """Writes the digest of each step this checkpointer saved, once its save has finished. (Steps found on
        disk are never sealed after the fact: that could bless a file damaged in the meantime.)"""
        if jax.process_index() != 0:  # with several processes, process 0 alone writes into the folder
            self._to_seal.clear()
            return
        complete = set(self.steps())
        for step in sorted(self._to_seal & complete):
            write_digest(self.directory / str(step))
        self._to_seal -= complete

    def _prune_heavy(self) -> None:
        if jax.process_index() != 0:  # with several processes, process 0 alone tidies the folder
            return
        steps = self.steps()
        for step in steps[:-self.heavy_keep]:
            heavy_dir = self.directory / str(step) / "heavy"
            if heavy_dir.is_dir():
                trash = self.run_dir / _TRASH_SUBDIR
                trash.mkdir(exist_ok=True)
                heavy_dir.rename(trash / f"{step}-heavy-{uuid.uuid4().hex}")  # atomic: gone or whole
        self._empty_trash()

    def _empty_trash(self) -> None:
        if jax.process_index() != 0:
            return
        trash = self.run_dir / _TRASH_SUBDIR
        if trash.is_dir():
            shutil.rmtree(trash, ignore_errors=True)


def _item_handlers() -> dict[str, Any]:
    return {
        "state": ocp.StandardCheckpointHandler(),
        "heavy": ocp.StandardCheckpointHandler(),
        "config": ocp.JsonCheckpointHandler(),
    }


def _abstract(state: Any) -> Any:
    """Restore targets of ``state``'s leaves. A leaf without a sharding (the stand-ins of key arrays and zero-size
    arrays) would take the one recorded in the checkpoint, which names the writer's processes; in a single
    process it is placed on this process's device instead, so a checkpoint written by a run split over several
    processes restores in one (the evaluation after such a run, or a later resume with ``--processes 1``)."""
    local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0]) if jax.process_count() == 1 else None

    def target(x: Any) -> Any:
        abstract = ocp.utils.to_shape_dtype_struct(x)
        if local is not None and isinstance(abstract, jax.ShapeDtypeStruct) and abstract.sharding is None:
            abstract = jax.ShapeDtypeStruct(abstract.shape, abstract.dtype, sharding=local)
        return abstract

    return jax.tree.map(target, state)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else ""


# ----------------------------------------------------------------------------------------------------------
# One-call helpers.


def _require_run_dir(run_dir: str | os.PathLike) -> pathlib.Path:
    path = pathlib.Path(run_dir)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such run folder (expected a folder with a {CHECKPOINT_SUBDIR}/ inside)")
    if not (path / CHECKPOINT_SUBDIR).is_dir():
        raise CheckpointError(f"{path / CHECKPOINT_SUBDIR}: no checkpoint folder (expected step folders "
                              "written by save)")
    return path


def save(run_dir: str | os.PathLike, step: int, state: Any, *, config_dict: Mapping[str, Any] | None = None,
         keep: int = 5, heavy_keys: Sequence[str] = DEFAULT_HEAVY_KEYS) -> bool:
    """Writes checkpoint ``step`` of ``state`` and waits until it is on disk (a blocking one-off save).

    A trainer that saves repeatedly should hold one :class:`RunCheckpointer` instead (saves in the
    background). Returns False if the step already existed.
    """
    with RunCheckpointer(run_dir, keep=keep, heavy_keys=heavy_keys, async_save=False) as ckpt:
        return ckpt.save(step, state, config_dict=config_dict)


def restore(run_dir: str | os.PathLike, target_state: Any, step: int | None = None, *,
            heavy_keys: Sequence[str] = DEFAULT_HEAVY_KEYS) -> Restored:
    """Restores checkpoint ``step`` (default: the newest) of ``run_dir`` into the structure of ``target_state``.

    Raises:
      CheckpointError: naming the path and what was expected, for a missing run folder, no checkpoint,
        a corrupt checkpoint or one that does not match ``target_state``.
    """
    path = _require_run_dir(run_dir)
    with RunCheckpointer(path, heavy_keys=heavy_keys) as ckpt:
        return ckpt.restore(target_state, step)


def latest_step(run_dir: str | os.PathLike) -> int | None:
    """The newest complete checkpoint step of ``run_dir``, or None when it has none."""
    path = pathlib.Path(run_dir)
    if not (path / CHECKPOINT_SUBDIR).is_dir():
        return None
    return max(ocp.utils.checkpoint_steps(path / CHECKPOINT_SUBDIR), default=None)
