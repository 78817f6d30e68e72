"""Resuming a run: which checkpoint it starts from, what the saved state owns, and the record of each resume.

A resume restores the newest intact checkpoint (or a named step), refuses overrides of fields whose value
lives in the saved state (:data:`STATE_OWNED_FIELDS`), writes into the state the overrides it carries
(:func:`apply_resume_overrides`), and appends what happened to ``<run_dir>/resumes.jsonl``.
"""

from __future__ import annotations

import logging
import pathlib
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from amp_jax import config as config_lib
from amp_jax.agents import optimizer
from amp_jax.agents.train_step import TrainingState
from amp_jax.config import Config
from amp_jax.training.checkpoint import Restored, RunCheckpointer, StateHistory
from amp_jax.training.checkpoint.tree import UNCHANGED

logger = logging.getLogger(__name__)

RESUMES_FILE = "resumes.jsonl"
"""One line per resume of a run: from which step, what was skipped or set aside, which overrides applied."""

STATE_OWNED_FIELDS = {
    "train.seed": "the random streams of a resumed run continue from the PRNG keys saved in its checkpoint, so "
                  "a new seed cannot apply (start a new run for another seed)",
}
"""Config fields whose value lives in the saved state: a resume refuses an override of them."""


def check_resume_overrides(overrides: Sequence[str]) -> None:
    """Raises ConfigError for an override that a resume cannot honour (:data:`STATE_OWNED_FIELDS`)."""
    for text in overrides:
        key, value = config_lib.parse_override(text)
        if key in STATE_OWNED_FIELDS:
            raise config_lib.ConfigError("--set (with --resume)", key, value,
                                         f"no change on resume: {STATE_OWNED_FIELDS[key]}")


def apply_resume_overrides(state: TrainingState, cfg: Config, overrides: Sequence[str]
                           ) -> tuple[TrainingState, dict[str, str]]:
    """Writes into the restored ``state`` the overrides it owns; returns it and, per override key, how it
    applied. ``ppo.learning_rate`` replaces the learning rate the state carries (the adaptive schedule's
    current rate, or the fixed one); other fields are read from the config by the resumed run."""
    applied = {}
    for text in overrides:
        key, _ = config_lib.parse_override(text)
        if key == "ppo.learning_rate":
            old = float(jax.device_get(state.learning_rate))
            new = jax.device_put(jnp.asarray(cfg.ppo.learning_rate, state.learning_rate.dtype),
                                 state.learning_rate.sharding)
            state = state.replace(opt_state=optimizer.with_learning_rate(state.opt_state, new))
            applied[key] = (f"the saved learning rate {old:.3g} replaced by {cfg.ppo.learning_rate:.3g}"
                            + (" (the adaptive schedule goes on from it)" if cfg.ppo.schedule == "adaptive" else ""))
        else:
            applied[key] = "from the config"
    return state, applied


def restore_for_resume(reader: RunCheckpointer, target: TrainingState, step: int | None,
                       history: StateHistory = UNCHANGED) -> tuple[Restored, list[int]]:
    """The checkpoint a resume starts from, and the newer steps it leaves behind.

    ``step`` None: the newest intact step (corrupt newer ones are skipped, with a warning saying what the
    fallback costs); else exactly ``step`` (an error if it is corrupt or missing). A warning also says when the
    resume is not exact (the step holds no replay buffer, or predates leaves in ``history.added``).
    """
    restored = (reader.restore(target, step, history=history) if step is not None
                else reader.restore_newest_intact(target, history=history))
    newer = [s for s in reader.steps() if s > restored.step]
    if restored.skipped:
        steps = ", ".join(str(s) for s, _ in restored.skipped)
        exact = "" if restored.missing or restored.filled else ", and the resume is exact"
        logger.warning("checkpoint %s skipped as corrupt (%s); resuming from step %d: iterations %d-%d will be "
                       "trained again%s", steps, restored.skipped[0][1], restored.step, restored.step + 1,
                       restored.skipped[0][0], exact)
    elif newer:
        logger.warning("resuming from step %d as asked: the newer checkpoints %s are set aside", restored.step,
                       ", ".join(map(str, newer)))
    if restored.missing:
        logger.warning("step %d holds no %s: it restarts empty, so the resume is not exact", restored.step,
                       ", ".join(restored.missing))
    if restored.filled:
        logger.warning("step %d predates %s: drawn afresh, so the resume is not exact", restored.step,
                       ", ".join(restored.filled))
    return restored, newer


def resume_record(restored: Restored, resume_step: int | None, newer: Sequence[int],
                   set_aside: pathlib.Path | None, overrides: Sequence[str], applied: dict[str, str]) -> dict:
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "from_step": restored.step, "asked_step": resume_step,
            "skipped_corrupt": [{"step": s, "why": why} for s, why in restored.skipped],
            "set_aside": {"steps": list(newer), "folder": str(set_aside) if set_aside else None},
            "verified": restored.verified, "exact": restored.complete and not restored.filled,
            "not_restored": [*restored.missing, *restored.filled],
            "overrides": list(overrides), "applied": applied}
