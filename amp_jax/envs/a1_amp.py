"""The A1 AMP locomotion environment on MJX, keeping brax's env contract (see ``docs/INTERFACES.md``).

One unbatched environment: ``reset(key) -> State``, ``step(state, action) -> State``, pure and jittable;
callers vmap (brax's ``VmapWrapper`` / ``DomainRandomizationVmapWrapper``). The env never resets itself.

``State.info`` holds, per env:
  ``rng [2]`` the env's own PRNG key (observation noise, commands, push velocities);
  ``command [3]`` (v_x, v_y, yaw rate) in the base frame;
  ``kp_scale [12]``, ``kd_scale [12]`` PD gain multipliers drawn at reset;
  ``last_action [12]`` the (clipped) action the policy chose last;
  ``episode_step`` int32 control steps taken in this episode;
  ``amp_obs [43]`` the AMP observation of this state; with ``env.amp_history_lags`` ``[43 · (1 + L)]``, this
  state's features followed by those of the states that many control steps earlier (:meth:`A1AmpEnv.amp_window`);
  ``truncation`` 1.0 when the step ended the episode by time-out only;
  ``push_countdown`` int32 control steps left until this env's next push (:data:`push_clock.PUSH_COUNTDOWN`):
  the env's push clock, which runs over the env's whole life, not over one episode;
and, only with ``env.amp_history_lags``:
  ``amp_history [H, 43]`` (:data:`AMP_HISTORY`) the AMP features of the ``H`` (the longest lag) states before
  this one, newest first; a reset fills it with the first state's own;
and, only with an action filter (``env.action_filter_hz`` > 0):
  ``filtered_action [12]`` (:data:`FILTERED_ACTION`) the filter's state: the action the PD targets follow, and
  what the observations' last-action entries hold;
and, only with a gait clock (``env.gait_clock_hz`` > 0):
  ``gait_phase`` (:data:`GAIT_PHASE`) the clock's phase in cycles, [0, 1), drawn uniformly at reset;
and, only with ``env.tracking_average_s`` > 0:
  ``tracked_velocity [3]`` (:data:`TRACKED_VELOCITY`) the averaged base velocity the tracking terms read;
and, only when the ``feet_air_time`` reward term is on (``env.reward_scales.feet_air_time`` ≠ 0), legged_gym's
foot bookkeeping, zero at reset:
  ``feet_air_time [4]`` (:data:`FEET_AIR_TIME`) seconds each foot has been in the air, legs FL, FR, RL, RR;
  ``last_foot_contact [4]`` bool (:data:`LAST_FOOT_CONTACT`) each foot's contact on the previous step.
The other complex-reward terms need no state of their own: ``dof_acc``'s previous joint velocity is the
``pipeline_state``'s at the start of the step (the reset's after a reset, as legged_gym's ``last_dof_vel``), the
torques of ``torques`` are the ``ctrl`` of the step's last physics step, ``action_rate`` reads ``last_action``.
Every reward term with a non-zero scale is logged in ``State.metrics`` as ``reward/<name>`` (scaled).

Pushes follow the env's push clock, not the episode clock (:mod:`amp_jax.envs.push_clock`); commands are drawn
by :mod:`amp_jax.envs.commands`.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from brax.envs.base import Env, State
from flax import struct
from mujoco import mjx

from amp_jax import a1
from amp_jax.config import EnvConfig
from amp_jax.envs import base, commands, observations, push_clock, randomize, rewards
from amp_jax.envs.push_clock import PUSH_COUNTDOWN
from amp_jax.motion import layout

FEET_AIR_TIME = "feet_air_time"
"""info key (only with the ``feet_air_time`` term on): seconds each foot has been in the air, ``[4]`` float32 per
env, legs FL, FR, RL, RR; reset to 0 when the foot's filtered contact holds (:func:`rewards.air_time_step`)."""
LAST_FOOT_CONTACT = "last_foot_contact"
"""info key (only with the ``feet_air_time`` term on): each foot's contact on the previous step, ``[4]`` bool."""
AMP_HISTORY = "amp_history"
"""info key (only with ``env.amp_history_lags``): AMP features of the states before this one, newest first,
``[max lag, 43]`` per env."""
FILTERED_ACTION = "filtered_action"
"""info key (only with ``env.action_filter_hz`` > 0): the low-pass filtered action ``[12]`` the PD targets follow
(:meth:`A1AmpEnv.filter_action`)."""
TRACKED_VELOCITY = "tracked_velocity"
"""info key (only with ``env.tracking_average_s`` > 0): the exponential average of the base velocity that the
tracking terms read, ``[3]`` (v_x, v_y, yaw rate), base axes (:func:`rewards.averaged_velocity`)."""
GAIT_PHASE = "gait_phase"
"""info key (only with a gait clock): the clock's phase in cycles, float32 scalar in [0, 1)."""
_GAIT_PHASE_KEY_SALT = 0x6A17
"""Folded into a reset's key for the clock's initial phase, so the reset's other draws stay as without a clock."""
_CLIP_COMMAND_KEY_SALT = 0x3C0D
"""Folded into a reset's key for the draw of ``rsi_command_from_clip``, so the other draws stay as without it."""


