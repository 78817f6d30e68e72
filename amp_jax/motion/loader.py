"""Host side of the motion library: parse, validate, convert and repair motion clips once, with NumPy.

Each clip file is JSON (see ``motion_data/README.md``). Loading a clip

1. validates it: the keys ``Frames``, ``FrameDuration`` and ``MotionWeight``; 61 finite numbers per frame;
   unit root quaternions; a positive frame duration and weight; enough frames for one AMP transition;
2. converts it to the project's conventions: legs FR, FL, RR, RL → FL, FR, RL, RR for every per-leg quantity,
   quaternions x, y, z, w → w, x, y, z standardised to w >= 0;
3. repairs velocity glitches. The files' velocities are forward differences of their poses:
   ``v_i = R_iᵀ (p_{i+1} − p_i) / Δt`` (base frame), ``ω_i = log(q_i⁻¹ q_{i+1}) / Δt`` (base frame, shortest
   rotation) and ``q̇_i = (q_{i+1} − q_i) / Δt``, matching them to about 1e-3 on clean frames. Where a stored
   velocity differs from that difference by more than ``repair_threshold`` (a root quaternion sign flip between
   two frames produces hundreds of rad/s, as in frame 91 of ``rightturn0``), it is replaced by the difference
   and the repair is logged once (file, frame, quantity, before, after). The last frame has no successor and is
   not checked.

Errors raise :class:`MotionDataError` naming the file and, where it applies, the frame.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from collections.abc import Sequence

import numpy as np

from amp_jax import a1
from amp_jax.motion import layout

_LOG = logging.getLogger(__name__)

REQUIRED_KEYS = ("Frames", "FrameDuration", "MotionWeight")
"""Keys every clip file must have."""

QUATERNION_NORM_TOLERANCE = 1e-3
"""Largest accepted | ‖q‖ − 1 | of a root quaternion in a file (the files hold 5 decimals)."""


class MotionDataError(ValueError):
    """A motion clip file is missing, unreadable or malformed."""

    def __init__(self, path: str | pathlib.Path, problem: str, frame: int | None = None):
        self.path, self.problem, self.frame = str(path), problem, frame
        where = f"{path}" if frame is None else f"{path}, frame {frame}"
        super().__init__(f"{where}: {problem}")


@dataclasses.dataclass(frozen=True)
class Repair:
    """One velocity replaced by the finite difference of the poses around it."""

    path: str
    frame: int
    quantity: str
    """``base_lin_vel``, ``base_ang_vel`` or ``joint_vel``."""
    before: tuple[float, ...]
    after: tuple[float, ...]

    def __str__(self) -> str:
        fmt = lambda v: "[" + ", ".join(f"{x:.4g}" for x in v) + "]"  # noqa: E731
        return f"{self.path}, frame {self.frame}: {self.quantity} {fmt(self.before)} -> {fmt(self.after)}"


@dataclasses.dataclass(frozen=True)
class Clip:
    """One validated clip in the project's layout (``amp_jax.motion.layout``)."""

    name: str
    """File stem, e.g. ``trot0``."""
    path: str
    frames: np.ndarray
    """``[T, 61]`` float64 frames, legs FL, FR, RL, RR, quaternion w, x, y, z with w >= 0."""
    frame_duration: float
    """Seconds between frames."""
    weight: float
    """Relative sampling weight (not normalised)."""
    repairs: tuple[Repair, ...] = ()
    """Velocities replaced at load."""

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame: (T − 1) · frame_duration."""
        return (self.num_frames - 1) * self.frame_duration


# --------------------------------------------------------------------------------------------------------------
# Quaternion helpers (w, x, y, z), vectorised over leading axes.


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)


def quat_rotate_inverse(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotates world vectors ``v [..., 3]`` into the frame of ``q [..., 4]``: Rᵀ v."""
    v_quat = np.concatenate([np.zeros_like(v[..., :1]), v], axis=-1)
    return quat_multiply(quat_multiply(quat_conjugate(q), v_quat), q)[..., 1:]


