"""Turns the files a GPU run brought back (``benchmarks/gpu/run.sh``) into a run folder on this machine.

``python -m amp_jax.training.import_gpu_run FILES_DIR RUN_DIR`` reads ``FILES_DIR/policy_params.npz`` (the trained
parameters, AMP normaliser and config: a policy file, :mod:`amp_jax.training.policy_file`) and
``FILES_DIR/metrics.jsonl`` and writes ``RUN_DIR`` (which must be new or empty) for evaluation and export:

- ``config.yaml`` (the GPU run's resolved config) and ``metrics.jsonl`` (its learning curves' data);
- ``policies/<iteration>.npz``, the parameters file itself, once every leaf was read back against its config;
- ``gpu_summary.json`` and ``gpu_run.log``, copied when present.

The folder holds no checkpoint (the GPU run's optimiser moments, env state and replay buffer stay behind), so it
evaluates, exports and packages but does not resume. Then ``python -m amp_jax.evaluate RUN_DIR`` and
``python -m amp_jax.export_policy RUN_DIR`` take it. Nothing here builds the trainer.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys

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


def import_gpu_run(files_dir: str | pathlib.Path, run_dir: str | pathlib.Path) -> pathlib.Path:
    """Writes the run folder of ``files_dir`` to ``run_dir`` (module docstring) and returns ``run_dir``.

    Raises:
      GpuRunImportError: ``files_dir`` lacks the params file or ``metrics.jsonl``, or ``run_dir`` is not empty.
      amp_jax.training.params_file.ParamsFileError: the params file is unreadable or does not fit its config.
    """
    from amp_jax import config as config_lib
    from amp_jax.training import policy_file

    files_dir, run_dir = pathlib.Path(files_dir), pathlib.Path(run_dir)
    for name in (PARAMS_FILE, METRICS_FILE):
        if not (files_dir / name).is_file():
            raise GpuRunImportError(f"{files_dir}: no {name} (expected the files benchmarks/gpu/run.sh writes to "
                                    "its output folder)")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise GpuRunImportError(f"{run_dir}: exists and is not empty; expected a new folder")
    saved = policy_file.read_policy_file(files_dir / PARAMS_FILE)

    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        (run_dir / "config.yaml").write_text(config_lib.dump_yaml(saved.cfg))
        shutil.copy2(files_dir / METRICS_FILE, run_dir / METRICS_FILE)
        for name, copied_name in COPIED_FILES.items():
            if (files_dir / name).is_file():
                shutil.copy2(files_dir / name, run_dir / copied_name)
        destination = policy_file.policy_path(run_dir, saved.step)
        destination.parent.mkdir()
        shutil.copy2(files_dir / PARAMS_FILE, destination)
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
