"""The evaluation's forward-speed sweep: speeds × start poses, cost of transport, footfalls, gait class.

Built on the per-speed measurements of :mod:`amp_jax.analysis.speed`.

The speed sweep commands ``step, 2·step, …`` up to the config's largest forward command
(``env.command_lin_vel_x[1]``), each from ``S`` start poses (default joint angles plus U[±noise] per seed), all
``K × S`` rollouts in one jit. Per rollout, over the measured window of states ``t = 0 … T_m − 1``:

- achieved speed, tracking error, falls and phase correlations as above;
- **cost of transport** ``CoT = W / (m g d)``: ``W`` the motors' work between the window's first and last state
  (:class:`amp_jax.envs.a1_amp.MotorWork`, summed over the control steps ``1 … T_m − 1``), ``m`` the robot's
  mass from the MJCF (:attr:`~amp_jax.envs.a1_amp.A1AmpEnv.robot_mass`), ``g`` = :data:`GRAVITY` and ``d``
  the base's horizontal displacement between those states; both the absolute-work CoT (``Σ|τ·q̇|·dt``) and
  the positive-work one (``Σ max(τ·q̇, 0)·dt``). Undefined (NaN) below :data:`MIN_COT_DISTANCE`;
- footfalls (:mod:`amp_jax.analysis.footfall`): stride frequency, duty factors, the phase offsets of the four feet and
  the gait class.

Per speed these are averaged over the seeds that did not fall (offsets circularly); the gait class is the most
common among them (:data:`FELL` when every seed fell), and a gait transition is a change of class between
neighbouring speeds.

Shapes: ``K`` speeds, ``S`` seeds, ``T`` control steps (settle + measure), legs FL, FR, RL, RR.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from amp_jax.analysis import footfall, gait
from amp_jax.analysis.speed import SpeedResult, measure, sweep_commands

SWEEP_SPEED_STEP = 0.2
"""Spacing of the sweep's forward commands, and its slowest one (m/s)."""
SWEEP_SEEDS = 3
"""Start poses per speed."""
SWEEP_SETTLE_S = 2.0
"""Seconds at each command before the sweep measures."""
SWEEP_MEASURE_S = 6.0
"""Seconds the sweep measures at each command: 7–15 strides at 1.2–2.5 Hz."""
SWEEP_INITIAL_JOINT_NOISE = 0.05
"""Half-width of the uniform perturbation of the default joint angles that makes the seeds differ (rad)."""
GRAVITY = 9.81
"""``g`` of the cost of transport (m/s²): the magnitude of the MJCF scene's gravity."""
MIN_COT_DISTANCE = 0.1
"""Shortest displacement (m) over the window for which a cost of transport is reported."""
FELL = "fell"
"""The gait of a speed at which every seed fell."""


@dataclasses.dataclass(frozen=True)
class SweepSettings:
    """What the evaluation's speed sweep commands and measures."""

    speed_step: float = SWEEP_SPEED_STEP
    """Spacing of the forward commands and the slowest one (m/s)."""
    max_speed: float | None = None
    """Fastest command (m/s); None: the config's ``env.command_lin_vel_x[1]``."""
    seeds: int = SWEEP_SEEDS
    settle_s: float = SWEEP_SETTLE_S
    measure_s: float = SWEEP_MEASURE_S
    initial_joint_noise: float = SWEEP_INITIAL_JOINT_NOISE
    """Rad; see :data:`SWEEP_INITIAL_JOINT_NOISE`."""
    seed: int = 0
    """PRNG seed of the start poses."""

    def speeds(self, command_lin_vel_x: Sequence[float]) -> np.ndarray:
        """The commands ``[K]`` (m/s), up to ``max_speed`` or else the top of ``command_lin_vel_x``."""
        top = command_lin_vel_x[1] if self.max_speed is None else self.max_speed
        return sweep_speeds(top, self.speed_step)


def sweep_speeds(max_speed: float, step: float) -> np.ndarray:
    """``step, 2·step, …`` up to ``max_speed`` (m/s), ``[K]``; raises ValueError when ``max_speed < step``."""
    count = int(np.floor(max_speed / step + 1e-6))
    if step <= 0 or count < 1:
        raise ValueError(f"speed sweep: no command in (0, {max_speed:g}] m/s in steps of {step:g} m/s")
    return np.round(step * np.arange(1, count + 1), 6)


def sweep_rows(env_cfg: Any, settings: SweepSettings) -> tuple[np.ndarray, Any]:
    """The sweep's speeds ``[K]`` (m/s) and its rollout rows (:class:`amp_jax.analysis.rollout.RolloutRows`): every
    speed from ``settings.seeds`` start poses, row ``k · S + s`` speed ``k`` from pose ``s`` (keys split from
    ``settings.seed``)."""
    from amp_jax.analysis.rollout import RolloutRows

    speeds = settings.speeds(env_cfg.command_lin_vel_x)
    commands = sweep_commands(speeds, settings.settle_s + settings.measure_s, env_cfg.control_dt)  # [K, T, 3]
    keys = np.asarray(jax.random.key_data(jax.random.split(jax.random.key(settings.seed), settings.seeds)))
    rows = RolloutRows(commands=np.repeat(commands, settings.seeds, axis=0), key_data=np.tile(keys, (len(speeds), 1)),
                       start_noise=np.full(len(speeds) * settings.seeds, settings.initial_joint_noise, np.float32))
    return np.asarray(speeds), rows


