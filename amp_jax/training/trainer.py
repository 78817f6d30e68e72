"""The training run: builds env, motion library and train state from a config and runs jitted iterations.

A run folder (``runs/<config>-<UTC time>/``) holds the resolved ``config.yaml``, ``metrics.jsonl``,
TensorBoard event files, ``checkpoints/``, ``policies/`` and, once training ends, the evaluation's plots, video
and ONNX policy. Checkpoints are written every ``train.checkpoint_interval`` iterations, at the end and on
Ctrl-C, each with its policy file (``policies/<step>.npz``: parameters, AMP normaliser and config, what
evaluation and export read; :mod:`amp_jax.training.policy_file`); ``resume`` continues bit-exactly from the
newest checkpoint.

Devices: the iteration is split over ``train.num_devices`` devices (default: all that JAX sees; see
:mod:`amp_jax.agents.distributed`). Checkpoints do not depend on the device count: a run written on ``D``
devices resumes on any count that splits its config (bit-exactly on the same count). With several processes
(``jax.distributed.initialize`` before the call, as ``train.py --distributed`` does) every process runs
:func:`train` with the same arguments; process 0 alone writes ``config.yaml``, the metrics and the progress
line, and orbax coordinates the checkpoint writes of all processes.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import json
import logging
import os
import pathlib
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import numpy as np

from amp_jax import config as config_lib
from amp_jax.agents import distributed
from amp_jax.agents.train_step import TrainingState, make_train_step
from amp_jax.config import Config
from amp_jax.envs import mirror, observations
from amp_jax.envs.wrappers import make_amp_training_env
from amp_jax.motion import library as motion_library_lib
from amp_jax.motion.loader import load_motion_library
from amp_jax.training import policy_file
from amp_jax.training import resume as resume_lib
from amp_jax.training.checkpoint import SET_ASIDE_SUBDIR, CheckpointError, RunCheckpointer
from amp_jax.training.metrics_log import MetricsLogger

logger = logging.getLogger(__name__)

CPU_ENV_WARNING_THRESHOLD = 1024
"""More envs than this on a CPU earn a warning: such configs are sized for an accelerator (the CPU recipe,
``configs/a1_trot_cpu.yaml``, steps 512)."""

HEAVY_KEYS = ("replay_buffer",)
"""Train-state fields kept in the newest checkpoints only."""
ADDED_STATE_LEAVES = ("env_state/info/push_countdown",)
"""Train-state leaves added after checkpoints were shipped: an older checkpoint restores with them taken from
the new state (the per-env push clock: drawn afresh), so its runs still evaluate, export and resume."""


_clock = time.monotonic
"""The wall clock of ``train.time_limit_s`` (seconds; a test may replace it)."""


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


def _exit_unless_saved_within(seconds: float, signum: int, iteration: int) -> threading.Timer:
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
def _ctrl_c_at_iteration_boundary() -> Iterator[None]:
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


def stop_requested() -> int | None:
    """The signal that asked the run to stop (see :func:`handle_stop_signal`), or None."""
    return _stop_requests[0] if _stop_requests else None


def _agree_to_stop(out_of_time: bool) -> tuple[int, bool]:
    """``(signal number or 0, out of time)`` as every process of the run sees it: the first signal any process
    received, and whether any process's clock passed the deadline (one process: its own)."""
    signum = stop_requested() or 0
    if jax.process_count() == 1:
        return signum, out_of_time
    from jax.experimental import multihost_utils

    votes = np.asarray(multihost_utils.process_allgather(np.array([signum, int(out_of_time)], np.int32)))
    signals = votes[:, 0][votes[:, 0] > 0]
    return (int(signals[0]) if signals.size else 0), bool(votes[:, 1].any())


BYTES_PER_FLOAT = 4
MEMORY_HEADROOM = 0.8
"""Share of the available memory the replay buffer and rollout may take."""


def estimated_bytes(cfg: Config) -> dict[str, int]:
    """Device memory of the large arrays of a run (bytes): the replay buffer (two AMP observations of 43 floats
    per transition) and one iteration's rollout (observations, actions, AMP transitions per env and step)."""
    amp_features = observations.AMP_OBS_SIZE
    per_step = (observations.POLICY_OBS_SIZE + observations.CRITIC_OBS_SIZE  # obs, critic obs,
                + 3 * observations.NUM_ACTIONS + 2 * amp_features + 8)  # action/mean/noise, AMP s and s', scalars
    return {"replay_buffer": cfg.amp.replay_buffer_size * 2 * amp_features * BYTES_PER_FLOAT,
            "rollout": cfg.batch_size * per_step * BYTES_PER_FLOAT}


