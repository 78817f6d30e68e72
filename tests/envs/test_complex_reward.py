"""The complex hand-designed reward baseline in the A1 env: MJX's foot contact forces against C MuJoCo's
``mj_contactForce``, the per-body floor contacts against C MuJoCo's kinematics, the env with every term on
stepping under jit (each term's metric against NumPy, the tracking terms on an exponentially averaged velocity, the
foot air time against legged_gym's loop), the env with the new terms off stepping as before, and the
``complex_reward.yaml`` overlay."""

import dataclasses
import importlib.util
import math

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from brax.envs.wrappers.training import VmapWrapper
from mujoco import mjx
from test_rewards import legged_gym_air_time  # tests/envs/test_rewards.py, beside this file

from amp_jax import a1
from amp_jax.config import ConfigError, RewardScales, load_config
from amp_jax.envs import base, rewards, wrappers
from amp_jax.envs.a1_amp import FEET_AIR_TIME, LAST_FOOT_CONTACT, TRACKED_VELOCITY, A1AmpEnv

LEGGED_GYM_WEIGHTS = {
    "tracking_lin_vel": 1.0, "tracking_ang_vel": 0.5, "lin_vel_z": -2.0, "ang_vel_xy": -0.05, "torques": -1e-5,
    "dof_acc": -2.5e-7, "action_rate": -0.01, "collision": -1.0, "feet_air_time": 1.0, "termination": -0.5,
    "dof_pos_limits": -10.0,
}
"""The baseline's relative weights, before the multiplication by the control period."""
DEFAULT_POSE = np.tile([0.0, 0.9, -1.8], 4)
N, STEPS = 3, 14


@pytest.fixture(scope="module")
def complex_cfg():
    """The full-task CPU recipe with the complex-reward overlay."""
    return load_config(["a1_amp_cpu", "complex_reward"])


TRACKING_AVERAGE_S = 0.1
"""The rich env also averages the velocity its tracking terms read over this time constant (s)."""


@pytest.fixture(scope="module")
def complex_env(complex_cfg):
    """The recipe's env with every complex-reward term on and the tracking average."""
    return A1AmpEnv(dataclasses.replace(complex_cfg.env, tracking_average_s=TRACKING_AVERAGE_S))


# ----------------------------------------------------------------------------------------------------------
# The overlay


def test_overlay_stores_legged_gym_weights_times_the_control_period(complex_cfg):
    assert complex_cfg.env.control_dt == pytest.approx(0.03)
    scales = complex_cfg.env.reward_scales.as_dict()
    assert scales.keys() == rewards.TERMS.keys() and LEGGED_GYM_WEIGHTS.keys() == set(rewards.LEGGED_GYM_TERMS)
    assert all(scales[name] == 0.0 for name in rewards.TERMS if name not in rewards.LEGGED_GYM_TERMS)
    for name, weight in LEGGED_GYM_WEIGHTS.items():
        assert scales[name] == pytest.approx(weight * 0.03, rel=1e-12), name
    assert complex_cfg.env.rsi_probability == 0.0 and complex_cfg.amp.task_reward_lerp == 1.0
    assert not complex_cfg.amp.enabled
    assert not complex_cfg.symmetry.discriminator and not complex_cfg.symmetry.reference_state_init
    # every new term is off by default: the AMP recipes keep their reward
    assert RewardScales().as_dict() == {name: 0.0 for name in rewards.TERMS} | {"tracking_lin_vel": 1.5,
                                                                                 "tracking_ang_vel": 0.5}


def test_bad_reward_configs_name_the_field(monkeypatch):
    with pytest.raises(ConfigError, match="env.reward_scales.feet_stumble = 1.0: expected a field of RewardScales"):
        load_config(["a1_amp_cpu", "complex_reward"], ["env.reward_scales.feet_stumble=1.0"])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    with pytest.raises(ConfigError, match="env.reward_scales.feet_air_time = 0.03: expected 0 with impl 'warp'"):
        load_config(["a1_amp_cpu", "complex_reward"], ["env.impl=warp"])
    assert load_config(["a1_amp_cpu", "complex_reward"], ["env.impl=warp", "env.reward_scales.feet_air_time=0"])


