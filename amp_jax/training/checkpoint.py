"""Checkpoints of a training run: exact resume, keep-last-K, the heavy part in the latest only.

A run folder holds its checkpoints under ``<run_dir>/checkpoints/<step>/``, written by orbax's
``CheckpointManager``: each step is written into a temporary folder and renamed into place when complete,
so a save cut short (Ctrl-C, a killed process, a full disk) never looks like a checkpoint; leftover
temporary folders are removed the next time the run folder is opened. Saves run in the background;
:meth:`RunCheckpointer.wait` (also called by :meth:`RunCheckpointer.close`) blocks until the last one is on
disk.

Each step folder holds three orbax items:

- ``state``: the whole pytree except the heavy subtrees (parameters, optimiser state, normalisers,
  environment state, PRNG keys, counters): what evaluation, export and a resume need;
- ``heavy``: the heavy subtrees (by default the replay buffer, ~344 MB at full size), kept in the newest
  checkpoint only: once a newer step is complete, older steps lose their ``heavy`` item;
- ``config``: the resolved run configuration as JSON, so a policy can be rebuilt from a checkpoint alone.

Restoring a step without its heavy item restores everything else and keeps the caller's heavy subtrees
(e.g. a freshly initialised, empty replay buffer); :class:`Restored` lists what was not restored and a
warning is logged. PRNG key arrays with a key dtype are stored as their raw ``uint32`` key data and
wrapped again on restore, so a restore is bit-exact for every leaf.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import shutil
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

logger = logging.getLogger(__name__)

CHECKPOINT_SUBDIR = "checkpoints"
"""Folder of the step folders inside a run folder."""
_TRASH_SUBDIR = ".checkpoint_trash"
"""Where pruned heavy items are moved (atomically) before they are deleted."""
_ITEMS = ("state", "heavy", "config")
DEFAULT_HEAVY_KEYS = ("replay_buffer",)
"""Subtrees kept in the newest checkpoint only."""


class CheckpointError(RuntimeError):
    """A run folder, a checkpoint or its contents is missing, unreadable or does not match the target."""


@dataclasses.dataclass(frozen=True)
class Restored:
    """What :func:`restore` returns.

    Attributes:
      state: the restored pytree, same structure, shapes and dtypes as the target.
      step: the step that was restored.
      missing: heavy keys that the checkpoint no longer holds; these subtrees are the target's own.
      config: the run configuration saved with the step (``{}`` when none was given).
    """

    state: Any
    step: int
    missing: tuple[str, ...]
    config: dict

    @property
    def complete(self) -> bool:
        """True when every subtree came from the checkpoint (the only kind of checkpoint for an exact resume)."""
        return not self.missing


# ----------------------------------------------------------------------------------------------------------
# Pytree surgery: heavy subtrees addressed by dotted paths through mappings and dataclasses.


def _get_path(tree: Any, path: str) -> Any:
    node = tree
    for part in path.split("."):
        if isinstance(node, Mapping):
            if part not in node:
                raise KeyError(part)
            node = node[part]
        elif dataclasses.is_dataclass(node):
            if part not in {f.name for f in dataclasses.fields(node)}:
                raise KeyError(part)
            node = getattr(node, part)
        else:
            raise KeyError(part)
    return node


def _replace_path(tree: Any, path: str, value: Any) -> Any:
    head, _, rest = path.partition(".")
    child = value if not rest else _replace_path(_get_path(tree, head), rest, value)
    if isinstance(tree, Mapping):
        return {**tree, head: child}
    return dataclasses.replace(tree, **{head: child})


def _heavy_item_key(path: str) -> str:
    return path.replace(".", "__")


def _split(tree: Any, heavy_keys: Sequence[str], where: str) -> tuple[Any, dict[str, Any]]:
    """(tree with each heavy subtree set to None, {item key: heavy subtree})."""
    heavy = {}
    for path in heavy_keys:
        try:
            heavy[_heavy_item_key(path)] = _get_path(tree, path)
        except KeyError:
            raise CheckpointError(f"{where}: heavy key {path!r} is not a field of the state "
                                  f"(expected a dotted path through mappings/dataclasses, or heavy_keys=())") from None
        tree = _replace_path(tree, path, None)
    return tree, heavy


def _is_key_array(x: Any) -> bool:
    """A typed PRNG key array, concrete or abstract (``jax.eval_shape`` targets)."""
    return isinstance(x, (jax.Array, jax.ShapeDtypeStruct)) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _is_empty(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and 0 in tuple(x.shape)


def _keys_to_data(tree: Any) -> Any:
    """Key arrays → their raw data; zero-size arrays (orbax cannot write them, e.g. the unused ``act`` of an
    ``mjx.Data``) → a one-element stand-in that :func:`_data_to_keys` turns back into the target's shape."""
    def encode(x):
        if _is_key_array(x):
            return jax.random.key_data(x) if isinstance(x, jax.Array) else jax.eval_shape(jax.random.key_data, x)
        if _is_empty(x):
            return np.zeros((1,), x.dtype) if isinstance(x, jax.Array | np.ndarray) else jax.ShapeDtypeStruct(
                (1,), x.dtype)
        return x
    return jax.tree.map(encode, tree)


def _data_to_keys(tree: Any, target: Any) -> Any:
    def decode(x, t):
        if _is_key_array(t):
            impl = t.dtype._impl if isinstance(t, jax.ShapeDtypeStruct) else jax.random.key_impl(t)
            return jax.random.wrap_key_data(x, impl=impl)
        if _is_empty(t):
            return jax.numpy.zeros(t.shape, t.dtype)
        return x
    return jax.tree.map(decode, tree, target)


