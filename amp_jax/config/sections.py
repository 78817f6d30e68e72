"""The run configuration's sections: every field, its default, meaning and check.

A run is described by one :class:`Config` made of six sections (``env``, ``motion``, ``networks``,
``ppo``, ``amp``, ``train``). Every field has a default equal to the reference system's value
(see ``docs/REFERENCE_VALUES.md``) and a docstring; each section's ``_checks`` say what a valid value is.
Derived values are properties; nothing is mutated after construction. Reading YAML files and overrides into
these classes: :mod:`amp_jax.config.loading`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import pathlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from amp_jax import a1

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[2]
"""The checkout holding ``configs/``, ``motion_data/`` and ``mjcf/``."""

CONFIG_DIR = PROJECT_ROOT / "configs"


class ConfigError(ValueError):
    """A configuration value is unknown, mistyped, out of range or inconsistent."""

    def __init__(self, source: str, key: str, value: Any, expected: str):
        self.source, self.key, self.value, self.expected = source, key, value, expected
        super().__init__(f"{source}: {key} = {value!r}: expected {expected}")


Check = tuple[str, bool, str]
"""(field name, condition that must hold, what was expected)."""


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
    kp: float = 80.0
    """PD stiffness (N·m/rad)."""
    kd: float = 1.0
    """PD damping (N·m·s/rad)."""
    default_joint_angles: tuple[float, float, float] = (0.0, 0.9, -1.8)
    """Default (hip, thigh, calf) angle of every leg (rad)."""
    init_height: float = 0.42
    """Base height of the non-RSI reset (m)."""
    rsi_probability: float = 0.85
    """Probability that a reset starts from a random motion-data frame (reference-state initialisation)."""
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
    reward_scales: RewardScales = dataclasses.field(default_factory=lambda: RewardScales())
    """Scale of each task-reward term, per control step (the sign lives in the scale)."""
    tracking_sigma: float = 0.25
    """Width of the exponential velocity-tracking kernels ((m/s)² and (rad/s)²)."""
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
        yield "init_height", self.init_height > 0, "a positive height (m)"
        yield "rsi_probability", 0 <= self.rsi_probability <= 1, "a probability in [0, 1]"
        for name in ("command_lin_vel_x", "command_lin_vel_y", "command_ang_vel_yaw", "friction_range",
                     "added_mass_range", "kp_multiplier_range", "kd_multiplier_range"):
            low, high = getattr(self, name)
            yield name, low <= high, "a range [low, high] with low <= high"
        yield "command_resample_s", self.command_resample_s > 0, "a positive period (s)"
        yield "min_command_norm", self.min_command_norm >= 0, "a non-negative speed (m/s)"
        yield ("standing_command_probability", 0 <= self.standing_command_probability <= 1,
               "a probability in [0, 1]")
        yield "tracking_sigma", self.tracking_sigma > 0, "a positive kernel width"
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


@dataclasses.dataclass(frozen=True)
class MotionConfig:
    """Expert motion clips (reference section 1)."""

    files: tuple[str, ...] = (
        "motion_data/trot0.txt", "motion_data/trot1.txt", "motion_data/pace0.txt",
        "motion_data/pace1.txt", "motion_data/leftturn0.txt", "motion_data/rightturn0.txt",
    )
    """Clip files; relative paths resolve against the working directory, then the project root."""
    velocity_repair_threshold: float = 1.0
    """A stored velocity is replaced by the forward difference of the poses where any component differs from it
    by more than this (m/s, rad/s); clean frames agree to about 1e-3."""

    def _checks(self) -> Iterator[Check]:
        yield "files", len(self.files) >= 1, "at least one motion file"
        yield "velocity_repair_threshold", self.velocity_repair_threshold > 0, "a positive threshold (m/s, rad/s)"

    def resolved_files(self) -> tuple[pathlib.Path, ...]:
        """Absolute paths of the clip files (not checked for existence here; the loader reports a missing file)."""
        out = []
        for name in self.files:
            path = pathlib.Path(name).expanduser()
            if not path.is_absolute() and not path.exists():
                path = PROJECT_ROOT / path
            out.append(path.resolve())
        return tuple(out)


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Actor, critic and discriminator (reference section 5)."""

    actor_hidden: tuple[int, ...] = (512, 256, 128)
    """Hidden layer widths of the actor MLP (ELU)."""
    critic_hidden: tuple[int, ...] = (512, 256, 128)
    """Hidden layer widths of the critic MLP (ELU)."""
    init_std: float = 1.0
    """Initial action standard deviation (state-independent, a raw parameter)."""
    min_std_per_leg: tuple[float, float, float] = (0.05, 0.02, 0.05)
    """Std floor of (hip, thigh, calf) as a fraction of the soft joint range; see :attr:`min_std`."""
    disc_hidden: tuple[int, ...] = (1024, 512)
    """Hidden layer widths of the discriminator MLP (LeakyReLU 0.01), linear output."""

    @property
    def min_std(self) -> np.ndarray:
        """Per-joint std floor, ``[12]``: fraction × soft joint range (0.0723, 0.0942, 0.0801 per leg)."""
        return np.tile(np.asarray(self.min_std_per_leg), a1.NUM_LEGS) * a1.soft_joint_range()

    def _checks(self) -> Iterator[Check]:
        for name in ("actor_hidden", "critic_hidden", "disc_hidden"):
            widths = getattr(self, name)
            yield name, len(widths) >= 1 and all(w >= 1 for w in widths), "one or more positive layer widths"
        yield "init_std", self.init_std > 0, "a positive standard deviation"
        yield "min_std_per_leg", all(s >= 0 for s in self.min_std_per_leg), "non-negative fractions"


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO (reference section 5)."""

    num_steps: int = 24
    """Rollout length per env per iteration."""
    num_epochs: int = 5
    """Passes over the batch per iteration."""
    num_minibatches: int = 4
    """Minibatches per epoch; must divide num_envs × num_steps."""
    clip_epsilon: float = 0.2
    """Surrogate ratio clip."""
    value_clip: float = 0.2
    """Clip of the value prediction around the rollout's value (clipped value loss)."""
    value_coef: float = 1.0
    """Weight of the value loss."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus."""
    gamma: float = 0.99
    """Discount."""
    gae_lambda: float = 0.95
    """GAE λ."""
    max_grad_norm: float = 1.0
    """Global-norm clip of the actor-critic gradients (the discriminator's are not clipped)."""
    learning_rate: float = 1e-3
    """Initial learning rate of the one Adam optimiser."""
    schedule: str = "adaptive"
    """'adaptive' (KL-driven, reference rule) or 'fixed'."""
    desired_kl: float = 0.01
    """Adaptive schedule: KL > 2·desired → lr / 1.5; 0 < KL < desired / 2 → lr · 1.5."""
    learning_rate_min: float = 1e-5
    """Floor of the adaptive learning rate."""
    learning_rate_max: float = 1e-2
    """Cap of the adaptive learning rate."""

    def _checks(self) -> Iterator[Check]:
        for name in ("num_steps", "num_epochs", "num_minibatches"):
            yield name, getattr(self, name) >= 1, "an integer >= 1"
        for name in ("clip_epsilon", "value_clip", "max_grad_norm", "learning_rate", "desired_kl",
                     "learning_rate_min", "learning_rate_max"):
            yield name, getattr(self, name) > 0, "a positive value"
        for name in ("value_coef", "entropy_coef"):
            yield name, getattr(self, name) >= 0, "a non-negative weight"
        yield "gamma", 0 <= self.gamma <= 1, "a discount in [0, 1]"
        yield "gae_lambda", 0 <= self.gae_lambda <= 1, "a λ in [0, 1]"
        yield "schedule", self.schedule in ("adaptive", "fixed"), "'adaptive' or 'fixed'"
        yield ("learning_rate_max", self.learning_rate_min <= self.learning_rate_max,
               f"at least learning_rate_min ({self.learning_rate_min})")
        yield ("learning_rate", self.schedule != "adaptive"
               or self.learning_rate_min <= self.learning_rate <= self.learning_rate_max,
               f"within [learning_rate_min, learning_rate_max] = [{self.learning_rate_min}, "
               f"{self.learning_rate_max}] (the adaptive schedule's bounds)")


