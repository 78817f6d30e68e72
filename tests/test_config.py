"""Config loading: defaults, YAML round trip, overrides and every kind of bad input."""

import dataclasses
import importlib.util

import numpy as np
import pytest
import yaml

from amp_jax import config as config_lib
from amp_jax.config import Config, ConfigError, load_config


def test_shipped_configs_load_with_reference_values():
    trot, amp = load_config("a1_trot.yaml"), load_config("a1_amp")
    assert len(amp.motion.files) == 6 and len(trot.motion.files) == 2
    for cfg in (trot, amp):
        assert cfg.env.num_envs == 5480 and cfg.env.control_dt == pytest.approx(0.03)
        assert cfg.env.max_episode_steps == 667 and cfg.env.command_resample_steps == 333
        assert cfg.env.push_interval_steps == 500
        assert cfg.ppo.num_steps == 24 and cfg.ppo.num_epochs == 5 and cfg.ppo.num_minibatches == 4
        assert cfg.minibatch_size == 5480 * 24 // 4
        assert cfg.amp.task_reward_lerp == 0.3 and cfg.amp.replay_buffer_size == 1_000_000
        np.testing.assert_allclose(cfg.networks.min_std[:3], [0.0723, 0.0942, 0.0801], atol=1e-4)
        assert all(p.exists() for p in cfg.motion.resolved_files())
        assert 0 < cfg.train.num_iterations < 500_000


def test_yaml_round_trip(tmp_path):
    cfg = load_config("a1_amp", ["ppo.learning_rate=3e-4", "env.command_lin_vel_x=[-0.5, 1.5]"])
    path = tmp_path / "resolved.yaml"
    path.write_text(config_lib.dump_yaml(cfg))
    again = load_config(path)
    assert again == cfg and again.ppo.learning_rate == 3e-4 and again.env.command_lin_vel_x == (-0.5, 1.5)


def test_a_config_is_a_value_that_keys_the_build_cache():
    """Configs loaded twice from the same files are equal and hash equal (every field a number, string or tuple,
    none a list or dict), so a run's build is found again; one changed field makes a different key."""
    cfg, again = load_config(["a1_amp_cpu", "symmetry.yaml"]), load_config(["a1_amp_cpu", "symmetry.yaml"])
    assert cfg == again and hash(cfg) == hash(again) and {cfg: 1}[again] == 1
    for override in ("ppo.learning_rate=3e-4", "env.command_lin_vel_x=[-0.5, 1.5]", "networks.actor_hidden=[64]"):
        changed = load_config(["a1_amp_cpu", "symmetry.yaml"], [override])
        assert changed != cfg and hash(changed) != hash(cfg), override
    with pytest.raises(dataclasses.FrozenInstanceError):  # a value: changed by dataclasses.replace, never in place
        cfg.ppo.learning_rate = 1.0  # type: ignore[misc]


