"""A run folder read back: its saved configuration and the deterministic policy of one of its checkpoints."""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from collections.abc import Callable

import jax
import numpy as np

from amp_jax import config as config_lib
from amp_jax.agents import networks as networks_lib
from amp_jax.agents.normalizer import NormalizerState
from amp_jax.config import Config
from amp_jax.envs import observations


class RunFolderError(RuntimeError):
    """A run folder lacks what rebuilding its policy needs (config.yaml, a checkpoint)."""


@dataclasses.dataclass(frozen=True)
class RunPolicy:
    """The deterministic policy of one checkpoint of a run."""

    run_dir: pathlib.Path
    cfg: Config
    """The run's resolved configuration (from its ``config.yaml``)."""
    networks: networks_lib.AgentNetworks
    params: networks_lib.AgentParams
    step: int
    """The checkpoint step (training iteration) the parameters come from."""
    amp_normalizer: NormalizerState | None = None
    """The run's AMP-feature normaliser at that step (the discriminator's input statistics)."""

    @property
    def policy_fn(self) -> Callable[[networks_lib.AgentParams, jax.Array], jax.Array]:
        """``fn(params, obs["state"] [..., 42]) -> mean action [..., 12]``, pure and jittable."""
        return networks_lib.make_policy_fn(self.networks)

    @functools.cached_property
    def _jitted(self) -> Callable:
        return jax.jit(self.policy_fn)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Mean action ``[..., 12]`` of policy observations ``[..., 42]`` (float32, NumPy in and out)."""
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


def load_run_policy(run_dir: str | pathlib.Path, step: int | None = None) -> RunPolicy:
    """Rebuilds the policy of ``run_dir`` from its ``config.yaml`` and checkpoint ``step`` (default: newest).

    The restore target is the abstract shape of the run's train state (``jax.eval_shape`` of its ``init_fn``:
    nothing is computed), so any checkpoint the trainer wrote restores.

    Raises:
      RunFolderError: no config.yaml; amp_jax.training.checkpoint.CheckpointError: no (matching) checkpoint.
    """
    from amp_jax.training import trainer
    from amp_jax.training.checkpoint import RunCheckpointer

    run_dir = pathlib.Path(run_dir)
    cfg = load_run_config(run_dir)
    setup = trainer.build(cfg, probe=False)
    target = jax.eval_shape(setup.init_fn, jax.random.key(0))
    with RunCheckpointer(run_dir, keep=cfg.train.keep_checkpoints, heavy_keys=trainer.HEAVY_KEYS) as ckpt:
        # the policy needs no replay buffer, nor leaves added to the state since the checkpoint was written
        restored = ckpt.restore(target, step, warn_missing=False, fill_missing=trainer.ADDED_STATE_LEAVES)
    nets = networks_lib.make_networks(cfg.networks, observations.NUM_ACTIONS)
    return RunPolicy(run_dir=run_dir, cfg=cfg, networks=nets, params=restored.state.params, step=restored.step,
                     amp_normalizer=restored.state.normalizer)
