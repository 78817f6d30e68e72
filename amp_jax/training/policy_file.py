"""The policy files of a run folder: each checkpoint step's agent parameters and AMP normaliser in one small
``.npz``, read back without the training state.

``<run_dir>/policies/<step>.npz`` is a file of :mod:`amp_jax.training.params_file`: one array per leaf of the
train state's ``params`` (actor, action std, critic, discriminator), ``normalizer`` (the AMP features'), plus
``learning_rate`` and ``iteration``, named by its path (``params/actor/params/hidden_0/kernel``); the run's
resolved config as YAML text (the network sizes, and the env settings the policy acts with: observation
scales, action scale, default pose, gains); the format version. A reference-sized a1_trot policy file is about
4 MB, its checkpoint 600 MB.

Writing: the trainer writes one beside every checkpoint it saves (process 0 only, under a temporary name then
renamed, before the checkpoint's own background write ends) and keeps the newest ``train.keep_checkpoints``,
as it keeps the checkpoints; a resume moves those newer than the step it starts from into ``set_aside/``.
:func:`amp_jax.training.package_run.package_run` ships the packaged step's file.

Reading (:func:`read_policy_file`): the parameter tree's shapes come from the file's own config and the env's
fixed observation sizes (:mod:`amp_jax.envs.observations`, ``jax.eval_shape`` of the parameters' init: nothing
is computed, no env is built), and every leaf's path, shape and dtype is checked against the file's arrays. A
field added to the training state never touches a policy file, and whoever only acts never builds the trainer.

Run folders written before policy files existed: ``python -m amp_jax.training.policy_file RUN_DIR`` writes the
missing ones from the checkpoints (that restore builds the trainer, once).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import sys
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from amp_jax.agents import networks as networks_lib
from amp_jax.agents import normalizer as normalizer_lib
from amp_jax.config import Config
from amp_jax.envs import mirror, observations
from amp_jax.training import params_file

POLICY_SUBDIR = "policies"
"""Folder of the policy files inside a run folder, one ``<step>.npz`` per checkpoint step."""
SUFFIX = ".npz"


def policy_path(run_dir: str | pathlib.Path, step: int) -> pathlib.Path:
    """``<run_dir>/policies/<step>.npz``."""
    return pathlib.Path(run_dir) / POLICY_SUBDIR / f"{int(step)}{SUFFIX}"


def policy_steps(run_dir: str | pathlib.Path) -> list[int]:
    """Steps of the policy files in ``run_dir``, ascending (temporary files of a write in progress excluded)."""
    folder = pathlib.Path(run_dir) / POLICY_SUBDIR
    if not folder.is_dir():
        return []
    return sorted(int(p.stem) for p in folder.iterdir() if p.suffix == SUFFIX and p.stem.isdigit() and p.is_file())


# ----------------------------------------------------------------------------------------------------------
# Writing


def write_policy_file(run_dir: str | pathlib.Path, step: int, state: Any, cfg: Config) -> pathlib.Path:
    """Writes ``policies/<step>.npz`` of ``state`` (a train state of ``cfg``, or anything with its ``params``,
    ``normalizer``, ``learning_rate`` and ``iteration``) atomically; returns its path."""
    return params_file.write_params_file(policy_path(run_dir, step), state, cfg)


def prune_policy_files(run_dir: str | pathlib.Path, keep: int) -> list[int]:
    """Removes all but the newest ``keep`` policy files of ``run_dir``; returns the steps removed."""
    if keep < 1:
        raise ValueError(f"keep = {keep}: expected an integer >= 1")
    removed = policy_steps(run_dir)[:-keep]
    for step in removed:
        policy_path(run_dir, step).unlink(missing_ok=True)
    return removed


def set_aside_policy_files(run_dir: str | pathlib.Path, after_step: int, dest: str | pathlib.Path) -> list[int]:
    """Moves the policy files of the steps after ``after_step`` into ``<dest>/policies/`` (renames: nothing is
    deleted), so that a resume from ``after_step`` never leaves another timeline's newer policy as the newest;
    returns the steps moved."""
    moved = [step for step in policy_steps(run_dir) if step > after_step]
    if moved:
        folder = pathlib.Path(dest) / POLICY_SUBDIR
        folder.mkdir(parents=True, exist_ok=True)
        for step in moved:
            os.replace(policy_path(run_dir, step), folder / policy_path(run_dir, step).name)
    return moved


# ----------------------------------------------------------------------------------------------------------
# Reading


@struct.dataclass
class SavedFields:
    """The fields of a train state that a policy file holds (:data:`params_file.SAVED_FIELDS`), by the same names,
    so their leaves have the same paths."""

    params: networks_lib.AgentParams
    normalizer: normalizer_lib.NormalizerState
    """The AMP features' running statistics, ``mean [F]``, ``var [F]``, ``count []``."""
    learning_rate: jax.Array
    """float32 scalar."""
    iteration: jax.Array
    """int32 scalar."""


