"""The project's auto-reset wrapper on a tiny synthetic env, cross-checked against a plain Python loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.envs.base import Env, State
from brax.envs.wrappers.training import VmapWrapper

from amp_jax.envs import wrappers

EPISODE_CAP = 5


class CounterEnv(Env):
    """A walker whose position grows by the action; ends at a random length in [2, 5] or a time-out at 5.

    amp_obs = 43 copies of the position; reward = the action; the reset position is random.
    """

    def reset(self, rng):
        k_pos, k_len = jax.random.split(rng)
        pos = jax.random.uniform(k_pos, (), minval=-1.0, maxval=1.0)
        info = {"amp_obs": jnp.full((43,), pos), "t": jnp.zeros((), jnp.int32),
                "limit": jax.random.randint(k_len, (), 2, EPISODE_CAP + 1), "truncation": jnp.zeros(())}
        return State(pipeline_state=pos, obs={"state": pos[None]}, reward=jnp.zeros(()), done=jnp.zeros(()),
                     metrics={"pos": pos}, info=info)

    def step(self, state, action):
        pos = state.pipeline_state + action[0]
        t = state.info["t"] + 1
        timeout = t >= EPISODE_CAP
        done = (t >= state.info["limit"]) | timeout
        info = dict(state.info, amp_obs=jnp.full((43,), pos), t=t, truncation=timeout.astype(jnp.float32))
        return state.replace(pipeline_state=pos, obs={"state": pos[None]}, reward=action[0],
                             done=done.astype(jnp.float32), metrics={"pos": pos}, info=info)

    @property
    def observation_size(self):
        return {"state": (1,)}

    @property
    def action_size(self):
        return 1

    @property
    def backend(self):
        return "none"


NUM_ENVS, NUM_STEPS = 6, 24


@pytest.fixture(scope="module")
def rollout():
    env = wrappers.AutoResetWrapper(VmapWrapper(CounterEnv()))
    actions = jax.random.uniform(jax.random.PRNGKey(3), (NUM_STEPS, NUM_ENVS, 1))

    @jax.jit
    def run(keys):
        state = env.reset(keys)

        def body(s, a):
            nxt = env.step(s, a)
            return nxt, (s.info["amp_obs"], nxt)

        _, (before, states) = jax.lax.scan(body, state, actions)
        return state, before, states

    first, before, states = run(jax.random.split(jax.random.PRNGKey(0), NUM_ENVS))
    return jax.device_get((first, before, states, actions)), run


def test_matches_python_loop(rollout):
    (first, before, states, actions), _ = rollout
    a = np.asarray(actions[..., 0])
    for env in range(NUM_ENVS):
        pos, t, ret = float(first.pipeline_state[env]), 0, 0.0
        limit = int(first.info["limit"][env])
        for step in range(NUM_STEPS):
            assert before[step, env, 0] == pytest.approx(pos, abs=1e-6)
            pos, t, ret = pos + a[step, env], t + 1, ret + a[step, env]
            done = t >= limit or t >= EPISODE_CAP
            assert states.done[step, env] == float(done)
            assert states.info["truncation"][step, env] == float(t >= EPISODE_CAP)
            assert states.reward[step, env] == pytest.approx(a[step, env], abs=1e-6)
            assert states.metrics["pos"][step, env] == pytest.approx(pos, abs=1e-5)
            # terminal AMP obs is the state the step ended in, before any reset
            np.testing.assert_allclose(states.info["terminal_amp_obs"][step, env], pos, atol=1e-5)
            if done:
                assert states.info["terminal_episode_return"][step, env] == pytest.approx(ret, abs=1e-5)
                assert states.info["terminal_episode_length"][step, env] == t
                # the next state is a fresh reset: position in [-1, 1], step 0, its own amp_obs
                pos = float(states.pipeline_state[step, env])
                assert -1.0 <= pos <= 1.0 and states.info["t"][step, env] == 0
                np.testing.assert_allclose(states.info["amp_obs"][step, env], pos)
                np.testing.assert_allclose(states.obs["state"][step, env, 0], pos)
                t, ret, limit = 0, 0.0, int(states.info["limit"][step, env])
            assert states.info["episode_return"][step, env] == pytest.approx(ret, abs=1e-5)
            assert states.info["episode_length"][step, env] == t


def test_resets_are_fresh_and_deterministic(rollout):
    (first, _, states, _), run = rollout
    done = states.done.astype(bool)
    assert done.sum() >= NUM_ENVS * 3
    reset_positions = states.pipeline_state[done]
    # fresh randomness: no reset lands on the env's first state again, and resets differ from each other
    assert len(np.unique(np.round(reset_positions, 6))) == len(reset_positions)
    assert not np.isin(np.round(reset_positions, 6), np.round(first.pipeline_state, 6)).any()
    _, _, again = jax.device_get(run(jax.random.split(jax.random.PRNGKey(0), NUM_ENVS)))
    np.testing.assert_array_equal(again.pipeline_state, states.pipeline_state)


def test_random_initial_progress_only_at_first_reset():
    env = wrappers.RandomInitialProgressWrapper(wrappers.AutoResetWrapper(VmapWrapper(CounterEnv())),
                                                max_episode_steps=667, step_key="t")
    state = jax.jit(env.reset)(jax.random.split(jax.random.PRNGKey(1), 256))
    t = np.asarray(state.info["t"])
    assert t.min() >= 0 and t.max() < 667 and len(np.unique(t)) > 100


def _run_with_reset_batch(reset_batch_size: int, num_envs: int = 8, num_steps: int = 40):
    """``num_steps`` steps of ``num_envs`` CounterEnvs under the auto-reset with ``reset_batch_size``: every
    state, and the inner env's own step of each state (before any reset)."""
    inner = VmapWrapper(CounterEnv())
    env = wrappers.AutoResetWrapper(inner, reset_batch_size)
    actions = jax.random.uniform(jax.random.PRNGKey(4), (num_steps, num_envs, 1))

    @jax.jit
    def run(keys):
        def body(s, a):
            plain = inner.step(s.replace(info={k: v for k, v in s.info.items() if k in ("amp_obs", "t", "limit",
                                                                                        "truncation")}), a)
            return env.step(s, a), (env.step(s, a), plain)

        return jax.lax.scan(body, env.reset(keys), actions)[1]

    return jax.device_get(run(jax.random.split(jax.random.PRNGKey(9), num_envs)))


