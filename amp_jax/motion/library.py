"""Device side of the motion library: pure, jittable sampling and interpolation over preloaded frame arrays.

Time maps to frames as ``f = t / frame_duration`` (defect 1 of the reference fixed): frame ``i`` sits at
``t = i · frame_duration`` and a clip of ``T`` frames lasts ``(T − 1) · frame_duration``. Between frames every
number is interpolated linearly except the root quaternion, which is slerped along the shorter arc and
standardised to w >= 0.

Expert AMP transitions never touch the quaternion, and AMP features are linear in a frame, so they are
interpolated from one flat table of per-frame features (all clips one after another): each sample costs one
uniform number and four 43-float row gathers that XLA fuses with the interpolation (a gather of whole
86-float pair rows that feeds two slices is not fused and ran 8x slower on a CPU).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from amp_jax.motion import layout


@struct.dataclass
class MotionLibrary:
    """Every clip on the device. ``C`` clips, ``T_max`` frames in the longest."""

    frames: jax.Array
    """``[C, T_max, 61]`` frames (``amp_jax.motion.layout``), each clip padded by repeating its last frame."""
    num_frames: jax.Array
    """``[C]`` int32 frames per clip."""
    frame_duration: jax.Array
    """``[C]`` seconds between frames."""
    duration: jax.Array
    """``[C]`` seconds from first to last frame: (num_frames − 1) · frame_duration."""
    weights: jax.Array
    """``[C]`` sampling probabilities (sum 1)."""
    amp_frames: jax.Array
    """``[F, 43]`` AMP features of every frame, clips one after another (``F`` = total frames)."""
    frame_offset: jax.Array
    """``[C]`` int32 row of ``amp_frames`` holding each clip's first frame."""
    mean_command: jax.Array
    """``[C, 3]`` each clip's mean velocity as a command: base-frame forward and lateral velocity (m/s) and the
    base-frame yaw rate (rad/s), averaged over its frames."""
    names: tuple[str, ...] = struct.field(pytree_node=False, default=())
    """Clip names, in order."""

    @classmethod
    def from_clips(cls, clips: Sequence) -> MotionLibrary:
        """Stacks host :class:`~amp_jax.motion.loader.Clip` objects into device arrays (float32)."""
        num_frames = np.array([c.num_frames for c in clips], dtype=np.int32)
        t_max = int(num_frames.max())
        frames = np.stack([np.concatenate([c.frames, np.repeat(c.frames[-1:], t_max - c.num_frames, 0)])
                           for c in clips])
        features = np.concatenate([amp_features(c.frames) for c in clips])
        frame_offset = np.concatenate([[0], np.cumsum(num_frames)[:-1]]).astype(np.int32)
        weights = np.array([c.weight for c in clips], dtype=np.float64)
        frame_duration = np.array([c.frame_duration for c in clips], dtype=np.float64)
        return cls(
            frames=jnp.asarray(frames, jnp.float32),
            num_frames=jnp.asarray(num_frames),
            frame_duration=jnp.asarray(frame_duration, jnp.float32),
            duration=jnp.asarray((num_frames - 1) * frame_duration, jnp.float32),
            weights=jnp.asarray(weights / weights.sum(), jnp.float32),
            amp_frames=jnp.asarray(features, jnp.float32),
            frame_offset=jnp.asarray(frame_offset),
            mean_command=jnp.asarray(np.stack([clip_mean_command(c.frames) for c in clips]), jnp.float32),
            names=tuple(c.name for c in clips),
        )

    @property
    def num_clips(self) -> int:
        return int(self.num_frames.shape[0])


def clip_mean_command(frames: np.ndarray) -> np.ndarray:
    """The velocity command ``[3]`` a clip of frames ``[T, 61]`` performs on average: mean base-frame forward and
    lateral velocity (m/s) and mean base-frame yaw rate (rad/s)."""
    frames = np.asarray(frames, np.float64)
    return np.array([*frames[:, layout.BASE_LIN_VEL][:, :2].mean(axis=0), frames[:, layout.BASE_ANG_VEL][:, 2].mean()])


def amp_features(frame: jax.Array) -> jax.Array:
    """AMP observation of frames ``[..., 61]`` → ``[..., 43]``: joint pos (12), foot pos from the trunk's COM in
    base axes (12), base lin vel (3, base frame), base ang vel (3, base frame), joint vel (12), root height (1)."""
    xp = np if isinstance(frame, np.ndarray) else jnp
    return xp.concatenate([frame[..., layout.AMP_FEATURE_SLICE], frame[..., layout.ROOT_HEIGHT:layout.ROOT_HEIGHT + 1]],
                          axis=-1)


