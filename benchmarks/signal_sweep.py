"""A signal at any instant, as a scheduler sends it: ``train.py`` on a tiny config, the signal sent a chosen delay
after the n-th line of ``metrics.jsonl``, at offsets spread over an iteration and over a checkpoint's save.

Each try must exit within :data:`EXIT_TIMEOUT_S` with the signal's code (143, 130, 129), leave a checkpoint of the
last iteration in ``metrics.jsonl``, and a resume of it must reproduce a straight run's ``metrics.jsonl`` line by
line (every field but ``wall_time`` and ``steps_per_second``). The suite runs a few offsets per signal
(``tests/training/test_signals.py``); this script runs the full sweep:

    python benchmarks/signal_sweep.py [--signals TERM INT HUP] [--offsets-ms 0 1 2 3 5 8 12 20 40 80]

Offsets count from the 3rd line (inside iteration 4; no checkpoint is due) and from the 4th (iteration 4 ends
with a periodic checkpoint, ``train.checkpoint_interval`` = 4, so the signal lands in its save).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent
TINY = ("env.num_envs=4", "ppo.num_steps=4", "ppo.num_minibatches=2", "networks.actor_hidden=[32, 32]",
        "networks.critic_hidden=[32, 32]", "networks.disc_hidden=[32]", "amp.replay_buffer_size=256",
        "train.num_iterations=10", "train.checkpoint_interval=4", "train.keep_checkpoints=10",
        "train.probe_interval=0")
"""The tiny run: iterations of ~10 ms once compiled, a periodic checkpoint every 4."""
CONFIGS = ("a1_trot.yaml", "cpu.yaml")
EXIT_TIMEOUT_S = 30.0
"""A try fails when the process has not exited this long after the signal."""
START_TIMEOUT_S = 300.0
"""Longest wait for the run to reach the line the signal counts from (compilation included)."""
VOLATILE = ("wall_time", "steps_per_second")
"""metrics.jsonl fields that differ between equal runs."""


@dataclasses.dataclass
class Outcome:
    """One try: what the process did after the signal."""

    signal_name: str
    after_line: int
    offset_ms: float
    exit_code: int | None
    """None: it did not exit within :data:`EXIT_TIMEOUT_S` (killed)."""
    exit_s: float
    last_logged: int
    checkpoint: int | None
    """Newest checkpoint step on disk, None if none."""
    resumed_matches: bool | None = None
    """The resumed run's metrics equal the straight run's (None: not resumed)."""

    def problems(self, signum: int) -> list[str]:
        found = []
        if self.exit_code is None:
            found.append(f"no exit within {EXIT_TIMEOUT_S:g} s")
        elif self.exit_code != 128 + signum:
            found.append(f"exit code {self.exit_code}, expected {128 + signum}")
        if self.checkpoint != self.last_logged:
            found.append(f"checkpoint {self.checkpoint} but metrics.jsonl ends at iteration {self.last_logged}")
        if self.resumed_matches is False:
            found.append("the resumed metrics differ from the straight run's")
        return found


def command(run_dir: pathlib.Path, *extra: str) -> list[str]:
    args = [sys.executable, str(PROJECT_ROOT / "train.py")]
    for name in CONFIGS:
        args += ["--config", name]
    for override in TINY:
        args += ["--set", override]
    return [*args, "--run-dir", str(run_dir), "--no-eval", "--quiet", "--processes", "1", *extra]


def metrics_lines(run_dir: pathlib.Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def checkpoint_steps(run_dir: pathlib.Path) -> list[int]:
    """Complete checkpoint steps on disk (orbax's finished step folders are named by their step)."""
    folder = run_dir / "checkpoints"
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()) if folder.exists() else []


