"""Mirror-symmetric learning: the mirrored halves of the PPO and discriminator minibatches, the mirror loss, and
nothing changed when symmetry is off (checked on the point-mass env, whose mirror is simple)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.envs.wrappers.training import VmapWrapper

from amp_jax.agents import networks, normalizer, symmetry
from amp_jax.agents import train_step as ts
from amp_jax.config import AMPConfig, Config, ConfigError, EnvConfig, NetworkConfig, PPOConfig, SymmetryConfig
from amp_jax.envs import point_mass
from amp_jax.envs.wrappers import AutoResetWrapper

TINY = Config(env=EnvConfig(num_envs=8),
              networks=NetworkConfig(actor_hidden=(16,), critic_hidden=(16,), disc_hidden=(16,)),
              ppo=PPOConfig(num_steps=4, num_epochs=2, num_minibatches=2), amp=AMPConfig(replay_buffer_size=64))
MAPS = point_mass.mirror_maps()
B = 6


def _with(**options) -> Config:
    return dataclasses.replace(TINY, symmetry=SymmetryConfig(**options))


@pytest.fixture(scope="module")
def setup():
    nets = networks.make_networks(TINY.networks, 12)
    params = networks.init_params(nets, jax.random.key(0), 24, 36, point_mass.AMP_FEATURES)
    keys = jax.random.split(jax.random.key(1), 8)
    params = params.replace(action_std=params.action_std * jnp.linspace(0.8, 1.2, 12))  # not mirror-symmetric
    ppo = ts.PPOSamples(state_obs=jax.random.normal(keys[0], (B, 24)),
                        privileged_obs=jax.random.normal(keys[1], (B, 36)),
                        action=jax.random.normal(keys[2], (B, 12)), action_mean=jax.random.normal(keys[3], (B, 12)),
                        log_prob=jax.random.normal(keys[4], (B,)) - 12.0, value=jax.random.normal(keys[5], (B,)),
                        advantage=jax.random.normal(keys[6], (B,)), returns=jax.random.normal(keys[7], (B,)))
    s, s_next = point_mass.sample_expert_transitions(jax.random.key(2), B)
    amp = ts.AMPSamples(policy_state=s_next, policy_next_state=s, expert_state=s, expert_next_state=s_next)
    stats = normalizer.update(normalizer.init(point_mass.AMP_FEATURES, 1e-4), s)
    return nets, params, ppo, amp, stats


def test_mirrored_half_is_exactly_the_mirror_of_the_original_half(setup):
    _, _, ppo, _, _ = setup
    both = symmetry.with_mirrored_samples(ppo, MAPS)
    np.testing.assert_array_equal(both.state_obs[:B], ppo.state_obs)
    np.testing.assert_array_equal(both.state_obs[B:], MAPS.policy_obs(ppo.state_obs))
    np.testing.assert_array_equal(both.privileged_obs[B:], MAPS.critic_obs(ppo.privileged_obs))
    np.testing.assert_array_equal(both.action[B:], MAPS.action(ppo.action))
    np.testing.assert_array_equal(both.action_mean[B:], MAPS.action(ppo.action_mean))
    for name in ("log_prob", "value", "advantage", "returns"):  # the originals', unchanged
        np.testing.assert_array_equal(getattr(both, name)[B:], getattr(ppo, name))
    x = jnp.arange(2 * 43, dtype=jnp.float32).reshape(2, 43)
    np.testing.assert_array_equal(symmetry.with_mirror_image(x, MAPS.amp_obs)[2:], MAPS.amp_obs(x))


def _loss(setup, cfg, mirror):
    nets, params, ppo, amp, stats = setup
    return jax.value_and_grad(ts.amp_ppo_loss, has_aux=True)(params, nets, cfg, ppo, amp, stats,
                                                             params.action_std, mirror)


def test_loss_with_symmetry_off_is_unchanged_bit_for_bit(setup):
    (total, terms), grads = _loss(setup, TINY, None)
    (total_m, terms_m), grads_m = _loss(setup, TINY, MAPS)
    assert terms.mirror is None and terms_m.mirror is None
    for x, y in zip(jax.tree.leaves((total, terms, grads)), jax.tree.leaves((total_m, terms_m, grads_m))):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_augmented_loss_is_the_loss_of_the_doubled_batch_with_the_original_kl(setup):
    """Independent: the plain loss on a batch doubled by hand (NumPy mirror, sign table written out), with the
    KL of the original half alone."""
    nets, params, ppo, amp, stats = setup
    (_, terms), _ = _loss(setup, _with(ppo_augmentation=True), MAPS)
    swap = np.arange(12) ^ 1
    by_hand = jax.tree.map(np.asarray, ppo)
    mirrored = dataclasses.replace(
        by_hand, state_obs=-np.concatenate([by_hand.state_obs[:, :12][:, swap], by_hand.state_obs[:, 12:][:, swap]], 1),
        privileged_obs=-np.concatenate([by_hand.privileged_obs[:, 12 * k:12 * (k + 1)][:, swap] for k in range(3)], 1),
        action=-by_hand.action[:, swap], action_mean=-by_hand.action_mean[:, swap])
    doubled = jax.tree.map(lambda a, b: jnp.asarray(np.concatenate([a, b])), by_hand, mirrored)
    _, plain_doubled = ts.amp_ppo_loss(params, nets, TINY, doubled, amp, stats, params.action_std)
    _, plain = ts.amp_ppo_loss(params, nets, TINY, ppo, amp, stats, params.action_std)
    for name in ("surrogate", "value", "entropy", "discriminator"):
        np.testing.assert_allclose(getattr(terms, name), getattr(plain_doubled, name), rtol=1e-6)
    np.testing.assert_allclose(terms.kl, plain.kl, rtol=1e-6)
    assert not np.isclose(float(terms.surrogate), float(plain.surrogate))


def test_mirror_loss_matches_numpy_and_enters_the_total(setup):
    nets, params, ppo, amp, stats = setup
    coef = 0.5
    (total, terms), grads = _loss(setup, _with(mirror_loss_coef=coef), MAPS)
    mean = np.asarray(networks.policy_mean(nets, params, ppo.state_obs), np.float64)
    mean_of_mirrored = np.asarray(networks.policy_mean(nets, params, MAPS.policy_obs(ppo.state_obs)), np.float64)
    expected = np.mean((mean_of_mirrored - (-mean[:, np.arange(12) ^ 1])) ** 2)
    np.testing.assert_allclose(terms.mirror, expected, rtol=1e-5)
    (total_off, _), grads_off = _loss(setup, TINY, MAPS)
    np.testing.assert_allclose(total - total_off, coef * expected, rtol=1e-4)
    differs = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_off))]
    assert any(differs)


def _two_iterations(cfg, mirror):
    env = AutoResetWrapper(VmapWrapper(point_mass.PointMassEnv()))
    init_fn, step_fn = ts.make_train_step(env, cfg, point_mass.sample_expert_transitions, mirror=mirror)
    state = init_fn(jax.random.PRNGKey(5))
    for _ in range(2):
        state, metrics = step_fn(state)
    return jax.device_get(state), jax.device_get(metrics)


@pytest.fixture(scope="module")
def with_maps_symmetry_off():
    """Two iterations of the point-mass env with its mirror maps given and every symmetry option off."""
    return _two_iterations(TINY, MAPS)


def test_training_with_symmetry_off_is_unchanged_and_with_discriminator_mirroring_doubles_its_samples(
        with_maps_symmetry_off):
    plain, metrics = _two_iterations(TINY, None)
    with_maps, metrics_maps = with_maps_symmetry_off
    for x, y in zip(jax.tree.leaves(plain), jax.tree.leaves(with_maps)):
        np.testing.assert_array_equal(x, y)
    assert metrics.keys() == metrics_maps.keys() and "loss/mirror" not in metrics
    mirrored, _ = _two_iterations(_with(discriminator=True), MAPS)
    # every minibatch step merges its policy and expert AMP states into the normaliser: twice as many mirrored
    steps = 2 * TINY.ppo.num_epochs * TINY.ppo.num_minibatches
    added = float(mirrored.normalizer.count) - float(plain.normalizer.count)
    assert added == pytest.approx(steps * 2 * TINY.minibatch_size, rel=1e-6)
    _, metrics_loss = _two_iterations(_with(mirror_loss_coef=0.1), MAPS)
    assert "loss/mirror" in metrics_loss and np.isfinite(metrics_loss["loss/mirror"])


@pytest.mark.parametrize("option", ["discriminator", "equivariant_networks"])
def test_symmetry_without_mirror_maps_is_a_config_error(option):
    env = AutoResetWrapper(VmapWrapper(point_mass.PointMassEnv()))
    with pytest.raises(ConfigError, match=f"symmetry.{option} = True: expected off"):
        ts.make_train_step(env, _with(**{option: True}), point_mass.sample_expert_transitions)


def test_equivariant_networks_give_a_sample_and_its_mirror_image_the_same_gradient(setup):
    """The loss of the mirrored batch (by hand: NumPy pair swap and sign) has the original's value, the same
    actor and critic gradients, and the action std's gradient permuted to the partner joints."""
    _, params, ppo, amp, stats = setup
    cfg = _with(equivariant_networks=True)
    nets = networks.make_networks(cfg.networks, 12, MAPS)
    params = networks.with_mirror_symmetric_std(nets, params)
    swap = np.arange(12) ^ 1
    mirrored = jax.tree.map(np.asarray, ppo)
    mirrored = mirrored.replace(
        state_obs=-np.concatenate([mirrored.state_obs[:, :12][:, swap], mirrored.state_obs[:, 12:][:, swap]], 1),
        privileged_obs=-np.concatenate([mirrored.privileged_obs[:, 12 * i:12 * i + 12][:, swap] for i in range(3)],
                                       1),
        action=-mirrored.action[:, swap], action_mean=-mirrored.action_mean[:, swap])

    def loss(samples):
        return jax.value_and_grad(ts.amp_ppo_loss, has_aux=True)(params, nets, cfg, samples, amp, stats,
                                                                 params.action_std, MAPS)

    (total, terms), grads = loss(ppo)
    (total_m, terms_m), grads_m = loss(mirrored)
    np.testing.assert_allclose(total_m, total, rtol=1e-5)
    np.testing.assert_allclose(terms_m.kl, terms.kl, rtol=1e-4, atol=1e-7)
    for x, y in zip(jax.tree.leaves((grads.actor, grads.critic)), jax.tree.leaves((grads_m.actor, grads_m.critic))):
        np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grads_m.action_std, grads.action_std[swap], rtol=1e-4, atol=1e-6)
    # the same property fails for the plain networks: the check can tell
    plain = networks.make_networks(cfg.networks, 12)
    grads_plain = jax.grad(ts.amp_ppo_loss, has_aux=True)(params, plain, TINY, ppo, amp, stats, params.action_std)[0]
    grads_plain_m = jax.grad(ts.amp_ppo_loss, has_aux=True)(params, plain, TINY, mirrored, amp, stats,
                                                            params.action_std)[0]
    assert not np.allclose(grads_plain.actor["params"]["head"]["bias"], grads_plain_m.actor["params"]["head"]["bias"],
                           rtol=1e-3)


