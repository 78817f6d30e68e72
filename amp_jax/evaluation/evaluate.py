"""Evaluation of a finished run: deterministic rollout, gait similarity, plots, video, ONNX export, sim-to-sim.

``python -m amp_jax.evaluate RUN_DIR [--command SECONDS,VX,VY,YAW ...] [--sweep] [--grid]`` (what ``train.py`` runs
after training, as :func:`finish_run`) rebuilds the policy from the run folder alone (the newest step's policy
file, ``policies/<step>.npz``), rolls out the mean action in one A1 env on MJX (one jitted ``lax.scan``) from the
default pose, with observation noise, pushes and randomisation off, under a command schedule
(:mod:`amp_jax.analysis.command_schedule`), and writes into the run folder what follows. Every MJX rollout of an
evaluation (the schedule, the trot check, the speed sweep, the grid in MJX) is one row of one batched call of one
compiled program (:mod:`amp_jax.evaluation.rollouts`):

- ``evaluation.json``: velocity-tracking RMS error per axis, gait similarity (:mod:`amp_jax.analysis.gait`) against the
  run's clips, the run's own discriminator on the rollout against its clips (:mod:`amp_jax.analysis.style`),
  whether and when the robot fell, the ONNX export's parity and the sim-to-sim result;
- ``learning_curves.png``, ``gait_diagram.png`` (policy above the reference clip: ``trot0`` when the run uses
  it, else its first clip), ``velocity_tracking.png``;
- ``policy.mp4`` (``policy.gif`` when no MP4 encoder is found); rendering needs a headless OpenGL (see
  :mod:`amp_jax.evaluation.video`);
- ``policy.onnx`` (:mod:`amp_jax.deploy.export_policy`), then run in C MuJoCo (:mod:`amp_jax.deploy.sim2sim`);
- with ``--sweep``: the forward-speed sweep (:func:`amp_jax.analysis.sweep.run_sweep`: cost of transport, footfall
  phases, gait class and transitions per commanded speed) as ``evaluation.json["speed_sweep"]``, with
  ``speed_sweep.png`` and ``footfall_phases.png``;
- with ``--grid``: every command of the full task's grid held in C MuJoCo through ``policy.onnx``
  (:mod:`amp_jax.deploy.command_grid`: falls, tracking per axis, footfalls from contact forces, cost of transport,
  the goal's criteria) as ``evaluation.json["command_grid"]``, with ``command_grid.png``, and in MJX with the
  run's policy (:mod:`amp_jax.evaluation.mjx_grid`) as ``evaluation.json["command_grid_mjx"]``, with
  ``command_grid_mjx.png``.

Each step fails softly: its error is logged with what to do and recorded in ``evaluation.json["problems"]``,
and the remaining steps still run; nothing in the run folder is removed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import pathlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from amp_jax import a1
from amp_jax.analysis import command_schedule, gait, speed, style
from amp_jax.analysis import sweep as sweep_lib
from amp_jax.analysis.command_schedule import CommandSegment
from amp_jax.analysis.report_json import json_ready
from amp_jax.analysis.rollout import (
    Trajectory,
    contact_reference_index,
    evaluation_env_config,
    first_fall_s,
    first_termination_s,
    tracking_rms,
)
from amp_jax.config import ConfigError
from amp_jax.envs.a1_amp import A1AmpEnv
from amp_jax.evaluation import summary_text, video
from amp_jax.evaluation.rollouts import Rollouts, plan_grid, run_rollouts
from amp_jax.training.run_folder import RunFolderError, RunPolicy, load_run_policy

logger = logging.getLogger(__name__)

EVALUATION_FILE = "evaluation.json"
LEARNING_CURVES_FILE = "learning_curves.png"
GAIT_DIAGRAM_FILE = "gait_diagram.png"
VELOCITY_FILE = "velocity_tracking.png"
VIDEO_FILE = "policy.mp4"
VIDEO_FALLBACK_FILE = "policy.gif"
SPEED_SWEEP_FILE = "speed_sweep.png"
FOOTFALL_FILE = "footfall_phases.png"
GRID_FILE = "command_grid.png"
GRID_MJX_FILE = "command_grid_mjx.png"
# ----------------------------------------------------------------------------------------------------------
# The whole evaluation


@dataclasses.dataclass
class Report:
    """What an evaluation found; written as ``evaluation.json``."""

    results: dict[str, Any] = dataclasses.field(default_factory=dict)
    problems: dict[str, str] = dataclasses.field(default_factory=dict)
    """Step name → why it failed (and what to do)."""
    files: list[str] = dataclasses.field(default_factory=list)
    """Files written into the run folder."""
    reference_contacts: np.ndarray | None = None
    """Contact booleans ``[T, 4]`` of the reference clip, once the clips are loaded."""

    def attempt(self, name: str, fn: Callable[[], Any], hint: str = "") -> Any:
        """Runs ``fn``; on failure logs and records the error under ``name`` and returns None."""
        try:
            return fn()
        except Exception as err:  # every step fails softly: the run folder and the other steps are kept
            message = f"{type(err).__name__}: {err}" + (f" ({hint})" if hint else "")
            logger.warning("evaluation step %r failed: %s", name, message)
            self.problems[name] = message
            return None

    def as_dict(self) -> dict[str, Any]:
        return {**self.results, "files": sorted(set(self.files)), "problems": self.problems}


def _write_video(run_dir: pathlib.Path, qpos: np.ndarray, fps: float, width: int, height: int) -> pathlib.Path:
    problem = video.gl_problem()
    if problem is not None:
        raise video.VideoUnavailableError(problem)
    frames = video.render_frames(a1.SCENE_XML, qpos, width=width, height=height)
    try:
        return video.write_video(frames, run_dir / VIDEO_FILE, fps)
    except Exception as err:  # no H.264 encoder: a GIF needs only Pillow
        logger.warning("MP4 encoding failed (%s); writing %s instead", err, VIDEO_FALLBACK_FILE)
        return video.write_video(frames, run_dir / VIDEO_FALLBACK_FILE, fps)


def evaluate_policy(policy: RunPolicy, report: Report,
                    schedule: Sequence[CommandSegment] = command_schedule.DEFAULT_SCHEDULE, *,
                    make_video: bool = True, video_size: tuple[int, int] = (640, 480),
                    out_dir: pathlib.Path | None = None, rollouts: Rollouts | None = None) -> Trajectory | None:
    """Rollout, metrics, plots and video of ``policy`` into ``out_dir`` (default: its run folder); results and
    problems into ``report``. ``rollouts``: this schedule's, made already (default: made here)."""
    from amp_jax.evaluation import plotting
    from amp_jax.motion.loader import load_clips

    run_dir, cfg = (policy.run_dir if out_dir is None else out_dir), policy.cfg
    dt = cfg.env.control_dt
    if rollouts is None:
        rollouts = report.attempt("rollout", lambda: run_rollouts(policy, schedule))
        if rollouts is None:
            return None
    trajectory = rollouts.schedule
    commands = trajectory.command
    contacts = gait.contacts_from_heights(trajectory.foot_heights)
    report.results.update({
        "checkpoint_step": policy.step,
        "schedule": command_schedule.schedule_to_list(schedule),
        "duration_s": float(commands.shape[0] * dt),
        "fell_at_s": first_fall_s(trajectory, dt),
        "terminated_at_s": first_termination_s(trajectory, dt),
        "tracking_rms": tracking_rms(trajectory),
        "contact_height_threshold_m": gait.CONTACT_HEIGHT_THRESHOLD,
    })

    clips = report.attempt("load_clips", lambda: load_clips(cfg.motion.resolved_files(),
                                                            repair_threshold=cfg.motion.velocity_repair_threshold))
    if clips:
        ref = clips[contact_reference_index([c.name for c in clips])]
        similarity = report.attempt("gait_similarity", lambda: gait.gait_similarity(
            trajectory.amp_obs, contacts, [c.frames for c in clips], ref.frames))
        if similarity is not None:
            report.results["gait_similarity"] = {"contact_reference": ref.name,
                                                 "amp_reference": [c.name for c in clips], **similarity}
        if policy.cfg.amp.enabled and policy.amp_normalizer is not None:
            scores = report.attempt("discriminator_scores", lambda: style.discriminator_scores(
                policy.networks, policy.params, policy.amp_normalizer, cfg, style.transitions(trajectory.amp_obs),
                style.clip_transitions(cfg, jax.random.key(0))))
            if scores is not None:
                report.results["discriminator_scores"] = scores
        ref_contacts = gait.contacts_from_heights(gait.clip_foot_heights(ref.frames))
        report.reference_contacts = ref_contacts
        path = report.attempt("gait_diagram", lambda: plotting.plot_gait_diagram(
            contacts, dt, ref_contacts, ref.frame_duration, run_dir / GAIT_DIAGRAM_FILE,
            titles=(f"policy (checkpoint {policy.step})", f"reference: {ref.name}")))
        if path is not None:
            report.files.append(path.name)

    check = report.attempt("trot_check", lambda: speed.trot_check_of(rollouts.trot, dt, report.reference_contacts))
    if check is not None:
        report.results["trot_check"] = {"reference": ref.name if clips else None, **check}
    path = report.attempt("velocity_plot", lambda: plotting.plot_velocity_tracking(
        trajectory.command, trajectory.measured, dt, run_dir / VELOCITY_FILE))
    if path is not None:
        report.files.append(path.name)
    if make_video:
        path = report.attempt("video", lambda: _write_video(run_dir, trajectory.qpos, 1.0 / dt, *video_size),
                              hint="the plots and evaluation.json do not need it")
        if path is not None:
            report.files.append(path.name)
    return trajectory


