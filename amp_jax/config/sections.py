"""The run configuration's sections: every field, its default, meaning and check (the ``env`` section lives in
:mod:`amp_jax.config.env_section`).

A run is described by one :class:`Config` made of seven sections (``env``, ``motion``, ``networks``,
``ppo``, ``amp``, ``symmetry``, ``train``). Every field has a default equal to the reference system's value
(see ``docs/REFERENCE_VALUES.md``) and a docstring; each section's ``_checks`` say what a valid value is.
Derived values are properties; nothing is mutated after construction. Reading YAML files and overrides into
these classes: :mod:`amp_jax.config.loading`.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterator

import numpy as np

from amp_jax import a1
from amp_jax.config.common import PROJECT_ROOT, Check
from amp_jax.config.env_section import EnvConfig


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
    reversed_clip_weight: float = 0.0
    """Above 0, every clip is also played backwards (``amp_jax.motion.loader.reversed_clip``: a forward trot
    becomes a backward one) for the discriminator's expert data and the reference-state starts, each reversal
    weighted by this times its clip's weight. 0 (the reference): the clips as recorded, which walk forward only."""

    def _checks(self) -> Iterator[Check]:
        yield "files", len(self.files) >= 1, "at least one motion file"
        yield "velocity_repair_threshold", self.velocity_repair_threshold > 0, "a positive threshold (m/s, rad/s)"
        yield ("reversed_clip_weight", bool(np.isfinite(self.reversed_clip_weight))
               and 0 <= self.reversed_clip_weight <= 10, "a weight factor in [0, 10] (0: no reversed clips)")

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
    action_noise_correlation: float = 0.0
    """Step-to-step correlation ρ of each env's exploration noise in a rollout: ``ε_t = ρ ε_{t-1} + √(1-ρ²) w_t``
    (``w_t`` standard normal, ``ε`` drawn afresh at each rollout's first step), so each step's action is still
    ``mean + std · ε_t`` with ``ε_t`` standard normal and PPO's log-probabilities are unchanged, while the noise
    keeps its sign for about ``1/(1-ρ)`` control steps. 0: independent noise at every step (the reference)."""

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
        yield ("action_noise_correlation", 0 <= self.action_noise_correlation < 1,
               "a correlation in [0, 1)")
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
    tempo_negative_rates: tuple[float, ...] = ()
    """Replay rates (× the clip's own) of clip transitions the discriminator learns to score as the policy's: the
    clips played, e.g., twice as fast are not the clips' style (:func:`amp_jax.motion.library.replayed_transitions`;
    each sample's rate drawn uniformly from these). Used when ``tempo_negative_weight`` > 0."""
    tempo_negative_weight: float = 0.0
    """Weight of the tempo term ``½ · mean (D(x_r) + 1)²`` on as many replayed transitions as expert ones in each
    discriminator minibatch (0 = none, the reference's discriminator)."""

    def _checks(self) -> Iterator[Check]:
        for name in ("reward_coef", "grad_penalty_coef", "disc_trunk_weight_decay", "disc_head_weight_decay",
                     "tempo_negative_weight"):
            yield name, getattr(self, name) >= 0, "a non-negative weight"
        yield ("tempo_negative_rates", all(0 < r <= 10 and r != 1 for r in self.tempo_negative_rates),
               "replay rates in (0, 10] other than 1 (rate 1 is the clips themselves)")
        yield ("tempo_negative_rates", self.tempo_negative_weight == 0 or len(self.tempo_negative_rates) >= 1,
               "one or more replay rates when tempo_negative_weight > 0")
        yield "task_reward_lerp", 0 <= self.task_reward_lerp <= 1, "a fraction in [0, 1]"
        yield "replay_buffer_size", self.replay_buffer_size >= 1, "an integer >= 1"
        yield "normalizer_epsilon", self.normalizer_epsilon > 0, "a positive ε"
        yield "normalizer_clip", self.normalizer_clip > 0, "a positive bound"

    @property
    def tempo_negatives(self) -> bool:
        """Whether the discriminator also learns on clips replayed at other rates."""
        return self.enabled and self.tempo_negative_weight > 0


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
    equivariant_networks: bool = False
    """The policy is mirror-equivariant by construction and the value mirror-invariant: the mean action is
    ``½ (f(s) + M f(M s))`` and the value ``½ (g(c) + g(M c))`` of the actor and critic MLPs ``f`` and ``g``, and
    the action std is the same for mirror-partner joints (:mod:`amp_jax.agents.networks`)."""

    def _checks(self) -> Iterator[Check]:
        yield "mirror_loss_coef", self.mirror_loss_coef >= 0, "a non-negative weight"

    @property
    def enabled(self) -> bool:
        """Whether the training step uses any mirror map."""
        return self.ppo_augmentation or self.mirror_loss_coef > 0 or self.discriminator or self.equivariant_networks


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
    init_policy: str = ""
    """A policy file (``<run>/policies/<step>.npz``, e.g. a packaged run's) a new run starts from instead of fresh
    networks: its actor, action std and critic (they must fit this run's observations and networks), its
    discriminator and AMP normaliser when they fit this run's AMP observation (else these start fresh, as when the
    run's ``env.amp_history_lags`` differ), and its learning rate (:mod:`amp_jax.training.warm_start`). The
    optimiser's moments, the replay buffer and the envs start fresh. Not read on ``--resume``."""
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
        yield "init_policy", not self.init_policy or self.init_policy.endswith(".npz"), "a policy file (.npz) or ''"
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
