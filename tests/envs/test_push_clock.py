"""The per-env push clock (``info["push_countdown"]``): its countdown by hand, its draw at reset, that it goes on
across the auto-reset, and, over a rollout of the training env (domain randomisation, staggered episodes,
auto-reset), that each env is pushed once per interval at points spread over its episodes."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.envs.base import Env, State
from brax.envs.wrappers.training import VmapWrapper

from amp_jax.config import Config
from amp_jax.envs import push_clock, wrappers
from amp_jax.envs.a1_amp import A1AmpEnv
from amp_jax.envs.push_clock import PUSH_COUNTDOWN

INTERVAL_S, EPISODE_S = 0.36, 0.9
"""Push interval and episode length of the rollout: 12 and 30 control steps of 0.03 s."""
NUM_ENVS, NUM_STEPS = 8, 360
"""The rollout: 8 envs × 360 steps (10.8 s), about 30 pushes and 12 episodes per env."""


@pytest.fixture(scope="module")
def small_cfg():
    cfg = Config()
    env_cfg = dataclasses.replace(cfg.env, num_envs=NUM_ENVS, push_interval_s=INTERVAL_S, episode_length_s=EPISODE_S,
                                  rsi_probability=0.0)
    assert env_cfg.push_interval_steps == 12 and env_cfg.max_episode_steps == 30
    return dataclasses.replace(cfg, env=env_cfg)


# ----------------------------------------------------------------------------------------------------------
# The clock by hand (no physics)


def test_countdown_by_hand():
    interval = 3
    countdown = jnp.int32(2)
    due_steps, values = [], []
    for step in range(1, 10):
        due, countdown = push_clock.tick(countdown, interval)
        values.append(int(countdown))
        if due:
            due_steps.append(step)
    assert due_steps == [2, 5, 8]  # started at 2: due when it reaches 0, then every `interval` steps
    assert values == [1, 3, 2, 1, 3, 2, 1, 3, 2]
    # batched, any start in [1, interval]: due on steps c, c + interval, ...; a zeroed clock fires at once
    starts = jnp.array([1, 2, 3, 0], jnp.int32)
    due, nxt = push_clock.tick(starts, interval)
    np.testing.assert_array_equal(due, [True, False, False, True])
    np.testing.assert_array_equal(nxt, [3, 1, 2, 3])
    assert nxt.dtype == jnp.int32


def test_initial_countdown_is_uniform_over_the_interval(small_cfg):
    draw = jax.jit(jax.vmap(lambda k: push_clock.initial_countdown(small_cfg.env, k)))
    draws = np.asarray(draw(jax.random.split(jax.random.PRNGKey(0), 6000)))
    assert draws.dtype == np.int32 and draws.min() == 1 and draws.max() == 12
    counts = np.bincount(draws, minlength=13)[1:]
    np.testing.assert_allclose(counts / len(draws), 1 / 12, atol=0.015)


def test_push_robots_off_keeps_the_state_shape_and_never_pushes(small_cfg):
    on = A1AmpEnv(small_cfg.env)
    off = A1AmpEnv(dataclasses.replace(small_cfg.env, push_robots=False))
    key = jax.random.PRNGKey(1)
    shape_on, shape_off = jax.eval_shape(on.reset, key), jax.eval_shape(off.reset, key)
    assert jax.tree.structure(shape_on) == jax.tree.structure(shape_off)
    assert shape_off.info[PUSH_COUNTDOWN].shape == () and shape_off.info[PUSH_COUNTDOWN].dtype == jnp.int32
    qvel = jnp.full((18,), 0.25)
    np.testing.assert_array_equal(push_clock.push(off.cfg, qvel, jnp.array(True), key), qvel)
    pushed = np.asarray(push_clock.push(on.cfg, qvel, jnp.array(True), key))
    assert np.all(pushed[:2] != 0.25) and np.all(np.abs(pushed[:2]) <= on.cfg.max_push_vel_xy)
    np.testing.assert_array_equal(pushed[2:], 0.25)
    np.testing.assert_array_equal(push_clock.push(on.cfg, qvel, jnp.array(False), key), qvel)


def test_a_clock_started_at_the_full_interval_pushes_on_its_multiples():
    env = Config().env
    assert env.push_interval_steps == 500
    steps = 1100
    keys = jax.random.split(jax.random.PRNGKey(2), steps)

    def tick(countdown, _):
        due, countdown = push_clock.tick(countdown, env.push_interval_steps)
        return countdown, due

    _, due = jax.lax.scan(tick, jnp.int32(env.push_interval_steps), None, length=steps)
    qvel = jnp.full((18,), 5.0)
    pushed = np.asarray(jax.jit(jax.vmap(lambda d, k: push_clock.push(env, qvel, d, k)))(due, keys))
    changed = np.flatnonzero(np.any(pushed != 5.0, axis=1)) + 1
    np.testing.assert_array_equal(changed, [500, 1000])
    assert np.all(np.abs(pushed[changed - 1, :2]) <= env.max_push_vel_xy)
    np.testing.assert_array_equal(pushed[changed - 1, 2:], 5.0)


# ----------------------------------------------------------------------------------------------------------
# Across the auto-reset, on a synthetic env (no physics)

LONG_INTERVAL = 1000
"""So long that a countdown redrawn at a reset would almost surely not continue the stepped one."""


class ClockEnv(Env):
    """An env with only a push clock (drawn in [1, LONG_INTERVAL] at reset) whose episodes last 3 steps."""

    def reset(self, rng):
        info = {"amp_obs": jnp.zeros((43,)), "t": jnp.zeros((), jnp.int32), "truncation": jnp.zeros(()),
                PUSH_COUNTDOWN: jax.random.randint(rng, (), 1, LONG_INTERVAL + 1, dtype=jnp.int32)}
        return State(pipeline_state=jnp.zeros(()), obs={"state": jnp.zeros((1,))}, reward=jnp.zeros(()),
                     done=jnp.zeros(()), metrics={}, info=info)

    def step(self, state, action):
        _, countdown = push_clock.tick(state.info[PUSH_COUNTDOWN], LONG_INTERVAL)
        t = state.info["t"] + 1
        info = dict(state.info, t=t, **{PUSH_COUNTDOWN: countdown})
        return state.replace(done=(t >= 3).astype(jnp.float32), info=info)

    @property
    def observation_size(self):
        return {"state": (1,)}

    @property
    def action_size(self):
        return 1

    @property
    def backend(self):
        return "none"


def test_the_clock_survives_the_auto_reset():
    env = wrappers.AutoResetWrapper(VmapWrapper(ClockEnv()))
    state = jax.jit(env.reset)(jax.random.split(jax.random.PRNGKey(2), 16))
    start = np.asarray(state.info[PUSH_COUNTDOWN])
    assert len(np.unique(start)) > 8
    step = jax.jit(env.step)
    for n in range(1, 10):
        state = step(state, jnp.zeros((16, 1)))
        np.testing.assert_array_equal(state.done, float(n % 3 == 0))
        np.testing.assert_array_equal(state.info["t"], n % 3)  # the episode clock restarts ...
        np.testing.assert_array_equal(state.info[PUSH_COUNTDOWN], start - n)  # ... the push clock goes on


# ----------------------------------------------------------------------------------------------------------
# The training env: a rollout with random actions, and a drop test of the push itself


@pytest.fixture(scope="module")
def training_env(small_cfg):
    """(jitted batched reset, jitted rollout(state, actions [T, N, 12]) -> records [T, N, ...]) of the env
    ``make_amp_training_env`` builds (domain randomisation, auto-reset, staggered first episodes)."""
    env = wrappers.make_amp_training_env(small_cfg, None, jax.random.PRNGKey(0))

    @jax.jit
    def rollout(state, actions):
        def body(s, a):
            nxt = env.step(s, a)
            record = {"prev_countdown": s.info[PUSH_COUNTDOWN], "countdown": nxt.info[PUSH_COUNTDOWN],
                      "prev_episode_step": s.info["episode_step"], "done": nxt.done, "prev_rng": s.info["rng"],
                      "base_vel_xy": nxt.pipeline_state.qvel[:, :2]}
            return nxt, record

        return jax.lax.scan(body, state, actions)[1]

    return jax.jit(env.reset), rollout


@pytest.fixture(scope="module")
def random_rollout(training_env):
    reset, rollout = training_env
    state = reset(jax.random.split(jax.random.PRNGKey(3), NUM_ENVS))
    actions = jax.random.uniform(jax.random.PRNGKey(4), (NUM_STEPS, NUM_ENVS, 12), minval=-1.0, maxval=1.0)
    return state, actions, jax.device_get(rollout(state, actions))


def push_statistics(first_countdown, records, interval, episode_steps):
    """Per-env push steps, intervals and episode phases of a rollout's records (pushes = countdown wraps)."""
    pushed = records["prev_countdown"] <= 1  # the clock is due on this step
    # the countdown is the clock's own: it wraps to `interval` where it fires, else counts down by one
    np.testing.assert_array_equal(records["countdown"], np.where(pushed, interval, records["prev_countdown"] - 1))
    np.testing.assert_array_equal(records["prev_countdown"][0], first_countdown)
    envs = []
    for e in range(pushed.shape[1]):
        steps = np.flatnonzero(pushed[:, e]) + 1  # control steps of the env's life, from 1
        phases = records["prev_episode_step"][steps - 1, e] + 1  # the push's step of its episode, in [1, L]
        envs.append({"steps": steps, "gaps": np.diff(steps), "phase": phases / episode_steps})
    return envs


