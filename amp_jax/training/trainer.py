"""The training run: builds env, motion library and train state from a config (:mod:`amp_jax.training.run_setup`)
and runs jitted iterations.

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

import contextlib
import json
import logging
import os
import pathlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence

import jax
import numpy as np

from amp_jax import config as config_lib
from amp_jax.agents.train_step import TrainingState
from amp_jax.config import Config
from amp_jax.training import memory_check, policy_file, stop_signals, warm_start
from amp_jax.training import resume as resume_lib
from amp_jax.training.checkpoint import SET_ASIDE_SUBDIR, CheckpointError, RunCheckpointer, StateHistory
from amp_jax.training.metrics_log import MetricsLogger
from amp_jax.training.run_setup import Setup, build, initial_state

logger = logging.getLogger(__name__)

CPU_ENV_WARNING_THRESHOLD = 1024
"""More envs than this on a CPU earn a warning: such configs are sized for an accelerator (the CPU recipe,
``configs/a1_trot_cpu.yaml``, steps 512)."""

HEAVY_KEYS = ("replay_buffer",)
"""Train-state fields kept in the newest checkpoints only."""
STATE_HISTORY = StateHistory(added=("env_state/info/push_countdown",), dropped=("learning_rate",),
                             rewritten=("env_state/metrics",))
"""How the train state changed since checkpoints were shipped, so older runs still evaluate, export and resume:
the per-env push clock was added (an older checkpoint restores it from the new state: drawn afresh), and the
learning rate's copy beside the optimiser state was dropped (its value is the optimiser's injected one). The
env's per-step metrics (a ``reward/<term>`` for each non-zero reward scale) are rewritten by every step, so a
resume may switch reward terms on or off."""


IterationHook = Callable[[int, TrainingState], "Mapping[str, float] | None"]
"""``hook(iteration, state) -> metrics or None``: called on process 0 after every iteration with the count of
iterations done and the state they left (device arrays, already computed); what it returns is logged with that
iteration's metrics. The training probe is one (:func:`probe_hook`); :func:`train` takes more (a notebook's live
plot, a user's own measure)."""


def probe_hook(setup: Setup) -> IterationHook | None:
    """The training probe (:attr:`Setup.probe`) every ``train.probe_interval`` iterations, as a hook; None when the
    setup has no probe."""
    if setup.probe is None:
        return None
    interval, probe = setup.cfg.train.probe_interval, setup.probe

    def hook(iteration: int, state: TrainingState) -> Mapping[str, float] | None:
        if iteration % interval:
            return None
        return probe(state.params if jax.process_count() == 1 else jax.device_get(state.params))

    return hook


_clock = time.monotonic
"""The wall clock of ``train.time_limit_s`` (seconds; a test may replace it)."""


