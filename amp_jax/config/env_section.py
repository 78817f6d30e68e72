"""The ``env`` section: the simulated A1, its task reward, observations, randomisation and resets (every field's
default is the reference system's value, ``docs/REFERENCE_VALUES.md``)."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from collections.abc import Iterator

import numpy as np

from amp_jax import a1
from amp_jax.config.common import Check

MAX_AMP_HISTORY_LAG = 100
"""Longest lag of ``env.amp_history_lags`` (control steps; 3 s at the reference's 0.03 s)."""
MAX_POLICY_HISTORY = 32
"""Most earlier observations ``env.policy_history`` may append (about one second at the reference's 0.03 s)."""
MAX_TRACKING_AVERAGE_S = 2.0
"""Longest time constant ``env.tracking_average_s`` may set (s): longer would answer a new command only after
several seconds of a 5 s command."""


@dataclasses.dataclass(frozen=True)
class RewardScales:
    """Scale of each task-reward term per control step; the sign lives in the scale, 0 switches a term off (it is
    then not computed at all). Terms: :mod:`amp_jax.envs.rewards`, under legged_gym's names.

    The reference writes these as 1.5 / control_dt and multiplies by control_dt; the product is stored here. A
    legged_gym weight ``w`` (which legged_gym also multiplies by the control period) is stored as
    ``w · control_dt``: e.g. ``lin_vel_z`` −2.0 → −0.06 at 0.03 s (``configs/complex_reward.yaml``).
    """

    tracking_lin_vel: float = 1.5
    """exp(−‖cmd_xy − v_xy‖² / σ), base frame."""
    tracking_ang_vel: float = 0.5
    """exp(−(cmd_yaw − ω_z)² / σ)."""
    tracking_lin_vel_fine: float = 0.0
    """exp(−‖cmd_xy − v_xy‖² / σ_fine): the same tracking with the narrower kernel ``tracking_sigma_fine``."""
    tracking_ang_vel_fine: float = 0.0
    """exp(−(cmd_yaw − ω_z)² / σ_fine)."""
    tracking_lin_vel_y: float = 0.0
    """exp(−(cmd_y − v_y)² / σ_lateral), base frame: the lateral velocity alone, with the kernel
    ``tracking_sigma_lateral``."""
    lin_vel_z: float = 0.0
    """v_z² of the base, base axes ((m/s)²)."""
    ang_vel_xy: float = 0.0
    """ω_x² + ω_y² of the base, base axes ((rad/s)²)."""
    torques: float = 0.0
    """Σ τ² of the 12 motor torques at the control step's last physics step ((N·m)²)."""
    dof_acc: float = 0.0
    """Σ ((q̇ − q̇_before) / control_dt)² over the 12 joints ((rad/s²)²)."""
    action_rate: float = 0.0
    """Σ (a_last − a)² over the 12 actions."""
    collision: float = 0.0
    """Count of the trunk, thighs and calves on the floor (0 to 9; geometric, non-zero only on a fall's step)."""
    feet_air_time: float = 0.0
    """Σ_feet (air time − 0.5 s) at each touchdown, while ‖cmd_xy‖ > 0.1 m/s (contact: normal force > 1 N from
    MJX's contact forces, so needs impl 'jax')."""
    termination: float = 0.0
    """1 on a step that ends the episode by a fall (not by time-out); added after the clip at 0."""
    dof_pos_limits: float = 0.0
    """Σ how far each joint angle lies outside its soft limits, 0.9 of the MJCF range about its middle (rad)."""

    def _checks(self) -> Iterator[Check]:
        return iter(())

    def as_dict(self) -> dict[str, float]:
        """Term name → scale."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def low_pass_alpha(cutoff_hz: float, dt: float) -> float:
    """The step ``α = 1 − exp(−2π · cutoff_hz · dt)`` of a first-order low-pass filter ``f ← f + α (x − f)``
    sampled every ``dt`` s; 1.0 (no filtering) for a cut-off of 0."""
    if cutoff_hz == 0:
        return 1.0
    return 1.0 - math.exp(-2.0 * math.pi * cutoff_hz * dt)


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """The A1 locomotion environment (reference section 4)."""

    num_envs: int = 5480
    """Parallel environments, global over all devices."""
    physics_dt: float = 0.005
    """Physics time step (s)."""
    decimation: int = 6
    """Physics steps per control step."""
    episode_length_s: float = 20.0
    """Episode length (s); the time-out fires at ceil(episode_length_s / control_dt) control steps."""
    action_scale: float = 0.25
    """Joint target = default angle + action_scale * action (rad per unit action)."""
    clip_actions: float = 100.0
    """Actions are clipped to ±clip_actions."""
    clip_observations: float = 100.0
    """Observations are clipped to ±clip_observations."""
    action_filter_hz: float = 0.0
    """Cut-off frequency of a first-order low-pass filter between the policy's (clipped) actions and the PD
    targets (Hz; 0 = no filter, the reference): each control step the filtered action moves ``α = 1 −
    exp(−2π · action_filter_hz · control_dt)`` of the way to the new action, and the joint targets are
    ``default + action_scale · filtered``. The observations' last-action entries then hold the filtered action
    (the filter's state, what the motors track); a reset starts the filter at the action that holds the reset's
    joint angles. A policy cannot follow a command faster than the cut-off without large actions (measured
    in ``docs/RESULTS.md``, "The policy's side": a policy trained without the filter, given a 2 Hz one, stood
    still)."""
    kp: float = 80.0
    """PD stiffness (N·m/rad)."""
    kd: float = 1.0
    """PD damping (N·m·s/rad)."""
    default_joint_angles: tuple[float, float, float] = (0.0, 0.9, -1.8)
    """Default (hip, thigh, calf) angle of every leg (rad)."""
    amp_history_lags: tuple[int, ...] = ()
    """Earlier control steps whose AMP features join each AMP observation, oldest last: ``[6, 12]`` makes it the
    features now, 6 and 12 control steps ago (``[43 · (1 + len)]``), so the discriminator sees part of a stride
    and not only one step of it (trot0's stride spans 22 steps). Empty: the reference's one-step observation.
    An episode's first steps repeat its first state for the steps before it; the clips' transitions are drawn
    where the whole window lies inside the clip."""
    init_height: float = 0.42
    """Base height of the non-RSI reset (m)."""
    rsi_probability: float = 0.85
    """Probability that a reset starts from a random motion-data frame (reference-state initialisation)."""
    rsi_command_from_clip: float = 0.0
    """Probability that an episode started from a clip frame gets, as its first command, the clip's own mean
    velocity (``MotionLibrary.mean_command``: forward, lateral, yaw rate, clipped to the command ranges) instead
    of a random draw, so the start's motion and the command agree until the first resampling (0: every command
    drawn, the reference). With clips played backwards this starts backward walks under a backward command."""
    command_lin_vel_x: tuple[float, float] = (-1.0, 2.0)
    """Range of the forward velocity command (m/s, base frame)."""
    command_lin_vel_y: tuple[float, float] = (-0.3, 0.3)
    """Range of the lateral velocity command (m/s, base frame)."""
    command_ang_vel_yaw: tuple[float, float] = (-1.57, 1.57)
    """Range of the yaw-rate command (rad/s)."""
    command_resample_s: float = 10.0
    """Commands are redrawn at every reset and every this many seconds."""
    min_command_norm: float = 0.05
    """An xy command with a norm below this is set to zero (m/s)."""
    standing_command_probability: float = 0.0
    """Probability that a command draw is the standing command (0, 0, 0): with the resampling period this gives
    the episodes stops and starts from standing (the reference: 0, a standing command only below the minimum
    norm; its yaw command stays)."""
    gait_clock_hz: float = 0.0
    """Frequency of a gait clock the policy and critic observe, ``(sin 2πφ, cos 2πφ)`` appended to their
    observations with ``φ`` the clock's phase in cycles (Hz; 0 = no clock, the reference). The clock starts each
    episode at a random phase and drives nothing: it gives the policy a rhythm to time its steps by, and under
    the mirror it moves half a cycle (:mod:`amp_jax.envs.mirror`), so a mirror-symmetric policy can step from a
    symmetric stance."""
    policy_history: int = 0
    """Earlier policy observations appended to the policy's own, newest first (control steps; 0 = none, the
    reference): with ``H`` the policy observes ``[42 · (1 + H)]`` (``[44 · (1 + H)]`` with a gait clock), this
    step's observation followed by those of the ``H`` steps before it, noise and all, so it can time a stride
    from what it saw and did, not only from the joint state of one instant. An episode's first observation
    stands in for the steps before it. The critic's observation has no history."""
    policy_base_ang_vel: bool = False
    """Whether the policy also observes the base's angular velocity (body axes, ``obs_scale_ang_vel``, noisy as
    the critic's), as a real A1's IMU gyroscope measures it; off, the policy observes what the reference's does
    (no base velocity). It comes first in each step's policy observation, which is then the critic's ``[3:]``."""
    policy_base_lin_vel: bool = False
    """Whether the policy also observes the base's linear velocity (body axes, ``obs_scale_lin_vel``, noisy as the
    critic's: ±``noise_lin_vel`` m/s), as a robot's state estimator supplies it; needs ``policy_base_ang_vel`` (an
    estimator runs on the IMU). It comes first in each step's policy observation, which is then the whole critic
    observation ``[0:]``. Off, the policy observes no base velocity (the reference's hardware observations)."""
    reward_scales: RewardScales = dataclasses.field(default_factory=lambda: RewardScales())
    """Scale of each task-reward term, per control step (the sign lives in the scale)."""
    tracking_sigma: float = 0.25
    """Width of the exponential velocity-tracking kernels ((m/s)² and (rad/s)²)."""
    tracking_sigma_fine: float = 0.1
    """Width of the narrower kernels of the ``tracking_*_fine`` reward terms ((m/s)² and (rad/s)²); they are off
    (scale 0) unless a recipe sets their scales."""
    tracking_sigma_lateral: float = 0.02
    """Width of the kernel of the ``tracking_lin_vel_y`` reward term ((m/s)²); it is off (scale 0) unless a recipe
    sets its scale."""
    tracking_average_s: float = 0.0
    """Time constant (s) of an exponential average of the base velocity (v_x, v_y, yaw rate, base axes) that the
    velocity-tracking reward terms compare with the command in place of the step's own velocity (0 = the step's
    own, the reference). Each control step the average moves ``α = 1 − exp(−control_dt / tracking_average_s)`` of
    the way to the step's velocity; a reset starts it at the reset state's velocity. The velocity of a walking
    trunk swings within each stride, and an instantaneous kernel charges that swing, more for a long, slow stride
    than for a short, quick one (trot0's own motion earns 1.96 of the full-task recipe's 2.5 per step at its mean
    velocity; docs/RESULTS.md). The critic does not observe the average; the evaluation's errors stay
    instantaneous."""
    feet_air_time_target: float = 0.5
    """The ``feet_air_time`` reward term pays (air time − this) at each foot's touchdown (s); legged_gym's 0.5 is
    longer than any clip's swing (the trot clips swing 0.34–0.39 s, the pace clips 0.26–0.28 s). The term is off
    (scale 0) unless a recipe sets its scale."""
    obs_scale_lin_vel: float = 2.0
    """Scale of the base linear velocity (and of the xy commands) in observations."""
    obs_scale_ang_vel: float = 0.25
    """Scale of the base angular velocity (and of the yaw command) in observations."""
    obs_scale_dof_pos: float = 1.0
    """Scale of (q − q_default) in observations."""
    obs_scale_dof_vel: float = 0.05
    """Scale of joint velocities in observations."""
    add_noise: bool = True
    """Add uniform noise to the observations."""
    noise_level: float = 1.0
    """Multiplier on every noise amplitude below."""
    noise_lin_vel: float = 0.1
    """Half-width of the base linear velocity noise (m/s, before the observation scale)."""
    noise_ang_vel: float = 0.3
    """Half-width of the base angular velocity noise (rad/s, before the observation scale)."""
    noise_gravity: float = 0.05
    """Half-width of the projected-gravity noise."""
    noise_dof_pos: float = 0.03
    """Half-width of the joint position noise (rad)."""
    noise_dof_vel: float = 1.5
    """Half-width of the joint velocity noise (rad/s, before the observation scale)."""
    randomize_friction: bool = True
    """Draw each env's effective foot–floor friction coefficient."""
    friction_range: tuple[float, float] = (0.625, 1.375)
    """Effective friction range (the reference's U[0.25, 1.75] averaged with the floor's 1.0)."""
    randomize_base_mass: bool = True
    """Add a random mass to each env's trunk."""
    added_mass_range: tuple[float, float] = (-1.0, 1.0)
    """Range of the mass added to the trunk (kg)."""
    randomize_gains: bool = True
    """Draw per-env, per-joint Kp and Kd multipliers at every reset."""
    kp_multiplier_range: tuple[float, float] = (0.9, 1.1)
    """Range of the Kp multipliers."""
    kd_multiplier_range: tuple[float, float] = (0.9, 1.1)
    """Range of the Kd multipliers."""
    push_robots: bool = True
    """Push the base periodically (off: the env's push clock still runs, nothing is pushed)."""
    push_interval_s: float = 15.0
    """Time between two pushes of an env (s), on its own push clock (``info["push_countdown"]``), which starts
    at a random point of the interval and runs on across episode ends."""
    max_push_vel_xy: float = 1.0
    """A push sets the base's world-frame xy velocity to U[−max, max] (m/s)."""
    randomize_initial_episode_length: bool = True
    """Start training with episode lengths drawn uniformly, so time-outs don't arrive in lock-step."""
    reset_batch_size: int = 16
    """Envs of one device (or process) that a control step restarts by a gathered reset of this many; a step in
    which more finish resets the whole batch and keeps the finished rows, one in which none finish resets
    nothing. Every path gives the same states (0 = always the whole-batch path)."""
    solver_iterations: int = 4
    """Newton iterations of MuJoCo's constraint solver per physics step (the scene's value; 3 is the fewest
    that keeps every stand/fall outcome of the converged solve, ``docs/BENCHMARKS.md``)."""
    solver_ls_iterations: int = 3
    """Line-search iterations per Newton iteration (the scene's value)."""
    impl: str = "jax"
    """MJX implementation of the physics (``mjx.put_model(impl=...)``): 'jax' (pure JAX, any device) or 'warp'
    (MuJoCo Warp kernels called from JAX; NVIDIA GPUs, and slowly the CPU; needs the warp-lang package)."""

    @property
    def control_dt(self) -> float:
        """Control period (s)."""
        return self.physics_dt * self.decimation

    @property
    def tracking_average_alpha(self) -> float:
        """The tracking average's step toward each new velocity: ``1 − exp(−control_dt / tracking_average_s)``,
        1 (the step's own velocity) when the average is off."""
        if self.tracking_average_s <= 0:
            return 1.0
        return 1.0 - math.exp(-self.control_dt / self.tracking_average_s)

    @property
    def action_filter_alpha(self) -> float:
        """The action filter's step toward each new action (:func:`low_pass_alpha`)."""
        return low_pass_alpha(self.action_filter_hz, self.control_dt)

    @property
    def max_episode_steps(self) -> int:
        """Control steps after which an episode times out."""
        return math.ceil(round(self.episode_length_s / self.control_dt, 9))

    @property
    def command_resample_steps(self) -> int:
        """Control steps between command draws."""
        return max(1, int(round(self.command_resample_s / self.control_dt)))

    @property
    def push_interval_steps(self) -> int:
        """Control steps between pushes."""
        return max(1, int(math.ceil(round(self.push_interval_s / self.control_dt, 9))))

    @property
    def default_joint_pos(self) -> np.ndarray:
        """Default joint angles of all 12 joints, legs FL, FR, RL, RR, ``[12]`` rad."""
        return np.tile(np.asarray(self.default_joint_angles, dtype=np.float64), a1.NUM_LEGS)

    def _checks(self) -> Iterator[Check]:
        yield "num_envs", self.num_envs >= 1, "an integer >= 1"
        yield "physics_dt", 0 < self.physics_dt <= 0.05, "a time step in (0, 0.05] s"
        yield "decimation", self.decimation >= 1, "an integer >= 1"
        yield "episode_length_s", self.episode_length_s > self.control_dt, "longer than one control period"
        yield "action_scale", self.action_scale > 0, "a positive scale"
        yield "clip_actions", self.clip_actions > 0, "a positive bound"
        yield "clip_observations", self.clip_observations > 0, "a positive bound"
        yield "kp", self.kp >= 0, "a non-negative gain"
        yield "kd", self.kd >= 0, "a non-negative gain"
        yield ("amp_history_lags", all(0 < lag <= MAX_AMP_HISTORY_LAG for lag in self.amp_history_lags)
               and list(self.amp_history_lags) == sorted(set(self.amp_history_lags)),
               f"increasing control-step lags in [1, {MAX_AMP_HISTORY_LAG}]")
        yield "init_height", self.init_height > 0, "a positive height (m)"
        yield "rsi_probability", 0 <= self.rsi_probability <= 1, "a probability in [0, 1]"
        yield "rsi_command_from_clip", 0 <= self.rsi_command_from_clip <= 1, "a probability in [0, 1]"
        for name in ("command_lin_vel_x", "command_lin_vel_y", "command_ang_vel_yaw", "friction_range",
                     "added_mass_range", "kp_multiplier_range", "kd_multiplier_range"):
            low, high = getattr(self, name)
            yield name, low <= high, "a range [low, high] with low <= high"
        yield "command_resample_s", self.command_resample_s > 0, "a positive period (s)"
        yield "min_command_norm", self.min_command_norm >= 0, "a non-negative speed (m/s)"
        yield ("standing_command_probability", 0 <= self.standing_command_probability <= 1,
               "a probability in [0, 1]")
        yield ("action_filter_hz", 0 <= self.action_filter_hz <= 0.5 / self.control_dt,
               f"a cut-off in [0, {0.5 / self.control_dt:g}] Hz (0 = no filter; at most half the control rate)")
        yield ("gait_clock_hz", 0 <= self.gait_clock_hz <= 0.5 / self.control_dt,
               f"a frequency in [0, {0.5 / self.control_dt:g}] Hz (0 = no clock; at most half the control rate)")
        yield ("policy_history", 0 <= self.policy_history <= MAX_POLICY_HISTORY,
               f"an integer number of earlier observations in [0, {MAX_POLICY_HISTORY}]")
        yield ("policy_base_lin_vel", not self.policy_base_lin_vel or self.policy_base_ang_vel,
               "false unless env.policy_base_ang_vel is true (a velocity estimate comes with the gyroscope)")
        yield "tracking_sigma", self.tracking_sigma > 0, "a positive kernel width"
        yield "tracking_sigma_fine", self.tracking_sigma_fine > 0, "a positive kernel width"
        yield "tracking_sigma_lateral", self.tracking_sigma_lateral > 0, "a positive kernel width"
        yield "feet_air_time_target", 0 <= self.feet_air_time_target <= 2.0, "an air time in [0, 2] s"
        yield ("tracking_average_s", 0 <= self.tracking_average_s <= MAX_TRACKING_AVERAGE_S,
               f"a time constant in [0, {MAX_TRACKING_AVERAGE_S:g}] s (0 = the step's own velocity)")
        for name in ("obs_scale_lin_vel", "obs_scale_ang_vel", "obs_scale_dof_pos", "obs_scale_dof_vel"):
            yield name, getattr(self, name) > 0, "a positive scale"
        for name in ("noise_level", "noise_lin_vel", "noise_ang_vel", "noise_gravity", "noise_dof_pos",
                     "noise_dof_vel", "push_interval_s", "max_push_vel_xy"):
            yield name, getattr(self, name) >= 0, "a non-negative value"
        yield "friction_range", self.friction_range[0] > 0, "positive friction coefficients"
        yield "kp_multiplier_range", self.kp_multiplier_range[0] >= 0, "non-negative multipliers"
        yield "kd_multiplier_range", self.kd_multiplier_range[0] >= 0, "non-negative multipliers"
        yield "solver_iterations", 1 <= self.solver_iterations <= 100, "an integer in [1, 100]"
        yield "solver_ls_iterations", 1 <= self.solver_ls_iterations <= 100, "an integer in [1, 100]"
        yield "reset_batch_size", self.reset_batch_size >= 0, "an integer >= 0 (0 = reset the whole batch)"
        yield "impl", self.impl in ("jax", "warp"), "'jax' or 'warp'"
        yield ("reward_scales.feet_air_time", self.reward_scales.feet_air_time == 0 or self.impl == "jax",
               "0 with impl 'warp' (the foot contact forces are read from the 'jax' implementation's contact list)")
        yield ("impl", self.impl != "warp" or importlib.util.find_spec("warp") is not None,
               "'jax', or 'warp' with the warp-lang package installed (pip install warp-lang, about 150 MB)")
