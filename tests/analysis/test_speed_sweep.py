"""The speed sweep's measurements: synthetic gaits of known pattern, the real clips, and the training probe."""

import json

import numpy as np
import pytest
from conftest import TINY_RUN_OVERRIDES

from amp_jax.analysis import footfall, gait, speed
from amp_jax.config import PROJECT_ROOT
from amp_jax.motion.loader import load_clip

STANCE, SWING = 0.02, 0.08  # foot-sphere centre heights (m): on the floor, lifted


def scripted_heights(stance_phase: np.ndarray, steps: int = 200, period: int = 20, duty: float = 0.5) -> np.ndarray:
    """Foot heights ``[steps, 4]`` of feet whose stance starts at ``stance_phase [4]`` (fraction of a period)."""
    t = (np.arange(steps)[:, None] / period - stance_phase[None, :]) % 1.0
    return np.where(t < duty, STANCE, SWING)


TROT = np.array([0.0, 0.5, 0.5, 0.0])  # FL, FR, RL, RR: diagonals together
PACE = np.array([0.0, 0.5, 0.0, 0.5])  # lateral pairs (FL-RL, FR-RR) together


def test_measure_of_a_scripted_trot_matches_its_construction():
    vx = np.full(200, 0.7) + 0.1 * np.sin(np.arange(200))
    result = speed.measure(np.full(200, 0.8), vx, scripted_heights(TROT), fell=False)
    assert result.duty == pytest.approx((0.5,) * 4)
    assert result.diagonal_phi == pytest.approx((1.0, 1.0))
    assert result.lateral_phi == pytest.approx((-1.0, -1.0))
    assert result.achieved == pytest.approx(np.mean(vx))
    assert result.vx_rms == pytest.approx(np.sqrt(np.mean((0.8 - vx) ** 2)))
    verdict = speed.trot_verdict(result, contact_similarity=0.9)
    assert verdict["criteria"] == {"no_fall": True, "vx_rms": True, "duty_factor": True, "diagonal_in_phase": True,
                                   "lateral_alternating": True, "contact_similarity": True}
    assert verdict["trots"]


def test_a_pace_a_stand_and_a_fall_are_not_trots():
    pace = speed.measure(np.full(200, 0.8), np.full(200, 0.8), scripted_heights(PACE), fell=False)
    assert pace.diagonal_phi == pytest.approx((-1.0, -1.0))
    verdict = speed.trot_verdict(pace, None)
    assert not verdict["trots"] and not verdict["criteria"]["diagonal_in_phase"]
    assert "contact_similarity" not in verdict["criteria"]
    stand = speed.measure(np.full(200, 0.8), np.zeros(200), np.full((200, 4), STANCE), fell=False)
    assert stand.duty == (1.0,) * 4 and stand.vx_rms == pytest.approx(0.8)
    assert not speed.trot_verdict(stand, None)["trots"]
    fallen = speed.measure(np.full(200, 0.8), np.full(200, 0.8), scripted_heights(TROT), fell=True)
    assert speed.trot_verdict(fallen, None)["criteria"]["no_fall"] is False


@pytest.mark.parametrize("name", ["trot0", "trot1", "pace0", "pace1"])
def test_the_clips_contact_patterns_are_what_their_names_say(name):
    clip = load_clip(PROJECT_ROOT / "motion_data" / f"{name}.txt")
    heights = gait.clip_foot_heights(clip.frames)
    vx = clip.frames[:, 31]  # stored base-frame forward velocity
    result = speed.measure(np.full(len(vx), float(np.mean(vx))), vx, heights, fell=False)
    criteria = speed.trot_verdict(result, None)["criteria"]
    assert criteria["diagonal_in_phase"] == name.startswith("trot"), result
    assert criteria["lateral_alternating"], result  # both gaits alternate left and right


def test_sweep_commands_hold_each_speed():
    commands = speed.sweep_commands([0.4, 0.8], 1.0, 0.03)
    assert commands.shape == (2, 33, 3)
    assert np.all(commands[0, :, 0] == np.float32(0.4)) and np.all(commands[1, :, 0] == np.float32(0.8))
    assert np.all(commands[..., 1:] == 0)


@pytest.mark.slow
def test_the_training_probe_measures_the_deterministic_policy():
    """The probe the training loop runs (its hook is tested with the loop, ``tests/training/test_trainer.py``), on a
    fresh policy of the tiny run's networks."""
    import jax

    from amp_jax.agents import networks
    from amp_jax.config import load_config
    from amp_jax.envs import observations
    from amp_jax.motion import load_motion_library
    from amp_jax.training import run_setup

    cfg = load_config(["a1_trot", "cpu.yaml"], [*TINY_RUN_OVERRIDES, "train.probe_interval=2",
                                                 "train.probe_forward_speeds=[0.5, 1.0]",
                                                 "train.probe_commands=[[0.5, 0, 1], [0.3, -0.3, 0]]"])
    motion = load_motion_library(cfg.motion.resolved_files(), dt_amp=cfg.env.control_dt)
    probe = run_setup.make_policy_probe(cfg, motion)
    nets = networks.make_networks(cfg.networks, observations.NUM_ACTIONS)
    params = networks.init_params(nets, jax.random.key(0), observations.policy_obs_size(cfg.env),
                                  observations.critic_obs_size(cfg.env), observations.AMP_OBS_SIZE)
    metrics = probe(params)
    assert {"probe/vx_rms", "probe/fell", "probe/duty", "probe/diagonal_phi", "probe/lateral_phi",
            "probe/achieved_0.5", "probe/achieved_1", "probe/contact_similarity"} <= set(metrics)
    # An untrained policy does not track 0.5 and 1.0 m/s: the RMS error is of the order of the commands.
    assert 0.2 < metrics["probe/vx_rms"] < 2.0
    assert 0.0 <= metrics["probe/duty"] <= 1.0 and 0.0 <= metrics["probe/contact_similarity"] <= 1.0
    # ... nor turns or side-steps: the errors are about the commands' sizes (yaw 1 and 0, v_y 0 and 0.3)
    assert {"probe/vy_rms", "probe/yaw_rms", "probe/yaw_0.5_0_1", "probe/vy_0.3_-0.3_0"} <= set(metrics)
    assert 0.3 < metrics["probe/yaw_rms"] < 1.0 and 0.08 < metrics["probe/vy_rms"] < 0.5
    assert abs(metrics["probe/yaw_0.5_0_1"]) < 0.5
    # the mean action's energy at each forward speed: NaN where it fell or stood, else a positive cost
    for key in ("probe/cot_positive_0.5", "probe/cot_positive_1", "probe/cot_positive"):
        assert np.isnan(metrics[key]) or metrics[key] > 0.0
    # its stride, from the feet's contact forces: NaN where it fell or no foot changed contact, else in the band
    for key in ("probe/stride_hz_0.5", "probe/stride_hz_1", "probe/stride_hz"):
        assert np.isnan(metrics[key]) or footfall.MIN_STRIDE_HZ <= metrics[key] <= footfall.MAX_STRIDE_HZ
    json.dumps(metrics)  # plain numbers, as the metrics log writes them


