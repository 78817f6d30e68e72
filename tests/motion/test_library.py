"""Device-side sampling and interpolation, against NumPy, SciPy's slerp, closed forms and the real clips."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation, Slerp

from amp_jax.motion import layout, library, loader

MOTION_DIR = pathlib.Path(__file__).resolve().parents[2] / "motion_data"
NAMES = ["trot0", "trot1", "pace0", "pace1", "leftturn0", "rightturn0"]
DT_AMP = 0.03


@pytest.fixture(scope="module")
def clips():
    return loader.load_clips([MOTION_DIR / f"{n}.txt" for n in NAMES], min_duration=DT_AMP)


@pytest.fixture(scope="module")
def lib(clips):
    return library.MotionLibrary.from_clips(clips)


frame_at_batch = jax.jit(jax.vmap(library.frame_at, in_axes=(None, 0, 0)))


def numpy_frame_at(clip, time):
    """Independent reference: linear interpolation per column, SciPy's slerp for the quaternion."""
    frames, dt = clip.frames, clip.frame_duration
    position = np.clip(time, 0, clip.duration) / dt
    i = min(int(np.floor(position)), clip.num_frames - 2)
    alpha = min(max(position - i, 0.0), 1.0)  # rounding of t = duration can put position a hair past the end
    out = (1 - alpha) * frames[i] + alpha * frames[i + 1]
    rotations = Rotation.from_quat(frames[i:i + 2, layout.ROOT_QUAT][:, [1, 2, 3, 0]])
    xyzw = Slerp([0.0, 1.0], rotations)([alpha]).as_quat()[0]
    wxyz = xyzw[[3, 0, 1, 2]]
    out[layout.ROOT_QUAT] = wxyz if wxyz[0] >= 0 else -wxyz
    return out


def test_exact_frame_times_return_the_frames(clips, lib):
    for c, clip in enumerate(clips):
        times = np.arange(clip.num_frames) * clip.frame_duration
        got = frame_at_batch(lib, jnp.full(len(times), c), jnp.asarray(times, jnp.float32))
        # float32 times near 10 s (pace1) resolve ~1e-6 s: a frame may be reached from its left neighbour with
        # alpha = 1 - 1e-5, which moves the fastest channels (~20 units/s) by ~1e-4.
        np.testing.assert_allclose(got, clip.frames, atol=3e-4 if clip.duration > 5 else 2e-5, rtol=1e-5,
                                   err_msg=clip.name)


def test_between_frames_equals_numpy_and_scipy(clips, lib):
    rng = np.random.default_rng(0)
    for c, clip in enumerate(clips):
        times = rng.uniform(0, clip.duration, 64)
        got = np.asarray(frame_at_batch(lib, jnp.full(64, c), jnp.asarray(times, jnp.float32)))
        want = np.stack([numpy_frame_at(clip, t) for t in times.astype(np.float32)])
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4, err_msg=clip.name)


def test_times_outside_the_clip_are_clamped(clips, lib):
    got = frame_at_batch(lib, jnp.array([0, 0]), jnp.array([-1.0, 100.0]))
    np.testing.assert_allclose(got[0], clips[0].frames[0], atol=1e-6)
    np.testing.assert_allclose(got[1], clips[0].frames[-1], atol=1e-5)


def axis_angle_quat(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])


@pytest.mark.parametrize("a, b", [(0.3, 1.2), (-2.0, 2.5), (0.1, 0.1 + 1e-8), (3.0, -3.0)])
def test_slerp_equals_the_closed_form_rotation_about_one_axis(a, b):
    axis = [0.3, -0.5, 0.8]
    q0, q1 = axis_angle_quat(axis, a), axis_angle_quat(axis, b)
    # The shorter arc: the angle difference wrapped to (-pi, pi].
    delta = (b - a + np.pi) % (2 * np.pi) - np.pi
    for alpha in (0.0, 0.25, 0.5, 0.9, 1.0):
        want = axis_angle_quat(axis, a + alpha * delta)
        want = want if want[0] >= 0 else -want
        got = library.slerp(jnp.asarray(q0, jnp.float32), jnp.asarray(q1, jnp.float32), alpha)
        np.testing.assert_allclose(got, want, atol=2e-6)


