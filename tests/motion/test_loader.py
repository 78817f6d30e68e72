"""Host-side loading: conversion, validation errors and velocity repair, checked against the raw files."""

import json
import logging
import pathlib

import numpy as np
import pytest

from amp_jax import a1
from amp_jax.motion import layout, loader
from amp_jax.motion.loader import MotionDataError, load_clip

MOTION_DIR = pathlib.Path(__file__).resolve().parents[2] / "motion_data"
EXPECTED = {  # name: (frames, seconds, weight), from motion_data/README.md
    "trot0": (33, 0.672, 0.5), "trot1": (33, 0.672, 0.5), "pace0": (39, 0.798, 0.5),
    "pace1": (492, 10.311, 0.5), "leftturn0": (46, 0.945, 1.0), "rightturn0": (120, 2.499, 1.0),
}


def raw(name):
    return json.loads((MOTION_DIR / f"{name}.txt").read_text())


@pytest.fixture(scope="module")
def clips():
    return {name: load_clip(MOTION_DIR / f"{name}.txt", min_duration=0.03) for name in EXPECTED}


def test_real_clips_load_with_their_sizes(clips):
    for name, (frames, seconds, weight) in EXPECTED.items():
        clip = clips[name]
        assert clip.frames.shape == (frames, 61)
        assert clip.duration == pytest.approx(seconds, abs=1e-9)
        assert clip.weight == weight


def test_legs_are_reordered_to_fl_fr_rl_rr(clips):
    for name in EXPECTED:
        file_frames = np.asarray(raw(name)["Frames"])
        frames = clips[name].frames
        # File legs FR, FL, RR, RL: FL is the file's second leg, FR its first, RL its fourth, RR its third.
        for project_leg, file_leg in enumerate([1, 0, 3, 2]):
            for start in (7, 19, 49):  # joint pos, toe pos, toe vel (joint vel may be repaired: checked below)
                np.testing.assert_array_equal(frames[:, start + 3 * project_leg:start + 3 * project_leg + 3],
                                              file_frames[:, start + 3 * file_leg:start + 3 * file_leg + 3])
        feet = frames[:, layout.FOOT_POS].reshape(-1, 4, 3).mean(axis=0)
        # Physical check of the order: front feet ahead (x > 0), left feet on the left (y > 0).
        assert np.all(feet[[0, 1], 0] > 0.1) and np.all(feet[[2, 3], 0] < -0.1), name
        assert np.all(feet[[0, 2], 1] > 0.02) and np.all(feet[[1, 3], 1] < -0.02), name


def test_permutation_constant_matches_leg_names():
    data_legs = np.array(a1.DATA_LEG_ORDER)
    assert list(data_legs[a1.LEG_PERMUTATION_FROM_DATA]) == list(a1.LEG_NAMES)


def test_quaternions_become_wxyz_with_nonnegative_w(clips):
    for name in EXPECTED:
        xyzw = np.asarray(raw(name)["Frames"])[:, 3:7]
        wxyz = clips[name].frames[:, layout.ROOT_QUAT]
        assert np.all(wxyz[:, 0] >= 0)
        np.testing.assert_allclose(np.linalg.norm(wxyz, axis=1), 1.0, atol=1e-12)
        sign = np.sign(xyzw[:, 3])[:, None]
        np.testing.assert_allclose(wxyz, sign * xyzw[:, [3, 0, 1, 2]] / np.linalg.norm(xyzw, axis=1)[:, None])


def test_velocities_agree_with_pose_differences_after_repair(clips):
    for name, clip in clips.items():
        estimates = loader.forward_difference_velocities(clip.frames, clip.frame_duration)
        for quantity, columns in (("base_lin_vel", layout.BASE_LIN_VEL), ("base_ang_vel", layout.BASE_ANG_VEL),
                                  ("joint_vel", layout.JOINT_VEL)):
            error = np.abs(clip.frames[:-1, columns] - estimates[quantity]).max()
            assert error < 0.2, (name, quantity, error)


