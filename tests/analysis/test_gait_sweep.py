"""The speed sweep's claims: footfalls and gait classes of known patterns, scripted gaits driven in the env, the
clips, and the cost of transport against NumPy (the evaluation's sweep section: tests/evaluation/test_evaluate.py)."""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from amp_jax.analysis import footfall, gait, rollout, sweep
from amp_jax.config import PROJECT_ROOT, load_config
from amp_jax.envs import base, rewards
from amp_jax.evaluation import plotting
from amp_jax.motion.loader import load_clip

DT = 0.03
"""Control period of the synthetic patterns (s)."""


def pattern(offsets, duty=0.5, steps=300, period=20):
    """Contacts ``[steps, 4]``: each foot touches down at its offset (strides) and stays down ``duty``."""
    t = (np.arange(steps)[:, None] / period - np.asarray(offsets)[None, :]) % 1.0
    return t < duty


KNOWN = {  # footfall offsets FL, FR, RL, RR (strides after FL's touchdown)
    "trot": (0.0, 0.5, 0.5, 0.0),
    "pace": (0.0, 0.5, 0.0, 0.5),
    "bound": (0.0, 0.0, 0.5, 0.5),
    "pronk": (0.0, 0.0, 0.0, 0.0),
    "gallop": (0.0, 0.15, 0.55, 0.7),  # transverse: each pair's lead foot 0.15 of a stride ahead
}


def circular_error(a, b):
    return footfall.circular_distance(np.asarray(a) - np.asarray(b))


# ----------------------------------------------------------------------------------------------------------
# Footfalls of synthetic patterns


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_known_patterns_have_their_frequency_offsets_and_class(name):
    result = footfall.footfalls(pattern(KNOWN[name]), DT)
    assert result.stride_hz == pytest.approx(1.0 / (20 * DT), rel=0.01)
    assert np.max(circular_error(result.offsets, KNOWN[name])) < 0.01
    assert result.duty == pytest.approx((0.5,) * 4, abs=0.01)
    assert result.gait == name


def test_a_walk_a_stand_and_a_foot_that_never_steps():
    walk = pattern((0.0, 0.5, 0.75, 0.25), duty=0.8)  # lateral-sequence four-beat walk
    assert footfall.footfalls(walk, DT).gait == "walk"
    assert footfall.footfalls(pattern(KNOWN["trot"], duty=0.8), DT).gait == "walk"  # three feet down on average
    assert footfall.footfalls(np.ones((100, 4), bool), DT).gait == "stand"
    assert np.isnan(footfall.stride_frequency(np.ones((100, 4), bool), DT))
    three_legged = pattern(KNOWN["trot"])
    three_legged[:, 3] = True
    result = footfall.footfalls(three_legged, DT)
    assert np.isnan(result.offsets[3]) and not np.isnan(result.offsets[1]) and result.gait == "irregular"


def test_classes_follow_the_documented_thresholds():
    duty = (0.5,) * 4
    tol = footfall.PAIR_TOLERANCE
    assert footfall.classify(duty, (0.0, 0.5 - 0.9 * tol, 0.5, 0.0)) == "trot"
    assert footfall.classify(duty, (0.0, 0.5 - 1.1 * tol, 0.5, 0.0)) == "gallop"
    # limb phase s either side of the couplet boundary (both sides' hind feet land s after the fore feet)
    b = footfall.COUPLET_BOUNDARY
    assert footfall.classify(duty, (0.0, 0.5, b - 0.01, 0.5 + b - 0.01)) == "pace"
    assert footfall.classify(duty, (0.0, 0.5, b + 0.01, 0.5 + b + 0.01)) == "trot"
    assert footfall.classify((footfall.WALK_MIN_DUTY,) * 4, (0.0, 0.5, 0.25, 0.75)) == "walk"
    assert footfall.classify(duty, (0.0, 0.0, 0.9 * tol, 0.9 * tol)) == "pronk"
    assert footfall.classify((footfall.STAND_MIN_DUTY,) * 4, (np.nan,) * 4) == "stand"
    assert set(footfall.GAIT_CLASSES) >= {"stand", "walk", "trot", "pace", "bound", "pronk", "gallop"}


