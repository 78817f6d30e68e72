"""The command grid in C MuJoCo: its motor work against the MJX env's, its measures on hand-made runs, its goal."""

import dataclasses
import json

import mujoco
import numpy as np
import pytest

from amp_jax import a1
from amp_jax.analysis import command_schedule
from amp_jax.config import PROJECT_ROOT, load_config
from amp_jax.deploy import command_grid, export_policy, mirror_check, sim2sim
from amp_jax.evaluation import rollouts as eval_rollouts


@pytest.fixture(scope="module")
def spec():
    return sim2sim.RunnerSpec.from_metadata(export_policy.policy_metadata(load_config(["a1_trot"])))


@pytest.fixture(scope="module")
def tiny_onnx(tiny_run_policy, tmp_path_factory):
    return export_policy.export_policy(tiny_run_policy, tmp_path_factory.mktemp("grid") / "policy.onnx").path


def test_c_mujoco_motor_work_equals_the_mjx_env_s_on_the_same_motion(tiny_run_policy, tiny_onnx):
    """Two implementations of the work (NumPy after each mj_step, JAX inside the env's physics loop) agree while
    the two simulators' trajectories still agree."""
    schedule = (command_schedule.CommandSegment(0.3, 0.6, 0.0, 0.2),)
    result = sim2sim.run_sim2sim(tiny_onnx, schedule)
    commands = command_schedule.commands_from_schedule(schedule, tiny_run_policy.cfg.env.control_dt)
    mjx_run = eval_rollouts.rollout_policy(tiny_run_policy, commands)
    early = round(0.2 / tiny_run_policy.cfg.env.control_dt)
    np.testing.assert_allclose(result.qpos[:early], np.asarray(mjx_run.qpos)[:early], atol=1e-3)
    positive, absolute = np.asarray(mjx_run.motor_work.positive), np.asarray(mjx_run.motor_work.absolute)
    assert absolute[:early].sum() > 1.0  # the legs move: joules, not rounding
    np.testing.assert_allclose(result.work_positive[:early], positive[:early], rtol=0.05, atol=0.02)
    np.testing.assert_allclose(result.work_absolute[:early], absolute[:early], rtol=0.05, atol=0.02)
    assert np.all(result.work_absolute >= result.work_positive) and np.all(result.work_positive >= 0.0)


def _synthetic_run(steps, dt, speed=1.0, work=2.0, fell_at=None, thigh_amplitude=0.2):
    """A run moving at ``speed`` m/s along x with ``work`` J per control step, feet in a 2 Hz trot (diagonal pairs
    alternate, each foot down half the stride), thighs swinging ``thigh_amplitude`` rad either way at 2 Hz."""
    t = np.arange(steps) * dt
    qpos = np.zeros((steps, 19))
    qpos[:, 0] = speed * (t + dt)
    qpos[:, 3] = 1.0
    qpos[:, 7:19] = np.tile([0.0, 0.9, -1.8], 4)
    qpos[:, 8:19:3] += thigh_amplitude * np.sin(2 * np.pi * 2.0 * t)[:, None]
    phase = np.mod(2.0 * t, 1.0)
    first_pair = phase < 0.5
    contacts = np.stack([first_pair, ~first_pair, ~first_pair, first_pair], axis=1)  # FL+RR, FR+RL
    measured = np.tile([speed, 0.02, -0.1], (steps, 1))
    return sim2sim.Sim2SimResult(
        duration_s=steps * dt, upright=fell_at is None, fell_at_s=fell_at, tracking_rms={}, qpos=qpos,
        commands=np.zeros((steps, 3)), measured=measured, actions=np.zeros((steps, 12)),
        foot_forces=np.where(contacts, 40.0, 0.0), work_positive=np.full(steps, work),
        work_absolute=np.full(steps, 1.5 * work))


def test_measure_run_on_a_hand_made_trot(spec):
    dt = spec.control_dt
    commands, window = mirror_check.held_commands((0.8, 0.0, 0.0), dt)
    run = _synthetic_run(commands.shape[0], dt)
    mass = command_grid.robot_mass()
    r = command_grid.measure_run("forward 0.8", (0.8, 0.0, 0.0), run, window, mass, dt)
    steps = window.stop - window.start
    # The window's work over the distance from the state before its first step to its last state.
    distance = 1.0 * steps * dt
    assert r.distance == pytest.approx(distance, rel=1e-9)
    assert r.cot_positive == pytest.approx(2.0 * steps / (mass * 9.81 * distance), rel=1e-3)
    assert r.cot_absolute == pytest.approx(1.5 * r.cot_positive, rel=1e-9)
    assert r.rms == pytest.approx({"vx": 0.2, "vy": 0.02, "yaw_rate": 0.1})
    assert r.achieved == pytest.approx((1.0, 0.02, -0.1))
    assert r.footfalls.gait == "trot" and r.footfalls.stride_hz == pytest.approx(2.0, rel=0.05)
    assert r.footfalls.duty == pytest.approx((0.5,) * 4, abs=0.03)
    # 1 m/s at 2 strides a second (a straight path: its length is its displacement); a sine of amplitude A spans
    # 2 A sin(0.45 pi) between its 5th and 95th percentiles
    assert r.stride_length_m == pytest.approx(0.5, rel=0.05)
    assert r.thigh_excursion_rad == pytest.approx(2 * 0.2 * np.sin(0.45 * np.pi), rel=0.03)
    assert r.swing_s == pytest.approx(0.25, abs=dt)  # each foot up half of a 0.5 s stride
    assert mass == pytest.approx(float(np.sum(mujoco.MjModel.from_xml_path(str(a1.SCENE_XML)).body_mass)))


