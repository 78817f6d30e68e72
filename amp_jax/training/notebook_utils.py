"""What the notebooks (``notebooks/*.ipynb``) share: where they run, smoke mode, JAX's compilation cache, and
training in chunks so the learning curves can be redrawn between them.

Importing this module imports neither JAX nor MuJoCo: a notebook calls :func:`detect_accelerator` and
:func:`jax_requirement` to choose which JAX build to install before JAX is first imported.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from amp_jax.config import Config

SMOKE_ENV_VAR = "AMP_JAX_SMOKE"
"""Set to ``1`` to run the notebooks in smoke mode: tiny configs, short videos, no installs (what CI runs)."""

SMOKE_OVERRIDES: tuple[str, ...] = (
    "env.num_envs=4", "ppo.num_steps=4", "ppo.num_minibatches=2",
    "networks.actor_hidden=[32, 32]", "networks.critic_hidden=[32, 32]", "networks.disc_hidden=[32]",
    "amp.replay_buffer_size=256", "train.num_iterations=2", "train.checkpoint_interval=1",
)
"""``--set`` overrides of smoke mode on top of ``a1_trot`` + ``cpu.yaml``: 4 envs × 4 steps, 2 iterations,
32-unit networks (the tests' tiny run, so both share compiled code in the persistent cache)."""

TPU_ENV_VARS = ("COLAB_TPU_ADDR", "TPU_NAME", "TPU_ACCELERATOR_TYPE")
"""Environment variables that Colab's and Cloud TPU runtimes set."""

JAX_EXTRAS = {"gpu": "cuda12", "tpu": "tpu"}
"""Accelerator → the ``jax[...]`` extra that installs its backend."""


def smoke_mode(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether :data:`SMOKE_ENV_VAR` is set to 1, true or yes (any case)."""
    return environ.get(SMOKE_ENV_VAR, "").strip().lower() in ("1", "true", "yes")


def in_colab() -> bool:
    """Whether this Python runs in a Google Colab runtime."""
    return importlib.util.find_spec("google.colab") is not None


def detect_accelerator(environ: Mapping[str, str] = os.environ,
                       glob_fn: Callable[[str], list[str]] = glob.glob) -> str:
    """``'tpu'``, ``'gpu'`` or ``'cpu'``: the runtime's accelerator, found without importing JAX.

    A TPU shows itself by :data:`TPU_ENV_VARS` or device files ``/dev/accel*`` (TPU v2–v4 VMs) or
    ``/dev/vfio/<n>`` (v5e and later); TPU runtimes have no ``nvidia-smi``, so that is not what decides. An
    NVIDIA GPU shows itself by ``/dev/nvidia<n>`` device files. ``glob_fn`` lists the paths matching a pattern.
    """
    if any(environ.get(name) for name in TPU_ENV_VARS):
        return "tpu"
    if glob_fn("/dev/accel*") or [p for p in glob_fn("/dev/vfio/*") if os.path.basename(p).isdigit()]:
        return "tpu"
    if [p for p in glob_fn("/dev/nvidia*") if os.path.basename(p)[len("nvidia"):].isdigit()]:
        return "gpu"
    return "cpu"


def jax_requirement(accelerator: str, jax_version: str | None = None) -> str | None:
    """The pip requirement that adds ``accelerator``'s JAX backend (``'jax[cuda12]==0.7.1'``), None for a CPU.

    Pinning to the installed ``jax_version`` keeps the backend plugin and ``jax`` itself in step.
    """
    if accelerator == "cpu":
        return None
    if accelerator not in JAX_EXTRAS:
        raise ValueError(f"accelerator {accelerator!r}: expected 'tpu', 'gpu' or 'cpu'")
    return f"jax[{JAX_EXTRAS[accelerator]}]" + (f"=={jax_version}" if jax_version else "")


def stale_modules(names: Sequence[str] = ("numpy", "scipy", "jax", "jaxlib", "mujoco")) -> list[str]:
    """Those of ``names`` imported in this process whose installed version now differs from the imported one
    (an install upgraded them under a running kernel: restart it before going on)."""
    import sys
    from importlib import metadata

    stale = []
    for name in names:
        module = sys.modules.get(name)
        loaded = getattr(module, "__version__", None)
        if loaded is None:
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        if installed != loaded:
            stale.append(f"{name} {loaded} -> {installed}")
    return stale


def enable_compilation_cache(cache_dir: str | os.PathLike, min_compile_time_s: float = 1.0) -> pathlib.Path:
    """Turns on JAX's persistent compilation cache in ``cache_dir`` (created) for compilations longer than
    ``min_compile_time_s``; a later session (or a training chunk) then loads them instead of compiling."""
    import jax

    path = pathlib.Path(cache_dir).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_time_s)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def latest_checkpoint_step(run_dir: str | os.PathLike) -> int | None:
    """The newest complete checkpoint step of a run folder, None when it holds no run or no checkpoint."""
    run_dir = pathlib.Path(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "checkpoints").is_dir():
        return None
    from amp_jax.training.checkpoint import RunCheckpointer

    with RunCheckpointer(run_dir) as checkpointer:
        return checkpointer.latest_step()


def chunk_stops(start: int, total: int, chunk: int) -> list[int]:
    """The iteration counts at which to stop for a redraw when going from ``start`` to ``total`` iterations
    ``chunk`` at a time: multiples of ``chunk`` above ``start``, and ``total`` last (empty when done)."""
    if chunk < 1:
        raise ValueError(f"chunk = {chunk}: expected an integer >= 1")
    first = (start // chunk + 1) * chunk
    return [*range(first, total, chunk), total] if start < total else []


def train_in_chunks(cfg: Config, run_dir: str | os.PathLike, chunk_iterations: int, *,
                    on_chunk: Callable[[pathlib.Path, int], None] | None = None,
                    progress: bool = False, config_name: str = "notebook") -> pathlib.Path:
    """Trains ``cfg`` in ``run_dir`` up to ``cfg.train.num_iterations``, ``chunk_iterations`` at a time.

    Continues from the folder's newest checkpoint when there is one. Each chunk is one
    :func:`amp_jax.training.trainer.train` call that ends with a checkpoint; the next resumes from it (bit-exactly, so
    the result equals one uninterrupted run). ``on_chunk(run_dir, iteration)`` runs after each chunk, e.g. to
    redraw the learning curves. Rebuilding the jitted step per chunk costs a trace; its compilation comes from
    the persistent cache (:func:`enable_compilation_cache`).
    """
    from amp_jax.training import trainer

    run_dir = pathlib.Path(run_dir)
    done = latest_checkpoint_step(run_dir) or 0
    for stop in chunk_stops(done, cfg.train.num_iterations, chunk_iterations):
        trainer.train(cfg, config_name=config_name, run_dir=run_dir, resume=done > 0, num_iterations=stop,
                      progress=progress)
        done = stop
        if on_chunk is not None:
            on_chunk(run_dir, stop)
    return run_dir


def last_record_line(metrics: Mapping[str, Sequence[float]], names: Sequence[str] = (
        "reward/task", "reward/amp", "episode/length")) -> str:
    """One line about the newest row of ``metrics`` (columns as from :func:`amp_jax.training.metrics_log.read_metrics`):
    iteration, env steps, env steps/s and ``names`` where present."""
    parts = [f"iteration {int(metrics['iteration'][-1])}", f"{int(metrics['env_steps'][-1]):,} env steps"]
    rate = float(metrics.get("steps_per_second", [float("nan")])[-1])
    if rate == rate:  # not NaN
        parts.append(f"{rate:,.0f} steps/s")
    parts += [f"{name} {float(metrics[name][-1]):.3g}" for name in names if name in metrics]
    return ", ".join(parts)
