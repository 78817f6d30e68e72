"""The shipped CPU-trained policy (pretrained/a1_trot_cpu): it loads, exports faithfully and stays up."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amp_jax.analysis import speed
from amp_jax.config import PROJECT_ROOT
from amp_jax.deploy import export_policy, onnx_export
from amp_jax.training import policy_file, run_folder

PRETRAINED = PROJECT_ROOT / "pretrained" / "a1_trot_cpu"


@pytest.fixture(scope="module")
def policy():
    policy = run_folder.load_run_policy(PRETRAINED)
    assert policy.step == 1019 and policy_file.policy_steps(PRETRAINED) == [1019]  # read from its policy file
    return policy


def test_the_shipped_folder_is_small_and_complete():
    files = {p.relative_to(PRETRAINED).as_posix() for p in PRETRAINED.rglob("*") if p.is_file()}
    for name in ("config.yaml", "metrics.jsonl", "policies/1019.npz", "evaluation.json", "policy.onnx",
                 "learning_curves.png", "gait_diagram.png", "velocity_tracking.png"):
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


def test_the_shipped_run_s_discriminator_scores_its_clips_as_training_logged(policy):
    """The style measure's clip score, drawn afresh, matches the D(expert) the run logged over its last 50
    iterations (a different code path: the training step's minibatches); identical transitions score equally,
    and the scores are finite and bounded by the reward's formula."""
    from amp_jax.analysis import style

    lines = [json.loads(x) for x in (PRETRAINED / "metrics.jsonl").read_text().splitlines()[-50:]]
    logged = float(np.mean([x["amp/d_expert"] for x in lines]))
    clips = style.clip_transitions(policy.cfg, jax.random.key(3), 2048)
    scores = style.discriminator_scores(policy.networks, policy.params, policy.amp_normalizer, policy.cfg,
                                        clips, clips)
    assert scores["d_policy"] == pytest.approx(scores["d_clips"])
    assert scores["d_clips"] == pytest.approx(logged, abs=0.1), (scores, logged)
    assert 0.0 <= scores["style_reward_clips"] <= policy.cfg.amp.reward_coef
    # A motionless robot at the default pose is no dog: the discriminator says policy.
    standing = np.tile(np.asarray(clips[0])[:1], (64, 1))
    standing[:, 24:42] = 0.0  # base and joint velocities
    still = style.discriminator_scores(policy.networks, policy.params, policy.amp_normalizer, policy.cfg,
                                       (standing, standing), clips)
    assert still["d_policy"] < scores["d_clips"] - 0.5