def _result(name, command, vx_rms=0.05, vy_rms=0.02, yaw_rms=0.1, cot=0.8, stride=1.6, upright=True):
    return command_grid.CommandResult(
        name=name, command=command, upright=upright, fell_at_s=None if upright else 1.0, achieved=command,
        rms={"vx": vx_rms, "vy": vy_rms, "yaw_rate": yaw_rms},
        footfalls=command_grid.footfall.Footfalls(stride, (0.5,) * 4, (0.0, 0.5, 0.5, 0.0), "trot"),
        distance=5.0, cot_positive=cot, cot_absolute=1.5 * cot, stride_length_m=0.7, thigh_excursion_rad=0.5)


def _results(**changes):
    reference = command_grid.ClipReference("trot0.txt", 1.17, 1.53, 0.5)
    rows = {name: _result(name, cmd) for name, cmd in command_grid.grid_commands(reference)}
    for name, fields in changes.items():
        rows[name] = dataclasses.replace(rows[name], **fields)
    return rows, reference


def test_grid_goal_applies_each_criterion():
    rows, ref = _results()
    checks = command_grid.grid_goal(rows, ref)
    assert all(checks.values()) and len(checks) == 14
    cases = [
        ("forward 0.4", "rms", {"vx": 0.16, "vy": 0.0, "yaw_rate": 0.0}, "vx_rms_at_0.4"),
        ("forward 1.6", "rms", {"vx": 0.24, "vy": 0.0, "yaw_rate": 0.0}, None),  # within its wider 0.25
        ("backward 0.5", "rms", {"vx": 0.26, "vy": 0.0, "yaw_rate": 0.0}, "vx_rms_at_-0.5"),
        ("left 0.3", "rms", {"vx": 0.0, "vy": 0.11, "yaw_rate": 0.0}, "vy_rms"),
        ("turn right 1.0", "rms", {"vx": 0.0, "vy": 0.0, "yaw_rate": 0.3}, "yaw_rms_at_-1"),
        ("forward 0.8", "cot_positive", 0.94, "cot_at_0.8"),
        ("forward 1.2", "cot_positive", float("nan"), "cot_at_1.2"),
        ("stand", "upright", False, "no_fall"),
        ("trot clip speed", "footfalls", command_grid.footfall.Footfalls(2.4, (0.5,) * 4, (0,) * 4, "trot"),
         "stride_vs_clip"),  # 2.4 / 1.53 = 1.57 > 1.5
    ]
    for name, field, value, failing in cases:
        rows, ref = _results(**{name: {field: value}})
        checks = command_grid.grid_goal(rows, ref)
        assert [k for k, ok in checks.items() if not ok] == ([failing] if failing else []), (name, field)


