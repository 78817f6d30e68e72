"""The A1's mirror maps: involutions, derived from the model, exact in MJX physics on a symmetrised model, and
consistent with the env's observations and the clips' AMP features."""

import dataclasses

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from amp_jax import a1
from amp_jax.config import Config
from amp_jax.envs import mirror, observations
from amp_jax.envs.a1_amp import A1AmpEnv, state_from_frame
from amp_jax.motion import amp_features, layout, load_clip, load_motion_library

MAPS = {
    "joint": mirror.joint_map, "foot": mirror.foot_map, "policy_observation": mirror.policy_observation_map,
    "critic_observation": mirror.critic_observation_map, "action": mirror.action_map,
    "amp_observation": mirror.amp_observation_map, "frame": mirror.frame_map, "qpos": mirror.qpos_map,
    "qvel": mirror.qvel_map,
    "policy_observation_with_clock": lambda: mirror.policy_observation_map(gait_clock=True),
    "policy_observation_with_gyroscope": lambda: mirror.policy_observation_map(base_ang_vel=True),
    "policy_observation_with_velocity_estimate": lambda: mirror.policy_observation_map(base_ang_vel=True,
                                                                                       base_lin_vel=True),
    "critic_observation_with_clock": lambda: mirror.critic_observation_map(gait_clock=True),
    "amp_observation_with_history": lambda: mirror.a1_mirror_maps(amp_history=2).amp_obs,
    "policy_observation_with_history": lambda: mirror.a1_mirror_maps(gait_clock=True, policy_history=3).policy_obs,
}


@pytest.mark.parametrize("name", sorted(MAPS))
def test_every_map_is_an_involution(name):
    m = MAPS[name]()
    assert m.is_involution()
    x = np.random.default_rng(0).normal(size=(5, m.size))
    np.testing.assert_allclose(m(m(x)), x, atol=1e-12)
    assert not np.allclose(m(x), x)  # and not the identity
    x32 = jnp.asarray(x, jnp.float32)
    assert m(x32).dtype == jnp.float32


def test_joint_map_read_from_the_model():
    joints = mirror.joint_map()
    for i, name in enumerate(a1.JOINT_NAMES):
        partner = name.replace("FL", "xx").replace("FR", "FL").replace("xx", "FR")
        partner = partner.replace("RL", "xx").replace("RR", "RL").replace("xx", "RR")
        assert a1.JOINT_NAMES[joints.index[i]] == partner
        assert joints.sign[i] == (-1.0 if "hip" in name else 1.0)  # ab/ad about x flips; y axes do not
    default = np.asarray(Config().env.default_joint_pos)
    np.testing.assert_allclose(joints(default), default)  # the default pose is its own mirror image


def test_foot_map_offset_is_twice_the_trunk_com_lateral_offset():
    offset = mirror.foot_map().offset.reshape(4, 3)
    np.testing.assert_allclose(offset, np.tile([0.0, -2 * a1.TRUNK_COM_OFFSET[1], 0.0], (4, 1)), atol=1e-12)


@pytest.fixture(scope="module")
def env():
    cfg = dataclasses.replace(Config().env, rsi_probability=0.0, add_noise=False)
    return A1AmpEnv(cfg, None)


def _random_state(seed):
    rng = np.random.default_rng(seed)
    quat = np.array([1.0, *rng.uniform(-0.1, 0.1, 3)])
    qpos = np.concatenate([rng.uniform(-0.5, 0.5, 2), [0.33], quat / np.linalg.norm(quat),
                           np.tile([0.0, 0.9, -1.8], 4) + rng.uniform(-0.2, 0.2, 12)])
    return jnp.asarray(qpos, jnp.float32), jnp.asarray(rng.uniform(-0.5, 0.5, 18), jnp.float32)


def test_observations_of_a_mirrored_state_are_the_mirrored_observations(env):
    qpos, qvel = _random_state(1)
    command = jnp.array([0.7, 0.2, -0.6])
    action = jax.random.uniform(jax.random.key(0), (12,), minval=-1, maxval=1)
    mirrored_critic = env.critic_observation(mirror.qpos_map()(qpos), mirror.qvel_map()(qvel),
                                             mirror.COMMAND(command), mirror.action_map()(action))
    critic = env.critic_observation(qpos, qvel, command, action)
    np.testing.assert_allclose(mirrored_critic, mirror.critic_observation_map()(critic), atol=2e-6)
    np.testing.assert_allclose(mirrored_critic[observations.POLICY_FROM_CRITIC],
                               mirror.policy_observation_map()(critic[observations.POLICY_FROM_CRITIC]), atol=2e-6)
    with_gyro = observations.CRITIC_BASE_ANG_VEL.start  # the policy's observation with the gyroscope: [3:]
    np.testing.assert_allclose(mirrored_critic[with_gyro:],
                               mirror.policy_observation_map(base_ang_vel=True)(critic[with_gyro:]), atol=2e-6)
    # with the velocity estimate the policy observes the whole critic observation, mirrored alike
    np.testing.assert_allclose(mirrored_critic,
                               mirror.policy_observation_map(base_ang_vel=True, base_lin_vel=True)(critic), atol=2e-6)
    # feet come from the model's kinematics: this checks the leg swap and the trunk-COM offset
    np.testing.assert_allclose(env.amp_observation(mirror.qpos_map()(qpos), mirror.qvel_map()(qvel)),
                               mirror.amp_observation_map()(env.amp_observation(qpos, qvel)), atol=2e-6)


