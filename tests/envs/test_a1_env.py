"""The A1 env under jit + vmap, with the project's auto-reset: MJX against C MuJoCo, termination, time-out,
terminal AMP observations, and a 10^4-step randomised rollout (pushes, command resampling, no NaN)."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from brax.envs.wrappers.training import VmapWrapper

from amp_jax import a1
from amp_jax.config import Config
from amp_jax.envs import observations, rewards, wrappers
from amp_jax.envs.a1_amp import A1AmpEnv
from amp_jax.motion import load_motion_library

N = 4
ROLLOUT_ENVS, ROLLOUT_STEPS = 16, 625


@pytest.fixture(scope="module")
def cfg():
    return Config()


@pytest.fixture(scope="module")
def library(cfg):
    return load_motion_library(cfg.motion.resolved_files(), dt_amp=cfg.env.control_dt)


@pytest.fixture(scope="module")
def wrapped(cfg, library):
    """(core env, jitted batched reset, jitted batched step) of AutoResetWrapper(VmapWrapper(env)), N envs."""
    env = A1AmpEnv(cfg.env, library)
    batched = wrappers.AutoResetWrapper(VmapWrapper(env))
    return env, jax.jit(batched.reset), jax.jit(batched.step)


def _standing(state, height=0.28, episode_step=0):
    """The batched state moved to the default pose at ``height``, at rest, ``episode_step`` steps in."""
    q0 = np.tile([0.0, 0.9, -1.8], 4)
    qpos = jnp.tile(jnp.asarray(np.concatenate([[0, 0, height, 1, 0, 0, 0], q0]), jnp.float32), (N, 1))
    data = state.pipeline_state.replace(qpos=qpos, qvel=jnp.zeros((N, 18)))
    info = dict(state.info, episode_step=jnp.full((N,), episode_step, jnp.int32))
    return state.replace(pipeline_state=data, info=info)


def test_shapes_dtypes_and_determinism(wrapped):
    _, reset, step = wrapped
    state = reset(jax.random.split(jax.random.PRNGKey(0), N))
    assert state.obs[observations.POLICY_OBS_KEY].shape == (N, 42)
    assert state.obs[observations.CRITIC_OBS_KEY].shape == (N, 48)
    assert state.info["amp_obs"].shape == (N, 43) and state.info["terminal_amp_obs"].shape == (N, 43)
    assert state.reward.shape == state.done.shape == state.info["truncation"].shape == (N,)
    for leaf in jax.tree.leaves((state.obs, state.reward, state.done, state.info["amp_obs"])):
        assert leaf.dtype == jnp.float32
    actions = jax.random.uniform(jax.random.PRNGKey(1), (N, 12), minval=-1, maxval=1)
    a, b = step(state, actions), step(state, actions)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
    assert not np.allclose(a.obs[observations.CRITIC_OBS_KEY], state.obs[observations.CRITIC_OBS_KEY])
    assert set(a.metrics) == {"reward/tracking_lin_vel", "reward/tracking_ang_vel"}


def test_the_env_s_reward_constants_are_the_config_s():
    """Every kernel width (each narrower kernel's width is its own field) and the air-time target reach the reward
    terms."""
    env_cfg = dataclasses.replace(Config().env, tracking_sigma=0.3, tracking_sigma_fine=0.07,
                                  tracking_sigma_lateral=0.015, feet_air_time_target=0.3, rsi_probability=0.0)
    params = A1AmpEnv(env_cfg, None)._reward_params
    assert (params.tracking_sigma, params.tracking_sigma_fine, params.tracking_sigma_lateral) == (0.3, 0.07, 0.015)
    assert params.air_time_target == 0.3
    default = A1AmpEnv(dataclasses.replace(Config().env, rsi_probability=0.0), None)._reward_params
    assert default.air_time_target == rewards.AIR_TIME_TARGET == 0.5


def test_mjx_follows_c_mujoco(wrapped):
    """Same MJCF, initial state, PD law and gains, stepped in MJX (float32) and C MuJoCo (float64)."""
    env, reset, step = wrapped
    state = _standing(reset(jax.random.split(jax.random.PRNGKey(2), N)))
    actions = 0.2 * np.asarray(jax.random.uniform(jax.random.PRNGKey(3), (10, N, 12), minval=-1, maxval=1))
    m = env.mj_model
    datas = [mujoco.MjData(m) for _ in range(N)]
    for i, d in enumerate(datas):
        d.qpos[:], d.qvel[:] = np.asarray(state.pipeline_state.qpos[i]), 0.0
    kp = env.cfg.kp * np.asarray(state.info["kp_scale"])
    kd = env.cfg.kd * np.asarray(state.info["kd_scale"])
    q0 = env.cfg.default_joint_pos
    for t in range(actions.shape[0]):
        state = step(state, jnp.asarray(actions[t]))
        assert not np.any(state.done)
        for i, d in enumerate(datas):
            target = q0 + env.cfg.action_scale * actions[t, i]
            for _ in range(env.cfg.decimation):
                tau = kp[i] * (target - d.qpos[7:]) - kd[i] * d.qvel[6:]
                d.ctrl[:] = np.clip(tau, -a1.EFFORT_LIMIT, a1.EFFORT_LIMIT)
                mujoco.mj_step(m, d)
    c_qpos = np.stack([d.qpos for d in datas])
    np.testing.assert_allclose(np.asarray(state.pipeline_state.qpos)[:, :3], c_qpos[:, :3], atol=2e-3)
    np.testing.assert_allclose(np.asarray(state.pipeline_state.qpos)[:, 7:], c_qpos[:, 7:], atol=2e-2)
    # and the robot actually moved under those torques
    assert np.abs(c_qpos[:, 7:] - q0).max() > 0.03


def test_upside_down_terminates_and_keeps_the_terminal_amp_obs(wrapped):
    """Drop env 0 upside down from 0.2 m: it ends when its trunk reaches the floor, the others stand on."""
    _, reset, step = wrapped
    state = _standing(reset(jax.random.split(jax.random.PRNGKey(4), N)), height=0.30)
    qpos = state.pipeline_state.qpos.at[0, 2].set(0.2).at[0, 3:7].set(jnp.array([0.0, 1.0, 0.0, 0.0]))
    state = state.replace(pipeline_state=state.pipeline_state.replace(qpos=qpos))
    t = 0
    while t < 15 and not state.done[0]:
        before = state
        state = step(state, jnp.zeros((N, 12)))
        t += 1
    # free fall of 0.2 − 0.057 m takes ~0.17 s, i.e. 5 to 6 control steps
    assert 5 <= t <= 7, t
    np.testing.assert_array_equal(state.done, [1, 0, 0, 0])
    np.testing.assert_array_equal(state.info["truncation"], 0)
    terminal, fresh = np.asarray(state.info["terminal_amp_obs"]), np.asarray(state.info["amp_obs"])
    # env 0: the terminal features are the upside-down robot's: trunk on the floor, still falling ...
    assert 0.03 < terminal[0, observations.AMP_BASE_HEIGHT] < 0.08
    assert terminal[0, observations.AMP_BASE_HEIGHT] < before.info["amp_obs"][0, observations.AMP_BASE_HEIGHT]
    np.testing.assert_allclose(terminal[0, :12], np.tile([0.0, 0.9, -1.8], 4), atol=0.3)
    # ... while the state the policy acts from next is a new episode
    assert state.info["episode_step"][0] == 0 and fresh[0, observations.AMP_BASE_HEIGHT] > 0.2
    assert state.info["terminal_episode_length"][0] == t
    np.testing.assert_array_equal(terminal[1:], fresh[1:])


def test_time_out_after_667_steps(cfg, wrapped):
    assert cfg.env.max_episode_steps == math.ceil(20.0 / 0.03) == 667
    _, reset, step = wrapped
    state = _standing(reset(jax.random.split(jax.random.PRNGKey(5), N)), episode_step=665)
    state = step(state, jnp.zeros((N, 12)))
    np.testing.assert_array_equal(state.done, 0)
    np.testing.assert_array_equal(state.info["episode_step"], 666)
    state = step(state, jnp.zeros((N, 12)))
    np.testing.assert_array_equal(state.done, 1)
    np.testing.assert_array_equal(state.info["truncation"], 1)
    np.testing.assert_array_equal(state.info["episode_step"], 0)


@pytest.fixture(scope="module")
def rollout(cfg, library):
    """16 training envs (domain randomisation, pushes, auto-reset) × 625 random-action steps in one scan."""
    run_cfg = dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, num_envs=ROLLOUT_ENVS))
    env = wrappers.make_amp_training_env(run_cfg, library, jax.random.PRNGKey(0))

    @jax.jit
    def run(key):
        k_reset, k_actions = jax.random.split(key)
        state = env.reset(jax.random.split(k_reset, ROLLOUT_ENVS))

        def body(s, k):
            nxt = env.step(s, jax.random.uniform(k, (ROLLOUT_ENVS, 12), minval=-1.0, maxval=1.0))
            record = {"done": nxt.done, "reward": nxt.reward, "metrics": nxt.metrics, "obs": nxt.obs,
                      "qpos": nxt.pipeline_state.qpos, "qvel": nxt.pipeline_state.qvel,
                      "prev_step": s.info["episode_step"],
                      **{k: nxt.info[k] for k in ("truncation", "command", "episode_step", "amp_obs",
                                                  "terminal_amp_obs", "terminal_episode_length")}}
            return nxt, record

        first, _ = state, None
        _, records = jax.lax.scan(body, state, jax.random.split(k_actions, ROLLOUT_STEPS))
        return first.info["episode_step"], records

    return run, jax.device_get(run(jax.random.PRNGKey(7)))


def test_rollout_has_no_nan_and_is_reproducible(rollout):
    run, (first_steps, records) = rollout
    for name, leaf in jax.tree_util.tree_leaves_with_path(records):
        assert np.all(np.isfinite(leaf)), name
    assert len(np.unique(first_steps)) > 8  # staggered episode clocks
    again = jax.device_get(run(jax.random.PRNGKey(7)))[1]
    np.testing.assert_array_equal(again["qpos"], records["qpos"])


def test_rollout_episode_bookkeeping(cfg, rollout):
    _, (_, r) = rollout
    done = r["done"].astype(bool)
    assert done.sum() > 10
    # episode clocks: +1 per step, 0 right after an end; time-outs exactly when the clock reaches 667
    np.testing.assert_array_equal(r["episode_step"], np.where(done, 0, r["prev_step"] + 1))
    timed_out = r["prev_step"] + 1 >= cfg.env.max_episode_steps
    np.testing.assert_array_equal(r["truncation"].astype(bool), timed_out & done & (r["truncation"] > 0))
    assert np.all(done[timed_out])  # (random actions fall long before a time-out; tested on its own above)
    # commands change only at a reset or when the clock crosses a multiple of the resampling period
    changed = np.any(r["command"][1:] != r["command"][:-1], axis=-1)
    allowed = done[1:] | ((r["prev_step"][1:] + 1) % cfg.env.command_resample_steps == 0)
    assert np.all(allowed[changed]) and changed.sum() > 0
    # terminal AMP obs equal the next state's where nothing ended, and differ where an episode ended
    np.testing.assert_array_equal(r["terminal_amp_obs"][~done], r["amp_obs"][~done])
    assert np.all(np.any(r["terminal_amp_obs"][done] != r["amp_obs"][done], axis=-1))
    # the logged terms are the reward
    total = sum(r["metrics"].values())
    np.testing.assert_allclose(r["reward"], np.maximum(total, 0), rtol=1e-6)


def test_gathered_reset_of_the_training_env_is_the_whole_batch_reset_bit_for_bit(cfg, library):
    """On the randomised A1 training env (its own model row per env, RSI), resetting some rows by a gathered batch
    gives exactly those rows of the whole batch's reset; the RSI share of many gathered resets is the config's."""
    num_envs, rows = 64, jnp.array([3, 17, 40, 63, 64])  # 64: padding past the batch, clipped to the last env
    run_cfg = dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, num_envs=num_envs))
    autoreset = wrappers.make_amp_training_env(run_cfg, library, jax.random.PRNGKey(0))
    while not isinstance(autoreset, wrappers.AutoResetWrapper):
        autoreset = autoreset.env
    batched = autoreset.env  # brax's DomainRandomizationVmapWrapper
    keys = jax.random.split(jax.random.PRNGKey(11), num_envs)
    whole = jax.device_get(jax.jit(batched.reset)(keys))
    some = jax.device_get(jax.jit(wrappers.reset_rows, static_argnums=0)(batched, keys[jnp.minimum(rows, 63)],
                                                                          rows))
    picked = np.minimum(np.asarray(rows), num_envs - 1)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(whole), jax.tree.leaves(some)):
        np.testing.assert_array_equal(np.asarray(a)[picked], b, err_msg=jax.tree_util.keystr(path))
    # RSI share: a default-pose reset puts the base at exactly init_height, a clip frame anywhere else
    many_rows = jnp.arange(4096) % num_envs
    many = jax.jit(wrappers.reset_rows, static_argnums=0)(batched, jax.random.split(jax.random.PRNGKey(12), 4096),
                                                          many_rows)
    from_rsi = np.asarray(many.pipeline_state.qpos[:, 2]) != np.float32(cfg.env.init_height)
    p = cfg.env.rsi_probability
    assert abs(from_rsi.mean() - p) < 4 * math.sqrt(p * (1 - p) / 4096)


def test_starts_from_a_clip_can_track_that_clips_own_mean_velocity(cfg, library):
    """``rsi_command_from_clip``: the poses and the other draws are those of the plain reset; a share of the clip
    starts (the config's probability) takes the clip's mean velocity, clipped, as its command, and observes it."""
    env_cfg = dataclasses.replace(cfg.env, rsi_command_from_clip=0.5, add_noise=False)
    keys = jax.random.split(jax.random.PRNGKey(21), 2048)
    matched = jax.device_get(jax.jit(jax.vmap(A1AmpEnv(env_cfg, library).reset))(keys))
    plain_cfg = dataclasses.replace(env_cfg, rsi_command_from_clip=0.0)
    plain = jax.device_get(jax.jit(jax.vmap(A1AmpEnv(plain_cfg, library).reset))(keys))
    np.testing.assert_array_equal(matched.pipeline_state.qpos, plain.pipeline_state.qpos)
    np.testing.assert_array_equal(matched.pipeline_state.qvel, plain.pipeline_state.qvel)
    from_rsi = np.asarray(plain.pipeline_state.qpos[:, 2]) != np.float32(env_cfg.init_height)
    changed = np.any(matched.info["command"] != plain.info["command"], axis=1)
    assert not changed[~from_rsi].any()  # default-pose starts keep their drawn command
    share = changed[from_rsi].mean()
    assert abs(share - 0.5) < 4 * math.sqrt(0.25 / from_rsi.sum())
    # each new command is a clip's mean velocity, clipped to the ranges (computed here in NumPy)
    means = np.asarray(library.mean_command, np.float64)
    low = np.array([env_cfg.command_lin_vel_x[0], env_cfg.command_lin_vel_y[0], env_cfg.command_ang_vel_yaw[0]])
    high = np.array([env_cfg.command_lin_vel_x[1], env_cfg.command_lin_vel_y[1], env_cfg.command_ang_vel_yaw[1]])
    allowed = np.clip(means, low, high)
    allowed[np.linalg.norm(allowed[:, :2], axis=1) < env_cfg.min_command_norm, :2] = 0.0
    new = np.asarray(matched.info["command"])[changed]
    assert np.abs(new[:, None, :] - allowed[None]).max(axis=2).min(axis=1).max() < 1e-6
    # the start moves the way its command says: forward speed of the trunk against the commanded one
    base_vx = np.asarray(matched.obs[observations.CRITIC_OBS_KEY])[changed, 0] / env_cfg.obs_scale_lin_vel
    assert np.corrcoef(base_vx, new[:, 0])[0, 1] > 0.8
    scale = np.array([env_cfg.obs_scale_lin_vel, env_cfg.obs_scale_lin_vel, env_cfg.obs_scale_ang_vel])
    np.testing.assert_allclose(np.asarray(matched.obs[observations.CRITIC_OBS_KEY])[:, observations.CRITIC_COMMAND],
                               np.asarray(matched.info["command"]) * scale, rtol=1e-6)


HISTORY_LAGS, FILTER_HZ, CLIP, POLICY_HISTORY = (2, 5), 3.0, 1.5, 3


@pytest.fixture(scope="module")
def lagged_filtered_rollout(cfg, library):
    """6 training envs with ``env.amp_history_lags`` (2, 5), ``env.action_filter_hz`` 3, ``env.policy_history`` 3 and
    the gyroscope in the policy's observation, 10-step episodes, 40 steps of random actions in ±2 (the clip bound 1.5
    exercised): (the first state, the records [40, 6, ...]). One env compiled for the three features' tests."""
    num_envs, steps = 6, 40
    env_cfg = dataclasses.replace(cfg.env, num_envs=num_envs, amp_history_lags=HISTORY_LAGS,
                                  action_filter_hz=FILTER_HZ, policy_history=POLICY_HISTORY, episode_length_s=0.3,
                                  add_noise=False, policy_base_ang_vel=True,
                                  clip_actions=CLIP)
    run_cfg = dataclasses.replace(cfg, env=env_cfg)
    env = wrappers.make_amp_training_env(run_cfg, library, jax.random.PRNGKey(0))

    @jax.jit
    def run(key):
        k_reset, k_actions = jax.random.split(key)
        state = env.reset(jax.random.split(k_reset, num_envs))

        def body(s, k):
            action = jax.random.uniform(k, (num_envs, 12), minval=-2.0, maxval=2.0)
            nxt = env.step(s, action)
            return nxt, {"action": action, "done": nxt.done, "amp_obs": nxt.info["amp_obs"],
                         "terminal_amp_obs": nxt.info["terminal_amp_obs"],
                         "filtered": nxt.info["filtered_action"], "critic": nxt.obs[observations.CRITIC_OBS_KEY],
                         "qpos": nxt.pipeline_state.qpos, "last_action": nxt.info["last_action"],
                         "policy": nxt.obs[observations.POLICY_OBS_KEY]}

        return state, jax.lax.scan(body, state, jax.random.split(k_actions, steps))[1]

    first, records = jax.device_get(run(jax.random.PRNGKey(3)))
    assert records["done"].sum() >= num_envs  # 10-step episodes: every env restarted at least once
    return run_cfg, first, records


def test_amp_history_windows_hold_the_earlier_states_of_the_episode(lagged_filtered_rollout):
    """With ``env.amp_history_lags`` each AMP observation (and each terminal one) is the state's features, then
    those of the states that many steps earlier in its episode, the episode's first state standing in for the
    steps before it: checked against a plain loop over the recorded states, across time-outs and resets."""
    _, first_state, r = lagged_filtered_rollout
    first, done, amp_obs, terminal = first_state.info["amp_obs"], r["done"], r["amp_obs"], r["terminal_amp_obs"]
    (steps, num_envs), width = done.shape, observations.AMP_OBS_SIZE
    assert first.shape == (num_envs, width * 3) and amp_obs.shape == (steps, num_envs, width * 3)
    windows = np.concatenate([first[None], amp_obs])  # [T + 1, N, 3·43]: the states acted from
    current = windows[..., :width]
    np.testing.assert_array_equal(first[:, width:], np.tile(first[:, :width], 2))  # a reset repeats its state
    for n in range(num_envs):
        start = 0  # index of the current episode's first state
        for i in range(steps + 1):
            if i > 0 and done[i - 1, n]:
                # the terminal state's window: its features, then its episode's earlier states
                want = [terminal[i - 1, n, :width]] + [current[max(i - lag, start), n] for lag in HISTORY_LAGS]
                np.testing.assert_array_equal(terminal[i - 1, n], np.concatenate(want))
                start = i
            want = [current[i, n]] + [current[max(i - lag, start), n] for lag in HISTORY_LAGS]
            np.testing.assert_array_equal(windows[i, n], np.concatenate(want), err_msg=f"env {n}, state {i}")


def test_policy_history_holds_the_episode_s_earlier_observations(lagged_filtered_rollout):
    """With ``env.policy_history`` 3 each policy observation is this step's (the critic's without its base linear
    velocity: the gyroscope's angular velocity first) followed by those of the 3 steps before it in its episode,
    newest first, the episode's first standing in for the steps before it: checked against a plain loop over the
    recorded observations, across resets. A command an evaluation sets at an episode's first step is in the whole
    history."""
    run_cfg, first_state, r = lagged_filtered_rollout
    width = observations.policy_frame_size(run_cfg.env)
    assert width == observations.POLICY_OBS_SIZE + observations.GYRO_SIZE
    policy = np.concatenate([first_state.obs[observations.POLICY_OBS_KEY][None], r["policy"]])  # [T + 1, N, 4·45]
    critic = np.concatenate([first_state.obs[observations.CRITIC_OBS_KEY][None], r["critic"]])
    done = r["done"]
    assert policy.shape[-1] == width * (1 + POLICY_HISTORY)
    np.testing.assert_array_equal(policy[..., :width], critic[..., observations.CRITIC_BASE_ANG_VEL.start:])
    assert np.abs(policy[..., :3]).max() > 0.1  # random actions: the base turns, the gyroscope part is exercised
    for n in range(done.shape[1]):
        start = 0
        for i in range(done.shape[0] + 1):
            if i > 0 and done[i - 1, n]:
                start = i
            want = [policy[max(i - lag, start), n, :width] for lag in range(1 + POLICY_HISTORY)]
            np.testing.assert_array_equal(policy[i, n], np.concatenate(want), err_msg=f"env {n}, state {i}")

    env = A1AmpEnv(dataclasses.replace(run_cfg.env, rsi_probability=0.0), None)
    state = env.reset_to(jax.random.PRNGKey(0), *env.default_pose())
    held = env.with_command(state, jnp.array([0.7, -0.2, 0.4]))
    frame = np.asarray(held.obs[observations.POLICY_OBS_KEY][:width])
    offset = observations.policy_from_critic(run_cfg.env).start
    command = slice(observations.CRITIC_COMMAND.start - offset, observations.CRITIC_COMMAND.stop - offset)
    np.testing.assert_allclose(frame[command], [1.4, -0.4, 0.1], atol=1e-6)  # scaled by (2, 2, 0.25)
    np.testing.assert_array_equal(held.obs[observations.POLICY_OBS_KEY], np.tile(frame, 1 + POLICY_HISTORY))
    stepped = env.with_command(env.step(held, jnp.zeros(12)), jnp.zeros(3))
    np.testing.assert_array_equal(stepped.obs[observations.POLICY_OBS_KEY][width:], np.tile(frame, POLICY_HISTORY))


def test_action_filter_follows_a_plain_loop_across_resets(lagged_filtered_rollout):
    """With ``env.action_filter_hz`` the filter's state (and the observations' last action) is the first-order
    recursion ``f ← f + α (clip(a) − f)`` of the actions, restarted at each reset at the action holding the
    reset's joint angles: checked against a NumPy loop over the recorded actions, across time-outs."""
    run_cfg, first, r = lagged_filtered_rollout
    actions, done, filtered, qpos = r["action"], r["done"], r["filtered"], r["qpos"]
    (steps, num_envs), env_cfg = done.shape, run_cfg.env
    alpha = env_cfg.action_filter_alpha
    assert alpha == pytest.approx(1 - math.exp(-2 * math.pi * FILTER_HZ * 0.03))
    default_q = np.tile(env_cfg.default_joint_angles, 4)

    def holding(q):  # the action whose PD target is the joint angles q, within the clip bound
        return np.clip((q - default_q) / env_cfg.action_scale, -CLIP, CLIP)

    np.testing.assert_allclose(first.info["filtered_action"], holding(first.pipeline_state.qpos[:, 7:]), atol=1e-6)
    np.testing.assert_allclose(r["critic"][..., observations.CRITIC_LAST_ACTION], filtered, atol=1e-6)
    running = done == 0  # a finished step's info is the next episode's reset's
    np.testing.assert_array_equal(r["last_action"][running], np.clip(actions, -CLIP, CLIP)[running])  # unfiltered
    for n in range(num_envs):
        f = np.asarray(first.info["filtered_action"][n], np.float64)
        for t in range(steps):
            if t > 0 and done[t - 1, n]:  # the state acted from is a reset's
                f = holding(qpos[t - 1, n, 7:])
            f = f + alpha * (np.clip(actions[t, n], -CLIP, CLIP) - f)
            want = f
            if done[t, n]:  # a finished step's state is replaced by the next episode's reset
                want = holding(qpos[t, n, 7:])
            np.testing.assert_allclose(filtered[t, n], want, atol=2e-5, err_msg=f"env {n}, step {t}")

