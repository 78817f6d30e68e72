"""One AMP-PPO iteration (rollout → AMP rewards → GAE → epochs × minibatches of updates) as one jitted function.

:func:`make_train_step` builds, for an already batched, auto-resetting env (the project's
:class:`~amp_jax.envs.wrappers.AutoResetWrapper` over a brax ``VmapWrapper``), a pair
``(init_fn, train_step)``:

* ``init_fn(key) -> TrainingState``: parameters, optimiser, normaliser, empty replay buffer, first env state;
* ``train_step(state) -> (state, metrics)``: one iteration, deterministic given ``state`` (every random
  draw comes from ``state.key``), so a :class:`TrainingState` restored from a checkpoint resumes bit-exactly.
  ``state`` is donated: don't use it after the call.

Shapes: ``N`` envs, ``T = cfg.ppo.num_steps``, ``B = N·T`` samples per iteration, ``M`` minibatches of
``B/M`` samples; ``S``/``P`` policy/critic observation sizes, ``A`` actions, ``F`` AMP features.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from brax.envs.base import Env
from brax.envs.base import State as EnvState
from flax import struct
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from amp_jax.agents import distributed, losses, networks, normalizer, optimizer, replay_buffer, symmetry
from amp_jax.agents.distributed import DeviceAxis
from amp_jax.agents.losses import AMPSamples, LossTerms, PPOSamples, amp_ppo_loss, normalized_transition
from amp_jax.agents.networks import AgentNetworks, AgentParams
from amp_jax.agents.normalizer import NormalizerState
from amp_jax.agents.replay_buffer import ReplayBuffer
from amp_jax.agents.symmetry import MirrorMaps
from amp_jax.config import Config, ConfigError
from amp_jax.envs.wrappers import TERMINAL_AMP_OBS, TERMINAL_EPISODE_LENGTH, TERMINAL_EPISODE_RETURN

REWARD_TERM_PREFIX = "reward/"
"""An env metric named ``reward/<term>`` is one scaled task-reward term, ``[N]`` per step; the iteration logs its
mean over the rollout under the same name."""

SampleExpertFn = Callable[[jax.Array, int], tuple[jax.Array, jax.Array]]
"""``(key, batch) -> (s [batch, F], s_next [batch, F])``: expert AMP transitions."""
TEMPO_KEY = 7
"""Folded into a minibatch's device key for its replayed clip transitions (``cfg.amp.tempo_negatives``)."""
NOISE_START_KEY = 11
"""Folded into a rollout's key for the correlated action noise's start (``cfg.ppo.action_noise_correlation``)."""


@struct.dataclass
class TrainingState:
    """Everything an iteration reads and writes; the whole of a bit-exact resume."""

    params: AgentParams
    opt_state: optax.OptState
    """The optimiser's state, the adaptive learning rate included (:attr:`learning_rate`)."""
    normalizer: NormalizerState
    """AMP feature statistics."""
    replay_buffer: ReplayBuffer
    """Policy AMP transitions."""
    env_state: EnvState
    """Batched env state the next rollout starts from, ``[N]``."""
    key: jax.Array
    """PRNG key of every draw of the next iteration."""
    iteration: jax.Array
    """Iterations done, int32 scalar."""

    @property
    def learning_rate(self) -> jax.Array:
        """The next step's adaptive learning rate, float32 scalar (kept in ``opt_state`` alone)."""
        return optimizer.learning_rate(self.opt_state)