def quat_to_rotvec(q: np.ndarray) -> np.ndarray:
    """Rotation vector (axis · angle, angle in [0, π]) of unit quaternions ``[..., 4]``; sign-invariant."""
    q = np.where(q[..., :1] < 0, -q, q)
    vec_norm = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(vec_norm, q[..., :1])
    scale = np.where(vec_norm > 1e-12, angle / np.maximum(vec_norm, 1e-12), 2.0)
    return q[..., 1:] * scale


def forward_difference_velocities(frames: np.ndarray, frame_duration: float) -> dict[str, np.ndarray]:
    """Velocities implied by consecutive poses, ``[T − 1, ·]`` per quantity (see the module docstring)."""
    quat = frames[:, layout.ROOT_QUAT]
    pos = frames[:, layout.ROOT_POS]
    relative = quat_multiply(quat_conjugate(quat[:-1]), quat[1:])
    return {
        "base_lin_vel": quat_rotate_inverse(quat[:-1], (pos[1:] - pos[:-1]) / frame_duration),
        "base_ang_vel": quat_to_rotvec(relative) / frame_duration,
        "joint_vel": (frames[1:, layout.JOINT_POS] - frames[:-1, layout.JOINT_POS]) / frame_duration,
    }


_VELOCITY_SLICES = {
    "base_lin_vel": layout.BASE_LIN_VEL,
    "base_ang_vel": layout.BASE_ANG_VEL,
    "joint_vel": layout.JOINT_VEL,
}


def repair_velocities(
    frames: np.ndarray, frame_duration: float, threshold: float, path: str
) -> tuple[np.ndarray, tuple[Repair, ...]]:
    """Replaces velocities that disagree with the forward differences of the poses by more than ``threshold``.

    Args:
      frames: ``[T, 61]`` frames in the project layout.
      frame_duration: seconds between frames.
      threshold: largest accepted absolute disagreement of any component (m/s or rad/s).
      path: the file, for the report.
    Returns:
      The repaired copy of ``frames`` and one :class:`Repair` per replaced (frame, quantity).
    """
    repaired = frames.copy()
    repairs = []
    for quantity, estimate in forward_difference_velocities(frames, frame_duration).items():
        columns = _VELOCITY_SLICES[quantity]
        stored = frames[:-1, columns]
        bad_frames = np.nonzero(np.max(np.abs(stored - estimate), axis=-1) > threshold)[0]
        for frame in bad_frames:
            repaired[frame, columns] = estimate[frame]
            repairs.append(Repair(path, int(frame), quantity, tuple(map(float, stored[frame])),
                                  tuple(map(float, estimate[frame]))))
    return repaired, tuple(sorted(repairs, key=lambda r: (r.frame, r.quantity)))


def convert_from_file_layout(raw_frames: np.ndarray) -> np.ndarray:
    """File layout → project layout: legs FR, FL, RR, RL → FL, FR, RL, RR; quaternion xyzw → wxyz, w >= 0."""
    frames = raw_frames.copy()
    for columns in layout.PER_LEG_SLICES:
        frames[:, columns] = raw_frames[:, columns][:, a1.JOINT_PERMUTATION_FROM_DATA]
    quat = raw_frames[:, layout.ROOT_QUAT][:, [3, 0, 1, 2]]
    quat = quat / np.linalg.norm(quat, axis=-1, keepdims=True)
    frames[:, layout.ROOT_QUAT] = np.where(quat[:, :1] < 0, -quat, quat)
    return frames


def _positive_number(data: dict, key: str, path: pathlib.Path, expected: str) -> float:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
        raise MotionDataError(path, f"{key} = {value!r}: expected {expected}")
    return float(value)