@pytest.mark.parametrize("name", ["trot0", "trot1", "pace0", "pace1"])
def test_the_clips_classify_as_their_names_say(name):
    clip = load_clip(PROJECT_ROOT / "motion_data" / f"{name}.txt")
    contacts = gait.contacts_from_heights(gait.clip_foot_heights(clip.frames))
    result = footfall.footfalls(contacts, clip.frame_duration)
    assert result.gait == name[:-1], result
    assert 1.0 < result.stride_hz < 2.0  # the dog's strides: 0.6-0.8 s



def swings_by_loop(contacts, dt):
    """Every complete swing's duration (s), walking each foot's contacts one sample at a time."""
    out = []
    for foot in range(contacts.shape[1]):
        seen_contact, flight = False, None
        for touching in contacts[:, foot]:
            if touching:
                if flight is not None:
                    out.append(flight * dt)
                seen_contact, flight = True, None
            elif seen_contact:
                flight = (flight or 0) + 1
    return out


def test_mean_swing_follows_a_plain_loop_and_a_known_pattern():
    rng = np.random.default_rng(4)
    for _ in range(20):
        contacts = rng.uniform(size=(rng.integers(2, 60), 4)) < rng.uniform(0.2, 0.9)
        expected = swings_by_loop(contacts, DT)
        got = footfall.mean_swing_s(contacts, DT)
        assert (np.isnan(got) and not expected) or got == pytest.approx(np.mean(expected)), contacts
    # Half of each 20-step stride in the air: 10 steps of swing, whatever the offsets.
    assert footfall.mean_swing_s(pattern(KNOWN["trot"]), DT) == pytest.approx(10 * DT)
    assert np.isnan(footfall.mean_swing_s(np.ones((50, 4), bool), DT))  # standing: no swing
    with pytest.raises(ValueError, match=r"expected \[T, 4\]"):
        footfall.mean_swing_s(np.ones((50, 3), bool), DT)


@pytest.mark.parametrize("name, low, high", [("trot0", 0.34, 0.40), ("trot1", 0.32, 0.36),
                                             ("pace0", 0.25, 0.28), ("pace1", 0.27, 0.30)])
def test_the_clips_swing_for_under_legged_gym_s_air_time_target(name, low, high):
    """The swings ``env.feet_air_time_target`` documents: every clip's are shorter than legged_gym's 0.5 s."""
    clip = load_clip(PROJECT_ROOT / "motion_data" / f"{name}.txt")
    contacts = gait.contacts_from_heights(gait.clip_foot_heights(clip.frames))
    assert low <= footfall.mean_swing_s(contacts, clip.frame_duration) <= high < rewards.AIR_TIME_TARGET


# ----------------------------------------------------------------------------------------------------------
# Sweep helpers


def test_sweep_speeds_costs_of_transport_and_majorities():
    np.testing.assert_allclose(sweep.sweep_speeds(1.2, 0.2), [0.2, 0.4, 0.6, 0.8, 1.0, 1.2])
    np.testing.assert_allclose(sweep.SweepSettings().speeds((0.0, 1.0)), [0.2, 0.4, 0.6, 0.8, 1.0])
    with pytest.raises(ValueError, match="speed sweep"):
        sweep.sweep_speeds(0.1, 0.2)
    assert sweep.cost_of_transport(np.full(10, 2.0), 2.0, 10.0) == pytest.approx(20.0 / (10 * 9.81 * 2))
    assert np.isnan(sweep.cost_of_transport(np.ones(10), 0.5 * sweep.MIN_COT_DISTANCE, 10.0))
    assert sweep.majority_gait(["trot", "pace", "trot"]) == "trot"
    assert sweep.majority_gait(["pace", "trot"]) == "trot"  # a tie goes to the earlier class
    assert sweep.majority_gait([]) == sweep.FELL


def test_path_length_follows_a_circle_that_horizontal_distance_does_not():
    angle = np.linspace(0.0, 2 * np.pi, 2001)
    circle = 0.5 * np.stack([np.cos(angle), np.sin(angle)], axis=1)  # one lap of a 0.5 m radius
    assert sweep.path_length(circle) == pytest.approx(np.pi, rel=1e-5)
    assert sweep.horizontal_distance(circle) == pytest.approx(0.0, abs=1e-12)
    line = np.stack([np.linspace(0.0, 3.0, 50), np.linspace(0.0, 4.0, 50)], axis=1)
    assert sweep.path_length(line) == pytest.approx(sweep.horizontal_distance(line)) == pytest.approx(5.0)


