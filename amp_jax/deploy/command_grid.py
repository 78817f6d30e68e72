"""The full task's evaluation over commands, in C MuJoCo through the exported ONNX policy.

Each command of :data:`GRID` is held from the default pose (trunk at the init height, at rest) with the
deterministic policy, as :mod:`amp_jax.deploy.mirror_check` holds its commands (:func:`held_commands`: 0.5 s at
rest command, then 8 s at the command, measured over the hold's last 75 %); no pushes, randomisation or
observation noise. Per command:

* whether it fell (anywhere in the run), the achieved mean (v_x, v_y, yaw rate) and the RMS error per axis;
* footfalls from the feet's contact forces (> 1 N, :func:`amp_jax.analysis.gait.contacts_from_forces`): stride
  frequency, duty factors, gait class (:mod:`amp_jax.analysis.footfall`);
* the stride's size: its length (the base's path over the window, a turn's arc rather than its chord, per
  stride), the thighs' excursion (:func:`amp_jax.analysis.footfall.thigh_excursion`) and the mean swing
  (:func:`amp_jax.analysis.footfall.mean_swing_s`), beside the trot clip's;
* cost of transport ``W / (m g d)`` of the motors' positive and absolute work over the window, ``d`` the base's
  horizontal displacement over it (NaN below :data:`amp_jax.analysis.sweep.MIN_COT_DISTANCE`; the paper's
  measure, on straight commands: a turn's chord is short, so its figure is not a turn's cost).

:func:`grid_goal` checks the full task's goal (the paper's AMP row for the cost of transport; stride frequency at
the trot clip's mean speed against the clip's, from the clip's foot heights).

``python -m amp_jax.deploy.command_grid RUN_DIR_OR_ONNX [--json OUT] [--png OUT]`` prints the table and the goal.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import mujoco
import numpy as np

from amp_jax import a1
from amp_jax.analysis import footfall, gait, sweep
from amp_jax.analysis.report_json import json_ready
from amp_jax.deploy import onnx_export, sim2sim
from amp_jax.deploy.mirror_check import HOLD_S, MEASURED_FRACTION, SETTLE_S, exported_policy_path, held_commands

TROT_CLIP = "motion_data/trot0.txt"
"""The clip whose mean forward speed is commanded in the ``trot clip speed`` row and whose stride frequency
that row is compared with."""

GRID: tuple[tuple[str, tuple[float, float, float]], ...] = (
    ("forward 0.4", (0.4, 0.0, 0.0)),
    ("forward 0.8", (0.8, 0.0, 0.0)),
    ("forward 1.2", (1.2, 0.0, 0.0)),
    ("forward 1.6", (1.6, 0.0, 0.0)),
    ("backward 0.5", (-0.5, 0.0, 0.0)),
    ("left 0.3", (0.3, 0.3, 0.0)),
    ("right 0.3", (0.3, -0.3, 0.0)),
    ("turn left 1.0", (0.5, 0.0, 1.0)),
    ("turn right 1.0", (0.5, 0.0, -1.0)),
    ("stand", (0.0, 0.0, 0.0)),
)
"""(name, command (v_x m/s, v_y m/s, yaw rate rad/s)); the ``trot clip speed`` row is added from the clip."""
TROT_CLIP_ROW = "trot clip speed"

PAPER_AMP_COT = {0.4: 1.07, 0.8: 0.93, 1.2: 1.02, 1.6: 1.12}
"""The paper's Table II, AMP row: cost of transport (positive work) at each forward command (m/s)."""
MAX_VX_RMS = {0.4: 0.15, 0.8: 0.15, 1.2: 0.15, 1.6: 0.25, -0.5: 0.25}
"""The goal's forward-velocity RMS bound (m/s) at each straight command's v_x."""
MAX_VY_RMS = 0.10
"""The goal's lateral-velocity RMS bound (m/s), every command."""
MAX_YAW_RMS = 0.25
"""The goal's yaw-rate RMS bound (rad/s) at the ±1.0 rad/s turns."""
MAX_STRIDE_RATIO = 1.5
"""At the trot clip's speed the stride frequency is within this factor of the clip's (either way)."""


