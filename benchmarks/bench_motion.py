"""Expert AMP transitions per second: the vmapped library against a NumPy transcription of the reference.

The reference samples per call with NumPy: clip indices by weight, times, then for every clip a masked gather of
the two neighbouring frames and a per-clip interpolation (slerp included, though the AMP features do not use
the quaternion). Run: ``python benchmarks/bench_motion.py [--sizes 1000 10000 100000 1000000]``.

Each jitted call returns fresh ``[batch, 43]`` arrays. With glibc's default malloc, outputs above its mmap
threshold are mapped and unmapped on every call, so a call also pays the page faults of fresh memory (3-4x the
sampling itself at 10^5 on a 2-core CPU). Inside the training step XLA reuses its own buffers, so by default the
script re-runs itself with glibc told to keep freed memory (``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``);
``--system-malloc`` measures the per-call figure with the defaults. The cap of glibc's threshold (32 MiB) still
maps the 172 MB outputs of a 10^6 batch afresh on each call.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import time

import jax
import numpy as np

from amp_jax.config import load_config
from amp_jax.motion import library, loader

DT_AMP = 0.03
_MALLOC_KEEP = {"MALLOC_MMAP_THRESHOLD_": str(2**32), "MALLOC_TRIM_THRESHOLD_": str(2**32)}


class ReferenceSampler:
    """NumPy transcription of the reference's batched expert sampling (its time-to-frame mapping fixed)."""

    def __init__(self, clips):
        self.frames = [c.frames for c in clips]
        self.frame_duration = np.array([c.frame_duration for c in clips])
        self.num_frames = np.array([c.num_frames for c in clips])
        self.duration = (self.num_frames - 1) * self.frame_duration
        w = np.array([c.weight for c in clips])
        self.weights = w / w.sum()
        self.rng = np.random.default_rng(0)

    def _frames_at(self, clip, times):
        out = np.empty((len(clip), 61))
        for c in range(len(self.frames)):  # the reference loops over clips with masks
            mask = clip == c
            position = times[mask] / self.frame_duration[c]
            i0 = np.clip(np.floor(position).astype(int), 0, self.num_frames[c] - 2)
            alpha = (position - i0)[:, None]
            f0, f1 = self.frames[c][i0], self.frames[c][i0 + 1]
            out[mask] = (1 - alpha) * f0 + alpha * f1
            q0, q1 = f0[:, 3:7], f1[:, 3:7]
            dot = np.sum(q0 * q1, axis=1, keepdims=True)
            q1 = np.where(dot < 0, -q1, q1)
            theta = np.arccos(np.clip(np.abs(dot), 0, 1))
            s = np.maximum(np.sin(theta), 1e-6)
            out[mask, 3:7] = (np.sin((1 - alpha) * theta) * q0 + np.sin(alpha * theta) * q1) / s
        return out

    def sample(self, n):
        clip = self.rng.choice(len(self.frames), size=n, p=self.weights)
        times = self.rng.uniform(0, 1, n) * (self.duration[clip] - DT_AMP)
        s = self._frames_at(clip, times)
        s_next = self._frames_at(clip, times + DT_AMP)
        features = lambda f: np.concatenate([f[:, 7:49], f[:, 2:3]], axis=1)  # noqa: E731
        return features(s), features(s_next)


def rate(fn, n, repeats=15, warmup_seconds=1.0):
    """Samples per second of the fastest of ``repeats`` timed calls, after warming up for ``warmup_seconds``
    (compilation, then the allocator settling: the first calls on fresh output buffers ran 2-3x slower). On a
    shared machine the minimum is the reading least disturbed by other work."""
    start = time.perf_counter()
    while time.perf_counter() - start < warmup_seconds:
        fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return n / min(seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--system-malloc", action="store_true",
                        help="keep glibc's default malloc (outputs mapped afresh on every call)")
    args = parser.parse_args()
    if not args.system_malloc and _MALLOC_KEEP.keys() - os.environ.keys():
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **_MALLOC_KEEP})
    cfg = load_config("a1_amp")
    clips = loader.load_clips(cfg.motion.resolved_files(), min_duration=DT_AMP)
    lib = library.MotionLibrary.from_clips(clips)
    reference = ReferenceSampler(clips)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} "
          f"on {jax.default_backend()}; all six clips; "
          f"{'system malloc' if args.system_malloc else 'malloc keeps freed memory'}")
    print(f"{'batch':>10} {'amp_jax M/s':>12} {'NumPy ref M/s':>14} {'ratio':>7}")
    sample = jax.jit(library.sample_expert_transitions, static_argnums=(2, 3))
    for n in args.sizes:
        keys = itertools.cycle(list(jax.random.split(jax.random.key(0), 64)))
        ours = rate(lambda n=n, keys=keys: jax.block_until_ready(sample(lib, next(keys), n, DT_AMP)), n)
        theirs = rate(lambda n=n: reference.sample(n), n)
        print(f"{n:>10} {ours / 1e6:>12.2f} {theirs / 1e6:>14.2f} {ours / theirs:>7.1f}")


if __name__ == "__main__":
    main()
