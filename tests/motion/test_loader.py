"""Host-side loading: conversion, validation errors and velocity repair, checked against the raw files."""

import json
import logging
import pathlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


def test_reversed_clips_keep_velocities_the_forward_differences_of_their_own_poses(clips):
    # Independent of how the reversal is written: the reversed poses' finite differences against the reversed
    # clip's velocities, as the files' own velocities are checked above, on every real clip.
    for name, clip in clips.items():
        back = loader.reversed_clip(clip, 0.5)
        assert back.name == f"{name}_reversed" and back.weight == 0.5 * clip.weight
        np.testing.assert_array_equal(back.frames[:, :31], clip.frames[::-1, :31])  # poses in reverse order
        estimates = loader.forward_difference_velocities(back.frames, back.frame_duration)
        originals = loader.forward_difference_velocities(clip.frames, clip.frame_duration)
        for quantity, columns in (("base_lin_vel", layout.BASE_LIN_VEL), ("base_ang_vel", layout.BASE_ANG_VEL),
                                  ("joint_vel", layout.JOINT_VEL)):
            error = np.abs(back.frames[:-1, columns] - estimates[quantity]).max()
            own_error = np.abs(clip.frames[:-1, columns] - originals[quantity]).max()  # the file's own agreement
            # base-frame velocities are expressed one frame apart after the reversal: 0.02 m/s on these clips
            assert error < own_error + 0.03, (name, quantity, error, own_error)
        # The walk runs the other way: mean forward speed and yaw rate change sign.
        for columns in (slice(31, 32), slice(36, 37)):
            np.testing.assert_allclose(back.frames[:, columns].mean(), -clip.frames[:, columns].mean(), atol=0.05)
    assert loader.reversed_clip(clips["trot0"]).frames[:, 31].mean() < -1.0  # trot0 walks forward at ~1.17 m/s


def test_reversing_twice_gives_the_clip_back_but_the_last_frame_s_velocities(clips):
    clip = clips["pace0"]
    twice = loader.reversed_clip(loader.reversed_clip(clip))
    assert twice.name == "pace0_reversed_reversed"
    np.testing.assert_array_equal(twice.frames[:-1], clip.frames[:-1])
    np.testing.assert_array_equal(twice.frames[-1, :31], clip.frames[-1, :31])
    np.testing.assert_array_equal(twice.frames[-1, 31:], clip.frames[-2, 31:])  # frame T-2's forward difference


def test_with_reversed_appends_the_reversals_only_for_a_positive_weight(clips):
    pair = (clips["trot0"], clips["leftturn0"])
    assert loader.with_reversed(pair, 0.0) == pair
    names = [c.name for c in loader.with_reversed(pair, 0.5)]
    assert names == ["trot0", "leftturn0", "trot0_reversed", "leftturn0_reversed"]
    library = loader.load_motion_library([MOTION_DIR / "trot0.txt", MOTION_DIR / "leftturn0.txt"],
                                         dt_amp=0.03, reversed_weight=0.5)
    # file weights 0.5 and 1.0, reversals at half of each: probabilities 0.5, 1, 0.25, 0.5 over 2.25
    np.testing.assert_allclose(np.asarray(library.weights), np.array([0.5, 1.0, 0.25, 0.5]) / 2.25, rtol=1e-6)
    assert library.names[2:] == ("trot0_reversed", "leftturn0_reversed")


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
        (lambda d: d.__setitem__("FrameDuration", 0), "FrameDuration = 0: expected seconds per frame, 0.001 to 0.2"),
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


# ----------------------------------------------------------------------------------------------------------
# Physical plausibility, and fuzzing: a clip file either loads within the bounds or is the project's error.