def write(tmp_path, data):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "data, key, expected",
    [
        ({"ppo": {"learning_rat": 1e-3}}, "ppo.learning_rat", "a field of PPOConfig"),
        ({"envs": {}}, "envs", "a field of Config (did you mean 'env'? one of: amp, env, motion,"),
        ({"zzz": {}}, "zzz", "a field of Config (one of: amp,"),  # nothing close: no guess
        ({"env": {"num_envs": "many"}}, "env.num_envs", "int"),
        ({"env": {"num_envs": 10.0}}, "env.num_envs", "int"),
        ({"env": {"add_noise": 1}}, "env.add_noise", "bool"),
        ({"env": {"friction_range": [1.0, 2.0, 3.0]}}, "env.friction_range", "a list of 2 values"),
        ({"env": {"friction_range": [2.0, 1.0]}}, "env.friction_range", "low <= high"),
        ({"env": {"rsi_probability": 1.5}}, "env.rsi_probability", "a probability in [0, 1]"),
        ({"amp": {"reward_coef": -2.0}}, "amp.reward_coef", "a non-negative weight"),
        ({"ppo": {"schedule": "cosine"}}, "ppo.schedule", "'adaptive' or 'fixed'"),
        ({"ppo": {"action_noise_correlation": 1.0}}, "ppo.action_noise_correlation", "a correlation in [0, 1)"),
        ({"ppo": {"gamma": float("nan")}}, "ppo.gamma", "a finite number"),
        ({"env": {"num_envs": 10}, "ppo": {"num_minibatches": 7}}, "ppo.num_minibatches",
         "a divisor of env.num_envs × ppo.num_steps = 240"),
        ({"networks": {"actor_hidden": []}}, "networks.actor_hidden", "one or more positive layer widths"),
        ({"env": {"reward_scales": {"feet_stumble": 1.0}}}, "env.reward_scales.feet_stumble", "a field of"),
        ({"env": 3}, "env", "a mapping of the fields of EnvConfig"),
        ({"symmetry": {"mirror_loss": 1.0}}, "symmetry.mirror_loss", "a field of SymmetryConfig"),
        ({"symmetry": {"mirror_loss_coef": -0.1}}, "symmetry.mirror_loss_coef", "a non-negative weight"),
        ({"symmetry": {"discriminator": "yes"}}, "symmetry.discriminator", "bool"),
        ({"train": {"probe_commands": [[0.5, 0.0]]}}, "train.probe_commands[0]", "a list of 3 values"),
        ({"train": {"probe_commands": [[0.5, 0.0, 9.0]]}}, "train.probe_commands", "each entry within ±5"),
        ({"motion": {"reversed_clip_weight": -0.5}}, "motion.reversed_clip_weight", "a weight factor in [0, 10]"),
        ({"motion": {"reversed_clip_weight": float("nan")}}, "motion.reversed_clip_weight", "a finite number"),
        ({"amp": {"tempo_negative_rates": [2.0, 1.0]}}, "amp.tempo_negative_rates", "other than 1"),
        ({"amp": {"tempo_negative_rates": [-2.0]}}, "amp.tempo_negative_rates", "replay rates in (0, 10]"),
        ({"amp": {"tempo_negative_weight": 1.0}}, "amp.tempo_negative_rates", "one or more replay rates"),
        ({"amp": {"tempo_negative_weight": -1.0, "tempo_negative_rates": [2.0]}}, "amp.tempo_negative_weight",
         "a non-negative weight"),
    ],
)
def test_bad_files_name_the_file_key_value_and_expectation(tmp_path, data, key, expected):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.source == str(path) and err.value.key == key, str(err.value)
    assert expected in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize(
    "override, key, expected",
    [
        ("ppo.lr=1", "ppo.lr", "a field of PPOConfig"),
        ("network.min_std_per_leg=[0.1,0.1,0.1]", "network", "did you mean 'networks'?"),
        ("networks.min_std_per_lg=[0.1,0.1,0.1]", "networks.min_std_per_lg", "did you mean 'min_std_per_leg'?"),
        ("ppo.learning_rate", "ppo.learning_rate", "KEY.PATH=VALUE"),
        ("ppo.learning_rate=fast", "ppo.learning_rate", "float"),
        ("ppo.learning_rate=-1", "ppo.learning_rate", "a positive value"),
        ("train.num_iterations=0", "train.num_iterations", "an integer >= 1"),
        ("ppo.num_minibatches=7", "ppo.num_minibatches", "a divisor"),
        ("amp.tempo_negative_rates=[2.0,three]", "amp.tempo_negative_rates[1]", "float"),
        ("env.amp_history_lags=[6,3]", "env.amp_history_lags", "increasing control-step lags in [1, 100]"),
        ("env.amp_history_lags=[0]", "env.amp_history_lags", "increasing control-step lags"),
        ("env.amp_history_lags=[4,4]", "env.amp_history_lags", "increasing control-step lags"),
        ("env.amp_history_lags=[101]", "env.amp_history_lags", "in [1, 100]"),
        ("env.action_filter_hz=-1", "env.action_filter_hz", "a cut-off in [0, 16.6667] Hz"),
        ("env.action_filter_hz=20", "env.action_filter_hz", "at most half the control rate"),
        ("env.tracking_average_s=-0.1", "env.tracking_average_s", "a time constant in [0, 2] s"),
        ("env.tracking_average_s=3", "env.tracking_average_s", "a time constant in [0, 2] s"),
        ("env.policy_history=-1", "env.policy_history", "earlier observations in [0, 32]"),
        ("env.policy_history=33", "env.policy_history", "earlier observations in [0, 32]"),
        ("env.policy_history=2.5", "env.policy_history", "int"),
        ("env.policy_base_lin_vel=true", "env.policy_base_lin_vel", "unless env.policy_base_ang_vel is true"),
        ("env.policy_base_ang_vel=maybe", "env.policy_base_ang_vel", "bool"),
        ("train.init_policy=runs/a/config.yaml", "train.init_policy", "a policy file (.npz)"),
    ],
)
def test_bad_overrides(override, key, expected):
    with pytest.raises(ConfigError) as err:
        load_config("a1_trot", [override])
    assert err.value.source == "--set" and err.value.key == key and expected in str(err.value), str(err.value)