def sweep_of(trajectory: Any, speeds: np.ndarray, settings: SweepSettings, mass: float, control_dt: float
             ) -> SweepResult:
    """The :class:`SweepResult` of the rollout of :func:`sweep_rows` (NumPy leaves ``[K · S, T, ...]``)."""
    by_speed = jax.tree.map(lambda x: x.reshape(len(speeds), settings.seeds, *x.shape[1:]), trajectory)
    summaries = summarize_sweep(by_speed, speeds, int(round(settings.settle_s / control_dt)), mass, control_dt)
    return SweepResult(settings=settings, mass=mass, summaries=tuple(summaries))


def horizontal_distance(base_xy: np.ndarray) -> float:
    """Horizontal displacement ``‖xy_{T−1} − xy_0‖`` (m) of base positions ``[T, 2]`` (world)."""
    base_xy = np.asarray(base_xy, np.float64)
    return float(np.linalg.norm(base_xy[-1] - base_xy[0]))


def path_length(base_xy: np.ndarray) -> float:
    """Horizontal distance travelled ``Σ ‖xy_{t+1} − xy_t‖`` (m) along base positions ``[T, 2]`` (world): on a
    circle, its circumference where :func:`horizontal_distance` is nothing."""
    base_xy = np.asarray(base_xy, np.float64)
    return float(np.sum(np.linalg.norm(np.diff(base_xy, axis=0), axis=1)))


def cost_of_transport(work: np.ndarray, distance: float, mass: float, gravity: float = GRAVITY) -> float:
    """``Σ work / (mass · gravity · distance)`` (dimensionless) of per-step works ``[T]`` (J) over ``distance``
    (m); NaN below :data:`MIN_COT_DISTANCE`."""
    if not distance >= MIN_COT_DISTANCE:
        return float("nan")
    return float(np.sum(np.asarray(work, np.float64)) / (mass * gravity * distance))


@dataclasses.dataclass(frozen=True)
class SweepRun:
    """One rollout of the sweep (one command, one start pose), measured after settling."""

    speed: SpeedResult
    """Tracking, falls and contact statistics (:func:`measure`)."""
    footfalls: footfall.Footfalls
    distance: float
    """Horizontal displacement of the base over the window (m)."""
    cot: float
    """Cost of transport of the absolute motor work (NaN below :data:`MIN_COT_DISTANCE`)."""
    cot_positive: float
    """Cost of transport of the positive motor work."""

    def as_dict(self) -> dict[str, Any]:
        return {**self.speed.as_dict(), **self.footfalls.as_dict(), "distance": self.distance, "cot": self.cot,
                "cot_positive": self.cot_positive}


def measure_run(command: np.ndarray, vx: np.ndarray, foot_heights: np.ndarray, base_xy: np.ndarray,
                work: Any, fell: bool, mass: float, control_dt: float) -> SweepRun:
    """One rollout's :class:`SweepRun` from its measured window of ``T`` states: ``command [T]``, ``vx [T]``
    (m/s), ``foot_heights [T, 4]`` (m), ``base_xy [T, 2]`` (m, world) and ``work`` (a
    :class:`~amp_jax.envs.a1_amp.MotorWork` of ``[T]`` leaves, each the step into that state: rows 1 … T − 1
    lie between the first and the last state), ``fell`` over the whole rollout, ``mass`` (kg)."""
    result = measure(command, vx, foot_heights, fell)
    distance = horizontal_distance(base_xy)
    return SweepRun(speed=result, footfalls=footfall.footfalls(result.contacts, control_dt), distance=distance,
                    cot=cost_of_transport(np.asarray(work.absolute)[1:], distance, mass),
                    cot_positive=cost_of_transport(np.asarray(work.positive)[1:], distance, mass))


def _finite_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _circular_mean(values: Sequence[float]) -> float:
    finite = np.asarray([v for v in values if np.isfinite(v)])
    if finite.size == 0:
        return float("nan")
    return float(np.mod(np.angle(np.sum(np.exp(2j * np.pi * finite))) / (2.0 * np.pi), 1.0))


def majority_gait(gaits: Sequence[str]) -> str:
    """The most common of ``gaits`` (ties: the earlier in :data:`amp_jax.analysis.footfall.GAIT_CLASSES`); :data:`FELL`
    when empty."""
    if not gaits:
        return FELL
    order = {g: i for i, g in enumerate(footfall.GAIT_CLASSES)}
    return min(set(gaits), key=lambda g: (-list(gaits).count(g), order.get(g, len(order))))


