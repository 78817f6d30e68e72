"""What a run builds from its config, once per process: motion clips, the batched training env, the jitted
``init_fn`` / ``train_step`` and the training probe (:func:`build`, cached for configs that differ only in the host
loop's fields)."""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from amp_jax import config as config_lib
from amp_jax.agents import distributed
from amp_jax.agents.train_step import TrainingState, make_train_step
from amp_jax.config import Config
from amp_jax.envs import mirror
from amp_jax.envs.wrappers import make_amp_training_env
from amp_jax.motion import library as motion_library_lib
from amp_jax.motion.loader import load_clips, stack_clips, with_reversed
from amp_jax.training import policy_file


@dataclasses.dataclass(frozen=True)
class Setup:
    """Everything a run builds from its config (no state)."""

    cfg: Config
    env: Any
    """Batched, auto-resetting training env."""
    motion_library: motion_library_lib.MotionLibrary
    init_fn: Callable[[jax.Array], TrainingState]
    train_step: Callable[[TrainingState], tuple[TrainingState, dict[str, jax.Array]]]
    devices: distributed.DeviceLayout
    """The devices the iteration is split over, and the checkpoints' layout of the state."""
    probe: Callable[[Any], dict[str, float]] | None = None
    """``probe(params) -> {"probe/...": value}``: the deterministic policy's tracking and gait
    (:mod:`amp_jax.analysis.speed`); None when ``train.probe_interval`` is 0. The loop runs it as a per-iteration
    hook (:func:`amp_jax.training.trainer.probe_hook`)."""


HOST_ONLY_TRAIN_FIELDS = ("num_iterations", "checkpoint_interval", "keep_checkpoints", "run_root", "time_limit_s",
                          "probe_interval", "processes", "init_policy")
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
      ConfigError: ``train.num_devices`` exceeds the devices, or the config does not split evenly over them; or
        ``symmetry.equivariant_networks`` without a gait clock.
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
    if cfg.symmetry.equivariant_networks and cfg.env.gait_clock_hz <= 0:
        raise config_lib.ConfigError("config", "symmetry.equivariant_networks", True,
                                     "off, or env.gait_clock_hz > 0: a mirror-equivariant policy keeps the "
                                     "mirror-symmetric standing pose still unless a clock tells the legs apart")
    devices = distributed.DeviceLayout.for_config(cfg)
    clips = with_reversed(load_clips(cfg.motion.resolved_files(), min_duration=cfg.env.control_dt,
                                     repair_threshold=cfg.motion.velocity_repair_threshold),  # read (and logged) once
                          cfg.motion.reversed_clip_weight)
    motion = stack_clips(clips)
    # reference-state initialisation from the clips and their mirror images when the config asks for it
    start_motion = stack_clips(clips, mirror.frame_map()) if cfg.symmetry.reference_state_init else motion
    env_key = jax.random.fold_in(jax.random.key(cfg.train.seed), 1)
    env = make_amp_training_env(cfg, start_motion, env_key, devices.num_devices)
    lags = cfg.env.amp_history_lags
    sample_expert = functools.partial(_sample_expert, motion, cfg.env.control_dt, lags)
    maps = mirror.a1_mirror_maps_for(cfg.env)
    sample_tempo = (functools.partial(_sample_replayed, motion, cfg.env.control_dt, cfg.amp.tempo_negative_rates,
                                      lags) if cfg.amp.tempo_negatives else None)
    init_fn, train_step = make_train_step(env, cfg, sample_expert, devices.mesh, maps, sample_tempo)
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
    nets = policy_file.run_networks(cfg)
    ref = rollout.contact_reference_index(motion.names)
    frames = np.asarray(motion.frames[ref, : int(motion.num_frames[ref])], np.float64)
    reference_contacts = gait.contacts_from_heights(gait.clip_foot_heights(frames))
    return speed.make_probe(env, networks.make_policy_fn(nets), cfg.train.probe_forward_speeds,
                            PROBE_SETTLE_S, PROBE_MEASURE_S, reference_contacts, commands=cfg.train.probe_commands)


def _sample_expert(motion, dt_amp: float, lags: tuple[int, ...], key: jax.Array, batch: int):
    return motion_library_lib.sample_expert_transitions(motion, key, batch, dt_amp, lags)


def _sample_replayed(motion, dt_amp: float, rates: tuple[float, ...], lags: tuple[int, ...], key: jax.Array,
                     batch: int):
    return motion_library_lib.sample_replayed_transitions(motion, key, batch, dt_amp, rates, lags)


def initial_state(setup: Setup) -> TrainingState:
    """The train state before the first iteration (parameters, optimiser, first env state, ...)."""
    return setup.init_fn(jax.random.fold_in(jax.random.key(setup.cfg.train.seed), 2))