def available_bytes() -> int | None:
    """Memory the first device can still give (bytes): its allocator's limit on an accelerator, the host's
    available memory on a CPU; None when unknown."""
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
        return None
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(cfg: Config) -> None:
    """Refuses, before anything is allocated, a run whose replay buffer and rollout cannot fit.

    Raises:
      ConfigError: naming the field, the estimate and what is available.
    """
    need = estimated_bytes(cfg)
    have = available_bytes()
    if have is None:
        return
    devices = max(1, cfg.train.num_devices or len(jax.devices()))
    per_device = (need["replay_buffer"] + need["rollout"]) / devices
    if per_device > MEMORY_HEADROOM * have:
        field = "amp.replay_buffer_size" if need["replay_buffer"] >= need["rollout"] else "env.num_envs"
        value = cfg.amp.replay_buffer_size if field == "amp.replay_buffer_size" else cfg.env.num_envs
        raise config_lib.ConfigError(
            "<memory check>", field, value,
            f"a size that fits: the replay buffer needs {need['replay_buffer'] / 1e9:.3g} GB and one rollout "
            f"{need['rollout'] / 1e9:.3g} GB ({per_device / 1e9:.3g} GB per device), {have / 1e9:.3g} GB are "
            f"available on {jax.devices()[0].platform}")


def _write_atomically(path: pathlib.Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class TrainingDivergedError(RuntimeError):
    """A loss became NaN or infinite; the run stops and keeps its last good checkpoint."""


@dataclasses.dataclass(frozen=True)
class Setup:
    """Everything a run builds from its config (no state)."""

    cfg: Config
    env: Any
    """Batched, auto-resetting training env."""
    motion_library: motion_library_lib.MotionLibrary
    init_fn: Callable[[jax.Array], TrainingState]
    train_step: Callable[[TrainingState], tuple[TrainingState, dict[str, jax.Array]]]
    devices: distributed.DeviceLayout = distributed.DeviceLayout()
    """The devices the iteration is split over, and the checkpoints' layout of the state."""
    probe: Callable[[Any], dict[str, float]] | None = None
    """``probe(params) -> {"probe/...": value}``: the deterministic policy's tracking and gait
    (:mod:`amp_jax.analysis.speed`); None when ``train.probe_interval`` is 0."""


HOST_ONLY_TRAIN_FIELDS = ("num_iterations", "checkpoint_interval", "keep_checkpoints", "run_root", "time_limit_s",
                          "probe_interval", "processes")
"""``train`` fields only the host loop reads: configs that differ in these alone share one build."""
BUILD_CACHE_SIZE = 2
"""Builds kept per process (each holds its compiled iteration)."""
_builds: collections.OrderedDict[tuple, Setup] = collections.OrderedDict()


def _build_key(cfg: Config) -> tuple | None:
    """What a build depends on: the config less :data:`HOST_ONLY_TRAIN_FIELDS` (``train.num_devices`` as the count
    it resolves to), and each clip file's path, size and modification time (an edited clip is read afresh); None
    when a clip cannot be read (the build says why)."""
    defaults = config_lib.TrainConfig()
    train = dataclasses.replace(cfg.train, **{f: getattr(defaults, f) for f in HOST_ONLY_TRAIN_FIELDS},
                                num_devices=cfg.train.num_devices or jax.device_count())  # 0: all of them
    try:
        clips = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in cfg.motion.resolved_files())
    except (OSError, ValueError):
        return None
    return dataclasses.replace(cfg, train=train), clips


def build(cfg: Config, *, probe: bool = True) -> Setup:
    """Loads the motion clips and builds the env and the jitted ``init_fn`` / ``train_step`` of ``cfg``; with
    ``probe`` (and ``train.probe_interval`` > 0) also the training probe (readers of a run folder need none).

    Compiled once per process: a later call with a config that differs only in :data:`HOST_ONLY_TRAIN_FIELDS`
    (a resume, the next chunk of a notebook's training, a longer run of the same recipe) returns the same jitted
    functions, so nothing is traced or compiled again; the returned ``Setup.cfg`` is always ``cfg``.

    Raises:
      ConfigError: ``train.num_devices`` exceeds the devices, or the config does not split evenly over them.
    """
    key = _build_key(cfg)
    setup = _builds.get(key) if key is not None else None
    if setup is None:
        setup = _build(cfg)
    want_probe = probe and cfg.train.probe_interval > 0
    if want_probe and setup.probe is None:
        setup = dataclasses.replace(setup, probe=make_policy_probe(cfg, setup.motion_library))
    if key is not None:
        _builds[key] = setup
        _builds.move_to_end(key)
        while len(_builds) > BUILD_CACHE_SIZE:
            _builds.popitem(last=False)
    return dataclasses.replace(setup, cfg=cfg, probe=setup.probe if want_probe else None)


