"""The task reward's terms against their formulas written out in NumPy, on hand-made step quantities; the sum, its
clip and the termination term added after it; legged_gym's foot air-time rule against a plain Python loop."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amp_jax import a1
from amp_jax.envs import rewards

DT = 0.03
PARAMS = rewards.RewardParams(tracking_sigma=0.25, tracking_sigma_fine=0.1, tracking_sigma_lateral=0.02, control_dt=DT,
                              soft_joint_lower=tuple(a1.JOINT_LOWER + 0.05 * (a1.JOINT_UPPER - a1.JOINT_LOWER)),
                              soft_joint_upper=tuple(a1.JOINT_UPPER - 0.05 * (a1.JOINT_UPPER - a1.JOINT_LOWER)))


def random_quantities(rng: np.random.Generator) -> dict:
    """Every field of a StepQuantities as NumPy values (joint angles around and beyond the soft limits)."""
    span = a1.JOINT_UPPER - a1.JOINT_LOWER
    return dict(
        command=rng.normal(size=3), base_lin_vel=rng.normal(size=3), base_ang_vel=rng.normal(size=3),
        joint_pos=rng.uniform(a1.JOINT_LOWER - 0.1 * span, a1.JOINT_UPPER + 0.1 * span),
        joint_vel=rng.normal(scale=5.0, size=12), joint_vel_before=rng.normal(scale=5.0, size=12),
        torque=rng.uniform(-30, 30, size=12), action=rng.normal(size=12), last_action=rng.normal(size=12),
        fell=rng.uniform() < 0.5, body_ground_contacts=rng.uniform(size=9) < 0.3,
        foot_contact=rng.uniform(size=4) < 0.5, last_foot_contact=rng.uniform(size=4) < 0.5,
        feet_air_time=np.where(rng.uniform(size=4) < 0.5, 0.0, rng.uniform(0.03, 1.0, size=4)),
    )


def as_struct(values: dict) -> rewards.StepQuantities:
    """The NumPy values as a StepQuantities of float32 (bool where the value is bool)."""
    def cast(v):
        v = np.asarray(v)
        return jnp.asarray(v, jnp.bool_ if v.dtype == bool else jnp.float32)
    return rewards.StepQuantities(**{k: cast(v) for k, v in values.items()})


def numpy_term(name: str, v: dict) -> float:
    """legged_gym's formula of each term, in NumPy (float64)."""
    sigma = PARAMS.tracking_sigma_fine if name.endswith("_fine") else PARAMS.tracking_sigma
    if name in ("tracking_lin_vel", "tracking_lin_vel_fine"):
        return math.exp(-((v["command"][0] - v["base_lin_vel"][0]) ** 2
                          + (v["command"][1] - v["base_lin_vel"][1]) ** 2) / sigma)
    if name in ("tracking_ang_vel", "tracking_ang_vel_fine"):
        return math.exp(-((v["command"][2] - v["base_ang_vel"][2]) ** 2) / sigma)
    if name == "tracking_lin_vel_y":
        return math.exp(-((v["command"][1] - v["base_lin_vel"][1]) ** 2) / PARAMS.tracking_sigma_lateral)
    if name == "lin_vel_z":
        return v["base_lin_vel"][2] ** 2
    if name == "ang_vel_xy":
        return v["base_ang_vel"][0] ** 2 + v["base_ang_vel"][1] ** 2
    if name == "torques":
        return float(np.sum(v["torque"] ** 2))
    if name == "dof_acc":
        return float(np.sum(((v["joint_vel"] - v["joint_vel_before"]) / DT) ** 2))
    if name == "action_rate":
        return float(np.sum((v["last_action"] - v["action"]) ** 2))
    if name == "collision":
        return float(np.count_nonzero(v["body_ground_contacts"]))
    if name == "feet_air_time":
        rewards_, _ = legged_gym_air_time([v["foot_contact"]], [v["command"]], DT, v["feet_air_time"],
                                          v["last_foot_contact"])
        return rewards_[0]
    if name == "termination":
        return float(v["fell"])
    if name == "dof_pos_limits":
        lower, upper = np.array(PARAMS.soft_joint_lower), np.array(PARAMS.soft_joint_upper)
        q = v["joint_pos"]
        return float(sum((lo - x if x < lo else 0.0) + (x - hi if x > hi else 0.0)
                         for x, lo, hi in zip(q, lower, upper)))
    raise KeyError(name)


