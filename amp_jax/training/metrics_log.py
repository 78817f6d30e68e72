"""Per-iteration metrics of a run: a JSON-lines file, TensorBoard event files and a live progress line.

``<run_dir>/metrics.jsonl`` holds one JSON object per logged iteration: ``iteration``, ``env_steps``,
``wall_time`` (s since the logger started), ``steps_per_second``, then every metric the trainer passed
(flat names such as ``reward/task``; NaN where a value was not finite). TensorBoard scalars go to
``<run_dir>/tensorboard/``. The terminal gets one line that rewrites itself on a TTY, or one line every
``print_every`` iterations otherwise (CI logs).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import sys
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

import numpy as np

METRICS_FILE = "metrics.jsonl"
"""Name of the JSON-lines file inside the run folder."""
TENSORBOARD_SUBDIR = "tensorboard"
"""Folder of the TensorBoard event files inside the run folder."""

ProgressField = tuple[str, str, str]
"""(metric name, label in the progress line, format spec)."""

DEFAULT_PROGRESS_FIELDS: tuple[ProgressField, ...] = (
    ("episode/return", "return", ".2f"),
    ("episode/length", "len", ".0f"),
    ("reward/task", "task", ".3f"),
    ("reward/amp", "amp", ".3f"),
    ("amp/d_expert", "D(exp)", ".2f"),
    ("amp/d_policy", "D(pol)", ".2f"),
    ("optim/learning_rate", "lr", ".1e"),
    ("policy/mean_std", "std", ".3f"),
    ("probe/vx_rms", "mean-action vx err", ".2f"),
    ("probe/cot_positive", "CoT+", ".2f"),
    ("probe/stride_hz", "stride Hz", ".1f"),
)
"""Metrics shown in the progress line when present (others still go to the files)."""


def _to_float(name: str, value: Any) -> float:
    array = np.asarray(value)
    if array.size != 1:
        raise ValueError(f"metric {name!r} has shape {array.shape}: expected a scalar")
    return float(array.reshape(()))


def format_duration(seconds: float) -> str:
    """``'1h02m'``, ``'3m05s'`` or ``'42s'``; ``'?'`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_progress(iteration: int, total: int, env_steps: int, steps_per_second: float, eta_seconds: float,
                    metrics: Mapping[str, float],
                    fields: Sequence[ProgressField] = DEFAULT_PROGRESS_FIELDS) -> str:
    """The one-line summary of an iteration, e.g. ``'it 10/3000 | steps 1.3M | 45.2k/s | eta 1h02m | ...'``."""
    parts = [f"it {iteration}/{total}", f"steps {_si(env_steps)}", f"{_si(steps_per_second)}/s",
             f"eta {format_duration(eta_seconds)}"]
    for name, label, spec in fields:
        if name in metrics:
            parts.append(f"{label} {metrics[name]:{spec}}")
    return " | ".join(parts)


def _si(value: float) -> str:
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / threshold:.1f}{suffix}"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


class MetricsLogger:
    """Writes the metrics of each iteration to ``metrics.jsonl``, TensorBoard and the terminal.

    Args:
      run_dir: the run folder (created if missing).
      total_iterations: the iteration count of the run (for the progress line and the ETA).
      print_every: when the stream is not a TTY, print one line every this many iterations (and the last).
      stream: where the progress line goes (default: standard output); None prints nothing.
      tensorboard: also write TensorBoard event files.
      resume_from: when resuming from a checkpoint of this iteration, drop the lines after it that the
        interrupted run had written, so that ``metrics.jsonl`` has each iteration once.
      progress_fields: (metric name, label, format) of the metrics shown in the progress line.
      is_tty: override the TTY detection of ``stream``.
      deadline: ``time.monotonic()`` at which a wall-clock budget ends the run; the ETA is the sooner of that
        and the remaining iterations' time.
    """

    def __init__(self, run_dir: str | os.PathLike, *, total_iterations: int, print_every: int = 10,
                 stream: IO[str] | None = sys.stdout, tensorboard: bool = True, resume_from: int | None = None,
                 progress_fields: Sequence[ProgressField] = DEFAULT_PROGRESS_FIELDS, is_tty: bool | None = None,
                 deadline: float | None = None):
        if total_iterations < 1 or print_every < 1:
            raise ValueError(f"total_iterations = {total_iterations}, print_every = {print_every}: expected >= 1")
        self.run_dir = pathlib.Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / METRICS_FILE
        self.total_iterations = total_iterations
        self.print_every = print_every
        self.stream = stream
        self.progress_fields = tuple(progress_fields)
        self.deadline = deadline
        self.is_tty = bool(is_tty if is_tty is not None else (stream is not None and stream.isatty()))
        if resume_from is not None and self.path.exists():
            _keep_up_to(self.path, resume_from)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open for the run
        self._writer = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir / TENSORBOARD_SUBDIR))
        self._start = time.monotonic()
        self._first: tuple[int, int, float] | None = None  # (iteration, env steps, time) of the first log
        self._last: tuple[int, int, float] | None = None
        self._line_width = 0

    def log(self, iteration: int, metrics: Mapping[str, Any], *, env_steps: int) -> dict[str, float]:
        """Records the metrics of ``iteration`` (scalars: Python, NumPy or JAX) after ``env_steps`` env steps.

        Returns the record written to ``metrics.jsonl``.
        """
        now = time.monotonic()
        values = {name: _to_float(name, value) for name, value in metrics.items()}
        if self._last is not None and now > self._last[2]:
            steps_per_second = (env_steps - self._last[1]) / (now - self._last[2])
        else:
            steps_per_second = float("nan")
        if self._first is None:
            self._first = (iteration, env_steps, now)
        done = iteration - self._first[0]
        seconds_per_iteration = (now - self._first[2]) / done if done > 0 else float("nan")
        eta = (self.total_iterations - iteration) * seconds_per_iteration
        if self.deadline is not None:
            eta = min(eta, max(self.deadline - now, 0.0)) if math.isfinite(eta) else max(self.deadline - now, 0.0)
        self._last = (iteration, env_steps, now)

        record = {"iteration": int(iteration), "env_steps": int(env_steps), "wall_time": now - self._start,
                  "steps_per_second": steps_per_second, **values}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._writer is not None:
            for name, value in record.items():
                if name != "iteration" and math.isfinite(value):
                    self._writer.add_scalar(name, value, iteration)
        self._print(format_progress(iteration, self.total_iterations, env_steps, steps_per_second, eta, values,
                                    self.progress_fields), iteration)
        return record

    def _print(self, line: str, iteration: int) -> None:
        if self.stream is None:
            return
        if self.is_tty:
            self.stream.write("\r" + line.ljust(self._line_width))
            self._line_width = len(line)
        elif iteration % self.print_every == 0 or iteration >= self.total_iterations:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Flushes and closes the files; ends the progress line on a TTY."""
        if self.stream is not None and self.is_tty and self._line_width:
            self.stream.write("\n")
            self.stream.flush()
        self._file.close()
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_records(path: pathlib.Path) -> list[dict]:
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # a last line cut short by a crash
                break
            raise ValueError(f"{path}:{number}: not a JSON object (expected one record per line)") from None
    return records


def _keep_up_to(path: pathlib.Path, iteration: int) -> None:
    kept = [r for r in _read_records(path) if r.get("iteration", -1) <= iteration]
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
    tmp.replace(path)


def read_metrics(run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every column of ``<run_dir>/metrics.jsonl`` as a float64 array ``[N]`` (NaN where a line lacks it)."""
    path = pathlib.Path(run_dir) / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics file (expected one written by MetricsLogger)")
    records = _read_records(path)
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    return {name: np.array([r.get(name, np.nan) for r in records], dtype=np.float64) for name in names}