# ----------------------------------------------------------------------------------------------------------
# Contacts: MJX against C MuJoCo


def _settled_standing(m: mujoco.MjModel) -> mujoco.MjData:
    """The A1 dropped from 0.30 m in the default pose and held there by the PD law for 1 s (C MuJoCo)."""
    d = mujoco.MjData(m)
    d.qpos[:] = np.concatenate([[0, 0, 0.30, 1, 0, 0, 0], DEFAULT_POSE])
    for _ in range(200):
        d.ctrl[:] = np.clip(80.0 * (DEFAULT_POSE - d.qpos[7:]) - 1.0 * d.qvel[6:], -a1.EFFORT_LIMIT, a1.EFFORT_LIMIT)
        mujoco.mj_step(m, d)
    return d


def _c_foot_forces(m: mujoco.MjModel, d: mujoco.MjData) -> np.ndarray:
    """Normal force of each foot's contacts by ``mj_contactForce`` (after ``mj_forward``), ``[4]``."""
    foot_ids = [m.geom(name).id for name in a1.FOOT_GEOMS]
    forces, wrench = np.zeros(4), np.zeros(6)
    for i in range(d.ncon):
        mujoco.mj_contactForce(m, d, i, wrench)
        for foot, geom_id in enumerate(foot_ids):
            if geom_id in d.contact[i].geom:
                forces[foot] += wrench[0]
    return forces


@pytest.mark.slow
def test_foot_normal_forces_match_c_mujoco(complex_env):
    env = complex_env
    m = env.mj_model
    forces_of = jax.jit(lambda dx: base.foot_normal_forces(mjx.forward(env.sys, dx), env._foot_geom_ids, True))
    assert m.opt.cone == mujoco.mjtCone.mjCONE_PYRAMIDAL

    d = _settled_standing(m)
    mujoco.mj_forward(m, d)
    c_forces = _c_foot_forces(m, d)
    mjx_forces = np.asarray(forces_of(mjx.put_data(m, d)))
    np.testing.assert_allclose(mjx_forces, c_forces, rtol=1e-4)
    assert np.all(c_forces > 15.0) and c_forces.sum() == pytest.approx(np.sum(m.body_mass) * 9.81, rel=0.02)

    # the front-left foot lifted off the floor (its thigh swung forward and its knee bent): no contact in C,
    # exactly 0 in MJX, and the three others still as in C
    d.qpos[7 + 1], d.qpos[7 + 2] = 1.6, -2.6
    mujoco.mj_forward(m, d)
    assert d.site_xpos[m.site(a1.FOOT_SITE_NAMES[0]).id][2] > 0.05
    c_forces = _c_foot_forces(m, d)
    mjx_forces = np.asarray(forces_of(mjx.put_data(m, d)))
    assert c_forces[0] == 0.0 and mjx_forces[0] == 0.0
    np.testing.assert_allclose(mjx_forces, c_forces, rtol=1e-3, atol=1e-3)
    assert np.all(c_forces[1:] > 5.0)