def legged_gym_air_time(contacts, commands, dt, air_time=(0.0,) * 4, last_contact=(False,) * 4):
    """legged_gym's ``_reward_feet_air_time`` written as a plain loop over steps and feet: (reward per step,
    air time per step after the step)."""
    air, last = [float(x) for x in air_time], [bool(x) for x in last_contact]
    out_rewards, out_air = [], []
    for contact, command in zip(contacts, commands):
        reward = 0.0
        for foot in range(4):
            filtered = bool(contact[foot]) or last[foot]
            first_contact = air[foot] > 0.0 and filtered
            air[foot] += dt
            if first_contact:
                reward += air[foot] - 0.5
            if filtered:
                air[foot] = 0.0
        last = [bool(c) for c in contact]
        if math.hypot(command[0], command[1]) <= 0.1:
            reward = 0.0
        out_rewards.append(reward)
        out_air.append(list(air))
    return out_rewards, out_air


@pytest.mark.parametrize("name", list(rewards.TERMS))
def test_each_term_matches_numpy(name):
    rng = np.random.default_rng(list(rewards.TERMS).index(name))
    term = jax.jit(lambda q: rewards.task_reward({name: 0.7}, q, PARAMS)[1][name])
    values = [random_quantities(rng) for _ in range(40)]
    got = np.array([float(term(as_struct(v))) for v in values])
    expected = 0.7 * np.array([numpy_term(name, v) for v in values])
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)
    assert np.any(expected != 0), "the hand-made states never exercise this term"


@pytest.mark.parametrize("name", [n for n in rewards.TERMS if n.startswith("tracking")])
def test_the_tracking_terms_read_the_averaged_velocity_where_there_is_one(name):
    """With ``tracked_velocity`` set, each tracking term is its NumPy formula on that velocity in place of the base
    velocity's (v_x, v_y, ω_z); the other velocity components do not enter."""
    rng = np.random.default_rng(5)
    term = jax.jit(lambda q: rewards.task_reward({name: 0.7}, q, PARAMS)[1][name])
    for _ in range(20):
        v = random_quantities(rng)
        tracked = v["command"] + rng.normal(scale=0.1, size=3)  # near the command: the kernels pay well above 0
        v["base_lin_vel"][:2], v["base_ang_vel"][2] = v["command"][:2] + 0.5, v["command"][2] + 0.5  # and 0.5 off
        as_if = dict(v, base_lin_vel=np.array([tracked[0], tracked[1], 9.0]),
                     base_ang_vel=np.array([9.0, 9.0, tracked[2]]))
        got = float(term(as_struct(dict(v, tracked_velocity=tracked))))
        assert got == pytest.approx(0.7 * numpy_term(name, as_if), rel=2e-5, abs=1e-6)
        assert got != pytest.approx(0.7 * numpy_term(name, v), rel=1e-3, abs=1e-4)


def test_the_velocity_average_is_an_exponential_average_over_the_steps():
    """Stepped over a sequence, :func:`rewards.averaged_velocity` is the exponential average written as a weighted
    sum: ``(1 − α)^n · start + Σ_k α (1 − α)^(n−1−k) · v_k``."""
    rng = np.random.default_rng(6)
    alpha, start, velocities = 0.2, rng.normal(size=3), rng.normal(size=(30, 3))
    step = jax.jit(lambda previous, v: rewards.averaged_velocity(previous, v, alpha))
    average = jnp.asarray(start, jnp.float32)
    for n in range(1, len(velocities) + 1):
        average = step(average, jnp.asarray(velocities[n - 1], jnp.float32))
        weights = alpha * (1 - alpha) ** np.arange(n - 1, -1, -1)
        expected = (1 - alpha) ** n * start + weights @ velocities[:n]
        np.testing.assert_allclose(average, expected, rtol=1e-5, atol=1e-6)


def test_the_narrow_kernel_is_the_steeper_one_only_near_the_command():
    """The fine terms' reason to exist, by autodiff: d reward / d error is larger for the narrow kernel below the
    crossing error sqrt(ln(σ/σ_fine) · σ σ_fine / (σ − σ_fine)) (0.391 for 0.25 and 0.1) and smaller above it."""
    def slope(term, error):
        def reward(v_x):
            values = random_quantities(np.random.default_rng(0)) | {"command": np.array([1.0, 0.0, 0.0])}
            quantities = as_struct(values).replace(base_lin_vel=jnp.array([1.0, 0.0, 0.0]) - jnp.array([v_x, 0, 0]))
            return term(quantities, PARAMS)
        return float(jax.grad(reward)(jnp.float32(error)))

    wide, narrow = PARAMS.tracking_sigma, PARAMS.tracking_sigma_fine
    crossing = math.sqrt(math.log(wide / narrow) * wide * narrow / (wide - narrow))
    assert crossing == pytest.approx(0.391, abs=1e-3)
    for error in (0.1, 0.3, 0.38):
        assert slope(rewards.tracking_lin_vel_fine, error) < slope(rewards.tracking_lin_vel, error) < 0
    for error in (0.40, 0.6, 1.0):
        assert slope(rewards.tracking_lin_vel, error) < slope(rewards.tracking_lin_vel_fine, error) <= 0


