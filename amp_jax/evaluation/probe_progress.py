"""How fast runs learned their commands, read from the training probe in their ``metrics.jsonl``.

The probe (``train.probe_interval``) rolls out the mean action in MJX and logs, per probe iteration,
``probe/vx_rms`` (v_x RMS error in m/s, mean over ``train.probe_forward_speeds``) and, when the run has
``train.probe_commands``, ``probe/vy_rms`` (m/s) and ``probe/yaw_rms`` (rad/s), each the mean over those commands.
A run's **tracking error** at a probe is the mean of the axes it logs. This module gives, per run, the env steps
at which that error first falls to or below each threshold, and the per-axis errors averaged over a window of
iterations or of env steps: the comparison the symmetry runs in docs/RESULTS.md report.

``python -m amp_jax.evaluation.probe_progress RUN_DIR [RUN_DIR ...] [--thresholds 0.30 0.26 ...] [--up-to ITER |
--up-to-env-steps STEPS] [--window FIRST LAST | --window-env-steps FIRST LAST] [--png FILE]`` prints both tables
in Markdown, and with ``--png`` draws each run's tracking error against env steps with the thresholds.
Runs whose iterations differ in size (``env.num_envs`` · ``ppo.num_steps``) are compared in env steps: with the
``-env-steps`` options, and by default the window is then the 2.5 M env steps up to the shortest run's last probe.
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


def read_probe(run_dir: str | pathlib.Path, up_to: int | None = None,
               up_to_env_steps: float | None = None) -> ProbeSeries:
    """The probe records of ``run_dir`` (those at or before iteration ``up_to`` and at or before
    ``up_to_env_steps`` env steps, when given). A run without any probe record, or none before the cut, is a
    ``ValueError`` naming the folder and what is missing."""
    columns = metrics_log.read_metrics(run_dir)
    if AXES[0] not in columns:
        raise ValueError(f"{run_dir}: no {AXES[0]} in {metrics_log.METRICS_FILE} (expected a run with "
                         f"train.probe_interval > 0)")
    rows = np.isfinite(columns[AXES[0]])
    if up_to is not None:
        rows &= columns["iteration"] <= up_to
    if up_to_env_steps is not None:
        rows &= columns["env_steps"] <= up_to_env_steps
    if not rows.any():
        cut = " and ".join([f"iteration {up_to}"] * (up_to is not None)
                           + [f"{up_to_env_steps:.0f} env steps"] * (up_to_env_steps is not None))
        where = f" at or before {cut}" if cut else ""
        raise ValueError(f"{run_dir}: no probe record{where} in {metrics_log.METRICS_FILE} (expected a run past its "
                         f"first probe, and a cut after it)")
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


WINDOW_UNITS = ("iteration", "env_steps")
"""What a window's bounds count: iterations, or env steps (for runs whose iterations differ in size)."""


def window_means(series: ProbeSeries, first: float, last: float, unit: str = "iteration") -> dict[str, float]:
    """Per-axis errors and the tracking error averaged over the probes from ``first`` to ``last`` (inclusive),
    counted in ``unit`` (one of :data:`WINDOW_UNITS`); NaN where the window holds no probe."""
    if unit not in WINDOW_UNITS:
        raise ValueError(f"window unit {unit!r}: expected one of {WINDOW_UNITS}")
    position = series.iteration if unit == "iteration" else series.env_steps
    rows = (position >= first) & (position <= last)
    means = {axis: float(np.mean(values[rows])) if rows.any() else float("nan")
             for axis, values in series.errors.items()}
    means["tracking"] = float(np.mean(series.tracking_error[rows])) if rows.any() else float("nan")
    return means


def run_labels(runs: list[ProbeSeries]) -> list[str]:
    """Each run's folder name, or the whole path given where two runs share a folder name."""
    names = [pathlib.Path(run.name).name for run in runs]
    return names if len(set(names)) == len(names) else [run.name for run in runs]


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


def window_table(runs: list[ProbeSeries], first: float, last: float, unit: str = "iteration") -> str:
    """Markdown: per run, the per-axis and tracking errors averaged over ``first..last`` (iterations, or env
    steps with ``unit="env_steps"``)."""
    names = [axis.removeprefix("probe/") for axis in AXES] + ["tracking"]
    span = (f"iterations {int(first)}-{int(last)}" if unit == "iteration"
            else f"env steps {_millions(first)}-{_millions(last)}")
    lines = [f"| mean over {span} | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for run in runs:
        means = window_means(run, first, last, unit)
        cells = [f"{means[axis]:.3f}" if axis in means else "-" for axis in [*AXES, "tracking"]]
        lines.append(f"| {run.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amp_jax.evaluation.probe_progress", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("runs", nargs="+", type=pathlib.Path, metavar="RUN_DIR")
    parser.add_argument("--thresholds", nargs="+", type=float, default=list(DEFAULT_THRESHOLDS))
    cut = parser.add_mutually_exclusive_group()
    cut.add_argument("--up-to", type=int, default=None, metavar="ITER",
                     help="only the probes at or before this iteration (compare runs at equal env steps)")
    cut.add_argument("--up-to-env-steps", type=float, default=None, metavar="STEPS",
                     help="only the probes at or before this many env steps (e.g. 10e6)")
    window = parser.add_mutually_exclusive_group()
    window.add_argument("--window", nargs=2, type=int, default=None, metavar=("FIRST", "LAST"),
                        help="average the per-axis errors over these iterations (default: the last 2.5 M env "
                             "steps of the shortest run)")
    window.add_argument("--window-env-steps", nargs=2, type=float, default=None, metavar=("FIRST", "LAST"),
                        help="average the per-axis errors over these env steps (e.g. 7.6e6 9.8e6)")
    parser.add_argument("--png", type=pathlib.Path, default=None, metavar="FILE",
                        help="also draw each run's tracking error against env steps, with the thresholds")
    args = parser.parse_args(argv)
    try:
        runs = [read_probe(run, args.up_to, args.up_to_env_steps) for run in args.runs]
    except (OSError, ValueError) as err:
        print(f"probe_progress: {err}", file=sys.stderr)
        return 2
    if args.png is not None:
        from amp_jax.evaluation import plotting

        try:
            plotting.plot_probe_progress([(label, run.env_steps, run.tracking_error)
                                          for label, run in zip(run_labels(runs), runs)], args.thresholds, args.png)
        except OSError as err:
            print(f"probe_progress: {args.png}: cannot write the figure ({err.strerror or err})", file=sys.stderr)
            return 2
    print(threshold_table(runs, args.thresholds))
    unit = "iteration"
    if args.window:
        first, last = args.window
    elif args.window_env_steps:
        (first, last), unit = args.window_env_steps, "env_steps"
    else:
        per_iteration = [float(run.env_steps[-1]) / max(int(run.iteration[-1]), 1) for run in runs]
        if max(per_iteration) - min(per_iteration) > 0.5:  # iterations of different sizes: count env steps
            last, unit = min(float(run.env_steps[-1]) for run in runs), "env_steps"
            first = max(last - 2.5e6, 0.0)
        else:
            last = min(int(run.iteration[-1]) for run in runs)
            first = max(last - int(round(2.5e6 / min(per_iteration))), 0)
    print()
    print(window_table(runs, first, last, unit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
