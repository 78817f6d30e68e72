"""One training run as several processes of one CPU host: how many, how they start, how they end together.

XLA runs the batched MJX step of one CPU device on one core (``docs/BENCHMARKS.md``); no XLA flag spreads it
over more. Two processes of one CPU device each, joined by JAX's distributed runtime into one mesh of two devices,
run the project's data-parallel train step (:mod:`amp_jax.agents.distributed`) with its collectives over gloo and
use both cores. ``train.py`` does this by default where it pays (:func:`process_count`): it becomes a launcher
that starts one copy of itself per process (:func:`launch`) and evaluates the run once they have finished;
each copy joins the others (:func:`join_from_environment`) and trains its share of the envs. Process 0 writes the
run folder's config, metrics and progress line; orbax coordinates the checkpoint writes of all.

The launcher ends the run as a whole: a signal it receives goes to every process (each checkpoints the same
iteration, see :mod:`amp_jax.training.trainer`); a process that dies takes the others down after a grace period
with one line naming it, and the newest checkpoint on disk stays as it was.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence

from amp_jax.config import Config, ConfigError
from amp_jax.cpu_threads import forced_host_devices

COORDINATOR_ENV = "AMP_JAX_COORDINATOR"
"""Environment variable of a launched process: the coordinator's ``host:port``."""
NUM_PROCESSES_ENV = "AMP_JAX_NUM_PROCESSES"
"""Environment variable of a launched process: how many processes the run has."""
PROCESS_ID_ENV = "AMP_JAX_PROCESS_ID"
"""Environment variable of a launched process: its rank, 0 to ``num_processes − 1``."""
COMPILATION_CACHE_ENV = "AMP_JAX_RUN_COMPILATION_CACHE"
"""Environment variable of a launched process: a compilation cache folder of the run, used when the user set
none (JAX shares compiled programs between processes only through a cache)."""
MIN_ENVS_PER_PROCESS = 128
"""Automatic splitting gives every process at least this many envs: fewer would trade the second core's gain for
per-iteration collectives and a second compile (the test suite's tiny configs stay in one process)."""
STOP_GRACE_S = 5.0
"""Seconds the others get to end by themselves once one process has failed, before they are killed (they are
usually waiting in a collective for the dead one, and no checkpoint can be written without it)."""
FINISH_GRACE_S = 120.0
"""Seconds the others get to finish once one process has finished cleanly (they end within an iteration)."""
JOIN_TIMEOUT_S = 120
"""Seconds a process waits for the others to join the run."""
HEARTBEAT_TIMEOUT_S = 60
"""Seconds without a heartbeat after which JAX's distributed runtime declares a process dead."""
SHUTDOWN_TIMEOUT_S = 1200
"""Seconds a process that has finished waits at the runtime's shutdown barrier for the others. Process 0 ends
later than the rest (after the last iteration it alone runs the hooks, such as the training probe, which may
compile, and writes the policy file); on a loaded machine that took more than JAX's default of 300 s, and the
barrier's timeout aborted both processes. A process that dies is still noticed within the heartbeat timeout."""


def cpu_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _splits(cfg: Config, count: int) -> bool:
    from amp_jax.agents import distributed

    try:
        distributed.check_divisible(cfg, count)
    except ConfigError:
        return False
    return True