@pytest.mark.slow
def test_body_ground_contacts_match_c_mujoco_kinematics(complex_env):
    """Per-body contacts from the env's kinematics against heights from C MuJoCo's ``mj_kinematics``."""
    m = complex_env.mj_model
    d = mujoco.MjData(m)
    rng = np.random.default_rng(5)
    check = jax.jit(jax.vmap(lambda q: (base.body_ground_contacts(complex_env._geometry, q),
                                        base.ground_contact(complex_env._geometry, q))))
    trunk = m.body(a1.TRUNK_BODY).id
    thighs = [m.body(name).id for name in a1.THIGH_BODIES]
    calves = [m.body(name).id for name in a1.CALF_BODIES]
    qpos, expected = [], []
    while len(qpos) < 400:
        quat = rng.normal(size=4) if rng.uniform() < 0.5 else np.array([1.0, *rng.normal(scale=0.3, size=3)])
        q = np.concatenate([[0.0, 0.0, rng.uniform(0.0, 0.4)], quat / np.linalg.norm(quat),
                            rng.uniform(a1.JOINT_LOWER, a1.JOINT_UPPER)])
        d.qpos[:] = q
        mujoco.mj_kinematics(m, d)
        corners_z = d.xpos[trunk][2] + (d.xmat[trunk].reshape(3, 3) @ a1.TRUNK_CORNERS.T)[2]
        thigh_z, knee_z = d.xpos[thighs][:, 2], d.xpos[calves][:, 2]
        margins = np.concatenate([corners_z, thigh_z - a1.LEG_LINK_CLEARANCE, knee_z - a1.LEG_LINK_CLEARANCE])
        if np.min(np.abs(margins)) < 1e-4:
            continue  # too close to a threshold for float32
        clearance = a1.LEG_LINK_CLEARANCE
        expected.append(np.concatenate([[corners_z.min() < 0], (thigh_z < clearance) | (knee_z < clearance),
                                        knee_z < clearance]))
        qpos.append(q)
    per_body, any_contact = check(jnp.asarray(np.stack(qpos), jnp.float32))
    expected = np.stack(expected)
    np.testing.assert_array_equal(per_body, expected)
    np.testing.assert_array_equal(any_contact, expected.any(axis=1))
    # the sample holds every kind of contact and contact-free states
    assert expected[:, 0].any() and expected[:, 1:5].any() and expected[:, 5:].any() and (~expected.any(1)).any()


# ----------------------------------------------------------------------------------------------------------
# The env with every term on, and with the new terms off


def _place(state, heights, upside_down, commands):
    """The batched state moved to the default pose at rest at ``heights [N]`` (upright, or upside down where
    ``upside_down``), under ``commands [N, 3]``."""
    quats = np.where(np.asarray(upside_down)[:, None], [0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0])
    qpos = np.concatenate([np.zeros((N, 2)), np.asarray(heights)[:, None], quats, np.tile(DEFAULT_POSE, (N, 1))], 1)
    data = state.pipeline_state.replace(qpos=jnp.asarray(qpos, jnp.float32), qvel=jnp.zeros((N, 18)))
    return state.replace(pipeline_state=data, info=dict(state.info, command=jnp.asarray(commands, jnp.float32)))


def _rollout(env, actions):
    """AutoResetWrapper(VmapWrapper(env)) under jit from a placed start: env 0 upside down at 0.2 m (falls on its
    trunk), env 1 upright at 0.40 m (its feet fall ~0.13 m before landing), env 2 standing at 0.28 m; states
    before and after every step."""
    batched = wrappers.AutoResetWrapper(VmapWrapper(env))
    state = jax.jit(batched.reset)(jax.random.split(jax.random.PRNGKey(11), N))
    state = _place(state, [0.2, 0.40, 0.28], [True, False, False], [[0.5, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0] * 3])
    step = jax.jit(batched.step)
    states = [state]
    for t in range(STEPS):
        states.append(step(states[-1], jnp.asarray(actions[t])))
    return states


@pytest.fixture(scope="module")
def actions():
    """Small random actions; env 2's front-left hip is driven to 0.8 rad, beyond its soft limit (0.72 rad)."""
    actions = 0.1 * np.asarray(jax.random.uniform(jax.random.PRNGKey(12), (STEPS, N, 12), minval=-1, maxval=1))
    actions[:, 2, 0] = 3.2
    return actions


@pytest.fixture(scope="module")
def complex_rollout(complex_env, actions):
    return _rollout(complex_env, actions)


