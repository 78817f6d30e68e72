"""The command grid in MJX, against the C MuJoCo grid: a policy whose mean action is zero stands in both, and both
measure it alike."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amp_jax.agents import losses, networks
from amp_jax.analysis import rollout as rollout_lib
from amp_jax.deploy import command_grid, export_policy, sim2sim
from amp_jax.envs.a1_amp import A1AmpEnv
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
        # a standing robot has no stride, and its thighs stay put in both simulators
        assert np.isnan(ours["stride_length_m"]) and np.isnan(theirs["stride_length_m"])
        assert ours["thigh_excursion_rad"] < 0.01 and theirs["thigh_excursion_rad"] < 0.01
    text = command_grid.format_report(mjx)
    assert "forward 0.8" in text and "grid goal not met" in text

    # The run's discriminator per command: the zero-action policy makes the same motion under both commands, so
    # both score alike, and each score is the mean over its window's transitions, recomputed here one by one.
    style_scores = mjx["style"]
    assert set(style_scores["commands"]) == {"stand", "forward 0.8"}
    stand, forward = style_scores["commands"]["stand"], style_scores["commands"]["forward 0.8"]
    assert stand["d_policy"] == pytest.approx(forward["d_policy"], abs=1e-5)
    # (the same two rows as the grid's own rollout, so the program is the one it compiled)
    env = A1AmpEnv(rollout_lib.evaluation_env_config(policy.cfg.env), None)
    schedules, rows = mjx_grid.grid_rows(commands, env.cfg.control_dt)
    (trajectory,) = rollout_lib.run_rows(env, policy.policy_fn, policy.params, [rows])
    obs = np.asarray(trajectory.amp_obs[0])[schedules[0][1]]
    one_by_one = [float(networks.discriminator_score(policy.networks, policy.params.discriminator,
                                                     losses.normalized_transition(policy.amp_normalizer, obs[t:t + 1],
                                                                                  obs[t + 1:t + 2], policy.cfg))[0])
                  for t in range(len(obs) - 1)]
    assert stand["d_policy"] == pytest.approx(np.mean(one_by_one), abs=1e-4)
    coef = policy.cfg.amp.reward_coef
    assert 0.0 <= stand["style_reward"] <= coef and style_scores["reward_coef"] == coef
    assert np.isfinite(style_scores["d_clips"])


def test_the_grid_of_a_run_folder_from_the_command_line(tiny_run_dir, tmp_path, capsys):
    out = tmp_path / "grid.json"
    assert mjx_grid.main([str(tiny_run_dir), "--step", "1", "--command", "stand=0,0,0",
                          "--command", "backward=-0.5,0,0", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "at step 1" in printed and "backward" in printed and "clips D" in printed
    report = json.loads(out.read_text())
    assert [r["name"] for r in report["results"]] == ["stand", "backward"]
    assert set(report["style"]["commands"]) == {"stand", "backward"}


@pytest.mark.parametrize("text", ["backward", "backward=-0.5,0", "=1,0,0", "back=a,b,c"])
def test_a_malformed_command_names_the_expected_form(text):
    with pytest.raises(ValueError, match="expected NAME=VX,VY,YAW"):
        mjx_grid.parse_command(text)
