"""The A1 training env's step at 512 envs split over two processes of one device each finishes (under a timeout):
the split over devices deadlocked XLA's CPU thread pool before amp_jax/cpu_threads.py sized it; the forced-device
case runs in tests/agents/test_distributed.py's subprocess. Its own file, so that the suite's second worker runs it
beside the first's long distributed checks."""

import os
import pathlib
import sys

import pytest

from amp_jax.training import processes

pytestmark = pytest.mark.slow

SCRIPT = pathlib.Path(__file__).resolve().parent / "split_step_check.py"


def test_the_a1_step_at_512_envs_finishes_on_two_processes(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.delenv("PJRT_NPROC", raising=False)
    command = ["timeout", "300", sys.executable, str(SCRIPT), "512", "2"]
    assert processes.launch(command, 2) == 0  # a hang ends by the timeout: exit 124
    assert os.environ.get(processes.PROCESS_ID_ENV) is None
