"""The C MuJoCo runner: its NumPy observation against the JAX env's, its trajectory against the MJX rollout."""

import dataclasses

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from amp_jax import a1
from amp_jax.analysis import command_schedule, gait, upright
from amp_jax.analysis.command_schedule import CommandSegment
from amp_jax.config import PROJECT_ROOT, load_config
from amp_jax.deploy import export_policy, mirror_check, onnx_export, sim2sim
from amp_jax.envs.a1_amp import GAIT_PHASE, A1AmpEnv, state_from_frame
from amp_jax.evaluation import rollouts as eval_rollouts
from amp_jax.motion import load_clip

SHORT = (CommandSegment(0.3, 0.5, 0.0, 0.0), CommandSegment(0.3, 0.8, 0.1, 0.5))


@pytest.fixture(scope="module")
def cfg():
    return load_config(["a1_trot"])


@pytest.fixture(scope="module")
def spec(cfg):
    """The runner settings as a deployed policy carries them: read back from the export metadata."""
    return sim2sim.RunnerSpec.from_metadata(export_policy.policy_metadata(cfg))


@pytest.fixture(scope="module")
def quiet_env(cfg):
    env_cfg = dataclasses.replace(cfg.env, add_noise=False, randomize_gains=False, push_robots=False,
                                  rsi_probability=0.0)
    return A1AmpEnv(env_cfg, None)


def random_states(num: int, seed: int = 0):
    """Poses with arbitrary orientations, joint angles and velocities: ``(qpos [num, 19], qvel [num, 18])``."""
    rng = np.random.default_rng(seed)
    quat = rng.normal(size=(num, 4))
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    qpos = np.concatenate([rng.uniform(-1, 1, (num, 2)), rng.uniform(0.2, 0.4, (num, 1)), quat,
                           rng.uniform(-1.0, 1.0, (num, 12))], axis=1)
    qvel = rng.normal(scale=2.0, size=(num, 18))
    return qpos.astype(np.float32), qvel.astype(np.float32)


def test_numpy_observation_equals_the_jax_env_observation_at_reset(quiet_env, spec):
    qpos, qvel = random_states(8)
    keys = jax.random.split(jax.random.key(3), 8)
    states = jax.jit(jax.vmap(quiet_env.reset_to))(keys, jnp.asarray(qpos), jnp.asarray(qvel))
    for i in range(8):
        expected = np.asarray(states.obs["state"][i])
        got = sim2sim.policy_observation(qpos[i].astype(np.float64), qvel[i].astype(np.float64),
                                         np.asarray(states.info["command"][i]), np.zeros(12), spec)
        assert np.abs(states.info["command"][i]).max() > 0  # the command part is exercised
        np.testing.assert_allclose(got, expected, atol=2e-6, err_msg=f"state {i}")


def test_numpy_observation_equals_the_jax_env_observation_after_a_step(cfg, quiet_env):
    """A motion-data pose (tilted, moving), one physics-stepped control step with a random action, in an env with
    a gait clock whose policy also observes the gyroscope and a velocity estimate: the env's clock advances by
    ``gait_clock_hz · control_dt`` cycles, and the runner's clock at the same phase gives the same observation,
    the base's linear and angular velocity (body axes, scaled) first."""
    clock_cfg = dataclasses.replace(cfg, env=dataclasses.replace(quiet_env.cfg, gait_clock_hz=1.7,
                                                                 policy_base_ang_vel=True, policy_base_lin_vel=True))
    clock_env = A1AmpEnv(clock_cfg.env, None)
    spec = sim2sim.RunnerSpec.from_metadata(export_policy.policy_metadata(clock_cfg))
    assert spec.gait_clock_hz == 1.7
    frame = load_clip(PROJECT_ROOT / "motion_data" / "pace0.txt").frames[7]
    qpos, qvel = state_from_frame(jnp.asarray(frame, jnp.float32))
    state = clock_env.reset_to(jax.random.key(1), qpos, qvel, gait_phase=0.95)
    action = jax.random.uniform(jax.random.key(2), (12,), minval=-1.0, maxval=1.0)
    state = jax.jit(clock_env.step)(state, action)
    phase = 0.95 + 1.7 * clock_env.cfg.control_dt - 1.0
    assert float(state.info[GAIT_PHASE]) == pytest.approx(phase, abs=1e-6)  # wrapped into [0, 1)
    data = state.pipeline_state
    got = sim2sim.policy_observation(np.asarray(data.qpos, np.float64), np.asarray(data.qvel, np.float64),
                                     np.asarray(state.info["command"]), np.asarray(state.info["last_action"]), spec,
                                     time_s=(phase + 3.0) / 1.7)  # three whole cycles on: the same phase
    assert got.shape == (50,) and spec.base_ang_vel and spec.base_lin_vel
    np.testing.assert_allclose(got, np.asarray(state.obs["state"]), atol=2e-5)
    quat = np.asarray(data.qpos[3:7], np.float64)
    lin_vel_base = np.zeros(3)
    mujoco.mju_rotVecQuat(lin_vel_base, np.asarray(data.qvel[:3], np.float64), quat * [1, -1, -1, -1])
    np.testing.assert_allclose(got[:3], lin_vel_base * cfg.env.obs_scale_lin_vel, atol=1e-5)
    assert np.abs(got[:2]).max() > 0.5  # the clip's pose moves: the velocity estimate's part is exercised
    np.testing.assert_allclose(got[3:6], np.asarray(data.qvel[3:6]) * cfg.env.obs_scale_ang_vel, atol=1e-6)
    assert np.abs(got[3:6]).max() > 0.05  # the clip's pose turns: the gyroscope part is exercised
    np.testing.assert_allclose(got[-14:-2], np.asarray(action), atol=1e-7)
    np.testing.assert_allclose(got[-2:], [np.sin(2 * np.pi * phase), np.cos(2 * np.pi * phase)], atol=2e-5)


