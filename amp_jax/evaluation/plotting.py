"""Figures of a run, written as PNG with matplotlib's Agg backend (no display needed).

- :func:`plot_learning_curves`: task and AMP reward, discriminator outputs, episode return and length,
  learning rate and action std against the iteration, from ``metrics.jsonl`` (see ``metrics_log``).
- :func:`plot_gait_diagram`: the foot-contact pattern over time, legs FL, FR, RL, RR, black where in
  contact, of the policy above that of a reference clip.
- :func:`plot_velocity_tracking`: commanded against measured base velocity (x, y, yaw rate).
- :func:`plot_speed_sweep`: cost of transport, achieved speed and the gait class (a band) against the
  commanded forward speed.
- :func:`plot_footfall_phases`: each foot's stance within the stride (touchdown phase and duty factor) at
  every commanded speed.
- :func:`plot_probe_progress`: runs' training-probe tracking errors against env steps, with the thresholds a
  comparison names (``amp_jax.evaluation.probe_progress``).
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from amp_jax import a1  # noqa: E402
from amp_jax.analysis.gait import duty_factors  # noqa: E402

LEG_NAMES = a1.LEG_NAMES
"""Row order of the gait diagram, the project's leg order."""

LEARNING_CURVE_PANELS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("task reward", ("reward/task",), False),
    ("AMP reward", ("reward/amp",), False),
    ("discriminator output", ("amp/d_expert", "amp/d_policy"), False),
    ("episode return", ("episode/return",), False),
    ("episode length (steps)", ("episode/length",), False),
    ("learning rate", ("optim/learning_rate",), True),
    ("action std", ("policy/mean_std",), False),
    ("mean action (probe)", ("probe/vx_rms", "probe/contact_similarity"), False),
    ("mean action's cost of transport (probe)", ("probe/cot_positive",), False),
    ("mean action's stride frequency (probe, Hz)", ("probe/stride_hz",), False),
)
"""(panel title, metric names drawn in it, log scale); panels whose metrics are all absent are left out. Metrics
logged only every few iterations (the probe's) are drawn through their logged points."""

_LABELS = {"amp/d_expert": "D(expert)", "amp/d_policy": "D(policy)", "probe/vx_rms": "v_x RMS error (m/s)",
           "probe/contact_similarity": "contact similarity",
           "probe/cot_positive": "positive-work CoT, mean over the probe's speeds",
           "probe/stride_hz": "stride frequency, mean over the probe's speeds"}


def _save(fig: plt.Figure, path: str | os.PathLike, dpi: int) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    plt.close(fig)
    return path