def run_networks(cfg: Config) -> networks_lib.AgentNetworks:
    """The networks a run of ``cfg`` trains on the A1 env: mirror-equivariant under the env's maps with
    ``symmetry.equivariant_networks``."""
    maps = mirror.a1_mirror_maps_for(cfg.env) if cfg.symmetry.equivariant_networks else None
    return networks_lib.make_networks(cfg.networks, observations.NUM_ACTIONS, maps)


def abstract_saved_fields(cfg: Config) -> SavedFields:
    """Shapes and dtypes (``jax.ShapeDtypeStruct`` leaves) of the saved fields of a train state of ``cfg``: the
    networks of ``cfg.networks`` for the A1 env's observations (policy ``[42]``, critic ``[48]``, each 2 more with
    a gait clock; AMP features ``[43]`` per state of ``env.amp_history_lags``' window, actions ``[12]``)."""
    nets = run_networks(cfg)

    def init(key: jax.Array) -> SavedFields:
        return SavedFields(
            params=networks_lib.init_params(nets, key, observations.policy_obs_size(cfg.env),
                                            observations.critic_obs_size(cfg.env), observations.amp_obs_size(cfg.env)),
            normalizer=normalizer_lib.init(observations.amp_obs_size(cfg.env), cfg.amp.normalizer_epsilon),
            learning_rate=jnp.zeros((), jnp.float32),
            iteration=jnp.zeros((), jnp.int32),
        )

    return jax.eval_shape(init, jax.random.key(0))


@dataclasses.dataclass(frozen=True)
class PolicyFile:
    """The contents of a policy file."""

    path: pathlib.Path
    cfg: Config
    """The run's resolved configuration when the file was written."""
    step: int
    """The training iteration the parameters come from."""
    params: networks_lib.AgentParams
    amp_normalizer: normalizer_lib.NormalizerState
    learning_rate: float = 0.0
    """The adaptive learning rate the run's next step would have taken."""


def read_policy_file(path: str | pathlib.Path) -> PolicyFile:
    """Reads a policy file (or any params file) into the parameter tree of its own config.

    Raises:
      ParamsFileError: no such file, not a readable ``.npz``, another format version, or an array missing,
        left over or of another shape or dtype than the config's networks give (one line naming the file and
        the leaf).
      ConfigError: the config text in the file is invalid.
    """
    path = pathlib.Path(path)
    saved = params_file.read_params_file(path)
    try:
        target = abstract_saved_fields(saved.cfg)
    except ValueError as err:  # make_networks: a std floor of the wrong size
        raise params_file.ParamsFileError(f"{path}: {err}") from None
    fields = jax.device_put(params_file.fill_state(target, saved.arrays, str(path)))
    return PolicyFile(path=path, cfg=saved.cfg, step=saved.iteration, params=fields.params,
                      amp_normalizer=fields.normalizer, learning_rate=float(fields.learning_rate))


# ----------------------------------------------------------------------------------------------------------
# Run folders written before policy files


def add_missing_policy_files(run_dir: str | pathlib.Path) -> list[pathlib.Path]:
    """Writes the policy file of each checkpoint step of ``run_dir`` that has none, from the checkpoint (with the
    run's ``config.yaml``; the restore builds the trainer); returns the files written.

    Raises:
      RunFolderError: no config.yaml; CheckpointError: a checkpoint is corrupt or does not match the config.
    """
    from amp_jax.training import run_folder

    run_dir = pathlib.Path(run_dir)
    cfg = run_folder.load_run_config(run_dir)
    have = set(policy_steps(run_dir))
    written = []
    for step in run_folder.checkpoint_steps(run_dir):
        if step not in have:
            restored = run_folder.restore_checkpoint(run_dir, step, cfg)
            written.append(write_policy_file(run_dir, step, restored.state, cfg))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m amp_jax.training.policy_file",
        description="Writes the policy files (policies/<step>.npz) that a run folder made before them lacks, one "
                    "per checkpoint step, so that evaluation and export read them without building the trainer.")
    parser.add_argument("run_dir", type=pathlib.Path, metavar="RUN_DIR", help="a run folder made by train.py")
    args = parser.parse_args(argv)
    from amp_jax import config as config_lib
    from amp_jax.training.checkpoint import CheckpointError
    from amp_jax.training.run_folder import RunFolderError

    try:
        written = add_missing_policy_files(args.run_dir)
    except (RunFolderError, CheckpointError, config_lib.ConfigError, OSError) as err:
        print(f"policy_file: {err}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if not written:
        print(f"{args.run_dir}: every checkpoint step has its policy file already")
    return 0


if __name__ == "__main__":
    sys.exit(main())
