"""Sim-to-sim check: the exported ONNX policy driving the A1 in C MuJoCo, with a NumPy observation and PD loop.

Nothing here uses the JAX environment: the runner reads what it needs from the ONNX file's metadata
(:func:`amp_jax.deploy.export_policy.policy_metadata`: observation scales, default joint angles, action scale, PD
gains, effort limits, physics step, decimation), builds the 42 policy observations (3 more with the base's angular
velocity, 2 more with a gait clock) from ``MjData`` in NumPy (:func:`policy_observation`), followed by those of the
``policy_history`` steps before when the policy has a history, runs the network with onnxruntime and applies PD
torques computed in NumPy before each plain ``mj_step``, as a robot-side runner would. Agreement with the JAX
environment's observation is checked in ``tests/deploy/test_sim2sim.py``.

Reported (:class:`Sim2SimResult`): whether the robot stayed upright for the whole command schedule (trunk tilt
below :data:`amp_jax.analysis.upright.MAX_TILT_RAD` and base height above
:data:`~amp_jax.analysis.upright.MIN_BASE_HEIGHT` at every control step) and the
RMS velocity-tracking error per axis.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import mujoco
import numpy as np

from amp_jax import a1
from amp_jax.analysis import command_schedule, upright
from amp_jax.config.env_section import low_pass_alpha
from amp_jax.deploy import onnx_export

OBSERVATION_ORDER = ("projected_gravity", "commands", "joint_pos", "joint_vel", "last_action")
"""The policy observation's parts, in order; the exported metadata must list the same, preceded by
``base_ang_vel`` when the policy observes the gyroscope (and ``base_lin_vel`` before it when the policy also
observes a velocity estimate) and followed by ``gait_clock`` when it has a gait clock."""
GAIT_CLOCK = "gait_clock"
BASE_ANG_VEL = "base_ang_vel"
BASE_LIN_VEL = "base_lin_vel"

@dataclasses.dataclass(frozen=True)
class RunnerSpec:
    """What the runner takes from the ONNX metadata. Arrays are ``[12]`` in joint order FL, FR, RL, RR."""

    default_joint_pos: np.ndarray
    action_scale: float
    clip_actions: float
    clip_observations: float
    kp: float
    kd: float
    effort_limits: np.ndarray
    physics_dt: float
    decimation: int
    init_height: float
    obs_scales: Mapping[str, np.ndarray]
    """Part name (:data:`OBSERVATION_ORDER`) → element-wise scale."""
    gait_clock_hz: float = 0.0
    """The policy's gait clock (Hz; 0: none): the runner's clock starts at phase 0 with the run."""
    policy_history: int = 0
    """Earlier steps' observations the policy takes after this step's, newest first (``env.policy_history``); the
    runner's first observation stands in for the steps before the start."""
    base_ang_vel: bool = False
    """Whether each step's observation begins with the base's angular velocity in base axes (the gyroscope)."""
    base_lin_vel: bool = False
    """Whether the angular velocity is preceded by the base's linear velocity in base axes (a state estimate; the
    runner gives MuJoCo's true velocity)."""
    action_filter_hz: float = 0.0
    """Cut-off of the first-order low-pass filter between actions and joint targets (Hz; 0: none), as
    ``env.action_filter_hz``: the observation's last action is then the filter's state."""

    @property
    def action_filter_alpha(self) -> float:
        """The filter's step toward each new action (1.0 without a filter), as the env computes it."""
        return low_pass_alpha(self.action_filter_hz, self.control_dt)

    @property
    def control_dt(self) -> float:
        return self.physics_dt * self.decimation

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any], source: str = "<metadata>") -> RunnerSpec:
        """Reads an exported policy's metadata; raises ValueError naming ``source`` and the bad key."""
        def get(key):
            if key not in meta:
                raise ValueError(f"{source}: metadata lacks {key!r} (expected a policy written by "
                                 "amp_jax.deploy.export_policy)")
            return meta[key]

        layout = get("observation_layout")
        names = tuple(part["name"] for part in layout)
        base_lin_vel = names[:2] == (BASE_LIN_VEL, BASE_ANG_VEL)
        base_ang_vel = names[base_lin_vel:][:1] == (BASE_ANG_VEL,)
        if names[base_lin_vel + base_ang_vel:] not in (OBSERVATION_ORDER, OBSERVATION_ORDER + (GAIT_CLOCK,)):
            raise ValueError(f"{source}: observation_layout lists {names}: expected {OBSERVATION_ORDER}, "
                             f"optionally preceded by {BASE_ANG_VEL!r} (itself optionally preceded by "
                             f"{BASE_LIN_VEL!r}) and followed by {GAIT_CLOCK!r}")
        gait_clock_hz = float(meta.get("gait_clock_hz", 0.0))
        if (GAIT_CLOCK in names) != (gait_clock_hz > 0):
            raise ValueError(f"{source}: gait_clock_hz is {gait_clock_hz} while observation_layout "
                             f"{'lists' if GAIT_CLOCK in names else 'lacks'} {GAIT_CLOCK!r}: expected a positive "
                             "frequency exactly when the layout has the clock")
        history = meta.get("policy_history", 0)
        frame = layout[-1]["stop"]
        if not isinstance(history, int) or history < 0 or meta.get("observation_size", frame) != frame * (1 + history):
            raise ValueError(f"{source}: policy_history is {history!r} and observation_size "
                             f"{meta.get('observation_size')!r}: expected a whole number H >= 0 of earlier steps "
                             f"and an observation of {frame} · (1 + H) numbers")
        env = get("config").get("env", {})
        return cls(
            default_joint_pos=np.asarray(get("default_joint_angles"), np.float64),
            action_scale=float(get("action_scale")), clip_actions=float(get("clip_actions")),
            clip_observations=float(get("clip_observations")), kp=float(get("kp")), kd=float(get("kd")),
            effort_limits=np.asarray(get("effort_limits"), np.float64), physics_dt=float(get("physics_dt")),
            decimation=int(get("decimation")), init_height=float(env.get("init_height", 0.42)),
            obs_scales={part["name"]: np.asarray(part["scale"], np.float64) for part in layout},
            gait_clock_hz=gait_clock_hz, action_filter_hz=float(meta.get("action_filter_hz", 0.0)),
            policy_history=history, base_ang_vel=base_ang_vel, base_lin_vel=base_lin_vel)


