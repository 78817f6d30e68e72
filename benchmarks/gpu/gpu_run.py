"""One command on a CUDA machine: a smoke test, MJX env and AMP-PPO update throughput, an a1_trot training run
under a wall-clock budget, and the proof written to one small folder.

Usage: ``python benchmarks/gpu/gpu_run.py --out DIR [--tiny] [--budget-s S] [--config NAME ...] [--train-only]
[--set KEY=VALUE ...]`` (normally through ``benchmarks/gpu/run.sh``, which first installs the offline wheel bundle;
``docs/GPU.md``).

Phases, each in its own process with a hard time limit (a crash, a hang or an out-of-memory error in one
leaves the others and what it had measured):

1. ``smoke``: versions and devices; imports; jit of the env step and of the train step of a tiny config, one
   call each, finite metrics. Fails fast with a message; nothing else runs then.
2. ``env``: full env steps per second at each of ``Plan.env_sizes`` envs (``bench_env.bench_mjx``), smallest
   first, until the phase's budget is spent.
3. ``update``: the AMP-PPO update's samples per second at ``Plan.update_shapes`` and the device's fp32
   matrix-product peak (``bench_update``).
4. ``train``: ``a1_trot`` at 16384 envs on a GPU (or the configs of ``--config``, layered, at their own sizes)
   with ``--set``, stopped by
   ``train.time_limit_s`` when the rest of the budget is spent; then the final checkpoint's parameters and
   normaliser go to one file (:mod:`amp_jax.training.params_file`).

``--train-only`` skips the ``env`` and ``update`` phases, leaving their minutes to training.

``DIR`` receives ``summary.json`` (versions, device, every figure, wall and compile times, the status of each
phase, the deprecation warnings seen), ``metrics.jsonl``, ``policy_params.npz`` and ``gpu_run.log``. Back on a
CPU machine ``python -m amp_jax.training.import_gpu_run DIR RUN_DIR`` makes a run folder of them for
``python -m amp_jax.evaluate`` and ``python -m amp_jax.export_policy``. ``--tiny`` is the CPU rehearsal: a few
envs, two training iterations, no GPU required.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import json
import math
import os
import pathlib
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parent.parent
IMPORT_PATHS = (PROJECT_ROOT, PROJECT_ROOT / "benchmarks")
"""amp_jax from the checkout (no install needed) and the benchmark modules reused here."""
for _path in IMPORT_PATHS:
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from amp_jax.training import import_gpu_run  # noqa: E402  (light: file names only, no JAX)

TINY_OVERRIDES = (
    "env.num_envs=4", "ppo.num_steps=4", "ppo.num_minibatches=2",
    "networks.actor_hidden=[32, 32]", "networks.critic_hidden=[32, 32]", "networks.disc_hidden=[32]",
    "amp.replay_buffer_size=256", "train.probe_interval=0",
)
"""A config small enough to compile and run in seconds anywhere: the smoke test's."""
SMOKE_ENVS = 4
"""Envs of the smoke test's env step."""

VERSIONED_DISTRIBUTIONS = ("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda13-pjrt", "jax-cuda12-plugin",
                           "jax-cuda12-pjrt", "mujoco", "mujoco-mjx", "warp-lang", "brax", "flax", "optax",
                           "orbax-checkpoint", "numpy", "tensorboardX")
"""Distributions whose versions the summary records (those installed)."""


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one invocation measures, and the time each phase may take (s)."""

    name: str
    budget_s: float
    """The whole run, from the start of ``run.sh`` (or of this script) to the last file written."""
    smoke_budget_s: float
    env_budget_s: float
    update_budget_s: float
    train_min_s: float
    """Training is skipped (and reported) when less than this is left for it."""
    train_reserve_s: float
    """Left after the training loop's time limit: the last iteration, final checkpoint, params file."""
    env_sizes: tuple[int, ...]
    env_control_steps: int
    """Control steps per timed jit call of the env benchmark."""
    update_shapes: tuple[tuple[int, int], ...]
    """``(num_envs, num_steps)`` of each update measurement."""
    update_overrides: tuple[str, ...]
    """Config overrides of the update benchmark (the reference's networks and PPO settings by default)."""
    smoke_overrides: tuple[str, ...]
    train_configs: tuple[str, ...]
    """The training configs, layered; ``--config`` replaces them."""
    train_overrides: tuple[str, ...]
    """Overrides of the training config (before ``--set``)."""
    default_train_overrides: tuple[str, ...]
    """Overrides for ``train_configs`` alone: dropped, with them, by ``--config``."""
    require_gpu: bool


