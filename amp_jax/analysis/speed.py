"""Forward-speed sweep of a deterministic policy: hold each speed, let the gait settle, then measure it.

One noise-free A1 env per commanded speed (the evaluation env of :func:`amp_jax.analysis.rollout.evaluation_env_config`,
starting from the default pose), all vmapped in one jitted rollout of the mean action: ``settle_s`` seconds to
reach a steady gait, then ``measure_s`` seconds measured. Per speed it reports the achieved forward speed, the
RMS error of v_x against the command, whether the robot fell, and the gait: duty factor per foot and the phase
correlation of the diagonal (FL–RR, FR–RL) and lateral (FL–FR, RL–RR) pairs (:mod:`amp_jax.analysis.gait`).

Uses: the training loop's periodic probe (``train.probe_interval``: does the *mean* action walk yet, or only
the exploration noise?), the evaluation's trot check (:func:`trot_check`, the project's goal at 0.8 m/s) and
its speed sweep (:func:`run_sweep`, ``python -m amp_jax.evaluate RUN --sweep``).

Shapes: ``K`` speeds, ``S`` seeds, ``T`` control steps (settle + measure), legs FL, FR, RL, RR.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from amp_jax.analysis import footfall, gait

DIAGONAL_PAIRS = ((0, 3), (1, 2))
"""FL–RR and FR–RL: in phase in a trot."""
LATERAL_PAIRS = ((0, 1), (2, 3))
"""FL–FR and RL–RR: in anti-phase in a trot (and in a pace)."""

TROT_SPEED = 0.8
"""Forward command of the trot check (m/s)."""
TROT_SETTLE_S = 2.0
"""Seconds at the command before the trot check measures."""
TROT_MEASURE_S = 8.0
"""Seconds the trot check measures."""
TROT_MAX_VX_RMS = 0.15
"""Largest forward-velocity RMS error of a passing trot (m/s)."""
TROT_DUTY_RANGE = (0.35, 0.65)
"""Duty factor every foot of a passing trot lies in."""
TROT_MIN_DIAGONAL_PHI = 0.5
"""Smallest phase correlation of each diagonal pair of a passing trot (touch down together)."""
TROT_MAX_LATERAL_PHI = -0.2
"""Largest phase correlation of each lateral pair of a passing trot (alternate)."""
TROT_MIN_CONTACT_SIMILARITY = 0.6
"""Smallest contact similarity to the reference trot clip (:func:`amp_jax.analysis.gait.contact_pattern_similarity`)."""


def sweep_commands(speeds: Sequence[float], duration_s: float, control_dt: float) -> np.ndarray:
    """Commands ``[K, T, 3]``: speed ``k`` forward, no lateral speed, no yaw, for ``T = round(duration / dt)``."""
    steps = int(round(duration_s / control_dt))
    commands = np.zeros((len(speeds), steps, 3), np.float32)
    commands[:, :, 0] = np.asarray(speeds, np.float32)[:, None]
    return commands


def make_sweep_rollout(env: Any, policy_fn: Callable[[Any, jax.Array], jax.Array]) -> Callable:
    """Jitted ``rollout(params, commands [K, T, 3], key) -> Trajectory [K, T, ...]`` (one env per row).

    ``env`` is an A1 env with an evaluation config (:func:`amp_jax.analysis.rollout.evaluation_env_config`).
    """
    from amp_jax.analysis.rollout import make_rollout

    return jax.jit(jax.vmap(make_rollout(env, policy_fn), in_axes=(None, 0, None)))


@dataclasses.dataclass(frozen=True)
class SpeedResult:
    """The gait at one commanded speed, measured after settling."""

    command: float
    """Commanded forward speed (m/s)."""
    achieved: float
    """Mean forward speed over the measured window (m/s, base frame)."""
    vx_rms: float
    """RMS of command − v_x over the measured window (m/s)."""
    fell: bool
    """The env's termination test fired at any step (settling included)."""
    duty: tuple[float, float, float, float]
    """Fraction of the window each foot is in contact."""
    diagonal_phi: tuple[float, float]
    """Phase correlation of FL–RR and FR–RL."""
    lateral_phi: tuple[float, float]
    """Phase correlation of FL–FR and RL–RR."""
    contacts: np.ndarray = dataclasses.field(repr=False)
    """Contact booleans of the measured window ``[T_m, 4]``."""

    def as_dict(self) -> dict[str, Any]:
        return {"command": self.command, "achieved": self.achieved, "vx_rms": self.vx_rms, "fell": self.fell,
                "duty": list(self.duty), "diagonal_phi": list(self.diagonal_phi),
                "lateral_phi": list(self.lateral_phi)}


