"""Gait-similarity metrics on synthetic contact patterns and on the real clips."""

import itertools

import mujoco
import numpy as np
import pytest

from amp_jax.analysis import gait
from amp_jax.config import PROJECT_ROOT
from amp_jax.motion import layout, load_clip

MOTION = PROJECT_ROOT / "motion_data"


def square_wave(num_frames: int, period: int, phase: float, duty: float = 0.5) -> np.ndarray:
    """Contact (True) during the first ``duty`` of each period, shifted by ``phase`` periods."""
    t = (np.arange(num_frames) / period + phase) % 1.0
    return t < duty


def gait_pattern(num_frames: int, phases: tuple[float, float, float, float], period: int = 20,
                 duty: float = 0.5) -> np.ndarray:
    """Contacts ``[T, 4]`` (FL, FR, RL, RR) with the given phase offset per leg."""
    return np.stack([square_wave(num_frames, period, p, duty) for p in phases], axis=1)


TROT = (0.0, 0.5, 0.5, 0.0)  # FL with RR, FR with RL
PACE = (0.0, 0.5, 0.0, 0.5)  # FL with RL, FR with RR


@pytest.fixture(scope="module")
def clips():
    return {name: load_clip(MOTION / f"{name}.txt").frames for name in ("trot0", "trot1", "pace0", "pace1")}


# ----------------------------------------------------------------------------------------------------------
# Synthetic contact patterns


def test_trot_against_trot_is_one_even_shifted_and_of_another_length():
    policy = gait_pattern(400, TROT)
    reference = gait_pattern(200, tuple(p + 0.3 for p in TROT))  # same gait, other start and length
    sim = gait.contact_pattern_similarity(policy, reference)
    assert sim.duty == pytest.approx(1.0)
    assert sim.phase == pytest.approx(1.0)
    assert sim.overall == pytest.approx(1.0)
    pairs = dict(zip(gait.pair_names(), sim.policy_phase))
    assert pairs["FL-RR"] == pytest.approx(1.0) and pairs["FR-RL"] == pytest.approx(1.0)
    assert pairs["FL-FR"] == pytest.approx(-1.0) and pairs["FL-RL"] == pytest.approx(-1.0)


def test_trot_against_pace_is_low_with_the_closed_form_score():
    sim = gait.contact_pattern_similarity(gait_pattern(400, TROT), gait_pattern(400, PACE))
    # Same duty factors; of the six pairs, four flip sign (|Δρ| = 2) and two (FL-FR, RL-RR) agree:
    # phase = 1 − (4·2/6)/2 = 1/3.
    assert sim.duty == pytest.approx(1.0)
    assert sim.phase == pytest.approx(1.0 / 3.0)
    assert sim.overall < 0.5


def test_duty_factor_mismatch_lowers_the_duty_score():
    policy = gait_pattern(400, TROT, duty=0.75)
    reference = gait_pattern(400, TROT, duty=0.5)
    np.testing.assert_allclose(gait.duty_factors(policy), 0.75)
    sim = gait.contact_pattern_similarity(policy, reference)
    assert sim.duty == pytest.approx(0.75)
    assert 0.0 <= sim.overall < 1.0


def test_phase_correlation_matches_numpy_corrcoef_and_handles_a_foot_that_never_lifts():
    rng = np.random.default_rng(0)
    contacts = rng.random((300, 4)) < np.array([0.3, 0.5, 0.6, 0.8])
    np.testing.assert_allclose(gait.phase_correlation(contacts), np.corrcoef(contacts.T.astype(float)), atol=1e-12)
    contacts[:, 2] = True
    corr = gait.phase_correlation(contacts)
    assert np.all(np.isfinite(corr))
    np.testing.assert_array_equal(corr[2, [0, 1, 3]], 0.0)
    assert corr[2, 2] == 1.0


def test_bad_contact_shapes_are_named():
    with pytest.raises(ValueError, match=r"expected \[T >= 2, 4\]"):
        gait.duty_factors(np.zeros((10, 3), bool))
    with pytest.raises(ValueError, match=r"expected \[T, 4\]"):
        gait.contacts_from_heights(np.zeros(10))


# ----------------------------------------------------------------------------------------------------------
# AMP-feature distance


def brute_force_distance(policy, reference, scale):
    """Plain Python loops over every pair (independent of the vectorised version)."""
    def nearest(a, b):
        total = 0.0
        for x in a:
            total += min(np.sqrt(np.sum(((x - y) / scale) ** 2) / len(scale)) for y in b)
        return total / len(a)
    return nearest(policy, reference), nearest(reference, policy)


def test_feature_distance_matches_a_python_loop():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(37, 5)) * np.array([1.0, 0.1, 3.0, 1e-4, 2.0])
    policy = rng.normal(size=(23, 5))
    dist = gait.amp_feature_distance(policy, reference)
    scale = np.maximum(reference.std(axis=0), gait.FEATURE_STD_FLOOR)
    expected = brute_force_distance(policy, reference, scale)
    assert dist.policy_to_reference == pytest.approx(expected[0], rel=1e-9)
    assert dist.reference_to_policy == pytest.approx(expected[1], rel=1e-9)
    assert dist.symmetric == pytest.approx(sum(expected) / 2, rel=1e-9)