def _quat_to_matrix(quat: np.ndarray) -> np.ndarray:
    """Rotation matrix ``[3, 3]`` (body axes → world) of a quaternion (w, x, y, z), via MuJoCo's C routine."""
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, quat / np.linalg.norm(quat))
    return mat.reshape(3, 3)


def policy_observation(qpos: np.ndarray, qvel: np.ndarray, command: np.ndarray, last_action: np.ndarray,
                       spec: RunnerSpec, time_s: float = 0.0) -> np.ndarray:
    """One step's policy observations from MuJoCo's state, float32: 42, 3 more with the base's angular velocity
    (``spec.base_ang_vel``), 3 more with its linear velocity (``spec.base_lin_vel``), 2 more with a gait clock.

    Args:
      qpos: ``[19]`` base position (world), quaternion (w, x, y, z), 12 joint angles.
      qvel: ``[18]`` base linear velocity (world), angular velocity (base), 12 joint velocities.
      command: ``[3]`` (v_x, v_y, yaw rate), base frame.
      last_action: ``[12]`` the clipped action applied in the last control step (with an action filter, the
        filter's state).
      time_s: seconds since the runner started: the gait clock's phase is ``gait_clock_hz · time_s`` cycles.
    Returns:
      ``[42]``: projected gravity, scaled commands, scaled (q − q_default), scaled q̇, last action; clipped;
      preceded, with the gyroscope, by the scaled angular velocity ``qvel[3:6]``, and before that, with the
      velocity estimate, by the scaled linear velocity ``qvel[0:3]`` in base axes; then, with a gait clock,
      ``(sin 2πφ, cos 2πφ)``.
    """
    rot = _quat_to_matrix(np.asarray(qpos[a1.QPOS_BASE_QUAT], np.float64))
    gravity = rot.T @ np.array([0.0, 0.0, -1.0])
    s = spec.obs_scales
    obs = np.concatenate([
        gravity * s["projected_gravity"],
        np.asarray(command) * s["commands"],
        (qpos[a1.QPOS_JOINTS] - spec.default_joint_pos) * s["joint_pos"],
        qvel[a1.QVEL_JOINTS] * s["joint_vel"],
        np.asarray(last_action) * s["last_action"],
    ])
    if spec.base_ang_vel:
        obs = np.concatenate([qvel[a1.QVEL_BASE_ANG] * s[BASE_ANG_VEL], obs])
    if spec.base_lin_vel:
        obs = np.concatenate([rot.T @ qvel[a1.QVEL_BASE_LIN] * s[BASE_LIN_VEL], obs])
    if spec.gait_clock_hz > 0:
        angle = 2.0 * np.pi * np.mod(spec.gait_clock_hz * time_s, 1.0)
        obs = np.concatenate([obs, np.array([np.sin(angle), np.cos(angle)]) * s[GAIT_CLOCK]])
    return np.clip(obs, -spec.clip_observations, spec.clip_observations).astype(np.float32)


