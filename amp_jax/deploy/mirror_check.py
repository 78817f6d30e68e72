"""Does the exported policy answer mirrored commands with mirrored motion? Measured in C MuJoCo through its ONNX.

Each command starts from the default pose: :data:`SETTLE_S` seconds at rest command, then :data:`HOLD_S` seconds
at the command; the last :data:`MEASURED_FRACTION` of the hold is measured (no pushes, randomisation or noise:
the runner of :mod:`amp_jax.deploy.sim2sim`). Contacts come from the feet's normal forces.

Verdict (:func:`mirror_verdict`), the symmetry goal:

* turning (yaw ±1.0 rad/s at 0.5 m/s) and side-stepping (v_y ±0.3 m/s at 0.3 m/s): each response has the
  commanded sign and at least half its size, and ``|r(+c) + r(−c)| ≤ 0.1 · (|r(+c)| + |r(−c)|)``;
* straight at 0.8 m/s: duty factors of FL and FR, and of RL and RR, within 0.10 of each other, and drift below
  0.05 m/s sideways and 0.1 rad/s of yaw.

A policy with a gait clock is run as the robot would run it: the clock starts at phase 0 for every command.
The mirror moves the clock half a cycle (:mod:`amp_jax.envs.mirror`), so the mirror image of a +c run is a −c run
whose clock starts at phase ½; for such a policy the report also holds those −c runs and the verdict with them in
place of the phase-0 ones (``mirrored_clock``): what an equivariant policy answers exactly, on a model that is
itself symmetric.

``python -m amp_jax.deploy.mirror_check RUN_DIR_OR_ONNX [--json OUT]`` prints the table and the verdict.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

import numpy as np

from amp_jax.analysis import gait
from amp_jax.deploy import onnx_export, sim2sim

SETTLE_S = 0.5
"""Seconds at rest command before each held command."""
HOLD_S = 8.0
"""Seconds each command is held."""
MEASURED_FRACTION = 0.75
"""The measured part of the hold: its last 75 %."""

MIRROR_PAIRS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float], int]] = {
    "yaw": ((0.5, 0.0, 1.0), (0.5, 0.0, -1.0), 2),
    "lateral": ((0.3, 0.3, 0.0), (0.3, -0.3, 0.0), 1),
}
"""Name → (command +c, command −c, the axis compared: 1 = v_y, 2 = yaw rate)."""
STRAIGHT = (0.8, 0.0, 0.0)
"""The straight command whose left-right balance is measured."""
MIRRORED_CLOCK_PHASE = 0.5
"""The gait clock's phase (cycles) at which the mirror image of a run from phase 0 starts."""
MIN_RESPONSE_FRACTION = 0.5
MAX_ASYMMETRY = 0.1
MAX_DUTY_DIFFERENCE = 0.10
MAX_LATERAL_DRIFT = 0.05
MAX_YAW_DRIFT = 0.1


def held_commands(command: tuple[float, float, float], control_dt: float,
                  settle_s: float = SETTLE_S) -> tuple[np.ndarray, slice]:
    """``[T, 3]`` commands (``settle_s`` at zero, then ``command`` for :data:`HOLD_S`) and the slice of the
    measured control steps."""
    settle, hold = int(round(settle_s / control_dt)), int(round(HOLD_S / control_dt))
    commands = np.zeros((settle + hold, 3))
    commands[settle:] = command
    return commands, slice(settle + hold - int(round(MEASURED_FRACTION * hold)), settle + hold)


def measure_command(policy, spec: sim2sim.RunnerSpec, command: tuple[float, float, float],
                    clock_start_phase: float = 0.0) -> dict[str, Any]:
    """One held command: mean measured (v_x, v_y, yaw rate), duty factor per foot, whether it stayed upright;
    a gait clock starts at ``clock_start_phase`` cycles."""
    commands, window = held_commands(command, spec.control_dt)
    run = sim2sim.simulate(policy, spec, commands, clock_start_phase=clock_start_phase)
    contacts = gait.contacts_from_forces(run.foot_forces[window])
    return {"command": list(command), "response": run.measured[window].mean(axis=0).tolist(),
            "duty": gait.duty_factors(contacts).tolist(), "upright": run.upright}