@struct.dataclass
class Rollout:
    """One iteration's experience, ``[T, N, ...]``."""

    state_obs: jax.Array
    """Policy observation the action was taken from, ``[T, N, S]``."""
    privileged_obs: jax.Array
    """Critic observation, ``[T, N, P]``."""
    action: jax.Array
    """Sampled action, ``[T, N, A]``."""
    action_mean: jax.Array
    """Policy mean at sampling time, ``[T, N, A]``."""
    log_prob: jax.Array
    """log π(action) at sampling time, ``[T, N]``."""
    value: jax.Array
    """V(privileged_obs) at sampling time, ``[T, N]``."""
    task_reward: jax.Array
    """``[T, N]``."""
    done: jax.Array
    """1.0 where the step ended an episode (time-outs included), ``[T, N]``."""
    truncation: jax.Array
    """1.0 where the step ended an episode by time-out, ``[T, N]``."""
    amp_state: jax.Array
    """AMP observation of the state acted from, ``[T, N, F]``."""
    amp_next_state: jax.Array
    """AMP observation of the state reached (the terminal one where ``done``), ``[T, N, F]``."""
    episode_return: jax.Array
    """Task return of the episode that ended at this step (valid where ``done``), ``[T, N]``."""
    episode_length: jax.Array
    """Length of the episode that ended at this step (valid where ``done``), ``[T, N]``."""
    reward_terms: dict[str, jax.Array]
    """The env's scaled task-reward terms (its ``reward/<term>`` metrics), each ``[T, N]``."""


@struct.dataclass
class Learner:
    """What each minibatch step changes."""

    params: AgentParams
    opt_state: optax.OptState
    """Adam's moments and the adaptive learning rate."""
    normalizer: NormalizerState


UpdateFn = Callable[[Learner, PPOSamples, ReplayBuffer, jax.Array, jax.Array], tuple[Learner, LossTerms]]
"""``(learner, samples [B], buffer, old_std [A], key) -> (learner, loss terms [epochs, minibatches])``."""


def _flatten_time(x: jax.Array) -> jax.Array:
    """``[T, N, ...] -> [T·N, ...]``."""
    return x.reshape((-1,) + x.shape[2:])


LearnStepFn = Callable[[Learner, PPOSamples, AMPSamples, jax.Array], tuple[Learner, LossTerms]]
"""``(learner, ppo [b], amp [b], old_std [A]) -> (learner, terms)``: one optimiser step."""


def make_learn_step(nets: AgentNetworks, opt: optax.GradientTransformation, cfg: Config, axis: DeviceAxis,
                    mirror: MirrorMaps | None = None) -> LearnStepFn:
    """One optimiser step on given samples: ``(learner, ppo [b], amp [b], old_std [A]) -> (learner, terms)``.

    Takes the gradient of :func:`amp_ppo_loss`, adapts the learning rate from the minibatch's KL, applies the
    step, floors the std and merges the minibatch's policy and expert AMP states (if any) into the normaliser. It
    runs inside ``shard_map`` over ``axis`` (one device or more); the samples are this device's share of the
    minibatch: gradients and loss terms are averaged over the devices and the normaliser merges every device's
    states. ``mirror``: the env's mirror maps, used as ``cfg.symmetry`` asks (:func:`amp_ppo_loss`).
    """

    def learn_step(learner: Learner, ppo_samples: PPOSamples, amp: AMPSamples | None,
                   old_std: jax.Array) -> tuple[Learner, LossTerms]:
        grads, terms = jax.grad(amp_ppo_loss, has_aux=True)(learner.params, nets, cfg, ppo_samples, amp,
                                                            learner.normalizer, old_std, mirror)
        # no motion prior: the normaliser stays as it is; split over devices, the device mean of the gradients and
        # terms and the normaliser's merge take two all-reduces
        amp_states = () if amp is None else (amp.policy_state, amp.expert_state)
        (grads, terms), stats = axis.reduce_and_merge((grads, terms), learner.normalizer, amp_states)
        learning_rate = optimizer.adapt_learning_rate(optimizer.learning_rate(learner.opt_state), terms.kl, cfg.ppo)
        updates, opt_state = opt.update(grads, optimizer.with_learning_rate(learner.opt_state, learning_rate),
                                        learner.params)
        params = optimizer.apply_std_floor(networks.with_mirror_symmetric_std(
            nets, optax.apply_updates(learner.params, updates)), nets.min_std)
        return Learner(params=params, opt_state=opt_state, normalizer=stats), terms

    return learn_step


