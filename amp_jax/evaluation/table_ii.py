"""The paper's Table II from this code: the cost of transport of AMP against the complex hand-designed reward and the
task reward alone, at the forward commands 0.4 / 0.8 / 1.2 / 1.6 m/s.

Each policy's figures come from its command grid in C MuJoCo through its ONNX file
(:mod:`amp_jax.deploy.command_grid`, ``evaluation.json["command_grid"]`` of a run or packaged folder, written by
``python -m amp_jax.evaluate RUN --grid``): held from the default pose, measured over the hold's last 75 %,
footfalls from the feet's contact forces, cost of transport ``W / (m g d)`` from the motors' positive work (CoT+,
the paper's measure) and absolute work (CoT).

A policy *reaches* a speed when it stays up over the whole run and covers enough ground over the window for a cost
of transport (:data:`amp_jax.analysis.sweep.MIN_COT_DISTANCE`); a policy that stands at a command has no CoT there.
:func:`table_goal` checks, at every speed both policies of a pair reach, that AMP's CoT+ is below the complex
reward's and at least :data:`MIN_RATIO_TO_TASK_ONLY` times below the task reward's; a pair never compared counts
as a miss, not as a pass. :func:`paper_order` says per speed whether the paper's ordering (AMP < complex reward <
task reward only) holds.

``python -m amp_jax.evaluation.table_ii --amp DIR --complex-reward DIR --task-only DIR [--png OUT] [--json OUT]``
prints the table (Markdown, this code's figures beside the paper's) and the verdicts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import sys
from collections.abc import Mapping
from typing import Any

POLICIES = ("amp", "complex_reward", "task_only")
"""The table's rows, in the paper's order."""
LABELS = {"amp": "AMP", "complex_reward": "complex reward", "task_only": "task reward only"}
SPEEDS = (0.4, 0.8, 1.2, 1.6)
"""The forward commands (m/s) of the paper's Table II."""
PAPER: dict[str, dict[float, tuple[float, float]]] = {
    "amp": {0.4: (1.07, 0.36), 0.8: (0.93, 0.77), 1.2: (1.02, 1.11), 1.6: (1.12, 1.52)},
    "complex_reward": {0.4: (1.54, 0.41), 0.8: (1.37, 0.88), 1.2: (1.40, 1.28), 1.6: (1.41, 1.67)},
    "task_only": {0.4: (14.03, 0.42), 0.8: (8.00, 0.82), 1.2: (6.05, 1.22), 1.6: (5.18, 1.61)},
}
"""The paper's Table II (simulation): per policy and forward command, (CoT from positive work, achieved m/s)."""
MIN_RATIO_TO_TASK_ONLY = 1.5
"""The goal: AMP's CoT+ at least this many times below the task-only policy's."""
GRID_KEY = "command_grid"
"""The C MuJoCo grid's key in ``evaluation.json``."""


class TableError(ValueError):
    """A grid report that cannot fill the table: one line naming the file and what was expected."""


@dataclasses.dataclass(frozen=True)
class Cell:
    """One policy at one forward command, from its grid row."""

    policy: str
    speed: float
    """The commanded forward speed (m/s)."""
    upright: bool
    achieved_vx: float
    """Mean forward speed over the window (m/s)."""
    cot_positive: float
    """Cost of transport from the motors' positive work (NaN when it covered too little ground)."""
    cot_absolute: float
    stride_hz: float
    duty: tuple[float, ...]
    """Duty factors, FL, FR, RL, RR."""
    gait: str

    @property
    def reached(self) -> bool:
        """Up all run and far enough over the window for a cost of transport."""
        return self.upright and math.isfinite(self.cot_positive)


def load_grid(path: str | pathlib.Path) -> tuple[pathlib.Path, dict[str, Any]]:
    """The C MuJoCo grid report of a run or packaged folder (its ``evaluation.json``), an ``evaluation.json``, or a
    grid report written by ``python -m amp_jax.deploy.command_grid --json``; returns (the file read, the report)."""
    path = pathlib.Path(path)
    file = path / "evaluation.json" if path.is_dir() else path
    if not file.is_file():
        raise TableError(f"{file}: not found; expected a run or packaged folder evaluated with "
                         f"`python -m amp_jax.evaluate RUN --grid`, or a command grid JSON")
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TableError(f"{file}: not valid JSON ({err})") from None
    report = data.get(GRID_KEY, data) if isinstance(data, dict) else None
    if not isinstance(report, dict) or not isinstance(report.get("results"), list):
        raise TableError(f"{file}: no command grid (expected `{GRID_KEY}.results`, from "
                         f"`python -m amp_jax.evaluate RUN --grid`)")
    return file, report