def test_symmetry_overlay_turns_every_kind_on_and_defaults_are_off():
    assert not Config().symmetry.enabled and not Config().symmetry.reference_state_init
    cfg = load_config(["a1_trot_cpu", "omni_commands", "symmetry"])
    assert cfg.symmetry.ppo_augmentation and cfg.symmetry.discriminator and cfg.symmetry.reference_state_init
    assert cfg.env.command_lin_vel_y == (-0.3, 0.3) and cfg.env.command_ang_vel_yaw == (-1.0, 1.0)
    assert (0.5, 0.0, -1.0) in cfg.train.probe_commands


def test_full_task_recipe_and_its_task_only_baseline():
    amp = load_config("a1_amp_cpu")
    assert len(amp.motion.files) == 6 and amp.amp.enabled and amp.env.rsi_probability == 0.85
    assert (amp.env.command_lin_vel_x, amp.env.command_lin_vel_y, amp.env.command_ang_vel_yaw) == (
        (-1.0, 2.0), (-0.3, 0.3), (-1.57, 1.57))
    # the clips' mirror images, but no mirrored PPO samples (a mirror-symmetric policy cannot start from rest)
    assert not amp.symmetry.ppo_augmentation and amp.symmetry.discriminator and amp.symmetry.reference_state_init
    assert amp.env.standing_command_probability == 0.2 and amp.env.command_resample_s == 5.0
    base = load_config(["a1_amp_cpu", "task_only"])
    assert not base.amp.enabled and base.env.rsi_probability == 0.0 and not base.symmetry.discriminator
    assert base.symmetry == amp.symmetry.__class__(ppo_augmentation=False, discriminator=False,
                                                   reference_state_init=False)
    assert base.env == dataclasses.replace(amp.env, rsi_probability=0.0)
    assert base.networks == amp.networks and base.train.seed == amp.train.seed
    # The first stage's command, as its overlay, the README and the results page give it.
    from amp_jax.config import PROJECT_ROOT

    stage1 = "python train.py --config a1_amp_cpu.yaml --config forward_commands.yaml --set train.num_iterations=651"
    for page in ("configs/forward_commands.yaml", "README.md", "docs/RESULTS.md"):
        assert stage1 in (PROJECT_ROOT / page).read_text(), page
    first = load_config(["a1_amp_cpu", "forward_commands"], ["train.num_iterations=651"])
    assert first.env.command_lin_vel_x == (0.2, 1.2) and first.env.command_ang_vel_yaw == (-1.0, 1.0)
    assert first.train.num_iterations * first.batch_size == pytest.approx(8.0e6, rel=0.001)
    assert amp.train.num_iterations * amp.batch_size == pytest.approx(20.0e6, rel=0.001)


def test_the_gpu_scale_overlay_keeps_the_replay_buffer_s_span_in_iterations():
    cpu = load_config(["a1_amp_cpu", "forward_commands"])
    gpu = load_config(["a1_amp_cpu", "forward_commands", "gpu_scale"])
    span = [c.amp.replay_buffer_size / (c.env.num_envs * c.ppo.num_steps) for c in (cpu, gpu)]
    assert gpu.env.num_envs == 8 * cpu.env.num_envs and span[0] == pytest.approx(span[1], rel=0.02)
    assert dataclasses.replace(gpu, env=cpu.env, amp=cpu.amp, train=cpu.train) == cpu  # nothing else changes


