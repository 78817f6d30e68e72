"""The whole AMP-PPO iteration on the point-mass env: learning, AMP imitation, transitions, determinism."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.envs.wrappers.training import VmapWrapper

from amp_jax.agents import train_step as ts
from amp_jax.config import AMPConfig, Config, EnvConfig, NetworkConfig, PPOConfig, SymmetryConfig
from amp_jax.envs import point_mass
from amp_jax.envs.wrappers import AutoResetWrapper

# Hundreds of iterations each: these outlast their compiles, so they compile with XLA's optimisations.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("optimized_compiles")]

SMALL = Config(env=EnvConfig(num_envs=64),
               networks=NetworkConfig(actor_hidden=(64, 64), critic_hidden=(64, 64), disc_hidden=(128, 64)),
               ppo=PPOConfig(num_steps=16),
               amp=AMPConfig(replay_buffer_size=4096))


def _cfg(**amp) -> Config:
    return dataclasses.replace(SMALL, amp=dataclasses.replace(SMALL.amp, **amp))


@pytest.fixture(scope="module")
def env():
    return AutoResetWrapper(VmapWrapper(point_mass.PointMassEnv()))


def _train(init_fn, step_fn, seed, iterations):
    state = init_fn(jax.random.PRNGKey(seed))
    history = []
    for _ in range(iterations):
        state, metrics = step_fn(state)
        history.append(jax.device_get(metrics))
    return state, history


@pytest.fixture(scope="module")
def ppo_only(env):
    """Task reward only (lerp = 1): 150 iterations."""
    return ts.make_train_step(env, _cfg(task_reward_lerp=1.0), point_mass.sample_expert_transitions)


def test_ppo_alone_learns_velocity_tracking(ppo_only):
    state, history = _train(*ppo_only, seed=0, iterations=150)
    first = np.mean([m["reward/task"] for m in history[:5]])
    last = np.mean([m["reward/task"] for m in history[-10:]])
    returns = [m["episode/return"] for m in history[-10:] if m["episode/finished"] > 0]
    # Random policy (std 1): per-step reward ≈ 1 − (1/3 + 1) ≈ −0.33, episode return ≈ −13 over 40 steps.
    assert first < 0.0
    assert last > 0.25, (first, last)
    assert np.mean(returns) > 10.0, returns
    assert float(history[-1]["policy/mean_std"]) < 0.8  # noise costs reward, so the std shrinks
    assert np.all(np.asarray(state.params.action_std) >= SMALL.networks.min_std - 1e-7)


def test_ppo_with_every_kind_of_symmetry_still_learns_velocity_tracking(env):
    """Augmented minibatches, the mirror loss and mirrored discriminator samples on the point-mass env, whose mirror
    keeps its task: the learning test's thresholds still hold."""
    cfg = dataclasses.replace(_cfg(task_reward_lerp=1.0), symmetry=SymmetryConfig(
        ppo_augmentation=True, mirror_loss_coef=0.1, discriminator=True))
    init_fn, step_fn = ts.make_train_step(env, cfg, point_mass.sample_expert_transitions,
                                          mirror=point_mass.mirror_maps())
    _, history = _train(init_fn, step_fn, seed=0, iterations=150)
    last = np.mean([m["reward/task"] for m in history[-10:]])
    returns = [m["episode/return"] for m in history[-10:] if m["episode/finished"] > 0]
    assert last > 0.25, last
    assert np.mean(returns) > 10.0, returns
    assert float(history[-1]["loss/mirror"]) < float(history[0]["loss/mirror"])


def test_amp_transitions_use_the_terminal_state(ppo_only):
    """With response = 1 the AMP state's velocity is the action just applied: s_next must carry it even when
    the episode ended and the env was reset (then the next s is the reset state with velocity 0)."""
    init_fn, step_fn = ppo_only
    state = init_fn(jax.random.PRNGKey(3))
    for _ in range(3):  # episodes of 40 steps: every env times out in the 3rd rollout of 16 steps
        state, metrics = step_fn(state)
    steps, envs = SMALL.ppo.num_steps, SMALL.env.num_envs
    buffer = state.replay_buffer
    rows = (int(buffer.insert_index) - steps * envs + np.arange(steps * envs)) % buffer.capacity
    s = np.asarray(buffer.states)[rows].reshape(steps, envs, -1)[..., :12]
    s_next = np.asarray(buffer.next_states)[rows].reshape(steps, envs, -1)[..., :12]
    continued = np.all(s[1:] == s_next[:-1], axis=-1)
    reset = np.all(s[1:] == 0.0, axis=-1)
    assert np.all(continued | reset)
    assert reset.sum() > 0 and np.all(np.abs(s_next[:-1][reset]).sum(-1) > 0)


