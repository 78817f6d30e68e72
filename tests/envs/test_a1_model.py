"""The A1 model and the env's cheap pieces: kinematics against the motion data and C MuJoCo, ground-contact
geometry against MuJoCo's collision of the URDF boxes, RSI onto expert frames, PD law."""

import dataclasses

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from amp_jax import a1
from amp_jax.config import Config, EnvConfig
from amp_jax.envs import base, observations, randomize
from amp_jax.envs.a1_amp import GAIT_PHASE, A1AmpEnv
from amp_jax.motion import amp_features, layout, load_clip, load_motion_library


@pytest.fixture(scope="module")
def cfg():
    return Config()


@pytest.fixture(scope="module")
def clips(cfg):
    return [load_clip(p) for p in cfg.motion.resolved_files()]


@pytest.fixture(scope="module")
def env(cfg):
    library = load_motion_library(cfg.motion.resolved_files(), dt_amp=cfg.env.control_dt)
    return A1AmpEnv(cfg.env, library)


def _c_feet_from_com(model, data, qpos):
    """Foot-site positions from C MuJoCo kinematics, base axes, from the trunk COM, ``[12]``."""
    data.qpos[:] = qpos
    mujoco.mj_kinematics(model, data)
    trunk = model.body(a1.TRUNK_BODY).id
    rot, origin = data.xmat[trunk].reshape(3, 3), data.xpos[trunk]
    feet = np.stack([data.site(n).xpos for n in a1.FOOT_SITE_NAMES])
    return ((feet - origin) @ rot - a1.TRUNK_COM_OFFSET).reshape(-1)


def test_model_matches_urdf_numbers(env):
    m = env.mj_model
    trunk = m.body(a1.TRUNK_BODY)
    np.testing.assert_allclose(trunk.ipos, a1.TRUNK_COM_OFFSET, atol=1e-9)
    assert trunk.mass[0] == pytest.approx(4.713)
    np.testing.assert_allclose(m.jnt_range[1:, 0], a1.JOINT_LOWER, atol=1e-9)
    np.testing.assert_allclose(m.jnt_range[1:, 1], a1.JOINT_UPPER, atol=1e-9)
    np.testing.assert_allclose(m.actuator_ctrlrange[:, 1], a1.EFFORT_LIMIT)
    assert m.body_mass.sum() == pytest.approx(4.713 + 4 * (0.696 + 1.013 + 0.166 + 0.06))
    colliding = [m.geom(i).name for i in range(m.ngeom) if m.geom_contype[i] or m.geom_conaffinity[i]]
    assert sorted(colliding) == sorted(("floor",) + a1.FOOT_GEOMS)
    assert m.opt.timestep == 0.005 and m.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER


def test_foot_positions_match_every_frame_of_every_clip(env, clips):
    """FK of the MJCF applied to each frame's joint angles gives the frame's toes (from the trunk COM) < 1 mm."""
    frames = np.concatenate([c.frames for c in clips])
    assert len(frames) == 763
    feet = np.asarray(jax.jit(jax.vmap(lambda q: base.foot_positions_from_com(env._geometry, q)))(
        jnp.asarray(frames[:, layout.JOINT_POS], jnp.float32)))
    err = np.abs(feet - frames[:, layout.FOOT_POS]).max()
    assert err < 1e-3, err
    # the env's closed-form leg kinematics is C MuJoCo's kinematics of the same MJCF
    data = mujoco.MjData(env.mj_model)
    qpos = np.concatenate([frames[:, layout.ROOT_POS], frames[:, layout.ROOT_QUAT], frames[:, layout.JOINT_POS]], 1)
    c_feet = np.stack([_c_feet_from_com(env.mj_model, data, q) for q in qpos])
    np.testing.assert_allclose(feet, c_feet, atol=2e-6)


