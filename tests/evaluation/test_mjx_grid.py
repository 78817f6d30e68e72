"""The command grid in MJX, against the C MuJoCo grid: a policy whose mean action is zero stands in both, and both
measure it alike."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amp_jax.deploy import command_grid, export_policy, sim2sim
from amp_jax.evaluation import mjx_grid

pytestmark = pytest.mark.slow


def test_a_standing_policy_s_mjx_grid_is_its_c_mujoco_grid(tiny_run_policy):
    actor = tiny_run_policy.params.actor
    zero_head = jax.tree.map(jnp.zeros_like, actor["params"]["head"])
    params = tiny_run_policy.params.replace(actor={**actor, "params": {**actor["params"], "head": zero_head}})
    policy = dataclasses.replace(tiny_run_policy, params=params)
    commands = (("stand", (0.0, 0.0, 0.0)), ("forward 0.8", (0.8, 0.0, 0.0)))
    reference = command_grid.clip_reference()

    mjx = mjx_grid.evaluate_grid_mjx(policy, reference, commands)
    spec = sim2sim.RunnerSpec.from_metadata(export_policy.policy_metadata(policy.cfg))
    c_mujoco = command_grid.evaluate_grid(lambda obs: np.zeros(12), spec, reference, commands)

    assert mjx["simulator"] == mjx_grid.SIMULATOR != c_mujoco["simulator"]
    assert mjx["criteria"] == c_mujoco["criteria"] == {"no_fall": True, "vx_rms_at_0.8": False, "vy_rms": True,
                                                       "cot_at_0.8": False}
    assert mjx["conditions"] == c_mujoco["conditions"]
    for ours, theirs in zip(mjx["results"], c_mujoco["results"], strict=True):
        assert ours["name"] == theirs["name"] and ours["upright"] and theirs["upright"]
        # all four feet carry the robot throughout, by the MJX contact forces as by C MuJoCo's
        assert ours["duty"] == theirs["duty"] == [1.0] * 4
        np.testing.assert_allclose(ours["achieved"], theirs["achieved"], atol=0.01)
        np.testing.assert_allclose(ours["rms"]["vx"], theirs["rms"]["vx"], atol=0.01)
        assert np.isnan(ours["cot_positive"]) and np.isnan(theirs["cot_positive"])  # no distance covered
    text = command_grid.format_report(mjx)
    assert "forward 0.8" in text and "grid goal not met" in text
