"""What one all-reduce costs between the training processes of a CPU host (gloo over the loopback).

    python benchmarks/bench_collectives.py            # 2 processes, one CPU device each
    python benchmarks/bench_collectives.py --processes 4

Each process holds one CPU device; a jitted ``shard_map`` sums a float32 vector of each size over the mesh
(``jax.lax.psum``), ``--calls`` times in a row inside one ``lax.fori_loop``, so the figure is the all-reduce itself
without a dispatch per call. Process 0 prints one JSON line: microseconds per all-reduce by vector size. The AMP-PPO
update does two per optimiser step (:func:`amp_jax.agents.distributed.reduce_and_merge`): one of the gradients,
loss terms and AMP feature sums (~0.3 M floats for the CPU recipe's networks), one of 2 × 43 squared deviations.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--calls", type=int, default=200, help="all-reduces per timed call")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 86, 10_000, 300_000, 1_000_000])
    args = parser.parse_args()

    from amp_jax.training import processes

    if processes.join_from_environment() is None:
        sys.exit(processes.launch([sys.executable, os.path.abspath(__file__), *sys.argv[1:]], args.processes))

    import jax
    import numpy as np
    from jax.sharding import PartitionSpec as P

    from amp_jax.agents import distributed

    mesh = distributed.make_mesh()
    results = {}
    for size in args.sizes:
        def reduce_many(x):
            return jax.lax.fori_loop(0, args.calls, lambda _, v: jax.lax.psum(v, distributed.AXIS) * 0.5, x)

        fn = jax.jit(jax.shard_map(reduce_many, mesh=mesh, in_specs=P(distributed.AXIS),
                                   out_specs=P(distributed.AXIS), check_vma=False))
        x = jax.make_array_from_process_local_data(
            jax.sharding.NamedSharding(mesh, P(distributed.AXIS)), np.ones((size,), np.float32))
        jax.block_until_ready(fn(x))
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            jax.block_until_ready(fn(x))
            best = min(best, (time.perf_counter() - start) / args.calls)
        results[size] = round(best * 1e6, 1)
    if jax.process_index() == 0:
        print(json.dumps({"processes": jax.process_count(), "microseconds_per_all_reduce_by_floats": results,
                          "pjrt_nproc": os.environ.get("PJRT_NPROC", ""),
                          "load_average_1min": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