def test_reset_onto_a_frame_gives_its_expert_features(env, clips):
    frames = jnp.asarray(np.concatenate([c.frames[::3] for c in clips]), jnp.float32)
    keys = jax.random.split(jax.random.PRNGKey(0), frames.shape[0])
    states = jax.jit(jax.vmap(env.reset_to_frame))(keys, frames)
    amp_obs, expected = np.asarray(states.info["amp_obs"]), np.asarray(amp_features(frames))
    np.testing.assert_allclose(amp_obs[:, observations.AMP_FOOT_POS], expected[:, observations.AMP_FOOT_POS], atol=1e-3)
    np.testing.assert_allclose(np.delete(amp_obs, observations.AMP_FOOT_POS, 1),
                               np.delete(expected, observations.AMP_FOOT_POS, 1), atol=1e-5)
    # the first observation comes from the episode's own initial state (noise-free part within the noise bound)
    critic = np.asarray(states.obs[observations.CRITIC_OBS_KEY])
    np.testing.assert_allclose(critic[:, observations.CRITIC_BASE_LIN_VEL] / 2.0,
                               expected[:, observations.AMP_BASE_LIN_VEL], atol=0.1 + 1e-5)
    np.testing.assert_array_equal(states.obs[observations.POLICY_OBS_KEY], critic[:, observations.POLICY_FROM_CRITIC])


def test_a_gait_clock_starts_at_a_uniform_phase_and_changes_no_other_draw(cfg, env):
    clock_env = A1AmpEnv(dataclasses.replace(cfg.env, gait_clock_hz=2.0), env.motion_library)
    keys = jax.random.split(jax.random.PRNGKey(5), 2000)
    with_clock, without = jax.jit(jax.vmap(clock_env.reset))(keys), jax.jit(jax.vmap(env.reset))(keys)
    phase = np.asarray(with_clock.info[GAIT_PHASE])
    assert phase.min() >= 0.0 and phase.max() < 1.0
    # 2000 uniform draws in 10 bins: 200 ± 13 each; the largest deviation of 10 bins stays well inside 60
    assert np.abs(np.histogram(phase, bins=10, range=(0, 1))[0] - 200).max() < 60
    for name in ("command", "kp_scale", "push_countdown", "amp_obs"):
        np.testing.assert_array_equal(with_clock.info[name], without.info[name], err_msg=name)
    np.testing.assert_array_equal(with_clock.pipeline_state.qpos, without.pipeline_state.qpos)
    critic = np.asarray(with_clock.obs[observations.CRITIC_OBS_KEY])
    np.testing.assert_array_equal(critic[:, :observations.CRITIC_OBS_SIZE],
                                  without.obs[observations.CRITIC_OBS_KEY])  # noise included: the same draws
    np.testing.assert_allclose(critic[:, observations.CRITIC_GAIT_CLOCK],
                               np.stack([np.sin(2 * np.pi * phase), np.cos(2 * np.pi * phase)], axis=1), atol=1e-5)
    assert GAIT_PHASE not in without.info
    qpos, qvel = env.default_pose()
    assert float(clock_env.reset_to(keys[0], qpos, qvel, gait_phase=1.25).info[GAIT_PHASE]) == 0.25


def test_rsi_probability_is_honoured(cfg, env):
    keys = jax.random.split(jax.random.PRNGKey(4), 400)
    states = jax.jit(jax.vmap(env.reset))(keys)
    qpos = np.asarray(states.pipeline_state.qpos)
    default = (qpos[:, 2] == np.float32(cfg.env.init_height)) & np.all(qpos[:, 3:7] == [1, 0, 0, 0], axis=1)
    # ~Binomial(400, 0.15): mean 60, sd 7
    assert 30 < default.sum() < 90
    q0 = cfg.env.default_joint_pos
    ratio = qpos[default][:, 7:19][:, q0 != 0] / q0[q0 != 0]
    assert ratio.min() >= 0.5 and ratio.max() <= 1.5
    assert np.all(np.abs(np.asarray(states.pipeline_state.qvel)[default][:, :6]) <= 0.5)
    assert np.all(np.asarray(states.pipeline_state.qvel)[default][:, 6:] == 0)


def test_rsi_needs_a_motion_library():
    with pytest.raises(ValueError, match="rsi_probability"):
        A1AmpEnv(EnvConfig(rsi_probability=0.5), None)


