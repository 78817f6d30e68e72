"""Every metric and state leaf of three training iterations of the tiny A1 configs, to show that a change kept the
numbers (bit for bit, or to which rounding).

``python benchmarks/iteration_results.py --out old.npz`` on one commit and ``--out new.npz`` on another (each on
every device JAX sees: add ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` for the split step), then
``python benchmarks/iteration_results.py --compare old.npz new.npz`` prints how many arrays differ and by how much.
The configs are :mod:`lowered_programs`' three variants (AMP; the complex reward, AMP off; symmetry).
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np


def record(out: pathlib.Path) -> None:
    import jax
    from lowered_programs import TINY, VARIANTS

    from amp_jax.config import load_config
    from amp_jax.training import run_setup

    arrays = {}
    devices = jax.device_count()
    for name, (configs, extra) in VARIANTS.items():
        cfg = load_config(configs, TINY + extra + [f"train.num_devices={devices}"])
        setup = run_setup.build(cfg, probe=False)
        state = setup.init_fn(jax.random.key(0))
        for it in range(3):
            state, metrics = setup.train_step(state)
            arrays.update({f"{name}/metrics{it}/{k}": np.asarray(v) for k, v in metrics.items()})
        for path, leaf in jax.tree_util.tree_leaves_with_path(setup.devices.to_checkpoint(state)):
            if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                leaf = jax.random.key_data(leaf)
            arrays[f"{name}/state/{jax.tree_util.keystr(path)}"] = np.asarray(leaf)
    np.savez(out, **arrays)
    print(f"{len(arrays)} arrays of {devices} device(s) written to {out}")


def compare(a_path: pathlib.Path, b_path: pathlib.Path) -> None:
    a, b = np.load(a_path), np.load(b_path)
    only = sorted(set(a.files) ^ set(b.files))
    common = sorted(set(a.files) & set(b.files))
    differ = [k for k in common if not np.array_equal(a[k], b[k], equal_nan=True)]
    print(f"{len(common)} arrays in both, {len(differ)} differ; only in one: {only or 'none'}")
    for key in differ:
        x, y = a[key].astype(np.float64), b[key].astype(np.float64)
        largest, scale = float(np.max(np.abs(x - y))), max(float(np.max(np.abs(x))), 1e-30)
        print(f"  {key}: max |difference| {largest:.3g} (relative {largest / scale:.2g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", type=pathlib.Path, help="record this commit's arrays here")
    group.add_argument("--compare", type=pathlib.Path, nargs=2, metavar=("A", "B"), help="compare two records")
    args = parser.parse_args()
    if args.out:
        record(args.out)
    else:
        compare(*args.compare)


if __name__ == "__main__":
    main()