def test_the_mirror_moves_the_gait_clock_half_a_cycle():
    """With a gait clock, the observations of a mirrored state at phase φ + 1/2 are the mirrored observations of
    the state at phase φ; the default stance with a straight command is then no longer its own mirror image."""
    clock_env = A1AmpEnv(dataclasses.replace(Config().env, rsi_probability=0.0, add_noise=False, gait_clock_hz=2.0))
    qpos, qvel = _random_state(2)
    command, action = jnp.array([0.6, -0.1, 0.4]), jnp.linspace(-1.0, 1.0, 12)
    maps = mirror.a1_mirror_maps(gait_clock=True)
    for phase in (0.0, 0.3, 0.8):
        critic = clock_env.critic_observation(qpos, qvel, command, action, jnp.float32(phase))
        mirrored = clock_env.critic_observation(mirror.qpos_map()(qpos), mirror.qvel_map()(qvel),
                                                mirror.COMMAND(command), mirror.action_map()(action),
                                                jnp.float32(phase + 0.5))
        assert critic.shape == (observations.CRITIC_OBS_SIZE + observations.GAIT_CLOCK_SIZE,)
        np.testing.assert_allclose(mirrored, maps.critic_obs(critic), atol=2e-6)
        np.testing.assert_allclose(mirrored[observations.POLICY_FROM_CRITIC],
                                   maps.policy_obs(critic[observations.POLICY_FROM_CRITIC]), atol=2e-6)
    stance = clock_env.critic_observation(*clock_env.default_pose(), jnp.array([0.8, 0.0, 0.0]), jnp.zeros(12),
                                          jnp.float32(0.1))
    without_clock = stance[:observations.CRITIC_OBS_SIZE]
    np.testing.assert_allclose(mirror.critic_observation_map()(without_clock), without_clock, atol=1e-6)
    assert np.abs(maps.critic_obs(stance) - stance).max() > 1.0  # the clock alone tells the two apart
    with pytest.raises(ValueError, match="gait phase"):
        clock_env.critic_observation(qpos, qvel, command, action)


MIRRORED_STEP_ATOL = (1e-3, 2e-2)
"""Tolerances (qpos, qvel) of the mirrored rollout on the symmetrised model: float32 rounding through contacts."""


def _rollouts(env, mj_model, steps=8):
    """(original, mirrored) rollouts ``qpos [T, 19], qvel [T, 18]`` of ``steps`` control steps of random actions
    from a state dropping onto its feet, on ``mj_model``."""
    sys = mjx.put_model(mj_model, impl=env.cfg.impl)
    template = mjx.make_data(mj_model, impl=env.cfg.impl)
    ones = jnp.ones(12)

    def rollout(qpos, qvel, actions):
        def body(data, action):
            data = env.simulate(data, action, ones, ones)
            return data, (data.qpos, data.qvel, data.qpos[2])
        env.sys = sys
        return jax.lax.scan(body, template.replace(qpos=qpos, qvel=qvel), actions)[1]

    run = jax.jit(rollout)
    qpos, qvel = _random_state(2)
    actions = jax.random.uniform(jax.random.key(3), (steps, 12), minval=-1, maxval=1)
    original = run(qpos, qvel, actions)
    mirrored = run(mirror.qpos_map()(qpos), mirror.qvel_map()(qvel), mirror.action_map()(actions))
    return original, mirrored


def test_mirrored_state_under_mirrored_actions_steps_to_the_mirrored_state(env):
    """MJX on the symmetrised model, 8 control steps (0.24 s) of random actions with the feet striking the floor;
    the real model, 2.2 mm off-centre and with unmirrored inertias, drifts beyond the same tolerance."""
    real = env.mj_model
    try:
        (q, v, height), (q_m, v_m, _) = _rollouts(env, mirror.symmetrized_model(real))
        assert float(jnp.min(height)) < 0.32  # it fell onto its feet
        np.testing.assert_allclose(mirror.qpos_map()(q), q_m, atol=MIRRORED_STEP_ATOL[0])
        np.testing.assert_allclose(mirror.qvel_map()(v), v_m, atol=MIRRORED_STEP_ATOL[1])
        (q, v, _), (q_m, v_m, _) = _rollouts(env, real)
        assert float(jnp.max(jnp.abs(mirror.qvel_map()(v) - v_m))) > MIRRORED_STEP_ATOL[1]
    finally:
        env.sys = mjx.put_model(real, impl=env.cfg.impl)


