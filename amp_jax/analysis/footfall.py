"""Footfall timing of a contact pattern: stride frequency, the phase offsets of the four feet, the gait class; and
the stride's size: its length and the thighs' excursion.

All from contact booleans ``[T, 4]`` (legs FL, FR, RL, RR) sampled every ``dt`` seconds, as plain NumPy:

- **stride frequency** (:func:`stride_frequency`, Hz): the peak, within [:data:`MIN_STRIDE_HZ`,
  :data:`MAX_STRIDE_HZ`], of the summed power spectra of the four feet's contact signals (mean removed,
  zero-padded to :data:`SPECTRUM_LENGTH` samples, so the peak is located to a small fraction of the window's
  own resolution ``1 / (T dt)``);
- **footfall phases** (:func:`footfall_phases`, fractions of a stride in [0, 1)): each foot's contact signal
  is projected on ``exp(-2πi f t)`` at that frequency; the argument of that Fourier coefficient places the
  centre of the foot's stance, and half its duty factor before it is its touchdown. The offsets are the
  touchdowns after FL's (FL = 0). A foot whose contact signal has a fundamental amplitude
  (``2 |C| / T``) below :data:`MIN_FUNDAMENTAL_AMPLITUDE` has no phase (NaN): it does not step at the stride
  frequency. For a square wave of duty ``d`` the amplitude is ``2 sin(π d) / π``: 0.64 at ``d = 0.5``,
  0.2 at ``d = 0.9``;
- **gait class** (:func:`classify`), from the duty factors and the offsets ``δ``, with ``|x|∘`` the circular
  distance of ``x`` (mod 1) to 0, in [0, 0.5]; front-pair offset ``a = δ_FR``, hind-pair offset
  ``b = δ_RR − δ_RL``, and limb phase ``s`` = the circular mean of ``δ_RL − δ_FL`` and ``δ_RR − δ_FR`` (how far
  into the stride each hind foot lands after the fore foot on its side). In order, the first that holds:

  ===========  ===================================================================================
  stand        every foot in contact at least :data:`STAND_MIN_DUTY` of the time
  irregular    some foot has no phase (it does not step at the stride frequency)
  walk         ``|a − ½|∘, |b − ½|∘ ≤`` :data:`PAIR_TOLERANCE` (left and right alternate in front and
               behind) and the mean duty factor is at least :data:`WALK_MIN_DUTY`
  pace         the same alternation, duty below that, ``|s|∘ <`` :data:`COUPLET_BOUNDARY`: each side's
               feet land closer together than each diagonal's (lateral couplets)
  trot         the same alternation, duty below that, ``|s|∘ ≥`` :data:`COUPLET_BOUNDARY` (diagonal couplets)
  pronk        ``|a|∘, |b|∘ ≤`` :data:`PAIR_TOLERANCE` (front feet together, hind feet together) and
               ``|s|∘ ≤`` :data:`PAIR_TOLERANCE` (front and hind together)
  bound        the front and the hind pair each together, ``|s|∘ >`` :data:`PAIR_TOLERANCE`
  gallop       anything else: a pair neither together nor alternating (asymmetric gaits: transverse and
               rotary gallops, half-bounds)
  ===========  ===================================================================================

Why these numbers: in the trot clips (``trot0``, ``trot1``) both pairs alternate to within 0.07 of ½ and
``|s|∘ = 0.38, 0.46``; in the pace clips (``pace0``, ``pace1``) each hind foot lands 0.18–0.19 of a stride
before the fore foot on its side (``|s|∘ = 0.18–0.19``, mean duty 0.65–0.67: a lateral-couplets gait). An evenly
spaced four-beat walk has ``|s|∘ = ¼``, so the limb phase alone cannot tell a walk from such a pace; the walk is
told by its support instead (three or more feet down on average), and a walking gait with a lower duty factor
reads as the class whose couplets it has. Scripted open-loop trot, pace and bound in the env land within 0.09
of their constructed offsets (``tests/analysis/test_gait_sweep.py``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

MIN_STRIDE_HZ = 0.5
"""Lowest stride frequency searched (Hz): slower than any A1 or dog gait in the clips (1.2–1.7 Hz)."""
MAX_STRIDE_HZ = 6.0
"""Highest stride frequency searched (Hz); well below the Nyquist frequency of the 33 Hz control rate."""
SPECTRUM_LENGTH = 8192
"""Zero-padded length of the spectra (samples): 4 mHz bins at 33 Hz sampling."""
MIN_FUNDAMENTAL_AMPLITUDE = 0.1
"""Smallest amplitude of a foot's contact signal at the stride frequency for it to have a phase."""
STAND_MIN_DUTY = 0.9
"""A robot stands when every foot is in contact at least this fraction of the time."""
PAIR_TOLERANCE = 0.125
"""Largest circular distance (stride fraction) of a pair's offset from 0 (together) or ½ (alternating)."""
WALK_MIN_DUTY = 0.75
"""Smallest mean duty factor of a walk: on average three or more feet carry the body."""
COUPLET_BOUNDARY = 0.25
"""Limb phase ``|s|∘`` below which a symmetric gait is a pace (lateral couplets), at or above a trot."""

