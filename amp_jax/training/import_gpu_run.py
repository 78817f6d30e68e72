"""Turns the files a GPU run brought back (``benchmarks/gpu/run.sh``) into a run folder on this machine.

``python -m amp_jax.training.import_gpu_run FILES_DIR RUN_DIR`` reads ``FILES_DIR/policy_params.npz`` (the trained
parameters, AMP normaliser and config: :mod:`amp_jax.training.params_file`) and ``FILES_DIR/metrics.jsonl`` and writes
``RUN_DIR`` (which must be new or empty) as the trainer would have left it for evaluation:

- ``config.yaml`` (the GPU run's resolved config) and ``metrics.jsonl`` (its learning curves' data);
- ``checkpoints/<iteration>/``, an orbax checkpoint of the run's train-state shape: parameters, normaliser,
  learning rate and iteration are the GPU run's; the optimiser moments, env state and PRNG key are zero-filled
  placeholders and the replay buffer is left out (the light checkpoint of a packaged run). It evaluates and
  exports; resuming training from it would start from those placeholders;
- ``gpu_summary.json`` and ``gpu_run.log``, copied when present.

Then ``python -m amp_jax.evaluate RUN_DIR`` and ``python -m amp_jax.export_policy RUN_DIR`` take it.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import shutil
import sys
from typing import Any

PARAMS_FILE = "policy_params.npz"
"""The parameters file a GPU run writes (:mod:`amp_jax.training.params_file`)."""
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
"""The GPU run's summary (versions, throughputs, wall and compile times); copied as ``gpu_summary.json``."""
LOG_FILE = "gpu_run.log"
COPIED_FILES = {SUMMARY_FILE: "gpu_summary.json", LOG_FILE: LOG_FILE}
"""Optional files of ``FILES_DIR`` → their name in the run folder."""


class GpuRunImportError(RuntimeError):
    """The files are incomplete, or the run folder exists with something in it."""


def placeholder_state(target: Any, seed: int = 0) -> Any:
    """A concrete train state of the shapes and dtypes of ``target`` (``jax.eval_shape`` of the run's
    ``init_fn``): zeros, and PRNG keys split from ``seed``."""
    import jax
    import numpy as np

    def fill(leaf):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            keys = jax.random.split(jax.random.key(seed), math.prod(leaf.shape)).reshape(leaf.shape)
            if keys.dtype != leaf.dtype:
                raise GpuRunImportError(f"the run's PRNG keys are of type {leaf.dtype}, expected {keys.dtype}")
            return keys
        return np.zeros(leaf.shape, leaf.dtype)

    return jax.tree.map(fill, target)


def import_gpu_run(files_dir: str | pathlib.Path, run_dir: str | pathlib.Path) -> pathlib.Path:
    """Writes the run folder of ``files_dir`` to ``run_dir`` (module docstring) and returns ``run_dir``.

    Raises:
      GpuRunImportError: ``files_dir`` lacks the params file or ``metrics.jsonl``, or ``run_dir`` is not empty.
      amp_jax.training.params_file.ParamsFileError: the params file is unreadable or does not fit its config.
    """
    import jax
    import numpy as np

    from amp_jax import config as config_lib
    from amp_jax.training import params_file, trainer
    from amp_jax.training.checkpoint import CHECKPOINT_SUBDIR, RunCheckpointer

    files_dir, run_dir = pathlib.Path(files_dir), pathlib.Path(run_dir)
    for name in (PARAMS_FILE, METRICS_FILE):
        if not (files_dir / name).is_file():
            raise GpuRunImportError(f"{files_dir}: no {name} (expected the files benchmarks/gpu/run.sh writes to "
                                    "its output folder)")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise GpuRunImportError(f"{run_dir}: exists and is not empty; expected a new folder")
    saved = params_file.read_params_file(files_dir / PARAMS_FILE)
    setup = trainer.build(saved.cfg, probe=False)
    target = jax.eval_shape(setup.init_fn, jax.random.key(0))
    state = params_file.fill_state(placeholder_state(target), saved.arrays, str(files_dir / PARAMS_FILE))
    # The replay buffer goes to the checkpoint's heavy item, which is removed below: a stand-in keeps it small.
    state = state.replace(replay_buffer=np.zeros((1,), np.float32))

    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        (run_dir / "config.yaml").write_text(config_lib.dump_yaml(saved.cfg))
        shutil.copy2(files_dir / METRICS_FILE, run_dir / METRICS_FILE)
        for name, copied_name in COPIED_FILES.items():
            if (files_dir / name).is_file():
                shutil.copy2(files_dir / name, run_dir / copied_name)
        with RunCheckpointer(run_dir, keep=saved.cfg.train.keep_checkpoints, heavy_keys=trainer.HEAVY_KEYS,
                             async_save=False) as checkpointer:
            checkpointer.save(saved.iteration, state, config_dict=config_lib.to_dict(saved.cfg))
        shutil.rmtree(run_dir / CHECKPOINT_SUBDIR / str(saved.iteration) / "heavy")
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return run_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amp_jax.training.import_gpu_run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files_dir", type=pathlib.Path, metavar="FILES_DIR",
                        help=f"the folder of the GPU run's files ({PARAMS_FILE}, {METRICS_FILE}, ...)")
    parser.add_argument("run_dir", type=pathlib.Path, metavar="RUN_DIR", help="the run folder to write (new)")
    args = parser.parse_args(argv)
    from amp_jax import config as config_lib
    from amp_jax.training import params_file

    try:
        run_dir = import_gpu_run(args.files_dir, args.run_dir)
    except (GpuRunImportError, params_file.ParamsFileError, config_lib.ConfigError) as err:
        print(f"import_gpu_run: {err}", file=sys.stderr)
        return 1
    print(f"wrote {run_dir}; next: python -m amp_jax.evaluate {run_dir}  (or python -m amp_jax.export_policy "
          f"{run_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