def test_each_env_is_pushed_once_per_interval_spread_over_its_episodes(small_cfg, random_rollout):
    state, _, r = random_rollout
    interval, episode_steps = small_cfg.env.push_interval_steps, small_cfg.env.max_episode_steps
    first = np.asarray(state.info[PUSH_COUNTDOWN])
    assert np.all((first >= 1) & (first <= interval)) and len(np.unique(first)) >= 4  # envs spread
    done = r["done"].astype(bool)
    assert done.sum(axis=0).min() >= 8  # every env lived through many episodes
    envs = push_statistics(first, r, interval, episode_steps)
    for e, stats in enumerate(envs):
        assert stats["steps"][0] == first[e]
        rate = len(stats["steps"]) / NUM_STEPS
        assert rate == pytest.approx(1 / interval, rel=0.1), (e, rate)
        assert np.mean(stats["gaps"]) == pytest.approx(interval, rel=0.1)
        np.testing.assert_array_equal(stats["gaps"], interval)  # exactly, across every episode end
    # phases of the pushes within their episodes cover the whole episode
    phase = np.concatenate([s["phase"] for s in envs])
    quarters = np.bincount(np.minimum((phase * 4).astype(int), 3), minlength=4) / len(phase)
    assert quarters.min() > 0.15, quarters
    assert np.std(phase) > 0.2  # a uniform phase has 0.29; the old episode-clock schedule had a single phase
    # and each env's own pushes land at several phases of its episodes
    assert all(len(np.unique(s["phase"])) >= 3 for s in envs)


