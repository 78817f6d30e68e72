"""Host side of the motion library: parse, validate, convert and repair motion clips once, with NumPy.

Each clip file is JSON (see ``motion_data/README.md``). Loading a clip

1. validates it: UTF-8 JSON with the keys ``Frames``, ``FrameDuration`` and ``MotionWeight``; 61 finite numbers
   per frame; unit root quaternions; enough frames for one AMP transition; and physically plausible values
   (:data:`PLAUSIBLE_FRAME_DURATION`, :data:`MAX_MOTION_WEIGHT`, :data:`PLAUSIBLE_ROOT_HEIGHT`, joint angles
   within the URDF limits widened by :data:`JOINT_LIMIT_MARGIN`, feet within :data:`MAX_FOOT_DISTANCE` of the
   trunk, and root and joint speeds between frames below :data:`MAX_ROOT_SPEED` and :data:`MAX_JOINT_SPEED`),
   naming the frame and the file's column of the first value outside;
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
from collections.abc import Callable, Sequence

import numpy as np

from amp_jax import a1
from amp_jax.motion import layout

_LOG = logging.getLogger(__name__)

REQUIRED_KEYS = ("Frames", "FrameDuration", "MotionWeight")
"""Keys every clip file must have."""

QUATERNION_NORM_TOLERANCE = 1e-3
"""Largest accepted | ‖q‖ − 1 | of a root quaternion in a file (the files hold 5 decimals)."""

# Physical plausibility of an A1 clip. The six clips lie well inside every bound (frame duration 0.021 s, weights
# 0.5–1, root heights 0.28–0.32 m, joints at least 0.02 rad inside the URDF limits, feet within 0.41 m, root
# speeds up to 1.4 m/s, joint speeds up to 12 rad/s); a value outside is a unit mistake or a broken file.
PLAUSIBLE_FRAME_DURATION = (1e-3, 0.2)
"""Accepted ``FrameDuration`` (s): 5 to 1000 frames per second."""
MAX_MOTION_WEIGHT = 100.0
"""Largest accepted ``MotionWeight`` (a relative sampling weight; the clips use 0.5 and 1)."""
PLAUSIBLE_ROOT_HEIGHT = (0.05, 1.0)
"""Accepted root height (m) of a 0.3 m tall robot."""
JOINT_LIMIT_MARGIN = 0.5
"""How far (rad) a joint angle may lie outside the URDF limits (retargeting error) before it is refused."""
MAX_FOOT_DISTANCE = 1.0
"""Largest accepted |coordinate| (m) of a foot position relative to the trunk (legs are 0.4 m long)."""
MAX_ROOT_SPEED = 10.0
"""Largest accepted root speed between consecutive frames (m/s), from the stored positions."""
MAX_JOINT_SPEED = 100.0
"""Largest accepted joint speed between consecutive frames (rad/s), from the stored angles."""


def file_column_names() -> tuple[str, ...]:
    """Names of the 61 columns of a clip *file* (its own leg order FR, FL, RR, RL and x, y, z, w quaternion)."""
    legs, xyz = a1.DATA_LEG_ORDER, ("x", "y", "z")
    per_joint = [f"{leg}_{kind}" for leg in legs for kind in a1.JOINT_KINDS]
    per_foot = [f"{leg}_{axis}" for leg in legs for axis in xyz]
    return (*(f"root_pos_{a}" for a in xyz), *(f"root_quat_{a}" for a in ("x", "y", "z", "w")),
            *(f"joint_pos[{j}]" for j in per_joint), *(f"foot_pos[{f}]" for f in per_foot),
            *(f"base_lin_vel_{a}" for a in xyz), *(f"base_ang_vel_{a}" for a in xyz),
            *(f"joint_vel[{j}]" for j in per_joint), *(f"foot_vel[{f}]" for f in per_foot))


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


def _positive_number(data: dict, key: str, path: pathlib.Path, expected: str, high: float) -> float:
    value = data[key]
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not abs(value) < 1e300
            or not 0 < value <= high):
        shown = repr(value) if len(repr(value)) < 40 else repr(value)[:37] + "..."
        raise MotionDataError(path, f"{key} = {shown}: expected {expected}")
    return float(value)


def _check_plausible(raw: np.ndarray, frame_duration: float, path: pathlib.Path) -> None:
    """Raises MotionDataError at the first frame and file column outside the plausibility bounds (file layout)."""
    names = file_column_names()
    per_leg_lower = np.tile(a1.JOINT_LOWER_PER_LEG, a1.NUM_LEGS) - JOINT_LIMIT_MARGIN
    per_leg_upper = np.tile(a1.JOINT_UPPER_PER_LEG, a1.NUM_LEGS) + JOINT_LIMIT_MARGIN
    speeds = np.abs(np.diff(raw, axis=0)) / frame_duration
    root_speed = np.linalg.norm(speeds[:, layout.ROOT_POS], axis=-1, keepdims=True)
    checks = (  # (values [T', C], first file column, low, high, what is expected)
        (raw[:, layout.ROOT_HEIGHT:layout.ROOT_HEIGHT + 1], layout.ROOT_HEIGHT, *PLAUSIBLE_ROOT_HEIGHT,
         "m (root height of a standing or walking A1)"),
        (raw[:, layout.JOINT_POS], layout.JOINT_POS.start, per_leg_lower, per_leg_upper,
         f"rad (the URDF joint limits ± {JOINT_LIMIT_MARGIN})"),
        (raw[:, layout.FOOT_POS], layout.FOOT_POS.start, -MAX_FOOT_DISTANCE, MAX_FOOT_DISTANCE,
         "m (foot relative to the trunk)"),
        (root_speed, layout.ROOT_POS.start, 0.0, MAX_ROOT_SPEED,
         "m/s of root speed to the next frame (a jump in the root position)"),
        (speeds[:, layout.JOINT_POS], layout.JOINT_POS.start, 0.0, MAX_JOINT_SPEED,
         "rad/s of joint speed to the next frame (a jump in the joint angle)"),
    )
    for values, first, low, high, what in checks:
        outside = np.argwhere((values < low) | (values > high))
        if outside.size:
            frame, col = map(int, outside[0])
            lo = np.broadcast_to(low, values.shape[1:])[col]
            hi = np.broadcast_to(high, values.shape[1:])[col]
            raise MotionDataError(path, f"column {first + col} ({names[first + col]}) is "
                                        f"{values[frame, col]:.6g}: expected {lo:.4g} to {hi:.4g} {what}", frame)


def _parse_frames(frames: object, path: pathlib.Path) -> np.ndarray:
    if not isinstance(frames, list) or not frames:
        raise MotionDataError(path, "Frames: expected a non-empty list of frames")
    for index, frame in enumerate(frames):
        if not isinstance(frame, list) or len(frame) != layout.FRAME_WIDTH:
            width = len(frame) if isinstance(frame, list) else type(frame).__name__
            raise MotionDataError(path, f"frame width {width}: expected {layout.FRAME_WIDTH} numbers", index)
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in frame):
            raise MotionDataError(path, "expected only numbers in the frame", index)
    try:
        array = np.asarray(frames, dtype=np.float64)
    except OverflowError:  # an integer beyond float range
        index = next(i for i, f in enumerate(frames) if any(isinstance(x, int) and abs(x) > 1e308 for x in f))
        raise MotionDataError(path, "a number beyond the float range: expected finite numbers", index) from None
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
    except UnicodeDecodeError as err:
        raise MotionDataError(path, f"not UTF-8 text (byte {err.start}): expected a JSON clip file") from None
    except OSError as err:
        raise MotionDataError(path, f"cannot be read ({err.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise MotionDataError(path, f"not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    except (RecursionError, ValueError) as err:  # nesting too deep, integers too long to parse
        raise MotionDataError(path, f"not a readable JSON clip ({type(err).__name__})") from None
    if not isinstance(data, dict):
        raise MotionDataError(path, f"expected a JSON object with keys {', '.join(REQUIRED_KEYS)}")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise MotionDataError(path, f"missing key(s) {', '.join(missing)}: expected {', '.join(REQUIRED_KEYS)}")
    low, high = PLAUSIBLE_FRAME_DURATION
    frame_duration = _positive_number(data, "FrameDuration", path,
                                      f"seconds per frame, {low:g} to {high:g} (5 to 1000 frames per second)", high)
    if frame_duration < low:
        raise MotionDataError(path, f"FrameDuration = {frame_duration!r}: expected seconds per frame, {low:g} to "
                                    f"{high:g} (5 to 1000 frames per second)")
    weight = _positive_number(data, "MotionWeight", path, f"a positive sampling weight up to {MAX_MOTION_WEIGHT:g}",
                              MAX_MOTION_WEIGHT)
    raw = _parse_frames(data["Frames"], path)

    norms = np.linalg.norm(raw[:, layout.ROOT_QUAT], axis=-1)
    off_unit = np.nonzero(np.abs(norms - 1.0) > QUATERNION_NORM_TOLERANCE)[0]
    if off_unit.size:
        frame = int(off_unit[0])
        raise MotionDataError(
            path, f"root quaternion norm {norms[frame]:.6g}: expected a unit quaternion "
                  f"(within {QUATERNION_NORM_TOLERANCE})", frame)
    _check_plausible(raw, frame_duration, path)
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


def load_motion_library(paths: Sequence[str | pathlib.Path], *, dt_amp: float = 0.0, repair_threshold: float = 1.0,
                        mirror_frames: Callable[[np.ndarray], np.ndarray] | None = None,
                        reversed_weight: float = 0.0):
    """Loads clips on the host and stacks them into a device-side :class:`~amp_jax.motion.library.MotionLibrary`.

    Args:
      paths: clip files.
      dt_amp: AMP transition length (s); every clip must last at least this long.
      repair_threshold: see :func:`load_clip`.
      mirror_frames: ``frames [T, 61] -> [T, 61]``, the robot's mirror (``amp_jax.envs.mirror.frame_map()``):
        the library then also holds each clip's mirror image (:func:`mirrored_clip`) after the clips.
      reversed_weight: above 0, the clips are followed by their time reversals (:func:`with_reversed`).
    """
    clips = with_reversed(load_clips(paths, min_duration=dt_amp, repair_threshold=repair_threshold), reversed_weight)
    return stack_clips(clips, mirror_frames)


def stack_clips(clips: Sequence[Clip], mirror_frames: Callable[[np.ndarray], np.ndarray] | None = None):
    """Loaded clips (and, with ``mirror_frames``, their mirror images after them, as in
    :func:`load_motion_library`) as a device-side :class:`~amp_jax.motion.library.MotionLibrary`."""
    from amp_jax.motion.library import MotionLibrary

    if mirror_frames is not None:
        clips = (*clips, *(mirrored_clip(c, mirror_frames) for c in clips))
    return MotionLibrary.from_clips(tuple(clips))


def mirrored_clip(clip: Clip, mirror_frames: Callable[[np.ndarray], np.ndarray]) -> Clip:
    """The clip's mirror image, named ``<name>_mirrored``, with the clip's weight and timing."""
    return dataclasses.replace(clip, name=f"{clip.name}_mirrored", frames=np.asarray(mirror_frames(clip.frames)),
                               repairs=())


def reversed_clip(clip: Clip, weight_factor: float = 1.0) -> Clip:
    """The clip played backwards, named ``<name>_reversed``, with ``weight_factor`` times the clip's weight.

    Poses run from the last frame to the first; every velocity (base, joints, feet) is negated and taken from the
    neighbouring source frame, so that frame ``i``'s velocities stay the forward difference towards frame
    ``i + 1`` as in the files: reversed frame ``i`` is source frame ``T − 1 − i`` and carries minus the velocities
    of source frame ``T − 2 − i`` (the last reversed frame those of source frame 0). A forward trot becomes a
    backward trot with the same stance and swing; contacts and gravity make it a plausible motion, not a
    recorded one.
    """
    source = clip.frames[::-1]
    velocity_rows = np.maximum(clip.num_frames - 2 - np.arange(clip.num_frames), 0)
    frames = source.copy()
    for columns in (layout.BASE_LIN_VEL, layout.BASE_ANG_VEL, layout.JOINT_VEL, layout.FOOT_VEL):
        frames[:, columns] = -clip.frames[velocity_rows, columns]
    return dataclasses.replace(clip, name=f"{clip.name}_reversed", frames=frames,
                               weight=clip.weight * weight_factor, repairs=())


def with_reversed(clips: Sequence[Clip], weight_factor: float) -> tuple[Clip, ...]:
    """``clips`` followed by their time reversals (:func:`reversed_clip`) at ``weight_factor`` times each clip's
    weight; ``clips`` alone when ``weight_factor`` is 0 (``motion.reversed_clip_weight``)."""
    if weight_factor <= 0:
        return tuple(clips)
    return (*clips, *(reversed_clip(c, weight_factor) for c in clips))
