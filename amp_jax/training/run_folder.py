"""A run folder read back: its saved configuration and the deterministic policy of one of its checkpoint steps.

The policy comes from the step's policy file (``policies/<step>.npz``, :mod:`amp_jax.training.policy_file`):
parameters, AMP normaliser and config, nothing of the training state, and the trainer is not imported. Only a
step with a checkpoint but no policy file (run folders written before policy files existed) is restored from
its checkpoint instead, which builds the trainer for the restore target.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import pathlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import numpy as np

from amp_jax import config as config_lib
from amp_jax.agents import networks as networks_lib
from amp_jax.agents.normalizer import NormalizerState
from amp_jax.config import Config
from amp_jax.training import policy_file

if TYPE_CHECKING:
    from amp_jax.training.checkpoint import Restored

logger = logging.getLogger(__name__)

CHECKPOINT_SUBDIR = "checkpoints"
"""Folder of the checkpoint steps inside a run folder (:data:`amp_jax.training.checkpoint.CHECKPOINT_SUBDIR`)."""
FINISHED_MARK = "_CHECKPOINT_METADATA"
"""The file orbax writes into a step folder when the step is complete."""


class RunFolderError(RuntimeError):
    """A run folder lacks what rebuilding its policy needs (config.yaml, a policy file or a checkpoint)."""


@dataclasses.dataclass(frozen=True)
class RunPolicy:
    """The deterministic policy of one checkpoint of a run."""

    run_dir: pathlib.Path
    cfg: Config
    """The run's resolved configuration: the one the policy file holds (``config.yaml`` for a step restored from
    its checkpoint)."""
    networks: networks_lib.AgentNetworks
    params: networks_lib.AgentParams
    step: int
    """The checkpoint step (training iteration) the parameters come from."""
    amp_normalizer: NormalizerState | None = None
    """The run's AMP-feature normaliser at that step (the discriminator's input statistics)."""

    @property
    def policy_fn(self) -> Callable[[networks_lib.AgentParams, jax.Array], jax.Array]:
        """``fn(params, obs["state"] [..., S]) -> mean action [..., 12]``, pure and jittable."""
        return networks_lib.make_policy_fn(self.networks)

    @functools.cached_property
    def _jitted(self) -> Callable:
        return jax.jit(self.policy_fn)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Mean action ``[..., 12]`` of policy observations ``[..., S]`` (S = 42, or 44 with a gait clock, times
        1 + ``env.policy_history``); float32, NumPy in and out."""
        return np.asarray(self._jitted(self.params, np.asarray(obs, np.float32)))


def load_run_config(run_dir: str | pathlib.Path) -> Config:
    """The configuration a run saved in its ``config.yaml``.

    Raises:
      RunFolderError: the folder or its ``config.yaml`` is missing; ConfigError: the file is invalid.
    """
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: no such run folder (expected a folder made by train.py)")
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise RunFolderError(f"{path}: not found (a run folder holds the config.yaml written when training starts)")
    return config_lib.load_config(path)


def checkpoint_steps(run_dir: str | pathlib.Path) -> list[int]:
    """Steps of the complete checkpoints in ``run_dir`` (those orbax marked as finished), ascending."""
    root = pathlib.Path(run_dir) / CHECKPOINT_SUBDIR
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir()
                  if p.is_dir() and p.name.isdigit() and (p / FINISHED_MARK).exists())


def restore_checkpoint(run_dir: str | pathlib.Path, step: int | None = None, cfg: Config | None = None) -> Restored:
    """The train state of checkpoint ``step`` (default: the newest) of ``run_dir``, without its replay buffer.

    The restore target is the abstract shape of the run's train state (``jax.eval_shape`` of the ``init_fn`` of
    ``cfg``, default the run's ``config.yaml``: nothing is computed, but the trainer is built: motion clips, the
    randomised env, the traced init), so any checkpoint the trainer wrote restores.

    Raises:
      RunFolderError: no config.yaml; amp_jax.training.checkpoint.CheckpointError: no (matching) checkpoint.
    """
    from amp_jax.training import trainer
    from amp_jax.training.checkpoint import RunCheckpointer

    run_dir = pathlib.Path(run_dir)
    cfg = load_run_config(run_dir) if cfg is None else cfg
    setup = trainer.build(cfg, probe=False)
    target = jax.eval_shape(setup.init_fn, jax.random.key(0))
    with RunCheckpointer(run_dir, keep=cfg.train.keep_checkpoints, heavy_keys=trainer.HEAVY_KEYS) as ckpt:
        # the policy needs no replay buffer, nor leaves the state gained or lost since the checkpoint was written
        return ckpt.restore(target, step, warn_missing=False, history=trainer.STATE_HISTORY)


def load_run_policy(run_dir: str | pathlib.Path, step: int | None = None) -> RunPolicy:
    """The deterministic policy of ``run_dir`` at checkpoint step ``step`` (default: the newest step).

    Read from the step's policy file ``policies/<step>.npz`` (parameters, AMP normaliser and the config they
    were trained with) without building or importing the trainer. A step that has a checkpoint but no policy
    file (a run folder written before policy files existed) is restored from the checkpoint with the run's
    ``config.yaml`` instead (:func:`restore_checkpoint`).

    Raises:
      RunFolderError: no such folder, neither a policy file nor a checkpoint of the step, a policy file that
        disagrees with its name, or (for a checkpoint) no config.yaml.
      amp_jax.training.params_file.ParamsFileError: the policy file is unreadable or does not fit its config
        (naming the file and the leaf).
      amp_jax.training.checkpoint.CheckpointError: the checkpoint restored instead is corrupt or does not match.
    """
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: no such run folder (expected a folder made by train.py)")
    policies, checkpoints = policy_file.policy_steps(run_dir), checkpoint_steps(run_dir)
    if step is None:
        if not policies and not checkpoints:
            raise RunFolderError(f"{run_dir}: no policy file in {policy_file.POLICY_SUBDIR}/ and no checkpoint in "
                                 f"{CHECKPOINT_SUBDIR}/ (expected a run folder made by train.py: config.yaml, "
                                 "policies/<step>.npz, checkpoints/<step>/)")
        step = max(policies + checkpoints)
    if step in policies:
        return _policy_from_file(run_dir, step)
    if step not in checkpoints:
        raise RunFolderError(f"{run_dir}: no policy file and no checkpoint of step {step} (policy files: "
                             f"{policies or 'none'}; checkpoints: {checkpoints or 'none'})")
    logger.info("%s: step %d has no policy file; restoring its checkpoint (python -m amp_jax.training.policy_file "
                "%s writes the missing ones)", run_dir, step, run_dir)
    cfg = load_run_config(run_dir)
    restored = restore_checkpoint(run_dir, step, cfg)
    nets = policy_file.run_networks(cfg)
    return RunPolicy(run_dir=run_dir, cfg=cfg, networks=nets, params=restored.state.params, step=restored.step,
                     amp_normalizer=restored.state.normalizer)


def _policy_from_file(run_dir: pathlib.Path, step: int) -> RunPolicy:
    saved = policy_file.read_policy_file(policy_file.policy_path(run_dir, step))
    if saved.step != step:
        raise RunFolderError(f"{saved.path}: holds iteration {saved.step}, expected {step} (its file name)")
    nets = policy_file.run_networks(saved.cfg)
    return RunPolicy(run_dir=run_dir, cfg=saved.cfg, networks=nets, params=saved.params, step=saved.step,
                     amp_normalizer=saved.amp_normalizer)