# ----------------------------------------------------------------------------------------------------------
# Speed sweep


def evaluate_sweep(policy: RunPolicy, report: Report, settings: sweep_lib.SweepSettings,
                   out_dir: pathlib.Path | None = None, rollouts: Rollouts | None = None
                   ) -> sweep_lib.SweepResult | None:
    """The speed sweep of ``policy`` into ``report.results["speed_sweep"]``, its plots into ``out_dir`` (default:
    its run folder). ``rollouts``: holding the sweep's, made already (default: made here)."""
    from amp_jax.analysis import footfall
    from amp_jax.evaluation import plotting

    out_dir = policy.run_dir if out_dir is None else out_dir
    if rollouts is not None and rollouts.sweep is not None:
        result = report.attempt("speed_sweep", lambda: sweep_lib.sweep_of(
            rollouts.sweep, rollouts.sweep_speeds, settings, rollouts.robot_mass, rollouts.control_dt))
    else:
        result = report.attempt("speed_sweep", lambda: sweep_lib.run_sweep(
            A1AmpEnv(evaluation_env_config(policy.cfg.env), None), policy.policy_fn, policy.params, settings))
    if result is None:
        return None
    report.results["speed_sweep"] = result.as_dict()
    rows = result.summaries
    speeds = np.array([r.command for r in rows])
    gaits = [r.gait for r in rows]
    path = report.attempt("speed_sweep_plot", lambda: plotting.plot_speed_sweep(
        speeds, np.array([r.achieved for r in rows]), np.array([r.cot for r in rows]),
        np.array([r.cot_positive for r in rows]), gaits, out_dir / SPEED_SWEEP_FILE,
        classes=(*footfall.GAIT_CLASSES, sweep_lib.FELL)))
    if path is not None:
        report.files.append(path.name)
    path = report.attempt("footfall_plot", lambda: plotting.plot_footfall_phases(
        speeds, np.array([r.duty for r in rows]), np.array([r.offsets for r in rows]), out_dir / FOOTFALL_FILE,
        gaits=gaits))
    if path is not None:
        report.files.append(path.name)
    return result


