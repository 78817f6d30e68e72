"""Shared test set-up: CPU only, JAX's persistent compilation cache, 64-bit off."""

import os
import pathlib

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MUJOCO_GL", "egl")

import jax  # noqa: E402

_CACHE = pathlib.Path(os.environ.get("AMP_JAX_TEST_CACHE", pathlib.Path.home() / ".cache" / "amp_jax_jit"))
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------------------------------
# A finished tiny training run, shared by the tests of what a run leaves behind (test_evaluate,
# test_export_policy, test_sim2sim): trained once per session.

import pytest  # noqa: E402

TINY_RUN_OVERRIDES = (
    "env.num_envs=4", "ppo.num_steps=4", "ppo.num_minibatches=2",
    "networks.actor_hidden=[32, 32]", "networks.critic_hidden=[32, 32]", "networks.disc_hidden=[32]",
    "amp.replay_buffer_size=256", "train.num_iterations=2", "train.checkpoint_interval=1",
)


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory):
    """A run folder (config.yaml, metrics.jsonl, checkpoints 1 and 2) of a 2-iteration a1_trot + cpu.yaml run."""
    from amp_jax.config import load_config
    from amp_jax.training import trainer

    cfg = load_config(["a1_trot", "cpu.yaml"], TINY_RUN_OVERRIDES)
    return trainer.train(cfg, config_name="tiny", run_dir=tmp_path_factory.mktemp("tiny_run") / "run",
                         progress=False)


@pytest.fixture(scope="session")
def tiny_run_policy(tiny_run_dir):
    """The deterministic policy of ``tiny_run_dir``'s newest checkpoint (``amp_jax.training.run_folder.RunPolicy``)."""
    from amp_jax.training import run_folder

    return run_folder.load_run_policy(tiny_run_dir)
