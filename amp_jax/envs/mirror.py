"""The A1's left-right mirror: the reflection through the trunk's sagittal (x–z) plane, as maps of every vector
the project stores (joint vectors, policy and critic observations, actions, AMP features, clip frames).

A reflection ``M = diag(1, −1, 1)`` (base axes) maps a polar vector ``v`` (position, linear velocity, gravity)
to ``M v`` and an axial one ``ω`` (angular velocity, rotation axis) to ``−M ω``; an orientation ``R`` goes to
``M R M``, which for a quaternion (w, x, y, z) is (w, −x, y, −z). Legs swap (FL↔FR, RL↔RR); a hinge with
world axis ``a`` whose mirror joint has axis ``a'`` moves by ``θ' = −θ`` when ``a' = M a`` and ``θ' = θ`` when
``a' = −M a`` — both read from the model (:func:`joint_map`): the hip ab/ad joints (axis x) change sign, the
thigh and calf joints (axis y) do not. Commands (v_x, v_y, yaw rate) go to (v_x, −v_y, −yaw rate).

The gait clock (``env.gait_clock_hz``), which drives nothing, moves half a cycle: ``(sin 2πφ, cos 2πφ)`` goes to
its negative. The mirror of a trot or pace swaps each foot with its partner half a stride out of phase, so a
policy equivariant under this map can step from the mirror-symmetric stance; under the plain mirror (no shift)
that stance is a fixed point of an equivariant policy (``docs/RESULTS.md``). The shift commutes with the clock's
advance and keeps its uniform initial phase uniform, so the mirrored MDP is the MDP itself.

Feet are measured from the trunk's centre of mass ``c`` (base axes), which sits 2.2 mm left of the mid-plane:
a mirrored robot's foot ``M f_base`` is stored as ``M f_base − c = M (f + c) − c``, so the foot map carries the
offset ``M c − c = (0, −2 c_y, 0)``.

Every map is a :class:`SignedPermutation`, an involution (applied twice it is the identity). The model itself is
not exactly symmetric (trunk centre of mass, calf and hip inertia axes); :func:`symmetrized_model` is the mirror-
exact copy the physics test steps (``tests/envs/test_mirror.py``), and ``docs/RESULTS.md`` gives how far the real
model's mirrored rollouts drift.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import mujoco
import numpy as np

from amp_jax import a1
from amp_jax.config import EnvConfig
from amp_jax.envs import observations
from amp_jax.motion import layout

REFLECTION = np.diag([1.0, -1.0, 1.0])
"""``M``: the reflection through the base's x–z plane."""
_MIRROR_LEG = {"FL": "FR", "FR": "FL", "RL": "RR", "RR": "RL"}


Map = Callable[[Any], Any]
"""``x [..., D] -> [..., D]``: one mirror map (an involution)."""


@dataclasses.dataclass(frozen=True)
class MirrorMaps:
    """An env's mirror of each vector the training step handles (last axis; any leading axes): what
    :func:`amp_jax.agents.train_step.make_train_step` takes as ``mirror``."""

    policy_obs: Map
    """Policy observations ``[..., S]``."""
    critic_obs: Map
    """Critic observations ``[..., P]``."""
    action: Map
    """Actions ``[..., A]``."""
    amp_obs: Map
    """AMP observations ``[..., F]``."""


@dataclasses.dataclass(frozen=True)
class SignedPermutation:
    """``x ↦ x[..., index] · sign + offset`` over the last axis (NumPy or JAX arrays, any leading axes).

    ``index``, ``sign`` and ``offset`` are ``[D]`` NumPy arrays; as a mirror map it is an involution:
    ``index[index] = id``, ``sign[index] · sign = 1`` and ``offset[index] · sign + offset = 0``.
    """

    index: np.ndarray
    sign: np.ndarray
    offset: np.ndarray

    @property
    def size(self) -> int:
        return int(self.index.shape[0])

    def __call__(self, x: Any) -> Any:
        dtype = getattr(x, "dtype", np.float64)  # keeps float32 arrays float32
        out = x[..., self.index] * self.sign.astype(dtype)
        return out + self.offset.astype(dtype) if np.any(self.offset) else out

    def is_involution(self) -> bool:
        """Whether applying the map twice gives the identity, from its arrays alone."""
        return bool(np.array_equal(self.index[self.index], np.arange(self.size))
                    and np.all(self.sign[self.index] * self.sign == 1.0)
                    and np.allclose(self.offset[self.index] * self.sign + self.offset, 0.0))


def signed_permutation(index, sign, offset=None) -> SignedPermutation:
    index = np.asarray(index, np.int64)
    sign = np.asarray(sign, np.float64)
    offset = np.zeros(index.shape, np.float64) if offset is None else np.asarray(offset, np.float64)
    return SignedPermutation(index, sign, offset)


def concatenate(*maps: SignedPermutation) -> SignedPermutation:
    """The map of a vector made of the given maps' vectors one after another."""
    starts = np.cumsum([0] + [m.size for m in maps[:-1]])
    return SignedPermutation(np.concatenate([m.index + s for m, s in zip(maps, starts)]),
                             np.concatenate([m.sign for m in maps]), np.concatenate([m.offset for m in maps]))


