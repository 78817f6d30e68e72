"""Plots: PNGs of the expected size with drawn content; contacts and foot heights against hand computations."""

import numpy as np
import pytest
from PIL import Image

from amp_jax import config, gait, plotting
from amp_jax.motion import loader


def png(path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def test_contacts_from_foot_heights_by_hand():
    foot_z = np.array([[0.010, 0.050, 0.029, 0.031],
                       [0.030, 0.020, 0.100, -0.002],
                       [0.080, 0.080, 0.000, 0.015]])
    expected = np.array([[True, False, True, False],
                         [False, True, False, True],
                         [False, False, True, True]])
    np.testing.assert_array_equal(plotting.contacts_from_foot_heights(foot_z, 0.03), expected)
    np.testing.assert_allclose(plotting.duty_factors(expected), [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    with pytest.raises(ValueError, match=r"foot_z has shape \(3, 3\): expected \[T, 4\]"):
        plotting.contacts_from_foot_heights(foot_z[:, :3], 0.03)


def test_reference_trot_has_diagonal_pairs():
    """In the trot clip, diagonal feet (FL+RR, FR+RL) touch down together and lateral pairs alternate."""
    path = next(p for p in config.MotionConfig().resolved_files() if p.name == "trot0.txt")
    clip = loader.load_clip(path)
    contacts = plotting.contacts_from_foot_heights(gait.clip_foot_heights(clip.frames), 0.03)
    c = contacts.astype(float)
    agree = lambda a, b: float(np.mean(c[:, a] == c[:, b]))  # noqa: E731
    fl, fr, rl, rr = range(4)
    assert agree(fl, rr) > 0.7 and agree(fr, rl) > 0.7
    assert agree(fl, fr) < 0.5 and agree(rl, rr) < 0.5
    assert np.all((plotting.duty_factors(contacts) > 0.2) & (plotting.duty_factors(contacts) < 0.8))


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