def test_the_sign_flip_glitch_of_rightturn0_is_repaired_and_reported_once(caplog):
    with caplog.at_level(logging.WARNING, logger="amp_jax.motion.loader"):
        clip = load_clip(MOTION_DIR / "rightturn0.txt")
    assert [(r.frame, r.quantity) for r in clip.repairs] == [(91, "base_ang_vel")]
    repair = clip.repairs[0]
    assert repair.before[1] == pytest.approx(234.51549)
    assert max(abs(x) for x in repair.after) < 3.0
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "rightturn0.txt, frame 91: base_ang_vel" in messages[0]
    # Neighbouring frames turn at about -1.5 rad/s: the repaired yaw rate sits between them.
    yaw = clip.frames[90:93, layout.BASE_ANG_VEL][:, 2]
    assert -1.7 < yaw[1] < -1.3 and abs(yaw[1] - yaw[0]) < 0.3


def write(tmp_path, data, name="clip.txt"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_planted_glitches_are_detected_and_reported(tmp_path):
    data = raw("trot0")
    frames = np.asarray(data["Frames"])
    frames[10, 3:7] *= -1  # quaternion sign flip in the pose: same rotation, must not be "repaired"
    frames[5, 37 + 3] += 40.0  # joint velocity spike in the file's leg 1 (FL) hip
    frames[20, 31] = 9.0  # forward velocity glitch
    clip = load_clip(write(tmp_path, {**data, "Frames": frames.tolist()}))
    assert [(r.frame, r.quantity) for r in clip.repairs] == [(5, "joint_vel"), (20, "base_lin_vel")]
    joint = clip.repairs[0]
    assert joint.before[0] == pytest.approx(frames[5, 40]) and joint.after[0] == pytest.approx(
        (frames[6, 10] - frames[5, 10]) / data["FrameDuration"])
    assert clip.repairs[1].before[0] == 9.0 and abs(clip.repairs[1].after[0] - 9.0) > 5


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("Frames"), "missing key(s) Frames"),
        (lambda d: d.pop("MotionWeight"), "missing key(s) MotionWeight"),
        (lambda d: d["Frames"][7].pop(), "frame 7: frame width 60: expected 61 numbers"),
        (lambda d: d["Frames"][3].append(0.0), "frame 3: frame width 62: expected 61 numbers"),
        (lambda d: d["Frames"][4].__setitem__(12, float("nan")), "frame 4: column 12 is nan: expected a finite"),
        (lambda d: d["Frames"][2].__setitem__(40, float("inf")), "frame 2: column 40 is inf: expected a finite"),
        (lambda d: d["Frames"][6].__setitem__(5, 0.5), "frame 6: root quaternion norm"),
        (lambda d: d.__setitem__("MotionWeight", 0.0), "MotionWeight = 0.0: expected a positive sampling weight"),
        (lambda d: d.__setitem__("MotionWeight", -1), "MotionWeight = -1: expected a positive"),
        (lambda d: d.__setitem__("FrameDuration", 0), "FrameDuration = 0: expected a positive number of seconds"),
        (lambda d: d.__setitem__("Frames", d["Frames"][:1]), "1 frames last 0 s: expected at least 2 frames"),
        (lambda d: d.__setitem__("Frames", d["Frames"][:2]), "2 frames last 0.021 s: expected at least 2 frames"),
        (lambda d: d.__setitem__("Frames", []), "Frames: expected a non-empty list"),
        (lambda d: d["Frames"][1].__setitem__(0, "x"), "frame 1: expected only numbers"),
    ],
)
def test_malformed_files_name_the_file_frame_and_expectation(tmp_path, mutate, message):
    data = raw("trot0")
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(MotionDataError) as err:
        load_clip(path, min_duration=0.03)
    assert str(path) in str(err.value) and message in str(err.value), str(err.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(MotionDataError, match=r"nope\.txt: file not found"):
        load_clip(tmp_path / "nope.txt")
    with pytest.raises(MotionDataError, match=r"bad\.txt: not valid JSON \(line 1"):
        load_clip(write(tmp_path, "{frames", "bad.txt"))
    with pytest.raises(MotionDataError, match="expected a JSON object"):
        load_clip(write(tmp_path, [1, 2], "list.txt"))
    with pytest.raises(MotionDataError, match="expected at least one motion file"):
        loader.load_clips([])