def measure(command: np.ndarray, vx: np.ndarray, foot_heights: np.ndarray, fell: bool) -> SpeedResult:
    """One speed's result from its measured window: ``command [T]`` and ``vx [T]`` (m/s), ``foot_heights
    [T, 4]`` (m, foot-sphere centres above the floor), ``fell`` over the whole run."""
    command, vx = np.asarray(command, np.float64), np.asarray(vx, np.float64)
    contacts = gait.contacts_from_heights(np.asarray(foot_heights))
    corr = gait.phase_correlation(contacts)
    return SpeedResult(
        command=float(command[0]), achieved=float(np.mean(vx)),
        vx_rms=float(np.sqrt(np.mean((command - vx) ** 2))), fell=bool(fell),
        duty=tuple(float(d) for d in gait.duty_factors(contacts)),
        diagonal_phi=tuple(float(corr[i, j]) for i, j in DIAGONAL_PAIRS),
        lateral_phi=tuple(float(corr[i, j]) for i, j in LATERAL_PAIRS), contacts=contacts)


def summarize(trajectory: Any, settle_steps: int) -> list[SpeedResult]:
    """Per-speed results of a sweep trajectory ``[K, T, ...]`` (NumPy or JAX arrays), measuring from
    ``settle_steps`` on."""
    command = np.asarray(trajectory.command)[:, settle_steps:, 0]
    vx = np.asarray(trajectory.base_lin_vel)[:, settle_steps:, 0]
    heights = np.asarray(trajectory.foot_heights)[:, settle_steps:]
    terminated = np.asarray(trajectory.terminated)
    return [measure(command[k], vx[k], heights[k], bool(np.any(terminated[k]))) for k in range(command.shape[0])]


def probe_metrics(results: Sequence[SpeedResult], reference_contacts: np.ndarray | None = None
                  ) -> dict[str, float]:
    """Scalars for the training log: ``probe/vx_rms`` (mean over speeds), ``probe/achieved_<v>`` per speed,
    ``probe/fell`` (fraction of speeds), ``probe/duty``, ``probe/diagonal_phi``, ``probe/lateral_phi`` (means over
    speeds and feet or pairs) and, given the reference clip's contacts ``[T_r, 4]``, ``probe/contact_similarity``."""
    metrics = {
        "probe/vx_rms": float(np.mean([r.vx_rms for r in results])),
        "probe/fell": float(np.mean([r.fell for r in results])),
        "probe/duty": float(np.mean([r.duty for r in results])),
        "probe/diagonal_phi": float(np.mean([r.diagonal_phi for r in results])),
        "probe/lateral_phi": float(np.mean([r.lateral_phi for r in results])),
    }
    metrics.update({f"probe/achieved_{r.command:g}": r.achieved for r in results})
    if reference_contacts is not None:
        metrics["probe/contact_similarity"] = float(np.mean([
            gait.contact_pattern_similarity(r.contacts, reference_contacts).overall for r in results]))
    return metrics


def probe_cot_metrics(speeds: Sequence[float], base_xy: np.ndarray, work_positive: np.ndarray, fell: np.ndarray,
                      mass: float) -> dict[str, float]:
    """The probe's energy: ``probe/cot_positive_<v>`` per forward speed ``v`` and ``probe/cot_positive``, their
    mean over the speeds whose rollout stayed up and travelled (NaN if none). Inputs cover the measured window of
    ``T`` states: ``base_xy [K, T, 2]`` (m, world), ``work_positive [K, T]`` (J, each the positive motor work of
    the step into that state, so rows ``1 … T − 1`` lie inside the window), ``fell [K]`` over the whole rollout,
    ``mass`` (kg). The cost of transport and its distance are the evaluation's
    (:func:`amp_jax.analysis.sweep.cost_of_transport`, NaN on a fall or below its shortest distance)."""
    from amp_jax.analysis import sweep

    values = {}
    for k, v in enumerate(speeds):
        cot = sweep.cost_of_transport(np.asarray(work_positive[k])[1:], sweep.horizontal_distance(base_xy[k]), mass)
        values[f"probe/cot_positive_{float(v):g}"] = float("nan") if bool(fell[k]) else cot
    finite = [c for c in values.values() if np.isfinite(c)]
    return {**values, "probe/cot_positive": float(np.mean(finite)) if finite else float("nan")}