def test_probe_cost_of_transport_matches_a_plain_loop():
    """Σ positive work after the window's first state / (m g ‖xy_last − xy_first‖), NaN for a fall, and the mean
    over the speeds that have one."""
    rng = np.random.default_rng(1)
    steps, mass = 40, 12.5
    base_xy = np.cumsum(rng.uniform(0.0, 0.03, size=(3, steps, 2)), axis=1)
    work = rng.uniform(0.0, 2.0, size=(3, steps))
    fell = np.array([False, False, True])
    metrics = speed.probe_cot_metrics([0.4, 0.8, 1.2], base_xy, work, fell, mass)
    expected = []
    for k in range(2):
        total = sum(work[k, t] for t in range(1, steps))
        distance = np.hypot(*(base_xy[k, -1] - base_xy[k, 0]))
        expected.append(total / (mass * 9.81 * distance))
    assert metrics["probe/cot_positive_0.4"] == pytest.approx(expected[0])
    assert metrics["probe/cot_positive_0.8"] == pytest.approx(expected[1])
    assert np.isnan(metrics["probe/cot_positive_1.2"])
    assert metrics["probe/cot_positive"] == pytest.approx(np.mean(expected))
    standing = speed.probe_cot_metrics([0.4], np.zeros((1, steps, 2)), work[:1], np.array([False]), mass)
    assert np.isnan(standing["probe/cot_positive_0.4"]) and np.isnan(standing["probe/cot_positive"])


def test_probe_stride_comes_from_the_contact_forces():
    """Feet pushed in a known rhythm (diagonal pairs alternating, 2.5 and 1.5 Hz; 60 N in stance, 0.3 N of solver
    residue in swing, below the contact threshold): the probe reads those frequencies; a fall and a stand read
    NaN and are left out of the mean."""
    dt, steps = 0.03, 200
    t = np.arange(steps) * dt

    def trot_forces(hz):
        first_pair = (np.sin(2 * np.pi * hz * t) > 0)[:, None]
        down = np.concatenate([first_pair, ~first_pair, ~first_pair, first_pair], axis=1)  # FL, FR, RL, RR
        return np.where(down, 60.0, 0.3)

    forces = np.stack([trot_forces(2.5), trot_forces(1.5), trot_forces(2.0), np.full((steps, 4), 40.0)])
    fell = np.array([False, False, True, False])
    metrics = speed.probe_stride_metrics([0.4, 0.8, 1.2, 1.6], forces, fell, dt)
    resolution = 1.0 / (steps * dt)  # one bin of the window's own spectrum; zero-padding locates the peak finer
    assert metrics["probe/stride_hz_0.4"] == pytest.approx(2.5, abs=0.1 * resolution)
    assert metrics["probe/stride_hz_0.8"] == pytest.approx(1.5, abs=0.1 * resolution)
    assert np.isnan(metrics["probe/stride_hz_1.2"]) and np.isnan(metrics["probe/stride_hz_1.6"])
    assert metrics["probe/stride_hz"] == pytest.approx((metrics["probe/stride_hz_0.4"]
                                                        + metrics["probe/stride_hz_0.8"]) / 2)
    assert np.isnan(speed.probe_stride_metrics([0.4], forces[3:], fell[3:], dt)["probe/stride_hz"])


def test_command_tracking_metrics_match_a_plain_loop():
    rng = np.random.default_rng(0)
    commands = np.array([[0.5, 0.0, 1.0], [0.3, -0.3, 0.0]])
    measured = rng.normal(size=(2, 50, 3))
    metrics = speed.command_tracking_metrics(commands, measured)
    for axis, key in ((1, "probe/vy_rms"), (2, "probe/yaw_rms")):
        per_command = []
        for k in range(2):
            per_command.append(np.sqrt(sum((measured[k, t, axis] - commands[k, axis]) ** 2 for t in range(50)) / 50))
        assert metrics[key] == pytest.approx(np.mean(per_command))
    assert metrics["probe/yaw_0.5_0_1"] == pytest.approx(np.mean(measured[0, :, 2]))
    assert metrics["probe/vy_0.3_-0.3_0"] == pytest.approx(np.mean(measured[1, :, 1]))
    assert metrics["probe/vx_0.3_-0.3_0"] == pytest.approx(np.mean(measured[1, :, 0]))