def test_sweep_plots_draw_every_class_and_gaps(tmp_path):
    speeds = np.array([0.2, 0.4, 0.6])
    nan = float("nan")
    path = plotting.plot_speed_sweep(speeds, np.array([0.15, 0.4, nan]), np.array([1.2, 0.9, nan]),
                                     np.array([0.8, 0.6, nan]), ["walk", "trot", sweep.FELL],
                                     tmp_path / "sweep.png", classes=footfall.GAIT_CLASSES)
    offsets = np.array([KNOWN["trot"], KNOWN["trot"], (nan,) * 4])
    phases = plotting.plot_footfall_phases(speeds, np.full((3, 4), 0.5), offsets, tmp_path / "phases.png",
                                           gaits=["walk", "trot", sweep.FELL])
    for p in (path, phases):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    with pytest.raises(ValueError, match="one per speed"):
        plotting.plot_speed_sweep(speeds, np.zeros(2), np.zeros(3), np.zeros(3), ["a"] * 3, tmp_path / "x.png")


# ----------------------------------------------------------------------------------------------------------
# Scripted open-loop gaits in the env

SCRIPTED = {  # footfall offsets FL, FR, RL, RR and stride frequency (Hz)
    "trot": (KNOWN["trot"], 3.0),
    "pace": (KNOWN["pace"], 3.5),
    "bound": (KNOWN["bound"], 3.0),
}
THIGH_SWING = 0.1
"""Amplitude of the thigh's fore-aft swing about its default angle (rad)."""
CALF_LIFT = 0.5
"""Largest extra knee flexion in swing (rad)."""
RAMP_S = (0.5, 1.0)
"""The swing amplitude ramps from 0 to full between these times (s): the robot first lands on its feet."""
SCRIPT_SETTLE_S, SCRIPT_MEASURE_S = 1.0, 2.0


def scripted_actions(offsets, frequency, steps, dt, action_scale):
    """Open-loop actions ``[steps, 12]``: leg ``i`` swings (calf folded by up to :data:`CALF_LIFT`, thigh moving
    forward) in the half stride after ``offsets[i]``, and is in stance, pushing back, in the other half; so it
    touches down at ``offsets[i] + ½``, and the touchdowns keep the offsets."""
    t = np.arange(steps)[:, None] * dt
    theta = 2.0 * np.pi * (frequency * t - np.asarray(offsets)[None, :])
    ramp = np.clip((t - RAMP_S[0]) / (RAMP_S[1] - RAMP_S[0]), 0.0, 1.0)
    delta = np.zeros((steps, 4, 3))
    delta[:, :, 1] = ramp * THIGH_SWING * np.cos(theta)  # a larger thigh angle moves the foot back
    delta[:, :, 2] = -ramp * CALF_LIFT * np.maximum(np.sin(theta), 0.0)
    return (delta.reshape(steps, 12) / action_scale).astype(np.float32)


