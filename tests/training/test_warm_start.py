"""A new run from another run's policy file (``train.init_policy``): what it takes, what it starts fresh, and the
one-line refusals."""

import dataclasses
import json
import logging
import types

import jax
import numpy as np
import pytest
from conftest import TINY_RUN_OVERRIDES

from amp_jax.agents import networks as networks_lib
from amp_jax.agents import optimizer
from amp_jax.config import ConfigError, load_config
from amp_jax.envs import mirror, observations
from amp_jax.training import params_file, policy_file, trainer, warm_start


def leaves(tree):
    return [np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
            for x in jax.tree.leaves(tree)]


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b), strict=True))


@pytest.fixture(scope="module")
def source(tiny_run_dir, tmp_path_factory):
    """The tiny run's newest policy file with its actor, critic and discriminator moved far from any fresh
    initialisation (+0.5 on every weight), its action std and learning rate changed: a file no fresh run could
    match by chance."""
    saved = policy_file.read_policy_file(tiny_run_dir / "policies" / "2.npz")
    params = saved.params.replace(
        actor=jax.tree.map(lambda x: x + 0.5, saved.params.actor),
        critic=jax.tree.map(lambda x: x + 0.5, saved.params.critic),
        discriminator=jax.tree.map(lambda x: x + 0.5, saved.params.discriminator),
        action_std=saved.params.action_std * 0.5)
    state = types.SimpleNamespace(params=params, normalizer=saved.amp_normalizer, learning_rate=np.float32(3.3e-4),
                                  iteration=np.int32(2))
    path = tmp_path_factory.mktemp("source") / "7.npz"
    return params_file.write_params_file(path, state, saved.cfg), params, saved.amp_normalizer


