"""The A1 training env's step at 512 envs split over two processes of one device each, and over two forced devices
of one process, finishes (under a timeout): the split deadlocked XLA's CPU thread pool before amp_jax/cpu_threads.py
sized it. Heavy checks, outside the default suite: `python -m pytest -m heavy` (a minute each)."""

import os
import pathlib
import subprocess
import sys

import pytest

from amp_jax.training import processes

pytestmark = pytest.mark.slow

SCRIPT = pathlib.Path(__file__).resolve().parent / "split_step_check.py"


@pytest.mark.heavy
def test_the_a1_step_at_512_envs_finishes_on_two_processes(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.delenv("PJRT_NPROC", raising=False)
    command = ["timeout", "300", sys.executable, str(SCRIPT), "512", "2"]
    assert processes.launch(command, 2) == 0  # a hang ends by the timeout: exit 124
    assert os.environ.get(processes.PROCESS_ID_ENV) is None


@pytest.mark.heavy
def test_the_a1_step_at_512_envs_finishes_on_two_forced_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    env.pop("PJRT_NPROC", None)
    done = subprocess.run(["timeout", "300", sys.executable, str(SCRIPT), "512", "2"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0 and "done" in done.stdout, done.stderr[-3000:]  # a hang ends by the timeout: 124