def test_a_discriminator_mirror_without_the_prior_is_refused():
    with pytest.raises(ConfigError, match=r"--set: symmetry.discriminator = True: expected false when amp.enabled"):
        load_config(["a1_trot", "symmetry"], ["amp.enabled=false"])


def test_overrides_apply_and_parse_yaml_values():
    cfg = load_config("a1_trot", ["env.num_envs=8", "ppo.learning_rate=3e-4", "env.add_noise=false",
                                  "networks.actor_hidden=[64, 64]"])
    assert cfg.env.num_envs == 8 and cfg.ppo.learning_rate == 3e-4 and cfg.env.add_noise is False
    assert cfg.networks.actor_hidden == (64, 64) and cfg.batch_size == 8 * 24


def test_unknown_config_names_list_the_shipped_ones():
    with pytest.raises(ConfigError, match="a1_amp.yaml, a1_amp_cpu.yaml, a1_trot.yaml"):
        load_config("a1_gallop")


def test_unparsable_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("env: [1, 2\n")
    with pytest.raises(ConfigError, match="broken.yaml: <file>.*valid YAML"):
        load_config(path)


def test_layered_configs_apply_in_order_and_name_the_file_at_fault(tmp_path):
    cfg = load_config(["a1_trot", "cpu.yaml"], ["train.num_iterations=3"])
    assert cfg.env.num_envs == 64 and len(cfg.motion.files) == 2 and cfg.train.num_iterations == 3
    assert cfg.amp.replay_buffer_size == 100_000 and cfg.ppo.learning_rate == 1e-3
    bad = write(tmp_path, {"ppo": {"num_minibatch": 3}})
    with pytest.raises(ConfigError) as err:
        load_config(["a1_trot", bad])
    assert err.value.source == str(bad) and err.value.key == "ppo.num_minibatch"
    # Each file alone is valid, together inconsistent: the error names both.
    odd = write(tmp_path, {"env": {"num_envs": 5}, "ppo": {"num_steps": 4}})
    split = tmp_path / "split.yaml"
    split.write_text(yaml.safe_dump({"ppo": {"num_minibatches": 3}}))
    with pytest.raises(ConfigError, match="bad.yaml \\+ .*split.yaml: ppo.num_minibatches"):
        load_config([odd, split])


def test_repeated_yaml_keys_and_files_that_are_not_yaml_are_config_errors(tmp_path):
    repeated = tmp_path / "repeated.yaml"
    repeated.write_text("ppo:\n  learning_rate: 1.0e-3\n  learning_rate: 1.0e-2\n")
    with pytest.raises(ConfigError, match=r"repeated.yaml: <file> .*duplicate key 'learning_rate' \(line 3\)\)$"
                       ) as err:
        load_config(repeated)
    assert "\n" not in str(err.value)  # one line, like every other config error
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"env:\n  num_envs: \xff\xfe\n")
    with pytest.raises(ConfigError, match="binary.yaml: <file> = 'byte 17': expected UTF-8 text"):
        load_config(binary)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(tmp_path)


def test_the_adaptive_learning_rate_must_start_within_its_bounds():
    with pytest.raises(ConfigError, match=r"ppo.learning_rate = 0.1: expected within \[learning_rate_min"):
        load_config(None, ["ppo.learning_rate=0.1"])
    assert load_config(None, ["ppo.learning_rate=0.1", "ppo.schedule=fixed"]).ppo.learning_rate == 0.1


def test_env_impl_is_jax_or_warp_and_warp_needs_its_package(monkeypatch):
    assert load_config("a1_trot").env.impl == "jax"
    with pytest.raises(ConfigError, match="'jax' or 'warp'"):
        load_config("a1_trot", ["env.impl=cuda"])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="warp-lang"):
        load_config("a1_trot", ["env.impl=warp"])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    assert load_config("a1_trot", ["env.impl=warp"]).env.impl == "warp"
