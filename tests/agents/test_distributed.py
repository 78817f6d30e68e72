"""Data parallelism on forced CPU devices and over processes: replicas agree, results match one device, checkpoints
move between layouts, a dead process ends the run.

JAX fixes its device count when it starts, and this test session's JAX has one CPU device, so the
four-device runs happen in one subprocess (tests/agents/distributed_checks.py) with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``; the tests here assert on what it saved.

Invariants (see amp_jax/agents/distributed.py):

* the replicated state (parameters, optimiser, learning rate, normaliser, key) is bit-identical on every
  device after several iterations;
* env ``i`` gets the same reset and action noise on any device count, so the first rollout (task and
  style rewards, env state) matches one device up to float rounding; the update then differs by design
  (each device shuffles and samples its own share);
* one optimiser step on the same global samples, split in four, matches the unsplit step up to float
  reduction order (gradients, KL and learning rate, normaliser merge, advantage normalisation);
* a checkpoint resumes bit-exactly on the same device count, and on the other count restores parameters,
  optimiser, normaliser, key and counters exactly, env ``i`` as env ``i`` and the replay buffer as the
  same global ring;
* two processes of one device each (``train.py --processes 2``, amp_jax/training/processes.py) run the two-device
  iteration: the same metrics as two forced devices in one process, checkpoints that move between the layouts,
  and (a heavy check, ``python -m pytest -m heavy``) a run that ends with one clear line, its newest checkpoint
  intact, when one of its processes dies.

The A1 env step at 512 envs split in two, over two forced devices and over two processes, must finish: heavy checks
in tests/envs/test_split_step.py.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amp_jax.agents import distributed
from amp_jax.config import AMPConfig, Config, ConfigError, EnvConfig, PPOConfig, load_config
from amp_jax.training import checkpoint

pytestmark = pytest.mark.slow

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[2]

FLOAT_RTOL, FLOAT_ATOL = 2e-5, 2e-6
"""Float32 reduction-order differences between a sum over 32 samples and four partial sums of 8."""


def failure_text(stderr: str) -> str:
    """A failed subprocess's stderr for the assertion: the lines that name a fatal error (an abort's reason comes
    before its long stack trace) and the last 3000 characters."""
    fatal = [line for line in stderr.splitlines()
             if any(mark in line for mark in ("Check failed", "Fatal", "FATAL", "Terminating", "error:", "Error:"))]
    return "\n".join(fatal[:20]) + "\n...\n" + stderr[-3000:]


@pytest.fixture(scope="module")
def checks_dir(tmp_path_factory):
    """The folder the four-device subprocess wrote: results.npz, errors.json and the A1 run folder a1/."""
    out = tmp_path_factory.mktemp("distributed")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    script = PROJECT_ROOT / "tests" / "agents" / "distributed_checks.py"
    proc = subprocess.run([sys.executable, str(script), str(out), "--a1"],
                          env=env, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=900)
    assert proc.returncode == 0, failure_text(proc.stderr)
    return out


@pytest.fixture(scope="module")
def results(checks_dir):
    with np.load(checks_dir / "results.npz") as data:
        arrays = dict(data)
    return arrays, json.loads((checks_dir / "errors.json").read_text())


def _group(arrays, prefix):
    keys = sorted((k for k in arrays if k.startswith(prefix + "/")), key=lambda k: int(k.rsplit("/", 1)[1]))
    return [arrays[k] for k in keys]


def test_replicated_state_is_identical_on_every_device(results):
    arrays, _ = results
    shards = [v for k, v in arrays.items() if k.startswith("shards/") and k != "shards/losses"]
    assert len(shards) > 10
    for stacked in shards:
        assert stacked.shape[0] == 4
        for device in range(1, 4):
            np.testing.assert_array_equal(stacked[device], stacked[0])
    assert np.all(np.isfinite(arrays["shards/losses"]))


def test_first_rollout_matches_one_device(results):
    arrays, _ = results
    for key in ("reward/task", "reward/amp", "episode/finished", "episode/return"):
        np.testing.assert_allclose(arrays[f"first/four/{key}"], arrays[f"first/one/{key}"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(arrays["first/four/obs"], arrays["first/one/obs"], rtol=1e-5, atol=1e-6)
    # The stored replay ring holds the same transitions; within an iteration's rows of one time step the
    # order is by device then env instead of by env (8 envs, 8 steps: rows 8t .. 8t+7 are step t).
    one, four = arrays["first/one/buffer"], arrays["first/four/buffer"]
    assert int(arrays["first/one/buffer_size"]) == int(arrays["first/four/buffer_size"]) == 64
    for t in range(8):
        rows = slice(8 * t, 8 * t + 8)
        np.testing.assert_allclose(np.sort(four[rows], axis=0), np.sort(one[rows], axis=0), rtol=1e-5, atol=1e-6)


def test_split_learn_step_equals_the_unsplit_one(results):
    arrays, _ = results
    one, four = _group(arrays, "learn/one"), _group(arrays, "learn/four")
    assert len(one) == len(four) > 10
    for a, b in zip(one, four):
        np.testing.assert_allclose(b, a, rtol=FLOAT_RTOL, atol=FLOAT_ATOL)
    np.testing.assert_allclose(arrays["adv/four"], arrays["adv/one"], rtol=1e-5, atol=1e-6)
    adv = arrays["adv/one"]
    assert abs(adv.mean()) < 1e-6 and abs(adv.std(ddof=1) - 1.0) < 1e-5


def test_advantage_normalisation_uses_the_unbiased_std_on_one_device():
    a = np.random.default_rng(1).normal(3.0, 2.0, size=(28,)).astype(np.float32)
    got = jax.jit(distributed.on_one_device(distributed.normalize_advantages))(jnp.asarray(a))
    np.testing.assert_allclose(got, (a - a.mean()) / (a.std(ddof=1) + 1e-8), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("writer", ["four", "one"])
def test_checkpoint_resumes_exactly_on_the_same_device_count(results, writer):
    arrays, _ = results
    straight, resumed = _group(arrays, f"ckpt/{writer}/straight"), _group(arrays, f"ckpt/{writer}/resumed")
    assert len(straight) == len(resumed) > 20
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("writer,reader", [("four", "one"), ("one", "four"), ("four", "two")])
def test_checkpoint_moves_between_device_counts(results, writer, reader):
    arrays, _ = results
    saved, moved = _group(arrays, f"ckpt/{writer}/saved"), _group(arrays, f"ckpt/{writer}/on_{reader}")
    assert len(saved) == len(moved) > 20
    for a, b in zip(saved, moved):  # every leaf, replay ring and env state included, comes back as stored
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(arrays[f"ckpt/{writer}/on_{reader}_loss"])


def test_four_devices_each_hold_every_fourth_row_of_the_stored_ring(results):
    arrays, _ = results
    # The one-device run's buffer leaf is the stored ring; the four-device restore split it by rows d::4.
    saved_one = _group(arrays, "ckpt/one/saved")
    rings = arrays["ckpt/one/device_rings"]  # [4, 96 / 4, F]
    ring = next(x for x in saved_one if x.shape == (96, rings.shape[-1]))
    for d in range(4):
        np.testing.assert_array_equal(rings[d], ring[d::4])


def test_state_layout_is_unchanged_by_an_iteration(results):
    # A leaf whose sharding changed would make the next iteration miss jit's cache and compile again; MJX
    # data's zero-size fields came back replicated, which made every split A1 run compile twice.
    arrays, _ = results
    assert int(arrays["layout/empty_leaves"]) >= 1
    assert arrays["layout/same"].size > 0 and bool(np.all(arrays["layout/same"]))


def test_a1_run_on_two_devices_resumes_on_one(results, checks_dir, tmp_path):
    from amp_jax.training import trainer

    arrays, _ = results
    assert int(arrays["a1/saved_size"]) == 4 * 4 * 4  # 4 iterations × 4 envs × 4 steps, global count
    assert np.count_nonzero(np.any(arrays["a1/saved_buffer"] != 0, axis=-1)) == 64
    assert all(np.all(np.isfinite(p)) for p in _group(arrays, "a1/saved_params"))
    run = tmp_path / "a1"
    shutil.copytree(checks_dir / "a1", run)
    assert load_config(run / "config.yaml").train.num_devices == 2
    one = load_config(run / "config.yaml", ["train.num_devices=1", "train.num_iterations=6"])
    trainer.train(one, run_dir=run, resume=True, progress=False)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(line["loss/total"]) for line in lines)
    with trainer.RunCheckpointer(run, heavy_keys=trainer.HEAVY_KEYS) as ckpt:
        assert ckpt.latest_step() == 6


def test_config_errors_name_field_value_and_device_count(results):
    _, errors = results
    assert errors["env.num_envs"].startswith("<devices>: env.num_envs = 6:") and "device count 4" in errors[
        "env.num_envs"]
    assert "ppo.num_minibatches = 32" in errors["ppo.num_minibatches"] and "device count 4" in errors[
        "ppo.num_minibatches"]
    assert "amp.replay_buffer_size = 90" in errors["amp.replay_buffer_size"]


def test_divisibility_check_without_devices():
    cfg = Config(env=EnvConfig(num_envs=12), ppo=PPOConfig(num_steps=4, num_minibatches=4),
                 amp=AMPConfig(replay_buffer_size=120))
    for devices in (1, 2, 3, 4, 6, 12):
        distributed.check_divisible(cfg, devices)
    with pytest.raises(ConfigError, match=r"env.num_envs = 12: expected a multiple of the device count 5"):
        distributed.check_divisible(cfg, 5)
    with pytest.raises(ConfigError, match="ppo.num_minibatches = 4.*= 12.*device count 8"):
        distributed.check_divisible(Config(env=EnvConfig(num_envs=24), ppo=PPOConfig(num_steps=2, num_minibatches=4),
                                           amp=AMPConfig(replay_buffer_size=96)), 8)
    with pytest.raises(ConfigError, match="train.num_devices = 9"):
        distributed.make_mesh(9)


# ----------------------------------------------------------------------------------------------------------
# Two processes of one device each.

TWO_PROCESS_TIMEOUT_S = 600


def _train_py(args, cache, timeout=TWO_PROCESS_TIMEOUT_S, **kwargs):
    """``train.py ARGS`` in a subprocess sharing the suite's compilation cache."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(cache)}
    env.pop("XLA_FLAGS", None)
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "train.py"), *args], env=env, capture_output=True,
                          text=True, cwd=PROJECT_ROOT, timeout=timeout, **kwargs)