GPU_PLAN = Plan(
    name="gpu", budget_s=540.0, smoke_budget_s=180.0, env_budget_s=100.0, update_budget_s=60.0,
    train_min_s=90.0, train_reserve_s=75.0, env_sizes=(4096, 8192, 16384, 32768), env_control_steps=20,
    update_shapes=((5480, 24),), update_overrides=(), smoke_overrides=TINY_OVERRIDES, train_configs=("a1_trot",),
    train_overrides=(), default_train_overrides=("env.num_envs=16384",), require_gpu=True,
)
"""One H200-class GPU, under 9 minutes in all: 16384 envs × 24 steps per iteration (3x the reference's envs,
which a GPU steps in about the same time), the reference's networks and PPO settings otherwise."""

TINY_PLAN = Plan(
    name="tiny", budget_s=600.0, smoke_budget_s=240.0, env_budget_s=90.0, update_budget_s=90.0,
    train_min_s=30.0, train_reserve_s=30.0, env_sizes=(SMOKE_ENVS,), env_control_steps=4, update_shapes=((8, 4),),
    update_overrides=TINY_OVERRIDES, smoke_overrides=TINY_OVERRIDES, train_configs=("a1_trot",),
    train_overrides=(*TINY_OVERRIDES, "train.num_iterations=2", "train.checkpoint_interval=1"),
    default_train_overrides=(), require_gpu=False,
)
"""The CPU rehearsal: every phase at toy size; training is the smoke test's config, so its compilations come from
JAX's persistent cache."""

PLANS = {plan.name: plan for plan in (GPU_PLAN, TINY_PLAN)}
PHASES = ("smoke", "env", "update", "train")
SUMMARY_FORMAT = 1
FINAL_RESERVE_S = 10.0
"""Kept at the end of the budget for copying files and the summary."""
MAX_RETURNED_FILE_BYTES = 16 * 2**20
"""The largest file the GPU machine hands back."""


class PhaseFailed(RuntimeError):
    """A phase cannot go on; its message says why and what to do."""


# ----------------------------------------------------------------------------------------------------------
# Inside a phase process.


