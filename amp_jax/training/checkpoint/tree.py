"""Pytree surgery for checkpoints: heavy subtrees addressed by dotted paths through mappings and dataclasses,
PRNG keys as their raw data, leaf specs, matching a saved tree against a target, and the state's history: leaves
an older checkpoint lacks or holds."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from amp_jax.training.checkpoint.errors import CheckpointError


def get_path(tree: Any, path: str) -> Any:
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


def replace_path(tree: Any, path: str, value: Any) -> Any:
    head, _, rest = path.partition(".")
    child = value if not rest else replace_path(get_path(tree, head), rest, value)
    if isinstance(tree, Mapping):
        return {**tree, head: child}
    return dataclasses.replace(tree, **{head: child})


def heavy_item_key(path: str) -> str:
    return path.replace(".", "__")


def split_heavy(tree: Any, heavy_keys: Sequence[str], where: str) -> tuple[Any, dict[str, Any]]:
    """(tree with each heavy subtree set to None, {item key: heavy subtree})."""
    heavy = {}
    for path in heavy_keys:
        try:
            heavy[heavy_item_key(path)] = get_path(tree, path)
        except KeyError:
            raise CheckpointError(f"{where}: heavy key {path!r} is not a field of the state "
                                  f"(expected a dotted path through mappings/dataclasses, or heavy_keys=())") from None
        tree = replace_path(tree, path, None)
    return tree, heavy


def _is_key_array(x: Any) -> bool:
    """A typed PRNG key array, concrete or abstract (``jax.eval_shape`` targets)."""
    return isinstance(x, (jax.Array, jax.ShapeDtypeStruct)) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _is_empty(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and 0 in tuple(x.shape)


def keys_to_data(tree: Any) -> Any:
    """Key arrays → their raw data; zero-size arrays (orbax cannot write them, e.g. the unused ``act`` of an
    ``mjx.Data``) → a one-element stand-in that :func:`data_to_keys` turns back into the target's shape."""
    def encode(x):
        if _is_key_array(x):
            return jax.random.key_data(x) if isinstance(x, jax.Array) else jax.eval_shape(jax.random.key_data, x)
        if _is_empty(x):
            return np.zeros((1,), x.dtype) if isinstance(x, jax.Array | np.ndarray) else jax.ShapeDtypeStruct(
                (1,), x.dtype)
        return x
    return jax.tree.map(encode, tree)


def data_to_keys(tree: Any, target: Any) -> Any:
    def decode(x, t):
        if _is_key_array(t):
            impl = t.dtype._impl if isinstance(t, jax.ShapeDtypeStruct) else jax.random.key_impl(t)
            return jax.random.wrap_key_data(x, impl=impl)
        if _is_empty(t):
            return jax.numpy.zeros(t.shape, t.dtype)
        return x
    return jax.tree.map(decode, tree, target)


def path_str(path: tuple) -> str:
    parts = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                parts.append(str(getattr(entry, attr)))
                break
        else:
            parts.append(str(entry))
    return "/".join(parts)


def leaf_specs(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        shape = tuple(getattr(leaf, "shape", np.shape(leaf)))
        dtype = getattr(leaf, "dtype", None)
        out[path_str(path)] = (shape, str(np.dtype(dtype)) if dtype is not None else type(leaf).__name__)
    return out


@dataclasses.dataclass(frozen=True)
class StateHistory:
    """How a saved state's tree changed since checkpoints were first shipped, as leaf path prefixes
    (``"env_state/info/push_countdown"``), so that older checkpoints still restore."""

    added: tuple[str, ...] = ()
    """Leaves the state gained: where a checkpoint lacks them they come from the target (the restore is then
    not the saved state)."""
    dropped: tuple[str, ...] = ()
    """Leaves the state lost: where a checkpoint holds them they are not read (what they held lives in other
    leaves, so the restore stays exact)."""
    rewritten: tuple[str, ...] = ()
    """Leaves that every step writes before anything reads them, whose set follows the config (the env's
    per-step reward terms, one per non-zero scale): where a resume's config changes that set, the checkpoint's
    extra leaves are not read and the missing ones start as zeros, and the restore stays exact."""


UNCHANGED = StateHistory()
"""The history of a state whose tree never changed."""


def under(path: str, prefixes: Sequence[str]) -> bool:
    """Whether the leaf ``path`` is one of ``prefixes`` or lies below one."""
    return any(path == f or path.startswith(f + "/") for f in prefixes)


def check_matches(saved_meta: Any, target: Any, where: str, history: StateHistory = UNCHANGED
                  ) -> tuple[list[str], list[str]]:
    """Raises CheckpointError naming the first leaves whose path, shape or dtype differ; returns the target's
    leaves the checkpoint lacks and the checkpoint's leaves the target lacks that ``history`` allows (those under
    ``history.rewritten`` included)."""
    saved, wanted = leaf_specs(saved_meta), leaf_specs(target)
    fill = sorted(p for p in wanted if p not in saved and under(p, history.added + history.rewritten))
    drop = sorted(p for p in saved if p not in wanted and under(p, history.dropped + history.rewritten))
    problems = [f"{p}: missing from the checkpoint (expected {wanted[p]})" for p in wanted
                if p not in saved and p not in fill]
    problems += [f"{p}: in the checkpoint {saved[p]} but not in the target" for p in saved
                 if p not in wanted and p not in drop]
    for p in wanted.keys() & saved.keys():
        (ws, wd), (ss, sd) = wanted[p], saved[p]
        if ws != ss or (wd != sd and wd in np.sctypeDict and sd in np.sctypeDict):
            problems.append(f"{p}: checkpoint has shape {ss} dtype {sd}, expected shape {ws} dtype {wd}")
    if problems:
        shown = "; ".join(sorted(problems)[:8]) + ("; ..." if len(problems) > 8 else "")
        raise CheckpointError(f"{where}: the checkpoint does not match the target state "
                              f"({len(problems)} leaves differ): {shown}")
    return fill, drop


def fill_from_target(raw: Any, target: Any) -> Any:
    """The ``target`` tree with each leaf taken from ``raw`` (a restored tree without a target, by path) where
    it has one; else the target's own leaf (zeros of its shape and dtype when it is abstract)."""
    by_path = {path_str(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(raw)[0]}
    leaves, treedef = jax.tree_util.tree_flatten_with_path(target)
    out = []
    for path, leaf in leaves:
        key = path_str(path)
        if key in by_path:
            out.append(by_path[key])
        elif isinstance(leaf, jax.ShapeDtypeStruct):
            out.append(np.zeros(leaf.shape, leaf.dtype))
        else:
            out.append(leaf)
    return jax.tree_util.tree_unflatten(treedef, out)
