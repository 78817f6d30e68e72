"""A train state's trained parameters and AMP normaliser in one small ``.npz`` file, and back into a train state.

What a run needs to act and to be evaluated, without the heavy parts of its state (optimiser moments, env
state, replay buffer): the agent parameters (actor, action std, critic, discriminator), the AMP normaliser,
the learning rate and the iteration, plus the run's resolved config as YAML text. A reference-sized a1_trot
state is about 4 MB here against 600 MB for the whole train state.

Layout: one array per leaf, named by its path in the train state, e.g. ``params/actor/params/hidden_0/kernel``,
``normalizer/mean``, ``iteration``; ``meta/config_yaml`` (a string) and ``meta/format``. Arrays keep their dtype
and bits exactly.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import numpy as np
import yaml

from amp_jax import config as config_lib
from amp_jax.config import Config

SAVED_FIELDS = ("params", "normalizer", "learning_rate", "iteration")
"""Fields of :class:`amp_jax.agents.train_step.TrainingState` the file holds."""

FORMAT_VERSION = 1
CONFIG_KEY = "meta/config_yaml"
FORMAT_KEY = "meta/format"


class ParamsFileError(ValueError):
    """A params file is missing, of another format, or does not fit the train state it is loaded into."""


@dataclasses.dataclass(frozen=True)
class ParamsFile:
    """The contents of a params file."""

    cfg: Config
    """The run's resolved configuration."""
    iteration: int
    """The training iteration the parameters come from."""
    arrays: dict[str, np.ndarray]
    """Leaf path → array, for the leaves of :data:`SAVED_FIELDS`."""


def leaf_paths(field: str, tree: Any) -> list[tuple[str, Any]]:
    """``[(path, leaf)]`` of ``tree``, each path prefixed by ``field`` (``params/actor/params/head/bias``)."""
    import jax

    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [("/".join(filter(None, (field, jax.tree_util.keystr(path, simple=True, separator="/")))), leaf)
            for path, leaf in flat]


def state_arrays(state: Any) -> dict[str, np.ndarray]:
    """The saved leaves of a train state as host arrays, path → array."""
    import jax

    return {name: np.asarray(jax.device_get(leaf)) for field in SAVED_FIELDS
            for name, leaf in leaf_paths(field, getattr(state, field))}


def write_params_file(path: str | pathlib.Path, state: Any, cfg: Config) -> pathlib.Path:
    """Writes the saved fields of ``state`` (a train state of ``cfg``) and ``cfg`` to ``path`` (``.npz``)."""
    path = pathlib.Path(path)
    arrays = state_arrays(state)
    arrays[CONFIG_KEY] = np.asarray(config_lib.dump_yaml(cfg))
    arrays[FORMAT_KEY] = np.asarray(FORMAT_VERSION, np.int32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # a file object: np.savez would otherwise append '.npz' to another suffix
        np.savez_compressed(f, **arrays)
    return path


def read_params_file(path: str | pathlib.Path) -> ParamsFile:
    """Reads a file written by :func:`write_params_file`.

    Raises:
      ParamsFileError: no such file, not a params file, or of another format version.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ParamsFileError(f"{path}: no such file (expected the params file a GPU run writes)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError) as err:
        raise ParamsFileError(f"{path}: not a readable .npz file ({err})") from None
    version = arrays.pop(FORMAT_KEY, None)
    config_yaml = arrays.pop(CONFIG_KEY, None)
    if version is None or config_yaml is None or int(version) != FORMAT_VERSION:
        raise ParamsFileError(f"{path}: not a params file of format {FORMAT_VERSION} (expected {FORMAT_KEY} and "
                              f"{CONFIG_KEY} in it; found format {None if version is None else int(version)})")
    cfg = config_lib.from_dict(yaml.safe_load(str(config_yaml)), source=f"{path}:{CONFIG_KEY}")
    if "iteration" not in arrays:
        raise ParamsFileError(f"{path}: no 'iteration' array")
    return ParamsFile(cfg=cfg, iteration=int(arrays["iteration"]), arrays=arrays)


def fill_state(target: Any, arrays: dict[str, np.ndarray], where: str = "params file") -> Any:
    """``target`` (a train state, concrete or abstract) with its :data:`SAVED_FIELDS` replaced by ``arrays``.

    Raises:
      ParamsFileError: a leaf of those fields is missing from ``arrays``, an array has no leaf, or a shape or
        dtype differs.
    """
    import jax

    replaced = {}
    used = set()
    for field in SAVED_FIELDS:
        subtree = getattr(target, field)
        leaves = []
        for name, leaf in leaf_paths(field, subtree):
            if name not in arrays:
                raise ParamsFileError(f"{where}: no array {name!r} (expected shape {tuple(leaf.shape)})")
            array = arrays[name]
            if tuple(array.shape) != tuple(leaf.shape) or np.dtype(array.dtype) != np.dtype(leaf.dtype):
                raise ParamsFileError(f"{where}: {name} has shape {array.shape} dtype {array.dtype}, expected shape "
                                      f"{tuple(leaf.shape)} dtype {np.dtype(leaf.dtype)} (the run's config.yaml "
                                      "must be the one the file was trained with)")
            leaves.append(array)
            used.add(name)
        replaced[field] = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(subtree), leaves)
    extra = sorted(set(arrays) - used)
    if extra:
        raise ParamsFileError(f"{where}: arrays {extra[:5]} fit no leaf of the train state")
    return target.replace(**replaced)
