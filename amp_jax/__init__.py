"""amp_jax: Adversarial Motion Priors for the Unitree A1, in JAX on MuJoCo XLA."""

import os as _os

__version__ = "0.1.0"

# MuJoCo picks its OpenGL backend when it is first imported. Without a display, default to EGL (headless;
# Debian: libegl1 libgl1-mesa-dri) unless the user chose a backend. Only rendering videos needs it.
if "MUJOCO_GL" not in _os.environ and not _os.environ.get("DISPLAY"):
    _os.environ["MUJOCO_GL"] = "egl"

# XLA's CPU thread pool is sized once, when JAX first uses the CPU: forced host devices get one that MJX's batched
# LAPACK kernels cannot exhaust (see amp_jax/cpu_threads.py).
from amp_jax import cpu_threads as _cpu_threads  # noqa: E402

_cpu_threads.size_thread_pool()