def _build(cfg: Config) -> Setup:
    """:func:`build` without the cache and the probe."""
    devices = distributed.DeviceLayout.for_config(cfg)
    load = functools.partial(load_motion_library, cfg.motion.resolved_files(), dt_amp=cfg.env.control_dt,
                             repair_threshold=cfg.motion.velocity_repair_threshold)
    motion = load()
    # reference-state initialisation from the clips and their mirror images when the config asks for it
    start_motion = load(mirror_frames=mirror.frame_map()) if cfg.symmetry.reference_state_init else motion
    env_key = jax.random.fold_in(jax.random.key(cfg.train.seed), 1)
    env = make_amp_training_env(cfg, start_motion, env_key, devices.num_devices)
    sample_expert = functools.partial(_sample_expert, motion, cfg.env.control_dt)
    init_fn, train_step = make_train_step(env, cfg, sample_expert, devices.mesh, mirror.a1_mirror_maps())
    return Setup(cfg, env, motion, init_fn, train_step, devices)


PROBE_SETTLE_S = 2.0
"""Seconds the training probe lets each speed settle before measuring."""
PROBE_MEASURE_S = 4.0
"""Seconds the training probe measures at each speed."""


def make_policy_probe(cfg: Config, motion: motion_library_lib.MotionLibrary) -> Callable[[Any], dict[str, float]]:
    """The training loop's probe of the mean action at ``train.probe_forward_speeds`` (see :class:`Setup`);
    contact similarity against ``trot0`` when the run uses it, else its first clip."""
    from amp_jax.agents import networks
    from amp_jax.analysis import gait, rollout, speed
    from amp_jax.envs.a1_amp import A1AmpEnv

    env = A1AmpEnv(rollout.evaluation_env_config(cfg.env), None)
    nets = networks.make_networks(cfg.networks, env.action_size)
    ref = rollout.contact_reference_index(motion.names)
    frames = np.asarray(motion.frames[ref, : int(motion.num_frames[ref])], np.float64)
    reference_contacts = gait.contacts_from_heights(gait.clip_foot_heights(frames))
    return speed.make_probe(env, networks.make_policy_fn(nets), cfg.train.probe_forward_speeds,
                            PROBE_SETTLE_S, PROBE_MEASURE_S, reference_contacts, commands=cfg.train.probe_commands)


def _sample_expert(motion, dt_amp: float, key: jax.Array, batch: int):
    return motion_library_lib.sample_expert_transitions(motion, key, batch, dt_amp)


def initial_state(setup: Setup) -> TrainingState:
    """The train state before the first iteration (parameters, optimiser, first env state, ...)."""
    return setup.init_fn(jax.random.fold_in(jax.random.key(setup.cfg.train.seed), 2))


def new_run_dir(cfg: Config, config_name: str) -> pathlib.Path:
    """``<train.run_root>/<config name>-<UTC time>``, made unique with a counter if it exists."""
    stem = pathlib.Path(config_name).stem or "run"
    base = pathlib.Path(cfg.train.run_root) / f"{stem}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    run_dir, n = base, 1
    while run_dir.exists():
        run_dir, n = base.with_name(f"{base.name}-{n}"), n + 1
    return run_dir


def backend_warning(cfg: Config) -> str | None:
    """A message when an accelerator-sized config is about to run on a CPU, else None."""
    if jax.default_backend() != "cpu" or cfg.env.num_envs <= CPU_ENV_WARNING_THRESHOLD:
        return None
    return (f"JAX runs on the CPU, but this config steps {cfg.env.num_envs} envs × {cfg.ppo.num_steps} steps per "
            f"iteration: it is sized for a GPU or TPU and will be very slow here. For the CPU learning recipe use "
            f"'--config a1_trot_cpu.yaml', for a short CPU-sized run add '--config cpu.yaml'; for a GPU install "
            f"jax[cuda12] (pip install -e '.[cuda]').")


class _NoMetricsLogger:
    """Stands in for the metrics logger on processes other than 0."""

    def log(self, iteration: int, metrics: dict, *, env_steps: int) -> None:
        del iteration, metrics, env_steps


def _finite_losses(metrics: dict[str, np.ndarray]) -> list[str]:
    return [k for k, v in metrics.items() if not np.all(np.isfinite(v))]