def test_the_grid_holds_each_command_and_reports_it(spec, tmp_path, monkeypatch):
    """A zero-action policy stands: it tracks the stand command, misses the walking one, never falls; the
    report, its table and its figure hold every command."""
    reference = command_grid.clip_reference()
    assert reference.file == "trot0.txt" and 1.1 < reference.speed < 1.25 and 1.2 < reference.stride_hz < 1.9
    assert reference.stride_length_m == pytest.approx(reference.speed / reference.stride_hz)
    # the thighs' excursion from the file's frames, read here as plain JSON (joints at columns 7-18, hip, thigh,
    # calf per leg)
    frames = np.asarray(json.loads((PROJECT_ROOT / "motion_data/trot0.txt").read_text())["Frames"])
    thighs = frames[:, 7:19].reshape(-1, 4, 3)[:, :, 1]
    expected = np.mean(np.percentile(thighs, 95, axis=0) - np.percentile(thighs, 5, axis=0))
    assert reference.thigh_excursion_rad == pytest.approx(expected, rel=1e-9) and 0.2 < expected < 1.5
    # the dog's own lateral velocity (base frame, columns 31-33): its RMS, for the goal's lateral RMS beside it
    lateral = np.sqrt(np.mean(frames[:, 32] ** 2))
    assert reference.lateral_rms == pytest.approx(lateral, rel=1e-6) and 0.05 < lateral < 0.2
    # and its yaw rate's standard deviation (base axes, column 36): the dog's wobble, for the goal's yaw-rate RMS
    yaw_spread = np.std(frames[:, 36])
    assert reference.yaw_rate_spread == pytest.approx(yaw_spread, rel=1e-6) and 0.1 < yaw_spread < 0.5
    assert 0.34 < reference.swing_s < 0.40  # the dog's swings (tests/analysis/test_gait_sweep.py)
    commands = (("stand", (0.0, 0.0, 0.0)), ("forward 0.8", (0.8, 0.0, 0.0)))
    report = command_grid.evaluate_grid(lambda obs: np.zeros(12), spec, reference, commands)
    rows = {r["name"]: r for r in report["results"]}
    assert all(r["upright"] for r in rows.values())
    assert rows["stand"]["rms"]["vx"] < 0.02 and rows["forward 0.8"]["rms"]["vx"] == pytest.approx(0.8, abs=0.02)
    assert np.isnan(rows["stand"]["cot_positive"])  # it did not move: no cost of transport
    assert rows["stand"]["duty"] == [1.0] * 4
    assert report["criteria"] == {"no_fall": True, "vx_rms_at_0.8": False, "vy_rms": True, "cot_at_0.8": False}
    assert not report["passes"]
    text = command_grid.format_report(report)
    assert "forward 0.8" in text and "grid goal not met" in text and "vx_rms_at_0.8: no" in text
    # read back from its JSON file (NaN written as null), the report prints and draws the same
    from amp_jax.analysis.report_json import json_ready

    read_back = json.loads(json.dumps(json_ready(report)))
    assert read_back["results"][0]["cot_positive"] is None
    assert command_grid.format_report(read_back) == text
    path = command_grid.plot_grid(read_back, tmp_path / "grid.png")
    assert path.stat().st_size > 10_000
    # a report written before the stride's size was measured still prints, with dashes for it
    for row in read_back["results"]:
        del row["stride_length_m"], row["thigh_excursion_rad"]
    del read_back["clip_reference"]["stride_length_m"], read_back["clip_reference"]["thigh_excursion_rad"]
    del read_back["clip_reference"]["lateral_rms"], read_back["clip_reference"]["yaw_rate_spread"]
    del read_back["clip_reference"]["swing_s"]
    for row in read_back["results"]:
        del row["swing_s"]
    old = command_grid.format_report(read_back)
    assert "thigh excursion" not in old and "thigh excursion" in text
    assert "lateral RMS" not in old and f"lateral RMS {reference.lateral_rms:.3f} m/s" in text
    assert "yaw-rate spread" not in old and f"yaw-rate spread {reference.yaw_rate_spread:.3f} rad/s" in text
    assert ", swing " not in old and f", swing {reference.swing_s:.3f} s" in text
    assert len(old.splitlines()) == len(text.splitlines())
    assert command_grid.plot_grid(read_back, tmp_path / "old.png").stat().st_size > 10_000


def test_a_trot_phase_nudge_is_a_start_that_is_not_its_own_mirror_image_and_never_passes(spec, monkeypatch):
    """The default pose is its own mirror image (a policy that answers mirrored states with mirrored actions keeps
    it so); the nudged start's mirror image is the start nudged the other way, the rest of the pose untouched."""
    from amp_jax.envs import mirror

    qpos0, qvel0 = sim2sim.initial_state(spec)
    np.testing.assert_allclose(np.asarray(mirror.qpos_map()(qpos0)), qpos0, atol=1e-6)
    nudged, _ = sim2sim.initial_state(spec, 0.05)
    np.testing.assert_allclose(np.asarray(mirror.qpos_map()(nudged)), sim2sim.initial_state(spec, -0.05)[0],
                               atol=1e-6)
    change = nudged - qpos0
    np.testing.assert_allclose(change[a1.QPOS_JOINTS].reshape(4, 3), [[0, -0.05, 0], [0, 0.05, 0], [0, 0.05, 0],
                                                                     [0, -0.05, 0]], atol=1e-12)
    assert not np.any(change[:7]) and not np.any(qvel0)
    seen = []
    monkeypatch.setattr(sim2sim, "simulate", lambda policy, spec, commands, start: seen.append(start) or
                        _synthetic_run(commands.shape[0], spec.control_dt))
    monkeypatch.setattr(command_grid, "grid_goal", lambda results, reference: {"every criterion": True})
    commands = (("forward 0.8", (0.8, 0.0, 0.0)),)
    reference = command_grid.ClipReference("trot0.txt", 1.17, 1.53, 0.5)
    nudged_report = command_grid.evaluate_grid(lambda obs: np.zeros(12), spec, reference, commands,
                                               trot_phase_nudge=0.05)
    np.testing.assert_array_equal(seen[0][0], nudged)
    assert nudged_report["conditions"]["trot_phase_nudge_rad"] == 0.05 and not nudged_report["passes"]
    assert nudged_report["conditions"]["settle_s"] == 0.0  # held from the first step: settling would undo it
    assert "trot-phase nudge of 0.05 rad" in command_grid.format_report(nudged_report)
    assert command_grid.evaluate_grid(lambda obs: np.zeros(12), spec, reference, commands)["passes"]


