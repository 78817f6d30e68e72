"""The synthetic test env keeps the env contract: dynamics, rewards, time-outs vs falls, AMP features."""

import jax
import jax.numpy as jnp
import numpy as np

from amp_jax.envs import point_mass


def test_time_out_truncates_and_fall_does_not():
    env = point_mass.PointMassEnv(max_episode_steps=5, position_limit=3.0)
    state = env.reset(jax.random.PRNGKey(0))
    assert state.obs["state"].shape == (24,) and state.obs["privileged_state"].shape == (36,)
    assert state.info["amp_obs"].shape == (point_mass.AMP_FEATURES,)
    step = jax.jit(env.step)
    for t in range(5):
        action = 0.3 * jnp.ones(12)
        prev = state
        state = step(state, action)
        np.testing.assert_allclose(state.pipeline_state.vel, action, rtol=1e-6)  # response 1
        np.testing.assert_allclose(state.pipeline_state.pos, prev.pipeline_state.pos + 0.1 * action, rtol=1e-5)
        err = np.mean((np.asarray(action) - np.asarray(state.info["command"])) ** 2)
        assert abs(float(state.reward) - (1.0 - err)) < 1e-6
        assert float(state.done) == float(t == 4) and float(state.info["truncation"]) == float(t == 4)

    state = env.reset(jax.random.PRNGKey(1))
    fallen = step(state, jnp.full(12, 50.0))  # 5 units in one step: beyond the limit
    assert float(fallen.done) == 1.0 and float(fallen.info["truncation"]) == 0.0


def test_expert_features_are_the_env_features_of_expert_velocities():
    s, s_next = point_mass.sample_expert_transitions(jax.random.PRNGKey(0), 2000)
    vel = np.asarray(s[:, :12])
    np.testing.assert_allclose(s, point_mass.amp_features(jnp.asarray(vel)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(vel.mean(0), point_mass.default_expert_velocity(), atol=0.05)
    np.testing.assert_allclose(vel.std(0), 0.3, atol=0.03)
    assert not np.allclose(s[:, :12], s_next[:, :12])  # independent draws