def plot_learning_curves(run_dir: pathlib.Path, report: Report, out_dir: pathlib.Path | None = None) -> None:
    """``learning_curves.png`` from ``metrics.jsonl`` into ``out_dir`` (default ``run_dir``), soft-failing into
    ``report``."""
    from amp_jax.evaluation import plotting
    from amp_jax.training import metrics_log

    out_dir = run_dir if out_dir is None else out_dir
    path = report.attempt("learning_curves", lambda: plotting.plot_learning_curves(
        metrics_log.read_metrics(run_dir), out_dir / LEARNING_CURVES_FILE))
    if path is not None:
        report.files.append(path.name)


def evaluate_command_grid(policy: RunPolicy, onnx_path: pathlib.Path | None, report: Report,
                          out_dir: pathlib.Path, rollouts: Rollouts | None = None) -> None:
    """The command grid in MJX with the run's policy (:mod:`amp_jax.evaluation.mjx_grid`) into
    ``report.results["command_grid_mjx"]`` and :data:`GRID_MJX_FILE`, and in C MuJoCo through the exported policy
    (:mod:`amp_jax.deploy.command_grid`, when ``onnx_path``) into ``report.results["command_grid"]`` and
    :data:`GRID_FILE`. ``rollouts``: holding the grid's MJX rollout, made already (default: made here)."""
    from amp_jax.deploy import command_grid
    from amp_jax.evaluation import mjx_grid

    def grid_mjx() -> dict[str, Any]:
        if rollouts is None or rollouts.grid is None:
            return mjx_grid.evaluate_grid_mjx(policy)
        plan = rollouts.grid_plan
        return mjx_grid.policy_grid_of(policy, rollouts.grid, plan.commands, plan.schedules, plan.reference,
                                       rollouts.robot_mass, rollouts.control_dt)

    grids = [("command_grid_mjx", GRID_MJX_FILE, grid_mjx)]
    if onnx_path is not None:
        grids.append(("command_grid", GRID_FILE, lambda: command_grid.evaluate_onnx(onnx_path)))
    for key, file, evaluate_grid in grids:
        result = report.attempt(key, evaluate_grid)
        if result is None:
            continue
        report.results[key] = result
        path = report.attempt(f"{key}_plot", lambda result=result, file=file: command_grid.plot_grid(
            result, out_dir / file))
        if path is not None:
            report.files.append(path.name)