def plot_learning_curves(metrics: Mapping[str, np.ndarray], path: str | os.PathLike, *, x: str = "iteration",
                         figsize: tuple[float, float] = (12.0, 7.0), dpi: int = 100) -> pathlib.Path:
    """Learning curves as one PNG of ``figsize × dpi`` pixels (default 1200 × 700).

    Args:
      metrics: column name → values ``[N]``, as returned by ``metrics_log.read_metrics``.
      path: the PNG to write.
      x: the column on the horizontal axis.
    Raises:
      ValueError: ``x`` is missing, or none of the known metrics is present.
    """
    if x not in metrics:
        raise ValueError(f"metrics lack the x column {x!r} (columns: {', '.join(sorted(metrics))})")
    panels = [p for p in LEARNING_CURVE_PANELS if any(name in metrics for name in p[1])]
    if not panels:
        known = sorted({n for _, names, _ in LEARNING_CURVE_PANELS for n in names})
        raise ValueError(f"metrics hold none of the plotted columns (expected some of: {', '.join(known)})")
    columns = 4 if len(panels) > 4 else len(panels)
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=figsize, squeeze=False)
    xs = np.asarray(metrics[x])
    for ax, (title, names, log_scale) in zip(axes.flat, panels):
        for name in names:
            if name in metrics:
                values = np.asarray(metrics[name], np.float64)
                logged = np.isfinite(values)
                ax.plot(np.asarray(xs)[logged], values[logged], lw=1.2, marker="." if logged.mean() < 0.5 else None,
                        label=_LABELS.get(name, name))
        if log_scale:
            ax.set_yscale("log")
        if len(names) > 1:
            ax.legend(fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(x, fontsize=8)
        ax.tick_params(which="both", labelsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path, dpi)


# ----------------------------------------------------------------------------------------------------------
# Gait


def _draw_contacts(ax: plt.Axes, contacts: np.ndarray, dt: float, title: str) -> None:
    contacts = np.asarray(contacts, dtype=bool)
    if contacts.ndim != 2 or contacts.shape[1] != len(LEG_NAMES):
        raise ValueError(f"{title}: contacts have shape {contacts.shape}: expected [T, {len(LEG_NAMES)}]")
    if dt <= 0:
        raise ValueError(f"{title}: dt = {dt}: expected a positive time step (s)")
    duration = contacts.shape[0] * dt
    ax.imshow(contacts.T.astype(float), cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto",
              interpolation="nearest", extent=(0.0, duration, len(LEG_NAMES) - 0.5, -0.5))
    duty = duty_factors(contacts)
    ax.set_yticks(range(len(LEG_NAMES)), [f"{leg} {d:.0%}" for leg, d in zip(LEG_NAMES, duty)], fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("time (s)", fontsize=9)
    ax.set_xlim(0.0, duration)


def plot_gait_diagram(policy_contacts: np.ndarray, policy_dt: float, reference_contacts: np.ndarray,
                      reference_dt: float, path: str | os.PathLike, *,
                      titles: Sequence[str] = ("policy", "reference"), figsize: tuple[float, float] = (10.0, 4.5),
                      dpi: int = 100) -> pathlib.Path:
    """Gait diagrams of the policy (top) and a reference clip (bottom), one PNG.

    Args:
      policy_contacts: ``[T, 4]`` bool, legs FL, FR, RL, RR, one row per control step of ``policy_dt`` s.
      reference_contacts: ``[T', 4]`` bool, one row per clip frame of ``reference_dt`` s.
    Each row label carries the foot's duty factor (fraction of time in contact).
    """
    fig, axes = plt.subplots(2, 1, figsize=figsize)
    _draw_contacts(axes[0], policy_contacts, policy_dt, titles[0])
    _draw_contacts(axes[1], reference_contacts, reference_dt, titles[1])
    fig.tight_layout()
    return _save(fig, path, dpi)


# ----------------------------------------------------------------------------------------------------------
# Velocity tracking


def plot_velocity_tracking(commanded: np.ndarray, measured: np.ndarray, dt: float, path: str | os.PathLike, *,
                           figsize: tuple[float, float] = (10.0, 7.0), dpi: int = 100) -> pathlib.Path:
    """Commanded against measured base velocity over time, one panel each for v_x, v_y (m/s) and yaw rate (rad/s).

    Args:
      commanded, measured: ``[T, 3]``: (v_x, v_y, ω_z) in the base frame, one row per control step of ``dt`` s.
    """
    commanded, measured = np.asarray(commanded), np.asarray(measured)
    if commanded.ndim != 2 or commanded.shape[1] != 3 or commanded.shape != measured.shape:
        raise ValueError(f"commanded {commanded.shape} and measured {measured.shape}: expected both [T, 3]")
    t = np.arange(commanded.shape[0]) * dt
    fig, axes = plt.subplots(3, 1, figsize=figsize, sharex=True)
    for i, (ax, label) in enumerate(zip(axes, ("v_x (m/s)", "v_y (m/s)", "yaw rate (rad/s)"))):
        ax.plot(t, commanded[:, i], color="black", lw=1.5, ls="--", label="commanded")
        ax.plot(t, measured[:, i], color="tab:blue", lw=1.0, label="measured")
        rmse = float(np.sqrt(np.mean((commanded[:, i] - measured[:, i]) ** 2)))
        ax.set_ylabel(label, fontsize=9)
        ax.set_title(f"RMS error {rmse:.3f}", fontsize=9, loc="right")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left")
    axes[-1].set_xlabel("time (s)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path, dpi)


# ----------------------------------------------------------------------------------------------------------
# Speed sweep

LEG_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red")
"""Colour of each leg (FL, FR, RL, RR) in the footfall phase diagram."""
UNLISTED_CLASS_COLOR = "0.6"
"""Colour of a gait-class label that is not among the ``classes`` passed to :func:`plot_speed_sweep`."""


def _check_speeds(speeds: np.ndarray, **columns: np.ndarray) -> np.ndarray:
    speeds = np.asarray(speeds, np.float64)
    if speeds.ndim != 1 or speeds.size == 0:
        raise ValueError(f"speeds have shape {speeds.shape}: expected [K >= 1]")
    for name, values in columns.items():
        if np.shape(values)[:1] != speeds.shape:
            raise ValueError(f"{name} has shape {np.shape(values)}: expected [{speeds.size}, ...] (one per speed)")
    return speeds


def _bin_edges(speeds: np.ndarray) -> np.ndarray:
    """Edges ``[K + 1]`` of bins centred on the (sorted) speeds ``[K]``."""
    if speeds.size == 1:
        return np.array([speeds[0] - 0.1, speeds[0] + 0.1])
    mid = 0.5 * (speeds[1:] + speeds[:-1])
    return np.concatenate([[2 * speeds[0] - mid[0]], mid, [2 * speeds[-1] - mid[-1]]])


def plot_speed_sweep(speeds: np.ndarray, achieved: np.ndarray, cot: np.ndarray, cot_positive: np.ndarray,
                     gaits: Sequence[str], path: str | os.PathLike, *, classes: Sequence[str] = (),
                     figsize: tuple[float, float] = (9.0, 7.0), dpi: int = 100) -> pathlib.Path:
    """Cost of transport (top), achieved speed (middle) and gait class (a band, bottom) against the command.

    Args:
      speeds: commanded forward speeds ``[K]`` (m/s), increasing.
      achieved: mean measured forward speed at each ``[K]`` (m/s; NaN where every seed fell).
      cot, cot_positive: cost of transport of the absolute and of the positive motor work ``[K]`` (NaN: none).
      gaits: the gait class at each speed ``[K]``.
      classes: every class name in legend order, which fixes each class's colour; others are grey.
    """
    speeds = _check_speeds(speeds, achieved=achieved, cot=cot, cot_positive=cot_positive, gaits=np.asarray(gaits))
    palette = plt.get_cmap("tab10")
    colors = {name: palette(i % 10) for i, name in enumerate(classes)}
    fig, axes = plt.subplots(3, 1, figsize=figsize, sharex=True, gridspec_kw={"height_ratios": (3, 2, 0.8)})
    axes[0].plot(speeds, np.asarray(cot), "o-", lw=1.5, label="|τ·q̇| work")
    axes[0].plot(speeds, np.asarray(cot_positive), "s--", lw=1.2, label="positive work only")
    axes[0].set_ylabel("cost of transport", fontsize=9)
    axes[0].legend(fontsize=8)
    axes[1].plot(speeds, speeds, color="black", ls="--", lw=1.0, label="commanded")
    axes[1].plot(speeds, np.asarray(achieved), "o-", color="tab:blue", lw=1.2, label="achieved")
    axes[1].set_ylabel("forward speed (m/s)", fontsize=9)
    axes[1].legend(fontsize=8)
    edges = _bin_edges(speeds)
    for k, name in enumerate(gaits):
        color = colors.get(name, UNLISTED_CLASS_COLOR)
        axes[2].axvspan(edges[k], edges[k + 1], color=color, alpha=0.85, lw=0)
        axes[2].text(speeds[k], 0.5, name, ha="center", va="center", fontsize=7, rotation=90)
    axes[2].set_yticks([])
    axes[2].set_ylabel("gait", fontsize=9)
    axes[2].set_xlim(edges[0], edges[-1])
    axes[2].set_xlabel("commanded forward speed (m/s)", fontsize=9)
    for ax in axes[:2]:
        ax.grid(alpha=0.3)
    for ax in axes:
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    return _save(fig, path, dpi)


def plot_footfall_phases(speeds: np.ndarray, duty: np.ndarray, offsets: np.ndarray, path: str | os.PathLike, *,
                         gaits: Sequence[str] | None = None, strides: int = 2,
                         figsize: tuple[float, float] = (9.0, 7.0), dpi: int = 100) -> pathlib.Path:
    """Footfall phase diagram: at each speed, a bar per foot from its touchdown for its duty factor, over
    ``strides`` strides (phase 0 = FL's touchdown).

    Args:
      speeds: commanded forward speeds ``[K]`` (m/s), one row each (the fastest on top).
      duty: duty factors ``[K, 4]``, legs FL, FR, RL, RR.
      offsets: touchdown phases ``[K, 4]`` after FL's (strides in [0, 1); NaN: the foot has no phase, no bar).
      gaits: the gait class of each row ``[K]``, written at its right.
    """
    speeds = _check_speeds(speeds, duty=duty, offsets=offsets)
    duty, offsets = np.asarray(duty, np.float64), np.asarray(offsets, np.float64)
    if duty.shape != (speeds.size, len(LEG_NAMES)) or offsets.shape != duty.shape:
        raise ValueError(f"duty {duty.shape} and offsets {offsets.shape}: expected both [{speeds.size}, 4]")
    fig, ax = plt.subplots(figsize=figsize)
    lane = 1.0 / (len(LEG_NAMES) + 1)
    labelled: set[str] = set()
    for k in range(speeds.size):
        for leg in range(len(LEG_NAMES)):
            if not (np.isfinite(offsets[k, leg]) and np.isfinite(duty[k, leg])):
                continue
            y = k + 1.0 - (leg + 1) * lane
            bars = [(offsets[k, leg] + n, duty[k, leg]) for n in range(-1, strides)]
            ax.broken_barh(bars, (y - 0.4 * lane, 0.8 * lane), color=LEG_COLORS[leg],
                           label=None if LEG_NAMES[leg] in labelled else LEG_NAMES[leg])
            labelled.add(LEG_NAMES[leg])
        if gaits is not None:
            ax.text(strides + 0.02, k + 0.5, gaits[k], va="center", fontsize=8)
    ax.set_xlim(0.0, strides)
    ax.set_ylim(0.0, speeds.size)
    ax.set_yticks(np.arange(speeds.size) + 0.5, [f"{v:g}" for v in speeds], fontsize=8)
    for k in range(1, speeds.size):
        ax.axhline(k, color="0.8", lw=0.6)
    ax.set_ylabel("commanded forward speed (m/s)", fontsize=9)
    ax.set_xlabel("stride phase (0 = FL touchdown)", fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, 1.08), frameon=False)
    fig.tight_layout()
    return _save(fig, path, dpi)


# ----------------------------------------------------------------------------------------------------------
# Comparing runs


def plot_probe_progress(runs: Sequence[tuple[str, np.ndarray, np.ndarray]], thresholds: Sequence[float],
                        path: str | os.PathLike, *, figsize: tuple[float, float] = (10.0, 5.0),
                        dpi: int = 100) -> pathlib.Path:
    """Each run's training-probe tracking error against its env steps (in millions), one line per run through its
    probes, and each threshold a dashed grey level: one PNG of ``figsize × dpi`` pixels (default 1000 × 500).

    Args:
      runs: ``(label, env_steps [P], tracking_error [P])`` per run (``probe_progress.ProbeSeries``' fields).
      thresholds: tracking errors to draw as levels.
      path: the PNG to write.
    Raises:
      ValueError: no runs, or a run whose two arrays are empty or differ in length (names the run).
    """
    if not runs:
        raise ValueError("no runs to plot (expected at least one)")
    fig, ax = plt.subplots(figsize=figsize)
    for label, env_steps, error in runs:
        env_steps, error = np.asarray(env_steps, np.float64), np.asarray(error, np.float64)
        if env_steps.shape != error.shape or env_steps.ndim != 1 or not env_steps.size:
            raise ValueError(f"{label}: env steps {env_steps.shape} and tracking errors {error.shape}: expected "
                             "two arrays [P] of the same length, P > 0")
        ax.plot(env_steps / 1e6, error, lw=1.4, marker=".", ms=4, label=label)
    for threshold in thresholds:
        ax.axhline(threshold, color="0.55", lw=0.8, ls="--")
        ax.text(1.005, threshold, f"{threshold:.2f}", transform=ax.get_yaxis_transform(), fontsize=7,
                color="0.35", va="center", ha="left")
    ax.set_xlabel("env steps (millions)")
    ax.set_ylabel("tracking error (mean of the probe's RMS errors)")
    ax.set_title("the mean action's tracking error at each training probe; dashed: the thresholds", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path, dpi)