def gait_clock_observation(phase: jax.Array) -> jax.Array:
    """``(sin 2πφ, cos 2πφ)`` ``[2]`` of a phase ``φ`` in cycles: the gait clock's observation."""
    angle = 2.0 * jnp.pi * phase
    return jnp.stack([jnp.sin(angle), jnp.cos(angle)])


@struct.dataclass
class MotorWork:
    """Mechanical work of the 12 joint motors over some physics steps ``k`` of ``dt`` s (J, scalars or with
    leading axes).

    ``τ_k [12]`` is the PD torque applied during step ``k`` (N·m, clipped to the effort limits, which are also
    the motors' control ranges) and ``q̇_k [12]`` the joint velocity at its end (rad/s): under MuJoCo's Euler
    integrator the step moves each joint by ``q̇_k · dt``, so ``τ_kj · q̇_kj · dt`` is the work ``τ · Δq`` of
    motor ``j`` over step ``k``.
    """

    absolute: jax.Array
    """``Σ_k Σ_j |τ_kj · q̇_kj| · dt``: braking costs as much as driving, and motors exchange no energy."""
    positive: jax.Array
    """``Σ_k Σ_j max(τ_kj · q̇_kj, 0) · dt``: the driving work only (braking is free, nothing recovered)."""


class A1AmpEnv(Env):
    """Unitree A1 velocity tracking with AMP observations (reference section 4).

    Args:
      cfg: the environment section of the run configuration.
      motion_library: an ``amp_jax.motion.MotionLibrary`` for reference-state initialisation; may be None only
        when ``cfg.rsi_probability`` is 0.
      scene_path: the MJCF scene (default ``mjcf/scene.xml``).
    """

    def __init__(self, cfg: EnvConfig, motion_library: Any = None,
                 scene_path: str | pathlib.Path = a1.SCENE_XML):
        if motion_library is None and cfg.rsi_probability > 0:
            raise ValueError(f"env.rsi_probability = {cfg.rsi_probability}: reference-state initialisation "
                             "needs a motion library (pass one, or set env.rsi_probability to 0)")
        self.cfg = cfg
        self.motion_library = motion_library
        self.mj_model = base.load_mj_model(scene_path)
        self.mj_model.opt.timestep = cfg.physics_dt
        self.mj_model.opt.iterations = cfg.solver_iterations
        self.mj_model.opt.ls_iterations = cfg.solver_ls_iterations
        # On this process's first device: MJX's default, the first device of every process, belongs to process 0
        # when several processes train one run, and the others could not read a model kept there.
        device = jax.local_devices()[0]
        self.sys = mjx.put_model(self.mj_model, device=device, impl=cfg.impl)
        """The MJX model; brax's domain-randomisation wrapper swaps in a per-env one while tracing."""
        self._data_template = mjx.make_data(self.mj_model, device=device, impl=cfg.impl)
        self._geometry = base.leg_geometry(self.mj_model)
        self._default_q = jnp.asarray(cfg.default_joint_pos, jnp.float32)
        self._effort_limit = jnp.asarray(a1.EFFORT_LIMIT, jnp.float32)
        self._gait_clock = cfg.gait_clock_hz > 0
        self._policy_frame_size = observations.policy_frame_size(cfg)
        self._policy_from_critic = observations.policy_from_critic(cfg)
        self._action_filter = cfg.action_filter_hz > 0
        self._amp_history_rows = np.asarray(cfg.amp_history_lags, np.int32) - 1
        """Row of :data:`AMP_HISTORY` holding each lag's state."""
        self._reward_scales = cfg.reward_scales.as_dict()
        rewards.check_scales(self._reward_scales)
        soft_lower, soft_upper = rewards.soft_joint_limits(self.mj_model.jnt_range[1:], a1.SOFT_JOINT_RANGE_FRACTION)
        self._reward_params = rewards.RewardParams(
            tracking_sigma=cfg.tracking_sigma, tracking_sigma_fine=cfg.tracking_sigma_fine,
            tracking_sigma_lateral=cfg.tracking_sigma_lateral, control_dt=cfg.control_dt,
            soft_joint_lower=soft_lower, soft_joint_upper=soft_upper, air_time_target=cfg.feet_air_time_target)
        # Decided here, in Python: the per-step work of a term (contact forces, body contacts) and its info keys
        # exist only when its scale is non-zero, so other configs step the same program as without these terms.
        self._tracks_feet_air_time = self._reward_scales["feet_air_time"] != 0
        self._counts_body_contacts = self._reward_scales["collision"] != 0
        self._averages_tracking = cfg.tracking_average_s > 0
        if self._tracks_feet_air_time and cfg.impl != "jax":
            raise ValueError(f"env.reward_scales.feet_air_time = {cfg.reward_scales.feet_air_time}: needs env.impl "
                             f"'jax' (the foot contact forces are read from its contact list), not {cfg.impl!r}")
        self._foot_geom_ids = np.array([self.mj_model.geom(name).id for name in a1.FOOT_GEOMS])
        self._pyramidal_cone = self.mj_model.opt.cone == mujoco.mjtCone.mjCONE_PYRAMIDAL
        noise = np.concatenate([
            np.full(3, cfg.noise_lin_vel * cfg.obs_scale_lin_vel),
            np.full(3, cfg.noise_ang_vel * cfg.obs_scale_ang_vel),
            np.full(3, cfg.noise_gravity),
            np.zeros(3),
            np.full(12, cfg.noise_dof_pos * cfg.obs_scale_dof_pos),
            np.full(12, cfg.noise_dof_vel * cfg.obs_scale_dof_vel),
            np.zeros(12),
            np.zeros(observations.gait_clock_size(cfg)),
        ]) * cfg.noise_level * float(cfg.add_noise)
        self._noise_scale = jnp.asarray(noise, jnp.float32)
        """Half-width of the uniform noise on each critic-observation entry ``[48]`` (``[50]`` with a gait clock)."""
        self._command_obs_scale = jnp.array([cfg.obs_scale_lin_vel, cfg.obs_scale_lin_vel, cfg.obs_scale_ang_vel])

    # ------------------------------------------------------------------------------------------------------
    # brax's Env interface

    @property
    def observation_size(self) -> dict[str, tuple[int, ...]]:
        return {observations.POLICY_OBS_KEY: (observations.policy_obs_size(self.cfg),),
                observations.CRITIC_OBS_KEY: (observations.critic_obs_size(self.cfg),)}

    @property
    def action_size(self) -> int:
        return observations.NUM_ACTIONS

    @property
    def backend(self) -> str:
        return "mjx"

    def reset(self, rng: jax.Array) -> State:
        """A new episode: RSI with probability ``cfg.rsi_probability``, else the default-pose reset."""
        k_choice, k_frame, k_default, k_rest = jax.random.split(rng, 4)
        qpos, qvel = self._default_initial_state(k_default)
        command = None
        if self.motion_library is not None and self.cfg.rsi_probability > 0:
            from amp_jax.motion.library import sample_frames_and_clips

            frame, clip = sample_frames_and_clips(self.motion_library, k_frame, ())
            rsi_qpos, rsi_qvel = state_from_frame(frame)
            use_rsi = jax.random.uniform(k_choice) < self.cfg.rsi_probability
            qpos = jnp.where(use_rsi, rsi_qpos, qpos)
            qvel = jnp.where(use_rsi, rsi_qvel, qvel)
            if self.cfg.rsi_command_from_clip > 0:
                k_match = jax.random.fold_in(k_choice, _CLIP_COMMAND_KEY_SALT)
                match = use_rsi & (jax.random.uniform(k_match) < self.cfg.rsi_command_from_clip)
                command = (match, commands.clip_to_ranges(self.cfg, self.motion_library.mean_command[clip]))
        return self.reset_to(k_rest, qpos, qvel, command=command)

    def reset_to_frame(self, rng: jax.Array, frame: jax.Array) -> State:
        """A new episode starting exactly at motion frame ``frame [61]`` (project layout)."""
        return self.reset_to(rng, *state_from_frame(frame))

    def reset_to(self, rng: jax.Array, qpos: jax.Array, qvel: jax.Array,
                 gait_phase: jax.Array | float | None = None,
                 command: tuple[jax.Array, jax.Array] | None = None) -> State:
        """A new episode from the given ``qpos [19]``, ``qvel [18]``; commands, gains, noise and a push countdown
        drawn from ``rng``; with a gait clock, its phase ``gait_phase`` (cycles; None: drawn uniformly).
        ``command`` ``(use [] bool, command [3])``: the first command where ``use``, else the random draw."""
        k_command, k_gains, k_noise, k_next = jax.random.split(rng, 4)
        data = self._data_template.replace(qpos=qpos, qvel=qvel)
        kp_scale, kd_scale = randomize.draw_gain_multipliers(k_gains, self.cfg)
        drawn = commands.sample_command(self.cfg, k_command)
        command = drawn if command is None else jnp.where(command[0], command[1], drawn)
        last_action = jnp.zeros(observations.NUM_ACTIONS)
        observed_action = last_action
        info = {
            "rng": k_next,
            "command": command,
            "kp_scale": kp_scale,
            "kd_scale": kd_scale,
            "last_action": last_action,
            "episode_step": jnp.zeros((), jnp.int32),
            "truncation": jnp.zeros(()),
            PUSH_COUNTDOWN: push_clock.initial_countdown(self.cfg, jax.random.fold_in(rng, push_clock.RESET_KEY_SALT)),
        }
        info.update(self._amp_info(self.amp_observation(qpos, qvel), None))
        if self._action_filter:
            observed_action = info[FILTERED_ACTION] = self.holding_action(qpos)
        if self._gait_clock:
            info[GAIT_PHASE] = (jax.random.uniform(jax.random.fold_in(rng, _GAIT_PHASE_KEY_SALT))
                                if gait_phase is None else jnp.mod(jnp.asarray(gait_phase, jnp.float32), 1.0))
        if self._tracks_feet_air_time:
            info[FEET_AIR_TIME] = jnp.zeros(a1.NUM_LEGS)
            info[LAST_FOOT_CONTACT] = jnp.zeros(a1.NUM_LEGS, bool)
        if self._averages_tracking:
            info[TRACKED_VELOCITY] = rewards.base_velocity(base.base_lin_vel(qpos, qvel), base.base_ang_vel(qvel))
        metrics = {f"reward/{name}": jnp.zeros(()) for name, s in self._reward_scales.items() if s != 0}
        obs = self._observe(qpos, qvel, command, observed_action, k_noise, info.get(GAIT_PHASE))
        if self.cfg.policy_history:
            obs = self._with_history(obs, jnp.tile(obs[observations.POLICY_OBS_KEY], self.cfg.policy_history))
        return State(pipeline_state=data, obs=obs, reward=jnp.zeros(()), done=jnp.zeros(()), metrics=metrics,
                     info=info)

    def step(self, state: State, action: jax.Array) -> State:
        """One control step: a push if the env's push clock is due, ``decimation`` physics steps under PD, then
        reward and checks."""
        return self.step_with_work(state, action)[0]

    def step_with_work(self, state: State, action: jax.Array) -> tuple[State, MotorWork]:
        """:meth:`step`, also returning the motors' mechanical work over its physics steps
        (:meth:`simulate_with_work`). The state is the one :meth:`step` returns."""
        cfg = self.cfg
        info = state.info
        k_push, k_command, k_noise, k_next = jax.random.split(info["rng"], 4)
        action = jnp.clip(action, -cfg.clip_actions, cfg.clip_actions)
        step_count = info["episode_step"] + 1
        data = state.pipeline_state
        push_due, push_countdown = push_clock.tick(info[PUSH_COUNTDOWN], cfg.push_interval_steps)
        data = data.replace(qvel=push_clock.push(cfg, data.qvel, push_due, k_push))
        applied = self.filter_action(info[FILTERED_ACTION], action) if self._action_filter else action
        data, work = self.simulate_with_work(data, applied, info["kp_scale"], info["kd_scale"])

        qpos, qvel = data.qpos, data.qvel
        terminated = base.ground_contact(self._geometry, qpos)
        timed_out = step_count >= cfg.max_episode_steps
        done = terminated | timed_out
        quantities = self.reward_quantities(state, data, action, terminated & ~timed_out)
        reward, terms = rewards.task_reward(self._reward_scales, quantities, self._reward_params)

        command = commands.update_command(cfg, info["command"], step_count, k_command)
        info = {
            **info,
            "rng": k_next,
            "command": command,
            "last_action": action,
            "episode_step": step_count,
            **self._amp_info(self.amp_observation(qpos, qvel), state.info),
            "truncation": (timed_out & ~terminated).astype(jnp.float32),
            PUSH_COUNTDOWN: push_countdown,
        }
        if self._action_filter:
            info[FILTERED_ACTION] = applied
        if self._gait_clock:
            info[GAIT_PHASE] = jnp.mod(info[GAIT_PHASE] + cfg.gait_clock_hz * cfg.control_dt, 1.0)
        if self._tracks_feet_air_time:
            air = rewards.air_time_step(quantities.feet_air_time, quantities.last_foot_contact,
                                        quantities.foot_contact, cfg.control_dt)
            info[FEET_AIR_TIME] = air.next_air_time
            info[LAST_FOOT_CONTACT] = quantities.foot_contact
        if self._averages_tracking:
            info[TRACKED_VELOCITY] = quantities.tracked_velocity
        # keep metrics that wrappers added (brax's eval wrapper logs "reward" there)
        metrics = {**state.metrics, **{f"reward/{name}": value for name, value in terms.items()}}
        obs = self._observe(qpos, qvel, command, applied, k_noise, info.get(GAIT_PHASE))
        if cfg.policy_history:  # the window acted from, less its oldest step
            obs = self._with_history(obs, state.obs[observations.POLICY_OBS_KEY][: -self._policy_frame_size])
        return state.replace(pipeline_state=data, obs=obs, reward=reward, done=done.astype(jnp.float32),
                             metrics=metrics, info=info), work

    # ------------------------------------------------------------------------------------------------------
    # Pieces, public for tests and tools

    def reward_quantities(self, state: State, data: mjx.Data, action: jax.Array,
                          fell: jax.Array) -> rewards.StepQuantities:
        """What the reward terms read about the step from ``state`` (its ``pipeline_state`` as the step began)
        to ``data`` (after the step's physics) under ``action [12]`` (clipped); ``fell`` bool scalar: the step
        ended the episode by a fall, not by time-out. The foot contacts and air times, and the body contacts,
        are computed only when their terms are on, the averaged velocity only with ``env.tracking_average_s`` > 0
        (None otherwise)."""
        info = state.info
        qpos, qvel = data.qpos, data.qvel
        lin_vel, ang_vel = base.base_lin_vel(qpos, qvel), base.base_ang_vel(qvel)
        optional = {}
        if self._averages_tracking:
            optional["tracked_velocity"] = rewards.averaged_velocity(
                info[TRACKED_VELOCITY], rewards.base_velocity(lin_vel, ang_vel), self.cfg.tracking_average_alpha)
        if self._counts_body_contacts:
            optional["body_ground_contacts"] = base.body_ground_contacts(self._geometry, qpos)
        if self._tracks_feet_air_time:
            forces = self.foot_normal_forces(data)
            optional.update(foot_contact=forces > rewards.FOOT_CONTACT_FORCE,
                            last_foot_contact=info[LAST_FOOT_CONTACT], feet_air_time=info[FEET_AIR_TIME])
        return rewards.StepQuantities(
            command=info["command"], base_lin_vel=lin_vel, base_ang_vel=ang_vel,
            joint_pos=qpos[a1.QPOS_JOINTS], joint_vel=qvel[a1.QVEL_JOINTS],
            joint_vel_before=state.pipeline_state.qvel[a1.QVEL_JOINTS],
            torque=data.ctrl, action=action, last_action=info["last_action"], fell=fell, **optional)

    def foot_normal_forces(self, data: mjx.Data) -> jax.Array:
        """Normal force of the floor on each foot at the physics step that produced ``data``, ``[4]`` (N), legs FL,
        FR, RL, RR (:func:`amp_jax.envs.base.foot_normal_forces`; ``impl='jax'`` only)."""
        return base.foot_normal_forces(data, self._foot_geom_ids, self._pyramidal_cone)

    def filter_action(self, filtered: jax.Array, action: jax.Array) -> jax.Array:
        """One step of the action filter: ``filtered + α · (action − filtered)``, ``[12]``, with ``α`` the config's
        :attr:`~amp_jax.config.EnvConfig.action_filter_alpha`."""
        return filtered + self.cfg.action_filter_alpha * (action - filtered)

    def holding_action(self, qpos: jax.Array) -> jax.Array:
        """The action whose PD targets are the joint angles of ``qpos [19]``: ``(q − q_default) / action_scale``,
        clipped as actions are, ``[12]`` (the action filter's state at a reset)."""
        action = (qpos[a1.QPOS_JOINTS] - self._default_q) / self.cfg.action_scale
        return jnp.clip(action, -self.cfg.clip_actions, self.cfg.clip_actions)

    def observed_action(self, info: dict[str, jax.Array]) -> jax.Array:
        """The action the observations' last-action entries hold for a state with ``info``: the filtered action
        with an action filter, else the last clipped action, ``[12]``."""
        return info[FILTERED_ACTION] if self._action_filter else info["last_action"]

    def pd_targets(self, action: jax.Array) -> jax.Array:
        """Joint targets ``q_default + action_scale · action``, ``[12]`` rad."""
        return self._default_q + self.cfg.action_scale * action

    def simulate(self, data: mjx.Data, action: jax.Array, kp_scale: jax.Array, kd_scale: jax.Array) -> mjx.Data:
        """``decimation`` physics steps under the PD law, its torque recomputed before each step."""
        return self.simulate_with_work(data, action, kp_scale, kd_scale)[0]

    def simulate_with_work(self, data: mjx.Data, action: jax.Array, kp_scale: jax.Array, kd_scale: jax.Array
                           ) -> tuple[mjx.Data, MotorWork]:
        """:meth:`simulate`, also returning the motors' work over its physics steps (:class:`MotorWork`). The
        returned data's ``ctrl [12]`` is the torque of the last physics step (the ``torques`` reward term's)."""
        target = self.pd_targets(action)
        kp, kd = self.cfg.kp * kp_scale, self.cfg.kd * kd_scale
        dt = self.cfg.physics_dt

        def physics_step(_, carry: tuple[mjx.Data, MotorWork]) -> tuple[mjx.Data, MotorWork]:
            d, work = carry
            torque = base.pd_torque(target, d.qpos[a1.QPOS_JOINTS], d.qvel[a1.QVEL_JOINTS], kp, kd, self._effort_limit)
            d = mjx.step(self.sys, d.replace(ctrl=torque))
            power = torque * d.qvel[a1.QVEL_JOINTS]
            return d, MotorWork(absolute=work.absolute + dt * jnp.sum(jnp.abs(power)),
                                positive=work.positive + dt * jnp.sum(jnp.maximum(power, 0.0)))

        zero = jnp.zeros(())
        return jax.lax.fori_loop(0, self.cfg.decimation, physics_step, (data, MotorWork(zero, zero)))

    @property
    def robot_mass(self) -> float:
        """Total mass of the robot's bodies in the MJCF model (kg; the world body has none): the ``m`` of a cost
        of transport. Excludes the mass randomisation, which the evaluation env switches off."""
        return float(np.sum(self.mj_model.body_mass))

    def amp_observation(self, qpos: jax.Array, qvel: jax.Array) -> jax.Array:
        """AMP features ``[43]``: q, feet (base axes, from the trunk COM), v_base, ω_base, q̇, base height."""
        return jnp.concatenate([
            qpos[a1.QPOS_JOINTS],
            base.foot_positions_from_com(self._geometry, qpos[a1.QPOS_JOINTS]),
            base.base_lin_vel(qpos, qvel),
            base.base_ang_vel(qvel),
            qvel[a1.QVEL_JOINTS],
            qpos[a1.QPOS_BASE_HEIGHT],
        ])

    def amp_window(self, features: jax.Array, history: jax.Array) -> jax.Array:
        """The AMP observation ``[43 · (1 + L)]`` of a state with AMP features ``features [43]`` whose earlier states'
        are ``history [H, 43]`` (newest first): ``features`` then the states ``env.amp_history_lags`` steps back."""
        return jnp.concatenate([features, history[self._amp_history_rows].reshape(-1)])

    def _amp_info(self, features: jax.Array, previous: dict[str, jax.Array] | None) -> dict[str, jax.Array]:
        """``info``'s AMP entries for a state with AMP features ``features [43]``: after a step from a state with
        info ``previous``; at a reset (``previous`` None) the history repeats ``features``."""
        if not self._amp_history_rows.size:
            return {"amp_obs": features}
        depth = int(self._amp_history_rows[-1]) + 1
        if previous is None:
            history = jnp.broadcast_to(features, (depth, features.shape[-1]))
        else:
            last = previous["amp_obs"][: observations.AMP_OBS_SIZE]
            history = jnp.concatenate([last[None], previous[AMP_HISTORY][:-1]])
        return {"amp_obs": self.amp_window(features, history), AMP_HISTORY: history}

    def critic_observation(self, qpos: jax.Array, qvel: jax.Array, command: jax.Array,
                           last_action: jax.Array, gait_phase: jax.Array | None = None) -> jax.Array:
        """Noise-free critic observation ``[48]`` (layout in :mod:`amp_jax.envs.observations`); with a gait clock
        ``[50]``, its last two entries :func:`gait_clock_observation` of ``gait_phase`` (cycles, scalar)."""
        cfg = self.cfg
        if self._gait_clock != (gait_phase is not None):
            raise ValueError(f"env.gait_clock_hz = {cfg.gait_clock_hz}: the critic observation needs a gait phase "
                             "exactly when the env has a clock")
        clock = [gait_clock_observation(gait_phase)] if self._gait_clock else []
        return jnp.concatenate([
            base.base_lin_vel(qpos, qvel) * cfg.obs_scale_lin_vel,
            base.base_ang_vel(qvel) * cfg.obs_scale_ang_vel,
            base.projected_gravity(qpos),
            command * self._command_obs_scale,
            (qpos[a1.QPOS_JOINTS] - self._default_q) * cfg.obs_scale_dof_pos,
            qvel[a1.QVEL_JOINTS] * cfg.obs_scale_dof_vel,
            last_action,
            *clock,
        ])

    def _observe(self, qpos, qvel, command, last_action, key, gait_phase=None) -> dict[str, jax.Array]:
        critic = self.critic_observation(qpos, qvel, command, last_action, gait_phase)
        critic = critic + self._noise_scale * jax.random.uniform(key, critic.shape, minval=-1.0, maxval=1.0)
        return self._observation_dict(critic)

    def _observation_dict(self, critic: jax.Array) -> dict[str, jax.Array]:
        critic = jnp.clip(critic, -self.cfg.clip_observations, self.cfg.clip_observations)
        return {observations.POLICY_OBS_KEY: critic[self._policy_from_critic],
                observations.CRITIC_OBS_KEY: critic}

    def _with_history(self, obs: dict[str, jax.Array], earlier: jax.Array) -> dict[str, jax.Array]:
        """``obs`` with this step's policy observation ``[F]`` followed by ``earlier [H · F]``, the
        ``H`` steps before it, newest first: the policy observation of an env with ``env.policy_history`` ``H``,
        which holds the env's whole history (no other state keeps it)."""
        policy = jnp.concatenate([obs[observations.POLICY_OBS_KEY], earlier])
        return {**obs, observations.POLICY_OBS_KEY: policy}

    def with_command(self, state: State, command: jax.Array) -> State:
        """``state`` with ``command [3]`` (v_x, v_y, yaw rate) in force and its observations rebuilt for it,
        noise-free (as the env's own step builds them with ``add_noise`` off): how an evaluation holds a command."""
        data = state.pipeline_state
        critic = self.critic_observation(data.qpos, data.qvel, command, self.observed_action(state.info),
                                         state.info.get(GAIT_PHASE))
        obs = self._observation_dict(critic)
        if history := self.cfg.policy_history:
            # At an episode's first step the history is that step's observation repeated: under the new command.
            repeated = jnp.tile(obs[observations.POLICY_OBS_KEY], history)
            earlier = state.obs[observations.POLICY_OBS_KEY][self._policy_frame_size:]
            obs = self._with_history(obs, jnp.where(state.info["episode_step"] == 0, repeated, earlier))
        return state.replace(obs=obs, info={**state.info, "command": command})

    def default_pose(self) -> tuple[jax.Array, jax.Array]:
        """The default pose at rest, base at the initial height and upright: ``(qpos [19], qvel [18])`` (the
        evaluations' start)."""
        qpos = jnp.concatenate([jnp.array([0.0, 0.0, self.cfg.init_height, 1.0, 0.0, 0.0, 0.0]), self._default_q])
        return qpos, jnp.zeros(self.mj_model.nv)

    def _default_initial_state(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The non-RSI reset: default angles × U[0.5, 1.5], q̇ = 0, base at init height, base vel U[−0.5, 0.5]."""
        k_q, k_v = jax.random.split(key)
        q = self._default_q * jax.random.uniform(k_q, (12,), minval=0.5, maxval=1.5)
        qpos = self.default_pose()[0].at[a1.QPOS_JOINTS].set(q)
        base_vel = jax.random.uniform(k_v, (6,), minval=-0.5, maxval=0.5)
        return qpos, jnp.concatenate([base_vel, jnp.zeros(12)])



def state_from_frame(frame: jax.Array) -> tuple[jax.Array, jax.Array]:
    """MuJoCo ``(qpos [19], qvel [18])`` of a motion frame ``[61]`` (project layout, quaternion w, x, y, z);
    the frame's base-frame linear velocity is rotated to the world frame of the free joint."""
    quat = frame[layout.ROOT_QUAT]
    quat = quat / jnp.linalg.norm(quat)
    qpos = jnp.concatenate([frame[layout.ROOT_POS], quat, frame[layout.JOINT_POS]])
    lin_vel_world = base.quat_rotate(quat, frame[layout.BASE_LIN_VEL])
    qvel = jnp.concatenate([lin_vel_world, frame[layout.BASE_ANG_VEL], frame[layout.JOINT_VEL]])
    return qpos, qvel