def test_zero_action_policy_stands_and_a_limp_robot_falls(spec):
    commands = command_schedule.commands_from_schedule([CommandSegment(3.0, 0.0, 0.0, 0.0)], spec.control_dt)

    def zero_policy(obs):
        return np.zeros(12)

    standing = sim2sim.simulate(zero_policy, spec, commands)
    assert standing.upright and standing.fell_at_s is None
    assert standing.duration_s == pytest.approx(3.0, abs=spec.control_dt)
    assert 0.2 < standing.qpos[-1, 2] < 0.4  # settled on its feet under PD at the default pose
    np.testing.assert_allclose(standing.qpos[-1, 7:], spec.default_joint_pos, atol=0.15)
    # Dropped from the initial height it rocks for about a second, then stands still as commanded.
    assert np.abs(standing.measured[-round(0.5 / spec.control_dt):]).max() < 0.05
    # Standing still, the floor carries the robot's weight on its four feet (an independent energy-free balance).
    weight = 9.81 * float(np.sum(mujoco.MjModel.from_xml_path(str(a1.SCENE_XML)).body_mass))
    np.testing.assert_allclose(standing.foot_forces[-10:].sum(axis=1), weight, rtol=0.03)
    assert np.all(gait.contacts_from_forces(standing.foot_forces[-10:]))

    assert not np.any(gait.contacts_from_forces(standing.foot_forces[:3]))  # dropped from 0.42 m: in the air

    limp = sim2sim.simulate(zero_policy, dataclasses.replace(spec, kp=0.0, kd=0.0), commands)
    assert not limp.upright
    assert 0.0 < limp.fell_at_s < 2.0
    assert limp.qpos[-1, 2] < upright.MIN_BASE_HEIGHT


def test_tracking_error_is_the_rms_per_axis():
    commands = np.tile([1.0, 0.0, 0.5], (4, 1))
    measured = np.array([[1.0, 0.0, 0.5], [0.0, 0.2, 0.5], [1.0, 0.0, 0.5], [1.0, -0.2, 0.5]])
    # vx: errors (0, 1, 0, 0) -> sqrt(1/4); vy: (0, 0.2, 0, 0.2) -> sqrt(0.08/4)
    rms = sim2sim.tracking_rms(commands, measured)
    assert rms == pytest.approx({"vx": 0.5, "vy": np.sqrt(0.02), "yaw_rate": 0.0})