@dataclasses.dataclass(frozen=True)
class CommandResult:
    """One held command, measured over its window."""

    name: str
    command: tuple[float, float, float]
    upright: bool
    """No fall anywhere in the run (settling included)."""
    fell_at_s: float | None
    achieved: tuple[float, float, float]
    """Mean measured (v_x, v_y, yaw rate), base frame."""
    rms: dict[str, float]
    """RMS of command − measured: ``vx``, ``vy`` (m/s), ``yaw_rate`` (rad/s)."""
    footfalls: footfall.Footfalls
    distance: float
    """Horizontal displacement of the base over the window (m)."""
    cot_positive: float
    cot_absolute: float
    stride_length_m: float
    """Horizontal path per stride (m): the base's path over the window (a turn's arc, not its chord) per stride;
    NaN without a stride."""
    thigh_excursion_rad: float
    """Mean thigh-joint excursion over the window (rad), :func:`amp_jax.analysis.footfall.thigh_excursion`."""
    swing_s: float = math.nan
    """Mean duration of the window's complete swings (s), :func:`amp_jax.analysis.footfall.mean_swing_s`."""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "command": list(self.command), "upright": self.upright,
                "fell_at_s": self.fell_at_s, "achieved": list(self.achieved), "rms": self.rms,
                **self.footfalls.as_dict(), "distance": self.distance, "cot_positive": self.cot_positive,
                "cot": self.cot_absolute, "stride_length_m": self.stride_length_m,
                "thigh_excursion_rad": self.thigh_excursion_rad, "swing_s": self.swing_s}


@dataclasses.dataclass(frozen=True)
class ClipReference:
    """The trot clip's mean forward speed (m/s), stride frequency (Hz, from its foot heights), thigh
    excursion (rad, :func:`amp_jax.analysis.footfall.thigh_excursion` over the whole clip), the RMS of its
    lateral velocity in the base frame (m/s, over the whole clip: the dog's own sway and drift, beside the goal's
    lateral RMS), the standard deviation of its yaw rate in base axes (rad/s: the dog's own yaw wobble about
    its mean turning rate, beside the goal's yaw-rate RMS) and its mean swing (s, from its foot heights,
    :func:`amp_jax.analysis.footfall.mean_swing_s`)."""

    file: str
    speed: float
    stride_hz: float
    thigh_excursion_rad: float
    lateral_rms: float = math.nan
    yaw_rate_spread: float = math.nan
    swing_s: float = math.nan

    @property
    def stride_length_m(self) -> float:
        """Distance per stride (m) at the clip's speed."""
        return footfall.stride_length(self.speed, self.stride_hz)

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "stride_length_m": self.stride_length_m}


def clip_reference(path: str | pathlib.Path = TROT_CLIP) -> ClipReference:
    """:class:`ClipReference` of a clip file (relative paths resolve against the project root)."""
    from amp_jax.config import PROJECT_ROOT
    from amp_jax.motion import layout, loader

    path = pathlib.Path(path)
    if not path.is_absolute() and not path.exists():
        path = PROJECT_ROOT / path
    clip = loader.load_clip(path)
    frames = np.asarray(clip.frames)
    contacts = gait.contacts_from_heights(gait.clip_foot_heights(frames))
    return ClipReference(file=path.name, speed=float(np.mean(frames[:, layout.BASE_LIN_VEL][:, 0])),
                         stride_hz=footfall.stride_frequency(contacts, clip.frame_duration),
                         thigh_excursion_rad=footfall.thigh_excursion(frames[:, layout.JOINT_POS]),
                         lateral_rms=float(np.sqrt(np.mean(np.square(frames[:, layout.BASE_LIN_VEL][:, 1])))),
                         yaw_rate_spread=float(np.std(frames[:, layout.BASE_ANG_VEL][:, 2])),
                         swing_s=footfall.mean_swing_s(contacts, clip.frame_duration))


