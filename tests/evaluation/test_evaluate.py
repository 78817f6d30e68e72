"""What a finished run leaves behind: evaluation.json, plots, video, ONNX policy, sim-to-sim result."""

import contextlib
import json
import logging
import shutil

import jax
import mujoco
import numpy as np
import pytest

from amp_jax.analysis import command_schedule, footfall, gait, rollout, sweep
from amp_jax.analysis.command_schedule import CommandSegment
from amp_jax.analysis.report_json import json_ready
from amp_jax.config import PROJECT_ROOT
from amp_jax.deploy import onnx_export
from amp_jax.evaluation import evaluate, video
from amp_jax.evaluation import rollouts as eval_rollouts

SHORT = (CommandSegment(0.3, 0.5, 0.0, 0.0), CommandSegment(0.3, 1.0, 0.0, 0.6))
"""0.6 s: 10 + 10 control steps."""


TINY_SWEEP = sweep.SweepSettings(speed_step=1.0, seeds=2, settle_s=0.15, measure_s=0.6)
"""Commands 1 and 2 m/s (the tiny run's a1_trot range ends at 2), two start poses, 25 control steps."""


@contextlib.contextmanager
def compiled_programs():
    """Collects the names of the programs JAX lowers for compilation inside the block."""
    names = []

    class Handler(logging.Handler):
        def emit(self, record):
            message = record.getMessage()
            if message.startswith("Compiling "):
                names.append(message.split()[1])

    handler, jax_logger = Handler(level=logging.WARNING), logging.getLogger("jax")
    previous = jax.config.jax_log_compiles
    jax.config.update("jax_log_compiles", True)
    jax_logger.addHandler(handler)
    try:
        yield names
    finally:
        jax_logger.removeHandler(handler)
        jax.config.update("jax_log_compiles", previous)


@pytest.fixture(scope="module")
def finished_and_compiled(tiny_run_dir):
    """finish_run's summary (with the speed sweep and a one-command grid) and the names of the programs it
    compiled."""
    from amp_jax.deploy import command_grid

    with compiled_programs() as names, pytest.MonkeyPatch.context() as patch:
        patch.setattr(command_grid, "GRID", (("forward 0.4", (0.4, 0.0, 0.0)),))
        summary = evaluate.finish_run(tiny_run_dir, SHORT, sweep=TINY_SWEEP, grid=True)
    return summary, names


@pytest.fixture(scope="module")
def finished(finished_and_compiled):
    return finished_and_compiled[0]


@pytest.fixture(scope="module")
def trajectory(tiny_run_policy):
    commands = command_schedule.commands_from_schedule(SHORT, tiny_run_policy.cfg.env.control_dt)
    return eval_rollouts.rollout_policy(tiny_run_policy, commands)


