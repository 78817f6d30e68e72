"""Plots: PNGs of the expected size with drawn content; contacts and foot heights against hand computations."""

import numpy as np
import pytest
from PIL import Image

from amp_jax.evaluation import plotting


def png(path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def test_learning_curves_png(tmp_path):
    n = 50
    it = np.arange(1, n + 1, dtype=float)
    metrics = {"iteration": it, "reward/task": np.log1p(it), "reward/amp": 1.0 - 1.0 / it,
               "amp/d_expert": 0.9 + 0 * it, "amp/d_policy": -0.5 + 0.01 * it, "episode/return": 0.3 * it,
               "episode/length": np.minimum(10 * it, 667), "optim/learning_rate": 1e-3 * 0.97 ** it,
               "policy/mean_std": 1 / it}
    path = plotting.plot_learning_curves(metrics, tmp_path / "figs" / "curves.png")
    image = png(path)
    assert image.shape == (700, 1200, 3)
    assert (image < 100).any() and (image > 250).any()
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20  # lines of several colours, text, axes
    with pytest.raises(ValueError, match=r"none of the plotted columns"):
        plotting.plot_learning_curves({"iteration": it, "other": it}, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"lack the x column 'iteration'"):
        plotting.plot_learning_curves({"reward/task": it}, tmp_path / "x.png")


def test_gait_diagram_png(tmp_path):
    t = np.arange(100)
    phase = (t // 10) % 2 == 0  # 0.3 s stance, 0.3 s swing at 0.03 s per step
    policy = np.stack([phase, ~phase, ~phase, phase], axis=1)
    reference = np.stack([np.ones(40, bool), np.zeros(40, bool), np.ones(40, bool), np.zeros(40, bool)], axis=1)
    path = plotting.plot_gait_diagram(policy, 0.03, reference, 0.021, tmp_path / "gait.png")
    image = png(path)
    assert image.shape == (450, 1000, 3)
    dark = (image.max(axis=2) < 40)
    top, bottom = dark[: 450 // 2], dark[450 // 2:]
    # The policy's panel is half black, the reference's half black too (two feet always down): both are drawn.
    assert top.sum() > 5000 and bottom.sum() > 5000
    with pytest.raises(ValueError, match=r"reference: dt = 0.0: expected a positive time step"):
        plotting.plot_gait_diagram(policy, 0.03, reference, 0.0, tmp_path / "bad.png")


def test_velocity_tracking_png(tmp_path):
    t = np.arange(200) * 0.03
    commanded = np.stack([np.where(t < 3, 0.5, 1.0), 0 * t, 0.2 + 0 * t], axis=1)
    measured = commanded + 0.05 * np.sin(5 * t)[:, None]
    image = png(plotting.plot_velocity_tracking(commanded, measured, 0.03, tmp_path / "vel.png"))
    assert image.shape == (700, 1000, 3)
    assert (image < 100).any() and len(np.unique(image.reshape(-1, 3), axis=0)) > 10
    with pytest.raises(ValueError, match=r"expected both \[T, 3\]"):
        plotting.plot_velocity_tracking(commanded, measured[:, :2], 0.03, tmp_path / "bad.png")


def test_probe_progress_png_draws_each_run_in_its_colour_and_the_thresholds(tmp_path):
    steps = np.arange(1, 41) * 0.25e6
    runs = [("a", steps, 0.5 * np.exp(-steps / 4e6) + 0.2), ("b", steps[:30], 0.6 * np.exp(-steps[:30] / 3e6) + 0.2)]
    image = png(plotting.plot_probe_progress(runs, [0.30, 0.26], tmp_path / "probe.png"))
    assert image.shape == (500, 1000, 3)
    pixels = image.reshape(-1, 3).astype(int)

    def count(rgb):
        return int(np.sum(np.abs(pixels - np.array(rgb)).max(axis=1) <= 12))

    assert count((31, 119, 180)) > 300 and count((255, 127, 14)) > 300  # the first and second runs' colours
    assert count((140, 140, 140)) > 200  # the dashed threshold levels
    with pytest.raises(ValueError, match=r"^b: env steps \(30,\) and tracking errors \(29,\)"):
        plotting.plot_probe_progress([runs[0], ("b", steps[:30], runs[1][2][:29])], [0.3], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="no runs"):
        plotting.plot_probe_progress([], [0.3], tmp_path / "bad.png")