def robot_mass(scene: str | pathlib.Path = a1.SCENE_XML) -> float:
    """Total body mass of the scene's model (kg): the ``m`` of the cost of transport."""
    return float(np.sum(mujoco.MjModel.from_xml_path(str(scene)).body_mass))


@dataclasses.dataclass(frozen=True)
class HeldRun:
    """What :func:`measure_run` reads of one held command's run, one row per control step, from either simulator
    (:meth:`from_sim2sim`; the MJX grid, :mod:`amp_jax.evaluation.mjx_grid`, builds it from its rollout)."""

    upright: bool
    """No fall at any control step."""
    fell_at_s: float | None
    qpos: np.ndarray
    """``[T, 19]``."""
    measured: np.ndarray
    """``[T, 3]`` (v_x, v_y, yaw rate), base frame."""
    foot_forces: np.ndarray
    """``[T, 4]`` normal force of the floor on each foot at the step's last physics step (N), legs FL, FR, RL, RR."""
    work_positive: np.ndarray
    """``[T]`` the motors' positive work over each control step (J)."""
    work_absolute: np.ndarray
    """``[T]`` the motors' absolute work over each control step (J)."""

    @classmethod
    def from_sim2sim(cls, run: sim2sim.Sim2SimResult) -> HeldRun:
        return cls(upright=run.upright, fell_at_s=run.fell_at_s, qpos=run.qpos, measured=run.measured,
                   foot_forces=run.foot_forces, work_positive=run.work_positive, work_absolute=run.work_absolute)


def measure_run(name: str, command: Sequence[float], run: HeldRun | sim2sim.Sim2SimResult, window: slice,
                mass: float, control_dt: float) -> CommandResult:
    """A :class:`CommandResult` of one run (C MuJoCo's, or any :class:`HeldRun`) over its measured ``window`` of
    control steps."""
    measured = run.measured[window]
    commanded = np.broadcast_to(np.asarray(command, np.float64), measured.shape)
    # The displacement runs from the state before the window's first step to its last state, the span of the
    # window's work.
    start = max(window.start - 1, 0)
    distance = sweep.horizontal_distance(run.qpos[start:window.stop, 0:2])
    contacts = gait.contacts_from_forces(run.foot_forces[window])
    footfalls = footfall.footfalls(contacts, control_dt)
    duration = (window.stop - start - 1) * control_dt
    path = sweep.path_length(run.qpos[start:window.stop, 0:2])
    return CommandResult(
        name=name, command=tuple(float(c) for c in command), upright=run.upright, fell_at_s=run.fell_at_s,
        achieved=tuple(float(v) for v in measured.mean(axis=0)), rms=sim2sim.tracking_rms(commanded, measured),
        footfalls=footfalls, distance=distance,
        cot_positive=sweep.cost_of_transport(run.work_positive[window], distance, mass),
        cot_absolute=sweep.cost_of_transport(run.work_absolute[window], distance, mass),
        stride_length_m=footfall.stride_length(path / duration if duration > 0 else math.nan, footfalls.stride_hz),
        thigh_excursion_rad=footfall.thigh_excursion(run.qpos[window, a1.QPOS_JOINTS]),
        swing_s=footfall.mean_swing_s(contacts, control_dt))