def make_update(nets: AgentNetworks, opt: optax.GradientTransformation, cfg: Config,
                sample_expert_fn: SampleExpertFn, axis: DeviceAxis,
                mirror: MirrorMaps | None = None, sample_tempo_fn: SampleExpertFn | None = None) -> UpdateFn:
    """The learning phase of an iteration: ``cfg.ppo.num_epochs`` × ``num_minibatches`` optimiser steps.

    Each epoch reshuffles the ``B`` samples into minibatches of ``B/M``. Each minibatch step draws ``B/M``
    policy transitions from ``buffer`` and as many expert ones, takes the gradient of :func:`amp_ppo_loss`,
    adapts the learning rate from that minibatch's KL, applies it in the step, floors the std and merges the
    minibatch's policy and expert AMP states into the normaliser. ``old_std`` is the rollout's action std.

    It runs inside ``shard_map`` over ``axis`` (one device or more); ``samples`` and ``buffer`` are this
    device's: it shuffles its ``B/D`` samples into minibatches of ``B/(M·D)``, draws as many replay and expert
    transitions with its own keys, and :func:`make_learn_step` combines the devices' shares.

    With ``cfg.symmetry.discriminator`` (and ``mirror``) the policy and the expert transitions of each minibatch
    are joined by their mirror images (:func:`amp_jax.agents.symmetry.with_mirror_image`). With
    ``cfg.amp.enabled`` false no replay or expert transition is drawn and the loss has no discriminator terms.
    With ``cfg.amp.tempo_negatives``, ``sample_tempo_fn`` draws as many clip transitions replayed at other rates
    (mirrored likewise), which the loss scores as the policy's.
    """
    num_minibatches, minibatch_size = cfg.ppo.num_minibatches, cfg.minibatch_size // axis.size
    learn_step = make_learn_step(nets, opt, cfg, axis, mirror)
    mirror_transitions = mirror is not None and cfg.symmetry.discriminator

    def minibatch_step(learner: Learner, xs: tuple[PPOSamples, jax.Array], buffer: ReplayBuffer,
                       old_std: jax.Array) -> tuple[Learner, LossTerms]:
        ppo_samples, key = xs
        if not cfg.amp.enabled:
            return learn_step(learner, ppo_samples, None, old_std)
        device_key = axis.per_device_key(key)
        k_policy, k_expert = jax.random.split(device_key)
        policy_s, policy_next = replay_buffer.sample(buffer, k_policy, minibatch_size)
        expert_s, expert_next = sample_expert_fn(k_expert, minibatch_size)
        transitions = [policy_s, policy_next, expert_s, expert_next]
        if cfg.amp.tempo_negatives:  # its own key: the other draws are those of a run without it
            transitions += sample_tempo_fn(jax.random.fold_in(device_key, TEMPO_KEY), minibatch_size)
        if mirror_transitions:
            transitions = [symmetry.with_mirror_image(x, mirror.amp_obs) for x in transitions]
        amp = AMPSamples(*transitions)
        return learn_step(learner, ppo_samples, amp, old_std)

    def epoch(learner: Learner, key: jax.Array, samples: PPOSamples, buffer: ReplayBuffer,
              old_std: jax.Array) -> tuple[Learner, LossTerms]:
        k_perm, k_amp = jax.random.split(key)
        order = jax.random.permutation(axis.per_device_key(k_perm), samples.advantage.shape[0])
        shuffled = jax.tree.map(lambda x: x[order].reshape((num_minibatches, minibatch_size) + x.shape[1:]),
                                samples)
        return jax.lax.scan(lambda c, xs: minibatch_step(c, xs, buffer, old_std), learner,
                            (shuffled, jax.random.split(k_amp, num_minibatches)))

    def update(learner: Learner, samples: PPOSamples, buffer: ReplayBuffer, old_std: jax.Array,
               key: jax.Array) -> tuple[Learner, LossTerms]:
        return jax.lax.scan(lambda c, k: epoch(c, k, samples, buffer, old_std), learner,
                            jax.random.split(key, cfg.ppo.num_epochs))

    return update


RolloutFn = Callable[[Env, AgentParams, EnvState, jax.Array], tuple[EnvState, Rollout]]
"""``(env, params, env_state [N/D], key) -> (env_state [N/D], rollout [T, N/D])``."""