def test_gathered_resets_give_the_whole_batch_reset_bit_for_bit():
    """Steps where none, at most 2 and more than 2 of 8 envs finish: the gathered reset of 2 (with its fallback)
    and the whole-batch reset give identical states; envs that did not finish are exactly the inner env's step."""
    whole, _ = _run_with_reset_batch(0)
    gathered, plain = _run_with_reset_batch(2)
    finished = whole.done.sum(axis=1)
    assert (finished == 0).any() and ((finished >= 1) & (finished <= 2)).any() and (finished > 2).any()
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(whole), jax.tree.leaves(gathered)):
        np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))
    kept = ~gathered.done.astype(bool)
    np.testing.assert_array_equal(gathered.pipeline_state[kept], plain.pipeline_state[kept])
    np.testing.assert_array_equal(gathered.info["t"][kept], plain.info["t"][kept])
    np.testing.assert_array_equal(gathered.info["limit"][kept], plain.info["limit"][kept])
    # finished envs start afresh: step 0, a new position and limit drawn from their own keys
    done = gathered.done.astype(bool)
    assert np.all(gathered.info["t"][done] == 0)
    assert not np.isin(np.round(gathered.pipeline_state[done], 6), np.round(plain.pipeline_state[done], 6)).any()


def test_reset_rows_needs_a_batching_wrapper():
    with pytest.raises(TypeError, match="VmapWrapper"):
        wrappers.reset_rows(CounterEnv(), jnp.zeros((2, 2), jnp.uint32), jnp.arange(2))
