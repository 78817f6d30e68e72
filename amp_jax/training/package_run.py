"""Packs a finished run into a small folder to ship: the final step's policy file and checkpoint without its
replay buffer, and what the run's evaluation wrote.

``python -m amp_jax.training.package_run RUN_DIR OUT_DIR [--step N]`` copies into ``OUT_DIR`` (which must not exist):

- ``config.yaml`` and ``metrics.jsonl`` (the learning curves' data; a long run's log thinned to about
  :data:`MAX_METRICS_RECORDS` records, every training-probe record kept: :func:`thin_metrics`);
- ``policies/<step>.npz`` of the newest (or the given) step: parameters, AMP normaliser and config, what
  evaluation and export read (:mod:`amp_jax.training.policy_file`). A run folder written before policy files
  existed gets it written into the package from the step's checkpoint (which builds the trainer);
- ``checkpoints/<step>/`` of that step when the run has it, without its ``heavy`` item (the replay buffer,
  tens of MB): parameters, optimiser and normaliser state, the env state and the PRNG key, enough to resume
  training (with an empty replay buffer, so not bit-exactly);
- ``evaluation.json``, the learning curves, gait diagram, velocity-tracking, speed-sweep, footfall and command-grid
  plots, and ``policy.onnx``, when the run has them.

The checkpoint is checked against its ``digest.json`` first (a corrupt checkpoint is never shipped) and the
digest travels with it (the missing ``heavy`` item is what a verifying reader skips); the policy file is read
back in full (every leaf against its config) before it is shipped.

Nothing is half-written: the folder is assembled under a temporary name beside ``OUT_DIR`` and renamed at the
end. The result is a run folder that ``python -m amp_jax.evaluate OUT_DIR --out DEMO`` and
``python -m amp_jax.export_policy OUT_DIR`` take.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import sys
import tempfile

from amp_jax.training import params_file, policy_file
from amp_jax.training.checkpoint.digest import verify_step
from amp_jax.training.checkpoint.errors import CheckpointError, CorruptCheckpointError
from amp_jax.training.run_folder import CHECKPOINT_SUBDIR as CHECKPOINT_DIR
from amp_jax.training.run_folder import checkpoint_steps

HEAVY_ITEM = "heavy"
RUN_FILES = ("config.yaml", "metrics.jsonl")
"""Files every packaged run has."""
MAX_METRICS_RECORDS = 2000
"""A packaged ``metrics.jsonl`` keeps about this many of the run's records (a 100 M env step run logs ~8,000)."""
EVALUATION_FILES = ("evaluation.json", "learning_curves.png", "gait_diagram.png", "velocity_tracking.png",
                    "speed_sweep.png", "footfall_phases.png", "command_grid.png", "command_grid_mjx.png", "policy.onnx")
"""Files of the run's evaluation, copied when present."""


def thin_metrics(lines: list[str], max_records: int = MAX_METRICS_RECORDS) -> list[str]:
    """The records of a ``metrics.jsonl`` (one JSON object a line) to ship: all of them up to ``max_records``,
    else those whose iteration is a multiple of ``ceil(len / max_records)``, every record with a ``probe/``
    metric (logged every few iterations only) and the last one; each kept line unchanged, in order."""
    if len(lines) <= max_records:
        return lines
    stride = -(-len(lines) // max_records)

    def kept(record: dict) -> bool:
        return record["iteration"] % stride == 0 or any(name.startswith("probe/") for name in record)

    return [line for i, line in enumerate(lines) if i == len(lines) - 1 or kept(json.loads(line))]


class PackageError(RuntimeError):
    """The run folder lacks what a package needs, or the destination exists."""


def package_run(run_dir: str | pathlib.Path, out_dir: str | pathlib.Path, step: int | None = None) -> pathlib.Path:
    """Writes the package of ``run_dir`` to ``out_dir`` (module docstring) and returns ``out_dir``.

    Raises:
      PackageError: ``out_dir`` exists, or ``run_dir`` lacks ``config.yaml``, ``metrics.jsonl`` or the step,
        or the step's checkpoint files differ from its digest, or its policy file does not read back.
      CheckpointError: a run folder without policy files whose checkpoint does not restore.
    """
    run_dir, out_dir = pathlib.Path(run_dir), pathlib.Path(out_dir)
    if out_dir.exists():
        raise PackageError(f"{out_dir}: exists; expected a new folder (remove it first)")
    for name in RUN_FILES:
        if not (run_dir / name).is_file():
            raise PackageError(f"{run_dir}: no {name}; expected a run folder made by train.py")
    checkpoints, policies = checkpoint_steps(run_dir), policy_file.policy_steps(run_dir)
    steps = sorted(set(checkpoints) | set(policies))
    if not steps:
        raise PackageError(f"{run_dir}: no complete checkpoint in {CHECKPOINT_DIR}/ and no policy file in "
                           f"{policy_file.POLICY_SUBDIR}/")
    step = steps[-1] if step is None else step
    if step not in steps:
        raise PackageError(f"{run_dir}: no complete step {step} (steps: {steps})")
    step_dir = run_dir / CHECKPOINT_DIR / str(step)
    if step in checkpoints:
        try:
            skip = () if (step_dir / HEAVY_ITEM).is_dir() else (HEAVY_ITEM,)
            if not verify_step(step_dir, skip=skip):
                print(f"package_run: {step_dir} has no digest.json: shipped unverified", file=sys.stderr)
        except CorruptCheckpointError as err:
            raise PackageError(f"{err}; not packaged") from None
    if step in policies:
        try:
            policy_file.read_policy_file(policy_file.policy_path(run_dir, step))
        except params_file.ParamsFileError as err:
            raise PackageError(f"{err}; not packaged") from None

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes the folder private; a package is for sharing
    try:
        metrics = (run_dir / "metrics.jsonl").read_text().splitlines(keepends=True)
        (staging / "metrics.jsonl").write_text("".join(thin_metrics(metrics)))
        for name in ("config.yaml", *EVALUATION_FILES):
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, staging / name)
        if step in checkpoints:
            shutil.copytree(step_dir, staging / CHECKPOINT_DIR / str(step),
                            ignore=lambda folder, names: [HEAVY_ITEM] if pathlib.Path(folder).name == str(step) else [])
        if step in policies:
            policy_file.policy_path(staging, step).parent.mkdir()
            shutil.copy2(policy_file.policy_path(run_dir, step), policy_file.policy_path(staging, step))
        else:  # a run folder written before policy files: the package gets one from the checkpoint
            from amp_jax.training import run_folder

            cfg = run_folder.load_run_config(run_dir)
            restored = run_folder.restore_checkpoint(run_dir, step, cfg)
            policy_file.write_policy_file(staging, step, restored.state, cfg)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amp_jax.training.package_run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=pathlib.Path, metavar="RUN_DIR")
    parser.add_argument("out_dir", type=pathlib.Path, metavar="OUT_DIR")
    parser.add_argument("--step", type=int, help="the step to ship (default: the newest)")
    args = parser.parse_args(argv)
    try:
        out = package_run(args.run_dir, args.out_dir, args.step)
    except (PackageError, CheckpointError, OSError) as err:
        print(f"package_run: {err}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
