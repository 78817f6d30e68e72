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


def _np_mlp(params: dict, x: np.ndarray, activation) -> np.ndarray:
    """A linen MLP's forward in float64 NumPy from its parameter dict."""
    layers = params["params"]
    hidden = sorted((k for k in layers if k != networks.DISC_HEAD), key=lambda k: int(k.split("_")[1]))
    for name in hidden:
        x = activation(x @ np.asarray(layers[name]["kernel"], np.float64) + np.asarray(layers[name]["bias"]))
    return x @ np.asarray(layers[networks.DISC_HEAD]["kernel"], np.float64) + np.asarray(
        layers[networks.DISC_HEAD]["bias"])


def test_the_summed_loss_matches_numpy():
    """``amp_ppo_loss`` (AMP on) against every term written out in NumPy: the networks' forwards, the Gaussian
    log-density and entropy, clipped surrogate and value losses, the AMP normaliser, the least-squares
    discriminator loss, and the gradient penalty from central finite differences of the discriminator."""
    from amp_jax.agents import normalizer
    from amp_jax.agents.train_step import amp_ppo_loss
    from amp_jax.config import Config

    def elu(x):
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))

    def leaky(x):
        return np.where(x > 0, x, networks.LEAKY_RELU_SLOPE * x)

    cfg = Config(networks=NetworkConfig(actor_hidden=(8, 6), critic_hidden=(7,), disc_hidden=(9, 5)))
    cfg = dataclasses.replace(cfg, amp=dataclasses.replace(cfg.amp, grad_penalty_coef=3.0))
    actions, s, p, f, b = 12, 10, 13, 4, 16
    nets = networks.make_networks(cfg.networks, actions)
    params = networks.init_params(nets, jax.random.key(3), s, p, f)
    params = params.replace(action_std=jnp.linspace(0.4, 1.3, actions, dtype=jnp.float32))
    rng = np.random.default_rng(7)

    def normal(*shape, scale=1.0):
        return (rng.normal(size=shape) * scale).astype(np.float32)

    state_obs, priv = normal(b, s), normal(b, p)
    mean_np = _np_mlp(params.actor, state_obs.astype(np.float64), elu)
    action = (mean_np + normal(b, actions, scale=0.5)).astype(np.float32)
    std = np.asarray(params.action_std, np.float64)
    z = (action - mean_np) / std
    log_prob = np.sum(-0.5 * z ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi), axis=-1)
    old_log_prob = (log_prob + normal(b, scale=0.3)).astype(np.float32)
    old_value, returns, advantage = normal(b), normal(b), normal(b)
    ppo = losses.PPOSamples(state_obs=state_obs, privileged_obs=priv, action=action,
                            action_mean=mean_np.astype(np.float32) + normal(b, actions, scale=0.05),
                            log_prob=old_log_prob, value=old_value, advantage=advantage, returns=returns)
    amp = losses.AMPSamples(*(normal(b, f, scale=2.0) for _ in range(4)))
    stats = normalizer.NormalizerState(mean=normal(f), var=np.abs(normal(f)) + 0.5, count=np.float32(100.0))
    old_std = params.action_std * 1.1

    total, terms = jax.jit(lambda prm: amp_ppo_loss(prm, nets, cfg, ppo, amp, stats, old_std))(params)

    ratio = np.exp(log_prob - old_log_prob)
    eps_clip = cfg.ppo.clip_epsilon
    surrogate = np.mean(np.maximum(-advantage * ratio, -advantage * np.clip(ratio, 1 - eps_clip, 1 + eps_clip)))
    value = _np_mlp(params.critic, priv.astype(np.float64), elu)[:, 0]
    clipped = old_value + np.clip(value - old_value, -cfg.ppo.value_clip, cfg.ppo.value_clip)
    value_loss = np.mean(np.maximum((value - returns) ** 2, (clipped - returns) ** 2))
    entropy = np.sum(0.5 + 0.5 * np.log(2 * np.pi) + np.log(std))

    def norm(x):
        scaled = (x - stats.mean) / np.sqrt(stats.var.astype(np.float64) + cfg.amp.normalizer_epsilon)
        return np.clip(scaled, -cfg.amp.normalizer_clip, cfg.amp.normalizer_clip)

    def disc(x):
        return _np_mlp(params.discriminator, x, leaky)[:, 0]

    x_policy = np.concatenate([norm(amp.policy_state), norm(amp.policy_next_state)], axis=-1)
    x_expert = np.concatenate([norm(amp.expert_state), norm(amp.expert_next_state)], axis=-1)
    d_policy, d_expert = disc(x_policy), disc(x_expert)
    disc_loss = 0.5 * (np.mean((d_expert - 1) ** 2) + np.mean((d_policy + 1) ** 2))
    h = 1e-5
    grad = np.stack([(disc(x_expert + h * e) - disc(x_expert - h * e)) / (2 * h) for e in np.eye(2 * f)], -1)
    penalty = cfg.amp.grad_penalty_coef * np.mean(np.sum(grad ** 2, axis=-1))
    expected = {"surrogate": surrogate, "value": value_loss, "entropy": entropy, "discriminator": disc_loss,
                "grad_penalty": penalty, "d_expert": d_expert.mean(), "d_policy": d_policy.mean()}
    for name, want in expected.items():
        np.testing.assert_allclose(float(getattr(terms, name)), want, rtol=2e-4, atol=1e-5, err_msg=name)
    assert 0.05 < ratio.min() and ratio.max() < 20 and np.any(np.abs(ratio - 1) > eps_clip)  # the clip acts
    assert penalty > 1e-3
    want_total = (surrogate + cfg.ppo.value_coef * value_loss - cfg.ppo.entropy_coef * entropy + disc_loss
                  + penalty)
    np.testing.assert_allclose(float(total), want_total, rtol=2e-4, atol=1e-5)


