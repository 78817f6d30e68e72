"""AMP-PPO: networks, normaliser, replay buffer, losses, optimiser and the one-jit training step."""

from amp_jax.quiet_imports import import_mjx as _import_mjx

_import_mjx()  # brax, which the training step uses, imports mujoco.mjx
