"""Checkpoints of a training run: exact resume, keep-last-K, the heavy part in the latest only.

A run folder holds its checkpoints under ``<run_dir>/checkpoints/<step>/``, written by orbax's
``CheckpointManager``: each step is written into a temporary folder and renamed into place when complete,
so a save cut short (Ctrl-C, a killed process, a full disk) never looks like a checkpoint; leftover
temporary folders are removed the next time the run folder is opened. Saves run in the background;
:meth:`RunCheckpointer.wait` (also called by :meth:`RunCheckpointer.close`) blocks until the last one is on
disk.

Each step folder holds three orbax items:

- ``state``: the whole pytree except the heavy subtrees (parameters, optimiser state, normalisers,
  environment state, PRNG keys, counters): what evaluation, export and a resume need;
- ``heavy``: the heavy subtrees (by default the replay buffer, ~344 MB at full size), kept in the newest
  ``heavy_keep`` checkpoints only (default 2, so that a resume that falls back past a corrupt newest step is
  still exact): older steps lose their ``heavy`` item;
- ``config``: the resolved run configuration as JSON, so a policy can be rebuilt from a checkpoint alone.

**Integrity**: once a step is complete on disk, its checkpointer writes ``<step>/digest.json`` last (SHA-256
of every file of the step, written to a temporary name and renamed), and every restore checks the files
against it first. A mismatch, a missing file or an unreadable one is a :class:`CorruptCheckpointError` naming
the step and the file. A step without a digest (the process died between the save and its seal, or it was
written before digests existed) still restores, with a warning that it could not be verified.
:meth:`RunCheckpointer.restore_newest_intact` walks back from the newest step past corrupt ones (a resume's
fallback), and :meth:`RunCheckpointer.set_aside` moves steps out of the way (into ``set_aside/`` in the run
folder, never deleted) so that a resumed run does not meet them again.

Restoring a step without its heavy item restores everything else and keeps the caller's heavy subtrees
(e.g. a freshly initialised, empty replay buffer); :class:`Restored` lists what was not restored and a
warning is logged. PRNG key arrays with a key dtype are stored as their raw ``uint32`` key data and
wrapped again on restore, so a restore is bit-exact for every leaf.

A checkpointer may be given the state's :class:`StateLayout` (the trainer gives its device layout): it saves
the state in the stored form and restores it into the form the run holds, so no caller converts.
"""

from amp_jax.training.checkpoint.digest import DIGEST_FILE, step_digest, verify_step, write_digest
from amp_jax.training.checkpoint.errors import CheckpointError, CorruptCheckpointError
from amp_jax.training.checkpoint.layout import AS_STORED, StateLayout
from amp_jax.training.checkpoint.manager import (
    CHECKPOINT_SUBDIR,
    DEFAULT_HEAVY_KEEP,
    DEFAULT_HEAVY_KEYS,
    SET_ASIDE_SUBDIR,
    Restored,
    RunCheckpointer,
    latest_step,
    restore,
    save,
)
from amp_jax.training.checkpoint.tree import StateHistory

__all__ = [
    "AS_STORED", "CHECKPOINT_SUBDIR", "DEFAULT_HEAVY_KEEP", "DEFAULT_HEAVY_KEYS", "DIGEST_FILE", "SET_ASIDE_SUBDIR",
    "CheckpointError", "CorruptCheckpointError", "Restored", "RunCheckpointer", "StateHistory", "StateLayout",
    "latest_step", "restore", "save", "step_digest", "verify_step", "write_digest",
]