def slerp(q0: jax.Array, q1: jax.Array, alpha: jax.Array) -> jax.Array:
    """Spherical interpolation of unit quaternions ``[..., 4]`` (w, x, y, z) along the shorter arc.

    ``alpha [...]`` in [0, 1]; the result is unit and standardised to w >= 0.
    """
    alpha = jnp.asarray(alpha)[..., None]
    dot = jnp.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = jnp.where(dot < 0, -q1, q1)
    theta = jnp.arccos(jnp.clip(jnp.abs(dot), 0.0, 1.0))
    sin_theta = jnp.sin(theta)
    nearly_parallel = sin_theta < 1e-6
    safe_sin = jnp.where(nearly_parallel, 1.0, sin_theta)
    w0 = jnp.where(nearly_parallel, 1.0 - alpha, jnp.sin((1.0 - alpha) * theta) / safe_sin)
    w1 = jnp.where(nearly_parallel, alpha, jnp.sin(alpha * theta) / safe_sin)
    q = w0 * q0 + w1 * q1
    q = q / jnp.linalg.norm(q, axis=-1, keepdims=True)
    return jnp.where(q[..., :1] < 0, -q, q)


def _frame_index(library: MotionLibrary, clip: jax.Array, time: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Left frame index ``i`` (so ``i + 1`` exists) and the weight ``alpha`` of frame ``i + 1`` at ``time``."""
    time = jnp.clip(time, 0.0, library.duration[clip])
    position = time / library.frame_duration[clip]
    index = jnp.clip(jnp.floor(position).astype(jnp.int32), 0, library.num_frames[clip] - 2)
    alpha = jnp.clip(position - index, 0.0, 1.0)
    return index, alpha


def frame_at(library: MotionLibrary, clip: jax.Array, time: jax.Array) -> jax.Array:
    """The frame ``[61]`` of clip ``clip`` (int scalar) at ``time`` (s, clamped to the clip); vmap for batches."""
    index, alpha = _frame_index(library, clip, time)
    left = library.frames[clip, index]
    right = library.frames[clip, index + 1]
    frame = (1.0 - alpha) * left + alpha * right
    return frame.at[layout.ROOT_QUAT].set(slerp(left[layout.ROOT_QUAT], right[layout.ROOT_QUAT], alpha))


def _clip_and_fraction(library: MotionLibrary, key: jax.Array, shape) -> tuple[jax.Array, jax.Array]:
    """Clips drawn by weight and a fraction uniform in [0, 1) inside each, from one uniform number per sample:
    given ``u``'s clip, its position inside that clip's probability interval is uniform and independent of it."""
    u = jax.random.uniform(key, shape)
    upper = jnp.cumsum(library.weights)
    clip = jnp.sum(u[..., None] >= upper[:-1], axis=-1).astype(jnp.int32)
    lower = upper[clip] - library.weights[clip]
    fraction = jnp.clip((u - lower) / library.weights[clip], 0.0, 1.0)
    return clip, fraction


def sample_frames(library: MotionLibrary, key: jax.Array, batch: int | tuple[int, ...] = ()) -> jax.Array:
    """Random frames ``[*batch, 61]`` for reference-state initialisation: clips by weight, times uniform in
    ``[0, duration]``."""
    return sample_frames_and_clips(library, key, batch)[0]


def sample_frames_and_clips(library: MotionLibrary, key: jax.Array,
                            batch: int | tuple[int, ...] = ()) -> tuple[jax.Array, jax.Array]:
    """:func:`sample_frames`, with the int32 clip index ``[*batch]`` each frame came from."""
    shape = (batch,) if isinstance(batch, int) else tuple(batch)
    clip, fraction = _clip_and_fraction(library, key, shape)
    time = fraction * library.duration[clip]
    sample = frame_at
    for _ in shape:
        sample = jax.vmap(sample, in_axes=(None, 0, 0))
    return sample(library, clip, time), clip


def _amp_features_at(library: MotionLibrary, clip: jax.Array, time: jax.Array) -> jax.Array:
    index, alpha = _frame_index(library, clip, time)
    row = library.frame_offset[clip] + index
    return (1.0 - alpha)[..., None] * library.amp_frames[row] + alpha[..., None] * library.amp_frames[row + 1]


def _window_at(library: MotionLibrary, clip: jax.Array, time: jax.Array, step: jax.Array | float,
               history_lags: Sequence[int]) -> jax.Array:
    """AMP observations ``[B, 43 · (1 + L)]`` at ``time [B]``: the features there, then at ``lag · step`` earlier
    for each of ``history_lags`` (the env's window, :meth:`amp_jax.envs.a1_amp.A1AmpEnv.amp_window`)."""
    step = jnp.asarray(step, jnp.float32)
    return jnp.concatenate([_amp_features_at(library, clip, time - lag * step)
                            for lag in (0, *history_lags)], axis=-1)


def _window_reach(history_lags: Sequence[int]) -> int:
    """Control steps a window reaches back: its longest lag, or 0."""
    return max(history_lags, default=0)


def sample_expert_transitions(
    library: MotionLibrary, key: jax.Array, batch: int, dt_amp: float, history_lags: Sequence[int] = ()
) -> tuple[jax.Array, jax.Array]:
    """Expert AMP transitions ``(s, s_next)``, each ``[batch, 43]`` (``[batch, 43 · (1 + L)]`` with
    ``history_lags``, the env's ``env.amp_history_lags``).

    Clips are drawn by weight, ``t`` uniform in ``[0, duration − dt_amp]``, and ``s_next`` is the same clip at
    ``t + dt_amp`` (never past the clip's end). Features as :func:`amp_features`. With ``history_lags`` each
    observation also holds the features ``lag · dt_amp`` earlier, and ``t`` is uniform in ``[H · dt_amp, duration
    − dt_amp]`` (``H`` the longest lag) so that the whole window lies inside the clip (in a clip shorter than
    that, the earliest states are its first frame).
    """
    clip, fraction = _clip_and_fraction(library, key, (batch,))
    reach = _window_reach(history_lags) * dt_amp
    time = reach + fraction * jnp.maximum(library.duration[clip] - dt_amp - reach, 0.0)
    return (_window_at(library, clip, time, dt_amp, history_lags),
            _window_at(library, clip, time + dt_amp, dt_amp, history_lags))


def replayed_transitions(library: MotionLibrary, clip: jax.Array, time: jax.Array, rate: jax.Array,
                         dt_amp: float, history_lags: Sequence[int] = ()) -> tuple[jax.Array, jax.Array]:
    """AMP transitions ``(s, s_next)``, each ``[B, 43]`` (``[B, 43 · (1 + L)]`` with ``history_lags``), of clips
    played ``rate`` times as fast as recorded.

    ``clip [B]`` (int), ``time [B]`` (s, clip time of ``s``), ``rate [B]`` (> 0): ``s_next`` is the clip at
    ``time + rate · dt_amp``, one control step of the faster (or slower) replay, and the features that are rates
    of change (:data:`~amp_jax.motion.layout.AMP_RATES`) are multiplied by ``rate``; poses and the root height are
    the clip's. A window's earlier states are ``rate · lag · dt_amp`` back. At rate 1 these are the expert
    transitions of :func:`sample_expert_transitions`.
    """
    rate = jnp.asarray(rate, jnp.float32)
    scale = jnp.ones((rate.shape[0], layout.AMP_OBS_SIZE), jnp.float32).at[:, layout.AMP_RATES].set(rate[:, None])
    scale = jnp.tile(scale, (1, 1 + len(history_lags)))
    step = rate * dt_amp
    return (scale * _window_at(library, clip, time, step, history_lags),
            scale * _window_at(library, clip, time + step, step, history_lags))


def sample_replayed_transitions(library: MotionLibrary, key: jax.Array, batch: int, dt_amp: float,
                                rates: Sequence[float], history_lags: Sequence[int] = ()
                                ) -> tuple[jax.Array, jax.Array]:
    """``batch`` transitions of the clips replayed at other rates (:func:`replayed_transitions`), each ``[batch,
    43]`` (or the window of ``history_lags``): clips by weight, each sample's rate drawn uniformly from ``rates``,
    its time uniform over the part of the clip where the faster step and its window stay inside it."""
    k_clip, k_rate = jax.random.split(key)
    rate = jnp.asarray(rates, jnp.float32)[jax.random.randint(k_rate, (batch,), 0, len(rates))]
    clip, fraction = _clip_and_fraction(library, k_clip, (batch,))
    reach = rate * _window_reach(history_lags) * dt_amp
    time = reach + fraction * jnp.maximum(library.duration[clip] - rate * dt_amp - reach, 0.0)
    return replayed_transitions(library, clip, time, rate, dt_amp, history_lags)
