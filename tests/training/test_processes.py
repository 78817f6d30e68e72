"""The CPU launcher (amp_jax/training/processes.py) and the thread-pool sizing (amp_jax/cpu_threads.py), with
small stand-in processes: how many processes a run gets, how a failure or a signal ends them all, what output
reaches the user. The real two-process training runs are in tests/agents/test_distributed.py."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from amp_jax import cpu_threads
from amp_jax.config import ConfigError, load_config
from amp_jax.training import processes


def test_automatic_process_count_gives_each_process_enough_envs():
    recipe = load_config("a1_trot_cpu")  # 512 envs
    assert processes.process_count(recipe, backend="cpu", cores=2) == 2
    assert processes.process_count(recipe, backend="cpu", cores=8) == 4  # 128 envs each at most
    assert processes.process_count(recipe, backend="cpu", cores=3) == 2  # 512 envs do not split in 3
    assert processes.process_count(recipe, backend="cpu", cores=1) == 1
    assert processes.process_count(recipe, backend="gpu", cores=64) == 1
    small = load_config(["a1_trot", "cpu.yaml"])  # 64 envs: the suite's and the quick CPU run's size
    assert processes.process_count(small, backend="cpu", cores=2) == 1


def test_an_explicit_process_count_is_checked(monkeypatch):
    recipe = load_config("a1_trot_cpu", ["train.processes=1"])
    assert processes.process_count(recipe, backend="cpu", cores=2) == 1
    with pytest.raises(ConfigError, match=r"train.processes: env.num_envs = 512: expected a multiple of the "
                                          r"device count 3"):
        processes.process_count(load_config("a1_trot_cpu", ["train.processes=3"]), backend="cpu")
    with pytest.raises(ConfigError, match=r"train.processes = 2: expected 0 or 1 on gpu"):
        processes.process_count(load_config("a1_trot_cpu", ["train.processes=2"]), backend="gpu")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")  # forced devices: one process
    assert processes.process_count(load_config("a1_trot_cpu"), backend="cpu", cores=2) == 1


def test_forced_devices_get_a_thread_pool_they_cannot_exhaust():
    environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    assert cpu_threads.size_thread_pool(environ) == str(max(os.cpu_count(), 8))
    assert cpu_threads.size_thread_pool({"XLA_FLAGS": "--xla_force_host_platform_device_count=2",
                                         "PJRT_NPROC": "3"}) == "3"  # the user's choice stays
    assert cpu_threads.size_thread_pool({}) is None  # one device: XLA's default
    child = processes.child_environment(1, 2, "127.0.0.1:1", base={})
    assert child["PJRT_NPROC"] == "1" and child[processes.PROCESS_ID_ENV] == "1"


def _stand_in(tmp_path, body: str) -> list[str]:
    """A stand-in for train.py: ``body`` runs with ``rank`` (its process id) and ``out`` (tmp_path) defined."""
    script = tmp_path / "stand_in.py"
    script.write_text("import os, pathlib, signal, sys, time\n"
                      f"rank = int(os.environ[{processes.PROCESS_ID_ENV!r}])\n"
                      f"out = pathlib.Path({str(tmp_path)!r})\n" + textwrap.dedent(body))
    return [sys.executable, str(script)]


def test_a_failed_process_stops_the_others_with_one_line(tmp_path, capsys):
    command = _stand_in(tmp_path, """
        if rank == 1:
            sys.exit(3)
        time.sleep(600)
    """)
    start = time.monotonic()
    assert processes.launch(command, 2, stop_grace_s=5) == 3
    assert time.monotonic() - start < 30
    assert "process 1 of 2 exited with code 3; stopping the other processes" in capsys.readouterr().err


def test_a_process_that_ignores_the_stop_is_killed_after_the_grace(tmp_path, capsys):
    command = _stand_in(tmp_path, """
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as a process stuck in a collective
        if rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(600)
    """)
    start = time.monotonic()
    assert processes.launch(command, 2, stop_grace_s=2) == 128 + signal.SIGKILL
    assert time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert "process 1 of 2 was killed by SIGKILL" in err and "process 0 of 2 did not end in time" in err


def test_signals_reach_every_process_once_and_the_run_exits_as_they_do(tmp_path):
    body = """
        def stop(signum, frame):
            (out / f"got-{rank}").write_text(str(signum))
            sys.exit(128 + signum)
        signal.signal(signal.SIGTERM, stop)
        (out / f"ready-{rank}").write_text("")
        time.sleep(600)
    """
    launcher = subprocess.Popen(
        [sys.executable, "-c", "import sys; from amp_jax.training import processes; "
                               f"sys.exit(processes.launch({_stand_in(tmp_path, body)!r}, 2))"])
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{rank}").exists() for rank in (0, 1)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(timeout=30) == 128 + signal.SIGTERM
    assert [(tmp_path / f"got-{rank}").read_text() for rank in (0, 1)] == [str(int(signal.SIGTERM))] * 2


def test_output_is_process_zeros_less_the_runtime_lines(tmp_path, capfd):
    command = _stand_in(tmp_path, """
        if rank == 0:
            sys.stdout.write("[Gloo] Rank 0 is connected to 1 peer ranks.\\n")
            sys.stdout.write("it 1/2\\r")
            sys.stdout.write("it 2/2\\n[Glow] not noise\\n")
            sys.stdout.write("tail [Gloo] Rank 0 is connected\\n")
        else:
            print("nobody reads this")
            print("warning from one", file=sys.stderr)
    """)
    assert processes.launch(command, 2) == 0
    out, err = capfd.readouterr()
    assert out == "it 1/2\rit 2/2\n[Glow] not noise\ntail "
    assert "process 1: warning from one" in err