def _parse_frames(frames: object, path: pathlib.Path) -> np.ndarray:
    if not isinstance(frames, list) or not frames:
        raise MotionDataError(path, "Frames: expected a non-empty list of frames")
    for index, frame in enumerate(frames):
        if not isinstance(frame, list) or len(frame) != layout.FRAME_WIDTH:
            width = len(frame) if isinstance(frame, list) else type(frame).__name__
            raise MotionDataError(path, f"frame width {width}: expected {layout.FRAME_WIDTH} numbers", index)
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in frame):
            raise MotionDataError(path, "expected only numbers in the frame", index)
    array = np.asarray(frames, dtype=np.float64)
    bad = np.argwhere(~np.isfinite(array))
    if bad.size:
        frame, column = map(int, bad[0])
        raise MotionDataError(path, f"column {column} is {array[frame, column]}: expected a finite number", frame)
    return array


def load_clip(path: str | pathlib.Path, *, min_duration: float = 0.0, repair_threshold: float = 1.0) -> Clip:
    """Parses, validates, converts and repairs one clip file.

    Args:
      path: a clip file (JSON, see ``motion_data/README.md``).
      min_duration: shortest accepted clip (s); the AMP transition length ``dt_amp`` for training.
      repair_threshold: velocity disagreement (m/s, rad/s) above which a velocity is repaired.
    Raises:
      MotionDataError: naming the file (and frame) on any malformed input.
    """
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise MotionDataError(path, "file not found") from None
    except OSError as err:
        raise MotionDataError(path, f"cannot be read ({err.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise MotionDataError(path, f"not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    if not isinstance(data, dict):
        raise MotionDataError(path, f"expected a JSON object with keys {', '.join(REQUIRED_KEYS)}")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise MotionDataError(path, f"missing key(s) {', '.join(missing)}: expected {', '.join(REQUIRED_KEYS)}")
    frame_duration = _positive_number(data, "FrameDuration", path, "a positive number of seconds")
    weight = _positive_number(data, "MotionWeight", path, "a positive sampling weight")
    raw = _parse_frames(data["Frames"], path)

    norms = np.linalg.norm(raw[:, layout.ROOT_QUAT], axis=-1)
    off_unit = np.nonzero(np.abs(norms - 1.0) > QUATERNION_NORM_TOLERANCE)[0]
    if off_unit.size:
        frame = int(off_unit[0])
        raise MotionDataError(
            path, f"root quaternion norm {norms[frame]:.6g}: expected a unit quaternion "
                  f"(within {QUATERNION_NORM_TOLERANCE})", frame)
    duration = (raw.shape[0] - 1) * frame_duration
    if raw.shape[0] < 2 or duration < min_duration:
        raise MotionDataError(
            path, f"{raw.shape[0]} frames last {duration:.4g} s: expected at least 2 frames and "
                  f"{min_duration:.4g} s for one AMP transition")

    frames, repairs = repair_velocities(convert_from_file_layout(raw), frame_duration, repair_threshold, str(path))
    for repair in repairs:
        _LOG.warning("repaired motion data: %s", repair)
    return Clip(path.stem, str(path), frames, frame_duration, weight, repairs)


def load_clips(paths: Sequence[str | pathlib.Path], **kwargs) -> tuple[Clip, ...]:
    """:func:`load_clip` over several files (keyword arguments passed on)."""
    if not paths:
        raise MotionDataError("<motion.files>", "expected at least one motion file")
    return tuple(load_clip(p, **kwargs) for p in paths)


def load_motion_library(paths: Sequence[str | pathlib.Path], *, dt_amp: float = 0.0, repair_threshold: float = 1.0):
    """Loads clips on the host and stacks them into a device-side :class:`~amp_jax.motion.library.MotionLibrary`.

    Args:
      paths: clip files.
      dt_amp: AMP transition length (s); every clip must last at least this long.
      repair_threshold: see :func:`load_clip`.
    """
    from amp_jax.motion.library import MotionLibrary

    clips = load_clips(paths, min_duration=dt_amp, repair_threshold=repair_threshold)
    return MotionLibrary.from_clips(clips)