@dataclasses.dataclass(frozen=True)
class AMPConfig:
    """Adversarial motion prior (reference section 5)."""

    enabled: bool = True
    """False: no motion prior in the iteration, for the paper's baselines. The policy's reward is the task reward
    alone (``task_reward_lerp`` and ``reward_coef`` unused); nothing is computed for the discriminator (no score,
    no replay insert, no expert draw, no discriminator loss or penalty, no AMP normaliser update), whose
    parameters stay as initialised so that the run's state keeps one structure."""
    reward_coef: float = 2.0
    """AMP reward = reward_coef · max(0, 1 − ¼(D − 1)²)."""
    task_reward_lerp: float = 0.3
    """Mixed reward = (1 − lerp) · AMP reward + lerp · task reward."""
    grad_penalty_coef: float = 10.0
    """Weight of the gradient penalty mean ‖∇ₓD(x)‖² on expert transitions."""
    disc_trunk_weight_decay: float = 1e-3
    """L2 coefficient added to the discriminator trunk's gradients (coupled, PyTorch-Adam style)."""
    disc_head_weight_decay: float = 1e-1
    """L2 coefficient added to the discriminator output layer's gradients."""
    replay_buffer_size: int = 1_000_000
    """Capacity of the policy-transition replay buffer."""
    normalizer_epsilon: float = 1e-4
    """Initial count of the AMP normaliser and the ε inside its √(σ² + ε)."""
    normalizer_clip: float = 10.0
    """Normalised AMP features are clipped to ±clip."""

    def _checks(self) -> Iterator[Check]:
        for name in ("reward_coef", "grad_penalty_coef", "disc_trunk_weight_decay", "disc_head_weight_decay"):
            yield name, getattr(self, name) >= 0, "a non-negative weight"
        yield "task_reward_lerp", 0 <= self.task_reward_lerp <= 1, "a fraction in [0, 1]"
        yield "replay_buffer_size", self.replay_buffer_size >= 1, "an integer >= 1"
        yield "normalizer_epsilon", self.normalizer_epsilon > 0, "a positive ε"
        yield "normalizer_clip", self.normalizer_clip > 0, "a positive bound"


