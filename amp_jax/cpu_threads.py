"""XLA's CPU thread pool, sized before JAX starts so that no CPU layout the project offers can deadlock.

MJX's constraint solver factorises one small matrix per env with jaxlib's batched LAPACK kernels (Cholesky,
triangular solves). Above a batch size (reached between 16 and 256 A1 envs per device), such a kernel splits its
batch over XLA's CPU thread pool and blocks the pool thread that called it until the pieces are done. When every
pool thread is such a caller, nobody runs the pieces and the process waits forever at 0 % CPU: two forced host
devices on a two-thread pool do this at 512 envs (each device's program holds one thread), and so does any
layout whose concurrent kernel calls can fill the pool. The pool size comes from the ``PJRT_NPROC`` environment
variable (default: the core count), read once when JAX creates its CPU client.

:func:`size_thread_pool` runs when ``amp_jax`` is imported: with ``D > 1`` forced host devices
(``--xla_force_host_platform_device_count``) and no ``PJRT_NPROC`` of the user's, it sets a pool of
``max(cores, 4·D)`` threads, which leaves free threads for the pieces whatever the devices' programs block on.
One device per process (the CPU launcher's processes, :mod:`amp_jax.training.processes`) runs on a pool of one
thread, where the kernels do their pieces in the calling thread. Measured: ``docs/BENCHMARKS.md``.
"""

from __future__ import annotations

import os
import re

THREADS_PER_FORCED_DEVICE = 4
"""Pool threads per forced host device (at least the core count)."""


def forced_host_devices(xla_flags: str | None = None) -> int:
    """The CPU device count forced by ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS`` (1 if none)."""
    flags = os.environ.get("XLA_FLAGS", "") if xla_flags is None else xla_flags
    match = re.search(r"--xla_force_host_platform_device_count=(\d+)", flags)
    return int(match.group(1)) if match else 1


def safe_pool_size(num_devices: int, cores: int) -> int:
    """Pool threads for ``num_devices`` forced host devices on ``cores`` cores (see the module docstring)."""
    return max(cores, THREADS_PER_FORCED_DEVICE * num_devices)


def size_thread_pool(environ: dict[str, str] | None = None) -> str | None:
    """Sets ``PJRT_NPROC`` in ``environ`` (default ``os.environ``) for forced host devices unless it is set;
    returns the value now in force, or None when the default (the core count) applies. Takes effect only if JAX
    has not created its CPU client yet."""
    environ = os.environ if environ is None else environ
    if "PJRT_NPROC" not in environ:
        devices = forced_host_devices(environ.get("XLA_FLAGS", ""))
        if devices > 1:
            environ["PJRT_NPROC"] = str(safe_pool_size(devices, os.cpu_count() or 1))
    return environ.get("PJRT_NPROC")