def _base_axes(quat, v):
    """World vector ``v [3]`` in the axes of the body with orientation ``quat`` (w, x, y, z)."""
    w, x, y, z = quat / np.linalg.norm(quat)
    rot = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                    [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                    [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
    return rot.T @ v


@pytest.mark.slow
def test_every_term_steps_under_jit_with_its_metric(complex_cfg, complex_rollout, actions):
    states = complex_rollout
    scales = complex_cfg.env.reward_scales.as_dict()
    soft_lower = a1.JOINT_LOWER + 0.05 * (a1.JOINT_UPPER - a1.JOINT_LOWER)
    soft_upper = a1.JOINT_UPPER - 0.05 * (a1.JOINT_UPPER - a1.JOINT_LOWER)
    reset_info = states[0].info
    assert reset_info[FEET_AIR_TIME].shape == (N, 4) and reset_info[FEET_AIR_TIME].dtype == jnp.float32
    assert reset_info[LAST_FOOT_CONTACT].shape == (N, 4) and reset_info[LAST_FOOT_CONTACT].dtype == jnp.bool_
    spec = jax.tree.map(lambda x: (x.shape, x.dtype), reset_info)
    resets = []
    alpha = 1.0 - math.exp(-0.03 / TRACKING_AVERAGE_S)
    average = np.asarray(reset_info[TRACKED_VELOCITY], np.float64)  # [N, 3], a plain loop's own average
    for t in range(1, STEPS + 1):
        before, after = states[t - 1], states[t]
        assert jax.tree.map(lambda x: (x.shape, x.dtype), after.info) == spec
        assert set(after.metrics) == {f"reward/{name}" for name in rewards.LEGGED_GYM_TERMS}
        assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(after))
        m = {name: np.asarray(after.metrics[f"reward/{name}"]) for name in rewards.LEGGED_GYM_TERMS}
        clipped = np.maximum(sum(m[name] for name in rewards.LEGGED_GYM_TERMS if name != "termination"), 0.0)
        np.testing.assert_allclose(after.reward, clipped + m["termination"], rtol=1e-5, atol=1e-7)
        done = np.asarray(after.done) > 0
        for i in range(N):
            qpos, qvel = np.asarray(after.pipeline_state.qpos[i]), np.asarray(after.pipeline_state.qvel[i])
            lin_vel, ang_vel = _base_axes(qpos[3:7], qvel[:3]), qvel[3:6]
            velocity = np.array([lin_vel[0], lin_vel[1], ang_vel[2]])
            if done[i]:  # the state after is the next episode's: only the fall's own terms are checked
                assert i == 0 and not after.info["truncation"][i]
                resets.append(t)
                assert m["termination"][i] == pytest.approx(scales["termination"])
                assert m["collision"][i] <= scales["collision"]
                # the next episode's average starts at its first state's velocity
                np.testing.assert_allclose(after.info[TRACKED_VELOCITY][i], velocity, rtol=1e-5, atol=1e-5)
                average[i] = velocity
                continue
            assert m["termination"][i] == 0.0 and m["collision"][i] == 0.0
            qvel_before = np.asarray(before.pipeline_state.qvel[i])
            # the tracking terms read the exponential average of the velocity, not the step's own
            average[i] += alpha * (velocity - average[i])
            np.testing.assert_allclose(after.info[TRACKED_VELOCITY][i], average[i], rtol=1e-4, atol=1e-5)
            command = np.asarray(before.info["command"][i])
            for name, error_sq in (("tracking_lin_vel", np.sum((command[:2] - average[i, :2]) ** 2)),
                                   ("tracking_ang_vel", (command[2] - average[i, 2]) ** 2)):
                np.testing.assert_allclose(m[name][i], scales[name] * math.exp(-error_sq / 0.25), rtol=1e-4,
                                           err_msg=name)
            last_action = actions[t - 2, i] if t >= 2 and not (i == 0 and t - 1 in resets) else np.zeros(12)
            q = qpos[7:]
            expected = {
                "lin_vel_z": lin_vel[2] ** 2,
                "ang_vel_xy": ang_vel[0] ** 2 + ang_vel[1] ** 2,
                "torques": np.sum(np.asarray(after.pipeline_state.ctrl[i]) ** 2),
                "dof_acc": np.sum(((qvel[6:] - qvel_before[6:]) / 0.03) ** 2),
                "action_rate": np.sum((last_action - actions[t - 1, i]) ** 2),
                "dof_pos_limits": np.sum(np.maximum(soft_lower - q, 0) + np.maximum(q - soft_upper, 0)),
            }
            for name, value in expected.items():
                np.testing.assert_allclose(m[name][i], scales[name] * value, rtol=2e-4, atol=1e-9, err_msg=name)
        # the applied torques are the PD law's, within the effort limits
        assert np.all(np.abs(np.asarray(after.pipeline_state.ctrl)) <= a1.EFFORT_LIMIT + 1e-4)
    assert resets and 4 <= resets[0] <= 8, resets  # env 0 lands on its trunk
    for name in ("lin_vel_z", "ang_vel_xy", "torques", "dof_acc", "action_rate", "dof_pos_limits"):
        assert any(np.any(s.metrics[f"reward/{name}"] != 0) for s in states[1:]), name


@pytest.mark.slow
def test_feet_air_time_in_the_env_follows_legged_gym(complex_cfg, complex_rollout):
    """Envs 1 (dropped) and 2 (standing): their foot contacts from MJX's forces, the air-time metric against
    legged_gym's loop over that contact sequence, and the air times the info carries."""
    states = complex_rollout
    scale = complex_cfg.env.reward_scales.feet_air_time
    for i in (1, 2):
        assert not any(s.done[i] for s in states[1:])
        contacts = [np.asarray(s.info[LAST_FOOT_CONTACT][i]) for s in states[1:]]
        commands = [np.asarray(s.info["command"][i]) for s in states[:-1]]
        expected_rewards, expected_air = legged_gym_air_time(contacts, commands, 0.03)
        got = [float(s.metrics["reward/feet_air_time"][i]) for s in states[1:]]
        np.testing.assert_allclose(got, scale * np.array(expected_rewards), atol=1e-7)
        np.testing.assert_allclose([np.asarray(s.info[FEET_AIR_TIME][i]) for s in states[1:]], expected_air,
                                   atol=1e-6)
        if i == 1:
            # in the air for 5 steps, all four feet land on the 6th: 4 touchdowns after 0.18 s, short of 0.5 s
            assert not np.any(contacts[:5]) and np.all(contacts[5])
            assert got[5] == pytest.approx(scale * 4 * (6 * 0.03 - 0.5), rel=1e-5)
        else:
            assert np.any(contacts[-1]) and np.all(np.asarray(got) == 0)  # zero command: nothing paid


@pytest.mark.slow
def test_with_the_new_terms_off_the_env_steps_as_before(complex_cfg, complex_rollout, actions):
    """The same recipe with the default reward scales (the new terms 0) and no tracking average: the same physics
    and observations bit for bit, the info and metrics of before (no new keys), and the AMP recipes' task reward on
    the step's own velocity."""
    env_cfg = dataclasses.replace(complex_cfg.env, reward_scales=RewardScales())
    states = _rollout(A1AmpEnv(env_cfg), actions)
    old_info_keys = {"rng", "command", "kp_scale", "kd_scale", "last_action", "episode_step", "amp_obs",
                     "truncation", "push_countdown", "autoreset_rng", "terminal_amp_obs", "episode_return",
                     "episode_length", "terminal_episode_return", "terminal_episode_length"}
    for t, (plain, rich) in enumerate(zip(states, complex_rollout)):
        for x, y in zip(jax.tree.leaves((plain.pipeline_state, plain.obs, plain.done)),
                        jax.tree.leaves((rich.pipeline_state, rich.obs, rich.done))):
            np.testing.assert_array_equal(x, y)
        assert set(plain.info) == old_info_keys
        assert set(rich.info) == old_info_keys | {FEET_AIR_TIME, LAST_FOOT_CONTACT, TRACKED_VELOCITY}
        assert set(plain.metrics) == {"reward/tracking_lin_vel", "reward/tracking_ang_vel"}
        if t == 0:
            continue
        lin, ang = (np.asarray(plain.metrics[f"reward/{name}"]) for name in ("tracking_lin_vel", "tracking_ang_vel"))
        np.testing.assert_array_equal(plain.reward, np.maximum(lin + ang, 0.0))
        for i in range(N):
            if plain.done[i]:
                continue
            qpos, qvel = np.asarray(plain.pipeline_state.qpos[i]), np.asarray(plain.pipeline_state.qvel[i])
            command = np.asarray(states[t - 1].info["command"][i])
            v = _base_axes(qpos[3:7], qvel[:3])
            np.testing.assert_allclose(lin[i], 1.5 * math.exp(-np.sum((command[:2] - v[:2]) ** 2) / 0.25), rtol=1e-5)
            np.testing.assert_allclose(ang[i], 0.5 * math.exp(-(command[2] - qvel[5]) ** 2 / 0.25), rtol=1e-5)