def zeros_like_state(setup):
    """A train state of ``setup`` with every array zero (PRNG keys from seed 0): its shapes and dtypes, nothing
    compiled but the zeros."""
    abstract = jax.eval_shape(setup.init_fn, jax.random.key(0))

    def zero(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.split(jax.random.key(0), x.shape[0]) if x.shape else jax.random.key(0)
        return jax.numpy.zeros(x.shape, x.dtype)

    return jax.jit(lambda: jax.tree.map(zero, abstract))()  # one program, not one compile per leaf's shape


def tiny_config(*more):
    return load_config(["a1_trot", "cpu.yaml"], [*TINY_RUN_OVERRIDES, *more])


def test_a_warm_start_takes_every_network_the_normaliser_and_the_learning_rate(source):
    path, params, normalizer = source
    cfg = tiny_config(f"train.init_policy={path}")
    setup = trainer.build(cfg, probe=False)
    fresh = trainer.initial_state(setup)
    assert not same(fresh.params.actor, params.actor)
    state, line = warm_start.start_from_policy_file(fresh, cfg)
    for group in ("actor", "action_std", "critic", "discriminator"):
        assert same(getattr(state.params, group), getattr(params, group)), group
    assert same(state.normalizer, normalizer)
    assert float(optimizer.learning_rate(state.opt_state)) == pytest.approx(3.3e-4)
    assert int(state.iteration) == 0 and same(state.env_state, fresh.env_state)
    assert str(path) in line and "discriminator and AMP normaliser" in line and "fresh" not in line
    # it places every leaf as the fresh state's, so the compiled iteration takes it as it is
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(fresh), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype and a.sharding == b.sharding


def test_another_amp_window_starts_the_discriminator_and_normaliser_fresh(source):
    path, params, _ = source
    cfg = tiny_config(f"train.init_policy={path}", "env.amp_history_lags=[3, 6]")
    setup = trainer.build(cfg, probe=False)
    fresh = zeros_like_state(setup)  # the shapes and dtypes of a fresh state, without compiling its envs' reset
    state, line = warm_start.start_from_policy_file(fresh, cfg)
    assert same(state.params.actor, params.actor) and same(state.params.critic, params.critic)
    assert same(state.params.discriminator, fresh.params.discriminator) and same(state.normalizer, fresh.normalizer)
    assert state.normalizer.mean.shape == (3 * 43,)
    assert "discriminator and AMP normaliser fresh" in line
    _, metrics = jax.eval_shape(setup.train_step, state)  # the windowed iteration traces (its numbers: env, library)
    assert {"amp/d_expert", "amp/d_policy", "loss/discriminator"} <= set(metrics)


def test_a_policy_with_history_starts_as_the_file_s_policy_with_zero_weights_from_the_earlier_steps(source):
    """``env.policy_history`` 3: the file's one-step actor goes in with its first layer padded by zero rows, so on
    any observation the warm-started policy acts exactly as the file's on the observation's first step."""
    path, params, _ = source
    cfg = tiny_config(f"train.init_policy={path}", "env.policy_history=3")
    setup = trainer.build(cfg, probe=False)
    fresh = zeros_like_state(setup)
    state, line = warm_start.start_from_policy_file(fresh, cfg)
    assert "zero weights from the earlier steps' observations" in line
    kernel = np.asarray(state.params.actor["params"]["hidden_0"]["kernel"])
    original = np.asarray(params.actor["params"]["hidden_0"]["kernel"])
    assert kernel.shape == (4 * 42, original.shape[1])
    np.testing.assert_array_equal(kernel[:42], original)
    assert not kernel[42:].any()
    policy = networks_lib.make_policy_fn(networks_lib.make_networks(cfg.networks, 12))
    obs = np.random.default_rng(0).normal(size=(5, 4 * 42)).astype(np.float32)
    np.testing.assert_allclose(policy(state.params, obs), policy(params, obs[:, :42]), atol=1e-6)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(fresh.params), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype


def test_a_policy_that_also_observes_the_base_velocities_starts_as_the_file_s_policy(source):
    """``env.policy_base_lin_vel`` and ``env.policy_base_ang_vel`` with ``env.policy_history`` 2: each step's
    observation now begins with the base's linear and angular velocity, so the file's rows move down by 6 in the
    first step and every other row is zero; on any observation the warm-started policy acts as the file's on the
    first step's entries it knew."""
    path, params, _ = source
    cfg = tiny_config(f"train.init_policy={path}", "env.policy_history=2", "env.policy_base_ang_vel=true",
                      "env.policy_base_lin_vel=true")
    fresh = zeros_like_state(trainer.build(cfg, probe=False))
    state, line = warm_start.start_from_policy_file(fresh, cfg)
    assert "zero weights from the earlier steps' observations and base_lin_vel and base_ang_vel" in line
    kernel = np.asarray(state.params.actor["params"]["hidden_0"]["kernel"])
    original = np.asarray(params.actor["params"]["hidden_0"]["kernel"])
    assert kernel.shape == (3 * 48, original.shape[1])
    np.testing.assert_array_equal(kernel[6:48], original)
    assert not kernel[:6].any() and not kernel[48:].any()
    policy = networks_lib.make_policy_fn(networks_lib.make_networks(cfg.networks, 12))
    obs = np.random.default_rng(1).normal(size=(5, 3 * 48)).astype(np.float32)
    np.testing.assert_allclose(policy(state.params, obs), policy(params, obs[:, 6:48]), atol=1e-6)


def test_a_plain_policy_goes_into_an_equivariant_run_as_its_mirror_average(tmp_path):
    """A plain policy file with a gait clock into a run with ``symmetry.equivariant_networks``: the weights go in as
    they are, so the run acts as the file's policy averaged with its mirror image (and values likewise), and the
    action std is averaged over mirror partners at once; the line says both. Back into a plain run, the line says
    the averaging is gone."""
    plain_cfg = tiny_config("env.gait_clock_hz=2.0")
    rng = np.random.default_rng(5)
    fields = policy_file.abstract_saved_fields(plain_cfg)
    params = jax.tree.map(lambda x: (0.3 * rng.normal(size=x.shape)).astype(x.dtype), fields.params)
    std = np.linspace(0.2, 1.3, 12).astype(np.float32)
    params = params.replace(action_std=std)
    normalizer = jax.tree.map(lambda x: np.ones(x.shape, x.dtype), fields.normalizer)
    state = fields.replace(params=params, normalizer=normalizer, learning_rate=np.float32(2e-4),
                           iteration=np.int32(9))
    path = params_file.write_params_file(tmp_path / "9.npz", state, plain_cfg)

    cfg = tiny_config(f"train.init_policy={path}", "env.gait_clock_hz=2.0", "symmetry.equivariant_networks=true")
    warm, line = warm_start.start_from_policy_file(zeros_like_state(trainer.build(cfg, probe=False)), cfg)
    assert "actor and critic averaged with their mirror images" in line
    assert "each action std with its mirror partner's" in line
    assert same(warm.params.actor, params.actor) and same(warm.params.critic, params.critic)
    partner = np.array([3, 4, 5, 0, 1, 2, 9, 10, 11, 6, 7, 8])  # FL↔FR, RL↔RR; hip, thigh, calf in place
    np.testing.assert_allclose(warm.params.action_std, 0.5 * (std + std[partner]), rtol=1e-6)

    maps = mirror.a1_mirror_maps_for(cfg.env)
    plain = networks_lib.make_networks(cfg.networks, 12)
    equivariant = policy_file.run_networks(cfg)
    obs = rng.normal(size=(6, observations.policy_obs_size(cfg.env))).astype(np.float32)
    expected = 0.5 * (networks_lib.policy_mean(plain, params, obs)
                      + maps.action(networks_lib.policy_mean(plain, params, maps.policy_obs(obs))))
    np.testing.assert_allclose(networks_lib.policy_mean(equivariant, warm.params, obs), expected, atol=1e-5)
    privileged = rng.normal(size=(6, observations.critic_obs_size(cfg.env))).astype(np.float32)
    expected = 0.5 * (networks_lib.value(plain, params, privileged)
                      + networks_lib.value(plain, params, maps.critic_obs(privileged)))
    np.testing.assert_allclose(networks_lib.value(equivariant, warm.params, privileged), expected, atol=1e-5)

    # back into a plain run: the weights as they are, and the line says the policy no longer averages them
    back_path = params_file.write_params_file(tmp_path / "10.npz", state.replace(params=warm.params), cfg)
    back_cfg = tiny_config(f"train.init_policy={back_path}", "env.gait_clock_hz=2.0")
    back, line = warm_start.start_from_policy_file(zeros_like_state(trainer.build(back_cfg, probe=False)), back_cfg)
    assert "this run's does not, so it acts otherwise until trained" in line and "each action std" not in line
    assert same(back.params, warm.params)


def test_a_policy_that_does_not_fit_or_a_missing_file_is_one_line(source, tmp_path):
    path, _, _ = source
    cfg = tiny_config(f"train.init_policy={path}", "networks.actor_hidden=[16, 16]")
    fresh = zeros_like_state(trainer.build(cfg, probe=False))
    with pytest.raises(ConfigError) as err:
        warm_start.start_from_policy_file(fresh, cfg)
    assert err.value.key == "train.init_policy" and "actor" in str(err.value) and "\n" not in str(err.value)
    missing = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, init_policy=str(tmp_path / "no.npz")))
    with pytest.raises(ConfigError) as err:
        warm_start.start_from_policy_file(fresh, missing)
    assert err.value.key == "train.init_policy" and "no.npz" in str(err.value) and "\n" not in str(err.value)


def test_a_warm_started_run_trains_from_the_file_and_a_resume_does_not_read_it_again(source, tmp_path, caplog):
    path, params, _ = source
    cfg = tiny_config(f"train.init_policy={path}", "train.num_iterations=1", "train.checkpoint_interval=1")
    with caplog.at_level(logging.INFO, logger="amp_jax.training.trainer"):
        run_dir = trainer.train(cfg, run_dir=tmp_path / "warm", progress=False)
    assert any("started from" in r.getMessage() for r in caplog.records)
    first = policy_file.read_policy_file(run_dir / "policies" / "1.npz")
    # one iteration moved the actor a little from the file's, nowhere near a fresh one (0.5 away on every weight)
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(leaves(first.params.actor), leaves(params.actor)))
    assert 0 < moved < 0.1
    assert [json.loads(line)["iteration"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == [1]
    # a resume continues from its checkpoint, not from the file
    path.rename(path.with_suffix(".gone"))
    try:
        trainer.train(load_config(run_dir / "config.yaml", ["train.num_iterations=2"]), run_dir=run_dir, resume=True,
                      progress=False)
    finally:
        path.with_suffix(".gone").rename(path)
    assert (run_dir / "policies" / "2.npz").exists()
