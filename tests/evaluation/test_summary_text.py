"""The lines printed after an evaluation, from a summary shaped as ``evaluation.json`` is."""

import pathlib

from amp_jax.evaluation.summary_text import format_summary


def test_each_present_section_is_one_line_with_its_figures_and_absent_ones_print_nothing():
    summary = {
        "duration_s": 12.0, "fell_at_s": None, "tracking_rms": {"vx": 0.1234, "vy": 0.05, "yaw_rate": 0.2},
        "discriminator_scores": {"d_policy": -0.33, "d_clips": 0.52, "style_reward_policy": 1.12,
                                 "style_reward_clips": 1.88, "reward_coef": 2.0},
        "command_grid": {"criteria": {"no_fall": True, "vx_rms_at_0.4": False, "cot_at_0.8": False}},
        "problems": {"video": "RuntimeError: no renderer"},
        "files": ["evaluation.json", "policy.onnx"],
    }
    text = format_summary(pathlib.Path("runs/x"), summary)
    lines = text.splitlines()
    assert lines[0] == "evaluation of runs/x:"
    assert "MJX rollout 12.0 s, stayed up; tracking RMS vx 0.123 vy 0.050 m/s, yaw 0.200 rad/s" in lines[1]
    assert "D -0.33 on this rollout, +0.52 on its clips (style reward 1.12 vs 1.88 of 2)" in text
    assert "command grid (C MuJoCo): 1 of 3 goal criteria met; missed: vx_rms_at_0.4, cot_at_0.8" in text
    assert "  video failed: RuntimeError: no renderer" in lines
    assert lines[-1] == "  files: evaluation.json, policy.onnx"
    for absent in ("ONNX parity", "C MuJoCo:", "trot check", "speed sweep", "gait vs"):
        assert absent not in text
    fell = format_summary(pathlib.Path("r"), {**summary, "fell_at_s": 3.25, "files": []})
    assert "fell at 3.25 s" in fell and fell.endswith("files: none")