def _tiny_args(*extra):
    import conftest

    args = ["--config", "a1_trot.yaml", "--config", "cpu.yaml", "--no-eval", "--quiet"]
    for override in conftest.TINY_RUN_OVERRIDES:
        args += ["--set", override]
    return [*args, *extra]


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def two_process_run(checks_dir, tmp_path_factory):
    """The two-forced-device run of ``checks_dir/a1`` (4 iterations) resumed from its step 3 (the older steps no
    longer hold the replay buffer) by ``train.py --processes 2``: iteration 4 again, as two processes of one
    device each."""
    cache = pathlib.Path(os.environ.get("AMP_JAX_TEST_CACHE", pathlib.Path.home() / ".cache" / "amp_jax_jit"))
    moved = tmp_path_factory.mktemp("two_processes") / "moved"
    shutil.copytree(checks_dir / "a1", moved)
    proc = _train_py(["--resume", str(moved), "--step", "3", "--processes", "2", "--set", "train.num_devices=0",
                      "--no-eval", "--quiet"], cache)
    assert proc.returncode == 0, failure_text(proc.stderr)
    return moved, proc, cache


def test_two_processes_continue_a_two_device_run_as_it_went_on(two_process_run, checks_dir):
    """Iteration 4 of a two-device run, redone from its checkpoint 3 by two processes: the same metrics (the same
    mesh and random draws, to float tolerance), and the checkpoint moved between the layouts."""
    moved, proc, _ = two_process_run
    two_devices = _metrics(checks_dir / "a1")
    two_processes = _metrics(moved)
    assert [line["iteration"] for line in two_processes] == [1, 2, 3, 4]
    assert load_config(moved / "config.yaml").train.processes == 2
    for one, other in zip(two_devices[3:], two_processes[3:]):
        for key, value in one.items():
            if key not in ("wall_time", "steps_per_second"):
                np.testing.assert_allclose(other[key], value, rtol=1e-4, atol=1e-5, err_msg=key)
    with checkpoint.RunCheckpointer(moved) as ckpt:
        assert ckpt.latest_step() == 4
    # what a user reads: nothing from the runtime's set-up, nothing from process 1
    assert "[Gloo]" not in proc.stdout and "process 1:" not in proc.stderr, proc.stderr[-2000:]


