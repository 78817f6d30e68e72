"""Checkpoints: bit-exact round trip, keep-last-K, heavy subtree in the newest only, interrupted saves, errors."""

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from amp_jax.training import checkpoint


@flax.struct.dataclass
class ToyState:
    """A small stand-in for the trainer's state: every kind of leaf a real one has."""

    params: dict
    opt_state: optax.OptState
    learning_rate: jax.Array
    key: jax.Array
    typed_key: jax.Array
    iteration: jax.Array
    replay_buffer: dict


def make_state(seed: int, buffer_rows: int = 64) -> ToyState:
    key = jax.random.PRNGKey(seed)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    params = {"w": jax.random.normal(k1, (5, 3)), "b": jax.random.normal(k2, (3,))}
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    opt_state = tx.init(params)
    # One real update so the Adam moments and count are non-trivial.
    grads = jax.tree.map(lambda p: p * 0.5 + 0.1, params)
    _, opt_state = tx.update(grads, opt_state, params)
    return ToyState(
        params=params, opt_state=opt_state, learning_rate=jnp.float32(3e-4 * (seed + 1)), key=k3,
        typed_key=jax.random.key(seed + 7), iteration=jnp.int32(10 * seed),
        replay_buffer={"data": jax.random.normal(k4, (buffer_rows, 6)), "insert_index": jnp.int32(seed)},
    )


