"""Domain randomisation of the A1: per-env model fields (vmapped) and per-reset PD gain multipliers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
from mujoco import mjx

from amp_jax import a1
from amp_jax.config import EnvConfig
from amp_jax.envs import observations


def domain_randomize(model: mjx.Model, rng: jax.Array, cfg: EnvConfig) -> tuple[mjx.Model, mjx.Model]:
    """Draws one model per env, in the shape brax's ``DomainRandomizationVmapWrapper`` expects.

    Args:
      model: the unbatched MJX model.
      rng: ``[N, 2]`` one key per env.
      cfg: which parameters to randomise and their ranges.
    Returns:
      (batched model, in_axes): the randomised fields carry a leading ``[N]`` axis (in_axes 0), the rest are
      shared (in_axes None).
    """
    foot_ids = jnp.array([mjx.name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in a1.FOOT_GEOMS])
    trunk_id = mjx.name2id(model, mujoco.mjtObj.mjOBJ_BODY, a1.TRUNK_BODY)

    def draw(key: jax.Array) -> tuple[jax.Array, jax.Array]:
        k_friction, k_mass = jax.random.split(key)
        friction = model.geom_friction
        if cfg.randomize_friction:
            # effective foot–floor sliding friction U[friction_range] (feet have contact priority over the floor)
            mu = jax.random.uniform(k_friction, (), minval=cfg.friction_range[0], maxval=cfg.friction_range[1])
            friction = friction.at[foot_ids, 0].set(mu)
        body_mass = model.body_mass
        if cfg.randomize_base_mass:
            # trunk mass + U[added_mass_range] kg (inertia unchanged, as in the reference)
            added = jax.random.uniform(k_mass, (), minval=cfg.added_mass_range[0], maxval=cfg.added_mass_range[1])
            body_mass = body_mass.at[trunk_id].add(added)
        return friction, body_mass

    friction, body_mass = jax.vmap(draw)(rng)
    batched = model.tree_replace({"geom_friction": friction, "body_mass": body_mass})
    in_axes = jax.tree.map(lambda _: None, model)
    in_axes = in_axes.tree_replace({"geom_friction": 0, "body_mass": 0})
    return batched, in_axes


def draw_gain_multipliers(key: jax.Array, cfg: EnvConfig) -> tuple[jax.Array, jax.Array]:
    """Per-joint multipliers of Kp and Kd for one env, each ``[12]``; ones when gains are not randomised."""
    if not cfg.randomize_gains:
        ones = jnp.ones(observations.NUM_ACTIONS)
        return ones, ones
    k_p, k_d = jax.random.split(key)
    # Kp multiplier per joint U[kp_multiplier_range], redrawn at every reset
    kp = jax.random.uniform(k_p, (observations.NUM_ACTIONS,), minval=cfg.kp_multiplier_range[0],
                            maxval=cfg.kp_multiplier_range[1])
    # Kd multiplier per joint U[kd_multiplier_range], redrawn at every reset
    kd = jax.random.uniform(k_d, (observations.NUM_ACTIONS,), minval=cfg.kd_multiplier_range[0],
                            maxval=cfg.kd_multiplier_range[1])
    return kp, kd
