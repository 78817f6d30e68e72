"""How fast runs learned their commands, read from the training probe in their ``metrics.jsonl``.

The probe (``train.probe_interval``) rolls out the mean action in MJX and logs, per probe iteration,
``probe/vx_rms`` (v_x RMS error in m/s, mean over ``train.probe_forward_speeds``) and, when the run has
``train.probe_commands``, ``probe/vy_rms`` (m/s) and ``probe/yaw_rms`` (rad/s), each the mean over those commands.
A run's **tracking error** at a probe is the mean of the axes it logs. This module gives, per run, the env steps
at which that error first falls to or below each threshold, and the per-axis errors averaged over a window of
iterations: the comparison the symmetry runs in docs/RESULTS.md report.

``python -m amp_jax.evaluation.probe_progress RUN_DIR [RUN_DIR ...] [--thresholds 0.30 0.26 ...] [--up-to ITER]
[--window FIRST LAST]`` prints both tables in Markdown.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from dataclasses import dataclass

import numpy as np

from amp_jax.training import metrics_log

AXES = ("probe/vx_rms", "probe/vy_rms", "probe/yaw_rms")
"""The probe's per-axis errors, in the order the tables print them."""
DEFAULT_THRESHOLDS = (0.30, 0.28, 0.26, 0.25, 0.24, 0.22, 0.20)


@dataclass(frozen=True)
class ProbeSeries:
    """One run's probe records: ``iteration [P]``, ``env_steps [P]`` and ``errors[axis] [P]`` for each axis of
    :data:`AXES` the run logs, in iteration order."""

    name: str
    iteration: np.ndarray
    env_steps: np.ndarray
    errors: dict[str, np.ndarray]

    @property
    def tracking_error(self) -> np.ndarray:
        """``[P]``: the mean over the logged axes at each probe."""
        return np.mean(np.stack(list(self.errors.values())), axis=0)


def read_probe(run_dir: str | pathlib.Path, up_to: int | None = None) -> ProbeSeries:
    """The probe records of ``run_dir`` (those at or before iteration ``up_to`` when given). A run without any
    probe record is a ``ValueError`` naming the folder and the missing column."""
    columns = metrics_log.read_metrics(run_dir)
    if AXES[0] not in columns:
        raise ValueError(f"{run_dir}: no {AXES[0]} in {metrics_log.METRICS_FILE} (expected a run with "
                         f"train.probe_interval > 0)")
    rows = np.isfinite(columns[AXES[0]])
    if up_to is not None:
        rows &= columns["iteration"] <= up_to
    errors = {axis: columns[axis][rows] for axis in AXES
              if axis in columns and np.all(np.isfinite(columns[axis][rows]))}
    return ProbeSeries(name=str(run_dir), iteration=columns["iteration"][rows].astype(int),
                       env_steps=columns["env_steps"][rows], errors=errors)


def first_at_or_below(series: ProbeSeries, thresholds) -> dict[float, float | None]:
    """``threshold -> env steps`` of the first probe whose tracking error is at or below it (None: never)."""
    error = series.tracking_error
    result: dict[float, float | None] = {}
    for threshold in thresholds:
        hits = np.flatnonzero(error <= threshold)
        result[float(threshold)] = float(series.env_steps[hits[0]]) if hits.size else None
    return result


def window_means(series: ProbeSeries, first: int, last: int) -> dict[str, float]:
    """Per-axis errors and the tracking error averaged over the probes of iterations ``first..last``
    (inclusive); NaN where the window holds no probe."""
    rows = (series.iteration >= first) & (series.iteration <= last)
    means = {axis: float(np.mean(values[rows])) if rows.any() else float("nan")
             for axis, values in series.errors.items()}
    means["tracking"] = float(np.mean(series.tracking_error[rows])) if rows.any() else float("nan")
    return means


def _millions(steps: float | None) -> str:
    return "never" if steps is None else f"{steps / 1e6:.2f} M"


def threshold_table(runs: list[ProbeSeries], thresholds) -> str:
    """Markdown: one row per run, the env steps at which its tracking error first reached each threshold."""
    head = "| tracking error first at or below | " + " | ".join(f"{t:.2f}" for t in thresholds) + " |"
    lines = [head, "| --- |" + " --- |" * len(thresholds)]
    for run in runs:
        reached = first_at_or_below(run, thresholds)
        lines.append(f"| {run.name} | " + " | ".join(_millions(reached[float(t)]) for t in thresholds) + " |")
    return "\n".join(lines)


def window_table(runs: list[ProbeSeries], first: int, last: int) -> str:
    """Markdown: per run, the per-axis and tracking errors averaged over iterations ``first..last``."""
    names = [axis.removeprefix("probe/") for axis in AXES] + ["tracking"]
    lines = [f"| mean over iterations {first}-{last} | " + " | ".join(names) + " |",
             "| --- |" + " --- |" * len(names)]
    for run in runs:
        means = window_means(run, first, last)
        cells = [f"{means[axis]:.3f}" if axis in means else "-" for axis in [*AXES, "tracking"]]
        lines.append(f"| {run.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amp_jax.evaluation.probe_progress", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("runs", nargs="+", type=pathlib.Path, metavar="RUN_DIR")
    parser.add_argument("--thresholds", nargs="+", type=float, default=list(DEFAULT_THRESHOLDS))
    parser.add_argument("--up-to", type=int, default=None, metavar="ITER",
                        help="only the probes at or before this iteration (compare runs at equal env steps)")
    parser.add_argument("--window", nargs=2, type=int, default=None, metavar=("FIRST", "LAST"),
                        help="average the per-axis errors over these iterations (default: the last 2.5 M env "
                             "steps' worth of the shortest run)")
    args = parser.parse_args(argv)
    try:
        runs = [read_probe(run, args.up_to) for run in args.runs]
    except (OSError, ValueError) as err:
        print(f"probe_progress: {err}", file=sys.stderr)
        return 2
    print(threshold_table(runs, args.thresholds))
    if args.window:
        first, last = args.window
    else:
        last = min(int(run.iteration[-1]) for run in runs)
        per_iteration = min(float(run.env_steps[-1]) / max(int(run.iteration[-1]), 1) for run in runs)
        first = max(last - int(round(2.5e6 / per_iteration)), 0)
    print()
    print(window_table(runs, first, last))
    return 0


if __name__ == "__main__":
    sys.exit(main())
