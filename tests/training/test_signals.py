"""A signal at any instant, as a scheduler sends it to ``train.py`` (``benchmarks/signal_sweep.py`` runs the full
sweep): offsets spread over an iteration and over a checkpoint's save, for SIGTERM, SIGINT and SIGHUP; a second
signal during the exit save; a save that cannot finish. Every try runs under a timeout that fails, not hangs."""

import importlib.util
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import jax
import pytest

from amp_jax.config import PROJECT_ROOT, load_config
from amp_jax.training import trainer

_spec = importlib.util.spec_from_file_location("signal_sweep", PROJECT_ROOT / "benchmarks" / "signal_sweep.py")
sweep = importlib.util.module_from_spec(_spec)
sys.modules["signal_sweep"] = sweep  # dataclasses look their module up there
_spec.loader.exec_module(sweep)

pytestmark = pytest.mark.slow

TRIES = [
    # (signal, after line, offset ms): inside iteration 4 (no save due) and inside the save after iteration 4,
    # each signal once; benchmarks/signal_sweep.py runs 60 such tries (every signal at ten offsets in both places)
    ("TERM", 3, 4), ("INT", 4, 6), ("HUP", 4, 1),
]


@pytest.fixture(scope="module")
def env():
    """The suite's compilation cache for the subprocesses: after the first, they compile nothing."""
    return sweep.cached_compilation_env(pathlib.Path(jax.config.jax_compilation_cache_dir))


@pytest.fixture(scope="module")
def straight_process(env, tmp_path_factory):
    """The tiny run straight through, as ``train.py`` prints it for a user (no ``--quiet``): (its metrics
    records, the finished process)."""
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    args = [arg for arg in sweep.command(run_dir) if arg != "--quiet"]
    done = subprocess.run(args, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=sweep.START_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    return sweep.metrics_lines(run_dir), done


@pytest.fixture(scope="module")
def straight(straight_process):
    return straight_process[0]


def test_train_py_prints_only_the_project_s_own_lines(straight_process):
    """What a user reads from train.py: the progress line and the project's log lines; nothing from a
    dependency's warning machinery (Python warnings, absl or XLA log lines)."""
    records, done = straight_process
    ours = ("INFO amp_jax.", "WARNING amp_jax.", "train.py: ")
    foreign = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith(ours)]
    assert not foreign, "\n".join(foreign[:20])
    out = [line for line in done.stdout.splitlines() if line.strip()]
    assert out and all(line.startswith(("it ", "run folder: ")) for line in out), "\n".join(out[:20])
    assert len(records) == 10 and out[-2].startswith("it 10/10 ") and out[-1].startswith("run folder: ")


@pytest.mark.parametrize("name, after_line, offset_ms", TRIES)
def test_a_signal_at_any_offset_checkpoints_the_last_logged_iteration_and_resumes_exactly(
        name, after_line, offset_ms, straight, env, tmp_path):
    signum = getattr(signal, f"SIG{name}")
    run_dir = tmp_path / "run"
    outcome = sweep.signal_try(run_dir, signum, after_line, offset_ms, env)
    if outcome.exit_code is not None and outcome.checkpoint is not None:
        # resumed in this process, which compiles the tiny run once for every try: what train.py --resume does
        trainer.train(load_config(run_dir / "config.yaml"), run_dir=run_dir, resume=True, progress=False)
        outcome.resumed_matches = sweep.same_records(sweep.metrics_lines(run_dir), straight)
    assert not outcome.problems(signum), outcome
    assert outcome.last_logged >= after_line and outcome.exit_s < sweep.EXIT_TIMEOUT_S


SLOW_STOP_SAVE = """
import runpy, sys, time
from amp_jax.training import stop_signals, trainer
real_save = trainer.RunCheckpointer.save
def save(self, step, state, **kwargs):  # the save a stop signal asks for takes {delay} s (a slow or stuck disk)
    if stop_signals.stop_requested():
        time.sleep({delay})
    return real_save(self, step, state, **kwargs)
trainer.RunCheckpointer.save = save
sys.argv = {argv!r}
runpy.run_path("train.py", run_name="__main__")
"""


