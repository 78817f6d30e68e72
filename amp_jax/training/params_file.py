"""A train state's trained parameters and AMP normaliser in one small ``.npz`` file, and back into a train state.

What a run needs to act and to be evaluated, without the heavy parts of its state (optimiser moments, env
state, replay buffer): the agent parameters (actor, action std, critic, discriminator), the AMP normaliser,
the learning rate and the iteration, plus the run's resolved config as YAML text. A reference-sized a1_trot
state is about 4 MB here against 600 MB for the whole train state. The policy files of a run folder
(:mod:`amp_jax.training.policy_file`) and the file a GPU run brings back are such files.

Layout: one array per leaf, named by its path in the train state, e.g. ``params/actor/params/hidden_0/kernel``,
``normalizer/mean``, ``iteration``; ``meta/config_yaml`` (a string) and ``meta/format``. Arrays keep their dtype
and bits exactly.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import uuid
import zipfile
import zlib
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
    return {name: _host_array(name, leaf) for field in SAVED_FIELDS
            for name, leaf in leaf_paths(field, getattr(state, field))}


def _host_array(name: str, leaf: Any) -> np.ndarray:
    """``leaf`` on the host; a leaf replicated over several processes (a run split over processes) is read from
    this process's copy."""
    import jax

    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        if not leaf.sharding.is_fully_replicated:
            raise ValueError(f"{name}: split over processes; a params file holds replicated leaves only")
        leaf = leaf.addressable_data(0)
    return np.asarray(jax.device_get(leaf))


def write_params_file(path: str | pathlib.Path, state: Any, cfg: Config) -> pathlib.Path:
    """Writes the saved fields of ``state`` (a train state of ``cfg``) and ``cfg`` to ``path`` (``.npz``).

    The file is written under a temporary name in the same folder and renamed into place: a reader never sees
    it half-written, and a failed write leaves the previous file as it was.
    """
    path = pathlib.Path(path)
    arrays = state_arrays(state)
    arrays[CONFIG_KEY] = np.asarray(config_lib.dump_yaml(cfg))
    arrays[FORMAT_KEY] = np.asarray(FORMAT_VERSION, np.int32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        # Uncompressed: trained float32 weights shrink by about 8% compressed, and the trainer writes one file per
        # checkpoint (a reference-sized one: 3 ms stored, 120 ms compressed). Each member's CRC-32 is checked on
        # reading.
        with open(tmp, "wb") as f:  # a file object: np.savez would otherwise append '.npz' to another suffix
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_params_file(path: str | pathlib.Path) -> ParamsFile:
    """Reads a file written by :func:`write_params_file`.

    Raises:
      ParamsFileError: no such file, not a params file, or of another format version.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ParamsFileError(f"{path}: no such file (expected a params file written by write_params_file)")
    damaged = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)  # a damaged member fails its CRC
    try:
        data = np.load(path, allow_pickle=False)
    except damaged as err:
        raise ParamsFileError(f"{path}: not a readable .npz file ({type(err).__name__}: {err})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ParamsFileError(f"{path}: a single array, not an .npz archive of named arrays")
    with data:
        arrays = {}
        for name in data.files:
            try:
                arrays[name] = data[name]
            except damaged as err:
                raise ParamsFileError(f"{path}: array {name!r} is unreadable, the file is damaged "
                                      f"({type(err).__name__}: {err})") from None
    version = arrays.pop(FORMAT_KEY, None)
    config_yaml = arrays.pop(CONFIG_KEY, None)
    if version is None or config_yaml is None or int(version) != FORMAT_VERSION:
        raise ParamsFileError(f"{path}: not a params file of format {FORMAT_VERSION} (expected {FORMAT_KEY} and "
                              f"{CONFIG_KEY} in it; found format {None if version is None else int(version)})")
    try:
        config_data = yaml.safe_load(str(config_yaml))
    except yaml.YAMLError as err:
        raise ParamsFileError(f"{path}: {CONFIG_KEY} is not YAML ({str(err).splitlines()[0]})") from None
    cfg = config_lib.from_dict(config_data, source=f"{path}:{CONFIG_KEY}")
    if "iteration" not in arrays or arrays["iteration"].shape != ():
        raise ParamsFileError(f"{path}: no 'iteration' array of shape () (the training iteration)")
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
                                      f"{tuple(leaf.shape)} dtype {np.dtype(leaf.dtype)} (the config must be "
                                      "the one the parameters were trained with)")
            leaves.append(array)
            used.add(name)
        replaced[field] = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(subtree), leaves)
    extra = sorted(set(arrays) - used)
    if extra:
        raise ParamsFileError(f"{where}: arrays {extra[:5]} fit no leaf of the train state")
    return target.replace(**replaced)