def test_runner_spec_names_what_the_metadata_lacks(cfg):
    meta = export_policy.policy_metadata(cfg)
    with pytest.raises(ValueError, match="lacks 'kp'"):
        sim2sim.RunnerSpec.from_metadata({k: v for k, v in meta.items() if k != "kp"}, "p.onnx")
    shuffled = {**meta, "observation_layout": meta["observation_layout"][::-1]}
    with pytest.raises(ValueError, match="observation_layout lists"):
        sim2sim.RunnerSpec.from_metadata(shuffled, "p.onnx")
    with_clock = export_policy.policy_metadata(dataclasses.replace(cfg, env=dataclasses.replace(cfg.env,
                                                                                                gait_clock_hz=2.0)))
    assert [p["name"] for p in with_clock["observation_layout"]][-1] == "gait_clock"
    assert with_clock["observation_layout"][-1]["stop"] == with_clock["observation_size"] == 44
    assert sim2sim.RunnerSpec.from_metadata(with_clock).gait_clock_hz == 2.0
    with pytest.raises(ValueError, match="gait_clock_hz is 0.0 while observation_layout lists 'gait_clock'"):
        sim2sim.RunnerSpec.from_metadata({**with_clock, "gait_clock_hz": 0.0}, "p.onnx")
    with pytest.raises(ValueError, match="gait_clock_hz is 2.0 while observation_layout lacks"):
        sim2sim.RunnerSpec.from_metadata({**meta, "gait_clock_hz": 2.0}, "p.onnx")
    with_history = export_policy.policy_metadata(dataclasses.replace(cfg, env=dataclasses.replace(cfg.env,
                                                                                                  policy_history=3)))
    assert with_history["observation_size"] == 4 * 42
    assert sim2sim.RunnerSpec.from_metadata(with_history).policy_history == 3
    with_gyro = export_policy.policy_metadata(dataclasses.replace(cfg, env=dataclasses.replace(
        cfg.env, policy_base_ang_vel=True, gait_clock_hz=2.0)))
    assert [p["name"] for p in with_gyro["observation_layout"]] == ["base_ang_vel", *sim2sim.OBSERVATION_ORDER,
                                                                    "gait_clock"]
    assert with_gyro["observation_layout"][0] == {**with_gyro["observation_layout"][0], "start": 0, "stop": 3,
                                                  "scale": [cfg.env.obs_scale_ang_vel] * 3}
    assert with_gyro["observation_size"] == 47 and sim2sim.RunnerSpec.from_metadata(with_gyro).base_ang_vel
    late_gyro = {**with_gyro, "observation_layout": with_gyro["observation_layout"][1:-1]
                 + with_gyro["observation_layout"][:1]}
    with pytest.raises(ValueError, match="p.onnx: observation_layout lists .* optionally preceded by 'base_ang_vel'"):
        sim2sim.RunnerSpec.from_metadata(late_gyro, "p.onnx")
    with_lin_vel = export_policy.policy_metadata(dataclasses.replace(cfg, env=dataclasses.replace(
        cfg.env, policy_base_ang_vel=True, policy_base_lin_vel=True)))
    assert [p["name"] for p in with_lin_vel["observation_layout"]][:3] == ["base_lin_vel", "base_ang_vel",
                                                                           "projected_gravity"]
    assert with_lin_vel["observation_layout"][0] == {**with_lin_vel["observation_layout"][0], "start": 0, "stop": 3,
                                                     "scale": [cfg.env.obs_scale_lin_vel] * 3}
    lin_spec = sim2sim.RunnerSpec.from_metadata(with_lin_vel)
    assert with_lin_vel["observation_size"] == 48 and lin_spec.base_lin_vel and lin_spec.base_ang_vel
    no_gyro = {**with_lin_vel, "observation_layout": with_lin_vel["observation_layout"][:1]
               + with_lin_vel["observation_layout"][2:]}
    with pytest.raises(ValueError, match="p.onnx: observation_layout lists .*'base_lin_vel'"):
        sim2sim.RunnerSpec.from_metadata(no_gyro, "p.onnx")
    for bad in ({"policy_history": 2}, {"policy_history": -1, "observation_size": 0}, {"policy_history": 1.5}):
        with pytest.raises(ValueError, match="p.onnx: policy_history is .* expected a whole number H >= 0"):
            sim2sim.RunnerSpec.from_metadata({**with_history, **bad}, "p.onnx")


def test_onnx_policy_in_c_mujoco_retraces_the_mjx_rollout(tiny_run_policy, tmp_path_factory):
    """Same policy, start and commands: C MuJoCo (NumPy obs, onnxruntime) and MJX (JAX env, Flax) agree."""
    exported = export_policy.export_policy(tiny_run_policy, tmp_path_factory.mktemp("sim2sim") / "policy.onnx")
    result = sim2sim.run_sim2sim(exported.path, SHORT)
    commands = command_schedule.commands_from_schedule(SHORT, tiny_run_policy.cfg.env.control_dt)
    mjx_run = eval_rollouts.rollout_policy(tiny_run_policy, commands)
    assert result.qpos.shape == mjx_run.qpos.shape == (commands.shape[0], 19)
    np.testing.assert_array_equal(result.commands, commands)
    # Before chaos can amplify float32 vs float64 differences: the first 0.3 s agree closely.
    early = round(0.3 / tiny_run_policy.cfg.env.control_dt)
    np.testing.assert_allclose(result.qpos[:early], mjx_run.qpos[:early], atol=1e-3)
    np.testing.assert_allclose(result.measured[:early], mjx_run.measured[:early], atol=1e-2)