def make_rollout(nets: AgentNetworks, num_envs: int, num_steps: int, axis: DeviceAxis,
                 noise_correlation: float = 0.0) -> RolloutFn:
    """The experience-collection phase of an iteration: ``num_steps`` control steps of the stochastic policy in a
    batched, auto-resetting env, as one ``lax.scan``.

    It runs inside ``shard_map`` over ``axis`` (one device or more). The action noise is drawn for the global
    ``[num_envs, A]`` batch and this device's rows are sliced from it, so env ``i`` sees the same noise on any
    device count. With ``noise_correlation`` ρ > 0 each env's standard normal noise is a first-order
    autoregressive process over the rollout's steps, ``ε_t = ρ ε_{t-1} + √(1-ρ²) w_t`` from a fresh standard
    normal ``ε_{-1}``: each ``ε_t`` is still standard normal, so the rollout's log-probabilities are those of
    independent noise. With ρ = 0 the draws are those of independent noise exactly.
    """
    rho = float(noise_correlation)
    innovation_scale = math.sqrt(1.0 - rho ** 2)

    def action_noise(step_key: jax.Array, action_size: int) -> jax.Array:
        """Standard normal noise of this device's envs, ``[N/D, A]``: the global draw's rows of these envs."""
        return axis.own_rows(jax.random.normal(step_key, (num_envs, action_size)))

    def rollout(env: Env, params: AgentParams, env_state: EnvState, key: jax.Array) -> tuple[EnvState, Rollout]:
        def env_step(carry: tuple[EnvState, jax.Array], step_key: jax.Array
                     ) -> tuple[tuple[EnvState, jax.Array], Rollout]:
            env_state, previous_noise = carry
            mean = networks.policy_mean(nets, params, env_state.obs["state"])
            noise = action_noise(step_key, mean.shape[-1])
            if rho > 0:
                noise = rho * previous_noise + innovation_scale * noise
            action = mean + params.action_std * noise
            next_state = env.step(env_state, action)
            done = next_state.done
            info = next_state.info
            amp_next = jnp.where(done[:, None] > 0, info[TERMINAL_AMP_OBS], info["amp_obs"])
            zeros = jnp.zeros_like(done)
            return (next_state, noise), Rollout(
                state_obs=env_state.obs["state"], privileged_obs=env_state.obs["privileged_state"],
                action=action, action_mean=mean,
                log_prob=networks.gaussian_log_prob(action, mean, params.action_std),
                value=networks.value(nets, params, env_state.obs["privileged_state"]),
                task_reward=next_state.reward, done=done, truncation=info["truncation"],
                amp_state=env_state.info["amp_obs"], amp_next_state=amp_next,
                episode_return=info.get(TERMINAL_EPISODE_RETURN, zeros),
                episode_length=info.get(TERMINAL_EPISODE_LENGTH, zeros).astype(jnp.float32),
                reward_terms={name: value for name, value in next_state.metrics.items()
                              if name.startswith(REWARD_TERM_PREFIX)})

        # Its own key, so that the steps' draws are those of a run with ρ = 0.
        first_noise = action_noise(jax.random.fold_in(key, NOISE_START_KEY), params.action_std.shape[-1])
        (env_state, _), data = jax.lax.scan(env_step, (env_state, first_noise), jax.random.split(key, num_steps))
        return env_state, data

    return rollout