def _write(tmp_path, data, name="clip.txt"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("frame, column, value, message", [
    (4, 2, 0.9 * 3, r"frame 4: column 2 \(root_pos_z\) is 2.7: expected 0.05 to 1 m"),
    (6, 9, -4.0, r"frame 6: column 9 \(joint_pos\[FR_calf\]\) is -4: expected -3.197 to -0.4163 rad"),
    (3, 22, 1.7, r"frame 3: column 22 \(foot_pos\[FL_x\]\) is 1.7: expected -1 to 1 m"),
])
def test_implausible_values_are_refused_with_frame_and_file_column(tmp_path, frame, column, value, message):
    data = raw("trot0")
    data["Frames"][frame][column] = value
    with pytest.raises(MotionDataError, match=message):
        load_clip(_write(tmp_path, data))


def test_implausible_jumps_frame_durations_and_weights_are_refused(tmp_path):
    data = raw("trot0")
    data["Frames"][8][0] += 0.5  # the root jumps 0.5 m in one 21 ms frame: 24 m/s
    with pytest.raises(MotionDataError, match=r"frame 7: column 0 \(root_pos_x\) is 2\d.\d+: expected 0 to 10 m/s"):
        load_clip(_write(tmp_path, data))
    for key, value, expected in (("FrameDuration", 2.1, "seconds per frame, 0.001 to 0.2"),
                                 ("FrameDuration", 1e-5, "seconds per frame"),
                                 ("MotionWeight", 1e30, "a positive sampling weight up to 100"),
                                 ("MotionWeight", 10 ** 400, "a positive sampling weight")):
        data = raw("trot0")
        data[key] = value
        with pytest.raises(MotionDataError, match=f"{key} = .*: expected {expected}"):
            load_clip(_write(tmp_path, data))
    # the file's column names follow its own leg order (FR first) and its x, y, z, w quaternion
    names = loader.file_column_names()
    assert len(names) == layout.FRAME_WIDTH and names[3:7] == tuple(f"root_quat_{a}" for a in "xyzw")
    assert names[7] == "joint_pos[FR_hip]" and names[60] == "foot_vel[RL_z]"


def test_files_that_are_not_text_or_json_clips(tmp_path):
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b'{"Frames": \xff\xfe}')
    with pytest.raises(MotionDataError, match=r"binary.txt: not UTF-8 text \(byte 11\)"):
        load_clip(binary)
    deep = tmp_path / "deep.txt"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(MotionDataError, match=r"deep.txt: not a readable JSON clip|deep.txt: expected a JSON"):
        load_clip(deep)
    data = raw("trot0")
    data["Frames"][2][5] = 10 ** 400
    with pytest.raises(MotionDataError, match=r"frame 2: a number beyond the float range"):
        load_clip(_write(tmp_path, data))


def _load_plausible_or_error(path):
    """The clip at ``path`` if it loads (then checked against the bounds), None if it is the project's error."""
    try:
        clip = load_clip(path)
    except MotionDataError as err:
        assert str(path) in str(err)
        return None
    frames = clip.frames
    assert np.all(np.isfinite(frames))
    assert np.all((frames[:, layout.ROOT_HEIGHT] >= loader.PLAUSIBLE_ROOT_HEIGHT[0])
                  & (frames[:, layout.ROOT_HEIGHT] <= loader.PLAUSIBLE_ROOT_HEIGHT[1]))
    assert np.allclose(np.linalg.norm(frames[:, layout.ROOT_QUAT], axis=-1), 1.0)
    assert loader.PLAUSIBLE_FRAME_DURATION[0] <= clip.frame_duration <= loader.PLAUSIBLE_FRAME_DURATION[1]
    return clip


TROT0_TEXT = (MOTION_DIR / "trot0.txt").read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.tuples(st.integers(0, len(TROT0_TEXT) - 1), st.integers(0, 255)), min_size=1, max_size=4),
       truncate=st.one_of(st.none(), st.integers(0, len(TROT0_TEXT) - 1)))
def test_fuzz_damaged_clip_bytes_load_plausibly_or_are_motion_data_errors(tmp_path, cuts, truncate):
    damaged = bytearray(TROT0_TEXT)
    for at, byte in cuts:
        damaged[at] = byte
    if truncate is not None:
        damaged = damaged[:truncate]
    path = tmp_path / "fuzzed.txt"
    path.write_bytes(bytes(damaged))
    _load_plausible_or_error(path)


NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 400, 10 ** 400),
                    st.floats(-5, 5), st.booleans(), st.none(), st.text(max_size=3), st.just([]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 32), st.integers(0, 60), NUMBERS), min_size=1, max_size=3),
       header=st.one_of(st.none(), st.tuples(st.sampled_from(["FrameDuration", "MotionWeight"]), NUMBERS)))
def test_fuzz_edited_clip_values_load_plausibly_or_are_motion_data_errors(tmp_path, edits, header):
    data = raw("trot0")
    for frame, column, value in edits:
        data["Frames"][frame][column] = value
    if header is not None:
        data[header[0]] = header[1]
    path = tmp_path / "edited.txt"
    try:
        path.write_text(json.dumps(data))
    except (ValueError, OverflowError):  # json refuses to write it: nothing to load
        return
    clip = _load_plausible_or_error(path)
    if clip is None:
        return
    for frame, column, _ in edits:  # what loaded is what the file says (file → project leg order)
        if column in range(layout.JOINT_POS.start, layout.JOINT_POS.stop):
            project = layout.JOINT_POS.start + int(np.flatnonzero(
                a1.JOINT_PERMUTATION_FROM_DATA == column - layout.JOINT_POS.start)[0])
            assert clip.frames[frame, project] == float(data["Frames"][frame][column])
