"""The probe-progress tables against a plain loop over hand-made ``metrics.jsonl`` records."""

import json

import numpy as np
import pytest

from amp_jax.evaluation import probe_progress

STEPS_PER_ITERATION = 12288


def _write_run(folder, probe_every=20, iterations=200, seed=0, axes=probe_progress.AXES,
               steps_per_iteration=STEPS_PER_ITERATION):
    """A metrics file with a probe every ``probe_every`` iterations whose errors fall with noise; returns the
    probe records as (iteration, env steps, {axis: error})."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    probes, lines = [], []
    for iteration in range(1, iterations + 1):
        record = {"iteration": iteration, "env_steps": iteration * steps_per_iteration, "reward/task": 1.0}
        if iteration % probe_every == 0:
            errors = {axis: float(0.6 * np.exp(-iteration / 80) + 0.1 + 0.03 * rng.standard_normal())
                      for axis in axes}
            record.update(errors)
            probes.append((iteration, iteration * steps_per_iteration, errors))
        lines.append(json.dumps(record))
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return probes


def test_first_threshold_and_window_means_match_a_plain_loop(tmp_path):
    probes = _write_run(tmp_path / "run")
    series = probe_progress.read_probe(tmp_path / "run")
    thresholds = (0.5, 0.3, 0.2, 0.15, 0.01)
    expected = {}
    for threshold in thresholds:
        expected[threshold] = None
        for _, steps, errors in probes:
            if sum(errors.values()) / len(errors) <= threshold:
                expected[threshold] = steps
                break
    assert probe_progress.first_at_or_below(series, thresholds) == expected
    assert expected[0.01] is None and expected[0.5] is not None  # both outcomes are exercised

    window = [errors for iteration, _, errors in probes if 100 <= iteration <= 180]
    means = probe_progress.window_means(series, 100, 180)
    for axis in probe_progress.AXES:
        assert means[axis] == pytest.approx(sum(e[axis] for e in window) / len(window), rel=1e-12)
    assert means["tracking"] == pytest.approx(sum(sum(e.values()) / 3 for e in window) / len(window), rel=1e-12)


def test_up_to_compares_runs_at_equal_steps_and_a_forward_only_probe_averages_what_it_logs(tmp_path):
    _write_run(tmp_path / "long", iterations=300)
    cut = probe_progress.read_probe(tmp_path / "long", up_to=150)
    assert cut.iteration.tolist() == list(range(20, 141, 20)) and cut.env_steps[-1] == 140 * STEPS_PER_ITERATION

    probes = _write_run(tmp_path / "forward", axes=("probe/vx_rms",))
    forward = probe_progress.read_probe(tmp_path / "forward")
    assert list(forward.errors) == ["probe/vx_rms"]
    np.testing.assert_array_equal(forward.tracking_error, [errors["probe/vx_rms"] for _, _, errors in probes])
    table = probe_progress.window_table([forward], 0, 200)
    assert table.splitlines()[-1].count(" - ") == 2  # v_y and yaw not logged


def test_the_command_prints_both_tables_and_refuses_a_run_without_a_probe_in_one_line(tmp_path, capsys):
    _write_run(tmp_path / "a", iterations=400)
    _write_run(tmp_path / "b", iterations=300, seed=1)
    assert probe_progress.main([str(tmp_path / "a"), str(tmp_path / "b"), "--thresholds", "0.3", "0.2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| tracking error first at or below | 0.30 | 0.20 |" and len(out) == 4 + 1 + 4
    # by default, the last 2.5 M env steps (203 iterations of 12288 steps) of the shorter run
    assert out[5].startswith("| mean over iterations 97-300 |")

    (tmp_path / "no_probe").mkdir()
    (tmp_path / "no_probe" / "metrics.jsonl").write_text(json.dumps({"iteration": 1, "env_steps": 10}) + "\n")
    assert probe_progress.main([str(tmp_path / "no_probe")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no_probe: no probe/vx_rms in metrics.jsonl" in err[0]


def test_runs_with_iterations_of_different_sizes_are_cut_and_averaged_in_env_steps(tmp_path, capsys):
    half = STEPS_PER_ITERATION // 2
    probes = _write_run(tmp_path / "half", probe_every=40, iterations=600, seed=2, steps_per_iteration=half)
    _write_run(tmp_path / "full", iterations=250, seed=3)

    cut = probe_progress.read_probe(tmp_path / "half", up_to_env_steps=200 * STEPS_PER_ITERATION)
    assert cut.iteration.tolist() == list(range(40, 401, 40))  # iteration 400 of the half run = 200 of the full

    first, last = 100 * STEPS_PER_ITERATION, 180 * STEPS_PER_ITERATION
    window = [errors for _, steps, errors in probes if first <= steps <= last]
    assert len(window) == 5  # iterations 200, 240, ..., 360
    means = probe_progress.window_means(probe_progress.read_probe(tmp_path / "half"), first, last, "env_steps")
    for axis in probe_progress.AXES:
        assert means[axis] == pytest.approx(sum(e[axis] for e in window) / len(window), rel=1e-12)
    with pytest.raises(ValueError, match="window unit 'seconds'"):
        probe_progress.window_means(cut, 0, 1, "seconds")

    # by default, the window is the 2.5 M env steps up to the shorter run's last probe (iteration 240: 2.95 M)
    assert probe_progress.main([str(tmp_path / "half"), str(tmp_path / "full"), "--thresholds", "0.3"]) == 0
    assert "| mean over env steps 0.45 M-2.95 M |" in capsys.readouterr().out
    assert probe_progress.main([str(tmp_path / "half"), "--up-to-env-steps", "2e6",
                                "--window-env-steps", "1e6", "2e6"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-3].startswith("| mean over env steps 1.00 M-2.00 M |")
    # a cut before the first probe (iteration 40 = 245,760 env steps) is one line, not a traceback
    assert probe_progress.main([str(tmp_path / "half"), "--up-to-env-steps", "2e5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "half: no probe record at or before 200000 env steps in metrics.jsonl" in err[0]


def test_the_figure_is_written_beside_the_tables_and_an_unwritable_one_is_one_line(tmp_path, capsys):
    _write_run(tmp_path / "x" / "s3", iterations=200)
    _write_run(tmp_path / "y" / "s3", iterations=200, seed=1)
    runs = [probe_progress.read_probe(tmp_path / folder / "s3") for folder in ("x", "y")]
    assert probe_progress.run_labels(runs) == [str(tmp_path / "x" / "s3"), str(tmp_path / "y" / "s3")]
    assert probe_progress.run_labels(runs[:1]) == ["s3"]
    args = [str(tmp_path / "x" / "s3"), str(tmp_path / "y" / "s3"), "--thresholds", "0.3"]
    assert probe_progress.main([*args, "--png", str(tmp_path / "figs" / "probe.png")]) == 0
    assert (tmp_path / "figs" / "probe.png").stat().st_size > 10_000
    assert capsys.readouterr().out.startswith("| tracking error first at or below | 0.30 |")

    (tmp_path / "a_file").write_text("")
    assert probe_progress.main([*args, "--png", str(tmp_path / "a_file" / "probe.png")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"probe_progress: {tmp_path / 'a_file' / 'probe.png'}: cannot write")
