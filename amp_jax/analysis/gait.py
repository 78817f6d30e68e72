"""Gait similarity: how close a policy's motion is to the reference clips, as plain NumPy numbers.

Two signals, both computed from recorded trajectories (no networks), so they can be tracked over training where
the discriminator's own output is not comparable between iterations:

1. **AMP-feature distance** (:func:`amp_feature_distance`): each policy AMP frame ``[43]`` is compared with its
   nearest reference frame, after dividing every feature by the reference's standard deviation of that feature
   (floored at :data:`FEATURE_STD_FLOOR`, so near-constant features such as the root height cannot dominate).
   The distance of one frame is the root-mean-square of the standardised differences (the Euclidean norm
   divided by √43), so 1.0 means "one reference standard deviation off per feature, on average". Reported both
   ways: ``policy_to_reference`` (mean over policy frames: does the policy only do reference-like things?) and
   ``reference_to_policy`` (mean over reference frames: does the policy cover the reference, or has it
   collapsed onto a few poses?), and their mean, ``symmetric``. Nearest neighbours ignore time, so the two
   trajectories need no alignment and may have different frame rates.
2. **Contact-pattern agreement** (:func:`contact_pattern_similarity`): per-foot duty factor (fraction of time
   in contact) and the 4 × 4 matrix of pairwise in-phase contact correlations (Pearson correlation of the
   contact booleans, i.e. the φ coefficient; +1 = the two feet touch down and lift off together, −1 = in
   anti-phase). A trot has FL–RR and FR–RL in phase, a pace FL–RL and FR–RR. Both are compared with a
   reference clip's and mapped to [0, 1]; their product is the contact similarity (1 = same gait).

Contacts of the reference clips come from their foot heights (:func:`clip_foot_heights`): the stored foot
positions (base axes, from the trunk's centre of mass) are moved to the base origin, rotated to the world by
the root quaternion and raised by the root height, giving the height of each foot-sphere centre above the
floor. A foot is in contact when that height is below :data:`CONTACT_HEIGHT_THRESHOLD`.

Arrays: ``T`` frames, legs FL, FR, RL, RR.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from amp_jax import a1
from amp_jax.motion import layout, loader
from amp_jax.motion.library import amp_features

FOOT_RADIUS = 0.02
"""Radius of the A1's foot spheres (m): a foot-sphere centre at this height touches a flat floor."""

CONTACT_HEIGHT_THRESHOLD = 0.035
"""A foot is in contact when its sphere centre is below this height (m): the radius plus 15 mm.

Why 15 mm: in the six clips, stance feet sit at 9–20 mm (retargeting noise around the 20 mm radius) and
drift up to ~30 mm in the pace clips, while swing feet rise to 60–140 mm; 35 mm lies above the stance band
and below the swing apexes, and gives the trot clips duty factors of 0.4–0.55 with the diagonal pairs in
phase (φ ≈ +0.6 to +0.75). In the simulator a loaded foot sits at the radius (less a millimetre of
penetration), so the same threshold serves the policy's rollouts."""

FEATURE_STD_FLOOR = 0.01
"""Smallest per-feature standard deviation used to standardise AMP features (m, rad, m/s, rad/s): the
resolution of the motion capture. The smallest stds of the trot clips are the root height's (~0.011 m) and
some foot coordinates' (~0.013 m)."""

LEG_PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
"""The six unordered leg pairs (indices into FL, FR, RL, RR), in the order of :func:`pair_names`."""


def pair_names() -> tuple[str, ...]:
    """``('FL-FR', 'FL-RL', 'FL-RR', 'FR-RL', 'FR-RR', 'RL-RR')``: names of :data:`LEG_PAIRS`."""
    legs = a1.LEG_NAMES
    return tuple(f"{legs[i]}-{legs[j]}" for i, j in LEG_PAIRS)


# ----------------------------------------------------------------------------------------------------------
# Reference clips: AMP frames, foot heights


