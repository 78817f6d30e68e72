"""``python -m amp_jax.evaluate RUN_DIR [...]``: the command-line name of :mod:`amp_jax.evaluation.evaluate`."""

from amp_jax.evaluation.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