def cells(report: Mapping[str, Any], policy: str, source: str = "the report") -> dict[float, Cell]:
    """The report's straight forward rows at :data:`SPEEDS`, as cells of ``policy``."""
    straight = {float(r["command"][0]): r for r in report["results"]
                if float(r["command"][1]) == 0.0 and float(r["command"][2]) == 0.0}
    out = {}
    for speed in SPEEDS:
        row = straight.get(speed)
        if row is None:
            raise TableError(f"{source}: no row commanding ({speed:g}, 0, 0); expected the full grid "
                             f"(amp_jax.deploy.command_grid.GRID)")
        out[speed] = Cell(policy=policy, speed=speed, upright=bool(row["upright"]),
                          achieved_vx=float(row["achieved"][0]), cot_positive=_float(row["cot_positive"]),
                          cot_absolute=_float(row["cot"]), stride_hz=_float(row["stride_hz"]),
                          duty=tuple(float(d) for d in row["duty"]), gait=str(row["gait"]))
    return out


def _float(value: Any) -> float:
    """A JSON number, with null (how NaN is written) as NaN."""
    return math.nan if value is None else float(value)


def table_goal(table: Mapping[str, Mapping[float, Cell]]) -> dict[str, bool | None]:
    """The baseline goal, per speed and baseline: ``True``/``False`` where both policies reach the speed, ``None``
    where they were not compared (one of them fell or stood)."""
    checks: dict[str, bool | None] = {}
    for speed in SPEEDS:
        amp = table["amp"][speed]
        for baseline, factor in (("complex_reward", 1.0), ("task_only", MIN_RATIO_TO_TASK_ONLY)):
            other = table[baseline][speed]
            name = (f"below_{baseline}_at_{speed:g}" if factor == 1.0
                    else f"{factor:g}x_below_{baseline}_at_{speed:g}")
            if amp.reached and other.reached:
                checks[name] = (amp.cot_positive * factor <= other.cot_positive if factor != 1.0
                                else amp.cot_positive < other.cot_positive)
            else:
                checks[name] = None
    return checks


def goal_met(checks: Mapping[str, bool | None]) -> bool:
    """Every comparison made holds, and each baseline was compared at one speed at least."""
    compared = {name: ok for name, ok in checks.items() if ok is not None}
    per_baseline = [any(baseline in name for name in compared) for baseline in POLICIES[1:]]
    return all(compared.values()) and all(per_baseline)


def paper_order(table: Mapping[str, Mapping[float, Cell]]) -> dict[float, bool | None]:
    """Per speed, whether AMP < complex reward < task reward only by CoT+ (``None`` unless all three reach it)."""
    order = {}
    for speed in SPEEDS:
        row = [table[policy][speed] for policy in POLICIES]
        order[speed] = (row[0].cot_positive < row[1].cot_positive < row[2].cot_positive
                        if all(cell.reached for cell in row) else None)
    return order


EDGE_BIN_HZ = 0.2
"""A stride frequency within this of :data:`amp_jax.analysis.footfall.MAX_STRIDE_HZ` is the search band's edge
(the window's frequency resolution is 1/6 Hz): the feet move faster than any stride the band holds."""


def _number(value: float, digits: int = 2) -> str:
    return "–" if not math.isfinite(value) else f"{value:.{digits}f}"


def _stride(hz: float) -> str:
    """The stride frequency, or ``≥ f (band edge)`` where the spectrum's peak is the top of the search band."""
    from amp_jax.analysis.footfall import MAX_STRIDE_HZ

    if math.isfinite(hz) and hz >= MAX_STRIDE_HZ - EDGE_BIN_HZ:
        return f"≥ {hz:.2f} (band edge)"
    return _number(hz)