def test_onnx_policy_with_an_action_filter_retraces_the_mjx_rollout(tiny_run_policy, tmp_path_factory):
    """The tiny run's policy behind a 2 Hz action filter: the export carries the filter, the C MuJoCo runner
    (its observation's last action the filter's state, which starts at the pose-holding action) applies it as the
    MJX env does, so the two trajectories agree early on; without the filter the runner's motion differs."""
    env_cfg = dataclasses.replace(tiny_run_policy.cfg.env, action_filter_hz=2.0)
    policy = dataclasses.replace(tiny_run_policy, cfg=dataclasses.replace(tiny_run_policy.cfg, env=env_cfg))
    exported = export_policy.export_policy(policy, tmp_path_factory.mktemp("filtered") / "policy.onnx")
    spec = sim2sim.RunnerSpec.from_metadata(onnx_export.read_metadata(exported.path))
    assert spec.action_filter_hz == 2.0 and spec.action_filter_alpha == pytest.approx(env_cfg.action_filter_alpha)
    result = sim2sim.run_sim2sim(exported.path, SHORT)
    commands = command_schedule.commands_from_schedule(SHORT, env_cfg.control_dt)
    mjx_run = eval_rollouts.rollout_policy(policy, commands)
    early = round(0.3 / env_cfg.control_dt)
    np.testing.assert_allclose(result.qpos[:early], mjx_run.qpos[:early], atol=1e-3)
    unfiltered = sim2sim.run_sim2sim(exported.path, SHORT, spec=dataclasses.replace(spec, action_filter_hz=0.0))
    assert np.abs(unfiltered.qpos[:early, 7:] - result.qpos[:early, 7:]).max() > 0.02


def _with_gyro_and_history_weights(policy, history: int, scale: float, gyro_scale: float):
    """``policy`` (a one-step policy without the gyroscope) as a policy that also observes the base's angular
    velocity and ``history`` earlier steps: its first layer widened by rows of weight ``gyro_scale · N(0, 1)``
    for the gyroscope (each step's before the rest of that step's) and ``scale · N(0, 1)`` for the earlier
    steps."""
    actor = policy.params.actor
    kernel = np.asarray(actor["params"]["hidden_0"]["kernel"])
    rng = np.random.default_rng(7)
    frames = [np.concatenate([gyro_scale * rng.normal(size=(3, kernel.shape[1])),
                              kernel if step == 0 else scale * rng.normal(size=kernel.shape)])
              for step in range(1 + history)]
    widened = jax.tree.map(lambda x: x, actor)
    widened["params"]["hidden_0"]["kernel"] = jnp.asarray(np.concatenate(frames), kernel.dtype)
    env_cfg = dataclasses.replace(policy.cfg.env, policy_history=history, policy_base_ang_vel=True)
    return dataclasses.replace(policy, cfg=dataclasses.replace(policy.cfg, env=env_cfg),
                               params=policy.params.replace(actor=widened))


