"""Losses, GAE and the gradient penalty against plain Python, NumPy, closed forms and finite differences."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amp_jax.agents import losses, networks
from amp_jax.config import NetworkConfig


def test_gae_matches_python_loop_with_dones_and_time_outs():
    rng = np.random.default_rng(0)
    steps, envs, gamma, lam = 13, 5, 0.99, 0.95
    reward = rng.normal(size=(steps, envs)).astype(np.float32)
    value = rng.normal(size=(steps, envs)).astype(np.float32)
    done = (rng.random((steps, envs)) < 0.2).astype(np.float32)
    truncation = done * (rng.random((steps, envs)) < 0.5)
    last_value = rng.normal(size=envs).astype(np.float32)

    boot = np.asarray(losses.bootstrap_time_outs(reward, value, truncation, gamma))
    adv, ret = losses.generalized_advantages(jnp.asarray(boot), value, done, last_value, gamma, lam)

    expected = np.zeros((steps, envs))
    for n in range(envs):
        next_adv, next_value = 0.0, float(last_value[n])
        for t in reversed(range(steps)):
            r = float(reward[t, n]) + gamma * float(value[t, n]) * float(truncation[t, n])
            not_done = 1.0 - float(done[t, n])
            delta = r + gamma * not_done * next_value - float(value[t, n])
            next_adv = delta + gamma * lam * not_done * next_adv
            next_value = float(value[t, n])
            expected[t, n] = next_adv
    np.testing.assert_allclose(adv, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, expected + value, rtol=1e-5, atol=1e-5)
    assert truncation.sum() > 0 and (done - truncation).sum() > 0  # both kinds of episode end occur


def test_advantage_normalisation_uses_unbiased_std():
    a = np.random.default_rng(1).normal(3.0, 2.0, size=(7, 4)).astype(np.float32)
    np.testing.assert_allclose(losses.normalize_advantages(jnp.asarray(a)),
                               (a - a.mean()) / (a.std(ddof=1) + 1e-8), rtol=1e-5, atol=1e-6)


def test_ppo_losses_match_numpy():
    rng = np.random.default_rng(2)
    logp, old, adv = (rng.normal(size=50).astype(np.float32) * s for s in (0.3, 0.3, 1.0))
    ratio = np.exp(logp - old)
    expected = np.mean(-np.minimum(ratio * adv, np.clip(ratio, 0.8, 1.2) * adv))
    np.testing.assert_allclose(losses.clipped_surrogate_loss(logp, old, adv, 0.2), expected, rtol=1e-5)

    v, v_old, ret = (rng.normal(size=50).astype(np.float32) for _ in range(3))
    v_clip = v_old + np.clip(v - v_old, -0.2, 0.2)
    expected = np.mean(np.maximum((v - ret) ** 2, (v_clip - ret) ** 2))
    np.testing.assert_allclose(losses.clipped_value_loss(v, v_old, ret, 0.2), expected, rtol=1e-5)


def test_discriminator_loss_amp_reward_and_mix():
    d_e, d_p = np.array([1.0, 0.5, 2.0], np.float32), np.array([-1.0, 0.0], np.float32)
    expected = 0.5 * (np.mean((d_e - 1) ** 2) + np.mean((d_p + 1) ** 2))
    np.testing.assert_allclose(losses.least_squares_discriminator_loss(d_e, d_p), expected, rtol=1e-6)
    d = np.array([1.0, -1.0, 3.0, -2.0, 0.0], np.float32)
    np.testing.assert_allclose(losses.amp_reward(d, 2.0), [2.0, 0.0, 0.0, 0.0, 1.5], rtol=1e-6)
    np.testing.assert_allclose(losses.mix_rewards(np.float32(2.0), np.float32(1.0), 0.3), 0.7 * 2 + 0.3, rtol=1e-6)


def test_gradient_penalty_of_linear_discriminator_is_closed_form():
    rng = np.random.default_rng(3)
    w, b = rng.normal(size=86).astype(np.float32), np.float32(0.7)
    x = rng.normal(size=(9, 86)).astype(np.float32)
    scores, grads = losses.score_and_input_gradient(lambda x: x @ w + b, jnp.asarray(x))
    np.testing.assert_allclose(scores, x @ w + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grads, np.broadcast_to(w, x.shape), rtol=1e-6)
    np.testing.assert_allclose(losses.gradient_penalty(grads, 10.0), 10.0 * np.sum(w ** 2), rtol=1e-5)


def test_gradient_penalty_of_mlp_matches_finite_differences():
    nets = networks.make_networks(NetworkConfig(disc_hidden=(32, 16)), 12)
    params = networks.init_params(nets, jax.random.PRNGKey(0), 4, 4, 5)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 10))

    def score64(x):  # the same network in float64 NumPy
        layers = params.discriminator["params"]
        h = x
        for name in ("hidden_0", "hidden_1"):
            h = h @ np.asarray(layers[name]["kernel"], np.float64) + np.asarray(layers[name]["bias"], np.float64)
            h = np.where(h > 0, h, 0.01 * h)
        return (h @ np.asarray(layers["head"]["kernel"], np.float64))[:, 0] + float(layers["head"]["bias"][0])

    eps = 1e-6
    fd = np.stack([(score64(x + eps * e) - score64(x - eps * e)) / (2 * eps) for e in np.eye(10)], axis=-1)
    score = lambda x: networks.discriminator_score(nets, params.discriminator, x)  # noqa: E731
    d, grads = losses.score_and_input_gradient(score, jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(d, score64(x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads, fd, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(losses.gradient_penalty(grads, 10.0), 10.0 * np.mean(np.sum(fd ** 2, -1)), rtol=1e-3)


def test_gradient_penalty_parameter_gradient_matches_finite_differences():
    """The penalty is differentiated through the input gradient (double backward) w.r.t. the weights."""
    nets = networks.make_networks(NetworkConfig(disc_hidden=(16,)), 12)
    params = networks.init_params(nets, jax.random.PRNGKey(1), 4, 4, 3)
    x = jnp.asarray(np.random.default_rng(5).normal(size=(8, 6)), jnp.float32)

    def penalty(head_kernel):
        disc = jax.tree.map(lambda a: a, params.discriminator)
        disc["params"]["head"]["kernel"] = head_kernel
        _, g = losses.score_and_input_gradient(lambda y: networks.discriminator_score(nets, disc, y), x)
        return losses.gradient_penalty(g, 10.0)

    kernel = params.discriminator["params"]["head"]["kernel"]
    analytic = jax.grad(penalty)(kernel)
    eps = 1e-2  # the penalty is quadratic in the head kernel: central differences are exact up to rounding
    for i in (0, 5, 11):
        e = jnp.zeros_like(kernel).at[i, 0].set(eps)
        fd = (penalty(kernel + e) - penalty(kernel - e)) / (2 * eps)
        assert float(analytic[i, 0]) == pytest.approx(float(fd), rel=2e-3, abs=1e-4)


def test_samples_from_a_rollout_take_its_fields_of_the_same_names():
    from amp_jax.agents import train_step

    rollout = train_step.Rollout(**{f.name: jnp.full((2,), float(i)) for i, f in
                                    enumerate(dataclasses.fields(train_step.Rollout)) if f.name != "reward_terms"},
                                 reward_terms={})
    samples = losses.PPOSamples.from_rollout(rollout, jnp.full((2,), -1.0), jnp.full((2,), -2.0))
    for f in dataclasses.fields(losses.PPOSamples):
        expected = {"advantage": -1.0, "returns": -2.0}.get(f.name)
        if expected is None:
            expected = [g.name for g in dataclasses.fields(train_step.Rollout)].index(f.name)
        np.testing.assert_array_equal(getattr(samples, f.name), expected, err_msg=f.name)