def test_ground_contact_matches_mujoco_collision_of_the_urdf_boxes(env):
    """Enable collision of the trunk/thigh/calf boxes in a copy of the model and compare on random poses.

    Poses where a foot sphere sinks more than 5 mm into the floor are left out: the colliding feet keep a
    simulated robot out of them, and only there can the calf's lower tip (inside the foot sphere) touch."""
    spec = mujoco.MjSpec.from_file(str(a1.SCENE_XML))
    for name in ("trunk",) + tuple(f"{leg}_{part}" for leg in a1.LEG_NAMES for part in ("thigh", "calf")):
        spec.geom(name).conaffinity = 1
    model = spec.compile()
    data = mujoco.MjData(model)
    rng = np.random.default_rng(0)
    n = 1500
    quat = rng.normal(size=(n, 4))
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    qpos = np.concatenate([np.zeros((n, 2)), rng.uniform(0.0, 0.45, (n, 1)), quat,
                           rng.uniform(a1.JOINT_LOWER, a1.JOINT_UPPER, (n, 12))], 1)
    body_geoms = {model.geom(g).id for g in ("trunk",)} | {
        model.geom(f"{leg}_{part}").id for leg in a1.LEG_NAMES for part in ("thigh", "calf")}
    trunk_id = model.geom("trunk").id
    truth, trunk_truth, feet_out = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    for i in range(n):
        data.qpos[:] = qpos[i]
        mujoco.mj_forward(model, data)
        feet_out[i] = min(data.site(s).xpos[2] for s in a1.FOOT_SITE_NAMES) >= 0.015
        for c in data.contact[: data.ncon]:
            if c.dist < 0 and (c.geom1 in body_geoms or c.geom2 in body_geoms):
                truth[i] = True
                trunk_truth[i] |= trunk_id in (c.geom1, c.geom2)
    detected = np.asarray(jax.jit(jax.vmap(lambda q: base.ground_contact(env._geometry, q)))(
        jnp.asarray(qpos, jnp.float32)))
    truth, trunk_truth, detected = truth[feet_out], trunk_truth[feet_out], detected[feet_out]
    assert len(truth) > 300 and 0.1 < truth.mean() < 0.9
    assert not np.any(truth & ~detected), "a real contact was missed"
    assert np.all(detected[trunk_truth])
    # false alarms only come from the conservative leg clearance (a link end within 2.1 cm of the floor)
    assert (detected & ~truth).mean() < 0.1


def test_pd_torque_against_numpy():
    rng = np.random.default_rng(1)
    target, q, qd = rng.normal(size=(3, 64, 12)) * np.array([1.0, 1.0, 20.0])[:, None, None]
    kp, kd = 80.0 * rng.uniform(0.9, 1.1, (64, 12)), rng.uniform(0.9, 1.1, (64, 12))
    limit = a1.EFFORT_LIMIT
    expected = np.minimum(np.maximum(kp * (target - q) - kd * qd, -limit), limit)
    got = jax.vmap(base.pd_torque, in_axes=(0, 0, 0, 0, 0, None))(target, q, qd, kp, kd, limit)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    assert np.any(np.abs(expected) == limit) and np.any(np.abs(expected) < limit)


def test_domain_randomize_shapes_and_ranges(cfg, env):
    model, in_axes = randomize.domain_randomize(env.sys, jax.random.split(jax.random.PRNGKey(5), 64), cfg.env)
    feet = [env.mj_model.geom(n).id for n in a1.FOOT_GEOMS]
    mu = np.asarray(model.geom_friction)[:, feet, 0]
    assert mu.shape == (64, 4) and np.all(mu == mu[:, :1])
    assert cfg.env.friction_range[0] <= mu.min() and mu.max() <= cfg.env.friction_range[1] and mu.std() > 0.1
    added = np.asarray(model.body_mass)[:, env.mj_model.body("trunk").id] - 4.713
    assert np.all(np.abs(added) <= 1.0 + 1e-6) and added.std() > 0.3
    assert in_axes.geom_friction == 0 and in_axes.body_mass == 0 and in_axes.geom_size is None
    kp, kd = randomize.draw_gain_multipliers(jax.random.PRNGKey(6), cfg.env)
    assert kp.shape == (12,) and np.all((np.asarray(kp) >= 0.9) & (np.asarray(kp) <= 1.1))
    assert not np.allclose(kp, kd)