def leaves_equal_bitwise(a, b) -> bool:
    def as_bits(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.asarray(x)
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    if ta != tb:
        return False
    return all(x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
               for x, y in zip(map(as_bits, la), map(as_bits, lb)))


def test_round_trip_is_bit_exact(tmp_path):
    state = make_state(1)
    config = {"ppo": {"learning_rate": 1e-3}, "env": {"num_envs": 8}}
    assert checkpoint.save(tmp_path, 7, state, config_dict=config, keep=3)
    restored = checkpoint.restore(tmp_path, make_state(0))
    assert restored.step == 7 and restored.complete and restored.missing == ()
    assert restored.config == config
    assert type(restored.state) is ToyState
    assert leaves_equal_bitwise(restored.state, state)
    assert jax.dtypes.issubdtype(restored.state.typed_key.dtype, jax.dtypes.prng_key)
    # The restored optimiser state drives the next update exactly as the original does.
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    grads = jax.tree.map(jnp.ones_like, state.params)
    assert leaves_equal_bitwise(tx.update(grads, restored.state.opt_state, state.params),
                                tx.update(grads, state.opt_state, state.params))
    # Without heavy keys the whole state lives in the 'state' item.
    checkpoint.save(tmp_path / "flat", 1, state, heavy_keys=())
    flat = checkpoint.restore(tmp_path / "flat", make_state(0), heavy_keys=())
    assert flat.complete and leaves_equal_bitwise(flat.state, state)
    assert not (tmp_path / "flat" / "checkpoints" / "1" / "heavy").exists()
    # The restored PRNG keys draw the same numbers.
    np.testing.assert_array_equal(jax.random.normal(restored.state.typed_key, (4,)),
                                  jax.random.normal(state.typed_key, (4,)))


def test_keep_last_k_and_heavy_only_in_newest(tmp_path):
    states = {step: make_state(step) for step in (1, 2, 3, 4, 5)}
    with checkpoint.RunCheckpointer(tmp_path, keep=3) as ckpt:
        for step, state in states.items():
            assert ckpt.save(step, state, config_dict={"step": step})
        assert not ckpt.save(5, states[5])  # an existing step is not written again
        ckpt.wait()
        assert ckpt.steps() == [3, 4, 5]
        assert [ckpt.has_heavy(s) for s in (3, 4, 5)] == [False, False, True]
    on_disk = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert on_disk == [3, 4, 5]
    assert not (tmp_path / "checkpoints" / "4" / "heavy").exists()

    newest = checkpoint.restore(tmp_path, make_state(0))
    assert newest.step == 5 and newest.complete
    assert leaves_equal_bitwise(newest.state, states[5])

    # An older step restores everything but the buffer, keeps the target's buffer and says so.
    target = make_state(0)
    older = checkpoint.restore(tmp_path, target, step=4)
    assert older.step == 4 and not older.complete and older.missing == ("replay_buffer",)
    assert older.config == {"step": 4}
    assert leaves_equal_bitwise(older.state.replace(replay_buffer=None), states[4].replace(replay_buffer=None))
    assert leaves_equal_bitwise(older.state.replay_buffer, target.replay_buffer)


def test_heavy_item_is_most_of_the_bytes(tmp_path):
    """The pruned checkpoints are small: the buffer's bytes live in the newest step only."""
    with checkpoint.RunCheckpointer(tmp_path, keep=2) as ckpt:
        ckpt.save(1, make_state(1, buffer_rows=40_000))
        ckpt.save(2, make_state(2, buffer_rows=40_000))

    def size(p: pathlib.Path) -> int:
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    buffer_bytes = 40_000 * 6 * 4
    assert size(tmp_path / "checkpoints" / "2") > 0.5 * buffer_bytes  # compressed random floats stay large
    assert size(tmp_path / "checkpoints" / "1") < 0.05 * buffer_bytes


def test_errors_name_the_path(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match=r"no such run folder"):
        checkpoint.restore(tmp_path / "nope", make_state(0))
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    with pytest.raises(checkpoint.CheckpointError, match=r"empty/checkpoints: no checkpoint found"):
        checkpoint.restore(tmp_path / "empty", make_state(0))

    run = tmp_path / "run"
    checkpoint.save(run, 3, make_state(3))
    with pytest.raises(checkpoint.CheckpointError, match=r"no checkpoint for step 9 \(available: \[3\]\)"):
        checkpoint.restore(run, make_state(0), step=9)
    # A target with a different tree: names the leaf and the shapes.
    wrong_shape = make_state(0).replace(params={"w": jnp.zeros((5, 4)), "b": jnp.zeros(3)})
    with pytest.raises(checkpoint.CheckpointError, match=r"checkpoints/3/state: .*params/w: checkpoint has "
                                                         r"shape \(5, 3\) dtype float32, expected shape \(5, 4\)"):
        checkpoint.restore(run, wrong_shape)
    extra_leaf = make_state(0).replace(params={**make_state(0).params, "extra": jnp.zeros(2)})
    with pytest.raises(checkpoint.CheckpointError, match=r"params/extra: missing from the checkpoint"):
        checkpoint.restore(run, extra_leaf)
    wrong_dtype = make_state(0).replace(iteration=jnp.float32(0))
    with pytest.raises(checkpoint.CheckpointError, match=r"iteration: checkpoint has shape \(\) dtype int32"):
        checkpoint.restore(run, wrong_dtype)
    with pytest.raises(checkpoint.CheckpointError, match=r"heavy key 'buffer' is not a field"):
        checkpoint.save(run, 4, make_state(4), heavy_keys=("buffer",))


@pytest.mark.parametrize("damage", ["truncate", "garble"])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, damage):
    checkpoint.save(tmp_path, 2, make_state(2, buffer_rows=4096))
    data_files = [f for f in (tmp_path / "checkpoints" / "2" / "state").rglob("*")
                  if f.is_file() and f.stat().st_size > 0]
    assert data_files
    for f in data_files:
        raw = f.read_bytes()
        f.write_bytes(raw[: len(raw) // 3] if damage == "truncate" else bytes(b ^ 0x5A for b in raw))
    with pytest.raises(checkpoint.CheckpointError, match=r"checkpoints/2: the checkpoint is unreadable or corrupt"):
        checkpoint.restore(tmp_path, make_state(0))


def test_leftover_temporary_folder_is_ignored_and_cleaned(tmp_path):
    checkpoint.save(tmp_path, 1, make_state(1))
    # What a save cut short leaves behind: a temporary step folder holding part of the files.
    partial = tmp_path / "checkpoints" / "2.orbax-checkpoint-tmp"
    shutil.copytree(tmp_path / "checkpoints" / "1", partial)
    for f in partial.rglob("*"):
        if f.is_file():
            f.write_bytes(f.read_bytes()[:7])
    assert checkpoint.latest_step(tmp_path) == 1
    restored = checkpoint.restore(tmp_path, make_state(0))
    assert restored.step == 1 and leaves_equal_bitwise(restored.state, make_state(1))
    assert not partial.exists()  # opening the run folder removed it


_KILLED_SAVER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import jax, jax.numpy as jnp
    from amp_jax.training import checkpoint
    from test_checkpoint import make_state
    ckpt = checkpoint.RunCheckpointer({run!r}, keep=3)
    ckpt.save(1, make_state(1))
    ckpt.wait()
    big = make_state(2, buffer_rows=3_000_000)  # ~72 MB: the background write takes a while
    ckpt.save(2, big)
    os.kill(os.getpid(), signal.SIGKILL)  # die while the background save is writing
""")


def test_save_killed_part_way_leaves_previous_checkpoint(tmp_path):
    run = tmp_path / "run"
    script = _KILLED_SAVER.format(tests=str(pathlib.Path(__file__).parent), run=str(run))
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    leftovers = [p.name for p in (run / "checkpoints").iterdir() if "tmp" in p.name]
    assert checkpoint.latest_step(run) in (1, 2)
    restored = checkpoint.restore(run, make_state(0), step=1)
    assert leaves_equal_bitwise(restored.state.replace(replay_buffer=None), make_state(1).replace(replay_buffer=None))
    if checkpoint.latest_step(run) == 1:
        # The killed save never became a checkpoint; step 1 still holds everything.
        assert restored.complete and leaves_equal_bitwise(restored.state, make_state(1))
        assert leftovers, "expected the killed save's temporary folder"
    assert not [p for p in (run / "checkpoints").iterdir() if "tmp" in p.name]