def clip_amp_frames(frames: np.ndarray) -> np.ndarray:
    """AMP features ``[T, 43]`` of stored frames ``[T, 61]`` (project layout): slice 7:49, then the root height.

    :func:`amp_jax.motion.amp_features` on NumPy frames, with their shape checked.
    """
    return amp_features(_check_frames(frames))


def clip_foot_heights(frames: np.ndarray) -> np.ndarray:
    """Height of each foot-sphere centre above the floor, ``[T, 4]`` (m), of stored frames ``[T, 61]``.

    ``root_z + (R(quat) · (foot_from_com + com_offset))_z``: the stored feet are in base axes measured from the
    trunk's centre of mass; adding the centre-of-mass offset measures them from the base origin, the point
    whose world position the root position is. Agrees with MuJoCo's forward kinematics of ``mjcf/a1.xml`` posed
    by the frame to within 0.01 mm (``tests/analysis/test_gait.py``).
    """
    frames = _check_frames(frames)
    feet = frames[:, layout.FOOT_POS].reshape(-1, 4, 3) + a1.TRUNK_COM_OFFSET
    quat = frames[:, layout.ROOT_QUAT]
    quat = quat / np.linalg.norm(quat, axis=-1, keepdims=True)
    feet_world = loader.quat_rotate_inverse(loader.quat_conjugate(quat[:, None, :]), feet)  # body → world
    return frames[:, layout.ROOT_HEIGHT, None] + feet_world[..., 2]


CONTACT_FORCE_THRESHOLD = 1.0
"""A foot is in contact in a control step when the floor pushed it with more than this normal force (N): about 2 %
of the robot's weight on one foot, well above the solver's residual forces of a foot just above the floor."""


def contacts_from_forces(foot_forces: np.ndarray, threshold: float = CONTACT_FORCE_THRESHOLD) -> np.ndarray:
    """Contact booleans ``[..., 4]`` from foot normal forces ``[..., 4]`` (N): how the simulators' rollouts
    (MJX and C MuJoCo) are read; the clips, which have no forces, are read by :func:`contacts_from_heights`."""
    return np.asarray(foot_forces) > threshold


def contacts_from_heights(foot_heights: np.ndarray, threshold: float = CONTACT_HEIGHT_THRESHOLD) -> np.ndarray:
    """Contact booleans ``[T, 4]``: foot-sphere centre height ``[T, 4]`` (m) below ``threshold`` (default
    :data:`CONTACT_HEIGHT_THRESHOLD`)."""
    foot_heights = np.asarray(foot_heights)
    if foot_heights.ndim != 2 or foot_heights.shape[1] != len(a1.LEG_NAMES):
        raise ValueError(f"foot heights have shape {foot_heights.shape}: expected [T, {len(a1.LEG_NAMES)}] "
                         "(legs FL, FR, RL, RR)")
    return foot_heights < threshold


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 2 or frames.shape[1] != layout.FRAME_WIDTH:
        raise ValueError(f"motion frames have shape {frames.shape}: expected [T, {layout.FRAME_WIDTH}]")
    return frames


# ----------------------------------------------------------------------------------------------------------
# (a) AMP-feature distance


@dataclasses.dataclass(frozen=True)
class FeatureDistance:
    """Mean nearest-neighbour distances in reference-standardised AMP-feature space (RMS z-score per feature)."""

    policy_to_reference: float
    """Mean over policy frames of the distance to the nearest reference frame."""
    reference_to_policy: float
    """Mean over reference frames of the distance to the nearest policy frame (coverage)."""

    @property
    def symmetric(self) -> float:
        """Mean of the two directions."""
        return 0.5 * (self.policy_to_reference + self.reference_to_policy)

    def as_dict(self) -> dict[str, float]:
        return {"policy_to_reference": self.policy_to_reference,
                "reference_to_policy": self.reference_to_policy, "symmetric": self.symmetric}