def test_finish_run_writes_every_artefact(finished, tiny_run_dir):
    on_disk = json.loads((tiny_run_dir / evaluate.EVALUATION_FILE).read_text())
    assert on_disk == json.loads(json.dumps(json_ready(finished)))  # NaN (a CoT without distance): null
    problems = finished["problems"]
    # The only step allowed to fail here is the video, and only with the message saying how to get one.
    assert set(problems) <= {"video"}, problems
    expected = {"learning_curves.png", "gait_diagram.png", "velocity_tracking.png", "policy.onnx",
                evaluate.SPEED_SWEEP_FILE, evaluate.FOOTFALL_FILE, evaluate.GRID_FILE, evaluate.GRID_MJX_FILE}
    if "video" in problems:
        assert "MUJOCO_GL" in problems["video"] and "apt-get install" in problems["video"]
    else:
        expected.add("policy.mp4")
        import imageio.v2 as imageio

        with video.ffmpeg_subprocess():  # the reader runs ffmpeg too
            reader = imageio.get_reader(tiny_run_dir / "policy.mp4")
            assert reader.count_frames() == 20  # one frame per control step
            assert reader.get_data(0).shape == (480, 640, 3)
    assert expected <= set(finished["files"])
    for name in expected:
        assert (tiny_run_dir / name).stat().st_size > 1000, name
    with open(tiny_run_dir / "gait_diagram.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_evaluation_json_contents(finished):
    assert finished["checkpoint_step"] == 2
    assert finished["schedule"] == [[0.3, 0.5, 0.0, 0.0], [0.3, 1.0, 0.0, 0.6]]
    assert finished["duration_s"] == pytest.approx(0.6)
    assert set(finished["tracking_rms"]) == {"vx", "vy", "yaw_rate"}
    similarity = finished["gait_similarity"]
    assert similarity["contact_reference"] == "trot0"  # a trot config
    assert similarity["amp_reference"] == ["trot0", "trot1"]
    assert 0.0 <= similarity["contact"]["overall"] <= 1.0
    assert similarity["amp_feature_distance"]["symmetric"] > 0.0
    assert finished["onnx"]["parity_max_abs_diff"] <= onnx_export.PARITY_TOLERANCE
    # The run's own discriminator, on the rollout and on its clips.
    scores = finished["discriminator_scores"]
    assert all(np.isfinite(scores[k]) for k in ("d_policy", "d_clips", "style_reward_policy", "style_reward_clips"))
    assert 0.0 <= scores["style_reward_policy"] <= scores["reward_coef"] == 2.0
    # The command grid: the patched command and the trot clip's speed, with the goal's criteria.
    for key in ("command_grid", "command_grid_mjx"):  # in C MuJoCo through the ONNX, and in MJX
        grid = finished[key]
        assert [row["name"] for row in grid["results"]] == ["forward 0.4", "trot clip speed"]
        assert grid["criteria"]["no_fall"] in (True, False) and "vx_rms_at_0.4" in grid["criteria"]
    assert finished["command_grid_mjx"]["criteria"].keys() == finished["command_grid"]["criteria"].keys()
    sim = finished["sim2sim"]
    assert sim["duration_s"] == pytest.approx(0.6)
    assert isinstance(sim["upright"], bool) and set(sim["tracking_rms"]) == {"vx", "vy", "yaw_rate"}


def test_rollout_follows_the_schedule_and_reports_what_it_recorded(trajectory, finished, tiny_run_policy):
    dt = tiny_run_policy.cfg.env.control_dt
    commands = command_schedule.commands_from_schedule(SHORT, dt)
    np.testing.assert_array_equal(trajectory.command, commands)
    assert trajectory.qpos.shape == (20, 19) and trajectory.amp_obs.shape == (20, 43)
    assert trajectory.foot_heights.shape == (20, 4) and trajectory.terminated.shape == (20,)
    # The policy is deterministic: this rollout gives the numbers finish_run wrote.
    err = commands.astype(np.float64) - trajectory.measured
    rms = np.sqrt(np.mean(err ** 2, axis=0))
    assert finished["tracking_rms"] == pytest.approx(dict(zip(("vx", "vy", "yaw_rate"), rms)), rel=1e-5)
    # The AMP observation's last feature is the base height, its measured yaw rate the base's.
    np.testing.assert_allclose(trajectory.amp_obs[:, 42], trajectory.qpos[:, 2], atol=1e-6)
    np.testing.assert_allclose(trajectory.measured[:, 2], trajectory.base_ang_vel[:, 2])


def test_recorded_foot_heights_match_mujoco_forward_kinematics(trajectory):
    model = mujoco.MjModel.from_xml_path(str(PROJECT_ROOT / "mjcf" / "scene.xml"))
    data = mujoco.MjData(model)
    sites = [model.site(f"{leg}_foot").id for leg in ("FL", "FR", "RL", "RR")]
    expected = []
    for qpos in trajectory.qpos:
        data.qpos[:] = qpos
        mujoco.mj_kinematics(model, data)
        expected.append(data.site_xpos[sites, 2].copy())
    np.testing.assert_allclose(trajectory.foot_heights, np.array(expected), atol=1e-5)


def test_evaluation_env_has_no_noise_randomisation_or_interruptions(tiny_run_policy):
    env_cfg = rollout.evaluation_env_config(tiny_run_policy.cfg.env)
    assert not (env_cfg.add_noise or env_cfg.push_robots or env_cfg.randomize_gains or env_cfg.randomize_friction
                or env_cfg.randomize_base_mass)
    assert env_cfg.rsi_probability == 0.0
    steps = command_schedule.commands_from_schedule(command_schedule.DEFAULT_SCHEDULE, env_cfg.control_dt).shape[0]
    assert env_cfg.command_resample_steps > 100 * steps and env_cfg.max_episode_steps > 100 * steps
    assert env_cfg.command_resample_steps < np.iinfo(np.int32).max  # the env counts steps in int32


def test_a_folder_without_checkpoints_still_gets_its_curves_and_a_report(tiny_run_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "metrics.jsonl"):
        shutil.copy(tiny_run_dir / name, run / name)
    summary = evaluate.finish_run(run, SHORT)
    assert set(summary["problems"]) == {"load_policy"}
    assert "checkpoint" in summary["problems"]["load_policy"]
    assert summary["files"] == ["learning_curves.png"]
    assert (run / "learning_curves.png").is_file()
    assert json.loads((run / evaluate.EVALUATION_FILE).read_text())["problems"] == summary["problems"]


def test_no_opengl_is_a_recorded_problem_that_says_how_to_get_videos(monkeypatch, tmp_path):
    monkeypatch.setattr(video, "gl_problem", lambda: "no OpenGL context; " + video.HOW_TO_GET_VIDEOS)
    report = evaluate.Report()
    assert report.attempt("video", lambda: evaluate._write_video(tmp_path, np.zeros((2, 19)), 30.0, 64, 48)) is None
    assert "apt-get install" in report.problems["video"] and "MUJOCO_GL" in report.problems["video"]
    assert not list(tmp_path.iterdir())


def test_contact_reference_prefers_trot0_else_the_first_clip():
    assert rollout.contact_reference_index(["pace0", "trot0", "trot1"]) == 1
    assert rollout.contact_reference_index(["pace0", "pace1"]) == 0
    assert gait.CONTACT_HEIGHT_THRESHOLD > gait.FOOT_RADIUS


def test_command_schedules_parse_and_expand():
    segment = command_schedule.parse_segment("2, 0.5,0,-0.3")
    assert segment == CommandSegment(2.0, 0.5, 0.0, -0.3)
    commands = command_schedule.commands_from_schedule([segment, CommandSegment(0.09, 1.0, 0.0, 0.0)], 0.03)
    assert commands.shape == (67 + 3, 3)
    np.testing.assert_allclose(commands[66], [0.5, 0.0, -0.3], rtol=1e-6)
    np.testing.assert_array_equal(commands[67], [1.0, 0.0, 0.0])
    for bad in ("1,2", "a,b,c,d", "0,1,0,0", "nan,1,0,0"):
        with pytest.raises(ValueError, match="command segment"):
            command_schedule.parse_segment(bad)


def test_cli_rejects_a_bad_schedule_and_a_missing_run(tmp_path, capsys):
    assert evaluate.main([str(tmp_path), "--command", "1,2"]) == 2
    assert "SECONDS,VX,VY,YAW" in capsys.readouterr().err
    assert evaluate.main([str(tmp_path / "nowhere")]) == 2
    assert "no such run folder" in capsys.readouterr().err


def test_trajectory_is_a_pytree_of_numpy_arrays(trajectory):
    assert all(isinstance(leaf, np.ndarray) for leaf in jax.tree.leaves(trajectory))


def test_the_evaluation_s_rollouts_cost_one_compile(finished_and_compiled, tiny_run_dir):
    """The schedule, the trot check, the speed sweep and the grid in MJX: rows of one compiled program."""
    summary, names = finished_and_compiled
    rollout_programs = [name for name in names if "rollout" in name]
    assert len(rollout_programs) == 1 and "rollouts" in rollout_programs[0], names
    assert {"trot_check", "speed_sweep", "command_grid_mjx"} <= summary.keys()
    section = json.loads((tiny_run_dir / evaluate.EVALUATION_FILE).read_text())["speed_sweep"]
    assert section == json.loads(json.dumps(json_ready(summary["speed_sweep"])))
    assert [row["command"] for row in section["speeds"]] == [1.0, 2.0]
    assert section["robot_mass_kg"] == pytest.approx(12.453)
    assert section["gait_thresholds"]["couplet_boundary"] == footfall.COUPLET_BOUNDARY
    for row in section["speeds"]:
        assert len(row["runs"]) == 2 and len(row["phase_offsets"]) == 4 and len(row["duty"]) == 4
        assert row["gait"] in (*footfall.GAIT_CLASSES, sweep.FELL)
        assert 0.0 <= row["fell_fraction"] <= 1.0
        for run in row["runs"]:
            assert {"achieved", "cot", "cot_positive", "stride_hz", "phase_offsets", "gait", "fell"} <= set(run)
    first, second = section["speeds"][0]["runs"]
    assert first["achieved"] != second["achieved"]  # the two start poses differ
    for name in (evaluate.SPEED_SWEEP_FILE, evaluate.FOOTFALL_FILE):
        assert (tiny_run_dir / name).read_bytes()[:4] == b"\x89PNG"


def test_the_cli_flag_asks_finish_run_for_the_default_sweep(tiny_run_dir, monkeypatch):
    seen = {}
    monkeypatch.setattr(evaluate, "finish_run", lambda *a, **k: seen.update(k) or {"problems": {}})
    assert evaluate.main([str(tiny_run_dir), "--sweep"]) == 0
    assert seen["sweep"] == sweep.SweepSettings()
    assert evaluate.main([str(tiny_run_dir)]) == 0 and seen["sweep"] is None and seen["grid"] is False
    assert evaluate.main([str(tiny_run_dir), "--grid"]) == 0 and seen["grid"] is True
