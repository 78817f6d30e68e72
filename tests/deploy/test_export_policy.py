"""ONNX export of a run folder's policy: the CLI, the metadata a runner needs, parity with the network."""

import json
import shutil

import numpy as np
import pytest

from amp_jax import a1
from amp_jax.deploy import export_policy, onnx_export
from amp_jax.envs import observations
from amp_jax.training import run_folder


@pytest.fixture(scope="module")
def exported(tiny_run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "sub" / "policy.onnx"
    return out, export_policy.main([str(tiny_run_dir), "--out", str(out)])


def numpy_actor(actor_params: dict, obs: np.ndarray) -> np.ndarray:
    """The actor MLP in NumPy (float64): ELU hidden layers, linear head, layers in order hidden_0, 1, ..., head."""
    layers = actor_params["params"]
    names = sorted((n for n in layers if n.startswith("hidden_")), key=lambda n: int(n.split("_")[1])) + ["head"]
    x = obs.astype(np.float64)
    for i, name in enumerate(names):
        x = x @ np.asarray(layers[name]["kernel"], np.float64) + np.asarray(layers[name]["bias"], np.float64)
        if i < len(names) - 1:
            x = np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
    return x


def test_cli_writes_the_policy(exported):
    out, rc = exported
    assert rc == 0
    assert out.is_file() and out.stat().st_size > 1000


def test_cli_prints_the_parity_figure(tiny_run_dir, tmp_path, capsys):
    # A second export to read its printed line (the module fixture ran before capture of this test).
    out = tmp_path / "again.onnx"
    assert export_policy.main([str(tiny_run_dir), "--out", str(out), "--step", "1"]) == 0
    line = capsys.readouterr().out
    assert "checkpoint step 1" in line and "max |difference|" in line
    diff = float(line.split("max |difference| ")[1].split(" ")[0])
    assert 0.0 <= diff <= onnx_export.PARITY_TOLERANCE


def test_onnx_equals_an_independent_numpy_forward_pass(exported, tiny_run_policy):
    out, _ = exported
    obs = np.random.default_rng(5).normal(scale=2.0, size=(33, observations.POLICY_OBS_SIZE)).astype(np.float32)
    expected = numpy_actor(tiny_run_policy.params.actor, obs)
    onnx_actions = onnx_export.run_onnx(out, obs)
    assert onnx_actions.shape == (33, 12)
    assert np.max(np.abs(onnx_actions - expected)) <= 1e-5
    np.testing.assert_allclose(onnx_export.run_onnx(out, obs[3]), onnx_actions[3], atol=1e-6)  # batch of one
    np.testing.assert_allclose(tiny_run_policy.act(obs), expected, atol=1e-5)
    assert export_policy.parity_error(out, tiny_run_policy) <= onnx_export.PARITY_TOLERANCE


def test_metadata_holds_what_a_runner_needs(exported, tiny_run_policy):
    out, _ = exported
    meta = onnx_export.read_metadata(out)
    cfg = tiny_run_policy.cfg
    assert meta["joint_names"] == list(a1.JOINT_NAMES)
    assert meta["joint_names"][:3] == ["FL_hip_joint", "FL_thigh_joint", "FL_calf_joint"]
    np.testing.assert_allclose(meta["default_joint_angles"], np.tile([0.0, 0.9, -1.8], 4))
    assert meta["action_scale"] == 0.25 and meta["kp"] == 80.0 and meta["kd"] == 1.0
    np.testing.assert_allclose(meta["effort_limits"], np.tile([20.0, 55.0, 55.0], 4))
    assert meta["control_dt"] == pytest.approx(0.03) and meta["decimation"] == 6
    assert meta["checkpoint_step"] == tiny_run_policy.step == 2
    assert meta["config_name"] == tiny_run_policy.run_dir.name
    assert meta["config"]["networks"]["actor_hidden"] == [32, 32]
    assert meta["observation_size"] == 42 and meta["action_size"] == 12

    layout = meta["observation_layout"]
    assert [p["name"] for p in layout] == ["projected_gravity", "commands", "joint_pos", "joint_vel", "last_action"]
    assert layout[0]["start"] == 0 and layout[-1]["stop"] == 42
    assert all(a["stop"] == b["start"] for a, b in zip(layout, layout[1:]))  # contiguous
    for part in layout:
        assert len(part["scale"]) == part["stop"] - part["start"]
    scales = {p["name"]: p["scale"] for p in layout}
    assert scales["commands"] == [cfg.env.obs_scale_lin_vel, cfg.env.obs_scale_lin_vel, cfg.env.obs_scale_ang_vel]
    assert scales["joint_vel"] == [0.05] * 12
    json.dumps(meta)  # every value is plain JSON


def test_missing_config_and_missing_checkpoints_are_named(tiny_run_dir, tmp_path, capsys):
    with pytest.raises(run_folder.RunFolderError, match="config.yaml"):
        run_folder.load_run_policy(tmp_path)
    assert export_policy.main([str(tmp_path / "nowhere")]) == 1
    assert "no such run folder" in capsys.readouterr().err

    no_checkpoints = tmp_path / "run"
    no_checkpoints.mkdir()
    shutil.copy(tiny_run_dir / "config.yaml", no_checkpoints / "config.yaml")
    with pytest.raises(run_folder.RunFolderError, match="no policy file in policies/ and no checkpoint"):
        run_folder.load_run_policy(no_checkpoints)
    assert export_policy.main([str(no_checkpoints)]) == 1
    assert "checkpoint" in capsys.readouterr().err


def _flip_a_byte_of_the_newest_checkpoint(run_dir):
    newest = max((p for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    victim = max((p for p in (newest / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    victim.write_bytes(bytes(raw))
    return victim


def test_a_corrupt_policy_file_or_checkpoint_is_one_line_from_export_and_evaluate_and_writes_nothing(
        tiny_run_dir, tmp_path, capsys):
    from amp_jax.evaluation import evaluate
    from amp_jax.training import policy_file

    run = tmp_path / "run"
    outputs = shutil.ignore_patterns("*.onnx", "*.png", "*.mp4", "*.gif", "evaluation.json")
    shutil.copytree(tiny_run_dir, run, ignore=outputs)
    newest = policy_file.policy_path(run, 2)
    raw = bytearray(newest.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    newest.write_bytes(bytes(raw))
    capsys.readouterr()
    assert export_policy.main([str(run)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"export_policy: {newest}: array ") and "damaged" in err[0]
    assert not list(run.glob("*.onnx")) and not list(run.glob(".*tmp"))
    out = tmp_path / "report"
    assert evaluate.main([str(run), "--out", str(out), "--no-video"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"evaluate: {newest}: array ") and "damaged" in err[0]
    assert not out.exists()

    # A run folder written before policy files: the checkpoint is read, and checked against its digest.
    shutil.rmtree(run / policy_file.POLICY_SUBDIR)
    victim = _flip_a_byte_of_the_newest_checkpoint(run)
    assert export_policy.main([str(run)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("export_policy: ") and f"{victim.name}: its SHA-256 differs" in err[0]
    assert not list(run.glob("*.onnx")) and not list(run.glob(".*tmp"))
    assert evaluate.main([str(run), "--out", str(out), "--no-video"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evaluate: ") and "the checkpoint is corrupt" in err[0]
    assert not out.exists()


def test_an_export_that_fails_its_parity_check_leaves_no_file(tiny_run_policy, tmp_path, monkeypatch):
    good = export_policy.export_policy(tiny_run_policy, tmp_path / "policy.onnx").path
    before = good.read_bytes()
    monkeypatch.setattr(export_policy, "parity_error", lambda path, policy: 0.5)
    with pytest.raises(onnx_export.ExportError, match=r"policy.onnx: onnxruntime differs .* by 0.5.*nothing written"):
        export_policy.export_policy(tiny_run_policy, tmp_path / "policy.onnx")
    assert good.read_bytes() == before  # the good file is not replaced
    with pytest.raises(onnx_export.ExportError):
        export_policy.export_policy(tiny_run_policy, tmp_path / "other.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.onnx"]  # no half-written or temporary file