def test_the_command_line_on_a_run_folder(tiny_onnx, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(command_grid, "GRID", (("forward 0.4", (0.4, 0.0, 0.0)),))
    assert command_grid.main([str(tiny_onnx.parent), "--json", str(tmp_path / "g.json"),
                              "--png", str(tmp_path / "g.png")]) == 0
    report = json.loads((tmp_path / "g.json").read_text())
    assert [r["name"] for r in report["results"]] == ["forward 0.4", command_grid.TROT_CLIP_ROW]
    assert (tmp_path / "g.png").is_file() and "grid goal" in capsys.readouterr().out
    assert command_grid.main([str(tmp_path)]) == 2
    assert "no exported policy there" in capsys.readouterr().err


def _fixed_base_legs() -> mujoco.MjModel:
    """The A1 with its trunk welded 1 m above the floor (free joint removed), energy computation on."""
    model_spec = mujoco.MjSpec.from_file(str(a1.SCENE_XML))
    trunk = model_spec.body(a1.TRUNK_BODY)
    model_spec.delete(trunk.first_joint())
    trunk.pos = [0.0, 0.0, 1.0]
    model = model_spec.compile()
    model.opt.enableflags |= mujoco.mjtEnableBit.mjENBL_ENERGY
    return model


def _swing(model, spec, dt):
    """The legs under a smooth scripted PD motion for 3 s at physics step ``dt``: net and absolute motor work (J)
    counted as the runner counts it, and the change of the legs' mechanical energy (J, MuJoCo's)."""
    model.opt.timestep = dt
    data = mujoco.MjData(model)
    q0 = np.asarray(spec.default_joint_pos, np.float64)
    data.qpos[:] = q0
    mujoco.mj_forward(model, data)
    energy_start = float(np.sum(data.energy))
    work = absolute_work = 0.0
    peak_constraints = 0
    for k in range(round(3.0 / dt)):
        t = k * dt
        ramp = 0.5 * (1.0 - np.cos(np.pi * min(t / 0.5, 1.0)))  # smooth start
        target = q0 + ramp * np.tile([0.15, 0.35, -0.35], 4) * np.sin(2 * np.pi * 1.5 * t + np.arange(12))
        torque = np.clip(spec.kp * (target - data.qpos) - spec.kd * data.qvel, -spec.effort_limits,
                         spec.effort_limits)
        data.ctrl[:] = torque
        mujoco.mj_step(model, data)
        positive, absolute = sim2sim.motor_work(torque, data.qvel, dt)
        work, absolute_work = work + 2.0 * positive - absolute, absolute_work + absolute
        peak_constraints = max(peak_constraints, data.nefc)
    mujoco.mj_forward(model, data)
    assert peak_constraints == 0  # no contact and no joint limit: nothing but the motors and gravity does work
    return work, absolute_work, float(np.sum(data.energy)) - energy_start


def test_motor_work_equals_the_change_of_the_legs_mechanical_energy(spec):
    """Energy balance with the trunk fixed in the air: the net motor work equals ΔE (kinetic + potential, MuJoCo's)
    up to the integrator's discretisation: ΔE itself moves by under 1 mJ between 5 ms and 0.2 ms steps, the
    residual is about 1 % of the work pumped in and out at the runner's 5 ms and shrinks with the step."""
    model = _fixed_base_legs()
    work, absolute, energy_change = _swing(model, spec, spec.physics_dt)
    fine_work, _, fine_energy_change = _swing(model, spec, spec.physics_dt / 25)
    assert abs(energy_change - fine_energy_change) < 1e-3
    assert absolute > 10.0 and energy_change > 0.1  # joules pumped in and out; the legs end faster than at rest
    # Measured: residual 0.24 J of 21 J absolute at 5 ms, 0.010 J at 0.2 ms (a counting error would not shrink).
    assert abs(work - energy_change) <= 0.02 * absolute, (work, energy_change, absolute)
    assert abs(fine_work - fine_energy_change) <= 0.1 * abs(work - energy_change), (fine_work, fine_energy_change)