@contextlib.contextmanager
def collected_warnings(into: set[str]) -> Iterator[None]:
    """Records every distinct DeprecationWarning and FutureWarning raised inside, as one line each."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", DeprecationWarning)
        warnings.simplefilter("always", FutureWarning)

        def show(message, category, filename, lineno, file=None, line=None):
            text = str(message).strip().splitlines()[0][:240] if str(message).strip() else ""
            into.add(f"{category.__name__}: {text} ({filename}:{lineno})")

        warnings.showwarning = show
        yield


def imported_packages() -> dict[str, list[str]]:
    """Top-level module → the installed distributions providing it, for each such module this process imported."""
    providers = importlib.metadata.packages_distributions()
    tops = {module.partition(".")[0] for module in list(sys.modules)}
    return {top: sorted(providers[top]) for top in sorted(tops) if top in providers}


def installed_versions() -> dict[str, str]:
    """Version of each of :data:`VERSIONED_DISTRIBUTIONS` that is installed."""
    out = {"python": platform.python_version()}
    for name in VERSIONED_DISTRIBUTIONS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[name] = importlib.metadata.version(name)
    return out


class Recorder:
    """A phase's results, rewritten to its JSON file at every change (what was measured survives a kill)."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.data: dict[str, Any] = {}

    def set(self, **values: Any) -> None:
        self.data.update(values)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        tmp.replace(self.path)

    def append(self, key: str, value: Any) -> None:
        self.set(**{key: [*self.data.get(key, []), value]})


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def smoke_phase(plan: Plan, record: Recorder, args: argparse.Namespace) -> None:
    """Versions and devices; then the env benchmark's jitted env step at :data:`SMOKE_ENVS` envs (in the tiny plan
    the env phase's own program, so that phase finds it compiled) and the train step of the tiny config."""
    del args
    record.set(versions=installed_versions())
    print("versions: " + ", ".join(f"{k} {v}" for k, v in record.data["versions"].items()), flush=True)
    try:
        import jax
        import numpy as np
    except Exception as err:
        raise PhaseFailed(f"importing JAX failed ({type(err).__name__}: {err}); install jax with its CUDA plugin "
                          "(pip install -e '.[cuda]') or check the machine's image") from err
    devices = jax.devices()
    record.set(backend=jax.default_backend(), devices=[f"{d.platform}:{d.device_kind}" for d in devices],
               device_count=len(devices))
    print(f"JAX {jax.__version__} on {jax.default_backend()}: {', '.join(d.device_kind for d in devices)}",
          flush=True)
    if plan.require_gpu and jax.default_backend() != "gpu":
        raise PhaseFailed(f"JAX runs on '{jax.default_backend()}', not on a GPU: the CUDA plugin is missing or "
                          "failed to start (see the log above; pip install -e '.[cuda]' on a machine with network). "
                          "Use --tiny for a CPU rehearsal.")
    try:
        from amp_jax import config as config_lib
        from amp_jax.training import trainer
    except Exception as err:  # an ImportError, or an older package's use of an API this JAX removed
        raise PhaseFailed(f"importing amp_jax failed ({type(err).__name__}: {err}): the wheel bundle is missing, "
                          "incomplete or does not fit this JAX (benchmarks/gpu/fetch_wheels.sh on a machine with "
                          "network, then benchmarks/gpu/run.sh; versions above)") from err
    import bench_env

    from amp_jax.config import EnvConfig
    from amp_jax.envs.a1_amp import A1AmpEnv

    env = A1AmpEnv(EnvConfig(rsi_probability=0.0))
    _, env_s = _timed(lambda: bench_env.bench_mjx(env, SMOKE_ENVS, plan.env_control_steps, full_step=True))
    record.set(env_step_compile_and_run_s=round(env_s, 2))
    cfg = config_lib.load_config(["a1_trot"], plan.smoke_overrides)
    setup, build_s = _timed(lambda: trainer.build(cfg))
    state, init_s = _timed(lambda: jax.block_until_ready(trainer.initial_state(setup)))
    record.set(build_s=round(build_s, 2), init_compile_and_run_s=round(init_s, 2))
    (state, metrics), train_s = _timed(lambda: jax.block_until_ready(setup.train_step(state)))
    metrics = jax.device_get(metrics)
    bad = sorted(k for k, v in metrics.items() if not np.all(np.isfinite(v)))
    if bad:
        raise PhaseFailed(f"the train step's metrics {', '.join(bad)} are not finite")
    record.set(train_step_compile_and_run_s=round(train_s, 2))
    print(f"smoke: env step {env_s:.1f} s, train step {train_s:.1f} s (compile and one call each)", flush=True)


def env_phase(plan: Plan, record: Recorder, args: argparse.Namespace) -> None:
    """Full env steps per second (all envs together, compile excluded) at each size, smallest first."""
    from amp_jax import quiet_imports

    quiet_imports.import_mjx()  # first: bench_env imports brax, which would import MJX with its warp-import lines
    import bench_env
    import jax

    from amp_jax.config import EnvConfig
    from amp_jax.envs.a1_amp import A1AmpEnv

    env = A1AmpEnv(EnvConfig(rsi_probability=0.0))
    deadline = time.monotonic() + args.phase_budget_s
    last_wall = 0.0
    record.set(control_steps_per_call=plan.env_control_steps, measurement="best of 3 jit calls after a compile call",
               backend=jax.default_backend())
    for num_envs in plan.env_sizes:
        if last_wall and time.monotonic() + 1.5 * last_wall > deadline:
            record.append("skipped_sizes", num_envs)
            continue
        rate, wall = _timed(lambda n=num_envs: bench_env.bench_mjx(env, n, plan.env_control_steps, full_step=True))
        last_wall = wall
        record.append("results", {"num_envs": num_envs, "env_steps_per_s": round(rate),
                                  "physics_steps_per_s": round(rate * env.cfg.decimation),
                                  "wall_s_with_compile": round(wall, 1)})
        print(f"env: {num_envs} envs: {rate:,.0f} env steps/s ({wall:.0f} s with compile)", flush=True)


