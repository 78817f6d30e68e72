"""What a resume costs on top of the run it continues: compiling is paid once per process.

Trains a config for ``--iterations`` in a new run folder, then half as many in a second folder and resumes that one
to the end, all in this process, and prints one JSON line of the wall time of each call and the number of
train-step compilations each one triggered, e.g.:

    python benchmarks/bench_resume.py --set env.num_envs=4 --set ppo.num_steps=4 --set ppo.num_minibatches=2

A fresh process compiles the iteration in its first call; the second call (a config that differs only in the host
loop's fields) and the resume reuse it (:func:`amp_jax.training.trainer.build`), so they cost their iterations and
checkpoint I/O only. Run it on an idle machine, or say how loaded it was.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time

import jax


class _CompileCounter(logging.Handler):
    """Counts JAX's "Compiling jit(train_step)" log records."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Compiling jit(train_step)"):
            self.count += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", default=[], help="config file(s), as train.py takes them")
    parser.add_argument("--set", action="append", default=[], dest="overrides", help="KEY=VALUE overrides")
    parser.add_argument("--iterations", type=int, default=4, help="iterations of the straight run (even)")
    args = parser.parse_args()

    from amp_jax import config as config_lib
    from amp_jax.training import trainer

    cfg = config_lib.load_config(args.config or ["a1_trot", "cpu.yaml"],
                                 [*args.overrides, f"train.num_iterations={args.iterations}", "train.probe_interval=0",
                                  "train.checkpoint_interval=1"])
    counter = _CompileCounter()
    logging.getLogger("jax._src.interpreters.pxla").addHandler(counter)
    jax.config.update("jax_log_compiles", True)
    logging.getLogger("jax").propagate = False  # counted, not printed
    root = tempfile.mkdtemp(prefix="bench_resume_")
    calls = (("straight", dict(run_dir=f"{root}/a")),
             ("first_half", dict(run_dir=f"{root}/b", num_iterations=args.iterations // 2)),
             ("resume", dict(run_dir=f"{root}/b", resume=True)))
    result = {"backend": jax.default_backend(), "iterations": args.iterations}
    for name, kwargs in calls:
        before, start = counter.count, time.perf_counter()
        trainer.train(cfg, progress=False, **kwargs)
        result[f"{name}_s"] = round(time.perf_counter() - start, 2)
        result[f"{name}_train_step_compiles"] = counter.count - before
    print(json.dumps(result))


if __name__ == "__main__":
    main()
