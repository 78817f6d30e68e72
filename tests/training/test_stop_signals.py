"""Stop signals in one process, without training: a signal outside the loop stops where the program is, one inside
only asks the loop to stop, a copy of the first signal is the same request, a second signal exits at once.
(Signals to real training processes: test_signals.py; a signal during a run's iteration: test_trainer.py.)"""

import signal

import pytest

from amp_jax.training import stop_signals


def test_a_signal_outside_the_loop_stops_where_the_program_is(monkeypatch):
    monkeypatch.setattr(stop_signals, "_stop_requests", [])
    monkeypatch.setattr(stop_signals, "_first_signal", [])
    assert stop_signals.stop_requested() is None
    with pytest.raises(stop_signals.StopSignal) as stopped:
        stop_signals.handle_stop_signal(signal.SIGHUP)
    assert stopped.value.exit_code == 129 and stop_signals.stop_requested() is None


def test_a_signal_delivered_twice_at_once_is_one_request_and_a_later_second_one_exits(monkeypatch):
    """A terminal's Ctrl-C (or a scheduler's SIGTERM to the process group) reaches each process of a run split over
    processes twice, directly and forwarded by the launcher: the copy is not a second signal. A second signal
    after the window, or another signal, still exits at once."""
    exits = []
    monkeypatch.setattr(stop_signals.os, "_exit", lambda code: exits.append(code))
    monkeypatch.setattr(stop_signals, "_in_loop", True)
    monkeypatch.setattr(stop_signals, "_stop_requests", [])
    monkeypatch.setattr(stop_signals, "_first_signal", [])
    clock = iter([100.0, 100.01, 100.02, 101.0])
    monkeypatch.setattr(stop_signals.time, "monotonic", lambda: next(clock))
    stop_signals.handle_stop_signal(signal.SIGINT)
    stop_signals.handle_stop_signal(signal.SIGINT)  # the launcher's copy, 10 ms later
    assert stop_signals.stop_requested() == signal.SIGINT and exits == []
    stop_signals.handle_stop_signal(signal.SIGTERM)  # another signal at once: a second request
    assert exits == [143]
    exits.clear()
    stop_signals.handle_stop_signal(signal.SIGINT)  # the same signal a second later: a second Ctrl-C
    assert exits == [130]


def test_inside_the_loop_a_first_signal_only_asks_and_the_next_run_starts_clean(monkeypatch):
    monkeypatch.setattr(stop_signals, "_stop_requests", [])
    monkeypatch.setattr(stop_signals, "_first_signal", [])
    with stop_signals.loop_running():
        stop_signals.handle_stop_signal(signal.SIGTERM)  # no exception: the loop stops at its boundary
        assert stop_signals.stop_requested() == signal.SIGTERM
        assert stop_signals.agree_to_stop(False) == (signal.SIGTERM, False)
    assert not stop_signals._in_loop
    stop_signals.reset()
    assert stop_signals.stop_requested() is None and stop_signals.agree_to_stop(True) == (0, True)
    with pytest.raises(stop_signals.StopSignal):  # outside the loop again: stops where the program is
        stop_signals.handle_stop_signal(signal.SIGTERM)
