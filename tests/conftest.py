"""Shared test set-up: CPU only, JAX's persistent compilation cache, XLA's cheap compiles, 64-bit off."""

import fcntl
import os
import pathlib
import shutil
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MUJOCO_GL", "egl")
# Most of the suite's time is XLA compiling (the MJX step, the training iteration) for programs that then run a
# few steps, so the tests compile with XLA's backend optimisations off: on 2 cores from an empty cache the whole
# suite took 551 s instead of 717 s (docs/BENCHMARKS.md), while steps run up to 3x slower. Numerics stay float32
# and every assertion is the same. Set as an environment variable so that the subprocesses and notebook kernels
# the tests start compile alike (and share the persistent cache); `optimized_compiles` turns the optimisations
# back on for a test module whose runs outlast its compiles.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

_CACHE = pathlib.Path(os.environ.get("AMP_JAX_TEST_CACHE", pathlib.Path.home() / ".cache" / "amp_jax_jit"))
# The suite starts dozens of Python processes (workers, train.py tries, notebook kernels, multi-process runs), each
# importing jax, mujoco, brax and this package. Where byte-compiled files are neither installed (the test command
# installs with --no-compile) nor written (PYTHONDONTWRITEBYTECODE), every one of them compiles all that source
# again: about 3.5 s of CPU per process here. So the suite keeps them in a folder of its own beside the
# compilation cache (never beside the sources), for this process and, through the environment, for the ones it
# starts (docs/BENCHMARKS.md).
_BYTECODE = _CACHE.with_name(_CACHE.name + "_pycache")
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ["PYTHONPYCACHEPREFIX"] = str(_BYTECODE)
sys.dont_write_bytecode = False
sys.pycache_prefix = str(_BYTECODE)

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def optimized_compiles():
    """XLA's full optimisations for the programs a module compiles (for modules whose runs outlast compiling,
    such as the learning tests' hundreds of iterations); the suite's cheap compiles again afterwards."""
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", False)
    yield
    jax.config.update("jax_disable_most_optimizations", before)


# ----------------------------------------------------------------------------------------------------------
# A finished tiny training run, shared by the tests of what a run leaves behind (test_evaluate,
# test_export_policy, test_sim2sim): trained once per session.


TINY_RUN_OVERRIDES = (
    "env.num_envs=4", "ppo.num_steps=4", "ppo.num_minibatches=2",
    "networks.actor_hidden=[32, 32]", "networks.critic_hidden=[32, 32]", "networks.disc_hidden=[32]",
    "amp.replay_buffer_size=256", "train.num_iterations=2", "train.checkpoint_interval=1",
)


def _train_tiny_run(run_dir: pathlib.Path) -> pathlib.Path:
    from amp_jax.config import load_config
    from amp_jax.training import trainer

    cfg = load_config(["a1_trot", "cpu.yaml"], TINY_RUN_OVERRIDES)
    return trainer.train(cfg, config_name="tiny", run_dir=run_dir, progress=False)


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory):
    """A run folder (config.yaml, metrics.jsonl, checkpoints and policy files 1 and 2) of a 2-iteration a1_trot +
    cpu.yaml run, this process's own copy (tests write their evaluations into it).

    Under xdist the run is trained once per test session, by the first worker that asks, into the session's
    shared temporary folder (a file lock makes the others wait for it), and each worker copies it; alone, the
    process trains its own."""
    own = tmp_path_factory.mktemp("tiny_run") / "run"
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return _train_tiny_run(own)
    shared_root = tmp_path_factory.getbasetemp().parent  # the session's folder, above each worker's own
    shared, finished = shared_root / "tiny_run_shared", shared_root / "tiny_run_shared.done"
    with open(shared_root / "tiny_run_shared.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not finished.exists():
                shutil.rmtree(shared, ignore_errors=True)  # a worker that died mid-run left it half-written
                _train_tiny_run(shared)
                finished.touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    shutil.copytree(shared, own)
    return own


@pytest.fixture(scope="session")
def tiny_run_policy(tiny_run_dir):
    """The deterministic policy of ``tiny_run_dir``'s newest checkpoint (``amp_jax.training.run_folder.RunPolicy``)."""
    from amp_jax.training import run_folder

    return run_folder.load_run_policy(tiny_run_dir)


# ----------------------------------------------------------------------------------------------------------
# The order files reach the two workers (``--dist loadfile --no-loadscope-reorder``: a worker takes the next file
# when it has two tests left). The longest files go first, so that the workers finish together, and the first
# file of the second worker trains the tiny run, so that the persistent compilation cache holds its training
# iteration before the other files that build the same one (trainer, notebook, GPU rehearsal,
# export, sim-to-sim) start. The rest follow in collection order.

LONGEST_FIRST = (
    "tests/agents/test_distributed.py",  # a four-device subprocess: point-mass on 1, 2, 4 devices, A1 on 2
    "tests/evaluation/test_evaluate.py",  # trains the tiny run
    "tests/training/test_signals.py",  # a train.py process per signal
    "tests/training/test_trainer.py",
    "tests/agents/test_train_step.py",
    "tests/envs/test_a1_env.py",
    "tests/test_notebooks.py",
    "tests/envs/test_complex_reward.py",  # compiles the env with every reward term on
    "tests/agents/test_symmetry.py",
    "tests/test_pretrained.py",
    "tests/envs/test_push_clock.py",
    "tests/envs/test_mirror.py",
    "tests/deploy/test_sim2sim.py",
    "tests/analysis/test_speed_sweep.py",
    "tests/analysis/test_gait_sweep.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))
