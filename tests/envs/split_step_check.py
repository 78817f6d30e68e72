"""A subprocess check: the A1 training env's step at ``N`` envs split over ``D`` CPU devices finishes.

``python tests/envs/split_step_check.py N D`` forces ``D`` host devices in this process (unless ``XLA_FLAGS``
already does), or, started by :func:`amp_jax.training.processes.launch` as ``D`` processes, joins them (one device
each); it steps the training env (domain randomisation, auto-reset, RSI) twice under ``shard_map`` and process 0
prints ``done`` with the seconds it took. Run under a timeout: before the project sized XLA's CPU thread pool,
the batched LAPACK kernels of MJX's constraint solver could take every pool thread at once on two devices and wait
for each other forever.
"""

import os
import sys
import time

num_envs, num_devices = int(sys.argv[1]), int(sys.argv[2])
if "AMP_JAX_PROCESS_ID" not in os.environ:
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={num_devices}")

import amp_jax  # noqa: E402,F401  (sizes the thread pool before JAX starts)
from amp_jax.training import processes  # noqa: E402

processes.join_from_environment()
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from amp_jax import config as config_lib  # noqa: E402
from amp_jax.agents import distributed  # noqa: E402
from amp_jax.envs.wrappers import make_amp_training_env  # noqa: E402
from amp_jax.motion.loader import load_motion_library  # noqa: E402

cfg = config_lib.load_config(["a1_trot_cpu"], [f"env.num_envs={num_envs}"])
motion = load_motion_library(cfg.motion.resolved_files(), dt_amp=cfg.env.control_dt)
mesh = distributed.make_mesh(num_devices)
env = make_amp_training_env(cfg, motion, jax.random.key(0), num_devices)
split = NamedSharding(mesh, P(distributed.AXIS))
state = jax.jit(env.reset, out_shardings=split)(jax.random.split(jax.random.key(1), num_envs))


def two_steps(s):
    local = distributed.localize_env(env, num_envs // num_devices)
    actions = jnp.zeros((num_envs // num_devices, 12))
    return jax.lax.scan(lambda c, _: (local.step(c, actions), None), s, None, length=2)[0]


step = jax.jit(jax.shard_map(two_steps, mesh=mesh, in_specs=P(distributed.AXIS), out_specs=P(distributed.AXIS),
                             check_vma=False))
start = time.perf_counter()
for _ in range(3):
    state = step(state)
jax.block_until_ready(state)
if jax.process_index() == 0:
    print(f"done {time.perf_counter() - start:.1f} s on {jax.process_count()} processes, {jax.device_count()} devices",
          flush=True)