POLAR = signed_permutation([0, 1, 2], [1.0, -1.0, 1.0])
"""A polar 3-vector in base (or world) axes: position, linear velocity, gravity."""
AXIAL = signed_permutation([0, 1, 2], [-1.0, 1.0, -1.0])
"""An axial 3-vector: angular velocity."""
COMMAND = signed_permutation([0, 1, 2], [1.0, -1.0, -1.0])
"""(v_x, v_y, yaw rate)."""
QUATERNION = signed_permutation([0, 1, 2, 3], [1.0, -1.0, 1.0, -1.0])
"""An orientation (w, x, y, z): ``R ↦ M R M``."""
SCALAR = signed_permutation([0], [1.0])
GAIT_CLOCK = signed_permutation([0, 1], [-1.0, -1.0])
"""The gait clock's ``(sin 2πφ, cos 2πφ)``: half a cycle on, ``φ ↦ φ + 1/2``."""


def _load_model() -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_path(str(a1.SCENE_XML))


@functools.cache
def joint_map() -> SignedPermutation:
    """The 12 joints (legs FL, FR, RL, RR × hip, thigh, calf), from the model's joint names and world axes at its
    reference pose; for any per-joint vector (positions about the mirror-symmetric default pose, velocities,
    actions, PD targets' offsets)."""
    model = _load_model()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    index, sign = [], []
    for name in a1.JOINT_NAMES:
        leg, rest = name.split("_", 1)
        partner = f"{_MIRROR_LEG[leg]}_{rest}"
        axis = data.xaxis[model.joint(name).id]
        partner_axis = data.xaxis[model.joint(partner).id]
        mirrored = REFLECTION @ axis
        if np.allclose(partner_axis, mirrored, atol=1e-9):
            sign.append(-1.0)
        elif np.allclose(partner_axis, -mirrored, atol=1e-9):
            sign.append(1.0)
        else:
            raise ValueError(f"{a1.SCENE_XML}: joint {partner}'s axis {partner_axis} is not the mirror image of "
                             f"{name}'s {axis}: the model is not left-right symmetric")
        index.append(a1.JOINT_NAMES.index(partner))
    return signed_permutation(index, sign)


@functools.cache
def trunk_com_offset() -> np.ndarray:
    """The trunk's centre of mass from the base origin, base axes ``[3]`` (m), read from the model."""
    model = _load_model()
    return np.array(model.body_ipos[model.body(a1.TRUNK_BODY).id])


def _per_leg(leg_map: SignedPermutation) -> SignedPermutation:
    """4 legs × a 3-vector in base axes: legs swapped, each vector mapped by ``leg_map``."""
    legs = [_MIRROR_LEG[leg] for leg in a1.LEG_NAMES]
    index = np.concatenate([3 * a1.LEG_NAMES.index(partner) + leg_map.index for partner in legs])
    return SignedPermutation(index, np.tile(leg_map.sign, 4), np.tile(leg_map.offset, 4))


def foot_map() -> SignedPermutation:
    """Foot positions ``[12]`` in base axes measured from the trunk's centre of mass (see the module docstring)."""
    com = trunk_com_offset()
    return _per_leg(SignedPermutation(POLAR.index, POLAR.sign, REFLECTION @ com - com))


@functools.cache
def critic_observation_map(gait_clock: bool = False) -> SignedPermutation:
    """The critic observation ``[48]`` (:mod:`amp_jax.envs.observations`), ``[50]`` with the ``gait_clock``; the
    policy's is its ``[6:]``."""
    joints = joint_map()
    clock = (GAIT_CLOCK,) if gait_clock else ()
    mirror = concatenate(POLAR, AXIAL, POLAR, COMMAND, joints, joints, joints, *clock)
    assert mirror.size == observations.CRITIC_OBS_SIZE + observations.GAIT_CLOCK_SIZE * gait_clock
    return mirror


@functools.cache
def policy_observation_map(gait_clock: bool = False, base_ang_vel: bool = False,
                           base_lin_vel: bool = False) -> SignedPermutation:
    """One step's policy observation ``[42]``: gravity, command, joint positions, joint velocities, last action;
    preceded by the base's angular velocity (``[45]``) with ``base_ang_vel`` and by its linear velocity before
    that (``[48]``) with ``base_lin_vel``, followed by the clock (2 more) with the ``gait_clock``."""
    joints = joint_map()
    clock = (GAIT_CLOCK,) if gait_clock else ()
    gyro = (AXIAL,) if base_ang_vel else ()
    lin_vel = (POLAR,) if base_lin_vel else ()
    mirror = concatenate(*lin_vel, *gyro, POLAR, COMMAND, joints, joints, joints, *clock)
    assert mirror.size == (observations.POLICY_OBS_SIZE + observations.GAIT_CLOCK_SIZE * gait_clock
                           + observations.GYRO_SIZE * base_ang_vel + observations.LIN_VEL_SIZE * base_lin_vel)
    return mirror