GAIT_CLASSES: tuple[str, ...] = ("stand", "walk", "trot", "pace", "bound", "pronk", "gallop", "irregular")
"""Every class :func:`classify` returns, in the order of the sweep plot's legend."""


def _centred(contacts: np.ndarray) -> np.ndarray:
    c = np.asarray(contacts)
    if c.ndim != 2 or c.shape[1] != 4 or c.shape[0] < 2:
        raise ValueError(f"contacts have shape {c.shape}: expected [T >= 2, 4] booleans (legs FL, FR, RL, RR)")
    c = c.astype(np.float64)
    return c - c.mean(axis=0)


def stride_frequency(contacts: np.ndarray, dt: float) -> float:
    """Stride frequency (Hz) of contact booleans ``[T, 4]`` sampled every ``dt`` s; NaN when no foot changes
    state (module docstring)."""
    x = _centred(contacts)
    if not np.any(x):
        return float("nan")
    n = max(SPECTRUM_LENGTH, x.shape[0])
    power = np.sum(np.abs(np.fft.rfft(x, n=n, axis=0)) ** 2, axis=1)
    freqs = np.fft.rfftfreq(n, dt)
    band = (freqs >= MIN_STRIDE_HZ) & (freqs <= MAX_STRIDE_HZ)
    if not np.any(band):
        return float("nan")
    return float(freqs[band][np.argmax(power[band])])


def footfall_phases(contacts: np.ndarray, dt: float, frequency: float) -> np.ndarray:
    """Touchdown of each foot after FL's as a fraction of the stride, ``[4]`` in [0, 1) (FL = 0), of contact
    booleans ``[T, 4]`` at ``frequency`` Hz; NaN for a foot without a phase (and all four when FL has none)."""
    x = _centred(contacts)
    if not np.isfinite(frequency):
        return np.full(4, np.nan)
    t = np.arange(x.shape[0]) * dt
    coefficient = np.exp(-2j * np.pi * frequency * t) @ x  # [4]
    amplitude = 2.0 * np.abs(coefficient) / x.shape[0]
    duty = np.asarray(contacts, np.float64).mean(axis=0)
    # stance centre at phase -arg(C) / 2π (in strides), touchdown half a duty factor before it
    touchdown = -np.angle(coefficient) / (2.0 * np.pi) - duty / 2.0
    offsets = np.mod(touchdown - touchdown[0], 1.0)
    offsets[amplitude < MIN_FUNDAMENTAL_AMPLITUDE] = np.nan
    return offsets + np.where(np.isnan(offsets[0]), np.nan, 0.0)


def circular_distance(x: np.ndarray | float) -> np.ndarray | float:
    """Distance of ``x`` (strides, any real) to the nearest whole stride, in [0, 0.5]."""
    r = np.mod(x, 1.0)
    return np.minimum(r, 1.0 - r)


def limb_phase(offsets: np.ndarray) -> float:
    """Circular mean of the two sides' hind-after-fore touchdown offsets ``δ_RL − δ_FL``, ``δ_RR − δ_FR``, in
    [0, 1) (strides), of footfall offsets ``[4]``."""
    sides = np.array([offsets[2] - offsets[0], offsets[3] - offsets[1]])
    return float(np.mod(np.angle(np.sum(np.exp(2j * np.pi * sides))) / (2.0 * np.pi), 1.0))


def classify(duty: Sequence[float], offsets: Sequence[float]) -> str:
    """The gait class (one of :data:`GAIT_CLASSES`) of duty factors ``[4]`` and footfall offsets ``[4]``
    (strides, FL = 0; NaN = no phase), by the table in the module docstring."""
    duty, offsets = np.asarray(duty, np.float64), np.asarray(offsets, np.float64)
    if np.all(duty >= STAND_MIN_DUTY):
        return "stand"
    if np.any(np.isnan(offsets)):
        return "irregular"
    front = offsets[1] - offsets[0]
    hind = offsets[3] - offsets[2]
    side = circular_distance(limb_phase(offsets))
    if circular_distance(front - 0.5) <= PAIR_TOLERANCE and circular_distance(hind - 0.5) <= PAIR_TOLERANCE:
        if np.mean(duty) >= WALK_MIN_DUTY:
            return "walk"
        return "pace" if side < COUPLET_BOUNDARY else "trot"
    if circular_distance(front) <= PAIR_TOLERANCE and circular_distance(hind) <= PAIR_TOLERANCE:
        return "pronk" if side <= PAIR_TOLERANCE else "bound"
    return "gallop"


