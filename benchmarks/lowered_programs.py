"""Hashes of the training iteration's lowered programs, to show that a refactor changed no program.

``python benchmarks/lowered_programs.py [--out DIR]`` lowers (traces, without compiling) ``init_fn`` and
``train_step`` of the tiny A1 config in three variants (AMP; ``a1_amp_cpu`` + ``complex_reward``, AMP off;
``symmetry.yaml`` with PPO augmentation and the mirror loss) on every device JAX sees, and prints a short hash of
each program's StableHLO text (no source locations). Run it on two commits, and with
``XLA_FLAGS=--xla_force_host_platform_device_count=2`` for the split step: equal hashes mean equal executables,
so the change cannot have moved the iteration's speed or numbers. ``--out`` also writes the texts (to diff).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib

import jax

from amp_jax.config import load_config
from amp_jax.training import run_setup

TINY = ["env.num_envs=4", "ppo.num_steps=4", "ppo.num_minibatches=2", "networks.actor_hidden=[32, 32]",
        "networks.critic_hidden=[32, 32]", "networks.disc_hidden=[32]", "amp.replay_buffer_size=256"]
VARIANTS = {
    "amp": (["a1_trot", "cpu.yaml"], []),
    "complex_reward": (["a1_amp_cpu", "complex_reward.yaml"], []),
    "symmetry": (["a1_trot", "cpu.yaml", "symmetry.yaml"],
                 ["symmetry.ppo_augmentation=true", "symmetry.mirror_loss_coef=0.5"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, help="also write each program's text here")
    args = parser.parse_args()
    devices = jax.device_count()
    hashes = {}
    for name, (configs, extra) in VARIANTS.items():
        cfg = load_config(configs, TINY + extra + [f"train.num_devices={devices}"])
        setup = run_setup.build(cfg, probe=False)
        state = jax.eval_shape(setup.init_fn, jax.random.key(0))
        programs = (("init_fn", setup.init_fn, jax.random.key(0)), ("train_step", setup.train_step, state))
        for fn_name, fn, arg in programs:
            text = fn.lower(arg).as_text()
            key = f"{name}/{fn_name}/{devices} device{'s' if devices > 1 else ''}"
            hashes[key] = hashlib.sha256(text.encode()).hexdigest()[:16]
            if args.out:
                args.out.mkdir(parents=True, exist_ok=True)
                (args.out / f"{name}_{fn_name}_{devices}.mlir").write_text(text)
    print(json.dumps(hashes, indent=1))


if __name__ == "__main__":
    main()