@dataclasses.dataclass(frozen=True)
class SpeedSummary:
    """The sweep at one command: its runs, and their means over the seeds that did not fall (NaN if none)."""

    command: float
    runs: tuple[SweepRun, ...]

    @property
    def upright(self) -> tuple[SweepRun, ...]:
        return tuple(r for r in self.runs if not r.speed.fell)

    @property
    def gait(self) -> str:
        return majority_gait([r.footfalls.gait for r in self.upright])

    def _mean(self, value: Callable[[SweepRun], float]) -> float:
        return _finite_mean([value(r) for r in self.upright])

    @property
    def achieved(self) -> float:
        return self._mean(lambda r: r.speed.achieved)

    @property
    def cot(self) -> float:
        return self._mean(lambda r: r.cot)

    @property
    def cot_positive(self) -> float:
        return self._mean(lambda r: r.cot_positive)

    @property
    def duty(self) -> tuple[float, ...]:
        return tuple(_finite_mean([r.footfalls.duty[i] for r in self.upright]) for i in range(4))

    @property
    def offsets(self) -> tuple[float, ...]:
        return tuple(_circular_mean([r.footfalls.offsets[i] for r in self.upright]) for i in range(4))

    def as_dict(self) -> dict[str, Any]:
        return {"command": self.command, "gait": self.gait,
                "fell_fraction": float(np.mean([r.speed.fell for r in self.runs])),
                "achieved": self.achieved, "vx_rms": self._mean(lambda r: r.speed.vx_rms),
                "cot": self.cot, "cot_positive": self.cot_positive,
                "stride_hz": self._mean(lambda r: r.footfalls.stride_hz),
                "distance": self._mean(lambda r: r.distance), "duty": list(self.duty),
                "phase_offsets": list(self.offsets), "gaits": [r.footfalls.gait for r in self.runs],
                "runs": [r.as_dict() for r in self.runs]}


def summarize_sweep(trajectory: Any, commands: np.ndarray, settle_steps: int, mass: float, control_dt: float
                    ) -> list[SpeedSummary]:
    """Per-command summaries of a sweep trajectory ``[K, S, T, ...]`` (NumPy or JAX arrays) at ``commands
    [K]`` (m/s), measuring from ``settle_steps`` on."""
    t = slice(settle_steps, None)
    command = np.asarray(trajectory.command)[:, :, t, 0]
    vx = np.asarray(trajectory.base_lin_vel)[:, :, t, 0]
    heights = np.asarray(trajectory.foot_heights)[:, :, t]
    base_xy = np.asarray(trajectory.qpos)[:, :, t, :2]
    work = jax.tree.map(lambda x: np.asarray(x)[:, :, t], trajectory.motor_work)
    fell = np.any(np.asarray(trajectory.terminated), axis=-1)
    return [SpeedSummary(command=float(commands[k]), runs=tuple(
        measure_run(command[k, j], vx[k, j], heights[k, j], base_xy[k, j],
                    jax.tree.map(lambda x, k=k, j=j: x[k, j], work), bool(fell[k, j]), mass, control_dt)
        for j in range(command.shape[1]))) for k in range(command.shape[0])]


def gait_transitions(summaries: Sequence[SpeedSummary]) -> list[dict[str, Any]]:
    """Changes of gait class between neighbouring commands: ``{"from_speed", "to_speed", "from", "to"}``."""
    return [{"from_speed": a.command, "to_speed": b.command, "from": a.gait, "to": b.gait}
            for a, b in zip(summaries[:-1], summaries[1:]) if a.gait != b.gait]


def gait_thresholds() -> dict[str, Any]:
    """The classification's constants (:mod:`amp_jax.analysis.footfall`), for the record."""
    return {"contact_height_threshold_m": gait.CONTACT_HEIGHT_THRESHOLD,
            "stride_hz_band": [footfall.MIN_STRIDE_HZ, footfall.MAX_STRIDE_HZ],
            "min_fundamental_amplitude": footfall.MIN_FUNDAMENTAL_AMPLITUDE,
            "stand_min_duty": footfall.STAND_MIN_DUTY, "pair_tolerance": footfall.PAIR_TOLERANCE,
            "walk_min_duty": footfall.WALK_MIN_DUTY, "couplet_boundary": footfall.COUPLET_BOUNDARY}


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """The evaluation's speed sweep: its settings, the robot's mass and one summary per command."""

    settings: SweepSettings
    mass: float
    """Robot mass (kg) of the cost of transport."""
    summaries: tuple[SpeedSummary, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"settings": dataclasses.asdict(self.settings), "robot_mass_kg": self.mass, "gravity": GRAVITY,
                "gait_thresholds": gait_thresholds(), "speeds": [s.as_dict() for s in self.summaries],
                "transitions": gait_transitions(self.summaries)}


def run_sweep(env: Any, policy_fn: Callable, params: Any, settings: SweepSettings = SweepSettings()
              ) -> SweepResult:
    """The speed sweep of the deterministic policy in ``env`` (an :func:`amp_jax.analysis.rollout.evaluation_env_config`
    A1 env): one compile, one call, then NumPy."""
    from amp_jax.analysis.rollout import run_rows

    speeds, rows = sweep_rows(env.cfg, settings)
    (trajectory,) = run_rows(env, policy_fn, params, [rows])
    return sweep_of(trajectory, speeds, settings, env.robot_mass, env.cfg.control_dt)