def test_onnx_policy_with_the_gyroscope_and_a_history_retraces_the_mjx_rollout(tiny_run_policy, tmp_path_factory):
    """A policy observing the base's angular velocity and 2 earlier steps (the tiny run's, with random weights
    from those): the export says so, the C MuJoCo runner builds the gyroscope's part and keeps the history as the
    MJX env does (its first observation standing in for the steps before the start), so the two trajectories
    agree early on; the same weights on a history of zeros, or on a gyroscope reading zero, would not."""
    policy = _with_gyro_and_history_weights(tiny_run_policy, 2, 0.2, 2.0)  # the gyroscope's part is small
    exported = export_policy.export_policy(policy, tmp_path_factory.mktemp("history") / "policy.onnx")
    meta = onnx_export.read_metadata(exported.path)
    assert meta["policy_history"] == 2 and meta["observation_size"] == 3 * 45
    assert meta["observation_layout"][0]["name"] == "base_ang_vel" and meta["observation_layout"][-1]["stop"] == 45
    spec = sim2sim.RunnerSpec.from_metadata(meta)
    assert spec.policy_history == 2 and spec.base_ang_vel
    result = sim2sim.run_sim2sim(exported.path, SHORT)
    commands = command_schedule.commands_from_schedule(SHORT, policy.cfg.env.control_dt)
    mjx_run = eval_rollouts.rollout_policy(policy, commands)
    early = round(0.3 / policy.cfg.env.control_dt)
    np.testing.assert_allclose(result.qpos[:early], mjx_run.qpos[:early], atol=1e-3)
    session = onnx_export.load_session(exported.path)
    no_history = np.r_[np.ones(45), np.zeros(90)]
    no_gyro = np.tile(np.r_[np.zeros(3), np.ones(42)], 3)
    for mask in (no_history, no_gyro):
        blind = sim2sim.simulate(lambda obs, mask=mask: onnx_export.run_onnx(session, (obs * mask).astype(np.float32)),
                                 spec, commands)
        assert np.abs(blind.qpos[:early, 7:] - result.qpos[:early, 7:]).max() > 0.02


def _report(yaw=(0.8, -0.8), lateral=(0.2, -0.2), duty=(0.5, 0.5, 0.5, 0.5), drift=(0.0, 0.0)):
    def result(response_axis, value, command):
        response = [command[0], 0.0, 0.0]
        response[response_axis] = value
        return {"command": list(command), "response": response, "duty": [0.5] * 4, "upright": True}

    results = {"straight": {"command": [0.8, 0, 0], "response": [0.8, *drift], "duty": list(duty), "upright": True}}
    for name, (plus, minus, axis) in mirror_check.MIRROR_PAIRS.items():
        values = yaw if name == "yaw" else lateral
        results[f"{name}+"] = result(axis, values[0], plus)
        results[f"{name}-"] = result(axis, values[1], minus)
    return results


def test_mirror_verdict_applies_each_criterion():
    assert mirror_check.mirror_verdict(_report())["passes"]
    assert not mirror_check.mirror_verdict(_report(yaw=(0.8, -0.6)))["criteria"]["yaw_mirrored"]  # 0.2 > 0.14
    assert mirror_check.mirror_verdict(_report(yaw=(0.8, -0.7)))["criteria"]["yaw_mirrored"]  # 0.1 <= 0.15
    assert not mirror_check.mirror_verdict(_report(yaw=(0.4, -0.4)))["criteria"]["yaw_sign_and_size"]  # < half
    assert not mirror_check.mirror_verdict(_report(lateral=(-0.2, 0.2)))["criteria"]["lateral_sign_and_size"]
    assert not mirror_check.mirror_verdict(_report(duty=(0.5, 0.5, 0.45, 0.7)))["criteria"]["duty_balance"]
    assert not mirror_check.mirror_verdict(_report(drift=(-0.06, 0.0)))["criteria"]["no_drift"]
    assert not mirror_check.mirror_verdict(_report(drift=(0.0, 0.12)))["criteria"]["no_drift"]


def test_a_clock_policy_is_also_checked_with_the_minus_runs_started_half_a_cycle_on(cfg, spec, monkeypatch):
    """The mirror image of a run whose clock starts at phase 0 starts at phase ½: the report's ``mirrored_clock``
    holds the −c runs from there, and the runner's clock really starts there and advances as in training."""
    monkeypatch.setattr(mirror_check, "HOLD_S", 0.6)
    clock_spec = sim2sim.RunnerSpec.from_metadata(export_policy.policy_metadata(
        dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, gait_clock_hz=2.0))))
    clocks: list[list[np.ndarray]] = []

    def recording_policy(obs):
        if len(clocks) == 0 or len(clocks[-1]) == steps_per_run:
            clocks.append([])
        clocks[-1].append(np.array(obs[-2:]))
        return np.zeros(12)

    steps_per_run = mirror_check.held_commands((0.0, 0.0, 0.0), clock_spec.control_dt)[0].shape[0]
    report = mirror_check.mirror_report(recording_policy, clock_spec)
    assert len(clocks) == 7  # straight, yaw ±, lateral ±, then yaw − and lateral − from phase ½
    scale = clock_spec.obs_scales[sim2sim.GAIT_CLOCK]
    step_angle = 2 * np.pi * 2.0 * clock_spec.control_dt
    for run, start_phase in zip(clocks, [0.0] * 5 + [0.5] * 2, strict=True):
        angles = 2 * np.pi * start_phase + step_angle * np.arange(len(run))
        np.testing.assert_allclose(np.array(run), scale * np.stack([np.sin(angles), np.cos(angles)], 1), atol=1e-5)
    shifted = report["mirrored_clock"]
    assert list(shifted["results"]) == ["yaw-", "lateral-"]
    assert [r["command"] for r in shifted["results"].values()] == [[0.5, 0.0, -1.0], [0.3, -0.3, 0.0]]
    assert shifted["criteria"].keys() == report["criteria"].keys()
    assert "started at phase 0.5" in mirror_check.format_report(report)

    clocks.clear()
    steps_per_run = mirror_check.held_commands((0.0, 0.0, 0.0), spec.control_dt)[0].shape[0]
    assert "mirrored_clock" not in mirror_check.mirror_report(recording_policy, spec)  # no clock: five runs
    assert len(clocks) == 5