def _path_str(path: tuple) -> str:
    parts = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                parts.append(str(getattr(entry, attr)))
                break
        else:
            parts.append(str(entry))
    return "/".join(parts)


def _leaf_specs(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        shape = tuple(getattr(leaf, "shape", np.shape(leaf)))
        dtype = getattr(leaf, "dtype", None)
        out[_path_str(path)] = (shape, str(np.dtype(dtype)) if dtype is not None else type(leaf).__name__)
    return out


def _check_matches(saved_meta: Any, target: Any, where: str) -> None:
    """Raises CheckpointError naming the first leaves whose path, shape or dtype differ."""
    saved, wanted = _leaf_specs(saved_meta), _leaf_specs(target)
    problems = [f"{p}: missing from the checkpoint (expected {wanted[p]})" for p in wanted if p not in saved]
    problems += [f"{p}: in the checkpoint {saved[p]} but not in the target" for p in saved if p not in wanted]
    for p in wanted.keys() & saved.keys():
        (ws, wd), (ss, sd) = wanted[p], saved[p]
        if ws != ss or (wd != sd and wd in np.sctypeDict and sd in np.sctypeDict):
            problems.append(f"{p}: checkpoint has shape {ss} dtype {sd}, expected shape {ws} dtype {wd}")
    if problems:
        shown = "; ".join(sorted(problems)[:8]) + ("; ..." if len(problems) > 8 else "")
        raise CheckpointError(f"{where}: the checkpoint does not match the target state "
                              f"({len(problems)} leaves differ): {shown}")


# ----------------------------------------------------------------------------------------------------------
# The checkpointer of one run.


class RunCheckpointer:
    """Saves and restores the checkpoints of one run folder (one instance per run; close it before exit).

    Args:
      run_dir: the run folder; ``checkpoints/`` is created under it.
      keep: checkpoints kept (``cfg.train.keep_checkpoints``); older ones are deleted.
      heavy_keys: dotted paths (through mappings and dataclass fields) of subtrees kept in the newest
        checkpoint only.
      async_save: write in a background thread (the arrays are copied to host memory before ``save``
        returns, so the caller may go on changing or donating them).
    """

    def __init__(self, run_dir: str | os.PathLike, *, keep: int = 5,
                 heavy_keys: Sequence[str] = DEFAULT_HEAVY_KEYS, async_save: bool = True):
        if keep < 1:
            raise ValueError(f"keep = {keep}: expected an integer >= 1")
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

        Waits for the previous save first, then removes the heavy item of every complete step but the
        newest. Call :meth:`wait` before reading the checkpoint back or exiting.
        """
        self._manager.wait_until_finished()
        self._prune_heavy()
        if step in self._manager.all_steps():
            logger.info("checkpoint %d already exists in %s; not saved again", step, self.directory)
            return False
        light, heavy = _split(_keys_to_data(state), self.heavy_keys, str(self.directory))
        items = {"state": ocp.args.StandardSave(light), "config": ocp.args.JsonSave(dict(config_dict or {}))}
        if heavy:
            items["heavy"] = ocp.args.StandardSave(heavy)
        return bool(self._manager.save(int(step), args=ocp.args.Composite(**items), force=True))

    def wait(self) -> None:
        """Blocks until the last save is complete on disk; then prunes heavy items of older steps."""
        self._manager.wait_until_finished()
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

    def restore(self, target_state: Any, step: int | None = None, *, warn_missing: bool = True) -> Restored:
        """Restores ``step`` (default: the newest) into the structure, shapes and dtypes of ``target_state``.

        ``warn_missing``: log a warning when the step lacks its heavy item (a resume that needs it); readers
        that never use those subtrees (evaluation, export) pass False.

        Raises:
          CheckpointError: no checkpoint, no such step, a corrupt checkpoint, or one that does not match.
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
        target = _keys_to_data(target_state)
        light_target, heavy_target = _split(target, self.heavy_keys, where)
        with_heavy = self.has_heavy(step) and bool(heavy_target)
        try:
            meta = self._manager.item_metadata(step)
            _check_matches(meta["state"], light_target, where + "/state")
            if with_heavy:
                _check_matches(meta["heavy"], heavy_target, where + "/heavy")
            items = {
                "state": ocp.args.StandardRestore(_abstract(light_target)),
                "config": ocp.args.JsonRestore(),
            }
            if with_heavy:
                items["heavy"] = ocp.args.StandardRestore(_abstract(heavy_target))
            restored = self._manager.restore(step, args=ocp.args.Composite(**items))
        except CheckpointError:
            raise
        except Exception as err:  # orbax/tensorstore raise many types on damaged files
            raise CheckpointError(f"{where}: the checkpoint is unreadable or corrupt "
                                  f"(expected a complete checkpoint written by save): {type(err).__name__}: "
                                  f"{_first_line(err)}") from err
        state = restored["state"]
        heavy = restored["heavy"] if with_heavy else heavy_target
        for path in self.heavy_keys:
            state = _replace_path(state, path, heavy[_heavy_item_key(path)])
        missing = () if with_heavy else tuple(self.heavy_keys)
        if missing and warn_missing:
            logger.warning("%s: restored without %s (kept in the newest checkpoint only); those subtrees are "
                           "the target's own", where, ", ".join(missing))
        return Restored(state=_data_to_keys(state, target_state), step=step, missing=missing,
                        config=dict(restored["config"] or {}))

    # -- housekeeping -----------------------------------------------------------------------------------

    def _prune_heavy(self) -> None:
        if jax.process_index() != 0:  # with several processes, process 0 alone tidies the folder
            return
        steps = self.steps()
        for step in steps[:-1]:
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


def _abstract(tree: Any) -> Any:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


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