def action_map() -> SignedPermutation:
    """Actions ``[12]``: offsets of the PD targets from the (mirror-symmetric) default pose."""
    return joint_map()


@functools.cache
def amp_observation_map() -> SignedPermutation:
    """AMP features ``[43]``: joints, feet from the trunk's centre of mass, v_base, ω_base, q̇, base height."""
    joints = joint_map()
    mirror = concatenate(joints, foot_map(), POLAR, AXIAL, joints, SCALAR)
    assert mirror.size == observations.AMP_OBS_SIZE
    return mirror


@functools.cache
def frame_map() -> SignedPermutation:
    """Motion frames ``[61]`` (:mod:`amp_jax.motion.layout`): root position (world, mirrored through the world's
    x–z plane), root quaternion, joints, feet, base velocities, joint velocities, foot velocities."""
    joints = joint_map()
    mirror = concatenate(POLAR, QUATERNION, joints, foot_map(), POLAR, AXIAL, joints, _per_leg(POLAR))
    assert mirror.size == layout.FRAME_WIDTH
    return mirror


def qpos_map() -> SignedPermutation:
    """MuJoCo ``qpos [19]``: free joint (world position, quaternion), then the 12 joints."""
    return concatenate(POLAR, QUATERNION, joint_map())


def qvel_map() -> SignedPermutation:
    """MuJoCo ``qvel [18]``: free joint (world linear velocity, body-frame angular velocity), then the joints."""
    return concatenate(POLAR, AXIAL, joint_map())


def a1_mirror_maps(gait_clock: bool = False, amp_history: int = 0, policy_history: int = 0,
                   policy_base_ang_vel: bool = False, policy_base_lin_vel: bool = False) -> MirrorMaps:
    """The A1 env's maps as the training step takes them, for an env with or without a ``gait_clock`` (and a policy
    that does or does not observe the base's angular velocity, ``policy_base_ang_vel``, and linear velocity,
    ``policy_base_lin_vel``), with
    ``amp_history`` earlier states in its AMP observation (``len(env.amp_history_lags)``) and ``policy_history``
    earlier steps in its policy observation (``env.policy_history``): each state's features, each step's
    observation, mirrored alike."""
    step = policy_observation_map(gait_clock, policy_base_ang_vel, policy_base_lin_vel)
    policy_obs = concatenate(*[step] * (1 + policy_history))
    return MirrorMaps(policy_obs=policy_obs, critic_obs=critic_observation_map(gait_clock),
                      action=action_map(), amp_obs=concatenate(*[amp_observation_map()] * (1 + amp_history)))


def a1_mirror_maps_for(env: EnvConfig) -> MirrorMaps:
    """:func:`a1_mirror_maps` of the A1 env of config ``env`` (its clock, histories and policy inputs)."""
    return a1_mirror_maps(gait_clock=env.gait_clock_hz > 0, amp_history=len(env.amp_history_lags),
                          policy_history=env.policy_history, policy_base_ang_vel=env.policy_base_ang_vel,
                          policy_base_lin_vel=env.policy_base_lin_vel)


def _full_inertia(model: mujoco.MjModel, body: int) -> np.ndarray:
    rotation = np.zeros(9)
    mujoco.mju_quat2Mat(rotation, model.body_iquat[body])
    rotation = rotation.reshape(3, 3)
    return rotation @ np.diag(model.body_inertia[body]) @ rotation.T


def _set_inertia(model: mujoco.MjModel, body: int, inertia: np.ndarray) -> None:
    values, vectors = np.linalg.eigh(0.5 * (inertia + inertia.T))
    if np.linalg.det(vectors) < 0:
        vectors[:, 0] = -vectors[:, 0]
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, vectors.reshape(-1))
    model.body_inertia[body] = values
    model.body_iquat[body] = quat


def symmetrized_model(model: mujoco.MjModel) -> mujoco.MjModel:
    """A copy of the A1 model that is exactly mirror-symmetric: the trunk's centre of mass on the mid-plane and
    its inertia averaged with its mirror image; each right-side body (FR, RR) the mirror image of its left
    partner (mass, centre of mass, inertia, frame). Everything else is the model's own."""
    model = model.__copy__()
    trunk = model.body(a1.TRUNK_BODY).id
    model.body_ipos[trunk] = model.body_ipos[trunk] * np.array([1.0, 0.0, 1.0])
    inertia = _full_inertia(model, trunk)
    _set_inertia(model, trunk, 0.5 * (inertia + REFLECTION @ inertia @ REFLECTION))
    for leg in ("FR", "RR"):
        for part in ("hip", "thigh", "calf"):
            right, left = model.body(f"{leg}_{part}").id, model.body(f"{_MIRROR_LEG[leg]}_{part}").id
            model.body_mass[right] = model.body_mass[left]
            model.body_pos[right] = REFLECTION @ model.body_pos[left]
            model.body_ipos[right] = REFLECTION @ model.body_ipos[left]
            _set_inertia(model, right, REFLECTION @ _full_inertia(model, left) @ REFLECTION)
    return model
