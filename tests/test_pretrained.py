"""The shipped CPU-trained policy (pretrained/a1_trot_cpu): it loads, exports faithfully and stays up."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amp_jax.analysis import speed
from amp_jax.config import PROJECT_ROOT
from amp_jax.deploy import export_policy, onnx_export
from amp_jax.training import run_folder

PRETRAINED = PROJECT_ROOT / "pretrained" / "a1_trot_cpu"


@pytest.fixture(scope="module")
def policy():
    return run_folder.load_run_policy(PRETRAINED)


def test_the_shipped_folder_is_small_and_complete():
    files = {p.relative_to(PRETRAINED).as_posix() for p in PRETRAINED.rglob("*") if p.is_file()}
    for name in ("config.yaml", "metrics.jsonl", "evaluation.json", "policy.onnx", "learning_curves.png",
                 "gait_diagram.png", "velocity_tracking.png"):
        assert name in files, name
    assert not any("/heavy/" in f for f in files)  # no replay buffer
    assert sum((PRETRAINED / f).stat().st_size for f in files) < 20e6
    report = json.loads((PRETRAINED / "evaluation.json").read_text())
    assert "trot_check" in report and "sim2sim" in report and not report["problems"]


def test_the_shipped_onnx_is_the_shipped_parameters(policy, tmp_path):
    obs = (3.0 * np.random.default_rng(1).normal(size=(256, 42))).astype(np.float32)
    shipped = onnx_export.run_onnx(PRETRAINED / "policy.onnx", obs)
    assert np.max(np.abs(shipped - policy.act(obs))) <= onnx_export.PARITY_TOLERANCE
    fresh = export_policy.export_policy(policy, tmp_path / "policy.onnx")
    assert fresh.max_abs_diff <= onnx_export.PARITY_TOLERANCE and fresh.step == policy.step


@pytest.mark.slow
def test_the_shipped_policy_stays_up_under_a_forward_command(policy):
    from amp_jax.analysis.rollout import evaluation_env_config
    from amp_jax.envs.a1_amp import A1AmpEnv

    env = A1AmpEnv(evaluation_env_config(policy.cfg.env), None)
    rollout = speed.make_sweep_rollout(env, policy.policy_fn)
    commands = jnp.asarray(speed.sweep_commands([0.5, 0.8], 3.0, env.cfg.control_dt))
    trajectory = jax.device_get(rollout(policy.params, commands, jax.random.key(0)))
    assert not np.any(trajectory.terminated)
    assert np.all(trajectory.qpos[:, :, 2] > 0.15)  # base height: upright