def grid_goal(results: Mapping[str, CommandResult], reference: ClipReference) -> dict[str, bool]:
    """The full task's goal, criterion by criterion, from :func:`evaluate_grid`'s results."""
    straight = {r.command[0]: r for r in results.values() if r.command[1] == 0.0 and r.command[2] == 0.0}
    checks = {"no_fall": all(r.upright for r in results.values())}
    for vx, bound in MAX_VX_RMS.items():
        if vx in straight:
            checks[f"vx_rms_at_{vx:g}"] = straight[vx].rms["vx"] <= bound
    checks["vy_rms"] = all(r.rms["vy"] <= MAX_VY_RMS for r in results.values())
    for r in results.values():
        if abs(r.command[2]) == 1.0:
            checks[f"yaw_rms_at_{r.command[2]:+g}"] = r.rms["yaw_rate"] <= MAX_YAW_RMS
    for vx, paper in PAPER_AMP_COT.items():
        if vx in straight:
            cot = straight[vx].cot_positive
            checks[f"cot_at_{vx:g}"] = bool(math.isfinite(cot) and cot <= paper)
    if TROT_CLIP_ROW in results:
        ratio = results[TROT_CLIP_ROW].footfalls.stride_hz / reference.stride_hz
        checks["stride_vs_clip"] = bool(math.isfinite(ratio) and 1 / MAX_STRIDE_RATIO <= ratio <= MAX_STRIDE_RATIO)
    return checks


def grid_commands(reference: ClipReference) -> tuple[tuple[str, tuple[float, float, float]], ...]:
    """:data:`GRID` and the trot clip's speed."""
    return GRID + ((TROT_CLIP_ROW, (round(reference.speed, 3), 0.0, 0.0)),)


def evaluate_grid(policy: Callable[[np.ndarray], np.ndarray], spec: sim2sim.RunnerSpec,
                  reference: ClipReference | None = None,
                  commands: Sequence[tuple[str, tuple[float, float, float]]] | None = None, *,
                  trot_phase_nudge: float = 0.0) -> dict[str, Any]:
    """Every command for ``policy(obs) -> action`` in C MuJoCo; returns the report (JSON-ready).

    ``trot_phase_nudge`` (rad, a diagnostic): start from the default pose with that thigh offset
    (:func:`amp_jax.deploy.sim2sim.initial_state`), a start that is not its own mirror image, and hold each command
    from the first step (no settling, which would let the policy return to the symmetric stance); the goal's
    conditions start from the default pose itself and settle, so a nudged report never ``passes``."""
    reference = clip_reference() if reference is None else reference
    commands = grid_commands(reference) if commands is None else tuple(commands)
    mass = robot_mass()
    start = sim2sim.initial_state(spec, trot_phase_nudge)
    settle_s = 0.0 if trot_phase_nudge else SETTLE_S
    results = {}
    for name, command in commands:
        schedule, window = held_commands(command, spec.control_dt, settle_s)
        run = sim2sim.simulate(policy, spec, schedule, start=start)
        results[name] = measure_run(name, command, run, window, mass, spec.control_dt)
    return grid_report(results, reference, mass, "C MuJoCo (ONNX policy)", settle_s, trot_phase_nudge)


def grid_report(results: Mapping[str, CommandResult], reference: ClipReference, mass: float, simulator: str,
                settle_s: float = SETTLE_S, trot_phase_nudge: float = 0.0) -> dict[str, Any]:
    """The grid's report (JSON-ready): conditions, the clip reference, each command's measures, the goal's
    criteria and whether all are met (never for a nudged start)."""
    checks = grid_goal(results, reference)
    return {"simulator": simulator,
            "conditions": {"settle_s": settle_s, "hold_s": HOLD_S, "measured_fraction": MEASURED_FRACTION,
                           "contact_force_threshold_n": gait.CONTACT_FORCE_THRESHOLD, "mass_kg": mass,
                           "trot_phase_nudge_rad": trot_phase_nudge},
            "clip_reference": reference.as_dict(),
            "results": [r.as_dict() for r in results.values()], "criteria": checks,
            "passes": all(checks.values()) and trot_phase_nudge == 0.0}


def evaluate_onnx(onnx_path: str | pathlib.Path, **kwargs: Any) -> dict[str, Any]:
    """:func:`evaluate_grid` of an exported policy (its metadata configures the runner)."""
    session = onnx_export.load_session(onnx_path)
    spec = sim2sim.RunnerSpec.from_metadata(onnx_export.read_metadata(onnx_path), str(onnx_path))
    return evaluate_grid(lambda obs: onnx_export.run_onnx(session, obs), spec, **kwargs)