def test_a_two_process_checkpoint_restores_in_one_process_and_its_policy_file_agrees(two_process_run):
    """What the evaluation after a run split over processes does: checkpoint 4, written by two processes, restores
    here (one process; leaves the checkpoint itself places on the writers' devices are placed on this one), and
    the policy file process 0 wrote beside it holds the same parameters and normaliser bit for bit."""
    import jax

    from amp_jax.training import policy_file, run_folder

    moved, _, _ = two_process_run
    restored = run_folder.restore_checkpoint(moved, 4)
    assert restored.step == 4 and int(restored.state.iteration) == 4
    written = policy_file.read_policy_file(policy_file.policy_path(moved, 4))
    for saved, checkpointed in ((written.params, restored.state.params),
                                (written.amp_normalizer, restored.state.normalizer)):
        for x, y in zip(jax.tree.leaves(saved), jax.tree.leaves(checkpointed), strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.heavy
def test_a_dead_process_ends_the_run_with_its_newest_checkpoint_intact(two_process_run, tmp_path):
    import signal
    import time

    from amp_jax.training.checkpoint.digest import verify_step
    from amp_jax.training.processes import PROCESS_ID_ENV

    *_, cache = two_process_run
    run = tmp_path / "killed"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(cache)}
    env.pop("XLA_FLAGS", None)
    args = _tiny_args("--processes", "2", "--run-dir", str(run), "--set", "train.num_iterations=100000",
                      "--set", "train.checkpoint_interval=2")
    launcher = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "train.py"), *args], env=env, cwd=PROJECT_ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + TWO_PROCESS_TIMEOUT_S
        while not ((run / "metrics.jsonl").exists() and len(_metrics(run)) >= 5):
            assert launcher.poll() is None and time.monotonic() < deadline, launcher.communicate()[1][-3000:]
            time.sleep(0.2)
        victim = next(pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
                      if _environ(pid).get(PROCESS_ID_ENV) == "1" and _environ(pid).get("AMP_JAX_COORDINATOR")
                      and str(run) in _cmdline(pid))
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        _, stderr = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert time.monotonic() - killed_at < 60
    assert launcher.returncode == 128 + signal.SIGKILL
    assert "process 1 of 2 was killed by SIGKILL; stopping the other processes" in stderr
    with checkpoint.RunCheckpointer(run) as ckpt:
        steps = ckpt.steps()
    # complete checkpoints only (orbax renames a finished save into place; the one in flight at the kill never
    # completes); the newest may not be sealed with its digest yet (the next save seals it)
    assert steps and steps[-1] >= 2 and all(step % 2 == 0 for step in steps)
    # each raises if its files differ from the digest it has; the newest sealed one verifies
    assert any([verify_step(run / "checkpoints" / str(step)) for step in steps[-2:]])


def _environ(pid):
    try:
        raw = pathlib.Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _cmdline(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