def _started_run(run_dir, env, stop_save_s, lines):
    """train.py on the tiny run, its exit save slowed by ``stop_save_s``, once it has logged ``lines`` lines."""
    argv = sweep.command(run_dir)[1:]
    script = SLOW_STOP_SAVE.format(delay=stop_save_s, argv=argv)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + sweep.START_TIMEOUT_S
    while len(sweep.metrics_lines(run_dir)) < lines:
        assert process.poll() is None and time.monotonic() < deadline, "the tiny run did not start"
        time.sleep(0.002)
    return process


def _wait(process):
    try:
        return process.wait(timeout=sweep.EXIT_TIMEOUT_S), process.stderr.read()
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"no exit within {sweep.EXIT_TIMEOUT_S} s of the signal")


def _landed_on_a_saved_iteration(run_dir, stderr):
    """Whether the first signal was acted on at an iteration the run had just checkpointed: then there is no exit
    save to slow down or interrupt (on a loaded machine the signal sent after iteration 5's line can be acted on at
    iteration 8, a periodic checkpoint of the tiny run)."""
    match = re.search(r"SIGTERM at iteration (\d+): writing a checkpoint before exiting", stderr)
    interval = load_config(run_dir / "config.yaml").train.checkpoint_interval
    return match is not None and int(match.group(1)) % interval == 0


def _stopped_during_the_exit_save(tmp_path, env, stop_save_s, second_signal):
    """train.py on the tiny run with its exit save slowed by ``stop_save_s``, SIGTERM after iteration 5's line and,
    with ``second_signal``, again 1.5 s later (inside the slowed save, past the duplicate window). A try whose
    first signal was acted on at a checkpointed iteration has no exit save and is made again (at most three
    tries). Returns (run folder, exit code, stderr, seconds from the last signal to the exit)."""
    for attempt in range(3):
        run_dir = tmp_path / f"run{attempt}"
        process = _started_run(run_dir, env, stop_save_s=stop_save_s, lines=5)
        process.send_signal(signal.SIGTERM)
        if second_signal:
            time.sleep(1.5)
            process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code, stderr = _wait(process)
        if not _landed_on_a_saved_iteration(run_dir, stderr):
            break
    return run_dir, code, stderr, time.monotonic() - started


def test_a_second_signal_during_the_exit_save_ends_the_process_and_keeps_the_intact_checkpoint(env, tmp_path):
    """The exit save is slowed to 20 s (a slow disk); the second SIGTERM ends the process at once, with the periodic
    checkpoint of iteration 4 intact and nothing half-written in its place."""
    run_dir, code, stderr, exit_s = _stopped_during_the_exit_save(tmp_path, env, stop_save_s=20, second_signal=True)
    assert code == 143 and exit_s < 10
    assert "SIGTERM again: exiting now" in stderr
    assert sweep.checkpoint_steps(run_dir) == [4]
    trainer.train(load_config(run_dir / "config.yaml"), run_dir=run_dir, resume=True, progress=False)
    assert sweep.metrics_lines(run_dir)[-1]["iteration"] == 10  # the kept checkpoint restored


def test_a_stop_save_that_cannot_finish_in_time_ends_the_process(env, tmp_path):
    run_dir, code, stderr, _ = _stopped_during_the_exit_save(
        tmp_path, {**env, "AMP_JAX_STOP_SAVE_TIMEOUT_S": "3"}, stop_save_s=600, second_signal=False)
    assert code == 143
    assert "did not finish within 3 s after SIGTERM: exiting now" in stderr
    assert sweep.checkpoint_steps(run_dir) == [4]