def train(
    cfg: Config,
    *,
    config_name: str = "run",
    run_dir: str | pathlib.Path | None = None,
    resume: bool = False,
    resume_step: int | None = None,
    resume_overrides: Sequence[str] = (),
    num_iterations: int | None = None,
    progress: bool = True,
) -> pathlib.Path:
    """Trains ``cfg`` and returns the run folder.

    Args:
      cfg: the resolved config.
      config_name: names a new run folder.
      run_dir: the run folder (default: a new one under ``cfg.train.run_root``).
      resume: continue from the newest intact checkpoint in ``run_dir`` (which must exist); corrupt newer ones
        are skipped with a warning and moved into ``run_dir/set_aside/``
        (:func:`amp_jax.training.resume.restore_for_resume`).
      resume_step: resume from this step instead; newer checkpoints are moved into ``run_dir/set_aside/``.
      resume_overrides: the ``--set`` overrides given with the resume (already in ``cfg``): checked against
        what the saved state owns (:func:`amp_jax.training.resume.apply_resume_overrides`) and recorded in
        ``run_dir/resumes.jsonl``.
      num_iterations: stop after this many iterations in total (default ``cfg.train.num_iterations``).
      progress: print the live progress line.
    Raises:
      TrainingDivergedError: a loss became non-finite (the last good checkpoint is kept).
      CheckpointError: ``resume`` and no readable checkpoint.
      ConfigError: a resume override that cannot apply to the saved state.
    """
    started = _clock()
    _stop_requests.clear()
    _first_signal.clear()
    total = cfg.train.num_iterations if num_iterations is None else num_iterations
    lead = jax.process_index() == 0
    if run_dir is None and jax.process_count() > 1:
        raise ValueError(f"{jax.process_count()} processes: give every process the same run_dir (train.py "
                         "--run-dir), a folder name from the clock could differ between hosts")
    run_dir = pathlib.Path(run_dir) if run_dir is not None else new_run_dir(cfg, config_name)
    if resume and not (run_dir / "config.yaml").exists():
        raise CheckpointError(f"{run_dir}: not a run folder (expected config.yaml and checkpoints/ in it)")
    check_memory(cfg)
    warning = backend_warning(cfg)
    if warning:
        logger.warning(warning)

    # Everything that can fail on bad input (config, clips, memory, the checkpoint to resume) happens before the
    # run folder is created or its config.yaml touched.
    setup = build(cfg)
    config_dict = config_lib.to_dict(cfg)
    state = initial_state(setup)
    resume_record = None
    if resume:
        resume_lib.check_resume_overrides(resume_overrides)
        with RunCheckpointer(run_dir, keep=cfg.train.keep_checkpoints, heavy_keys=HEAVY_KEYS) as reader:
            restored, newer = resume_lib.restore_for_resume(reader, setup.devices.to_checkpoint(state), resume_step,
                                                            ADDED_STATE_LEAVES)
            state = setup.devices.from_checkpoint(restored.state)
            state, applied = resume_lib.apply_resume_overrides(state, cfg, resume_overrides)
            # Every check passed: only now is the run folder changed.
            reason = f"after-step-{restored.step}" if resume_step is not None else "corrupt"
            set_aside = reader.set_aside(newer, reason) if lead else None
            if lead:  # policy files newer than the step go too: the set-aside steps', and any whose checkpoint
                # never finished (the process died during its background write)
                dest = set_aside or run_dir / SET_ASIDE_SUBDIR / "{}-{}".format(
                    time.strftime("%Y%m%d-%H%M%S"), reason if newer else "unfinished-checkpoint")
                if policy_file.set_aside_policy_files(run_dir, restored.step, dest) and set_aside is None:
                    set_aside = dest
        resume_record = resume_lib.resume_record(restored, resume_step, newer, set_aside, resume_overrides, applied)
        logger.info("resumed %s at iteration %d", run_dir, restored.step)
    if lead:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(run_dir / "config.yaml", config_lib.dump_yaml(cfg))
        if resume_record is not None:
            with open(run_dir / resume_lib.RESUMES_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(resume_record) + "\n")
    with RunCheckpointer(run_dir, keep=cfg.train.keep_checkpoints, heavy_keys=HEAVY_KEYS) as checkpointer:
        start = int(state.iteration)
        deadline = started + cfg.train.time_limit_s if cfg.train.time_limit_s > 0 else None
        metrics_context = MetricsLogger(run_dir, total_iterations=total, stream=sys.stdout if progress else None,
                                        resume_from=start if resume else None, deadline=deadline) if lead else (
            contextlib.nullcontext(_NoMetricsLogger()))
        with metrics_context as metrics_logger, _ctrl_c_at_iteration_boundary():
            state = _loop(setup, state, start, total, checkpointer, metrics_logger, config_dict, deadline)
    signum, _ = _agree_to_stop(False)  # a signal during the last iteration: the run stops before its evaluation
    if signum:
        raise StopSignal(signum)
    return run_dir


