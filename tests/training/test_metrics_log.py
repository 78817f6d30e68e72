"""Metrics log: JSON lines and TensorBoard round trips, the progress line on a TTY and in CI logs, resume."""

import io
import json
import struct

import jax.numpy as jnp
import numpy as np
import pytest
from tensorboardX.proto import event_pb2

from amp_jax.training import metrics_log


def fake_metrics(i: int) -> dict:
    return {
        "episode/return": jnp.float32(0.5 * i),            # a JAX scalar
        "episode/length": np.int32(10 * i),                 # a NumPy scalar
        "reward/task": 0.01 * i,                            # a Python float
        "reward/amp": np.array([1.0 / (i + 1)]),            # a one-element array
        "amp/d_expert": 0.9, "amp/d_policy": -0.8,
        "optim/learning_rate": 1e-3, "policy/mean_std": 0.75,
        "loss/value": float("nan") if i == 3 else 2.0,
    }


def read_event_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Parses the TFRecord event files by hand: length, crc, Event proto, crc."""
    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def test_jsonl_and_tensorboard_round_trip(tmp_path):
    with metrics_log.MetricsLogger(tmp_path, total_iterations=20, stream=None) as logger:
        for i in range(1, 21):
            logger.log(i, fake_metrics(i), env_steps=96 * i)
    metrics = metrics_log.read_metrics(tmp_path)
    np.testing.assert_array_equal(metrics["iteration"], np.arange(1, 21))
    np.testing.assert_array_equal(metrics["env_steps"], 96 * np.arange(1, 21))
    np.testing.assert_allclose(metrics["episode/return"], 0.5 * np.arange(1, 21))
    np.testing.assert_allclose(metrics["reward/amp"], 1.0 / (np.arange(1, 21) + 1))
    assert np.isnan(metrics["loss/value"][2]) and metrics["loss/value"][3] == 2.0
    assert np.isnan(metrics["steps_per_second"][0]) and np.all(metrics["steps_per_second"][1:] > 0)
    assert np.all(np.diff(metrics["wall_time"]) >= 0)

    scalars = read_event_scalars(tmp_path / "tensorboard")
    assert [step for step, _ in scalars["reward/task"]] == list(range(1, 21))
    np.testing.assert_allclose([v for _, v in scalars["reward/task"]], 0.01 * np.arange(1, 21), rtol=1e-6)
    assert [step for step, _ in scalars["loss/value"]] == [i for i in range(1, 21) if i != 3]  # NaN skipped


def test_progress_line_content():
    metrics = {name: metrics_log._to_float(name, v) for name, v in fake_metrics(4).items()}
    line = metrics_log.format_progress(40, 3000, 1_315_200, 45_230.0, 3725.0, metrics)
    assert line == ("it 40/3000 | steps 1.3M | 45.2k/s | eta 1h02m | return 2.00 | len 40 | task 0.040 | "
                    "amp 0.200 | D(exp) 0.90 | D(pol) -0.80 | lr 1.0e-03 | std 0.750")
    assert metrics_log.format_duration(185) == "3m05s" and metrics_log.format_duration(float("nan")) == "?"


def test_tty_rewrites_one_line_and_ci_prints_every_n(tmp_path):
    tty, plain = io.StringIO(), io.StringIO()
    loggers = [metrics_log.MetricsLogger(tmp_path / "tty", total_iterations=12, stream=tty, is_tty=True,
                                         tensorboard=False),
               metrics_log.MetricsLogger(tmp_path / "ci", total_iterations=12, stream=plain, is_tty=False,
                                         print_every=5, tensorboard=False)]
    for i in range(1, 13):
        for logger in loggers:
            logger.log(i, fake_metrics(i), env_steps=100 * i)
    for logger in loggers:
        logger.close()
    text = tty.getvalue()
    assert text.count("\r") == 12 and text.count("\n") == 1 and text.endswith("\n")
    assert "it 12/12 | steps 1.2k" in text.split("\r")[-1]
    lines = plain.getvalue().splitlines()
    assert [line.split(" | ")[0] for line in lines] == ["it 5/12", "it 10/12", "it 12/12"]
    assert "\r" not in plain.getvalue()
    # ETA and rate come from the wall clock: the last line's ETA is 0 s and the rate is positive.
    assert " | eta 0s | " in lines[-1] and "/s |" in lines[-1]


def test_resume_drops_lines_after_the_checkpoint_and_tolerates_a_cut_line(tmp_path):
    with metrics_log.MetricsLogger(tmp_path, total_iterations=10, stream=None, tensorboard=False) as logger:
        for i in range(1, 8):
            logger.log(i, {"x": i}, env_steps=i)
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 8, "x"')  # the crash cut the last line
    np.testing.assert_array_equal(metrics_log.read_metrics(tmp_path)["x"], np.arange(1, 8))
    with metrics_log.MetricsLogger(tmp_path, total_iterations=10, stream=None, tensorboard=False,
                                   resume_from=5) as logger:
        for i in range(6, 11):
            logger.log(i, {"x": 10 * i}, env_steps=i)
    metrics = metrics_log.read_metrics(tmp_path)
    np.testing.assert_array_equal(metrics["iteration"], np.arange(1, 11))
    np.testing.assert_array_equal(metrics["x"], [1, 2, 3, 4, 5, 60, 70, 80, 90, 100])
    assert all(json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines())


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"metrics.jsonl: no metrics file"):
        metrics_log.read_metrics(tmp_path)
    with metrics_log.MetricsLogger(tmp_path, total_iterations=3, stream=None, tensorboard=False) as logger:
        with pytest.raises(ValueError, match=r"metric 'obs' has shape \(3,\): expected a scalar"):
            logger.log(1, {"obs": np.zeros(3)}, env_steps=1)
    (tmp_path / "metrics.jsonl").write_text('{"iteration": 1}\nnot json\n{"iteration": 2}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not a JSON object"):
        metrics_log.read_metrics(tmp_path)
