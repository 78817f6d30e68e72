"""Stop signals of a training run: SIGTERM, SIGHUP and SIGINT stop the loop at its next iteration boundary with
a checkpoint; a second signal ends the process at once; a signal outside the loop stops the program where it is.

``train.py`` installs :func:`handle_stop_signal` and :func:`watch_stop_signals`; the training loop
(:mod:`amp_jax.training.trainer`) runs inside :func:`loop_running` and asks :func:`agree_to_stop` at every
boundary, so that every process of a run split over processes stops at the same iteration.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np


class StopSignal(KeyboardInterrupt):
    """SIGTERM, SIGHUP or SIGINT arrived: the run checkpoints its latest finished iteration and stops."""

    def __init__(self, signum: int):
        import signal

        super().__init__(signum)
        self.signum = signum
        self.reason = signal.Signals(signum).name

    @property
    def exit_code(self) -> int:
        """The shell's convention for death by a signal: 128 + its number."""
        return 128 + self.signum


_stop_requests: list[int] = []
"""Signals received while the training loop runs, in order; acted on at the next iteration boundary."""
_in_loop = False
"""Whether the training loop is running (signals then only ask it to stop at the next iteration boundary)."""
_first_signal: list[tuple[int, float]] = []
"""The first stop signal this process received and when (``time.monotonic``)."""
DUPLICATE_SIGNAL_WINDOW_S = 0.5
"""A signal that repeats the first one within this many seconds is that request delivered twice, not a second
signal: a terminal's Ctrl-C and a scheduler's SIGTERM reach the whole process group, so each process of a run
split over processes (``train.py`` on a multi-core CPU) gets it from there and once more from the launcher, which
forwards it. A real second signal (a second Ctrl-C) still ends the process at once."""


def _is_duplicate(signum: int) -> bool:
    """Records the first stop signal; True for a repeat of it within :data:`DUPLICATE_SIGNAL_WINDOW_S`."""
    now = time.monotonic()
    if not _first_signal:
        _first_signal.append((signum, now))
        return False
    first, at = _first_signal[0]
    return signum == first and now - at < DUPLICATE_SIGNAL_WINDOW_S


def handle_stop_signal(signum: int, frame: Any = None) -> None:
    """The handler ``train.py`` installs for SIGTERM, SIGHUP and SIGINT.

    While the training loop runs, the first signal only asks it to stop: it finishes the iteration in flight,
    writes its metrics line, checkpoints that iteration and raises :class:`StopSignal` (every process of a run
    at the same iteration). A second signal ends the process at once, leaving the newest checkpoint on disk as
    it is. Outside the loop (building, compiling, restoring, evaluating) the signal raises :class:`StopSignal`
    where the program is, which loses no finished iteration.
    """
    del frame
    import signal

    if _is_duplicate(signum):
        return
    if _stop_requests:
        print(f"train.py: {signal.Signals(signum).name} again: exiting now; the newest checkpoint in the run "
              f"folder is kept", file=sys.stderr, flush=True)
        os._exit(128 + signum)
    if _in_loop:
        _stop_requests.append(signum)
        return
    raise StopSignal(signum)


STOP_SAVE_TIMEOUT_S = float(os.environ.get("AMP_JAX_STOP_SAVE_TIMEOUT_S", 120.0))
"""Longest the checkpoint written on a stop signal may take (s): past it the process exits with the signal's code,
leaving the newest intact checkpoint as it is (a save that hangs on a full or failing disk must not keep a
preempted job alive until its SIGKILL). ``AMP_JAX_STOP_SAVE_TIMEOUT_S`` sets it."""


def exit_unless_saved_within(seconds: float, signum: int, iteration: int) -> threading.Timer:
    """A started watchdog that ends the process if it is not cancelled within ``seconds``."""
    import signal

    def give_up() -> None:
        print(f"train.py: the checkpoint of iteration {iteration} did not finish within {seconds:g} s after "
              f"{signal.Signals(signum).name}: exiting now; the newest intact checkpoint in the run folder is kept",
              file=sys.stderr, flush=True)
        os._exit(128 + signum)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()
    return timer