@dataclasses.dataclass(frozen=True)
class SymmetryConfig:
    """Left-right mirror symmetry in training (the A1's maps: :mod:`amp_jax.a1_mirror`); all off by default."""

    ppo_augmentation: bool = False
    """Each PPO minibatch also carries its mirrored samples (mirrored observations and actions, with the original
    samples' advantages, returns, values and log-probabilities); the KL of the adaptive learning rate is measured
    on the original half."""
    mirror_loss_coef: float = 0.0
    """Weight of the mirror loss ``mean ‖μ(M s) − M μ(s)‖²`` on the policy means of each minibatch (0 = none)."""
    discriminator: bool = False
    """Each discriminator minibatch also holds the mirror image of its policy transitions, and the expert
    transitions come from the clips and their mirror images (same weights; a mirrored left turn is a right
    turn)."""
    reference_state_init: bool = False
    """Reference-state initialisation draws from the clips and their mirror images."""

    def _checks(self) -> Iterator[Check]:
        yield "mirror_loss_coef", self.mirror_loss_coef >= 0, "a non-negative weight"

    @property
    def enabled(self) -> bool:
        """Whether the training step uses any mirror map."""
        return self.ppo_augmentation or self.mirror_loss_coef > 0 or self.discriminator


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The training run."""

    seed: int = 1
    """Seed of every random stream of the run."""
    num_iterations: int = 3000
    """Training iterations (rollout + update each); the reference's 500,000 meant 'until stopped'."""
    checkpoint_interval: int = 100
    """Iterations between checkpoints (one is also written at the end and on Ctrl-C)."""
    keep_checkpoints: int = 5
    """Checkpoints kept; older ones are deleted."""
    run_root: str = "runs"
    """Folder under which each run gets its own folder."""
    num_devices: int = 0
    """Devices the envs, rollouts and minibatches are split over (data parallel): 0 = every device JAX sees
    (every host's under ``train.py --distributed``), n = the first n. env.num_envs, the minibatch and
    amp.replay_buffer_size must be multiples of the count."""
    processes: int = 0
    """Processes of one run on a CPU host, one CPU device each, joined by JAX's distributed runtime (XLA steps
    one device's envs on one core, so a second process uses a second core): 0 = automatic, one per core while
    each gets at least 128 envs and the config splits evenly, one process on an accelerator; n = n processes.
    ``train.py`` starts them (``--processes N`` sets this); env.num_envs, the minibatch and
    amp.replay_buffer_size must be multiples of the count."""
    time_limit_s: float = 0.0
    """Wall-clock budget of the run's training loop (s, counted from the start of this invocation, compilation
    included; 0 = none). When it is spent the run stops after the iteration in progress, as if it had reached
    num_iterations: final checkpoint, then the evaluation. A resumed run gets a fresh budget."""
    probe_interval: int = 50
    """Every this many iterations the deterministic policy (the mean action, as the robot runs it) is rolled out
    at each of probe_forward_speeds and its tracking and gait are logged as ``probe/...`` metrics (0 = never)."""
    probe_forward_speeds: tuple[float, ...] = (0.4, 0.8, 1.2)
    """Forward-speed commands of the probe (m/s); one noise-free env each, vmapped."""
    probe_commands: tuple[tuple[float, float, float], ...] = ()
    """More probe commands (v_x m/s, v_y m/s, yaw rate rad/s), one env each: their tracking per axis is logged as
    ``probe/vy_rms`` and ``probe/yaw_rms``, their responses as ``probe/vy_<command>`` and ``probe/yaw_<command>``."""

    def _checks(self) -> Iterator[Check]:
        yield "seed", self.seed >= 0, "a non-negative integer"
        yield "time_limit_s", self.time_limit_s >= 0, "a non-negative wall-clock budget in seconds (0 = none)"
        yield "probe_interval", self.probe_interval >= 0, "an integer >= 0 (0 = no probe)"
        yield ("probe_forward_speeds", len(self.probe_forward_speeds) >= 1
               and all(abs(v) <= 5.0 for v in self.probe_forward_speeds), "one or more speeds within ±5 m/s")
        yield ("probe_commands", all(len(c) == 3 and all(abs(v) <= 5.0 for v in c) for c in self.probe_commands),
               "a list of [v_x, v_y, yaw rate] commands, each entry within ±5")
        yield "num_iterations", self.num_iterations >= 1, "an integer >= 1"
        yield "checkpoint_interval", self.checkpoint_interval >= 1, "an integer >= 1"
        yield "keep_checkpoints", self.keep_checkpoints >= 1, "an integer >= 1"
        yield "num_devices", self.num_devices >= 0, "0 (every device) or a device count >= 1"
        yield "processes", self.processes >= 0, "0 (automatic) or a process count >= 1"


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole run."""

    env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    """The environment."""
    motion: MotionConfig = dataclasses.field(default_factory=MotionConfig)
    """The expert motion clips."""
    networks: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    """Network shapes."""
    ppo: PPOConfig = dataclasses.field(default_factory=PPOConfig)
    """PPO."""
    amp: AMPConfig = dataclasses.field(default_factory=AMPConfig)
    """The adversarial motion prior."""
    symmetry: SymmetryConfig = dataclasses.field(default_factory=SymmetryConfig)
    """Left-right mirror symmetry."""
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    """The run."""

    @property
    def batch_size(self) -> int:
        """Transitions per iteration: num_envs × num_steps."""
        return self.env.num_envs * self.ppo.num_steps

    @property
    def minibatch_size(self) -> int:
        """Transitions per PPO minibatch (and AMP policy/expert transitions per discriminator step)."""
        return self.batch_size // self.ppo.num_minibatches

    def _checks(self) -> Iterator[Check]:
        yield ("ppo.num_minibatches", self.batch_size % self.ppo.num_minibatches == 0,
               f"a divisor of env.num_envs × ppo.num_steps = {self.batch_size}")
        yield ("symmetry.discriminator", self.amp.enabled or not self.symmetry.discriminator,
               "false when amp.enabled is false (there is no discriminator to mirror for)")