def mirror_verdict(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The goal's criteria from :func:`measure_command` results keyed ``yaw+``, ``yaw-``, ``lateral+``,
    ``lateral-`` and ``straight``."""
    checks: dict[str, bool] = {}
    for name, (plus, minus, axis) in MIRROR_PAIRS.items():
        r_plus, r_minus = results[f"{name}+"]["response"][axis], results[f"{name}-"]["response"][axis]
        checks[f"{name}_sign_and_size"] = bool(
            r_plus >= MIN_RESPONSE_FRACTION * plus[axis] and r_minus <= MIN_RESPONSE_FRACTION * minus[axis])
        checks[f"{name}_mirrored"] = bool(abs(r_plus + r_minus) <= MAX_ASYMMETRY * (abs(r_plus) + abs(r_minus)))
    straight = results["straight"]
    duty = straight["duty"]
    checks["duty_balance"] = bool(abs(duty[0] - duty[1]) <= MAX_DUTY_DIFFERENCE
                                  and abs(duty[2] - duty[3]) <= MAX_DUTY_DIFFERENCE)
    checks["no_drift"] = bool(abs(straight["response"][1]) < MAX_LATERAL_DRIFT
                              and abs(straight["response"][2]) < MAX_YAW_DRIFT)
    checks["upright"] = all(r["upright"] for r in results.values())
    return {"criteria": checks, "passes": all(checks.values())}


def mirror_check(onnx_path: str | pathlib.Path) -> dict[str, Any]:
    """Every command of the goal for one exported policy, and the verdict; with a gait clock, also
    ``mirrored_clock``: the −c runs from phase ½ and the verdict with them."""
    session = onnx_export.load_session(onnx_path)
    spec = sim2sim.RunnerSpec.from_metadata(onnx_export.read_metadata(onnx_path), str(onnx_path))
    return mirror_report(lambda obs: onnx_export.run_onnx(session, obs), spec)


def mirror_report(policy, spec: sim2sim.RunnerSpec) -> dict[str, Any]:
    """:func:`mirror_check` for ``policy(obs [F · (1 + policy_history)]) -> action [12]`` (``F`` one step's
    observation) under the runner settings ``spec``."""
    commands = {"straight": STRAIGHT}
    for name, (plus, minus, _) in MIRROR_PAIRS.items():
        commands[f"{name}+"], commands[f"{name}-"] = plus, minus
    results = {name: measure_command(policy, spec, command) for name, command in commands.items()}
    report = {"results": results, **mirror_verdict(results)}
    if spec.gait_clock_hz > 0:
        shifted = {f"{name}-": measure_command(policy, spec, minus, MIRRORED_CLOCK_PHASE)
                   for name, (_, minus, _) in MIRROR_PAIRS.items()}
        report["mirrored_clock"] = {"results": shifted, **mirror_verdict({**results, **shifted})}
    return report


def _result_line(name: str, r: dict[str, Any]) -> str:
    vx, vy, yaw = r["response"]
    duty = " ".join(f"{d:.2f}" for d in r["duty"])
    return (f"{name:>9} {str(tuple(r['command'])):>8}  {vx:6.3f} {vy:7.3f} {yaw:7.3f}   {duty}"
            + ("" if r["upright"] else "  (fell)"))


def format_report(report: dict[str, Any]) -> str:
    lines = [f"{'command':>18}  {'v_x':>6} {'v_y':>7} {'yaw':>7}   duty FL FR RL RR"]
    lines += [_result_line(name, r) for name, r in report["results"].items()]
    lines += [f"{k}: {'yes' if v else 'no'}" for k, v in report["criteria"].items()]
    lines.append("mirror goal met" if report["passes"] else "mirror goal not met")
    shifted = report.get("mirrored_clock")
    if shifted:
        lines.append(f"the -c runs again, the gait clock started at phase {MIRRORED_CLOCK_PHASE:g} (the mirror image "
                     "of the +c runs' start):")
        lines += [_result_line(name, r) for name, r in shifted["results"].items()]
        mirrored = {k: v for k, v in shifted["criteria"].items() if k.endswith(("_mirrored", "_sign_and_size"))}
        lines.append("with these: " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in mirrored.items()))
    return "\n".join(lines)


def exported_policy_path(policy: str) -> pathlib.Path | None:
    """The ONNX file a command line names: ``policy`` itself, or ``policy/policy.onnx`` for a run folder; None,
    after one line on stderr saying how to export one, when there is none."""
    path = pathlib.Path(policy)
    if path.is_dir():
        path = path / "policy.onnx"
    if not path.is_file():
        print(f"{path}: no exported policy there (expected policy.onnx; export it with "
              "python -m amp_jax.export_policy RUN_DIR)", file=sys.stderr)
        return None
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amp_jax.deploy.mirror_check", description=__doc__.split("\n")[0])
    parser.add_argument("policy", help="an exported policy.onnx, or a run folder holding one")
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args(argv)
    path = exported_policy_path(args.policy)
    if path is None:
        return 2
    report = mirror_check(path)
    print(format_report(report))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