def finish_run(run_dir: str | pathlib.Path, schedule: Sequence[CommandSegment] = command_schedule.DEFAULT_SCHEDULE,
               *, step: int | None = None, make_video: bool = True, export: bool = True,
               sim2sim: bool = True, out_dir: str | pathlib.Path | None = None,
               sweep: sweep_lib.SweepSettings | None = None, policy: RunPolicy | None = None,
               grid: bool = False) -> dict[str, Any]:
    """Everything a finished run leaves behind (module docstring); never raises for a failed step.

    Args:
      policy: the run's policy when the caller already loaded it (:func:`load_run_policy`).
      out_dir: where the outputs go (created if needed); default ``run_dir``, which is then only read.
      sweep: the speed sweep's settings; None: no sweep.
      grid: also hold every command of :data:`amp_jax.deploy.command_grid.GRID` in MJX (``command_grid_mjx`` in
        the report, the table drawn in :data:`GRID_MJX_FILE`) and, with ``export``, in C MuJoCo through the
        exported policy (``command_grid``, :data:`GRID_FILE`).
    Returns:
      The contents written to ``<out_dir>/evaluation.json``.
    """
    run_dir = pathlib.Path(run_dir)
    out_dir = run_dir if out_dir is None else pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report()
    plot_learning_curves(run_dir, report, out_dir)
    if policy is None:
        policy = report.attempt("load_policy", lambda: load_run_policy(run_dir, step),
                                hint="needs a policy file in policies/ (or, in a run folder written before "
                                     "them, the run's config.yaml and a checkpoint in checkpoints/)")
    if policy is not None:
        grid_plan = report.attempt("command_grid_mjx", lambda: plan_grid(policy.cfg.env.control_dt)) if grid else None
        # every MJX rollout below in one compiled program; when it fails, the export and C MuJoCo still run
        rollouts = report.attempt("rollout", lambda: run_rollouts(policy, schedule, sweep, grid_plan))
        if rollouts is not None:
            evaluate_policy(policy, report, schedule, make_video=make_video, out_dir=out_dir, rollouts=rollouts)
            if sweep is not None:
                evaluate_sweep(policy, report, sweep, out_dir, rollouts)
        onnx_path = None
        if export:
            from amp_jax.deploy import export_policy

            exported = report.attempt("export", lambda: export_policy.export_policy(
                policy, out_dir / export_policy.ONNX_FILE))
            if exported is not None:
                report.files.append(exported.path.name)
                report.results["onnx"] = {"file": exported.path.name, "parity_max_abs_diff": exported.max_abs_diff}
                onnx_path = exported.path
        if sim2sim and onnx_path is not None:
            from amp_jax.deploy import sim2sim as sim2sim_lib

            result = report.attempt("sim2sim", lambda: sim2sim_lib.run_sim2sim(onnx_path, schedule))
            if result is not None:
                report.results["sim2sim"] = result.summary()
            check = report.attempt("sim2sim_trot_check", lambda: sim2sim_lib.trot_check_c_mujoco(
                onnx_path, report.reference_contacts))
            if check is not None:
                report.results["sim2sim"] = {**report.results.get("sim2sim", {}), "trot_check": check}
        if grid:
            evaluate_command_grid(policy, onnx_path, report, out_dir, rollouts)
    summary = report.as_dict()
    try:
        (out_dir / EVALUATION_FILE).write_text(json.dumps(json_ready(summary), indent=2) + "\n")
    except OSError as err:
        logger.warning("could not write %s: %s", out_dir / EVALUATION_FILE, err)
        summary["problems"]["write_report"] = f"{type(err).__name__}: {err}"
    print(summary_text.format_summary(out_dir, summary))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amp_jax.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=pathlib.Path, metavar="RUN_DIR", help="a run folder made by train.py")
    parser.add_argument("--command", action="append", default=[], metavar="SECONDS,VX,VY,YAW",
                        help="a command segment (repeat for a schedule); default: "
                             + " then ".join(",".join(f"{v:g}" for v in s) for s in
                                             command_schedule.schedule_to_list(command_schedule.DEFAULT_SCHEDULE)))
    parser.add_argument("--step", type=int, help="checkpoint step (default: the newest)")
    parser.add_argument("--out", type=pathlib.Path, metavar="DIR",
                        help="write the outputs into DIR instead of RUN_DIR (which is then only read)")
    parser.add_argument("--no-video", action="store_true", help="skip rendering the video")
    parser.add_argument("--no-export", action="store_true", help="skip the ONNX export (and so the sim-to-sim check)")
    parser.add_argument("--no-sim2sim", action="store_true", help="skip the C MuJoCo check")
    parser.add_argument("--sweep", action="store_true",
                        help="also sweep forward speeds (cost of transport, footfalls, gait class per speed) "
                             f"from {sweep_lib.SWEEP_SPEED_STEP:g} m/s to the config's env.command_lin_vel_x "
                             f"maximum, {sweep_lib.SWEEP_SEEDS} start poses each")
    parser.add_argument("--grid", action="store_true",
                        help="also hold each command of the full task's grid (forward 0.4-1.6, backward, "
                             "sideways, turns, standing) in C MuJoCo through the ONNX: tracking, footfalls, cost of "
                             "transport per command and the goal's criteria (command_grid.png)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        schedule = tuple(command_schedule.parse_segment(t) for t in args.command) or command_schedule.DEFAULT_SCHEDULE
    except ValueError as err:
        print(f"evaluate: {err}", file=sys.stderr)
        return 2
    from amp_jax.training.checkpoint import CheckpointError
    from amp_jax.training.params_file import ParamsFileError

    try:  # before anything is written: a run folder whose policy cannot be rebuilt is one line, exit 1
        policy = load_run_policy(args.run_dir, args.step)
    except (RunFolderError, ConfigError) as err:
        print(f"evaluate: {err}", file=sys.stderr)
        return 2
    except (CheckpointError, ParamsFileError) as err:
        print(f"evaluate: {err}", file=sys.stderr)
        return 1
    summary = finish_run(args.run_dir, schedule, step=args.step, make_video=not args.no_video,
                         export=not args.no_export, sim2sim=not args.no_sim2sim, out_dir=args.out,
                         sweep=sweep_lib.SweepSettings() if args.sweep else None, policy=policy,
                         grid=args.grid)
    return 1 if "rollout" in summary["problems"] or "load_policy" in summary["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
