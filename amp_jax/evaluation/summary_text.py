"""The evaluation's summary as the few lines a user reads after a run (the full figures are in
``evaluation.json``)."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any


def format_summary(run_dir: pathlib.Path, summary: Mapping[str, Any]) -> str:
    """The lines printed after an evaluation: each section of ``summary`` (the ``evaluation.json`` of
    :func:`amp_jax.evaluation.evaluate.finish_run`) that is present, the problems met and the files written."""
    lines = [f"evaluation of {run_dir}:"]
    if "tracking_rms" in summary:
        rms = summary["tracking_rms"]
        fell = summary.get("fell_at_s")
        outcome = "stayed up" if fell is None else f"fell at {fell:.2f} s"
        lines.append(f"  MJX rollout {summary['duration_s']:.1f} s, {outcome}; tracking RMS "
                     f"vx {rms['vx']:.3f} vy {rms['vy']:.3f} m/s, yaw {rms['yaw_rate']:.3f} rad/s")
    if "gait_similarity" in summary:
        g = summary["gait_similarity"]
        lines.append(f"  gait vs {g['contact_reference']}: contact similarity {g['contact']['overall']:.2f}, "
                     f"AMP-feature distance {g['amp_feature_distance']['symmetric']:.2f}")
    if "discriminator_scores" in summary:
        d = summary["discriminator_scores"]
        lines.append(f"  the run's discriminator: D {d['d_policy']:+.2f} on this rollout, {d['d_clips']:+.2f} on its "
                     f"clips (style reward {d['style_reward_policy']:.2f} vs {d['style_reward_clips']:.2f} of "
                     f"{d['reward_coef']:g})")
    if "onnx" in summary:
        lines.append(f"  ONNX parity max |diff| {summary['onnx']['parity_max_abs_diff']:.2g}")
    if "sim2sim" in summary:
        s = summary["sim2sim"]
        outcome = "stayed up" if s["upright"] else f"fell at {s['fell_at_s']:.2f} s"
        lines.append(f"  C MuJoCo: {outcome}, tracking RMS "
                     f"vx {s['tracking_rms']['vx']:.3f} m/s")
    checks = (("MJX", summary.get("trot_check")), ("C MuJoCo", summary.get("sim2sim", {}).get("trot_check")))
    for where, check in checks:
        if check:
            failed = [name for name, ok in check["criteria"].items() if not ok]
            lines.append(f"  trot check ({where}, {check['command']:g} m/s for {check['measure_s']:g} s): "
                         f"{'trots' if check['trots'] else 'not yet: ' + ', '.join(failed)}; achieved "
                         f"{check['achieved']:.2f} m/s, vx RMS {check['vx_rms']:.3f}, duty "
                         f"{min(check['duty']):.2f}-{max(check['duty']):.2f}, diagonal phi "
                         f"{min(check['diagonal_phi']):.2f}, lateral phi {max(check['lateral_phi']):.2f}")
    for key, where in (("command_grid_mjx", "MJX"), ("command_grid", "C MuJoCo")):
        if key in summary:
            criteria = summary[key]["criteria"]
            missed = [name for name, ok in criteria.items() if not ok]
            lines.append(f"  command grid ({where}): {len(criteria) - len(missed)} of {len(criteria)} goal criteria "
                         "met" + (f"; missed: {', '.join(missed)}" if missed else ""))
    if "speed_sweep" in summary:
        sweep = summary["speed_sweep"]
        lines.append(f"  speed sweep ({sweep['settings']['seeds']} seeds, {sweep['settings']['measure_s']:g} s "
                     "measured per speed):")
        for row in sweep["speeds"]:
            lines.append(f"    {row['command']:.2f} m/s: {row['gait']}, achieved {row['achieved']:.2f} m/s, "
                         f"CoT {row['cot']:.2f} (positive work {row['cot_positive']:.2f}), stride "
                         f"{row['stride_hz']:.2f} Hz, fell {row['fell_fraction']:.0%}")
        for t in sweep["transitions"]:
            lines.append(f"    transition {t['from']} -> {t['to']} between {t['from_speed']:g} and "
                         f"{t['to_speed']:g} m/s")
    for name, problem in summary["problems"].items():
        lines.append(f"  {name} failed: {problem}")
    lines.append(f"  files: {', '.join(summary['files']) or 'none'}")
    return "\n".join(lines)
