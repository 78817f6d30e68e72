"""``python -m amp_jax.export_policy RUN_DIR [...]``: the command-line name of :mod:`amp_jax.deploy.export_policy`."""

from amp_jax.deploy.export_policy import main

if __name__ == "__main__":
    raise SystemExit(main())
