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