def reference_feature_std(reference: np.ndarray, floor: float = FEATURE_STD_FLOOR) -> np.ndarray:
    """Per-feature standard deviation ``[F]`` of reference frames ``[N, F]``, floored at ``floor``."""
    reference = np.asarray(reference, dtype=np.float64)
    return np.maximum(reference.std(axis=0), floor)


def _nearest_distances(queries: np.ndarray, points: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Euclidean distance from each query ``[Q, F]`` to its nearest point ``[P, F]``, ``[Q]``."""
    points_sq = np.sum(points * points, axis=1)
    out = np.empty(queries.shape[0])
    for start in range(0, queries.shape[0], chunk):
        q = queries[start:start + chunk]
        sq = np.sum(q * q, axis=1)[:, None] - 2.0 * q @ points.T + points_sq[None, :]
        out[start:start + chunk] = np.sqrt(np.maximum(sq.min(axis=1), 0.0))
    return out


def amp_feature_distance(policy: np.ndarray, reference: np.ndarray,
                         feature_std: np.ndarray | None = None) -> FeatureDistance:
    """Nearest-neighbour distances between policy and reference AMP frames (module docstring, item 1).

    Args:
      policy: policy AMP observations ``[T, F]`` (any leading shape is flattened to frames).
      reference: reference AMP frames ``[N, F]`` (e.g. :func:`clip_amp_frames` of every clip, stacked).
      feature_std: per-feature scale ``[F]``; default :func:`reference_feature_std` of ``reference``.
    Returns:
      Both directed mean distances; each frame's distance is ``‖(x − y) / σ‖ / √F``.
    """
    policy = np.asarray(policy, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if reference.ndim != 2 or reference.shape[0] == 0:
        raise ValueError(f"reference frames have shape {reference.shape}: expected [N >= 1, F]")
    features = reference.shape[1]
    policy = policy.reshape(-1, policy.shape[-1]) if policy.ndim >= 1 else policy
    if policy.ndim != 2 or policy.shape[1] != features or policy.shape[0] == 0:
        raise ValueError(f"policy frames have shape {np.shape(policy)}: expected [T >= 1, {features}]")
    scale = reference_feature_std(reference) if feature_std is None else np.asarray(feature_std, np.float64)
    if scale.shape != (features,) or np.any(scale <= 0):
        raise ValueError(f"feature_std has shape {scale.shape}: expected [{features}] positive values")
    p, r = policy / scale, reference / scale
    norm = np.sqrt(features)
    return FeatureDistance(policy_to_reference=float(np.mean(_nearest_distances(p, r)) / norm),
                           reference_to_policy=float(np.mean(_nearest_distances(r, p)) / norm))


# ----------------------------------------------------------------------------------------------------------
# (b) Contact-pattern agreement


def duty_factors(contacts: np.ndarray) -> np.ndarray:
    """Fraction of frames each foot is in contact, ``[4]``, of contact booleans ``[T, 4]`` (checked)."""
    return np.asarray(_check_contacts(contacts), dtype=np.float64).mean(axis=0)


def phase_correlation(contacts: np.ndarray) -> np.ndarray:
    """Pairwise in-phase contact correlation ``[4, 4]`` of contact booleans ``[T, 4]``.

    Pearson correlation of the 0/1 contact signals (the φ coefficient), in [−1, 1], ones on the diagonal.
    A foot that never changes state has no phase: its off-diagonal entries are 0.
    """
    c = _check_contacts(contacts)
    centred = c - c.mean(axis=0)
    norm = np.sqrt(np.sum(centred * centred, axis=0))
    cov = centred.T @ centred
    denom = norm[:, None] * norm[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(denom > 0, cov / np.where(denom > 0, denom, 1.0), 0.0)
    np.fill_diagonal(corr, 1.0)
    return np.clip(corr, -1.0, 1.0)


def _check_contacts(contacts: np.ndarray) -> np.ndarray:
    c = np.asarray(contacts)
    if c.ndim != 2 or c.shape[1] != 4 or c.shape[0] < 2:
        raise ValueError(f"contacts have shape {c.shape}: expected [T >= 2, 4] booleans (legs FL, FR, RL, RR)")
    return c.astype(np.float64)


@dataclasses.dataclass(frozen=True)
class ContactSimilarity:
    """Agreement of two contact patterns, each score in [0, 1] (1 = identical statistics)."""

    duty: float
    """1 − mean over feet of |duty factor difference|."""
    phase: float
    """1 − mean over the six leg pairs of |phase correlation difference| / 2."""
    policy_duty: tuple[float, ...]
    reference_duty: tuple[float, ...]
    policy_phase: tuple[float, ...]
    """Phase correlation of each pair of :func:`pair_names`."""
    reference_phase: tuple[float, ...]

    @property
    def overall(self) -> float:
        """``duty · phase``: high only when both the timing within a stride and the leg coordination agree."""
        return self.duty * self.phase

    def as_dict(self) -> dict:
        return {"overall": self.overall, "duty": self.duty, "phase": self.phase,
                "policy_duty": dict(zip(a1.LEG_NAMES, self.policy_duty)),
                "reference_duty": dict(zip(a1.LEG_NAMES, self.reference_duty)),
                "policy_phase": dict(zip(pair_names(), self.policy_phase)),
                "reference_phase": dict(zip(pair_names(), self.reference_phase))}


def contact_pattern_similarity(policy_contacts: np.ndarray, reference_contacts: np.ndarray) -> ContactSimilarity:
    """Compares duty factors and pairwise phase correlations of two contact patterns ``[T, 4]`` / ``[T', 4]``.

    The trajectories need not have the same length or frame rate: only their statistics are compared.
    """
    duty_p, duty_r = duty_factors(policy_contacts), duty_factors(reference_contacts)
    corr_p, corr_r = phase_correlation(policy_contacts), phase_correlation(reference_contacts)
    rows, cols = np.array(LEG_PAIRS).T
    pairs_p, pairs_r = corr_p[rows, cols], corr_r[rows, cols]
    return ContactSimilarity(
        duty=float(1.0 - np.mean(np.abs(duty_p - duty_r))),
        phase=float(1.0 - np.mean(np.abs(pairs_p - pairs_r)) / 2.0),
        policy_duty=tuple(float(x) for x in duty_p), reference_duty=tuple(float(x) for x in duty_r),
        policy_phase=tuple(float(x) for x in pairs_p), reference_phase=tuple(float(x) for x in pairs_r))


# ----------------------------------------------------------------------------------------------------------
# Everything at once


def gait_similarity(policy_amp: np.ndarray, policy_contacts: np.ndarray, reference_clips: Sequence[np.ndarray],
                    contact_reference: np.ndarray) -> dict:
    """Both signals in one JSON-ready dict.

    Args:
      policy_amp: the policy's AMP observations ``[T, 43]``.
      policy_contacts: the policy's contact booleans ``[T, 4]``.
      reference_clips: stored frames ``[T_c, 61]`` of every reference clip (the AMP distance uses them all).
      contact_reference: stored frames ``[T_r, 61]`` of the clip whose contact pattern is the target.
    Returns:
      ``{"amp_feature_distance": {...}, "contact": {...}}`` (see :class:`FeatureDistance`,
      :class:`ContactSimilarity`).
    """
    if not reference_clips:
        raise ValueError("reference_clips is empty: expected the stored frames of at least one clip")
    reference_amp = np.concatenate([clip_amp_frames(frames) for frames in reference_clips], axis=0)
    reference_contacts = contacts_from_heights(clip_foot_heights(contact_reference))
    return {
        "amp_feature_distance": amp_feature_distance(policy_amp, reference_amp).as_dict(),
        "contact": contact_pattern_similarity(policy_contacts, reference_contacts).as_dict(),
    }
