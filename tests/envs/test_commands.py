"""The velocity commands: ranges, the zeroed small xy commands, standing commands and the resampling period."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from amp_jax.config import Config
from amp_jax.envs import commands

ENV = Config().env


def test_commands_are_resampled_at_their_period():
    assert ENV.command_resample_steps == 333
    steps = jnp.arange(1, 1101)
    keys = jax.random.split(jax.random.PRNGKey(2), steps.shape[0])
    update = jax.jit(jax.vmap(lambda *a: commands.update_command(ENV, *a), in_axes=(None, 0, 0)))
    resampled = np.flatnonzero(np.any(np.asarray(update(jnp.full((3,), 9.0), steps, keys)) != 9.0, axis=1)) + 1
    np.testing.assert_array_equal(resampled, [333, 666, 999])


def test_commands_in_range_and_small_xy_zeroed():
    draw = jax.jit(jax.vmap(lambda k: commands.sample_command(ENV, k)))
    drawn = np.asarray(draw(jax.random.split(jax.random.PRNGKey(3), 20000)))
    for i, (low, high) in enumerate((ENV.command_lin_vel_x, ENV.command_lin_vel_y, ENV.command_ang_vel_yaw)):
        assert drawn[:, i].min() >= low and drawn[:, i].max() <= high
    norms = np.linalg.norm(drawn[:, :2], axis=1)
    assert np.all((norms == 0) | (norms >= ENV.min_command_norm))
    assert 0 < np.sum(norms == 0) < 100


def test_standing_commands_are_drawn_with_their_probability():
    cfg = dataclasses.replace(ENV, standing_command_probability=0.25)
    drawn = np.asarray(jax.jit(jax.vmap(lambda k: commands.sample_command(cfg, k)))(
        jax.random.split(jax.random.PRNGKey(4), 20000)))
    standing = np.all(drawn == 0.0, axis=1)
    # Binomial(20000, 0.25): standard deviation 61 draws; the moving draws keep the configured ranges.
    assert abs(standing.sum() - 5000) < 300
    moving = drawn[~standing]
    assert moving[:, 0].min() >= cfg.command_lin_vel_x[0] and moving[:, 0].max() <= cfg.command_lin_vel_x[1]
    assert np.abs(moving[:, 2]).max() <= cfg.command_ang_vel_yaw[1] and np.abs(moving[:, 2]).min() > 0


def test_clip_commands_are_clipped_to_the_ranges_and_small_xy_zeroed():
    cfg = dataclasses.replace(ENV, command_lin_vel_x=(-1.0, 2.0), command_lin_vel_y=(-0.3, 0.3),
                              command_ang_vel_yaw=(-1.57, 1.57), min_command_norm=0.05)
    given = jnp.array([[-1.16, -0.07, 0.07], [0.02, 0.01, 1.84], [2.5, 0.4, -2.0], [0.7, -0.04, -0.05]])
    np.testing.assert_allclose(commands.clip_to_ranges(cfg, given),
                               [[-1.0, -0.07, 0.07], [0.0, 0.0, 1.57], [2.0, 0.3, -1.57], [0.7, -0.04, -0.05]],
                               atol=1e-6)
    np.testing.assert_allclose(commands.clip_to_ranges(cfg, given[2]), [2.0, 0.3, -1.57], atol=1e-6)