def base_velocity(qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
    """Measured (v_x, v_y, yaw rate) in the base frame, ``[3]``."""
    lin = _quat_to_matrix(np.asarray(qpos[a1.QPOS_BASE_QUAT], np.float64)).T @ qvel[a1.QVEL_BASE_LIN]
    return np.array([lin[0], lin[1], qvel[5]])


@dataclasses.dataclass(frozen=True)
class Sim2SimResult:
    """Outcome of one C MuJoCo run; trajectories have one row per control step."""

    duration_s: float
    upright: bool
    """True when the robot stayed upright at every control step."""
    fell_at_s: float | None
    """Time of the first control step at which it was not upright, else None."""
    tracking_rms: dict[str, float]
    """RMS of commanded − measured over the run: ``vx``, ``vy`` (m/s), ``yaw_rate`` (rad/s)."""
    qpos: np.ndarray
    """``[T, 19]``."""
    commands: np.ndarray
    """``[T, 3]``."""
    measured: np.ndarray
    """``[T, 3]`` (v_x, v_y, yaw rate), base frame."""
    actions: np.ndarray
    """``[T, 12]`` clipped actions."""
    foot_forces: np.ndarray
    """``[T, 4]`` normal force of the floor on each foot at the control step's last physics step (N), legs FL, FR,
    RL, RR: one sample per control step, so the share of steps in contact estimates the duty factor
    (:func:`amp_jax.analysis.gait.contacts_from_forces`)."""
    work_positive: np.ndarray
    """``[T]`` the motors' positive mechanical work over each control step (J): the sum of :func:`motor_work` over
    its physics steps, as the MJX env counts it."""
    work_absolute: np.ndarray
    """``[T]`` the same with |τ·q̇| (J)."""

    def summary(self) -> dict[str, Any]:
        """JSON-ready scalars."""
        return {"duration_s": self.duration_s, "upright": self.upright, "fell_at_s": self.fell_at_s,
                "tracking_rms": self.tracking_rms}


def tracking_rms(commands: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """RMS of ``commands − measured`` per axis (``[T, 3]`` each) as ``{vx, vy, yaw_rate}``."""
    err = np.sqrt(np.mean(np.square(np.asarray(commands, np.float64) - np.asarray(measured, np.float64)), axis=0))
    return {"vx": float(err[0]), "vy": float(err[1]), "yaw_rate": float(err[2])}


def foot_normal_forces(model: mujoco.MjModel, data: mujoco.MjData, foot_geoms: np.ndarray) -> np.ndarray:
    """Normal force of the floor on each foot geom ``foot_geoms [4]`` in the current ``data`` (N), ``[4]``."""
    forces = np.zeros(len(foot_geoms))
    wrench = np.zeros(6)
    for i in range(data.ncon):
        contact = data.contact[i]
        for leg, geom in enumerate(foot_geoms):
            if geom in (contact.geom1, contact.geom2):
                mujoco.mj_contactForce(model, data, i, wrench)
                forces[leg] += abs(wrench[0])
    return forces


def motor_work(torque: np.ndarray, joint_vel_after: np.ndarray, dt: float) -> tuple[float, float]:
    """The motors' positive and absolute work over one physics step (J): ``dt · Σ max(τ·q̇, 0)`` and
    ``dt · Σ |τ·q̇|`` of the torques held over the step ``[J]`` (N·m) and the joint velocities after it ``[J]``
    (rad/s): MuJoCo's semi-implicit Euler step moves each joint by ``q̇ · dt``, so this is ``τ · Δq``, as the MJX env
    counts it (:class:`amp_jax.envs.a1_amp.MotorWork`). Net work is ``2 · positive − absolute``. Against the change
    of mechanical energy MuJoCo computes, the net work of a scripted leg motion at 5 ms steps is about 1 % of the
    absolute work high, the integrator's discretisation: the residual shrinks with the step (tested)."""
    power = np.asarray(torque, np.float64) * np.asarray(joint_vel_after, np.float64)
    return dt * float(np.sum(np.maximum(power, 0.0))), dt * float(np.sum(np.abs(power)))


def initial_state(spec: RunnerSpec, trot_phase_nudge: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The default pose at the initial height, at rest: ``(qpos [19], qvel [18])``; with ``trot_phase_nudge``
    (rad) the thigh angles of the diagonal pair FR, RL are raised by it and those of FL, RR lowered: a start
    that is not its own mirror image, as the default pose is."""
    qpos = np.concatenate([[0.0, 0.0, spec.init_height, 1.0, 0.0, 0.0, 0.0], spec.default_joint_pos])
    qpos[a1.QPOS_JOINTS][1::3] += trot_phase_nudge * TROT_PHASE_SIGNS
    return qpos, np.zeros(18)


TROT_PHASE_SIGNS = np.array([-1.0, 1.0, 1.0, -1.0])
"""Per leg (FL, FR, RL, RR): the sign of :func:`initial_state`'s thigh offset."""


def run_sim2sim(onnx_path: str | pathlib.Path,
                schedule: Sequence[command_schedule.CommandSegment] = command_schedule.DEFAULT_SCHEDULE, *,
                scene: str | pathlib.Path = a1.SCENE_XML, spec: RunnerSpec | None = None) -> Sim2SimResult:
    """Runs the ONNX policy with onnxruntime in C MuJoCo under ``schedule`` from the default pose.

    Args:
      onnx_path: a policy written by :mod:`amp_jax.deploy.export_policy` (its metadata configures the runner).
      schedule: the commands.
      scene: the MJCF scene.
      spec: overrides the runner settings read from the metadata.
    """
    onnx_path = pathlib.Path(onnx_path)
    session = onnx_export.load_session(onnx_path)
    if spec is None:
        spec = RunnerSpec.from_metadata(onnx_export.read_metadata(onnx_path), str(onnx_path))
    commands = command_schedule.commands_from_schedule(schedule, spec.control_dt)
    return simulate(lambda obs: onnx_export.run_onnx(session, obs), spec, commands, scene=scene)


def simulate(policy: Callable[[np.ndarray], np.ndarray], spec: RunnerSpec, commands: np.ndarray, *,
             scene: str | pathlib.Path = a1.SCENE_XML,
             start: tuple[np.ndarray, np.ndarray] | None = None, clock_start_phase: float = 0.0) -> Sim2SimResult:
    """The runner's loop: ``policy(obs [F · (1 + policy_history)]) -> action [12]`` (``F`` one step's observation) in
    C MuJoCo, one control step per row of ``commands [T, 3]`` (the observation this step's, then the earlier steps',
    newest first; the first step's stands in for those before the start), from ``start`` (``(qpos [19], qvel [18])``,
    default :func:`initial_state`); PD torques in NumPy before each ``mj_step``. With an action filter, the targets
    follow the filtered action, which starts at the action holding the start's joint angles and is what the
    observation's last action holds. With a gait clock, its phase at the first control step is ``clock_start_phase``
    cycles (the runner's default: 0)."""
    model = mujoco.MjModel.from_xml_path(str(scene))
    model.opt.timestep = spec.physics_dt
    data = mujoco.MjData(model)
    data.qpos[:], data.qvel[:] = initial_state(spec) if start is None else start
    mujoco.mj_forward(model, data)

    commands = np.asarray(commands, np.float64)
    steps = commands.shape[0]
    qpos_log, measured, actions = np.empty((steps, model.nq)), np.empty((steps, 3)), np.empty((steps, 12))
    foot_geoms = np.array([model.geom(name).id for name in a1.FOOT_GEOMS])
    foot_forces = np.zeros((steps, len(foot_geoms)))
    work_positive, work_absolute = np.zeros(steps), np.zeros(steps)
    last_action = np.zeros(12)
    if spec.action_filter_hz > 0:
        holding = (data.qpos[a1.QPOS_JOINTS] - spec.default_joint_pos) / spec.action_scale
        last_action = np.clip(holding, -spec.clip_actions, spec.clip_actions)
    alpha = spec.action_filter_alpha
    fell_at = None
    clock_offset_s = clock_start_phase / spec.gait_clock_hz if spec.gait_clock_hz > 0 else 0.0
    history = None
    for k in range(steps):
        frame = policy_observation(data.qpos, data.qvel, commands[k], last_action, spec,
                                   k * spec.control_dt + clock_offset_s)
        history = np.tile(frame, (spec.policy_history, 1)) if history is None else history
        obs = np.concatenate([frame, history.reshape(-1)])
        history = np.concatenate([frame[None], history])[: spec.policy_history]
        action = np.clip(np.asarray(policy(obs), np.float64), -spec.clip_actions, spec.clip_actions)
        applied = last_action + alpha * (action - last_action) if spec.action_filter_hz > 0 else action
        target = spec.default_joint_pos + spec.action_scale * applied
        for _ in range(spec.decimation):
            torque = spec.kp * (target - data.qpos[a1.QPOS_JOINTS]) - spec.kd * data.qvel[a1.QVEL_JOINTS]
            data.ctrl[:] = np.clip(torque, -spec.effort_limits, spec.effort_limits)
            mujoco.mj_step(model, data)
            positive, absolute = motor_work(data.ctrl, data.qvel[a1.QVEL_JOINTS], spec.physics_dt)
            work_positive[k] += positive
            work_absolute[k] += absolute
        foot_forces[k] = foot_normal_forces(model, data, foot_geoms)
        last_action = applied
        qpos_log[k], measured[k], actions[k] = data.qpos, base_velocity(data.qpos, data.qvel), action
        if fell_at is None and not upright.is_upright(data.qpos):
            fell_at = (k + 1) * spec.control_dt
    return Sim2SimResult(duration_s=steps * spec.control_dt, upright=fell_at is None, fell_at_s=fell_at,
                         tracking_rms=tracking_rms(commands, measured), qpos=qpos_log, commands=commands,
                         measured=measured, actions=actions, foot_forces=foot_forces,
                         work_positive=work_positive, work_absolute=work_absolute)


def trot_check_c_mujoco(onnx_path: Any, reference_contacts: np.ndarray | None = None) -> dict[str, Any]:
    """The same check for the exported ONNX policy in C MuJoCo (:func:`simulate`); falls are
    the sim-to-sim upright test's."""
    from amp_jax.analysis import speed

    session = onnx_export.load_session(onnx_path)
    spec = RunnerSpec.from_metadata(onnx_export.read_metadata(onnx_path), str(onnx_path))
    commands = speed.trot_commands(spec.control_dt)
    run = simulate(lambda obs: onnx_export.run_onnx(session, obs), spec, commands)
    model = mujoco.MjModel.from_xml_path(str(a1.SCENE_XML))
    data = mujoco.MjData(model)
    sites = [model.site(name).id for name in a1.FOOT_SITE_NAMES]
    heights = np.empty((run.qpos.shape[0], len(sites)))
    for k, qpos in enumerate(run.qpos):
        data.qpos[:] = qpos
        mujoco.mj_kinematics(model, data)
        heights[k] = data.site_xpos[sites, 2]
    settle = int(round(speed.TROT_SETTLE_S / spec.control_dt))
    result = speed.measure(commands[settle:, 0], run.measured[settle:, 0], heights[settle:], not run.upright)
    return speed.verdict_of(result, reference_contacts)