@dataclasses.dataclass(frozen=True)
class Footfalls:
    """Footfall timing of one contact pattern."""

    stride_hz: float
    """Stride frequency (Hz); NaN when no foot steps."""
    duty: tuple[float, float, float, float]
    """Fraction of the time each foot is in contact."""
    offsets: tuple[float, float, float, float]
    """Touchdown of each foot after FL's (strides, FL = 0); NaN for a foot without a phase."""
    gait: str
    """One of :data:`GAIT_CLASSES`."""

    def as_dict(self) -> dict:
        return {"stride_hz": self.stride_hz, "duty": list(self.duty), "phase_offsets": list(self.offsets),
                "gait": self.gait}


def footfalls(contacts: np.ndarray, dt: float) -> Footfalls:
    """Stride frequency, duty factors, footfall offsets and gait class of contact booleans ``[T, 4]``."""
    frequency = stride_frequency(contacts, dt)
    duty = np.asarray(contacts, np.float64).mean(axis=0)
    offsets = footfall_phases(contacts, dt, frequency)
    return Footfalls(stride_hz=frequency, duty=tuple(float(d) for d in duty),
                     offsets=tuple(float(o) for o in offsets), gait=classify(duty, offsets))


THIGH_JOINTS = slice(1, 12, 3)
"""The four thigh joints in a joint vector ``[12]`` (legs FL, FR, RL, RR; hip, thigh, calf each)."""
EXCURSION_PERCENTILES = (5.0, 95.0)
"""A joint's excursion is the spread between these percentiles of its angle: robust to a single stumble."""


def mean_swing_s(contacts: np.ndarray, dt: float) -> float:
    """Mean duration (s) of the complete swings in contact booleans ``[T, 4]`` sampled every ``dt`` s: runs of no
    contact with a contact before and after them, over all four feet (a swing cut by the window's start or end
    is not counted); NaN without a complete swing. A foot's swing is what ``feet_air_time`` pays for at its
    touchdown."""
    c = np.asarray(contacts, bool)
    if c.ndim != 2 or c.shape[1] != 4:
        raise ValueError(f"contacts have shape {c.shape}: expected [T, 4] booleans (legs FL, FR, RL, RR)")
    edges = np.diff(c.astype(np.int8), axis=0)  # −1: lift-off after step t, +1: touchdown after step t
    durations = []
    for foot in range(c.shape[1]):
        lift_offs = np.flatnonzero(edges[:, foot] == -1)
        touchdowns = np.flatnonzero(edges[:, foot] == 1)
        if lift_offs.size == 0:
            continue
        touchdowns = touchdowns[touchdowns > lift_offs[0]]  # a touchdown before the first lift-off ends no swing
        count = min(lift_offs.size, touchdowns.size)
        durations.append(touchdowns[:count] - lift_offs[:count])
    flights = np.concatenate(durations) if durations else np.zeros(0)
    return float(np.mean(flights) * dt) if flights.size else math.nan


def stride_length(speed: float, frequency: float) -> float:
    """Distance covered in one stride (m) at a horizontal ``speed`` (m/s) and stride ``frequency`` (Hz); NaN
    where there is no stride (frequency NaN or not positive)."""
    if not (math.isfinite(frequency) and frequency > 0.0):
        return math.nan
    return abs(float(speed)) / frequency


def thigh_excursion(joint_angles: np.ndarray) -> float:
    """Mean over the four legs of the thigh joint's excursion (rad): the spread between the
    :data:`EXCURSION_PERCENTILES` of its angle over joint angles ``[T, 12]`` (legs FL, FR, RL, RR; hip, thigh,
    calf each). How far the legs swing fore and aft: at one speed, short quick strides swing less."""
    angles = np.asarray(joint_angles, np.float64)
    if angles.ndim != 2 or angles.shape[1] != 12 or angles.shape[0] < 2:
        raise ValueError(f"joint angles have shape {angles.shape}: expected [T >= 2, 12]")
    low, high = np.percentile(angles[:, THIGH_JOINTS], EXCURSION_PERCENTILES, axis=0)
    return float(np.mean(high - low))