@pytest.fixture(scope="module")
def scripted():
    """The three scripted gaits driven in the evaluation env (vmapped, one jit), with an independent log of the
    torque and joint velocity of every physics step: the same physics steps replayed from each control step's
    start, with the PD law written out here and clipped to the MJCF's motor control ranges."""
    from amp_jax.envs.a1_amp import A1AmpEnv

    cfg = load_config(["a1_trot"], [])
    env = A1AmpEnv(rollout.evaluation_env_config(cfg.env), None)
    dt, steps = env.cfg.control_dt, int(round((SCRIPT_SETTLE_S + SCRIPT_MEASURE_S) / env.cfg.control_dt))
    actions = jnp.asarray(np.stack([scripted_actions(o, f, steps, dt, env.cfg.action_scale)
                                    for o, f in SCRIPTED.values()]))
    geometry = jax.tree.map(jnp.asarray, base.leg_geometry(env.mj_model))
    default_q = jnp.asarray(env.cfg.default_joint_pos, jnp.float32)
    qpos0 = jnp.concatenate([jnp.array([0.0, 0.0, env.cfg.init_height, 1.0, 0.0, 0.0, 0.0]), default_q])
    low, high = (jnp.asarray(env.mj_model.actuator_ctrlrange[:, i], jnp.float32) for i in (0, 1))
    kp, kd = env.cfg.kp, env.cfg.kd

    def physics_step(target, d, _):
        torque = jnp.clip(kp * (target - d.qpos[7:]) - kd * d.qvel[6:], low, high)
        d = mjx.step(env.sys, d.replace(ctrl=torque))
        return d, (torque, d.qvel[6:])

    def control_step(state, action):
        start = state.pipeline_state
        state, work = env.step_with_work(state, action)
        target = default_q + env.cfg.action_scale * action
        replay, (torque, qvel) = jax.lax.scan(lambda d, x: physics_step(target, d, x), start, None,
                                              length=env.cfg.decimation)
        qpos = state.pipeline_state.qpos
        return state, {"qpos": qpos, "replay_qpos": replay.qpos, "torque": torque, "joint_vel": qvel,
                       "feet": rollout.foot_heights(geometry, qpos), "work": work,
                       "vx": base.base_lin_vel(qpos, state.pipeline_state.qvel)[0],
                       "terminated": (state.done > 0) & (state.info["truncation"] == 0)}

    @jax.jit
    def drive(actions):
        def one(acts):
            state = env.reset_to(jax.random.key(0), qpos0, jnp.zeros(env.mj_model.nv))
            return jax.lax.scan(control_step, state, acts)[1]
        return jax.vmap(one)(actions)

    log = jax.tree.map(np.asarray, drive(actions))
    settle = int(round(SCRIPT_SETTLE_S / dt))
    runs = {}
    for g, name in enumerate(SCRIPTED):
        row = jax.tree.map(lambda x, g=g: x[g, settle:], log)
        runs[name] = sweep.measure_run(np.zeros(steps - settle), row["vx"], row["feet"], row["qpos"][:, :2],
                                             row["work"], bool(np.any(log["terminated"][g])), env.robot_mass, dt)
    return {"env": env, "log": log, "settle": settle, "runs": runs}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCRIPTED))
def test_scripted_gaits_in_the_env_classify_as_constructed(scripted, name):
    run = scripted["runs"][name]
    offsets, frequency = SCRIPTED[name]
    assert not run.speed.fell, run
    assert run.footfalls.gait == name, run.footfalls
    assert run.footfalls.stride_hz == pytest.approx(frequency, rel=0.03)
    assert np.max(circular_error(run.footfalls.offsets, offsets)) < 0.1, run.footfalls
    assert run.distance > sweep.MIN_COT_DISTANCE and 0.5 < run.cot < 20.0 and run.cot_positive < run.cot


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCRIPTED))
def test_cost_of_transport_equals_numpy_from_logged_torques_and_velocities(scripted, name):
    log, settle, env = scripted["log"], scripted["settle"], scripted["env"]
    g = list(SCRIPTED).index(name)
    # the replay is the env's own physics
    np.testing.assert_allclose(log["replay_qpos"][g], log["qpos"][g], atol=1e-5)
    model = mujoco.MjModel.from_xml_path(str(PROJECT_ROOT / "mjcf" / "scene.xml"))
    mass, gravity = float(np.sum(model.body_mass)), float(np.linalg.norm(model.opt.gravity))
    assert env.robot_mass == pytest.approx(mass) and mass == pytest.approx(12.453)
    power = log["torque"][g].astype(np.float64) * log["joint_vel"][g].astype(np.float64)  # [T, decimation, 12]
    window = slice(settle + 1, None)  # the steps between the first and the last measured state
    xy = log["qpos"][g, settle:, :2].astype(np.float64)
    distance = np.hypot(*(xy[-1] - xy[0]))
    expected = np.sum(np.abs(power[window])) * model.opt.timestep / (mass * gravity * distance)
    expected_positive = np.sum(np.clip(power[window], 0.0, None)) * model.opt.timestep / (mass * gravity * distance)
    run = scripted["runs"][name]
    assert run.cot == pytest.approx(expected, rel=1e-6)
    assert run.cot_positive == pytest.approx(expected_positive, rel=1e-6)