def format_report(report: Mapping[str, Any]) -> str:
    """The report as a fixed-width table, the goal's criteria and the verdict."""
    head = (f"{'command':>16} {'(vx, vy, yaw)':>19}  {'achieved':>19}  {'rms vx':>6} {'vy':>5} {'yaw':>5}  "
            f"{'gait':>7} {'Hz':>5} {'m':>5} {'thigh':>5} {'swing':>5}  duty FL FR RL RR   CoT+  CoT")
    lines = [head]
    for r in report["results"]:
        cmd = "(" + ", ".join(f"{c:.2f}" for c in r["command"]) + ")"
        ach = "(" + ", ".join(f"{c:.2f}" for c in r["achieved"]) + ")"
        duty = " ".join(f"{d:.2f}" for d in r["duty"])
        fell = "" if r["upright"] else f"  fell at {r['fell_at_s']:.2f} s"
        lines.append(f"{r['name']:>16} {cmd:>19}  {ach:>19}  {r['rms']['vx']:6.3f} {r['rms']['vy']:5.3f} "
                     f"{r['rms']['yaw_rate']:5.3f}  {r['gait']:>7} {_number(r['stride_hz']):>5} "
                     f"{_number(r.get('stride_length_m')):>5} {_number(r.get('thigh_excursion_rad')):>5} "
                     f"{_number(r.get('swing_s')):>5}  {duty}  "
                     f"{_number(r['cot_positive']):>5} {_number(r['cot']):>5}{fell}")
    ref = report["clip_reference"]
    size = (f", {_number(ref['stride_length_m'])} m, thigh excursion {_number(ref['thigh_excursion_rad'])} rad"
            if "thigh_excursion_rad" in ref else "")  # reports written before the stride's size was measured
    extras = "".join(f", {label} {ref[key]:.3f} {unit}"  # each absent from reports written before it was measured
                   for key, label, unit in (("swing_s", "swing", "s"), ("lateral_rms", "lateral RMS", "m/s"),
                                            ("yaw_rate_spread", "yaw-rate spread", "rad/s"))
                   if ref.get(key) is not None and math.isfinite(ref[key]))
    lines.append(f"{ref['file']}: {ref['speed']:.2f} m/s, stride {ref['stride_hz']:.2f} Hz{size}{extras}")
    lines += [f"{name}: {'yes' if ok else 'no'}" for name, ok in report["criteria"].items()]
    if "style" in report:  # the MJX grid's: the run's own discriminator per command
        style = report["style"]
        lines.append(f"the run's discriminator (D: +1 clip, -1 policy; style reward of {style['reward_coef']:g}): "
                     f"clips D {style['d_clips']:+.2f}, reward {style['style_reward_clips']:.2f}")
        lines += [f"{name:>16}: D {score['d_policy']:+.2f}, reward {score['style_reward']:.2f}"
                  for name, score in style["commands"].items()]
    nudge = report["conditions"].get("trot_phase_nudge_rad", 0.0)
    if nudge:
        lines.append(f"started with a trot-phase nudge of {nudge:g} rad and no settling (a diagnostic: the goal "
                     "starts from the default pose and settles)")
    lines.append("grid goal met" if report["passes"] else "grid goal not met")
    return "\n".join(lines)


def _number(value: float | None) -> str:
    """Two decimals, or a dash for a measure that does not exist (no stride, no distance to divide by)."""
    return "–" if value is None or not math.isfinite(value) else f"{value:.2f}"