def _interrupt_at_iteration_boundary(signum: int, frame: Any = None) -> None:
    """The SIGINT handler :func:`train` installs when called from a program's main thread without ``train.py``'s
    handlers (a notebook, a script): the first Ctrl-C during the loop stops the run at the iteration boundary
    with a checkpoint, as :func:`handle_stop_signal` does; outside the loop, or a second time, it interrupts
    where the program is (``KeyboardInterrupt``), and the process (a notebook's kernel) lives on."""
    del frame
    if _in_loop and not _stop_requests:
        _stop_requests.append(signum)
        return
    raise KeyboardInterrupt


@contextlib.contextmanager
def ctrl_c_at_iteration_boundary() -> Iterator[None]:
    """Installs :func:`_interrupt_at_iteration_boundary` for SIGINT while the block runs, where it can (main
    thread) and where ``train.py`` has not installed :func:`handle_stop_signal`; restores the previous handler."""
    import signal

    previous = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    if previous is None or previous is handle_stop_signal:
        yield
        return
    signal.signal(signal.SIGINT, _interrupt_at_iteration_boundary)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


STOP_GRACE_S = 5.0
"""Seconds a signal outside the training loop (building, compiling, the evaluation) gives the program to stop by
itself (:class:`StopSignal`) before :func:`watch_stop_signals` ends the process."""


def watch_stop_signals(grace_s: float = STOP_GRACE_S) -> None:
    """Makes every stop signal end the process promptly even while the main thread is inside a long call that
    Python cannot interrupt (an XLA compilation, a device computation), where the handlers of
    :func:`handle_stop_signal` only run once the call returns.

    A thread woken by the signal itself (``signal.set_wakeup_fd``) ends the process with the signal's code
    (``os._exit``, after one line) when the signal came outside the training loop and the program has not stopped
    within ``grace_s`` (no finished iteration is lost there: the loop has checkpointed, or none has run), and at
    once on a second signal. A first signal inside the loop is left to the loop, which stops at the next
    iteration boundary with a checkpoint. Call from the main thread after installing the handlers.
    """
    import signal

    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)

    def watch() -> None:
        received, first = 0, (0, 0.0)
        while True:
            signum = os.read(read_end, 1)[0]
            now = time.monotonic()
            if received and signum == first[0] and now - first[1] < DUPLICATE_SIGNAL_WINDOW_S:
                continue  # the first request delivered twice (the process group's and the launcher's copy)
            if not received:
                first = (signum, now)
            received += 1
            name = signal.Signals(signum).name
            if received == 1 and _in_loop:
                continue  # the loop stops at its boundary
            if received == 1:
                time.sleep(grace_s)
                reason = f"{name} outside the training loop; the program did not stop within {grace_s:g} s"
            else:
                reason = f"{name} again"
            print(f"train.py: {reason}: exiting now; the newest checkpoint in the run folder is kept",
                  file=sys.stderr, flush=True)
            os._exit(128 + signum)

    threading.Thread(target=watch, name="stop-signal-watch", daemon=True).start()


def reset() -> None:
    """Forgets the signals of an earlier run in this process (a notebook's next chunk, a test's next run)."""
    _stop_requests.clear()
    _first_signal.clear()


@contextlib.contextmanager
def loop_running() -> Iterator[None]:
    """Marks the training loop as running for the block: a first signal then only asks it to stop at the next
    iteration boundary (:func:`handle_stop_signal`)."""
    global _in_loop
    _in_loop = True
    try:
        yield
    finally:
        _in_loop = False


def stop_requested() -> int | None:
    """The signal that asked the run to stop (see :func:`handle_stop_signal`), or None."""
    return _stop_requests[0] if _stop_requests else None


def agree_to_stop(out_of_time: bool) -> tuple[int, bool]:
    """``(signal number or 0, out of time)`` as every process of the run sees it: the first signal any process
    received, and whether any process's clock passed the deadline (one process: its own)."""
    signum = stop_requested() or 0
    if jax.process_count() == 1:
        return signum, out_of_time
    from jax.experimental import multihost_utils

    votes = np.asarray(multihost_utils.process_allgather(np.array([signum, int(out_of_time)], np.int32)))
    signals = votes[:, 0][votes[:, 0] > 0]
    return (int(signals[0]) if signals.size else 0), bool(votes[:, 1].any())