def markdown_table(table: Mapping[str, Mapping[float, Cell]]) -> str:
    """Per policy and speed: achieved speed, CoT+ and CoT (this code, the paper's in brackets), stride frequency,
    duty factors and gait class; a fall is named in the gait column."""
    lines = ["| policy | command (m/s) | achieved (paper) | CoT+ (paper) | CoT abs. | stride (Hz) | "
             "duty FL FR RL RR | gait |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for policy in POLICIES:
        for speed in SPEEDS:
            cell = table[policy][speed]
            paper_cot, paper_speed = PAPER[policy][speed]
            gait = cell.gait if cell.upright else f"fell ({cell.gait})"
            achieved = cell.achieved_vx if abs(cell.achieved_vx) >= 0.005 else 0.0  # no "-0.00"
            lines.append(f"| {LABELS[policy]} | {speed:g} | {achieved:.2f} ({paper_speed:.2f}) | "
                         f"{_number(cell.cot_positive)} ({paper_cot:.2f}) | {_number(cell.cot_absolute)} | "
                         f"{_stride(cell.stride_hz)} | {' '.join(f'{d:.2f}' for d in cell.duty)} | {gait} |")
    return "\n".join(lines)


def verdict_lines(checks: Mapping[str, bool | None], order: Mapping[float, bool | None]) -> list[str]:
    """The goal's comparisons and the paper's ordering, one line each."""
    words = {True: "yes", False: "no", None: "not compared (a policy fell or did not move)"}
    lines = [f"{name}: {words[ok]}" for name, ok in checks.items()]
    lines += [f"paper's order (AMP < complex < task only) at {speed:g}: {words[ok]}" for speed, ok in order.items()]
    lines.append("baseline goal met" if goal_met(checks) else "baseline goal not met")
    return lines


def plot_table(table: Mapping[str, Mapping[float, Cell]], path: str | pathlib.Path,
               title: str = "") -> pathlib.Path:
    """CoT+ against achieved speed, one colour per policy: this code's points joined (filled), the paper's
    (hollow, dashed) beside them; log scale, since the task-only figures are an order of magnitude above."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"amp": "tab:blue", "complex_reward": "tab:orange", "task_only": "tab:red"}
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    for policy in POLICIES:
        reached = [cell for cell in table[policy].values() if cell.reached]
        missed = [f"{cell.speed:g}" for cell in table[policy].values() if not cell.reached]
        label = f"{LABELS[policy]} (this code)" + (f"; no CoT at {', '.join(missed)}" if missed else "")
        ax.plot([c.achieved_vx for c in reached], [c.cot_positive for c in reached], "o-",
                color=colours[policy], label=label)
        paper = PAPER[policy]
        ax.plot([paper[s][1] for s in SPEEDS], [paper[s][0] for s in SPEEDS], "o--", mfc="none",
                color=colours[policy], alpha=0.7, label=f"{LABELS[policy]} (paper)")
    ax.set_yscale("log")
    ax.set_xlabel("achieved forward speed (m/s)")
    ax.set_ylabel("cost of transport, positive work")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "Table II: cost of transport against speed (C MuJoCo, ONNX policies)", fontsize=10)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def build(sources: Mapping[str, str | pathlib.Path]) -> tuple[dict[str, dict[float, Cell]], dict[str, Any]]:
    """The table of the three policies' grids (``sources``: policy → folder or JSON) and its JSON-ready report."""
    table, files = {}, {}
    for policy in POLICIES:
        if policy not in sources:
            raise TableError(f"no grid for {LABELS[policy]}; expected one folder per policy ({', '.join(POLICIES)})")
        file, report = load_grid(sources[policy])
        table[policy] = cells(report, policy, str(file))
        files[policy] = str(file)
    checks, order = table_goal(table), paper_order(table)
    report = {"sources": files, "speeds": list(SPEEDS),
              "cells": {p: [dataclasses.asdict(c) for c in table[p].values()] for p in POLICIES},
              "paper": {p: {f"{s:g}": {"cot_positive": c, "achieved": v} for s, (c, v) in PAPER[p].items()}
                        for p in POLICIES},
              "goal": checks, "paper_order": {f"{s:g}": ok for s, ok in order.items()},
              "goal_met": goal_met(checks)}
    return table, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amp_jax.evaluation.table_ii",
                                     description=__doc__.split("\n")[0])
    for policy in POLICIES:
        parser.add_argument(f"--{policy.replace('_', '-')}", required=True, metavar="DIR",
                            help=f"the {LABELS[policy]} policy's run or packaged folder (evaluated with --grid), "
                                 "or its grid JSON")
    parser.add_argument("--png", help="also draw CoT+ against achieved speed here")
    parser.add_argument("--json", help="also write the table here")
    args = parser.parse_args(argv)
    try:
        table, report = build({policy: getattr(args, policy) for policy in POLICIES})
    except TableError as err:
        print(f"table_ii: {err}", file=sys.stderr)
        return 2
    print(markdown_table(table))
    print("\n".join(verdict_lines(report["goal"], paper_order(table))))
    if args.json:
        from amp_jax.analysis.report_json import json_ready

        pathlib.Path(args.json).write_text(json.dumps(json_ready(report), indent=1) + "\n")
    if args.png:
        plot_table(table, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