def _write_atomically(path: pathlib.Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class TrainingDivergedError(RuntimeError):
    """A loss became NaN or infinite; the run stops and keeps its last good checkpoint."""


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


def _nonfinite_metrics(metrics: dict[str, np.ndarray]) -> list[str]:
    """The names of the metrics with a NaN or infinite entry (a diverged loss shows in several)."""
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
    hooks: Sequence[IterationHook] = (),
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
      hooks: called after every iteration, after the training probe (:data:`IterationHook`).
    Raises:
      TrainingDivergedError: a loss became non-finite (the last good checkpoint is kept).
      CheckpointError: ``resume`` and no readable checkpoint.
      ConfigError: a resume override that cannot apply to the saved state.
    """
    started = _clock()
    stop_signals.reset()
    total = cfg.train.num_iterations if num_iterations is None else num_iterations
    lead = jax.process_index() == 0
    if run_dir is None and jax.process_count() > 1:
        raise ValueError(f"{jax.process_count()} processes: give every process the same run_dir (train.py "
                         "--run-dir), a folder name from the clock could differ between hosts")
    run_dir = pathlib.Path(run_dir) if run_dir is not None else new_run_dir(cfg, config_name)
    if resume and not (run_dir / "config.yaml").exists():
        raise CheckpointError(f"{run_dir}: not a run folder (expected config.yaml and checkpoints/ in it)")
    memory_check.check_memory(cfg)
    warning = backend_warning(cfg)
    if warning:
        logger.warning(warning)

    # Everything that can fail on bad input (config, clips, memory, the checkpoint to resume) happens before the
    # run folder is created or its config.yaml touched.
    setup = build(cfg)
    config_dict = config_lib.to_dict(cfg)
    state = initial_state(setup)
    if cfg.train.init_policy and not resume:
        state, started_from = warm_start.start_from_policy_file(state, cfg)
        logger.info(started_from)
    resume_record = None
    if resume:
        resume_lib.check_resume_overrides(resume_overrides)
        with _checkpointer(run_dir, setup) as reader:
            restored, newer = resume_lib.restore_for_resume(reader, state, resume_step, STATE_HISTORY)
            state = restored.state
            state, applied = resume_lib.apply_resume_overrides(state, cfg, resume_overrides)
            # Every check passed: only now is the run folder changed.
            reason = f"after-step-{restored.step}" if resume_step is not None else "corrupt"
            set_aside = reader.set_aside(newer, reason)  # every process: it waits for all to have read
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
    with _checkpointer(run_dir, setup) as checkpointer:
        start = int(state.iteration)
        deadline = started + cfg.train.time_limit_s if cfg.train.time_limit_s > 0 else None
        metrics_context = MetricsLogger(run_dir, total_iterations=total, stream=sys.stdout if progress else None,
                                        resume_from=start if resume else None, deadline=deadline) if lead else (
            contextlib.nullcontext(_NoMetricsLogger()))
        with metrics_context as metrics_logger, stop_signals.ctrl_c_at_iteration_boundary():
            all_hooks = tuple(h for h in (probe_hook(setup), *hooks) if h is not None)
            state = _loop(setup, state, start, total, checkpointer, metrics_logger, config_dict, deadline, all_hooks)
    # a signal during the last iteration: the run stops before its evaluation
    signum, _ = stop_signals.agree_to_stop(False)
    if signum:
        raise stop_signals.StopSignal(signum)
    return run_dir


def _checkpointer(run_dir: pathlib.Path, setup: Setup) -> RunCheckpointer:
    """The checkpointer of a run folder, storing the state in its device layout's checkpoint form."""
    return RunCheckpointer(run_dir, keep=setup.cfg.train.keep_checkpoints, heavy_keys=HEAVY_KEYS,
                           layout=setup.devices)


def _save(checkpointer: RunCheckpointer, setup: Setup, state: TrainingState, step: int, config_dict: dict) -> None:
    """Starts writing checkpoint ``step`` of ``state`` (in the background) and writes its policy file (process 0;
    the parameters and normaliser only, a few MB, so the loop hardly waits)."""
    checkpointer.save(step, state, config_dict=config_dict)
    if jax.process_index() == 0:
        policy_file.write_policy_file(checkpointer.run_dir, step, state, setup.cfg)
        policy_file.prune_policy_files(checkpointer.run_dir, setup.cfg.train.keep_checkpoints)


def _loop(setup: Setup, state: TrainingState, start: int, total: int, checkpointer: RunCheckpointer,
          metrics_logger: MetricsLogger, config_dict: dict, deadline: float | None = None,
          hooks: Sequence[IterationHook] = ()) -> TrainingState:
    """:func:`_iterations` with the stop signals told that the loop runs."""
    with stop_signals.loop_running():
        return _iterations(setup, state, start, total, checkpointer, metrics_logger, config_dict, deadline, hooks)


def _iterations(setup: Setup, state: TrainingState, start: int, total: int, checkpointer: RunCheckpointer,
                metrics_logger: MetricsLogger, config_dict: dict, deadline: float | None,
                hooks: Sequence[IterationHook] = ()) -> TrainingState:
    """Iterations ``start + 1 .. total``, each followed by the ``hooks`` (process 0); stops early, between
    iterations, once :func:`_clock` passes ``deadline`` or a signal asked it to
    (:mod:`amp_jax.training.stop_signals`: checkpoint, then ``StopSignal``).

    Every process of a run takes the same decisions at the same iteration boundary
    (:func:`amp_jax.training.stop_signals.agree_to_stop`).
    """
    cfg = setup.cfg
    iteration = start
    lead = jax.process_index() == 0
    saved = start
    try:
        while iteration < total:
            signum, out_of_time = stop_signals.agree_to_stop(deadline is not None and _clock() >= deadline)
            if signum:
                logger.warning("%s at iteration %d: writing a checkpoint before exiting",
                               stop_signals.StopSignal(signum).reason, iteration)
                watchdog = stop_signals.exit_unless_saved_within(stop_signals.STOP_SAVE_TIMEOUT_S, signum, iteration)
                try:
                    if saved != iteration:
                        _save(checkpointer, setup, state, iteration, config_dict)
                    checkpointer.wait()
                finally:
                    watchdog.cancel()
                raise stop_signals.StopSignal(signum)
            if out_of_time:
                logger.info("train.time_limit_s = %g s spent after iteration %d of %d: stopping here, as if the "
                            "run had finished (final checkpoint, then the evaluation)",
                            cfg.train.time_limit_s, iteration, total)
                break
            state, metrics = setup.train_step(state)
            metrics = jax.device_get(metrics)
            bad = _nonfinite_metrics(metrics)
            if bad:
                checkpointer.wait()
                raise TrainingDivergedError(
                    f"iteration {iteration + 1}: {', '.join(sorted(bad))} became non-finite; the run stopped. "
                    f"The last good checkpoint is step {checkpointer.latest_step()} in {checkpointer.directory}. "
                    f"Try a lower ppo.learning_rate or amp.grad_penalty_coef.")
            iteration += 1
            for hook in hooks if lead else ():
                metrics = {**metrics, **(hook(iteration, state) or {})}
            metrics_logger.log(iteration, metrics, env_steps=iteration * cfg.batch_size)
            if iteration % cfg.train.checkpoint_interval == 0 and iteration < total:
                _save(checkpointer, setup, state, iteration, config_dict)
                saved = iteration
        # The final checkpoint, written while signals still wait for the boundary: one arriving now is acted on
        # when the save has finished (train() raises StopSignal after it), never in the middle of it.
        _save(checkpointer, setup, state, iteration, config_dict)
        checkpointer.wait()
    except stop_signals.StopSignal:
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
    return state