def test_symmetrized_model_keeps_mass_and_moves_the_trunk_com_to_the_mid_plane(env):
    real = env.mj_model
    sym = mirror.symmetrized_model(real)
    assert np.isclose(np.sum(sym.body_mass), np.sum(real.body_mass))
    assert sym.body_ipos[sym.body("trunk").id][1] == 0.0
    assert real.body_ipos[real.body("trunk").id][1] != 0.0  # the copy, not the model, changed


@pytest.fixture(scope="module")
def clip_frames():
    return {name: load_clip(a1.MJCF_DIR.parent / "motion_data" / f"{name}.txt").frames
            for name in ("trot0", "pace0", "leftturn0", "rightturn0")}


def test_features_of_mirrored_clip_frames_are_the_mirrored_features(env, clip_frames):
    frames = clip_frames["leftturn0"][::7]
    amp_map = mirror.amp_observation_map()
    np.testing.assert_allclose(amp_features(mirror.frame_map()(frames)), amp_map(amp_features(frames)), atol=1e-12)
    # and through the env's kinematics: a mirrored frame as a state has the mirrored AMP observation
    observe = jax.jit(jax.vmap(lambda f: env.amp_observation(*state_from_frame(f))))
    np.testing.assert_allclose(observe(jnp.asarray(mirror.frame_map()(frames), jnp.float32)),
                               amp_map(observe(jnp.asarray(frames, jnp.float32))), atol=2e-5)


def test_mirrored_left_turn_turns_right(clip_frames):
    def yaw_rate(frames):
        return float(np.mean(frames[:, layout.BASE_ANG_VEL][:, 2]))

    left, right = clip_frames["leftturn0"], clip_frames["rightturn0"]
    assert yaw_rate(left) > 0.3 and yaw_rate(right) < -0.3
    assert yaw_rate(mirror.frame_map()(left)) == pytest.approx(-yaw_rate(left))
    assert np.sign(yaw_rate(mirror.frame_map()(left))) == np.sign(yaw_rate(right))
    # the path bends the other way too: world y of the root ends on the other side
    mirrored = mirror.frame_map()(left)
    assert np.sign(mirrored[-1, 1] - mirrored[0, 1]) == -np.sign(left[-1, 1] - left[0, 1])


def test_library_with_mirror_images_holds_each_clip_and_its_mirror_at_the_same_weight():
    files = [a1.MJCF_DIR.parent / "motion_data" / f"{n}.txt" for n in ("trot0", "leftturn0")]
    library = load_motion_library(files, dt_amp=0.03, mirror_frames=mirror.frame_map())
    assert library.names == ("trot0", "leftturn0", "trot0_mirrored", "leftturn0_mirrored")
    np.testing.assert_allclose(library.weights[:2], library.weights[2:])
    n = int(library.num_frames[1])
    np.testing.assert_allclose(library.frames[3, :n], mirror.frame_map()(np.asarray(library.frames[1, :n])),
                               atol=1e-6)


def test_model_derivation_rejects_an_asymmetric_joint_axis(monkeypatch):
    model = mujoco.MjModel.from_xml_path(str(a1.SCENE_XML))
    model.jnt_axis[model.joint("FR_hip_joint").id] = [0.0, 0.0, 1.0]
    monkeypatch.setattr(mirror, "_load_model", lambda: model)
    mirror.joint_map.cache_clear()
    try:
        with pytest.raises(ValueError, match="FR_hip_joint.*not the mirror image"):
            mirror.joint_map()
    finally:
        mirror.joint_map.cache_clear()


def test_an_amp_window_is_mirrored_state_by_state():
    """The AMP map of a window of three states mirrors each state's features alike: the window of the mirrored
    states."""
    one, window = mirror.amp_observation_map(), mirror.a1_mirror_maps(amp_history=2).amp_obs
    states = np.random.default_rng(3).normal(size=(3, observations.AMP_OBS_SIZE))
    np.testing.assert_array_equal(window(states.reshape(-1)), one(states).reshape(-1))


def test_a_policy_observation_with_history_is_mirrored_step_by_step():
    """With ``env.policy_history`` 3 (and a clock and the gyroscope) the policy map mirrors each of the four
    steps' observations alike, and the critic's, which has no history, is as without it."""
    one = mirror.policy_observation_map(gait_clock=True, base_ang_vel=True)
    maps = mirror.a1_mirror_maps(gait_clock=True, policy_history=3, policy_base_ang_vel=True)
    steps = np.random.default_rng(4).normal(size=(4, one.size))
    assert one.size == observations.POLICY_OBS_SIZE + observations.GAIT_CLOCK_SIZE + observations.GYRO_SIZE
    np.testing.assert_array_equal(maps.policy_obs(steps.reshape(-1)), one(steps).reshape(-1))
    assert maps.critic_obs.size == mirror.critic_observation_map(gait_clock=True).size