def test_the_lateral_kernel_reads_v_y_alone_and_pays_0_61_for_a_0_1_drift():
    """Near the command, where random states never land at σ_lateral 0.02: a steady 0.1 m/s lateral drift costs
    the lateral term 39 % (exp(−0.5)) and the xy fine term 10 %; a forward error or a yaw error leaves it at 1."""
    values = random_quantities(np.random.default_rng(5)) | {"command": np.array([1.2, 0.0, 0.3])}
    drifting = as_struct(values | {"base_lin_vel": np.array([1.2, -0.1, 0.0]), "base_ang_vel": np.array([0, 0, 0.3])})
    assert float(rewards.tracking_lin_vel_y(drifting, PARAMS)) == pytest.approx(math.exp(-0.5), rel=1e-5)
    assert float(rewards.tracking_lin_vel_fine(drifting, PARAMS)) == pytest.approx(math.exp(-0.1), rel=1e-5)
    other_errors = as_struct(values | {"base_lin_vel": np.array([0.7, 0.0, 0.2]), "base_ang_vel": np.array([0, 0, -1])})
    assert float(rewards.tracking_lin_vel_y(other_errors, PARAMS)) == pytest.approx(1.0)
    offsets = np.linspace(-0.3, 0.3, 13)
    got = [float(rewards.tracking_lin_vel_y(as_struct(values | {"base_lin_vel": np.array([1.2, dy, 0.0])}), PARAMS))
           for dy in offsets]
    np.testing.assert_allclose(got, np.exp(-offsets ** 2 / PARAMS.tracking_sigma_lateral), rtol=1e-5, atol=1e-7)


def test_sum_is_clipped_at_zero_then_termination_is_added():
    scales = {"tracking_lin_vel": 1.5, "tracking_ang_vel": 0.5, "lin_vel_z": -1.0, "torques": -1e-5,
              "termination": -0.5, "collision": -0.1, "feet_air_time": 0.0, "dof_acc": 0.0}
    rng = np.random.default_rng(7)
    total = jax.jit(lambda q: rewards.task_reward(scales, q, PARAMS))
    clipped = 0
    for _ in range(60):
        v = random_quantities(rng)
        reward, terms = total(as_struct(v))
        active = {k: s for k, s in scales.items() if s != 0}
        assert terms.keys() == active.keys()
        expected_terms = {k: s * numpy_term(k, v) for k, s in active.items()}
        before_clip = sum(x for k, x in expected_terms.items() if k != "termination")
        expected = max(before_clip, 0.0) + expected_terms["termination"]
        np.testing.assert_allclose(reward, expected, rtol=2e-5, atol=1e-5)
        clipped += before_clip < 0
    assert 0 < clipped < 60  # both sides of the clip were seen


def test_the_tracking_terms_are_the_amp_recipes_task_reward():
    """With the default scales (1.5, 0.5, the rest 0) the reward is 1.5·exp(...) + 0.5·exp(...), and terms that
    are off are never read: their quantities may be None."""
    rng = np.random.default_rng(1)
    scales = {name: 0.0 for name in rewards.TERMS} | {"tracking_lin_vel": 1.5, "tracking_ang_vel": 0.5}
    for _ in range(20):
        v = random_quantities(rng)
        for optional in ("body_ground_contacts", "foot_contact", "last_foot_contact", "feet_air_time"):
            v.pop(optional)
        reward, terms = rewards.task_reward(scales, as_struct(v), PARAMS)
        assert set(terms) == {"tracking_lin_vel", "tracking_ang_vel"}
        expected = 1.5 * numpy_term("tracking_lin_vel", v) + 0.5 * numpy_term("tracking_ang_vel", v)
        np.testing.assert_allclose(reward, expected, rtol=1e-5, atol=1e-7)