def update_phase(plan: Plan, record: Recorder, args: argparse.Namespace) -> None:
    """The update's samples per second and its FLOP rate against the device's fp32 matrix-product peak."""
    import bench_update
    import jax

    from amp_jax import config as config_lib

    deadline = time.monotonic() + args.phase_budget_s
    peak_gflops = bench_update.matmul_peak(512 if plan.name == "tiny" else 8192)()
    record.set(matmul_peak_gflops=round(peak_gflops), backend=jax.default_backend())
    last_wall = 0.0
    for num_envs, num_steps in plan.update_shapes:
        if last_wall and time.monotonic() + 1.5 * last_wall > deadline:
            record.append("skipped_shapes", [num_envs, num_steps])
            continue
        cfg = config_lib.load_config(None, [*plan.update_overrides, f"env.num_envs={num_envs}",
                                            f"ppo.num_steps={num_steps}"])
        start = time.perf_counter()
        run = bench_update.jax_update(cfg, bench_update.synthetic_inputs(cfg))
        compile_s = time.perf_counter() - start
        best = min(_timed(run)[1] for _ in range(3))
        rate = cfg.batch_size / best
        ref_flops, own_flops = bench_update.reference_flops_per_sample(cfg), bench_update.own_flops_per_sample(cfg)
        last_wall = time.perf_counter() - start
        record.append("results", {
            "num_envs": num_envs, "num_steps": num_steps, "batch": cfg.batch_size,
            "epochs": cfg.ppo.num_epochs, "minibatches": cfg.ppo.num_minibatches, "update_s": round(best, 4),
            "samples_per_s": round(rate), "compile_and_first_call_s": round(compile_s, 1),
            "reference_gflops": round(ref_flops * rate / 1e9),
            "executed_matmul_fraction_of_peak": round(own_flops * rate / 1e9 / peak_gflops, 3)})
        print(f"update: batch {cfg.batch_size}: {rate:,.0f} samples/s ({best * 1e3:.0f} ms per update)", flush=True)