def make_train_step(env: Env, cfg: Config, sample_expert_fn: SampleExpertFn, mesh: Mesh | None = None,
                    mirror: MirrorMaps | None = None, sample_tempo_fn: SampleExpertFn | None = None
                    ) -> tuple[Callable[[jax.Array], TrainingState],
                               Callable[[TrainingState], tuple[TrainingState, dict[str, jax.Array]]]]:
    """``(init_fn, train_step)`` for a batched, auto-resetting ``env`` of ``cfg.env.num_envs`` envs.

    Args:
      env: ``reset(keys [N, 2]) -> State [N]``, ``step(State [N], action [N, A]) -> State [N]``; obs dict with
        ``"state"`` and ``"privileged_state"``; ``info`` with ``"amp_obs"``, ``"terminal_amp_obs"``,
        ``"truncation"`` (and optionally ``"terminal_episode_return"`` / ``"terminal_episode_length"``).
      cfg: the run configuration (``networks``, ``ppo``, ``amp``, ``env.num_envs``).
      sample_expert_fn: ``(key, batch) -> (s, s_next)``, each ``[batch, F]``.
      mesh: a 1-D mesh over axis :data:`~amp_jax.agents.distributed.AXIS` to split the iteration over
        (see :mod:`amp_jax.agents.distributed`); None: the first device alone. One program for any count: the
        iteration runs under ``shard_map`` on a mesh of one device too.
      mirror: the env's mirror maps, needed when ``cfg.symmetry`` asks for any mirrored samples.
      sample_tempo_fn: ``(key, batch) -> (s, s_next)``: clip transitions replayed at other rates, needed when
        ``cfg.amp.tempo_negatives`` (:func:`amp_jax.motion.library.sample_replayed_transitions`).
    Returns:
      ``init_fn(key) -> TrainingState`` and ``train_step(state) -> (state, metrics)``, both jitted. The state's
      env state and replay rows are split over the mesh's devices and the rest is replicated.
    Raises:
      ConfigError: envs, minibatch or replay buffer do not split evenly over the mesh's devices,
        ``cfg.symmetry`` asks for mirrored samples of an env without mirror maps, or ``cfg.amp`` asks for tempo
        negatives without ``sample_tempo_fn``.
    """
    if cfg.amp.tempo_negatives and sample_tempo_fn is None:
        raise ConfigError("config", "amp.tempo_negative_weight", cfg.amp.tempo_negative_weight,
                          "0: this run has no sampler of replayed clip transitions")
    if cfg.symmetry.enabled and mirror is None:
        field = next(f for f in ("ppo_augmentation", "mirror_loss_coef", "discriminator", "equivariant_networks")
                     if getattr(cfg.symmetry, f))
        raise ConfigError("config", f"symmetry.{field}", getattr(cfg.symmetry, field),
                          "off: this env has no mirror maps")
    mesh = distributed.make_mesh(1) if mesh is None else mesh
    distributed.check_divisible(cfg, mesh.size)
    axis = DeviceAxis(mesh.size)
    nets = networks.make_networks(cfg.networks, env.action_size,
                                  mirror if cfg.symmetry.equivariant_networks else None)
    opt = optimizer.make_optimizer(cfg.ppo, cfg.amp)
    num_envs, num_steps = cfg.env.num_envs, cfg.ppo.num_steps
    update = make_update(nets, opt, cfg, sample_expert_fn, axis, mirror, sample_tempo_fn)
    rollout = make_rollout(nets, num_envs, num_steps, axis, cfg.ppo.action_noise_correlation)

    def init_fn(key: jax.Array) -> TrainingState:
        k_params, k_env, k_next = jax.random.split(key, 3)
        env_state = env.reset(jax.random.split(k_env, num_envs))
        amp_size = env_state.info["amp_obs"].shape[-1]
        params = networks.init_params(nets, k_params, env_state.obs["state"].shape[-1],
                                      env_state.obs["privileged_state"].shape[-1], amp_size)
        return TrainingState(params=params, opt_state=opt.init(params),
                             normalizer=normalizer.init(amp_size, cfg.amp.normalizer_epsilon),
                             replay_buffer=replay_buffer.init(cfg.amp.replay_buffer_size, amp_size),
                             env_state=env_state, key=k_next, iteration=jnp.zeros((), jnp.int32))

    def train_step(state: TrainingState) -> tuple[TrainingState, dict[str, jax.Array]]:
        """One iteration: the body every device runs on its share (inside ``shard_map``)."""
        key, k_rollout, k_update = jax.random.split(state.key, 3)
        params = state.params
        env_state, data = rollout(axis.local_env(env, num_envs // axis.size), params, state.env_state, k_rollout)

        if cfg.amp.enabled:
            # Rewards from the discriminator and normaliser as they were before this iteration's update.
            d = networks.discriminator_score(
                nets, params.discriminator, normalized_transition(state.normalizer, data.amp_state,
                                                                  data.amp_next_state, cfg))
            amp_reward = losses.amp_reward(d, cfg.amp.reward_coef)
            reward = losses.mix_rewards(amp_reward, data.task_reward, cfg.amp.task_reward_lerp)
            buffer = replay_buffer.insert(state.replay_buffer, _flatten_time(data.amp_state),
                                          _flatten_time(data.amp_next_state))
        else:
            reward, buffer = data.task_reward, state.replay_buffer
        reward = losses.bootstrap_time_outs(reward, data.value, data.truncation, cfg.ppo.gamma)
        last_value = networks.value(nets, params, env_state.obs["privileged_state"])
        advantages, returns = losses.generalized_advantages(reward, data.value, data.done, last_value,
                                                            cfg.ppo.gamma, cfg.ppo.gae_lambda)
        flat = jax.tree.map(_flatten_time, data)
        samples = PPOSamples.from_rollout(flat, axis.normalize_advantages(_flatten_time(advantages)),
                                          _flatten_time(returns))

        learner = Learner(params=params, opt_state=state.opt_state, normalizer=state.normalizer)
        learner, terms = update(learner, samples, buffer, params.action_std, k_update)

        finished = axis.sum(jnp.sum(data.done))

        def per_episode(x: jax.Array) -> jax.Array:  # mean over the episodes that ended, [T, N] -> []
            return axis.sum(jnp.sum(x * data.done)) / jnp.maximum(finished, 1.0)

        metrics = {f"loss/{name}": jnp.mean(getattr(terms, name))
                   for name in ("total", "surrogate", "value", "entropy", "discriminator", "grad_penalty", "tempo",
                                "mirror")
                   if getattr(terms, name) is not None}
        metrics.update({name: axis.mean(jnp.mean(value)) for name, value in data.reward_terms.items()})
        if cfg.amp.enabled:
            metrics.update({"amp/d_expert": jnp.mean(terms.d_expert), "amp/d_policy": jnp.mean(terms.d_policy),
                            "reward/amp": axis.mean(jnp.mean(amp_reward))})
            if terms.d_tempo is not None:
                metrics["amp/d_tempo"] = jnp.mean(terms.d_tempo)
        metrics.update({
            "policy/kl": jnp.mean(terms.kl),
            "policy/mean_std": jnp.mean(learner.params.action_std),
            "optim/learning_rate": optimizer.learning_rate(learner.opt_state),
            "reward/task": axis.mean(jnp.mean(data.task_reward)),
            "episode/finished": finished,
            "episode/return": per_episode(data.episode_return),
            "episode/length": per_episode(data.episode_length),
        })
        new_state = TrainingState(params=learner.params, opt_state=learner.opt_state, normalizer=learner.normalizer,
                                  replay_buffer=buffer, env_state=env_state, key=key,
                                  iteration=state.iteration + 1)
        return new_state, metrics

    specs = distributed.state_specs(jax.eval_shape(init_fn, jax.random.key(0)))
    # check_vma off: the auto-reset's lax.cond has branches whose outputs differ in device-variance (a reset
    # that ignores its keys for some fields); replication of the P() outputs holds by construction (pmean'd
    # gradients, psum'd statistics) and is tested.
    sharded_step = jax.shard_map(train_step, mesh=mesh, in_specs=(specs,), out_specs=(specs, P()),
                                 check_vma=False)
    state_shardings = distributed.shardings(mesh, specs)
    # The shardings are pinned, in and out: a state restored from a checkpoint and a fresh one arrive alike, and
    # zero-size leaves (MJX data has many, e.g. [N, 0] for absent activations and tendons) do not come back
    # replicated instead of split; either would miss jit's cache and compile the whole iteration again.
    return (jax.jit(init_fn, out_shardings=state_shardings),
            jax.jit(sharded_step, in_shardings=(state_shardings,),
                    out_shardings=(state_shardings, NamedSharding(mesh, P())), donate_argnums=0))