def _save(checkpointer: RunCheckpointer, setup: Setup, state: TrainingState, step: int, config_dict: dict) -> None:
    """Starts writing checkpoint ``step`` of ``state`` (in the background) and writes its policy file (process 0;
    the parameters and normaliser only, a few MB, so the loop hardly waits)."""
    checkpointer.save(step, setup.devices.to_checkpoint(state), config_dict=config_dict)
    if jax.process_index() == 0:
        policy_file.write_policy_file(checkpointer.run_dir, step, state, setup.cfg)
        policy_file.prune_policy_files(checkpointer.run_dir, setup.cfg.train.keep_checkpoints)


def _loop(setup: Setup, state: TrainingState, start: int, total: int, checkpointer: RunCheckpointer,
          metrics_logger: MetricsLogger, config_dict: dict, deadline: float | None = None) -> TrainingState:
    """Iterations ``start + 1 .. total``; stops early, between iterations, once :func:`_clock` passes
    ``deadline`` or a signal asked it to (:func:`handle_stop_signal`: checkpoint, then :class:`StopSignal`).

    Every process of a run takes the same decisions at the same iteration boundary (:func:`_agree_to_stop`).
    """
    global _in_loop
    cfg = setup.cfg
    iteration = start
    lead = jax.process_index() == 0
    saved = start
    _in_loop = True
    try:
        while iteration < total:
            signum, out_of_time = _agree_to_stop(deadline is not None and _clock() >= deadline)
            if signum:
                logger.warning("%s at iteration %d: writing a checkpoint before exiting", StopSignal(signum).reason,
                               iteration)
                watchdog = _exit_unless_saved_within(STOP_SAVE_TIMEOUT_S, signum, iteration)
                try:
                    if saved != iteration:
                        _save(checkpointer, setup, state, iteration, config_dict)
                    checkpointer.wait()
                finally:
                    watchdog.cancel()
                raise StopSignal(signum)
            if out_of_time:
                logger.info("train.time_limit_s = %g s spent after iteration %d of %d: stopping here, as if the "
                            "run had finished (final checkpoint, then the evaluation)",
                            cfg.train.time_limit_s, iteration, total)
                break
            state, metrics = setup.train_step(state)
            metrics = jax.device_get(metrics)
            bad = _finite_losses(metrics)
            if bad:
                checkpointer.wait()
                raise TrainingDivergedError(
                    f"iteration {iteration + 1}: {', '.join(sorted(bad))} became non-finite; the run stopped. "
                    f"The last good checkpoint is step {checkpointer.latest_step()} in {checkpointer.directory}. "
                    f"Try a lower ppo.learning_rate or amp.grad_penalty_coef.")
            iteration += 1
            if setup.probe is not None and lead and iteration % cfg.train.probe_interval == 0:
                params = state.params if jax.process_count() == 1 else jax.device_get(state.params)
                metrics = {**metrics, **setup.probe(params)}
            metrics_logger.log(iteration, metrics, env_steps=iteration * cfg.batch_size)
            if iteration % cfg.train.checkpoint_interval == 0 and iteration < total:
                _save(checkpointer, setup, state, iteration, config_dict)
                saved = iteration
        # The final checkpoint, written while signals still wait for the boundary: one arriving now is acted on
        # when the save has finished (train() raises StopSignal after it), never in the middle of it.
        _save(checkpointer, setup, state, iteration, config_dict)
        checkpointer.wait()
    except StopSignal:
        raise
    except KeyboardInterrupt as interrupt:  # Ctrl-C without train.py's handler (a notebook, a direct call)
        try:
            jax.block_until_ready(state)
            # The state's own counter, not the loop's: an interrupt between the step's return and the count's
            # update would otherwise label the state one iteration behind what it holds.
            done = int(jax.device_get(state.iteration))
            logger.warning("%s at iteration %d: writing a checkpoint before exiting",
                           getattr(interrupt, "reason", "interrupted"), done)
            _save(checkpointer, setup, state, done, config_dict)
            checkpointer.wait()
        except Exception as err:  # the state of an interrupted dispatch may already be donated
            logger.warning("could not checkpoint the interrupted iteration (%s); the last checkpoint is step %s",
                           err, checkpointer.latest_step())
        raise
    finally:
        _in_loop = False
    return state