def test_same_seed_same_parameters_and_different_seed_differs(ppo_only):
    a, _ = _train(*ppo_only, seed=7, iterations=3)
    b, _ = _train(*ppo_only, seed=7, iterations=3)
    c, _ = _train(*ppo_only, seed=8, iterations=3)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.array_equal(np.asarray(a.params.action_std), np.asarray(c.params.action_std))
    assert int(a.iteration) == 3


def test_amp_alone_moves_policy_toward_expert(env):
    cfg = dataclasses.replace(_cfg(task_reward_lerp=0.0),
                              ppo=dataclasses.replace(SMALL.ppo, schedule="fixed", learning_rate=3e-4))
    init_fn, step_fn = ts.make_train_step(env, cfg, point_mass.sample_expert_transitions)
    expert_velocity = np.asarray(point_mass.default_expert_velocity())
    state = init_fn(jax.random.PRNGKey(0))
    gaps, distances, amp_rewards = [], [], []
    for _ in range(250):
        state, metrics = step_fn(state)
        gaps.append(float(metrics["amp/d_expert"] - metrics["amp/d_policy"]))
        amp_rewards.append(float(metrics["reward/amp"]))
        velocity = np.asarray(state.env_state.info["amp_obs"][:, :12])  # the velocity features
        distances.append(np.linalg.norm(velocity.mean(0) - expert_velocity))
    early, late = slice(5, 20), slice(-20, None)
    # D(policy) rises toward D(expert): the gap shrinks; the style reward and the feature distance follow.
    assert np.mean(gaps[late]) < 0.5 * np.mean(gaps[early]), (np.mean(gaps[early]), np.mean(gaps[late]))
    assert np.mean(amp_rewards[late]) > 2.0 * np.mean(amp_rewards[early])
    assert np.mean(distances[late]) < 0.6 * np.mean(distances[:3]), (distances[:3], distances[-5:])
    assert np.isfinite(jax.tree.leaves(jax.tree.map(jnp.sum, state.params))).all()


def test_resume_from_host_copy_is_bit_exact(ppo_only):
    """A state copied to the host and back (what a checkpoint does) continues exactly as the original."""
    init_fn, step_fn = ppo_only
    straight, _ = _train(init_fn, step_fn, seed=11, iterations=3)
    state, _ = _train(init_fn, step_fn, seed=11, iterations=2)
    restored = jax.device_put(jax.device_get(state))
    resumed, _ = step_fn(restored)
    for x, y in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _count_first_layer_forwards(jaxpr, kernel_shape) -> int:
    """dot_generals ``x @ W`` with ``W`` of ``kernel_shape`` contracted on its first axis, in nested jaxprs too."""
    count = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (_, rhs_contract), _ = eqn.params["dimension_numbers"]
            if tuple(eqn.invars[1].aval.shape) == kernel_shape and tuple(rhs_contract) == (0,):
                count += 1
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    count += _count_first_layer_forwards(inner, kernel_shape)
    return count


def test_amp_disabled_trains_the_policy_as_the_task_reward_alone_with_no_discriminator_work(env, ppo_only):
    """``amp.enabled: false`` (the baselines): the actor and critic follow the same path as with the task reward
    alone through the mixing (lerp = 1), while the discriminator, its normaliser and the replay buffer stay as
    initialised, no discriminator metric is logged, and the compiled iteration holds no discriminator layer."""
    cfg = _cfg(enabled=False, task_reward_lerp=0.3)  # lerp is unused without the prior
    init_fn, step_fn = ts.make_train_step(env, cfg, point_mass.sample_expert_transitions)
    initial = init_fn(jax.random.PRNGKey(5))
    state, history = _train(init_fn, step_fn, seed=5, iterations=3)
    reference, reference_history = _train(*ppo_only, seed=5, iterations=3)
    for name in ("actor", "critic", "action_std"):
        for x, y in zip(jax.tree.leaves(getattr(state.params, name)),
                        jax.tree.leaves(getattr(reference.params, name))):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose([m["reward/task"] for m in history],
                               [m["reward/task"] for m in reference_history], rtol=1e-5)
    for field in ("discriminator",):
        for x, y in zip(jax.tree.leaves(getattr(state.params, field)),
                        jax.tree.leaves(getattr(initial.params, field))):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    for x, y in zip(jax.tree.leaves((state.normalizer, state.replay_buffer)),
                    jax.tree.leaves((initial.normalizer, initial.replay_buffer))):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not any(name.startswith("amp/") or name in ("reward/amp", "loss/discriminator", "loss/grad_penalty")
                   for name in history[-1])
    assert "amp/d_expert" in reference_history[-1]
    # Nothing computed for the discriminator: its first layer's kernel is multiplied nowhere in the iteration.
    kernel_shape = next(tuple(x.shape) for x in jax.tree.leaves(initial.params.discriminator)
                        if x.ndim == 2 and x.shape[1] == SMALL.networks.disc_hidden[0])
    jaxpr = jax.make_jaxpr(step_fn)(initial).jaxpr
    assert _count_first_layer_forwards(jaxpr, kernel_shape) == 0
    assert _count_first_layer_forwards(jax.make_jaxpr(ppo_only[1])(initial).jaxpr, kernel_shape) > 0