def test_feet_air_time_follows_legged_gym_over_a_contact_sequence():
    """Flights of several lengths, one-step losses of contact (which the two-step filter ignores), and commands
    below and above the 0.1 m/s gate; the env's bookkeeping (air_time_step) and the term against the loop."""
    rng = np.random.default_rng(3)
    steps = 120
    contacts = np.ones((steps, 4), bool)
    for foot in range(4):
        t = int(rng.integers(0, 5))
        while t < steps:
            flight = int(rng.choice([1, 2, 5, 12, 20, 30]))
            contacts[t: t + flight, foot] = False
            t += flight + int(rng.integers(1, 8))
    commands = rng.uniform(-1.0, 1.0, size=(steps, 3))
    commands[rng.uniform(size=steps) < 0.3, :2] *= 0.05  # some below the gate
    expected_rewards, expected_air = legged_gym_air_time(contacts, commands, DT)

    @jax.jit
    def step(air_time, last_contact, contact, command):
        q = as_struct(random_quantities(np.random.default_rng(0)))
        q = q.replace(command=command, foot_contact=contact, last_foot_contact=last_contact, feet_air_time=air_time)
        reward = rewards.task_reward({"feet_air_time": 1.0}, q, PARAMS)[0]
        return reward, rewards.air_time_step(air_time, last_contact, contact, DT).next_air_time

    air, last = jnp.zeros(4), jnp.zeros(4, bool)
    got_rewards, got_air = [], []
    for t in range(steps):
        contact = jnp.asarray(contacts[t])
        reward, air = step(air, last, contact, jnp.asarray(commands[t], jnp.float32))
        last = contact
        got_rewards.append(float(reward))
        got_air.append(np.asarray(air))
    # the clip at 0 is part of task_reward: the loop's negative rewards (short flights) come out as 0
    np.testing.assert_allclose(got_rewards, np.maximum(expected_rewards, 0.0), atol=2e-5)
    np.testing.assert_allclose(np.stack(got_air), expected_air, atol=2e-5)
    # the sequence pays long flights, clips short ones and has gated touchdowns
    assert max(expected_rewards) > 0.2 and min(expected_rewards) < -0.2
    gated = [t for t in range(steps) if math.hypot(*commands[t, :2]) <= 0.1 and contacts[t].any()]
    assert gated


def test_air_time_step_unclipped():
    """The bookkeeping alone, unclipped: touchdown after a flight pays air time − 0.5 even when negative."""
    air = jnp.array([0.0, 0.09, 0.6, 0.3])
    last = jnp.array([True, False, False, False])
    contact = jnp.array([True, True, True, False])
    step = rewards.air_time_step(air, last, contact, DT)
    np.testing.assert_array_equal(step.touchdown, [False, True, True, False])
    np.testing.assert_allclose(step.air_time, [0.03, 0.12, 0.63, 0.33], atol=1e-7)
    np.testing.assert_allclose(step.next_air_time, [0.0, 0.0, 0.0, 0.33], atol=1e-7)
    q = as_struct(random_quantities(np.random.default_rng(0))).replace(
        command=jnp.array([1.0, 0.0, 0.0]), foot_contact=contact, last_foot_contact=last, feet_air_time=air)
    np.testing.assert_allclose(rewards.feet_air_time(q, PARAMS), (0.12 - 0.5) + (0.63 - 0.5), atol=1e-6)
    clip_like = dataclasses.replace(PARAMS, air_time_target=0.3)
    np.testing.assert_allclose(rewards.feet_air_time(q, clip_like), (0.12 - 0.3) + (0.63 - 0.3), atol=1e-6)


def test_soft_joint_limits_are_nine_tenths_of_the_range_about_its_middle():
    lower, upper = rewards.soft_joint_limits(np.stack([a1.JOINT_LOWER, a1.JOINT_UPPER], axis=1), 0.9)
    middle, span = (a1.JOINT_LOWER + a1.JOINT_UPPER) / 2, a1.JOINT_UPPER - a1.JOINT_LOWER
    np.testing.assert_allclose(lower, middle - 0.45 * span, rtol=1e-12)
    np.testing.assert_allclose(upper, middle + 0.45 * span, rtol=1e-12)
    np.testing.assert_allclose(np.subtract(upper, lower), a1.soft_joint_range(), rtol=1e-12)


def test_unknown_terms_are_named():
    with pytest.raises(ValueError, match="^env.reward_scales.feet_stumble: not a reward term; expected one of "
                                         "tracking_lin_vel, "):
        rewards.check_scales({"tracking_lin_vel": 1.0, "feet_stumble": 1.0})
    q = as_struct(random_quantities(np.random.default_rng(0)))
    with pytest.raises(ValueError, match="env.reward_scales.feet_stumble"):
        rewards.task_reward({"feet_stumble": 1.0}, q, PARAMS)