def test_the_countdown_goes_on_across_episode_ends(small_cfg, random_rollout):
    _, _, r = random_rollout
    done = r["done"].astype(bool)
    assert done.sum() > 50
    interval = small_cfg.env.push_interval_steps
    expected = np.where(r["prev_countdown"] <= 1, interval, r["prev_countdown"] - 1)
    np.testing.assert_array_equal(r["countdown"][done], expected[done])


def test_rollout_is_deterministic(training_env, random_rollout):
    _, rollout = training_env
    state, actions, r = random_rollout
    again = jax.device_get(rollout(state, actions))
    for name in ("countdown", "base_vel_xy", "done"):
        np.testing.assert_array_equal(again[name], r[name])


def test_the_push_sets_the_base_velocity_on_the_due_step(small_cfg, training_env):
    """Robots dropped from 0.8 m at rest, env i's clock due on step i + 1: in free flight the base's world xy
    velocity stays 0 until that step and then is the push's draw."""
    reset, rollout = training_env
    state = reset(jax.random.split(jax.random.PRNGKey(5), NUM_ENVS))
    q0 = np.asarray(small_cfg.env.default_joint_pos, np.float32)
    qpos = jnp.tile(jnp.asarray(np.concatenate([[0, 0, 0.8, 1, 0, 0, 0], q0]), jnp.float32), (NUM_ENVS, 1))
    data = state.pipeline_state.replace(qpos=qpos, qvel=jnp.zeros((NUM_ENVS, 18)))
    due_step = np.arange(1, NUM_ENVS + 1)
    info = dict(state.info, episode_step=jnp.zeros(NUM_ENVS, jnp.int32),
                **{PUSH_COUNTDOWN: jnp.asarray(due_step, jnp.int32)})
    state = state.replace(pipeline_state=data, info=info)
    r = jax.device_get(rollout(state, jnp.zeros((NUM_STEPS, NUM_ENVS, 12))))
    limit = small_cfg.env.max_push_vel_xy
    for e in range(NUM_ENVS):
        t = due_step[e] - 1  # index of the pushed step
        assert not r["done"][: t + 1, e].any()
        np.testing.assert_allclose(r["base_vel_xy"][:t, e], 0.0, atol=1e-3)
        k_push = jax.random.split(r["prev_rng"][t, e], 4)[0]
        drawn = np.asarray(jax.random.uniform(k_push, (2,), minval=-limit, maxval=limit))
        assert np.linalg.norm(drawn) > 0.05
        np.testing.assert_allclose(r["base_vel_xy"][t, e], drawn, atol=0.02)