def _count_lines(path: pathlib.Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def signal_try(run_dir: pathlib.Path, signum: int, after_line: int, offset_ms: float,
               env: dict[str, str] | None = None) -> Outcome:
    """Starts the tiny run in ``run_dir``, sends ``signum`` ``offset_ms`` after its ``after_line``-th metrics line,
    and records what happened."""
    process = subprocess.Popen(command(run_dir), cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + START_TIMEOUT_S
    while _count_lines(metrics) < after_line:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{run_dir}: the run never logged {after_line} lines: "
                               f"{process.stderr.read().decode(errors='replace')[-2000:]}")
        time.sleep(0.0005)
    time.sleep(offset_ms / 1000.0)
    process.send_signal(signum)
    sent = time.monotonic()
    try:
        code = process.wait(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        code = None
    exit_s = time.monotonic() - sent
    process.stderr.close()
    lines = metrics_lines(run_dir)
    steps = checkpoint_steps(run_dir)
    return Outcome(signal.Signals(signum).name, after_line, offset_ms, code, exit_s,
                   lines[-1]["iteration"] if lines else 0, steps[-1] if steps else None)


def resume_to_end(run_dir: pathlib.Path, env: dict[str, str] | None = None) -> None:
    """``train.py --resume`` of a stopped try, to the end of the tiny run."""
    args = [sys.executable, str(PROJECT_ROOT / "train.py"), "--resume", str(run_dir), "--no-eval", "--quiet",
            "--processes", "1"]
    subprocess.run(args, cwd=PROJECT_ROOT, env=env, check=True, capture_output=True, timeout=START_TIMEOUT_S)


def same_records(a: list[dict], b: list[dict]) -> bool:
    """Equal line by line but for :data:`VOLATILE` fields."""
    def strip(lines):
        return [{k: v for k, v in line.items() if k not in VOLATILE} for line in lines]
    return strip(a) == strip(b)


def cached_compilation_env(cache_dir: pathlib.Path) -> dict[str, str]:
    """This process's environment with JAX's persistent compilation cache in ``cache_dir`` for every program:
    the tries after the first load the tiny run's programs instead of compiling them again (about a minute of
    CPU each)."""
    return {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache_dir),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def straight_run(run_dir: pathlib.Path, env: dict[str, str] | None = None) -> list[dict]:
    subprocess.run(command(run_dir), cwd=PROJECT_ROOT, env=env, check=True, capture_output=True,
                   timeout=START_TIMEOUT_S)
    return metrics_lines(run_dir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--signals", nargs="+", default=["TERM", "INT", "HUP"])
    parser.add_argument("--offsets-ms", nargs="+", type=float, default=[0, 1, 2, 3, 5, 8, 12, 20, 40, 80])
    parser.add_argument("--no-resume", action="store_true", help="skip the resume of each try")
    args = parser.parse_args()
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        env = cached_compilation_env(root / "compilation_cache")
        straight = straight_run(root / "straight", env)
        print(f"straight run: {len(straight)} iterations; each try: signal, exit, checkpoint, resume")
        print(f"{'signal':>7} {'after':>5} {'ms':>5}  {'exit':>4} {'in s':>5}  {'logged':>6} {'ckpt':>4}  resumed")
        for name in args.signals:
            signum = getattr(signal, f"SIG{name}")
            for after_line in (3, 4):
                for offset in args.offsets_ms:
                    run_dir = root / f"{name}-{after_line}-{offset:g}"
                    outcome = signal_try(run_dir, signum, after_line, offset, env)
                    if not args.no_resume and outcome.checkpoint is not None and outcome.exit_code is not None:
                        resume_to_end(run_dir, env)
                        outcome.resumed_matches = same_records(metrics_lines(run_dir), straight)
                    problems = outcome.problems(signum)
                    failures += bool(problems)
                    print(f"{name:>7} {after_line:>5} {offset:>5g}  {outcome.exit_code!s:>4} {outcome.exit_s:5.2f}  "
                          f"{outcome.last_logged:>6} {outcome.checkpoint!s:>4}  {outcome.resumed_matches!s:>7}"
                          + (f"  FAIL: {'; '.join(problems)}" if problems else ""), flush=True)
    print(f"{failures} failed" if failures else "every try passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
