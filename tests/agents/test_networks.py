"""The diagonal-Gaussian policy's log-probability, entropy and KL against independent computations: a product of
densities, Monte Carlo estimates and the textbook closed form, in float64 NumPy."""

import math

import jax.numpy as jnp
import numpy as np

from amp_jax.agents import networks

RNG = np.random.default_rng(0)
A = 12
MEAN, STD = RNG.normal(size=(5, A)), RNG.uniform(0.2, 1.5, size=(5, A))


def test_log_prob_is_the_log_of_the_product_of_the_densities():
    action = MEAN + STD * RNG.normal(size=(5, A)) * 0.5
    density = np.prod(np.exp(-0.5 * ((action - MEAN) / STD) ** 2) / (STD * math.sqrt(2 * math.pi)), axis=-1)
    got = networks.gaussian_log_prob(jnp.asarray(action), jnp.asarray(MEAN), jnp.asarray(STD))
    np.testing.assert_allclose(got, np.log(density), rtol=1e-5)


def test_entropy_is_the_expected_negative_log_density():
    std = STD[0]
    samples = RNG.normal(size=(200_000, A)) * std
    log_density = np.sum(-0.5 * (samples / std) ** 2 - np.log(std * math.sqrt(2 * math.pi)), axis=-1)
    monte_carlo = -np.mean(log_density)
    standard_error = np.std(log_density) / math.sqrt(len(samples))
    assert abs(float(networks.gaussian_entropy(jnp.asarray(std))) - monte_carlo) < 4 * standard_error


def test_kl_is_the_closed_form_up_to_the_reference_s_guard_and_matches_monte_carlo():
    mean_old, std_old, mean, std = MEAN[0], STD[0], MEAN[1], STD[1]
    closed = np.sum(np.log(std / std_old) + (std_old ** 2 + (mean_old - mean) ** 2) / (2 * std ** 2) - 0.5)
    got = float(networks.gaussian_kl(*(jnp.asarray(x) for x in (mean_old, std_old, mean, std))))
    # the reference adds 1e-5 inside the log: Σ log(r + 1e-5) − log(r) ≈ Σ 1e-5 / r
    np.testing.assert_allclose(got, closed + np.sum(1e-5 * std_old / std), rtol=1e-5)
    x = mean_old + std_old * RNG.normal(size=(200_000, A))

    def log_p(x, m, s):
        return np.sum(-0.5 * ((x - m) / s) ** 2 - np.log(s), axis=-1)

    ratio = log_p(x, mean_old, std_old) - log_p(x, mean, std)
    assert abs(np.mean(ratio) - closed) < 4 * np.std(ratio) / math.sqrt(len(x))
    same = float(networks.gaussian_kl(*(jnp.asarray(v) for v in (mean_old, std_old, mean_old, std_old))))
    assert abs(same) < A * 2e-5  # zero but for the guard


def _a1_equivariant_setup():
    """Small A1 networks, mirror-equivariant under the maps of an env with a gait clock and a gyroscope, with
    random parameters and observations."""
    import dataclasses

    import jax

    from amp_jax.config import Config, EnvConfig, NetworkConfig, SymmetryConfig
    from amp_jax.envs import observations
    from amp_jax.training import policy_file

    cfg = Config(env=EnvConfig(gait_clock_hz=2.0, policy_base_ang_vel=True),
                 networks=NetworkConfig(actor_hidden=(32, 16), critic_hidden=(32,), disc_hidden=(8,)),
                 symmetry=SymmetryConfig(equivariant_networks=True))
    nets = policy_file.run_networks(cfg)
    plain = policy_file.run_networks(dataclasses.replace(cfg, symmetry=SymmetryConfig()))
    s, c = observations.policy_obs_size(cfg.env), observations.critic_obs_size(cfg.env)
    params = networks.init_params(nets, jax.random.key(3), s, c, observations.amp_obs_size(cfg.env))
    keys = jax.random.split(jax.random.key(4), 2)
    return nets, plain, params, jax.random.normal(keys[0], (7, s)), jax.random.normal(keys[1], (7, c))


def test_equivariant_actor_and_critic_are_the_average_of_the_plain_ones_over_the_mirror():
    nets, plain, params, state_obs, critic_obs = _a1_equivariant_setup()
    assert plain.mirror is None and nets.mirror is not None
    m = nets.mirror
    mean = np.asarray(networks.policy_mean(nets, params, state_obs), np.float64)
    by_hand = 0.5 * (np.asarray(networks.policy_mean(plain, params, state_obs), np.float64)
                     + m.action(np.asarray(networks.policy_mean(plain, params, m.policy_obs(state_obs)), np.float64)))
    np.testing.assert_allclose(mean, by_hand, atol=1e-6)
    # equivariant and invariant for these (random) parameters; the plain networks are not
    np.testing.assert_allclose(networks.policy_mean(nets, params, m.policy_obs(state_obs)), m.action(mean),
                               atol=1e-5)
    np.testing.assert_allclose(networks.value(nets, params, m.critic_obs(critic_obs)),
                               networks.value(nets, params, critic_obs), atol=1e-5)
    plain_mean = np.asarray(networks.policy_mean(plain, params, state_obs))
    assert not np.allclose(networks.policy_mean(plain, params, m.policy_obs(state_obs)), m.action(plain_mean),
                           atol=1e-3)
    # one observation without a batch axis gives the batch's row
    np.testing.assert_allclose(networks.policy_mean(nets, params, state_obs[2]), mean[2], atol=1e-6)


def test_mirror_symmetric_std_averages_partner_joints():
    nets, plain, params, _, _ = _a1_equivariant_setup()
    params = params.replace(action_std=jnp.linspace(0.2, 1.3, A))
    std = np.asarray(networks.with_mirror_symmetric_std(nets, params).action_std)
    partner = np.array([3, 4, 5, 0, 1, 2, 9, 10, 11, 6, 7, 8])  # FL↔FR, RL↔RR; hip, thigh, calf in place
    np.testing.assert_allclose(std, 0.5 * (np.linspace(0.2, 1.3, A) + np.linspace(0.2, 1.3, A)[partner]), rtol=1e-6)
    assert networks.with_mirror_symmetric_std(plain, params) is params