def test_the_tempo_term_matches_numpy_and_leaves_every_other_term_as_it_was():
    """Replayed clip transitions in the minibatch add ``w · ½ · mean (D(x_r) + 1)²`` (D in NumPy) to the loss and
    change no other term; without them the loss has no tempo term."""
    from amp_jax.agents import normalizer
    from amp_jax.agents.train_step import amp_ppo_loss
    from amp_jax.config import Config

    cfg = Config(networks=NetworkConfig(actor_hidden=(8,), critic_hidden=(7,), disc_hidden=(9, 5)))
    cfg = dataclasses.replace(cfg, amp=dataclasses.replace(cfg.amp, tempo_negative_rates=(2.0,),
                                                           tempo_negative_weight=0.7))
    actions, s, f, b = 12, 10, 4, 16
    nets = networks.make_networks(cfg.networks, actions)
    params = networks.init_params(nets, jax.random.key(5), s, s, f)
    rng = np.random.default_rng(2)

    def normal(*shape):
        return rng.normal(size=shape).astype(np.float32)

    ppo = losses.PPOSamples(state_obs=normal(b, s), privileged_obs=normal(b, s), action=normal(b, actions),
                            action_mean=normal(b, actions), log_prob=normal(b), value=normal(b), advantage=normal(b),
                            returns=normal(b))
    plain = losses.AMPSamples(*(normal(b, f) for _ in range(4)))
    tempo_s, tempo_next = normal(b, f), normal(b, f)
    with_tempo = plain.replace(tempo_state=tempo_s, tempo_next_state=tempo_next)
    stats = normalizer.NormalizerState(mean=normal(f), var=np.abs(normal(f)) + 0.5, count=np.float32(100.0))
    loss = jax.jit(lambda amp: amp_ppo_loss(params, nets, cfg, ppo, amp, stats, params.action_std))
    total, terms = loss(plain)
    total_t, terms_t = loss(with_tempo)

    def norm(x):
        scaled = (x - stats.mean) / np.sqrt(stats.var.astype(np.float64) + cfg.amp.normalizer_epsilon)
        return np.clip(scaled, -cfg.amp.normalizer_clip, cfg.amp.normalizer_clip)

    x = np.concatenate([norm(tempo_s), norm(tempo_next)], axis=-1)
    d = _np_mlp(params.discriminator, x, lambda v: np.where(v > 0, v, networks.LEAKY_RELU_SLOPE * v))[:, 0]
    want = 0.7 * 0.5 * np.mean((d + 1.0) ** 2)
    assert terms.tempo is None and terms.d_tempo is None
    np.testing.assert_allclose(float(terms_t.tempo), want, rtol=2e-5)
    np.testing.assert_allclose(float(terms_t.d_tempo), d.mean(), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(float(total_t), float(total) + want, rtol=1e-5)
    for name in ("surrogate", "value", "entropy", "discriminator", "grad_penalty", "d_expert", "d_policy"):
        assert float(getattr(terms_t, name)) == float(getattr(terms, name)), name