def probe_stride_metrics(speeds: Sequence[float], foot_forces: np.ndarray, fell: np.ndarray, dt: float
                         ) -> dict[str, float]:
    """The probe's stride: ``probe/stride_hz_<v>`` per forward speed ``v`` and ``probe/stride_hz``, their mean over
    the speeds whose rollout stayed up and stepped (NaN if none). Footfalls come from the contact forces, as in the
    command grid (:func:`amp_jax.analysis.gait.contacts_from_forces`, then
    :func:`amp_jax.analysis.footfall.stride_frequency`): ``foot_forces [K, T, 4]`` (N) over the measured window,
    sampled every ``dt`` s; ``fell [K]`` over the whole rollout. NaN at a speed that fell or where no foot
    changes contact."""
    values = {}
    for k, v in enumerate(speeds):
        hz = footfall.stride_frequency(gait.contacts_from_forces(np.asarray(foot_forces[k])), dt)
        values[f"probe/stride_hz_{float(v):g}"] = float("nan") if bool(fell[k]) else hz
    finite = [f for f in values.values() if np.isfinite(f)]
    return {**values, "probe/stride_hz": float(np.mean(finite)) if finite else float("nan")}


def command_label(command: Sequence[float]) -> str:
    """A probe command's name in metric keys: ``(0.5, 0, -1)`` → ``0.5_0_-1``."""
    return "_".join(f"{float(c):g}" for c in command)