def process_count(cfg: Config, *, backend: str | None = None, cores: int | None = None) -> int:
    """How many processes a run of ``cfg`` should have on this host (1: train in this process).

    ``train.processes`` > 0 is taken as given (checked to split the config). 0 is automatic: on a CPU backend
    with no forced host devices, one process per core while each gets at least :data:`MIN_ENVS_PER_PROCESS`
    envs and the config splits evenly; one process otherwise (accelerators, where one process drives all the
    devices of its host).

    Raises:
      ConfigError: ``train.processes`` > 1 on an accelerator, or one that does not split the config's envs,
        minibatch or replay buffer.
    """
    requested = cfg.train.processes
    if requested == 1:
        return 1
    if backend is None:
        import jax

        backend = jax.default_backend()
    if requested > 1:
        if backend != "cpu":
            raise ConfigError("train.processes", "train.processes", requested,
                              f"0 or 1 on {backend} (one process drives every device of its host)")
        from amp_jax.agents import distributed

        distributed.check_divisible(cfg, requested, source="train.processes")  # raises with the reason
        return requested
    if backend != "cpu" or forced_host_devices() > 1:
        return 1
    count = min(cores or cpu_cores(), cfg.env.num_envs // MIN_ENVS_PER_PROCESS)
    while count > 1 and not _splits(cfg, count):
        count -= 1
    return max(count, 1)


# ----------------------------------------------------------------------------------------------------------
# In a launched process.


@dataclasses.dataclass(frozen=True)
class ProcessRole:
    """Where a launched process stands in its run."""

    coordinator: str
    num_processes: int
    process_id: int


def role_from_environment(environ: dict[str, str] | None = None) -> ProcessRole | None:
    """The role :func:`launch` gave this process through its environment, or None when it was not launched."""
    environ = os.environ if environ is None else environ
    if PROCESS_ID_ENV not in environ:
        return None
    return ProcessRole(coordinator=environ[COORDINATOR_ENV], num_processes=int(environ[NUM_PROCESSES_ENV]),
                       process_id=int(environ[PROCESS_ID_ENV]))


def join_from_environment() -> ProcessRole | None:
    """In a process :func:`launch` started: joins the run's other processes (``jax.distributed.initialize``,
    before anything touches a device); returns its role, or None (doing nothing) in any other process."""
    role = role_from_environment()
    if role is None:
        return None
    import jax

    jax.distributed.initialize(coordinator_address=role.coordinator, num_processes=role.num_processes,
                               process_id=role.process_id, initialization_timeout=JOIN_TIMEOUT_S,
                               heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S,
                               shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_S)
    _share_compiled_programs()
    return role


def _share_compiled_programs() -> bool:
    """Lets process 0 compile each program of the run alone and hand the executable to the others through the
    distributed runtime's key-value store (``jax_share_binary_between_hosts``), instead of every process compiling
    it at once on its share of the cores. Returns whether sharing is on.

    JAX shares only programs it can name by a compilation-cache key, so a cache folder is needed (the launcher
    gives the run one when the user has none). The key of a multi-process CPU program holds the fingerprint of
    the CPU topology, which differs between the processes of one host (each sees its own device as local), so the
    processes would wait for each other's keys forever: for CPU devices the key here takes the devices' kinds
    instead, as JAX itself does for platforms without a topology fingerprint. If this JAX lacks that hook, each
    process compiles for itself (slower to start, the same run).
    """
    import jax

    try:
        from jax._src import cache_key
    except ImportError:
        return False
    hash_config = getattr(cache_key, "_hash_accelerator_config", None)
    hash_devices = getattr(cache_key, "_hash_devices", None)
    if hash_config is None or hash_devices is None:
        return False
    if not getattr(hash_config, "cpu_devices_by_kind", False):
        def hash_cpu_devices_by_kind(hash_obj, accelerators):
            if all(device.platform == "cpu" for device in accelerators.flat):
                return hash_devices(hash_obj, accelerators)
            return hash_config(hash_obj, accelerators)

        hash_cpu_devices_by_kind.cpu_devices_by_kind = True
        cache_key._hash_accelerator_config = hash_cpu_devices_by_kind
    if not jax.config.jax_compilation_cache_dir and os.environ.get(COMPILATION_CACHE_ENV):
        jax.config.update("jax_compilation_cache_dir", os.environ[COMPILATION_CACHE_ENV])
    if not jax.config.jax_compilation_cache_dir:
        return False
    jax.config.update("jax_share_binary_between_hosts", True)
    return True


# ----------------------------------------------------------------------------------------------------------
# The launcher.


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_environment(process_id: int, num_processes: int, coordinator: str,
                      base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of process ``process_id``: its role, and XLA's CPU thread pool of one thread
    (``PJRT_NPROC=1``: one device per process, its share of one core; the batched LAPACK kernels then do all
    their work in the calling thread, see :mod:`amp_jax.cpu_threads`)."""
    environ = dict(os.environ if base is None else base)
    environ.update({COORDINATOR_ENV: coordinator, NUM_PROCESSES_ENV: str(num_processes),
                    PROCESS_ID_ENV: str(process_id)})
    environ.setdefault("PJRT_NPROC", "1")
    return environ


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


RUNTIME_NOISE = ("[Gloo] ",)
"""Starts of the lines the collectives library prints on its own when the processes connect."""


def _prefix_lines(stream, prefix: str) -> None:
    """Copies a process's error lines to this process's standard error, each prefixed."""
    for line in iter(stream.readline, b""):
        sys.stderr.write(prefix + line.decode(errors="replace"))
        sys.stderr.flush()


def _pass_output(stream, out) -> None:
    """Copies process 0's standard output to ``out`` as it comes (the live progress line rewrites itself with
    carriage returns, so text is passed on without waiting for a newline), less :data:`RUNTIME_NOISE` lines."""
    pending = ""
    while chunk := os.read(stream.fileno(), 4096):
        pending += chunk.decode(errors="replace")
        pending = _write_clean(pending, out)
    if pending:
        out.write(pending)
        out.flush()


def _write_clean(pending: str, out) -> str:
    """Writes ``pending`` less every complete noise line (from a noise marker to its newline, wherever it starts);
    returns what must wait for more text: an incomplete noise line, or a tail that may begin one."""
    text = ""
    while True:
        starts = [k for k in (pending.find(noise) for noise in RUNTIME_NOISE) if k >= 0]
        if not starts:
            break
        start = min(starts)
        end = pending.find("\n", start)
        if end < 0:
            text, pending = text + pending[:start], pending[start:]
            out.write(text)
            out.flush()
            return pending
        text, pending = text + pending[:start], pending[end + 1:]
    hold = max((n for noise in RUNTIME_NOISE for n in range(1, len(noise)) if pending.endswith(noise[:n])), default=0)
    text, pending = text + pending[:len(pending) - hold], pending[len(pending) - hold:]
    if text:
        out.write(text)
        out.flush()
    return pending


def launch(command: Sequence[str], num_processes: int, *, poll_s: float = 0.2,
           stop_grace_s: float = STOP_GRACE_S, finish_grace_s: float = FINISH_GRACE_S) -> int:
    """Runs ``command`` (an argv) as ``num_processes`` processes of one run and returns the run's exit code.

    Process 0's standard output and error are this process's (less the collectives library's connection lines);
    the others' standard output is discarded (they print nothing of their own) and their error lines are shown
    prefixed ``process i: ``. Each process is in its
    own session, so a Ctrl-C in the terminal reaches them once, through this launcher: SIGINT, SIGTERM and SIGHUP
    received here are sent on to every process. When a process fails (a non-zero exit or a signal the launcher did
    not send), the others get :data:`STOP_GRACE_S` seconds and are then killed; once one has finished cleanly, the
    others get :data:`FINISH_GRACE_S`. Returns 0 when every process exited 0, else the code of the first process
    seen to fail (128 + the signal's number for a death by signal).
    """
    coordinator = f"127.0.0.1:{_free_port()}"
    cache = tempfile.TemporaryDirectory(prefix="amp_jax_xla_")
    processes: list[subprocess.Popen] = []
    copiers: list[threading.Thread] = []
    forwarded: list[int] = []

    def forward(signum, frame):
        del frame
        forwarded.append(signum)
        for proc in processes:
            if proc.poll() is None:
                try:
                    proc.send_signal(signum)
                except ProcessLookupError:
                    pass

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, forward) for signum in handled}
    try:
        for rank in range(num_processes):
            environ = {**child_environment(rank, num_processes, coordinator), COMPILATION_CACHE_ENV: cache.name}
            quiet = rank > 0
            proc = subprocess.Popen(list(command), env=environ, start_new_session=True,
                                    stdout=subprocess.DEVNULL if quiet else subprocess.PIPE,
                                    stderr=subprocess.PIPE if quiet else None)
            processes.append(proc)
            if quiet:
                copier = threading.Thread(target=_prefix_lines, args=(proc.stderr, f"process {rank}: "), daemon=True)
            else:
                copier = threading.Thread(target=_pass_output, args=(proc.stdout, sys.stdout), daemon=True)
            copier.start()
            copiers.append(copier)
        code = _watch(processes, forwarded, poll_s, stop_grace_s, finish_grace_s)
        for copier in copiers:
            copier.join(timeout=5)
        return code
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        cache.cleanup()


def _watch(processes: list[subprocess.Popen], forwarded: list[int], poll_s: float, stop_grace_s: float,
           finish_grace_s: float) -> int:
    """Waits for every process; takes the rest down when one fails (see :func:`launch`)."""
    num = len(processes)
    deadline: float | None = None
    failure: tuple[int, int] | None = None  # (rank, code) of the first failure
    while True:
        codes = [proc.poll() for proc in processes]
        if all(code is not None for code in codes):
            break
        for rank, code in enumerate(codes):
            if code is None or code == 0 or failure is not None:
                continue
            failure = (rank, code)
            if -code not in forwarded and code - 128 not in forwarded:
                print(f"train.py: process {rank} of {num} {_describe_exit(code)}; stopping the other "
                      f"processes (the newest checkpoint in the run folder is kept)", file=sys.stderr, flush=True)
                for proc in processes:
                    if proc.poll() is None:
                        proc.terminate()
            deadline = time.monotonic() + stop_grace_s
        if deadline is None and any(code == 0 for code in codes):
            deadline = time.monotonic() + finish_grace_s
        if deadline is not None and time.monotonic() > deadline:
            for rank, proc in enumerate(processes):
                if proc.poll() is None:
                    print(f"train.py: process {rank} of {num} did not end in time; killing it", file=sys.stderr,
                          flush=True)
                    proc.kill()
            for proc in processes:
                proc.wait()
            break
        time.sleep(poll_s)
    codes = [proc.returncode for proc in processes]
    if all(code == 0 for code in codes):
        return 0
    _, code = failure if failure is not None else next((r, c) for r, c in enumerate(codes) if c != 0)
    return code if code > 0 else 128 - code
