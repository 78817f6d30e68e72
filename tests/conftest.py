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
