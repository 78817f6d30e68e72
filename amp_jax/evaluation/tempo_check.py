"""Does a run's discriminator know the clips' tempo? Its mean score on each clip replayed at other rates.

Each clip of the run is replayed at rates 0.5–3 (× its own; :func:`amp_jax.motion.library.replayed_transitions`:
one control step of the faster replay, velocities scaled with it) and scored by the run's discriminator through
its AMP normaliser (:func:`amp_jax.analysis.style.replay_rate_scores`). A prior that knows the clips' tempo
scores rate 1 highest; one that scores faster replays higher rewards a policy for a faster cadence than the
clips', whatever its style reward's weight.

``python -m amp_jax.evaluation.tempo_check RUN_DIR [--step N] [--rates R ...] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

import numpy as np

from amp_jax.analysis import style


def tempo_check(run_dir: str | pathlib.Path, step: int | None = None,
                rates: tuple[float, ...] = style.REPLAY_RATES) -> dict[str, Any]:
    """The report: per clip the mean ``D`` at each rate, the weight-averaged row, the rate each scores highest."""
    from amp_jax.training.run_folder import load_run_policy

    policy = load_run_policy(run_dir, step)
    if not policy.cfg.amp.enabled or policy.amp_normalizer is None:
        raise ValueError(f"{run_dir}: the run has no discriminator (amp.enabled: false)")
    motion = style.run_motion_library(policy.cfg)
    scores = style.replay_rate_scores(policy.networks, policy.params, policy.amp_normalizer, policy.cfg, motion,
                                      rates)
    weights = np.asarray(motion.weights, np.float64)
    mean = weights @ scores / weights.sum()
    return {"run": str(run_dir), "step": policy.step, "rates": list(rates),
            "clips": {name: [float(x) for x in row] for name, row in zip(motion.names, scores)},
            "weighted_mean": [float(x) for x in mean], "best_rate": float(rates[int(np.argmax(mean))])}


def format_report(report: dict[str, Any]) -> str:
    rates = report["rates"]
    width = max(len(name) for name in [*report["clips"], "all (by weight)"])
    lines = [f"{report['run']} step {report['step']}: mean D on each clip replayed at a rate (× its own)",
             " " * width + "".join(f"{r:>8g}x" for r in rates)]
    for name, row in [*report["clips"].items(), ("all (by weight)", report["weighted_mean"])]:
        lines.append(f"{name:<{width}}" + "".join(f"{x:>+9.2f}" for x in row))
    best = report["best_rate"]
    lines.append(f"highest at {best:g}x: " + ("the clips' own tempo" if best == 1.0 else
                                              "faster replays score higher, so the style reward favours a faster "
                                              "cadence" if best > 1.0 else "slower replays score higher"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amp_jax.evaluation.tempo_check",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=pathlib.Path, metavar="RUN_DIR", help="a run folder or a packaged run")
    parser.add_argument("--step", type=int, help="checkpoint step (default: the newest)")
    parser.add_argument("--rates", type=float, nargs="+", default=list(style.REPLAY_RATES),
                        help="replay rates, each in (0, 10]")
    parser.add_argument("--json", type=pathlib.Path, help="also write the report here")
    args = parser.parse_args(argv)
    if not all(0 < r <= 10 for r in args.rates):
        parser.error(f"--rates {args.rates}: expected rates in (0, 10]")
    from amp_jax.config import ConfigError
    from amp_jax.training.checkpoint import CheckpointError
    from amp_jax.training.params_file import ParamsFileError
    from amp_jax.training.run_folder import RunFolderError

    try:
        report = tempo_check(args.run_dir, args.step, tuple(args.rates))
    except (RunFolderError, CheckpointError, ParamsFileError, ConfigError, ValueError) as err:
        print(f"tempo_check: {err}", file=sys.stderr)
        return 1
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