def train_phase(plan: Plan, record: Recorder, args: argparse.Namespace) -> None:
    """Trains under ``train.time_limit_s``, then writes the final checkpoint's parameters file."""
    import jax

    from amp_jax import config as config_lib
    from amp_jax.training import checkpoint, params_file, trainer

    time_limit_s = max(1.0, args.phase_budget_s - plan.train_reserve_s)
    cfg = config_lib.load_config(list(plan.train_configs), [*plan.train_overrides, *args.overrides,
                                                             f"train.time_limit_s={time_limit_s:.1f}"])
    work = pathlib.Path(args.work)
    run_dir = work / "run"
    record.set(configs=list(plan.train_configs), num_envs=cfg.env.num_envs, num_steps=cfg.ppo.num_steps,
               batch=cfg.batch_size, time_limit_s=round(time_limit_s, 1),
               overrides=[*plan.train_overrides, *args.overrides])
    config_name = "+".join(pathlib.Path(name).stem for name in plan.train_configs) + "_gpu"
    _, train_s = _timed(lambda: trainer.train(cfg, config_name=config_name, run_dir=run_dir, progress=True))
    record.set(train_call_s=round(train_s, 1))
    setup = trainer.build(cfg, probe=False)
    restored = checkpoint.restore(run_dir, jax.eval_shape(setup.init_fn, jax.random.key(0)),
                                  heavy_keys=trainer.HEAVY_KEYS)
    path = params_file.write_params_file(work / import_gpu_run.PARAMS_FILE, restored.state, cfg)
    rows = [json.loads(line) for line in (run_dir / import_gpu_run.METRICS_FILE).read_text().splitlines() if line]
    steady = sorted(r["steps_per_second"] for r in rows[len(rows) // 2:] if math.isfinite(r["steps_per_second"]))
    last = rows[-1] if rows else {}
    record.set(iterations=restored.step, env_steps=last.get("env_steps"),
               first_iteration_wall_s=round(rows[0]["wall_time"], 1) if rows else None,
               median_steps_per_s_second_half=round(steady[len(steady) // 2]) if steady else None,
               final_metrics={k: v for k, v in last.items() if k.startswith(("reward/", "episode/", "amp/", "probe/"))},
               params_file_bytes=path.stat().st_size)


PHASE_FUNCTIONS = {"smoke": smoke_phase, "env": env_phase, "update": update_phase, "train": train_phase}


def run_phase_in_process(args: argparse.Namespace) -> int:
    """The body of ``--phase NAME``: runs it, recording results, warnings and imports to ``WORK/NAME.json``."""
    plan = chosen_plan(args)
    record = Recorder(pathlib.Path(args.work) / f"{args.phase}.json")
    seen: set[str] = set()
    status = 0
    try:
        with collected_warnings(seen):
            PHASE_FUNCTIONS[args.phase](plan, record, args)
    except PhaseFailed as err:
        record.set(error=str(err))
        print(f"{args.phase}: FAILED: {err}", file=sys.stderr, flush=True)
        status = 1
    except Exception as err:
        record.set(error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc().splitlines()[-12:])
        traceback.print_exc()
        status = 1
    record.set(deprecation_warnings=sorted(seen), imported_packages=imported_packages())
    return status


# ----------------------------------------------------------------------------------------------------------
# The orchestrating process (no JAX in it).


@dataclasses.dataclass(frozen=True)
class PhaseOutcome:
    status: str
    """'ok', 'failed' or 'timeout'."""
    wall_s: float
    budget_s: float
    results: dict[str, Any]


def _tee(stream, sinks) -> None:
    for line in iter(stream.readline, ""):
        for sink in sinks:
            sink.write(line)
            sink.flush()


def run_phase(name: str, plan: Plan, budget_s: float, work: pathlib.Path, log, overrides: list[str],
              env: dict[str, str]) -> PhaseOutcome:
    """Runs phase ``name`` in a child process, killed after ``budget_s`` (+ a few seconds of grace)."""
    command = [sys.executable, str(pathlib.Path(__file__).resolve()), "--phase", name, "--plan", plan.name,
               "--work", str(work), "--phase-budget-s", f"{budget_s:.1f}"]
    for config_name in plan.train_configs:
        command += ["--config", config_name]
    for text in overrides:
        command += ["--set", text]
    banner = f"=== phase {name} (budget {budget_s:.0f} s) ==="
    print(banner, flush=True)
    log.write(banner + "\n")
    start = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                             start_new_session=True)
    reader = threading.Thread(target=_tee, args=(child.stdout, (sys.stdout, log)), daemon=True)
    reader.start()
    try:
        code = child.wait(timeout=budget_s + 5.0)
        status = "ok" if code == 0 else "failed"
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        status = "timeout"
    reader.join(timeout=5.0)
    wall = time.monotonic() - start
    result_file = work / f"{name}.json"
    results = json.loads(result_file.read_text()) if result_file.is_file() else {}
    if status == "timeout":
        results.setdefault("error", f"killed after its budget of {budget_s:.0f} s")
    line = f"=== phase {name}: {status} in {wall:.0f} s ==="
    print(line, flush=True)
    log.write(line + "\n")
    return PhaseOutcome(status=status, wall_s=round(wall, 1), budget_s=round(budget_s, 1), results=results)


def child_environment(work: pathlib.Path) -> dict[str, str]:
    """The phases' environment: the checkout importable, JAX's persistent compilation cache on (inherited when
    set), MuJoCo without OpenGL, unbuffered output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, IMPORT_PATHS), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(work / "jax_cache"))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    env.setdefault("MUJOCO_GL", "disable")  # nothing is rendered here; no OpenGL library needed
    env["PYTHONUNBUFFERED"] = "1"
    return env


def write_summary(out: pathlib.Path, summary: dict[str, Any]) -> None:
    (out / import_gpu_run.SUMMARY_FILE).write_text(json.dumps(summary, indent=1, default=str) + "\n")


def orchestrate(args: argparse.Namespace) -> int:
    plan = chosen_plan(args)
    started = args.started_at if args.started_at is not None else time.time()
    budget_s = args.budget_s if args.budget_s is not None else plan.budget_s
    deadline = time.monotonic() + budget_s - (time.time() - started)
    from amp_jax import config as config_lib  # NumPy and YAML only

    try:
        config_lib.load_config(list(plan.train_configs), [*plan.train_overrides, *args.overrides])
    except config_lib.ConfigError as err:
        print(f"gpu_run: config error: {err}", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(args.work) if args.work else pathlib.Path(tempfile.mkdtemp(prefix="amp_jax_gpu_run-"))
    work.mkdir(parents=True, exist_ok=True)
    env = child_environment(work)
    summary: dict[str, Any] = {
        "format": SUMMARY_FORMAT, "plan": dataclasses.asdict(plan), "budget_s": budget_s,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "install_s": round(args.install_s, 1) if args.install_s is not None else None,
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "xla_flags": os.environ.get("XLA_FLAGS", "")},
        "train_configs": list(plan.train_configs), "train_overrides": args.overrides,
        "train_only": args.train_only, "phases": {},
    }
    write_summary(out, summary)
    code = 0
    with open(out / import_gpu_run.LOG_FILE, "w") as log:
        for name in PHASES:
            if args.train_only and name in ("env", "update"):
                summary["phases"][name] = {"status": "skipped", "results": {"error": "--train-only"}}
                print(f"=== phase {name}: skipped (--train-only) ===", flush=True)
                continue
            left = deadline - time.monotonic() - FINAL_RESERVE_S
            if name == "train":
                phase_budget = left
            else:
                phase_budget = min({"smoke": plan.smoke_budget_s, "env": plan.env_budget_s,
                                    "update": plan.update_budget_s}[name], left - plan.train_min_s)
            if phase_budget <= (plan.train_min_s if name == "train" else 1.0):
                summary["phases"][name] = {"status": "skipped", "budget_s": round(phase_budget, 1),
                                           "results": {"error": "no time left in the run's budget"}}
                code = 1 if name in ("smoke", "train") else code
                continue
            outcome = run_phase(name, plan, phase_budget, work, log, args.overrides if name == "train" else [], env)
            summary["phases"][name] = dataclasses.asdict(outcome)
            if name == "smoke":
                summary["versions"] = outcome.results.get("versions")
                summary["device"] = outcome.results.get("devices")
            write_summary(out, summary)
            if outcome.status != "ok" and name in ("smoke", "train"):
                code = 1
                if name == "smoke":
                    message = outcome.results.get("error", "see the log above")
                    print(f"gpu_run: the smoke test failed, nothing else was run: {message}", file=sys.stderr)
                    break
        summary["files"] = collect_files(work, out)
        summary["wall_s"] = round(time.time() - started, 1)
        write_summary(out, summary)
    print(f"gpu_run: {'done' if code == 0 else 'FAILED'} in {summary['wall_s']:.0f} s; files in {out}: "
          f"{', '.join(summary['files'])}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return code


def collect_files(work: pathlib.Path, out: pathlib.Path) -> dict[str, int]:
    """Copies the training's metrics and parameters file into ``out``; returns every file there → its size."""
    for source in (work / "run" / import_gpu_run.METRICS_FILE, work / import_gpu_run.PARAMS_FILE):
        if source.is_file():
            shutil.copy2(source, out / source.name)
    files = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
    for name, size in files.items():
        if size > MAX_RETURNED_FILE_BYTES:
            print(f"gpu_run: warning: {name} is {size / 2**20:.1f} MiB, more than a transfer hands back",
                  file=sys.stderr)
    return files


def chosen_plan(args: argparse.Namespace) -> Plan:
    """The plan of ``--tiny`` / ``--plan``; its training overrides folded into ``train_overrides``: the configs
    of ``--config`` when given (without the plan's default overrides), else the plan's configs with them."""
    plan = PLANS[args.plan or ("tiny" if args.tiny else "gpu")]
    if args.configs:
        return dataclasses.replace(plan, train_configs=tuple(args.configs), default_train_overrides=())
    return dataclasses.replace(plan, train_overrides=(*plan.default_train_overrides, *plan.train_overrides),
                               default_train_overrides=())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="folder of the files to bring back (created)")
    parser.add_argument("--tiny", action="store_true", help="the CPU rehearsal: toy sizes, two training iterations")
    parser.add_argument("--budget-s", type=float, help="the whole run's wall-clock budget (default: the plan's)")
    parser.add_argument("--started-at", type=float, help="UNIX time the run started (run.sh's start)")
    parser.add_argument("--install-s", type=float, help="seconds run.sh spent installing the bundle")
    parser.add_argument("--work", help="scratch folder for the run folder and phase results (default: a temporary "
                                       "one, removed at the end)")
    parser.add_argument("--config", action="append", default=[], dest="configs", metavar="NAME",
                        help="training config file or name in configs/ (repeat to layer; default: a1_trot)")
    parser.add_argument("--train-only", action="store_true",
                        help="skip the env and update benchmarks: the smoke test, then training")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                        help="override a field of the training config (repeatable)")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--plan", choices=sorted(PLANS), help=argparse.SUPPRESS)
    parser.add_argument("--phase-budget-s", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase is None and not args.out:
        parser.error("--out is required")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.phase is not None:
        return run_phase_in_process(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