def test_held_commands_settle_then_hold_and_measure_the_last_three_quarters(spec):
    commands, window = mirror_check.held_commands((0.5, 0.0, 1.0), spec.control_dt)
    settle = round(mirror_check.SETTLE_S / spec.control_dt)
    hold = round(mirror_check.HOLD_S / spec.control_dt)
    assert commands.shape == (settle + hold, 3)
    assert np.all(commands[:settle] == 0.0) and np.all(commands[settle:] == [0.5, 0.0, 1.0])
    assert window.stop == settle + hold and window.stop - window.start == round(0.75 * hold)


TROT_IN_PLACE = ((40, (0, 3)), (55, (1, 2)), (70, (0, 3)))
"""(first control step, legs) of each scripted lift: diagonal pairs FL+RR, FR+RL, FL+RR, each up for 4 steps."""
LIFT_STEPS = 4


def _trot_in_place(steps, action_scale):
    """Actions ``[steps, 12]`` and the footfalls they script, bool ``[steps, 4]``: the default pose, but each lifted
    leg's thigh +0.3 rad and knee folded −0.7 rad for :data:`LIFT_STEPS` control steps (a trot step in place)."""
    actions, expected = np.zeros((steps, 12)), np.ones((steps, 4), bool)
    for start, legs in TROT_IN_PLACE:
        for leg in legs:
            actions[start:start + LIFT_STEPS, 3 * leg + 1] = 0.3 / action_scale
            actions[start:start + LIFT_STEPS, 3 * leg + 2] = -0.7 / action_scale
            expected[start:start + LIFT_STEPS, leg] = False
    return actions, expected


def test_contacts_from_forces_follow_a_scripted_footfall_in_mjx_and_c_mujoco(quiet_env, spec):
    """Known footfalls: after settling, three trot steps in place (diagonal pairs lifted for 0.12 s each).
    Contacts from the floor's normal force (> 1 N) show them, in C MuJoCo (the runner's ``mj_contactForce``) and
    in MJX (the env's constraint forces), alike step by step."""
    steps = 90
    actions, expected = _trot_in_place(steps, spec.action_scale)
    index = iter(range(steps))
    c_run = sim2sim.simulate(lambda obs: actions[next(index)], spec, np.zeros((steps, 3)))
    c_contacts = gait.contacts_from_forces(c_run.foot_forces)

    state = quiet_env.reset_to(jax.random.key(0), *map(jnp.asarray, sim2sim.initial_state(spec)))
    ones = jnp.ones(12)

    def control_step(data, action):
        data = quiet_env.simulate(data, action, ones, ones)
        return data, quiet_env.foot_normal_forces(data)

    _, mjx_forces = jax.jit(lambda d, a: jax.lax.scan(control_step, d, a))(state.pipeline_state,
                                                                          jnp.asarray(actions, jnp.float32))
    mjx_contacts = gait.contacts_from_forces(np.asarray(mjx_forces))

    settled = slice(35, steps)
    for contacts in (c_contacts, mjx_contacts):
        for start, legs in TROT_IN_PLACE:
            assert not contacts[start:start + LIFT_STEPS, list(legs)].any()  # the lifted pair is in the air
        assert np.mean(contacts[settled] == expected[settled]) >= 0.95  # a stray bounce or two at most
    assert c_run.upright
    # The two simulators agree at nearly every control step, and on the weight the feet carry when standing.
    assert np.mean(c_contacts[settled] == mjx_contacts[settled]) >= 0.95
    np.testing.assert_allclose(np.asarray(mjx_forces)[35:40].sum(1), c_run.foot_forces[35:40].sum(1), rtol=0.05)