def test_ctrl_c_in_a_notebook_stops_at_the_iteration_boundary_and_the_kernel_lives_on(tmp_path):
    """A kernel's main thread calls trainer.train; SIGINT lands mid-run: the run checkpoints its last logged
    iteration, raises KeyboardInterrupt into the cell, and the interpreter goes on (and its SIGINT handler is
    restored)."""
    script = f"""
import json, os, pathlib, signal, threading, time
from amp_jax.config import load_config
from amp_jax.training import trainer
cfg = load_config({list(sweep.CONFIGS)!r}, {[*sweep.TINY, "train.num_iterations=400"]!r})
run = pathlib.Path({str(tmp_path / "nb")!r})
def interrupt():
    while not (run / "metrics.jsonl").exists() or (run / "metrics.jsonl").read_text().count("\\n") < 3:
        time.sleep(0.002)
    os.kill(os.getpid(), signal.SIGINT)
threading.Thread(target=interrupt, daemon=True).start()
try:
    trainer.train(cfg, run_dir=run, progress=False)
    print("finished")
except KeyboardInterrupt:
    print("interrupted")
lines = (run / "metrics.jsonl").read_text().splitlines()
print("alive", json.loads(lines[-1])["iteration"], signal.getsignal(signal.SIGINT) is signal.default_int_handler,
      repr(signal.getsignal(signal.SIGINT)).replace(" ", "_"))
"""
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(jax.config.jax_compilation_cache_dir)}
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=sweep.START_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout.split()
    # the run's own handler is gone again (the kernel's Ctrl-C is its own)
    assert out[0] == "interrupted" and out[1] == "alive", done.stdout
    assert "_interrupt_at_iteration_boundary" not in out[4], done.stdout
    logged = int(out[2])
    assert 3 <= logged < 400
    assert sweep.checkpoint_steps(pathlib.Path(tmp_path / "nb"))[-1] == logged


def test_a_signal_during_the_evaluation_after_training_ends_it_with_one_line(env, tmp_path):
    run_dir = tmp_path / "run"
    args = [arg for arg in sweep.command(run_dir) if arg != "--no-eval"]
    process = subprocess.Popen(args, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    for line in process.stdout:  # training is over when the run folder is announced; the evaluation starts
        if line.startswith("run folder: "):
            break
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    code, stderr = _wait(process)
    assert code == 143
    # stopped where Python got control back, or, inside a long compilation, by the signal watch after its grace
    stopped = (f"train.py: stopped by SIGTERM during the evaluation; the run's final checkpoint is saved: evaluate "
               f"it with python -m amp_jax.evaluate {run_dir}")
    watched = "train.py: SIGTERM outside the training loop; the program did not stop within 5 s: exiting now"
    assert stopped in stderr or watched in stderr, stderr[-2000:]
    if stopped in stderr:
        assert "Traceback" not in stderr
    # else the StopSignal was raised inside a callback that swallows exceptions (JAX's garbage-collection hook prints
    # "Exception ignored in ..."), and the watch ended the process after its grace: known, and still one exit
    assert sweep.checkpoint_steps(run_dir)[-1] == 10


def _pids_running(marker: str) -> list[int]:
    """Processes whose command line holds ``marker`` (from /proc, as ``pkill -f`` finds them)."""
    pids = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


@pytest.mark.skipif(not pathlib.Path("/proc").is_dir(), reason="finds the run's processes through /proc")
def test_a_signal_to_every_process_of_a_two_process_run_stops_it_as_one_signal(env, tmp_path):
    """A scheduler or service manager that signals every process of a job (Slurm's scancel, systemd's control group,
    ``pkill -f``) reaches the launcher and both training processes, and the launcher forwards the signal as well:
    each process gets it twice at once. The run stops as from one signal: exit 143, no "again", the checkpoint of
    the last iteration in metrics.jsonl."""
    run_dir = tmp_path / "run"
    argv = sweep.command(run_dir, "--processes", "2", "--set", "train.num_iterations=100000",
                         "--set", "train.checkpoint_interval=1000")
    process = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    deadline = time.monotonic() + sweep.START_TIMEOUT_S
    while len(sweep.metrics_lines(run_dir)) < 3:
        assert process.poll() is None and time.monotonic() < deadline, "the two-process run did not start"
        time.sleep(0.01)
    pids = _pids_running(str(run_dir))
    assert process.pid in pids and len(pids) == 3, pids  # the launcher and its two training processes
    for pid in sorted(pids, key=lambda pid: pid == process.pid):  # the launcher last, as a slower delivery
        os.kill(pid, signal.SIGTERM)
        time.sleep(0.05)  # each delivery on its own (two that arrive together merge into one)
    code, stderr = _wait(process)
    assert code == 143 and "again" not in stderr, stderr[-3000:]
    last = sweep.metrics_lines(run_dir)[-1]["iteration"]
    assert sweep.checkpoint_steps(run_dir) == [last] and last >= 3
