"""Checkpoint cost at full size: a 1e6 × 86 float32 replay buffer (344 MB) plus actor-critic-sized parameters.

Usage: python benchmarks/bench_checkpoint.py [--rows 1000000] [--dir /tmp/amp_jax_bench_ckpt]
Prints the time the trainer is blocked by save(), the time until the checkpoint is on disk, the time to
restore the newest (complete) and an older (pruned) step, and the size on disk of each.
"""

import argparse
import pathlib
import shutil
import time

import jax
import jax.numpy as jnp
import optax

from amp_jax.training import checkpoint


def make_state(rows: int, seed: int) -> dict:
    key = jax.random.PRNGKey(seed)
    sizes = [(48, 512), (512, 256), (256, 128), (128, 12), (43 * 2, 1024), (1024, 512), (512, 1)]
    params = {f"layer{i}": jax.random.normal(jax.random.fold_in(key, i), shape) for i, shape in enumerate(sizes)}
    return {"params": params, "opt_state": optax.adam(1e-3).init(params), "key": key,
            "replay_buffer": jax.random.normal(jax.random.fold_in(key, 99), (rows, 86))}


def dir_mb(path: pathlib.Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dir", default="/tmp/amp_jax_bench_ckpt")
    args = parser.parse_args()
    run = pathlib.Path(args.dir)
    shutil.rmtree(run, ignore_errors=True)
    states = [jax.block_until_ready(make_state(args.rows, s)) for s in (1, 2)]
    with checkpoint.RunCheckpointer(run, keep=5) as ckpt:
        for step, state in zip((100, 200), states):
            t0 = time.perf_counter()
            ckpt.save(step, state)
            t1 = time.perf_counter()
            ckpt.wait()
            t2 = time.perf_counter()
            print(f"step {step}: save() blocked {t1 - t0:.2f} s, on disk after {t2 - t0:.2f} s")
        target = jax.block_until_ready(make_state(args.rows, 0))
        for step in (200, 100):
            t0 = time.perf_counter()
            restored = ckpt.restore(target, step)
            jax.block_until_ready(restored.state)
            print(f"restore step {step} (missing {restored.missing or 'nothing'}): {time.perf_counter() - t0:.2f} s, "
                  f"{dir_mb(run / 'checkpoints' / str(step)):.1f} MB on disk")
    assert bool(jnp.array_equal(restored.state["params"]["layer0"], states[0]["params"]["layer0"]))
    shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    main()
