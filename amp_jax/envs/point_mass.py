"""A tiny synthetic environment that keeps the project's env contract, for testing the algorithm on a CPU.

Twelve independent point masses on a line each (one per "joint", so actions have the A1's 12 entries and the
A1's std floor applies). Per control step of ``dt``::

    vel' = (1 − response) · vel + response · max_speed · action
    pos' = pos + dt · vel'

Task: track a velocity command ``cmd ∈ U[−1, 1]^12`` drawn at reset; task reward
``1 − mean((vel' − cmd)²)`` (concave, so action noise always costs reward: 1 is perfect tracking). An
episode ends by time-out after ``max_episode_steps`` (``truncation`` = 1) or when any ``|pos|`` leaves
``position_limit`` ("falls").

Observations: ``obs["state"] [24]`` = (vel, cmd); ``obs["privileged_state"] [36]`` = (vel, cmd, pos / limit).

AMP observation ``[43]``, a function of the velocities only: vel (12), vel² (12), tanh(2·vel) (12), then 7
summaries (mean, std, min, max, rms and mean absolute value of vel; mean of even minus odd entries).
:func:`sample_expert_transitions` draws the "expert": velocities scattered around ``expert_velocity``.

Its mirror (:func:`mirror_maps`) swaps the masses pairwise (0↔1, 2↔3, ...) and reverses every velocity,
command and position: the task, the reward and the expert's alternating velocities are all symmetric under it.

The env is unbatched and never resets itself (brax's contract); wrap it with brax's ``VmapWrapper`` and the
project's :class:`~amp_jax.envs.wrappers.AutoResetWrapper` to train on it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from brax.envs.base import Env, State
from flax import struct

from amp_jax.envs import mirror
from amp_jax.envs.mirror import MirrorMaps

NUM_MASSES = 12
AMP_FEATURES = 43


@struct.dataclass
class PointMassData:
    """The simulated state of one env (stands where ``mjx.Data`` stands for the A1)."""

    pos: jax.Array
    """Positions, ``[12]``."""
    vel: jax.Array
    """Velocities, ``[12]``."""


def amp_features(vel: jax.Array) -> jax.Array:
    """The 43 AMP features of the velocities ``vel [..., 12]`` → ``[..., 43]`` (see the module docstring)."""
    summaries = jnp.stack([jnp.mean(vel, -1), jnp.std(vel, -1), jnp.min(vel, -1), jnp.max(vel, -1),
                           jnp.sqrt(jnp.mean(jnp.square(vel), -1)), jnp.mean(jnp.abs(vel), -1),
                           jnp.mean(vel[..., 0::2] - vel[..., 1::2], -1)], -1)
    return jnp.concatenate([vel, jnp.square(vel), jnp.tanh(2.0 * vel), summaries], -1)


def default_expert_velocity() -> jax.Array:
    """The expert's velocity, ``[12]``: ±0.5 alternating."""
    return 0.5 * jnp.where(jnp.arange(NUM_MASSES) % 2 == 0, 1.0, -1.0)


def sample_expert_transitions(key: jax.Array, batch: int, velocity_noise: float = 0.3,
                              expert_velocity: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Expert AMP transitions ``(s, s_next)``, each ``[batch, 43]``.

    The velocity of each state is ``expert_velocity + velocity_noise · N(0, 1)``, drawn independently for ``s``
    and ``s_next``: what a policy with mean action ``expert_velocity / max_speed`` and std
    ``velocity_noise / max_speed`` produces on this env with ``response = 1``.
    """
    mean_velocity = default_expert_velocity() if expert_velocity is None else expert_velocity
    k_vel, k_next = jax.random.split(key)
    shape = (batch, NUM_MASSES)
    vel = mean_velocity + velocity_noise * jax.random.normal(k_vel, shape)
    vel_next = mean_velocity + velocity_noise * jax.random.normal(k_next, shape)
    return amp_features(vel), amp_features(vel_next)


class PointMassEnv(Env):
    """Velocity tracking with 12 point masses; brax contract plus ``info["amp_obs"]``."""

    def __init__(self, dt: float = 0.1, max_episode_steps: int = 40, position_limit: float = 3.0,
                 max_speed: float = 1.0, response: float = 1.0):
        self.dt = dt
        self.max_episode_steps = max_episode_steps
        self.position_limit = position_limit
        self.max_speed = max_speed
        self.response = response

    def _obs(self, data: PointMassData, command: jax.Array) -> dict[str, jax.Array]:
        state = jnp.concatenate([data.vel, command])
        return {"state": state, "privileged_state": jnp.concatenate([state, data.pos / self.position_limit])}

    def reset(self, rng: jax.Array) -> State:
        """One env: positions U[−1, 1], velocities 0, command U[−1, 1]."""
        k_pos, k_cmd = jax.random.split(rng)
        data = PointMassData(pos=jax.random.uniform(k_pos, (NUM_MASSES,), minval=-1.0, maxval=1.0),
                             vel=jnp.zeros((NUM_MASSES,)))
        command = jax.random.uniform(k_cmd, (NUM_MASSES,), minval=-1.0, maxval=1.0)
        info = {"command": command, "episode_step": jnp.zeros((), jnp.int32), "truncation": jnp.zeros(()),
                "amp_obs": amp_features(data.vel)}
        return State(pipeline_state=data, obs=self._obs(data, command), reward=jnp.zeros(()), done=jnp.zeros(()),
                     metrics={"tracking_error": jnp.zeros(())}, info=info)

    def step(self, state: State, action: jax.Array) -> State:
        """One control step; ``action [12]``."""
        data = state.pipeline_state
        command = state.info["command"]
        vel = (1.0 - self.response) * data.vel + self.response * self.max_speed * action
        data = PointMassData(pos=data.pos + self.dt * vel, vel=vel)
        error = jnp.mean(jnp.square(vel - command))
        step_count = state.info["episode_step"] + 1
        fell = jnp.any(jnp.abs(data.pos) > self.position_limit)
        timed_out = (step_count >= self.max_episode_steps) & ~fell
        info = dict(state.info, episode_step=step_count, truncation=timed_out.astype(jnp.float32),
                    amp_obs=amp_features(data.vel))
        return state.replace(pipeline_state=data, obs=self._obs(data, command),
                             reward=1.0 - error,
                             done=(fell | timed_out).astype(jnp.float32),
                             metrics={"tracking_error": error}, info=info)

    @property
    def observation_size(self) -> dict[str, tuple[int, ...]]:
        return {"state": (2 * NUM_MASSES,), "privileged_state": (3 * NUM_MASSES,)}

    @property
    def action_size(self) -> int:
        return NUM_MASSES

    @property
    def backend(self) -> str:
        return "synthetic"


def _pair_swap(sign: float) -> mirror.SignedPermutation:
    """12 per-mass values: masses swapped pairwise, each multiplied by ``sign``."""
    return mirror.signed_permutation(np.arange(NUM_MASSES) ^ 1, np.full(NUM_MASSES, sign))


def mirror_maps() -> MirrorMaps:
    """The env's mirror (module docstring) for every vector the training step handles."""
    odd, even = _pair_swap(-1.0), _pair_swap(1.0)
    # summaries (mean, std, min, max, rms, mean |v|, mean of even − odd) of the mirrored velocities
    summaries = mirror.signed_permutation([0, 1, 3, 2, 4, 5, 6], [-1.0, 1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
    return MirrorMaps(policy_obs=mirror.concatenate(odd, odd), critic_obs=mirror.concatenate(odd, odd, odd),
                      action=odd, amp_obs=mirror.concatenate(odd, even, odd, summaries))