def plot_grid(report: Mapping[str, Any], path: str | pathlib.Path) -> pathlib.Path:
    """One figure read at a glance: a table of the commands' measures, each cell green where it meets the goal's
    bound, red where it misses it, grey where the goal sets none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ("", "command (v_x, v_y, yaw)", "fell", "achieved", "v_x RMS", "v_y RMS", "yaw RMS", "gait", "stride Hz",
               "stride m", "CoT+ (paper)", "CoT")
    good, bad, none = "#c7e9c0", "#fcbba1", "#f0f0f0"
    cells, colours = [], []
    stride_ok = report["criteria"].get("stride_vs_clip")
    for r in report["results"]:
        vx, vy, yaw = r["command"]
        straight = vy == 0.0 and yaw == 0.0
        paper = PAPER_AMP_COT.get(vx) if straight else None
        vx_bound = MAX_VX_RMS.get(vx) if straight else None

        def verdict(ok: bool | None) -> str:
            return none if ok is None else (good if ok else bad)

        cot = math.nan if r["cot_positive"] is None else r["cot_positive"]  # null in a report read from JSON
        fell = "no" if r["upright"] else f"{r['fell_at_s']:.1f} s"
        cells.append([r["name"], ", ".join(f"{c:.2f}" for c in r["command"]), fell,
                      ", ".join(f"{a:.2f}" for a in r["achieved"]), f"{r['rms']['vx']:.3f}",
                      f"{r['rms']['vy']:.3f}", f"{r['rms']['yaw_rate']:.3f}", r["gait"], _number(r["stride_hz"]),
                      _number(r.get("stride_length_m")),
                      _number(cot) + (f" ({paper:.2f})" if paper is not None else ""), _number(r["cot"])])
        colours.append([none, none, verdict(r["upright"]), none,
                        verdict(None if vx_bound is None else r["rms"]["vx"] <= vx_bound),
                        verdict(r["rms"]["vy"] <= MAX_VY_RMS),
                        verdict(r["rms"]["yaw_rate"] <= MAX_YAW_RMS if abs(yaw) == 1.0 else None), none,
                        verdict(stride_ok if r["name"] == TROT_CLIP_ROW else None), none,
                        verdict(None if paper is None else bool(math.isfinite(cot) and cot <= paper)), none])
    fig, ax = plt.subplots(figsize=(14.0, 0.3 * (len(cells) + 1) + 0.5))
    ax.axis("off")
    table = ax.table(cellText=cells, cellColours=colours, colLabels=columns, loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.auto_set_column_width(range(len(columns)))
    table.scale(1.0, 1.3)
    ref = report["clip_reference"]
    met = sum(report["criteria"].values())
    nudge = report["conditions"].get("trot_phase_nudge_rad", 0.0)
    start = f"; started with a {nudge:g} rad trot-phase nudge" if nudge else ""
    simulator = report.get("simulator", "C MuJoCo (ONNX policy)")
    ax.set_title(f"Commands held {report['conditions']['hold_s']:g} s in {simulator}{start}, last "
                 f"{report['conditions']['measured_fraction']:.0%} measured; goal criteria met {met} of "
                 f"{len(report['criteria'])}; {ref['file']} strides at {ref['stride_hz']:.2f} Hz"
                 + (f", {_number(ref['stride_length_m'])} m" if "stride_length_m" in ref else ""), fontsize=10)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amp_jax.deploy.command_grid",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("policy", help="an exported policy.onnx, or a run folder holding one")
    parser.add_argument("--json", help="also write the report here")
    parser.add_argument("--png", help="also draw the table here")
    parser.add_argument("--trot-phase-nudge", type=float, default=0.0, metavar="RAD",
                        help="a diagnostic: start with the thighs of one diagonal pair raised and the other's "
                             "lowered by RAD (a start that is not its own mirror image) and hold each command from "
                             "the first step; not the goal's conditions")
    args = parser.parse_args(argv)
    path = exported_policy_path(args.policy)
    if path is None:
        return 2
    report = evaluate_onnx(path, trot_phase_nudge=args.trot_phase_nudge)
    print(format_report(report))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(json_ready(report), indent=1) + "\n")
    if args.png:
        plot_grid(report, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