def command_tracking_metrics(commands: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """Per-axis tracking of held commands ``[K, 3]`` from the measured (v_x, v_y, yaw rate) ``[K, T_m, 3]``:
    ``probe/vy_rms`` and ``probe/yaw_rms`` (RMS error over the window, mean over commands), and per command its
    mean response ``probe/vx_<label>``, ``probe/vy_<label>`` and ``probe/yaw_<label>`` (:func:`command_label`;
    the forward one shows, e.g., whether a backward command is walked or stood)."""
    commands, measured = np.asarray(commands, np.float64), np.asarray(measured, np.float64)
    rms = np.sqrt(np.mean((measured - commands[:, None, :]) ** 2, axis=1))  # [K, 3]
    metrics = {"probe/vy_rms": float(np.mean(rms[:, 1])), "probe/yaw_rms": float(np.mean(rms[:, 2]))}
    for command, response in zip(commands, np.mean(measured, axis=1)):
        label = command_label(command)
        metrics[f"probe/vx_{label}"] = float(response[0])
        metrics[f"probe/vy_{label}"] = float(response[1])
        metrics[f"probe/yaw_{label}"] = float(response[2])
    return metrics


def make_probe(env: Any, policy_fn: Callable, speeds: Sequence[float], settle_s: float, measure_s: float,
               reference_contacts: np.ndarray | None = None, seed: int = 0,
               commands: Sequence[Sequence[float]] = ()) -> Callable[[Any], dict[str, float]]:
    """``probe(params) -> metrics``: :func:`probe_metrics`, :func:`probe_cot_metrics` and
    :func:`probe_stride_metrics` of a sweep at forward ``speeds`` and, for the extra held ``commands``
    ``[(v_x, v_y, yaw rate), ...]`` rolled out beside them, :func:`command_tracking_metrics`; compiles on its
    first call."""
    dt = env.cfg.control_dt
    steps = int(round((settle_s + measure_s) / dt))
    extra = np.broadcast_to(np.asarray(commands, np.float32).reshape(-1, 1, 3), (len(commands), steps, 3))
    all_commands = jnp.asarray(np.concatenate([sweep_commands(speeds, settle_s + measure_s, dt), extra]))
    settle_steps = int(round(settle_s / dt))
    rollout = make_sweep_rollout(env, policy_fn)
    key = jax.random.key(seed)
    num_speeds = len(speeds)

    def probe(params: Any) -> dict[str, float]:
        trajectory = jax.device_get(rollout(params, all_commands, key))
        forward = jax.tree.map(lambda x: x[:num_speeds], trajectory)
        fell = np.any(np.asarray(forward.terminated), axis=-1)
        metrics = probe_metrics(summarize(forward, settle_steps), reference_contacts)
        metrics.update(probe_cot_metrics(speeds, np.asarray(forward.qpos)[:, settle_steps:, :2],
                                         np.asarray(forward.motor_work.positive)[:, settle_steps:], fell,
                                         env.robot_mass))
        metrics.update(probe_stride_metrics(speeds, np.asarray(forward.foot_forces)[:, settle_steps:], fell, dt))
        if len(commands):
            measured = np.asarray(trajectory.measured)[num_speeds:, settle_steps:]
            metrics.update(command_tracking_metrics(np.asarray(commands, np.float64), measured))
        return metrics

    return probe


def trot_verdict(result: SpeedResult, contact_similarity: float | None) -> dict[str, Any]:
    """The project's trot goal at one speed, criterion by criterion (thresholds: this module's constants)."""
    low, high = TROT_DUTY_RANGE
    checks = {
        "no_fall": not result.fell,
        "vx_rms": result.vx_rms <= TROT_MAX_VX_RMS,
        "duty_factor": all(low <= d <= high for d in result.duty),
        "diagonal_in_phase": all(p >= TROT_MIN_DIAGONAL_PHI for p in result.diagonal_phi),
        "lateral_alternating": all(p <= TROT_MAX_LATERAL_PHI for p in result.lateral_phi),
    }
    if contact_similarity is not None:
        checks["contact_similarity"] = contact_similarity >= TROT_MIN_CONTACT_SIMILARITY
    return {**result.as_dict(), "contact_similarity": contact_similarity, "criteria": checks,
            "trots": all(checks.values())}


def trot_commands(control_dt: float) -> np.ndarray:
    """The trot check's commands ``[T, 3]``: :data:`TROT_SPEED` forward for settle + measure seconds."""
    return sweep_commands([TROT_SPEED], TROT_SETTLE_S + TROT_MEASURE_S, control_dt)[0]


def verdict_of(result: SpeedResult, reference_contacts: np.ndarray | None) -> dict[str, Any]:
    similarity = (None if reference_contacts is None else
                  gait.contact_pattern_similarity(result.contacts, reference_contacts).overall)
    return {"settle_s": TROT_SETTLE_S, "measure_s": TROT_MEASURE_S, **trot_verdict(result, similarity)}


def trot_rows(control_dt: float) -> Any:
    """The trot check's one rollout row (:class:`amp_jax.analysis.rollout.RolloutRows`), from the default pose."""
    from amp_jax.analysis.rollout import RolloutRows

    return RolloutRows.held(trot_commands(control_dt)[None], jax.random.key(0))


def trot_check_of(trajectory: Any, control_dt: float, reference_contacts: np.ndarray | None = None
                  ) -> dict[str, Any]:
    """:func:`trot_verdict` of the rollout of :func:`trot_rows` (NumPy leaves ``[1, T, ...]``)."""
    (result,) = summarize(trajectory, int(round(TROT_SETTLE_S / control_dt)))
    return verdict_of(result, reference_contacts)


def trot_check(env: Any, policy_fn: Callable, params: Any, reference_contacts: np.ndarray | None = None
               ) -> dict[str, Any]:
    """:func:`trot_verdict` of the deterministic policy in MJX at :data:`TROT_SPEED` after :data:`TROT_SETTLE_S`."""
    from amp_jax.analysis.rollout import run_rows

    dt = env.cfg.control_dt
    (trajectory,) = run_rows(env, policy_fn, params, [trot_rows(dt)])
    return trot_check_of(trajectory, dt, reference_contacts)
