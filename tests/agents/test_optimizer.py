"""Clipping, weight decay, Adam, the adaptive learning rate and the std floor against hand-computed steps."""

import dataclasses

import jax
import numpy as np
import optax
import pytest

from amp_jax.agents import networks, optimizer
from amp_jax.config import AMPConfig, NetworkConfig, PPOConfig

PPO = PPOConfig(max_grad_norm=0.5, learning_rate=3e-3)
AMP = AMPConfig(disc_trunk_weight_decay=1e-3, disc_head_weight_decay=1e-1)


@pytest.fixture(scope="module")
def setup():
    nets = networks.make_networks(NetworkConfig(actor_hidden=(8,), critic_hidden=(8,), disc_hidden=(8, 4)), 12)
    params = networks.init_params(nets, jax.random.PRNGKey(0), 5, 6, 3)
    leaves, treedef = jax.tree.flatten(params)
    rng = np.random.default_rng(0)
    grads = [jax.tree.unflatten(treedef, [rng.normal(size=x.shape).astype(np.float32) for x in leaves])
             for _ in range(2)]
    return nets, params, grads


def _groups(tree):
    """(actor-critic leaves, discriminator trunk leaves, discriminator head leaves) as NumPy float64."""
    to64 = lambda t: [np.asarray(x, np.float64) for x in jax.tree.leaves(t)]  # noqa: E731
    disc = tree.discriminator["params"]
    return (to64((tree.actor, tree.action_std, tree.critic)),
            to64({k: v for k, v in disc.items() if k != "head"}), to64(disc["head"]))


def test_two_steps_equal_hand_computed_clip_decay_adam(setup):
    nets, params, grads = setup
    opt = optimizer.make_optimizer(PPO, AMP)
    state = opt.init(params)
    new = params
    lrs = (3e-3, 1e-3)
    for g, lr in zip(grads, lrs):
        state = optimizer.with_learning_rate(state, lr)
        updates, state = opt.update(g, state, new)
        new = optax.apply_updates(new, updates)

    # By hand, float64: per-group preprocessing, then Adam with bias correction.
    p = [list(x) for x in _groups(params)]
    m = [[np.zeros_like(x) for x in grp] for grp in p]
    v = [[np.zeros_like(x) for x in grp] for grp in p]
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        ac, trunk, head = _groups(g)
        norm = np.sqrt(sum(np.sum(x ** 2) for x in ac))
        ac = [x * min(1.0, PPO.max_grad_norm / norm) for x in ac]
        assert norm > PPO.max_grad_norm  # the clip is active
        trunk = [x + AMP.disc_trunk_weight_decay * w for x, w in zip(trunk, p[1])]
        head = [x + AMP.disc_head_weight_decay * w for x, w in zip(head, p[2])]
        for gi, grp in enumerate((ac, trunk, head)):
            for li, gl in enumerate(grp):
                m[gi][li] = 0.9 * m[gi][li] + 0.1 * gl
                v[gi][li] = 0.999 * v[gi][li] + 0.001 * gl ** 2
                m_hat, v_hat = m[gi][li] / (1 - 0.9 ** t), v[gi][li] / (1 - 0.999 ** t)
                p[gi][li] = p[gi][li] - lr * m_hat / (np.sqrt(v_hat) + 1e-8)
    for got, want in zip(_groups(new), p):
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_clip_ignores_the_discriminator_and_decay_ignores_the_actor_critic(setup):
    _, params, grads = setup
    labels = optimizer.param_labels(params)
    assert set(jax.tree.leaves((labels.actor, labels.action_std, labels.critic))) == {optimizer.ACTOR_CRITIC}
    disc = labels.discriminator["params"]
    assert set(jax.tree.leaves(disc["head"])) == {optimizer.DISC_HEAD_GROUP}
    assert set(jax.tree.leaves({k: v for k, v in disc.items() if k != "head"})) == {optimizer.DISC_TRUNK}


@pytest.mark.parametrize(("kl", "lr", "expected"), [
    (0.05, 1e-3, 1e-3 / 1.5),     # KL > 2·desired: lower
    (0.05, 1.2e-5, 1e-5),         # ... not below the floor
    (0.001, 1e-3, 1.5e-3),        # 0 < KL < desired/2: raise
    (0.001, 8e-3, 1e-2),          # ... not above the cap
    (0.0, 1e-3, 1e-3),            # KL = 0: unchanged
    (0.01, 1e-3, 1e-3),           # inside the band: unchanged
    (0.02, 1e-3, 1e-3),           # exactly 2·desired: unchanged
])
def test_adaptive_learning_rate_rule(kl, lr, expected):
    got = optimizer.adapt_learning_rate(np.float32(lr), np.float32(kl), PPOConfig(desired_kl=0.01))
    assert float(got) == pytest.approx(expected, rel=1e-6)
    fixed = optimizer.adapt_learning_rate(np.float32(lr), np.float32(kl), dataclasses.replace(PPO, schedule="fixed"))
    assert float(fixed) == pytest.approx(lr, rel=1e-7)


def test_injected_learning_rate_sets_the_step_size(setup):
    """Adam's first step is lr · g / (|g| + ε): changing the injected rate changes it proportionally."""
    _, params, grads = setup
    opt = optimizer.make_optimizer(PPO, AMP)
    state = optimizer.with_learning_rate(opt.init(params), 7e-4)
    updates, _ = opt.update(grads[0], state, params)
    step = np.asarray(updates.discriminator["params"]["head"]["kernel"], np.float64)
    g = np.asarray(grads[0].discriminator["params"]["head"]["kernel"], np.float64)
    g = g + AMP.disc_head_weight_decay * np.asarray(params.discriminator["params"]["head"]["kernel"])
    np.testing.assert_allclose(step, -7e-4 * g / (np.abs(g) + 1e-8), rtol=1e-5)


def test_std_floor(setup):
    nets, params, _ = setup
    low = params.replace(action_std=np.linspace(-0.1, 0.3, 12).astype(np.float32))
    floored = optimizer.apply_std_floor(low, nets.min_std)
    np.testing.assert_allclose(floored.action_std, np.maximum(low.action_std, nets.min_std), rtol=1e-7)
    np.testing.assert_allclose(nets.min_std[:3], [0.0723, 0.0942, 0.0801], atol=1e-4)