def test_feature_distance_is_zero_on_the_reference_and_grows_with_an_offset():
    rng = np.random.default_rng(2)
    reference = rng.normal(size=(50, 4))
    assert gait.amp_feature_distance(reference, reference).symmetric == pytest.approx(0.0, abs=1e-7)
    # Shifting every frame by 3 σ in all features: every nearest neighbour is at most 3 (RMS z-score) away.
    scale = reference.std(axis=0)
    shifted = reference + 3.0 * scale
    d = gait.amp_feature_distance(shifted, reference)
    assert 0.5 < d.policy_to_reference <= 3.0 + 1e-9


def test_collapsed_policy_is_caught_by_the_coverage_direction():
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(200, 3))
    collapsed = np.repeat(reference[:1], 100, axis=0)  # always the same reference pose
    d = gait.amp_feature_distance(collapsed, reference)
    assert d.policy_to_reference == pytest.approx(0.0, abs=1e-7)
    assert d.reference_to_policy > 0.5


# ----------------------------------------------------------------------------------------------------------
# Real clips


def test_clip_foot_heights_match_mujoco_forward_kinematics(clips):
    """Independent check: put each frame's pose into the MJCF and read the foot sites' world heights."""
    model = mujoco.MjModel.from_xml_path(str(PROJECT_ROOT / "mjcf" / "scene.xml"))
    data = mujoco.MjData(model)
    sites = [model.site(f"{leg}_foot").id for leg in ("FL", "FR", "RL", "RR")]
    frames = clips["trot0"]
    expected = []
    for frame in frames:
        data.qpos[:] = np.concatenate([frame[layout.ROOT_POS], frame[layout.ROOT_QUAT], frame[layout.JOINT_POS]])
        mujoco.mj_kinematics(model, data)
        expected.append(data.site_xpos[sites, 2].copy())
    np.testing.assert_allclose(gait.clip_foot_heights(frames), np.array(expected), atol=1e-4)


def test_clip_amp_frames_equal_the_device_features(clips):
    from amp_jax.motion import amp_features

    frames = clips["pace0"]
    np.testing.assert_allclose(gait.clip_amp_frames(frames), np.asarray(amp_features(frames)), atol=1e-5)


def test_trot_clips_are_more_alike_than_trot_and_pace(clips):
    contacts = {n: gait.contacts_from_heights(gait.clip_foot_heights(f)) for n, f in clips.items()}
    trot_trot = gait.contact_pattern_similarity(contacts["trot1"], contacts["trot0"])
    trot_pace = gait.contact_pattern_similarity(contacts["pace0"], contacts["trot0"])
    assert trot_trot.overall > trot_pace.overall + 0.15
    assert trot_trot.phase > trot_pace.phase
    # The trot clips really trot: both diagonal pairs in phase, both lateral pairs in anti-phase.
    for name in ("trot0", "trot1"):
        pairs = dict(zip(gait.pair_names(), gait.contact_pattern_similarity(contacts[name], contacts[name])
                         .policy_phase))
        assert pairs["FL-RR"] > 0.4 and pairs["FR-RL"] > 0.4
        assert pairs["FL-RL"] < -0.3 and pairs["FR-RR"] < -0.3

    amp = {n: gait.clip_amp_frames(f) for n, f in clips.items()}
    assert (gait.amp_feature_distance(amp["trot1"], amp["trot0"]).symmetric
            < gait.amp_feature_distance(amp["pace0"], amp["trot0"]).symmetric)


def test_gait_similarity_dict_of_a_clip_against_itself(clips):
    frames = clips["trot0"]
    contacts = gait.contacts_from_heights(gait.clip_foot_heights(frames))
    result = gait.gait_similarity(gait.clip_amp_frames(frames), contacts, [frames, clips["trot1"]], frames)
    assert result["amp_feature_distance"]["policy_to_reference"] == pytest.approx(0.0, abs=1e-6)
    assert result["contact"]["overall"] == pytest.approx(1.0)
    assert set(result["contact"]["policy_phase"]) == set(gait.pair_names())
    for a, b in itertools.combinations(("FL", "FR", "RL", "RR"), 2):
        assert f"{a}-{b}" in result["contact"]["reference_phase"]


def test_contacts_from_foot_heights_by_hand():
    foot_z = np.array([[0.010, 0.050, 0.029, 0.031],
                       [0.030, 0.020, 0.100, -0.002],
                       [0.080, 0.080, 0.000, 0.015]])
    expected = np.array([[True, False, True, False],
                         [False, True, False, True],
                         [False, False, True, True]])
    np.testing.assert_array_equal(gait.contacts_from_heights(foot_z, 0.03), expected)
    np.testing.assert_allclose(gait.duty_factors(expected), [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    with pytest.raises(ValueError, match=r"foot heights have shape \(3, 3\): expected \[T, 4\]"):
        gait.contacts_from_heights(foot_z[:, :3], 0.03)


def test_reference_trot_has_diagonal_pairs():
    """In the trot clip, diagonal feet (FL+RR, FR+RL) touch down together and lateral pairs alternate."""
    clip = load_clip(PROJECT_ROOT / "motion_data" / "trot0.txt")
    contacts = gait.contacts_from_heights(gait.clip_foot_heights(clip.frames), 0.03)
    c = contacts.astype(float)
    agree = lambda a, b: float(np.mean(c[:, a] == c[:, b]))  # noqa: E731
    fl, fr, rl, rr = range(4)
    assert agree(fl, rr) > 0.7 and agree(fr, rl) > 0.7
    assert agree(fl, fr) < 0.5 and agree(rl, rr) < 0.5
    assert np.all((gait.duty_factors(contacts) > 0.2) & (gait.duty_factors(contacts) < 0.8))
