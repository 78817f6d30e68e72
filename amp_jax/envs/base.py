"""Model loading, leg kinematics, PD control and state read-outs of the A1 on MJX.

Frames: "world" is the floor frame (z up); "base" is the trunk body frame (origin at the URDF base origin).
The free joint stores ``qpos = [p_world (3), quat_wxyz (4), q (12)]`` and ``qvel = [v_world (3),
ω_base (3), q̇ (12)]``.
"""

from __future__ import annotations

import pathlib

import flax.struct
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from amp_jax import a1


@flax.struct.dataclass
class LegGeometry:
    """Fixed offsets of the leg chain read from the model, all in the parent body's axes (m).

    hip_pos ``[4, 3]``: hip joint from the base origin; thigh_pos ``[4, 3]``: thigh joint from the hip joint;
    calf_pos ``[4, 3]``: knee from the thigh joint; foot_pos ``[4, 3]``: foot-sphere centre from the knee.
    Joint axes: hip x, thigh y, calf y (checked at load).
    """

    hip_pos: jax.Array
    thigh_pos: jax.Array
    calf_pos: jax.Array
    foot_pos: jax.Array


def load_mj_model(path: str | pathlib.Path = a1.SCENE_XML) -> mujoco.MjModel:
    """Compiles the scene and checks that its joints, actuators and sites are the ones this env assumes."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: MJCF scene not found")
    model = mujoco.MjModel.from_xml_path(str(path))
    joint_names = tuple(model.joint(i).name for i in range(1, model.njnt))
    if model.jnt_type[0] != mujoco.mjtJoint.mjJNT_FREE or joint_names != a1.JOINT_NAMES:
        raise ValueError(f"{path}: expected a free joint then {a1.JOINT_NAMES}, got {joint_names}")
    if model.nu != a1.NUM_JOINTS or not np.array_equal(model.actuator_trnid[:, 0], np.arange(1, 13)):
        raise ValueError(f"{path}: expected 12 motors on the 12 leg joints, in joint order")
    expected_axes = np.tile(np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0]]), (4, 1))
    if not np.allclose(model.jnt_axis[1:], expected_axes):
        raise ValueError(f"{path}: expected joint axes hip x, thigh y, calf y")
    for name in a1.FOOT_SITE_NAMES:
        model.site(name)  # raises KeyError naming the missing site
    return model


def leg_geometry(model: mujoco.MjModel) -> LegGeometry:
    """Reads the leg chain's fixed offsets from the compiled model."""

    def body_pos(names):
        return jnp.asarray(np.stack([model.body(n).pos for n in names]), jnp.float32)

    foot = np.stack([model.site(n).pos for n in a1.FOOT_SITE_NAMES])
    return LegGeometry(hip_pos=body_pos(a1.HIP_BODIES), thigh_pos=body_pos(a1.THIGH_BODIES),
                       calf_pos=body_pos(a1.CALF_BODIES), foot_pos=jnp.asarray(foot, jnp.float32))


def _rot_x(angle: jax.Array, v: jax.Array) -> jax.Array:
    c, s = jnp.cos(angle), jnp.sin(angle)
    return jnp.stack([v[..., 0], c * v[..., 1] - s * v[..., 2], s * v[..., 1] + c * v[..., 2]], axis=-1)


def _rot_y(angle: jax.Array, v: jax.Array) -> jax.Array:
    c, s = jnp.cos(angle), jnp.sin(angle)
    return jnp.stack([c * v[..., 0] + s * v[..., 2], v[..., 1], -s * v[..., 0] + c * v[..., 2]], axis=-1)


