"""Train an A1 with AMP-PPO: ``python train.py --config a1_trot.yaml [--config cpu.yaml] [--set key=value ...]``.

Resume an interrupted run with ``python train.py --resume runs/<run>`` (its saved config, plus any --set): from
its newest intact checkpoint (a corrupt newer one is skipped and set aside, with a message), or from ``--step N``.

On a multi-core CPU the run is split over one process per core where it pays (``train.processes``, 0 =
automatic; ``--processes 1`` keeps it in this process): this command starts them, forwards signals to them, and
evaluates the run once they have finished (``amp_jax/training/processes.py``).

Several hosts (a TPU pod slice, GPU nodes): start the same command on every host with ``--distributed
--run-dir <shared folder>``; ``jax.distributed.initialize`` finds the other processes (TPU, SLURM, Open MPI,
or JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID) and the run uses every host's devices.
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import signal
import sys

from amp_jax import config as config_lib


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", default=[], metavar="YAML",
                        help="config file or name in configs/ (repeat to layer files, later over earlier)")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                        help="override one field, e.g. --set ppo.learning_rate=3e-4 (repeatable)")
    parser.add_argument("--resume", type=pathlib.Path, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its newest intact checkpoint")
    parser.add_argument("--step", type=int, metavar="N",
                        help="with --resume: start from checkpoint N (newer ones are moved to RUN_DIR/set_aside/)")
    parser.add_argument("--run-dir", type=pathlib.Path, help="folder of a new run (default: runs/<config>-<time>)")
    parser.add_argument("--minutes", type=float, metavar="M",
                        help="wall-clock budget: stop cleanly after M minutes (train.time_limit_s = 60·M)")
    parser.add_argument("--no-eval", action="store_true",
                        help="skip the evaluation (plots, video, ONNX export) after training")
    parser.add_argument("--quiet", action="store_true", help="no live progress line")
    parser.add_argument("--processes", type=int, metavar="N",
                        help="training processes on this CPU host (train.processes; default: one per core where "
                             "it pays; 1: this process alone)")
    parser.add_argument("--distributed", action="store_true",
                        help="multi-host: call jax.distributed.initialize() first (same command on every host, "
                             "with the same --run-dir)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("amp_jax").setLevel(logging.INFO)
    logging.getLogger("absl").setLevel(logging.WARNING)
    if args.resume is not None and args.config:
        print("train.py: --resume uses the run's own config.yaml; give changes with --set", file=sys.stderr)
        return 2
    if args.step is not None and args.resume is None:
        print("train.py: --step N goes with --resume RUN_DIR (the checkpoint of that run to start from)",
              file=sys.stderr)
        return 2
    if args.minutes is not None:
        if not args.minutes > 0:
            print(f"train.py: --minutes {args.minutes}: expected a positive number of minutes", file=sys.stderr)
            return 2
        args.overrides.append(f"train.time_limit_s={60.0 * args.minutes}")
    if args.processes is not None:
        args.overrides.append(f"train.processes={args.processes}")
    try:
        if args.resume is not None:
            cfg = config_lib.load_config(args.resume / "config.yaml", args.overrides)
        else:
            cfg = config_lib.load_config(args.config or ["a1_trot"], args.overrides)
    except config_lib.ConfigError as err:
        print(f"train.py: config error: {err}", file=sys.stderr)
        return 2

    from amp_jax.training import processes

    role = processes.role_from_environment()
    if args.distributed:
        if args.resume is None and args.run_dir is None:
            print("train.py: --distributed needs --run-dir (the same folder on every host)", file=sys.stderr)
            return 2
        import jax

        jax.distributed.initialize()  # before anything touches a device
    elif role is not None:
        processes.join_from_environment()  # one of the processes this command started on a CPU host
        if role.process_id > 0:  # process 0 reports the run (its warnings too); the others only their errors
            logging.getLogger("amp_jax").setLevel(logging.ERROR)
    else:
        try:
            count = processes.process_count(cfg)
        except config_lib.ConfigError as err:
            print(f"train.py: config error: {err}", file=sys.stderr)
            return 2
        if count > 1:
            return _launch(args, argv, cfg, count)

    from amp_jax.motion.loader import MotionDataError
    from amp_jax.training import stop_signals, trainer  # imports JAX: after the config is known to be good
    from amp_jax.training.checkpoint import CheckpointError

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, stop_signals.handle_stop_signal)
    stop_signals.watch_stop_signals()
    name = _run_name(args)
    try:
        run_dir = trainer.train(cfg, config_name=name, run_dir=args.resume or args.run_dir,
                                resume=args.resume is not None, resume_step=args.step,
                                resume_overrides=args.overrides if args.resume is not None else (),
                                progress=not args.quiet)
    except stop_signals.StopSignal as err:
        if role is None or role.process_id == 0:
            print(f"train.py: stopped by {err.reason}; resume with --resume RUN_DIR", file=sys.stderr)
        return err.exit_code
    except (trainer.TrainingDivergedError, CheckpointError, config_lib.ConfigError,
            MotionDataError) as err:
        if role is None or role.process_id == 0:
            print(f"train.py: {err}", file=sys.stderr)
        return 1
    import jax

    if jax.process_index() != 0 or role is not None:  # evaluation and export: process 0 only, or the launcher
        return 0
    print(f"run folder: {run_dir}")
    return 0 if args.no_eval else _evaluate(run_dir)


def _evaluate(run_dir: pathlib.Path) -> int:
    """The evaluation after training; a signal during it ends it with the signal's code and one line (the run
    folder already holds the final checkpoint)."""
    from amp_jax.training import stop_signals

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, stop_signals.handle_stop_signal)
    try:
        from amp_jax.evaluation import evaluate

        evaluate.finish_run(run_dir)
    except stop_signals.StopSignal as err:
        print(f"train.py: stopped by {err.reason} during the evaluation; the run's final checkpoint is saved: "
              f"evaluate it with python -m amp_jax.evaluate {run_dir}", file=sys.stderr)
        return err.exit_code
    return 0


def _run_name(args: argparse.Namespace) -> str:
    return "+".join(pathlib.Path(c).stem for c in args.config) or "a1_trot"


def _launch(args: argparse.Namespace, argv: list[str] | None, cfg, count: int) -> int:
    """Trains in ``count`` processes started from this command line (see ``amp_jax/training/processes.py``),
    then evaluates the run here."""
    from amp_jax.training import processes, trainer

    if args.resume is not None:
        run_dir = args.resume
        if not (run_dir / "config.yaml").exists():
            print(f"train.py: {run_dir}: not a run folder (expected config.yaml and checkpoints/ in it)",
                  file=sys.stderr)
            return 1
    else:
        run_dir = args.run_dir or trainer.new_run_dir(cfg, _run_name(args))
    passed = list(sys.argv[1:] if argv is None else argv)
    command = [sys.executable, str(pathlib.Path(__file__).resolve()), *passed, "--no-eval"]
    if args.resume is None and args.run_dir is None:
        command += ["--run-dir", str(run_dir)]
    if not args.quiet:
        print(f"train.py: {count} training processes on this CPU host (--processes 1 for one)", flush=True)
    code = processes.launch(command, count)
    if code != 0:
        return code
    print(f"run folder: {run_dir}")
    return 0 if args.no_eval else _evaluate(run_dir)


if __name__ == "__main__":
    code = main()
    if code > 128:  # stopped by a signal: nothing may keep the process alive now (a dependency's thread)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