def test_tempo_negatives_are_learned_as_the_policys_and_need_a_sampler(env):
    """With ``amp.tempo_negative_weight`` > 0 the discriminator also learns on the "expert" replayed at another
    rate (here: the point mass's expert velocities doubled) and scores it as it scores the policy, below the
    expert; the iteration logs it. A config that asks for it without a sampler is refused."""
    from amp_jax.config import ConfigError

    cfg = _cfg(tempo_negative_rates=(2.0,), tempo_negative_weight=1.0)
    with pytest.raises(ConfigError, match="amp.tempo_negative_weight"):
        ts.make_train_step(env, cfg, point_mass.sample_expert_transitions)
    doubled = 2.0 * point_mass.default_expert_velocity()

    def sample_doubled(key, batch):
        return point_mass.sample_expert_transitions(key, batch, expert_velocity=doubled)

    init_fn, step_fn = ts.make_train_step(env, cfg, point_mass.sample_expert_transitions,
                                          sample_tempo_fn=sample_doubled)
    _, history = _train(init_fn, step_fn, seed=1, iterations=40)
    late = history[-10:]
    d_expert, d_tempo = (np.mean([m[name] for m in late]) for name in ("amp/d_expert", "amp/d_tempo"))
    assert d_expert > 0.3 and d_tempo < -0.3, (d_expert, d_tempo)
    assert all(np.isfinite(m["loss/tempo"]) and m["loss/tempo"] > 0 for m in history)


def _rollout_noise(env, correlation: float, key: jax.Array) -> np.ndarray:
    """The standardised action noise ``(action − mean) / std`` of one rollout, ``[T, N, A]``; asserts that its
    log-probabilities are the Gaussian's of the action around the mean."""
    from amp_jax.agents import distributed, networks

    nets = networks.make_networks(SMALL.networks, env.action_size)
    n, t = SMALL.env.num_envs, SMALL.ppo.num_steps
    env_state = env.reset(jax.random.split(jax.random.PRNGKey(0), n))
    params = networks.init_params(nets, jax.random.PRNGKey(1), env_state.obs["state"].shape[-1],
                                  env_state.obs["privileged_state"].shape[-1], env_state.info["amp_obs"].shape[-1])
    rollout = ts.make_rollout(nets, n, t, distributed.DeviceAxis(1), correlation)
    data = jax.jit(distributed.on_one_device(lambda p, s, k: rollout(env, p, s, k)[1]))(params, env_state, key)
    noise = (data.action - data.action_mean) / params.action_std
    expected_log_prob = networks.gaussian_log_prob(data.action, data.action_mean, params.action_std)
    np.testing.assert_allclose(data.log_prob, expected_log_prob, rtol=1e-6, atol=1e-6)
    return np.asarray(noise, np.float64)


def test_correlated_action_noise_is_an_ar1_process_over_the_independent_draws(env):
    """ρ = 0 draws the independent noise of each step's key; ρ > 0 runs the recursion over the same draws from
    a standard normal start, so each step's noise stays standard normal and neighbours correlate by ρ."""
    key = jax.random.PRNGKey(5)
    n, t, a = SMALL.env.num_envs, SMALL.ppo.num_steps, env.action_size
    draws = np.stack([np.asarray(jax.random.normal(k, (n, a))) for k in jax.random.split(key, t)])
    independent = _rollout_noise(env, 0.0, key)
    np.testing.assert_allclose(independent, draws, atol=2e-5)

    rho = 0.9
    correlated = _rollout_noise(env, rho, key)
    previous = np.asarray(jax.random.normal(jax.random.fold_in(key, ts.NOISE_START_KEY), (n, a)), np.float64)
    for step in range(t):  # the recursion as a plain loop over the same draws
        previous = rho * previous + np.sqrt(1 - rho ** 2) * draws[step]
        np.testing.assert_allclose(correlated[step], previous, atol=2e-5)
    lag1 = np.mean(correlated[1:] * correlated[:-1]) / np.mean(correlated ** 2)
    assert abs(lag1 - rho) < 0.03 and abs(np.std(correlated) - 1.0) < 0.05
    assert abs(np.mean(independent[1:] * independent[:-1])) < 0.03