def test_training_with_equivariant_networks_keeps_partner_stds_equal_and_learns_otherwise(with_maps_symmetry_off):
    plain, _ = with_maps_symmetry_off
    equivariant, metrics = _two_iterations(_with(equivariant_networks=True), MAPS)
    std = equivariant.params.action_std
    np.testing.assert_array_equal(std, std[np.arange(12) ^ 1])
    assert not np.array_equal(plain.params.action_std, plain.params.action_std[np.arange(12) ^ 1])
    assert not np.array_equal(plain.params.actor["params"]["head"]["kernel"],
                              equivariant.params.actor["params"]["head"]["kernel"])
    assert all(np.isfinite(v) for v in metrics.values())


def test_point_mass_mirror_maps_are_involutions_and_keep_the_expert_and_features():
    for m in (MAPS.policy_obs, MAPS.critic_obs, MAPS.action, MAPS.amp_obs):
        assert m.is_involution()
    vel = jax.random.normal(jax.random.key(0), (7, 12))
    np.testing.assert_allclose(point_mass.amp_features(MAPS.action(vel)), MAPS.amp_obs(point_mass.amp_features(vel)),
                               atol=1e-6)
    expert = point_mass.default_expert_velocity()
    np.testing.assert_array_equal(MAPS.action(expert), expert)