def leg_points(geometry: LegGeometry, joint_pos: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Forward kinematics of the four legs in base axes, from the base origin.

    Args:
      geometry: the model's leg offsets.
      joint_pos: ``[12]`` joint angles (rad), legs FL, FR, RL, RR × (hip, thigh, calf).
    Returns:
      (thigh joints, knees, foot-sphere centres), each ``[4, 3]`` (m).
    """
    q = joint_pos.reshape(4, 3)
    hip, thigh, calf = q[:, 0], q[:, 1], q[:, 2]
    # Points of the calf chain in thigh-joint axes, then rotated up the chain.
    knee_in_thigh = _rot_y(thigh, geometry.calf_pos)
    foot_in_thigh = knee_in_thigh + _rot_y(thigh + calf, geometry.foot_pos)
    thigh_joint = geometry.hip_pos + _rot_x(hip, geometry.thigh_pos)
    knee = thigh_joint + _rot_x(hip, knee_in_thigh)
    foot = thigh_joint + _rot_x(hip, foot_in_thigh)
    return thigh_joint, knee, foot


def foot_positions_from_com(geometry: LegGeometry, joint_pos: jax.Array) -> jax.Array:
    """Foot-sphere centres in base axes measured from the trunk's centre of mass, ``[12]`` (m), 4 × xyz."""
    _, _, foot = leg_points(geometry, joint_pos)
    return (foot - jnp.asarray(a1.TRUNK_COM_OFFSET, jnp.float32)).reshape(-1)


def quat_rotate(quat: jax.Array, v: jax.Array) -> jax.Array:
    """Rotates ``v [..., 3]`` by the unit quaternion ``quat [4]`` (w, x, y, z): body axes → world."""
    w, u = quat[0], quat[1:]
    return v + 2.0 * jnp.cross(u, jnp.cross(u, v) + w * v)


def quat_rotate_inverse(quat: jax.Array, v: jax.Array) -> jax.Array:
    """Rotates ``v [..., 3]`` by the inverse of ``quat [4]`` (w, x, y, z): world → body axes."""
    return quat_rotate(quat * jnp.array([1.0, -1.0, -1.0, -1.0]), v)


def base_quat(qpos: jax.Array) -> jax.Array:
    """Base orientation (w, x, y, z), normalised, ``[4]``."""
    q = qpos[a1.QPOS_BASE_QUAT]
    return q / jnp.linalg.norm(q)


def base_lin_vel(qpos: jax.Array, qvel: jax.Array) -> jax.Array:
    """Linear velocity of the base origin in base axes ``[3]`` (m/s)."""
    return quat_rotate_inverse(base_quat(qpos), qvel[a1.QVEL_BASE_LIN])


def base_ang_vel(qvel: jax.Array) -> jax.Array:
    """Angular velocity of the base in base axes ``[3]`` (rad/s)."""
    return qvel[a1.QVEL_BASE_ANG]


def projected_gravity(qpos: jax.Array) -> jax.Array:
    """The unit gravity direction (0, 0, −1) in base axes ``[3]``."""
    return quat_rotate_inverse(base_quat(qpos), jnp.array([0.0, 0.0, -1.0]))


def pd_torque(target: jax.Array, joint_pos: jax.Array, joint_vel: jax.Array, kp: jax.Array, kd: jax.Array,
              effort_limit: jax.Array) -> jax.Array:
    """PD torque ``clip(kp·(target − q) − kd·q̇, ±effort_limit)``, every argument ``[12]`` (N·m, rad, rad/s)."""
    return jnp.clip(kp * (target - joint_pos) - kd * joint_vel, -effort_limit, effort_limit)


def _trunk_corner_and_link_end_heights(geometry: LegGeometry, qpos: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Heights above the floor (world z, m) of the trunk box's corners ``[8]`` and of the leg links' upper ends
    ``[8]``: the four thigh joints, then the four knees (legs FL, FR, RL, RR)."""
    quat = base_quat(qpos)
    corners_z = qpos[2] + quat_rotate(quat, jnp.asarray(a1.TRUNK_CORNERS, jnp.float32))[:, 2]
    thigh_joint, knee, _ = leg_points(geometry, qpos[a1.QPOS_JOINTS])
    link_ends_z = qpos[2] + quat_rotate(quat, jnp.concatenate([thigh_joint, knee]))[:, 2]
    return corners_z, link_ends_z


def ground_contact(geometry: LegGeometry, qpos: jax.Array) -> jax.Array:
    """Whether the trunk, a thigh or a calf touches the floor (z = 0), from geometry alone; bool scalar.

    The trunk touches iff a corner of its URDF box is below the floor; a thigh or calf touches when one of its
    end points (thigh joint or knee) is within :data:`constants.LEG_LINK_CLEARANCE` of it.
    """
    corners_z, link_ends_z = _trunk_corner_and_link_end_heights(geometry, qpos)
    return (jnp.min(corners_z) < 0.0) | (jnp.min(link_ends_z) < a1.LEG_LINK_CLEARANCE)


NUM_CONTACT_BODIES = 1 + 2 * a1.NUM_LEGS
"""Bodies :func:`body_ground_contacts` checks: the trunk, the four thighs, the four calves."""


def body_ground_contacts(geometry: LegGeometry, qpos: jax.Array) -> jax.Array:
    """Which of the trunk, thighs and calves touch the floor, by the geometry of :func:`ground_contact`;
    bool ``[9]``: trunk, thighs FL, FR, RL, RR, calves FL, FR, RL, RR.

    The trunk touches iff a corner of its box is below the floor; a thigh when its thigh joint or its knee is
    within :data:`a1.LEG_LINK_CLEARANCE` of the floor; a calf when its knee is (its lower end sits inside the
    foot sphere, which reaches the floor first). A knee on the floor counts for its thigh and its calf. Any
    entry true iff :func:`ground_contact`.
    """
    corners_z, link_ends_z = _trunk_corner_and_link_end_heights(geometry, qpos)
    thigh_joint_low = link_ends_z[: a1.NUM_LEGS] < a1.LEG_LINK_CLEARANCE
    knee_low = link_ends_z[a1.NUM_LEGS:] < a1.LEG_LINK_CLEARANCE
    trunk = jnp.min(corners_z, keepdims=True) < 0.0
    return jnp.concatenate([trunk, thigh_joint_low | knee_low, knee_low])


def foot_normal_forces(data: mjx.Data, foot_geom_ids: np.ndarray, pyramidal: bool) -> jax.Array:
    """Normal force of the floor on each foot at the physics step that produced ``data`` ``[4]`` (N, >= 0), legs
    FL, FR, RL, RR; 0 for a foot in the air. The same quantity as C MuJoCo's ``mj_contactForce`` (component 0, in
    the contact frame, whose normal is the floor's z on flat ground), summed over each foot's contacts.

    Read from the constraint forces of MJX's contact list (``impl='jax'`` only): every contact slot of that
    implementation has fixed constraint rows, ``efc_force[efc_address : efc_address + k]``; the normal force is
    the sum of its ``k = 2·(condim − 1)`` pyramid edge forces under the pyramidal friction cone (MuJoCo's
    default; 1 row for condim 1), the first row under the elliptic cone. A slot whose geoms are not touching has
    zero force.

    Args:
      data: MJX data after a physics step (``mjx.step``), 'jax' implementation.
      foot_geom_ids: ``[4]`` ids of the foot geoms (:data:`a1.FOOT_GEOMS`).
      pyramidal: the model's friction cone is pyramidal (``opt.cone == mjCONE_PYRAMIDAL``), else elliptic.
    """
    contact = data._impl.contact  # the 'jax' implementation's fixed-size contact list
    efc_force = data._impl.efc_force
    addresses, dims = np.asarray(contact.efc_address), np.asarray(contact.dim)
    normal = []
    for address, dim in zip(addresses, dims):
        rows = (2 * (dim - 1) if dim > 1 else 1) if pyramidal else 1
        normal.append(jnp.sum(efc_force[address: address + rows]) if address >= 0 else jnp.zeros(()))
    if not normal:
        return jnp.zeros(len(foot_geom_ids))
    on_foot = jnp.any(contact.geom[:, :, None] == jnp.asarray(foot_geom_ids)[None, None, :], axis=1)  # [ncon, 4]
    return jnp.stack(normal) @ on_foot.astype(efc_force.dtype)