def random_clip(seed, num_frames):
    rng = np.random.default_rng(seed)
    frames = rng.normal(size=(num_frames, 61))
    quats = rng.normal(size=(num_frames, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    frames[:, layout.ROOT_QUAT] = np.where(quats[:, :1] < 0, -quats, quats)
    return loader.Clip("random", "random", frames, float(rng.uniform(0.005, 0.05)), 1.0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), num_frames=st.integers(2, 12),
       fractions=st.lists(st.floats(0.0, 1.0), min_size=8, max_size=8))
def test_property_random_clips_and_times_match_numpy(seed, num_frames, fractions):
    clip = random_clip(seed, num_frames)
    lib = library.MotionLibrary.from_clips([clip])
    times = np.asarray(fractions) * clip.duration
    got = np.asarray(frame_at_batch(lib, jnp.zeros(8, jnp.int32), jnp.asarray(times, jnp.float32)))
    want = np.stack([numpy_frame_at(clip, t) for t in times.astype(np.float32)])
    np.testing.assert_allclose(got, want, atol=2e-4, rtol=2e-4)
    quats = got[:, layout.ROOT_QUAT]
    np.testing.assert_allclose(np.linalg.norm(quats, axis=1), 1.0, atol=1e-5)
    assert np.all(quats[:, 0] >= 0)


def test_amp_features_layout(clips):
    frames = clips[0].frames
    features = library.amp_features(frames)
    assert features.shape == (frames.shape[0], 43)
    np.testing.assert_array_equal(features[:, :42], frames[:, 7:49])
    np.testing.assert_array_equal(features[:, 42], frames[:, 2])


def test_clip_frequencies_follow_the_weights(lib):
    n = 200_000
    s, _ = jax.jit(library.sample_expert_transitions, static_argnums=(2, 3))(lib, jax.random.key(3), n, DT_AMP)
    clip, _ = library._clip_and_fraction(lib, jax.random.key(3), (n,))
    counts = np.bincount(np.asarray(clip), minlength=lib.num_clips) / n
    weights = np.asarray(lib.weights)
    np.testing.assert_allclose(weights, [0.125] * 4 + [0.25] * 2, rtol=1e-6)
    # 5 binomial standard deviations (at most 0.0050 here).
    np.testing.assert_allclose(counts, weights, atol=5 * np.sqrt(0.25 * 0.75 / n))
    assert s.shape == (n, 43)


def test_expert_transitions_are_the_same_clip_dt_apart_and_inside_it(clips, lib):
    n = 4096
    key = jax.random.key(11)
    s, s_next = library.sample_expert_transitions(lib, key, n, DT_AMP)
    clip, fraction = library._clip_and_fraction(lib, key, (n,))
    clip, fraction = np.asarray(clip), np.asarray(fraction, np.float64)
    durations = np.array([c.duration for c in clips])
    time = fraction * (durations[clip] - DT_AMP)
    assert np.all(time >= 0) and np.all(time + DT_AMP <= durations[clip] + 1e-6)
    # Uniform times: the fraction's deciles are flat (5 binomial standard deviations).
    np.testing.assert_allclose(np.histogram(fraction, bins=10, range=(0, 1))[0] / n, 0.1, atol=5 * np.sqrt(0.09 / n))
    want_s = np.stack([library.amp_features(numpy_frame_at(clips[c], t)) for c, t in zip(clip, time)])
    want_next = np.stack([library.amp_features(numpy_frame_at(clips[c], t + DT_AMP)) for c, t in zip(clip, time)])
    np.testing.assert_allclose(s, want_s, atol=2e-4, rtol=1e-4)
    np.testing.assert_allclose(s_next, want_next, atol=2e-4, rtol=1e-4)


def test_expert_transitions_are_physically_consistent(lib):
    """On the real data, joint positions move by about dt_amp × joint velocity between s and s_next."""
    s, s_next = library.sample_expert_transitions(lib, jax.random.key(5), 20_000, DT_AMP)
    s, s_next = np.asarray(s), np.asarray(s_next)
    predicted = s_next[:, :12] - s[:, :12]
    from_velocity = DT_AMP * 0.5 * (s[:, 30:42] + s_next[:, 30:42])
    residual = np.abs(predicted - from_velocity)
    assert np.median(residual) < 0.01 and np.median(np.abs(predicted)) > 0.02


def test_replayed_transitions_are_the_clip_played_faster(clips, lib):
    """At rate r, s is the clip at t and s_next at t + r·dt, with the velocity features × r (NumPy's
    interpolation); rate 1 gives the expert transitions bit for bit; on the real data the replayed joints move by
    dt × their replayed velocity, the physics of the faster clip."""
    n = 600
    rng = np.random.default_rng(4)
    clip = rng.integers(0, len(clips), n)
    rate = rng.choice([0.5, 2.0, 3.0], n)
    durations = np.array([c.duration for c in clips])
    time = rng.uniform(0, 1, n) * (durations[clip] - rate * DT_AMP)
    args = (jnp.asarray(clip, jnp.int32), jnp.asarray(time, jnp.float32))
    s, s_next = library.replayed_transitions(lib, *args, jnp.asarray(rate, jnp.float32), DT_AMP)
    scale = np.ones((n, layout.AMP_OBS_SIZE))
    scale[:, layout.AMP_RATES] = rate[:, None]
    want_s = np.stack([library.amp_features(numpy_frame_at(clips[c], t)) for c, t in zip(clip, time)]) * scale
    want_next = np.stack([library.amp_features(numpy_frame_at(clips[c], t + r * DT_AMP))
                          for c, t, r in zip(clip, time, rate)]) * scale
    np.testing.assert_allclose(s, want_s, atol=6e-4, rtol=1e-4)
    np.testing.assert_allclose(s_next, want_next, atol=6e-4, rtol=1e-4)
    assert layout.AMP_RATES == slice(24, 42)  # base lin vel, base ang vel, joint vel
    # the joints' step against the replayed velocity: consistent at every rate
    residual = np.abs((s_next[:, :12] - s[:, :12]) - DT_AMP * 0.5 * (s[:, 30:42] + s_next[:, 30:42]))
    for r in (0.5, 2.0, 3.0):
        assert np.median(residual[rate == r]) < 0.01 * r, r
    one = jnp.ones(n, jnp.float32)
    expert = (library._amp_features_at(lib, *args), library._amp_features_at(lib, args[0], args[1] + DT_AMP))
    for got, want in zip(library.replayed_transitions(lib, *args, one, DT_AMP), expert):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_sampled_replays_draw_the_given_rates_inside_the_clip(clips, lib):
    n, rates = 4000, (2.0, 3.0)
    key = jax.random.key(8)
    s, s_next = jax.jit(library.sample_replayed_transitions, static_argnums=(2, 3, 4))(lib, key, n, DT_AMP, rates)
    k_clip, k_rate = jax.random.split(key)
    rate = np.asarray(rates)[np.asarray(jax.random.randint(k_rate, (n,), 0, len(rates)))]
    clip, fraction = (np.asarray(x) for x in library._clip_and_fraction(lib, k_clip, (n,)))
    durations = np.array([c.duration for c in clips])
    time = fraction * (durations[clip] - rate * DT_AMP)
    assert np.all(time >= 0) and np.all(time + rate * DT_AMP <= durations[clip] + 1e-6)
    assert abs(np.mean(rate == 2.0) - 0.5) < 5 * np.sqrt(0.25 / n)
    time32 = jnp.asarray(fraction) * jnp.maximum(lib.duration[clip] - jnp.asarray(rate, jnp.float32) * DT_AMP, 0.0)
    want = library.replayed_transitions(lib, jnp.asarray(clip), time32, jnp.asarray(rate, jnp.float32), DT_AMP)
    np.testing.assert_allclose(s, want[0], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(s_next, want[1], rtol=1e-5, atol=1e-4)


def test_reset_frames_cover_the_whole_clip(clips, lib):
    frames = jax.jit(library.sample_frames, static_argnums=2)(lib, jax.random.key(2), 3000)
    assert frames.shape == (3000, 61)
    single = library.sample_frames(lib, jax.random.key(2))
    assert single.shape == (61,)
    np.testing.assert_allclose(np.linalg.norm(frames[:, layout.ROOT_QUAT], axis=1), 1.0, atol=1e-5)
    # Every sampled root height lies inside the range of some clip's heights.
    heights = np.concatenate([c.frames[:, 2] for c in clips])
    assert heights.min() - 1e-5 <= float(frames[:, 2].min()) and float(frames[:, 2].max()) <= heights.max() + 1e-5


def test_each_clips_mean_command_is_its_mean_velocity_and_the_sampler_names_the_clip(clips, lib):
    # Independent: each clip's forward/lateral speed from its root's world displacement, turned into the
    # heading frame of every frame; the yaw rate from the unwrapped heading angle over the clip's duration.
    for clip, command in zip(clips, np.asarray(lib.mean_command)):
        pos, quat = clip.frames[:, layout.ROOT_POS], clip.frames[:, layout.ROOT_QUAT]
        heading = np.unwrap(Rotation.from_quat(quat[:, [1, 2, 3, 0]]).as_euler("ZYX")[:, 0])
        step = np.diff(pos[:, :2], axis=0) / clip.frame_duration
        c, s = np.cos(heading[:-1]), np.sin(heading[:-1])
        forward, lateral = c * step[:, 0] + s * step[:, 1], -s * step[:, 0] + c * step[:, 1]
        yaw_rate = (heading[-1] - heading[0]) / clip.duration
        np.testing.assert_allclose(command, [forward.mean(), lateral.mean(), yaw_rate], atol=0.12,
                                   err_msg=clip.name)
    by_name = dict(zip(lib.names, np.asarray(lib.mean_command)))
    assert by_name["trot0"][0] > 1.0 and by_name["pace0"][0] > 0.5 and by_name["leftturn0"][2] > 1.0
    frames, clip_index = jax.jit(library.sample_frames_and_clips, static_argnums=2)(lib, jax.random.key(4), 500)
    np.testing.assert_allclose(frames, library.sample_frames(lib, jax.random.key(4), 500), atol=1e-6)
    for frame, i in zip(np.asarray(frames[:50]), np.asarray(clip_index[:50])):  # between two frames of its clip
        joints = clips[int(i)].frames[:, layout.JOINT_POS]
        low, high = np.minimum(joints[:-1], joints[1:]) - 1e-5, np.maximum(joints[:-1], joints[1:]) + 1e-5
        q = frame[layout.JOINT_POS]
        assert np.any(np.all((low <= q) & (q <= high), axis=1))


def test_windowed_expert_transitions_hold_the_clip_lag_steps_earlier(clips, lib):
    """With history lags each observation is the clip's features at t, then at t − lag·dt (NumPy's
    interpolation), the whole window inside the clip; the first block is the one-step transition at that t, and
    rate 1 of the replayed windows is the expert window bit for bit."""
    lags, n = (4, 11), 2048
    key = jax.random.key(21)
    s, s_next = library.sample_expert_transitions(lib, key, n, DT_AMP, lags)
    assert s.shape == s_next.shape == (n, 3 * layout.AMP_OBS_SIZE)
    clip, fraction = (np.asarray(x, np.float64) for x in library._clip_and_fraction(lib, key, (n,)))
    clip = clip.astype(int)
    durations = np.array([c.duration for c in clips])
    time = 11 * DT_AMP + fraction * (durations[clip] - DT_AMP - 11 * DT_AMP)
    assert np.all(time - 11 * DT_AMP >= -1e-6) and np.all(time + DT_AMP <= durations[clip] + 1e-6)
    for got, shift in ((s, 0.0), (s_next, DT_AMP)):
        want = np.stack([np.concatenate([library.amp_features(numpy_frame_at(clips[c], t + shift - lag * DT_AMP))
                                         for lag in (0, *lags)]) for c, t in zip(clip[:300], time[:300])])
        np.testing.assert_allclose(got[:300], want, atol=3e-4, rtol=1e-4)
    # the lagged blocks are the clip earlier: on the real data the joints moved between them
    width = layout.AMP_OBS_SIZE
    assert np.median(np.abs(np.asarray(s[:, :12]) - np.asarray(s[:, 2 * width:2 * width + 12]))) > 0.05
    time32 = jnp.asarray(time, jnp.float32)
    clip32 = jnp.asarray(clip, jnp.int32)
    replayed = library.replayed_transitions(lib, clip32, time32, jnp.ones(n, jnp.float32), DT_AMP, lags)
    expert = (library._window_at(lib, clip32, time32, DT_AMP, lags),
              library._window_at(lib, clip32, time32 + DT_AMP, DT_AMP, lags))
    for got, want in zip(replayed, expert):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    # replayed twice as fast: the window reaches back 2·lag·dt, with every block's rates doubled
    two = library.replayed_transitions(lib, clip32[:50], time32[:50], jnp.full(50, 2.0, jnp.float32), DT_AMP, lags)
    scale = np.ones(width)
    scale[layout.AMP_RATES] = 2.0
    want = np.stack([np.concatenate([library.amp_features(numpy_frame_at(clips[c], t - 2 * lag * DT_AMP)) * scale
                                     for lag in (0, *lags)]) for c, t in zip(clip[:50], time[:50])])
    np.testing.assert_allclose(two[0], want, atol=6e-4, rtol=1e-4)


def test_windowed_replays_stay_inside_the_clip(clips, lib):
    n, rates, lags = 2000, (2.0, 3.0), (6,)
    key = jax.random.key(9)
    s, _ = library.sample_replayed_transitions(lib, key, n, DT_AMP, rates, lags)
    k_clip, k_rate = jax.random.split(key)
    rate = np.asarray(rates)[np.asarray(jax.random.randint(k_rate, (n,), 0, len(rates)))]
    clip, fraction = (np.asarray(x) for x in library._clip_and_fraction(lib, k_clip, (n,)))
    durations = np.array([c.duration for c in clips])
    reach = rate * 6 * DT_AMP
    time = reach + fraction * (durations[clip] - rate * DT_AMP - reach)
    assert np.all(time - reach >= -1e-6) and np.all(time + rate * DT_AMP <= durations[clip] + 1e-6)
    want = library.replayed_transitions(lib, jnp.asarray(clip), jnp.asarray(time, jnp.float32),
                                        jnp.asarray(rate, jnp.float32), DT_AMP, lags)[0]
    np.testing.assert_allclose(s, want, rtol=1e-4, atol=1e-3)  # times rounded to float32 in another order
