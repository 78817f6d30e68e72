"""The A1 AMP environment on MJX, its domain randomisation and wrappers."""

from amp_jax.quiet_imports import import_mjx as _import_mjx

_import_mjx()  # before brax or mujoco.mjx is imported by any module of this package
