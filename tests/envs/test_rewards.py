"""The task reward against its formulas written out in NumPy."""

import jax.numpy as jnp
import numpy as np
import pytest

from amp_jax.envs import rewards


@pytest.mark.parametrize("scales", [{"tracking_lin_vel": 1.5, "tracking_ang_vel": 0.5},
                                    {"tracking_lin_vel": 1.5, "tracking_ang_vel": 0.0},
                                    {"tracking_lin_vel": -1.0, "tracking_ang_vel": 0.2}])
def test_task_reward_matches_numpy(scales):
    rng = np.random.default_rng(1)
    sigma = 0.25
    for _ in range(20):
        command, lin_vel, ang_vel = rng.normal(size=3), rng.normal(size=3), rng.normal(size=3)
        lin = np.exp(-((command[0] - lin_vel[0]) ** 2 + (command[1] - lin_vel[1]) ** 2) / sigma)
        ang = np.exp(-((command[2] - ang_vel[2]) ** 2) / sigma)
        expected_terms = {"tracking_lin_vel": scales["tracking_lin_vel"] * lin,
                          "tracking_ang_vel": scales["tracking_ang_vel"] * ang}
        expected_terms = {k: v for k, v in expected_terms.items() if scales[k] != 0}
        total, terms = rewards.task_reward(scales, *(jnp.asarray(v, jnp.float32) for v in (command, lin_vel, ang_vel)),
                                           sigma)
        assert terms.keys() == expected_terms.keys()
        for name, value in expected_terms.items():
            np.testing.assert_allclose(terms[name], value, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(total, max(sum(expected_terms.values()), 0.0), rtol=1e-5, atol=1e-7)


def test_unknown_terms_are_named():
    with pytest.raises(ValueError, match="unknown terms \\['feet_air_time'\\]"):
        rewards.task_reward({"feet_air_time": 1.0}, jnp.zeros(3), jnp.zeros(3), jnp.zeros(3), 0.25)
